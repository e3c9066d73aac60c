package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	. "github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// openTest opens a fresh database of the backend under test.
func openTest(t *testing.T) *DB {
	t.Helper()
	return testdb.Open(t)
}

var testMigrations = fstest.MapFS{
	"0001_things.sql":        {Data: []byte(`CREATE TABLE things (id TEXT PRIMARY KEY, at TEXT NOT NULL);`)},
	"0002_more.sql":          {Data: []byte(`CREATE TABLE more (id TEXT PRIMARY KEY, score DOUBLE PRECISION);`)},
	"0002_more.sqlite.sql":   {Data: []byte(`CREATE INDEX more_sqlite ON more (id);`)},
	"0002_more.postgres.sql": {Data: []byte(`CREATE INDEX more_postgres ON more (id);`)},
	"embed.go":               {Data: []byte(`package migrations`)},
}

func TestLoadMigrations(t *testing.T) {
	for _, dialect := range []Dialect{SQLite, Postgres} {
		migs, err := LoadMigrations(testMigrations, dialect)
		if err != nil {
			t.Fatal(err)
		}
		if len(migs) != 2 || migs[0].Version != "0001_things" || migs[1].Version != "0002_more" {
			t.Fatalf("%s: loaded %+v", dialect, migs)
		}
		other := map[Dialect]string{SQLite: "more_postgres", Postgres: "more_sqlite"}[dialect]
		if strings.Contains(migs[1].SQL, other) || !strings.Contains(migs[1].SQL, "more_"+string(dialect)) ||
			!strings.Contains(migs[1].SQL, "CREATE TABLE more") {
			t.Errorf("%s: dialect files mixed up: %q", dialect, migs[1].SQL)
		}
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	migs, err := LoadMigrations(testMigrations, d.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("PendingBeforeApply", func(t *testing.T) {
		if _, err := d.Migrate(ctx, nil); err != nil { // creates the bookkeeping table only
			t.Fatal(err)
		}
		p, err := d.Pending(ctx, migs)
		if err != nil || len(p) != 2 {
			t.Errorf("pending = %v, %v", p, err)
		}
	})
	t.Run("ApplyOnce", func(t *testing.T) {
		applied, err := d.Migrate(ctx, migs)
		if err != nil || len(applied) != 2 {
			t.Fatalf("applied %v, %v", applied, err)
		}
		applied, err = d.Migrate(ctx, migs)
		if err != nil || len(applied) != 0 {
			t.Errorf("second run applied %v, %v", applied, err)
		}
		if p, _ := d.Pending(ctx, migs); len(p) != 0 {
			t.Errorf("pending after apply: %v", p)
		}
	})
	t.Run("FailedMigrationLeavesNothing", func(t *testing.T) {
		bad := []Migration{{Version: "0003_bad", SQL: "CREATE TABLE half (id TEXT); SELECT nope FROM nowhere;"}}
		if _, err := d.Migrate(ctx, bad); err == nil || !strings.Contains(err.Error(), "0003_bad") {
			t.Errorf("error %v does not name the migration", err)
		}
		var n int
		if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM half`); err == nil {
			t.Error("a failed migration left a table behind")
		}
	})
	t.Run("BadName", func(t *testing.T) {
		_, err := LoadMigrations(fstest.MapFS{"first.sql": {Data: []byte("")}}, SQLite)
		if err == nil {
			t.Error("a badly named migration was accepted")
		}
	})
}

func TestTx(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	migs, _ := LoadMigrations(testMigrations, d.Dialect())
	if _, err := d.Migrate(ctx, migs); err != nil {
		t.Fatal(err)
	}
	t.Run("RollbackOnError", func(t *testing.T) {
		err := d.Tx(ctx, func(tx *Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO things (id, at) VALUES (?, ?)`, "a", Now()); err != nil {
				return err
			}
			return errors.New("changed my mind")
		})
		if err == nil {
			t.Fatal("no error")
		}
		var n int
		_ = d.Get(ctx, &n, `SELECT COUNT(*) FROM things`)
		if n != 0 {
			t.Error("rolled-back row is visible")
		}
	})
	t.Run("RollbackOnPanic", func(t *testing.T) {
		func() {
			defer func() { recover() }()
			_ = d.Tx(ctx, func(tx *Tx) error {
				_, _ = tx.Exec(ctx, `INSERT INTO things (id, at) VALUES (?, ?)`, "p", Now())
				panic("boom")
			})
		}()
		var n int
		_ = d.Get(ctx, &n, `SELECT COUNT(*) FROM things`)
		if n != 0 {
			t.Error("row of a panicking transaction is visible")
		}
		// The writer connection is usable again.
		if err := d.Tx(ctx, func(tx *Tx) error { return nil }); err != nil {
			t.Error(err)
		}
	})
	t.Run("ConcurrentWritersAreSerialised", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs <- d.Tx(ctx, func(tx *Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO things (id, at) VALUES (?, ?)`, string(rune('A'+i)), Now())
					return err
				})
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		var n int
		_ = d.Get(ctx, &n, `SELECT COUNT(*) FROM things`)
		if n != 20 {
			t.Errorf("%d rows, want 20", n)
		}
	})
	t.Run("ReadPoolIsReadOnly", func(t *testing.T) {
		_, err := d.Reader().QueryContext(ctx, `INSERT INTO things (id, at) VALUES ('ro', 'x')`)
		if err == nil {
			t.Error("the read pool accepted a write")
		}
	})
	t.Run("TimeRoundTrip", func(t *testing.T) {
		at := Time{time.Date(2026, 11, 27, 9, 18, 16, 123456789, time.FixedZone("x", 3600))}
		if err := d.Tx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO things (id, at) VALUES (?, ?)`, "time", at)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var raw string
		var got Time
		_ = d.Get(ctx, &raw, `SELECT at FROM things WHERE id = 'time'`)
		if raw != "2026-11-27T08:18:16.123456Z" {
			t.Errorf("stored as %q", raw)
		}
		if err := d.Get(ctx, &got, `SELECT at FROM things WHERE id = 'time'`); err != nil || !got.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("read back %v, %v", got, err)
		}
	})
}

