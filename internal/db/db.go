// Package db opens the database and gives the domains one way to talk to it: SQL written with `?`
// placeholders that runs on SQLite and PostgreSQL alike, a read pool for queries, a single writer for
// transactions (SQLite allows one writer at a time; queueing in Go is cheaper than SQLITE_BUSY), and
// a count of statements per request so that tests can catch N+1 queries. Whatever differs between
// the two dialects lives in this package.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // the embedded default database

	"github.com/junctioncdp/junction/internal/apperr"
)

// Dialect names the SQL database behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the database: a read pool and a writer. Both run the same SQL; statements use `?`
// placeholders and are rebound for the dialect here, in one place.
type DB struct {
	read    *sqlx.DB
	write   *sqlx.DB
	dialect Dialect
	path    string
	// lockSpace names the database (and schema) on PostgreSQL, so that advisory locks of two
	// schemas in one database do not wait for each other.
	lockSpace string
	// checkpoints runs SQLite's WAL checkpoints apart from the writer (see checkpointer).
	checkpoints *checkpointer
	// observe, when set, hears how long each write transaction held the writer.
	observe atomic.Pointer[func(Hold, time.Duration)]
}

// Hold names what held the writer, for ObserveWrites.
type Hold string

const (
	// HoldCommit is an ordinary write transaction: one the caller waits for, durable at commit.
	HoldCommit Hold = "commit"
	// HoldBackground is a background transaction (BackgroundTx, and Drain's batches): periodic
	// work that a crash may make run again (retention, reaping, recomputation).
	HoldBackground Hold = "background"
	// HoldCheckpoint is the checkpointer's step on the writer that lets SQLite start its WAL again.
	HoldCheckpoint Hold = "checkpoint"
)

// ObserveWrites makes every write transaction report what it was and how long it held the writer,
// from its start to its commit or rollback: for metrics, and for benchmarks of how long background
// work holds it.
func (d *DB) ObserveWrites(f func(Hold, time.Duration)) { d.observe.Store(&f) }

// writeObserver returns what ObserveWrites set, if anything, for holds of the writer outside Tx.
func (d *DB) writeObserver() func(Hold, time.Duration) {
	if f := d.observe.Load(); f != nil {
		return *f
	}
	return nil
}

// Options tunes the connection pools. The zero value is the default.
type Options struct {
	// ReadConns bounds the read pool (default 8). The writer is always one connection.
	ReadConns int
}

// DefaultReadConns is the size of the read pool when Options leaves it unset.
const DefaultReadConns = 8

// Path is the SQLite database file ("" on PostgreSQL).
func (d *DB) Path() string { return d.path }

