package engage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Identity resolution follows the event log as a delivery lane does: from a cursor stored in
// log_followers, in id order (the tracking API gives ids under one lock, each transaction's above
// every committed one, so id order is commit order on PostgreSQL too, across replicas: an event
// is never seen before one with a smaller id, and the cursor never passes one still to come).
// The listener of commits only wakes it; nothing waits in memory, so a backlog costs nothing but
// time, and a restart (or a kill) resumes from the cursor.
//
// Each transaction moves the cursor (compare-and-set on its stored value) together with the
// profiles' writes: an event's effect commits exactly once, and a replica whose lease lapsed
// while another took over fails its next transaction instead of resolving twice. Events that
// change no profile (other workspaces', none of Engage's identifiers) move the cursor in memory
// only; it is stored with the next transaction or every followerSaveEvery, and reading them again
// after a crash changes nothing.
//
// The workspaces followed are those of engage_workspaces. A workspace that gains Engage joins at
// the cursor of that moment: the follower resolves its events after it, and its backfill its
// stored events up to it, in transactions of perTx events that move the backfill's own
// position with their writes.

const (
	followerName = "engage.identity"
	// followerPoll is how often the follower looks at the log without being woken: for the events
	// other replicas commit (their listeners wake their own processes only).
	followerPoll = 200 * time.Millisecond
	// followerRetry is how long the follower waits after a failure before it tries again.
	followerRetry = time.Second
	// followerSaveEvery is how often a cursor moved over events that changed no profile is stored.
	followerSaveEvery = 2 * time.Second
	// membersEvery is how often the follower looks for workspaces that gained or lost Engage.
	membersEvery = time.Second
	// backfillEvery is the least often a backfill goes on while the follower has a backlog of
	// its own: the log's new events come first.
	backfillEvery = 500 * time.Millisecond
	// backfillLogEvery is how often a running backfill logs its progress.
	backfillLogEvery = 10 * time.Second
)

// errCursorMoved is what a transaction meets when the stored cursor is not where this process
// left it: another replica resolved meanwhile. The follower reads its cursor again.
var errCursorMoved = errors.New("engage: the follower's cursor moved in another process")

// follower is identity resolution's follower of the event log. Its loop runs on one goroutine;
// only wake and stop are touched from others.
type follower struct {
	s    *Service
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once

	loaded      bool   // the cursor was read since the follower started leading
	failed      bool   // the last round failed
	stored      string // the cursor as stored
	pos         string // read up to here: stored, or ahead over events that changed nothing
	savedAt     time.Time
	checkedAt   time.Time // members last looked at
	members     int       // workspaces followed, as last counted
	backfillAt  time.Time
	backfillLog map[string]time.Time
	// membersChanged is set from other goroutines (PlanChanged): look at the members now.
	membersChanged atomic.Bool
	// membersEvery is how often the members are looked at otherwise (membersEvery; tests change it).
	membersEvery time.Duration
}

func newFollower(s *Service) *follower {
	return &follower{s: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		backfillLog: map[string]time.Time{}, membersEvery: membersEvery}
}

// Listener is the ingest listener of commits that wakes identity resolution's follower of the
// log. It carries no events: the follower reads them from the log.
func (s *Service) Listener() ingest.Listener {
	return ingest.Listener{Hear: func(c ingest.Committed) {
		for _, e := range c.Events {
			if e.Status == ingest.Accepted {
				s.Wake()
				return
			}
		}
	}}
}

// PlanChanged tells Engage that a workspace's plan changed in this process: the follower looks
// for workspaces that gained or lost Engage at once instead of within membersEvery, and the
// workspace's cached state is read again. (Another replica's change is seen within membersEvery.)
func (s *Service) PlanChanged(workspaceID string) {
	s.states.forget(workspaceID)
	s.follow.membersChanged.Store(true)
	s.Wake()
}

// Wake makes the follower look at the log now (new events, or this replica started leading).
func (s *Service) Wake() {
	select {
	case s.follow.wake <- struct{}{}:
	default:
	}
}

// Start runs the follower of the log until Close. With Gate set, it resolves only while Gate
// says so (the replica that leads); the others wait, and the one that takes over resumes from the
// stored cursor.
func (s *Service) Start() {
	s.follow.once.Do(func() { go s.follow.run() })
}

// Close stops the follower (a query or transaction in progress is cancelled, or commits) and
// stores how far it read. What it did not reach stays in the log for the next start. Call it
// after the tracking API has closed.
func (s *Service) Close() {
	f := s.follow
	started := true
	f.once.Do(func() { started = false })
	if !started {
		return
	}
	close(f.stop)
	<-f.done
}

