package ingest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// mustOpenDB opens a migrated database (internal/testdb) with two workspaces, ws_a and ws_b, each with a
// source (src_a, src_b).
func mustOpenDB(tb testing.TB) *db.DB {
	tb.Helper()
	ctx := context.Background()
	d := testdb.Open(tb)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		tb.Fatal(err)
	}
	err = d.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		for _, x := range []string{"a", "b"} {
			if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, 'FREE', ?, ?)`,
				"ws_"+x, "W "+x, "w-"+x, now, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
				VALUES (?, ?, 'http-api', ?, TRUE, '{}', '[]', ?, ?)`, "src_"+x, "ws_"+x, "S "+x, now, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func testEvents(ws, src, prefix string, n int) []*Event {
	out := make([]*Event, n)
	now := time.Now().UTC()
	for i := range out {
		uid := prefix + strconv.Itoa(i)
		out[i] = &Event{WorkspaceID: ws, SourceID: src, MessageID: uid, Type: Track, UserID: &uid, Status: Accepted,
			ReceivedAt: now, Payload: []byte(`{"type":"track","userId":"` + uid + `"}`)}
	}
	return out
}

// queueWrite starts a write in the background and waits until it is queued.
func queueWrite(t *testing.T, w *writer, ws string, events []*Event) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	w.mu.Lock()
	before := w.events
	w.mu.Unlock()
	go func() { res <- w.write(context.Background(), ws, events) }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		w.mu.Lock()
		now := w.events
		w.mu.Unlock()
		if now > before {
			return res
		}
		select {
		case err := <-res:
			res2 := make(chan error, 1)
			res2 <- err
			return res2 // answered without queueing (refused)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the write was never queued")
		}
		time.Sleep(time.Millisecond)
	}
}

