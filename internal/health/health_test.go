package health

import (
	"context"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

func mustOpenDB(tb testing.TB) *db.DB {
	tb.Helper()
	ctx := context.Background()
	d := testdb.Open(tb)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestResolveRecovered(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t)
	s := New(d, nil, time.Minute)
	t0 := time.Now().Add(-time.Hour).UTC()
	now := db.Now()
	err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES ('ws_1', 'W', 'w', 'FREE', ?, ?)`,
			now, now); err != nil {
			return err
		}
		// The source has received events since the error below.
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at, last_seen_at)
			VALUES ('src_1', 'ws_1', 'http-api', 'S', TRUE, '{}', '[]', ?, ?, ?)`, now, now, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	occ := Occurrence{WorkspaceID: "ws_1", TargetKind: SourceTarget, TargetID: "src_1", ErrorType: "MISSING_IDENTITY", Message: "userId or anonymousId is required", N: 1, At: t0}
	if err := s.Record(ctx, []Occurrence{occ}); err != nil {
		t.Fatal(err)
	}

	t.Run("NotWhileItRecurs", func(t *testing.T) {
		// The source received events after the error, long enough ago: the issue is a candidate.
		candidates, err := s.recovered(ctx, time.Now())
		if err != nil || len(candidates) != 1 {
			t.Fatalf("candidates %v, %v", candidates, err)
		}
		// Between the read and the update, the error happens again.
		again := occ
		again.At = time.Now()
		if err := s.Record(ctx, []Occurrence{again}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.resolve(ctx, candidates, time.Now()); err != nil || n != 0 {
			t.Errorf("resolved %d (%v): an issue that just recurred must stay open", n, err)
		}
		var status string
		if err := d.Get(ctx, &status, `SELECT status FROM health_issues WHERE target_id = 'src_1'`); err != nil || status != Open {
			t.Errorf("status %q, %v", status, err)
		}
	})
	t.Run("ResolvesOnceRecovered", func(t *testing.T) {
		later := time.Now().Add(time.Hour)
		err := d.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE sources SET last_seen_at = ? WHERE id = 'src_1'`, db.Time{Time: later.Add(-30 * time.Minute)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.ResolveRecovered(ctx, later); err != nil || n != 1 {
			t.Errorf("resolved %d (%v), want 1", n, err)
		}
	})
}
