package engage

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/testdb"
)

// failOnError is a log handler that fails the test on every error logged.
type failOnError struct {
	slog.Handler
	t *testing.T
}

func (h failOnError) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.t.Errorf("logged: %s", r.Message)
		r.Attrs(func(a slog.Attr) bool { h.t.Errorf("  %s", a); return true })
	}
	return nil
}

// replica is another service over the test's database, as another process (or the same one
// after a restart) would have, logging errors as failures.
func (e *testEnv) replica() *Service {
	return New(e.db, nil, slog.New(failOnError{slog.DiscardHandler, e.t}))
}

// source adds a source to a workspace.
func (e *testEnv) source(ws string) string {
	e.t.Helper()
	src := id.New("src")
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES (?, ?, 'http-api', 'S', TRUE, '{}', '[]', ?, ?)`, src, ws, db.Now(), db.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return src
}

// store writes events to the log as the tracking API does: under its lock, with ids above every
// committed one.
func (e *testEnv) store(src string, events ...*ingest.Event) {
	e.t.Helper()
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error { return storeEvents(tx, src, events) }); err != nil {
		e.t.Fatal(err)
	}
}

func storeEvents(tx *db.Tx, src string, events []*ingest.Event) error {
	ctx := context.Background()
	if err := tx.Lock(ctx, ingest.EventLogLock); err != nil {
		return err
	}
	var last *string
	if err := tx.Get(ctx, &last, `SELECT MAX(id) FROM events`); err != nil {
		return err
	}
	if last != nil {
		id.Raise(*last)
	}
	for _, ev := range events {
		ev.ID, ev.SourceID, ev.MessageID = id.New(ingest.EventPrefix), src, id.New("msg")
		var ts *db.Time
		if ev.Timestamp != nil {
			ts = &db.Time{Time: *ev.Timestamp}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id,
			status, received_at, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.WorkspaceID, src, ev.MessageID, ev.Type, ev.EventName, ev.UserID, ev.AnonymousID, ev.Status,
			db.Time{Time: ev.ReceivedAt}, ts, string(ev.Payload)); err != nil {
			return err
		}
	}
	return nil
}

// follow runs s's follower of the log until it has nothing more to do.
func (e *testEnv) follow(s *Service) {
	e.t.Helper()
	s.follow.checkedAt = time.Time{} // look for workspaces that gained Engage now
	for i := 0; s.follow.round(context.Background()); i++ {
		if i > 10_000 {
			e.t.Fatal("the follower never caught up")
		}
	}
}

func (e *testEnv) exec(q string, args ...any) {
	e.t.Helper()
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), q, args...)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) cursor() string {
	e.t.Helper()
	var c string
	if err := e.db.Get(context.Background(), &c, `SELECT last_event_id FROM log_followers WHERE name = ?`, followerName); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// told records what OnResolved tells: the ids of the events, in order.
type told struct {
	mu     sync.Mutex
	events []string
}

func (tl *told) listen(s *Service) {
	s.OnResolved(func(_ context.Context, r *Resolved) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		for _, ev := range r.Events {
			tl.events = append(tl.events, ev.Event.ID)
		}
	})
}

func TestFollowerResolvesTheLog(t *testing.T) {
	e := mustOpen(t)
	s := e.replica()
	var tl told
	tl.listen(s)
	e.follow(s) // the cursor starts at the end of an empty log
	src := e.source(e.ws)
	team := e.workspace("TEAM")
	teamSrc := e.source(team)
	name := "Viewed"
	a := e.build(e.ws, ingest.Track, "", "a1", map[string]any{"event": name, "context": map[string]any{"traits": map[string]any{"plan": "pro"}}})
	a.EventName = &name
	e.store(src, a, e.build(e.ws, ingest.Identify, "u1", "a1", map[string]any{"traits": map[string]any{"email": "u1@example.com"}}))
	e.store(teamSrc, e.build(team, ingest.Identify, "t1", "", nil))
	e.follow(s)
	p := e.profileOf("user_id", "u1")
	if p == "" || e.profileOf("anonymous_id", "a1") != p || e.profileOf("email", "u1@example.com") != p {
		t.Fatalf("profile of u1 %q; identifiers %v", p, e.idents(p))
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ?`, team); n != 0 {
		t.Errorf("the TEAM workspace's event was resolved (%d identifiers)", n)
	}
	if len(tl.events) != 2 || tl.events[0] != a.ID {
		t.Errorf("followers of profiles told of %v, want the two events in log order", tl.events)
	}
	// What the followers of profiles are given is the event as it was stored.
	s2 := e.replica()
	var got []*ingest.Event
	s2.OnResolved(func(_ context.Context, r *Resolved) {
		for _, ev := range r.Events {
			got = append(got, ev.Event)
		}
	})
	ts := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	b := e.build(e.ws, ingest.Track, "u2", "", map[string]any{"event": name, "timestamp": ts})
	b.EventName = &name
	e.store(src, b)
	e.follow(s2)
	if len(got) != 1 {
		t.Fatalf("told %d events, want 1", len(got))
	}
	g := got[0]
	if g.ID != b.ID || g.WorkspaceID != e.ws || g.SourceID != src || g.Type != ingest.Track || g.EventName == nil || *g.EventName != name ||
		g.UserID == nil || *g.UserID != "u2" || g.AnonymousID != nil || g.Timestamp == nil || !g.Timestamp.Equal(ts) ||
		!g.ReceivedAt.Equal(b.ReceivedAt) || string(g.Payload) != string(b.Payload) || g.Status != ingest.Accepted {
		t.Errorf("told %+v, stored %+v", g, b)
	}
}

