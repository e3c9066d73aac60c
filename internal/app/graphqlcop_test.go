package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// TestGraphQLCop replays the checks of graphql-cop (github.com/dolevf/graphql-cop), the GraphQL
// security auditor, against the real server: the same requests, judged by the same conditions as its
// lib/tests/*.py. Its README lists twelve detections; graphql-cop.py also runs the unhandled-errors
// check, and lib/tests holds a circular-fragment check: all fourteen are replayed, some in more than
// one of their published versions. No check may be flagged unless its row says why that is accepted;
// the same justifications belong in the README.
//
// With -introspection=false, introspection and field suggestions must not be flagged either.
func TestGraphQLCop(t *testing.T) {
	for _, introspection := range []bool{true, false} {
		t.Run(fmt.Sprintf("introspection=%t", introspection), func(t *testing.T) {
			s := startServer(t, func(c *config.Config) { c.Introspection = introspection })
			requireGraphQLDetected(t, s)
			for _, c := range graphqlCopChecks(introspection) {
				t.Run(c.name, func(t *testing.T) {
					rs := make([]copResponse, len(c.requests))
					for i, req := range c.requests {
						rs[i] = copSend(t, s, req)
					}
					flagged := c.flagged(rs)
					switch {
					case flagged && c.justified == "":
						t.Errorf("flagged by graphql-cop:\n%s", copTranscript(c.requests, rs))
					case flagged:
						t.Logf("flagged, justified: %s", c.justified)
					case c.justified != "":
						t.Logf("not flagged, though justified; the README's justification may be stale")
					}
				})
			}
		})
	}
}

// requireGraphQLDetected replays lib/utils.py's is_graphql: graphql-cop audits an endpoint only when
// this query answers with a root type name it knows. Without it every check would pass unrun.
func requireGraphQLDetected(t *testing.T, s *server) {
	t.Helper()
	req := copQuery("\n    query cop {\n      __typename\n    }\n  ")
	r := copSend(t, s, req)
	switch pyGet(r.json, "data", "__typename") {
	case "Query", "QueryRoot", "query_root", "Root":
	default:
		t.Fatalf("graphql-cop would not recognise /graphql as GraphQL, so it would audit nothing:\n%s",
			copTranscript([]copRequest{req}, []copResponse{r}))
	}
}

// copCheck is one graphql-cop check.
type copCheck struct {
	name     string                   // graphql-cop's title
	requests []copRequest             // what graphql-cop sends
	flagged  func([]copResponse) bool // graphql-cop's condition on the answers, in order
	// justified says why the check being flagged is accepted (the README's text); empty: it must not be.
	justified string
}

