package delivery

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
)

func TestGoogleAnalytics4(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Settings: map[string]any{"endpoint": rcv.URL, "measurementId": "G-TEST12345"}, Secrets: map[string]string{"apiSecret": "s3cr3t-Key_1"}}

	for _, tc := range []struct {
		name    string
		payload string
		want    string // the body
	}{
		{"Track", trackPayload, fmt.Sprintf(`{
			"client_id": "anon-5e1f2c",
			"user_id": "user-4242",
			"timestamp_micros": %[1]d,
			"events": [{"name": "order_completed", "params": {
				"currency": "EUR",
				"gift": "true",
				"orderId": "o-1001",
				"revenue": 29.99,
				"shipping_cost": 4.5,
				"shipping_method": "express"}, "timestamp_micros": %[1]d}]}`, unixMicro("2026-03-01T12:00:00.123Z"))},
		{"PageNamed", pagePayload, fmt.Sprintf(`{
			"client_id": "anon-5e1f2c",
			"timestamp_micros": %[1]d,
			"events": [{"name": "page_view", "params": {
				"page_location": "https://shop.example/docs/pricing?ref=nav",
				"page_title": "Pricing | Shop",
				"page_referrer": "https://search.example/",
				"category": "Docs",
				"name": "Pricing",
				"path": "/docs/pricing",
				"referrer": "https://search.example/",
				"title": "Pricing | Shop",
				"url": "https://shop.example/docs/pricing?ref=nav"}, "timestamp_micros": %[1]d}]}`, unixMicro("2026-03-01T12:05:00Z"))},
		// No anonymousId: the userId is the client_id too. The title comes from the context.
		{"PageUnnamed", unnamedPagePayload, fmt.Sprintf(`{
			"client_id": "user-4242",
			"user_id": "user-4242",
			"timestamp_micros": %[1]d,
			"events": [{"name": "page_view", "params": {
				"page_location": "https://shop.example/",
				"page_title": "Shop",
				"url": "https://shop.example/"}, "timestamp_micros": %[1]d}]}`, unixMicro("2026-03-01T12:06:00Z"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rcv.deliver(t, request(t, "google-analytics-4", cfg, storedEvent(t, tc.payload)))
			if got.Method != "POST" || got.Path != "/mp/collect" || got.RawQuery != "measurement_id=G-TEST12345&api_secret=s3cr3t-Key_1" {
				t.Errorf("request %s %s?%s, want POST /mp/collect?measurement_id=G-TEST12345&api_secret=s3cr3t-Key_1", got.Method, got.Path, got.RawQuery)
			}
			wantHeaders(t, got, map[string]string{"Authorization": "", "Content-Type": "application/json", "User-Agent": "Junction/1"})
			wantJSON(t, got.Body, tc.want)
		})
	}

	track := func(event string, props string) *Event {
		return storedEvent(t, `{"type":"track","messageId":"m-1","anonymousId":"anon-1","event":`+event+`,"properties":`+props+`,
			"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
	}
	sent := func(t *testing.T, ev *Event) (name string, params map[string]any) {
		t.Helper()
		var body struct {
			Events []ga4Event `json:"events"`
		}
		if err := json.Unmarshal(rcv.deliver(t, request(t, "google-analytics-4", cfg, ev)).Body, &body); err != nil || len(body.Events) != 1 {
			t.Fatalf("body: %v", err)
		}
		return body.Events[0].Name, body.Events[0].Params
	}
	t.Run("EventNames", func(t *testing.T) {
		for _, tc := range []struct{ event, want string }{
			{"Order Completed", "order_completed"},
			{"  Signed-Up!! ", "signed_up"},
			{"cart_viewed", "cart_viewed"},
			{"Café Visited", "café_visited"},
			{"Checkout Step Completed With A Very Long Name Indeed", "checkout_step_completed_with_a_very_long"},
			{"Checkout Step Completed With A Very Lon Name", "checkout_step_completed_with_a_very_lon"}, // no _ left at the cut
		} {
			if got, _ := sent(t, track(fmt.Sprintf("%q", tc.event), `{}`)); got != tc.want {
				t.Errorf("event %q sent as %q, want %q", tc.event, got, tc.want)
			}
		}
	})
	t.Run("SkipsNamesGA4Refuses", func(t *testing.T) {
		for _, event := range []string{"404 Not Found", "Session Start", "error", "Google Click", "!!!"} {
			wantSkip(t, "google-analytics-4", cfg, track(fmt.Sprintf("%q", event), `{}`))
		}
	})
	t.Run("Params", func(t *testing.T) {
		_, params := sent(t, track(`"Searched"`, `{"Search Term": "`+strings.Repeat("x", 120)+`", "_private": 1, "ga_session": 2, "1st": 3,
			"tags": ["a"], "filters": {"size": {"min": 38}}, "none": null}`))
		want := map[string]any{"Search_Term": strings.Repeat("x", 100), "private": 1.0, "filters_size_min": 38.0}
		if !jsonEqual(params, want) {
			t.Errorf("params %v, want %v", params, want)
		}
	})
	t.Run("AtMost25Params", func(t *testing.T) {
		var props []string
		for i := 1; i <= 30; i++ {
			props = append(props, fmt.Sprintf(`"p%02d": %d`, i, i))
		}
		ev := storedEvent(t, `{"type":"page","messageId":"m-2","anonymousId":"anon-1","properties":{`+strings.Join(props, ",")+`},
			"context":{"page":{"url":"https://shop.example/`+strings.Repeat("a", 1200)+`","title":"Shop"}},
			"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
		_, params := sent(t, ev)
		if len(params) != 25 || params["p23"] != 23.0 || params["p24"] != nil {
			keys := make([]string, 0, len(params))
			for k := range params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Errorf("params %v, want page_location, page_title and p01..p23", keys)
		}
		if loc, _ := params["page_location"].(string); len(loc) != 1000 || params["page_title"] != "Shop" {
			t.Errorf("page_location of %d characters, page_title %v; want 1000 and Shop", len(loc), params["page_title"])
		}
	})
	for _, payload := range []string{screenPayload, identifyPayload, groupPayload, aliasPayload} {
		ev := storedEvent(t, payload)
		t.Run("Skips"+ev.Type, func(t *testing.T) { wantSkip(t, "google-analytics-4", cfg, ev) })
	}
	t.Run("DefaultEndpoint", func(t *testing.T) {
		req := request(t, "google-analytics-4", Config{Settings: map[string]any{"measurementId": "G-TEST12345"}, Secrets: cfg.Secrets}, storedEvent(t, trackPayload))
		if got := req.URL.String(); got != "https://www.google-analytics.com/mp/collect?measurement_id=G-TEST12345&api_secret=s3cr3t-Key_1" {
			t.Errorf("URL %s", got)
		}
	})
	t.Run("ErrMeasurementIDMissing", func(t *testing.T) {
		bad := Config{Settings: map[string]any{"endpoint": rcv.URL}, Secrets: cfg.Secrets}
		wantInvalidSettings(t, "google-analytics-4", bad, storedEvent(t, trackPayload), "settings.measurementId is not set")
	})
	t.Run("ErrAPISecretMissing", func(t *testing.T) {
		wantInvalidSettings(t, "google-analytics-4", Config{Settings: cfg.Settings}, storedEvent(t, trackPayload), "settings.apiSecret is not set")
	})
	t.Run("ErrEndpointInvalid", func(t *testing.T) {
		bad := Config{Settings: map[string]any{"endpoint": "www.google-analytics.com", "measurementId": "G-TEST12345"}, Secrets: cfg.Secrets}
		wantInvalidSettings(t, "google-analytics-4", bad, storedEvent(t, trackPayload), "settings.endpoint is not an absolute http or https URL")
	})
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
