package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// maxFollowerBacklog bounds the events waiting for a listener of commits. Beyond it the oldest are
// left out of what the listener hears (the events themselves are stored: delivery reads the log,
// and lanes poll), so that listeners that fall behind cost bounded memory.
const maxFollowerBacklog = 100_000

// Listener hears what group commits stored, on the tracking API's follower goroutine, in commit
// order. It must not block for long: commits made meanwhile reach it together.
type Listener struct {
	Hear func(Committed)
	// Every, when set, makes the listener hear at most once per period, the commits in between
	// together: for work that writes (aggregates, health counts), so that it takes the database's
	// single writer once a period instead of once per commit.
	Every time.Duration
}

// follower hands what each group commit stored to the listeners, on a goroutine of its own: the
// writer appends and goes on, and the listeners (waking delivery lanes, live views, health counts)
// never hold up the next commit.
type follower struct {
	log       *slog.Logger
	listeners []*listening

	mu      sync.Mutex
	pending []*Event
	dropped int // left out of pending while the listeners were busy
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// listening is a listener with what it has not heard yet.
type listening struct {
	Listener
	backlog []*Event
	dropped int
	last    time.Time
}

func newFollower(log *slog.Logger, listeners []Listener) *follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &follower{log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for _, l := range listeners {
		f.listeners = append(f.listeners, &listening{Listener: l})
	}
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
	period := time.Duration(0)
	for _, l := range f.listeners {
		if l.Every > 0 && (period == 0 || l.Every < period) {
			period = l.Every
		}
	}
	var tick <-chan time.Time
	if period > 0 {
		t := time.NewTicker(period)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case _, open := <-f.wake:
			if !open {
				f.deliver(true)
				return
			}
		case <-tick:
		}
		f.deliver(false)
	}
}

// deliver hands what is pending to the listeners that hear at once, and to the periodic ones
// whose period has passed (all of them when flushing).
func (f *follower) deliver(flush bool) {
	f.mu.Lock()
	events, dropped := f.pending, f.dropped
	f.pending, f.dropped = nil, 0
	f.mu.Unlock()
	now := time.Now()
	for _, l := range f.listeners {
		l.dropped += dropped
		l.backlog = append(l.backlog, events...)
		if over := len(l.backlog) - maxFollowerBacklog; over > 0 {
			l.backlog = append(l.backlog[:0:0], l.backlog[over:]...)
			l.dropped += over
		}
		if l.dropped > 0 {
			f.log.Warn("ingest: a listener of commits fell behind; the oldest events were left out of what it heard",
				"events", l.dropped)
			l.dropped = 0
		}
		if len(l.backlog) == 0 || (!flush && l.Every > 0 && now.Sub(l.last) < l.Every) {
			continue
		}
		batch := l.backlog
		l.backlog, l.last = nil, now
		start := time.Now()
		l.Hear(Committed{Events: batch})
		if d := time.Since(start); d > time.Second {
			f.log.Warn("ingest: a listener of commits is slow", "events", len(batch), "duration", d.String())
		}
	}
}