func TestFollowerResumesWithoutRedoing(t *testing.T) {
	e := mustOpen(t)
	src := e.source(e.ws)
	first := e.replica()
	var tl told
	tl.listen(first)
	e.follow(first)
	e.store(src, e.build(e.ws, ingest.Identify, "u1", "", nil), e.build(e.ws, ingest.Track, "", "a1", nil),
		e.build(e.ws, ingest.Identify, "u1", "a1", nil))
	e.follow(first)
	if n := e.count(`SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, e.ws); n != 1 {
		t.Fatalf("%d merges, want 1", n)
	}
	at := e.cursor()
	// A restart: a new process reads the cursor and goes on from it.
	second := e.replica()
	tl.listen(second)
	e.store(src, e.build(e.ws, ingest.Track, "", "a2", nil), e.build(e.ws, ingest.Identify, "u1", "a2", nil))
	e.follow(second)
	if n := e.count(`SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, e.ws); n != 2 {
		t.Errorf("%d merges, want 2 (the first not made again)", n)
	}
	if len(tl.events) != 5 {
		t.Errorf("%d events resolved in all, want each of the 5 once: %v", len(tl.events), tl.events)
	}
	if c := e.cursor(); c <= at {
		t.Errorf("cursor %s did not move from %s", c, at)
	}
}

