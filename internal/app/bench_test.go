package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// The HTTP benchmarks send a small query to the real server over loopback HTTP with keep-alive
// clients, next to a plain net/http JSON handler measured the same way, so that the ratio of the two
// shows what GraphQL (parsing from cache, validation, execution, limits, logging, metrics) costs.
//
//	go test -run '^$' -bench 'HTTP' -benchtime 5s ./internal/app/
//
// Each reports requests/s and p50/p99 latency in microseconds.

const smallQuery = `{"query":"{ serverInfo { version startedAt } }"}`

func BenchmarkHTTPGraphQLQuery(b *testing.B) {
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError }) // errors only: access logs off the hot path
	benchHTTP(b, s.URL+"/graphql", smallQuery)
}

func BenchmarkHTTPPlainJSON(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"serverInfo": map[string]any{
			"version": "devel", "startedAt": time.Now().UTC()}}})
	}))
	defer srv.Close()
	benchHTTP(b, srv.URL, smallQuery)
}

func benchHTTP(b *testing.B, url, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(4) // 8 concurrent clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			res, err := client.Post(url, "application/json", bytes.NewReader([]byte(body)))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
