package app_test

// End-to-end tests of the egress filter (server-side request forgery, issue 10): which settings are
// refused, what a refused dial and a redirect leave in Event Delivery and Health, and that the
// allow list (EGRESS_ALLOW) is what lets the tests' loopback receivers through.

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/testdb"
)

// try runs a mutation whose payload has userErrors and returns the payload, errors or not.
func (e *dlvEnv) try(tb testing.TB, name, inputType, selection string, input map[string]any) map[string]any {
	tb.Helper()
	d := e.gql(tb, fmt.Sprintf(`mutation($i: %s!) { %s(input: $i) { %s userErrors { field message code } } }`, inputType, name, selection),
		map[string]any{"i": input})
	return trkObj(d, name)
}

// egUserError returns the first userError of a payload as "field code message", or "".
func egUserError(p map[string]any) string {
	errs, _ := p["userErrors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	return trkStr(errs[0], "field") + " " + trkStr(errs[0], "code") + " " + trkStr(errs[0], "message")
}

// TestEgressSettingsRefused checks that a destination setting or a notification webhook naming a
// refused address, in any notation, is a userError when saved, with the default allow list (none).
func TestEgressSettingsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "eg-settings")
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "127.1", "0x7f.1", "0177.0.0.1",
		"[::ffff:127.0.0.1]", "10.0.0.8", "172.16.5.4", "192.168.1.1", "[fd00::1]", "169.254.169.254", "[fe80::1]", "100.64.1.1", "224.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			p := e.try(t, "destinationCreate", "DestinationCreateInput", "destination { id }", map[string]any{
				"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": "To " + host, "settings": map[string]any{"url": "http://" + host + ":8080/hook"}})
			if got := egUserError(p); !strings.HasPrefix(got, "settings.url NOT_ALLOWED") || p["destination"] != nil {
				t.Errorf("webhook to %s: %v, want a NOT_ALLOWED userError on settings.url", host, p)
			}
		})
	}
	t.Run("OtherSettings", func(t *testing.T) {
		// A URL setting of a vendor, and a secret setting that is a URL.
		p := e.try(t, "destinationCreate", "DestinationCreateInput", "destination { id }", map[string]any{
			"workspaceId": e.wsID, "catalogId": "cat_segment", "name": "Forward", "settings": map[string]any{"writeKey": "wk-1", "endpoint": "http://127.0.0.1:9000"}})
		if got := egUserError(p); !strings.HasPrefix(got, "settings.endpoint NOT_ALLOWED") {
			t.Errorf("segment endpoint on loopback: %v", p)
		}
		p = e.try(t, "destinationCreate", "DestinationCreateInput", "destination { id }", map[string]any{
			"workspaceId": e.wsID, "catalogId": "cat_slack", "name": "Slack", "settings": map[string]any{"webhookUrl": "http://169.254.169.254/latest/meta-data/"}})
		if got := egUserError(p); !strings.HasPrefix(got, "settings.webhookUrl NOT_ALLOWED") || strings.Contains(got, "meta-data") {
			t.Errorf("slack webhook to the metadata address: %v", p)
		}
	})
	t.Run("Update", func(t *testing.T) {
		id := e.webhook(t, "Public", map[string]any{"url": "https://hooks.example.com/in"}, false)
		p := e.try(t, "destinationUpdate", "DestinationUpdateInput", "destination { id settings }", map[string]any{
			"destinationId": id, "settings": map[string]any{"url": "http://127.1/hook"}})
		if got := egUserError(p); !strings.HasPrefix(got, "settings.url NOT_ALLOWED") {
			t.Errorf("update to 127.1: %v", p)
		}
		if url := trkStr(e.destination(t, id, "settings"), "settings.url"); url != "https://hooks.example.com/in" {
			t.Errorf("url %q after a refused update", url)
		}
	})
	t.Run("NotificationWebhook", func(t *testing.T) {
		p := e.try(t, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { webhook { url } }", map[string]any{
			"webhookUrl": "http://localhost:9/notify", "webhookSecret": "a-secret-of-16-characters"})
		if got := egUserError(p); !strings.HasPrefix(got, "webhookUrl NOT_ALLOWED") {
			t.Errorf("notification webhook to localhost: %v", p)
		}
	})
}