func stored(t *testing.T, d *db.DB, src string) int {
	t.Helper()
	var n int
	if err := d.Get(context.Background(), &n, `SELECT COUNT(*) FROM events WHERE source_id = ?`, src); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriter(t *testing.T) {
	limits := QueueLimits{Events: 1000, Bytes: 1 << 20, Wait: 5 * time.Second}
	newTestWriter := func(d *db.DB, l QueueLimits, listener func(Committed)) *writer {
		var ls []Listener
		if listener != nil {
			ls = append(ls, Listener{Hear: listener})
		}
		return newWriter(d, l, nil, newFollower(nil, ls))
	}

	t.Run("OneBadRequestFailsAlone", func(t *testing.T) {
		d := mustOpenDB(t)
		w := newTestWriter(d, limits, nil)
		good := queueWrite(t, w, "ws_a", testEvents("ws_a", "src_a", "good-", 3))
		// A source that does not exist: the foreign key refuses the row.
		bad := queueWrite(t, w, "ws_b", testEvents("ws_b", "src_gone", "bad-", 2))
		good2 := queueWrite(t, w, "ws_b", testEvents("ws_b", "src_b", "good2-", 2))
		go w.run()
		defer w.close()
		if err := <-good; err != nil {
			t.Errorf("a good request of the group failed: %v", err)
		}
		if err := <-good2; err != nil {
			t.Errorf("another good request of the group failed: %v", err)
		}
		if err := <-bad; err == nil {
			t.Error("the request naming a missing source succeeded")
		}
		if a, b := stored(t, d, "src_a"), stored(t, d, "src_b"); a != 3 || b != 2 {
			t.Errorf("stored %d and %d events, want 3 and 2", a, b)
		}
	})

	t.Run("QueueFullIsBusy", func(t *testing.T) {
		d := mustOpenDB(t)
		w := newTestWriter(d, QueueLimits{Events: 10, Bytes: 1 << 20, Wait: 5 * time.Second}, nil)
		first := queueWrite(t, w, "ws_a", testEvents("ws_a", "src_a", "q1-", 4))
		// ws_a may hold at most half the queue once it has something queued.
		if err := w.write(context.Background(), "ws_a", testEvents("ws_a", "src_a", "q2-", 2)); !errors.Is(err, ErrBusy) {
			t.Errorf("a workspace over half the queue: %v, want ErrBusy", err)
		}
		second := queueWrite(t, w, "ws_b", testEvents("ws_b", "src_b", "q3-", 5))
		if err := w.write(context.Background(), "ws_b", testEvents("ws_b", "src_b", "q4-", 2)); !errors.Is(err, ErrBusy) {
			t.Errorf("a write beyond the queue's 10 events: %v, want ErrBusy", err)
		}
		go w.run()
		defer w.close()
		if err := errors.Join(<-first, <-second); err != nil {
			t.Fatal(err)
		}
		if a, b := stored(t, d, "src_a"), stored(t, d, "src_b"); a != 4 || b != 5 {
			t.Errorf("stored %d and %d, want 4 and 5: refused writes store nothing", a, b)
		}
		if err := w.write(context.Background(), "ws_b", testEvents("ws_b", "src_b", "q5-", 2)); err != nil {
			t.Errorf("after the queue drained: %v", err)
		}
	})

	t.Run("WaitedTooLongIsBusyAndStoresNothing", func(t *testing.T) {
		d := mustOpenDB(t)
		w := newTestWriter(d, QueueLimits{Events: 100, Bytes: 1 << 20, Wait: 50 * time.Millisecond}, nil)
		// No writer goroutine yet: the request waits out its limit in the queue.
		if err := w.write(context.Background(), "ws_a", testEvents("ws_a", "src_a", "late-", 3)); !errors.Is(err, ErrBusy) {
			t.Fatalf("%v, want ErrBusy", err)
		}
		go w.run()
		if err := w.write(context.Background(), "ws_a", testEvents("ws_a", "src_a", "ok-", 1)); err != nil {
			t.Fatal(err)
		}
		w.close()
		if n := stored(t, d, "src_a"); n != 1 {
			t.Errorf("stored %d, want 1: the request turned away must leave nothing behind", n)
		}
	})

	t.Run("WorkspacesTakeTurns", func(t *testing.T) {
		d := mustOpenDB(t)
		w := newTestWriter(d, QueueLimits{Events: 100_000, Bytes: 64 << 20, Wait: 5 * time.Second}, nil)
		// ws_a queues twice a group's worth before ws_b sends one request.
		for i := range 4 {
			queueWrite(t, w, "ws_a", testEvents("ws_a", "src_a", "flood"+strconv.Itoa(i)+"-", maxGroupEvents/2))
		}
		queueWrite(t, w, "ws_b", testEvents("ws_b", "src_b", "calm-", 1))
		group := w.take()
		var sawB bool
		n := 0
		for _, r := range group {
			sawB = sawB || r.workspace == "ws_b"
			n += len(r.events)
		}
		if !sawB {
			t.Errorf("the first group holds only ws_a's flood (%d requests): ws_b waits behind it", len(group))
		}
		if n > maxGroupEvents {
			t.Errorf("group of %d events, over %d", n, maxGroupEvents)
		}
		for _, r := range group {
			r.done <- nil
		}
	})

	t.Run("ListenersDoNotHoldTheWriter", func(t *testing.T) {
		d := mustOpenDB(t)
		release := make(chan struct{})
		var mu sync.Mutex
		var heard []string
		w := newTestWriter(d, limits, func(c Committed) {
			<-release
			mu.Lock()
			for _, e := range c.Events {
				heard = append(heard, e.MessageID)
			}
			mu.Unlock()
		})
		go w.run()
		// The listener blocks; commits go on regardless.
		for i := range 5 {
			if err := w.write(context.Background(), "ws_a", testEvents("ws_a", "src_a", "l"+strconv.Itoa(i)+"-", 2)); err != nil {
				t.Fatal(err)
			}
		}
		if n := stored(t, d, "src_a"); n != 10 {
			t.Errorf("%d stored while the listener was blocked, want 10", n)
		}
		close(release)
		w.close()
		w.follow.close()
		mu.Lock()
		defer mu.Unlock()
		if len(heard) != 10 {
			t.Errorf("the listener heard %d events, want 10", len(heard))
		}
	})
}

func TestFollowerPeriodicListener(t *testing.T) {
	var mu sync.Mutex
	var calls []int
	f := newFollower(nil, []Listener{{Every: 200 * time.Millisecond, Hear: func(c Committed) {
		mu.Lock()
		calls = append(calls, len(c.Events))
		mu.Unlock()
	}}})
	for i := range 10 {
		f.add(testEvents("ws_a", "src_a", "p"+strconv.Itoa(i)+"-", 1))
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	got := append([]int(nil), calls...)
	mu.Unlock()
	total := 0
	for _, n := range got {
		total += n
	}
	if len(got) > 2 || total != 10 {
		t.Errorf("heard %v: want the 10 commits of 50 ms in at most 2 calls, once a period", got)
	}
	f.add(testEvents("ws_a", "src_a", "last-", 1))
	f.close()
	mu.Lock()
	defer mu.Unlock()
	if n := calls[len(calls)-1]; n != 1 {
		t.Errorf("close did not flush the last commit: %v", calls)
	}
}

// TestWriterUsage: each commit counts its accepted events per source and day, stores each identity
// and each anonymousId's link to a userId once per month, however often and in whichever commits it
// comes again (the writer remembers what it stored), and moves the source's last-seen time.
func TestWriterUsage(t *testing.T) {
	d := mustOpenDB(t)
	w := newWriter(d, DefaultQueueLimits, nil, newFollower(nil, nil))
	ctx := context.Background()
	ev := func(src, msg, user, anon string) *Event {
		e := &Event{WorkspaceID: "ws_" + src, SourceID: "src_" + src, MessageID: msg, Type: Track, Status: Accepted,
			ReceivedAt: time.Now().UTC(), Payload: []byte(`{}`)}
		if user != "" {
			e.UserID = &user
		}
		if anon != "" {
			e.AnonymousID = &anon
		}
		return e
	}
	commits := [][]*Event{
		{ev("a", "1", "u1", "a1"), ev("a", "2", "u1", "a1"), ev("b", "3", "u1", "")},
		{ev("a", "4", "u1", "a1"), ev("a", "5", "u2", ""), ev("a", "6", "", "a2")},
		{ev("a", "7", "u2", "a2"), ev("b", "8", "u1", "")},
	}
	for _, c := range commits {
		if _, err := w.store(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q string, args ...any) int {
		var n int
		if err := d.Get(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count(`SELECT COALESCE(SUM(api_calls), 0) FROM usage_daily WHERE source_id = 'src_a'`); got != 6 {
		t.Errorf("api calls of src_a: %d, want 6", got)
	}
	if got := count(`SELECT COUNT(*) FROM mtu_identities WHERE source_id = 'src_a'`); got != 4 {
		t.Errorf("identities of src_a: %d, want 4 (u1, a1, u2, a2)", got)
	}
	if got := count(`SELECT COUNT(*) FROM mtu_identities WHERE source_id = 'src_b'`); got != 1 {
		t.Errorf("identities of src_b: %d, want 1 (u1)", got)
	}
	if got := count(`SELECT COUNT(*) FROM mtu_links WHERE workspace_id = 'ws_a'`); got != 2 {
		t.Errorf("links of ws_a: %d, want 2 (a1, a2)", got)
	}
	if got := count(`SELECT COUNT(*) FROM sources WHERE last_seen_at IS NOT NULL`); got != 2 {
		t.Errorf("sources with a last-seen time: %d, want 2", got)
	}
}
