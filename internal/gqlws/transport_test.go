package gqlws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/junctioncdp/junction/internal/gqlws"
)

func TestSupports(t *testing.T) {
	for _, tt := range []struct {
		name    string
		method  string
		upgrade string
		want    bool
	}{
		{"WebsocketUpgrade", http.MethodGet, "websocket", true},
		{"CaseInsensitive", http.MethodGet, "WebSocket", true},
		{"TokenList", http.MethodGet, "h2c, websocket", true},
		{"NoUpgrade", http.MethodGet, "", false},
		{"OtherUpgrade", http.MethodGet, "h2c", false},
		{"Post", http.MethodPost, "websocket", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/graphql", nil)
			if tt.upgrade != "" {
				r.Header.Set("Upgrade", tt.upgrade)
			}
			if got := (&gqlws.Transport{}).Supports(r); got != tt.want {
				t.Fatalf("Supports = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGraphQLTransportWS(t *testing.T) {
	t.Run("PingPong", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, transportWS)
		// A ping needs no connection_init; the pong echoes its payload.
		write(t, c, `{"type":"ping","payload":{"n":1}}`)
		expect(t, c, msg{Type: "pong", Payload: json.RawMessage(`{"n":1}`)})
		write(t, c, `{"type":"ping"}`)
		expect(t, c, msg{Type: "pong"})
		// An unsolicited pong is a heartbeat: tolerated.
		write(t, c, `{"type":"pong"}`)
		expectPong(t, c)
	})

	t.Run("ServerPing", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{PingInterval: 10 * time.Millisecond})
		c := dialInit(t, url)
		expect(t, c, msg{Type: "ping"})
		write(t, c, `{"type":"pong"}`)
		subscribe(t, c, "subscribe", "q", "query { name }")
		expect(t, c, msg{ID: "q", Type: "next", Payload: json.RawMessage(`{"data":{"name":"test"}}`)}, "ping")
	})

	t.Run("Subscription", func(t *testing.T) {
		es, url := newTestServer(t, &gqlws.Transport{})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "s", "subscription { name }")
		for range 2 {
			es.SendNextSubscriptionMessage()
			expect(t, c, msg{ID: "s", Type: "next", Payload: json.RawMessage(`{"data":{"name":"test"}}`)})
		}
		es.SendCompleteSubscriptionMessage()
		expect(t, c, msg{ID: "s", Type: "complete"})
		// The id is free again as soon as its complete is read.
		subscribe(t, c, "subscribe", "s", "subscription { name }")
		es.SendNextSubscriptionMessage()
		expect(t, c, msg{ID: "s", Type: "next", Payload: json.RawMessage(`{"data":{"name":"test"}}`)})
	})

	t.Run("QueryAndMutation", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "q", "query { name }")
		expect(t, c, msg{ID: "q", Type: "next", Payload: json.RawMessage(`{"data":{"name":"test"}}`)})
		expect(t, c, msg{ID: "q", Type: "complete"})
		// gqlgen's test server answers every mutation with an error response.
		subscribe(t, c, "subscribe", "m", "mutation { name }")
		expect(t, c, msg{ID: "m", Type: "next", Payload: json.RawMessage(`{"errors":[{"message":"mutations are not supported"}],"data":null}`)})
		expect(t, c, msg{ID: "m", Type: "complete"})
	})

	t.Run("RequestError", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "q", "query { nope }")
		m := read(t, c)
		var errs []struct{ Message string }
		if err := json.Unmarshal(m.Payload, &errs); err != nil {
			t.Fatalf("error payload %s is not an array of errors: %v", m.Payload, err)
		}
		if m.ID != "q" || m.Type != "error" || len(errs) != 1 || !strings.Contains(errs[0].Message, "nope") {
			t.Fatalf("got %s %q %s, want an error naming the field", m.Type, m.ID, m.Payload)
		}
		// An error ends the operation: no complete follows.
		expectPong(t, c)
	})

	t.Run("InitFuncContextAndClientComplete", func(t *testing.T) {
		p, url := newProbe(t, &gqlws.Transport{
			InitFunc: func(ctx context.Context, payload map[string]any) (context.Context, error) {
				return context.WithValue(ctx, userKey{}, payload["user"]), nil
			},
		})
		c := dial(t, url, transportWS)
		initialise(t, c, `{"user":"ada"}`)
		subscribe(t, c, "subscribe", "s", "subscription { user }")
		expect(t, c, msg{ID: "s", Type: "next", Payload: json.RawMessage(`{"data":{"user":"ada"}}`)})
		write(t, c, `{"type":"complete","id":"s"}`)
		select {
		case <-p.cancelled:
		case <-time.After(timeout):
			t.Fatal("resolver context not cancelled after the client's complete")
		}
		// Nothing more for "s" (not even a complete): the pong comes next.
		expectPong(t, c)
		// A complete for an id that is not running is ignored.
		write(t, c, `{"type":"complete","id":"s"}`)
		expectPong(t, c)
	})

	t.Run("OperationPanic", func(t *testing.T) {
		_, url := newProbe(t, &gqlws.Transport{})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "b", "subscription { boom }")
		expect(t, c, msg{ID: "b", Type: "error", Payload: json.RawMessage(`[{"message":"internal system error"}]`)})
		expectPong(t, c)
	})

	t.Run("SubscriptionLimit", func(t *testing.T) {
		es, url := newTestServer(t, &gqlws.Transport{MaxSubscriptions: 2})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "1", "subscription { name }")
		subscribe(t, c, "subscribe", "2", "subscription { name }")
		subscribe(t, c, "subscribe", "3", "subscription { name }")
		m := read(t, c)
		var errs []struct{ Message string }
		_ = json.Unmarshal(m.Payload, &errs)
		if m.ID != "3" || m.Type != "error" || len(errs) != 1 || !strings.Contains(errs[0].Message, "limit is 2") {
			t.Fatalf("got %s %q %s, want an error naming the limit", m.Type, m.ID, m.Payload)
		}
		// Not a close: the others still run, and one that ends frees a place.
		es.SendCompleteSubscriptionMessage()
		first := read(t, c)
		if first.Type != "complete" {
			t.Fatalf("got %s %q, want complete", first.Type, first.ID)
		}
		subscribe(t, c, "subscribe", "3", "subscription { name }")
		es.SendCompleteSubscriptionMessage()
		es.SendCompleteSubscriptionMessage()
		got := map[string]bool{first.ID: true}
		for range 2 {
			m := read(t, c)
			if m.Type != "complete" {
				t.Fatalf("got %s %q, want complete", m.Type, m.ID)
			}
			got[m.ID] = true
		}
		if !got["1"] || !got["2"] || !got["3"] {
			t.Fatalf("completed %v, want 1, 2 and 3", got)
		}
	})

	t.Run("BadRequest", func(t *testing.T) {
		for _, tt := range []struct{ name, raw string }{
			{"InvalidJSON", `{"type":`},
			{"Array", `[]`},
			{"Null", `null`},
			{"String", `"connection_init"`},
			{"MissingType", `{"id":"1"}`},
			{"TypeNotString", `{"type":1}`},
			{"UnknownType", `{"type":"start","id":"1","payload":{"query":"{ name }"}}`},
			{"ServerOnlyType", `{"type":"next","id":"1","payload":{}}`},
			{"SubscribeMissingID", `{"type":"subscribe","payload":{"query":"{ name }"}}`},
			{"SubscribeEmptyID", `{"type":"subscribe","id":"","payload":{"query":"{ name }"}}`},
			{"SubscribeNumericID", `{"type":"subscribe","id":1,"payload":{"query":"{ name }"}}`},
			{"CompleteMissingID", `{"type":"complete"}`},
			{"CompleteNullID", `{"type":"complete","id":null}`},
			{"SubscribeMissingPayload", `{"type":"subscribe","id":"1"}`},
			{"SubscribePayloadNotObject", `{"type":"subscribe","id":"1","payload":"{ name }"}`},
			{"SubscribeMissingQuery", `{"type":"subscribe","id":"1","payload":{}}`},
			{"SubscribeQueryNotString", `{"type":"subscribe","id":"1","payload":{"query":1}}`},
			{"SubscribeVariablesNotObject", `{"type":"subscribe","id":"1","payload":{"query":"{ name }","variables":[1]}}`},
			{"PingPayloadNotObject", `{"type":"ping","payload":"x"}`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, url := newTestServer(t, &gqlws.Transport{})
				c := dialInit(t, url)
				write(t, c, tt.raw)
				_ = c.SetReadDeadline(time.Now().Add(timeout))
				_, _, err := c.ReadMessage()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4400 || ce.Text == "" {
					t.Fatalf("got %v, want close 4400 with a reason", err)
				}
			})
		}
	})

	t.Run("Unauthorized", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dial(t, url, transportWS)
		subscribe(t, c, "subscribe", "1", "query { name }")
		expectClose(t, c, 4401, "Unauthorized")
	})

	t.Run("Forbidden", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{
			InitFunc: func(ctx context.Context, payload map[string]any) (context.Context, error) {
				return nil, errors.New("bad token")
			},
		})
		c := dial(t, url, transportWS)
		write(t, c, `{"type":"connection_init","payload":{"token":"x"}}`)
		expectClose(t, c, 4403, "Forbidden")
	})

	t.Run("RevokedCredentialsClose4403", func(t *testing.T) {
		revoke := make(chan context.CancelFunc, 1)
		_, url := newTestServer(t, &gqlws.Transport{
			InitFunc: func(ctx context.Context, payload map[string]any) (context.Context, error) {
				ctx, cancel := context.WithCancel(ctx)
				revoke <- cancel
				return ctx, nil
			},
		})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "1", "subscription { name }")
		(<-revoke)()
		expectClose(t, c, 4403, "Forbidden")
	})

	t.Run("SubprotocolNotAcceptable", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		for _, offered := range [][]string{nil, {"graphql-sse"}} {
			c := dial(t, url, offered...)
			expectClose(t, c, 4406, "Subprotocol not acceptable")
		}
	})

	t.Run("InitTimeout", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{InitTimeout: 50 * time.Millisecond})
		c := dial(t, url, transportWS)
		expectClose(t, c, 4408, "Connection initialisation timeout")
	})

	t.Run("SubscriberAlreadyExists", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dialInit(t, url)
		subscribe(t, c, "subscribe", "1", "subscription { name }")
		subscribe(t, c, "subscribe", "1", "subscription { name }")
		expectClose(t, c, 4409, "Subscriber for 1 already exists")
	})

	t.Run("TooManyInitialisationRequests", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		c := dialInit(t, url)
		write(t, c, `{"type":"connection_init"}`)
		expectClose(t, c, 4429, "Too many initialisation requests")
	})

	t.Run("ReadLimit", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{ReadLimit: 1024})
		c := dialInit(t, url)
		write(t, c, `{"type":"ping","payload":{"pad":"`+strings.Repeat("x", 2048)+`"}}`)
		expectClose(t, c, websocket.CloseMessageTooBig, "")
	})
}

