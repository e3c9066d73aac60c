package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t)
	w := newWriter(d, DefaultQueueLimits, nil, newFollower(nil, nil))
	go w.run()
	old := testEvents("ws_a", "src_a", "old-", 2500)
	if err := w.write(ctx, "ws_a", old); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	if err := w.write(ctx, "ws_b", testEvents("ws_b", "src_b", "new-", 3)); err != nil {
		t.Fatal(err)
	}
	w.close()
	// A retry waiting for an old event goes with it.
	err := d.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		if _, err := tx.Exec(ctx, `INSERT INTO destinations (id, workspace_id, catalog_slug, category, name, enabled, settings, created_at, updated_at)
			VALUES ('dst_a', 'ws_a', 'webhook', 'Raw Data', 'D', TRUE, '{}', ?, ?)`, now, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO delivery_retries (destination_id, event_id, attempts, first_attempt_at, next_attempt_at) VALUES ('dst_a', ?, 1, ?, ?)`,
			old[0].ID, now, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	q := &Queries{db: d}
	n, err := q.Prune(ctx, cutoff)
	if err != nil || n != int64(len(old)) {
		t.Fatalf("pruned %d (%v), want %d", n, err, len(old))
	}
	if a, b := stored(t, d, "src_a"), stored(t, d, "src_b"); a != 0 || b != 3 {
		t.Errorf("left %d old and %d new events, want 0 and 3", a, b)
	}
	var retries int
	if err := d.Get(ctx, &retries, `SELECT COUNT(*) FROM delivery_retries`); err != nil || retries != 0 {
		t.Errorf("%d retries of pruned events left (%v)", retries, err)
	}
	if n, err := q.Prune(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second prune: %d, %v", n, err)
	}
}