func (f *follower) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-f.done:
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-f.stop:
			f.save(context.Background(), true)
			return
		case <-f.wake:
		case <-timer.C:
		}
		wait := followerPoll
		if f.round(ctx) {
			wait = 0
		}
		if f.failed {
			// The same work is tried again (nothing is passed over), after a pause so that a
			// database that keeps failing is not asked five times a second.
			wait, f.failed = followerRetry, false
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// round does one step of work and tells whether more is waiting.
func (f *follower) round(ctx context.Context) bool {
	s := f.s
	if s.Gate != nil && !s.Gate() {
		f.loaded = false // another replica resolves; read the cursor again when leading
		return false
	}
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errCursorMoved) {
			s.log.Warn("engage: another replica moved the follower's cursor; reading it again")
		} else {
			s.log.Error("engage: "+what+" failed", "error", err.Error())
		}
		f.loaded, f.failed = false, true
		return false
	}
	if !f.loaded {
		if err := f.load(ctx); err != nil {
			return fail("reading the follower's cursor", err)
		}
	}
	if f.membersChanged.Swap(false) || time.Since(f.checkedAt) >= f.membersEvery {
		if err := f.join(ctx); err != nil {
			return fail("looking for workspaces that gained Engage", err)
		}
	}
	more, err := f.step(ctx)
	if err != nil {
		return fail("identity resolution", err)
	}
	if !more || time.Since(f.backfillAt) >= backfillEvery {
		f.backfillAt = time.Now()
		bmore, err := f.backfill(ctx)
		if err != nil {
			return fail("a backfill of identity resolution", err)
		}
		more = more || bmore
	}
	f.save(ctx, false)
	return more
}