// IsPostgresURL tells whether url names a PostgreSQL database rather than a SQLite file.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open connects to the database named by url: a `postgres://` or `postgresql://` URL, or else a
// SQLite file path (its directory is created) or a `file:` URI.
func Open(ctx context.Context, url string, o Options) (*DB, error) {
	if o.ReadConns <= 0 {
		o.ReadConns = DefaultReadConns
	}
	if IsPostgresURL(url) {
		return openPostgres(ctx, url, o)
	}
	path := strings.TrimPrefix(url, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || path == ":memory:" {
		return nil, errors.New("database-url: want a SQLite file path; an in-memory database would lose acknowledged data")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	// Pragmas go in the DSN so that every pooled connection gets them, not only the first.
	// WAL lets readers run beside the writer; synchronous=FULL makes a commit durable across power
	// loss, not only a killed process; _txlock=immediate takes the write lock at BEGIN so that a
	// transaction never fails half-way with SQLITE_BUSY.
	common := "_journal_mode=WAL&_foreign_keys=on&_busy_timeout=10000&_synchronous=FULL"
	// The writer never checkpoints the WAL itself (a commit that does can take hundreds of
	// milliseconds, and every request waiting for the writer with it): a checkpointer does it
	// beside the writer. The writer keeps its prepared statements: the group commit runs the same
	// few on every commit, and preparing them again took a third of its CPU time.
	write, err := sqlx.Open(sqliteWriterDriver, sqliteDSN(path, common+"&_txlock=immediate&_stmt_cache_size=64"))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	read, err := sqlx.Open("sqlite3", sqliteDSN(path, common+"&_query_only=true"))
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(o.ReadConns)
	read.SetMaxIdleConns(o.ReadConns)
	d := &DB{read: read, write: write, dialect: SQLite, path: path}
	// Connect the writer first: it creates the file and switches it to WAL.
	if err := write.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := read.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if d.checkpoints, err = startCheckpointer(ctx, path, common, write, d.writeObserver); err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return d, nil
}

func sqliteDSN(path, params string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params
}

// Close closes both pools.
func (d *DB) Close() error {
	var err error
	if d.checkpoints != nil {
		err = d.checkpoints.close()
	}
	return errors.Join(err, d.read.Close(), d.write.Close())
}

// Dialect tells which database this is.
func (d *DB) Dialect() Dialect { return d.dialect }

// Stats returns the statistics of the read pool and of the writer, for metrics.
func (d *DB) Stats() (read, write sql.DBStats) { return d.read.Stats(), d.write.Stats() }

// Ping checks that both pools reach the database.
func (d *DB) Ping(ctx context.Context) error {
	return errors.Join(d.read.PingContext(ctx), d.write.PingContext(ctx))
}

// Reader returns the read side, which satisfies sqlx.QueryerContext for helpers such as
// internal/relay. Its statements are rebound and counted.
func (d *DB) Reader() *Queryer {
	return &Queryer{q: d.read, dialect: d.dialect, lockSpace: d.lockSpace}
}

// Get runs a query on the read pool and scans one row into dest (sql.ErrNoRows when none).
func (d *DB) Get(ctx context.Context, dest any, query string, args ...any) error {
	return d.Reader().Get(ctx, dest, query, args...)
}

// Select runs a query on the read pool and scans every row into dest, a pointer to a slice.
func (d *DB) Select(ctx context.Context, dest any, query string, args ...any) error {
	return d.Reader().Select(ctx, dest, query, args...)
}

// Tx runs fn in a write transaction, committing when fn returns nil and rolling back otherwise.
// Transactions are serialised on the single writer connection.
func (d *DB) Tx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	stx, err := d.write.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer d.observed(HoldCommit, time.Now())
	return d.run(ctx, stx, fn)
}

// observed tells the observer, if any, that the writer was held for kind from began until now.
func (d *DB) observed(kind Hold, began time.Time) {
	if f := d.observe.Load(); f != nil {
		(*f)(kind, time.Since(began))
	}
}

// run runs fn in stx and commits it when fn returns nil.
func (d *DB) run(ctx context.Context, stx *sqlx.Tx, fn func(tx *Tx) error) (err error) {
	count(ctx)
	tx := &Tx{Queryer: Queryer{q: stx, dialect: d.dialect, lockSpace: d.lockSpace}, tx: stx}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = stx.Rollback()
			return
		}
		if err = stx.Commit(); err != nil {
			err = fmt.Errorf("commit: %w", err)
			return
		}
		for _, f := range tx.afterCommit {
			f()
		}
	}()
	return fn(tx)
}

// Tx is a write transaction. It has the Queryer methods plus Exec.
type Tx struct {
	Queryer
	tx          *sqlx.Tx
	afterCommit []func()
}

// AfterCommit runs f once the transaction has committed, never if it rolls back: the place to
// publish events and wake watchers about what the transaction changed.
func (t *Tx) AfterCommit(f func()) { t.afterCommit = append(t.afterCommit, f) }

// Exec runs a statement that returns no rows.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	count(ctx)
	if err := checkArgs(args); err != nil {
		return nil, err
	}
	return t.tx.ExecContext(ctx, t.rebind(query), args...)
}

// Queryer runs queries with `?` placeholders on a pool or a transaction, rebinding them for the
// dialect and counting them. It satisfies sqlx.QueryerContext.
type Queryer struct {
	q interface {
		sqlx.QueryerContext
		sqlx.ExtContext
	}
	dialect   Dialect
	lockSpace string
}

