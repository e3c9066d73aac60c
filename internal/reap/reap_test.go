package reap

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestExpireOnce expires rows of a table past the server's retention everywhere and past a
// workspace's own where it is shorter, and keeps the rest.
func TestExpireOnce(t *testing.T) {
	ctx := context.Background()
	d := testdb.Open(t)
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE expiring (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ages := map[string]time.Duration{"1h": time.Hour, "30h": 30 * time.Hour, "100h": 100 * time.Hour, "1000h": 1000 * time.Hour}
	ids := map[string]string{}
	n := 0
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		for _, ws := range []string{"ws_short", "ws_long", "ws_equal"} {
			for age, a := range ages {
				n++
				ids[ws+"/"+age] = id.Floor("exp", now.Add(-a).Add(time.Duration(n)*time.Millisecond))
				if _, err := tx.Exec(ctx, `INSERT INTO expiring (id, workspace_id) VALUES (?, ?)`, ids[ws+"/"+age], ws); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := New(d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Expire(Expiry{Name: "expiring", Floor: func(t time.Time) string { return id.Floor("exp", t) }, Server: 500 * time.Hour,
		// ws_equal asks for the server's retention: nothing more of it goes.
		Own: func(context.Context) (map[string]time.Duration, error) {
			return map[string]time.Duration{"ws_short": 48 * time.Hour, "ws_equal": 500 * time.Hour}, nil
		},
		Delete: func(ctx context.Context, tx *db.Tx, workspaceID, below string, limit int) (int64, error) {
			where, args := `id < ?`, []any{below}
			if workspaceID != "" {
				where, args = `workspace_id = ? AND id < ?`, []any{workspaceID, below}
			}
			res, err := tx.Exec(ctx, `DELETE FROM expiring WHERE id IN (SELECT id FROM expiring WHERE `+where+` ORDER BY id LIMIT ?)`, append(args, limit)...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}})
	deleted, err := r.ExpireOnce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 4 {
		t.Errorf("deleted %d rows, want 4 (three past the server's 500 hours, one of ws_short past its 48)", deleted)
	}
	for key, want := range map[string]bool{
		"ws_short/1h": true, "ws_short/30h": true, "ws_short/100h": false, "ws_short/1000h": false,
		"ws_long/1h": true, "ws_long/100h": true, "ws_long/1000h": false,
		"ws_equal/100h": true, "ws_equal/1000h": false,
	} {
		var c int
		if err := d.Get(ctx, &c, `SELECT COUNT(*) FROM expiring WHERE id = ?`, ids[key]); err != nil {
			t.Fatal(err)
		}
		if got := c == 1; got != want {
			t.Errorf("%s kept: %v, want %v", key, got, want)
		}
	}
}

// TestStepsHearWhatEarlierOnesDeleted: a step's context tells how many rows the object's earlier
// steps deleted (Deleted), as the source's last step needs to decide whether to vacuum first.
func TestStepsHearWhatEarlierOnesDeleted(t *testing.T) {
	ctx := context.Background()
	d := testdb.OpenMigrated(t)
	const owned = 2_500 // more than the first batch of a drain
	rows := make([][]any, owned)
	for i := range rows {
		rows[i] = []any{id.New("thg"), "obj_1"}
	}
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE things (id TEXT PRIMARY KEY, owner TEXT NOT NULL)`); err != nil {
			return err
		}
		return tx.InsertRows(ctx, `INSERT INTO things (id, owner) VALUES `, 2, rows, "")
	}); err != nil {
		t.Fatal(err)
	}
	r := New(d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Pending(Source, func(context.Context) ([]string, error) { return []string{"obj_1"}, nil })
	heard := map[string]int64{}
	r.Add(Source, Step{Name: "things", Run: func(ctx context.Context, tx *db.Tx, owner string, limit int) (int64, error) {
		heard["things"] = Deleted(ctx)
		res, err := tx.Exec(ctx, `DELETE FROM things WHERE id IN (SELECT id FROM things WHERE owner = ? ORDER BY id LIMIT ?)`, owner, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}, Step{Name: "row",
		Find: func(ctx context.Context, _ *db.Queryer, _, after string, _ int) ([]string, error) {
			heard["row"] = Deleted(ctx)
			return nil, nil
		},
		Apply: func(context.Context, *db.Tx, string, []string) (int64, error) { return 0, nil }})
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if heard["things"] != 0 || heard["row"] != owned {
		t.Errorf("steps heard %v deleted before them, want things 0 and row %d", heard, owned)
	}
}
