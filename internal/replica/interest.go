package replica

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/bus"
)

const (
	// announceEvery is how often a replica tells the others every topic of a sparse kind it
	// listens to; an interest not announced again within interestTTL is forgotten (its replica died).
	announceEvery = 10 * time.Second
	interestTTL   = 3 * announceEvery
)

// interest remembers, for the sparse kinds (Options.Sparse), which topics the other replicas
// listen to: their messages are relayed only then. A source's live tail gets every event of the
// source, and nobody may be watching it.
type interest struct {
	mu    sync.Mutex
	by    map[bus.Topic]map[string]time.Time // replica id -> until when its interest holds
	kinds map[string]bool
	last  time.Time // of this replica's last full announcement
}

// announcement is a replica's interest in topics of one kind: keys on or off, or all of its keys
// (Full: those not listed are off).
type announcement struct {
	Replica string   `json:"r"`
	Kind    string   `json:"k"`
	Keys    []string `json:"keys"`
	On      bool     `json:"on"`
	Full    bool     `json:"full,omitempty"`
}

func (in *interest) init(kinds []string) {
	in.by = map[bus.Topic]map[string]time.Time{}
	in.kinds = map[string]bool{}
	for _, k := range kinds {
		in.kinds[k] = true
	}
}

// Wanted tells whether another replica listens to topic; always true for the kinds that are not
// sparse (Options.Sparse), whose interest is not announced.
func (s *Set) Wanted(t bus.Topic) bool { return s.interest.wanted(t) }

// wanted tells whether a message of topic should leave this process.
func (in *interest) wanted(t bus.Topic) bool {
	if !in.kinds[t.Kind] {
		return true
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	for r, until := range in.by[t] {
		if now.Before(until) {
			return true
		}
		delete(in.by[t], r)
	}
	delete(in.by, t)
	return false
}

func (in *interest) apply(a announcement) {
	in.mu.Lock()
	defer in.mu.Unlock()
	until := time.Now().Add(interestTTL)
	if a.Full {
		listed := make(map[string]bool, len(a.Keys))
		for _, k := range a.Keys {
			listed[k] = true
		}
		for t, rs := range in.by {
			if t.Kind == a.Kind && !listed[t.Key] {
				delete(rs, a.Replica)
			}
		}
	}
	for _, k := range a.Keys {
		t := bus.Topic{Kind: a.Kind, Key: k}
		rs := in.by[t]
		if rs == nil {
			rs = map[string]time.Time{}
			in.by[t] = rs
		}
		if a.On {
			rs[a.Replica] = until
		} else {
			delete(rs, a.Replica)
		}
	}
}

// watchInterest announces this replica's interest as it changes, all of it at start and every
// announceEvery, and when another replica joins (it says hello).
func (s *Set) watchInterest() {
	if len(s.interest.kinds) == 0 {
		return
	}
	s.Handle("interest", func(_ string, p []byte) {
		var a announcement
		if json.Unmarshal(p, &a) == nil {
			s.interest.apply(a)
		}
	})
	s.Handle("hello", func(string, []byte) { s.announceAll() })
	s.bus.OnListen(func(t bus.Topic, on bool) {
		if s.interest.kinds[t.Kind] {
			s.Send("interest", "", announcement{Replica: s.id, Kind: t.Kind, Keys: []string{t.Key}, On: on})
		}
	})
	s.Send("hello", "", nil)
	s.announceAll()
}

func (s *Set) announceAll() {
	s.interest.mu.Lock()
	s.interest.last = time.Now()
	s.interest.mu.Unlock()
	for kind := range s.interest.kinds {
		s.Send("interest", "", announcement{Replica: s.id, Kind: kind, Keys: s.bus.Listening(kind), On: true, Full: true})
	}
}

// announceDue announces everything again when it is time.
func (s *Set) announceDue() {
	s.interest.mu.Lock()
	due := len(s.interest.kinds) > 0 && time.Since(s.interest.last) >= announceEvery
	s.interest.mu.Unlock()
	if due {
		s.announceAll()
	}
}
