package delivery

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// PruneWorkspace deletes a workspace's delivery attempts and requests that its own, shorter
// retention no longer keeps: those made in [from, to) (from being the server's cutoff, below
// which the server's pruning deleted everything), successes when delivered is set, failures
// otherwise.
func (q *Queries) PruneWorkspace(ctx context.Context, workspaceID string, delivered bool, from, to time.Time) (int64, error) {
	var total int64
	for _, rule := range []struct{ table, prefix, cond string }{
		{"delivery_attempts", AttemptPrefix, map[bool]string{true: "outcome = 'DELIVERED'", false: "outcome <> 'DELIVERED'"}[delivered]},
		{"delivery_requests", RequestPrefix, map[bool]string{true: "delivered = TRUE", false: "delivered = FALSE"}[delivered]},
	} {
		below := id.Floor(rule.prefix, to)
		n, err := forget.DrainWindows(ctx, q.db, rule.table, id.Floor(rule.prefix, from), below, func(ctx context.Context, tx *db.Tx, after, last string) (int64, error) {
			res, err := tx.Exec(ctx, `DELETE FROM `+rule.table+` WHERE id > ? AND id <= ? AND id < ? AND workspace_id = ? AND `+rule.cond,
				after, last, below, workspaceID)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		})
		if total += n; err != nil {
			return total, err
		}
	}
	return total, nil
}