func TestStatementCounter(t *testing.T) {
	d := openTest(t)
	ctx, c := WithStatementCounter(context.Background())
	var n int
	_ = d.Get(ctx, &n, `SELECT 1`)
	_ = d.Select(ctx, &[]int{}, `SELECT 1`)
	_ = d.Tx(ctx, func(tx *Tx) error { return tx.Get(ctx, &n, `SELECT 2`) })
	if got := c.Load(); got != 4 { // get, select, begin, get in tx
		t.Errorf("counted %d statements, want 4", got)
	}
	if _ = d.Get(context.Background(), &n, `SELECT 1`); c.Load() != 4 {
		t.Error("a statement outside the context was counted")
	}
}

func TestOpenRefuses(t *testing.T) {
	refused := []string{":memory:", "file::memory:?cache=shared", "", "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=5"}
	if testdb.IsPostgres() {
		// A search_path whose schema does not exist would put the tables in no schema at all.
		u, err := url.Parse(testdb.ServerURL())
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", "no_such_schema_here")
		u.RawQuery = q.Encode()
		refused = append(refused, u.String())
	}
	for _, url := range refused {
		if d, err := Open(context.Background(), url, Options{}); err == nil {
			d.Close()
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}

func TestOpenSQLiteCreatesDirectory(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "sub", "test.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}

func TestAfterCommit(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	ran := 0
	_ = d.Tx(ctx, func(tx *Tx) error { tx.AfterCommit(func() { ran++ }); return nil })
	_ = d.Tx(ctx, func(tx *Tx) error { tx.AfterCommit(func() { ran += 10 }); return errors.New("no") })
	if ran != 1 {
		t.Errorf("after-commit hooks ran %d, want 1 (commit only)", ran)
	}
}

func TestText(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	if _, err := d.Migrate(ctx, []Migration{{Version: "0001_notes", SQL: `CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)`}}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct{ in, want string }{
		{"plain é", "plain é"},
		{"nul\x00byte", "nul\uFFFDbyte"},
		{"cut \xc3", "cut \uFFFD"},
		{"\xff\xfe", "\uFFFD"},
	} {
		got := Text(tt.in)
		if got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// What Text returns is stored and read back unchanged.
		key := string(rune('a' + i))
		if err := d.Tx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO notes (id, body) VALUES (?, ?)`, key, got)
			return err
		}); err != nil {
			t.Fatalf("storing Text(%q): %v", tt.in, err)
		}
		var back string
		if err := d.Get(ctx, &back, `SELECT body FROM notes WHERE id = ?`, key); err != nil || back != got {
			t.Errorf("read back %q, %v; want %q", back, err, got)
		}
	}
}

func TestNULRefused(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	if _, err := d.Migrate(ctx, []Migration{{Version: "0001_notes", SQL: `CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)`}}); err != nil {
		t.Fatal(err)
	}
	nul := "a\x00b"
	err := d.Tx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO notes (id, body) VALUES (?, ?)`, "n", &nul)
		return err
	})
	if !errors.Is(err, ErrNUL) || apperr.CodeOf(err) != apperr.BadUserInput {
		t.Errorf("insert of a NUL: %v, want ErrNUL (BAD_USER_INPUT)", err)
	}
	var n int
	if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM notes WHERE body = ?`, nul); !errors.Is(err, ErrNUL) {
		t.Errorf("query with a NUL: %v, want ErrNUL", err)
	}
}

// TestWALCheckpointedBesideTheWriter: on SQLite the writer never checkpoints (a commit that does
// holds every waiting request); the checkpointer copies the WAL into the database file.
func TestWALCheckpointedBesideTheWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wal.db")
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.Get(ctx, &n, `PRAGMA wal_autocheckpoint`); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("the writer checkpoints every %d pages, want never", n)
		}
		_, err := tx.Exec(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b TEXT)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	for i := 0; i < 50; i++ {
		if err := d.Tx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO blobs (b) VALUES (?)`, strings.Repeat("x", 40_000))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// 2 MB went into the WAL; the database file catches up without another write.
	deadline := time.Now().Add(10 * time.Second)
	for size(path) < 2_000_000 {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes after 2 MB committed: no checkpoint ran", size(path))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWALRestartedUnderSteadyWrites: SQLite starts the WAL again only when a write begins with
// all of it checkpointed, which steady writes never leave time for; the checkpointer has the writer
// do it, so that the WAL stays short however long the writes go on. A restart is seen in the WAL's
// header: SQLite gives it new salts each time it starts the log again (the file itself keeps its
// length up to journal_size_limit, so its size says nothing).
func TestWALRestartedUnderSteadyWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wal.db")
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Tx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b TEXT)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	salts := func() string {
		f, err := os.Open(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		hdr := make([]byte, 24)
		if _, err := io.ReadFull(f, hdr); err != nil {
			t.Fatal(err)
		}
		return string(hdr[16:24])
	}
	first := salts()
	restarts, last, written := 0, first, 0
	// Two restarts: the first could come from a pause of the writes; the second shows it again.
	// The deadline is generous for slow disks; restarts come every 8 MB on a quick one.
	for deadline := time.Now().Add(60 * time.Second); restarts < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL was started again %d times in %d bytes written without a pause, want 2", restarts, written)
		}
		if err := d.Tx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO blobs (b) VALUES (?)`, strings.Repeat("x", 40_000))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		written += 40_000
		if s := salts(); s != last {
			restarts, last = restarts+1, s
		}
	}
	t.Logf("two restarts in %d bytes written", written)
}

// TestObserveWrites: every write transaction reports how long it held the writer.
func TestObserveWrites(t *testing.T) {
	d := openTest(t)
	var mu sync.Mutex
	var held []time.Duration
	d.ObserveWrites(func(_ Hold, dur time.Duration) { mu.Lock(); held = append(held, dur); mu.Unlock() })
	ctx := context.Background()
	_ = d.Tx(ctx, func(tx *Tx) error { time.Sleep(20 * time.Millisecond); return nil })
	_ = d.Tx(ctx, func(tx *Tx) error { return errors.New("rolled back") })
	mu.Lock()
	defer mu.Unlock()
	if len(held) != 2 || held[0] < 20*time.Millisecond {
		t.Errorf("observed %v, want two transactions, the first held at least 20ms", held)
	}
}

// TestDrainCommitsLazilyAndRestoresDurability checks that Drain's transactions commit without
// waiting for the disk, and that every other transaction still does, after a drain that succeeded
// and after one that failed.
func TestDrainCommitsLazilyAndRestoresDurability(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	if err := d.Tx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE things (id INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	setting := func(t *testing.T, tx *Tx) string {
		t.Helper()
		var v string
		q := `SHOW synchronous_commit`
		if d.Dialect() == SQLite {
			q = `PRAGMA synchronous`
		}
		if err := tx.Get(ctx, &v, q); err != nil {
			t.Fatal(err)
		}
		return v
	}
	durable := map[Dialect]string{SQLite: "2", Postgres: "on"}[d.Dialect()]
	lazy := map[Dialect]string{SQLite: "1", Postgres: "off"}[d.Dialect()]
	ordinary := func(t *testing.T) {
		t.Helper()
		_ = d.Tx(ctx, func(tx *Tx) error {
			if got := setting(t, tx); got != durable {
				t.Errorf("an ordinary transaction after a drain commits with %q, want %q", got, durable)
			}
			return nil
		})
	}
	if err := d.Tx(ctx, func(tx *Tx) error {
		for i := 0; i < 1200; i++ {
			if _, err := tx.Exec(ctx, `INSERT INTO things (id) VALUES (?)`, i); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ordinary(t)

	// A failing step rolls back its transaction and the setting is put back.
	failed := errors.New("step failed")
	if _, err := d.Drain(ctx, func(ctx context.Context, tx *Tx, limit int) (int64, error) {
		if _, err := tx.Exec(ctx, `DELETE FROM things`); err != nil {
			return 0, err
		}
		return 0, failed
	}); !errors.Is(err, failed) {
		t.Fatalf("drain: %v, want the step's error", err)
	}
	var n int
	if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM things`); err != nil || n != 1200 {
		t.Fatalf("%d rows after a failed step (%v), want 1200", n, err)
	}
	ordinary(t)

	var steps int
	total, err := d.Drain(ctx, func(ctx context.Context, tx *Tx, limit int) (int64, error) {
		steps++
		if got := setting(t, tx); got != lazy {
			t.Errorf("a drain's transaction commits with %q, want %q", got, lazy)
		}
		res, err := tx.Exec(ctx, `DELETE FROM things WHERE id IN (SELECT id FROM things ORDER BY id LIMIT ?)`, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if err != nil || total != 1200 || steps < 2 {
		t.Fatalf("drained %d rows in %d steps (%v), want 1200 in more than one", total, steps, err)
	}
	ordinary(t)
}

// TestDrainFound: rows found on the read side are changed in batches that go on from the last key
// found, all of them; and rows that find returns but apply leaves alone, more of them than the
// largest batch, do not make it loop (without the cursor, find would return them again forever).
func TestDrainFound(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	const total, kept = 12_000, 6_000 // every other row is kept: more than a batch ever holds
	var rows [][]any
	for i := 0; i < total; i++ {
		rows = append(rows, []any{fmt.Sprintf("t%05d", i), i % 2})
	}
	if err := d.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE things (id TEXT PRIMARY KEY, keep INTEGER NOT NULL)`); err != nil {
			return err
		}
		return tx.InsertRows(ctx, `INSERT INTO things (id, keep) VALUES `, 2, rows, "")
	}); err != nil {
		t.Fatal(err)
	}
	var batches int
	n, err := d.DrainFound(ctx, func(ctx context.Context, r *Queryer, after string, limit int) ([]string, error) {
		if batches++; batches > 200 {
			return nil, errors.New("find called 200 times: the drain does not go on from the last key")
		}
		var ids []string
		err := r.Select(ctx, &ids, `SELECT id FROM things WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
		return ids, err
	}, func(ctx context.Context, tx *Tx, keys []string) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM things WHERE keep = 0 AND id IN (`+Placeholders(len(keys))+`)`, Args(keys)...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if err != nil || n != total-kept {
		t.Fatalf("DrainFound changed %d rows (%v), want %d", n, err, total-kept)
	}
	var left int
	if err := d.Get(ctx, &left, `SELECT COUNT(*) FROM things WHERE keep = 1`); err != nil {
		t.Fatal(err)
	}
	var gone int
	if err := d.Get(ctx, &gone, `SELECT COUNT(*) FROM things WHERE keep = 0`); err != nil {
		t.Fatal(err)
	}
	if left != kept || gone != 0 || batches < 2 {
		t.Errorf("%d kept rows and %d others left after %d batches, want %d and 0 after several batches", left, gone, batches, kept)
	}
}
