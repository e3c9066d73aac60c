package engage

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// Forget is the regulation step that deletes the profiles of the subjects: every profile holding
// one of their user ids, anonymous ids or emails, with all its identifiers (a profile is one
// person: its other ids are theirs too), traits, computed trait values, events, merges, and the
// profiles merged into it.
// Each call deletes at most limit rows of one profile; its identifiers go last, so that a profile
// half deleted is found again by the next call.
var Forget = forget.Step{Name: "profiles", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, _ string, limit int) (string, int64, int64, error) {
	profile, ids, err := subjectProfile(ctx, tx, s, 1)
	if err != nil || profile == "" {
		return "", 0, 0, err
	}
	in, inArgs := forget.In("profile_id", ids)
	var deleted int64
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM profile_events WHERE (profile_id, event_id) IN (SELECT profile_id, event_id FROM profile_events WHERE ` + in + ` LIMIT ?)`, inArgs},
		{`DELETE FROM profile_traits WHERE (profile_id, name) IN (SELECT profile_id, name FROM profile_traits WHERE ` + in + ` LIMIT ?)`, inArgs},
		{`DELETE FROM computed_trait_values WHERE (computed_trait_id, profile_id) IN
			(SELECT computed_trait_id, profile_id FROM computed_trait_values WHERE ` + in + ` LIMIT ?)`, inArgs},
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

// SubjectProfiles returns the standing profiles of the subjects (those holding one of their
// identifiers) and every profile merged into them: what regulation steps that run before Forget
// (audience memberships) delete their rows of.
func SubjectProfiles(ctx context.Context, tx *db.Tx, s forget.Subjects) ([]string, error) {
	_, ids, err := subjectProfile(ctx, tx, s, 0)
	return ids, err
}

// subjectProfile finds the profiles holding the subjects' identifiers (at most limit of them, 0
// for all): the first one's standing profile, and the ids of the standing profiles with every
// profile merged into them.
func subjectProfile(ctx context.Context, tx *db.Tx, s forget.Subjects, limit int) (string, []string, error) {
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
		return "", nil, nil
	}
	query := `SELECT DISTINCT profile_id FROM profile_identifiers WHERE workspace_id = ? AND (` + where + `)`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	var found []string
	if err := tx.Select(ctx, &found, query, args...); err != nil || len(found) == 0 {
		return "", nil, err
	}
	// The profiles that stand, and every profile merged into them.
	var ids []string
	first := ""
	for _, profile := range found {
		var standing *string
		if err := tx.Get(ctx, &standing, `SELECT merged_into FROM profiles WHERE id = ?`, profile); err != nil && !db.IsNoRows(err) {
			return "", nil, err
		} else if err == nil && standing != nil {
			profile = *standing
		}
		if first == "" {
			first = profile
		}
		var more []string
		if err := tx.Select(ctx, &more, `SELECT id FROM profiles WHERE workspace_id = ? AND (id = ? OR merged_into = ?)`, s.WorkspaceID, profile, profile); err != nil {
			return "", nil, err
		}
		if len(more) == 0 {
			more = []string{profile}
		}
		ids = append(ids, more...)
	}
	return first, ids, nil
}

func inMerged(n int) string { return "merged_profile_id IN (" + db.Placeholders(n) + ")" }
