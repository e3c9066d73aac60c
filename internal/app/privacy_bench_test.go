package app_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkIngestPrivacyDetection measures the Privacy Portal's cost at ingest: the events of
// BenchmarkIngestBatch (100-event batches from 8 keep-alive clients) sent to two sources of one
// server, one in a workspace on FREE (no detection: the "off" phases) and one on TEAM (every
// accepted event's fields noted by the stage and stored by the listener: the "on" rounds). An op
// is one batch sent to each. Off and on alternate in rounds of 100 batches, so that the log's
// growth and the machine's other load weigh on both alike. "ratio" is on events/s over off
// events/s.
//
//	go test -run '^$' -bench IngestPrivacyDetection -benchtime 2000x -count 3 ./internal/app/
func BenchmarkIngestPrivacyDetection(b *testing.B) {
	const clients, perBatch = 8, 100
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	off := newTrackingSource(b, s, "bench-off")
	on := newTrackingSource(b, s, "bench-on")
	d := s.post(b, `{ viewer { workspaces { nodes { id } } } }`, nil, on.auth...).Data
	wsID := dig(d, "viewer", "workspaces", "nodes").([]any)[0].(map[string]any)["id"].(string)
	if r := s.post(b, `mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "plan": "TEAM"}}, on.auth...); len(r.Errors) > 0 {
		b.Fatalf("%s", r.Raw)
	}
	bodies := func(key string, n int) [][]byte {
		gen := newEventGen(key)
		out := make([][]byte, n)
		for i := range out {
			out[i] = gen.batch(nil, perBatch)
		}
		return out
	}
	offAll, onAll := bodies(off.writeKey, b.N), bodies(on.writeKey, b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	run := func(key string, list [][]byte) time.Duration {
		start := time.Now()
		(&eventGen{writeKey: key}).postAll(b, client, s.URL+"/v1/batch", clients, list)
		return time.Since(start)
	}
	const round = 100
	var offTime, onTime time.Duration
	b.ResetTimer()
	for start := 0; start < b.N; start += round {
		end := min(start+round, b.N)
		offTime += run(off.writeKey, offAll[start:end])
		onTime += run(on.writeKey, onAll[start:end])
	}
	b.StopTimer()
	offRate := float64(b.N*perBatch) / offTime.Seconds()
	onRate := float64(b.N*perBatch) / onTime.Seconds()
	b.ReportMetric(offRate, "off-events/s")
	b.ReportMetric(onRate, "on-events/s")
	b.ReportMetric(onRate/offRate, "ratio")
}
