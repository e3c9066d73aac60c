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

// rowsPerInsert bounds a multi-row INSERT: 14 columns x 400 rows stays under SQLite's and
// PostgreSQL's limits on bound parameters.
const rowsPerInsert = 400

// ErrClosed is returned for writes after the writer stopped.
var ErrClosed = errors.New("ingest: the writer is stopped")

// Committed describes what one group commit stored, for listeners (live views, status changes).
type Committed struct {
	Events []*Event // the events newly stored (duplicates left out)
}

// writer is the single writer: requests hand it their events and wait; it stores the events of every
// request waiting at that moment in one transaction (group commit), with their usage and the
// sources' last-seen times, and answers each request when the transaction has committed.
type writer struct {
	db       *db.DB
	ch       chan *writeReq
	stop     chan struct{}
	done     chan struct{}
	mu       sync.RWMutex
	closed   bool
	onCommit func(Committed)
	observe  func(events int, d time.Duration)
	// known remembers the identity rows this process has committed, so that an identity seen
	// again this month costs no statement. Only the writer goroutine uses it.
	known *identityCache
}

// identityCache is a bounded set of the mtu_identities and mtu_links keys already stored.
type identityCache struct {
	keys map[string]struct{}
}

const maxKnownIdentities = 1 << 20

func (c *identityCache) has(k string) bool { _, ok := c.keys[k]; return ok }

func (c *identityCache) add(keys []string) {
	if len(c.keys)+len(keys) > maxKnownIdentities {
		c.keys = map[string]struct{}{} // forget all rather than grow: the rows are upserts anyway
	}
	for _, k := range keys {
		c.keys[k] = struct{}{}
	}
}

type writeReq struct {
	events []*Event
	done   chan error
}

func newWriter(d *db.DB, onCommit func(Committed), observe func(int, time.Duration)) *writer {
	w := &writer{db: d, ch: make(chan *writeReq, 1024), stop: make(chan struct{}), done: make(chan struct{}),
		onCommit: onCommit, observe: observe, known: &identityCache{keys: map[string]struct{}{}}}
	go w.run()
	return w
}

// write stores events and returns once they are committed (or the commit failed).
func (w *writer) write(ctx context.Context, events []*Event) error {
	if len(events) == 0 {
		return nil
	}
	req := &writeReq{events: events, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	w.ch <- req
	w.mu.RUnlock()
	// Wait even if the client went away: the events may be committed already, and the answer tells
	// the handler whether they were. The writer always answers.
	return <-req.done
}

// close stops accepting writes, commits what is queued and waits for the writer to finish.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	for {
		var first *writeReq
		select {
		case first = <-w.ch:
		case <-w.stop:
			// Writers holding the read lock have finished sending; drain what they queued.
			for {
				select {
				case req := <-w.ch:
					w.commit([]*writeReq{req})
				default:
					return
				}
			}
		}
		group := []*writeReq{first}
		n := len(first.events)
	collect:
		for n < maxGroupEvents {
			select {
			case req := <-w.ch:
				group = append(group, req)
				n += len(req.events)
			default:
				break collect
			}
		}
		w.commit(group)
	}
}

func (w *writer) commit(group []*writeReq) {
	var events []*Event
	for _, r := range group {
		events = append(events, r.events...)
	}
	start := time.Now()
	ctx := context.Background()
	inserted, err := w.store(ctx, events)
	if err != nil && strings.Contains(err.Error(), "FOREIGN KEY") {
		// A source was deleted while its write key was still cached: its events have nowhere to
		// go. Store the others rather than fail every request of the group.
		if kept, ferr := w.withoutDeletedSources(ctx, events); ferr == nil {
			inserted, err = w.store(ctx, kept)
		}
	}
	if w.observe != nil && err == nil {
		w.observe(len(events), time.Since(start))
	}
	for _, r := range group {
		r.done <- err
	}
	if err == nil && w.onCommit != nil && len(inserted) > 0 {
		w.onCommit(Committed{Events: inserted})
	}
}

