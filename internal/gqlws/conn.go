package gqlws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// conn is one websocket connection. Its reader runs in Do's goroutine. It keeps no other goroutine
// of its own while idle: timers send its heartbeat and enforce the initialisation timeout, and a
// subscription whose resolver pushes (see Push) runs on the transport's shared workers only when a
// message is waiting. Operations that do run a goroutine are counted in wg.
type conn struct {
	t       *Transport
	ws      *websocket.Conn
	d       *dialect
	exec    graphql.GraphExecutor
	remote  string
	address string // the client's IP address, for the per-address limit

	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu serialises writes (gorilla allows one writer) and guards the fields below, so that
	// removing an operation and writing its last message happen together.
	mu           sync.Mutex
	closed       bool // a close frame was sent or the socket failed: write nothing more
	initReceived bool
	acked        bool
	identity     string          // who the connection is for, once initialised (per-identity limit)
	base         context.Context // InitFunc's context: the base of every operation
	ops          map[string]*operation
	timers       []*time.Timer // the initialisation timeout and the heartbeat
	stopWatch    func() bool   // stops watching the InitFunc's context for revocation
}

type operation struct {
	cancel context.CancelFunc
	push   *pushOp // nil unless the operation's resolver pushes
}

func newConn(t *Transport, ws *websocket.Conn, r *http.Request, exec graphql.GraphExecutor) *conn {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	return &conn{
		t:       t,
		ws:      ws,
		d:       dialectFor(ws.Subprotocol()),
		exec:    exec,
		remote:  r.RemoteAddr,
		address: clientAddress(r),
		ctx:     ctx,
		cancel:  cancel,
		base:    ctx,
		ops:     map[string]*operation{},
	}
}

// debug logs a connection event; the logger with the connection's attributes is only built when
// debug logs are on, since every idle connection would otherwise keep one.
func (c *conn) debug(msg string, args ...any) {
	log := c.t.logger()
	if !log.Enabled(c.ctx, slog.LevelDebug) {
		return
	}
	log.With("subprotocol", c.ws.Subprotocol(), "remote", c.remote).Debug(msg, args...)
}

// serve reads messages until the connection ends, then stops everything the connection started.
func (c *conn) serve() {
	defer c.end()
	c.debug("gqlws: connection opened")
	c.ws.SetReadLimit(c.t.readLimit())
	if c.d == nil {
		// Accepting and then closing lets a client read why; a refused upgrade is opaque.
		c.close(closeSubprotocolNotAcceptable, "Subprotocol not acceptable")
	} else {
		c.mu.Lock()
		c.timers = append(c.timers, time.AfterFunc(c.t.initTimeout(), func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.initReceived {
				c.closeLocked(closeInitTimeout, "Connection initialisation timeout")
			}
		}))
		c.mu.Unlock()
	}
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.debug("gqlws: connection ended", "err", err)
			return
		}
		if c.isClosed() {
			continue // waiting for the client's close frame
		}
		if code, reason := c.handleAside(data); code != 0 {
			c.close(code, reason)
		}
	}
}

// end stops every operation, timer and goroutine of the connection and waits for them.
func (c *conn) end() {
	c.cancel()
	_ = c.ws.Close() // unblocks a write in progress
	c.mu.Lock()
	c.closed = true
	c.cancelOpsLocked()
	for _, t := range c.timers {
		t.Stop()
	}
	if c.stopWatch != nil {
		c.stopWatch()
	}
	identity := c.identity
	c.mu.Unlock()
	c.wg.Wait()
	c.t.forgetIdentity(identity)
}

// handleAside handles a message on a goroutine of its own and waits for it. Decoding, parsing and
// authenticating go deep, and a goroutine's stack never shrinks below what it once needed: the
// reader, which lives as long as the connection, keeps a small stack this way. Client messages are
// rare (init, subscribe, complete, ping), so the extra goroutine costs little.
func (c *conn) handleAside(data []byte) (code int, reason string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, reason = c.handle(data)
	}()
	<-done
	return code, reason
}

// handle acts on one client message and returns a close code and reason when the connection
// must be closed.
func (c *conn) handle(data []byte) (code int, reason string) {
	received := graphql.Now()
	defer func() {
		// A panic here comes from InitFunc or from us; it must not take the server down.
		if r := recover(); r != nil {
			c.t.logger().Error("gqlws: panic handling a message", "panic", r)
			code, reason = websocket.CloseInternalServerErr, "Internal error"
		}
	}()

	m, err := c.d.parse(data)
	if err != nil {
		return closeBadRequest, err.Error()
	}
	switch m.kind {
	case kindInit:
		return c.init(m.payload)
	case kindPing:
		c.mu.Lock()
		defer c.mu.Unlock()
		c.writeLocked(outMessage{Type: "pong", Payload: m.payload})
	case kindPong:
		// Answers our ping, or an unsolicited heartbeat: nothing to do.
	case kindSubscribe:
		return c.subscribe(m.id, m.params, received)
	case kindComplete:
		c.mu.Lock()
		defer c.mu.Unlock()
		// Unknown ids are operations that already ended: ignoring them is allowed.
		if op := c.ops[m.id]; op != nil {
			delete(c.ops, m.id)
			op.cancel()
		}
	case kindTerminate:
		return websocket.CloseNormalClosure, "Terminated"
	}
	return 0, ""
}

