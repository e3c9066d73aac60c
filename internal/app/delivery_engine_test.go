package app_test

// End-to-end tests of the delivery engine's mechanics (issue 11): vendors that take batches get
// them, requests are pipelined, a failed record is not answered by re-sending, accepted events of
// a source disabled since are delivered, and the cursor never moves back.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// dlvBatchReceiver records vendor requests and the events each carried, by the vendor's id field.
type dlvBatchReceiver struct {
	*dlvReceiver
	ids func(body []byte) []string
}

// requests lists, per request, the ids of the events it carried.
func (b *dlvBatchReceiver) requests() [][]string {
	var out [][]string
	for _, h := range b.Hits() {
		out = append(out, b.ids(h.Body))
	}
	return out
}

func (e *dlvEnv) vendor(tb testing.TB, name, catalog string, settings func(url string) map[string]any, ids func([]byte) []string, answer func(h dlvHit) dlvReply) (dlvPipe, *dlvBatchReceiver) {
	tb.Helper()
	rc := dlvNewReceiver(tb, answer)
	p := dlvPipe{RC: rc}
	p.SourceID, p.Key = e.source(tb, name)
	d := e.mutate(tb, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": e.wsID, "catalogId": catalog, "name": name, "settings": settings(rc.URL)})
	p.DestID = trkStr(d, "destination.id")
	e.connect(tb, p.SourceID, p.DestID, true)
	return p, &dlvBatchReceiver{rc, ids}
}

func dlvFieldList(body []byte, list, field string) []string {
	var b map[string]json.RawMessage
	var items []map[string]any
	if list == "" {
		_ = json.Unmarshal(body, &items)
	} else {
		_ = json.Unmarshal(body, &b)
		_ = json.Unmarshal(b[list], &items)
	}
	var out []string
	for _, it := range items {
		v := trkPath(it, field)
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// TestDeliveryBatches checks the vendors that take batches: events that arrive together leave in
// one request within the vendor's limits, each event once; every event has its attempt, pointing
// at the request that carried it, stored once; and a vendor's refusal of some events of a batch
// fails those and delivers (Mixpanel) or re-sends (Amplitude) the others.
func TestDeliveryBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn; c.DeliveryBackoff = 50 * time.Millisecond })
	e := dlvNewEnv(t, s, "dlv-batches")
	events := func(prefix string, n int, anonymousID func(i int) string) []map[string]any {
		var out []map[string]any
		for i := range n {
			out = append(out, map[string]any{"userId": fmt.Sprintf("%s-%03d", prefix, i), "messageId": fmt.Sprintf("%s-%03d", prefix, i),
				"anonymousId": anonymousID(i), "event": "Batch Tested"})
		}
		return out
	}
	same := func(int) string { return "anon-same" }

	t.Run("SegmentForward", func(t *testing.T) {
		t.Parallel()
		p, rc := e.vendor(t, "Forward", "cat_segment", func(u string) map[string]any { return map[string]any{"endpoint": u, "writeKey": "wk-batch"} },
			func(b []byte) []string { return dlvFieldList(b, "batch", "messageId") }, nil)
		const n = 300
		dlvTrack(t, s, p.Key, events("sf", n, same)...)
		attempts := e.waitAttempts(t, p.DestID, "first: 100, outcome: DELIVERED", n)
		seen, largest := map[string]int{}, 0
		for _, ids := range rc.requests() {
			largest = max(largest, len(ids))
			if len(ids) > 500 {
				t.Errorf("a request carried %d events, more than Segment's 500", len(ids))
			}
			for _, id := range ids {
				seen[id]++
			}
		}
		if len(seen) != n || largest < 2 {
			t.Errorf("the receiver got %d distinct events, at most %d in a request; want %d, arriving together in batches", len(seen), largest, n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Errorf("%s arrived %d times", id, k)
			}
		}
		// An attempt's request is the batch that carried it, stored once for all its events.
		a := attempts[0]
		count := trkInt(trkPath(a, "request.eventCount"))
		var body struct {
			Batch []map[string]any `json:"batch"`
		}
		if err := json.Unmarshal([]byte(trkStr(a, "request.body")), &body); err != nil || len(body.Batch) != count || count < 2 {
			t.Errorf("the attempt's request carries %d events, eventCount %d: %v", len(body.Batch), count, err)
		}
		var stored, requests int
		_ = s.App.DB().Get(context.Background(), &requests, `SELECT COUNT(*) FROM delivery_requests WHERE destination_id = ?`, p.DestID)
		_ = s.App.DB().Get(context.Background(), &stored, `SELECT COUNT(*) FROM delivery_attempts WHERE destination_id = ?`, p.DestID)
		if requests != len(rc.requests()) || stored != n {
			t.Errorf("%d requests and %d attempts stored; want one per request sent (%d) and one per event", requests, stored, len(rc.requests()))
		}
		d := e.destination(t, p.DestID, `deliveryAttempts(first: 1) { nodes { eventId eventPayload } }`)
		nodes, _ := trkPath(d, "deliveryAttempts.nodes").([]any)
		if len(nodes) == 0 {
			t.Fatalf("no attempt: %v", d)
		}
		node := nodes[0]
		if !strings.HasPrefix(trkStr(node, "eventPayload.messageId"), "sf-") {
			t.Errorf("eventPayload %v, want the event from the log", node)
		}
	})

	t.Run("GA4", func(t *testing.T) {
		t.Parallel()
		p, rc := e.vendor(t, "GA4", "cat_google-analytics-4",
			func(u string) map[string]any {
				return map[string]any{"endpoint": u, "measurementId": "G-B", "apiSecret": "ga-batch-secret"}
			},
			func(b []byte) []string {
				var body struct {
					ClientID string `json:"client_id"`
					Events   []any  `json:"events"`
				}
				_ = json.Unmarshal(b, &body)
				out := make([]string, len(body.Events))
				for i := range out {
					out[i] = body.ClientID
				}
				return out
			}, nil)
		// GA4 takes one client and user per request: 54 events of one, 6 of others.
		list := events("ga", 60, func(i int) string {
			if i%10 == 9 {
				return fmt.Sprint("anon-other-", i)
			}
			return "anon-same"
		})
		for i, ev := range list {
			if i%10 != 9 {
				ev["userId"] = "user-same"
			}
		}
		dlvTrack(t, s, p.Key, list...)
		e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 60)
		total := 0
		for _, clients := range rc.requests() {
			total += len(clients)
			if len(clients) > 25 {
				t.Errorf("a request carried %d events, more than GA4's 25", len(clients))
			}
			for _, c := range clients {
				if c != clients[0] {
					t.Errorf("a request mixes clients: %v", clients)
				}
			}
		}
		if total != 60 || len(rc.requests()) > 9 {
			t.Errorf("%d events in %d requests; want 60 in batches of up to 25 per client", total, len(rc.requests()))
		}
	})

	t.Run("MixpanelRefusesSome", func(t *testing.T) {
		t.Parallel()
		var bad string
		var once sync.Once
		p, rc := e.vendor(t, "Mixpanel", "cat_mixpanel",
			func(u string) map[string]any {
				return map[string]any{"endpoint": u + "/import?strict=1", "apiSecret": "mp-batch-secret"}
			},
			func(b []byte) []string { return dlvFieldList(b, "", "properties.$insert_id") },
			func(h dlvHit) dlvReply {
				var reply dlvReply
				once.Do(func() {
					ids := dlvFieldList(h.Body, "", "properties.$insert_id")
					bad = ids[1]
					reply = dlvReply{Status: http.StatusBadRequest, Body: fmt.Sprintf(
						`{"code":400,"error":"some data points in the request failed validation","failed_records":[{"index":1,"$insert_id":%q,"field":"properties.time","message":"'properties.time' is invalid"}],"num_records_imported":%d,"status":"Bad Request"}`,
						bad, len(ids)-1)}
				})
				if reply.Status == 0 {
					reply.Status = http.StatusOK
				}
				return reply
			})
		dlvTrack(t, s, p.Key, events("mp", 5, same)...)
		e.waitAttempts(t, p.DestID, "first: 10", 5)
		dlvSettle(t, s, p.DestID)
		_, attempts := e.attempts(t, p.DestID, "first: 10")
		var failed, delivered int
		for _, a := range attempts {
			switch a["outcome"] {
			case "FAILED":
				failed++
				if a["errorType"] != "HTTP_400" || !strings.Contains(trkStr(a, "errorMessage"), "properties.time") {
					t.Errorf("refused event's attempt %v", a)
				}
			case "DELIVERED":
				delivered++
			}
		}
		if failed != 1 || delivered != 4 || len(rc.Hits()) != 1 {
			t.Errorf("%d failed, %d delivered in %d requests; want the refused one failed and the 4 others delivered, nothing sent again", failed, delivered, len(rc.Hits()))
		}
	})

	t.Run("AmplitudeRefusesSome", func(t *testing.T) {
		t.Parallel()
		var once sync.Once
		p, rc := e.vendor(t, "Amplitude", "cat_amplitude",
			func(u string) map[string]any {
				return map[string]any{"endpoint": u + "/2/httpapi", "apiKey": "amp-batch-key"}
			},
			func(b []byte) []string { return dlvFieldList(b, "events", "insert_id") },
			func(h dlvHit) dlvReply {
				reply := dlvReply{Status: http.StatusOK}
				once.Do(func() {
					reply = dlvReply{Status: http.StatusBadRequest, Body: `{"code":400,"error":"Request missing required field","events_with_invalid_fields":{"time":[0]}}`}
				})
				return reply
			})
		dlvTrack(t, s, p.Key, events("amp", 4, same)...)
		e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 3)
		dlvSettle(t, s, p.DestID)
		_, attempts := e.attempts(t, p.DestID, "first: 20")
		got := dlvOutcomes(attempts)
		if strings.Count(got, "1:FAILED:HTTP_400") != 1 || strings.Count(got, "1:RETRYING:HTTP_400") != 3 || strings.Count(got, "2:DELIVERED:") != 3 {
			t.Errorf("attempts %s; want the refused event failed, the 3 others sent again and delivered", got)
		}
		if reqs := rc.requests(); len(reqs) != 2 || len(reqs[0]) != 4 || len(reqs[1]) != 3 || strings.Contains(fmt.Sprint(reqs[1]), reqs[0][0]) {
			t.Errorf("requests %v; want the batch of 4, then the 3 not refused, together again", reqs)
		}
	})
}

