package regulation

import (
	"context"
	"fmt"
	"testing"

	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// newStageService is a service whose cache already holds the suppressed subjects of workspace
// "ws": the stage's rules checked without a database.
func newStageService(tb testing.TB, suppressed map[SubjectType][]string) *Service {
	tb.Helper()
	s := New(nil, nil, []byte("0123456789abcdef0123456789abcdef"), Options{})
	set := &suppressionSet{key: s.workspaceKey("ws"), hashes: map[string]map[[32]byte]struct{}{}}
	for t, values := range suppressed {
		for _, v := range values {
			set.add(t.kind(), rawHash(set.key, t.kind(), normalise(t, v)))
		}
	}
	s.cache.cache.Set("ws", set)
	s.cache.cache.Set("empty", &suppressionSet{hashes: map[string]map[[32]byte]struct{}{}})
	return s
}

func event(userID, anonymousID, payload string) *ingest.Event {
	e := &ingest.Event{Status: ingest.Accepted, Payload: []byte(payload)}
	if userID != "" {
		e.UserID = &userID
	}
	if anonymousID != "" {
		e.AnonymousID = &anonymousID
	}
	return e
}

func TestStage(t *testing.T) {
	s := newStageService(t, map[SubjectType][]string{UserID: {"u-1"}, AnonymousID: {"a-1"}, Email: {"Ada@Example.com"}})
	for name, c := range map[string]struct {
		ws         string
		ev         *ingest.Event
		suppressed bool
	}{
		"ByUserID":             {"ws", event("u-1", "", `{"userId":"u-1"}`), true},
		"ByAnonymousID":        {"ws", event("", "a-1", `{"anonymousId":"a-1"}`), true},
		"ByTraitsEmail":        {"ws", event("u-2", "", `{"traits":{"email":"ADA@example.com"}}`), true},
		"ByContextTraitsEmail": {"ws", event("u-2", "", `{"context":{"traits":{"email":"ada@example.com"}}}`), true},
		"ByEmailAsUserID":      {"ws", event("ada@example.com", "", `{}`), true},
		"AnotherUser":          {"ws", event("u-2", "a-2", `{"traits":{"email":"bob@example.com"}}`), false},
		"UserIDIsNoAnonymous":  {"ws", event("a-1", "", `{}`), false},
		"AnotherWorkspace":     {"empty", event("u-1", "a-1", `{}`), false},
	} {
		t.Run(name, func(t *testing.T) {
			b := &ingest.Batch{WorkspaceID: c.ws, Events: []*ingest.Event{c.ev}}
			if err := s.Stage().Process(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			got := c.ev.Status == ingest.Discarded && c.ev.Reason == ingest.Suppressed
			if got != c.suppressed {
				t.Fatalf("suppressed = %v, want %v", got, c.suppressed)
			}
			if got && (string(c.ev.Payload) != "{}" || c.ev.UserID != nil || c.ev.AnonymousID != nil) {
				t.Fatalf("a suppressed event keeps data: %+v", c.ev)
			}
		})
	}
}

func TestOverall(t *testing.T) {
	for _, c := range []struct {
		statuses []Status
		want     Status
	}{
		{nil, Finished},
		{[]Status{Finished, NotSupported}, Finished},
		{[]Status{Finished, Failed}, PartialSuccess},
		{[]Status{Failed, NotSupported}, Failed},
	} {
		if got := overall(c.statuses); got != c.want {
			t.Errorf("overall(%v) = %s, want %s", c.statuses, got, c.want)
		}
	}
}

func TestJSONLike(t *testing.T) {
	got := forget.JSONLike([]string{`50%_off"x`, "Ada@Example.com"}, true)
	if got[0] != `%"50\%\_off\\"x"%` || got[1] != `%"ada@example.com"%` {
		t.Fatalf("JSONLike: %q", got)
	}
}

// BenchmarkStage measures what suppression costs a request of 100 events: in a workspace that
// suppresses no one (a map lookup), and in one that suppresses 10,000 users (a hash per event).
func BenchmarkStage(b *testing.B) {
	var many []string
	for i := range 10_000 {
		many = append(many, fmt.Sprintf("user-%d", i))
	}
	s := newStageService(b, map[SubjectType][]string{UserID: many})
	for _, ws := range []string{"empty", "ws"} {
		b.Run(ws, func(b *testing.B) {
			events := make([]*ingest.Event, 100)
			for i := range events {
				events[i] = event(fmt.Sprintf("visitor-%d", i), "anon", `{}`)
			}
			batch := &ingest.Batch{WorkspaceID: ws, Events: events}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Stage().Process(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
