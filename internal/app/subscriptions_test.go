package app_test

// GraphQL subscriptions end to end: the graphql-ws npm client against the server (conformance),
// and raw gorilla websockets for what a library would hide: a subscription that ends with an
// error when its subscriber loses access, a socket closed when its credential is revoked, the live
// tail and health and usage streams, a subscriber too slow to keep up, and goroutines and memory
// that come back after a thousand subscriptions.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/live"
)

// ---------------------------------------------------------------------------------------------
// Helpers

// subMsg is a server message of graphql-transport-ws.
type subMsg struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
	At      time.Time       `json:"-"` // when the client read it
}

// code is extensions.code of the first error: of an error message (the stream ended with an
// error), or of a result (a subscription refused when it starts is answered with one result with
// errors and data null, then complete, as graphql-ws's own server does).
func (m subMsg) code() string {
	var errs []struct {
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	}
	if m.Type == "next" {
		var p struct {
			Errors json.RawMessage `json:"errors"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		_ = json.Unmarshal(p.Errors, &errs)
	} else {
		_ = json.Unmarshal(m.Payload, &errs)
	}
	if len(errs) == 0 {
		return ""
	}
	return errs[0].Extensions.Code
}

// data decodes the data of a next message.
func (m subMsg) data(tb testing.TB) map[string]any {
	tb.Helper()
	var p struct {
		Data   map[string]any   `json:"data"`
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || m.Type != "next" || len(p.Errors) > 0 {
		tb.Fatalf("want a next message with data, got %s %s", m.Type, m.Payload)
	}
	return p.Data
}

// subClient is a graphql-transport-ws client on a gorilla websocket. A goroutine reads the
// socket and hands each operation's messages to its channel; it ends when the socket does.
type subClient struct {
	ws     *websocket.Conn
	wmu    sync.Mutex
	mu     sync.Mutex
	ops    map[string]chan subMsg
	seq    int
	done   chan struct{} // closed when the reader ends
	endErr error         // why it ended: a *websocket.CloseError when the server sent a close frame
}

// subDial opens a websocket authenticated by bearer ("" for anonymous) and waits for the ack. The
// socket is closed when the test ends, before the server stops.
func subDial(tb testing.TB, s *server, bearer string) *subClient {
	tb.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	payload := map[string]any{}
	if bearer != "" {
		payload["Authorization"] = "Bearer " + bearer
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ack subMsg
	if err := ws.WriteJSON(map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		tb.Fatal(err)
	}
	if err := ws.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		tb.Fatalf("connection_init: %+v %v", ack, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	c := &subClient{ws: ws, ops: map[string]chan subMsg{}, done: make(chan struct{})}
	go c.read()
	tb.Cleanup(c.close)
	return c
}

func (c *subClient) read() {
	defer close(c.done)
	for {
		var m subMsg
		if err := c.ws.ReadJSON(&m); err != nil {
			c.endErr = err
			return
		}
		m.At = time.Now()
		if m.Type == "ping" {
			c.write(map[string]any{"type": "pong"})
			continue
		}
		c.mu.Lock()
		ch := c.ops[m.ID]
		c.mu.Unlock()
		if ch != nil {
			ch <- m // buffered generously; a test that floods it reads it
		}
	}
}

func (c *subClient) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteJSON(v)
}

// subOp is one subscription of a client.
type subOp struct {
	c  *subClient
	id string
	ch chan subMsg
}

// subscribe starts an operation and returns it without waiting for anything.
func (c *subClient) subscribe(tb testing.TB, query string, vars map[string]any) *subOp {
	tb.Helper()
	c.mu.Lock()
	c.seq++
	op := &subOp{c: c, id: fmt.Sprint(c.seq), ch: make(chan subMsg, 4096)}
	c.ops[op.id] = op.ch
	c.mu.Unlock()
	if err := c.write(map[string]any{"id": op.id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		tb.Fatal(err)
	}
	return op
}

// next returns the operation's next message, failing the test after within.
func (op *subOp) next(tb testing.TB, within time.Duration) subMsg {
	tb.Helper()
	select {
	case m := <-op.ch:
		return m
	case <-op.c.done:
		select {
		case m := <-op.ch:
			return m
		default:
		}
		tb.Fatalf("operation %s: the socket ended (%v) before a message came", op.id, op.c.endErr)
	case <-time.After(within):
		tb.Fatalf("operation %s: no message within %s", op.id, within)
	}
	return subMsg{}
}

// nextWhere returns the first next message whose data satisfies cond, skipping the others; any
// other kind of message fails the test.
func (op *subOp) nextWhere(tb testing.TB, within time.Duration, what string, cond func(data map[string]any) bool) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("operation %s: no message with %s within %s", op.id, what, within)
		}
		m := op.next(tb, left)
		if d := m.data(tb); cond(d) {
			return d
		}
	}
}

// close ends the socket with a close frame and waits for the reader.
func (c *subClient) close() {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	_ = c.ws.Close()
	<-c.done
}

// closedWith waits for the server to close the socket and returns the close code.
func (c *subClient) closedWith(tb testing.TB, within time.Duration) int {
	tb.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		tb.Fatalf("the socket is still open after %s", within)
	}
	var ce *websocket.CloseError
	if !errors.As(c.endErr, &ce) {
		tb.Fatalf("the socket ended without a close frame: %v", c.endErr)
	}
	return ce.Code
}

// subBus is the server's bus. The app does not expose it and its subscriber count is no metric,
// so the test reads the App's unexported field: if the field moves, expose the count instead
// (a junction_bus_subscribers gauge) and read that.
func subBus(tb testing.TB, s *server) *bus.Bus {
	tb.Helper()
	f := reflect.ValueOf(s.App).Elem().FieldByName("bus")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*bus.Bus]() {
		tb.Fatal("app.App has no field bus *bus.Bus any more: expose the bus's subscriber count")
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*bus.Bus)
}

// subWaitSubscribers waits until the server's bus has exactly n subscribers: one per running
// subscription.
func subWaitSubscribers(tb testing.TB, s *server, n int64) {
	tb.Helper()
	b := subBus(tb, s)
	subWait(tb, fmt.Sprintf("%d subscribers on the bus", n), 10*time.Second, func() bool { return b.Subscribers() == n })
}

// subWait polls cond until it holds, failing after within.
func subWait(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subQuiet is the server configuration of these tests: warnings only in the logs.
func subQuiet(c *config.Config) { c.LogLevel = slog.LevelWarn }

// subTrack posts events to /v1/batch with a write key and wants 200.
func subTrack(tb testing.TB, s *server, key string, events ...map[string]any) {
	tb.Helper()
	list := make([]any, len(events))
	for i, e := range events {
		list[i] = e
	}
	trkWantOK(tb, trkSend(tb, s, "/v1/batch", map[string]any{"batch": list}, trkBasic(key)...))
}

const (
	subSourceStatus = `subscription($ws: ID!) { sourceStatusChanged(workspaceId: $ws) { id name status } }`
	subUsage        = `subscription($ws: ID!) { workspaceUsageChanged(workspaceId: $ws) { month apiCalls } }`
)

// ---------------------------------------------------------------------------------------------
// Tests

// TestConformanceSubscriptions runs conformance/subscriptions.mjs: the graphql-ws npm client
// subscribes as A, B and an outsider; this test makes the changes once the server runs the
// subscriptions, and the script checks what each of them received.
func TestConformanceSubscriptions(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-conf", "Ada")
	bea := tm.add(t, "bea", "Bea", "MEMBER")
	outsider := newTeam(t, s, "sub-conf-out", "Otto").owner
	srcID, key := tm.source(t, "Web")
	fixture, _ := json.Marshal(map[string]string{"a": tm.owner.tok, "aUserId": tm.owner.id, "b": bea.tok, "bUserId": bea.id,
		"outsider": outsider.tok, "workspaceId": tm.wsID, "sourceId": srcID})
	t.Setenv("SUBSCRIPTIONS_FIXTURE", string(fixture))

	// The changes run beside the script, once A's and B's notification streams and B's status
	// stream are running (the outsider's never runs). They report errors rather than stop the test.
	subscribers := subBus(t, s).Subscribers
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acted := make(chan error, 1)
	go func() {
		acted <- func() error {
			for subscribers() < 3 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(10 * time.Millisecond):
				}
			}
			steps := []struct{ tok, query string }{
				{tm.owner.tok, fmt.Sprintf(`mutation { sourceUpdate(input: {sourceId: %q, name: "Web by Ada"}) { userErrors { message } } }`, srcID)},
				{bea.tok, fmt.Sprintf(`mutation { accessTokenCreate(input: {workspaceId: %q, name: "bea-ci", role: MEMBER}) { userErrors { message } } }`, tm.wsID)},
			}
			for _, st := range steps {
				if err := subTryPost(s, st.tok, st.query, nil); err != nil {
					return err
				}
			}
			return subTryTrack(s, key, `{"userId": "sub-conf-1", "event": "Signed Up"}`)
		}()
	}()
	runNode(t, "subscriptions.mjs", "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql")
	if err := <-acted; err != nil {
		t.Error(err)
	}
}

// subTryPost runs a mutation without the testing.T (from a goroutine) and reports what failed.
func subTryPost(s *server, tok, query string, vars map[string]any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || bytes.Contains(b, []byte(`"errors"`)) || bytes.Contains(b, []byte(`"message"`)) {
		return fmt.Errorf("%s: %d %s", query, res.StatusCode, b)
	}
	return nil
}

// subTryTrack posts one event with a write key without the testing.T.
func subTryTrack(s *server, key, event string) error {
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/track", strings.NewReader(event))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(key, "")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("/v1/track: %d %s", res.StatusCode, b)
	}
	return nil
}

// TestSubscriptionEndsWhenAccessEnds: a member removed from the workspace, or demoted below what
// a stream needs, gets an error (FORBIDDEN) instead of the next message; the others go on.
func TestSubscriptionEndsWhenAccessEnds(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-removed", "Ada")
	bea := tm.add(t, "bea", "Bea", "MEMBER")
	cy := tm.add(t, "cy", "Cy", "MEMBER")
	srcID, key := tm.source(t, "Web")
	ws := map[string]any{"ws": tm.wsID}
	named := func(name string) func(map[string]any) bool {
		return func(d map[string]any) bool { return trkStr(d, "sourceStatusChanged.name") == name }
	}

	t.Run("Removed", func(t *testing.T) {
		bc := subDial(t, s, bea.tok)
		bop := bc.subscribe(t, subSourceStatus, ws)
		aop := subDial(t, s, tm.owner.tok).subscribe(t, subSourceStatus, ws)
		subWaitSubscribers(t, s, 2)
		tm.rename(t, tm.owner.tok, srcID, "Web 2")
		bop.nextWhere(t, 5*time.Second, "Web 2", named("Web 2"))
		aop.nextWhere(t, 5*time.Second, "Web 2", named("Web 2"))

		tm.mutate(t, tm.owner.tok, "memberRemove", "MemberRemoveInput", "removedMembershipId", map[string]any{"membershipId": bea.membership})
		tm.rename(t, tm.owner.tok, srcID, "Web 3")
		m := bop.next(t, 5*time.Second)
		if m.Type != "error" || m.code() != "FORBIDDEN" || strings.Contains(string(m.Payload), "Web 3") {
			t.Errorf("Bea's subscription after her removal: %s %s, want an error FORBIDDEN", m.Type, m.Payload)
		}
		aop.nextWhere(t, 5*time.Second, "Web 3", named("Web 3"))
		subWaitSubscribers(t, s, 1)

		// Her session lives on, her socket too; the workspace is now one she is not in.
		again := bc.subscribe(t, subSourceStatus, ws)
		if m := again.next(t, 5*time.Second); m.code() != "NOT_FOUND" {
			t.Errorf("subscribing again: %s %s, want NOT_FOUND", m.Type, m.Payload)
		}
		if m := again.next(t, 5*time.Second); m.Type != "complete" {
			t.Errorf("after the refusal: %s %s, want complete", m.Type, m.Payload)
		}
	})

	t.Run("Demoted", func(t *testing.T) {
		op := subDial(t, s, cy.tok).subscribe(t, subUsage, ws)
		subWaitSubscribers(t, s, 1)
		subTrack(t, s, key, map[string]any{"type": "track", "userId": "u1", "event": "E"})
		if m := op.next(t, 5*time.Second); m.Type != "next" {
			t.Fatalf("usage: %s %s", m.Type, m.Payload)
		}
		tm.mutate(t, tm.owner.tok, "memberUpdate", "MemberUpdateInput", "membership { id }", map[string]any{"membershipId": cy.membership, "role": "MINIMAL"})
		subTrack(t, s, key, map[string]any{"type": "track", "userId": "u2", "event": "E"})
		if m := op.next(t, 5*time.Second); m.Type != "error" || m.code() != "FORBIDDEN" {
			t.Errorf("usage after Cy became MINIMAL: %s %s, want an error FORBIDDEN", m.Type, m.Payload)
		}
		subWaitSubscribers(t, s, 0)
	})
}

// TestSubscriptionClosedWhenTokenRevoked: revoking an access token closes its websockets with
// 4403 at once, without waiting for a message.
func TestSubscriptionClosedWhenTokenRevoked(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-token", "Ada")
	p := tm.mutate(t, tm.owner.tok, "accessTokenCreate", "AccessTokenCreateInput", "accessToken { id } secret",
		map[string]any{"workspaceId": tm.wsID, "name": "dashboard", "role": "MEMBER"})
	tok, tokID := trkStr(p, "secret"), trkStr(p, "accessToken.id")
	c := subDial(t, s, tok)
	c.subscribe(t, subSourceStatus, map[string]any{"ws": tm.wsID})
	c.subscribe(t, `subscription { notificationReceived { id } }`, nil)
	subWaitSubscribers(t, s, 2)

	tm.mutate(t, tm.owner.tok, "accessTokenRevoke", "AccessTokenRevokeInput", "accessToken { id }", map[string]any{"accessTokenId": tokID})
	if code := c.closedWith(t, 5*time.Second); code != 4403 {
		t.Errorf("close code %d, want 4403", code)
	}
	subWaitSubscribers(t, s, 0)
	if r := dlvPost(t, s, tok, `{ viewer { id } }`, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("the revoked token over HTTP: %d %s", r.Status, r.Raw)
	}
	if _, _, err := subDialInit(s, tok); err == nil || !strings.Contains(err.Error(), "4403") {
		t.Errorf("a new socket with the revoked token: %v, want a 4403 close", err)
	}
}

// subDialInit opens a socket and sends connection_init with bearer; it returns the ack, or the
// error the server closed the socket with.
func subDialInit(s *server, bearer string) (*websocket.Conn, subMsg, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", nil)
	if err != nil {
		return nil, subMsg{}, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + bearer}}); err != nil {
		ws.Close()
		return nil, subMsg{}, err
	}
	var ack subMsg
	if err := ws.ReadJSON(&ack); err != nil {
		ws.Close()
		return nil, subMsg{}, err
	}
	return ws, ack, nil
}

// TestSubscriptionLiveEvents: the live tail shows every event arriving at its source, discarded
// ones with their reason, in the order they were stored; the type filter and other sources'
// events stay out.
func TestSubscriptionLiveEvents(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-live", "Ada")
	srcID, key := tm.source(t, "Web")
	_, otherKey := tm.source(t, "Other")
	const q = `subscription($id: ID!, $type: EventType) { liveEvents(sourceId: $id, type: $type) {
		sourceId event { id type status event userId discardReason discardMessage } } }`
	c := subDial(t, s, tm.owner.tok)
	all := c.subscribe(t, q, map[string]any{"id": srcID})
	identifies := c.subscribe(t, q, map[string]any{"id": srcID, "type": "IDENTIFY"})
	subWaitSubscribers(t, s, 2)

	subTrack(t, s, otherKey, map[string]any{"type": "track", "userId": "elsewhere", "event": "Other"})
	subTrack(t, s, key,
		map[string]any{"type": "track", "userId": "u1", "event": "Signed Up"},
		map[string]any{"type": "track", "event": "Anonymous"},
		map[string]any{"type": "track", "userId": "u2"},
		map[string]any{"type": "identify", "userId": "u3"},
	)
	tm.mutate(t, tm.owner.tok, "sourceDisable", "SourceIdInput", "source { id }", map[string]any{"sourceId": srcID})
	subTrack(t, s, key, map[string]any{"type": "track", "userId": "u4", "event": "Too Late"})

	want := []struct{ typ, status, reason, user string }{
		{"TRACK", "ACCEPTED", "", "u1"},
		{"TRACK", "DISCARDED", "MISSING_IDENTITY", ""},
		{"TRACK", "DISCARDED", "MISSING_EVENT", "u2"},
		{"IDENTIFY", "ACCEPTED", "", "u3"},
		{"TRACK", "DISCARDED", "SOURCE_DISABLED", "u4"},
	}
	for i, w := range want {
		d := all.next(t, 5*time.Second).data(t)
		e := trkObj(d, "liveEvents.event")
		got := struct{ typ, status, reason, user string }{trkStr(e, "type"), trkStr(e, "status"), trkStr(e, "discardReason"), trkStr(e, "userId")}
		if got != w || trkStr(d, "liveEvents.sourceId") != srcID || trkStr(e, "id") == "" {
			t.Errorf("event %d: %v, want %v", i, d, w)
		}
		if (w.reason != "") != (trkStr(e, "discardMessage") != "") {
			t.Errorf("event %d: discardMessage %q with reason %q", i, trkStr(e, "discardMessage"), w.reason)
		}
	}
	if d := identifies.next(t, 5*time.Second).data(t); trkStr(d, "liveEvents.event.userId") != "u3" {
		t.Errorf("liveEvents(type: IDENTIFY): %v", d)
	}
	select {
	case m := <-identifies.ch:
		t.Errorf("liveEvents(type: IDENTIFY) got more: %s", m.Payload)
	default:
	}
}

// TestSubscriptionHealthIssueChanged: a source's issue is published when it opens, grows and is
// acknowledged.
func TestSubscriptionHealthIssueChanged(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-health", "Ada")
	srcID, key := tm.source(t, "Web")
	op := subDial(t, s, tm.owner.tok).subscribe(t, `subscription($ws: ID!) { healthIssueChanged(workspaceId: $ws) {
		id targetKind targetId errorType status count target { ... on Source { id } } } }`, map[string]any{"ws": tm.wsID})
	subWaitSubscribers(t, s, 1)

	subTrack(t, s, key, map[string]any{"type": "track", "event": "No One"})
	is := trkObj(op.next(t, 5*time.Second).data(t), "healthIssueChanged")
	if is["targetKind"] != "SOURCE" || is["targetId"] != srcID || trkStr(is, "target.id") != srcID || is["errorType"] != "MISSING_IDENTITY" ||
		is["status"] != "OPEN" || trkInt(is["count"]) != 1 {
		t.Fatalf("opened: %v", is)
	}
	subTrack(t, s, key, map[string]any{"type": "track", "event": "No One"}, map[string]any{"type": "track", "event": "No One Either"})
	if grown := trkObj(op.next(t, 5*time.Second).data(t), "healthIssueChanged"); grown["id"] != is["id"] || trkInt(grown["count"]) != 3 || grown["status"] != "OPEN" {
		t.Errorf("grown: %v, want the same issue with count 3", grown)
	}
	tm.mutate(t, tm.owner.tok, "healthIssueAcknowledge", "HealthIssueAcknowledgeInput", "issue { id }", map[string]any{"issueId": is["id"]})
	if acked := trkObj(op.next(t, 5*time.Second).data(t), "healthIssueChanged"); acked["id"] != is["id"] || acked["status"] != "ACKNOWLEDGED" {
		t.Errorf("acknowledged: %v", acked)
	}
}

// TestSubscriptionUsageCoalesced: a burst of events over a couple of seconds gives at most one
// usage message a second, the last of which counts them all.
func TestSubscriptionUsageCoalesced(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-usage", "Ada")
	_, key := tm.source(t, "Web")
	op := subDial(t, s, tm.owner.tok).subscribe(t, subUsage, map[string]any{"ws": tm.wsID})
	subWaitSubscribers(t, s, 1)

	const requests = 40
	start := time.Now()
	for i := range requests {
		subTrack(t, s, key, map[string]any{"type": "track", "userId": fmt.Sprint("burst-", i), "event": "Burst"})
		time.Sleep(50 * time.Millisecond) // spreads the burst over more than two seconds
	}
	burst := time.Since(start)
	var at []time.Time
	for last := 0; last < requests; {
		m := op.next(t, 5*time.Second)
		d := m.data(t)
		at = append(at, m.At)
		n := trkInt(trkPath(d, "workspaceUsageChanged.apiCalls"))
		if n < last || trkStr(d, "workspaceUsageChanged.month") != trkMonth() {
			t.Errorf("usage went from %d to %v", last, d)
		}
		last = n
	}
	span := at[len(at)-1].Sub(start)
	if limit := int(span/time.Second) + 1; len(at) > limit {
		t.Errorf("%d usage messages in %s, want at most %d", len(at), span.Round(time.Millisecond), limit)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 700*time.Millisecond {
			t.Errorf("usage messages %d and %d only %s apart", i-1, i, gap.Round(time.Millisecond))
		}
	}
	t.Logf("%d tracking requests over %s: %d usage messages", requests, burst.Round(time.Millisecond), len(at))
}

// TestUsageComputedOnlyWhenWatched: a workspace's usage is computed (and published) at a tick
// only while someone subscribes to it: it reads every identity of the month, and nobody may be
// watching. The relay hears every published message, as it would to carry it to other replicas.
func TestUsageComputedOnlyWhenWatched(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-usage-idle", "Ada")
	_, key := tm.source(t, "Web")
	var published atomic.Int64
	subBus(t, s).Relay(func(m bus.Message) {
		if m.Topic == live.UsageTopic(tm.wsID) {
			published.Add(1)
		}
	})
	for i := range 3 {
		subTrack(t, s, key, map[string]any{"type": "track", "userId": fmt.Sprint("idle-", i), "event": "Unwatched"})
		time.Sleep(time.Second) // a tick of the publisher
	}
	if n := published.Load(); n != 0 {
		t.Errorf("usage published %d times with nobody subscribed, want 0", n)
	}
	op := subDial(t, s, tm.owner.tok).subscribe(t, subUsage, map[string]any{"ws": tm.wsID})
	subWaitSubscribers(t, s, 1)
	subTrack(t, s, key, map[string]any{"type": "track", "userId": "watched", "event": "Watched"})
	if n := trkInt(trkPath(op.next(t, 5*time.Second).data(t), "workspaceUsageChanged.apiCalls")); n != 4 {
		t.Errorf("usage counts %d calls, want 4", n)
	}
	if published.Load() == 0 {
		t.Error("usage reached the subscriber without being published")
	}
}

// TestSubscriptionSlowSubscriber: a subscriber that stops reading its socket while many events
// are published does not hold anyone up: the publisher goes on, another subscriber of the same
// stream gets every event at once and queries are answered. Once the socket's buffers and the
// subscription's queue are full the bus drops it, and when the client reads again it finds the
// events that fit and then an error, SLOW_SUBSCRIBER.
func TestSubscriptionSlowSubscriber(t *testing.T) {
	s := startServer(t, subQuiet)
	tm := newTeam(t, s, "sub-slow", "Ada")
	srcID, key := tm.source(t, "Web")
	const q = `subscription($id: ID!) { liveEvents(sourceId: $id) { event { id payload } } }`
	vars := map[string]any{"id": srcID}
	slow, ack, err := subDialInit(s, tm.owner.tok)
	if err != nil || ack.Type != "connection_ack" {
		t.Fatalf("slow client: %v %v", ack, err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": q, "variables": vars}}); err != nil {
		t.Fatal(err)
	}
	fast := subDial(t, s, tm.owner.tok).subscribe(t, q, vars)
	subWaitSubscribers(t, s, 2)

	// Enough ~20 kB events to fill the kernel's socket buffers (the server's send buffer can grow
	// to tcp_wmem's maximum), then the subscription's queue of 64, with room to spare.
	const eventBytes, perBatch = 20_000, 20
	batches := (subSendBufferMax()/eventBytes + 64 + 150 + perBatch - 1) / perBatch
	blob := strings.Repeat("x", eventBytes)
	var slowestFast, slowestQuery time.Duration
	for b := range batches {
		events := make([]map[string]any, perBatch)
		for i := range events {
			events[i] = map[string]any{"type": "track", "userId": fmt.Sprint("slow-", b, "-", i), "event": "Big", "properties": map[string]any{"blob": blob}}
		}
		sent := time.Now()
		subTrack(t, s, key, events...)
		for range events {
			fast.next(t, 5*time.Second)
		}
		slowestFast = max(slowestFast, time.Since(sent))
		sent = time.Now()
		dlvData(t, dlvPost(t, s, tm.owner.tok, `{ viewer { id } }`, nil))
		slowestQuery = max(slowestQuery, time.Since(sent))
	}
	total := batches * perBatch
	// The bus dropped the slow subscription already, while its socket is still stuck.
	subWaitSubscribers(t, s, 1)
	if slowestFast > 2*time.Second || slowestQuery > 2*time.Second {
		t.Errorf("while a subscriber did not read, a batch reached the other subscriber in up to %s and a query took up to %s", slowestFast, slowestQuery)
	}

	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	nexts := 0
	for {
		var m subMsg
		if err := slow.ReadJSON(&m); err != nil {
			t.Fatalf("the slow client read %d of %d events, then %v; want an error message", nexts, total, err)
		}
		if m.Type == "next" {
			nexts++
			continue
		}
		if m.Type != "error" || m.code() != "SLOW_SUBSCRIBER" {
			t.Errorf("after %d events: %s %s, want an error SLOW_SUBSCRIBER", nexts, m.Type, m.Payload)
		}
		break
	}
	if nexts >= total {
		t.Errorf("the slow client got all %d events: it was never dropped", total)
	}
	if n := subBus(t, s).Subscribers(); n != 1 {
		t.Errorf("%d subscribers on the bus, want the other one", n)
	}
	t.Logf("%d events of %d B; the slow subscriber got %d, then SLOW_SUBSCRIBER; the other got each batch within %s, queries within %s",
		total, eventBytes, nexts, slowestFast.Round(time.Millisecond), slowestQuery.Round(time.Millisecond))
}

// subSendBufferMax is the most a TCP socket's send buffer may grow to (tcp_wmem's maximum on
// Linux; 4 MiB, Linux's default, elsewhere).
func subSendBufferMax() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n
		}
	}
	return 4 << 20
}

// TestSubscriptionLeaks opens 1,000 subscriptions to a workspace's sources while the sources keep
// changing, and ends them in the three ways they end: half with complete, a quarter by dropping
// the TCP connection, a quarter by closing the websocket. Every subscription stops (none is left
// on the bus), and goroutines and heap come back to where they were. A first round warms up what
// lives as long as the process (pools sized by the peak, caches); the second is measured.
func TestSubscriptionLeaks(t *testing.T) {
	// One user opens many websockets here: more than the default cap per user.
	s := startServer(t, subQuiet, func(c *config.Config) { c.Limits.WSPerUser = 10_000 })
	tm := newTeam(t, s, "sub-leaks", "Ada")
	srcID, _ := tm.source(t, "Web")

	subLeakRound(t, s, tm.owner.tok, tm.wsID, srcID)
	goroutines, heap := subSettle(t)
	peakGoroutines, peakHeap := subLeakRound(t, s, tm.owner.tok, tm.wsID, srcID)

	// Back to the baseline, within what the runtime's bookkeeping moves by between two rounds.
	const goroutineSlack, heapSlack = 3, 2 << 20
	var g int
	var h uint64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		http.DefaultClient.CloseIdleConnections()
		if g, h = subSettleOnce(); g <= goroutines+goroutineSlack && h <= heap+heapSlack {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d goroutines (baseline %d), heap in use %.1f MiB (baseline %.1f, peak %.1f)",
				g, goroutines, float64(h)/(1<<20), float64(heap)/(1<<20), float64(peakHeap)/(1<<20))
		}
	}
	t.Logf("goroutines %d → %d with 1,000 subscriptions on 550 sockets → %d; heap in use %.1f → %.1f → %.1f MiB",
		goroutines, peakGoroutines, g, float64(heap)/(1<<20), float64(peakHeap)/(1<<20), float64(h)/(1<<20))
}

// subLeakRound opens 1,000 subscriptions to the sources of workspace wsID on 550 sockets and ends
// them (complete, dropped connections, closed sockets) while source srcID keeps changing, checking
// at each step that the server's subscriptions stop; it returns the goroutines and heap in use at
// the peak.
func subLeakRound(t *testing.T, s *server, tok, wsID, srcID string) (peakGoroutines int, peakHeap uint64) {
	t.Helper()
	// The source changes all along: the subscriptions end mid-stream. Fewer changes than a
	// subscription's queue holds (64): more would make the bus drop a leaked subscription as too
	// slow, and hide it.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; i < 40; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			_ = subTryPost(s, tok, `mutation($id: ID!, $name: String!) { sourceUpdate(input: {sourceId: $id, name: $name}) { userErrors { message } } }`,
				map[string]any{"id": srcID, "name": fmt.Sprint("Web ", i)})
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-stopped
		}
	}()

	subscribe := map[string]any{"query": subSourceStatus, "variables": map[string]any{"ws": wsID}}
	// The clients never read: the server's messages wait in the sockets' buffers, which is what
	// a dropped connection leaves behind.
	open := func(subs int) *websocket.Conn {
		ws, ack, err := subDialInit(s, tok)
		if err != nil || ack.Type != "connection_ack" {
			t.Fatalf("dial: %v %v", ack, err)
		}
		_ = ws.SetReadDeadline(time.Time{})
		for i := range subs {
			if err := ws.WriteJSON(map[string]any{"id": fmt.Sprint(i + 1), "type": "subscribe", "payload": subscribe}); err != nil {
				t.Fatal(err)
			}
		}
		return ws
	}
	closeSocket := func(ws *websocket.Conn) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = ws.Close()
	}
	const perConn = 10
	var completed, dropped, closed []*websocket.Conn
	for range 500 / perConn {
		completed = append(completed, open(perConn))
	}
	for range 250 {
		dropped = append(dropped, open(1))
	}
	for range 250 {
		closed = append(closed, open(1))
	}
	subWaitSubscribers(t, s, 1000)
	if n := subBus(t, s).Subscribers(); n != 1000 {
		t.Errorf("%d subscribers on the bus, want 1000", n)
	}
	peakGoroutines, peakHeap = subSettleOnce()

	for _, ws := range completed {
		for i := range perConn {
			if err := ws.WriteJSON(map[string]any{"id": fmt.Sprint(i + 1), "type": "complete"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	subWaitSubscribers(t, s, 500)
	for _, ws := range dropped {
		// Half a frame header, then the connection goes away without a close frame.
		_, _ = ws.NetConn().Write([]byte{0x81})
		_ = ws.NetConn().Close()
	}
	subWaitSubscribers(t, s, 250)
	for _, ws := range closed {
		closeSocket(ws)
	}
	subWaitSubscribers(t, s, 0)
	for _, ws := range completed {
		closeSocket(ws)
	}
	close(stop)
	<-stopped
	if n := subBus(t, s).Subscribers(); n != 0 {
		t.Errorf("%d subscribers left on the bus", n)
	}
	subWait(t, "no websocket left", 10*time.Second, func() bool {
		return strings.Contains(get(t, s.URL+"/metrics"), "\njunction_websocket_connections 0\n")
	})
	return peakGoroutines, peakHeap
}

// subSettle measures goroutines and heap in use after a collection, with no idle HTTP
// connection of the test's client (each holds two goroutines).
func subSettle(tb testing.TB) (goroutines int, heapInuse uint64) {
	tb.Helper()
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond) // let the closed connections' goroutines return
	return subSettleOnce()
}

func subSettleOnce() (int, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}
