package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// webhook POSTs each event's JSON as it was stored, with the destination's headers and, when a
// shared secret is set, X-Signature: hex HMAC-SHA256 of the body.
type webhook struct{}

func init() { register("webhook", webhook{}) }

func (webhook) Request(ctx context.Context, cfg Config, ev *Event) (*http.Request, error) {
	u := cfg.String("url", "")
	if parsed, err := url.Parse(u); err != nil || parsed.Host == "" {
		return nil, fmt.Errorf("settings.url is not an absolute URL")
	}
	if types, ok := cfg.Settings["eventTypes"].([]any); ok && len(types) > 0 && !containsAny(types, ev.Type) {
		return nil, Skip("eventTypes leaves out " + ev.Type)
	}
	method := cfg.String("method", http.MethodPost)
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(ev.Raw))
	if err != nil {
		return nil, err
	}
	body := ev.Raw
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Junction-Webhook/1")
	if headers, ok := cfg.Settings["headers"].(map[string]any); ok {
		for k, v := range headers {
			if s, ok := v.(string); ok {
				req.Header.Set(k, s)
			}
		}
	}
	if secret := cfg.Secrets["sharedSecret"]; secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	}
	return req, nil
}

func containsAny(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
