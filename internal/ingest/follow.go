package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// maxFollowerBacklog bounds the events waiting for the listeners of commits. Beyond it the oldest
// are left out of what the listeners hear (the events themselves are stored: delivery reads the
// log, and lanes poll), so that listeners that fall behind cost bounded memory.
const maxFollowerBacklog = 100_000

// follower hands what each group commit stored to the listeners, on a goroutine of its own: the
// writer appends and goes on, and the listeners (waking delivery lanes, live views, health counts)
// never hold up the next commit. When they fall behind, the commits made meanwhile reach them
// together, as one Committed.
type follower struct {
	log       *slog.Logger
	listeners []func(Committed)

	mu      sync.Mutex
	pending []*Event
	dropped int
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

func newFollower(log *slog.Logger, listeners []func(Committed)) *follower {
	f := &follower{log: log, listeners: listeners, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go f.run()
	return f
}

// add queues the events of one commit for the listeners; it never blocks.
func (f *follower) add(events []*Event) {
	if len(events) == 0 || len(f.listeners) == 0 {
		return
	}
	f.mu.Lock()
	f.pending = append(f.pending, events...)
	if over := len(f.pending) - maxFollowerBacklog; over > 0 {
		f.pending = append(f.pending[:0:0], f.pending[over:]...)
		f.dropped += over
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close lets the listeners hear what is pending, then stops.
func (f *follower) close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.wake)
	}
	f.mu.Unlock()
	<-f.done
}

func (f *follower) run() {
	defer close(f.done)
	for range f.wake {
		f.deliver()
	}
	f.deliver()
}

func (f *follower) deliver() {
	for {
		f.mu.Lock()
		events, dropped := f.pending, f.dropped
		f.pending, f.dropped = nil, 0
		f.mu.Unlock()
		if dropped > 0 {
			f.log.Warn("ingest: listeners of commits fell behind; the oldest events were left out of live views and health counts",
				"events", dropped)
		}
		if len(events) == 0 {
			return
		}
		start := time.Now()
		c := Committed{Events: events}
		for _, l := range f.listeners {
			l(c)
		}
		if d := time.Since(start); d > time.Second {
			f.log.Warn("ingest: listeners of commits are slow", "events", len(events), "duration", d.String())
		}
	}
}
