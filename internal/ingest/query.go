package ingest

import (
	"context"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// StoredEvent is an event row as the debugger shows it.
type StoredEvent struct {
	ID             string   `db:"id"`
	WorkspaceID    string   `db:"workspace_id"`
	SourceID       string   `db:"source_id"`
	MessageID      string   `db:"message_id"`
	Type           Type     `db:"type"`
	EventName      *string  `db:"event_name"`
	UserID         *string  `db:"user_id"`
	AnonymousID    *string  `db:"anonymous_id"`
	Status         string   `db:"status"`
	DiscardReason  *Reason  `db:"discard_reason"`
	DiscardMessage *string  `db:"discard_message"`
	ReceivedAt     db.Time  `db:"received_at"`
	Timestamp      *db.Time `db:"timestamp"`
	Payload        string   `db:"payload"`
	// Violations is the JSON list of the tracking-plan rules the event broke; nil when none.
	Violations *string `db:"violations"`
	// ReplayedAt is when a blocked event was sent again as an accepted one.
	ReplayedAt *db.Time `db:"replayed_at"`
}

// Queries answers the GraphQL API's questions about events and usage, checking the viewer's rights.
type Queries struct {
	db         *db.DB
	sources    *source.Service
	workspaces *workspace.Service
}

// NewQueries returns the query side.
func NewQueries(d *db.DB, s *source.Service, w *workspace.Service) *Queries {
	return &Queries{db: d, sources: s, workspaces: w}
}

// EventFilter narrows the debugger's list.
type EventFilter struct {
	Type   Type
	Status string
	Search string
	// Name is an event's name (track) or a page's or screen's.
	Name *string
}

// visibleWhere is the condition (on events) for the events the viewer may see in the workspace of
// a: those of the sources they see.
func visibleWhere(a *workspace.Access) (string, []any) {
	where, args := source.VisibleIDWhere(a, "events.source_id")
	return "events.workspace_id = ? AND " + where, append([]any{a.WorkspaceID}, args...)
}

// RecentEvents pages through a source's events, newest first; the viewer must see the source.
func (q *Queries) RecentEvents(ctx context.Context, src *source.Source, f EventFilter, args relay.Args, count bool) (relay.Page[StoredEvent], error) {
	a, _, err := q.sources.Rights(ctx, src)
	if err != nil {
		return relay.Page[StoredEvent]{}, err
	}
	where, qargs := visibleWhere(a)
	where += " AND source_id = ?"
	qargs = append(qargs, src.ID)
	if f.Type != "" {
		where += " AND type = ?"
		qargs = append(qargs, f.Type)
	}
	if f.Status != "" {
		where += " AND status = ?"
		qargs = append(qargs, f.Status)
	}
	if s := strings.TrimSpace(f.Search); s != "" {
		where += " AND (event_name = ? OR user_id = ? OR anonymous_id = ? OR message_id = ?)"
		qargs = append(qargs, s, s, s, s)
	}
	return relay.Query(ctx, q.db.Reader(), relay.Spec[StoredEvent]{
		Select: "SELECT * FROM events", Where: where, Args: qargs,
		SortColumn: "id", Desc: true, Count: count,
		ID: func(e StoredEvent) string { return e.ID }, SortKey: func(e StoredEvent) any { return e.ID },
	}, args)
}

// EventsIn pages through the events the viewer sees in the workspace of a whose ids the subquery
// ids (with its arguments) selects, newest first: another domain's index into the log, such as the
// events resolved to a profile.
func (q *Queries) EventsIn(ctx context.Context, a *workspace.Access, ids string, idArgs []any, f EventFilter, args relay.Args, count bool) (relay.Page[StoredEvent], error) {
	where, qargs := visibleWhere(a)
	where += " AND events.id IN (" + ids + ")"
	qargs = append(qargs, idArgs...)
	if f.Type != "" {
		where += " AND type = ?"
		qargs = append(qargs, f.Type)
	}
	if f.Name != nil {
		where += " AND event_name = ?"
		qargs = append(qargs, *f.Name)
	}
	return relay.Query(ctx, q.db.Reader(), relay.Spec[StoredEvent]{
		Select: "SELECT * FROM events", Where: where, Args: qargs,
		SortColumn: "id", Desc: true, Count: count,
		ID: func(e StoredEvent) string { return e.ID }, SortKey: func(e StoredEvent) any { return e.ID },
	}, args)
}

// Event returns one event the viewer may see (nil otherwise).
func (q *Queries) Event(ctx context.Context, eventID string) (*StoredEvent, error) {
	a, err := q.workspaces.AccessVia(ctx, q.db.Reader(), `SELECT workspace_id FROM events WHERE id = ?`, eventID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	m, err := q.EventsByIDs(ctx, a, []string{eventID})
	if err != nil {
		return nil, err
	}
	if e, ok := m[eventID]; ok {
		return &e, nil
	}
	return nil, nil
}

// EventsByIDs loads the events with the given ids that the viewer sees in the workspace of a, for
// dataloaders.
func (q *Queries) EventsByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]StoredEvent, error) {
	where, args := visibleWhere(a)
	var rows []StoredEvent
	if err := q.db.Select(ctx, &rows, `SELECT * FROM events WHERE id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string]StoredEvent, len(rows))
	for _, e := range rows {
		out[e.ID] = e
	}
	return out, nil
}

// Figures are a source's ingest counts over a period.
type Figures struct {
	Received, Accepted, Discarded, Blocked int
	ByReason                               []ReasonCount
}

// ReasonCount is how many events were discarded for one reason.
type ReasonCount struct {
	Reason Reason `db:"discard_reason"`
	Count  int    `db:"n"`
}

// Stats returns a source's figures over the last hour and the last 24 hours.
func (q *Queries) Stats(ctx context.Context, src *source.Source) (hour, day Figures, err error) {
	a, _, err := q.sources.Rights(ctx, src)
	if err != nil {
		return hour, day, err
	}
	visible, vargs := visibleWhere(a)
	now := time.Now()
	var rows []struct {
		Recent int     `db:"recent"`
		Status string  `db:"status"`
		Reason *Reason `db:"discard_reason"`
		N      int     `db:"n"`
	}
	// Event ids start with the time they were stored, so a time range is an id range: the index on
	// (source_id, id) answers this without reading the source's older events.
	hourFloor, dayFloor := id.Floor(EventPrefix, now.Add(-time.Hour)), id.Floor(EventPrefix, now.Add(-24*time.Hour))
	err = q.db.Select(ctx, &rows, `SELECT CASE WHEN id >= ? THEN 1 ELSE 0 END AS recent, status, discard_reason, COUNT(*) AS n
		FROM events WHERE source_id = ? AND id >= ? AND `+visible+`
		GROUP BY recent, status, discard_reason`, append([]any{hourFloor, src.ID, dayFloor}, vargs...)...)
	if err != nil {
		return hour, day, err
	}
	add := func(f *Figures, status string, reason *Reason, n int) {
		f.Received += n
		if status == Accepted {
			f.Accepted += n
			return
		}
		if status == Blocked {
			f.Blocked += n
			return
		}
		f.Discarded += n
		for i := range f.ByReason {
			if reason != nil && f.ByReason[i].Reason == *reason {
				f.ByReason[i].Count += n
				return
			}
		}
		if reason != nil {
			f.ByReason = append(f.ByReason, ReasonCount{Reason: *reason, Count: n})
		}
	}
	for _, r := range rows {
		add(&day, r.Status, r.Reason, r.N)
		if r.Recent == 1 {
			add(&hour, r.Status, r.Reason, r.N)
		}
	}
	return hour, day, nil
}

// Usage is a workspace's usage in a month.
type Usage struct {
	Month          string
	APICalls, MTUs int
	APICallsLimit  *int
	MTUsLimit      *int
	BySource       []SourceUsage
	ByDay          []DailyUsage
}

// SourceUsage is one source's part of a month's usage.
type SourceUsage struct {
	WorkspaceID string `db:"-"`
	SourceID    string `db:"source_id"`
	APICalls    int    `db:"api_calls"`
	MTUs        int    `db:"mtus"`
}

// DailyUsage is one day's part.
type DailyUsage struct {
	Day      string `db:"day"`
	APICalls int    `db:"api_calls"`
	NewMTUs  int    `db:"new_mtus"`
}

// mtuSet is the identities that count as MTUs: userIds, and anonymousIds never seen with a userId.
const mtuSet = `SELECT source_id, kind, value, first_day FROM mtu_identities i
	WHERE i.workspace_id = ? AND i.month = ?
	AND NOT (i.kind = 'a' AND EXISTS (SELECT 1 FROM mtu_links l WHERE l.workspace_id = i.workspace_id AND l.month = i.month AND l.anonymous_id = i.value))`

// Usage returns a workspace's usage in month (YYYY-MM); everyone but MINIMAL members.
func (q *Queries) Usage(ctx context.Context, workspaceID, month string) (*Usage, error) {
	a, err := q.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanReadAll() {
		return nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to see its usage")
	}
	if _, err := time.Parse("2006-01", month); err != nil || len(month) != 7 {
		return nil, apperr.Invalid("month", "month must be a calendar month such as %s", time.Now().UTC().Format("2006-01"))
	}
	return q.InternalUsage(ctx, workspaceID, month)
}

// InternalUsage computes a workspace's usage without any viewer: for the live publisher, which
// authorises each subscriber itself, and for Usage once it has; never for the API.
func (q *Queries) InternalUsage(ctx context.Context, workspaceID, month string) (*Usage, error) {
	ws, err := q.workspaces.InternalByIDs(ctx, []string{workspaceID})
	if err != nil {
		return nil, err
	}
	w, ok := ws[workspaceID]
	if !ok {
		return nil, apperr.NotFoundf("workspace not found")
	}
	plan := w.Plan.Details()
	u := &Usage{Month: month, APICallsLimit: plan.APICallsPerMonth, MTUsLimit: plan.MTUsPerMonth, BySource: []SourceUsage{}, ByDay: []DailyUsage{}}
	r := q.db.Reader()
	if err := r.Get(ctx, &u.APICalls, `SELECT COALESCE(SUM(api_calls), 0) FROM usage_daily WHERE workspace_id = ? AND day LIKE ?`, workspaceID, month+"-%"); err != nil {
		return nil, err
	}
	if err := r.Get(ctx, &u.MTUs, `SELECT COUNT(*) FROM (SELECT DISTINCT kind, value FROM (`+mtuSet+`) m) d`, workspaceID, month); err != nil {
		return nil, err
	}
	if err := r.Select(ctx, &u.BySource, `SELECT c.source_id, c.api_calls, COALESCE(m.mtus, 0) AS mtus
		FROM (SELECT source_id, SUM(api_calls) AS api_calls FROM usage_daily WHERE workspace_id = ? AND day LIKE ? GROUP BY source_id) c
		LEFT JOIN (SELECT source_id, COUNT(*) AS mtus FROM (`+mtuSet+`) m GROUP BY source_id) m ON m.source_id = c.source_id
		ORDER BY c.api_calls DESC, c.source_id`, workspaceID, month+"-%", workspaceID, month); err != nil {
		return nil, err
	}
	for i := range u.BySource {
		u.BySource[i].WorkspaceID = workspaceID
	}
	if err := r.Select(ctx, &u.ByDay, `SELECT c.day, c.api_calls, COALESCE(n.new_mtus, 0) AS new_mtus
		FROM (SELECT day, SUM(api_calls) AS api_calls FROM usage_daily WHERE workspace_id = ? AND day LIKE ? GROUP BY day) c
		LEFT JOIN (SELECT first_day, COUNT(*) AS new_mtus FROM (SELECT kind, value, MIN(first_day) AS first_day FROM (`+mtuSet+`) m GROUP BY kind, value) f GROUP BY first_day) n
		ON n.first_day = c.day ORDER BY c.day`, workspaceID, month+"-%", workspaceID, month); err != nil {
		return nil, err
	}
	return u, nil
}

// Prune deletes events received before cutoff, a chunk at a time so that the writer is not held
// for long, and returns how many went.
func (q *Queries) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	// Ids sort by time: everything below the cutoff's floor id is older, and the primary key
	// finds it without a scan. Small transactions keep the writer free for the tracking API.
	// They are found on the read side: on PostgreSQL a scan that starts where the last delete
	// ended walks past its dead rows, which must not happen inside the writer.
	floor := id.Floor(EventPrefix, cutoff)
	return q.db.DrainFound(ctx, func(ctx context.Context, r *db.Queryer, after string, limit int) ([]string, error) {
		var ids []string
		err := r.Select(ctx, &ids, `SELECT id FROM events WHERE id > ? AND id < ? ORDER BY id LIMIT ?`, after, floor, limit)
		return ids, err
	}, func(ctx context.Context, tx *db.Tx, ids []string) (int64, error) {
		return reapExec(ctx, tx, `DELETE FROM events WHERE id < ? AND id IN (`+db.Placeholders(len(ids))+`)`, append([]any{floor}, db.Args(ids)...)...)
	})
}

// Stored is the debugger's view of an event just committed, for live views.
func Stored(e *Event) *StoredEvent {
	s := &StoredEvent{ID: e.ID, WorkspaceID: e.WorkspaceID, SourceID: e.SourceID, MessageID: e.MessageID, Type: e.Type,
		EventName: e.EventName, UserID: e.UserID, AnonymousID: e.AnonymousID, Status: e.Status,
		ReceivedAt: db.Time{Time: e.ReceivedAt.UTC().Truncate(time.Microsecond)}, Payload: string(e.Payload)}
	if e.Status == Discarded {
		r, m := e.Reason, e.Message
		s.DiscardReason, s.DiscardMessage = &r, &m
	}
	if e.Timestamp != nil {
		s.Timestamp = &db.Time{Time: e.Timestamp.UTC().Truncate(time.Microsecond)}
	}
	s.Violations = e.violations
	return s
}

// Reap steps: the events of a deleted source (their delivery retries go with them), and a deleted
// workspace's usage counters.
var (
	ReapSourceEvents = reap.Step{Name: "events",
		Find: func(ctx context.Context, r *db.Queryer, sourceID, after string, limit int) ([]string, error) {
			var ids []string
			err := r.Select(ctx, &ids, `SELECT id FROM events WHERE source_id = ? AND id > ? ORDER BY id LIMIT ?`, sourceID, after, limit)
			return ids, err
		},
		Apply: func(ctx context.Context, tx *db.Tx, sourceID string, ids []string) (int64, error) {
			return reapExec(ctx, tx, `DELETE FROM events WHERE source_id = ? AND id IN (`+db.Placeholders(len(ids))+`)`,
				append([]any{sourceID}, db.Args(ids)...)...)
		}}
	ReapWorkspaceUsage = reap.Step{Name: "usage", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
		var total int64
		for _, q := range []string{
			`DELETE FROM mtu_identities WHERE (workspace_id, month, source_id, kind, value) IN
				(SELECT workspace_id, month, source_id, kind, value FROM mtu_identities WHERE workspace_id = ? LIMIT ?)`,
			`DELETE FROM mtu_links WHERE (workspace_id, month, anonymous_id) IN
				(SELECT workspace_id, month, anonymous_id FROM mtu_links WHERE workspace_id = ? LIMIT ?)`,
			`DELETE FROM usage_daily WHERE (workspace_id, source_id, day) IN
				(SELECT workspace_id, source_id, day FROM usage_daily WHERE workspace_id = ? LIMIT ?)`,
		} {
			n, err := reapExec(ctx, tx, q, workspaceID, limit-int(total))
			total += n
			if err != nil || total >= int64(limit) {
				return total, err
			}
		}
		return total, nil
	}}
)

func reapExec(ctx context.Context, tx *db.Tx, q string, args ...any) (int64, error) {
	res, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
