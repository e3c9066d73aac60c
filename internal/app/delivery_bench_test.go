package app_test

// Delivery load benchmarks: the real server (startServer: SQLite with the group-commit writer, one
// delivery lane per destination, default DeliveryConcurrency; log level error), one source connected
// to one destination whose receiver is an httptest server on loopback (allowed through the egress
// filter, as EGRESS_ALLOW would), and the clients, the server and the receiver in one process on
// the same cores. The receiver is a fast webhook, or a Segment-compatible API that answers each
// request after 50 ms, as a distant vendor would.
//
//	go test -run '^$' -bench Delivery -benchtime 1x ./internal/app/
//
// Each op is a whole run (a burst of events, or five seconds of open-loop load), so -benchtime 1x
// runs each once; -count gives more samples.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// dlvSink is a receiver that only counts: the fastest a destination can be.
type dlvSink struct {
	URL      string
	requests atomic.Int64
	// onBody, when set, sees each request body (for matching events).
	onBody func(body []byte, at time.Time)
}

func dlvNewSink(tb testing.TB, onBody func(body []byte, at time.Time)) *dlvSink {
	sk := &dlvSink{onBody: onBody}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if sk.onBody != nil {
			sk.onBody(body, time.Now())
		}
		sk.requests.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	sk.URL = srv.URL
	tb.Cleanup(srv.Close)
	return sk
}

// dlvBenchPipe is a workspace whose one source is connected to one webhook destination at url.
func dlvBenchPipe(b *testing.B, s *server, url string) (writeKey, destinationID string) {
	b.Helper()
	e := dlvNewEnv(b, s, "dlv-bench")
	srcID, key := e.source(b, "Bench")
	destinationID = e.webhook(b, "Sink", map[string]any{"url": url}, true)
	e.connect(b, srcID, destinationID, true)
	return key, destinationID
}

// dlvBenchEvent appends a track event of about 330 bytes with messageId <prefix><n>.
func dlvBenchEvent(buf []byte, prefix string, n int64) []byte {
	now := time.Now().UTC()
	buf = append(buf, `{"type":"track","event":"Product Viewed","userId":"user-`...)
	buf = strconv.AppendInt(buf, n%5000, 10)
	buf = append(buf, `","anonymousId":"anon-`...)
	buf = strconv.AppendInt(buf, n%7919, 10)
	buf = append(buf, `","messageId":"`...)
	buf = append(buf, prefix...)
	buf = strconv.AppendInt(buf, n, 10)
	buf = append(buf, `","timestamp":"`...)
	buf = now.AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	buf = append(buf, `","properties":{"product_id":"p-`...)
	buf = strconv.AppendInt(buf, n%977, 10)
	buf = append(buf, `","category":"Games","name":"Settlers of Catan","price":18.99,"currency":"USD"},`...)
	return append(buf, `"context":{"library":{"name":"analytics-node","version":"3.1.0"}}}`...)
}

