package app_test

// Replicas: several servers on one PostgreSQL database. Each test starts two servers (two App
// instances, or two processes of the binary) on the same schema.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// sameDatabase makes a second server a replica of the first: the same database and key.
func sameDatabase(first *server) func(*config.Config) {
	return func(c *config.Config) {
		c.DatabaseURL = first.Config.DatabaseURL
		c.EncryptionKey = first.Config.EncryptionKey
	}
}

// startReplicas starts two servers on one database and waits until each counts the other.
func startReplicas(t *testing.T, opts ...func(*config.Config)) (a, b *server) {
	t.Helper()
	if !testdb.IsPostgres() {
		t.Skip("replicas need PostgreSQL")
	}
	a = startServer(t, opts...)
	b = startServer(t, append(opts, sameDatabase(a))...)
	for _, s := range []*server{a, b} {
		subWait(t, "both replicas counted", 5*time.Second, func() bool {
			return strings.Contains(get(t, s.URL+"/metrics"), "\njunction_replicas 2\n")
		})
	}
	return a, b
}

// TestReplicasBus: a subscription on replica B sees changes made through replica A, large ones
// (past NOTIFY's 8000 bytes, through replica_messages) included, and A's own subscribers get
// each message once (A ignores the echo of what it sent).
func TestReplicasBus(t *testing.T) {
	a, b := startReplicas(t, subQuiet)
	tm := newTeam(t, a, "rep-bus", "Ada")
	srcID, key := tm.source(t, "Web")
	ws := map[string]any{"ws": tm.wsID}
	named := func(name string) func(map[string]any) bool {
		return func(d map[string]any) bool { return trkStr(d, "sourceStatusChanged.name") == name }
	}
	onB := subDial(t, b, tm.owner.tok)
	status := onB.subscribe(t, subSourceStatus, ws)
	live := onB.subscribe(t, `subscription($id: ID!) { liveEvents(sourceId: $id) { event { userId } } }`, map[string]any{"id": srcID})
	onA := subDial(t, a, tm.owner.tok).subscribe(t, subSourceStatus, ws)
	subWaitSubscribers(t, b, 2)
	subWaitSubscribers(t, a, 1)

	tm.rename(t, tm.owner.tok, srcID, "Web 2")
	status.nextWhere(t, 5*time.Second, "Web 2 on B", named("Web 2"))
	onA.nextWhere(t, 5*time.Second, "Web 2 on A", named("Web 2"))
	select {
	case m := <-onA.ch:
		t.Errorf("A's subscriber got a second message: %s", m.Payload)
	case <-time.After(500 * time.Millisecond):
	}

	// A live tail's events go only to the replicas that watch the source: A learns that B does
	// from B's announcement, which may come after the subscription starts.
	subWait(t, "A relaying the events B watches", 5*time.Second, func() bool {
		subTrack(t, a, key, map[string]any{"type": "track", "userId": "warm-up", "event": "E"})
		select {
		case <-live.ch:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	big := strings.Repeat("x", 20000)
	subTrack(t, a, key, map[string]any{"type": "track", "userId": "small", "event": "E"},
		map[string]any{"type": "track", "userId": "large", "event": "E", "properties": map[string]any{"blob": big}})
	for _, want := range []string{"small", "large"} {
		d := live.nextWhere(t, 5*time.Second, want, func(d map[string]any) bool { return trkStr(d, "liveEvents.event.userId") != "warm-up" })
		if got := trkStr(d, "liveEvents.event.userId"); got != want {
			t.Errorf("live event on B: %s, want %s", got, want)
		}
	}
	// Nobody watches the other source: its events stay on A.
	before := 0
	if err := a.App.DB().Get(t.Context(), &before, `SELECT COUNT(*) FROM replica_messages`); err != nil {
		t.Fatal(err)
	}
	_, quietKey := tm.source(t, "Unwatched")
	subTrack(t, a, quietKey, map[string]any{"type": "track", "userId": "large", "event": "E", "properties": map[string]any{"blob": big}})
	time.Sleep(300 * time.Millisecond)
	after := 0
	if err := a.App.DB().Get(t.Context(), &after, `SELECT COUNT(*) FROM replica_messages`); err != nil || after != before {
		t.Errorf("an event nobody watches was relayed: %d stored batches, then %d (%v)", before, after, err)
	}
	var stored int
	if err := a.App.DB().Get(t.Context(), &stored, `SELECT COUNT(*) FROM replica_messages`); err != nil || stored == 0 {
		t.Errorf("batches stored past NOTIFY's limit: %d (%v), want some", stored, err)
	}
}

// TestReplicasRevocations: what changes rights through replica A takes effect on replica B within
// a second: a revoked token closes B's websocket, a removed member's subscription on B ends, and
// a revoked write key is refused by B's tracking API although B had it cached.
func TestReplicasRevocations(t *testing.T) {
	a, b := startReplicas(t, subQuiet)
	tm := newTeam(t, a, "rep-rights", "Ada")
	bea := tm.add(t, "bea", "Bea", "MEMBER")
	srcID, key := tm.source(t, "Web")
	ws := map[string]any{"ws": tm.wsID}

	t.Run("TokenRevoked", func(t *testing.T) {
		p := tm.mutate(t, tm.owner.tok, "accessTokenCreate", "AccessTokenCreateInput", "accessToken { id } secret",
			map[string]any{"workspaceId": tm.wsID, "name": "dashboard", "role": "MEMBER"})
		tok, tokID := trkStr(p, "secret"), trkStr(p, "accessToken.id")
		c := subDial(t, b, tok)
		c.subscribe(t, subSourceStatus, ws)
		subWaitSubscribers(t, b, 1)
		tm.mutate(t, tm.owner.tok, "accessTokenRevoke", "AccessTokenRevokeInput", "accessToken { id }", map[string]any{"accessTokenId": tokID})
		if code := c.closedWith(t, time.Second); code != 4403 {
			t.Errorf("close code on B %d, want 4403", code)
		}
		subWaitSubscribers(t, b, 0)
	})

	t.Run("MemberRemoved", func(t *testing.T) {
		op := subDial(t, b, bea.tok).subscribe(t, subSourceStatus, ws)
		subWaitSubscribers(t, b, 1)
		tm.mutate(t, tm.owner.tok, "memberRemove", "MemberRemoveInput", "removedMembershipId", map[string]any{"membershipId": bea.membership})
		time.Sleep(time.Second)
		tm.rename(t, tm.owner.tok, srcID, "After removal")
		if m := op.next(t, 5*time.Second); m.Type != "error" || m.code() != "FORBIDDEN" {
			t.Errorf("Bea's subscription on B after her removal through A: %s %s, want an error FORBIDDEN", m.Type, m.Payload)
		}
	})

	t.Run("WriteKeyRevoked", func(t *testing.T) {
		strict := append(trkBasic(key), "X-Strict-Mode", "1")
		trkWantOK(t, trkSend(t, b, "/v1/track", map[string]any{"userId": "cached", "event": "E"}, strict...)) // B caches the key
		d := tm.gql(t, tm.owner.tok, `mutation($id: ID!) { writeKeyCreate(input: {sourceId: $id}) { writeKey { key } } }`, map[string]any{"id": srcID})
		fresh := trkStr(d, "writeKeyCreate.writeKey.key")
		tm.gql(t, tm.owner.tok, `mutation($id: ID!, $k: String!) { writeKeyRevoke(input: {sourceId: $id, key: $k}) { userErrors { message } } }`,
			map[string]any{"id": srcID, "k": key})
		time.Sleep(time.Second)
		trkWantError(t, trkSend(t, b, "/v1/track", map[string]any{"userId": "late", "event": "E"}, strict...), 401, "REVOKED_WRITE_KEY")
		trkWantOK(t, trkSend(t, b, "/v1/track", map[string]any{"userId": "fresh", "event": "E"}, append(trkBasic(fresh), "X-Strict-Mode", "1")...))
	})
}

// runs reads how many times a server ran a periodic job, from /metrics.
func runs(t *testing.T, s *server, job string) int {
	t.Helper()
	m := regexp.MustCompile(`\njunction_periodic_runs_total\{job="` + job + `"\} (\d+)\n`).FindStringSubmatch(get(t, s.URL+"/metrics"))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestReplicasPeriodicWorkOnce: of two replicas, one runs the periodic work (pruning, resolving
// health issues); when it stops, the other takes over within a few seconds.
func TestReplicasPeriodicWorkOnce(t *testing.T) {
	a, b := startReplicas(t, subQuiet, func(c *config.Config) { c.HealthResolveAfter = 200 * time.Millisecond })
	subWait(t, "a replica resolving health issues", 5*time.Second, func() bool {
		return runs(t, a, "health-resolve")+runs(t, b, "health-resolve") > 3
	})
	time.Sleep(time.Second)
	leader, other := a, b
	if runs(t, b, "health-resolve") > 0 {
		leader, other = b, a
	}
	for _, job := range []string{"health-resolve", "prune"} {
		if runs(t, leader, job) == 0 || runs(t, other, job) != 0 {
			t.Errorf("%s: %d runs on one replica, %d on the other; want runs on one only", job, runs(t, leader, job), runs(t, other, job))
		}
	}
	if n := runs(t, leader, "prune"); n != 1 {
		t.Errorf("prune ran %d times on the leader, want once (at start, then hourly)", n)
	}

	// Usage is published by the leader once a second at most, for events that came through
	// either replica: the subscribers of both see one message for one event.
	tm := newTeam(t, other, "rep-usage", "Ada")
	_, key := tm.source(t, "Web")
	ws := map[string]any{"ws": tm.wsID}
	ops := []*subOp{subDial(t, leader, tm.owner.tok).subscribe(t, subUsage, ws), subDial(t, other, tm.owner.tok).subscribe(t, subUsage, ws)}
	subWaitSubscribers(t, leader, 1)
	subWaitSubscribers(t, other, 1)
	subTrack(t, other, key, map[string]any{"type": "track", "userId": "u1", "event": "E"})
	for i, op := range ops {
		if d := op.next(t, 5*time.Second).data(t); trkInt(trkObj(d, "workspaceUsageChanged")["apiCalls"]) != 1 {
			t.Errorf("usage on replica %d: %v", i, d)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for i, op := range ops {
		select {
		case m := <-op.ch:
			t.Errorf("replica %d's subscriber got usage twice: %s", i, m.Payload)
		default:
		}
	}

	// A leader that stops gives its lease back: the other takes over at once. One that dies is
	// replaced once its lease expires (TestReplicasLaneTakeover).
	start := time.Now()
	leader.stop(t)
	subWait(t, "the other replica taking over", 10*time.Second, func() bool {
		return runs(t, other, "health-resolve") > 0 && runs(t, other, "prune") == 1
	})
	t.Logf("taken over in %s", time.Since(start).Round(10*time.Millisecond))
}

// TestReplicasLaneTakeover runs the binary twice on one database and kills, with SIGKILL, the
// replica whose lease holds a busy destination's lane: the other takes the lane over once the
// lease expires, and every event acknowledged by the tracking API reaches the receiver (at least
// once; the duplicates are what was in flight).
func TestReplicasLaneTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the server binary: not under -short")
	}
	if !testdb.IsPostgres() {
		t.Skip("replicas need PostgreSQL")
	}
	bin := buildJunction(t)
	dbURL := testdb.URL(t)
	loopback := "EGRESS_ALLOW=127.0.0.0/8,::1/128"
	procs := []*process{startJunction(t, bin, dbURL, loopback), startJunction(t, bin, dbURL, loopback)}
	rc := dlvNewReceiver(t, func(dlvHit) dlvReply { return dlvReply{Status: http.StatusOK, Delay: 5 * time.Millisecond} })
	e := dlvNewEnv(t, &server{URL: procs[0].URL}, "rep-lanes")
	srcID, key := e.source(t, "Web")
	dst := e.webhook(t, "Busy", map[string]any{"url": rc.URL}, true)
	e.connect(t, srcID, dst, true)

	ctx := context.Background()
	d, err := db.Open(ctx, dbURL, db.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	leaseOwner := func() string {
		var owner string
		_ = d.Get(ctx, &owner, `SELECT owner FROM replica_leases WHERE name = ?`, "lane:"+dst)
		return owner
	}
	var owner, survivor *process
	dlvWait(t, "the lane leased", 15*time.Second, func() bool {
		id := leaseOwner()
		for i, p := range procs {
			if id != "" && strings.Contains(p.logs.String(), `"replica":"`+id+`"`) {
				owner, survivor = p, procs[1-i]
				return true
			}
		}
		return false
	})

	// Events go in through the survivor, in batches, while the owner's lane delivers them.
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			ids := make([]string, 20)
			batch := make([]map[string]any, len(ids))
			for i := range ids {
				ids[i] = fmt.Sprintf("lane-%d-%d", seq, i)
				batch[i] = map[string]any{"type": "track", "event": "E", "userId": "u", "messageId": ids[i]}
			}
			if status, _ := sendBatch(http.DefaultClient, survivor.URL, key, batch); status == http.StatusOK {
				mu.Lock()
				acked = append(acked, ids...)
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	dlvWait(t, "the owner's lane delivering", 15*time.Second, func() bool { return rc.Count() > 100 })
	owner.kill(t)
	killedAt := time.Now()
	time.Sleep(time.Second)
	close(stop)
	<-done
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()

	delivered := func() (map[string]int, int) {
		got := map[string]int{}
		requests := 0
		for _, h := range rc.Hits() {
			if h.Status == http.StatusOK {
				got[h.MessageID]++
				requests++
			}
		}
		return got, requests
	}
	dlvWait(t, "every acknowledged event delivered", 60*time.Second, func() bool {
		got, _ := delivered()
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	got, requests := delivered()
	report(t, fmt.Sprintf("lane takeover (kill -9 of the lane's owner): %d events acknowledged, all delivered within %s of the kill; %d deliveries, %d duplicates",
		len(want), time.Since(killedAt).Round(100*time.Millisecond), requests, requests-len(got)))
	if id := leaseOwner(); !strings.Contains(survivor.logs.String(), `"replica":"`+id+`"`) {
		t.Errorf("the lane's lease is held by %q, not by the surviving replica", id)
	}
}

// TestReplicasLanesSpread: the lanes of four destinations are shared two and two between two
// replicas, each event is delivered once, and the lanes go to the remaining replica when the other
// stops.
func TestReplicasLanesSpread(t *testing.T) {
	a, b := startReplicas(t, subQuiet, allowLoopback)
	rc := dlvNewReceiver(t, nil)
	e := dlvNewEnv(t, a, "rep-spread")
	srcID, key := e.source(t, "Web")
	for i := range 4 {
		e.connect(t, srcID, e.webhook(t, fmt.Sprint("Hook ", i), map[string]any{"url": rc.URL}, true), true)
	}
	owners := func() map[string]int {
		var rows []string
		if err := a.App.DB().Select(t.Context(), &rows, `SELECT owner FROM replica_leases WHERE name LIKE 'lane:%' AND expires_at > now()`); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, o := range rows {
			out[o]++
		}
		return out
	}
	dlvWait(t, "lanes shared two and two", 15*time.Second, func() bool {
		o := owners()
		return len(o) == 2 && o[keyOf(o, 0)] == 2 && o[keyOf(o, 1)] == 2
	})
	dlvTrack(t, b, key, map[string]any{"type": "track", "event": "E", "userId": "u1"})
	dlvWait(t, "the event delivered to the four destinations", 10*time.Second, func() bool { return rc.Count() >= 4 })
	time.Sleep(time.Second)
	if n := rc.Count(); n != 4 {
		t.Errorf("%d deliveries, want 4 (one per destination)", n)
	}

	b.stop(t)
	dlvWait(t, "the four lanes on the remaining replica", 10*time.Second, func() bool {
		o := owners()
		return len(o) == 1 && o[keyOf(o, 0)] == 4
	})
	dlvTrack(t, a, key, map[string]any{"type": "track", "event": "E", "userId": "u2"})
	dlvWait(t, "the second event delivered to the four destinations", 10*time.Second, func() bool { return rc.Count() >= 8 })
}

// keyOf returns the i-th key of m in sorted order ("" past the end).
func keyOf(m map[string]int, i int) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if i < len(ks) {
		return ks[i]
	}
	return ""
}

// TestReplicasRateLimit: the rate limit per workspace holds across replicas, each enforcing its
// share (limit / live replicas): a burst of 10 admits about 5 events through each replica.
func TestReplicasRateLimit(t *testing.T) {
	a, b := startReplicas(t, subQuiet, func(c *config.Config) { c.IngestRate, c.IngestBurst = 2, 10 })
	tm := newTeam(t, a, "rep-rate", "Ada")
	_, key := tm.source(t, "Web")
	admitted := func(s *server) int {
		n := 0
		for i := range 10 {
			r := trkSend(t, s, "/v1/track", map[string]any{"userId": "u", "event": "E", "messageId": fmt.Sprint(s.URL, i)}, trkBasic(key)...)
			if r.Status == http.StatusOK {
				n++
			} else if r.Status != http.StatusTooManyRequests {
				t.Fatalf("status %d: %s", r.Status, r.Raw)
			}
		}
		return n
	}
	na, nb := admitted(a), admitted(b)
	// Each replica's bucket holds 5 and refills at 1 a second: a second of sending adds one.
	if na < 5 || na > 6 || nb < 5 || nb > 6 {
		t.Errorf("admitted %d through A and %d through B, want 5 (or 6) each: the workspace's burst of 10 shared", na, nb)
	}
}

// TestReplicasEngageFollower: of two replicas, the leader resolves identities from the event log,
// whichever replica took the events; when it stops, the other goes on from the stored cursor.
func TestReplicasEngageFollower(t *testing.T) {
	a, b := startReplicas(t, subQuiet)
	e := tpNewEnv(t, a, "rep-engage")
	subWait(t, "a replica leading", 10*time.Second, func() bool { return runs(t, a, "prune")+runs(t, b, "prune") > 0 })
	leader, other := a, b
	if runs(t, b, "prune") > 0 {
		leader, other = b, a
	}
	ctx := context.Background()
	resolved := func(user string) bool {
		var n int
		if err := other.App.DB().Get(ctx, &n, `SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ? AND type = 'user_id' AND value = ?`,
			e.wsID, user); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	// The follower takes the workspace in within a second of its plan's change.
	subTrack(t, other, e.src.Key, map[string]any{"type": "identify", "userId": "u-before", "anonymousId": "a-1"})
	subTrack(t, leader, e.src.Key, map[string]any{"type": "identify", "userId": "u-leader", "anonymousId": "a-2"})
	subWait(t, "events through both replicas resolved", 10*time.Second, func() bool { return resolved("u-before") && resolved("u-leader") })

	start := time.Now()
	leader.stop(t)
	subTrack(t, other, e.src.Key, map[string]any{"type": "identify", "userId": "u-after", "anonymousId": "a-1"})
	subWait(t, "the other replica resolving", 15*time.Second, func() bool { return resolved("u-after") })
	t.Logf("resolved by the other replica %s after the leader stopped", time.Since(start).Round(10*time.Millisecond))
	var events, inProfiles, merges int
	db := other.App.DB()
	if err := db.Get(ctx, &events, `SELECT COUNT(*) FROM events WHERE workspace_id = ? AND status = 'ACCEPTED'`, e.wsID); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(ctx, &inProfiles, `SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, e.wsID); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(ctx, &merges, `SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, e.wsID); err != nil {
		t.Fatal(err)
	}
	if events != 3 || inProfiles != 3 || merges != 0 {
		t.Errorf("%d events, %d in profiles, %d merges; want 3, 3, 0", events, inProfiles, merges)
	}
}