// store writes events in one transaction and returns those newly stored.
func (w *writer) store(ctx context.Context, events []*Event) ([]*Event, error) {
	var inserted []*Event
	err := w.db.Tx(ctx, func(tx *db.Tx) error {
		inserted = inserted[:0]
		byID := make(map[string]*Event, len(events))
		for _, e := range events {
			if e.ID == "" {
				e.ID = id.New(EventPrefix)
			}
			byID[e.ID] = e
		}
		for start := 0; start < len(events); start += rowsPerInsert {
			chunk := events[start:min(start+rowsPerInsert, len(events))]
			var sb strings.Builder
			sb.WriteString(`INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id,
				status, discard_reason, discard_message, received_at, timestamp, payload) VALUES `)
			args := make([]any, 0, len(chunk)*14)
			for i, e := range chunk {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				var reason, message, ts any
				if e.Status == Discarded {
					reason, message = string(e.Reason), e.Message
				}
				if e.Timestamp != nil {
					ts = db.FormatTime(*e.Timestamp)
				}
				args = append(args, e.ID, e.WorkspaceID, e.SourceID, e.MessageID, string(e.Type), e.EventName, e.UserID,
					e.AnonymousID, e.Status, reason, message, db.FormatTime(e.ReceivedAt), ts, string(e.Payload))
			}
			sb.WriteString(" ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id")
			var ids []string
			if err := tx.Select(ctx, &ids, sb.String(), args...); err != nil {
				return err
			}
			for _, id := range ids {
				inserted = append(inserted, byID[id])
			}
		}
		return countUsage(ctx, tx, inserted, w.known)
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(inserted, func(i, j int) bool { return inserted[i].ID < inserted[j].ID })
	return inserted, nil
}

// countUsage adds the accepted events among inserted to the usage tables and moves the sources'
// last-seen times, in the events' transaction.
func countUsage(ctx context.Context, tx *db.Tx, inserted []*Event, known *identityCache) error {
	type dayKey struct{ ws, src, day string }
	type mtuKey struct{ ws, month, src, kind, value string }
	type linkKey struct{ ws, month, anon string }
	calls := map[dayKey]int{}
	mtus := map[mtuKey]string{} // -> first day
	links := map[linkKey]bool{}
	lastSeen := map[string]time.Time{}
	for _, e := range inserted {
		if e.Status != Accepted {
			continue
		}
		day := e.ReceivedAt.UTC().Format("2006-01-02")
		month := day[:7]
		calls[dayKey{e.WorkspaceID, e.SourceID, day}]++
		if e.UserID != nil {
			mtus[mtuKey{e.WorkspaceID, month, e.SourceID, "u", *e.UserID}] = day
		}
		if e.AnonymousID != nil {
			mtus[mtuKey{e.WorkspaceID, month, e.SourceID, "a", *e.AnonymousID}] = day
			if e.UserID != nil {
				links[linkKey{e.WorkspaceID, month, *e.AnonymousID}] = true
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
	var fresh []string // identity keys this commit stores, remembered once it commits
	if len(mtus) > 0 {
		rows := make([][]any, 0, len(mtus))
		for k, day := range mtus {
			key := "i\x00" + k.ws + "\x00" + k.month + "\x00" + k.src + "\x00" + k.kind + "\x00" + k.value
			if known.has(key) {
				continue
			}
			fresh = append(fresh, key)
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
			key := "l\x00" + k.ws + "\x00" + k.month + "\x00" + k.anon
			if known.has(key) {
				continue
			}
			fresh = append(fresh, key)
			rows = append(rows, []any{k.ws, k.month, k.anon})
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
		if _, err := tx.Exec(ctx, `UPDATE sources SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)`,
			db.Time{Time: at}, src, db.Time{Time: at}); err != nil {
			return err
		}
	}
	return nil
}

// withoutDeletedSources drops the events of sources that no longer exist.
func (w *writer) withoutDeletedSources(ctx context.Context, events []*Event) ([]*Event, error) {
	seen := map[string]bool{}
	var ids []string
	for _, e := range events {
		if !seen[e.SourceID] {
			seen[e.SourceID] = true
			ids = append(ids, e.SourceID)
		}
	}
	var existing []string
	if err := w.db.Select(ctx, &existing, `SELECT id FROM sources WHERE id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...); err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, id := range existing {
		live[id] = true
	}
	kept := events[:0:0]
	for _, e := range events {
		if live[e.SourceID] {
			kept = append(kept, e)
		}
	}
	return kept, nil
}
