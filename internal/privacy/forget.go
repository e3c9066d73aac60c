package privacy

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ForgetEventSamples is the regulation hook that forgets the sample values that events being
// deleted gave to the inbox and inventory: the field stays (its path, counts and classification
// are no one's personal data), its sample becomes null until another event brings one.
func ForgetEventSamples(ctx context.Context, tx *db.Tx, workspaceID string, eventIDs []string) (int64, error) {
	in, args := forget.In("sample_event_id", eventIDs)
	res, err := tx.Exec(ctx, `UPDATE privacy_fields SET sample = 'null', sample_event_id = NULL WHERE workspace_id = ? AND `+in,
		append([]any{workspaceID}, args...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
