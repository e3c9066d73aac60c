package app_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// receiver records the requests a connector sends to it.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path, query string
	header      http.Header
	body        []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.URL.Path, req.URL.RawQuery, req.Header.Clone(), b})
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// events counts the events the receiver got, in its vendor's format: vendors that take batches
// get several in one request.
func (r *receiver) events(slug string) int {
	n := 0
	for _, req := range r.all() {
		var body struct {
			Batch  []any `json:"batch"`  // Segment
			Events []any `json:"events"` // Amplitude, GA4
		}
		var list []any // Mixpanel
		switch slug {
		case "segment", "amplitude", "google-analytics-4":
			_ = json.Unmarshal(req.body, &body)
			n += len(body.Batch) + len(body.Events)
		case "mixpanel":
			_ = json.Unmarshal(req.body, &list)
			n += len(list)
		default:
			n++
		}
	}
	return n
}

// TestConnectorsEndToEnd sends events with the real @segment/analytics-node client and checks that
// each connector delivers them to a local receiver in its vendor's format: the library's events go
// through the tracking API, the event log, a delivery lane per destination, and out.
func TestConnectorsEndToEnd(t *testing.T) {
	s := startServer(t, allowLoopback, func(c *config.Config) { c.DeliveryBackoff = 50 * time.Millisecond })
	src := newTrackingSource(t, s, "fanout")
	wsID := mustData(t, s.post(t, `{ workspace(slug: "fanout") { id } }`, nil, src.auth...))["workspace"].(map[string]any)["id"].(string)

	recv := map[string]*receiver{}
	settings := map[string]func(url string) map[string]any{
		"webhook": func(u string) map[string]any {
			return map[string]any{"url": u + "/hook", "sharedSecret": "hook-secret-123"}
		},
		"segment": func(u string) map[string]any { return map[string]any{"endpoint": u, "writeKey": "forward-key"} },
		"amplitude": func(u string) map[string]any {
			return map[string]any{"endpoint": u + "/2/httpapi", "apiKey": "amp-key"}
		},
		"mixpanel": func(u string) map[string]any {
			return map[string]any{"endpoint": u + "/import?strict=1", "apiSecret": "mp-secret"}
		},
		"google-analytics-4": func(u string) map[string]any {
			return map[string]any{"endpoint": u, "measurementId": "G-TEST", "apiSecret": "ga-secret"}
		},
		"slack": func(u string) map[string]any { return map[string]any{"webhookUrl": u + "/services/T/B/X"} },
	}
	edges := map[string]string{} // connection id -> slug
	for slug, set := range settings {
		recv[slug] = newReceiver(t)
		d := mustData(t, s.post(t, `mutation($i: DestinationCreateInput!) { destinationCreate(input: $i) { destination { id } userErrors { field message } } }`,
			map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_" + slug, "name": slug, "settings": set(recv[slug].srv.URL)}}, src.auth...))
		dst, _ := d["destinationCreate"].(map[string]any)["destination"].(map[string]any)
		if dst == nil {
			t.Fatalf("%s: %v", slug, d)
		}
		c := mustData(t, s.post(t, `mutation($s: ID!, $d: ID!) { connectionCreate(input: {sourceId: $s, destinationId: $d}) { connection { id } } }`,
			map[string]any{"s": src.id, "d": dst["id"]}, src.auth...))
		edges[c["connectionCreate"].(map[string]any)["connection"].(map[string]any)["id"].(string)] = slug
	}

	run := src.send(t, 0) // track x51, identify, page, screen, group, alias
	tracks := 0
	for _, e := range run.Events {
		if e["type"] == "track" {
			tracks++
		}
	}
	// What each vendor takes: the webhook and the forward everything, Amplitude all but alias and
	// (without a group type) group, Mixpanel and Slack's default track/page/screen or track only, GA4
	// track and page.
	want := map[string]int{"webhook": 56, "segment": 56, "amplitude": tracks + 3, "mixpanel": tracks + 2, "google-analytics-4": tracks + 1, "slack": tracks}
	deadline := time.Now().Add(20 * time.Second)
	for slug, n := range want {
		for recv[slug].events(slug) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := recv[slug].events(slug); got != n {
			t.Errorf("%s received %d events, want %d", slug, got, n)
		}
	}

	orderTrack := map[string]any{}
	for _, e := range run.Events {
		if e["event"] == "Order Completed" {
			orderTrack = e
		}
	}
	msgID, _ := orderTrack["messageId"].(string)
	find := func(slug string, match func(recorded) bool) *recorded {
		for _, r := range recv[slug].all() {
			if match(r) {
				return &r
			}
		}
		t.Errorf("%s: no request for the Order Completed track", slug)
		return nil
	}
	has := func(r recorded, s string) bool { return strings.Contains(string(r.body), s) }

	t.Run("Webhook", func(t *testing.T) {
		r := find("webhook", func(r recorded) bool { return has(r, msgID) })
		if r == nil {
			return
		}
		mac := hmac.New(sha256.New, []byte("hook-secret-123"))
		mac.Write(r.body)
		if r.header.Get("X-Signature") != hex.EncodeToString(mac.Sum(nil)) || !strings.HasSuffix(r.header.Get("Idempotency-Key"), ":"+destinationOf(t, s, src, "webhook")) {
			t.Errorf("signature or idempotency key wrong: %v", r.header)
		}
		var body map[string]any
		_ = json.Unmarshal(r.body, &body)
		if body["event"] != "Order Completed" || body["userId"] != orderTrack["userId"] || dig(body, "properties", "currency") != "EUR" {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("SegmentForward", func(t *testing.T) {
		r := find("segment", func(r recorded) bool { return has(r, msgID) })
		if r == nil {
			return
		}
		if r.path != "/v1/batch" || r.header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("forward-key:")) {
			t.Errorf("%s %v", r.path, r.header.Get("Authorization"))
		}
		var body struct {
			Batch []map[string]any `json:"batch"`
		}
		_ = json.Unmarshal(r.body, &body)
		var found map[string]any
		for _, ev := range body.Batch {
			if ev["messageId"] == msgID {
				found = ev
			}
		}
		if found == nil || found["event"] != "Order Completed" {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("Amplitude", func(t *testing.T) {
		r := find("amplitude", func(r recorded) bool { return has(r, msgID) })
		if r == nil {
			return
		}
		var body struct {
			APIKey string           `json:"api_key"`
			Events []map[string]any `json:"events"`
		}
		_ = json.Unmarshal(r.body, &body)
		var found map[string]any
		for _, ev := range body.Events {
			if ev["insert_id"] == msgID {
				found = ev
			}
		}
		if r.path != "/2/httpapi" || body.APIKey != "amp-key" || found == nil || found["event_type"] != "Order Completed" || found["user_id"] != orderTrack["userId"] {
			t.Errorf("%s %s", r.path, r.body)
		}
	})
	t.Run("Mixpanel", func(t *testing.T) {
		r := find("mixpanel", func(r recorded) bool { return has(r, `"Order Completed"`) })
		if r == nil {
			return
		}
		var body []map[string]any
		_ = json.Unmarshal(r.body, &body)
		var found map[string]any
		for _, ev := range body {
			if ev["event"] == "Order Completed" {
				found = ev
			}
		}
		if r.path != "/import" || r.query != "strict=1" || r.header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("mp-secret:")) ||
			found == nil || dig(found, "properties", "distinct_id") != orderTrack["userId"] {
			t.Errorf("%s?%s %s", r.path, r.query, r.body)
		}
	})
	t.Run("GoogleAnalytics4", func(t *testing.T) {
		r := find("google-analytics-4", func(r recorded) bool { return has(r, `"order_completed"`) })
		if r == nil {
			return
		}
		if r.path != "/mp/collect" || !strings.Contains(r.query, "measurement_id=G-TEST") || !strings.Contains(r.query, "api_secret=ga-secret") ||
			!has(*r, `"user_id":"`+orderTrack["userId"].(string)+`"`) {
			t.Errorf("%s?%s %s", r.path, r.query, r.body)
		}
	})
	t.Run("Slack", func(t *testing.T) {
		r := find("slack", func(r recorded) bool { return has(r, "Order Completed") })
		if r == nil {
			return
		}
		var body map[string]any
		_ = json.Unmarshal(r.body, &body)
		if r.path != "/services/T/B/X" || !strings.Contains(body["text"].(string), orderTrack["userId"].(string)) {
			t.Errorf("%s %s", r.path, r.body)
		}
	})
	t.Run("OverviewCountsDeliveries", func(t *testing.T) {
		// A receiver sees a request a moment before its lane records the attempt: poll.
		var wrong []string
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			wrong = wrong[:0]
			d := mustData(t, s.post(t, `{ workspace(slug: "fanout") { overview { edges { id eventCount24h } } } }`, nil, src.auth...))
			for _, e := range d["workspace"].(map[string]any)["overview"].(map[string]any)["edges"].([]any) {
				edge := e.(map[string]any)
				slug := edges[edge["id"].(string)]
				if got := int(edge["eventCount24h"].(float64)); got != want[slug] {
					wrong = append(wrong, fmt.Sprintf("%s: %d, want %d", slug, got, want[slug]))
				}
			}
			if len(wrong) == 0 || time.Now().After(end) {
				break
			}
		}
		if len(wrong) > 0 {
			t.Errorf("eventCount24h of the edges: %v", wrong)
		}
	})
}

// destinationOf returns the id of the destination named name in src's workspace.
func destinationOf(t *testing.T, s *server, src trackingSource, name string) string {
	d := mustData(t, s.post(t, `{ workspace(slug: "fanout") { destinations(first: 10) { nodes { id name } } } }`, nil, src.auth...))
	for _, n := range d["workspace"].(map[string]any)["destinations"].(map[string]any)["nodes"].([]any) {
		if n.(map[string]any)["name"] == name {
			return n.(map[string]any)["id"].(string)
		}
	}
	t.Fatalf("no destination %s", name)
	return ""
}