// graphqlCopChecks is graphql-cop's checks against a server started with introspection on or off.
// Where graphql-cop's Python stops at a missing key (a KeyError caught by a bare except) before
// reaching a later condition, the replay evaluates every condition: it flags at least what
// graphql-cop flags.
func graphqlCopChecks(introspection bool) []copCheck {
	onlyWithIntrospection := func(why string) string {
		if introspection {
			return why
		}
		return ""
	}
	return []copCheck{
		// lib/tests/dos_alias_overloading.py: 101 aliases of __typename; flagged when data.alias100 is set.
		{
			name:     "Alias Overloading",
			requests: []copRequest{copQuery("query cop { " + copAliases(101) + " }")},
			flagged:  func(rs []copResponse) bool { return pyTruthy(pyGet(rs[0].json, "data", "alias100")) },
		},
		// lib/tests/dos_batch.py with lib/utils.py's graph_query(batch=True): a JSON array of ten
		// queries; flagged when the answer has ten entries or more.
		{
			name:     "Array-based Query Batching",
			requests: []copRequest{copBatch("query cop { __typename }", 10)},
			flagged:  func(rs []copResponse) bool { return pyLen(rs[0].json) >= 10 },
		},
		// lib/tests/dos_circular_fragment.py: fragments A and B spread each other; flagged when the
		// answer has no errors. Sent without operationName: with graph_query's "cop" this anonymous
		// operation would be refused for that alone, and the check would prove nothing.
		{
			name: "Circular Fragment",
			requests: []copRequest{copAnonymousQuery(`
    query {
        __schema { 
          ...A
        }
    }

    fragment A on __Schema {
        __typename
        ...B
    }

    fragment B on __Schema {
        ...A
    }
`)},
			flagged: func(rs []copResponse) bool {
				m, ok := rs[0].json.(map[string]any)
				_, hasErrors := m["errors"]
				return ok && !hasErrors
			},
		},
		// lib/tests/dos_circular_introspection.py: types → fields → type nested four times; flagged
		// when more than 25 types come back.
		{
			name:     "Introspection-based Circular Query",
			requests: []copRequest{copQuery("query cop { __schema { types { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } }")},
			flagged:  func(rs []copResponse) bool { return pyLen(pyGet(rs[0].json, "data", "__schema", "types")) > 25 },
		},
		// lib/tests/dos_directive_overloading.py as released: ten unknown directives on one field;
		// flagged when the answer has exactly ten errors (one per directive, nothing caps them).
		{
			name:     "Directive Overloading (@aa x10)",
			requests: []copRequest{copQuery("query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }")},
			flagged:  func(rs []copResponse) bool { return pyLen(pyGet(rs[0].json, "errors")) == 10 },
		},
		// lib/tests/dos_directive_overloading.py, later version: @skip(if:true) repeated 0, 10, 100,
		// 500 and 1000 times. Walking up the ladder, an answer naming a directive or complexity limit
		// means protected; a 5xx, or an answer ten times slower than the bare query, means flagged.
		// (A dropped connection, also flagged there, fails copSend.)
		{
			name:     "Directive Overloading (@skip ladder)",
			requests: skipLadder(0, 10, 100, 500, 1000),
			flagged:  skipLadderFlagged,
		},
		// lib/tests/dos_field_duplication.py: __typename 500 times; flagged when data.__typename is set.
		{
			name:     "Field Duplication",
			requests: []copRequest{copQuery("query cop { " + strings.Repeat("__typename \n", 500) + "} ")},
			flagged:  func(rs []copResponse) bool { return pyTruthy(pyGet(rs[0].json, "data", "__typename")) },
		},
		// lib/tests/info_field_suggestions.py: a misspelt field of __Schema; flagged when the first
		// error's message contains "Did you mean".
		{
			name:     "Field Suggestions",
			requests: []copRequest{copQuery("query cop { __schema { directive } }")},
			flagged: func(rs []copResponse) bool {
				msg, _ := pyGet(rs[0].json, "errors", 0, "message").(string)
				return strings.Contains(msg, "Did you mean")
			},
			justified: onlyWithIntrospection(justifyFieldSuggestions),
		},
		// lib/tests/info_get_based_mutation.py: a mutation in a GET query string; flagged on a 2xx or
		// 3xx answer with data.__typename. The transport's 405 for mutations over GET is what keeps
		// this unflagged.
		{
			name:     "Mutation is allowed over GET (possible CSRF)",
			requests: []copRequest{copGet("/graphql", "mutation cop {__typename}", "*/*")},
			flagged:  okWithTypename,
		},
		// lib/tests/info_get_method_support.py: a query in a GET query string; flagged on a 2xx or 3xx
		// answer with data.__typename.
		{
			name:      "GET Method Query Support",
			requests:  []copRequest{copGet("/graphql", "query cop {__typename}", "*/*")},
			flagged:   okWithTypename,
			justified: justifyGET,
		},
		// lib/tests/info_graphiql.py, its three versions: GET /graphiql, /playground, /console and
		// /graphql; the same names under / and under the target path, with Accept: text/html; the
		// target itself with Accept: text/html. Flagged on a 2xx or 3xx answer containing one of the
		// heuristic strings. None of them probes /, where our GraphiQL is.
		{
			name:     "GraphQL IDE",
			requests: graphiqlProbes(),
			flagged:  anyIDEPage,
		},
		// Not a graphql-cop probe: its GraphiQL heuristic applied to /, where we serve GraphiQL. Here
		// so that the day graphql-cop looks at /, the README already says why.
		{
			name:      "GraphQL IDE at / (not probed by graphql-cop)",
			requests:  []copRequest{copGet("/", "", "text/html")},
			flagged:   anyIDEPage,
			justified: justifyGraphiQL,
		},
		// lib/tests/info_introspect.py: types and their fields' names; flagged when types come back.
		{
			name:      "Introspection",
			requests:  []copRequest{copQuery("query cop { __schema { types { name fields { name } } } }")},
			flagged:   func(rs []copResponse) bool { return pyTruthy(pyGet(rs[0].json, "data", "__schema", "types")) },
			justified: onlyWithIntrospection(justifyIntrospection),
		},
		// lib/tests/info_post_based_csrf.py, its two versions: the query as a form-encoded POST body,
		// and in the query string of a POST without a body. Flagged on a 2xx or 3xx answer with
		// data.__typename.
		{
			name: "POST based url-encoded query (possible CSRF)",
			requests: []copRequest{
				{method: http.MethodPost, path: "/graphql", contentType: "application/x-www-form-urlencoded",
					accept: "*/*", body: url.Values{"query": {"query cop {__typename}"}}.Encode()},
				{method: http.MethodPost, path: "/graphql?" + url.Values{"query": {"query {__typename}"}}.Encode(), accept: "*/*"},
			},
			flagged: okWithTypename,
		},
		// lib/tests/info_trace_mode.py, its versions: flagged when the first error has
		// extensions.tracing, when the answer's extensions start with tracing, or (the first version)
		// when "stacktrace" appears anywhere.
		{
			name:     "Trace Mode",
			requests: []copRequest{copQuery("query cop { __typename }")},
			flagged: func(rs []copResponse) bool {
				r := rs[0]
				return pyTruthy(pyGet(r.json, "errors", 0, "extensions", "tracing")) ||
					strings.Contains(r.compactLower(), `"extensions":{"tracing":`) ||
					strings.Contains(r.compactLower(), "stacktrace")
			},
		},
		// lib/tests/info_unhandled_error.py: a document that does not parse; flagged when the first
		// error has extensions.exception, or an extensions object starts with exception.
		{
			name:     "Unhandled Errors Detection",
			requests: []copRequest{copQuery("qwerty cop { abc }")},
			flagged: func(rs []copResponse) bool {
				r := rs[0]
				return pyTruthy(pyGet(r.json, "errors", 0, "extensions", "exception")) ||
					strings.Contains(r.compactLower(), `"extensions":{"exception":`)
			},
		},
	}
}

