package privacy

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/reap"
)

// Reap steps: what a deleted source or workspace leaves in the Privacy Portal, a batch at a time.
var (
	ReapSourceFields = reap.Step{Name: "privacy field origins", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
		if _, err := tx.Exec(ctx, `DELETE FROM privacy_source_controls WHERE source_id = ?`, sourceID); err != nil {
			return 0, err
		}
		res, err := tx.Exec(ctx, `DELETE FROM privacy_field_sources WHERE (source_id, path, event_name) IN
			(SELECT source_id, path, event_name FROM privacy_field_sources WHERE source_id = ? LIMIT ?)`, sourceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
	ReapWorkspaceFields = reap.Step{Name: "privacy fields", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM privacy_fields WHERE (workspace_id, path) IN
			(SELECT workspace_id, path FROM privacy_fields WHERE workspace_id = ? LIMIT ?)`, workspaceID, limit)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil || n == int64(limit) {
			return n, err
		}
		// The rest is small: matchers (at most 200 custom), destination controls, the salt.
		for _, q := range []string{`DELETE FROM privacy_matchers WHERE workspace_id = ?`, `DELETE FROM privacy_destination_controls WHERE workspace_id = ?`,
			`DELETE FROM privacy_settings WHERE workspace_id = ?`} {
			if _, err := tx.Exec(ctx, q, workspaceID); err != nil {
				return n, err
			}
		}
		return n, nil
	}}
)
