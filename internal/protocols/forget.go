package protocols

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ForgetEventSamples is the regulation hook that deletes the violation samples of events being
// deleted (a sample is a copy of the event's payload).
func ForgetEventSamples(ctx context.Context, tx *db.Tx, _ string, eventIDs []string) (int64, error) {
	in, args := forget.In("event_id", eventIDs)
	res, err := tx.Exec(ctx, `DELETE FROM violation_samples WHERE `+in, args...) // event ids are unique across workspaces
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ForgetSamples is the regulation step that deletes the violation samples whose payload names a
// subject, whether or not their event is still in the log. Samples are few (three per violation
// kind), so one statement looks at all of a workspace's.
var ForgetSamples = forget.Step{Name: "violation samples", Run: func(ctx context.Context, tx *db.Tx, s forget.Subjects, after string, limit int) (string, int64, int64, error) {
	values := s.All()
	if len(values) == 0 {
		return "", 0, 0, nil
	}
	patterns := forget.JSONLike(values, true)
	res, err := tx.Exec(ctx, `DELETE FROM violation_samples WHERE source_id IN (SELECT source_id FROM violation_keys WHERE workspace_id = ?) AND `+
		forget.AnyLike("LOWER(payload)", len(patterns)), append([]any{s.WorkspaceID}, patterns...)...)
	if err != nil {
		return "", 0, 0, err
	}
	n, _ := res.RowsAffected()
	return "", 0, n, nil
}}
