package ingest

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// EventPrefix is the id prefix of events.
const EventPrefix = "evt"

// maxGroupEvents bounds one group commit: large enough to amortise the commit, small enough that
// one transaction does not hold the writer for long.
const maxGroupEvents = 5000

// rowsPerInsert bounds a multi-row INSERT: 15 columns x 400 rows stays under SQLite's and
// PostgreSQL's limits on bound parameters.
const rowsPerInsert = 400

// lastSeenEvery is how often, at most, the writer moves a source's last-seen time: a source's
// lastSeenAt is the time of its latest event to within this. Moving it in every commit wrote one
// page of the sources table more per commit (one in eight of a single-event commit's pages).
const lastSeenEvery = 100 * time.Millisecond

// EventLogLock is the lock (db.Tx.Lock) under which events get their ids and are inserted.
const EventLogLock = "events"

// ErrClosed is returned for writes after the writer stopped.
var ErrClosed = errors.New("ingest: the writer is stopped")

// ErrBusy is returned when the writer's queue is full, or a request waited in it longer than the
// limit: the tracking API answers 503 with Retry-After, and Segment's libraries retry.
var ErrBusy = errors.New("ingest: the writer is busy")

// Committed describes what one group commit stored, for listeners (live views, status changes).
type Committed struct {
	Events []*Event // the events newly stored (duplicates left out)
}

// QueueLimits bound what waits for the writer, so that memory stays bounded whatever clients send.
type QueueLimits struct {
	Events int           // events queued, all workspaces together
	Bytes  int           // payload bytes queued
	Wait   time.Duration // longest a request waits in the queue before it is answered 503
}

// DefaultQueueLimits hold a few group commits' worth of events.
var DefaultQueueLimits = QueueLimits{Events: 50_000, Bytes: 64 << 20, Wait: 2 * time.Second}

// writer is the single writer: requests hand it their events and wait; it stores the events of
// requests waiting at that moment in one transaction (group commit), with their usage and the
// sources' last-seen times, and answers each request when the transaction has committed.
//
// Requests queue per workspace and a group takes from each workspace in turn, so that one
// workspace sending a flood cannot keep another's events waiting behind it. The queue is bounded
// in events and bytes; a request that does not fit, or that waits longer than the limit, is turned
// away (ErrBusy) before anything of it is stored. Listeners of commits run on their own goroutine
// (see follower): nothing but the commit runs on the writer's.
type writer struct {
	db      *db.DB
	limits  QueueLimits
	observe func(events int, d time.Duration)
	follow  *follower

	mu      sync.Mutex
	queues  map[string][]*writeReq // by workspace
	ring    []string               // workspaces with queued requests, in turn order
	events  int                    // queued, not yet taken into a group
	bytes   int
	closed  bool
	wake    chan struct{}
	stopped chan struct{}

	// aboveLog is set once id.New is known to give ids above every event in the log (see store).
	// Only the writer goroutine uses it.
	aboveLog bool

	// seen is the last-seen time this process last wrote for each source (see lastSeenEvery).
	// Only the writer goroutine uses it.
	seen map[string]time.Time

	// known remembers the identity rows this process has committed, so that an identity seen
	// again this month costs no statement. Only the writer goroutine uses it.
	known *identityCache
}

// identityCache is a bounded set of the mtu_identities and mtu_links keys already stored, kept
// by workspace, month and source, then by kind and value: consecutive events mostly share the
// first part, and the lookup of a short value costs less than hashing the whole key (counting
// usage, mostly these lookups, took a fifth of the writer's CPU time with whole keys).
type identityCache struct {
	n   int
	sub map[identityScope]*identities
}

// identityScope is the part of an identity's key events share; a link's source is empty.
type identityScope struct{ ws, month, src string }

type identities struct{ users, anons, links map[string]struct{} }

// identityKey is an identity row's key: kind is "u" (a userId), "a" (an anonymousId) or "l" (the
// link of an anonymousId to a userId).
type identityKey struct {
	identityScope
	kind, value string
}

