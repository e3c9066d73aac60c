package delivery

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestWebhook(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{
		// The headers' names are among the plain settings, masked; their values are a secret.
		Settings: map[string]any{"url": rcv.URL + "/hooks/junction?env=test", "method": "POST", "headers": map[string]any{"X-Api-Key": masked},
			"timeoutSeconds": 10.0, "eventTypes": []any{}},
		Secrets: map[string]string{"sharedSecret": "whsec-test-1", "headers": `{"X-Api-Key":"k-123"}`},
	}
	for _, payload := range []string{trackPayload, pagePayload, screenPayload, identifyPayload, groupPayload, aliasPayload} {
		ev := storedEvent(t, payload)
		t.Run(ev.Type, func(t *testing.T) {
			got := rcv.deliver(t, request(t, "webhook", cfg, ev))
			if got.Method != "POST" || got.Path != "/hooks/junction" || got.RawQuery != "env=test" {
				t.Errorf("request %s %s?%s, want POST /hooks/junction?env=test", got.Method, got.Path, got.RawQuery)
			}
			mac := hmac.New(sha256.New, []byte("whsec-test-1"))
			mac.Write(ev.Raw)
			wantHeaders(t, got, map[string]string{"Content-Type": "application/json", "User-Agent": "Junction-Webhook/1",
				"X-Api-Key": "k-123", "X-Signature": hex.EncodeToString(mac.Sum(nil))})
			if !bytes.Equal(got.Body, ev.Raw) {
				t.Errorf("body %s, want the stored event %s", got.Body, ev.Raw)
			}
		})
	}
	t.Run("Method", func(t *testing.T) {
		put := Config{Settings: map[string]any{"url": rcv.URL, "method": "PUT"}}
		got := rcv.deliver(t, request(t, "webhook", put, storedEvent(t, trackPayload)))
		if got.Method != "PUT" || got.Header.Get("X-Signature") != "" {
			t.Errorf("method %s, signature %q; want PUT, unsigned", got.Method, got.Header.Get("X-Signature"))
		}
	})
	t.Run("EventTypes", func(t *testing.T) {
		only := Config{Settings: map[string]any{"url": rcv.URL, "eventTypes": []any{"identify"}}}
		wantSkip(t, "webhook", only, storedEvent(t, trackPayload))
		rcv.deliver(t, request(t, "webhook", only, storedEvent(t, identifyPayload)))
	})
	t.Run("ErrURLInvalid", func(t *testing.T) {
		wantInvalidSettings(t, "webhook", Config{Settings: map[string]any{"url": "/hooks"}}, storedEvent(t, trackPayload), "settings.url is not an absolute URL")
	})
}
