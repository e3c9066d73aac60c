// Package gqlws is the GraphQL-over-websocket transport of the API: it speaks graphql-transport-ws
// (github.com/enisdenjo/graphql-ws, PROTOCOL.md) and the legacy graphql-ws subprotocol of
// subscriptions-transport-ws, on gorilla/websocket.
//
// We keep our own transport because gqlgen's transport.Websocket bends the protocol where clients
// notice: it closes with 1000/1002 where graphql-transport-ws requires 4400/4401/4408/4429, lets
// a subscribe reuse the id of a running operation, and falls back to the legacy protocol when a
// client offers none. It also has no cap on operations per connection and no way to close every
// connection on shutdown and wait for its goroutines.
package gqlws

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
)

// Defaults for the zero values of Transport's fields.
const (
	DefaultInitTimeout       = 10 * time.Second
	DefaultPingInterval      = 25 * time.Second
	DefaultKeepAliveInterval = 25 * time.Second
	DefaultMaxSubscriptions  = 100
	DefaultReadLimit         = 64 << 10
	DefaultWriteTimeout      = 10 * time.Second
)

// Transport is a gqlgen graphql.Transport for GraphQL over websockets. Its zero value is ready to
// use; it must be used by pointer and not copied after first use.
//
// Resolvers reach the connection only through their context (see InitFunc). gqlgen's
// transport.GetInitPayload finds nothing here and transport.AddSubscriptionError panics: both
// belong to gqlgen's own websocket transport.
type Transport struct {
	// InitFunc authorises a connection from the payload of its connection_init message (nil
	// when there is none). The context it returns is the base of every operation on the
	// connection. An error rejects the connection: close 4403 "Forbidden" (legacy graphql-ws:
	// connection_error, then close); the error itself is only logged.
	InitFunc func(ctx context.Context, payload map[string]any) (context.Context, error)

	// InitTimeout is how long a connection may wait before sending connection_init (close 4408).
	// Zero means DefaultInitTimeout.
	InitTimeout time.Duration

	// PingInterval is the period of the server's ping messages on graphql-transport-ws
	// connections, sent once the connection is acknowledged. Zero means DefaultPingInterval; a
	// negative value disables them.
	PingInterval time.Duration

	// KeepAliveInterval is the period of "ka" messages on legacy graphql-ws connections. Zero
	// means DefaultKeepAliveInterval; a negative value disables them.
	KeepAliveInterval time.Duration

	// MaxSubscriptions caps the operations running at once on one connection. Queries and
	// mutations count while they run, which in practice makes it a cap on subscriptions. A
	// subscribe beyond the cap gets an error message for its id; the connection stays open.
	// Zero or less means DefaultMaxSubscriptions.
	MaxSubscriptions int

	// ReadLimit is the largest message accepted from a client, in bytes; a larger one closes the
	// connection with 1009. Zero or less means DefaultReadLimit.
	ReadLimit int64

	// WriteTimeout bounds each write to a client, and how long a closing connection waits for
	// the client's close frame. Zero or less means DefaultWriteTimeout.
	WriteTimeout time.Duration

	// CheckOrigin decides whether a browser on another origin may open a websocket. Nil means
	// same origin only: no Origin header, or an Origin whose host equals the request's Host.
	CheckOrigin func(r *http.Request) bool

	// OnConnect and OnDisconnect, when set, are called once per upgraded connection: when it
	// opens and after it has ended and all its goroutines have returned.
	OnConnect    func()
	OnDisconnect func()

	// Logger receives debug logs of connection events. It never receives message payloads,
	// which may hold credentials. Nil discards them.
	Logger *slog.Logger

	// MaxPerAddress caps the websockets open at once from one client IP address; an upgrade
	// beyond it is refused with 429 and Retry-After. Zero or less means no cap.
	MaxPerAddress int

	// Identity names who a connection is for, from the context InitFunc returned (a user id, say;
	// "" for nobody in particular). MaxPerIdentity caps the websockets initialised at once for one
	// identity: a connection_init beyond it is closed with 1013 (try again later). Zero or less
	// means no cap.
	Identity       func(ctx context.Context) string
	MaxPerIdentity int

	mu         sync.Mutex
	shutdown   bool
	open       int            // Do calls past the shutdown check
	drained    chan struct{}  // closed when shutdown is set and open reaches zero
	conns      map[*conn]bool // open connections, closed by Shutdown
	addresses  map[string]int // open connections per client address
	identities map[string]int // initialised connections per identity
	workers    workers
}

var _ graphql.Transport = (*Transport)(nil)

// Supports reports whether r asks for a websocket upgrade.
func (t *Transport) Supports(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, v := range r.Header.Values("Upgrade") {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "websocket") {
				return true
			}
		}
	}
	return false
}

