package db

import (
	"context"
	"time"
)

// DrainHold is how long periodic work (retention, reaping deleted objects) aims to hold the writer
// per transaction: the tracking API's group commits wait for the same writer, so a batch must
// not keep them waiting long.
const DrainHold = 8 * time.Millisecond

// Batch sizes Drain chooses between.
const (
	drainFirst = 500
	drainMin   = 50
	drainMax   = 5000
)

// Drain runs step in a write transaction again and again, with a row limit it adapts so that each
// transaction holds the writer for about DrainHold, until a run changes fewer rows than its limit
// (or ctx ends), and returns the rows changed in all. Between transactions it leaves the writer
// alone for as long as the last one held it, so that background work takes at most about half of
// the writer's time however much there is to do.
func (d *DB) Drain(ctx context.Context, step func(ctx context.Context, tx *Tx, limit int) (int64, error)) (int64, error) {
	var total int64
	limit := drainFirst
	for {
		var n int64
		start := time.Now()
		err := d.Tx(ctx, func(tx *Tx) error {
			var err error
			n, err = step(ctx, tx, limit)
			return err
		})
		held := time.Since(start)
		total += n
		if err != nil || n < int64(limit) {
			return total, err
		}
		switch {
		case held > DrainHold:
			limit = max(drainMin, int(float64(limit)*float64(DrainHold)/float64(held)))
		case held < DrainHold/2:
			limit = min(drainMax, limit*2)
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(held):
		}
	}
}
