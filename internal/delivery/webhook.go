package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/junctioncdp/junction/internal/catalog"
)

// webhook sends each event's JSON as it was stored, one event per request, with the method and
// headers of the settings and, when a shared secret is set, X-Signature: hex HMAC-SHA256 of the
// body. The header values are secret settings (an API key header is their usual use).
type webhook struct{}

func init() { register("webhook", webhook{}) }

func (webhook) Limits() Limits { return Limits{Items: 1} }

func (webhook) Prepare(cfg Config, ev *Event) (Part, error) {
	if types, ok := cfg.Settings["eventTypes"].([]any); ok && len(types) > 0 && !containsAny(types, ev.Type) {
		return Part{}, Skip("eventTypes leaves out " + ev.Type)
	}
	return Part{Items: []json.RawMessage{ev.Raw}}, nil
}

func (webhook) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	u := cfg.String("url", "")
	if parsed, err := url.Parse(u); err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
		return nil, fmt.Errorf("settings.url is not an absolute URL")
	}
	headers, err := webhookHeaders(cfg)
	if err != nil {
		return nil, err
	}
	body := []byte(parts[0].Items[0])
	method := cfg.String("method", http.MethodPost)
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Junction-Webhook/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if secret := cfg.Secrets["sharedSecret"]; secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	}
	return req, nil
}

// webhookHeaders returns the headers setting: the values are sealed as the secret "headers" (a
// JSON object), and the plain settings hold the names with masked values. A plain value that is
// not the mask was stored before header values became secret and counts until it is sealed.
func webhookHeaders(cfg Config) (map[string]string, error) {
	out := map[string]string{}
	if plain, ok := cfg.Settings["headers"].(map[string]any); ok {
		for k, v := range plain {
			if s, ok := v.(string); ok && s != masked {
				out[k] = s
			}
		}
	}
	if sealed := cfg.Secrets["headers"]; sealed != "" {
		var values map[string]string
		if err := json.Unmarshal([]byte(sealed), &values); err != nil {
			return nil, fmt.Errorf("settings.headers cannot be read")
		}
		for k, v := range values {
			out[k] = v
		}
	}
	for k, v := range out {
		if msg := catalog.CheckHeader(k, v); msg != "" {
			return nil, fmt.Errorf("settings.headers %s", msg)
		}
	}
	return out, nil
}

func containsAny(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
