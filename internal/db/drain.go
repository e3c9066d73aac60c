package db

import (
	"context"
	"time"
)

// DrainBatch is how many rows periodic work (retention, reaping deleted objects) changes per
// transaction: a few milliseconds of the writer's time, so that the tracking API's group commits,
// which wait for the same writer, never wait long behind it.
const DrainBatch = 1000

// Drain runs step in a write transaction again and again until a run changes fewer than limit
// rows (or ctx ends), and returns the rows changed in all. Between transactions it leaves the
// writer alone for as long as the last one held it, so that background work takes at most about
// half of the writer's time however much there is to do.
func (d *DB) Drain(ctx context.Context, limit int64, step func(ctx context.Context, tx *Tx) (int64, error)) (int64, error) {
	var total int64
	for {
		var n int64
		start := time.Now()
		err := d.Tx(ctx, func(tx *Tx) error {
			var err error
			n, err = step(ctx, tx)
			return err
		})
		held := time.Since(start)
		total += n
		if err != nil || n < limit {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(held):
		}
	}
}