// TestDeliveryPipelined checks that a slow request holds back neither the events after it (the
// lane sends them while it is in flight) nor the cursor's correctness (it stays before the slow
// event until its attempt is recorded).
func TestDeliveryPipelined(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "dlv-pipelined")
	arrived, release := make(chan struct{}), make(chan struct{})
	var first, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	p := e.pipe(t, "Mixed", map[string]any{"timeoutSeconds": 30}, func(h dlvHit) dlvReply {
		if h.UserID == "slow" {
			first.Do(func() {
				close(arrived)
				<-release
			})
		}
		return dlvReply{Status: http.StatusOK}
	})
	t.Cleanup(free) // registered after the receiver: runs before its cleanup, which waits for its handlers
	dlvTrack(t, s, p.Key, map[string]any{"userId": "slow", "messageId": "slow"})
	<-arrived
	slowID := dlvEventID(t, s, p.SourceID, "slow")
	var fast []map[string]any
	for i := range 40 {
		fast = append(fast, map[string]any{"userId": fmt.Sprint("fast-", i)})
	}
	dlvTrack(t, s, p.Key, fast...)
	p.RC.waitHits(t, 40, 10*time.Second)
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 40)
	var cursor string
	_ = s.App.DB().Get(context.Background(), &cursor, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, p.DestID)
	if cursor >= slowID {
		t.Errorf("the cursor %s passed the slow event %s before its attempt was recorded", cursor, slowID)
	}
	free()
	dlvSettle(t, s, p.DestID)
	if got := p.RC.Users(); len(got) != 41 {
		t.Errorf("the receiver got %d events, want 41", len(got))
	}
}

