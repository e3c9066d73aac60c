package delivery

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// StoredAttempt is an attempt as Event Delivery shows it, with the request that carried it (which
// may have carried other events too) and its response, from the view delivery_attempt_records.
type StoredAttempt struct {
	ID               string  `db:"id"`
	WorkspaceID      string  `db:"workspace_id"`
	DestinationID    string  `db:"destination_id"`
	EventID          string  `db:"event_id"`
	SourceID         string  `db:"source_id"`
	Attempt          int     `db:"attempt"`
	Outcome          string  `db:"outcome"`
	ErrorType        *string `db:"error_type"`
	ErrorMessage     *string `db:"error_message"`
	RequestID        *string `db:"request_id"`
	RequestMethod    string  `db:"request_method"`
	RequestURL       string  `db:"request_url"`
	RequestHeaders   string  `db:"request_headers"`
	RequestBody      string  `db:"request_body"`
	RequestRedirects string  `db:"request_redirects"`
	RequestEvents    int     `db:"request_events"`
	ResponseStatus   *int    `db:"response_status"`
	ResponseHeaders  *string `db:"response_headers"`
	ResponseBody     *string `db:"response_body"`
	LatencyMS        float64 `db:"latency_ms"`
	EndToEndMS       float64 `db:"end_to_end_ms"`
	CreatedAt        db.Time `db:"created_at"`
}

// Queries answers Event Delivery's questions and re-sends failed events, checking rights.
type Queries struct {
	db         *db.DB
	dests      *destination.Service
	workspaces *workspace.Service
	engine     *Engine
}

// NewQueries returns the query side.
func NewQueries(d *db.DB, dests *destination.Service, w *workspace.Service, e *Engine) *Queries {
	return &Queries{db: d, dests: dests, workspaces: w, engine: e}
}

// AttemptFilter narrows the attempts list.
type AttemptFilter struct {
	Outcome, ErrorType, EventID string
}

// visibleWhere is the condition (on delivery_attempts) for the attempts the viewer may see in the
// workspace of a: to a destination they see, of an event of a source they see. An attempt carries
// the event as it was sent, so it is no more visible than the event.
func visibleWhere(a *workspace.Access) (string, []any) {
	dst, dstArgs := destination.VisibleWhere(a)
	src, srcArgs := source.VisibleIDWhere(a, "delivery_attempts.source_id")
	where := "delivery_attempts.workspace_id = ? AND EXISTS (SELECT 1 FROM destinations d WHERE d.id = delivery_attempts.destination_id AND " + dst + ") AND " + src
	return where, append(append([]any{a.WorkspaceID}, dstArgs...), srcArgs...)
}

// access returns the viewer's access to a destination's workspace, NOT_FOUND when they may not
// see the destination.
func (q *Queries) access(ctx context.Context, destinationID string) (*workspace.Access, error) {
	d, err := q.dests.Get(ctx, destinationID)
	if err != nil {
		return nil, err
	}
	return q.workspaces.Access(ctx, d.WorkspaceID)
}

// Attempts pages through a destination's attempts that the viewer may see, newest first.
func (q *Queries) Attempts(ctx context.Context, d *destination.Destination, f AttemptFilter, args relay.Args, count bool) (relay.Page[StoredAttempt], error) {
	a, err := q.access(ctx, d.ID)
	if err != nil {
		return relay.Page[StoredAttempt]{}, err
	}
	where, qargs := visibleWhere(a)
	where += " AND destination_id = ?"
	qargs = append(qargs, d.ID)
	if f.Outcome != "" {
		where += " AND outcome = ?"
		qargs = append(qargs, f.Outcome)
	}
	if f.ErrorType != "" {
		where += " AND error_type = ?"
		qargs = append(qargs, f.ErrorType)
	}
	if f.EventID != "" {
		where += " AND event_id = ?"
		qargs = append(qargs, f.EventID)
	}
	return relay.Query(ctx, q.db.Reader(), relay.Spec[StoredAttempt]{
		Select: "SELECT * FROM delivery_attempt_records delivery_attempts", Where: where, Args: qargs, SortColumn: "id", Desc: true, Count: count,
		ID: func(a StoredAttempt) string { return a.ID }, SortKey: func(a StoredAttempt) any { return a.ID },
	}, args)
}