const maxKnownIdentities = 1 << 20

// of returns the identities known in a scope, nil when none.
func (c *identityCache) of(s identityScope) *identities { return c.sub[s] }

func (ids *identities) has(kind, value string) bool {
	if ids == nil {
		return false
	}
	var ok bool
	switch kind {
	case "u":
		_, ok = ids.users[value]
	case "a":
		_, ok = ids.anons[value]
	default:
		_, ok = ids.links[value]
	}
	return ok
}

func (c *identityCache) add(keys []identityKey) {
	if c.n+len(keys) > maxKnownIdentities {
		c.sub, c.n = nil, 0 // forget all rather than grow: the rows are upserts anyway
	}
	if c.sub == nil {
		c.sub = map[identityScope]*identities{}
	}
	for _, k := range keys {
		ids := c.sub[k.identityScope]
		if ids == nil {
			ids = &identities{users: map[string]struct{}{}, anons: map[string]struct{}{}, links: map[string]struct{}{}}
			c.sub[k.identityScope] = ids
		}
		m := ids.links
		switch k.kind {
		case "u":
			m = ids.users
		case "a":
			m = ids.anons
		}
		if _, ok := m[k.value]; !ok {
			m[k.value] = struct{}{}
			c.n++
		}
	}
}

type writeReq struct {
	workspace string
	events    []*Event
	bytes     int
	taken     bool // in a group: it will be answered by the commit
	done      chan error
}

func newWriter(d *db.DB, limits QueueLimits, observe func(int, time.Duration), follow *follower) *writer {
	return &writer{db: d, limits: limits, observe: observe, follow: follow, queues: map[string][]*writeReq{},
		wake: make(chan struct{}, 1), stopped: make(chan struct{}), known: &identityCache{}, seen: map[string]time.Time{}}
}

// write stores events of one workspace and returns once they are committed, or ErrBusy when the
// queue has no room or the wait ran out (nothing of them was stored then).
func (w *writer) write(ctx context.Context, workspace string, events []*Event) error {
	if len(events) == 0 {
		return nil
	}
	req := &writeReq{workspace: workspace, events: events, done: make(chan error, 1)}
	for _, e := range events {
		req.bytes += len(e.Payload)
	}
	if err := w.enqueue(req); err != nil {
		return err
	}
	timer := time.NewTimer(w.limits.Wait)
	defer timer.Stop()
	select {
	case err := <-req.done:
		return err
	case <-timer.C:
	}
	if w.withdraw(req) {
		return ErrBusy
	}
	// Taken into a commit already: its answer says whether it is stored. Wait even if the client
	// went away; the writer always answers.
	return <-req.done
}

func (w *writer) enqueue(req *writeReq) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	n := len(req.events)
	if w.events > 0 && (w.events+n > w.limits.Events || w.bytes+req.bytes > w.limits.Bytes) {
		return ErrBusy
	}
	// One workspace may fill at most half of the queue, so that the others still get in.
	if q := w.queues[req.workspace]; len(q) > 0 && queued(q)+n > w.limits.Events/2 {
		return ErrBusy
	}
	if len(w.queues[req.workspace]) == 0 {
		w.ring = append(w.ring, req.workspace)
	}
	w.queues[req.workspace] = append(w.queues[req.workspace], req)
	w.events += n
	w.bytes += req.bytes
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

func queued(q []*writeReq) int {
	n := 0
	for _, r := range q {
		n += len(r.events)
	}
	return n
}