// TestDeliveryRecordFailure makes the attempts table unwritable while events are delivered: the
// lane keeps the results, retries the record with backoff and sends nothing again; once the table
// is back, every attempt is recorded and each event was sent once.
func TestDeliveryRecordFailure(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "dlv-record-failure")
	p := e.pipe(t, "Unrecorded", nil, nil)
	ctx := context.Background()
	rename := func(from, to string) {
		t.Helper()
		if err := s.App.DB().Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `ALTER TABLE `+from+` RENAME TO `+to)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rename("delivery_attempts", "delivery_attempts_away")
	var events []map[string]any
	for i := range 5 {
		events = append(events, map[string]any{"userId": fmt.Sprint("rf-", i), "messageId": fmt.Sprint("rf-", i)})
	}
	dlvTrack(t, s, p.Key, events...)
	p.RC.waitHits(t, 5, 10*time.Second)
	dlvWait(t, "two failed records", 20*time.Second, func() bool {
		return strings.Count(s.Logs.String(), "recording attempts failed") >= 2
	})
	if n := p.RC.Count(); n != 5 {
		t.Errorf("the receiver got %d requests while the records failed, want the 5 events once", n)
	}
	rename("delivery_attempts_away", "delivery_attempts")
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 5)
	dlvSettle(t, s, p.DestID)
	if got := p.RC.Users(); fmt.Sprint(got) != "[rf-0 rf-1 rf-2 rf-3 rf-4]" {
		t.Errorf("the receiver got %v, want each event once", got)
	}
}