func TestOrigin(t *testing.T) {
	dialOrigin := func(url, origin string) (*http.Response, error) {
		d := websocket.Dialer{Subprotocols: []string{transportWS}, HandshakeTimeout: timeout}
		c, resp, err := d.Dial(url, http.Header{"Origin": {origin}})
		if err == nil {
			_ = c.Close()
		}
		return resp, err
	}

	t.Run("OtherOriginRejected", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		resp, err := dialOrigin(url, "https://evil.example")
		if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from another origin: %v, want a refused handshake with 403", err)
		}
	})

	t.Run("SameOriginAccepted", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{})
		if _, err := dialOrigin(url, "http"+strings.TrimPrefix(url, "ws")); err != nil {
			t.Fatalf("dial from the same origin: %v", err)
		}
	})

	t.Run("CheckOrigin", func(t *testing.T) {
		_, url := newTestServer(t, &gqlws.Transport{
			CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" },
		})
		if _, err := dialOrigin(url, "https://app.example"); err != nil {
			t.Fatalf("dial from an allowed origin: %v", err)
		}
		if _, err := dialOrigin(url, "http"+strings.TrimPrefix(url, "ws")); !errors.Is(err, websocket.ErrBadHandshake) {
			t.Fatalf("dial from an origin CheckOrigin refuses: %v, want a refused handshake", err)
		}
	})
}

