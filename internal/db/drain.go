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
	return d.drain(ctx, func(ctx context.Context, limit int) (int64, bool, time.Duration, error) {
		var n int64
		start := time.Now()
		err := d.BackgroundTx(ctx, func(tx *Tx) error {
			var err error
			n, err = step(ctx, tx, limit)
			return err
		})
		return n, n >= int64(limit), time.Since(start), err
	})
}

// DrainFound is Drain for rows found by a read that may be slow: on PostgreSQL, the first scan
// after a large delete walks past every row that delete left dead, and took 240 ms inside the
// writer. find runs on the read side, outside the writer, and returns the keys of at most limit
// rows after the key `after` ("" at first), in order; apply changes those rows in a background
// transaction and returns how many it changed. It goes on from the last key found until find
// returns fewer than limit, so rows find returns that apply leaves alone cannot make it loop.
func (d *DB) DrainFound(ctx context.Context, find func(ctx context.Context, r *Queryer, after string, limit int) ([]string, error),
	apply func(ctx context.Context, tx *Tx, keys []string) (int64, error)) (int64, error) {
	after := ""
	return d.drain(ctx, func(ctx context.Context, limit int) (int64, bool, time.Duration, error) {
		keys, err := find(ctx, d.Reader(), after, limit)
		if err != nil || len(keys) == 0 {
			return 0, false, 0, err
		}
		after = keys[len(keys)-1]
		var n int64
		start := time.Now()
		err = d.BackgroundTx(ctx, func(tx *Tx) error {
			n, err = apply(ctx, tx, keys)
			return err
		})
		return n, len(keys) >= limit, time.Since(start), err
	})
}

// drain runs batch with the adaptive limit until it says there is no more (or fails, or ctx
// ends); the limit follows how long each batch says it held the writer.
func (d *DB) drain(ctx context.Context, batch func(ctx context.Context, limit int) (n int64, more bool, held time.Duration, err error)) (int64, error) {
	var total int64
	limit := drainFirst
	for {
		n, more, held, err := batch(ctx, limit)
		total += n
		if err != nil || !more {
			return total, err
		}
		// A drain of many batches fills the WAL fast: the checkpointer keeps up more often.
		if d.checkpoints != nil {
			d.checkpoints.background()
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