// dlvBenchPost sends body to url with the write key and wants 200.
func dlvBenchPost(client *http.Client, url, writeKey string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(writeKey, "")
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

// BenchmarkDeliveryThroughput posts a burst of 20,000 events (8 clients, 100-event /v1/batch
// requests) and measures events delivered per second end to end: from the first post to the
// receiver having all of them. It also reports how long ingestion alone took and how long the
// receiver went on receiving after the last post was answered.
func BenchmarkDeliveryThroughput(b *testing.B) {
	const events, clients, perBatch = 20000, 8, 100
	s := startServer(b, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelError })
	sink := dlvNewSink(b, nil)
	key, destinationID := dlvBenchPipe(b, s, sink.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	var ingest, drain time.Duration
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for round := range b.N {
		t0 := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for next.Add(1) <= events/perBatch {
					buf = append(buf[:0], `{"batch":[`...)
					for i := range perBatch {
						if i > 0 {
							buf = append(buf, ',')
						}
						buf = dlvBenchEvent(buf, "thr-", n.Add(1))
					}
					buf = append(buf, `]}`...)
					if err := dlvBenchPost(client, s.URL+"/v1/batch", key, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		posted := time.Now()
		ingest += posted.Sub(t0)
		want := int64((round + 1) * events)
		deadline := time.Now().Add(30 * time.Second)
		for sink.requests.Load() < want {
			if time.Now().After(deadline) {
				var unattempted int
				_ = s.App.DB().Get(context.Background(), &unattempted, `SELECT COUNT(*) FROM events e WHERE e.status = 'ACCEPTED'
					AND NOT EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.event_id = e.id AND a.destination_id = ?)`, destinationID)
				b.Fatalf("the receiver got %d of %d events (%d accepted events without an attempt)", sink.requests.Load(), want, unattempted)
			}
			time.Sleep(time.Millisecond)
		}
		drain += time.Since(posted)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	total := float64(b.N * events)
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(total/ingest.Seconds(), "ingested-events/s")
	b.ReportMetric(drain.Seconds()/float64(b.N), "drain-s")
}

// BenchmarkDeliveryBacklog measures delivery alone: 20,000 events are posted while the webhook
// receiver holds every request (the lane fills its connections, the rest waits in the log), then
// the receiver lets go, and the time until it has every event gives events delivered per second,
// without ingestion competing for the cores. It reports the events that arrived twice.
func BenchmarkDeliveryBacklog(b *testing.B) {
	const events, clients, perBatch = 20000, 8, 100
	s := startServer(b, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelError })
	var gate atomic.Pointer[chan struct{}]
	var received, duplicates atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		<-*gate.Load()
		i := bytes.Index(body, []byte(`"messageId":"`))
		if i >= 0 {
			id := body[i+13:]
			id = id[:bytes.IndexByte(id, '"')]
			mu.Lock()
			if seen[string(id)] {
				duplicates.Add(1)
			}
			seen[string(id)] = true
			mu.Unlock()
		}
		received.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	key, _ := dlvBenchPipe(b, s, srv.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	var n atomic.Int64
	var drain time.Duration
	b.ResetTimer()
	for round := range b.N {
		closed := make(chan struct{})
		gate.Store(&closed)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for next.Add(1) <= events/perBatch {
					buf = append(buf[:0], `{"batch":[`...)
					for i := range perBatch {
						if i > 0 {
							buf = append(buf, ',')
						}
						buf = dlvBenchEvent(buf, "backlog-", n.Add(1))
					}
					buf = append(buf, `]}`...)
					if err := dlvBenchPost(client, s.URL+"/v1/batch", key, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		start := time.Now()
		close(closed)
		want := int64((round + 1) * events)
		deadline := time.Now().Add(60 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("the receiver got %d of %d events", received.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		drain += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*events)/drain.Seconds(), "events/s")
	b.ReportMetric(float64(duplicates.Load()), "duplicates")
	if duplicates.Load() > 0 {
		b.Errorf("%d events arrived twice", duplicates.Load())
	}
}

// BenchmarkDeliverySegmentForward50ms posts a burst of 20,000 events (8 clients, 100-event /v1/batch
// requests) to a source forwarded to a Segment-compatible API that takes 50 ms to answer each
// request, and measures events delivered per second end to end, from the first post to the
// receiver having all of them. It reports the requests the receiver got and the events it got
// twice (none in normal operation).
func BenchmarkDeliverySegmentForward50ms(b *testing.B) {
	const events, clients, perBatch = 20000, 8, 100
	const answerAfter = 50 * time.Millisecond
	s := startServer(b, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelError })
	var mu sync.Mutex
	seen := map[string]int{}
	var received, duplicates, requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Batch []struct {
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		time.Sleep(answerAfter)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, ev := range body.Batch {
			if seen[ev.MessageID]++; seen[ev.MessageID] > 1 {
				duplicates.Add(1)
			}
		}
		mu.Unlock()
		received.Add(int64(len(body.Batch)))
		requests.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	e := dlvNewEnv(b, s, "dlv-bench-forward")
	srcID, key := e.source(b, "Bench")
	d := e.mutate(b, "destinationCreate", "DestinationCreateInput", "destination { id }", map[string]any{"workspaceId": e.wsID,
		"catalogId": "cat_segment", "name": "Forward", "settings": map[string]any{"endpoint": srv.URL, "writeKey": "wk-bench"}})
	e.connect(b, srcID, trkStr(d, "destination.id"), true)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for round := range b.N {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for next.Add(1) <= events/perBatch {
					buf = append(buf[:0], `{"batch":[`...)
					for i := range perBatch {
						if i > 0 {
							buf = append(buf, ',')
						}
						buf = dlvBenchEvent(buf, "fwd-", n.Add(1))
					}
					buf = append(buf, `]}`...)
					if err := dlvBenchPost(client, s.URL+"/v1/batch", key, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		want := int64((round + 1) * events)
		deadline := time.Now().Add(60 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("the receiver got %d of %d events", received.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	total := float64(b.N * events)
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/op")
	b.ReportMetric(float64(duplicates.Load()), "duplicates")
	if duplicates.Load() > 0 {
		b.Errorf("%d events arrived twice", duplicates.Load())
	}
}

// BenchmarkDeliveryLatencyOpenLoop offers single-event /v1/track requests at 1,000 a second for five
// seconds, whatever the answers (request i is due at start + i ms; a pool of 64 keep-alive
// connections sends them), and measures for each event the time from its due time to the receiver
// getting it, matched by messageId. Latency counts from the due time, so time queued behind a slow
// server is included. It reports p50, p95, p99 and the maximum in ms, the ingest answer's p95, and
// the events that never arrived.
func BenchmarkDeliveryLatencyOpenLoop(b *testing.B) {
	const rate, seconds, conns = 1000, 5, 64
	const total = rate * seconds
	interval := time.Second / rate
	s := startServer(b, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelError })

	var mu sync.Mutex
	var round int
	var arrived []int64 // unix ns of the first arrival of event i of this round; 0 until then
	prefix := func(r int) string { return fmt.Sprintf("lat-%d-", r) }
	sink := dlvNewSink(b, func(body []byte, at time.Time) {
		// "messageId":"lat-<round>-<i>"
		i := bytes.Index(body, []byte(`"messageId":"lat-`))
		if i < 0 {
			return
		}
		rest := body[i+len(`"messageId":"lat-`):]
		dash := bytes.IndexByte(rest, '-')
		end := bytes.IndexByte(rest, '"')
		if dash < 0 || end < dash {
			return
		}
		r, _ := strconv.Atoi(string(rest[:dash]))
		n, _ := strconv.Atoi(string(rest[dash+1 : end]))
		mu.Lock()
		if r == round && n < len(arrived) && arrived[n] == 0 {
			arrived[n] = at.UnixNano()
		}
		mu.Unlock()
	})
	key, destinationID := dlvBenchPipe(b, s, sink.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()

	var latencies, answers []time.Duration
	var missing, failed int
	b.ResetTimer()
	for r := range b.N {
		mu.Lock()
		round, arrived = r, make([]int64, total)
		mu.Unlock()
		due := make(chan int, total)
		answered := make([]time.Duration, total)
		var errs atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for i := range due {
					buf = dlvBenchEvent(buf[:0], prefix(r), int64(i))
					if err := dlvBenchPost(client, s.URL+"/v1/track", key, buf); err != nil && errs.Add(1) == 1 {
						b.Error(err)
					}
					answered[i] = time.Since(start.Add(time.Duration(i) * interval))
				}
			}()
		}
		for i := range total {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			due <- i
		}
		close(due)
		wg.Wait()
		failed += int(errs.Load())
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := 0
			for _, at := range arrived {
				if at != 0 {
					got++
				}
			}
			mu.Unlock()
			if got == total || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		for i, at := range arrived {
			if at == 0 {
				missing++
				dlvExplainMissing(b, s, destinationID, prefix(r)+strconv.Itoa(i))
				continue
			}
			latencies = append(latencies, time.Duration(at-start.Add(time.Duration(i)*interval).UnixNano()))
		}
		mu.Unlock()
		answers = append(answers, answered...)
	}
	b.StopTimer()
	pct := func(l []time.Duration, p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		sorted := append([]time.Duration(nil), l...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(latencies, 0.50), "p50-ms")
	b.ReportMetric(pct(latencies, 0.95), "p95-ms")
	b.ReportMetric(pct(latencies, 0.99), "p99-ms")
	b.ReportMetric(pct(latencies, 1), "max-ms")
	b.ReportMetric(pct(answers, 0.95), "ingest-p95-ms")
	b.ReportMetric(float64(missing), "missing")
	if failed > 0 {
		b.Errorf("%d track requests failed", failed)
	}
	if missing > 0 {
		b.Errorf("%d of %d events never reached the receiver within 30 s of the last one offered", missing, b.N*total)
	}
}

// dlvExplainMissing logs what the server knows of an event the receiver never got: whether it was
// stored, its attempts, and where the destination's cursor is.
func dlvExplainMissing(b *testing.B, s *server, destinationID, messageID string) {
	ctx := context.Background()
	var ev struct {
		ID     string `db:"id"`
		Status string `db:"status"`
	}
	if err := s.App.DB().Get(ctx, &ev, `SELECT id, status FROM events WHERE message_id = ?`, messageID); err != nil {
		b.Logf("missing %s: not stored (%v)", messageID, err)
		return
	}
	var attempts, retries int
	var cursor string
	_ = s.App.DB().Get(ctx, &attempts, `SELECT COUNT(*) FROM delivery_attempts WHERE event_id = ?`, ev.ID)
	_ = s.App.DB().Get(ctx, &retries, `SELECT COUNT(*) FROM delivery_retries WHERE event_id = ?`, ev.ID)
	_ = s.App.DB().Get(ctx, &cursor, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, destinationID)
	b.Logf("missing %s: stored as %s %s, %d attempts, %d retries queued; the destination's cursor is %s (past it: %v)",
		messageID, ev.ID, ev.Status, attempts, retries, cursor, cursor >= ev.ID)
}
