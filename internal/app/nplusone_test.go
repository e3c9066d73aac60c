package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// statements returns how many SQL statements the server ran for the request that answered r, from
// the access log line carrying its request id.
func (s *server) statements(t *testing.T, r gqlResponse) int {
	t.Helper()
	id := r.Header.Get("X-Request-Id")
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if !strings.Contains(line, `"request_id":"`+id+`"`) || !strings.Contains(line, `"msg":"http request"`) {
			continue
		}
		var entry struct {
			Statements int `json:"sql_statements"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatal(err)
		}
		return entry.Statements
	}
	t.Fatalf("no access log line for request %s", id)
	return 0
}

// signUp creates an account and returns its session token and user id.
func (s *server) signUp(t *testing.T, email, name string) (token, userID string) {
	t.Helper()
	r := s.post(t, `mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": "correct horse battery", "name": name}})
	p, _ := r.Data["signUp"].(map[string]any)
	tok, _ := p["token"].(string)
	if tok == "" {
		t.Fatalf("signUp %s: %s", email, r.Raw)
	}
	return tok, p["user"].(map[string]any)["id"].(string)
}

// mustData fails the test on any error and returns the data.
func mustData(t *testing.T, r gqlResponse) map[string]any {
	t.Helper()
	if len(r.Errors) > 0 || r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	return r.Data
}

// TestListsLoadRelatedObjectsInBatches checks that the statements of a list query do not grow with
// the number of items: related users and grants load through dataloaders.
func TestListsLoadRelatedObjectsInBatches(t *testing.T) {
	s := startServer(t)
	owner, _ := s.signUp(t, "owner@example.com", "Owner")
	auth := []string{"Authorization", "Bearer " + owner}
	ws := mustData(t, s.post(t, `mutation { workspaceCreate(input: {name: "Acme", slug: "acme"}) { workspace { id } } }`, nil, auth...))
	wsID := ws["workspaceCreate"].(map[string]any)["workspace"].(map[string]any)["id"].(string)

	query := `query($slug: String!) { workspace(slug: $slug) { viewerRole members(first: 100) { totalCount nodes {
		id role viewerCanUpdate viewerCanDelete user { id name email } grants { id role label } } } } }`
	count := func() (int, int) {
		r := s.post(t, query, map[string]any{"slug": "acme"}, auth...)
		d := mustData(t, r)
		n := len(d["workspace"].(map[string]any)["members"].(map[string]any)["nodes"].([]any))
		return n, s.statements(t, r)
	}
	n1, one := count()
	for i := 0; i < 25; i++ {
		tok, _ := s.signUp(t, fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("Member %d", i))
		inv := mustData(t, s.post(t, `mutation($i: MemberInviteInput!) { memberInvite(input: $i) { token } }`,
			map[string]any{"i": map[string]any{"workspaceId": wsID, "email": fmt.Sprintf("m%d@example.com", i), "role": "MEMBER"}}, auth...))
		secret := inv["memberInvite"].(map[string]any)["token"].(string)
		acc := mustData(t, s.post(t, `mutation($t: String!) { invitationAccept(input: {token: $t}) { membership { id } } }`,
			map[string]any{"t": secret}, "Authorization", "Bearer "+tok))
		memID := acc["invitationAccept"].(map[string]any)["membership"].(map[string]any)["id"].(string)
		mustData(t, s.post(t, `mutation($id: ID!) { memberGrantAdd(input: {membershipId: $id, role: SOURCE_READ, label: "environment:prod"}) { membership { id } } }`,
			map[string]any{"id": memID}, auth...))
	}
	n26, many := count()
	if n1 != 1 || n26 != 26 {
		t.Fatalf("members listed: %d and %d", n1, n26)
	}
	if one != many {
		t.Errorf("statements grew with the list: %d for 1 member, %d for 26", one, many)
	}
	t.Logf("members query: %d statements for 1 member and for 26", many)
}

// TestScopedListsLoadInBatches checks that loaders reading with the viewer's rights in their
// WHERE clause still batch: for a source admin and a source reader, whose rights are grants, the
// statements of a list of sources with their keys, connections and destinations do not grow with
// the number of sources.
func TestScopedListsLoadInBatches(t *testing.T) {
	s := startServer(t)
	owner, _ := s.signUp(t, "owner@example.com", "Owner")
	own := []string{"Authorization", "Bearer " + owner}
	d := mustData(t, s.post(t, `mutation { workspaceCreate(input: {name: "Acme", slug: "acme"}) { workspace { id } } }`, nil, own...))
	wsID := d["workspaceCreate"].(map[string]any)["workspace"].(map[string]any)["id"].(string)
	member := func(email, role, grant string) []string {
		tok, _ := s.signUp(t, email, email)
		d := mustData(t, s.post(t, `mutation($i: MemberInviteInput!) { memberInvite(input: $i) { token } }`,
			map[string]any{"i": map[string]any{"workspaceId": wsID, "email": email, "role": "MINIMAL"}}, own...))
		inv := d["memberInvite"].(map[string]any)["token"].(string)
		d = mustData(t, s.post(t, `mutation($t: String!) { invitationAccept(input: {token: $t}) { membership { id } } }`,
			map[string]any{"t": inv}, "Authorization", "Bearer "+tok))
		mem := d["invitationAccept"].(map[string]any)["membership"].(map[string]any)["id"].(string)
		mustData(t, s.post(t, `mutation($i: MemberGrantAddInput!) { memberGrantAdd(input: $i) { userErrors { message } } }`,
			map[string]any{"i": map[string]any{"membershipId": mem, "role": role, "label": grant}}, own...))
		return []string{"Authorization", "Bearer " + tok}
	}
	sourceAdmin := member("admin@example.com", "SOURCE_ADMIN", "environment:prod")
	reader := member("reader@example.com", "SOURCE_READ", "environment:prod")
	d = mustData(t, s.post(t, `mutation($i: DestinationCreateInput!) { destinationCreate(input: $i) { destination { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": "https://example.com/hook"}}}, own...))
	dst := d["destinationCreate"].(map[string]any)["destination"].(map[string]any)["id"].(string)
	addSource := func(i int, label string) {
		d := mustData(t, s.post(t, `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_javascript", "name": fmt.Sprintf("Web %02d", i), "labels": []string{label}}}, own...))
		src := d["sourceCreate"].(map[string]any)["source"].(map[string]any)["id"].(string)
		mustData(t, s.post(t, `mutation($i: ConnectionCreateInput!) { connectionCreate(input: $i) { connection { id } } }`,
			map[string]any{"i": map[string]any{"sourceId": src, "destinationId": dst}}, own...))
	}
	const query = `{ workspace(slug: "acme") {
		sources(first: 100) { totalCount nodes { id writeKeys { key } createdBy { name } destinations { name } connections { destination { name } } } }
		destinations(first: 100) { totalCount nodes { id sources { name } connections { source { name } } } } } }`
	count := func(who []string) (int, int) {
		r := s.post(t, query, nil, who...)
		d := mustData(t, r)
		return len(d["workspace"].(map[string]any)["sources"].(map[string]any)["nodes"].([]any)), s.statements(t, r)
	}
	addSource(0, "environment:prod")
	addSource(1, "environment:dev")
	oneA, stmtsA := count(sourceAdmin)
	oneR, stmtsR := count(reader)
	for i := 2; i < 12; i++ {
		addSource(i, "environment:prod")
	}
	manyA, moreA := count(sourceAdmin)
	manyR, moreR := count(reader)
	if oneA != 1 || manyA != 11 || oneR != 1 || manyR != 11 {
		t.Fatalf("sources listed: source admin %d then %d, reader %d then %d", oneA, manyA, oneR, manyR)
	}
	if stmtsA != moreA {
		t.Errorf("a source admin's statements grew with the list: %d for 1 source, %d for 11", stmtsA, moreA)
	}
	if stmtsR != moreR {
		t.Errorf("a source reader's statements grew with the list: %d for 1 source, %d for 11", stmtsR, moreR)
	}
	t.Logf("statements for 1 and 11 sources: source admin %d, reader %d", moreA, moreR)
}
