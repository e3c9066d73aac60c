package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/source"
)

// Cloud-app sources through the real server: sources made over GraphQL with a signing secret,
// webhooks POSTed to their inbound URLs signed as each vendor signs them, and what was stored,
// refused and counted read back through the debugger, ingest figures and Health.

const caSourceFields = `id type category settings secretSettings { name isSet } webhookPath viewerCanUpdate`

// caSource creates a cloud-app source with settings and returns its id.
func caSource(tb testing.TB, c itClient, wsID, slug string, settings map[string]any) string {
	tb.Helper()
	d := c.data(tb, `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { `+caSourceFields+` } userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_" + slug, "name": slug + " " + itRandom(tb)[:6], "settings": settings}})
	id := itStr(d, "sourceCreate.source.id")
	if id == "" {
		tb.Fatalf("sourceCreate %s: %s", slug, itJSON(d))
	}
	return id
}

// caPost POSTs a webhook body to a source's inbound URL with headers (name/value pairs).
func caPost(tb testing.TB, s *server, sourceID, body string, headers ...string) trkResp {
	tb.Helper()
	return trkSend(tb, s, "/v1/webhooks/"+sourceID, body, headers...)
}

func caMAC(secret string, parts ...string) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// caStripeSig is the Stripe-Signature header Stripe sends for body at t.
func caStripeSig(secret, body string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(caMAC(secret, ts, ".", body)) + ",v0=" + hex.EncodeToString(caMAC("old", ts, ".", body))
}

// caEvents reads a source's debugger list (newest first).
func caEvents(tb testing.TB, c itClient, sourceID, args string) []any {
	tb.Helper()
	if args != "" {
		args = "(" + args + ")"
	}
	n := c.node(tb, sourceID, `... on Source { recentEvents`+args+` { totalCount nodes { type messageId event userId anonymousId status discardReason discardMessage payload timestamp } } }`)
	return itList(n, "recentEvents.nodes")
}

func caWantStatus(tb testing.TB, r trkResp, status int, code string) {
	tb.Helper()
	if r.Status != status || (code != "" && r.Body["code"] != code) {
		tb.Fatalf("answer %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
}

const caStripeCharge = `{
  "id": "evt_3QHZ0fLkdIwHu7ix0ZP0Uxc1",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1730720000,
  "data": {
    "object": {
      "id": "ch_3QHZ0fLkdIwHu7ix0Q7A9Xyz",
      "object": "charge",
      "amount": 2000,
      "amount_captured": 2000,
      "currency": "usd",
      "customer": "cus_R9mP1pQ2xYz",
      "description": "Team plan",
      "paid": true,
      "receipt_email": "jane@example.com",
      "billing_details": {"email": "jane@example.com", "name": "Jane Doe", "address": {"country": "US"}},
      "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}, "type": "card"},
      "status": "succeeded"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_8QhYc1Dk2pPzvl", "idempotency_key": "b5e2a4c0"},
  "type": "charge.succeeded"
}`

func TestCloudAppSources(t *testing.T) {
	s := startServer(t)
	owner, _, wsID := itOwner(t, s, "ca-owner@example.com", "cloudapps")

	t.Run("SigningSecretIsWriteOnly", func(t *testing.T) {
		const plain = "whsec_writeonly_5f3a9c"
		id := caSource(t, owner, wsID, "stripe", map[string]any{"signingSecret": plain})
		n := owner.node(t, id, `... on Source { `+caSourceFields+` }`)
		if itStr(n, "type") != "CLOUD_APP" || itStr(n, "category") != "Payments" || itStr(n, "webhookPath") != "/v1/webhooks/"+id {
			t.Errorf("source %s", itJSON(n))
		}
		if itStr(n, "settings.signingSecret") != source.Mask || itJSON(itList(n, "secretSettings")) != `[{"isSet":true,"name":"signingSecret"}]` {
			t.Errorf("settings %s, secretSettings %s", itJSON(n["settings"]), itJSON(n["secretSettings"]))
		}
		// Nowhere in the database in the clear: not in the source's row, nor the audit trail.
		var rows []string
		if err := s.App.DB().Select(context.Background(), &rows, `SELECT settings FROM sources WHERE id = ?
			UNION ALL SELECT ciphertext FROM source_secrets WHERE source_id = ? UNION ALL SELECT COALESCE(changes, '') FROM audit_events WHERE resource_id = ?`, id, id, id); err != nil {
			t.Fatal(err)
		}
		if len(rows) < 3 || strings.Contains(strings.Join(rows, " "), plain) {
			t.Errorf("the secret is stored in the clear, or not at all: %q", rows)
		}
		// The mask (a settings object read back and sent again) and leaving it out keep it.
		for _, settings := range []map[string]any{{"signingSecret": source.Mask}, {}} {
			p := owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": id, "settings": settings})
			if itStr(p, "source.settings.signingSecret") != source.Mask {
				t.Errorf("update with %v: %s", settings, itJSON(p))
			}
		}
		body := `{"id":"evt_keep","type":"customer.created","created":1730720000,"data":{"object":{"id":"cus_keep","object":"customer","email":"k@example.com"}}}`
		caWantStatus(t, caPost(t, s, id, body, "Stripe-Signature", caStripeSig(plain, body, time.Now())), 200, "")
		// null clears it: every webhook is refused until a new one is set.
		owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": id, "settings": map[string]any{"signingSecret": nil}})
		if n := owner.node(t, id, `... on Source { settings secretSettings { name isSet } }`); itAt(n, "settings.signingSecret") != nil ||
			itJSON(itList(n, "secretSettings")) != `[{"isSet":false,"name":"signingSecret"}]` {
			t.Errorf("cleared: %s", itJSON(n))
		}
		r := caPost(t, s, id, body, "Stripe-Signature", caStripeSig(plain, body, time.Now()))
		caWantStatus(t, r, 401, "BAD_SIGNATURE")
		if !strings.Contains(r.Raw, "no signing secret") {
			t.Errorf("refusal without a secret: %s", r.Raw)
		}
		errs := owner.userErrors(t, "sourceUpdate", map[string]any{"sourceId": id, "settings": map[string]any{"signingSecret": source.Mask}})
		itWantUserError(t, errs, "settings.signingSecret", "REQUIRED", "no stored value")
		// A library source has no inbound URL.
		js := itSource(t, owner, wsID, "cat_javascript", "Site")
		if n := owner.node(t, itStr(js, "id"), `... on Source { webhookPath secretSettings { name } }`); itAt(n, "webhookPath") != nil || len(itList(n, "secretSettings")) != 0 {
			t.Errorf("javascript source: %s", itJSON(n))
		}
		caWantStatus(t, caPost(t, s, itStr(js, "id"), body), 404, "NOT_FOUND")
		caWantStatus(t, caPost(t, s, "src_nope", body), 404, "NOT_FOUND")
	})

	t.Run("Stripe", func(t *testing.T) {
		const secret = "whsec_test_8d1f0e2b7c"
		id := caSource(t, owner, wsID, "stripe", map[string]any{"signingSecret": secret})
		r := caPost(t, s, id, caStripeCharge, "Stripe-Signature", caStripeSig(secret, caStripeCharge, time.Now()), "User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
		caWantStatus(t, r, 200, "")
		evs := caEvents(t, owner, id, "")
		if len(evs) != 2 {
			t.Fatalf("%d events, want a track and an identify: %s", len(evs), itJSON(evs))
		}
		byType := map[string]any{}
		for _, e := range evs {
			byType[itStr(e, "type")] = e
		}
		tr, id1 := byType["TRACK"], byType["IDENTIFY"]
		if itStr(tr, "event") != "Charge Succeeded" || itStr(tr, "userId") != "cus_R9mP1pQ2xYz" || itStr(tr, "messageId") != "evt_3QHZ0fLkdIwHu7ix0ZP0Uxc1" ||
			itStr(tr, "status") != "ACCEPTED" || itNum(tr, "payload.properties.amount") != 2000 || itStr(tr, "payload.properties.currency") != "usd" ||
			!strings.HasPrefix(itStr(tr, "timestamp"), "2024-11-04T11:33:20") {
			t.Errorf("track %s", itJSON(tr))
		}
		if itStr(id1, "userId") != "cus_R9mP1pQ2xYz" || itStr(id1, "payload.traits.email") != "jane@example.com" || itStr(id1, "payload.traits.name") != "Jane Doe" {
			t.Errorf("identify %s", itJSON(id1))
		}
		// Stripe retries until it hears 2xx: the retry is acknowledged and stored once.
		caWantStatus(t, caPost(t, s, id, caStripeCharge, "Stripe-Signature", caStripeSig(secret, caStripeCharge, time.Now())), 200, "")
		if evs := caEvents(t, owner, id, ""); len(evs) != 2 {
			t.Errorf("after a retry %d events, want 2", len(evs))
		}
		st := owner.node(t, id, `... on Source { ingestStats { lastHour { received accepted discarded byReason { reason count } } } }`)
		if got := itJSON(itAt(st, "ingestStats.lastHour")); got != `{"accepted":2,"byReason":[],"discarded":0,"received":2}` {
			t.Errorf("ingest figures after a retry: %s", got)
		}

		// Badly signed: another secret, a changed body, a stale timestamp, no header.
		bad := []struct{ name, body, sig, words string }{
			{"WrongSecret", caStripeCharge, caStripeSig("whsec_other", caStripeCharge, time.Now()), "does not match"},
			{"ChangedBody", strings.Replace(caStripeCharge, "2000", "1", 1), caStripeSig(secret, caStripeCharge, time.Now()), "does not match"},
			{"Stale", caStripeCharge, caStripeSig(secret, caStripeCharge, time.Now().Add(-6*time.Minute)), "5 minutes"},
			{"Missing", caStripeCharge, "", "missing"},
		}
		for _, b := range bad {
			r := caPost(t, s, id, b.body, "Stripe-Signature", b.sig)
			caWantStatus(t, r, 401, "BAD_SIGNATURE")
			if !strings.Contains(r.Raw, b.words) {
				t.Errorf("%s: %s does not say %q", b.name, r.Raw, b.words)
			}
		}
		refused := caEvents(t, owner, id, "status: DISCARDED")
		if len(refused) != len(bad) {
			t.Fatalf("%d refused webhooks in the debugger, want %d: %s", len(refused), len(bad), itJSON(refused))
		}
		for _, e := range refused {
			if itStr(e, "discardReason") != "BAD_SIGNATURE" || itStr(e, "discardMessage") == "" || itStr(e, "event") != "Webhook Refused" ||
				strings.Contains(itJSON(e), "cus_R9mP1pQ2xYz") {
				t.Errorf("refused webhook recorded as %s", itJSON(e))
			}
		}
		st = owner.node(t, id, `... on Source { ingestStats { lastHour { accepted discarded byReason { reason count } } } }`)
		if got := itJSON(itAt(st, "ingestStats.lastHour")); got != `{"accepted":2,"byReason":[{"count":4,"reason":"BAD_SIGNATURE"}],"discarded":4}` {
			t.Errorf("ingest figures: %s", got)
		}
		// Health gathers the refusals into an issue of the source.
		waitFor(t, "a BAD_SIGNATURE health issue", func() bool {
			w := owner.workspace(t, "cloudapps", `healthIssues { nodes { targetId errorType count sampleEvent { discardReason } } }`)
			for _, is := range itList(w, "healthIssues.nodes") {
				if itStr(is, "targetId") == id && itStr(is, "errorType") == "BAD_SIGNATURE" && itNum(is, "count") == 4 &&
					itStr(is, "sampleEvent.discardReason") == "BAD_SIGNATURE" {
					return true
				}
			}
			return false
		})
	})

	t.Run("GitHub", func(t *testing.T) {
		const secret = "5b6c7d8e9fa0b1c2d3e4f5061728394a"
		id := caSource(t, owner, wsID, "github", map[string]any{"signingSecret": secret})
		body := `{"action":"opened","number":42,"pull_request":{"url":"https://api.github.com/repos/octo-org/hello/pulls/42","id":2150000001,` +
			`"number":42,"state":"open","title":"Add webhooks","user":{"login":"octocat","id":1},"draft":false,"additions":120,"deletions":8},` +
			`"repository":{"id":1296269,"name":"hello","full_name":"octo-org/hello","private":false,"owner":{"login":"octo-org","id":9}},` +
			`"organization":{"login":"octo-org","id":9},"sender":{"login":"octocat","id":1,"type":"User"}}`
		sig := "sha256=" + hex.EncodeToString(caMAC(secret, body))
		headers := []string{"X-GitHub-Event", "pull_request", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			"X-GitHub-Hook-ID", "292430182", "User-Agent", "GitHub-Hookshot/044aadd", "X-Hub-Signature-256", sig}
		caWantStatus(t, caPost(t, s, id, body, headers...), 200, "")
		caWantStatus(t, caPost(t, s, id, body, headers...), 200, "") // a redelivery
		evs := caEvents(t, owner, id, "")
		if len(evs) != 1 {
			t.Fatalf("%d events after a redelivery, want 1", len(evs))
		}
		e := evs[0]
		if itStr(e, "event") != "Pull Request Opened" || itStr(e, "userId") != "octocat" || itStr(e, "messageId") != "72d3162e-cc78-11e3-81ab-4c9367dc0958" ||
			itStr(e, "payload.properties.repository") != "octo-org/hello" || itStr(e, "payload.properties.pull_request.title") != "Add webhooks" {
			t.Errorf("event %s", itJSON(e))
		}
		bad := append(append([]string{}, headers[:len(headers)-1]...), "sha256="+hex.EncodeToString(caMAC("other", body)))
		caWantStatus(t, caPost(t, s, id, body, bad...), 401, "BAD_SIGNATURE")
		caWantStatus(t, caPost(t, s, id, body, append(headers[:len(headers)-2:len(headers)-2], "X-Hub-Signature", "sha1=00")...), 401, "BAD_SIGNATURE")
		if d := caEvents(t, owner, id, "status: DISCARDED"); len(d) != 2 || itStr(d[0], "discardReason") != "BAD_SIGNATURE" {
			t.Errorf("refused: %s", itJSON(d))
		}
	})

	t.Run("Shopify", func(t *testing.T) {
		const secret = "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"
		id := caSource(t, owner, wsID, "shopify", map[string]any{"signingSecret": secret})
		body := `{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@example.com",` +
			`"created_at":"2024-11-04T09:12:01-05:00","currency":"USD","total_price":"403.00","financial_status":"paid","name":"#9999",` +
			`"line_items":[{"id":866550311766439020,"title":"IPod Nano - 8GB","price":"199.00","quantity":1,"sku":"IPOD2008PINK"}],` +
			`"customer":{"id":115310627314723954,"email":"john@example.com","first_name":"John","last_name":"Smith","phone":null}}`
		headers := []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Shop-Domain", "example.myshopify.com",
			"X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5",
			"X-Shopify-Triggered-At", "2024-11-04T14:12:02.374548Z", "X-Shopify-API-Version", "2024-10",
			"X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(caMAC(secret, body))}
		caWantStatus(t, caPost(t, s, id, body, headers...), 200, "")
		caWantStatus(t, caPost(t, s, id, body, headers...), 200, "")
		evs := caEvents(t, owner, id, "")
		if len(evs) != 2 {
			t.Fatalf("%d events, want a track and an identify once: %s", len(evs), itJSON(evs))
		}
		for _, e := range evs {
			switch itStr(e, "type") {
			case "TRACK":
				if itStr(e, "event") != "Order Created" || itStr(e, "userId") != "115310627314723954" || itStr(e, "payload.properties.total_price") != "403.00" ||
					itStr(e, "messageId") != "98880550-7158-44d4-b7cd-2c97c8a091b5" || itStr(e, "payload.properties.shop") != "example.myshopify.com" ||
					!strings.HasPrefix(itStr(e, "timestamp"), "2024-11-04T14:12:02") {
					t.Errorf("track %s", itJSON(e))
				}
			case "IDENTIFY":
				if itStr(e, "userId") != "115310627314723954" || itStr(e, "payload.traits.email") != "john@example.com" || itStr(e, "payload.traits.lastName") != "Smith" {
					t.Errorf("identify %s", itJSON(e))
				}
			}
		}
		bad := append(headers[:len(headers)-1:len(headers)-1], base64.StdEncoding.EncodeToString(caMAC(secret, body+" ")))
		caWantStatus(t, caPost(t, s, id, body, bad...), 401, "BAD_SIGNATURE")
		if d := caEvents(t, owner, id, "status: DISCARDED"); len(d) != 1 || itStr(d[0], "discardReason") != "BAD_SIGNATURE" {
			t.Errorf("refused: %s", itJSON(d))
		}
	})

	t.Run("HubSpot", func(t *testing.T) {
		const secret = "b7a0f5e1-3c2d-4e8f-9a6b-0c1d2e3f4a5b"
		id := caSource(t, owner, wsID, "hubspot", map[string]any{"signingSecret": secret})
		body := `[{"eventId":1714318453,"subscriptionId":2591245,"portalId":62515,"appId":1160452,"occurredAt":1730720000000,` +
			`"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeFlag":"CREATED","changeSource":"CRM"},` +
			`{"eventId":1714318454,"subscriptionId":2591246,"portalId":62515,"appId":1160452,"occurredAt":1730720001000,` +
			`"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,"propertyName":"email","propertyValue":"ada@example.com","changeSource":"CRM"},` +
			`{"eventId":1714318455,"subscriptionId":2591247,"portalId":62515,"appId":1160452,"occurredAt":1730720002000,` +
			`"subscriptionType":"deal.creation","attemptNumber":0,"objectId":987,"changeFlag":"CREATED","changeSource":"CRM"}]`
		sign := func(secret string, at time.Time) []string {
			ts := strconv.FormatInt(at.UnixMilli(), 10)
			// HubSpot signs the URL it calls; the test server is reached over plain http.
			u := s.URL + "/v1/webhooks/" + id
			return []string{"X-HubSpot-Request-Timestamp", ts, "User-Agent", "HubSpot Webhooks",
				"X-HubSpot-Signature-v3", base64.StdEncoding.EncodeToString(caMAC(secret, http.MethodPost, u, body, ts))}
		}
		caWantStatus(t, caPost(t, s, id, body, sign(secret, time.Now())...), 200, "")
		caWantStatus(t, caPost(t, s, id, body, sign(secret, time.Now())...), 200, "") // attemptNumber 1
		evs := caEvents(t, owner, id, "")
		if len(evs) != 4 {
			t.Fatalf("%d events, want 3 tracks and an identify once: %s", len(evs), itJSON(evs))
		}
		names := map[string]string{}
		for _, e := range evs {
			names[itStr(e, "messageId")] = itStr(e, "type") + " " + itStr(e, "event") + " " + itStr(e, "userId") + itStr(e, "anonymousId")
		}
		want := map[string]string{"1714318453": "TRACK Contact Created 123", "1714318454": "TRACK Contact Property Changed 123",
			"1714318454-identify": "IDENTIFY  123", "1714318455": "TRACK Deal Created hubspot-portal-62515"}
		if itJSON(names) != itJSON(want) {
			t.Errorf("events %v, want %v", names, want)
		}
		caWantStatus(t, caPost(t, s, id, body, sign("wrong", time.Now())...), 401, "BAD_SIGNATURE")
		r := caPost(t, s, id, body, sign(secret, time.Now().Add(-10*time.Minute))...)
		caWantStatus(t, r, 401, "BAD_SIGNATURE")
		if !strings.Contains(r.Raw, "5 minutes") {
			t.Errorf("stale: %s", r.Raw)
		}
		if d := caEvents(t, owner, id, "status: DISCARDED"); len(d) != 2 {
			t.Errorf("refused: %s", itJSON(d))
		}
	})

	t.Run("GenericWebhookWithMapping", func(t *testing.T) {
		const secret = "c0ffee"
		id := caSource(t, owner, wsID, "incoming-webhook", map[string]any{"signingSecret": secret,
			"eventField": "event.name", "userIdField": "data.account.owner", "messageIdField": "event.id", "propertiesField": "data"})
		body := `{"event":{"id":"dlv_001","name":"Invoice Paid"},"data":{"account":{"owner":"u-42"},"amount":30,"currency":"EUR"}}`
		sign := func(secret, body string, at time.Time) []string {
			ts := strconv.FormatInt(at.Unix(), 10)
			return []string{"X-Webhook-Signature", "t=" + ts + ",v1=" + hex.EncodeToString(caMAC(secret, ts, ".", body))}
		}
		caWantStatus(t, caPost(t, s, id, body, sign(secret, body, time.Now())...), 200, "")
		caWantStatus(t, caPost(t, s, id, body, sign(secret, body, time.Now())...), 200, "")
		// Without the fields the mapping names: the default name, the source as the sender, and
		// a digest of the body as the messageId, so that its retry is stored once too.
		plain := `[{"amount":5},{"amount":6}]`
		caWantStatus(t, caPost(t, s, id, plain, sign(secret, plain, time.Now())...), 200, "")
		caWantStatus(t, caPost(t, s, id, plain, sign(secret, plain, time.Now())...), 200, "")
		evs := caEvents(t, owner, id, "")
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3: %s", len(evs), itJSON(evs))
		}
		got := map[string]string{}
		for _, e := range evs {
			got[itStr(e, "event")+" "+itStr(e, "userId")+itStr(e, "anonymousId")] = itJSON(itAt(e, "payload.properties"))
		}
		if got["Invoice Paid u-42"] != `{"account":{"owner":"u-42"},"amount":30,"currency":"EUR"}` || len(got) != 2 || got["Webhook Received "+id] == "" {
			t.Errorf("events %v", got)
		}
		caWantStatus(t, caPost(t, s, id, body, sign("nope", body, time.Now())...), 401, "BAD_SIGNATURE")
		caWantStatus(t, caPost(t, s, id, "not json", sign(secret, "not json", time.Now())...), 400, "INVALID_PAYLOAD")
		r := trkDo(t, s, http.MethodGet, "/v1/webhooks/"+id, nil)
		caWantStatus(t, r, 405, "METHOD_NOT_ALLOWED")
		big := `{"pad":"` + strings.Repeat("x", 1<<20) + `"}`
		caWantStatus(t, caPost(t, s, id, big, sign(secret, big, time.Now())...), 413, "REQUEST_TOO_LARGE")
	})

	t.Run("DisabledSourceDiscards", func(t *testing.T) {
		const secret = "whsec_disabled"
		id := caSource(t, owner, wsID, "stripe", map[string]any{"signingSecret": secret})
		owner.mutate(t, "sourceDisable", map[string]any{"sourceId": id})
		caWantStatus(t, caPost(t, s, id, caStripeCharge, "Stripe-Signature", caStripeSig(secret, caStripeCharge, time.Now())), 200, "")
		if d := caEvents(t, owner, id, "status: DISCARDED"); len(d) != 2 || itStr(d[0], "discardReason") != "SOURCE_DISABLED" {
			t.Errorf("events to a disabled source: %s", itJSON(d))
		}
	})
}

// TestCloudAppIsolation: a signature is checked against the secret of the source named in the
// URL, and another workspace's members neither read nor configure a cloud-app source.
func TestCloudAppIsolation(t *testing.T) {
	s := startServer(t)
	ownerA, _, wsA := itOwner(t, s, "ca-a@example.com", "ca-a")
	ownerB, _, wsB := itOwner(t, s, "ca-b@example.com", "ca-b")
	reader, _, _ := itMember(t, s, ownerA, wsA, "ca-reader@example.com", "Reader", "MEMBER")
	const secretA, secretB = "whsec_aaaaaaaa", "whsec_bbbbbbbb"
	srcA := caSource(t, ownerA, wsA, "stripe", map[string]any{"signingSecret": secretA})
	srcA2 := caSource(t, ownerA, wsA, "stripe", map[string]any{"signingSecret": secretB})
	srcB := caSource(t, ownerB, wsB, "stripe", map[string]any{"signingSecret": secretB})

	// Signed with A's secret, sent to sources with other secrets, in A's workspace and in B's.
	for _, target := range []string{srcA2, srcB} {
		caWantStatus(t, caPost(t, s, target, caStripeCharge, "Stripe-Signature", caStripeSig(secretA, caStripeCharge, time.Now())), 401, "BAD_SIGNATURE")
	}
	caWantStatus(t, caPost(t, s, srcA, caStripeCharge, "Stripe-Signature", caStripeSig(secretA, caStripeCharge, time.Now())), 200, "")
	if n := len(caEvents(t, ownerB, srcB, "status: ACCEPTED")); n != 0 {
		t.Errorf("B's source accepted %d events signed with A's secret", n)
	}
	if n := len(caEvents(t, ownerA, srcA, "status: ACCEPTED")); n != 2 {
		t.Errorf("A's source has %d accepted events, want 2", n)
	}

	// B's owner does not learn of A's source, nor change it.
	if n := ownerB.node(t, srcA, `... on Source { settings }`); n != nil {
		t.Errorf("B reads A's source: %s", itJSON(n))
	}
	ownerB.refused(t, "NOT_FOUND", "sourceUpdate", map[string]any{"sourceId": srcA, "settings": map[string]any{"signingSecret": "whsec_mine"}})
	// A's read-only member sees the mask, and may not set the secret.
	if n := reader.node(t, srcA, `... on Source { settings secretSettings { isSet } viewerCanUpdate }`); itStr(n, "settings.signingSecret") != source.Mask ||
		itBool(n, "viewerCanUpdate") || strings.Contains(itJSON(n), secretA) {
		t.Errorf("member reads %s", itJSON(n))
	}
	reader.refused(t, "FORBIDDEN", "sourceUpdate", map[string]any{"sourceId": srcA, "settings": map[string]any{"signingSecret": "whsec_mine"}})
	// The secret is unchanged: A's signature still verifies, the intruders' does not.
	caWantStatus(t, caPost(t, s, srcA, caStripeCharge, "Stripe-Signature", caStripeSig("whsec_mine", caStripeCharge, time.Now())), 401, "BAD_SIGNATURE")
	caWantStatus(t, caPost(t, s, srcA, caStripeCharge, "Stripe-Signature", caStripeSig(secretA, caStripeCharge, time.Now())), 200, "")

	// A deleted source's inbound URL is gone.
	ownerA.mutate(t, "sourceDelete", map[string]any{"sourceId": srcA})
	caWantStatus(t, caPost(t, s, srcA, caStripeCharge, "Stripe-Signature", caStripeSig(secretA, caStripeCharge, time.Now())), 404, "NOT_FOUND")
}

// TestCloudAppDelivery: a webhook's events reach the source's destinations as any other event
// does, and a vendor's retry is not delivered twice.
func TestCloudAppDelivery(t *testing.T) {
	s := startServer(t, allowLoopback)
	owner, _, wsID := itOwner(t, s, "ca-dlv@example.com", "ca-dlv")
	const secret = "whsec_delivery"
	src := caSource(t, owner, wsID, "stripe", map[string]any{"signingSecret": secret})
	rc := dlvNewReceiver(t, nil)
	dst := itDestination(t, owner, wsID, "Hook", map[string]any{"url": rc.URL + "/stripe"})
	itConnect(t, owner, src, itStr(dst, "id"))
	for range 2 {
		caWantStatus(t, caPost(t, s, src, caStripeCharge, "Stripe-Signature", caStripeSig(secret, caStripeCharge, time.Now())), 200, "")
	}
	hits := rc.waitHits(t, 2, 10*time.Second)
	got := map[string]string{}
	for _, h := range hits {
		got[h.MessageID] = h.UserID
	}
	if len(got) != 2 || got["evt_3QHZ0fLkdIwHu7ix0ZP0Uxc1"] != "cus_R9mP1pQ2xYz" || got["evt_3QHZ0fLkdIwHu7ix0ZP0Uxc1-identify"] != "cus_R9mP1pQ2xYz" {
		t.Errorf("delivered %v", got)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rc.Count(); n != 2 {
		t.Errorf("%d deliveries, want 2 (the retry is not delivered again)", n)
	}
}
