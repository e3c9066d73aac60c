package delivery

import (
	"fmt"
	"testing"
)

func TestAmplitude(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Settings: map[string]any{"endpoint": rcv.URL + "/2/httpapi"}, Secrets: map[string]string{"apiKey": "amp-key-0123456789abcdef"}}
	grouped := Config{Settings: map[string]any{"endpoint": rcv.URL + "/2/httpapi", "groupType": "company"}, Secrets: cfg.Secrets}

	for _, tc := range []struct {
		name    string
		cfg     Config
		payload string
		want    string // the body
	}{
		{"Track", cfg, trackPayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"user_id": "user-4242",
			"device_id": "anon-5e1f2c",
			"event_type": "Order Completed",
			"time": %d,
			"insert_id": "ajs-next-1772366402123-6f1c4d1e-7f3b-4f0e-9a55-2d0c1b3a4e5f",
			"event_properties": {"orderId": "o-1001", "revenue": 29.99, "currency": "EUR", "coupon": null,
				"products": [{"sku": "sku-1", "price": 25.49}], "shipping": {"method": "express", "cost": 4.5}, "gift": true},
			"user_properties": {"plan": "pro"},
			"os_name": "Mac OS X",
			"os_version": "14.5",
			"country": "France",
			"city": "Lyon",
			"language": "fr-FR",
			"location_lat": 45.76,
			"location_lng": 4.84,
			"revenue": 29.99,
			"ip": "203.0.113.7",
			"library": "junction"}]}`, unixMilli("2026-03-01T12:00:00.123Z"))},
		{"PageNamed", cfg, pagePayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"device_id": "anon-5e1f2c",
			"event_type": "Viewed Docs Pricing Page",
			"time": %d,
			"insert_id": "api-0f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c",
			"event_properties": {"name": "Pricing", "category": "Docs", "url": "https://shop.example/docs/pricing?ref=nav",
				"path": "/docs/pricing", "title": "Pricing | Shop", "referrer": "https://search.example/"},
			"ip": "203.0.113.7",
			"library": "junction"}]}`, unixMilli("2026-03-01T12:05:00Z"))},
		{"PageUnnamed", cfg, unnamedPagePayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"user_id": "user-4242",
			"event_type": "Loaded a Page",
			"time": %d,
			"insert_id": "api-1f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c",
			"event_properties": {"url": "https://shop.example/"},
			"library": "junction"}]}`, unixMilli("2026-03-01T12:06:00Z"))},
		{"ScreenNamed", cfg, screenPayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"user_id": "user-4242",
			"device_id": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D",
			"event_type": "Viewed Home Screen",
			"time": %d,
			"insert_id": "8d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f",
			"event_properties": {"tab": "feed"},
			"app_version": "3.2.1",
			"platform": "iOS",
			"os_name": "iOS",
			"os_version": "17.4",
			"device_manufacturer": "Apple",
			"device_model": "iPhone15,2",
			"carrier": "Orange",
			"ip": "198.51.100.23",
			"library": "junction"}]}`, unixMilli("2026-03-01T12:10:00.5Z"))},
		{"ScreenUnnamed", cfg, unnamedScreenPayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"device_id": "anon-5e1f2c",
			"event_type": "Loaded a Screen",
			"time": %d,
			"insert_id": "9d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f",
			"library": "junction"}]}`, unixMilli("2026-03-01T12:11:00Z"))},
		{"Identify", cfg, identifyPayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"user_id": "user-4242",
			"device_id": "anon-5e1f2c",
			"event_type": "$identify",
			"time": %d,
			"insert_id": "node-1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
			"user_properties": {"$set": {"email": "ada@example.com", "plan": "pro", "logins": 5}},
			"ip": "203.0.113.7",
			"library": "junction"}]}`, unixMilli("2026-03-01T11:59:00Z"))},
		{"Group", grouped, groupPayload, fmt.Sprintf(`{"api_key": "amp-key-0123456789abcdef", "events": [{
			"user_id": "user-4242",
			"event_type": "$identify",
			"time": %[1]d,
			"insert_id": "node-2c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
			"groups": {"company": "acme-inc"},
			"user_properties": {"$set": {"company": "acme-inc"}},
			"ip": "203.0.113.7",
			"library": "junction"
		}, {
			"user_id": "user-4242",
			"event_type": "$groupidentify",
			"time": %[1]d,
			"insert_id": "node-2c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6-group",
			"groups": {"company": "acme-inc"},
			"group_properties": {"$set": {"name": "Acme", "employees": 120}},
			"ip": "203.0.113.7",
			"library": "junction"}]}`, unixMilli("2026-03-01T11:58:00Z"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rcv.deliver(t, request(t, "amplitude", tc.cfg, storedEvent(t, tc.payload)))
			if got.Method != "POST" || got.Path != "/2/httpapi" || got.RawQuery != "" {
				t.Errorf("request %s %s?%s, want POST /2/httpapi", got.Method, got.Path, got.RawQuery)
			}
			// The API key is in the body; no credential in the headers.
			wantHeaders(t, got, map[string]string{"Authorization": "", "Content-Type": "application/json", "User-Agent": "Junction/1"})
			wantJSON(t, got.Body, tc.want)
		})
	}

	t.Run("SkipsGroupWithoutGroupType", func(t *testing.T) { wantSkip(t, "amplitude", cfg, storedEvent(t, groupPayload)) })
	t.Run("SkipsAlias", func(t *testing.T) { wantSkip(t, "amplitude", grouped, storedEvent(t, aliasPayload)) })
	t.Run("SkipsIdentifyWithoutTraits", func(t *testing.T) {
		wantSkip(t, "amplitude", cfg, storedEvent(t, `{"type":"identify","messageId":"m-1","userId":"user-4242","anonymousId":"anon-5e1f2c",
			"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`))
	})
	t.Run("DefaultEndpoint", func(t *testing.T) {
		req := request(t, "amplitude", Config{Secrets: cfg.Secrets}, storedEvent(t, trackPayload))
		if got := req.URL.String(); got != "https://api2.amplitude.com/2/httpapi" {
			t.Errorf("URL %s", got)
		}
	})
	t.Run("ErrAPIKeyMissing", func(t *testing.T) {
		wantInvalidSettings(t, "amplitude", Config{Settings: cfg.Settings, Secrets: map[string]string{"apiKey": "  "}}, storedEvent(t, trackPayload), "settings.apiKey is not set")
	})
	t.Run("ErrEndpointInvalid", func(t *testing.T) {
		bad := Config{Settings: map[string]any{"endpoint": "ftp://api2.amplitude.com/2/httpapi"}, Secrets: cfg.Secrets}
		wantInvalidSettings(t, "amplitude", bad, storedEvent(t, trackPayload), "settings.endpoint is not an absolute http or https URL")
	})
}
