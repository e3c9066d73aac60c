package delivery

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ForgetEventAttempts is the regulation hook that deletes what delivery kept of events being
// deleted: their retries, their attempts, and the requests that carried them (a request that
// carried other events too goes with them: its body holds the subject's data).
func ForgetEventAttempts(ctx context.Context, tx *db.Tx, workspaceID string, eventIDs []string) (int64, error) {
	in, args := forget.In("event_id", eventIDs)
	var total int64
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`DELETE FROM delivery_retries WHERE ` + in, args},
		{`DELETE FROM delivery_requests WHERE workspace_id = ? AND id IN (SELECT request_id FROM delivery_attempts WHERE ` + in + `)`,
			append([]any{workspaceID}, args...)},
		{`DELETE FROM delivery_attempts WHERE workspace_id = ? AND ` + in, append([]any{workspaceID}, args...)},
	} {
		res, err := tx.Exec(ctx, q.query, q.args...)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// ForgetRequests is the regulation step that deletes the recorded delivery requests whose body or
// response names a subject, whether or not their events are still in the log (requests may be
// kept longer than events).
var ForgetRequests = forget.Step{Name: "delivery requests", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, after string, limit int) (string, int64, int64, error) {
	last, n, err := forget.Window(ctx, tx, "delivery_requests", "id", after, limit)
	if err != nil || last == "" {
		return "", n, 0, err
	}
	values := s.All()
	if len(values) == 0 {
		return "", n, 0, nil
	}
	patterns := forget.JSONLike(values, true)
	args := append([]any{after, last, s.WorkspaceID}, patterns...)
	args = append(args, patterns...)
	res, err := tx.Exec(ctx, `DELETE FROM delivery_requests WHERE id > ? AND id <= ? AND workspace_id = ? AND (`+
		forget.AnyLike("LOWER(body)", len(patterns))+` OR `+forget.AnyLike("LOWER(COALESCE(response_body, ''))", len(patterns))+`)`, args...)
	if err != nil {
		return "", n, 0, err
	}
	m, _ := res.RowsAffected()
	return forget.Next(last, n, limit), n, m, nil
}}