// TestDeliveryDisabledSourcePending checks that events accepted before their source was disabled,
// and not yet sent, are delivered (here across a restart, so that the lane reads them after the
// source was disabled).
func TestDeliveryDisabledSourcePending(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	opts := func(c *config.Config) { c.DatabaseURL = dbURL; c.LogLevel = slog.LevelWarn; c.DeliveryConcurrency = 1 }
	s1 := startServer(t, allowLoopback, opts)
	e := dlvNewEnv(t, s1, "dlv-disabled-source")
	var mu sync.Mutex
	hang := true
	p := e.pipe(t, "Pending", nil, func(dlvHit) dlvReply {
		mu.Lock()
		defer mu.Unlock()
		if hang {
			return dlvReply{Hang: true}
		}
		return dlvReply{Status: http.StatusOK}
	})
	dlvTrack(t, s1, p.Key, map[string]any{"userId": "pending-a"})
	dlvWait(t, "the first request in flight", 10*time.Second, func() bool { return p.RC.inFlight.Load() == 1 })
	dlvTrack(t, s1, p.Key, map[string]any{"userId": "pending-b"}, map[string]any{"userId": "pending-c"})
	e.mutate(t, "sourceDisable", "SourceIdInput", "source { id enabled }", map[string]any{"sourceId": p.SourceID})
	if err := s1.stop(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	hang = false
	mu.Unlock()
	s2 := startServer(t, allowLoopback, opts)
	e.s = s2
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 3)
	dlvSettle(t, s2, p.DestID)
	if got := p.RC.Users(); fmt.Sprint(got) != "[pending-a pending-b pending-c]" {
		t.Errorf("delivered %v, want the three events accepted while the source was enabled", got)
	}
}

