package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkOverview100x100 measures the overview page's query on a workspace of 100 sources, 100
// destinations and 100 connections (source i to destination i; the last source is disabled), sent
// by its owner to the real server over loopback HTTP, one request at a time:
//
//	go test -run '^$' -bench Overview -benchtime 3s ./internal/app/
//
// Graph is the overview graph alone (with each source's write keys through `node`); GraphAndLists
// adds the sources and destinations lists with their related objects, as the overview page shows
// them. Each reports ns/op (the mean latency), the SQL statements of one request (from its access
// log line) and their mean over all timed requests (from theirs), and p50/p99 latency in
// milliseconds.
func BenchmarkOverview100x100(b *testing.B) {
	// Info, not the tests' debug: the access log line carries the statement count, and nothing
	// else is logged per request.
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelInfo })
	owner, ownerID, wsID := itOwner(b, s, "owner@example.com", "acme")
	pairs := make([][2]int, 100)
	for i := range pairs {
		pairs[i] = [2]int{i, i}
	}
	itInsertGraph(b, s, wsID, ownerID, "Bench", 100, 100, pairs)

	for _, v := range []struct {
		name  string
		lists bool
	}{{"Graph", false}, {"GraphAndLists", true}} {
		b.Run(v.name, func(b *testing.B) { benchOverview(b, s, owner, itOverviewQuery(v.lists)) })
	}
}

func benchOverview(b *testing.B, s *server, owner itClient, query string) {
	vars := map[string]any{"slug": "acme"}
	// One request outside the timing, to check the answer and read its statement count.
	first := owner.post(b, query, vars)
	d := itData(b, first)
	if n := len(itList(d, "workspace.overview.nodes")); n != 200 {
		b.Fatalf("overview has %d nodes, want 200", n)
	}
	statements := itStatements(b, s, first)

	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, 0, b.N)
	requestIDs := make([]string, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+owner.tok)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || bytes.Contains(raw, []byte(`"errors"`)) {
			b.Fatalf("status %d, %v: %.300s", res.StatusCode, err, raw)
		}
		latencies = append(latencies, time.Since(t0))
		requestIDs = append(requestIDs, res.Header.Get("X-Request-Id"))
	}
	b.StopTimer()
	mean := meanStatements(b, s, requestIDs)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(statements), "statements/op")
	b.ReportMetric(mean, "mean-statements/op")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// meanStatements averages the SQL statements of the requests with the given ids, from their access
// log lines. (Not the process-wide statement counter: background workers run SQL too.)
func meanStatements(b *testing.B, s *server, requestIDs []string) float64 {
	want := make(map[string]bool, len(requestIDs))
	for _, id := range requestIDs {
		want[id] = true
	}
	total, found := 0, 0
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"http request"`) {
			continue
		}
		var entry struct {
			RequestID  string `json:"request_id"`
			Statements int    `json:"sql_statements"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			b.Fatal(err)
		}
		if want[entry.RequestID] {
			total += entry.Statements
			found++
		}
	}
	if found != len(requestIDs) {
		b.Fatalf("access log lines for %d of %d requests", found, len(requestIDs))
	}
	return float64(total) / float64(found)
}
