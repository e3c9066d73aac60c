package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
)

// BenchmarkEngageLag measures how far identity resolution (a follower of the event log, woken by
// the tracking API's commits) trails ingest at full speed. One server, two workspaces: one
// on TEAM (no Engage: the baseline) and one on BUSINESS (every accepted event resolved into
// profiles). 8 clients post 100-event batches (the ingest benchmarks' events: userIds and
// anonymousIds that keep tying profiles together, so merges and limits are exercised) in four
// alternating phases, without, with, without, with, of b.N/4 batches each. During the phases with
// Engage a probe posts an identify with a new userId every 50 ms and measures, from its answer,
// how long until its profile is in the database (polled every 2 ms); after the last phase it
// measures how long until every event of the BUSINESS workspace is resolved.
//
//	go test -run '^$' -bench 'EngageLag$' -benchtime 2000x -count 3 ./internal/app/
func BenchmarkEngageLag(b *testing.B) {
	const perBatch = 100
	s, base, eng, wsID := engageBenchServer(b)
	count := func(q string, args ...any) int { return benchCount(b, s, q, args...) }
	var lags []time.Duration
	probe := func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		engageProbe(b, s, eng.writeKey, wsID, stop, &lags)
	}

	defer func() {
		if b.Failed() { // what the server said about it
			b.Log(s.Logs.String())
		}
	}()
	// Every hold of the writer (the tracking API's commits, identity resolution's transactions),
	// kept apart by phase: what Engage adds to the writer's longest holds.
	var holdMu sync.Mutex
	var engageOn bool
	var offHolds, onHolds []time.Duration
	s.App.DB().ObserveWrites(func(_ db.Hold, held time.Duration) {
		holdMu.Lock()
		if engageOn {
			onHolds = append(onHolds, held)
		} else {
			offHolds = append(offHolds, held)
		}
		holdMu.Unlock()
	})
	setOn := func(on bool) { holdMu.Lock(); engageOn = on; holdMu.Unlock() }
	without, with := newEventGen(base.writeKey), newEventGen(eng.writeKey)
	var offTime, onTime time.Duration
	var offBatches, onBatches int
	var lastOn time.Time
	b.ResetTimer()
	for phase := range 4 {
		n := b.N / 4
		if phase == 3 {
			n = b.N - 3*(b.N/4)
		}
		setOn(phase%2 == 1)
		if phase%2 == 0 {
			offTime += ingestPhase(b, s, without, n, perBatch)
			offBatches += n
			continue
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go probe(stop, done)
		onTime += ingestPhase(b, s, with, n, perBatch)
		lastOn = time.Now()
		close(stop)
		<-done
		onBatches += n
	}
	// Every accepted event of the BUSINESS workspace resolved to a profile: the drain after the
	// last acknowledgement.
	want := count(`SELECT COUNT(*) FROM events WHERE workspace_id = ? AND status = 'ACCEPTED'`, wsID)
	for count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, wsID) < want {
		if time.Since(lastOn) > 2*time.Minute {
			b.Fatal("identity resolution did not catch up in 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	drain := time.Since(lastOn)
	b.StopTimer()
	s.App.DB().ObserveWrites(func(db.Hold, time.Duration) {})
	off := float64(offBatches*perBatch) / offTime.Seconds()
	on := float64(onBatches*perBatch) / onTime.Seconds()
	b.ReportMetric(off, "without-events/s")
	b.ReportMetric(on, "with-engage-events/s")
	b.ReportMetric(on/off, "ratio")
	if len(lags) > 0 {
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		pick := func(p float64) float64 {
			return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
		}
		b.ReportMetric(pick(0.50), "lag-p50-ms")
		b.ReportMetric(pick(0.99), "lag-p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag-max-ms")
		b.ReportMetric(float64(len(lags)), "probes")
	}
	b.ReportMetric(float64(drain.Microseconds())/1000, "drain-ms")
	holdMu.Lock()
	for _, h := range []struct {
		name  string
		holds []time.Duration
	}{{"off", offHolds}, {"on", onHolds}} {
		if len(h.holds) == 0 {
			continue
		}
		sort.Slice(h.holds, func(i, j int) bool { return h.holds[i] < h.holds[j] })
		b.ReportMetric(float64(h.holds[min(len(h.holds)-1, int(0.99*float64(len(h.holds))))].Microseconds())/1000, "hold-p99-"+h.name+"-ms")
		b.ReportMetric(float64(h.holds[len(h.holds)-1].Microseconds())/1000, "hold-max-"+h.name+"-ms")
	}
	holdMu.Unlock()
	b.ReportMetric(float64(count(`SELECT COUNT(*) FROM profiles WHERE workspace_id = ? AND merged_into IS NULL`, wsID)), "profiles")
	b.ReportMetric(float64(count(`SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, wsID)), "merges")
}

// engageBenchServer starts a server with two workspaces, one on TEAM (no Engage) and one on
// BUSINESS (identity resolution follows its events), and returns their sources and the BUSINESS
// workspace's id.
func engageBenchServer(b *testing.B) (s *server, base, eng trackingSource, wsID string) {
	s = startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	setPlan := func(src trackingSource, plan string) string {
		r := s.post(b, `{ viewer { workspaces { nodes { id } } } }`, nil, src.auth...)
		wsID := dig(r.Data, "viewer", "workspaces", "nodes").([]any)[0].(map[string]any)["id"].(string)
		r = s.post(b, `mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": wsID, "plan": plan}}, src.auth...)
		if len(r.Errors) > 0 {
			b.Fatal(r.Raw)
		}
		return wsID
	}
	base = newTrackingSource(b, s, "bench-team")
	setPlan(base, "TEAM")
	eng = newTrackingSource(b, s, "bench-business")
	wsID = setPlan(eng, "BUSINESS")
	// Measure from when identity resolution follows the workspace (it looks for workspaces that
	// gained Engage every second) and has resolved what came before.
	for benchCount(b, s, `SELECT COUNT(*) FROM engage_workspaces WHERE workspace_id = ? AND backfilled_at IS NOT NULL`, wsID) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	return s, base, eng, wsID
}

func benchCount(b *testing.B, s *server, q string, args ...any) int {
	var n int
	if err := s.App.DB().Get(context.Background(), &n, q, args...); err != nil {
		b.Fatal(err)
	}
	return n
}

// engageProbe posts, every 50 ms until stop, an identify with a new userId to the source of
// writeKey, and adds to lags how long after its answer its profile was in the database (polled
// every 2 ms). A probe waits for its profile before the next is sent.
func engageProbe(b *testing.B, s *server, writeKey, wsID string, stop <-chan struct{}, lags *[]time.Duration) {
	client := &http.Client{}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		user := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
		body := fmt.Sprintf(`{"userId":%q,"anonymousId":"probe-anon-%d","traits":{"probe":true}}`, user, i)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/identify", bytes.NewReader([]byte(body)))
		req.SetBasicAuth(writeKey, "")
		res, err := client.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Errorf("probe: %v", err)
			return
		}
		res.Body.Close()
		acked := time.Now()
		for benchCount(b, s, `SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ? AND type = 'user_id' AND value = ?`, wsID, user) == 0 {
			if time.Since(acked) > 30*time.Second {
				b.Errorf("probe %s never resolved", user)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		*lags = append(*lags, time.Since(acked))
	}
}

// BenchmarkEngageLagAtRate measures identity resolution's lag at fixed offered rates of ingest
// into the BUSINESS workspace, rather than at the full speed of BenchmarkEngageLag: 100-event
// batches sent on schedule (open loop, at most 32 in flight), the same probe, for b.N batches a
// rate.
//
//	go test -run '^$' -bench EngageLagAtRate -benchtime 300x -count 3 ./internal/app/
func BenchmarkEngageLagAtRate(b *testing.B) {
	for _, rate := range []int{2000, 5000, 8000} {
		b.Run(fmt.Sprintf("events_per_s=%d", rate), func(b *testing.B) {
			const perBatch = 100
			s, _, eng, wsID := engageBenchServer(b)
			gen := newEventGen(eng.writeKey)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32}}
			defer client.CloseIdleConnections()
			var lags []time.Duration
			stop, done := make(chan struct{}), make(chan struct{})
			go func() { defer close(done); engageProbe(b, s, eng.writeKey, wsID, stop, &lags) }()
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = gen.batch(nil, perBatch)
			}
			interval := time.Second * time.Duration(perBatch) / time.Duration(rate)
			inFlight := make(chan struct{}, 32)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range bodies {
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				inFlight <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-inFlight }()
					if err := gen.post(client, s.URL+"/v1/batch", bodies[i]); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			sent := time.Since(start)
			close(stop)
			<-done
			b.StopTimer()
			if b.N < 100 {
				return // the testing package's first run, of one batch: too short for a probe
			}
			b.ReportMetric(float64(b.N*perBatch)/sent.Seconds(), "achieved-events/s")
			if len(lags) == 0 {
				b.Fatal("no probe resolved")
			}
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			pick := func(p float64) float64 {
				return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
			}
			b.ReportMetric(pick(0.50), "lag-p50-ms")
			b.ReportMetric(pick(0.99), "lag-p99-ms")
			b.ReportMetric(pick(1), "lag-max-ms")
			b.ReportMetric(float64(len(lags)), "probes")
		})
	}
}
