// Package bus is the in-process publish/subscribe that feeds GraphQL subscriptions: domains publish
// what changed after their transaction commits, and each subscriber receives the messages of its
// topic on a buffered channel. Publishing never blocks: a subscriber whose buffer is full is
// dropped (its channel is closed with ErrTooSlow) rather than waited for.
//
// Between replicas on one PostgreSQL database (internal/replica), the kinds of topic that have a
// decoder are also handed to a relay, which carries them to the other processes; what arrives from
// them is delivered here with Deliver, to local subscribers only.
package bus

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrTooSlow ends a subscription whose subscriber did not keep up.
var ErrTooSlow = errors.New("the subscriber did not keep up with the messages and was dropped; subscribe again")

// Topic names a stream: a kind of message and the workspace, user or source it is about.
type Topic struct {
	Kind string // "source", "destination", "health", "usage", "events", "notification"
	Key  string // workspace, source or user id
}

// Message is what is published: the topic's payload, typed by the publisher.
type Message struct {
	Topic   Topic
	Payload any
}

// Subscription receives the messages of one topic until it is closed.
type Subscription struct {
	C      <-chan Message
	c      chan Message
	bus    *Bus
	topic  Topic
	err    atomic.Pointer[error]
	closed atomic.Bool
	ready  atomic.Pointer[func()]
}

// OnReady makes the bus call f, without waiting for it, after each message it puts in C and when it
// closes C: a subscriber can then read C when told instead of keeping a goroutine blocked on it.
// f must not block. It is called once at once, for what may already be waiting.
func (s *Subscription) OnReady(f func()) {
	s.ready.Store(&f)
	f()
}

func (s *Subscription) notify() {
	if f := s.ready.Load(); f != nil {
		(*f)()
	}
}

// Err tells why the channel was closed: nil when the subscriber closed it, ErrTooSlow when the
// bus dropped it.
func (s *Subscription) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the subscription. It is safe to call more than once and concurrently with Publish.
func (s *Subscription) Close() { s.bus.remove(s, nil) }

// Bus routes messages to subscriptions.
type Bus struct {
	mu     sync.RWMutex
	topics map[Topic]map[*Subscription]struct{}
	count  atomic.Int64
	// Buffer is the channel size of new subscriptions; BufferByKind overrides it for some kinds
	// of topic (a live tail of events comes in bursts, a status rarely).
	Buffer       int
	BufferByKind map[string]int

	// relay, when set, hears every published message of a kind with a decoder.
	relay    atomic.Pointer[func(Message)]
	decoders sync.Map // kind -> func([]byte) (any, error)
	remote   sync.Map // kind -> func(Message): hears what arrives from other processes
	listen   atomic.Pointer[func(Topic, bool)]
}

// OnListen makes f hear when a topic gets its first subscriber in this process (true) and loses its
// last (false), in order: f runs under the bus's lock and must neither block nor use the bus.
func (b *Bus) OnListen(f func(t Topic, listening bool)) { b.listen.Store(&f) }

// Listening returns the keys of the topics of kind that have a subscriber in this process.
func (b *Bus) Listening(kind string) []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var keys []string
	for t := range b.topics {
		if t.Kind == kind {
			keys = append(keys, t.Key)
		}
	}
	return keys
}

func (b *Bus) listenChanged(t Topic, listening bool) {
	if f := b.listen.Load(); f != nil {
		(*f)(t, listening)
	}
}

// New returns a bus whose subscriptions buffer buffer messages.
func New(buffer int) *Bus {
	return &Bus{topics: map[Topic]map[*Subscription]struct{}{}, Buffer: buffer}
}

// Subscribe starts receiving the messages of topic.
func (b *Bus) Subscribe(t Topic) *Subscription {
	n := b.Buffer
	if k, ok := b.BufferByKind[t.Kind]; ok {
		n = k
	}
	c := make(chan Message, n)
	s := &Subscription{C: c, c: c, bus: b, topic: t}
	b.mu.Lock()
	set := b.topics[t]
	if set == nil {
		set = map[*Subscription]struct{}{}
		b.topics[t] = set
		b.listenChanged(t, true)
	}
	set[s] = struct{}{}
	b.mu.Unlock()
	b.count.Add(1)
	return s
}

// Subscribers returns how many subscriptions are open, for metrics and leak tests.
func (b *Bus) Subscribers() int64 { return b.count.Load() }

// Publish hands payload to every subscriber of topic without waiting for any of them, in this
// process and, through the relay, in the others.
func (b *Bus) Publish(t Topic, payload any) {
	m := Message{Topic: t, Payload: payload}
	if r := b.relay.Load(); r != nil {
		if _, ok := b.decoders.Load(t.Kind); ok {
			(*r)(m)
		}
	}
	b.Deliver(m)
}

// Relay makes f hear every message published from now on whose kind has a decoder, to carry it to
// other processes. f must not block.
func (b *Bus) Relay(f func(Message)) { b.relay.Store(&f) }

// Decoder declares how a kind's payload, encoded as JSON by the relay, is decoded again in
// another process. Only kinds with a decoder leave the process.
func (b *Bus) Decoder(kind string, decode func([]byte) (any, error)) { b.decoders.Store(kind, decode) }

// JSON decodes a payload of type T (a pointer type, a slice...): the usual Decoder.
func JSON[T any](data []byte) (any, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// OnRemote makes f hear, before the subscribers, each message of kind that arrives from another
// process (to keep what this process remembers of the topic up to date). f must not block.
func (b *Bus) OnRemote(kind string, f func(Message)) { b.remote.Store(kind, f) }

// Arrived delivers a message that another process published, payload still encoded: it is decoded
// only when someone here listens to it.
func (b *Bus) Arrived(t Topic, payload []byte) error {
	tap, tapped := b.remote.Load(t.Kind)
	if !tapped && !b.Listened(t) {
		return nil
	}
	dec, ok := b.decoders.Load(t.Kind)
	if !ok {
		return nil
	}
	v, err := dec.(func([]byte) (any, error))(payload)
	if err != nil {
		return err
	}
	m := Message{Topic: t, Payload: v}
	if tapped {
		tap.(func(Message))(m)
	}
	b.Deliver(m)
	return nil
}

// Listened tells whether topic has a subscriber in this process.
func (b *Bus) Listened(t Topic) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.topics[t]) > 0
}

// Deliver hands m to the subscribers of its topic in this process only.
func (b *Bus) Deliver(m Message) {
	t := m.Topic
	var slow []*Subscription
	b.mu.RLock()
	for s := range b.topics[t] {
		select {
		case s.c <- m:
			s.notify()
		default:
			slow = append(slow, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range slow {
		b.remove(s, ErrTooSlow)
		s.notify()
	}
}

func (b *Bus) remove(s *Subscription, reason error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed.Load() {
		return
	}
	s.closed.Store(true)
	if reason != nil {
		s.err.Store(&reason)
	}
	if set := b.topics[s.topic]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(b.topics, s.topic)
			b.listenChanged(s.topic, false)
		}
	}
	close(s.c)
	b.count.Add(-1)
}
