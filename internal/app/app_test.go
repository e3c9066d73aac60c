package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/junctioncdp/junction/internal/app"
	"github.com/junctioncdp/junction/internal/config"
)

func TestHealthAndReadiness(t *testing.T) {
	s := startServer(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d %v", path, res.StatusCode, body)
		}
	}
	t.Run("NotReadyWhenDatabaseGone", func(t *testing.T) {
		s.App.DB().Close()
		res, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("readyz = %d with the database closed, want 503", res.StatusCode)
		}
		res, _ = http.Get(s.URL + "/healthz")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("healthz = %d: the process is alive", res.StatusCode)
		}
	})
}

func TestQueryAndRequestID(t *testing.T) {
	s := startServer(t)
	r := s.post(t, `{ serverInfo { version startedAt now } }`, nil, "X-Request-Id", "trace-42")
	info, _ := r.Data["serverInfo"].(map[string]any)
	if r.Status != 200 || info["version"] == "" || info["now"] == nil {
		t.Fatalf("serverInfo: %d %s", r.Status, r.Raw)
	}
	if got := r.Header.Get("X-Request-Id"); got != "trace-42" {
		t.Errorf("request id not echoed: %q", got)
	}
	if !strings.Contains(s.Logs.String(), `"request_id":"trace-42"`) {
		t.Error("access log lacks the request id")
	}
	r = s.post(t, `{ __typename }`, nil, "X-Request-Id", "bad id {forged} log line")
	if id := r.Header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \n") {
		t.Errorf("unsafe request id accepted: %q", id)
	}
	t.Run("NodeOfUnknownIDIsNull", func(t *testing.T) {
		r := s.post(t, `{ a: node(id: "nope_01") { id } b: node(id: "") { id } c: nodes(ids: ["x_1", "garbage"]) { id } }`, nil)
		if r.Status != 200 || len(r.Errors) > 0 || r.Data["a"] != nil || r.Data["b"] != nil {
			t.Errorf("%s", r.Raw)
		}
	})
	t.Run("NodesCapped", func(t *testing.T) {
		ids := make([]string, 101)
		for i := range ids {
			ids[i] = "x_1"
		}
		r := s.post(t, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids})
		if len(r.Errors) == 0 {
			t.Errorf("101 ids accepted: %s", r.Raw)
		}
	})
	t.Run("BadIntervalNamesArgument", func(t *testing.T) {
		// Subscriptions are refused over plain POST; the argument rule is checked over a websocket
		// in TestWebsocketSubscription.
		r := s.post(t, `subscription { serverTime(intervalSeconds: 0) }`, nil)
		if r.Status != 400 {
			t.Errorf("%d %s", r.Status, r.Raw)
		}
	})
}

func TestMetrics(t *testing.T) {
	s := startServer(t)
	s.post(t, `{ __typename }`, nil)
	s.post(t, `mutation { nope }`, nil)
	c := dialWS(t, s, nil)
	wsInit(t, c)
	metrics := get(t, s.URL+"/metrics")
	for _, want := range []string{
		`junction_graphql_operations_total{result="ok",type="query"} 1`,
		`junction_graphql_operation_duration_seconds_count{type="query"} 1`,
		`junction_http_requests_total{code="200",route="graphql"}`,
		`junction_http_request_duration_seconds_bucket{route="graphql",le="0.005"}`,
		`junction_websocket_connections 1`,
		`junction_websocket_connections_total 1`,
		`junction_db_open_connections{pool="read"}`,
		`junction_db_max_open_connections{pool="write"} 1`,
		`junction_db_statements_total`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	c.Close()
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func dialWS(t *testing.T, s *server, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	c, res, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", header)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	return c
}

func wsInit(t *testing.T, c *websocket.Conn) {
	t.Helper()
	if err := c.WriteJSON(map[string]any{"type": "connection_init"}); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.ReadJSON(&ack); err != nil || ack["type"] != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
}

func TestWebsocketSubscription(t *testing.T) {
	s := startServer(t)
	c := dialWS(t, s, nil)
	defer c.Close()
	wsInit(t, c)
	_ = c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "subscription { serverTime(intervalSeconds: 1) }"}})
	var msg struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := c.ReadJSON(&msg); err != nil || msg.Type != "next" || msg.ID != "1" || !strings.Contains(string(msg.Payload), "serverTime") {
		t.Fatalf("first message: %+v %v", msg, err)
	}
	_ = c.WriteJSON(map[string]any{"id": "2", "type": "subscribe", "payload": map[string]any{"query": "subscription { serverTime(intervalSeconds: 0) }"}})
	for {
		if err := c.ReadJSON(&msg); err != nil {
			t.Fatal(err)
		}
		if msg.ID == "2" {
			break
		}
	}
	if !strings.Contains(string(msg.Payload), "intervalSeconds must be between 1 and 60") {
		t.Errorf("bad interval: %s %s", msg.Type, msg.Payload)
	}
}

