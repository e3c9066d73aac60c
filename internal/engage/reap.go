package engage

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/reap"
)

// ReapSourceSteps are the reap steps of a deleted source, to run before its events are deleted:
// the rows of profile_events that name its events go, and the traits and identifiers it sent keep
// their values without naming it. Profiles themselves are the workspace's and stay.
func ReapSourceSteps() []reap.Step {
	// The events are found on the read side (they are deleted by a later step).
	events := reap.Step{Name: "profile events",
		Find: func(ctx context.Context, r *db.Queryer, sourceID, after string, limit int) ([]string, error) {
			var ids []string
			err := r.Select(ctx, &ids, `SELECT id FROM events WHERE source_id = ? AND id > ? ORDER BY id LIMIT ?`, sourceID, after, limit)
			return ids, err
		},
		Apply: func(ctx context.Context, tx *db.Tx, _ string, ids []string) (int64, error) {
			res, err := tx.Exec(ctx, `DELETE FROM profile_events WHERE event_id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}}
	forget := reap.Step{Name: "profile traits and identifiers", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
		return reapAll(ctx, tx, sourceID, limit,
			`UPDATE profile_traits SET source_id = NULL WHERE (profile_id, name) IN
				(SELECT profile_id, name FROM profile_traits WHERE source_id = ? LIMIT ?)`,
			`UPDATE profile_identifiers SET source_id = NULL WHERE (workspace_id, type, value) IN
				(SELECT workspace_id, type, value FROM profile_identifiers WHERE source_id = ? LIMIT ?)`)
	}}
	return []reap.Step{events, forget}
}

// ReapWorkspace is the reap step of a deleted workspace's profiles and rules.
var ReapWorkspace = reap.Step{Name: "profiles", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
	return reapAll(ctx, tx, workspaceID, limit,
		`DELETE FROM profile_events WHERE (profile_id, event_id) IN
			(SELECT pe.profile_id, pe.event_id FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ? LIMIT ?)`,
		`DELETE FROM profile_traits WHERE (profile_id, name) IN (SELECT profile_id, name FROM profile_traits WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM profile_identifiers WHERE (workspace_id, type, value) IN
			(SELECT workspace_id, type, value FROM profile_identifiers WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM profile_merges WHERE id IN (SELECT id FROM profile_merges WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM profiles WHERE id IN (SELECT id FROM profiles WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM engage_settings WHERE workspace_id IN (SELECT workspace_id FROM engage_settings WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM profile_graphs WHERE workspace_id IN (SELECT workspace_id FROM profile_graphs WHERE workspace_id = ? LIMIT ?)`)
}}

// reapAll runs statements (each taking the object's id and a limit) in order until limit rows
// changed.
func reapAll(ctx context.Context, tx *db.Tx, objectID string, limit int, statements ...string) (int64, error) {
	var total int64
	for _, q := range statements {
		res, err := tx.Exec(ctx, q, objectID, limit-int(total))
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		total += n
		if err != nil || total >= int64(limit) {
			return total, err
		}
	}
	return total, nil
}

// Prune deletes the rows of profile_events whose events are past the retention period (cutoff
// is the oldest time kept), in small transactions.
func (s *Service) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	floor := id.Floor(ingest.EventPrefix, cutoff)
	return s.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM profile_events WHERE event_id IN
			(SELECT event_id FROM profile_events WHERE event_id < ? ORDER BY event_id LIMIT ?)`, floor, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}
