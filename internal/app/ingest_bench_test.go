package app_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// The tracking API's load benchmarks run the real server (startServer: a SQLite file with
// synchronous=FULL, then a PostgreSQL schema (internal/testdb), the group-commit writer, default
// rate limits; log level error so that access logs stay off the hot path) and load it over
// loopback HTTP with keep-alive clients in the same process, on the same cores.
//
//	go test -run '^$' -bench 'Ingest' -benchtime 8s -count 3 ./internal/app/
//
// JUNCTION_TEST_BACKENDS=sqlite or =postgres runs them on one backend only.
//
// Every event carries a new messageId, so that no event is a cheap duplicate. Each benchmark also
// reports the group commits as the server's junction_ingest_commit_* histograms saw them. Results,
// and where the time goes: BENCHMARKS.md.

// BenchmarkIngestBatch is a closed loop: 8 clients each post a 100-event /v1/batch, wait for the
// answer and post the next. An op is one request; it reports events/s and request latency.
func BenchmarkIngestBatch(b *testing.B) {
	const clients, perBatch = 8, 100
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError })
	src := newTrackingSource(b, s, "bench")
	gen := newEventGen(src.writeKey)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var bodyBytes atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				buf = gen.batch(buf[:0], perBatch)
				bodyBytes.Add(int64(len(buf)))
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
	b.ReportMetric(float64(bodyBytes.Load())/float64(b.N*perBatch), "B/event")
	reportLatencies(b, latencies, 0.50, 0.99)
	reportCommits(b, s)
}

// BenchmarkIngestTrackOpenLoop offers single-event /v1/track requests at a fixed 2,000 a second
// whatever the answers: request i is due at start + i x 500 µs, and a pool of 64 keep-alive
// connections sends them. Latency counts from the due time, so time spent queued behind a slow
// server (or a busy client) is included. An op is one request offered; -benchtime 16000x is 8 s.
func BenchmarkIngestTrackOpenLoop(b *testing.B) {
	const rate, conns = 2000, 64
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError })
	src := newTrackingSource(b, s, "bench")
	gen := newEventGen(src.writeKey)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()

	due := make(chan int, b.N) // never blocks the schedule
	latencies := make([]time.Duration, b.N)
	var failed atomic.Int64
	var lastDone atomic.Int64
	var wg sync.WaitGroup
	interval := time.Second / rate
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range due {
				buf = gen.track(buf[:0])
				if err := gen.post(client, s.URL+"/v1/track", buf); err != nil {
					if failed.Add(1) == 1 {
						b.Error(err)
					}
				}
				done := time.Now()
				latencies[i] = done.Sub(start.Add(time.Duration(i) * interval))
				lastDone.Store(int64(done.Sub(start)))
			}
		}()
	}
	for i := range b.N {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		due <- i
	}
	close(due)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Duration(lastDone.Load()).Seconds(), "achieved-req/s")
	reportLatencies(b, latencies, 0.50, 0.99, 0.999)
	reportCommits(b, s)
}

// eventGen writes realistic track events of about 355 bytes: a userId and an anonymousId, a
// messageId in analytics-node's style (a millisecond timestamp, then a unique part), a timestamp,
// five properties and the library in context.
type eventGen struct {
	writeKey string
	prefix   string
	// ids, when set, starts every userId and anonymousId: generators that post to one workspace
	// then build identity graphs of their own, of the same shape.
	ids string
	n   atomic.Int64
}

func newEventGen(writeKey string) *eventGen {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return &eventGen{writeKey: writeKey, prefix: hex.EncodeToString(r[:]) + "-"}
}

var benchProducts = []string{"Monopoly: 3rd Edition", "Settlers of Catan", "Ticket to Ride", "Carcassonne", "Pandemic"}

func (g *eventGen) event(buf []byte) []byte {
	n := g.n.Add(1)
	now := time.Now().UTC()
	buf = append(buf, `{"type":"track","event":"Product Viewed","userId":"`...)
	buf = append(buf, g.ids...)
	buf = append(buf, `user-`...)
	buf = strconv.AppendInt(buf, n%5000, 10)
	buf = append(buf, `","anonymousId":"`...)
	buf = append(buf, g.ids...)
	buf = append(buf, `anon-`...)
	buf = strconv.AppendInt(buf, n%7919, 10)
	buf = append(buf, `","messageId":"node-next-`...)
	buf = strconv.AppendInt(buf, now.UnixMilli(), 10)
	buf = append(buf, '-')
	buf = append(buf, g.prefix...)
	buf = strconv.AppendInt(buf, n, 36)
	buf = append(buf, `","timestamp":"`...)
	buf = now.AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	buf = append(buf, `","properties":{"product_id":"p-`...)
	buf = strconv.AppendInt(buf, n%977, 10)
	buf = append(buf, `","category":"Games","name":"`...)
	buf = append(buf, benchProducts[n%int64(len(benchProducts))]...)
	buf = append(buf, `","price":18.99,"currency":"USD"},"context":{"library":{"name":"analytics-node","version":"3.1.0"}}}`...)
	return buf
}

