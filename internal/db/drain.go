package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// DrainHold is how long periodic work (retention, reaping deleted objects) aims to hold the writer
// per transaction: the tracking API's group commits wait for the same writer, so a batch must
// not keep them waiting long.
const DrainHold = 5 * time.Millisecond

// Batch sizes Drain chooses between.
const (
	drainFirst = 500
	drainMin   = 50
	drainMax   = 5000
)

// Drain runs step in a background transaction (see BackgroundTx) again and again, with a row
// limit it adapts so that each transaction holds the writer for about DrainHold, until a run
// changes fewer rows than its limit (or ctx ends), and returns the rows changed in all. Between
// transactions it leaves the writer alone for as long as the last one held it, so that background
// work takes at most about half of the writer's time however much there is to do.
func (d *DB) Drain(ctx context.Context, step func(ctx context.Context, tx *Tx, limit int) (int64, error)) (int64, error) {
	var total int64
	limit := drainFirst
	for {
		var n int64
		start := time.Now()
		err := d.BackgroundTx(ctx, func(tx *Tx) error {
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

// BackgroundTx runs fn in a write transaction whose commit does not wait for the disk to confirm
// it: SQLite's synchronous=NORMAL for that transaction alone, PostgreSQL's synchronous_commit=off.
// It is for periodic work that is safe to lose and do again (retention, reaping, recomputation),
// whose commits would otherwise each wait for an fsync while holding the writer, and on a disk
// busy with a checkpoint that wait is what made a 3 ms delete hold the writer 35 ms.
//
// Nothing acknowledged depends on it: the log is written in order, so the next ordinary commit's
// fsync makes this one durable too, and a crash of the machine before that loses only work that
// the next run redoes. A killed process loses nothing: the commit is in the operating system's
// hands already.
func (d *DB) BackgroundTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if d.dialect == Postgres {
		stx, err := d.write.BeginTxx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer d.observed(HoldBackground, time.Now())
		return d.run(ctx, stx, func(tx *Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			return fn(tx)
		})
	}
	// The setting belongs to the connection: hold the writer's only connection throughout, so that
	// no other transaction runs with it, and put it back before letting go.
	conn, err := d.write.Connx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer d.observed(HoldBackground, time.Now())
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); rerr != nil {
			// A writer that might commit without syncing must not serve again: discard it, and
			// the pool opens a new one with the DSN's synchronous=FULL.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("restore synchronous=FULL: %w", rerr))
		}
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	stx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return d.run(ctx, stx, fn)
}
