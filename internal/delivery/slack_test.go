package delivery

import (
	"fmt"
	"strings"
	"testing"
)

func TestSlack(t *testing.T) {
	rcv := newReceiver(t)
	hook := rcv.URL + "/services/T0001/B0001/abcdefghijklmnop"
	cfg := Config{Settings: map[string]any{"events": []any{}}, Secrets: map[string]string{"webhookUrl": hook}}

	post := func(t *testing.T, cfg Config, ev *Event) received {
		t.Helper()
		got := rcv.deliver(t, request(t, "slack", cfg, ev))
		if got.Method != "POST" || got.Path != "/services/T0001/B0001/abcdefghijklmnop" || got.RawQuery != "" {
			t.Errorf("request %s %s?%s, want POST /services/T0001/B0001/abcdefghijklmnop", got.Method, got.Path, got.RawQuery)
		}
		// The URL is the credential: no other.
		wantHeaders(t, got, map[string]string{"Authorization": "", "Content-Type": "application/json", "User-Agent": "Junction/1"})
		return got
	}

	t.Run("Track", func(t *testing.T) {
		got := post(t, cfg, storedEvent(t, trackPayload))
		// Scalar properties by name; coupon (null), products and shipping are left out.
		wantJSON(t, got.Body, `{"text": "user-4242 did Order Completed\n• currency: EUR\n• gift: true\n• orderId: o-1001\n• revenue: 29.99"}`)
	})
	t.Run("AnonymousAndEscaped", func(t *testing.T) {
		ev := storedEvent(t, `{"type":"track","messageId":"m-1","anonymousId":"<anon>","event":"Q&A <Opened>","properties":{"a>b":"<@U123> & co"},
			"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
		got := post(t, cfg, ev)
		wantJSON(t, got.Body, `{"text": "&lt;anon&gt; did Q&amp;A &lt;Opened&gt;\n• a&gt;b: &lt;@U123&gt; &amp; co"}`)
	})
	t.Run("AtMost20Properties", func(t *testing.T) {
		var props []string
		for i := 1; i <= 25; i++ {
			props = append(props, fmt.Sprintf(`"p%02d": %d`, i, i))
		}
		ev := storedEvent(t, `{"type":"track","messageId":"m-2","userId":"user-1","event":"Many","properties":{`+strings.Join(props, ",")+`},
			"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
		got := post(t, cfg, ev)
		if n := strings.Count(string(got.Body), "• "); n != 20 || !strings.Contains(string(got.Body), `p20: 20"`) {
			t.Errorf("%d property lines, want p01..p20: %s", n, got.Body)
		}
	})
	t.Run("EventsSetting", func(t *testing.T) {
		only := Config{Settings: map[string]any{"events": []any{"Signed Up", "Order Completed"}}, Secrets: cfg.Secrets}
		got := post(t, only, storedEvent(t, trackPayload))
		if !strings.Contains(string(got.Body), "user-4242 did Order Completed") {
			t.Errorf("body %s", got.Body)
		}
		other := Config{Settings: map[string]any{"events": []any{"Signed Up"}}, Secrets: cfg.Secrets}
		wantSkip(t, "slack", other, storedEvent(t, trackPayload))
	})
	for _, payload := range []string{pagePayload, screenPayload, identifyPayload, groupPayload, aliasPayload} {
		ev := storedEvent(t, payload)
		t.Run("Skips"+ev.Type, func(t *testing.T) { wantSkip(t, "slack", cfg, ev) })
	}
	t.Run("ErrWebhookURLMissing", func(t *testing.T) {
		wantInvalidSettings(t, "slack", Config{Settings: cfg.Settings}, storedEvent(t, trackPayload), "settings.webhookUrl is not set")
	})
	t.Run("ErrWebhookURLInvalid", func(t *testing.T) {
		bad := Config{Settings: cfg.Settings, Secrets: map[string]string{"webhookUrl": "hooks.slack.com/services/T0001/B0001/abcd"}}
		wantInvalidSettings(t, "slack", bad, storedEvent(t, trackPayload), "settings.webhookUrl is not an absolute http or https URL")
	})
}
