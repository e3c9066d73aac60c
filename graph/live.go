package graph

import (
	"context"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/gqlws"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/workspace"
)

// liveAccess authorises every message of a subscription to a workspace: it keeps the Access the
// subscription started with and loads it again whenever the workspace's epoch moved (someone's
// role, grants or tokens changed, or a source's labels, which label grants match), so that a
// removed member stops receiving at once without a query per message. Each message's object is
// then checked against that access: in Go when the message carries all the rule needs (a
// source's labels), else with a read that puts the access in its WHERE clause.
type liveAccess struct {
	r     *Resolver
	ws    string
	epoch uint64
	a     *workspace.Access
}

func (r *Resolver) liveAccess(ctx context.Context, workspaceID string) (*liveAccess, error) {
	l := &liveAccess{r: r, ws: workspaceID}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *liveAccess) load(ctx context.Context) error {
	l.epoch = l.r.Workspaces.Epoch(l.ws)
	a, err := l.r.Workspaces.Access(workspace.WithAccessCache(ctx), l.ws)
	if err != nil {
		return err
	}
	l.a = a
	return nil
}

// check returns the subscriber's current access, or an error when they lost it; changed tells
// whether it was loaded again since the last message (rights may have changed), for
// subscriptions that re-check what they watch only then.
func (l *liveAccess) check(ctx context.Context) (a *workspace.Access, changed bool, err error) {
	if l.r.Workspaces.Epoch(l.ws) != l.epoch {
		if err := l.load(ctx); err != nil {
			return nil, true, err
		}
		changed = true
	}
	return l.a, changed, nil
}

// errNoLongerAllowed ends a subscription whose subscriber lost access.
var errNoLongerAllowed = apperr.New(apperr.Forbidden, "you no longer have access to this workspace: the subscription ended")

// pump forwards the messages of sub that convert (nil to leave one out) to a channel gqlgen
// reads, until the client stops, the bus drops a slow subscriber, or convert says the subscriber
// lost access: the last two end the subscription with an error message.
//
// Over our websocket transport nothing waits for messages: the bus tells the transport when one
// arrives, and the transport, on a shared worker, has fill convert it and put it in the channel
// (gqlws.Push). Elsewhere a goroutine of the subscription's own does the same.
func pump[T any](ctx context.Context, sub *bus.Subscription, convert func(bus.Message) (*T, error)) <-chan *T {
	out := make(chan *T, 1)
	ended := false
	// next turns one message into a value for out; nil when it is left out. When the message
	// ends the subscription, next closes out and sets ended.
	next := func(m bus.Message, ok bool) *T {
		if !ok {
			gqlws.EndWithError(ctx, "SLOW_SUBSCRIBER", bus.ErrTooSlow.Error())
			ended = true
			close(out)
			return nil
		}
		v, err := convert(m)
		if err != nil {
			code, msg := string(apperr.Internal), "internal error"
			if e, ok := apperr.As(err); ok && e.Code != apperr.Internal {
				code, msg = string(e.Code), e.Message
			} else {
				obs.Logger(ctx).Error("subscription message failed", "error", err.Error())
			}
			gqlws.EndWithError(ctx, code, msg)
			ended = true
			close(out)
			return nil
		}
		return v
	}
	// fill runs on a transport worker: the transport takes each value from out before it asks
	// for the next, so out has room.
	fill := func() bool {
		for !ended {
			select {
			case m, ok := <-sub.C:
				if v := next(m, ok); v != nil {
					out <- v
					return true
				}
				if ended {
					return true // out is closed: the transport ends the subscription
				}
			default:
				return false
			}
		}
		return false
	}
	if wake, ok := gqlws.Push(ctx, fill); ok {
		context.AfterFunc(ctx, sub.Close)
		sub.OnReady(wake)
		return out
	}
	go func() {
		defer sub.Close()
		for !ended {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-sub.C:
				if v := next(m, ok); v != nil {
					select {
					case out <- v:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out
}

// forbiddenIfGone turns the workspace disappearing from the subscriber's view (they were removed,
// or it was deleted) into FORBIDDEN: they knew it when they subscribed. Other errors keep their
// own code.
func forbiddenIfGone(err error) error {
	if apperr.CodeOf(err) == apperr.NotFound {
		return errNoLongerAllowed
	}
	return err
}
