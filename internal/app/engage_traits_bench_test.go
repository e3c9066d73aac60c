package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkComputedTraitLag measures how long a computed trait's value takes to follow an event:
// from the tracking API's answer to a track call until the user's EVENT_COUNTER value in the
// database counts it (polled every 2 ms), through identity resolution and the follower of computed
// traits. The workspace has three traits (a counter, a sum with a condition, a unique list); each
// of b.N events goes to one of 100 users in turn, one at a time.
//
//	go test -run '^$' -bench ComputedTraitLag -benchtime 200x -count 3 ./internal/app/
func BenchmarkComputedTraitLag(b *testing.B) {
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	src := newTrackingSource(b, s, "bench-traits")
	r := s.post(b, `{ viewer { workspaces { nodes { id } } } }`, nil, src.auth...)
	wsID := dig(r.Data, "viewer", "workspaces", "nodes").([]any)[0].(map[string]any)["id"].(string)
	if r := s.post(b, `mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "plan": "BUSINESS"}}, src.auth...); len(r.Errors) > 0 {
		b.Fatal(r.Raw)
	}
	var counter string
	for _, def := range []map[string]any{
		{"key": "orders", "definition": map[string]any{"kind": "EVENT_COUNTER", "eventName": "Order Completed", "window": map[string]any{"amount": 30, "unit": "DAYS"}}},
		{"key": "revenue", "definition": map[string]any{"kind": "AGGREGATION", "aggregation": "SUM", "property": "revenue", "eventName": "Order Completed",
			"propertyConditions": []any{map[string]any{"path": "revenue", "operator": "GREATER_THAN", "value": "1"}}}},
		{"key": "skus", "definition": map[string]any{"kind": "UNIQUE_LIST", "property": "sku"}},
	} {
		def["workspaceId"], def["name"] = wsID, def["key"]
		r := s.post(b, `mutation($i: ComputedTraitCreateInput!) { computedTraitCreate(input: $i) { computedTrait { id } userErrors { message } } }`,
			map[string]any{"i": def}, src.auth...)
		id, _ := dig(r.Data, "computedTraitCreate", "computedTrait", "id").(string)
		if id == "" {
			b.Fatal(r.Raw)
		}
		if counter == "" {
			counter = id
		}
	}
	ctx := context.Background()
	value := func(user string) string {
		var v []string
		if err := s.App.DB().Select(ctx, &v, `SELECT v.value FROM computed_trait_values v JOIN profile_identifiers pi ON pi.profile_id = v.profile_id
			WHERE v.computed_trait_id = ? AND pi.workspace_id = ? AND pi.type = 'user_id' AND pi.value = ?`, counter, wsID, user); err != nil {
			b.Fatal(err)
		}
		if len(v) == 0 {
			return "0"
		}
		return v[0]
	}
	client := &http.Client{}
	sent := map[string]int{}
	var lags []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		user := fmt.Sprintf("user-%d", i%100)
		body := fmt.Sprintf(`{"userId":%q,"event":"Order Completed","properties":{"revenue":%d,"sku":"sku-%d"}}`, user, i%7, i%13)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/track", bytes.NewReader([]byte(body)))
		req.SetBasicAuth(src.writeKey, "")
		res, err := client.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("track: %v", err)
		}
		res.Body.Close()
		acked := time.Now()
		sent[user]++
		want := fmt.Sprint(sent[user])
		for value(user) != want {
			if time.Since(acked) > 30*time.Second {
				b.Fatalf("%s's counter never reached %s", user, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lags = append(lags, time.Since(acked))
	}
	b.StopTimer()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pick := func(p float64) float64 {
		return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
	}
	b.ReportMetric(pick(0.50), "lag-p50-ms")
	b.ReportMetric(pick(0.95), "lag-p95-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag-max-ms")
}
