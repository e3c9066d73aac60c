package delivery

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// What the vendor connectors (segment, amplitude, mixpanel, google-analytics-4, slack) share:
// reading their settings, reading the stored event, and naming page and screen views.

// userAgent identifies this server to the vendors' APIs.
const userAgent = "Junction/1"

// postJSON builds a POST with a JSON body, as the vendor connectors send.
func postJSON(ctx context.Context, u string, body any) (*http.Request, error) {
	req, err := jsonRequest(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// required returns a setting that must be set, secret or not, without surrounding spaces.
func required(cfg Config, name string) (string, error) {
	if v := strings.TrimSpace(cfg.String(name, "")); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("settings.%s is not set", name)
}

// endpoint returns the `endpoint` setting, or def (the vendor's public endpoint, which is also
// the catalog's default), as an absolute http or https URL.
func endpoint(cfg Config, def string) (*url.URL, error) {
	return absoluteURL(cfg, "endpoint", def)
}

func absoluteURL(cfg Config, name, def string) (*url.URL, error) {
	raw := strings.TrimSpace(cfg.String(name, def))
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("settings.%s is not an absolute http or https URL", name)
	}
	return u, nil
}

// at reads a nested field of a payload object: at(ev.Payload, "context", "page", "url").
func at(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return v
}

// atString reads a nested string field ("" when absent or not a string).
func atString(m map[string]any, path ...string) string {
	s, _ := at(m, path...).(string)
	return s
}

// atObject reads a nested object field (nil when absent or not an object).
func atObject(m map[string]any, path ...string) map[string]any {
	o, _ := at(m, path...).(map[string]any)
	return o
}

// atNumber reads a nested number field.
func atNumber(m map[string]any, path ...string) (float64, bool) {
	f, ok := at(m, path...).(float64)
	return f, ok
}

// eventTime is when the event happened: its timestamp, which ingestion corrected for the
// client's clock, or when it was received.
func eventTime(ev *Event) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, ev.Str("timestamp")); err == nil {
		return t
	}
	return ev.ReceivedAt
}

// viewName names a page or screen view as an event, the way Segment's classic Amplitude and
// Mixpanel destinations do: "Viewed Pricing Page" for page("Pricing"), "Viewed Docs Setup Page"
// for page("Docs", "Setup"), "Loaded a Page" for a page without a name; the same for screens.
func viewName(ev *Event) string {
	kind := "Page"
	if ev.Type == "screen" {
		kind = "Screen"
	}
	name := ev.Str("name")
	if name == "" {
		name = atString(ev.Object("properties"), "name")
	}
	if name == "" {
		return "Loaded a " + kind
	}
	if category := ev.Str("category"); category != "" && ev.Type == "page" {
		name = category + " " + name
	}
	return "Viewed " + name + " " + kind
}

// nonEmpty returns m, or nil when it has no keys (so that omitempty leaves it out).
func nonEmpty(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}
