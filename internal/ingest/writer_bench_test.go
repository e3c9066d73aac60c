package ingest

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWriterStore measures the writer's commit path alone (one group commit of a few or of
// many events: its statements, its transaction, its fsync), without HTTP or decoding. Besides the
// time per commit it reports the CPU time the process spent per event (user and system, from
// getrusage), which, unlike latency, hardly moves when other work shares the machine:
//
//	go test -run '^$' -bench WriterStore -benchmem ./internal/ingest/
func BenchmarkWriterStore(b *testing.B) {
	for _, n := range []int{2, 100, 800} {
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			d := mustOpenDB(b)
			w := newWriter(d, DefaultQueueLimits, nil, newFollower(nil, nil))
			ctx := context.Background()
			payload := []byte(`{"type":"track","event":"Product Viewed","userId":"user-1","anonymousId":"anon-1","messageId":"m",` +
				`"timestamp":"2026-01-02T03:04:05.000Z","properties":{"product_id":"p-1","category":"Games","name":"Catan",` +
				`"price":18.99,"currency":"USD"},"context":{"library":{"name":"analytics-node","version":"3.1.0"}}}`)
			name := "Product Viewed"
			seq := 0
			group := func() []*Event {
				out := make([]*Event, n)
				now := time.Now().UTC()
				for i := range out {
					seq++
					// Identities repeat as a site's visitors do (5,000 users, 7,919 devices).
					uid, anon := "user-"+strconv.Itoa(seq%5000), "anon-"+strconv.Itoa(seq%7919)
					ts := now
					out[i] = &Event{WorkspaceID: "ws_a", SourceID: "src_a", MessageID: "m-" + strconv.Itoa(seq), Type: Track,
						EventName: &name, UserID: &uid, AnonymousID: &anon, Status: Accepted, ReceivedAt: now, Timestamp: &ts, Payload: payload}
				}
				return out
			}
			before := cpuTime()
			b.ResetTimer()
			for range b.N {
				if _, err := w.store(ctx, group()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/1000/float64(b.N*n), "cpu-µs/event")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
