package ingest

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// PruneWorkspace deletes a workspace's events received in [from, to): the part of the log a
// workspace that keeps its events for less than the server does no longer keeps (from is the
// server's cutoff, below which the server's pruning has already deleted everything). It goes
// through that part of the log by id, a window at a time, so that other workspaces' events cost
// a bounded look each.
func (q *Queries) PruneWorkspace(ctx context.Context, workspaceID string, from, to time.Time) (int64, error) {
	below := id.Floor(EventPrefix, to)
	return forget.DrainWindows(ctx, q.db, "events", id.Floor(EventPrefix, from), below, func(ctx context.Context, tx *db.Tx, after, last string) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM events WHERE id > ? AND id <= ? AND id < ? AND workspace_id = ?`, after, last, below, workspaceID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}