func TestShutdown(t *testing.T) {
	var open atomic.Int64
	tr := &gqlws.Transport{
		OnConnect:    func() { open.Add(1) },
		OnDisconnect: func() { open.Add(-1) },
	}
	_, url := newTestServer(t, tr)
	c := dialInit(t, url)
	subscribe(t, c, "subscribe", "s", "subscription { name }")
	idle := dial(t, url, transportWS)
	expectPong(t, idle) // OnConnect runs after the handshake: wait for a round trip
	if got := open.Load(); got != 2 {
		t.Fatalf("open connections = %d, want 2", got)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- tr.Shutdown(ctx)
	}()
	expectClose(t, c, websocket.CloseGoingAway, "server shutting down")
	expectClose(t, idle, websocket.CloseGoingAway, "server shutting down")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := open.Load(); got != 0 {
		t.Fatalf("open connections after Shutdown = %d, want 0", got)
	}

	d := websocket.Dialer{Subprotocols: []string{transportWS}, HandshakeTimeout: timeout}
	_, resp, err := d.Dial(url, nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v, want a refused handshake with 503", err)
	}
}

// TestNoGoroutineLeak ends connections every way there is, with operations running and the
// server writing, and checks that every goroutine of the transport and of the resolvers returns.
func TestNoGoroutineLeak(t *testing.T) {
	var open atomic.Int64
	tr := &gqlws.Transport{
		PingInterval: 5 * time.Millisecond,
		OnConnect:    func() { open.Add(1) },
		OnDisconnect: func() { open.Add(-1) },
	}
	_, url := newProbe(t, tr)
	baseline := runtime.NumGoroutine()

	const endings = 6
	var leftOpen []*websocket.Conn
	for i := range 10 * endings {
		c := dial(t, url, transportWS)
		if i%endings == 5 { // dropped before connection_init
			_ = c.Close()
			continue
		}
		initialise(t, c, "", "ping")
		subscribe(t, c, "subscribe", "user", "subscription { user }")
		subscribe(t, c, "subscribe", "ticks", "subscription { ticks }")
		subscribe(t, c, "subscribe", "q", "query { user }")
		for seen := map[string]bool{}; !seen["user"] || !seen["q"] || !seen["ticks"]; {
			m := read(t, c, "ping")
			seen[m.ID] = true
		}

		switch i % endings {
		case 0: // close handshake from the client
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(timeout))
			_ = drain(c)
		case 1: // complete one, then drop the TCP connection
			write(t, c, `{"type":"complete","id":"user"}`)
		case 2: // drop the TCP connection mid-stream
		case 3: // protocol error
			write(t, c, `{"type":"nope"}`)
			_ = drain(c)
		case 4: // still streaming when the server shuts down
			leftOpen = append(leftOpen, c)
			continue
		}
		_ = c.Close()
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- tr.Shutdown(ctx)
	}()
	for _, c := range leftOpen {
		var ce *websocket.CloseError
		if err := drain(c); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("connection open at shutdown ended with %v, want close 1001", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := open.Load(); got != 0 {
		t.Fatalf("open connections after Shutdown = %d, want 0", got)
	}
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines = %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drain reads until the connection ends and returns why it ended.
func drain(c *websocket.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

// TestPush: a subscription whose resolver pushes keeps no goroutine while idle; each value it is
// woken for reaches the client in order, and closing its channel completes it.
func TestPush(t *testing.T) {
	tr := &gqlws.Transport{PingInterval: -1}
	p, url := newProbe(t, tr)
	const subs = 50
	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conns[i] = dialInit(t, url)
	}
	// The first value starts the transport's workers; count goroutines after it.
	subscribe(t, conns[0], "subscribe", "p", "subscription { pushed }")
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.wakes) == 1 })
	p.push("warm")
	expect(t, conns[0], msg{ID: "p", Type: "next", Payload: json.RawMessage(`{"data":{"pushed":"warm"}}`)})
	before := runtime.NumGoroutine()
	for _, c := range conns[1:] {
		subscribe(t, c, "subscribe", "p", "subscription { pushed }")
	}
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.wakes) == subs })
	time.Sleep(20 * time.Millisecond) // let the subscribe goroutines return
	if grown := runtime.NumGoroutine() - before; grown > 2 {
		t.Errorf("%d more goroutines for %d idle pushed subscriptions, want none", grown, subs-1)
	}
	for _, v := range []string{"a", "b", "c"} {
		p.push(v)
	}
	for i, c := range conns {
		for _, v := range []string{"a", "b", "c"} {
			m := read(t, c)
			if m.Type != "next" || !strings.Contains(string(m.Payload), `"pushed":"`+v+`"`) {
				t.Fatalf("subscriber %d: %s %s, want next %s", i, m.Type, m.Payload, v)
			}
		}
	}
	p.push("END")
	for _, c := range conns {
		expect(t, c, msg{ID: "p", Type: "complete"})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// TestLimits: websockets from one address beyond MaxPerAddress are refused with 429, and
// connections initialised for one identity beyond MaxPerIdentity are closed with 1013; a closed
// connection makes room again.
func TestLimits(t *testing.T) {
	tr := &gqlws.Transport{
		MaxPerAddress:  3,
		MaxPerIdentity: 2,
		Identity:       func(ctx context.Context) string { return "ada" },
	}
	_, url := newTestServer(t, tr)
	a, b := dialInit(t, url), dialInit(t, url)
	third := dial(t, url, transportWS)
	write(t, third, `{"type":"connection_init"}`)
	expectClose(t, third, 1013, "too many websockets for one user: the limit is 2")

	// The third one's socket may still be closing: once it is gone a fourth gets in, and then
	// the address is at its limit of 3.
	var fourth *websocket.Conn
	waitFor(t, func() bool {
		d := websocket.Dialer{Subprotocols: []string{transportWS}, HandshakeTimeout: timeout}
		c, _, err := d.Dial(url, nil)
		fourth = c
		return err == nil
	})
	defer fourth.Close()
	waitFor(t, func() bool {
		d := websocket.Dialer{Subprotocols: []string{transportWS}, HandshakeTimeout: timeout}
		c, resp, err := d.Dial(url, nil)
		if err == nil {
			c.Close()
			return false
		}
		return resp != nil && resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != ""
	})
	_ = a.Close()
	_ = b
	waitFor(t, func() bool {
		d := websocket.Dialer{Subprotocols: []string{transportWS}, HandshakeTimeout: timeout}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			return false
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
			return false
		}
		var m msg
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		return c.ReadJSON(&m) == nil && m.Type == "connection_ack"
	})
}
