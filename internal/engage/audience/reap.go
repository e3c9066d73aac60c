package audience

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ReapWorkspace is the reap step of a deleted workspace's audiences, with their members, changes,
// sizes and destinations, and its Engage source's record.
var ReapWorkspace = reap.Step{Name: "audiences", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
	return deleteInTurn(ctx, tx, workspaceID, limit,
		`DELETE FROM audience_members WHERE (audience_id, profile_id) IN (SELECT audience_id, profile_id FROM audience_members WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM audience_changes WHERE id IN (SELECT id FROM audience_changes WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM audience_sizes WHERE (audience_id, at) IN (SELECT s.audience_id, s.at FROM audience_sizes s JOIN audiences a ON a.id = s.audience_id
			WHERE a.workspace_id = ? LIMIT ?)`,
		`DELETE FROM audience_destinations WHERE (audience_id, destination_id) IN
			(SELECT audience_id, destination_id FROM audience_destinations WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM audiences WHERE id IN (SELECT id FROM audiences WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM engage_sources WHERE workspace_id IN (SELECT workspace_id FROM engage_sources WHERE workspace_id = ? LIMIT ?)`)
}}

// ReapSource is the reap step of a deleted source: a workspace's Engage source is made again at
// the next connection of an audience.
var ReapSource = reap.Step{Name: "engage source", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM engage_sources WHERE source_id = ?`, sourceID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}}

// Forget is the regulation step, to run before engage.Forget (which finds the same profiles by
// their identifiers and deletes them), that deletes the subjects' profiles' memberships and their
// recorded changes (so that activation sends nothing more about them). Sizes follow; no exit is
// sent for them.
var Forget = forget.Step{Name: "audience memberships", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, _ string, limit int) (string, int64, int64, error) {
	ids, err := engage.SubjectProfiles(ctx, tx, s)
	if err != nil || len(ids) == 0 {
		return "", 0, 0, err
	}
	in, inArgs := forget.In("profile_id", ids)
	var gone []string
	if err := tx.Select(ctx, &gone, `DELETE FROM audience_members WHERE (audience_id, profile_id) IN
		(SELECT audience_id, profile_id FROM audience_members WHERE workspace_id = ? AND `+in+` LIMIT ?) RETURNING audience_id`,
		append(append([]any{s.WorkspaceID}, inArgs...), limit)...); err != nil {
		return "", 0, 0, err
	}
	count := map[string]int{}
	for _, a := range gone {
		count[a]++
	}
	now := db.Now()
	for _, a := range keys(boolSet(count)) {
		if err := resize(ctx, tx, a, -count[a], now); err != nil {
			return "", 0, 0, err
		}
	}
	deleted := int64(len(gone))
	if deleted < int64(limit) {
		res, err := tx.Exec(ctx, `DELETE FROM audience_changes WHERE id IN (SELECT id FROM audience_changes WHERE workspace_id = ? AND `+in+` LIMIT ?)`,
			append(append([]any{s.WorkspaceID}, inArgs...), limit-int(deleted))...)
		if err != nil {
			return "", 0, deleted, err
		}
		n, _ := res.RowsAffected()
		deleted += n
	}
	if deleted >= int64(limit) {
		return "more", deleted, deleted, nil
	}
	return "", deleted, deleted, nil
}}

func boolSet(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// Prune deletes the changes of membership recorded before cutoff that every destination of their
// audience has been sent, in small transactions (a new connection starts from the current
// members, not from the changes).
func (s *Service) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	floor := id.Floor(ChangePrefix, cutoff)
	return s.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM audience_changes WHERE id IN (SELECT c.id FROM audience_changes c WHERE c.id < ?
			AND NOT EXISTS (SELECT 1 FROM audience_destinations ad WHERE ad.audience_id = c.audience_id AND ad.last_change_id < c.id)
			ORDER BY c.id LIMIT ?)`, floor, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}
