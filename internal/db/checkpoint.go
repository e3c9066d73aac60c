package db

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

// sqliteWriterDriver is go-sqlite3 with automatic WAL checkpoints off: on the writer connection,
// the commit that crosses the WAL's threshold would otherwise copy the WAL into the database file
// and sync it, holding the writer, and every request waiting for it, meanwhile.
const sqliteWriterDriver = "sqlite3_junction_writer"

func init() {
	sql.Register(sqliteWriterDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// journal_size_limit lets the WAL file shrink back after a burst.
		_, err := c.Exec(`PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864`, nil)
		return err
	}})
}

// checkpointInterval is how often the checkpointer copies the WAL into the database file.
const checkpointInterval = 500 * time.Millisecond

// checkpointer runs PASSIVE checkpoints on a connection of its own: they copy what they can of the
// WAL into the database file without taking the write lock, so the writer never waits for them,
// and the WAL is reused from its start once a checkpoint has caught up.
type checkpointer struct {
	db   *sqlx.DB
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func startCheckpointer(ctx context.Context, path, params string) (*checkpointer, error) {
	conn, err := sqlx.Open("sqlite3", sqliteDSN(path, params))
	if err != nil {
		return nil, err
	}
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	c := &checkpointer{db: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			// A checkpoint that cannot finish (a reader still uses old pages) is retried next time.
			_, _ = c.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

func (c *checkpointer) close() error {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	return c.db.Close()
}