// The justifications, as the README gives them.
const (
	justifyIntrospection = "Introspection is on by default because GraphiQL, served at /, and client code " +
		"generators need the schema, which documents a public API rather than hiding a secret. Introspection " +
		"queries obey the same depth, alias, field, directive, token and cost limits as any other, and " +
		"gqlparser's introspection-depth rule refuses deeply nested fields/type cycles. Operators who do not " +
		"want to publish the schema start the server with -introspection=false (INTROSPECTION=false): " +
		"introspection is then refused, and field suggestions are turned off with it."
	justifyFieldSuggestions = "Validation errors suggest the field the client may have meant (\"Did you mean " +
		"...?\"). That reveals field names, which introspection reveals anyway, so suggestions are on exactly " +
		"when introspection is: -introspection=false turns both off, and a server that hides its schema does " +
		"not leak it through error messages."
	justifyGET = "The GraphQL over HTTP specification lets clients send queries with GET, which makes them " +
		"cacheable and linkable. GET cannot change anything: a mutation sent with GET is refused with 405, and " +
		"subscriptions are not served over plain GET. Requests are authenticated by an Authorization header, " +
		"which a browser never adds to a cross-site request, and the server sends no CORS headers, so another " +
		"site can neither act as a user nor read an answer; every GET query obeys the same limits as a POST."
	justifyGraphiQL = "The server serves GraphiQL at / so that people can explore the API in a browser. The page " +
		"and its scripts are embedded in the binary and load nothing from any other host; its " +
		"Content-Security-Policy allows connections to this origin only. It learns the schema by introspection, " +
		"like any client, so it shows nothing a client could not ask for; with -introspection=false it still " +
		"runs queries but has no schema to document or complete."
)

// copRequest is one HTTP request as graphql-cop sends it with Python requests.
type copRequest struct {
	method, path        string
	contentType, accept string
	body                string
}

// copQuery is lib/utils.py's graph_query: the query as JSON, with operationName "cop".
func copQuery(query string) copRequest {
	return copJSON(map[string]any{"query": query, "operationName": "cop"})
}

// copAnonymousQuery is graph_query without the operationName.
func copAnonymousQuery(query string) copRequest {
	return copJSON(map[string]any{"query": query})
}

// copBatch is graph_query(batch=True): a JSON array of n copies of the query.
func copBatch(query string, n int) copRequest {
	batch := make([]any, n)
	for i := range batch {
		batch[i] = map[string]any{"query": query}
	}
	return copJSON(batch)
}

func copJSON(v any) copRequest {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return copRequest{method: http.MethodPost, path: "/graphql", contentType: "application/json", accept: "*/*", body: string(b)}
}

// copGet is lib/utils.py's request: a GET with the query, if any, as the query parameter.
func copGet(path, query, accept string) copRequest {
	if query != "" {
		path += "?" + url.Values{"query": {query}}.Encode()
	}
	return copRequest{method: http.MethodGet, path: path, accept: accept}
}

func copAliases(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "alias%d:__typename \n", i)
	}
	return b.String()
}

func skipLadder(ns ...int) []copRequest {
	rs := make([]copRequest, len(ns))
	for i, n := range ns {
		rs[i] = copQuery("query cop { __typename " + strings.Repeat("@skip(if:true)", n) + " }")
	}
	return rs
}

// skipLimitSignal is the later dos_directive_overloading.py's LIMIT_SIGNAL: an answer that names a limit.
var skipLimitSignal = regexp.MustCompile(`(?i)too many directives|directive.*limit|exceeds maximum|query complexity|depth limit|maxDirectives`)

