package gqlws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/junctioncdp/junction/internal/gqlws"
)

const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
	timeout     = 5 * time.Second
)

// msg is any protocol message, either way.
type msg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// newTestServer serves gqlgen's test schema (a name query and a name subscription driven by
// SendNextSubscriptionMessage) over tr, and returns its ws:// URL.
func newTestServer(t *testing.T, tr *gqlws.Transport) (*testserver.TestServer, string) {
	t.Helper()
	es := testserver.New()
	es.AddTransport(tr)
	return es, serve(t, es, tr)
}

func serve(t *testing.T, h http.Handler, tr *gqlws.Transport) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		// Shutdown, unlike httptest's Close, waits for hijacked connections.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func dial(t *testing.T, url string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: timeout}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func write(t *testing.T, c *websocket.Conn, raw string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		t.Fatalf("write %s: %v", raw, err)
	}
}

func writeMsg(t *testing.T, c *websocket.Conn, m msg) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, string(b))
}

func subscribe(t *testing.T, c *websocket.Conn, typ, id, query string) {
	t.Helper()
	payload, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		t.Fatal(err)
	}
	writeMsg(t, c, msg{ID: id, Type: typ, Payload: payload})
}

// read returns the next message, skipping the heartbeat types given.
func read(t *testing.T, c *websocket.Conn, skip ...string) msg {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("read %s: %v", data, err)
		}
		if !slices.Contains(skip, m.Type) {
			return m
		}
	}
}

func expect(t *testing.T, c *websocket.Conn, want msg, skip ...string) {
	t.Helper()
	got := read(t, c, skip...)
	if got.ID != want.ID || got.Type != want.Type || !jsonEqual(got.Payload, want.Payload) {
		t.Fatalf("got %s %q %s, want %s %q %s", got.Type, got.ID, got.Payload, want.Type, want.ID, want.Payload)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// expectClose reads the close frame that must come next; an empty reason is not compared.
func expectClose(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, data, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read %s, %v; want close %d", data, err, code)
	}
	if ce.Code != code {
		t.Fatalf("close code = %d %q, want %d", ce.Code, ce.Text, code)
	}
	if reason != "" && ce.Text != reason {
		t.Fatalf("close reason = %q, want %q", ce.Text, reason)
	}
}

// initialise sends connection_init and expects connection_ack.
func initialise(t *testing.T, c *websocket.Conn, payload string, skip ...string) {
	t.Helper()
	m := msg{Type: "connection_init"}
	if payload != "" {
		m.Payload = json.RawMessage(payload)
	}
	writeMsg(t, c, m)
	expect(t, c, msg{Type: "connection_ack"}, skip...)
}

// dialInit dials with graphql-transport-ws and initialises the connection.
func dialInit(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c := dial(t, url, transportWS)
	initialise(t, c, "")
	return c
}

// expectPong checks that the connection is alive and that nothing else was sent before.
func expectPong(t *testing.T, c *websocket.Conn) {
	t.Helper()
	write(t, c, `{"type":"ping"}`)
	expect(t, c, msg{Type: "pong"})
}

// probe is a hand-written schema for what gqlgen's test server cannot show: the context of a
// resolver (its user from InitFunc, its cancellation), a panicking operation and a stream that
// does not wait for anyone. Unlike the test server's, its subscriptions share no channel, so
// many connections can run at once.
type probe struct {
	cancelled chan struct{}

	// pushed subscriptions: what waits for them, and how to wake them
	mu      sync.Mutex
	pending map[int][]string // "END" ends the subscription
	wakes   []func()
}

// push queues value for every pushed subscription and wakes them.
func (p *probe) push(value string) {
	p.mu.Lock()
	wakes := p.wakes
	for i := range wakes {
		p.pending[i] = append(p.pending[i], value)
	}
	p.mu.Unlock()
	for _, w := range wakes {
		w()
	}
}

type userKey struct{}

func newProbe(t *testing.T, tr *gqlws.Transport) (*probe, string) {
	t.Helper()
	p := &probe{cancelled: make(chan struct{}, 16), pending: map[int][]string{}}
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `
		type Query { user: String! }
		type Subscription { user: String! boom: String! ticks: Int! pushed: String! }
	`})
	srv := handler.New(&graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return schema },
		ExecFunc: func(ctx context.Context) graphql.ResponseHandler {
			op := graphql.GetOperationContext(ctx)
			user, _ := ctx.Value(userKey{}).(string)
			data, _ := json.Marshal(map[string]string{"user": user})
			if op.Operation.Operation != ast.Subscription {
				return graphql.OneShot(&graphql.Response{Data: data})
			}
			switch {
			case strings.Contains(op.RawQuery, "boom"):
				panic("boom")
			case strings.Contains(op.RawQuery, "pushed"):
				// A resolver that keeps no goroutine: the transport asks it for values when woken.
				out := make(chan string, 1)
				p.mu.Lock()
				me := len(p.wakes)
				p.mu.Unlock()
				wake, ok := gqlws.Push(ctx, func() bool {
					p.mu.Lock()
					defer p.mu.Unlock()
					if len(p.pending[me]) == 0 {
						return false
					}
					v := p.pending[me][0]
					p.pending[me] = p.pending[me][1:]
					if v == "END" {
						close(out)
					} else {
						out <- v
					}
					return true
				})
				if !ok {
					panic("Push refused in a subscription of the transport")
				}
				p.mu.Lock()
				p.wakes = append(p.wakes, wake)
				p.mu.Unlock()
				return func(ctx context.Context) *graphql.Response {
					select {
					case v, ok := <-out:
						if !ok {
							return nil
						}
						data, _ := json.Marshal(map[string]string{"pushed": v})
						return &graphql.Response{Data: data}
					case <-ctx.Done():
						return nil
					}
				}
			case strings.Contains(op.RawQuery, "ticks"):
				// A stream that does not wait for the client.
				return func(context.Context) *graphql.Response {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(time.Millisecond):
						return &graphql.Response{Data: json.RawMessage(`{"ticks":1}`)}
					}
				}
			}
			// Like a generated subscription resolver, a goroutine lives until the context ends.
			go func() {
				<-ctx.Done()
				select {
				case p.cancelled <- struct{}{}:
				default:
				}
			}()
			sent := false
			return func(context.Context) *graphql.Response {
				if !sent {
					sent = true
					return &graphql.Response{Data: data}
				}
				<-ctx.Done()
				return nil
			}
		},
	})
	// Quiet: the default recover func prints a stack trace.
	srv.SetRecoverFunc(func(context.Context, any) error { return gqlerror.Errorf("internal system error") })
	srv.AddTransport(tr)
	return p, serve(t, srv, tr)
}
