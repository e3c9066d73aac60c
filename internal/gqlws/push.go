package gqlws

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// A subscription usually costs a goroutine that waits on its resolver's channel, and the resolver
// often keeps another that feeds the channel. With tens of thousands of idle subscribers those
// goroutines are most of the server's memory. Push lets a resolver do without both: it returns a
// buffered channel, calls wake whenever something may be waiting for it (a message on the bus),
// and gives the transport a fill function that moves what is waiting into the channel without
// blocking. The transport then runs the operation on a shared worker only while there is
// something to send.

type pushKey struct{}

// Push is called by a subscription resolver, with the context it was given, before it returns its
// channel. fill is called on a transport worker, never concurrently with itself: it moves what is
// waiting into the channel (or closes the channel to end the subscription) without blocking, and
// reports whether it did either. Push returns the wake function to call when something may be
// waiting, and false when ctx is not a subscription of this transport (the resolver then feeds
// its channel from a goroutine of its own).
func Push(ctx context.Context, fill func() bool) (wake func(), ok bool) {
	p, ok := ctx.Value(pushKey{}).(*pushOp)
	if !ok || p.fill != nil {
		return nil, false
	}
	p.fill = fill
	return p.wake, true
}

// pushOp is a pushing operation's state.
type pushOp struct {
	c         *conn
	id        string
	op        *operation
	end       *opEnd
	fill      func() bool
	responses graphql.ResponseHandler
	ctx       context.Context

	mu        sync.Mutex
	scheduled bool // on a worker, or queued for one (also while run sets the operation up)
	again     bool // woken while scheduled: look once more before going idle
}

func (p *pushOp) wake() {
	p.mu.Lock()
	if p.scheduled {
		p.again = true
		p.mu.Unlock()
		return
	}
	p.scheduled = true
	p.mu.Unlock()
	p.c.t.schedule(p)
}

// step sends what waits, then goes idle unless it was woken meanwhile.
func (p *pushOp) step() {
	defer func() {
		if r := recover(); r != nil {
			p.c.t.logger().Error("gqlws: operation panicked", "id", p.id, "panic", r)
			p.c.finish(p.id, p.op, errorMessage(p.id, gqlerror.List{{Message: "internal system error"}}))
		}
	}()
	for {
		p.mu.Lock()
		p.again = false
		p.mu.Unlock()
		for p.ctx.Err() == nil && p.fill() {
			resp := p.responses(p.ctx)
			if resp == nil {
				if e := p.end.get(); e != nil {
					p.c.finish(p.id, p.op, errorMessage(p.id, gqlerror.List{e}))
				} else if p.ctx.Err() == nil {
					p.c.finish(p.id, p.op, outMessage{ID: p.id, Type: "complete"})
				}
				return // ended: nothing will wake it
			}
			b, err := json.Marshal(resp)
			if err != nil {
				panic(err)
			}
			if !p.c.send(p.id, p.op, outMessage{ID: p.id, Type: p.c.d.next, Payload: b}) {
				return
			}
		}
		p.mu.Lock()
		if !p.again || p.ctx.Err() != nil {
			p.scheduled = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// workers run pushing operations' steps. A step may wait up to the write timeout for a slow
// client, so there are more of them than cores.
type workers struct {
	once  sync.Once
	queue chan *pushOp
}

const pushWorkers = 64

func (t *Transport) schedule(p *pushOp) {
	t.workers.once.Do(func() {
		t.workers.queue = make(chan *pushOp, 1<<16)
		for range pushWorkers {
			go func() {
				for p := range t.workers.queue {
					p.step()
				}
			}()
		}
	})
	select {
	case t.workers.queue <- p:
	default:
		go p.step() // a burst beyond the queue: never make the waker wait
	}
}