// skipLadderFlagged walks the ladder's answers as the later dos_directive_overloading.py does: the
// first is the baseline; at each later rung a limit named means protected, a 5xx means flagged, and
// so does an answer ten times slower than the baseline.
func skipLadderFlagged(rs []copResponse) bool {
	baseline := rs[0].elapsed
	for _, r := range rs[1:] {
		switch {
		case skipLimitSignal.MatchString(r.body):
			return false
		case r.status >= 500 && r.status < 600:
			return true
		case baseline > 0 && r.elapsed > 10*baseline:
			return true
		}
	}
	return false
}

// graphiqlProbes is every request of info_graphiql.py's versions, with /graphql as the target.
func graphiqlProbes() []copRequest {
	names := []string{"graphiql", "playground", "console", "graphql"}
	var rs []copRequest
	for _, n := range names { // first version: from the root, default Accept
		rs = append(rs, copGet("/"+n, "", "*/*"))
	}
	for _, prefix := range []string{"/", "/graphql/"} { // second: under each prefix of the target path
		for _, n := range names {
			rs = append(rs, copGet(prefix+n, "", "text/html"))
		}
	}
	return append(rs, copGet("/graphql", "", "text/html")) // latest: the target itself
}

var ideHeuristics = []string{"graphiql.min.css", "GraphQL Playground", "GraphiQL", "graphql-playground"}

func anyIDEPage(rs []copResponse) bool {
	for _, r := range rs {
		for _, h := range ideHeuristics {
			if r.ok() && strings.Contains(r.body, h) {
				return true
			}
		}
	}
	return false
}

// okWithTypename is `response and response.json()['data']['__typename']` for every request.
func okWithTypename(rs []copResponse) bool {
	for _, r := range rs {
		if r.ok() && pyTruthy(pyGet(r.json, "data", "__typename")) {
			return true
		}
	}
	return false
}

// copResponse is an answer as graphql-cop sees it.
type copResponse struct {
	status  int
	header  http.Header
	body    string
	json    any // response.json(): nil when the body is not JSON
	elapsed time.Duration
}

// ok is a requests.Response's truth value: a status below 400.
func (r copResponse) ok() bool { return r.status < 400 }

// compactLower is the body for graphql-cop's substring tests on str(response.json()).lower(): JSON
// without spaces, lowercased.
func (r copResponse) compactLower() string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(r.body)) != nil {
		return strings.ToLower(r.body)
	}
	return strings.ToLower(b.String())
}

var copClient = &http.Client{Timeout: 10 * time.Second}

func copSend(t *testing.T, s *server, cr copRequest) copResponse {
	t.Helper()
	var body io.Reader
	if cr.body != "" {
		body = strings.NewReader(cr.body)
	}
	req, err := http.NewRequest(cr.method, s.URL+cr.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "graphql-cop")
	if cr.accept != "" {
		req.Header.Set("Accept", cr.accept)
	}
	if cr.contentType != "" {
		req.Header.Set("Content-Type", cr.contentType)
	}
	start := time.Now()
	res, err := copClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v (graphql-cop flags a dropped connection)", cr.method, cr.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", cr.method, cr.path, err)
	}
	r := copResponse{status: res.StatusCode, header: res.Header, body: string(raw), elapsed: time.Since(start)}
	_ = json.Unmarshal(raw, &r.json) // like response.json(), whatever the Content-Type
	return r
}

// copTranscript shows requests and answers for a failure message.
func copTranscript(reqs []copRequest, rs []copResponse) string {
	var b strings.Builder
	for i, req := range reqs {
		fmt.Fprintf(&b, "> %s %s", req.method, req.path)
		if req.contentType != "" {
			fmt.Fprintf(&b, " (Content-Type: %s)", req.contentType)
		}
		if req.accept != "" {
			fmt.Fprintf(&b, " (Accept: %s)", req.accept)
		}
		fmt.Fprintf(&b, "\n> %s\n", copShorten(req.body))
		if i < len(rs) {
			fmt.Fprintf(&b, "< %d %s\n< %s\n", rs[i].status, rs[i].header.Get("Content-Type"), copShorten(rs[i].body))
		}
	}
	return b.String()
}

func copShorten(s string) string {
	if len(s) > 600 {
		return s[:600] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// pyGet follows keys (strings into objects, ints into arrays) through decoded JSON; nil where Python
// would raise KeyError, IndexError or TypeError.
func pyGet(v any, path ...any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// pyTruthy is Python's truth value of a decoded JSON value.
func pyTruthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// pyLen is Python's len() of a decoded JSON value; -1 where len() would raise.
func pyLen(v any) int {
	switch v := v.(type) {
	case string:
		return len([]rune(v))
	case []any:
		return len(v)
	case map[string]any:
		return len(v)
	}
	return -1
}
