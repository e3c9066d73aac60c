package ingest

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkNormalise is the per-event cost of normalisation, for a typical track event of about
// 350 bytes inside a batch with a batch-level context.
//
//	go test -run '^$' -bench Normalise -benchmem ./internal/ingest/
func BenchmarkNormalise(b *testing.B) {
	raw := json.RawMessage(`{"type":"track","event":"Product Viewed","userId":"user-42","anonymousId":"anon-4711","messageId":"node-next-1732699096123-a1b2c3d4-7f","timestamp":"2026-11-27T09:18:16.123Z","properties":{"product_id":"p-977","category":"Games","name":"Settlers of Catan","price":18.99,"currency":"USD"},"context":{"library":{"name":"analytics-node","version":"3.1.0"}}}`)
	req := &request{SentAt: "2026-11-27T09:18:16.200Z", Context: map[string]any{"app": map[string]any{"name": "shop"}}}
	n := &normaliser{req: req, receivedAt: time.Now().UTC(), clientIP: "192.0.2.1"}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if ev := n.normalise(0, raw); ev.Status != Accepted {
			b.Fatal(ev.Message)
		}
	}
}