// load reads the cursor, creating it at the end of the log the first time: the workspaces on
// Engage then join with a backfill of their stored events.
func (f *follower) load(ctx context.Context) error {
	d := f.s.db
	var c []string
	if err := d.Select(ctx, &c, `SELECT last_event_id FROM log_followers WHERE name = ?`, followerName); err != nil {
		return err
	}
	if len(c) == 0 {
		err := d.Tx(ctx, func(tx *db.Tx) error {
			var head *string
			if err := tx.Get(ctx, &head, `SELECT MAX(id) FROM events`); err != nil {
				return err
			}
			start := ""
			if head != nil {
				start = *head
			}
			_, err := tx.Exec(ctx, `INSERT INTO log_followers (name, last_event_id, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
				followerName, start, db.Now())
			return err
		})
		if err != nil {
			return err
		}
		if err := d.Select(ctx, &c, `SELECT last_event_id FROM log_followers WHERE name = ?`, followerName); err != nil {
			return err
		}
	}
	f.stored, f.pos, f.savedAt, f.loaded = c[0], c[0], time.Now(), true
	f.checkedAt = time.Time{}
	return nil
}

// moveCursor stores the cursor at pos in tx, if it is still where this process left it.
func (f *follower) moveCursor(ctx context.Context, tx *db.Tx, pos string) error {
	res, err := tx.Exec(ctx, `UPDATE log_followers SET last_event_id = ?, updated_at = ? WHERE name = ? AND last_event_id = ?`,
		pos, db.Now(), followerName, f.stored)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(errCursorMoved, err)
	}
	return nil
}

// save stores a cursor that moved over events that changed nothing, now and then (or now when
// final).
func (f *follower) save(ctx context.Context, final bool) {
	if !f.loaded || f.pos == f.stored || (!final && time.Since(f.savedAt) < followerSaveEvery) {
		return
	}
	pos := f.pos
	err := f.s.db.Tx(ctx, func(tx *db.Tx) error { return f.moveCursor(ctx, tx, pos) })
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errCursorMoved) {
			f.s.log.Error("engage: storing the follower's cursor failed", "error", err.Error())
		}
		f.loaded = false
		return
	}
	f.stored, f.savedAt = pos, time.Now()
}

// engagePlans are the plans whose workspaces identity resolution follows.
func engagePlans() []any {
	var out []any
	for _, p := range []workspace.Plan{workspace.Free, workspace.Team, workspace.Business} {
		if p.Details().Has(workspace.Engage) {
			out = append(out, p)
		}
	}
	return out
}

// join adds the workspaces that gained Engage to those followed, at the cursor, and drops those
// that lost it (or were deleted): should they gain it again, their backfill resolves what they
// sent meanwhile. The cursor is stored in the same transaction, so that what the follower has
// passed and what the backfill covers meet exactly.
func (f *follower) join(ctx context.Context) error {
	f.checkedAt = time.Now()
	plans := engagePlans()
	in := db.Placeholders(len(plans))
	read := f.s.db.Reader()
	var joining, leaving []string
	if err := read.Select(ctx, &joining, `SELECT w.id FROM workspaces w WHERE w.plan IN (`+in+`) AND w.deleted_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM engage_workspaces r WHERE r.workspace_id = w.id) ORDER BY w.id`, plans...); err != nil {
		return err
	}
	if err := read.Select(ctx, &leaving, `SELECT r.workspace_id FROM engage_workspaces r JOIN workspaces w ON w.id = r.workspace_id
		WHERE w.plan NOT IN (`+in+`) OR w.deleted_at IS NOT NULL ORDER BY r.workspace_id`, plans...); err != nil {
		return err
	}
	if len(joining) > 0 || len(leaving) > 0 {
		pos, now := f.pos, db.Now()
		err := f.s.db.Tx(ctx, func(tx *db.Tx) error {
			if err := f.moveCursor(ctx, tx, pos); err != nil {
				return err
			}
			for _, ws := range joining {
				if _, err := tx.Exec(ctx, `INSERT INTO engage_workspaces (workspace_id, backfill_after, backfill_until, backfilled, joined_at)
					VALUES (?, '', ?, 0, ?) ON CONFLICT (workspace_id) DO NOTHING`, ws, pos, now); err != nil {
					return err
				}
			}
			for start := 0; start < len(leaving); start += valuesPerQuery {
				part := leaving[start:min(start+valuesPerQuery, len(leaving))]
				if _, err := tx.Exec(ctx, `DELETE FROM engage_workspaces WHERE workspace_id IN (`+db.Placeholders(len(part))+`)`,
					db.Args(part)...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		f.stored, f.savedAt = pos, time.Now()
		for _, ws := range joining {
			f.s.log.Info("engage: workspace gained Engage; identity resolution follows its events and resolves those stored",
				"workspace", ws, "backfill_until", pos)
		}
		for _, ws := range leaving {
			f.s.log.Info("engage: workspace lost Engage; identity resolution no longer follows its events", "workspace", ws)
		}
	}
	return read.Get(ctx, &f.members, `SELECT COUNT(*) FROM engage_workspaces`)
}

// eventColumns are the columns of events that identity resolution and its followers read.
const eventColumns = `e.id, e.workspace_id, e.source_id, e.message_id, e.type, e.event_name, e.user_id, e.anonymous_id,
	e.received_at, e.timestamp, e.payload, e.status`

// scanEvents reads events by hand: a batch is hundreds of rows, and reflection would be much of
// its time. The queries do not ask for accepted events (a condition on status lets PostgreSQL's
// planner pick the partial index of accepted events' message ids, and read all of it each time):
// the others come back and the callers pass over them.
func scanEvents(ctx context.Context, q *db.Queryer, query string, args ...any) ([]*ingest.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ingest.Event
	for rows.Next() {
		e := &ingest.Event{}
		var typ, payload string
		var received db.Time
		var ts *db.Time
		if err := rows.Scan(&e.ID, &e.WorkspaceID, &e.SourceID, &e.MessageID, &typ, &e.EventName, &e.UserID, &e.AnonymousID,
			&received, &ts, &payload, &e.Status); err != nil {
			return nil, err
		}
		e.Type, e.ReceivedAt, e.Payload = ingest.Type(typ), received.Time, []byte(payload)
		if ts != nil {
			t := ts.Time
			e.Timestamp = &t
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// groupByWorkspace splits events (in log order) by workspace, each group in log order, with the
// workspace's rules; workspaces that lost Engage meanwhile are left out.
func (f *follower) groupByWorkspace(ctx context.Context, events []*ingest.Event) ([]group, error) {
	var groups []group
	at := map[string]int{}
	for _, e := range events {
		i, ok := at[e.WorkspaceID]
		if !ok {
			set, engage, err := f.s.engageSettings(ctx, e.WorkspaceID)
			if err == nil && !engage {
				// The query saw the plan with Engage: the cache may be older than that.
				f.s.states.forget(e.WorkspaceID)
				set, engage, err = f.s.engageSettings(ctx, e.WorkspaceID)
			}
			if err != nil {
				return nil, err
			}
			i = -1
			if engage {
				i = len(groups)
				groups = append(groups, group{ws: e.WorkspaceID, set: set})
			}
			at[e.WorkspaceID] = i
		}
		if i >= 0 {
			groups[i].events = append(groups[i].events, e)
		}
	}
	return groups, nil
}

// step resolves the next events of the log of the workspaces followed, up to perTx events, and
// tells whether more are waiting. The workspaces are filtered in the query: the events of the
// others (and of deleted sources, whose rows are being reaped) are passed over without being read.
func (f *follower) step(ctx context.Context) (bool, error) {
	read := f.s.db.Reader()
	// The end of the log, read before the events: when fewer events come than asked, the cursor
	// moves up to here, never past an event committed after the query looked.
	var head *string
	if err := read.Get(ctx, &head, `SELECT MAX(id) FROM events`); err != nil {
		return false, err
	}
	if head == nil || *head <= f.pos {
		return false, nil
	}
	if f.members == 0 {
		f.pos = *head
		return false, nil
	}
	plans := engagePlans()
	args := append([]any{f.pos}, plans...)
	events, err := scanEvents(ctx, read, `SELECT `+eventColumns+` FROM events e
		WHERE e.id > ?
		AND e.workspace_id IN (SELECT r.workspace_id FROM engage_workspaces r JOIN workspaces w ON w.id = r.workspace_id
			WHERE w.plan IN (`+db.Placeholders(len(plans))+`) AND w.deleted_at IS NULL)
		AND e.source_id NOT IN (SELECT id FROM sources WHERE deleted_at IS NOT NULL)
		ORDER BY e.id LIMIT ?`, append(args, f.s.perTx())...)
	if err != nil {
		return false, err
	}
	more := len(events) == f.s.perTx()
	next := *head
	if more {
		next = events[len(events)-1].ID
	}
	events = accepted(events)
	if len(events) == 0 {
		f.pos = next
		return more, nil
	}
	groups, err := f.groupByWorkspace(ctx, events)
	if err != nil {
		return false, err
	}
	wrote, err := f.s.resolveGroups(ctx, groups, func(tx *db.Tx) error { return f.moveCursor(ctx, tx, next) }, false)
	if err != nil {
		return false, err
	}
	f.pos = next
	if wrote {
		f.stored, f.savedAt = next, time.Now()
	}
	return more, nil
}

// backfill resolves the next stored events of the workspace that joined first among those whose
// backfill runs, and tells whether more are waiting. Events already resolved to a profile (a
// workspace that had Engage before, lost it and gained it again) are left out.
func (f *follower) backfill(ctx context.Context) (bool, error) {
	read := f.s.db.Reader()
	var rows []struct {
		WorkspaceID string `db:"workspace_id"`
		After       string `db:"backfill_after"`
		Until       string `db:"backfill_until"`
		Backfilled  int64  `db:"backfilled"`
	}
	if err := read.Select(ctx, &rows, `SELECT workspace_id, backfill_after, backfill_until, backfilled FROM engage_workspaces
		WHERE backfilled_at IS NULL ORDER BY joined_at, workspace_id LIMIT 1`); err != nil {
		return false, err
	}
	if len(rows) == 0 {
		return false, nil
	}
	b := rows[0]
	events, err := scanEvents(ctx, read, `SELECT `+eventColumns+` FROM events e
		WHERE e.workspace_id = ? AND e.id > ? AND e.id <= ?
		AND e.source_id NOT IN (SELECT id FROM sources WHERE deleted_at IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM profile_events pe WHERE pe.event_id = e.id)
		ORDER BY e.id LIMIT ?`, b.WorkspaceID, b.After, b.Until, f.s.perTx())
	if err != nil {
		return false, err
	}
	done := len(events) < f.s.perTx()
	after := b.Until
	if !done {
		after = events[len(events)-1].ID
	}
	events = accepted(events)
	var groups []group
	if len(events) > 0 {
		set, engage, err := f.s.engageSettings(ctx, b.WorkspaceID)
		if err != nil {
			return false, err
		}
		if engage {
			groups = []group{{ws: b.WorkspaceID, set: set, events: events}}
		}
	}
	var finished *db.Time
	if done {
		now := db.Now()
		finished = &now
	}
	_, err = f.s.resolveGroups(ctx, groups, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE engage_workspaces SET backfill_after = ?, backfilled = backfilled + ?, backfilled_at = ?
			WHERE workspace_id = ? AND backfill_after = ? AND backfilled_at IS NULL`, after, len(events), finished, b.WorkspaceID, b.After)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(errCursorMoved, err)
		}
		return nil
	}, true)
	if err != nil {
		return false, err
	}
	total := b.Backfilled + int64(len(events))
	switch last, seen := f.backfillLog[b.WorkspaceID]; {
	case done:
		delete(f.backfillLog, b.WorkspaceID)
		f.s.log.Info("engage: backfill done: the workspace's stored events are resolved", "workspace", b.WorkspaceID, "events", total)
	case !seen || time.Since(last) >= backfillLogEvery:
		f.backfillLog[b.WorkspaceID] = time.Now()
		f.s.log.Log(ctx, slog.LevelInfo, "engage: backfill running", "workspace", b.WorkspaceID, "events", total, "at", after,
			"until", b.Until)
	}
	return !done, nil
}

// accepted keeps the accepted events of a batch.
func accepted(events []*ingest.Event) []*ingest.Event {
	out := events[:0]
	for _, e := range events {
		if e.Status == ingest.Accepted {
			out = append(out, e)
		}
	}
	return out
}
