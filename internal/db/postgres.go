package db

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
)

// openPostgres connects to PostgreSQL through pgx's database/sql driver: a writer of one connection
// (transactions queue in Go, as on SQLite, so that the code keeps one behaviour on both) and a read
// pool whose connections refuse writes. Every setting of the URL is pgx's (sslmode, search_path,
// application_name...); the schema named by search_path must exist.
func openPostgres(ctx context.Context, url string, o Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database-url: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "junction"
	}
	rcfg := cfg.Copy()
	// The read pool's counterpart of SQLite's query_only: a write sent there is an error, not a
	// second writer.
	rcfg.RuntimeParams["default_transaction_read_only"] = "on"

	write := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	read := sqlx.NewDb(stdlib.OpenDB(*rcfg), "pgx")
	read.SetMaxOpenConns(o.ReadConns)
	read.SetMaxIdleConns(o.ReadConns)
	read.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{read: read, write: write, dialect: Postgres}
	where := cfg.Host
	if cfg.Database != "" {
		where += "/" + cfg.Database
	}
	var space sql.NullString
	if err := write.GetContext(ctx, &space, `SELECT current_database() || '.' || current_schema()`); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	if !space.Valid {
		d.Close()
		return nil, fmt.Errorf("open %s: no schema of search_path exists", where)
	}
	d.lockSpace = space.String
	if err := read.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	return d, nil
}

// Lock takes the lock called name until the transaction ends: transactions that take the same lock
// on the same database (and schema) run one after the other, in this process or any other. On
// PostgreSQL it is a transaction-level advisory lock; on SQLite it does nothing, since the single
// writer runs one transaction at a time and no other process writes the file.
func (t *Tx) Lock(ctx context.Context, name string) error {
	if t.dialect != Postgres {
		return nil
	}
	_, err := t.Exec(ctx, `SELECT pg_advisory_xact_lock(?)`, lockKey(t.lockSpace, name))
	return err
}

// Vacuum has PostgreSQL clear what deletes left behind in table, and sample its statistics again,
// on the read side: for before a write that must not pay for them inside the writer. A deleted
// row stays in each index until a vacuum, and a later look by key walks past all of them: after a
// source's 500,000 events went, the look that deleting the source's row cascades to read 5,000
// index pages and held the writer 46-53 ms. INDEX_CLEANUP ON clears the indexes even when the
// dead rows are a small part of the table (PostgreSQL skips them then by default); TRUNCATE false
// keeps it from locking the table against inserts to give back its empty end. SQLite removes
// index entries with their rows and needs nothing.
func (q *Queryer) Vacuum(ctx context.Context, table string) error {
	if q.dialect != Postgres {
		return nil
	}
	count(ctx)
	_, err := q.q.ExecContext(ctx, `VACUUM (ANALYZE, INDEX_CLEANUP ON, TRUNCATE false) `+pgx.Identifier{table}.Sanitize())
	return err
}

// lockKey maps a lock's name, within a database and schema, to the 64-bit key of an advisory lock.
func lockKey(space, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(space))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Text returns s as text that every backend stores as it is: valid UTF-8, without NUL characters
// (PostgreSQL's text refuses both; SQLite would keep them and hand back bytes that are not text).
// Invalid bytes and NULs become U+FFFD. It is for text that comes from outside and is kept for
// people to read, such as a receiver's response body.
func Text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Space names the database and schema on PostgreSQL ("" on SQLite): what replicas of one
// installation share, and what tells two installations on one server apart.
func (d *DB) Space() string { return d.lockSpace }
