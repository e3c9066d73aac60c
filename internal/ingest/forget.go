package ingest

import (
	"context"
	"strconv"
	"strings"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ForgetEvents is the regulation step that deletes the subjects' events from the event log: those
// whose userId or anonymousId is a subject's, or whose payload holds a subject's email address.
// It goes through the log by id, a window at a time, and hands each window's events to hooks
// (what other domains derived from them) before deleting them.
func ForgetEvents(hooks ...forget.EventHook) forget.Step {
	return forget.Step{Name: "events", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, after string, limit int) (string, int64, int64, error) {
		last, n, err := forget.Window(ctx, tx, "events", "id", after, limit)
		if err != nil || last == "" {
			return "", n, 0, err
		}
		var conds []string
		args := []any{after, last, s.WorkspaceID}
		for _, c := range []struct {
			column string
			values []string
		}{{"user_id", s.UserIDs}, {"anonymous_id", s.AnonymousIDs}} {
			if len(c.values) > 0 {
				cond, a := forget.In(c.column, c.values)
				conds, args = append(conds, cond), append(args, a...)
			}
		}
		if len(s.Emails) > 0 {
			conds = append(conds, forget.AnyLike("LOWER(payload)", len(s.Emails)))
			args = append(args, forget.JSONLike(s.Emails, true)...)
		}
		if len(conds) == 0 {
			return "", n, 0, nil
		}
		var ids []string
		if err := tx.Select(ctx, &ids, `SELECT id FROM events WHERE id > ? AND id <= ? AND workspace_id = ? AND (`+strings.Join(conds, " OR ")+`)`,
			args...); err != nil || len(ids) == 0 {
			return forget.Next(last, n, limit), n, 0, err
		}
		var deleted int64
		for _, h := range hooks {
			m, err := h(ctx, tx, s.WorkspaceID, ids)
			if err != nil {
				return "", n, deleted, err
			}
			deleted += m
		}
		res, err := tx.Exec(ctx, `DELETE FROM events WHERE id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...)
		if err != nil {
			return "", n, deleted, err
		}
		m, _ := res.RowsAffected()
		return forget.Next(last, n, limit), n, deleted + m, nil
	}}
}

// ForgetIdentities is the regulation step that keeps the subjects' monthly-tracked-user rows
// (usage already reported stays) but replaces their identifiers with salted hashes. An email
// address is an identity where it was sent as the userId.
var ForgetIdentities = forget.Step{Name: "monthly tracked users", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, after string, limit int) (string, int64, int64, error) {
	type item struct{ kind, value string }
	var items []item
	for _, v := range s.UserIDs {
		items = append(items, item{"u", v})
	}
	for _, v := range s.Emails {
		items = append(items, item{"u", v})
	}
	for _, v := range s.AnonymousIDs {
		items = append(items, item{"a", v})
	}
	// The cursor is the position in the list of subjects; a call takes a few of them.
	start := 0
	if after != "" {
		start, _ = strconv.Atoi(after)
	}
	end := min(len(items), start+max(1, limit/50))
	var changed int64
	for _, it := range items[start:end] {
		h := s.Hash(it.kind, it.value)
		for _, q := range []struct {
			query string
			args  []any
		}{
			// A row already kept under the hash (the subject came back) makes the clear one redundant.
			{`DELETE FROM mtu_identities WHERE workspace_id = ? AND kind = ? AND value = ? AND EXISTS (SELECT 1 FROM mtu_identities h
				WHERE h.workspace_id = mtu_identities.workspace_id AND h.month = mtu_identities.month AND h.source_id = mtu_identities.source_id
				AND h.kind = mtu_identities.kind AND h.value = ?)`, []any{s.WorkspaceID, it.kind, it.value, h}},
			{`UPDATE mtu_identities SET value = ? WHERE workspace_id = ? AND kind = ? AND value = ?`, []any{h, s.WorkspaceID, it.kind, it.value}},
		} {
			res, err := tx.Exec(ctx, q.query, q.args...)
			if err != nil {
				return "", 0, changed, err
			}
			n, _ := res.RowsAffected()
			changed += n
		}
		if it.kind == "a" {
			for _, q := range []struct {
				query string
				args  []any
			}{
				{`DELETE FROM mtu_links WHERE workspace_id = ? AND anonymous_id = ? AND EXISTS (SELECT 1 FROM mtu_links h
					WHERE h.workspace_id = mtu_links.workspace_id AND h.month = mtu_links.month AND h.anonymous_id = ?)`, []any{s.WorkspaceID, it.value, h}},
				{`UPDATE mtu_links SET anonymous_id = ? WHERE workspace_id = ? AND anonymous_id = ?`, []any{h, s.WorkspaceID, it.value}},
			} {
				res, err := tx.Exec(ctx, q.query, q.args...)
				if err != nil {
					return "", 0, changed, err
				}
				n, _ := res.RowsAffected()
				changed += n
			}
		}
	}
	if end >= len(items) {
		return "", int64(end - start), changed, nil
	}
	return strconv.Itoa(end), int64(limit), changed, nil
}}
