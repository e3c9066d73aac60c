package app_test

import (
	"context"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
)

// BenchmarkAuditInboxExpiry stores audit events and inbox notifications in two workspaces (200,000
// of each by default, three quarters of them past their retention: 400 days old in one workspace,
// 100 hours old in the other, which keeps them 48 hours), then has the reaper expire them. It
// reports the longest and the 99th-percentile time one of its transactions held the writer, and
// the rows it deleted a second. Run it once:
//
//	go test -run '^$' -bench AuditInboxExpiry -benchtime 1x ./internal/app/
//
// JUNCTION_BENCH_ROWS changes the number of rows of each kind.
func BenchmarkAuditInboxExpiry(b *testing.B) {
	rows := 200_000
	if v, err := strconv.Atoi(os.Getenv("JUNCTION_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	ctx := context.Background()
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError })
	short, long := dlvNewEnv(b, s, "exp-short"), dlvNewEnv(b, s, "exp-long")
	short.mutate(b, "workspaceSettingsUpdate", "WorkspaceSettingsUpdateInput", "settings { id }",
		map[string]any{"workspaceId": short.wsID, "auditTrailRetentionHours": 48, "inboxRetentionHours": 48})
	d := s.App.DB()
	now := time.Now()
	load := func(e *dlvEnv, oldAt time.Time, n, offset int) {
		const perTx = 5000
		for start := 0; start < n; start += perTx {
			var aud, ntf [][]any
			for i := start; i < min(start+perTx, n); i++ {
				at := now.Add(-time.Hour)
				if i < n*3/4 {
					at = oldAt
				}
				aud = append(aud, []any{benchIDAt("aud", at, offset+i), e.wsID, "SOURCE_CREATED", e.userID, "Source", "src_x", db.FormatTime(at)})
				ntf = append(ntf, []any{benchIDAt("ntf", at, offset+i), e.userID, e.wsID, "SOURCE_CREATED", "sources", "a source was created", "Source", "src_x", db.FormatTime(at)})
			}
			if err := d.Tx(ctx, func(tx *db.Tx) error {
				if err := tx.InsertRows(ctx, `INSERT INTO audit_events (id, workspace_id, type, actor_user_id, resource_type, resource_id, created_at) VALUES `, 7, aud, ""); err != nil {
					return err
				}
				return tx.InsertRows(ctx, `INSERT INTO notifications (id, user_id, workspace_id, type, area, message, resource_type, resource_id, created_at) VALUES `, 9, ntf, "")
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	load(long, now.Add(-400*24*time.Hour), rows/2, 0)
	load(short, now.Add(-100*time.Hour), rows/2, rows/2)

	var mu sync.Mutex
	var holds []time.Duration
	d.ObserveWrites(func(kind db.Hold, held time.Duration) {
		if kind == db.HoldBackground {
			mu.Lock()
			holds = append(holds, held)
			mu.Unlock()
		}
	})
	b.ResetTimer()
	start := time.Now()
	n, err := s.App.Reaper().ExpireOnce(ctx, now)
	took := time.Since(start)
	b.StopTimer()
	if want := int64(2 * 2 * (rows / 2 * 3 / 4)); err != nil || n != want {
		b.Fatalf("expired %d rows (%v), want %d", n, err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(holds, func(i, j int) bool { return holds[i] < holds[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(holds[len(holds)-1]), "max-hold-ms")
	b.ReportMetric(ms(holds[min(len(holds)-1, int(0.99*float64(len(holds))))]), "p99-hold-ms")
	b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
	b.ReportMetric(float64(len(holds)), "transactions")
}
