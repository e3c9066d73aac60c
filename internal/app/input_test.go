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
	s := startServer(t)
	e := dlvNewEnv(t, s, "names")
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
