package app_test

// Warehouse benchmarks: the real server (startServer on the backend under test, log level error)
// with one source connected to a PostgreSQL warehouse on this machine's server (a database made
// for the run), loaded through warehouseSyncNow as a person would; the clients, the server and
// PostgreSQL on the same cores.
//
//	go test -run '^$' -bench Warehouse -benchtime 1x ./internal/app/          (load: each op a whole sync)
//	go test -run '^$' -bench WarehouseLatency -benchtime 20x ./internal/app/  (one event at a time)

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// whBenchEvents ingests n track events of about 10 properties (two event names) in /v1/batch
// requests of 500, and returns how long that took.
func whBenchEvents(b *testing.B, s *server, key, prefix string, n int) time.Duration {
	b.Helper()
	start := time.Now()
	for i := 0; i < n; i += 500 {
		batch := make([]map[string]any, 0, 500)
		for j := i; j < min(i+500, n); j++ {
			name := "Product Viewed"
			if j%2 == 1 {
				name = "Order Completed"
			}
			batch = append(batch, map[string]any{"messageId": prefix + strconv.Itoa(j), "userId": "user-" + strconv.Itoa(j%5000), "event": name,
				"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
				"properties": map[string]any{"productId": "p-" + strconv.Itoa(j%977), "price": float64(j%100) + 0.99, "currency": "EUR",
					"category": "shoes", "inStock": j%3 == 0, "quantity": float64(j % 5), "coupon": "SPRING", "position": float64(j % 20)},
				"context": map[string]any{"page": map[string]any{"url": "https://shop.example.com/p/" + strconv.Itoa(j%977)}, "ip": "203.0.113.7"}})
		}
		dlvTrack(b, s, key, batch...)
	}
	return time.Since(start)
}

// BenchmarkWarehouseLoad syncs 20,000 track events (40,000 rows: tracks, and each event's own
// table, as Segment loads them) and reports rows/s, against a baseline measured in the same run: COPY of the
// same number of rows of the same width straight into one table, the floor of what loading costs
// on this machine.
func BenchmarkWarehouseLoad(b *testing.B) {
	const events = 20000
	for range b.N {
		b.StopTimer()
		p := whNewPipe(b, "whbench-"+whRandom(), "Shop", nil)
		w, s, e, key, dstID := p.w, p.s, p.e, p.key, p.dstID
		ingest := whBenchEvents(b, s, key, "m", events)
		b.StartTimer()
		start := time.Now()
		sync := e.syncNow(b, dstID)
		elapsed := time.Since(start)
		b.StopTimer()
		rows := trkPath(sync, "rowsLoaded").(float64)
		if sync["status"] != "SUCCEEDED" || rows != 2*events {
			b.Fatalf("sync: %v", sync)
		}
		base := whBenchBaseline(b, w, int(rows))
		b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
		b.ReportMetric(events/elapsed.Seconds(), "events/s")
		b.ReportMetric(rows/base.Seconds(), "baseline-copy-rows/s")
		b.ReportMetric(events/ingest.Seconds(), "ingested-events/s")
		if err := s.stop(b); err != nil {
			b.Fatal(err)
		}
	}
}

// whBenchBaseline copies n rows of 16 columns straight into a new table in one transaction.
func whBenchBaseline(b *testing.B, w *whDB, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	cols := []string{"id", "received_at", "sent_at", "timestamp", "original_timestamp", "user_id", "event", "event_text", "context_ip",
		"context_page_url", "product_id", "price", "currency", "category", "in_stock", "quantity"}
	w.exec(b, `CREATE TABLE baseline (id text, received_at timestamptz, sent_at timestamptz, "timestamp" timestamptz, original_timestamp timestamptz,
		user_id text, event text, event_text text, context_ip text, context_page_url text, product_id text, price double precision, currency text,
		category text, in_stock boolean, quantity double precision)`)
	now := time.Now()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{"m" + strconv.Itoa(i), now, now, now, now, "user-" + strconv.Itoa(i%5000), "product_viewed", "Product Viewed", "203.0.113.7",
			"https://shop.example.com/p/" + strconv.Itoa(i%977), "p-" + strconv.Itoa(i%977), float64(i%100) + 0.99, "EUR", "shoes", i%3 == 0, float64(i % 5)}
	}
	start := time.Now()
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"baseline"}, cols, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkWarehouseLatency measures, one event at a time, the delay from sending an event to
// its row being queryable in the warehouse when a sync starts at once (warehouseSyncNow; on the
// schedule, add the wait for the next sync: up to the interval, one minute at least). The
// baseline is the tracking API's answer alone: the part of the delay before a sync can see the
// event.
func BenchmarkWarehouseLatency(b *testing.B) {
	p := whNewPipe(b, "whlat", "Shop", nil)
	w, s, e, key, dstID := p.w, p.s, p.e, p.key, p.dstID
	whBenchEvents(b, s, key, "warm", 10) // tables exist: each op is a steady-state sync
	e.syncNow(b, dstID)
	var delays, ingests []time.Duration
	b.ResetTimer()
	for i := range b.N {
		msg := "lat" + strconv.Itoa(i)
		start := time.Now()
		dlvTrack(b, s, key, map[string]any{"messageId": msg, "userId": "u", "event": "Product Viewed"})
		ingests = append(ingests, time.Since(start))
		e.syncNow(b, dstID)
		for {
			var n int
			if err := w.conn.QueryRow(context.Background(), `SELECT count(*) FROM shop.product_viewed WHERE id = $1`, msg).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n == 1 {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s not queryable after 10 s", msg)
			}
		}
		delays = append(delays, time.Since(start))
	}
	b.StopTimer()
	q := func(list []time.Duration, p float64) float64 {
		sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
		return float64(list[min(len(list)-1, int(p*float64(len(list))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(delays, 0.5), "p50-queryable-ms")
	b.ReportMetric(q(delays, 0.95), "p95-queryable-ms")
	b.ReportMetric(q(ingests, 0.5), "baseline-p50-ingest-ms")
}