// withdraw takes a request that waited too long out of the queue; false when a group took it.
func (w *writer) withdraw(req *writeReq) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.taken {
		return false
	}
	q := w.queues[req.workspace]
	for i, r := range q {
		if r == req {
			w.queues[req.workspace] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(w.queues[req.workspace]) == 0 {
		w.dropFromRing(req.workspace)
	}
	w.events -= len(req.events)
	w.bytes -= req.bytes
	return true
}

func (w *writer) dropFromRing(ws string) {
	delete(w.queues, ws)
	for i, r := range w.ring {
		if r == ws {
			w.ring = append(w.ring[:i:i], w.ring[i+1:]...)
			return
		}
	}
}

// take builds the next group: up to maxGroupEvents, taking requests from each workspace in turn
// (a workspace's share of a round is an equal part of the group, at least one request). The
// workspace after the last one served starts the next group.
func (w *writer) take() []*writeReq {
	w.mu.Lock()
	defer w.mu.Unlock()
	var group []*writeReq
	n := 0
	for n < maxGroupEvents && len(w.ring) > 0 {
		before := len(group)
		share := max(1, (maxGroupEvents-n)/len(w.ring))
		var served []string
		for _, ws := range append([]string(nil), w.ring...) {
			got := 0
			q := w.queues[ws]
			for len(q) > 0 && (len(group) == 0 || n+len(q[0].events) <= maxGroupEvents) && (got == 0 || got+len(q[0].events) <= share) {
				r := q[0]
				q = q[1:]
				r.taken = true
				group = append(group, r)
				got += len(r.events)
				n += len(r.events)
				w.events -= len(r.events)
				w.bytes -= r.bytes
			}
			w.queues[ws] = q
			served = append(served, ws)
			if n >= maxGroupEvents {
				break
			}
		}
		if len(group) == before {
			break // what is left does not fit in this group
		}
		// Served workspaces go to the back of the ring; emptied ones leave it.
		rest := w.ring[len(served):]
		ring := append([]string(nil), rest...)
		for _, ws := range served {
			if len(w.queues[ws]) > 0 {
				ring = append(ring, ws)
			} else {
				delete(w.queues, ws)
			}
		}
		w.ring = ring
	}
	return group
}

// close stops accepting writes, commits what is queued and waits for the writer to finish.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	<-w.stopped
}

// run commits until close; New starts it on a goroutine of its own.
func (w *writer) run() {
	defer close(w.stopped)
	for {
		<-w.wake
		for {
			group := w.take()
			if len(group) == 0 {
				break
			}
			w.commit(group)
		}
		w.mu.Lock()
		done := w.closed && len(w.ring) == 0
		w.mu.Unlock()
		if done {
			return
		}
	}
}

// commit stores a group in one transaction. When that fails, each request is tried on its own, so
// that one bad request fails alone instead of taking the others with it.
func (w *writer) commit(group []*writeReq) {
	var events []*Event
	for _, r := range group {
		events = append(events, r.events...)
	}
	start := time.Now()
	inserted, err := w.store(context.Background(), events)
	if err == nil {
		if w.observe != nil {
			w.observe(len(events), time.Since(start))
		}
		for _, r := range group {
			r.done <- nil
		}
		w.follow.add(inserted)
		return
	}
	if len(group) == 1 {
		group[0].done <- err
		return
	}
	for _, r := range group {
		w.commit([]*writeReq{r})
	}
}

