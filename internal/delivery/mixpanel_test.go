package delivery

import (
	"encoding/base64"
	"fmt"
	"testing"
)

func TestMixpanel(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Settings: map[string]any{"endpoint": rcv.URL + "/import?strict=1"}, Secrets: map[string]string{"apiSecret": "mp-secret-9f8e7d"}}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("mp-secret-9f8e7d:"))

	for _, tc := range []struct {
		name    string
		payload string
		want    string // the body
	}{
		// The messageId is longer than Mixpanel's 36 characters: $insert_id is its hash.
		{"Track", trackPayload, fmt.Sprintf(`[{"event": "Order Completed", "properties": {
			"ip": "203.0.113.7",
			"$current_url": "https://shop.example/checkout",
			"$referrer": "https://shop.example/cart",
			"$os": "Mac OS X",
			"$os_version": "14.5",
			"utm_source": "newsletter",
			"utm_medium": "email",
			"utm_campaign": "spring",
			"orderId": "o-1001",
			"revenue": 29.99,
			"currency": "EUR",
			"coupon": null,
			"products": [{"sku": "sku-1", "price": 25.49}],
			"shipping": {"method": "express", "cost": 4.5},
			"gift": true,
			"time": %d,
			"distinct_id": "user-4242",
			"$user_id": "user-4242",
			"$device_id": "anon-5e1f2c",
			"$insert_id": "63d0fac174cce38939d00533521b943e"}}]`, unixMilli("2026-03-01T12:00:00.123Z"))},
		{"PageNamed", pagePayload, fmt.Sprintf(`[{"event": "Viewed Docs Pricing Page", "properties": {
			"ip": "203.0.113.7",
			"$current_url": "https://shop.example/docs/pricing?ref=nav",
			"$referrer": "https://search.example/",
			"name": "Pricing",
			"category": "Docs",
			"url": "https://shop.example/docs/pricing?ref=nav",
			"path": "/docs/pricing",
			"title": "Pricing | Shop",
			"referrer": "https://search.example/",
			"time": %d,
			"distinct_id": "anon-5e1f2c",
			"$device_id": "anon-5e1f2c",
			"$insert_id": "api-0f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c"}}]`, unixMilli("2026-03-01T12:05:00Z"))},
		{"PageUnnamed", unnamedPagePayload, fmt.Sprintf(`[{"event": "Loaded a Page", "properties": {
			"$current_url": "https://shop.example/",
			"url": "https://shop.example/",
			"time": %d,
			"distinct_id": "user-4242",
			"$user_id": "user-4242",
			"$insert_id": "api-1f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c"}}]`, unixMilli("2026-03-01T12:06:00Z"))},
		{"ScreenNamed", screenPayload, fmt.Sprintf(`[{"event": "Viewed Home Screen", "properties": {
			"ip": "198.51.100.23",
			"$os": "iOS",
			"$os_version": "17.4",
			"$app_version_string": "3.2.1",
			"$manufacturer": "Apple",
			"$model": "iPhone15,2",
			"$carrier": "Orange",
			"tab": "feed",
			"time": %d,
			"distinct_id": "user-4242",
			"$user_id": "user-4242",
			"$device_id": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D",
			"$insert_id": "8d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f"}}]`, unixMilli("2026-03-01T12:10:00.5Z"))},
		{"ScreenUnnamed", unnamedScreenPayload, fmt.Sprintf(`[{"event": "Loaded a Screen", "properties": {
			"time": %d,
			"distinct_id": "anon-5e1f2c",
			"$device_id": "anon-5e1f2c",
			"$insert_id": "9d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f"}}]`, unixMilli("2026-03-01T12:11:00Z"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rcv.deliver(t, request(t, "mixpanel", cfg, storedEvent(t, tc.payload)))
			if got.Method != "POST" || got.Path != "/import" || got.RawQuery != "strict=1" {
				t.Errorf("request %s %s?%s, want POST /import?strict=1", got.Method, got.Path, got.RawQuery)
			}
			wantHeaders(t, got, map[string]string{"Authorization": wantAuth, "Content-Type": "application/json", "User-Agent": "Junction/1"})
			wantJSON(t, got.Body, tc.want)
		})
	}

	for _, payload := range []string{identifyPayload, groupPayload, aliasPayload} {
		ev := storedEvent(t, payload)
		t.Run("Skips"+ev.Type, func(t *testing.T) { wantSkip(t, "mixpanel", cfg, ev) })
	}
	t.Run("DefaultEndpoint", func(t *testing.T) {
		req := request(t, "mixpanel", Config{Secrets: cfg.Secrets}, storedEvent(t, trackPayload))
		if got := req.URL.String(); got != "https://api.mixpanel.com/import?strict=1" {
			t.Errorf("URL %s", got)
		}
	})
	t.Run("ErrAPISecretMissing", func(t *testing.T) {
		wantInvalidSettings(t, "mixpanel", Config{Settings: cfg.Settings}, storedEvent(t, trackPayload), "settings.apiSecret is not set")
	})
	t.Run("ErrEndpointInvalid", func(t *testing.T) {
		bad := Config{Settings: map[string]any{"endpoint": "/import?strict=1"}, Secrets: cfg.Secrets}
		wantInvalidSettings(t, "mixpanel", bad, storedEvent(t, trackPayload), "settings.endpoint is not an absolute http or https URL")
	})
}

func TestMixpanelInsertID(t *testing.T) {
	for _, tc := range []struct{ messageID, want string }{
		{"8d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f", "8d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f"}, // 36: kept
		{"m-1", "m-1"},
		{"ajs-next-1772366402123-6f1c4d1e-7f3b-4f0e-9a55-2d0c1b3a4e5f", "63d0fac174cce38939d00533521b943e"}, // too long
		{"evt_0000000000000000000001", "d126734221e8ec2525c0f4f4f51c5f45"},                                  // underscore
	} {
		if got := mixpanelInsertID(tc.messageID); got != tc.want {
			t.Errorf("mixpanelInsertID(%q) = %q, want %q", tc.messageID, got, tc.want)
		}
	}
}