func TestFollowerOneReplicaAtATime(t *testing.T) {
	e := mustOpen(t)
	src := e.source(e.ws)
	a, b := e.replica(), e.replica()
	var tl told
	tl.listen(a)
	tl.listen(b)
	e.follow(a)
	e.follow(b) // b has read the cursor, and then loses its lease without knowing it
	var events []*ingest.Event
	for i := range 10 {
		events = append(events, e.build(e.ws, ingest.Identify, "u1", "a"+string(rune('0'+i)), nil))
	}
	e.store(src, events[:5]...)
	e.follow(a)
	e.store(src, events[5:]...)
	// b's first transaction finds the cursor moved, and b goes on from where a left it.
	e.follow(b)
	e.follow(b)
	sort.Strings(tl.events)
	if len(tl.events) != 10 {
		t.Fatalf("%d events resolved, want each of the 10 once: %v", len(tl.events), tl.events)
	}
	for i := 1; i < len(tl.events); i++ {
		if tl.events[i] == tl.events[i-1] {
			t.Errorf("event %s resolved twice", tl.events[i])
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_events`); n != 10 {
		t.Errorf("%d profile events, want 10", n)
	}
}

func TestFollowerBackfillsAWorkspaceThatGainsEngage(t *testing.T) {
	e := mustOpen(t)
	s := e.replica()
	var tl told
	tl.listen(s)
	ws := e.workspace("TEAM")
	src := e.source(ws)
	var before []*ingest.Event
	for range s.perTx() + 20 { // more than one transaction of backfill
		before = append(before, e.build(ws, ingest.Identify, "u"+id.New("x"), "", nil))
	}
	e.store(src, before...)
	e.follow(s)
	if n := e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ?`, ws); n != 0 {
		t.Fatalf("a TEAM workspace's events were resolved (%d identifiers)", n)
	}
	e.exec(`UPDATE workspaces SET plan = 'BUSINESS' WHERE id = ?`, ws)
	e.s.states.forget(ws)
	s.states.forget(ws)
	after := e.build(ws, ingest.Identify, "late", "", nil)
	e.follow(s) // joins, and backfills
	e.store(src, after)
	e.follow(s)
	if n := e.count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, ws); n != len(before)+1 {
		t.Errorf("%d events resolved, want %d", n, len(before)+1)
	}
	if len(tl.events) != len(before)+1 {
		t.Errorf("told %d events, want each of %d once", len(tl.events), len(before)+1)
	}
	var row struct {
		Backfilled int64    `db:"backfilled"`
		Done       *db.Time `db:"backfilled_at"`
	}
	if err := e.db.Get(context.Background(), &row, `SELECT backfilled, backfilled_at FROM engage_workspaces WHERE workspace_id = ?`, ws); err != nil {
		t.Fatal(err)
	}
	if row.Backfilled != int64(len(before)) || row.Done == nil {
		t.Errorf("backfill: %d events, done %v; want %d, done", row.Backfilled, row.Done, len(before))
	}
	// Losing Engage and gaining it again resolves what came meanwhile, and nothing twice.
	e.exec(`UPDATE workspaces SET plan = 'TEAM' WHERE id = ?`, ws)
	s.states.forget(ws)
	e.follow(s)
	meanwhile := e.build(ws, ingest.Identify, "meanwhile", "", nil)
	e.store(src, meanwhile)
	e.follow(s)
	if e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ? AND value = 'meanwhile'`, ws) != 0 {
		t.Errorf("an event sent without Engage was resolved")
	}
	e.exec(`UPDATE workspaces SET plan = 'BUSINESS' WHERE id = ?`, ws)
	s.states.forget(ws)
	e.follow(s)
	if e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ? AND value = 'meanwhile'`, ws) != 1 {
		t.Errorf("the event sent without Engage was not resolved once Engage came back")
	}
	if len(tl.events) != len(before)+2 {
		t.Errorf("told %d events, want each of %d once", len(tl.events), len(before)+2)
	}
}

func TestFollowerPassesDiscardedEventsDeletedSourcesAndPruning(t *testing.T) {
	e := mustOpen(t)
	s := e.replica()
	e.follow(s)
	gone, kept := e.source(e.ws), e.source(e.ws)
	e.store(gone, e.build(e.ws, ingest.Identify, "from-gone", "", nil))
	e.exec(`UPDATE sources SET deleted_at = ? WHERE id = ?`, db.Now(), gone)
	discarded := e.build(e.ws, ingest.Identify, "discarded", "", nil)
	discarded.Status = "DISCARDED"
	e.store(kept, discarded, e.build(e.ws, ingest.Identify, "from-kept", "", nil))
	e.follow(s)
	if e.profileOf("user_id", "discarded") != "" {
		t.Errorf("a discarded event was resolved")
	}
	if e.profileOf("user_id", "from-gone") != "" {
		t.Errorf("an event of a deleted source was resolved")
	}
	if e.profileOf("user_id", "from-kept") == "" {
		t.Fatalf("the event after a deleted source's was not resolved")
	}
	// Retention deletes every event, the one at the cursor too: the follower goes on.
	e.exec(`DELETE FROM events`)
	e.follow(s)
	e.store(kept, e.build(e.ws, ingest.Identify, "after-prune", "", nil))
	restarted := e.replica()
	e.follow(restarted)
	if e.profileOf("user_id", "after-prune") == "" {
		t.Errorf("the event after retention pruned the log was not resolved")
	}
}

