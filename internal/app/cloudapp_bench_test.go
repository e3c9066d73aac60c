package app_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkCloudAppWebhook measures a cloud-app source's inbound URL against the tracking API on
// the same server: 8 keep-alive clients in a closed loop, each request a new event.
//
//	go test -run '^$' -bench 'CloudAppWebhook' -benchtime 5s -count 3 ./internal/app/
//
// Track is the baseline: a single-event /v1/track with a write key. Stripe is a signed
// charge.succeeded webhook with a new event id (the source's lookup, the signature check, the
// mapping to a track and an identify, the same writer). An op is one request.
func BenchmarkCloudAppWebhook(b *testing.B) {
	s := startServer(b, func(c *config.Config) { c.LogLevel = slog.LevelError })
	base := newTrackingSource(b, s, "cabench")
	owner, _, wsID := itOwner(b, s, "cabench-stripe@example.com", "cabench-stripe")
	const secret = "whsec_bench"
	stripe := caSource(b, owner, wsID, "stripe", map[string]any{"signingSecret": secret})
	gen := newEventGen(base.writeKey)
	var n atomic.Int64

	run := func(b *testing.B, request func(client *http.Client) error) {
		const clients = 8
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
		defer client.CloseIdleConnections()
		latencies := make([]time.Duration, b.N)
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
					t0 := time.Now()
					if err := request(client); err != nil {
						b.Error(err)
						return
					}
					latencies[i] = time.Since(t0)
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		b.StopTimer()
		reportLatencies(b, latencies, 0.50, 0.99)
	}

	b.Run("Track", func(b *testing.B) {
		run(b, func(client *http.Client) error { return gen.post(client, s.URL+"/v1/track", gen.track(nil)) })
	})
	b.Run("Stripe", func(b *testing.B) {
		run(b, func(client *http.Client) error {
			body := strings.Replace(caStripeCharge, "evt_3QHZ0fLkdIwHu7ix0ZP0Uxc1", fmt.Sprintf("evt_bench_%d", n.Add(1)), 1)
			req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/webhooks/"+stripe, bytes.NewReader([]byte(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", caStripeSig(secret, body, time.Now()))
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("webhook answered %d", res.StatusCode)
			}
			return nil
		})
	})
}
