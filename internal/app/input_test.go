package app_test

// End-to-end tests of input rules every mutation shares: names that cannot hide control characters
// or bidirectional overrides, and DateTime arguments that are refused as the caller's mistake.

import (
	"fmt"
	"strings"
	"testing"
)

// TestInputNamesRefuseUnsafeCharacters sends, to every mutation that takes a name or a label, one
// with NUL and ones with each bidirectional override or isolate, and wants a userError naming the
// field, with nothing changed.
func TestInputNamesRefuseUnsafeCharacters(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback)
	e := dlvNewEnv(t, s, "names")
	e.mutate(t, "workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }", map[string]any{"workspaceId": e.wsID, "plan": "TEAM"}) // for privacyMatcherCreate
	srcID, _ := e.source(t, "Web")
	dst := e.mutate(t, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": "http://127.0.0.1:1/x"}})
	dstID := trkStr(dst, "destination.id")

	type mutation struct {
		name, inputType, field string
		input                  func(bad string) map[string]any
	}
	mutations := []mutation{
		{"signUp", "SignUpInput", "name", func(bad string) map[string]any {
			return map[string]any{"email": "names-new@example.com", "password": acPassword, "name": bad}
		}},
		{"viewerUpdate", "ViewerUpdateInput", "name", func(bad string) map[string]any { return map[string]any{"name": bad} }},
		{"workspaceCreate", "WorkspaceCreateInput", "name", func(bad string) map[string]any {
			return map[string]any{"name": bad, "slug": "names-two"}
		}},
		{"workspaceUpdate", "WorkspaceUpdateInput", "name", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "name": bad}
		}},
		{"sourceCreate", "SourceCreateInput", "name", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "catalogId": "cat_javascript", "name": bad}
		}},
		{"sourceUpdate", "SourceUpdateInput", "name", func(bad string) map[string]any { return map[string]any{"sourceId": srcID, "name": bad} }},
		{"sourceUpdate/labels", "SourceUpdateInput", "labels", func(bad string) map[string]any {
			return map[string]any{"sourceId": srcID, "labels": []string{"team:web", "env:" + bad}}
		}},
		{"destinationCreate", "DestinationCreateInput", "name", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": bad, "settings": map[string]any{"url": "http://127.0.0.1:1/x"}}
		}},
		{"destinationUpdate", "DestinationUpdateInput", "name", func(bad string) map[string]any {
			return map[string]any{"destinationId": dstID, "name": bad}
		}},
		{"accessTokenCreate", "AccessTokenCreateInput", "name", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "name": bad, "role": "MEMBER"}
		}},
		{"privacyMatcherCreate", "PrivacyMatcherCreateInput", "name", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "name": bad, "classification": "RED"}
		}},
		{"memberInvite", "MemberInviteInput", "email", func(bad string) map[string]any {
			return map[string]any{"workspaceId": e.wsID, "email": "x" + bad + "y@example.com", "role": "MEMBER"}
		}},
	}
	bad := map[string]string{"NUL": "\x00", "LF": "\n", "U+202A": "\u202A", "U+202B": "\u202B", "U+202C": "\u202C",
		"U+202D": "\u202D", "U+202E": "\u202E", "U+2066": "\u2066", "U+2067": "\u2067", "U+2068": "\u2068", "U+2069": "\u2069"}
	for _, m := range mutations {
		for what, r := range bad {
			t.Run(m.name+"/"+what, func(t *testing.T) {
				field, _, _ := strings.Cut(m.name, "/")
				q := fmt.Sprintf(`mutation($i: %s!) { %s(input: $i) { userErrors { field message code } } }`, m.inputType, field)
				res := acPost(t, s, e.tok, q, map[string]any{"i": m.input("evil" + r + "name")})
				ue := acWantUserError(t, res, field, m.field, "INVALID")
				if !strings.Contains(ue.Message, m.field) {
					t.Errorf("message %q does not name %s", ue.Message, m.field)
				}
			})
		}
	}

	t.Run("NothingChanged", func(t *testing.T) {
		d := acData(t, acPost(t, s, e.tok, `query($s: ID!, $d: ID!) { viewer { name } workspace(slug: "names") { name }
			s: node(id: $s) { ... on Source { name labels } } d: node(id: $d) { ... on Destination { name } } }`,
			map[string]any{"s": srcID, "d": dstID}))
		if got := acJSON(d); got != `{"d":{"name":"Hook"},"s":{"labels":[],"name":"Web"},"viewer":{"name":"names@example.com"},"workspace":{"name":"names"}}` {
			t.Errorf("after refused changes: %s", got)
		}
	})

	t.Run("RightToLeftTextIsFine", func(t *testing.T) {
		p := e.mutate(t, "sourceUpdate", "SourceUpdateInput", "source { name }", map[string]any{"sourceId": srcID, "name": "موقع الويب"})
		if got := trkStr(p, "source.name"); got != "موقع الويب" {
			t.Errorf("name = %q", got)
		}
	})
}