// TestFollowerWaitsForCommitsInProgress holds an events transaction open, as a slow group commit
// of another replica would, while a later one waits for the log's lock: the follower must not
// pass the first one's event while it is not visible, nor see the second one's before it. Only
// PostgreSQL has concurrent writers.
func TestFollowerWaitsForCommitsInProgress(t *testing.T) {
	if !testdb.IsPostgres() {
		t.Skip("SQLite has one writer: the follower's own transaction would wait for the open one")
	}
	// Three processes on one database: the follower's, and two of the tracking API's.
	url := testdb.URL(t)
	open := func() *db.DB {
		d, err := db.Open(context.Background(), url, db.Options{ReadConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	e := mustOpenOn(t, open())
	first, second := open(), open()
	s := e.replica()
	e.follow(s)
	src := e.source(e.ws)
	e.store(src, e.build(e.ws, ingest.Identify, "before", "", nil))
	ctx := context.Background()
	slow := e.build(e.ws, ingest.Identify, "slow", "", nil)
	later := e.build(e.ws, ingest.Identify, "later", "", nil)
	inside, release := make(chan struct{}), make(chan struct{})
	slowDone, laterDone := make(chan error, 1), make(chan error, 1)
	go func() {
		slowDone <- first.Tx(ctx, func(tx *db.Tx) error {
			if err := storeEvents(tx, src, []*ingest.Event{slow}); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	go func() {
		laterDone <- second.Tx(ctx, func(tx *db.Tx) error { return storeEvents(tx, src, []*ingest.Event{later}) })
	}()
	time.Sleep(50 * time.Millisecond) // the later commit is waiting for the log's lock
	e.follow(s)
	if e.profileOf("user_id", "before") == "" {
		t.Fatal("the committed event was not resolved")
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if err := <-laterDone; err != nil {
		t.Fatal(err)
	}
	if later.ID <= slow.ID {
		t.Fatalf("the later commit's id %s is not above the slow one's %s", later.ID, slow.ID)
	}
	e.follow(s)
	for _, u := range []string{"slow", "later"} {
		if e.profileOf("user_id", u) == "" {
			t.Errorf("the event of %q was skipped", u)
		}
	}
}

// TestFollowerJoinsAtOnceWhenThePlanChanges: a plan changed in this process (PlanChanged, which
// the workspace service calls after the change commits) is followed at the follower's next round,
// not at its next periodic look for members.
func TestFollowerJoinsAtOnceWhenThePlanChanges(t *testing.T) {
	e := mustOpen(t)
	s := e.replica()
	s.follow.membersEvery = time.Hour
	ws := e.workspace("TEAM")
	src := e.source(ws)
	e.follow(s) // the first look at the members: none on Engage
	rounds := func() {
		t.Helper()
		for i := 0; s.follow.round(context.Background()); i++ {
			if i > 10_000 {
				t.Fatal("the follower never caught up")
			}
		}
	}
	resolved := func() int {
		return e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ? AND value = 'u1'`, ws)
	}
	e.exec(`UPDATE workspaces SET plan = 'BUSINESS' WHERE id = ?`, ws)
	e.store(src, e.build(ws, ingest.Identify, "u1", "", nil))
	rounds()
	if n := resolved(); n != 0 {
		t.Fatalf("resolved before the follower was told or looked again (%d): the test shows nothing", n)
	}
	s.PlanChanged(ws)
	select {
	case <-s.follow.wake:
	default:
		t.Error("PlanChanged did not wake the follower")
	}
	rounds()
	if n := resolved(); n != 1 {
		t.Errorf("after PlanChanged the identify is resolved %d times, want once", n)
	}
}
