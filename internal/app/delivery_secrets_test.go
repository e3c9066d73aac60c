package app_test

// Secrets in delivery (issue 10): error texts masked before they are stored or logged, and the
// Webhook's header values secret from the API to the database.

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestDeliveryErrorsMasked checks that a transport error, which quotes the request's URL, keeps no
// secret in the attempt's errorMessage, the health issue, or the log: GA4's api_secret is in the
// query string, a Slack webhook URL is a secret as a whole.
func TestDeliveryErrorsMasked(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn; c.DeliveryMaxAttempts = 1 })
	e := dlvNewEnv(t, s, "dlv-masked")
	srcID, key := e.source(t, "Web")
	closed := "http://" + dlvClosedPort(t)
	const gaSecret, slackToken = "ga4-api-secret-XYZ123", "slack-secret-token-abc987"
	cases := map[string]struct {
		catalog  string
		settings map[string]any
		secret   string
	}{
		"GA4":   {"cat_google-analytics-4", map[string]any{"measurementId": "G-MASK1", "apiSecret": gaSecret, "endpoint": closed}, gaSecret},
		"Slack": {"cat_slack", map[string]any{"webhookUrl": closed + "/services/T1/B1/" + slackToken}, slackToken},
	}
	ids := map[string]string{}
	for name, c := range cases {
		p := e.mutate(t, "destinationCreate", "DestinationCreateInput", "destination { id }",
			map[string]any{"workspaceId": e.wsID, "catalogId": c.catalog, "name": name, "settings": c.settings})
		ids[name] = trkStr(p, "destination.id")
		e.connect(t, srcID, ids[name], true)
	}
	dlvTrack(t, s, key, map[string]any{"userId": "masked-1", "event": "Order Completed"})
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			a := e.waitAttempts(t, ids[name], "outcome: FAILED", 1)[0]
			msg := trkStr(a, "errorMessage")
			if a["errorType"] != "CONNECTION_REFUSED" || !strings.Contains(msg, dlvMask) || strings.Contains(msg, c.secret) {
				t.Errorf("errorMessage %q (%v), want the refusal with the secret masked", msg, a["errorType"])
			}
			raw, _ := json.Marshal(a)
			if strings.Contains(string(raw), c.secret) {
				t.Errorf("the attempt shows the secret: %s", raw)
			}
			is := e.waitIssue(t, ids[name], "CONNECTION_REFUSED", "open", func(map[string]any) bool { return true })
			if raw, _ := json.Marshal(is); strings.Contains(string(raw), c.secret) {
				t.Errorf("the health issue shows the secret: %s", raw)
			}
		})
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, `"msg":"delivery failed"`) || !strings.Contains(logs, ids["GA4"]) || !strings.Contains(logs, "CONNECTION_REFUSED") {
		t.Errorf("no log line for the failed deliveries:\n%s", logs)
	}
	for _, secret := range []string{gaSecret, slackToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %s:\n%s", secret, logs)
		}
	}
}

