package app_test

// End-to-end tests of the integration catalog, sources, destinations, connections, secret settings,
// their permissions and audit trail, and the overview graph, over the real HTTP API. Helpers here
// are prefixed with "it" so that they do not collide with those of other test files of the package;
// overview_bench_test.go uses them too.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/secret"
)

// ---------------------------------------------------------------------------------------------
// Helpers

// itClient sends GraphQL requests as one viewer; an empty token is anonymous.
type itClient struct {
	s   *server
	tok string
}

func (c itClient) post(tb testing.TB, query string, vars map[string]any) gqlResponse {
	tb.Helper()
	if c.tok == "" {
		return c.s.post(tb, query, vars)
	}
	return c.s.post(tb, query, vars, "Authorization", "Bearer "+c.tok)
}

// data fails unless the request succeeded without errors, and returns its data.
func (c itClient) data(tb testing.TB, query string, vars map[string]any) map[string]any {
	tb.Helper()
	return itData(tb, c.post(tb, query, vars))
}

func itData(tb testing.TB, r gqlResponse) map[string]any {
	tb.Helper()
	if r.Status != 200 || len(r.Errors) > 0 {
		tb.Fatalf("want data without errors, got %d %s", r.Status, r.Raw)
	}
	return r.Data
}

// workspace reads selection on the workspace with slug.
func (c itClient) workspace(tb testing.TB, slug, selection string) map[string]any {
	tb.Helper()
	d := c.data(tb, `query($slug: String!) { workspace(slug: $slug) { `+selection+` } }`, map[string]any{"slug": slug})
	w, _ := d["workspace"].(map[string]any)
	if w == nil {
		tb.Fatalf("workspace %s not visible", slug)
	}
	return w
}

// node reads selection on node(id), nil when it is null.
func (c itClient) node(tb testing.TB, nodeID, selection string) map[string]any {
	tb.Helper()
	d := c.data(tb, `query($id: ID!) { node(id: $id) { id `+selection+` } }`, map[string]any{"id": nodeID})
	n, _ := d["node"].(map[string]any)
	return n
}

const (
	itSourceFields = `id name enabled status type category labels settings lastSeenAt
		writeKeys { key createdAt revokedAt } createdBy { id name } updatedBy { id } viewerCanUpdate viewerCanDelete`
	itDestinationFields = `id name enabled status category settings secretSettings { name isSet } catalogEntry { slug }
		createdBy { id } viewerCanUpdate`
	itConnectionFields = `id enabled viewerCanUpdate source { id name } destination { id name status }`
)

// itMutations gives each mutation under test its input type and payload selection.
var itMutations = map[string][2]string{
	"sourceCreate":       {"SourceCreateInput", "source { " + itSourceFields + " }"},
	"sourceUpdate":       {"SourceUpdateInput", "source { " + itSourceFields + " }"},
	"sourceEnable":       {"SourceIdInput", "source { " + itSourceFields + " }"},
	"sourceDisable":      {"SourceIdInput", "source { " + itSourceFields + " }"},
	"sourceDelete":       {"SourceIdInput", "deletedSourceId"},
	"writeKeyCreate":     {"SourceIdInput", "writeKey { key createdAt revokedAt } source { " + itSourceFields + " }"},
	"writeKeyRevoke":     {"WriteKeyRevokeInput", "source { " + itSourceFields + " }"},
	"destinationCreate":  {"DestinationCreateInput", "destination { " + itDestinationFields + " }"},
	"destinationUpdate":  {"DestinationUpdateInput", "destination { " + itDestinationFields + " }"},
	"destinationEnable":  {"DestinationIdInput", "destination { " + itDestinationFields + " }"},
	"destinationDisable": {"DestinationIdInput", "destination { " + itDestinationFields + " }"},
	"destinationDelete":  {"DestinationIdInput", "deletedDestinationId"},
	"connectionCreate":   {"ConnectionCreateInput", "connection { " + itConnectionFields + " }"},
	"connectionEnable":   {"ConnectionIdInput", "connection { " + itConnectionFields + " }"},
	"connectionDisable":  {"ConnectionIdInput", "connection { " + itConnectionFields + " }"},
	"connectionDelete":   {"ConnectionIdInput", "deletedConnectionId"},
}

// run sends mutation name with input as its argument.
func (c itClient) run(tb testing.TB, name string, input map[string]any) gqlResponse {
	tb.Helper()
	shape, ok := itMutations[name]
	if !ok {
		tb.Fatalf("no shape for mutation %s", name)
	}
	q := fmt.Sprintf(`mutation($i: %s!) { %s(input: $i) { %s userErrors { field code message } } }`, shape[0], name, shape[1])
	return c.post(tb, q, map[string]any{"i": input})
}

// mutate runs a mutation that must succeed and returns its payload.
func (c itClient) mutate(tb testing.TB, name string, input map[string]any) map[string]any {
	tb.Helper()
	p, _ := itData(tb, c.run(tb, name, input))[name].(map[string]any)
	if ue := itList(p, "userErrors"); len(ue) > 0 {
		tb.Fatalf("%s: unexpected userErrors %s", name, itJSON(ue))
	}
	return p
}

// itUserError is one entry of a payload's userErrors.
type itUserError struct{ Field, Code, Message string }

// userErrors runs a mutation that must be refused with userErrors and returns them; the payload's
// object must be null.
func (c itClient) userErrors(tb testing.TB, name string, input map[string]any) []itUserError {
	tb.Helper()
	p, _ := itData(tb, c.run(tb, name, input))[name].(map[string]any)
	var out []itUserError
	for _, e := range itList(p, "userErrors") {
		out = append(out, itUserError{itStr(e, "field"), itStr(e, "code"), itStr(e, "message")})
	}
	if len(out) == 0 {
		tb.Fatalf("%s: want userErrors, got %s", name, itJSON(p))
	}
	for k, v := range p {
		if k != "userErrors" && v != nil {
			tb.Errorf("%s: %s is %s alongside userErrors, want null", name, k, itJSON(v))
		}
	}
	return out
}

// refused runs a mutation that must fail with a GraphQL error of code, and returns the message.
func (c itClient) refused(tb testing.TB, code, name string, input map[string]any) string {
	tb.Helper()
	r := c.run(tb, name, input)
	if got := r.errorCode(); got != code {
		tb.Errorf("%s %s: want error %s, got %s", name, itJSON(input), code, r.Raw)
	}
	return r.errorMessage()
}

// itWantUserError checks that errs hold exactly one error, on field, with code, and a message that
// names the field and contains rule.
func itWantUserError(tb testing.TB, errs []itUserError, field, code, rule string) {
	tb.Helper()
	if len(errs) != 1 {
		tb.Fatalf("want one user error on %s, got %+v", field, errs)
	}
	e := errs[0]
	if e.Field != field || e.Code != code || !strings.Contains(e.Message, field) || !strings.Contains(e.Message, rule) {
		tb.Errorf("got %+v, want field %s, code %s, a message naming %s and saying %q", e, field, code, field, rule)
	}
}

// itAt walks a decoded JSON value along a dot-separated path of keys and list indexes.
func itAt(v any, path string) any {
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscanf(k, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func itStr(v any, path string) string  { s, _ := itAt(v, path).(string); return s }
func itList(v any, path string) []any  { l, _ := itAt(v, path).([]any); return l }
func itBool(v any, path string) bool   { b, _ := itAt(v, path).(bool); return b }
func itNum(v any, path string) float64 { n, _ := itAt(v, path).(float64); return n }
func itObj(v any, path string) map[string]any {
	m, _ := itAt(v, path).(map[string]any)
	return m
}
func itJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// itPluck returns field of every item of a list, as strings.
func itPluck(list []any, field string) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = fmt.Sprint(itAt(x, field))
	}
	return out
}

// itSorted returns a sorted copy.
func itSorted(l []string) []string {
	out := slices.Clone(l)
	sort.Strings(out)
	return out
}

func itRandom(tb testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// itSignUp creates an account and returns a client for it and its user id.
func itSignUp(tb testing.TB, s *server, email, name string) (itClient, string) {
	tb.Helper()
	r := s.post(tb, `mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": "correct horse battery", "name": name}})
	tok := itStr(r.Data, "signUp.token")
	if tok == "" {
		tb.Fatalf("signUp %s: %s", email, r.Raw)
	}
	return itClient{s: s, tok: tok}, itStr(r.Data, "signUp.user.id")
}

// itWorkspaceCreate creates a workspace as c and returns its id.
func itWorkspaceCreate(tb testing.TB, c itClient, slug string) string {
	tb.Helper()
	d := c.data(tb, `mutation($i: WorkspaceCreateInput!) { workspaceCreate(input: $i) { workspace { id } userErrors { message } } }`,
		map[string]any{"i": map[string]any{"name": "Workspace " + slug, "slug": slug}})
	wsID := itStr(d, "workspaceCreate.workspace.id")
	if wsID == "" {
		tb.Fatalf("workspaceCreate %s: %s", slug, itJSON(d))
	}
	return wsID
}

// itOwner signs up an owner with one workspace; it returns their client, user id and the workspace id.
func itOwner(tb testing.TB, s *server, email, slug string) (itClient, string, string) {
	tb.Helper()
	c, userID := itSignUp(tb, s, email, "Owner "+slug)
	return c, userID, itWorkspaceCreate(tb, c, slug)
}

// itMember signs up email and brings them into the workspace with role through an invitation; it
// returns their client, user id and membership id.
func itMember(tb testing.TB, s *server, owner itClient, wsID, email, name, role string) (itClient, string, string) {
	tb.Helper()
	c, userID := itSignUp(tb, s, email, name)
	inv := owner.data(tb, `mutation($i: MemberInviteInput!) { memberInvite(input: $i) { token userErrors { message } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "email": email, "role": role}})
	acc := c.data(tb, `mutation($t: String!) { invitationAccept(input: {token: $t}) { membership { id } userErrors { message } } }`,
		map[string]any{"t": itStr(inv, "memberInvite.token")})
	memID := itStr(acc, "invitationAccept.membership.id")
	if memID == "" {
		tb.Fatalf("invitationAccept: %s", itJSON(acc))
	}
	return c, userID, memID
}

// itSource creates a source and returns it.
func itSource(tb testing.TB, c itClient, wsID, catalogID, name string, labels ...string) map[string]any {
	tb.Helper()
	in := map[string]any{"workspaceId": wsID, "catalogId": catalogID, "name": name}
	if labels != nil {
		in["labels"] = labels
	}
	return itObj(c.mutate(tb, "sourceCreate", in), "source")
}

// itDestination creates a webhook destination and returns it.
func itDestination(tb testing.TB, c itClient, wsID, name string, settings map[string]any) map[string]any {
	tb.Helper()
	if settings == nil {
		settings = map[string]any{"url": "https://hooks.example.com/" + strings.ToLower(strings.ReplaceAll(name, " ", "-"))}
	}
	return itObj(c.mutate(tb, "destinationCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_webhook", "name": name, "settings": settings}), "destination")
}

// itConnect connects a source to a destination and returns the connection.
func itConnect(tb testing.TB, c itClient, sourceID, destinationID string) map[string]any {
	tb.Helper()
	return itObj(c.mutate(tb, "connectionCreate", map[string]any{"sourceId": sourceID, "destinationId": destinationID}), "connection")
}

// itGraph is a fixture inserted straight into the database.
type itGraph struct{ Sources, Destinations, Connections []string }

