package engage

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// Forget is the regulation step that deletes the profiles of the subjects: every profile holding
// one of their user ids, anonymous ids or emails, with all its identifiers (a profile is one
// person: its other ids are theirs too), traits, events, merges, and the profiles merged into it.
// Each call deletes at most limit rows of one profile; its identifiers go last, so that a profile
// half deleted is found again by the next call.
var Forget = forget.Step{Name: "profiles", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, _ string, limit int) (string, int64, int64, error) {
	var where string
	args := []any{s.WorkspaceID}
	for _, k := range []struct {
		typ, column string
		values      []string
	}{{"user_id", "value", s.UserIDs}, {"anonymous_id", "value", s.AnonymousIDs}, {"email", "LOWER(value)", s.Emails}} { // emails as sent, subjects' lower-case
		if len(k.values) == 0 {
			continue
		}
		if where != "" {
			where += " OR "
		}
		where += "(type = ? AND " + k.column + " IN (" + db.Placeholders(len(k.values)) + "))"
		args = append(append(args, k.typ), db.Args(k.values)...)
	}
	if where == "" {
		return "", 0, 0, nil
	}
	var found []string
	if err := tx.Select(ctx, &found, `SELECT profile_id FROM profile_identifiers WHERE workspace_id = ? AND (`+where+`) LIMIT 1`, args...); err != nil || len(found) == 0 {
		return "", 0, 0, err
	}
	// The profile that stands, and every profile merged into it.
	profile := found[0]
	var standing *string
	if err := tx.Get(ctx, &standing, `SELECT merged_into FROM profiles WHERE id = ?`, profile); err == nil && standing != nil {
		profile = *standing
	}
	var ids []string
	if err := tx.Select(ctx, &ids, `SELECT id FROM profiles WHERE workspace_id = ? AND (id = ? OR merged_into = ?)`, s.WorkspaceID, profile, profile); err != nil {
		return "", 0, 0, err
	}
	if len(ids) == 0 {
		ids = []string{profile}
	}
	in, inArgs := forget.In("profile_id", ids)
	var deleted int64
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM profile_events WHERE (profile_id, event_id) IN (SELECT profile_id, event_id FROM profile_events WHERE ` + in + ` LIMIT ?)`, inArgs},
		{`DELETE FROM profile_traits WHERE (profile_id, name) IN (SELECT profile_id, name FROM profile_traits WHERE ` + in + ` LIMIT ?)`, inArgs},
		{`DELETE FROM profile_merges WHERE id IN (SELECT id FROM profile_merges WHERE workspace_id = ? AND (` + in + ` OR ` + inMerged(len(ids)) + `) LIMIT ?)`,
			append(append([]any{s.WorkspaceID}, inArgs...), db.Args(ids)...)},
		{`DELETE FROM profiles WHERE id IN (SELECT id FROM profiles WHERE workspace_id = ? AND merged_into = ? LIMIT ?)`, []any{s.WorkspaceID, profile}},
		{`DELETE FROM profile_identifiers WHERE (workspace_id, type, value) IN
			(SELECT workspace_id, type, value FROM profile_identifiers WHERE workspace_id = ? AND profile_id = ? LIMIT ?)`, []any{s.WorkspaceID, profile}},
		{`DELETE FROM profiles WHERE id IN (SELECT id FROM profiles WHERE id = ? LIMIT ?)`, []any{profile}},
	} {
		res, err := tx.Exec(ctx, q.sql, append(q.args, limit-int(deleted))...)
		if err != nil {
			return "", 0, deleted, err
		}
		n, _ := res.RowsAffected()
		if deleted += n; deleted >= int64(limit) {
			break
		}
	}
	// Identity resolution on PostgreSQL reads the graph before its transaction: moving the
	// version makes it read again what this deleted.
	if _, err := tx.Exec(ctx, `UPDATE profile_graphs SET version = version + 1 WHERE workspace_id = ?`, s.WorkspaceID); err != nil {
		return "", 0, deleted, err
	}
	// More may be left of this profile, or of another subject's: go on until nothing is found.
	return "more", deleted, deleted, nil
}}

func inMerged(n int) string { return "merged_profile_id IN (" + db.Placeholders(n) + ")" }
