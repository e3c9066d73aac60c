package db_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	. "github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMigrateConcurrently starts two servers' worth of migrations at once on one fresh database, as
// replicas starting together do: every migration is applied exactly once, and both succeed.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := testdb.URL(t)
	var handles [2]*DB
	for i := range handles {
		d, err := Open(ctx, url, Options{ReadConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		handles[i] = d
	}
	migs, err := LoadMigrations(migrations.FS, handles[0].Dialect())
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		applied [2][]string
		errs    [2]error
	)
	for i, d := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = d.Migrate(ctx, migs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrator %d: %v", i, err)
		}
	}
	all := append(slices.Clone(applied[0]), applied[1]...)
	sort.Strings(all)
	var want []string
	for _, m := range migs {
		want = append(want, m.Version)
	}
	if !slices.Equal(all, want) {
		t.Errorf("applied %v and %v; want each of %v once", applied[0], applied[1], want)
	}
	var recorded int
	if err := handles[1].Get(ctx, &recorded, `SELECT COUNT(*) FROM schema_migrations`); err != nil || recorded != len(migs) {
		t.Errorf("schema_migrations holds %d rows (%v), want %d", recorded, err, len(migs))
	}
	for _, d := range handles {
		if p, err := d.Pending(ctx, migs); err != nil || len(p) != 0 {
			t.Errorf("pending %v, %v", p, err)
		}
	}
}

// TestLock checks that Tx.Lock makes transactions of two processes that take the same lock run one
// after the other, and leaves other locks and other schemas alone. SQLite needs no lock: its single
// writer runs one transaction at a time, which TestTx checks.
func TestLock(t *testing.T) {
	ctx := context.Background()
	if !testdb.IsPostgres() {
		d := openTest(t)
		if err := d.Tx(ctx, func(tx *Tx) error { return tx.Lock(ctx, "events") }); err != nil {
			t.Fatalf("Lock on SQLite: %v", err)
		}
		return
	}
	url := testdb.URL(t)
	open := func(url string) *DB {
		d, err := Open(ctx, url, Options{ReadConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	a, b, other := open(url), open(url), open(testdb.URL(t))
	if _, err := a.Migrate(ctx, []Migration{{Version: "0001_log", SQL: `CREATE TABLE log (n BIGINT NOT NULL)`}}); err != nil {
		t.Fatal(err)
	}
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- a.Tx(ctx, func(tx *Tx) error {
			if err := tx.Lock(ctx, "events"); err != nil {
				return err
			}
			close(held)
			<-release
			_, err := tx.Exec(ctx, `INSERT INTO log (n) VALUES (1)`)
			return err
		})
	}()
	<-held
	// Another lock, and the same lock in another schema, are taken at once.
	for _, d := range []*DB{b, other} {
		if err := d.Tx(ctx, func(tx *Tx) error { return tx.Lock(ctx, "something else") }); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Tx(ctx, func(tx *Tx) error { return tx.Lock(ctx, "events") }); err != nil {
		t.Fatal(err)
	}
	// The same lock waits for a's transaction to end, and then sees what it committed.
	seen := make(chan int, 1)
	go func() {
		_ = b.Tx(ctx, func(tx *Tx) error {
			if err := tx.Lock(ctx, "events"); err != nil {
				return err
			}
			var n int
			err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM log`)
			seen <- n
			return err
		})
	}()
	waitFor(t, "b waiting for the lock", func() bool {
		var waiting int
		_ = other.Get(ctx, &waiting, `SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)
		return waiting > 0
	})
	select {
	case n := <-seen:
		t.Fatalf("b took the lock while a held it (saw %d rows)", n)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := <-seen; n != 1 {
		t.Errorf("b saw %d rows after taking the lock, want a's 1", n)
	}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
