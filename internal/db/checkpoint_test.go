package db

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointsFollowLongDrains: a drain of many batches has the checkpointer run at its next
// tick instead of within checkpointInterval, so that the WAL restarts before it grows long.
func TestCheckpointsFollowLongDrains(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "drain.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := d.checkpoints
	// Stopped, so that nothing but this test reads the flag.
	c.once.Do(func() { close(c.stop) })
	<-c.done
	last := time.Now()
	if c.due(last.Add(checkpointBusyInterval), last) {
		t.Fatal("a checkpoint is due one busy tick after the last, with nothing written")
	}
	if !c.due(last.Add(checkpointInterval), last) {
		t.Fatal("no checkpoint due after checkpointInterval")
	}
	// One batch: not a long drain.
	if _, err := d.Drain(ctx, func(ctx context.Context, tx *Tx, limit int) (int64, error) { return 0, nil }); err != nil {
		t.Fatal(err)
	}
	if c.due(last.Add(checkpointBusyInterval), last) {
		t.Error("a drain of one batch made a checkpoint due at the next tick")
	}
	batches := 0
	if _, err := d.Drain(ctx, func(ctx context.Context, tx *Tx, limit int) (int64, error) {
		if batches++; batches < 3 {
			return int64(limit), nil
		}
		return 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !c.due(last.Add(checkpointBusyInterval), last) {
		t.Error("a drain of three batches did not make a checkpoint due at the next tick")
	}
}