func (c *conn) init(rawPayload json.RawMessage) (code int, reason string) {
	c.mu.Lock()
	again := c.initReceived
	c.initReceived = true
	c.mu.Unlock()
	if again {
		return closeTooManyInits, "Too many initialisation requests"
	}

	var payload map[string]any
	if len(rawPayload) > 0 {
		if err := json.Unmarshal(rawPayload, &payload); err != nil {
			return closeBadRequest, "connection_init payload must be an object"
		}
	}
	base := c.ctx
	if c.t.InitFunc != nil {
		ctx, err := c.t.InitFunc(c.ctx, payload)
		if err != nil {
			c.debug("gqlws: connection_init rejected", "err", err)
			if c.d.legacy {
				c.mu.Lock()
				c.writeLocked(outMessage{Type: "connection_error", Payload: json.RawMessage(`{"message":"Forbidden"}`)})
				c.mu.Unlock()
			}
			return closeForbidden, "Forbidden"
		}
		if ctx != nil {
			base = ctx
		}
	}

	identity := ""
	if c.t.Identity != nil {
		identity = c.t.Identity(base)
	}
	if identity != "" && !c.t.countIdentity(identity) {
		return closeTryAgainLater, fmt.Sprintf("too many websockets for one user: the limit is %d", c.t.maxPerIdentity())
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.identity = identity
	c.base = base
	c.acked = true
	c.writeLocked(outMessage{Type: "connection_ack"})
	if c.d.legacy {
		// subscriptions-transport-ws clients expect a first ka right after the ack.
		c.writeLocked(outMessage{Type: c.d.heartbeat})
	}
	if base != c.ctx {
		// The InitFunc's context ending while the connection lives means its credentials were
		// revoked (logged out, token revoked, member removed).
		c.stopWatch = context.AfterFunc(base, func() {
			if c.ctx.Err() == nil {
				c.close(closeForbidden, "Forbidden")
			}
		})
	}
	if iv := c.t.heartbeat(c.d); iv > 0 {
		var beat *time.Timer
		beat = time.AfterFunc(iv, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.closed {
				c.writeLocked(outMessage{Type: c.d.heartbeat})
				beat.Reset(iv)
			}
		})
		c.timers = append(c.timers, beat)
	}
	return 0, ""
}

func (c *conn) subscribe(id string, params *graphql.RawParams, received time.Time) (code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.acked {
		return closeUnauthorized, "Unauthorized"
	}
	if c.ops[id] != nil {
		return closeSubscriberExists, fmt.Sprintf("Subscriber for %s already exists", id)
	}
	if limit := c.t.maxSubscriptions(); len(c.ops) >= limit {
		c.writeLocked(errorMessage(id, gqlerror.List{{
			Message:    fmt.Sprintf("too many subscriptions on this connection: the limit is %d", limit),
			Extensions: map[string]any{"code": "TOO_MANY_SUBSCRIPTIONS"},
		}}))
		return 0, ""
	}
	ctx, cancel := context.WithCancel(c.base)
	op := &operation{cancel: cancel}
	c.ops[id] = op
	params.ReadTime = graphql.TraceTiming{Start: received, End: graphql.Now()}
	c.wg.Add(1)
	go c.run(ctx, id, op, params)
	return 0, ""
}