func (g *eventGen) batch(buf []byte, n int) []byte {
	buf = append(buf, `{"batch":[`...)
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = g.event(buf)
	}
	buf = append(buf, `],"sentAt":"`...)
	buf = time.Now().UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	return append(buf, `"}`...)
}

func (g *eventGen) track(buf []byte) []byte { return g.event(buf) }

// postAll posts bodies to url from clients goroutines, each taking the next body not yet
// posted, and fails b on the first error.
func (g *eventGen) postAll(b testing.TB, client *http.Client, url string, clients int, bodies [][]byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(bodies)); i = next.Add(1) - 1 {
				if err := g.post(client, url, bodies[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// post sends body with the write key and wants 200.
func (g *eventGen) post(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(g.writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, res.StatusCode)
	}
	return nil
}

// reportLatencies reports percentiles of latencies in microseconds (p50-µs, p99-µs, p99.9-µs).
func reportLatencies(b *testing.B, latencies []time.Duration, ps ...float64) {
	if len(latencies) == 0 {
		return
	}
	sorted := append([]time.Duration(nil), latencies...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, p := range ps {
		d := sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
		b.ReportMetric(float64(d.Microseconds()), "p"+strconv.FormatFloat(p*100, 'f', -1, 64)+"-µs")
	}
}

// reportCommits reports the number of group commits, their mean size and mean time, and logs
// their distributions, from the server's junction_ingest_commit_* histograms at /metrics.
func reportCommits(b *testing.B, s *server) {
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	m := map[string]float64{}
	buckets := map[string][]string{} // histogram -> "le: share" of observations
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "junction_ingest_commit_") {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		if hist, le, ok := strings.Cut(name, `_bucket{le="`); ok {
			buckets[hist] = append(buckets[hist], strings.TrimSuffix(le, `"}`)+":"+strconv.FormatFloat(v, 'f', -1, 64))
			continue
		}
		m[name] = v
	}
	n := m["junction_ingest_commit_events_count"]
	if n == 0 {
		return
	}
	b.ReportMetric(n, "commits")
	b.ReportMetric(m["junction_ingest_commit_events_sum"]/n, "events/commit")
	b.ReportMetric(m["junction_ingest_commit_seconds_sum"]/n*1000, "ms/commit")
	if n < 100 {
		return // a warm-up run of the benchmark
	}
	b.Logf("commits (cumulative, le:count): events %s; seconds %s",
		strings.Join(buckets["junction_ingest_commit_events"], " "), strings.Join(buckets["junction_ingest_commit_seconds"], " "))
}

// BenchmarkIngestBatchVsBare measures, in one run, durable ingest through /v1/batch (the real
// server, 100-event batches from 8 keep-alive clients, as BenchmarkIngestBatch) next to its
// baseline: the same events inserted straight into the same events table of a database of the same
// backend (a SQLite file with the same pragmas, WAL and synchronous=FULL; or a schema of the same
// PostgreSQL), 1,000 per transaction, each event's JSON read once. An op is one batch of 100
// events in each phase; "ratio" is server events/s over bare events/s. One invocation runs it on
// SQLite, then on PostgreSQL (JUNCTION_TEST_BACKENDS=postgres for that one only):
//
//	go test -run '^$' -bench IngestBatchVsBare -benchtime 2000x -count 3 ./internal/app/
func BenchmarkIngestBatchVsBare(b *testing.B) {
	const clients, perBatch = 8, 100
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	src := newTrackingSource(b, s, "bench")
	gen := newEventGen(src.writeKey)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = gen.batch(nil, perBatch)
	}

	// Bare: a database migrated like the server's, one workspace and source, and plain multi-row
	// INSERTs of 1,000 rows per transaction.
	bare := benchBareDB(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	// The two take turns, a round of each at a time, so that a drift of the machine in the run
	// (the disk, other tenants) weighs on both alike instead of on whichever ran second.
	const rounds = 8
	var bareTime, serverTime time.Duration
	b.ResetTimer()
	for r := range rounds {
		part := bodies[r*len(bodies)/rounds : (r+1)*len(bodies)/rounds]
		start := time.Now()
		benchBareInsert(b, bare, part)
		bareTime += time.Since(start)
		start = time.Now()
		gen.postAll(b, client, s.URL+"/v1/batch", clients, part)
		serverTime += time.Since(start)
	}
	bareRate := float64(b.N*perBatch) / bareTime.Seconds()
	serverRate := float64(b.N*perBatch) / serverTime.Seconds()
	b.StopTimer()
	b.ReportMetric(bareRate, "bare-events/s")
	b.ReportMetric(serverRate, "server-events/s")
	b.ReportMetric(serverRate/bareRate, "ratio")
}
