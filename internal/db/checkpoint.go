package db

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
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

// checkpointBusyInterval is how often it does while background work (retention, reaping) writes
// batch after batch: deletes fill the WAL two to three times as fast as the tracking API at 2,000
// requests/s, and at checkpointInterval the WAL grew to 50-90 MB between restarts, past the file's
// length so far; the step that restarted it then held the writer up to 68 ms. Checkpoints that
// often all the time add syncs that the tracking API's commits wait behind (in one set of three
// runs its p99 was 7-20 ms against 5-6 ms).
const checkpointBusyInterval = 100 * time.Millisecond

// restartFrames is the length of the WAL (in pages) beyond which the checkpointer has it start
// again from its beginning. A WAL that only grows makes every page lookup slower, and once it is
// longer than journal_size_limit the commit that restarts it truncates the file, which took up to
// 400 ms with a WAL of 1 GB. 2,048 pages are 8 MB with SQLite's default page size.
const restartFrames = 2048

// restartTail is how many frames the checkpointer leaves the writer to copy when it can.
const restartTail = 64

// checkpointer runs PASSIVE checkpoints on a connection of its own: they copy what they can of the
// WAL into the database file without taking the write lock, so the writer never waits for them.
//
// SQLite reuses the WAL from its start only when a write transaction begins with every frame of
// it copied, and under steady writes that never happens: new commits land while a checkpoint
// runs. So when the WAL has grown past restartFrames, the checkpointer copies the few frames
// committed meanwhile with a second PASSIVE checkpoint run on the writer connection, between two
// write transactions; the next transaction then starts the WAL again.
type checkpointer struct {
	db     *sqlx.DB
	writer *sqlx.DB
	// observe is the DB's: the checkpoint on the writer holds the writer as a transaction does.
	observe func() func(Hold, time.Duration)
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// busy is set while a drain of many batches runs (see DB.drain): the next checkpoint comes
	// sooner.
	busy atomic.Bool
}

// background tells the checkpointer that a drain of many batches is writing.
func (c *checkpointer) background() { c.busy.Store(true) }

func startCheckpointer(ctx context.Context, path, params string, writer *sqlx.DB, observe func() func(Hold, time.Duration)) (*checkpointer, error) {
	conn, err := sqlx.Open("sqlite3", sqliteDSN(path, params))
	if err != nil {
		return nil, err
	}
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	c := &checkpointer{db: conn, writer: writer, observe: observe, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointBusyInterval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			if c.due(now, last) {
				last = now
				c.checkpoint()
			}
		}
	}
}

// due tells whether a checkpoint is due at now, the last one having run at last: every
// checkpointInterval, or at the next tick after a drain of many batches wrote.
func (c *checkpointer) due(now, last time.Time) bool {
	return c.busy.Swap(false) || now.Sub(last) >= checkpointInterval
}

// checkpoint copies the WAL into the database file and, when the WAL has grown long, has it
// restarted. A checkpoint that cannot finish (a reader still uses old pages) is retried next time.
func (c *checkpointer) checkpoint() {
	frames, err := c.passive()
	if err != nil || frames < restartFrames {
		return
	}
	// What the writer will have to copy is what is committed while the last checkpoint here runs:
	// run again while that is much, a few times at most (a burst of writes may outrun them).
	for range 3 {
		now, err := c.passive()
		if err != nil {
			return
		}
		grew := now - frames
		frames = now
		if grew < restartTail {
			break
		}
	}
	if frames < restartFrames {
		return // restarted meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.writer.Connx(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	began := time.Now()
	_, _ = conn.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	if f := c.observe(); f != nil {
		f(HoldCheckpoint, time.Since(began))
	}
}

// passive runs a PASSIVE checkpoint on the checkpointer's connection and returns the length of
// the WAL in frames.
func (c *checkpointer) passive() (int, error) {
	var busy, frames, copied int
	err := c.db.QueryRowx(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	return frames, err
}

func (c *checkpointer) close() error {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	return c.db.Close()
}