// TestInputDateTime sends malformed and out-of-range DateTime values to every argument and input
// field of that type, inline and in variables, and wants BAD_USER_INPUT naming the argument, never
// INTERNAL.
func TestInputDateTime(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback)
	e := dlvNewEnv(t, s, "dates")
	dst := e.mutate(t, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": "http://127.0.0.1:1/x"}})
	dstID := trkStr(dst, "destination.id")

	bad := []struct {
		name  string
		value any
	}{
		{"Garbage", "yesterday"},
		{"NoZone", "2026-11-27T09:18:16"},
		{"DayOutOfRange", "2026-02-30T00:00:00Z"},
		{"MonthOutOfRange", "2026-13-01T00:00:00Z"},
		{"FiveDigitYear", "10000-01-01T00:00:00Z"},
		{"PastYear9999InUTC", "9999-12-31T23:00:00-05:00"},
		{"BeforeYear1InUTC", "0001-01-01T00:00:00+01:00"},
		{"ZoneOutOfRange", "2026-01-01T00:00:00+25:00"},
		{"Number", 1764235096},
		{"Empty", ""},
	}
	type place struct {
		name, inline, withVar, arg string
		vars                       func(v any) map[string]any
	}
	places := []place{
		{
			"privacyInbox.since",
			`query($id: ID!) { node(id: $id) { ... on Workspace { privacyInbox(since: %s) { totalCount } } } }`,
			`query($id: ID!, $v: DateTime) { node(id: $id) { ... on Workspace { privacyInbox(since: $v) { totalCount } } } }`,
			"since", func(v any) map[string]any { return map[string]any{"id": e.wsID, "v": v} },
		},
		{
			"deliveryStats.since",
			`query($id: ID!) { node(id: $id) { ... on Destination { deliveryStats(since: %s) { delivered } } } }`,
			`query($id: ID!, $v: DateTime) { node(id: $id) { ... on Destination { deliveryStats(since: $v) { delivered } } } }`,
			"since", func(v any) map[string]any { return map[string]any{"id": dstID, "v": v} },
		},
		{
			"deliveryStats.until",
			`query($id: ID!) { node(id: $id) { ... on Destination { deliveryStats(until: %s) { delivered } } } }`,
			`query($id: ID!, $v: DateTime) { node(id: $id) { ... on Destination { deliveryStats(until: $v) { delivered } } } }`,
			"until", func(v any) map[string]any { return map[string]any{"id": dstID, "v": v} },
		},
		{
			"deliveryRetry.since",
			`mutation($id: ID!) { deliveryRetry(input: {destinationId: $id, since: %s}) { queued userErrors { field } } }`,
			`mutation($id: ID!, $v: DateTime) { deliveryRetry(input: {destinationId: $id, since: $v}) { queued userErrors { field } } }`,
			"input.since", func(v any) map[string]any { return map[string]any{"id": dstID, "v": v} },
		},
		{
			"deliveryRetry.until",
			`mutation($id: ID!) { deliveryRetry(input: {destinationId: $id, until: %s}) { queued userErrors { field } } }`,
			`mutation($i: DeliveryRetryInput!) { deliveryRetry(input: $i) { queued userErrors { field } } }`,
			"input.until", func(v any) map[string]any {
				return map[string]any{"id": dstID, "i": map[string]any{"destinationId": dstID, "until": v}}
			},
		},
		{
			"accessTokenCreate.expiresAt",
			`mutation($id: ID!) { accessTokenCreate(input: {workspaceId: $id, name: "t", role: MEMBER, expiresAt: %s}) { secret userErrors { field } } }`,
			`mutation($i: AccessTokenCreateInput!) { accessTokenCreate(input: $i) { secret userErrors { field } } }`,
			"input.expiresAt", func(v any) map[string]any {
				return map[string]any{"id": e.wsID, "i": map[string]any{"workspaceId": e.wsID, "name": "t", "role": "MEMBER", "expiresAt": v}}
			},
		},
	}
	check := func(t *testing.T, r gqlResponse, arg string) {
		t.Helper()
		if got := r.errorCode(); got != "BAD_USER_INPUT" {
			t.Fatalf("want BAD_USER_INPUT, got %d %s", r.Status, r.Raw)
		}
		if msg := r.errorMessage(); !strings.HasPrefix(msg, arg+" must ") {
			t.Errorf("message %q does not name %s", msg, arg)
		}
		if ext, _ := r.Errors[0]["extensions"].(map[string]any); ext["field"] != arg {
			t.Errorf("extensions.field = %v, want %s", ext["field"], arg)
		}
	}
	for _, p := range places {
		for _, b := range bad {
			t.Run(p.name+"/Variable/"+b.name, func(t *testing.T) {
				check(t, acPost(t, s, e.tok, p.withVar, p.vars(b.value)), p.arg)
			})
			t.Run(p.name+"/Inline/"+b.name, func(t *testing.T) {
				lit := acJSON(b.value) // a JSON string or number is a GraphQL literal too
				check(t, acPost(t, s, e.tok, fmt.Sprintf(p.inline, lit), p.vars(nil)), p.arg)
			})
		}
	}

	t.Run("Bounds", func(t *testing.T) {
		r := acPost(t, s, e.tok, places[0].withVar, places[0].vars("0001-01-01T00:00:00Z"))
		acData(t, r)
		r = acPost(t, s, e.tok, places[5].withVar, places[5].vars("9999-12-31T23:59:59.999Z"))
		if got := acStr(acData(t, r), "accessTokenCreate.secret"); got == "" {
			t.Errorf("expiresAt 9999-12-31: %s", r.Raw)
		}
	})
	if strings.Contains(s.Logs.String(), "graphql resolver failed") {
		t.Error("a DateTime argument reached the log as an internal error")
	}
}