// Attempt returns one attempt the viewer may see (nil otherwise).
func (q *Queries) Attempt(ctx context.Context, attemptID string) (*StoredAttempt, error) {
	a, err := q.workspaces.AccessVia(ctx, q.db.Reader(), `SELECT workspace_id FROM delivery_attempts WHERE id = ?`, attemptID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	where, args := visibleWhere(a)
	var att StoredAttempt
	err = q.db.Get(ctx, &att, `SELECT * FROM delivery_attempt_records delivery_attempts WHERE id = ? AND `+where, append([]any{attemptID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &att, nil
}

// Stats are a destination's delivery figures over a period.
type Stats struct {
	Since, Until                                time.Time
	Delivered, NotDelivered, Retrying, Attempts int
	P95EndToEndMS                               *float64
}

// Stats counts a destination's deliveries between since and until: events delivered, events that
// failed for good, events waiting for a retry, and the 95th percentile of the time from arrival
// to delivery. Only the events of sources the viewer sees count.
func (q *Queries) Stats(ctx context.Context, d *destination.Destination, since, until time.Time) (*Stats, error) {
	a, err := q.access(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	visible, vargs := visibleWhere(a)
	retryVisible, rargs := source.VisibleIDWhere(a, "e.source_id")
	st := &Stats{Since: since, Until: until}
	r := q.db.Reader()
	lo, hi := db.Time{Time: since}, db.Time{Time: until}
	var rows []struct {
		Outcome string `db:"outcome"`
		N       int    `db:"n"`
	}
	if err := r.Select(ctx, &rows, `SELECT outcome, COUNT(*) AS n FROM delivery_attempts
		WHERE destination_id = ? AND created_at >= ? AND created_at < ? AND `+visible+` GROUP BY outcome`, append([]any{d.ID, lo, hi}, vargs...)...); err != nil {
		return nil, err
	}
	for _, row := range rows {
		st.Attempts += row.N
		switch row.Outcome {
		case Delivered:
			st.Delivered = row.N
		case Failed:
			st.NotDelivered = row.N
		}
	}
	if err := r.Get(ctx, &st.Retrying, `SELECT COUNT(*) FROM delivery_retries r WHERE r.destination_id = ?
		AND EXISTS (SELECT 1 FROM events e WHERE e.id = r.event_id AND `+retryVisible+`)`, append([]any{d.ID}, rargs...)...); err != nil {
		return nil, err
	}
	if st.Delivered > 0 {
		var p float64
		offset := int(float64(st.Delivered-1) * 0.95)
		if err := r.Get(ctx, &p, `SELECT end_to_end_ms FROM delivery_attempts WHERE destination_id = ? AND outcome = ? AND created_at >= ? AND created_at < ?
			AND `+visible+` ORDER BY end_to_end_ms LIMIT 1 OFFSET ?`, append(append([]any{d.ID, Delivered, lo, hi}, vargs...), offset)...); err != nil {
			return nil, err
		}
		st.P95EndToEndMS = &p
	}
	return st, nil
}

// RetryFilter picks the failed events to send again.
type RetryFilter struct {
	EventID      string
	Since, Until *time.Time
	ErrorType    string
}

// Retry queues the failed events of one destination that match f for a new round of attempts,
// to that destination only; owners and admins. It returns how many were queued.
func (q *Queries) Retry(ctx context.Context, destinationID string, f RetryFilter) (int, apperr.UserErrors, error) {
	d, err := q.dests.Get(ctx, destinationID)
	if err != nil {
		return 0, nil, err
	}
	a, err := q.workspaces.Access(ctx, d.WorkspaceID)
	if err != nil {
		return 0, nil, err
	}
	if !a.CanAdminister() {
		return 0, nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to re-send events")
	}
	var errs apperr.UserErrors
	if f.EventID == "" && f.Since == nil && f.Until == nil && f.ErrorType == "" {
		errs.Add("eventId", apperr.Required, "name the events to re-send: eventId, a time range (since, until) or an errorType")
		return 0, errs, nil
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		errs.Add("until", apperr.InvalidValue, "until must be after since")
		return 0, errs, nil
	}
	// Failed events that were not delivered since (a later retry may have succeeded).
	where, qargs := `a.destination_id = ? AND a.outcome = ? AND NOT EXISTS (SELECT 1 FROM delivery_attempts later
		WHERE later.destination_id = a.destination_id AND later.event_id = a.event_id AND later.outcome = 'DELIVERED' AND later.id > a.id)`, []any{d.ID, Failed}
	if f.EventID != "" {
		where += " AND a.event_id = ?"
		qargs = append(qargs, f.EventID)
	}
	if f.Since != nil {
		where += " AND a.created_at >= ?"
		qargs = append(qargs, db.Time{Time: *f.Since})
	}
	if f.Until != nil {
		where += " AND a.created_at < ?"
		qargs = append(qargs, db.Time{Time: *f.Until})
	}
	if f.ErrorType != "" {
		where += " AND a.error_type = ?"
		qargs = append(qargs, f.ErrorType)
	}
	var n int64
	err = q.db.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		res, err := tx.Exec(ctx, `INSERT INTO delivery_retries (destination_id, event_id, attempts, first_attempt_at, next_attempt_at)
			SELECT DISTINCT a.destination_id, a.event_id, 0, ?, ? FROM delivery_attempts a JOIN events e ON e.id = a.event_id
			WHERE `+where+` ON CONFLICT (destination_id, event_id) DO NOTHING`, append([]any{now, now}, qargs...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if q.engine != nil {
		q.engine.Wake(d.ID)
	}
	return int(n), nil, nil
}

// Prune deletes attempts and requests past their retention: successes after keepDelivered, the
// others after keepFailed.
func (q *Queries) Prune(ctx context.Context, now time.Time, keepDelivered, keepFailed time.Duration) (int64, error) {
	// Ids sort by time: what is older than a cutoff is below its floor id, a key range, and
	// db.Drain deletes it in transactions that hold the writer a few milliseconds each.
	var total int64
	for _, rule := range []struct {
		table, prefix, cond string
		age                 time.Duration
	}{
		{"delivery_attempts", AttemptPrefix, "outcome = 'DELIVERED'", keepDelivered},
		{"delivery_attempts", AttemptPrefix, "outcome <> 'DELIVERED'", keepFailed},
		// Requests whose events were all delivered go with the successes, the others with the failures.
		{"delivery_requests", RequestPrefix, "delivered = TRUE", keepDelivered},
		{"delivery_requests", RequestPrefix, "delivered = FALSE", keepFailed},
	} {
		below := id.Floor(rule.prefix, now.Add(-rule.age))
		n, err := q.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			res, err := tx.Exec(ctx, `DELETE FROM `+rule.table+` WHERE id IN (SELECT id FROM `+rule.table+` WHERE id < ? AND `+rule.cond+`
				ORDER BY id LIMIT ?)`, below, limit)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Reap steps: the delivery attempts of a deleted source, and those of a deleted workspace's
// destinations (its destinations themselves go with the workspace's row).
var (
	ReapSourceAttempts = reap.Step{Name: "delivery attempts", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE source_id = ? ORDER BY id LIMIT ?)`, sourceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
	ReapWorkspaceAttempts = reap.Step{Name: "delivery attempts", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM delivery_attempts WHERE id IN (SELECT a.id FROM delivery_attempts a
			JOIN destinations d ON d.id = a.destination_id WHERE d.workspace_id = ? LIMIT ?)`, workspaceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
	// The requests that carried a deleted source's events (a request carries one source's), and
	// those of a deleted workspace's destinations: their bodies hold the events.
	ReapSourceRequests = reap.Step{Name: "delivery requests", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM delivery_requests WHERE id IN (SELECT id FROM delivery_requests WHERE source_id = ? ORDER BY id LIMIT ?)`, sourceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
	ReapWorkspaceRequests = reap.Step{Name: "delivery requests", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM delivery_requests WHERE id IN (SELECT r.id FROM delivery_requests r
			JOIN destinations d ON d.id = r.destination_id WHERE d.workspace_id = ? LIMIT ?)`, workspaceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
)