// TestWebhookHeadersSecret checks the Webhook's headers setting: the values are write-only (masked
// in settings, in Event Delivery and in the audit trail), encrypted at rest, kept when sent back as
// the mask; the names show; bad names and values are userErrors.
func TestWebhookHeadersSecret(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "dlv-headers")
	const apiKey, team = "hk-secret-value-1", "growth-team-7"
	p := e.pipe(t, "Keyed", map[string]any{"headers": map[string]any{"X-Api-Key": apiKey, "X-Team": team}}, nil)
	ctx := context.Background()

	t.Run("Masked", func(t *testing.T) {
		d := e.destination(t, p.DestID, "settings secretSettings { name isSet }")
		if got := trkObj(d, "settings.headers"); len(got) != 2 || got["X-Api-Key"] != dlvMask || got["X-Team"] != dlvMask {
			t.Errorf("settings.headers %v, want the names with masked values", got)
		}
		if !strings.Contains(fmtJSON(d["secretSettings"]), `{"isSet":true,"name":"headers"}`) {
			t.Errorf("secretSettings %v", d["secretSettings"])
		}
		var settings, sealed string
		if err := s.App.DB().Get(ctx, &settings, `SELECT settings FROM destinations WHERE id = ?`, p.DestID); err != nil {
			t.Fatal(err)
		}
		if err := s.App.DB().Get(ctx, &sealed, `SELECT ciphertext FROM destination_secrets WHERE destination_id = ? AND name = 'headers'`, p.DestID); err != nil {
			t.Fatalf("no sealed headers: %v", err)
		}
		if strings.Contains(settings+sealed, apiKey) || strings.Contains(settings+sealed, team) {
			t.Errorf("a header value is stored in the clear: %s / %s", settings, sealed)
		}
	})

	t.Run("Delivered", func(t *testing.T) {
		dlvTrack(t, s, p.Key, map[string]any{"userId": "hdr-1"})
		h := p.RC.waitHits(t, 1, 10*time.Second)[0]
		if h.Header.Get("X-Api-Key") != apiKey || h.Header.Get("X-Team") != team {
			t.Errorf("the receiver got %v", h.Header)
		}
		a := e.waitAttempts(t, p.DestID, "first: 1", 1)[0]
		if got := trkObj(a, "request.headers"); got["X-Api-Key"] != dlvMask || got["X-Team"] != dlvMask {
			t.Errorf("Event Delivery shows headers %v, want the values masked", got)
		}
	})

	t.Run("Update", func(t *testing.T) {
		update := func(settings map[string]any) map[string]any {
			return e.try(t, "destinationUpdate", "DestinationUpdateInput", "destination { settings }",
				map[string]any{"destinationId": p.DestID, "settings": settings})
		}
		// The mask keeps a value; a new value replaces it; a header left out goes.
		if got := egUserError(update(map[string]any{"headers": map[string]any{"X-Api-Key": dlvMask, "X-Region": "eu"}})); got != "" {
			t.Fatal(got)
		}
		// Leaving the setting out keeps it.
		if got := egUserError(update(map[string]any{"method": "PUT"})); got != "" {
			t.Fatal(got)
		}
		dlvTrack(t, s, p.Key, map[string]any{"userId": "hdr-2"})
		h := p.RC.waitHits(t, 2, 10*time.Second)[1]
		if h.Method != "PUT" || h.Header.Get("X-Api-Key") != apiKey || h.Header.Get("X-Region") != "eu" || h.Header.Get("X-Team") != "" {
			t.Errorf("after the updates the receiver got %s %v", h.Method, h.Header)
		}
		for name, c := range map[string]struct {
			headers map[string]any
			want    string
		}{
			"MaskWithoutValue": {map[string]any{"X-Unknown": dlvMask}, "settings.headers REQUIRED"},
			"BadName":          {map[string]any{"Bad Name": "v"}, "settings.headers INVALID"},
			"LineBreak":        {map[string]any{"X-Injected": "v\r\nX-Evil: 1"}, "settings.headers INVALID"},
			"NotAString":       {map[string]any{"X-Number": 1}, "settings.headers INVALID"},
		} {
			if got := egUserError(update(map[string]any{"headers": c.headers})); !strings.HasPrefix(got, c.want) {
				t.Errorf("%s: %q, want %q", name, got, c.want)
			}
		}
		// The audit trail names what changed, never a value.
		d := e.gql(t, `query($slug: String!) { workspace(slug: $slug) { auditEvents(first: 20, filter: {resourceId: "`+p.DestID+`"}) { nodes { type changes } } } }`,
			map[string]any{"slug": e.slug})
		trail := fmtJSON(trkPath(d, "workspace.auditEvents.nodes"))
		if !strings.Contains(trail, "X-Region") || !strings.Contains(trail, "secretsChanged") || strings.Contains(trail, apiKey) ||
			strings.Contains(trail, team) || strings.Contains(trail, `"eu"`) {
			t.Errorf("audit trail %s", trail)
		}
		// null clears the headers.
		if got := egUserError(update(map[string]any{"headers": nil})); got != "" {
			t.Fatal(got)
		}
		dlvTrack(t, s, p.Key, map[string]any{"userId": "hdr-3"})
		if h := p.RC.waitHits(t, 3, 10*time.Second)[2]; h.Header.Get("X-Api-Key") != "" || h.Header.Get("X-Region") != "" {
			t.Errorf("after clearing the headers the receiver got %v", h.Header)
		}
	})
}

// TestPlainHeadersSealedAtStart checks that header values stored in the clear, before they became
// secret, are sealed when the server starts, and still sent.
func TestPlainHeadersSealedAtStart(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	opts := func(c *config.Config) { c.DatabaseURL = dbURL; c.LogLevel = slog.LevelWarn }
	s1 := startServer(t, allowLoopback, opts)
	e := dlvNewEnv(t, s1, "dlv-legacy")
	p := e.pipe(t, "Legacy", nil, nil)
	const legacy = "legacy-header-value-42"
	ctx := context.Background()
	err := s1.App.DB().Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE destinations SET settings = ? WHERE id = ?`,
			`{"url":"`+p.RC.URL+`/hook","method":"POST","timeoutSeconds":10,"eventTypes":[],"headers":{"X-Api-Key":"`+legacy+`"}}`, p.DestID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.stop(t); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, allowLoopback, opts)
	e.s = s2
	var settings string
	if err := s2.App.DB().Get(ctx, &settings, `SELECT settings FROM destinations WHERE id = ?`, p.DestID); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(settings, legacy) || !strings.Contains(settings, `"X-Api-Key":"`+dlvMask+`"`) {
		t.Errorf("settings after the start: %s", settings)
	}
	if got := trkObj(e.destination(t, p.DestID, "settings"), "settings.headers"); got["X-Api-Key"] != dlvMask {
		t.Errorf("settings.headers %v", got)
	}
	dlvTrack(t, s2, p.Key, map[string]any{"userId": "legacy-1"})
	if h := p.RC.waitHits(t, 1, 10*time.Second)[0]; h.Header.Get("X-Api-Key") != legacy {
		t.Errorf("the receiver got %v", h.Header)
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
