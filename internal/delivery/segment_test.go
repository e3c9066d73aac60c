package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

func TestSegmentForward(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Settings: map[string]any{"endpoint": rcv.URL}, Secrets: map[string]string{"writeKey": "wk_test_1234"}}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("wk_test_1234:"))

	for _, payload := range []string{trackPayload, pagePayload, screenPayload, identifyPayload, groupPayload, aliasPayload} {
		ev := storedEvent(t, payload)
		t.Run(ev.Type, func(t *testing.T) {
			before := time.Now()
			got := rcv.deliver(t, request(t, "segment", cfg, ev))
			after := time.Now()
			if got.Method != "POST" || got.Path != "/v1/batch" || got.RawQuery != "" {
				t.Errorf("request %s %s?%s, want POST /v1/batch", got.Method, got.Path, got.RawQuery)
			}
			wantHeaders(t, got, map[string]string{"Authorization": wantAuth, "Content-Type": "application/json", "User-Agent": "Junction/1"})

			var body struct {
				Batch  []json.RawMessage `json:"batch"`
				SentAt string            `json:"sentAt"`
			}
			if err := json.Unmarshal(got.Body, &body); err != nil {
				t.Fatal(err)
			}
			var keys map[string]any
			_ = json.Unmarshal(got.Body, &keys)
			if len(keys) != 2 || len(body.Batch) != 1 {
				t.Fatalf("body %s, want {batch: [event], sentAt}", got.Body)
			}
			// The event as stored, but for its own sentAt.
			var stored map[string]any
			_ = json.Unmarshal(ev.Raw, &stored)
			delete(stored, "sentAt")
			want, _ := json.Marshal(stored)
			wantJSON(t, body.Batch[0], string(want))
			sentAt, err := time.Parse(time.RFC3339Nano, body.SentAt)
			if err != nil || sentAt.Before(before.Add(-time.Millisecond)) || sentAt.After(after) {
				t.Errorf("sentAt %q, want the time of sending (%s..%s)", body.SentAt, before, after)
			}
		})
	}

	t.Run("KeepsNumbersAsStored", func(t *testing.T) {
		ev := storedEvent(t, `{"type":"track","messageId":"m-big","userId":"user-1","event":"Big","properties":{"id":12345678901234567890,"price":1.10},
			"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
		got := rcv.deliver(t, request(t, "segment", cfg, ev))
		if !bytes.Contains(got.Body, []byte(`"properties":{"id":12345678901234567890,"price":1.10}`)) {
			t.Errorf("properties changed on the way: %s", got.Body)
		}
	})
	t.Run("EndpointWithPath", func(t *testing.T) {
		cfg := Config{Settings: map[string]any{"endpoint": rcv.URL + "/tracking/"}, Secrets: cfg.Secrets}
		got := rcv.deliver(t, request(t, "segment", cfg, storedEvent(t, trackPayload)))
		if got.Path != "/tracking/v1/batch" {
			t.Errorf("path %s, want /tracking/v1/batch", got.Path)
		}
	})
	t.Run("DefaultEndpoint", func(t *testing.T) {
		req := request(t, "segment", Config{Secrets: cfg.Secrets}, storedEvent(t, trackPayload))
		if got := req.URL.String(); got != "https://api.segment.io/v1/batch" {
			t.Errorf("URL %s", got)
		}
	})
	t.Run("ErrWriteKeyMissing", func(t *testing.T) {
		wantInvalidSettings(t, "segment", Config{Settings: cfg.Settings}, storedEvent(t, trackPayload), "settings.writeKey is not set")
	})
	t.Run("ErrEndpointInvalid", func(t *testing.T) {
		bad := Config{Settings: map[string]any{"endpoint": "api.segment.io"}, Secrets: cfg.Secrets}
		wantInvalidSettings(t, "segment", bad, storedEvent(t, trackPayload), "settings.endpoint is not an absolute http or https URL")
	})
}