// TestDeliveryCursorNeverMovesBack moves a destination's cursor ahead while a request is in
// flight (as enabling a destination does): recording that request must not move it back.
func TestDeliveryCursorNeverMovesBack(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "dlv-cursor")
	arrived, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	p := e.pipe(t, "Held", map[string]any{"timeoutSeconds": 30}, func(dlvHit) dlvReply {
		once.Do(func() {
			close(arrived)
			<-release
		})
		return dlvReply{Status: http.StatusOK}
	})
	t.Cleanup(free) // registered after the receiver: runs before its cleanup, which waits for its handlers
	dlvTrack(t, s, p.Key, map[string]any{"userId": "held"})
	<-arrived
	ctx := context.Background()
	const ahead = "evt_zzzzzzzzzzzzzzzzzzzzzzzzzz"
	if err := s.App.DB().Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE delivery_cursors SET last_event_id = ? WHERE destination_id = ?`, ahead, p.DestID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	free()
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 1)
	// A later event makes the lane record again: its cursor-only updates must not move back either.
	dlvTrack(t, s, p.Key, map[string]any{"userId": "later"})
	p.RC.waitHits(t, 2, 10*time.Second)
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 2)
	var cursor string
	_ = s.App.DB().Get(ctx, &cursor, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, p.DestID)
	if cursor != ahead {
		t.Errorf("the cursor is %s, want it left at %s", cursor, ahead)
	}
}

// TestDeliveryDestinationToggled disables and enables a running destination at once (its lane may
// see both, or only a change of settings): what arrived while it was disabled is not sent.
func TestDeliveryDestinationToggled(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "dlv-toggled")
	p := e.pipe(t, "Toggled", nil, nil)
	dlvTrack(t, s, p.Key, map[string]any{"userId": "before"})
	p.RC.waitHits(t, 1, 10*time.Second)
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 1)
	for round := range 3 {
		e.mutate(t, "destinationDisable", "DestinationIdInput", "destination { id }", map[string]any{"destinationId": p.DestID})
		dlvTrack(t, s, p.Key, map[string]any{"userId": fmt.Sprint("while-disabled-", round)})
		e.mutate(t, "destinationEnable", "DestinationIdInput", "destination { id }", map[string]any{"destinationId": p.DestID})
	}
	dlvTrack(t, s, p.Key, map[string]any{"userId": "after"})
	dlvWait(t, "the event sent after", 10*time.Second, func() bool { return strings.Contains(fmt.Sprint(p.RC.Users()), "after") })
	dlvSettle(t, s, p.DestID)
	if got := p.RC.Users(); fmt.Sprint(got) != "[after before]" {
		t.Errorf("delivered %v, want [after before]: nothing of the time it was disabled", got)
	}
}

// TestDeliveryBatchOneSource checks that a request never carries the events of two sources (it
// is shown with each of its attempts, to whoever may see that attempt's source), and that a
// deleted source's requests go with it.
func TestDeliveryBatchOneSource(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn; c.DeliveryConcurrency = 1 })
	e := dlvNewEnv(t, s, "dlv-one-source")
	arrived, release := make(chan struct{}), make(chan struct{})
	var first, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	p, rc := e.vendor(t, "Forward", "cat_segment", func(u string) map[string]any { return map[string]any{"endpoint": u, "writeKey": "wk-one"} },
		func(b []byte) []string { return dlvFieldList(b, "batch", "messageId") },
		func(dlvHit) dlvReply {
			first.Do(func() {
				close(arrived)
				<-release
			})
			return dlvReply{Status: http.StatusOK}
		})
	t.Cleanup(free) // registered after the receiver: runs before its cleanup, which waits for its handlers
	otherID, otherKey := e.source(t, "Other")
	e.connect(t, otherID, p.DestID, true)
	dlvTrack(t, s, p.Key, map[string]any{"userId": "a-first", "messageId": "a-first"})
	<-arrived // the lane's one connection is busy: what follows queues up
	var a, b []map[string]any
	for i := range 5 {
		a = append(a, map[string]any{"userId": fmt.Sprint("a-", i), "messageId": fmt.Sprint("a-", i)})
		b = append(b, map[string]any{"userId": fmt.Sprint("b-", i), "messageId": fmt.Sprint("b-", i)})
	}
	dlvTrack(t, s, p.Key, a...)
	dlvTrack(t, s, otherKey, b...)
	free()
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 11)
	for _, ids := range rc.requests() {
		if prefix := ids[0][:2]; strings.Count(strings.Join(ids, " "), prefix) != len(ids) {
			t.Errorf("a request carried the events of two sources: %v", ids)
		}
	}
	ctx := context.Background()
	count := func() (n int) {
		_ = s.App.DB().Get(ctx, &n, `SELECT COUNT(*) FROM delivery_requests WHERE source_id = ?`, otherID)
		return n
	}
	if count() == 0 {
		t.Fatal("no request of the other source stored")
	}
	e.mutate(t, "sourceDelete", "SourceIdInput", "deletedSourceId", map[string]any{"sourceId": otherID})
	dlvWait(t, "the deleted source's requests reaped", 15*time.Second, func() bool { return count() == 0 })
}