// TestEgressOwnAddress checks that with loopback allowed (as the tests and local development set
// it) the server's own address stays refused: a webhook to its /graphql would run events as
// queries, one to /metrics would show its answer to members.
func TestEgressOwnAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	e := dlvNewEnv(t, s, "eg-self")
	for _, path := range []string{"/graphql", "/metrics"} {
		p := e.try(t, "destinationCreate", "DestinationCreateInput", "destination { id }", map[string]any{
			"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": "Self " + path, "settings": map[string]any{"url": s.URL + path}})
		if got := egUserError(p); !strings.HasPrefix(got, "settings.url NOT_ALLOWED") || !strings.Contains(got, "own listen address") {
			t.Errorf("webhook to the server's own %s: %v", path, p)
		}
	}
	p := e.try(t, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { webhook { url } }", map[string]any{
		"webhookUrl": s.URL + "/graphql", "webhookSecret": "a-secret-of-16-characters"})
	if got := egUserError(p); !strings.HasPrefix(got, "webhookUrl NOT_ALLOWED") {
		t.Errorf("notification webhook to the server's own /graphql: %v", p)
	}
	// Another loopback port is what the allow list is for.
	rc := dlvNewReceiver(t, nil)
	e.webhook(t, "Loopback receiver", map[string]any{"url": rc.URL + "/hook"}, true)

	t.Run("NotificationRedirectedToGraphQL", func(t *testing.T) {
		// A receiver on an allowed address that redirects to the server itself: the dial is refused.
		redirect := dlvNewReceiver(t, func(dlvHit) dlvReply {
			return dlvReply{Status: http.StatusTemporaryRedirect, Header: map[string]string{"Location": s.URL + "/graphql"}}
		})
		p := e.try(t, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { webhook { url } }", map[string]any{
			"webhookUrl": redirect.URL + "/notify", "webhookSecret": "a-secret-of-16-characters"})
		if got := egUserError(p); got != "" {
			t.Fatalf("notification webhook: %s", got)
		}
		// Another member's change notifies the owner.
		other := e.member(t, "eg-self-admin@example.com", "ADMIN")
		dlvData(t, dlvPost(t, s, other, `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_javascript", "name": "Notified"}}))
		redirect.waitHits(t, 1, 10*time.Second)
		dlvWait(t, "the refused notification logged", 10*time.Second, func() bool {
			return strings.Contains(s.Logs.String(), "notification webhook failed") && strings.Contains(s.Logs.String(), "own listen address")
		})
	})
}

// TestEgressBlockedAtDial checks the dial-time check: a destination saved while loopback was allowed
// gets EGRESS_BLOCKED attempts, final (not retried) and in Health, once the server runs with the
// default allow list; with loopback allowed the same destination is delivered to.
func TestEgressBlockedAtDial(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	opts := func(c *config.Config) { c.DatabaseURL = dbURL; c.LogLevel = slog.LevelWarn; c.DeliveryMaxAttempts = 3 }
	s1 := startServer(t, allowLoopback, opts)
	e := dlvNewEnv(t, s1, "eg-dial")
	p := e.pipe(t, "Loopback", nil, nil)
	dlvTrack(t, s1, p.Key, map[string]any{"userId": "allowed"})
	p.RC.waitHits(t, 1, 10*time.Second)
	e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 1)
	if err := s1.stop(t); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, opts) // the default: loopback refused
	e.s = s2
	dlvTrack(t, s2, p.Key, map[string]any{"userId": "refused"})
	a := e.waitAttempts(t, p.DestID, "outcome: FAILED", 1)[0]
	if a["errorType"] != "EGRESS_BLOCKED" || trkInt(a["attempt"]) != 1 || !strings.Contains(trkStr(a, "errorMessage"), "loopback") || a["response"] != nil {
		t.Errorf("attempt %v, want a first and final EGRESS_BLOCKED attempt naming loopback", a)
	}
	is := e.waitIssue(t, p.DestID, "EGRESS_BLOCKED", "open", func(map[string]any) bool { return true })
	if is["status"] != "OPEN" || trkStr(is, "sampleAttempt.errorType") != "EGRESS_BLOCKED" {
		t.Errorf("health issue %v", is)
	}
	dlvSettle(t, s2, p.DestID)
	if st := e.stats(t, p.DestID); trkInt(st["retrying"]) != 0 {
		t.Errorf("deliveryStats %v: a refused address is not retried", st)
	}
	if got := p.RC.Users(); fmt.Sprint(got) != "[allowed]" {
		t.Errorf("the receiver got %v, want only the event sent while loopback was allowed", got)
	}
}

// TestEgressRedirects checks redirects through the server: to an internal address (refused when
// dialed), to the server's own /metrics, more than three, and to another host (followed, its
// answer's body not kept); each shown in the attempt.
func TestEgressRedirects(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn; c.DeliveryMaxAttempts = 3 })
	e := dlvNewEnv(t, s, "eg-redirects")
	redirectTo := func(to func(h dlvHit) string) func(h dlvHit) dlvReply {
		return func(h dlvHit) dlvReply {
			return dlvReply{Status: http.StatusPermanentRedirect, Header: map[string]string{"Location": to(h)}}
		}
	}
	failed := func(t *testing.T, p dlvPipe, user string) map[string]any {
		t.Helper()
		dlvTrack(t, s, p.Key, map[string]any{"userId": user})
		return e.waitAttempts(t, p.DestID, "outcome: FAILED", 1)[0]
	}

	t.Run("ToMetadataAddress", func(t *testing.T) {
		t.Parallel()
		p := e.pipe(t, "To metadata", nil, redirectTo(func(dlvHit) string { return "http://169.254.169.254/latest/meta-data/" }))
		a := failed(t, p, "rd-metadata")
		redirects, _ := trkPath(a, "request.redirects").([]any)
		if a["errorType"] != "EGRESS_BLOCKED" || len(redirects) != 1 || trkInt(trkPath(redirects[0], "status")) != 308 ||
			trkStr(redirects[0], "url") != "http://169.254.169.254/latest/meta-data/" || trkPath(redirects[0], "followed") != true {
			t.Errorf("attempt %v, want EGRESS_BLOCKED after one followed redirect", a)
		}
	})

	t.Run("ToOwnMetrics", func(t *testing.T) {
		t.Parallel()
		p := e.pipe(t, "To metrics", map[string]any{"method": "PUT"}, redirectTo(func(dlvHit) string { return s.URL + "/metrics" }))
		a := failed(t, p, "rd-metrics")
		if a["errorType"] != "EGRESS_BLOCKED" || a["response"] != nil || strings.Contains(fmt.Sprint(a), "go_goroutines") {
			t.Errorf("attempt %v, want EGRESS_BLOCKED and nothing of /metrics", a)
		}
	})

	t.Run("MoreThanThree", func(t *testing.T) {
		t.Parallel()
		var p dlvPipe
		p = e.pipe(t, "Loop", nil, redirectTo(func(h dlvHit) string { return p.RC.URL + fmt.Sprintf("/hop%d", len(p.RC.Hits())+1) }))
		a := failed(t, p, "rd-loop")
		redirects, _ := trkPath(a, "request.redirects").([]any)
		if a["errorType"] != "REDIRECT_REFUSED" || len(redirects) != 4 || trkPath(redirects[3], "followed") != false ||
			!strings.Contains(trkStr(redirects[3], "refusedBecause"), "more than 3") || p.RC.Count() != 4 {
			t.Errorf("attempt %v after %d requests; want 3 redirects followed, the 4th refused", a, p.RC.Count())
		}
		if st := e.stats(t, p.DestID); trkInt(st["retrying"]) != 0 || trkInt(st["attempts"]) != 1 {
			t.Errorf("deliveryStats %v: a refused redirect is not retried", st)
		}
	})

	t.Run("ToAnotherHost", func(t *testing.T) {
		t.Parallel()
		other := dlvNewReceiver(t, func(dlvHit) dlvReply {
			return dlvReply{Status: http.StatusOK, Header: map[string]string{"X-Internal": "yes"}, Body: "the other host's answer"}
		})
		p := e.pipe(t, "Moved", nil, redirectTo(func(dlvHit) string { return other.URL + "/moved" }))
		dlvTrack(t, s, p.Key, map[string]any{"userId": "rd-moved"})
		a := e.waitAttempts(t, p.DestID, "outcome: DELIVERED", 1)[0]
		if trkInt(trkPath(a, "response.status")) != 200 || trkPath(a, "response.body") != nil || trkPath(a, "response.headers") != nil {
			t.Errorf("response %v, want the status only: the answer came from another host", a["response"])
		}
		if redirects, _ := trkPath(a, "request.redirects").([]any); len(redirects) != 1 || trkStr(redirects[0], "url") != other.URL+"/moved" {
			t.Errorf("redirects %v", redirects)
		}
		if got := other.Users(); fmt.Sprint(got) != "[rd-moved]" {
			t.Errorf("the other host got %v (a 308 keeps the method and body)", got)
		}
	})
}