// itInsertGraph inserts, in one transaction, nSources JavaScript sources (each with one write key
// and the label environment:bulk; the last one disabled), nDestinations webhook destinations, and a
// connection for each pair [source index, destination index]. Rows are written as the services
// write them, so that the API reads them like any other; 300 rows take milliseconds this way
// instead of seconds through the API.
func itInsertGraph(tb testing.TB, s *server, wsID, userID, prefix string, nSources, nDestinations int, pairs [][2]int) itGraph {
	tb.Helper()
	var g itGraph
	now := db.Now()
	err := s.App.DB().Tx(context.Background(), func(tx *db.Tx) error {
		for i := 0; i < nSources; i++ {
			srcID := id.New("src")
			if _, err := tx.Exec(context.Background(), `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels,
				created_by, updated_by, created_at, updated_at) VALUES (?, ?, 'javascript', ?, ?, '{"strictMode":false}', '["environment:bulk"]', ?, ?, ?, ?)`,
				srcID, wsID, fmt.Sprintf("%s source %03d", prefix, i), i != nSources-1, userID, userID, now, now); err != nil {
				return err
			}
			if _, err := tx.Exec(context.Background(), `INSERT INTO source_labels (source_id, label) VALUES (?, 'environment:bulk')`, srcID); err != nil {
				return err
			}
			key := make([]byte, 24)
			_, _ = rand.Read(key)
			if _, err := tx.Exec(context.Background(), `INSERT INTO write_keys (key, source_id, workspace_id, created_at) VALUES (?, ?, ?, ?)`,
				base64.RawURLEncoding.EncodeToString(key), srcID, wsID, now); err != nil {
				return err
			}
			g.Sources = append(g.Sources, srcID)
		}
		for i := 0; i < nDestinations; i++ {
			dstID := id.New("dst")
			settings := fmt.Sprintf(`{"eventTypes":[],"headers":{},"method":"POST","timeoutSeconds":10,"url":"https://hooks.example.com/%s/%d"}`, prefix, i)
			if _, err := tx.Exec(context.Background(), `INSERT INTO destinations (id, workspace_id, catalog_slug, category, name, enabled, settings,
				created_by, updated_by, created_at, updated_at) VALUES (?, ?, 'webhook', 'Raw Data', ?, TRUE, ?, ?, ?, ?, ?)`,
				dstID, wsID, fmt.Sprintf("%s destination %03d", prefix, i), settings, userID, userID, now, now); err != nil {
				return err
			}
			g.Destinations = append(g.Destinations, dstID)
		}
		for _, p := range pairs {
			connID := id.New("conn")
			if _, err := tx.Exec(context.Background(), `INSERT INTO connections (id, workspace_id, source_id, destination_id, enabled, created_by,
				created_at, updated_at) VALUES (?, ?, ?, ?, TRUE, ?, ?, ?)`, connID, wsID, g.Sources[p[0]], g.Destinations[p[1]], userID, now, now); err != nil {
				return err
			}
			g.Connections = append(g.Connections, connID)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("inserting the fixture: %v", err)
	}
	return g
}

// itStatements is server.statements for benchmarks too: the SQL statements of the request that
// answered r, from its access log line.
func itStatements(tb testing.TB, s *server, r gqlResponse) int {
	tb.Helper()
	reqID := r.Header.Get("X-Request-Id")
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if !strings.Contains(line, `"request_id":"`+reqID+`"`) || !strings.Contains(line, `"msg":"http request"`) {
			continue
		}
		var entry struct {
			Statements int `json:"sql_statements"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			tb.Fatal(err)
		}
		return entry.Statements
	}
	tb.Fatalf("no access log line for request %s", reqID)
	return 0
}

// itOverviewQuery is the overview page's query: the graph and, with lists, the sources and
// destinations lists with everything related that the page shows.
func itOverviewQuery(lists bool) string {
	q := `query($slug: String!) { workspace(slug: $slug) {
		overview {
			nodes { id kind name catalogSlug type status enabled node { id ... on Source { writeKeys { key } } } }
			edges { id from to enabled }
		}`
	if lists {
		q += `
		sources(first: 100) { totalCount nodes { id name status destinations { name } writeKeys { key } createdBy { name }
			connections { destination { name } } } }
		destinations(first: 100) { totalCount nodes { id name status sources { name } connections { source { name } } } }`
	}
	return q + ` } }`
}

// ---------------------------------------------------------------------------------------------
// 1. The catalog

func TestIntegrationsCatalog(t *testing.T) {
	s := startServer(t)
	anon := itClient{s: s}
	slugs := func(t *testing.T, field, args string) (list []string, total int, pageInfo map[string]any) {
		t.Helper()
		d := anon.data(t, `{ catalog { `+field+args+` { totalCount nodes { slug } edges { cursor node { slug } }
			pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`, nil)
		c := itObj(d, "catalog."+field)
		if a, b := itPluck(itList(c, "nodes"), "slug"), itPluck(itList(c, "edges"), "node.slug"); !reflect.DeepEqual(a, b) {
			t.Errorf("nodes %v and edges %v differ", a, b)
		}
		return itPluck(itList(c, "nodes"), "slug"), int(itNum(c, "totalCount")), itObj(c, "pageInfo")
	}

	t.Run("SearchMatchesNameInAnyCase", func(t *testing.T) {
		for _, search := range []string{"node", "NODE", "Node.js"} {
			if got, _, _ := slugs(t, "sources", fmt.Sprintf(`(search: %q)`, search)); !reflect.DeepEqual(got, []string{"node"}) {
				t.Errorf("search %q: %v, want [node]", search, got)
			}
		}
		if got, _, _ := slugs(t, "destinations", `(search: "WEBHOOK")`); !reflect.DeepEqual(got, []string{"webhook"}) {
			t.Errorf("destinations search WEBHOOK: %v", got)
		}
	})
	t.Run("SearchMatchesDescription", func(t *testing.T) {
		// Flutter's description names Android; "hmac" is only in the webhook's description.
		if got, total, _ := slugs(t, "sources", `(search: "android")`); !reflect.DeepEqual(got, []string{"android", "flutter"}) || total != 2 {
			t.Errorf("search android: %v (total %d), want [android flutter]", got, total)
		}
		if got, _, _ := slugs(t, "destinations", `(search: "hmac")`); !reflect.DeepEqual(got, []string{"webhook"}) {
			t.Errorf("destinations search hmac: %v", got)
		}
		if got, total, _ := slugs(t, "sources", `(search: "no such integration")`); len(got) != 0 || total != 0 {
			t.Errorf("search for nothing: %v (total %d)", got, total)
		}
	})
	t.Run("CategoryFilter", func(t *testing.T) {
		for _, tc := range []struct{ field, args string }{
			{"sources", `(category: "Website")`}, {"sources", `(category: "website")`},
		} {
			if got, _, _ := slugs(t, tc.field, tc.args); !reflect.DeepEqual(got, []string{"javascript"}) {
				t.Errorf("%s%s: %v, want [javascript]", tc.field, tc.args, got)
			}
		}
		want := []string{"android", "flutter", "ios", "kotlin", "react-native", "swift"} // by name
		if got, total, _ := slugs(t, "sources", `(category: "Mobile")`); !reflect.DeepEqual(got, want) || total != len(want) {
			t.Errorf("Mobile: %v (total %d), want %v", got, total, want)
		}
		if got, _, _ := slugs(t, "sources", `(category: "Mobile", search: "swift")`); !reflect.DeepEqual(got, []string{"ios", "swift"}) {
			t.Errorf("Mobile + swift: %v", got)
		}
		if got, _, _ := slugs(t, "destinations", `(category: "raw data")`); !reflect.DeepEqual(got, []string{"segment", "webhook"}) {
			t.Errorf("destinations Raw Data: %v", got)
		}
		if got, _, _ := slugs(t, "destinations", `(category: "Website")`); len(got) != 0 {
			t.Errorf("destinations Website: %v", got)
		}
	})
	t.Run("Pagination", func(t *testing.T) {
		all, total, info := slugs(t, "sources", `(first: 100)`)
		if total != 20 || len(all) != 20 || itBool(info, "hasNextPage") {
			t.Fatalf("first 100: %d of %d, %v", len(all), total, info)
		}
		var paged []string
		after := ""
		for page := 0; ; page++ {
			args := `(first: 4)`
			if after != "" {
				args = fmt.Sprintf(`(first: 4, after: %q)`, after)
			}
			got, total, info := slugs(t, "sources", args)
			if total != 20 {
				t.Errorf("page %d: totalCount %d, want 20", page, total)
			}
			if page > 0 && !itBool(info, "hasPreviousPage") {
				t.Errorf("page %d: hasPreviousPage false", page)
			}
			paged = append(paged, got...)
			if !itBool(info, "hasNextPage") {
				break
			}
			if len(got) != 4 || page > 4 {
				t.Fatalf("page %d: %v", page, got)
			}
			after = itStr(info, "endCursor")
		}
		if !reflect.DeepEqual(paged, all) {
			t.Errorf("pages %v, want %v", paged, all)
		}
	})
	t.Run("Categories", func(t *testing.T) {
		d := anon.data(t, `{ catalog { sourceCategories destinationCategories } }`, nil)
		if got := itPluck(itList(d, "catalog.sourceCategories"), ""); !reflect.DeepEqual(got, []string{"CRM", "Custom", "Developer Tools", "E-commerce", "Mobile", "Payments", "Server", "Website"}) {
			t.Errorf("sourceCategories %v", got)
		}
		if got := itPluck(itList(d, "catalog.destinationCategories"), ""); !reflect.DeepEqual(got, []string{"Analytics", "Notifications", "Raw Data", "Warehouse"}) {
			t.Errorf("destinationCategories %v", got)
		}
	})
	t.Run("NewAndNoteworthyNewestFirst", func(t *testing.T) {
		d := anon.data(t, `{ catalog { all: newAndNoteworthy(limit: 100) { slug addedAt } top: newAndNoteworthy { slug } } }`, nil)
		all := itList(d, "catalog.all")
		if len(all) != 27 { // 20 sources and 7 destinations
			t.Errorf("newAndNoteworthy(limit: 100): %d entries, want 27", len(all))
		}
		for i := 1; i < len(all); i++ {
			if itStr(all[i], "addedAt") > itStr(all[i-1], "addedAt") {
				t.Errorf("%s (%s) after %s (%s)", itStr(all[i], "slug"), itStr(all[i], "addedAt"), itStr(all[i-1], "slug"), itStr(all[i-1], "addedAt"))
			}
		}
		if itStr(all, "0.slug") != "github" {
			t.Errorf("newest is %s, want github", itStr(all, "0.slug"))
		}
		if top := itList(d, "catalog.top"); len(top) != 6 || !reflect.DeepEqual(itPluck(top, "slug"), itPluck(all[:6], "slug")) {
			t.Errorf("default limit: %v", itPluck(top, "slug"))
		}
		if r := anon.post(t, `{ catalog { newAndNoteworthy(limit: 101) { slug } } }`, nil); len(r.Errors) == 0 {
			t.Errorf("limit 101 accepted: %s", r.Raw)
		}
	})
	t.Run("EntryBySlug", func(t *testing.T) {
		d := anon.data(t, `{ catalog { webhook: entry(slug: "webhook") { id slug name categories status sourceType }
			js: entry(slug: "javascript") { id sourceType categories } none: entry(slug: "nope") { id } } }`, nil)
		if got := itObj(d, "catalog.webhook"); itStr(got, "id") != "cat_webhook" || itStr(got, "name") != "Webhook" ||
			itStr(got, "status") != "PUBLIC" || itAt(got, "sourceType") != nil || itStr(got, "categories.0") != "Raw Data" {
			t.Errorf("webhook: %s", itJSON(got))
		}
		if got := itObj(d, "catalog.js"); itStr(got, "id") != "cat_javascript" || itStr(got, "sourceType") != "WEBSITE" {
			t.Errorf("javascript: %s", itJSON(got))
		}
		if itAt(d, "catalog.none") != nil {
			t.Errorf("entry(nope): %s", itJSON(itAt(d, "catalog.none")))
		}
	})
	t.Run("NodeWorksAnonymously", func(t *testing.T) {
		n := anon.node(t, "cat_webhook", `... on CatalogEntry { slug name }`)
		if itStr(n, "id") != "cat_webhook" || itStr(n, "slug") != "webhook" {
			t.Errorf("node(cat_webhook): %s", itJSON(n))
		}
		if n := anon.node(t, "cat_nope", ``); n != nil {
			t.Errorf("node(cat_nope): %s", itJSON(n))
		}
	})
	t.Run("SourceInstructionsMentionWriteKey", func(t *testing.T) {
		d := anon.data(t, `{ catalog { sources(first: 100) { nodes { slug instructions sourceType } } destinations(first: 100) { nodes { slug sourceType } } } }`, nil)
		srcs := itList(d, "catalog.sources.nodes")
		if len(srcs) != 20 {
			t.Fatalf("%d sources", len(srcs))
		}
		for _, e := range srcs {
			if itStr(e, "sourceType") == "CLOUD_APP" {
				if !strings.Contains(itStr(e, "instructions"), "/v1/webhooks/SOURCE_ID") {
					t.Errorf("%s: instructions do not give the inbound URL", itStr(e, "slug"))
				}
				continue
			}
			if !strings.Contains(itStr(e, "instructions"), "WRITE_KEY") {
				t.Errorf("%s: instructions do not show where the write key goes", itStr(e, "slug"))
			}
			if itStr(e, "sourceType") == "" {
				t.Errorf("%s: no sourceType", itStr(e, "slug"))
			}
		}
		for _, e := range itList(d, "catalog.destinations.nodes") {
			if itAt(e, "sourceType") != nil {
				t.Errorf("destination %s has a sourceType", itStr(e, "slug"))
			}
		}
	})
	t.Run("SettingsDefinitionsExposed", func(t *testing.T) {
		d := anon.data(t, `{ catalog { webhook: entry(slug: "webhook") { settings { name label type required secret default description options min max } }
			js: entry(slug: "javascript") { settings { name type required secret default } } } }`, nil)
		byName := map[string]any{}
		for _, st := range itList(d, "catalog.webhook.settings") {
			byName[itStr(st, "name")] = st
		}
		want := map[string]string{
			"url":            `{"default":null,"max":null,"min":null,"options":null,"required":true,"secret":false,"type":"URL"}`,
			"method":         `{"default":"POST","max":null,"min":null,"options":["POST","PUT","PATCH"],"required":false,"secret":false,"type":"SELECT"}`,
			"headers":        `{"default":{},"max":null,"min":null,"options":null,"required":false,"secret":true,"type":"HEADERS"}`,
			"sharedSecret":   `{"default":null,"max":null,"min":null,"options":null,"required":false,"secret":true,"type":"STRING"}`,
			"timeoutSeconds": `{"default":10,"max":30,"min":1,"options":null,"required":false,"secret":false,"type":"NUMBER"}`,
			"eventTypes":     `{"default":[],"max":null,"min":null,"options":["track","identify","page","screen","group","alias"],"required":false,"secret":false,"type":"LIST"}`,
		}
		if len(byName) != len(want) {
			t.Errorf("webhook settings %v", itJSON(itList(d, "catalog.webhook.settings")))
		}
		for name, w := range want {
			st, _ := byName[name].(map[string]any)
			got := map[string]any{}
			for _, k := range []string{"type", "required", "secret", "default", "options", "min", "max"} {
				got[k] = st[k]
			}
			if itJSON(got) != w {
				t.Errorf("setting %s: %s, want %s", name, itJSON(got), w)
			}
			if itStr(st, "label") == "" || itStr(st, "description") == "" {
				t.Errorf("setting %s without label or description", name)
			}
		}
		if got := itJSON(itList(d, "catalog.js.settings")); got != `[{"default":false,"name":"strictMode","required":false,"secret":false,"type":"BOOLEAN"}]` {
			t.Errorf("javascript settings %s", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 2. Settings validation

func TestIntegrationsSettingsValidation(t *testing.T) {
	s := startServer(t)
	owner, _, wsID := itOwner(t, s, "owner@example.com", "acme")
	counts := func(t *testing.T) (sources, destinations int) {
		t.Helper()
		w := owner.workspace(t, "acme", `sources { totalCount } destinations { totalCount }`)
		return int(itNum(w, "sources.totalCount")), int(itNum(w, "destinations.totalCount"))
	}
	// refuse runs a mutation that must return userErrors and checks that nothing was created.
	refuse := func(t *testing.T, name string, input map[string]any) []itUserError {
		t.Helper()
		s0, d0 := counts(t)
		errs := owner.userErrors(t, name, input)
		if s1, d1 := counts(t); s1 != s0 || d1 != d0 {
			t.Errorf("%s refused, but sources %d -> %d and destinations %d -> %d", name, s0, s1, d0, d1)
		}
		return errs
	}
	webhook := func(settings any) map[string]any {
		return map[string]any{"workspaceId": wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": settings}
	}
	withURL := func(k string, v any) map[string]any {
		return map[string]any{"url": "https://hooks.example.com/x", k: v}
	}

	for _, tc := range []struct {
		name        string
		settings    any
		field, code string
		rule        string
	}{
		{"URLWrongType", map[string]any{"url": 42}, "settings.url", "INVALID", "must be a URL string"},
		{"URLNotAbsolute", map[string]any{"url": "/hook"}, "settings.url", "INVALID", "must be an absolute http or https URL"},
		{"URLWrongScheme", map[string]any{"url": "ftp://example.com/hook"}, "settings.url", "INVALID", "must be an absolute http or https URL"},
		{"SelectNotAnOption", withURL("method", "GET"), "settings.method", "INVALID", "must be one of POST, PUT, PATCH"},
		{"SelectWrongType", withURL("method", true), "settings.method", "INVALID", "must be one of POST, PUT, PATCH"},
		{"HeadersWrongType", withURL("headers", []any{"X-Key"}), "settings.headers", "INVALID", "must be an object of header names to values"},
		{"HeadersValueWrongType", withURL("headers", map[string]any{"X-Key": 1}), "settings.headers", "INVALID", `"X-Key" is not a string`},
		{"HeadersBadName", withURL("headers", map[string]any{"X Key": "v"}), "settings.headers", "INVALID", `header name "X Key" is not a valid name`},
		{"HeadersLineBreak", withURL("headers", map[string]any{"X-Key": "v\nX-Other: w"}), "settings.headers", "INVALID", "line break"},
		{"SecretStringWrongType", withURL("sharedSecret", 12345), "settings.sharedSecret", "INVALID", "must be a string"},
		{"SecretStringTooLong", withURL("sharedSecret", strings.Repeat("s", 2001)), "settings.sharedSecret", "INVALID", "must be at most 2000 characters"},
		{"NumberWrongType", withURL("timeoutSeconds", "ten"), "settings.timeoutSeconds", "INVALID", "must be a number"},
		{"NumberBelowRange", withURL("timeoutSeconds", 0), "settings.timeoutSeconds", "INVALID", "must be between 1 and 30"},
		{"NumberAboveRange", withURL("timeoutSeconds", 30.5), "settings.timeoutSeconds", "INVALID", "must be between 1 and 30"},
		{"ListWrongType", withURL("eventTypes", "track"), "settings.eventTypes", "INVALID", "must be a list of strings"},
		{"ListItemWrongType", withURL("eventTypes", []any{"track", 1}), "settings.eventTypes", "INVALID", "item 1 is not a string"},
		{"ListItemNotAnOption", withURL("eventTypes", []any{"track", "purchase"}), "settings.eventTypes", "INVALID",
			`item "purchase" must be one of track, identify, page, screen, group, alias`},
		{"RequiredMissing", map[string]any{"method": "PUT"}, "settings.url", "REQUIRED", "settings.url (Webhook URL) is required"},
		{"RequiredNull", map[string]any{"url": nil}, "settings.url", "REQUIRED", "is required"},
		{"RequiredWithSettingsOmitted", nil, "settings.url", "REQUIRED", "is required"},
		{"UnknownField", withURL("colour", "red"), "settings.colour", "INVALID", "is not a setting of Webhook; its settings are: url, method"},
		{"UnknownFieldNull", withURL("colour", nil), "settings.colour", "INVALID", "is not a setting of Webhook"},
	} {
		t.Run("Destination"+tc.name, func(t *testing.T) {
			itWantUserError(t, refuse(t, "destinationCreate", webhook(tc.settings)), tc.field, tc.code, tc.rule)
		})
	}

	source := func(settings any) map[string]any {
		return map[string]any{"workspaceId": wsID, "catalogId": "cat_javascript", "name": "Site", "settings": settings}
	}
	t.Run("SourceBooleanWrongType", func(t *testing.T) {
		for _, v := range []any{"yes", 1, []any{true}} {
			itWantUserError(t, refuse(t, "sourceCreate", source(map[string]any{"strictMode": v})), "settings.strictMode", "INVALID", "must be true or false")
		}
	})
	t.Run("SourceUnknownField", func(t *testing.T) {
		itWantUserError(t, refuse(t, "sourceCreate", source(map[string]any{"strictMode": true, "writeKey": "x"})),
			"settings.writeKey", "INVALID", "is not a setting of JavaScript; its settings are: strictMode")
	})
	t.Run("SettingsNotAnObject", func(t *testing.T) {
		for _, v := range []any{"https://hooks.example.com/x", []any{map[string]any{"url": "https://hooks.example.com/x"}}, 3} {
			itWantUserError(t, refuse(t, "destinationCreate", webhook(v)), "settings", "INVALID", "must be a JSON object")
			itWantUserError(t, refuse(t, "sourceCreate", source(v)), "settings", "INVALID", "must be a JSON object")
		}
	})
	t.Run("UnknownCatalogID", func(t *testing.T) {
		for _, tc := range []struct{ mutation, catalogID string }{
			{"destinationCreate", "cat_nope"}, {"destinationCreate", "cat_javascript"}, {"destinationCreate", ""},
			{"sourceCreate", "cat_nope"}, {"sourceCreate", "cat_webhook"},
		} {
			in := webhook(map[string]any{"url": "https://hooks.example.com/x"})
			if tc.mutation == "sourceCreate" {
				in = source(nil)
			}
			in["catalogId"] = tc.catalogID
			errs := refuse(t, tc.mutation, in)
			if len(errs) != 1 || errs[0].Field != "catalogId" || errs[0].Code != "INVALID" || !strings.Contains(errs[0].Message, "catalogId") {
				t.Errorf("%s with catalogId %q: %+v", tc.mutation, tc.catalogID, errs)
			}
		}
	})
	t.Run("EveryProblemReported", func(t *testing.T) {
		errs := refuse(t, "destinationCreate", webhook(map[string]any{"url": "/x", "timeoutSeconds": 99, "method": "GET", "colour": "red"}))
		var fields []string
		for _, e := range errs {
			fields = append(fields, e.Field)
		}
		if want := []string{"settings.colour", "settings.method", "settings.timeoutSeconds", "settings.url"}; !reflect.DeepEqual(itSorted(fields), want) {
			t.Errorf("fields %v, want %v", fields, want)
		}
	})
	t.Run("DefaultsFilledIn", func(t *testing.T) {
		d := itDestination(t, owner, wsID, "Defaults", map[string]any{"url": "https://hooks.example.com/defaults"})
		if got, want := itJSON(d["settings"]), `{"eventTypes":[],"headers":{},"method":"POST","timeoutSeconds":10,"url":"https://hooks.example.com/defaults"}`; got != want {
			t.Errorf("settings %s, want %s", got, want)
		}
		if got := itJSON(d["secretSettings"]); got != `[{"isSet":false,"name":"headers"},{"isSet":false,"name":"sharedSecret"}]` {
			t.Errorf("secretSettings %s", got)
		}
		src := itSource(t, owner, wsID, "cat_javascript", "Defaults")
		if got := itJSON(src["settings"]); got != `{"strictMode":false}` {
			t.Errorf("source settings %s", got)
		}
		// Given values are kept in their normal form; header values are secret.
		d = itDestination(t, owner, wsID, "Given", map[string]any{"url": "https://hooks.example.com/given", "method": "PUT",
			"headers": map[string]any{"X-Key": "k"}, "timeoutSeconds": 30, "eventTypes": []any{"track", "page"}})
		if got, want := itJSON(d["settings"]), `{"eventTypes":["track","page"],"headers":{"X-Key":"••••••••"},"method":"PUT","timeoutSeconds":30,"url":"https://hooks.example.com/given"}`; got != want {
			t.Errorf("settings %s, want %s", got, want)
		}
	})
	t.Run("UpdateValidated", func(t *testing.T) {
		d := itDestination(t, owner, wsID, "Updated", nil)
		before := itJSON(d["settings"])
		update := func(settings any) map[string]any {
			return map[string]any{"destinationId": d["id"], "settings": settings}
		}
		for _, tc := range []struct {
			settings          any
			field, code, rule string
		}{
			{map[string]any{"timeoutSeconds": 31}, "settings.timeoutSeconds", "INVALID", "must be between 1 and 30"},
			{map[string]any{"method": "GET"}, "settings.method", "INVALID", "must be one of POST, PUT, PATCH"},
			{map[string]any{"headers": "X-Key: k"}, "settings.headers", "INVALID", "must be an object of header names to values"},
			{map[string]any{"eventTypes": []any{"purchase"}}, "settings.eventTypes", "INVALID", `item "purchase" must be one of`},
			{map[string]any{"sharedSecret": false}, "settings.sharedSecret", "INVALID", "must be a string"},
			{map[string]any{"url": "not a url"}, "settings.url", "INVALID", "must be an absolute http or https URL"},
			{map[string]any{"url": nil}, "settings.url", "REQUIRED", "is required"},
			{map[string]any{"colour": "red"}, "settings.colour", "INVALID", "is not a setting of Webhook"},
			{"timeoutSeconds=5", "settings", "INVALID", "must be a JSON object"},
		} {
			itWantUserError(t, refuse(t, "destinationUpdate", update(tc.settings)), tc.field, tc.code, tc.rule)
		}
		if got := itJSON(owner.node(t, itStr(d, "id"), `... on Destination { settings }`)["settings"]); got != before {
			t.Errorf("refused updates changed the settings: %s, was %s", got, before)
		}
		// A valid update replaces the keys given and keeps the others.
		p := owner.mutate(t, "destinationUpdate", update(map[string]any{"timeoutSeconds": 20, "method": "PATCH"}))
		if got := itObj(p, "destination.settings"); itNum(got, "timeoutSeconds") != 20 || itStr(got, "method") != "PATCH" || itStr(got, "url") != itStr(d, "settings.url") {
			t.Errorf("after update: %s", itJSON(got))
		}
	})
	t.Run("SourceUpdateValidated", func(t *testing.T) {
		src := itSource(t, owner, wsID, "cat_node", "Server")
		itWantUserError(t, refuse(t, "sourceUpdate", map[string]any{"sourceId": src["id"], "settings": map[string]any{"strictMode": "no"}}),
			"settings.strictMode", "INVALID", "must be true or false")
		p := owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": src["id"], "settings": map[string]any{"strictMode": true}})
		if got := itJSON(itAt(p, "source.settings")); got != `{"strictMode":true}` {
			t.Errorf("settings %s", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 3. Secret settings

// serverKey is the key with which the server s seals secret settings, found as the server finds it.
func serverKey(s *server) ([]byte, error) {
	return secret.LoadKey(s.Config.EncryptionKey, filepath.Join(filepath.Dir(s.App.DB().Path()), "encryption.key"))
}

func TestIntegrationsSecrets(t *testing.T) {
	s := startServer(t)
	owner, _, wsA := itOwner(t, s, "owner@example.com", "acme")
	wsB := itWorkspaceCreate(t, owner, "other")
	first, second, other := "whsec-first-"+itRandom(t), "whsec-second-"+itRandom(t), "whsec-other-"+itRandom(t)
	url := "https://hooks.example.com/" + itRandom(t)
	var responses []string // every answer the API gave in this test
	keep := func(r gqlResponse) gqlResponse { responses = append(responses, r.Raw); return r }
	mutate := func(t *testing.T, name string, input map[string]any) map[string]any {
		t.Helper()
		r := keep(owner.run(t, name, input))
		p := itObj(itData(t, r), name)
		if ue := itList(p, "userErrors"); len(ue) > 0 {
			t.Fatalf("%s: %s", name, itJSON(ue))
		}
		return p
	}
	read := func(t *testing.T, query string, vars map[string]any) map[string]any {
		t.Helper()
		return itData(t, keep(owner.post(t, query, vars)))
	}
	d := itObj(mutate(t, "destinationCreate", map[string]any{"workspaceId": wsA, "catalogId": "cat_webhook", "name": "Signed",
		"settings": map[string]any{"url": url, "sharedSecret": first}}), "destination")
	dstID := itStr(d, "id")

	key, err := serverKey(s)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	// The delivery engine's way to read secrets: Service.Secrets. It needs only the database and
	// the box.
	service := destination.New(s.App.DB(), catalog.MustLoad(), nil, nil, box, nil)
	stored := func(t *testing.T, dstID, wsID string) (map[string]string, error) {
		t.Helper()
		return service.Secrets(context.Background(), &destination.Destination{ID: dstID, WorkspaceID: wsID})
	}
	wantStored := func(t *testing.T, want string) {
		t.Helper()
		got, err := stored(t, dstID, wsA)
		if err != nil || got["sharedSecret"] != want {
			t.Errorf("stored secret %q (%v), want %q", got["sharedSecret"], err, want)
		}
	}
	const destFields = `settings secretSettings { name isSet }`
	wantMasked := func(t *testing.T, dst map[string]any, isSet bool) {
		t.Helper()
		settings := itObj(dst, "settings")
		if v, ok := settings["sharedSecret"]; isSet && v != destination.Mask || !isSet && ok {
			t.Errorf("settings.sharedSecret = %v (present %v), want the mask only when set (%v)", v, ok, isSet)
		}
		// The Webhook's headers are a secret setting too, not set here.
		if got, want := itJSON(dst["secretSettings"]), fmt.Sprintf(`[{"isSet":false,"name":"headers"},{"isSet":%v,"name":"sharedSecret"}]`, isSet); got != want {
			t.Errorf("secretSettings %s, want %s", got, want)
		}
	}

	t.Run("MaskedInEveryRead", func(t *testing.T) {
		wantMasked(t, d, true)
		wantMasked(t, itObj(read(t, `query($id: ID!) { node(id: $id) { ... on Destination { `+destFields+` } } }`, map[string]any{"id": dstID}), "node"), true)
		w := itObj(read(t, `{ workspace(slug: "acme") { destinations { nodes { `+destFields+` } }
			overview { nodes { node { ... on Destination { `+destFields+` } } } } } }`, nil), "workspace")
		wantMasked(t, itObj(w, "destinations.nodes.0"), true)
		wantMasked(t, itObj(w, "overview.nodes.0.node"), true)
		wantStored(t, first)
	})
	t.Run("KeptWhenLeftOut", func(t *testing.T) {
		p := mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "name": "Signed hook", "settings": map[string]any{"timeoutSeconds": 20}})
		wantMasked(t, itObj(p, "destination"), true)
		wantStored(t, first)
	})
	t.Run("KeptWhenGivenTheMask", func(t *testing.T) {
		p := mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"sharedSecret": destination.Mask, "timeoutSeconds": 21}})
		wantMasked(t, itObj(p, "destination"), true)
		wantStored(t, first)
	})
	t.Run("KeptWhenSettingsOmitted", func(t *testing.T) {
		p := mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "name": "Signed"})
		wantMasked(t, itObj(p, "destination"), true)
		wantStored(t, first)
	})
	t.Run("ChangedWithNewValue", func(t *testing.T) {
		p := mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"sharedSecret": second}})
		wantMasked(t, itObj(p, "destination"), true)
		wantStored(t, second)
	})
	t.Run("ClearedWithNull", func(t *testing.T) {
		p := mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"sharedSecret": nil}})
		wantMasked(t, itObj(p, "destination"), false)
		got, err := stored(t, dstID, wsA)
		if err != nil || len(got) != 0 {
			t.Errorf("after clearing, stored secrets %v (%v)", got, err)
		}
		wantMasked(t, itObj(read(t, `query($id: ID!) { node(id: $id) { ... on Destination { `+destFields+` } } }`, map[string]any{"id": dstID}), "node"), false)
		// And set again, for the checks below.
		mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"sharedSecret": first}})
		wantStored(t, first)
	})
	t.Run("AuditTrailNamesButNeverShowsSecrets", func(t *testing.T) {
		ev := itList(read(t, `query($id: ID!) { workspace(slug: "acme") { auditEvents(first: 100, filter: {resourceId: $id}) { nodes { type changes } } } }`,
			map[string]any{"id": dstID}), "workspace.auditEvents.nodes")
		types := itPluck(ev, "type")
		if want := []string{"DESTINATION_UPDATED", "DESTINATION_UPDATED", "DESTINATION_UPDATED", "DESTINATION_UPDATED", "DESTINATION_UPDATED", "DESTINATION_UPDATED", "DESTINATION_CREATED"}; !reflect.DeepEqual(types, want) {
			t.Errorf("events %v, want %v", types, want)
		}
		all := itJSON(ev)
		if !strings.Contains(all, `"secretsSet":["sharedSecret"]`) || !strings.Contains(all, `"secretsChanged":["sharedSecret"]`) ||
			!strings.Contains(all, `"secretsCleared":["sharedSecret"]`) {
			t.Errorf("the audit trail does not name the secret changes: %s", all)
		}
	})

	t.Run("CiphertextUnusableInAnotherWorkspace", func(t *testing.T) {
		dB := itObj(mutate(t, "destinationCreate", map[string]any{"workspaceId": wsB, "catalogId": "cat_webhook", "name": "Other",
			"settings": map[string]any{"url": url, "sharedSecret": other}}), "destination")
		dstB := itStr(dB, "id")
		ctx := context.Background()
		var ciphertext string
		if err := s.App.DB().Get(ctx, &ciphertext, `SELECT ciphertext FROM destination_secrets WHERE destination_id = ? AND name = 'sharedSecret'`, dstID); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ciphertext, first) || !strings.HasPrefix(ciphertext, "v1:") {
			t.Fatalf("ciphertext %q", ciphertext)
		}
		if err := s.App.DB().Tx(ctx, func(tx *db.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE destination_secrets SET ciphertext = ? WHERE destination_id = ? AND name = 'sharedSecret'`, ciphertext, dstB)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("%d rows updated", n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, err := stored(t, dstB, wsB); !errors.Is(err, secret.ErrCorrupt) {
			t.Errorf("copied ciphertext under workspace %s: %v, %v; want ErrCorrupt", wsB, got, err)
		}
		// The same with the box directly: only the scope it was sealed for opens it.
		if _, err := box.Open(ciphertext, secret.Scope{WorkspaceID: wsB, OwnerID: dstB, Field: "sharedSecret"}); !errors.Is(err, secret.ErrCorrupt) {
			t.Errorf("box.Open under the other workspace's destination: %v, want ErrCorrupt", err)
		}
		if _, err := box.Open(ciphertext, secret.Scope{WorkspaceID: wsB, OwnerID: dstID, Field: "sharedSecret"}); !errors.Is(err, secret.ErrCorrupt) {
			t.Errorf("box.Open under the other workspace: %v, want ErrCorrupt", err)
		}
		if _, err := box.Open(ciphertext, secret.Scope{WorkspaceID: wsA, OwnerID: dstID, Field: "url"}); !errors.Is(err, secret.ErrCorrupt) {
			t.Errorf("box.Open under another field: %v, want ErrCorrupt", err)
		}
		if v, err := box.Open(ciphertext, secret.Scope{WorkspaceID: wsA, OwnerID: dstID, Field: "sharedSecret"}); err != nil || v != first {
			t.Errorf("box.Open under its own scope: %q, %v", v, err)
		}
		wantStored(t, first)
		// Reading the other destination through the API still works: secrets are never decrypted for it.
		wantMasked(t, itObj(read(t, `query($id: ID!) { node(id: $id) { ... on Destination { `+destFields+` } } }`, map[string]any{"id": dstB}), "node"), true)
	})

	secrets := []string{first, second, other}
	t.Run("NeverInResponses", func(t *testing.T) {
		// One more read of everything that shows destinations, to be sure.
		read(t, `{ workspace(slug: "acme") { destinations { nodes { id name settings secretSettings { name isSet } } }
			auditEvents(first: 100) { nodes { type changes } } } }`, nil)
		for _, raw := range responses {
			for _, sec := range secrets {
				if strings.Contains(raw, sec) {
					t.Fatalf("a response holds a secret: %s", raw)
				}
			}
		}
		if len(responses) < 10 {
			t.Errorf("only %d responses checked", len(responses))
		}
	})
	t.Run("NeverInLogs", func(t *testing.T) {
		logs := s.Logs.String()
		if !strings.Contains(logs, `"msg":"http request"`) {
			t.Fatal("no access logs captured")
		}
		for _, sec := range secrets {
			if strings.Contains(logs, sec) {
				t.Errorf("the logs hold secret %s", sec)
			}
		}
	})
	t.Run("NotInPlaintextInTheDatabase", func(t *testing.T) {
		stored := storedBytes(t, s)
		// The URL, stored in plaintext next to the secret, proves that the bytes read hold the rows.
		if !bytes.Contains(stored, []byte(url)) {
			t.Fatalf("the database (%d bytes) does not hold the destination's URL: not the right bytes?", len(stored))
		}
		for _, sec := range secrets {
			if bytes.Contains(stored, []byte(sec)) {
				t.Errorf("the database holds secret %s in plaintext", sec)
			}
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 4. Sources

func TestIntegrationsSources(t *testing.T) {
	s := startServer(t)
	owner, ownerID, wsID := itOwner(t, s, "owner@example.com", "acme")

	src := itSource(t, owner, wsID, "cat_javascript", "Website")
	srcID := itStr(src, "id")
	firstKey := itStr(src, "writeKeys.0.key")
	var secondKey string

	t.Run("CreateReturnsAWriteKey", func(t *testing.T) {
		if keys := itList(src, "writeKeys"); len(keys) != 1 || len(firstKey) < 32 || itAt(keys[0], "revokedAt") != nil {
			t.Errorf("writeKeys %s", itJSON(keys))
		}
		if itStr(src, "status") != "NEVER_RECEIVED" || !itBool(src, "enabled") || itStr(src, "type") != "WEBSITE" || itStr(src, "category") != "Website" ||
			itStr(src, "createdBy.id") != ownerID || !itBool(src, "viewerCanUpdate") || !itBool(src, "viewerCanDelete") || itAt(src, "lastSeenAt") != nil {
			t.Errorf("source %s", itJSON(src))
		}
		if !strings.HasPrefix(srcID, "src_") {
			t.Errorf("id %s", srcID)
		}
		other := itSource(t, owner, wsID, "cat_javascript", "Website 2")
		if itStr(other, "writeKeys.0.key") == firstKey {
			t.Error("two sources got the same write key")
		}
		owner.mutate(t, "sourceDelete", map[string]any{"sourceId": other["id"]})
	})
	t.Run("CreateDisabled", func(t *testing.T) {
		p := owner.mutate(t, "sourceCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_go", "name": "Off", "enabled": false})
		if itStr(p, "source.status") != "DISABLED" || itBool(p, "source.enabled") {
			t.Errorf("source %s", itJSON(p))
		}
		owner.mutate(t, "sourceDelete", map[string]any{"sourceId": itStr(p, "source.id")})
	})
	t.Run("WriteKeyCreateAddsOne", func(t *testing.T) {
		p := owner.mutate(t, "writeKeyCreate", map[string]any{"sourceId": srcID})
		secondKey = itStr(p, "writeKey.key")
		if secondKey == "" || secondKey == firstKey || itAt(p, "writeKey.revokedAt") != nil {
			t.Fatalf("writeKey %s", itJSON(p["writeKey"]))
		}
		if got := itPluck(itList(p, "source.writeKeys"), "key"); !reflect.DeepEqual(got, []string{firstKey, secondKey}) {
			t.Errorf("writeKeys %v, want the old one then the new one", got)
		}
	})
	t.Run("WriteKeyRevokeOfTheLastLiveKeyRefused", func(t *testing.T) {
		// A source with one key.
		one := itSource(t, owner, wsID, "cat_python", "Only key")
		errs := owner.userErrors(t, "writeKeyRevoke", map[string]any{"sourceId": one["id"], "key": itStr(one, "writeKeys.0.key")})
		if len(errs) != 1 || errs[0].Field != "key" || errs[0].Code != "NOT_ALLOWED" || !strings.Contains(errs[0].Message, "at least one write key") {
			t.Errorf("userErrors %+v", errs)
		}
		n := owner.node(t, itStr(one, "id"), `... on Source { writeKeys { key revokedAt } }`)
		if itAt(n, "writeKeys.0.revokedAt") != nil {
			t.Errorf("the last key was revoked: %s", itJSON(n))
		}
	})
	t.Run("WriteKeyRevokeOfAnOlderKey", func(t *testing.T) {
		p := owner.mutate(t, "writeKeyRevoke", map[string]any{"sourceId": srcID, "key": firstKey})
		keys := itList(p, "source.writeKeys")
		if len(keys) != 2 || itStr(keys[0], "key") != firstKey || itStr(keys[0], "revokedAt") == "" || itAt(keys[1], "revokedAt") != nil {
			t.Errorf("writeKeys %s", itJSON(keys))
		}
		// Now the second key is the last live one.
		errs := owner.userErrors(t, "writeKeyRevoke", map[string]any{"sourceId": srcID, "key": secondKey})
		if len(errs) != 1 || errs[0].Code != "NOT_ALLOWED" {
			t.Errorf("revoking the last live key: %+v", errs)
		}
		// A revoked or unknown key is not a live key.
		for _, k := range []string{firstKey, "no-such-key"} {
			errs := owner.userErrors(t, "writeKeyRevoke", map[string]any{"sourceId": srcID, "key": k})
			if len(errs) != 1 || errs[0].Field != "key" || errs[0].Code != "INVALID" {
				t.Errorf("revoking %s: %+v", k, errs)
			}
		}
	})
	t.Run("DisableAndEnable", func(t *testing.T) {
		p := owner.mutate(t, "sourceDisable", map[string]any{"sourceId": srcID})
		if itStr(p, "source.status") != "DISABLED" || itBool(p, "source.enabled") {
			t.Errorf("after disable: %s", itJSON(p))
		}
		p = owner.mutate(t, "sourceDisable", map[string]any{"sourceId": srcID}) // already disabled: no change
		if itStr(p, "source.status") != "DISABLED" {
			t.Errorf("after disabling twice: %s", itJSON(p))
		}
		p = owner.mutate(t, "sourceEnable", map[string]any{"sourceId": srcID})
		if itStr(p, "source.status") != "NEVER_RECEIVED" || !itBool(p, "source.enabled") {
			t.Errorf("after enable: %s", itJSON(p))
		}
	})
	t.Run("LabelsNormalised", func(t *testing.T) {
		p := owner.mutate(t, "sourceCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_ios", "name": "Labelled",
			"labels": []any{"Environment:Prod", "environment:prod", "  Team:Web  ", "team:web"}})
		if got := itPluck(itList(p, "source.labels"), ""); !reflect.DeepEqual(got, []string{"environment:prod", "team:web"}) {
			t.Errorf("labels %v", got)
		}
		id := itStr(p, "source.id")
		p = owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": id, "labels": []any{"REGION:EU", "region:eu"}})
		if got := itPluck(itList(p, "source.labels"), ""); !reflect.DeepEqual(got, []string{"region:eu"}) {
			t.Errorf("labels after update %v", got)
		}
		for _, bad := range []string{"prod", ":prod", "environment:", strings.Repeat("k", 60) + ":" + strings.Repeat("v", 60)} {
			errs := owner.userErrors(t, "sourceUpdate", map[string]any{"sourceId": id, "labels": []any{"team:web", bad}})
			if len(errs) != 1 || errs[0].Field != "labels" || errs[0].Code != "INVALID" || !strings.Contains(errs[0].Message, "labels[1]") {
				t.Errorf("label %q: %+v", bad, errs)
			}
		}
		// Refused updates leave the labels, and the label filter, alone.
		n := owner.node(t, id, `... on Source { labels }`)
		if got := itPluck(itList(n, "labels"), ""); !reflect.DeepEqual(got, []string{"region:eu"}) {
			t.Errorf("labels after refused updates %v", got)
		}
		w := owner.workspace(t, "acme", `sources(filter: {label: "team:web"}) { totalCount }`)
		if itNum(w, "sources.totalCount") != 0 {
			t.Error("a refused label update changed the label index")
		}
		owner.mutate(t, "sourceDelete", map[string]any{"sourceId": id})
	})
	t.Run("Filters", func(t *testing.T) {
		// A workspace of its own, so that the lists hold only these four.
		s2c, _, ws := itOwner(t, s, "filters@example.com", "filters")
		itSource(t, s2c, ws, "cat_javascript", "Web Prod", "environment:prod", "team:web")
		itSource(t, s2c, ws, "cat_node", "API Staging", "environment:staging")
		itSource(t, s2c, ws, "cat_ios", "iOS App", "environment:prod")
		old := itSource(t, s2c, ws, "cat_python", "Old Python")
		s2c.mutate(t, "sourceDisable", map[string]any{"sourceId": old["id"]})
		names := func(filter string) []string {
			t.Helper()
			w := s2c.workspace(t, "filters", `sources(filter: `+filter+`) { totalCount nodes { name } }`)
			n := itPluck(itList(w, "sources.nodes"), "name")
			if int(itNum(w, "sources.totalCount")) != len(n) {
				t.Errorf("filter %s: totalCount %v for %d nodes", filter, itNum(w, "sources.totalCount"), len(n))
			}
			return n
		}
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{`{}`, []string{"API Staging", "iOS App", "Old Python", "Web Prod"}},
			{`{label: "environment:prod"}`, []string{"iOS App", "Web Prod"}},
			{`{label: "Environment:PROD"}`, []string{"iOS App", "Web Prod"}},
			{`{label: "team:web"}`, []string{"Web Prod"}},
			{`{label: "environment:dev"}`, nil},
			{`{type: SERVER}`, []string{"API Staging", "Old Python"}},
			{`{type: MOBILE}`, []string{"iOS App"}},
			{`{type: CLOUD_APP}`, nil},
			{`{category: "Website"}`, []string{"Web Prod"}},
			{`{category: "mobile"}`, []string{"iOS App"}},
			{`{status: DISABLED}`, []string{"Old Python"}},
			{`{status: NEVER_RECEIVED}`, []string{"API Staging", "iOS App", "Web Prod"}},
			{`{status: RECEIVING}`, nil},
			{`{search: "PROD"}`, []string{"Web Prod"}},
			{`{search: "app"}`, []string{"iOS App"}},
			{`{search: "%"}`, nil},
			{`{search: "_"}`, nil},
			{`{type: SERVER, status: DISABLED}`, []string{"Old Python"}},
			{`{label: "environment:prod", type: MOBILE}`, []string{"iOS App"}},
		} {
			// Compared as sets: this is about what each filter keeps, not about the order.
			if got := itSorted(names(tc.filter)); !reflect.DeepEqual(got, itSorted(tc.want)) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("filter %s: %v, want %v", tc.filter, got, tc.want)
			}
		}
	})
	t.Run("Rename", func(t *testing.T) {
		p := owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": srcID, "name": "  Marketing site  "})
		if itStr(p, "source.name") != "Marketing site" || itStr(p, "source.updatedBy.id") != ownerID {
			t.Errorf("after rename: %s", itJSON(p))
		}
		for _, bad := range []string{"", "   ", strings.Repeat("n", 101)} {
			errs := owner.userErrors(t, "sourceUpdate", map[string]any{"sourceId": srcID, "name": bad})
			if len(errs) != 1 || errs[0].Field != "name" {
				t.Errorf("name %q: %+v", bad, errs)
			}
		}
		if n := owner.node(t, srcID, `... on Source { name }`); itStr(n, "name") != "Marketing site" {
			t.Errorf("name %s", itJSON(n))
		}
	})
	t.Run("DeleteRemovesItsConnectionsAndKeys", func(t *testing.T) {
		doomed := itSource(t, owner, wsID, "cat_ruby", "Doomed")
		dst := itDestination(t, owner, wsID, "Kept", nil)
		conn := itConnect(t, owner, itStr(doomed, "id"), itStr(dst, "id"))
		if itStr(conn, "destination.status") != "SENDING" {
			t.Errorf("connection %s", itJSON(conn))
		}
		p := owner.mutate(t, "sourceDelete", map[string]any{"sourceId": doomed["id"]})
		if itStr(p, "deletedSourceId") != itStr(doomed, "id") {
			t.Errorf("payload %s", itJSON(p))
		}
		if n := owner.node(t, itStr(doomed, "id"), ``); n != nil {
			t.Errorf("the source is still there: %s", itJSON(n))
		}
		if n := owner.node(t, itStr(conn, "id"), ``); n != nil {
			t.Errorf("its connection is still there: %s", itJSON(n))
		}
		n := owner.node(t, itStr(dst, "id"), `... on Destination { status sources { id } connections { id } }`)
		if itStr(n, "status") != "IDLE" || len(itList(n, "sources")) != 0 || len(itList(n, "connections")) != 0 {
			t.Errorf("the destination after its source was deleted: %s", itJSON(n))
		}
		var rows int
		if err := s.App.DB().Get(context.Background(), &rows, `SELECT (SELECT COUNT(*) FROM connections WHERE source_id = ?) +
			(SELECT COUNT(*) FROM write_keys WHERE source_id = ?) + (SELECT COUNT(*) FROM source_labels WHERE source_id = ?)`,
			doomed["id"], doomed["id"], doomed["id"]); err != nil || rows != 0 {
			t.Errorf("rows left behind: %d (%v)", rows, err)
		}
		if msg := owner.refused(t, "NOT_FOUND", "sourceDelete", map[string]any{"sourceId": doomed["id"]}); msg != "source not found" {
			t.Errorf("deleting again: %q", msg)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 5. Connections

func TestIntegrationsConnections(t *testing.T) {
	s := startServer(t)
	owner, _, wsID := itOwner(t, s, "owner@example.com", "acme")
	src := itSource(t, owner, wsID, "cat_javascript", "Website")
	dst := itDestination(t, owner, wsID, "Hook", nil)
	srcID, dstID := itStr(src, "id"), itStr(dst, "id")
	var connID string
	status := func(t *testing.T) string {
		t.Helper()
		return itStr(owner.node(t, dstID, `... on Destination { status }`), "status")
	}

	t.Run("NewDestinationIsIdle", func(t *testing.T) {
		if itStr(dst, "status") != "IDLE" || !itBool(dst, "enabled") || itStr(dst, "category") != "Raw Data" {
			t.Errorf("destination %s", itJSON(dst))
		}
	})
	t.Run("ConnectingMakesItSending", func(t *testing.T) {
		c := itConnect(t, owner, srcID, dstID)
		connID = itStr(c, "id")
		if !strings.HasPrefix(connID, "conn_") || !itBool(c, "enabled") || itStr(c, "source.id") != srcID ||
			itStr(c, "destination.id") != dstID || itStr(c, "destination.status") != "SENDING" || !itBool(c, "viewerCanUpdate") {
			t.Errorf("connection %s", itJSON(c))
		}
	})
	t.Run("ListedOnBothEnds", func(t *testing.T) {
		n := owner.node(t, srcID, `... on Source { destinations { id } connections { id destination { id } } }`)
		if got := itPluck(itList(n, "destinations"), "id"); !reflect.DeepEqual(got, []string{dstID}) {
			t.Errorf("Source.destinations %v", got)
		}
		if got := itPluck(itList(n, "connections"), "id"); !reflect.DeepEqual(got, []string{connID}) {
			t.Errorf("Source.connections %v", got)
		}
		n = owner.node(t, dstID, `... on Destination { sources { id } connections { id source { id } } }`)
		if got := itPluck(itList(n, "sources"), "id"); !reflect.DeepEqual(got, []string{srcID}) {
			t.Errorf("Destination.sources %v", got)
		}
		if got := itPluck(itList(n, "connections"), "source.id"); !reflect.DeepEqual(got, []string{srcID}) {
			t.Errorf("Destination.connections %v", got)
		}
		c := owner.node(t, connID, `... on Connection { enabled createdBy { id } source { id } destination { id } }`)
		if itStr(c, "source.id") != srcID || itStr(c, "destination.id") != dstID || itStr(c, "createdBy.id") == "" {
			t.Errorf("node(connection) %s", itJSON(c))
		}
		w := owner.workspace(t, "acme", `overview { edges { id from to enabled } }`)
		if got := itJSON(itList(w, "overview.edges")); got != fmt.Sprintf(`[{"enabled":true,"from":%q,"id":%q,"to":%q}]`, srcID, connID, dstID) {
			t.Errorf("overview edges %s", got)
		}
	})
	t.Run("DuplicateIsTaken", func(t *testing.T) {
		errs := owner.userErrors(t, "connectionCreate", map[string]any{"sourceId": srcID, "destinationId": dstID})
		if len(errs) != 1 || errs[0].Field != "destinationId" || errs[0].Code != "TAKEN" {
			t.Errorf("userErrors %+v", errs)
		}
	})
	t.Run("DisablingTheConnectionMakesItIdle", func(t *testing.T) {
		p := owner.mutate(t, "connectionDisable", map[string]any{"connectionId": connID})
		if itBool(p, "connection.enabled") || itStr(p, "connection.destination.status") != "IDLE" {
			t.Errorf("after disable: %s", itJSON(p))
		}
		p = owner.mutate(t, "connectionEnable", map[string]any{"connectionId": connID})
		if !itBool(p, "connection.enabled") || itStr(p, "connection.destination.status") != "SENDING" {
			t.Errorf("after enable: %s", itJSON(p))
		}
	})
	t.Run("DisablingTheSourceMakesItIdle", func(t *testing.T) {
		owner.mutate(t, "sourceDisable", map[string]any{"sourceId": srcID})
		if got := status(t); got != "IDLE" {
			t.Errorf("status %s, want IDLE", got)
		}
		owner.mutate(t, "sourceEnable", map[string]any{"sourceId": srcID})
		if got := status(t); got != "SENDING" {
			t.Errorf("status %s, want SENDING", got)
		}
	})
	t.Run("DisablingTheDestinationMakesItDisabled", func(t *testing.T) {
		p := owner.mutate(t, "destinationDisable", map[string]any{"destinationId": dstID})
		if itStr(p, "destination.status") != "DISABLED" || itBool(p, "destination.enabled") {
			t.Errorf("after disable: %s", itJSON(p))
		}
		p = owner.mutate(t, "destinationEnable", map[string]any{"destinationId": dstID})
		if itStr(p, "destination.status") != "SENDING" {
			t.Errorf("after enable: %s", itJSON(p))
		}
	})
	t.Run("DestinationFilters", func(t *testing.T) {
		itDestination(t, owner, wsID, "Unconnected", nil)
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{`{status: SENDING}`, []string{"Hook"}},
			{`{status: IDLE}`, []string{"Unconnected"}},
			{`{status: DISABLED}`, nil},
			{`{status: FAILING}`, nil},
			{`{category: "raw data"}`, []string{"Hook", "Unconnected"}},
			{`{category: "Analytics"}`, nil},
			{`{search: "HOOK"}`, []string{"Hook"}},
			{`{search: "conn"}`, []string{"Unconnected"}},
			// Like sources' search, the text is matched literally: % and _ are not wildcards.
			{`{search: "%"}`, nil},
			{`{search: "_"}`, nil},
		} {
			w := owner.workspace(t, "acme", `destinations(filter: `+tc.filter+`) { totalCount nodes { name } }`)
			got := itPluck(itList(w, "destinations.nodes"), "name")
			if !reflect.DeepEqual(got, tc.want) && len(got)+len(tc.want) > 0 || int(itNum(w, "destinations.totalCount")) != len(got) {
				t.Errorf("filter %s: %v (totalCount %v), want %v", tc.filter, got, itNum(w, "destinations.totalCount"), tc.want)
			}
		}
	})
	t.Run("CreatedDisabled", func(t *testing.T) {
		d := itDestination(t, owner, wsID, "Later", nil)
		p := owner.mutate(t, "connectionCreate", map[string]any{"sourceId": srcID, "destinationId": d["id"], "enabled": false})
		if itBool(p, "connection.enabled") || itStr(p, "connection.destination.status") != "IDLE" {
			t.Errorf("connection %s", itJSON(p))
		}
	})
	t.Run("OtherWorkspaceRefusedAsNotFound", func(t *testing.T) {
		// The same owner owns both workspaces, and can see both objects: still no connection.
		ws2 := itWorkspaceCreate(t, owner, "other")
		src2 := itSource(t, owner, ws2, "cat_node", "Other source")
		dst2 := itDestination(t, owner, ws2, "Other hook", nil)
		never := owner.refused(t, "NOT_FOUND", "connectionCreate", map[string]any{"sourceId": srcID, "destinationId": id.New("dst")})
		if msg := owner.refused(t, "NOT_FOUND", "connectionCreate", map[string]any{"sourceId": srcID, "destinationId": dst2["id"]}); msg != never {
			t.Errorf("message %q, want the one for a destination that never existed, %q", msg, never)
		}
		if msg := owner.refused(t, "NOT_FOUND", "connectionCreate", map[string]any{"sourceId": src2["id"], "destinationId": dstID}); msg != never {
			t.Errorf("message %q, want %q", msg, never)
		}
		var mixed int
		if err := s.App.DB().Get(context.Background(), &mixed, `SELECT COUNT(*) FROM connections c JOIN sources s ON s.id = c.source_id
			JOIN destinations d ON d.id = c.destination_id WHERE s.workspace_id <> d.workspace_id OR c.workspace_id <> s.workspace_id`); err != nil || mixed != 0 {
			t.Errorf("%d connections across workspaces (%v)", mixed, err)
		}
		if got := itStr(owner.node(t, itStr(dst2, "id"), `... on Destination { status }`), "status"); got != "IDLE" {
			t.Errorf("the other workspace's destination is %s", got)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		p := owner.mutate(t, "connectionDelete", map[string]any{"connectionId": connID})
		if itStr(p, "deletedConnectionId") != connID {
			t.Errorf("payload %s", itJSON(p))
		}
		if n := owner.node(t, connID, ``); n != nil {
			t.Errorf("still there: %s", itJSON(n))
		}
		n := owner.node(t, dstID, `... on Destination { status sources { id } connections { id } }`)
		if itStr(n, "status") != "IDLE" || len(itList(n, "sources")) != 0 || len(itList(n, "connections")) != 0 {
			t.Errorf("destination after delete: %s", itJSON(n))
		}
		owner.refused(t, "NOT_FOUND", "connectionDelete", map[string]any{"connectionId": connID})
		// It can be connected again.
		itConnect(t, owner, srcID, dstID)
	})
	t.Run("DestinationDeleteRemovesItsConnections", func(t *testing.T) {
		p := owner.mutate(t, "destinationDelete", map[string]any{"destinationId": dstID})
		if itStr(p, "deletedDestinationId") != dstID {
			t.Errorf("payload %s", itJSON(p))
		}
		n := owner.node(t, srcID, `... on Source { destinations { name } connections { destination { name } } }`)
		if got := itPluck(itList(n, "destinations"), "name"); !reflect.DeepEqual(got, []string{"Later"}) {
			t.Errorf("Source.destinations after the delete: %v", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 6. Permissions: source admins, members, minimal members

func TestIntegrationsSourceAdminPermissions(t *testing.T) {
	s := startServer(t)
	owner, _, wsID := itOwner(t, s, "owner@example.com", "acme")
	prodWeb := itStr(itSource(t, owner, wsID, "cat_javascript", "Prod web", "environment:prod"), "id")
	prodAPI := itStr(itSource(t, owner, wsID, "cat_node", "Prod API", "Environment:Prod", "team:api"), "id")
	staging := itStr(itSource(t, owner, wsID, "cat_javascript", "Staging web", "environment:staging"), "id")
	hook := itStr(itDestination(t, owner, wsID, "Hook", nil), "id")
	prodConn := itStr(itConnect(t, owner, prodWeb, hook), "id")
	stagingConn := itStr(itConnect(t, owner, staging, hook), "id")
	stagingKey := itStr(owner.node(t, staging, `... on Source { writeKeys { key } }`), "writeKeys.0.key")

	sa, saUserID, saMembership := itMember(t, s, owner, wsID, "sa@example.com", "Source Admin", "MINIMAL")
	owner.data(t, `mutation($id: ID!) { memberGrantAdd(input: {membershipId: $id, role: SOURCE_ADMIN, label: "environment:prod"}) { membership { id } } }`,
		map[string]any{"id": saMembership})
	member, memberUserID, _ := itMember(t, s, owner, wsID, "member@example.com", "Member", "MEMBER")
	minimal, _, _ := itMember(t, s, owner, wsID, "minimal@example.com", "Minimal", "MINIMAL")

	const listQuery = `sources(first: 100) { totalCount nodes { id name viewerCanUpdate viewerCanDelete } }
		destinations { totalCount nodes { id viewerCanUpdate sources { id } connections { id viewerCanUpdate } } }
		overview { nodes { id kind } edges { id from to } }`
	never := map[string]string{"src": id.New("src"), "dst": id.New("dst"), "conn": id.New("conn")}

	t.Run("SourceAdminSeesOnlyProdSources", func(t *testing.T) {
		w := sa.workspace(t, "acme", listQuery)
		if got := itPluck(itList(w, "sources.nodes"), "id"); !reflect.DeepEqual(itSorted(got), itSorted([]string{prodWeb, prodAPI})) {
			t.Errorf("sources %v, want the two prod ones", got)
		}
		for _, n := range itList(w, "sources.nodes") {
			if !itBool(n, "viewerCanUpdate") || !itBool(n, "viewerCanDelete") {
				t.Errorf("viewerCan... false on its own source %s", itJSON(n))
			}
		}
		if n := sa.node(t, staging, ``); n != nil {
			t.Errorf("node(staging) %s", itJSON(n))
		}
		if n := sa.node(t, stagingConn, ``); n != nil {
			t.Errorf("node(staging connection) %s", itJSON(n))
		}
	})
	t.Run("SourceAdminOverview", func(t *testing.T) {
		w := sa.workspace(t, "acme", listQuery)
		var nodes []string
		for _, n := range itList(w, "overview.nodes") {
			nodes = append(nodes, itStr(n, "kind")+" "+itStr(n, "id"))
		}
		want := []string{"DESTINATION " + hook, "SOURCE " + prodAPI, "SOURCE " + prodWeb}
		if !reflect.DeepEqual(itSorted(nodes), itSorted(want)) {
			t.Errorf("overview nodes %v, want %v", nodes, want)
		}
		if got := itPluck(itList(w, "overview.edges"), "id"); !reflect.DeepEqual(got, []string{prodConn}) {
			t.Errorf("overview edges %v, want only the prod connection", got)
		}
	})
	t.Run("SourceAdminSeesDestinationsWithTheirOwnSourcesOnly", func(t *testing.T) {
		w := sa.workspace(t, "acme", listQuery)
		d := itObj(w, "destinations.nodes.0")
		if itStr(d, "id") != hook || itBool(d, "viewerCanUpdate") {
			t.Errorf("destination %s", itJSON(d))
		}
		if got := itPluck(itList(d, "sources"), "id"); !reflect.DeepEqual(got, []string{prodWeb}) {
			t.Errorf("Destination.sources %v, want only the prod one", got)
		}
		if got := itList(d, "connections"); len(got) != 1 || itStr(got[0], "id") != prodConn || !itBool(got[0], "viewerCanUpdate") {
			t.Errorf("Destination.connections %s", itJSON(got))
		}
	})
	t.Run("SourceAdminManagesProdSources", func(t *testing.T) {
		p := sa.mutate(t, "sourceUpdate", map[string]any{"sourceId": prodAPI, "name": "Prod API v2", "settings": map[string]any{"strictMode": true},
			"labels": []any{"environment:prod", "team:api", "tier:1"}})
		if itStr(p, "source.name") != "Prod API v2" || itStr(p, "source.updatedBy.id") != saUserID {
			t.Errorf("sourceUpdate %s", itJSON(p))
		}
		if p := sa.mutate(t, "sourceDisable", map[string]any{"sourceId": prodAPI}); itStr(p, "source.status") != "DISABLED" {
			t.Errorf("sourceDisable %s", itJSON(p))
		}
		if p := sa.mutate(t, "sourceEnable", map[string]any{"sourceId": prodAPI}); itStr(p, "source.status") != "NEVER_RECEIVED" {
			t.Errorf("sourceEnable %s", itJSON(p))
		}
		p = sa.mutate(t, "writeKeyCreate", map[string]any{"sourceId": prodAPI})
		sa.mutate(t, "writeKeyRevoke", map[string]any{"sourceId": prodAPI, "key": itStr(p, "source.writeKeys.0.key")})
		c := itConnect(t, sa, prodAPI, hook)
		if !itBool(c, "viewerCanUpdate") {
			t.Errorf("connection %s", itJSON(c))
		}
		sa.mutate(t, "connectionDisable", map[string]any{"connectionId": c["id"]})
		sa.mutate(t, "connectionEnable", map[string]any{"connectionId": c["id"]})
		sa.mutate(t, "connectionDelete", map[string]any{"connectionId": c["id"]})
		// The owner sees the changes and who made them.
		ev := itList(owner.workspace(t, "acme", fmt.Sprintf(`auditEvents(first: 100, filter: {actorId: %q}) { nodes { type resourceId } }`, saUserID)),
			"auditEvents.nodes")
		got := itSorted(itPluck(ev, "type"))
		want := itSorted([]string{"SOURCE_UPDATED", "SOURCE_DISABLED", "SOURCE_ENABLED", "WRITE_KEY_CREATED", "WRITE_KEY_REVOKED",
			"CONNECTION_CREATED", "CONNECTION_DISABLED", "CONNECTION_ENABLED", "CONNECTION_DELETED", "INVITATION_ACCEPTED"})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the source admin's audit events %v, want %v", got, want)
		}
	})
	t.Run("SourceAdminGetsNotFoundForOtherSources", func(t *testing.T) {
		for _, tc := range []struct {
			mutation string
			input    func(srcID string) map[string]any
		}{
			{"sourceUpdate", func(id string) map[string]any { return map[string]any{"sourceId": id, "name": "Mine now"} }},
			{"sourceEnable", func(id string) map[string]any { return map[string]any{"sourceId": id} }},
			{"sourceDisable", func(id string) map[string]any { return map[string]any{"sourceId": id} }},
			{"sourceDelete", func(id string) map[string]any { return map[string]any{"sourceId": id} }},
			{"writeKeyCreate", func(id string) map[string]any { return map[string]any{"sourceId": id} }},
			{"writeKeyRevoke", func(id string) map[string]any { return map[string]any{"sourceId": id, "key": stagingKey} }},
			{"connectionCreate", func(id string) map[string]any { return map[string]any{"sourceId": id, "destinationId": hook} }},
		} {
			want := sa.refused(t, "NOT_FOUND", tc.mutation, tc.input(never["src"]))
			if got := sa.refused(t, "NOT_FOUND", tc.mutation, tc.input(staging)); got != want {
				t.Errorf("%s on a staging source: %q; on a source that never existed: %q", tc.mutation, got, want)
			}
		}
		for _, m := range []string{"connectionEnable", "connectionDisable", "connectionDelete"} {
			want := sa.refused(t, "NOT_FOUND", m, map[string]any{"connectionId": never["conn"]})
			if got := sa.refused(t, "NOT_FOUND", m, map[string]any{"connectionId": stagingConn}); got != want {
				t.Errorf("%s on the staging connection: %q; on one that never existed: %q", m, got, want)
			}
		}
	})
	t.Run("SourceAdminForbiddenOutsideItsSources", func(t *testing.T) {
		sa.refused(t, "FORBIDDEN", "sourceCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_javascript", "name": "New", "labels": []any{"environment:prod"}})
		sa.refused(t, "FORBIDDEN", "destinationCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_webhook", "name": "New",
			"settings": map[string]any{"url": "https://hooks.example.com/x"}})
		sa.refused(t, "FORBIDDEN", "destinationUpdate", map[string]any{"destinationId": hook, "name": "Mine"})
		sa.refused(t, "FORBIDDEN", "destinationDisable", map[string]any{"destinationId": hook})
		sa.refused(t, "FORBIDDEN", "destinationDelete", map[string]any{"destinationId": hook})
	})
	t.Run("MemberReadsEverything", func(t *testing.T) {
		w := member.workspace(t, "acme", listQuery)
		if itNum(w, "sources.totalCount") != 3 || itNum(w, "destinations.totalCount") != 1 || len(itList(w, "overview.nodes")) != 4 ||
			len(itList(w, "overview.edges")) != 2 || len(itList(w, "destinations.nodes.0.sources")) != 2 {
			t.Errorf("member's view: %s", itJSON(w))
		}
		for _, n := range itList(w, "sources.nodes") {
			if itBool(n, "viewerCanUpdate") || itBool(n, "viewerCanDelete") {
				t.Errorf("member may change source %s", itJSON(n))
			}
		}
		if itBool(w, "destinations.nodes.0.viewerCanUpdate") {
			t.Error("member may change the destination")
		}
		for _, c := range itList(w, "destinations.nodes.0.connections") {
			if itBool(c, "viewerCanUpdate") {
				t.Errorf("member may change connection %s", itJSON(c))
			}
		}
	})
	t.Run("MemberMutationsForbidden", func(t *testing.T) {
		for _, tc := range []struct {
			mutation string
			input    map[string]any
		}{
			{"sourceCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_javascript", "name": "New"}},
			{"sourceUpdate", map[string]any{"sourceId": prodWeb, "name": "Renamed"}},
			{"sourceEnable", map[string]any{"sourceId": prodWeb}},
			{"sourceDisable", map[string]any{"sourceId": prodWeb}},
			{"sourceDelete", map[string]any{"sourceId": prodWeb}},
			{"writeKeyCreate", map[string]any{"sourceId": prodWeb}},
			{"writeKeyRevoke", map[string]any{"sourceId": staging, "key": stagingKey}},
			{"destinationCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_webhook", "name": "New", "settings": map[string]any{"url": "https://hooks.example.com/x"}}},
			{"destinationUpdate", map[string]any{"destinationId": hook, "name": "Renamed"}},
			{"destinationEnable", map[string]any{"destinationId": hook}},
			{"destinationDisable", map[string]any{"destinationId": hook}},
			{"destinationDelete", map[string]any{"destinationId": hook}},
			{"connectionCreate", map[string]any{"sourceId": prodAPI, "destinationId": hook}},
			{"connectionEnable", map[string]any{"connectionId": prodConn}},
			{"connectionDisable", map[string]any{"connectionId": prodConn}},
			{"connectionDelete", map[string]any{"connectionId": prodConn}},
		} {
			member.refused(t, "FORBIDDEN", tc.mutation, tc.input)
		}
		ev := owner.workspace(t, "acme", fmt.Sprintf(`auditEvents(first: 100, filter: {actorId: %q}) { nodes { type } }`, memberUserID))
		if got := itPluck(itList(ev, "auditEvents.nodes"), "type"); !reflect.DeepEqual(got, []string{"INVITATION_ACCEPTED"}) {
			t.Errorf("the member's audit events %v", got)
		}
	})
	t.Run("MinimalMemberWithoutGrantsSeesNothing", func(t *testing.T) {
		w := minimal.workspace(t, "acme", listQuery)
		if itNum(w, "sources.totalCount") != 0 || itNum(w, "destinations.totalCount") != 0 || len(itList(w, "overview.nodes")) != 0 ||
			len(itList(w, "overview.edges")) != 0 {
			t.Errorf("minimal member's view: %s", itJSON(w))
		}
		for _, nid := range []string{prodWeb, hook, prodConn} {
			if n := minimal.node(t, nid, ``); n != nil {
				t.Errorf("node(%s) %s", nid, itJSON(n))
			}
		}
		// Its answers do not tell existing objects from others.
		want := minimal.refused(t, "NOT_FOUND", "sourceUpdate", map[string]any{"sourceId": never["src"], "name": "x"})
		if got := minimal.refused(t, "NOT_FOUND", "sourceUpdate", map[string]any{"sourceId": prodWeb, "name": "x"}); got != want {
			t.Errorf("sourceUpdate: %q, want %q", got, want)
		}
		want = minimal.refused(t, "NOT_FOUND", "destinationUpdate", map[string]any{"destinationId": never["dst"], "name": "x"})
		if got := minimal.refused(t, "NOT_FOUND", "destinationUpdate", map[string]any{"destinationId": hook, "name": "x"}); got != want {
			t.Errorf("destinationUpdate: %q, want %q", got, want)
		}
	})
	t.Run("AnonymousUnauthenticated", func(t *testing.T) {
		anon := itClient{s: s}
		for _, tc := range []struct {
			mutation string
			input    map[string]any
		}{
			{"sourceUpdate", map[string]any{"sourceId": prodWeb, "name": "x"}},
			{"sourceUpdate", map[string]any{"sourceId": never["src"], "name": "x"}},
			{"destinationUpdate", map[string]any{"destinationId": hook, "name": "x"}},
			{"connectionDisable", map[string]any{"connectionId": prodConn}},
			{"sourceCreate", map[string]any{"workspaceId": wsID, "catalogId": "cat_javascript", "name": "x"}},
		} {
			anon.refused(t, "UNAUTHENTICATED", tc.mutation, tc.input)
		}
		if n := anon.node(t, prodWeb, ``); n != nil {
			t.Errorf("anonymous node(source) %s", itJSON(n))
		}
	})
	t.Run("RefusedMutationsChangedNothing", func(t *testing.T) {
		w := owner.workspace(t, "acme", `sources { nodes { name enabled } } destinations { nodes { name enabled } }`)
		if got := itJSON(w); got != `{"destinations":{"nodes":[{"enabled":true,"name":"Hook"}]},"sources":{"nodes":[{"enabled":true,"name":"Prod API v2"},{"enabled":true,"name":"Prod web"},{"enabled":true,"name":"Staging web"}]}}` {
			t.Errorf("after refused mutations: %s", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 7. Audit trail

func TestIntegrationsAudit(t *testing.T) {
	s := startServer(t)
	owner, ownerID, wsID := itOwner(t, s, "owner@example.com", "acme")
	src := itSource(t, owner, wsID, "cat_javascript", "Website")
	srcID := itStr(src, "id")
	owner.mutate(t, "sourceUpdate", map[string]any{"sourceId": srcID, "name": "Site", "labels": []any{"environment:prod"}})
	owner.mutate(t, "sourceDisable", map[string]any{"sourceId": srcID})
	owner.mutate(t, "sourceDisable", map[string]any{"sourceId": srcID}) // no change, no event
	owner.mutate(t, "sourceEnable", map[string]any{"sourceId": srcID})
	key := itStr(owner.mutate(t, "writeKeyCreate", map[string]any{"sourceId": srcID}), "writeKey.key")
	owner.mutate(t, "writeKeyRevoke", map[string]any{"sourceId": srcID, "key": key})
	dstID := itStr(itDestination(t, owner, wsID, "Hook", nil), "id")
	owner.mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"method": "PUT"}})
	owner.mutate(t, "destinationUpdate", map[string]any{"destinationId": dstID, "settings": map[string]any{"method": "PUT"}}) // no change
	owner.mutate(t, "destinationDisable", map[string]any{"destinationId": dstID})
	owner.mutate(t, "destinationEnable", map[string]any{"destinationId": dstID})
	connID := itStr(itConnect(t, owner, srcID, dstID), "id")
	owner.mutate(t, "connectionDisable", map[string]any{"connectionId": connID})
	owner.mutate(t, "connectionEnable", map[string]any{"connectionId": connID})
	owner.mutate(t, "connectionDelete", map[string]any{"connectionId": connID})
	owner.mutate(t, "destinationDelete", map[string]any{"destinationId": dstID})
	owner.mutate(t, "sourceDelete", map[string]any{"sourceId": srcID})
	// Refused changes record nothing.
	keptID := itStr(itSource(t, owner, wsID, "cat_go", "Kept"), "id")
	owner.userErrors(t, "sourceUpdate", map[string]any{"sourceId": keptID, "name": ""})
	owner.userErrors(t, "writeKeyRevoke", map[string]any{"sourceId": keptID, "key": "no-such-key"})

	events := itList(owner.workspace(t, "acme", `auditEvents(first: 100) { nodes { type actorType user { id } resourceType resourceId changes } }`), "auditEvents.nodes")
	find := func(typ, resourceID string) []any {
		var out []any
		for _, e := range events {
			if itStr(e, "type") == typ && itStr(e, "resourceId") == resourceID {
				out = append(out, e)
			}
		}
		return out
	}
	for _, tc := range []struct {
		typ, resourceType, resourceID, changes string
	}{
		{"SOURCE_CREATED", "Source", srcID, `"name":"Website"`},
		{"SOURCE_UPDATED", "Source", srcID, `"name":{"from":"Website","to":"Site"}`},
		{"SOURCE_DISABLED", "Source", srcID, `"enabled":{"from":true,"to":false}`},
		{"SOURCE_ENABLED", "Source", srcID, `"enabled":{"from":false,"to":true}`},
		{"WRITE_KEY_CREATED", "Source", srcID, key},
		{"WRITE_KEY_REVOKED", "Source", srcID, key},
		{"SOURCE_DELETED", "Source", srcID, `"name":"Site"`},
		{"DESTINATION_CREATED", "Destination", dstID, `"catalog":"webhook"`},
		{"DESTINATION_UPDATED", "Destination", dstID, `"method":"PUT"`},
		{"DESTINATION_DISABLED", "Destination", dstID, `"enabled":{"from":true,"to":false}`},
		{"DESTINATION_ENABLED", "Destination", dstID, `"enabled":{"from":false,"to":true}`},
		{"DESTINATION_DELETED", "Destination", dstID, `"name":"Hook"`},
		{"CONNECTION_CREATED", "Connection", connID, `"sourceId":"` + srcID + `"`},
		{"CONNECTION_DISABLED", "Connection", connID, `"enabled":{"from":true,"to":false}`},
		{"CONNECTION_ENABLED", "Connection", connID, `"enabled":{"from":false,"to":true}`},
		{"CONNECTION_DELETED", "Connection", connID, `"destinationId":"` + dstID + `"`},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			got := find(tc.typ, tc.resourceID)
			if len(got) != 1 {
				t.Fatalf("%d %s events, want 1: %s", len(got), tc.typ, itJSON(got))
			}
			e := got[0]
			if itStr(e, "resourceType") != tc.resourceType || itStr(e, "resourceId") != tc.resourceID || itStr(e, "actorType") != "USER" ||
				itStr(e, "user.id") != ownerID || !strings.Contains(itJSON(itAt(e, "changes")), tc.changes) {
				t.Errorf("event %s, want %s %s by %s with changes holding %s", itJSON(e), tc.resourceType, tc.resourceID, ownerID, tc.changes)
			}
		})
	}
	t.Run("RefusedChangesRecordNothing", func(t *testing.T) {
		for _, e := range events {
			if itStr(e, "resourceId") == keptID && itStr(e, "type") != "SOURCE_CREATED" {
				t.Errorf("refused change recorded: %s", itJSON(e))
			}
		}
		if n := len(events); n != 18 {
			t.Errorf("%d events, want the workspace's creation, the 16 changes above and the second source's creation", n)
		}
	})
	t.Run("FilterByTypeAndResource", func(t *testing.T) {
		ev := itList(owner.workspace(t, "acme", fmt.Sprintf(`auditEvents(first: 100, filter: {resourceId: %q, types: [CONNECTION_ENABLED, CONNECTION_DISABLED]}) { nodes { type } }`, connID)),
			"auditEvents.nodes")
		if got := itPluck(ev, "type"); !reflect.DeepEqual(got, []string{"CONNECTION_ENABLED", "CONNECTION_DISABLED"}) {
			t.Errorf("events %v, newest first", got)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// 8. The overview's statement count does not grow with the workspace

func TestIntegrationsOverviewStatements(t *testing.T) {
	s := startServer(t)
	owner, ownerID, wsID := itOwner(t, s, "owner@example.com", "acme")
	src := itSource(t, owner, wsID, "cat_javascript", "A source", "environment:bulk")
	dst := itDestination(t, owner, wsID, "A destination", map[string]any{"url": "https://hooks.example.com/a"})
	conn := itConnect(t, owner, itStr(src, "id"), itStr(dst, "id"))

	query := itOverviewQuery(true)
	run := func(t *testing.T) (map[string]any, int) {
		t.Helper()
		r := owner.post(t, query, map[string]any{"slug": "acme"})
		return itObj(itData(t, r), "workspace"), s.statements(t, r)
	}
	small, one := run(t)
	if len(itList(small, "overview.nodes")) != 2 || len(itList(small, "overview.edges")) != 1 || itNum(small, "sources.totalCount") != 1 {
		t.Fatalf("small workspace: %s", itJSON(small))
	}

	// 99 more of each, and 149 more connections: source i to destination i, and the first 50 also to
	// destination i+1. The last source is disabled, so destination 98 (fed only by it) is IDLE.
	var pairs [][2]int
	for i := 0; i < 99; i++ {
		pairs = append(pairs, [2]int{i, i})
		if i < 50 {
			pairs = append(pairs, [2]int{i, i + 1})
		}
	}
	g := itInsertGraph(t, s, wsID, ownerID, "Bulk", 99, 99, pairs)
	big, many := run(t)

	t.Run("SameStatementsFor1AndFor100", func(t *testing.T) {
		if one != many {
			t.Errorf("statements grew with the workspace: %d for 1 source and destination, %d for 100 and 100 with %d connections", one, many, len(pairs)+1)
		}
		t.Logf("overview with lists: %d statements for 1+1+1, %d for 100+100+%d", one, many, len(pairs)+1)
		// And again, to catch a count that depends on timing (dataloader batches).
		for i := 0; i < 3; i++ {
			if _, n := run(t); n != one {
				t.Errorf("run %d: %d statements, want %d", i, n, one)
			}
		}
	})
	t.Run("GraphOnlySameStatements", func(t *testing.T) {
		// Across two workspaces of the same owner: an empty-ish one and the big one.
		ws2 := itWorkspaceCreate(t, owner, "small")
		s2 := itSource(t, owner, ws2, "cat_go", "Go")
		d2 := itDestination(t, owner, ws2, "Hook", nil)
		itConnect(t, owner, itStr(s2, "id"), itStr(d2, "id"))
		q := itOverviewQuery(false)
		r1 := owner.post(t, q, map[string]any{"slug": "small"})
		itData(t, r1)
		r2 := owner.post(t, q, map[string]any{"slug": "acme"})
		itData(t, r2)
		if a, b := s.statements(t, r1), s.statements(t, r2); a != b {
			t.Errorf("overview alone: %d statements for 1+1+1, %d for 100+100+150", a, b)
		}
	})
	t.Run("EverythingListed", func(t *testing.T) {
		nodes, edges := itList(big, "overview.nodes"), itList(big, "overview.edges")
		if len(nodes) != 200 || len(edges) != 150 || itNum(big, "sources.totalCount") != 100 || itNum(big, "destinations.totalCount") != 100 ||
			len(itList(big, "sources.nodes")) != 100 || len(itList(big, "destinations.nodes")) != 100 {
			t.Fatalf("%d nodes, %d edges, %v sources, %v destinations", len(nodes), len(edges), itNum(big, "sources.totalCount"), itNum(big, "destinations.totalCount"))
		}
		ids := map[string]string{}
		for _, n := range nodes {
			ids[itStr(n, "id")] = itStr(n, "kind")
			if itStr(n, "node.id") != itStr(n, "id") {
				t.Errorf("node %s", itJSON(n))
			}
			if itStr(n, "kind") == "SOURCE" && len(itList(n, "node.writeKeys")) != 1 {
				t.Errorf("source node without its write key: %s", itJSON(n))
			}
		}
		if !slices.Contains(itPluck(edges, "id"), itStr(conn, "id")) {
			t.Errorf("the connection created through the API is not an edge")
		}
		for _, e := range edges {
			if ids[itStr(e, "from")] != "SOURCE" || ids[itStr(e, "to")] != "DESTINATION" {
				t.Errorf("edge %s does not join a source to a destination", itJSON(e))
			}
		}
		conns := 0
		for _, n := range itList(big, "sources.nodes") {
			conns += len(itList(n, "connections"))
			if len(itList(n, "destinations")) != len(itList(n, "connections")) || len(itList(n, "writeKeys")) != 1 || itStr(n, "createdBy.name") != "Owner acme" {
				t.Errorf("source %s", itJSON(n))
			}
		}
		for _, n := range itList(big, "destinations.nodes") {
			conns -= len(itList(n, "sources"))
		}
		if conns != 0 {
			t.Errorf("sources list %d more connections than destinations", conns)
		}
	})
	t.Run("InsertedRowsReadLikeCreatedOnes", func(t *testing.T) {
		const srcSel = `... on Source { name enabled status type category labels settings writeKeys { revokedAt } createdBy { id }
			catalogEntry { slug } viewerCanUpdate destinations { id } }`
		const dstSel = `... on Destination { enabled status category settings secretSettings { name isSet } catalogEntry { slug }
			createdBy { id } viewerCanUpdate sources { id } }`
		apiSrc, sqlSrc := owner.node(t, itStr(src, "id"), srcSel), owner.node(t, g.Sources[0], srcSel)
		if sqlSrc == nil || itStr(sqlSrc, "name") != "Bulk source 000" || itJSON(itList(sqlSrc, "destinations")) != itJSON([]any{
			map[string]any{"id": g.Destinations[0]}, map[string]any{"id": g.Destinations[1]}}) {
			t.Errorf("inserted source %s", itJSON(sqlSrc))
		}
		for _, k := range []string{"enabled", "status", "type", "category", "labels", "settings", "writeKeys", "createdBy", "catalogEntry", "viewerCanUpdate"} {
			if a, b := itJSON(apiSrc[k]), itJSON(sqlSrc[k]); a != b {
				t.Errorf("source %s: %s created through the API, %s inserted", k, a, b)
			}
		}
		apiDst, sqlDst := owner.node(t, itStr(dst, "id"), dstSel), owner.node(t, g.Destinations[1], dstSel)
		if got := itPluck(itList(sqlDst, "sources"), "id"); !reflect.DeepEqual(itSorted(got), itSorted([]string{g.Sources[0], g.Sources[1]})) {
			t.Errorf("inserted destination's sources %v", got)
		}
		for _, k := range []string{"enabled", "status", "category", "secretSettings", "catalogEntry", "createdBy", "viewerCanUpdate"} {
			if a, b := itJSON(apiDst[k]), itJSON(sqlDst[k]); a != b {
				t.Errorf("destination %s: %s created through the API, %s inserted", k, a, b)
			}
		}
		if got := itStr(sqlDst, "settings.url"); got != "https://hooks.example.com/Bulk/1" {
			t.Errorf("inserted destination's url %q", got)
		}
		// The disabled inserted source, and the destination only it feeds.
		last := owner.node(t, g.Sources[98], `... on Source { status }`)
		fed := owner.node(t, g.Destinations[98], `... on Destination { status }`)
		if itStr(last, "status") != "DISABLED" || itStr(fed, "status") != "IDLE" {
			t.Errorf("disabled source %s, its destination %s", itJSON(last), itJSON(fed))
		}
		// The label index was filled: the filter and label grants find inserted sources.
		w := owner.workspace(t, "acme", `sources(filter: {label: "environment:bulk"}) { totalCount }`)
		if itNum(w, "sources.totalCount") != 100 {
			t.Errorf("label filter: %v sources, want 100", itNum(w, "sources.totalCount"))
		}
		// Changes through the API work on inserted rows.
		owner.mutate(t, "connectionDisable", map[string]any{"connectionId": g.Connections[0]})
		if got := itStr(owner.node(t, g.Destinations[0], `... on Destination { status }`), "status"); got != "IDLE" {
			t.Errorf("destination 0 after disabling its only connection: %s", got)
		}
	})
}
