package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/junctioncdp/junction/internal/db"
)

// TestVacuumClearsDeletedIndexEntries: after many rows of a key are deleted, a look for that key
// inside a write transaction (as the cascade of a deleted source's row does) walks past their index
// entries until Vacuum, and reads only a few pages after it. On SQLite the entries go with the
// rows and Vacuum does nothing.
func TestVacuumClearsDeletedIndexEntries(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	const n = 30_000
	var rows [][]any
	for i := range n {
		rows = append(rows, []any{fmt.Sprintf("t%06d", i), "gone"})
	}
	if err := d.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE things (id TEXT PRIMARY KEY, grp TEXT NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE INDEX things_grp ON things (grp, id)`); err != nil {
			return err
		}
		return tx.InsertRows(ctx, `INSERT INTO things (id, grp) VALUES `, 2, append(rows, []any{"kept", "kept"}), "")
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Tx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM things WHERE grp = 'gone'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d.Dialect() == SQLite {
		if err := d.Reader().Vacuum(ctx, "things"); err != nil {
			t.Fatal(err)
		}
		return
	}
	// The pages an index scan for the deleted key reads inside the writer.
	pages := func() int {
		t.Helper()
		var plan string
		if err := d.Tx(ctx, func(tx *Tx) error {
			for _, off := range []string{"enable_seqscan", "enable_bitmapscan"} {
				if _, err := tx.Exec(ctx, `SET LOCAL `+off+` = off`); err != nil {
					return err
				}
			}
			return tx.Get(ctx, &plan, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM things WHERE grp = 'gone'`)
		}); err != nil {
			t.Fatal(err)
		}
		var out []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) != 1 {
			t.Fatalf("plan %q: %v", plan, err)
		}
		return out[0].Plan.Hit + out[0].Plan.Read
	}
	if before := pages(); before < 50 {
		t.Fatalf("the look read %d pages before the vacuum, want the deleted rows' many", before)
	}
	// A vacuum clears only what no open transaction may still see; other tests share the server.
	var after int
	for try := 0; try < 10; try++ {
		if err := d.Reader().Vacuum(ctx, "things"); err != nil {
			t.Fatal(err)
		}
		if after = pages(); after < 10 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the look still reads %d pages after the vacuum, want a few", after)
}
