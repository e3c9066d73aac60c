package replica

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// mustOpenDB returns a migrated PostgreSQL database (a schema of its own) and its URL.
func mustOpenDB(tb testing.TB) (*db.DB, string) {
	tb.Helper()
	if !testdb.IsPostgres() {
		tb.Skip("replicas need PostgreSQL")
	}
	url := testdb.URL(tb)
	ctx := context.Background()
	d, err := db.Open(ctx, url, db.Options{ReadConns: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		tb.Fatal(err)
	}
	return d, url
}

// mustJoin starts a replica with a short lease on the database, closed when the test ends.
func mustJoin(tb testing.TB, d *db.DB, url string, b *bus.Bus, sparse ...string) *Set {
	tb.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{URL: url, Space: d.Space(), Bus: b, LeaseTTL: time.Second, Sparse: sparse})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func waitFor(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s: %s", within, what)
		}
	}
}

func newBus() *bus.Bus {
	b := bus.New(8)
	b.Decoder("thing", bus.JSON[string])
	return b
}

func TestRelay(t *testing.T) {
	d, url := mustOpenDB(t)
	b1, b2 := newBus(), newBus()
	s1, s2 := mustJoin(t, d, url, b1), mustJoin(t, d, url, b2)
	waitFor(t, "two replicas counted", 5*time.Second, func() bool { return s1.Replicas() == 2 && s2.Replicas() == 2 })
	topic := bus.Topic{Kind: "thing", Key: "k"}
	here, there := b1.Subscribe(topic), b2.Subscribe(topic)
	defer here.Close()
	defer there.Close()

	big := strings.Repeat("x", 3*notifyLimit)
	for _, want := range []string{"small", big} {
		b1.Publish(topic, want)
		select {
		case m := <-there.C:
			if m.Payload != want {
				t.Errorf("arrived %.20q..., want %.20q...", m.Payload, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%.20q did not arrive", want)
		}
		if m := <-here.C; m.Payload != want {
			t.Errorf("local subscriber got %.20q", m.Payload)
		}
	}
	select {
	case m := <-here.C:
		t.Errorf("the publisher's subscriber got its echo: %.20q", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	var stored int
	if err := d.Get(context.Background(), &stored, `SELECT COUNT(*) FROM replica_messages`); err != nil || stored != 1 {
		t.Errorf("stored batches: %d (%v), want 1", stored, err)
	}

	// Kinds without a decoder stay in their process.
	b1.Publish(bus.Topic{Kind: "private", Key: "k"}, "secret")
	b2sub := b2.Subscribe(bus.Topic{Kind: "private", Key: "k"})
	defer b2sub.Close()
	select {
	case m := <-b2sub.C:
		t.Errorf("a kind without a decoder left its process: %v", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestSignals(t *testing.T) {
	d, url := mustOpenDB(t)
	s1, s2 := mustJoin(t, d, url, newBus()), mustJoin(t, d, url, newBus())
	var mu sync.Mutex
	got := map[*Set][]string{}
	for _, s := range []*Set{s1, s2} {
		s.Handle("revoked", func(key string, p []byte) {
			mu.Lock()
			got[s] = append(got[s], key+" "+string(p))
			mu.Unlock()
		})
	}
	s1.Send("revoked", "k", []string{"tok_1"})
	waitFor(t, "the signal on the other replica", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[s2]) == 1
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if got[s2][0] != `k ["tok_1"]` || len(got[s1]) != 0 {
		t.Errorf("signals heard: sender %v, other %v", got[s1], got[s2])
	}
}

// owned counts the lanes among ids that s holds.
func owned(s *Set, ids []string) int {
	n := 0
	for _, id := range ids {
		if s.Owns(id) {
			n++
		}
	}
	return n
}

func TestLeases(t *testing.T) {
	d, url := mustOpenDB(t)
	s1, s2 := mustJoin(t, d, url, newBus()), mustJoin(t, d, url, newBus())
	ids := []string{"dst_1", "dst_2", "dst_3", "dst_4"}
	s1.Want(ids)
	s2.Want(ids)
	waitFor(t, "the lanes shared two and two", 10*time.Second, func() bool { return owned(s1, ids) == 2 && owned(s2, ids) == 2 })
	if s1.Leads() == s2.Leads() {
		t.Errorf("leaders: %v and %v, want exactly one", s1.Leads(), s2.Leads())
	}
	for _, id := range ids {
		if s1.Owns(id) == s2.Owns(id) {
			t.Errorf("%s owned by both or neither", id)
		}
	}
	s1.Close()
	waitFor(t, "the other replica holding everything", 5*time.Second, func() bool { return s2.Leads() && owned(s2, ids) == 4 })
}

// TestReconnect: a replica whose listening connection is lost connects again, runs its
// OnReconnect functions (what was sent meanwhile was missed), and hears signals again.
func TestReconnect(t *testing.T) {
	d, url := mustOpenDB(t)
	ctx := context.Background()
	s1, err := Open(ctx, Options{URL: url, Space: d.Space(), Bus: newBus(), LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reconnects, heard := 0, 0
	s1.OnReconnect(func() { mu.Lock(); reconnects++; mu.Unlock() })
	s1.Handle("ping", func(string, []byte) { mu.Lock(); heard++; mu.Unlock() })
	if err := s1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s1.Close)
	s2 := mustJoin(t, d, url, newBus())

	admin, err := db.Open(ctx, testdb.ServerURL(), db.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.Get(ctx, &killed, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = ?`,
		`LISTEN "`+s1.channel+`"`); err != nil || killed == 0 {
		t.Fatalf("terminating the listening connections: %d (%v)", killed, err)
	}
	waitFor(t, "OnReconnect", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return reconnects == 1 })
	waitFor(t, "a signal heard after the reconnection", 10*time.Second, func() bool {
		s2.Send("ping", "", nil)
		mu.Lock()
		defer mu.Unlock()
		return heard > 0
	})
}

// TestSparse: messages of a sparse kind leave a replica only while another listens to their topic.
func TestSparse(t *testing.T) {
	d, url := mustOpenDB(t)
	join := func(b *bus.Bus) *Set { return mustJoin(t, d, url, b, "thing") }
	b1, b2 := newBus(), newBus()
	s1, s2 := join(b1), join(b2)
	waitFor(t, "two replicas counted", 5*time.Second, func() bool { return s1.Replicas() == 2 && s2.Replicas() == 2 })
	topic := bus.Topic{Kind: "thing", Key: "src_1"}
	if s1.interest.wanted(topic) {
		t.Error("relayed before anyone listens")
	}
	sub := b2.Subscribe(topic)
	waitFor(t, "the other replica's interest", 5*time.Second, func() bool { return s1.interest.wanted(topic) })
	if s1.interest.wanted(bus.Topic{Kind: "thing", Key: "src_2"}) {
		t.Error("another topic of the kind relayed")
	}
	b1.Publish(topic, "hello")
	select {
	case m := <-sub.C:
		if m.Payload != "hello" {
			t.Errorf("arrived %v", m.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived")
	}
	sub.Close()
	waitFor(t, "the interest withdrawn", 5*time.Second, func() bool { return !s1.interest.wanted(topic) })

	// A replica that joins later hears of the interests that exist (it says hello).
	again := b2.Subscribe(topic)
	defer again.Close()
	s3 := join(newBus())
	waitFor(t, "the newcomer told of the interest", 5*time.Second, func() bool { return s3.interest.wanted(topic) })
}