// upgrader is shared: its buffers come from the HTTP server (reads) and a pool (writes), so that
// an idle connection holds no write buffer.
var upgrader = websocket.Upgrader{
	// graphql-transport-ws first: gorilla picks the first of ours that the client offers.
	Subprotocols: []string{transportWS.name, legacyWS.name},
	// Client messages are small (subscribe, ping, complete); larger ones are read through.
	ReadBufferSize:  512,
	WriteBufferPool: &sync.Pool{},
}

// Do upgrades the request and serves the connection on a goroutine of its own, then returns: the
// HTTP server's goroutine, with its deep stack and its 8 KB of request buffers, does not live as
// long as the websocket. Shutdown waits for the connections it served.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	address := clientAddress(r)
	switch t.acquire(address) {
	case refusedShutdown:
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	case refusedAddress:
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("too many websockets from one address: the limit is %d", t.MaxPerAddress), http.StatusTooManyRequests)
		return
	}
	up := upgrader
	up.CheckOrigin = t.checkOrigin
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has already answered with an HTTP error.
		t.logger().Debug("gqlws: upgrade refused", "err", err)
		t.release(address)
		return
	}
	// The request's context ends when this handler returns; the connection keeps its values
	// (the viewer from the upgrade's headers, the logger) but not its end.
	c := newConn(t, ws, r, exec)
	go func() {
		defer t.release(address)
		if t.OnConnect != nil {
			t.OnConnect()
		}
		if t.OnDisconnect != nil {
			defer t.OnDisconnect()
		}
		if !t.register(c) {
			c.close(websocket.CloseGoingAway, "server shutting down")
		}
		defer t.unregister(c)
		c.serve()
	}()
}

// Shutdown closes every open connection with close code 1001 and waits until they have ended,
// or until ctx is done. Upgrades requested after Shutdown is called are refused with 503.
func (t *Transport) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	var open []*conn
	if !t.shutdown {
		t.shutdown = true
		t.drained = make(chan struct{})
		if t.open == 0 {
			close(t.drained)
		}
		for c := range t.conns {
			open = append(open, c)
		}
	}
	drained := t.drained
	t.mu.Unlock()
	for _, c := range open {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}

	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type refusal int

const (
	accepted refusal = iota
	refusedShutdown
	refusedAddress
)

func (t *Transport) acquire(address string) refusal {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return refusedShutdown
	}
	if t.MaxPerAddress > 0 && t.addresses[address] >= t.MaxPerAddress {
		return refusedAddress
	}
	if t.addresses == nil {
		t.addresses = map[string]int{}
	}
	t.addresses[address]++
	t.open++
	return accepted
}

func (t *Transport) release(address string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addresses[address]--; t.addresses[address] <= 0 {
		delete(t.addresses, address)
	}
	t.open--
	if t.shutdown && t.open == 0 {
		close(t.drained)
	}
}

// register adds an upgraded connection to those Shutdown closes; false when shutdown began.
func (t *Transport) register(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[*conn]bool{}
	}
	t.conns[c] = true
	return !t.shutdown
}

func (t *Transport) unregister(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// countIdentity counts one more initialised connection for identity, unless it is at its cap.
func (t *Transport) countIdentity(identity string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.MaxPerIdentity > 0 && t.identities[identity] >= t.MaxPerIdentity {
		return false
	}
	if t.identities == nil {
		t.identities = map[string]int{}
	}
	t.identities[identity]++
	return true
}

func (t *Transport) forgetIdentity(identity string) {
	if identity == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.identities[identity]--; t.identities[identity] <= 0 {
		delete(t.identities, identity)
	}
}

func (t *Transport) maxPerIdentity() int { return t.MaxPerIdentity }

// clientAddress is the TCP peer's IP address: no forwarding header is trusted.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (t *Transport) checkOrigin(r *http.Request) bool {
	if t.CheckOrigin != nil {
		return t.CheckOrigin(r)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (t *Transport) initTimeout() time.Duration {
	return orDefault(t.InitTimeout, DefaultInitTimeout)
}

func (t *Transport) writeTimeout() time.Duration {
	return orDefault(t.WriteTimeout, DefaultWriteTimeout)
}

// heartbeat is the period of the server's ping or ka messages; zero means none.
func (t *Transport) heartbeat(d *dialect) time.Duration {
	iv := t.PingInterval
	def := DefaultPingInterval
	if d.legacy {
		iv, def = t.KeepAliveInterval, DefaultKeepAliveInterval
	}
	switch {
	case iv < 0:
		return 0
	case iv == 0:
		return def
	}
	return iv
}

func (t *Transport) maxSubscriptions() int {
	return orDefault(t.MaxSubscriptions, DefaultMaxSubscriptions)
}

func (t *Transport) readLimit() int64 {
	return orDefault(t.ReadLimit, DefaultReadLimit)
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
