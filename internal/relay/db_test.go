package relay

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestWithInternalDB pages through internal/db's read pool and a transaction, which rebind
// placeholders themselves, with a db.Time sort key.
func TestWithInternalDB(t *testing.T) {
	ctx := context.Background()
	d := testdb.Open(t)

	type source struct {
		ID        string  `db:"id"`
		CreatedAt db.Time `db:"created_at"`
	}
	base := time.Date(2026, 11, 27, 9, 18, 16, 0, time.UTC)
	var want []string // newest first, ties by id descending
	err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TABLE sources (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, created_at TEXT NOT NULL)"); err != nil {
			return err
		}
		for i := range 25 {
			s := source{ID: fmt.Sprintf("src_%02d", i), CreatedAt: db.Time{Time: base.Add(time.Duration(i/3) * 1500 * time.Microsecond)}}
			if _, err := tx.Exec(ctx, "INSERT INTO sources (id, workspace_id, created_at) VALUES (?, ?, ?)", s.ID, "ws_1", s.CreatedAt); err != nil {
				return err
			}
			want = append(want, s.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)

	spec := Spec[source]{
		Select:     "SELECT id, created_at FROM sources",
		Where:      "workspace_id = ?",
		Args:       []any{"ws_1"},
		SortColumn: "created_at",
		Desc:       true,
		ID:         func(s source) string { return s.ID },
		SortKey:    func(s source) any { return s.CreatedAt },
		Count:      true,
	}
	check := func(t *testing.T, q sqlx.QueryerContext) {
		t.Helper()
		var got []string
		var after *string
		for pages := 0; pages <= len(want); pages++ {
			page, err := Query(ctx, q, spec, Args{First: ptr(4), After: after})
			if err != nil {
				t.Fatal(err)
			}
			if *page.TotalCount != len(want) {
				t.Fatalf("totalCount = %d, want %d", *page.TotalCount, len(want))
			}
			for _, e := range page.Edges {
				got = append(got, e.Node.ID)
			}
			if !page.PageInfo.HasNextPage {
				break
			}
			after = page.PageInfo.EndCursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
	}
	t.Run("Reader", func(t *testing.T) { check(t, d.Reader()) })
	t.Run("Tx", func(t *testing.T) {
		if err := d.Tx(ctx, func(tx *db.Tx) error { check(t, tx); return nil }); err != nil {
			t.Fatal(err)
		}
	})
}