func (q *Queryer) rebind(query string) string {
	if q.dialect == Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// Get scans one row into dest (sql.ErrNoRows when none).
func (q *Queryer) Get(ctx context.Context, dest any, query string, args ...any) error {
	count(ctx)
	if err := checkArgs(args); err != nil {
		return err
	}
	return sqlx.GetContext(ctx, q.q, dest, q.rebind(query), args...)
}

// Select scans every row into dest, a pointer to a slice.
func (q *Queryer) Select(ctx context.Context, dest any, query string, args ...any) error {
	count(ctx)
	if err := checkArgs(args); err != nil {
		return err
	}
	return sqlx.SelectContext(ctx, q.q, dest, q.rebind(query), args...)
}

// QueryContext implements sqlx.QueryerContext.
func (q *Queryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	count(ctx)
	if err := checkArgs(args); err != nil {
		return nil, err
	}
	return q.q.QueryContext(ctx, q.rebind(query), args...)
}

// QueryxContext implements sqlx.QueryerContext.
func (q *Queryer) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	count(ctx)
	if err := checkArgs(args); err != nil {
		return nil, err
	}
	return q.q.QueryxContext(ctx, q.rebind(query), args...)
}

// QueryRowxContext implements sqlx.QueryerContext.
func (q *Queryer) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	count(ctx)
	return q.q.QueryRowxContext(ctx, q.rebind(query), args...)
}

// ErrNUL refuses a statement with a text argument that holds a NUL character, before the database
// sees it: PostgreSQL's text cannot store one, so neither backend takes it, and the caller gets
// BAD_USER_INPUT rather than an internal error. (Text from outside that is only kept for people to
// read goes through Text instead.)
var ErrNUL = apperr.New(apperr.BadUserInput, "text must not contain NUL characters (U+0000)")

func checkArgs(args []any) error {
	for _, a := range args {
		switch v := a.(type) {
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return ErrNUL
			}
		case *string:
			if v != nil && strings.IndexByte(*v, 0) >= 0 {
				return ErrNUL
			}
		}
	}
	return nil
}

// IsNoRows tells whether err means that a query found no row.
func IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// statements counts every statement the process runs, for metrics.
var statements atomic.Int64

// StatementsTotal returns how many statements the process has run.
func StatementsTotal() int64 { return statements.Load() }

type counterKey struct{}

// WithStatementCounter returns a context in which every statement run through this package adds
// one to the returned counter. The HTTP layer puts one in each request so that tests (and logs)
// can tell how many statements a GraphQL operation took.
func WithStatementCounter(ctx context.Context) (context.Context, *atomic.Int64) {
	c := new(atomic.Int64)
	return context.WithValue(ctx, counterKey{}, c), c
}

// StatementCounter returns the counter of ctx, if any.
func StatementCounter(ctx context.Context) *atomic.Int64 {
	c, _ := ctx.Value(counterKey{}).(*atomic.Int64)
	return c
}

func count(ctx context.Context) {
	statements.Add(1)
	if c := StatementCounter(ctx); c != nil {
		c.Add(1)
	}
}

// Placeholders returns "?, ?, ..." with n marks, for IN lists (n >= 1; 0 gives "NULL", which
// matches nothing).
func Placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Args converts a slice to the []any of query arguments.
func Args[T any](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// InsertRows runs a multi-row INSERT, head + "(?, ...), (?, ...)" + tail, in chunks that stay under
// SQLite's and PostgreSQL's limits on bound parameters. Each row has cols values.
func (t *Tx) InsertRows(ctx context.Context, head string, cols int, rows [][]any, tail string) error {
	per := max(1, 6000/cols)
	one := "(" + Placeholders(cols) + ")"
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var sb strings.Builder
		sb.WriteString(head)
		args := make([]any, 0, len(chunk)*cols)
		for i, r := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(one)
			args = append(args, r...)
		}
		sb.WriteString(tail)
		if _, err := t.Exec(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}