// run executes one operation the way gqlgen's transports drive the executor.
func (c *conn) run(ctx context.Context, id string, op *operation, params *graphql.RawParams) {
	defer c.wg.Done()
	pushing := false
	defer func() {
		if !pushing {
			op.cancel()
		}
	}()
	var rc *graphql.OperationContext
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		c.t.logger().Error("gqlws: operation panicked", "id", id, "panic", r)
		// Only a gqlerror chosen by the executor's RecoverFunc reaches the client; never the
		// panic's own text.
		gqlErr := &gqlerror.Error{Message: "internal system error"}
		if rc != nil {
			var chosen *gqlerror.Error
			if errors.As(rc.Recover(ctx, r), &chosen) {
				gqlErr = chosen
			}
		}
		c.finish(id, op, errorMessage(id, gqlerror.List{gqlErr}))
	}()

	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		if rc != nil {
			ctx = graphql.WithOperationContext(ctx, rc)
		}
		if resp := c.exec.DispatchError(ctx, errs); resp != nil && len(resp.Errors) > 0 {
			errs = resp.Errors // as the error presenter shows them
		}
		c.finish(id, op, errorMessage(id, errs))
		return
	}

	end := &opEnd{}
	ctx = context.WithValue(ctx, opEndKey{}, end)
	push := &pushOp{c: c, id: id, op: op, end: end, scheduled: true}
	ctx = context.WithValue(ctx, pushKey{}, push)
	responses, ctx := c.exec.DispatchOperation(ctx, rc)
	if push.fill != nil {
		// The resolver pushes: from now on the operation runs on the transport's workers, when
		// a message waits, and this goroutine returns.
		push.responses, push.ctx = responses, ctx
		c.mu.Lock()
		op.push = push
		c.mu.Unlock()
		pushing = true
		push.step()
		return
	}
	for {
		resp := responses(ctx)
		if resp == nil {
			if e := end.get(); e != nil {
				c.finish(id, op, errorMessage(id, gqlerror.List{e}))
				return
			}
			if ctx.Err() != nil {
				// Cancelled, not finished: the client completed it, the connection is closing,
				// or its credentials were revoked (the connection closes with 4403). Nothing
				// more is sent for it.
				return
			}
			break
		}
		b, err := json.Marshal(resp)
		if err != nil {
			panic(err)
		}
		if !c.send(id, op, outMessage{ID: id, Type: c.d.next, Payload: b}) {
			return // the client completed it or the connection is closing
		}
	}
	c.finish(id, op, outMessage{ID: id, Type: "complete"})
}

// send writes a message of a running operation, and reports whether it is still running.
func (c *conn) send(id string, op *operation, m outMessage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[id] != op {
		return false
	}
	c.writeLocked(m)
	return true
}

// finish ends a running operation with its last message. Removing it in the same critical
// section lets the client reuse the id as soon as it reads that message.
func (c *conn) finish(id string, op *operation, last outMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[id] != op {
		return // after a client complete, nothing more may be sent for this id
	}
	delete(c.ops, id)
	op.cancel()
	c.writeLocked(last)
}

func errorMessage(id string, errs gqlerror.List) outMessage {
	b, err := json.Marshal(errs)
	if err != nil {
		panic(err)
	}
	return outMessage{ID: id, Type: "error", Payload: b}
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// closeLocked sends a close frame, stops the operations and gives the client WriteTimeout to
// answer with its own close frame, which ends the reader.
func (c *conn) closeLocked(code int, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	c.cancelOpsLocked()
	c.debug("gqlws: closing connection", "code", code, "reason", reason)
	deadline := time.Now().Add(c.t.writeTimeout())
	msg := websocket.FormatCloseMessage(code, truncateReason(reason))
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
		c.debug("gqlws: close frame not sent", "err", err)
		_ = c.ws.Close()
		return
	}
	// The net.Conn's deadline, not gorilla's SetReadDeadline: the reader is another goroutine.
	_ = c.ws.NetConn().SetReadDeadline(deadline)
}

func (c *conn) cancelOpsLocked() {
	for id, op := range c.ops {
		op.cancel()
		delete(c.ops, id)
	}
}

// writeLocked writes one message with a deadline. A failed write breaks the connection
// (gorilla cannot write again), so it closes the socket and the reader ends.
func (c *conn) writeLocked(m outMessage) {
	if c.closed {
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.t.logger().Error("gqlws: message not encoded", "type", m.Type, "err", err)
		return
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.writeTimeout()))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.debug("gqlws: write failed", "type", m.Type, "err", err)
		c.closed = true
		c.cancelOpsLocked()
		_ = c.ws.Close()
	}
}

// truncateReason keeps a close reason within the 123 bytes a close frame allows.
func truncateReason(s string) string {
	const limit = 123
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// opEnd holds the error a subscription resolver ended its stream with, if any.
type opEnd struct {
	mu  sync.Mutex
	err *gqlerror.Error
}

func (e *opEnd) get() *gqlerror.Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

type opEndKey struct{}

// EndWithError makes the subscription running in ctx end with an error message carrying message
// and extensions.code (instead of complete) once its resolver closes its channel: the way to tell
// a subscriber that it lost access or was too slow. It reports whether ctx is such a subscription.
func EndWithError(ctx context.Context, code, message string) bool {
	e, ok := ctx.Value(opEndKey{}).(*opEnd)
	if !ok {
		return false
	}
	e.mu.Lock()
	if e.err == nil {
		e.err = &gqlerror.Error{Message: message, Extensions: map[string]any{"code": code}}
	}
	e.mu.Unlock()
	return true
}
