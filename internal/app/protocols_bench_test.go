package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkIngestBatchWithPlan measures what validation costs: one server, one BUSINESS
// workspace with two sources, one of them connected to a 50-rule tracking plan that has a rule for
// every event sent (each event is validated against its rule's properties schema; none breaks it),
// the other with no plan. 8 clients post 100-event batches to one source, then to the other, in
// four alternating phases (without, with, without, with) of b.N/4 batches each, so that both see
// the same database size and machine noise. It reports both rates and their ratio:
//
//	go test -run '^$' -bench IngestBatchWithPlan -benchtime 4000x -count 3 ./internal/app/
func BenchmarkIngestBatchWithPlan(b *testing.B) {
	const perBatch = 100
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	src := newTrackingSource(b, s, "bench")
	post := func(query string, vars map[string]any) map[string]any {
		r := s.post(b, query, vars, src.auth...)
		if len(r.Errors) > 0 {
			b.Fatalf("%s", r.Raw)
		}
		return r.Data
	}
	d := post(`{ viewer { workspaces { nodes { id } } } }`, nil)
	wsID := dig(d, "viewer", "workspaces", "nodes").([]any)[0].(map[string]any)["id"].(string)
	post(`mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "plan": "BUSINESS"}})
	d = post(`mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { id writeKeys { key } } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_node", "name": "Without a plan"}})
	plain := dig(d, "sourceCreate", "source", "writeKeys").([]any)[0].(map[string]any)["key"].(string)
	d = post(`mutation($i: TrackingPlanCreateInput!) { trackingPlanCreate(input: $i) { trackingPlan { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "Bench"}})
	planID := dig(d, "trackingPlanCreate", "trackingPlan", "id").(string)
	props := `{"type":"object","required":["product_id"],"properties":{"product_id":{"type":"string"},"category":{"type":"string"},
		"name":{"type":"string"},"price":{"type":"number","minimum":0},"currency":{"enum":["USD","EUR"]}}}`
	var rules []any
	rules = append(rules, map[string]any{"type": "TRACK", "eventName": "Product Viewed", "properties": props})
	for i := range 49 {
		rules = append(rules, map[string]any{"type": "TRACK", "eventName": fmt.Sprintf("Event %d", i), "properties": props})
	}
	post(`mutation($i: TrackingPlanRulesUpsertInput!) { trackingPlanRulesUpsert(input: $i) { count } }`,
		map[string]any{"i": map[string]any{"planId": planID, "rules": rules}})
	post(`mutation($i: TrackingPlanSourceInput!) { trackingPlanConnectSource(input: $i) { trackingPlan { id } } }`,
		map[string]any{"i": map[string]any{"planId": planID, "sourceId": src.id}})

	// Each source's people are its own: both phases' identity resolution (Engage comes with the
	// plan) then grows a graph of the same shape, instead of the second finding the first's.
	without, with := newEventGen(plain), newEventGen(src.writeKey)
	without.ids, with.ids = "a-", "b-"
	var offTime, onTime time.Duration
	var offBatches, onBatches int
	b.ResetTimer()
	for phase := range 4 {
		n := b.N / 4
		if phase == 3 {
			n = b.N - 3*(b.N/4)
		}
		if phase%2 == 0 {
			offTime += ingestPhase(b, s, without, n, perBatch)
			offBatches += n
		} else {
			onTime += ingestPhase(b, s, with, n, perBatch)
			onBatches += n
		}
		// Protocols come with the BUSINESS plan, and so does Engage: identity resolution follows
		// both sources' events. Each phase waits for it to catch up before the next starts, so
		// that one phase's backlog is not resolved in the other's time.
		engageCaughtUp(b, s, wsID)
	}
	b.StopTimer()
	off := float64(offBatches*perBatch) / offTime.Seconds()
	on := float64(onBatches*perBatch) / onTime.Seconds()
	b.ReportMetric(off, "without-events/s")
	b.ReportMetric(on, "with-plan-events/s")
	b.ReportMetric(on/off, "ratio")
}

// ingestPhase posts n batches of perBatch events from gen over 8 keep-alive clients, each waiting
// for its answer before the next, and returns how long they took.
func ingestPhase(b *testing.B, s *server, gen *eventGen, n, perBatch int) time.Duration {
	const clients = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				buf = gen.batch(buf[:0], perBatch)
				if err := gen.post(client, s.URL+"/v1/batch", buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// engageCaughtUp waits, outside the benchmark's time, until every accepted event of a workspace
// is resolved into a profile.
func engageCaughtUp(b *testing.B, s *server, wsID string) {
	b.Helper()
	ctx := context.Background()
	count := func(q string) int {
		var n int
		if err := s.App.DB().Get(ctx, &n, q, wsID); err != nil {
			b.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		want := count(`SELECT COUNT(*) FROM events WHERE workspace_id = ? AND status = 'ACCEPTED'`)
		if count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`) >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("identity resolution did not catch up in 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