// store writes events in one transaction and returns those newly stored. Events are unique per
// source and messageId within each status, apart: a discarded or blocked event does not block its
// corrected resend with the same messageId, and a retried request stores nothing twice. An event
// replaying a blocked one is stored only if that one was not replayed before, which it marks in
// the same transaction (at most once).
func (w *writer) store(ctx context.Context, events []*Event) ([]*Event, error) {
	var inserted []*Event
	err := w.db.Tx(ctx, func(tx *db.Tx) error {
		// Lanes read the log after a cursor over ids, so id order must be commit order, across
		// processes too: one events transaction at a time, its ids above every committed id.
		if err := tx.Lock(ctx, EventLogLock); err != nil {
			return err
		}
		if !w.aboveLog {
			var last *string
			if err := tx.Get(ctx, &last, `SELECT MAX(id) FROM events`); err != nil {
				return err
			}
			if last != nil {
				id.Raise(*last)
			}
			// On SQLite this process is the only writer of the log, and id.New never goes back,
			// so once raised above the log its ids stay above it. Replicas on PostgreSQL look
			// every time: another process may have committed since.
			w.aboveLog = w.db.Dialect() == db.SQLite
		}
		inserted = inserted[:0]
		byID := make(map[string]*Event, len(events))
		var accepted, discarded, blocked, replays []*Event
		for _, e := range events {
			e.ID = id.New(EventPrefix)
			byID[e.ID] = e
			switch {
			case e.ReplayOf != "":
				replays = append(replays, e)
			case e.Status == Accepted:
				accepted = append(accepted, e)
			case e.Status == Blocked:
				blocked = append(blocked, e)
			default:
				discarded = append(discarded, e)
			}
		}
		claimed, err := claimReplays(ctx, tx, replays)
		if err != nil {
			return err
		}
		accepted = append(accepted, claimed...)
		for _, part := range []struct {
			events []*Event
			tail   string
		}{
			{accepted, " ON CONFLICT (source_id, message_id) WHERE status = 'ACCEPTED' DO NOTHING RETURNING id"},
			{discarded, " ON CONFLICT (source_id, message_id) WHERE status = 'DISCARDED' DO NOTHING RETURNING id"},
			{blocked, " ON CONFLICT (source_id, message_id) WHERE status = 'BLOCKED' DO NOTHING RETURNING id"},
		} {
			for start := 0; start < len(part.events); start += rowsPerInsert {
				ids, err := insertEvents(ctx, tx, part.events[start:min(start+rowsPerInsert, len(part.events))], part.tail)
				if err != nil {
					return err
				}
				for _, id := range ids {
					inserted = append(inserted, byID[id])
				}
			}
		}
		return countUsage(ctx, tx, inserted, w.known, w.seen)
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(inserted, func(i, j int) bool { return inserted[i].ID < inserted[j].ID })
	return inserted, nil
}

// claimReplays marks the blocked events that replays send again as replayed, and returns the
// replays whose blocked event was not replayed before: only those are stored.
func claimReplays(ctx context.Context, tx *db.Tx, replays []*Event) ([]*Event, error) {
	if len(replays) == 0 {
		return nil, nil
	}
	byBlocked := make(map[string]*Event, len(replays))
	for _, e := range replays {
		byBlocked[e.ReplayOf] = e
	}
	var claimed []*Event
	for start := 0; start < len(replays); start += rowsPerInsert {
		chunk := replays[start:min(start+rowsPerInsert, len(replays))]
		args := []any{db.Now()}
		for _, e := range chunk {
			args = append(args, e.ReplayOf)
		}
		var ids []string
		if err := tx.Select(ctx, &ids, `UPDATE events SET replayed_at = ? WHERE id IN (`+db.Placeholders(len(chunk))+`)
			AND status = 'BLOCKED' AND replayed_at IS NULL RETURNING id`, args...); err != nil {
			return nil, err
		}
		for _, id := range ids {
			if e := byBlocked[id]; e != nil {
				claimed = append(claimed, e)
			}
		}
	}
	return claimed, nil
}

func insertEvents(ctx context.Context, tx *db.Tx, chunk []*Event, tail string) ([]string, error) {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id,
		status, discard_reason, discard_message, received_at, timestamp, payload, violations) VALUES `)
	args := make([]any, 0, len(chunk)*15)
	for i, e := range chunk {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		var reason, message, ts any
		if e.Status == Discarded {
			reason, message = string(e.Reason), e.Message
		}
		if e.Timestamp != nil {
			ts = db.FormatTime(*e.Timestamp)
		}
		args = append(args, e.ID, e.WorkspaceID, e.SourceID, e.MessageID, string(e.Type), e.EventName, e.UserID,
			e.AnonymousID, e.Status, reason, message, db.FormatTime(e.ReceivedAt), ts, string(e.Payload), e.violations)
	}
	sb.WriteString(tail)
	// Scanned by hand: sqlx's reflection cost as much as the rest of building the statement.
	rows, err := tx.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]string, 0, len(chunk))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// countUsage adds the accepted events among inserted to the usage tables and moves the sources'
// last-seen times, in the events' transaction.
func countUsage(ctx context.Context, tx *db.Tx, inserted []*Event, known *identityCache, seen map[string]time.Time) error {
	type dayKey struct{ ws, src, day string }
	calls := map[dayKey]int{}
	mtus := map[identityKey]string{} // -> first day, for identities not known to be stored
	links := map[identityKey]bool{}
	lastSeen := map[string]time.Time{}
	// Events of a request share their received time, and mostly their workspace and source.
	var (
		at                   time.Time
		day, month           string
		scope, linkScope     identityScope
		knownIDs, knownLinks *identities
	)
	for _, e := range inserted {
		if e.Status != Accepted {
			continue
		}
		if !e.ReceivedAt.Equal(at) || day == "" {
			at = e.ReceivedAt
			day = at.UTC().Format("2006-01-02")
			month = day[:7]
		}
		if s := (identityScope{e.WorkspaceID, month, e.SourceID}); s != scope {
			scope, linkScope = s, identityScope{e.WorkspaceID, month, ""}
			knownIDs, knownLinks = known.of(scope), known.of(linkScope)
		}
		calls[dayKey{e.WorkspaceID, e.SourceID, day}]++
		if e.UserID != nil && !knownIDs.has("u", *e.UserID) {
			mtus[identityKey{scope, "u", *e.UserID}] = day
		}
		if e.AnonymousID != nil {
			if !knownIDs.has("a", *e.AnonymousID) {
				mtus[identityKey{scope, "a", *e.AnonymousID}] = day
			}
			if e.UserID != nil && !knownLinks.has("l", *e.AnonymousID) {
				links[identityKey{linkScope, "l", *e.AnonymousID}] = true
			}
		}
		if e.ReceivedAt.After(lastSeen[e.SourceID]) {
			lastSeen[e.SourceID] = e.ReceivedAt
		}
	}
	if len(calls) > 0 {
		rows := make([][]any, 0, len(calls))
		for k, n := range calls {
			rows = append(rows, []any{k.ws, k.src, k.day, n})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO usage_daily (workspace_id, source_id, day, api_calls) VALUES `, 4, rows,
			` ON CONFLICT (workspace_id, source_id, day) DO UPDATE SET api_calls = usage_daily.api_calls + excluded.api_calls`); err != nil {
			return err
		}
	}
	var fresh []identityKey // identity keys this commit stores, remembered once it commits
	if len(mtus) > 0 {
		rows := make([][]any, 0, len(mtus))
		for k, day := range mtus {
			fresh = append(fresh, k)
			rows = append(rows, []any{k.ws, k.month, k.src, k.kind, k.value, day})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO mtu_identities (workspace_id, month, source_id, kind, value, first_day) VALUES `, 6, rows,
			` ON CONFLICT (workspace_id, month, source_id, kind, value) DO NOTHING`); err != nil {
			return err
		}
	}
	if len(links) > 0 {
		rows := make([][]any, 0, len(links))
		for k := range links {
			fresh = append(fresh, k)
			rows = append(rows, []any{k.ws, k.month, k.value})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO mtu_links (workspace_id, month, anonymous_id) VALUES `, 3, rows,
			` ON CONFLICT (workspace_id, month, anonymous_id) DO NOTHING`); err != nil {
			return err
		}
	}
	if len(fresh) > 0 {
		tx.AfterCommit(func() { known.add(fresh) })
	}
	for src, at := range lastSeen {
		if prev, ok := seen[src]; ok && at.Sub(prev) < lastSeenEvery {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE sources SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`,
			db.Time{Time: at}, src, db.Time{Time: at}); err != nil {
			return err
		}
		tx.AfterCommit(func() { seen[src] = at })
	}
	return nil
}