func TestWebsocketOrigin(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.Origins = []string{"https://app.example"} })
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	if _, res, err := d.Dial(url, http.Header{"Origin": {"https://evil.example"}}); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: err %v", err)
	}
	c, _, err := d.Dial(url, http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	c.Close()
	c, _, err = d.Dial(url, http.Header{"Origin": {s.URL}})
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	c.Close()
}

// TestGracefulShutdown checks that shutting down stops accepting connections, lets an in-flight
// request finish, closes websockets with a 1001 close frame, and leaves no goroutine behind.
func TestGracefulShutdown(t *testing.T) {
	baseline := runtime.NumGoroutine()
	s := startServer(t)

	ws := dialWS(t, s, nil)
	wsInit(t, ws)
	_ = ws.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "subscription { serverTime }"}})

	// An in-flight request on a raw connection: headers sent, body still coming when shutdown starts.
	body := `{"query":"{ serverInfo { version } }"}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	waitFor(t, "request in flight", func() bool {
		return strings.Contains(get(t, s.URL+"/metrics"), `junction_http_requests_in_flight{route="graphql"} 1`)
	})
	http.DefaultClient.CloseIdleConnections()

	stopped := make(chan error, 1)
	go func() { stopped <- s.stop(t) }()

	// The websocket gets a proper close frame with 1001.
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var closeErr *websocket.CloseError
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !errors.As(err, &closeErr) {
				t.Fatalf("websocket ended without a close frame: %v", err)
			}
			break
		}
	}
	if closeErr.Code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want 1001", closeErr.Code)
	}

	// New connections are refused while the in-flight request is still served.
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	_, _ = conn.Write([]byte(body[10:]))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), "version") {
		t.Errorf("in-flight request: %d %s", res.StatusCode, b)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve returned %v", err)
	}
	ws.Close()
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline+2 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestPostgresNeedsEncryptionKey: on PostgreSQL a key file beside the database does not exist, and
// one on a server's disk would give each replica its own key: ENCRYPTION_KEY is required.
func TestPostgresNeedsEncryptionKey(t *testing.T) {
	cfg := config.Default()
	cfg.DatabaseURL = "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable"
	_, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
		t.Errorf("app.New on PostgreSQL without ENCRYPTION_KEY: %v, want an error naming ENCRYPTION_KEY", err)
	}
}

// TestNULInText: PostgreSQL's text cannot hold a NUL character, so no backend takes one. Names are
// refused by their own rules; text that reaches a statement otherwise, such as a search, is
// refused with BAD_USER_INPUT rather than an internal error.
func TestNULInText(t *testing.T) {
	s := startServer(t)
	tok, _ := dlvSignUp(t, s, "nul@example.com")
	r := dlvPost(t, s, tok, `mutation { workspaceCreate(input: {name: "Nul", slug: "nul"}) { workspace { id } userErrors { field message } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatal(r.Raw)
	}
	r = dlvPost(t, s, tok, `{ workspace(slug: "nul") { sources(first: 5, filter: {search: "a\u0000"}) { nodes { id } } } }`, nil)
	if got := r.errorCode(); got != "BAD_USER_INPUT" || !strings.Contains(r.errorMessage(), "NUL") {
		t.Errorf("a search with a NUL: %s, want BAD_USER_INPUT naming NUL", r.Raw)
	}
}
