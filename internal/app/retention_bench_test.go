package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// BenchmarkRetentionAndDeletes stores 1,000,000 events (half of them past the retention period,
// with 20,000 delivery retries waiting on old ones), then deletes another workspace (with none of
// them), prunes the old half and deletes the source holding the other half, while single-event
// /v1/track requests keep arriving at 200 a second. It reports the longest and the 99th-percentile time a transaction of that work held the
// writer, and the tracking API's latency meanwhile. Run it once:
//
//	go test -run '^$' -bench RetentionAndDeletes -benchtime 1x ./internal/app/
//
// JUNCTION_BENCH_EVENTS changes the number of events.
func BenchmarkRetentionAndDeletes(b *testing.B) {
	events := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("JUNCTION_BENCH_EVENTS")); err == nil && v > 0 {
		events = v
	}
	ctx := context.Background()
	s := startServer(b, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelError; c.IngestRate = 0 })
	e := dlvNewEnv(b, s, "retention")
	oldSrc, _ := e.source(b, "Old")
	newSrc, _ := e.source(b, "New")
	liveSrc, liveKey := e.source(b, "Live")
	dest := e.webhook(b, "Hook", map[string]any{"url": "http://127.0.0.1:9/"}, false)
	d := s.App.DB()

	// Bulk load, straight into the tables: old events have ids (and times) ten days back.
	oldAt, newAt := time.Now().Add(-10*24*time.Hour), time.Now().Add(-time.Hour)
	load := func(src string, at time.Time, n int, retries int) {
		const perTx = 5000
		for start := 0; start < n; start += perTx {
			var rows, retryRows [][]any
			for i := start; i < min(start+perTx, n); i++ {
				eid := benchIDAt("evt", at, i)
				rows = append(rows, []any{eid, e.wsID, src, fmt.Sprint("m-", src, "-", i), "TRACK", "Order Completed", fmt.Sprint("u", i%5000),
					"ACCEPTED", db.FormatTime(at), db.FormatTime(at), `{"type":"track","event":"Order Completed","properties":{"total":42}}`})
				if i < retries {
					retryRows = append(retryRows, []any{dest, eid, 1, db.FormatTime(at), db.FormatTime(at)})
				}
			}
			err := d.Tx(ctx, func(tx *db.Tx) error {
				if err := tx.InsertRows(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id,
					status, received_at, timestamp, payload) VALUES `, 11, rows, ""); err != nil {
					return err
				}
				return tx.InsertRows(ctx, `INSERT INTO delivery_retries (destination_id, event_id, attempts, first_attempt_at, next_attempt_at) VALUES `, 5, retryRows, "")
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	load(oldSrc, oldAt, events/2, 20_000)
	load(newSrc, newAt, events/2, 0)

	// What holds the writer from now on, and how long each /v1/track waits meanwhile.
	var mu sync.Mutex
	var holds []time.Duration               // the pruner's and the reaper's transactions
	others := map[db.Hold][]time.Duration{} // all else that held the writer meanwhile
	d.ObserveWrites(func(kind db.Hold, held time.Duration) {
		mu.Lock()
		if kind == db.HoldBackground {
			holds = append(holds, held)
		} else {
			others[kind] = append(others[kind], held)
		}
		mu.Unlock()
	})
	var latencies []time.Duration
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			body := fmt.Sprintf(`{"userId":"live-%d","event":"Live"}`, i)
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/track", strings.NewReader(body))
			req.SetBasicAuth(liveKey, "")
			t0 := time.Now()
			res, err := client.Do(req)
			if err != nil || res.StatusCode != 200 {
				failed.Add(1)
			}
			if res != nil {
				res.Body.Close()
			}
			mu.Lock()
			latencies = append(latencies, time.Since(t0))
			mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond)

	b.ResetTimer()
	mu.Lock()
	holds = holds[:0]
	mu.Unlock()
	for k := range others {
		delete(others, k)
	}
	// Deleting another workspace, with a source and no events: its row's foreign keys look for
	// rows of it in every table, events included, where all 1,000,000 are.
	other := newTeam(b, s, "retention-other", "Otto")
	other.source(b, "Other")
	other.mutate(b, other.owner.tok, "workspaceDelete", "WorkspaceDeleteInput", "deletedWorkspaceId",
		map[string]any{"workspaceId": other.wsID, "confirmSlug": "retention-other"})
	if err := s.App.Reaper().Once(ctx); err != nil {
		b.Fatal(err)
	}
	var gone int
	if err := d.Get(ctx, &gone, `SELECT COUNT(*) FROM workspaces WHERE id = ?`, other.wsID); err != nil || gone != 0 {
		b.Fatalf("the deleted workspace is still there (%v)", err)
	}
	mu.Lock()
	workspaceHolds := append([]time.Duration(nil), holds...)
	holds = holds[:0]
	mu.Unlock()

	// Retention: the old half goes, with its retries.
	start := time.Now()
	pruned, err := s.App.Prune(ctx, time.Now()) // the default retention: 7 days
	if err != nil || pruned < int64(events/2) {
		b.Fatalf("pruned %d (%v), want %d", pruned, err, events/2)
	}
	pruneTook := time.Since(start)
	mu.Lock()
	pruneHolds := append([]time.Duration(nil), holds...)
	holds = holds[:0]
	mu.Unlock()

	// Deleting the source that holds the other half.
	start = time.Now()
	e.mutate(b, "sourceDelete", "SourceIdInput", "deletedSourceId", map[string]any{"sourceId": newSrc})
	if err := s.App.Reaper().Once(ctx); err != nil {
		b.Fatal(err)
	}
	reapTook := time.Since(start)
	mu.Lock()
	reapHolds := append([]time.Duration(nil), holds...)
	mu.Unlock()
	b.StopTimer()
	close(stop)
	wg.Wait()
	var left int
	if err := d.Get(ctx, &left, `SELECT COUNT(*) FROM events WHERE source_id IN (?, ?)`, oldSrc, newSrc); err != nil || left != 0 {
		b.Fatalf("%d events left (%v)", left, err)
	}
	_ = liveSrc

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	b.ReportMetric(ms(pct(pruneHolds, 1)), "prune-max-hold-ms")
	b.ReportMetric(ms(pct(pruneHolds, 0.99)), "prune-p99-hold-ms")
	b.ReportMetric(float64(events/2)/pruneTook.Seconds(), "pruned-events/s")
	b.ReportMetric(ms(pct(reapHolds, 1)), "delete-max-hold-ms")
	b.ReportMetric(ms(pct(reapHolds, 0.99)), "delete-p99-hold-ms")
	b.ReportMetric(float64(events/2)/reapTook.Seconds(), "reaped-events/s")
	b.ReportMetric(ms(pct(workspaceHolds, 1)), "workspace-delete-max-hold-ms")
	mu.Lock()
	// Not the target, reported so that the figures show what else held the writer meanwhile: the
	// tracking API's own commits, and the checkpointer's steps that restart the WAL.
	b.ReportMetric(ms(pct(others[db.HoldCommit], 1)), "commit-max-hold-ms")
	b.ReportMetric(ms(pct(others[db.HoldCheckpoint], 1)), "checkpoint-max-hold-ms")
	b.ReportMetric(ms(pct(latencies, 0.99)), "track-p99-ms")
	b.ReportMetric(ms(pct(latencies, 1)), "track-max-ms")
	mu.Unlock()
	if n := failed.Load(); n > 0 {
		b.Errorf("%d tracking requests failed meanwhile", n)
	}
}

// benchIDAt makes the i-th id of a bulk load at time at: ids sort by time, then by i.
func benchIDAt(prefix string, at time.Time, i int) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	base := []byte(id.Floor(prefix, at))
	for j := len(base) - 1; i > 0; j-- {
		base[j] = alphabet[i%32]
		i /= 32
	}
	return string(base)
}
