package app_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// benchIngestWithPlan loads the server as BenchmarkIngestBatch does, its source on the BUSINESS
// plan with a 50-rule tracking plan connected (the rule of "Product Viewed" among them).
func benchIngestWithPlan(b *testing.B) {
	const clients, perBatch = 8, 100
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError })
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

	gen := newEventGen(src.writeKey)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				buf = gen.batch(buf[:0], perBatch)
				t0 := time.Now()
				if err := gen.post(client, s.URL+"/v1/batch", buf); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
	reportLatencies(b, latencies, 0.50, 0.99)
	reportCommits(b, s)
}
