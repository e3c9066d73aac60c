package gqlserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/gqllimit"
	"github.com/junctioncdp/junction/internal/gqlserver"
	"github.com/junctioncdp/junction/internal/obs"
)

// A schema whose fields each exercise one kind of failure, executed the way gqlgen's generated code
// does it (errors through graphql.AddError, panics through the operation's RecoverFunc).
var schema = gqlparser.MustLoadSchema(&ast.Source{Input: `
type Query { ok: String domain: String plain: String boom: String slow: String }
type Mutation { ok: String }
type Subscription { ok: String }
`})

func exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx)
	field := op.Operation.SelectionSet[0].(*ast.Field).Name
	return graphql.OneShot(func() (resp *graphql.Response) {
		resp = &graphql.Response{Data: json.RawMessage(`{"` + field + `":null}`)}
		defer func() {
			if p := recover(); p != nil {
				graphql.AddError(ctx, op.RecoverFunc(ctx, p))
				resp.Errors = graphql.GetErrors(ctx)
			}
		}()
		switch field {
		case "ok":
			resp.Data = json.RawMessage(`{"ok":"yes"}`)
		case "domain":
			graphql.AddError(ctx, apperr.NotFoundf("source src_123 not found"))
		case "plain":
			graphql.AddError(ctx, errors.New("disk full at /secret/path"))
		case "boom":
			panic("nil map write")
		case "slow":
			select {
			case <-ctx.Done():
				graphql.AddError(ctx, ctx.Err())
			case <-time.After(5 * time.Second):
			}
		}
		resp.Errors = graphql.GetErrors(ctx)
		return resp
	}())
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newServer(t *testing.T) (*httptest.Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := obs.NewLogger(logs, "json", slog.LevelDebug)
	m := obs.NewMetrics()
	gql := gqlserver.New(&graphql.ExecutableSchemaMock{
		ExecFunc:       exec,
		SchemaFunc:     func() *ast.Schema { return schema },
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) { return 1, true },
	}, gqlserver.Options{
		Introspection:    true,
		MaxBodyBytes:     1024,
		OperationTimeout: 200 * time.Millisecond,
		Limits:           gqllimit.Limits{Tokens: 100, Depth: 5, Aliases: 5, Fields: 50, Directives: 3, Complexity: 100, DefaultPageSize: 10},
		Metrics:          m,
	})
	srv := httptest.NewServer(m.Middleware(log, "graphql", gql))
	t.Cleanup(srv.Close)
	return srv, logs
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	c, _ := ext["code"].(string)
	return c
}

func (a answer) message() string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	m, _ := errs[0].(map[string]any)["message"].(string)
	return m
}

func send(t *testing.T, srv *httptest.Server, method, contentType, accept, body string) answer {
	t.Helper()
	url := srv.URL
	var r io.Reader
	if method == http.MethodGet {
		url += "?" + body
	} else {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return a
}

const (
	jsonType  = "application/json"
	gqlResp   = "application/graphql-response+json"
	okQuery   = `{"query":"{ ok }"}`
	badSyntax = `{"query":"{ ok "}`
	badField  = `{"query":"{ nope }"}`
)

func TestHTTP(t *testing.T) {
	srv, _ := newServer(t)
	for _, tc := range []struct {
		name, method, contentType, accept, body string
		status                                  int
		code                                    string
		hasData                                 bool
		media                                   string
	}{
		{"PostJSON", "POST", jsonType, "", okQuery, 200, "", true, jsonType},
		{"PostGraphQLResponse", "POST", jsonType, gqlResp, okQuery, 200, "", true, gqlResp},
		{"PreferGraphQLResponse", "POST", jsonType, "application/json, application/graphql-response+json", okQuery, 200, "", true, gqlResp},
		{"Get", "GET", "", "", "query=%7B%20ok%20%7D", 200, "", true, jsonType},
		{"ParseErrorGraphQLResponseIs400", "POST", jsonType, gqlResp, badSyntax, 400, "GRAPHQL_PARSE_FAILED", false, gqlResp},
		{"ParseErrorJSONIs200", "POST", jsonType, jsonType, badSyntax, 200, "GRAPHQL_PARSE_FAILED", false, jsonType},
		{"ValidationErrorGraphQLResponseIs400", "POST", jsonType, gqlResp, badField, 400, "GRAPHQL_VALIDATION_FAILED", false, gqlResp},
		{"ValidationErrorJSONIs200", "POST", jsonType, jsonType, badField, 200, "GRAPHQL_VALIDATION_FAILED", false, jsonType},
		{"InvalidJSON", "POST", jsonType, "", `{"query":`, 400, "BAD_REQUEST", false, jsonType},
		{"QueryNotString", "POST", jsonType, "", `{"query":1}`, 400, "BAD_REQUEST", false, jsonType},
		{"VariablesNotObject", "POST", jsonType, "", `{"query":"{ ok }","variables":[]}`, 400, "BAD_REQUEST", false, jsonType},
		{"BatchRefused", "POST", jsonType, "", `[` + okQuery + `,` + okQuery + `]`, 400, "BAD_REQUEST", false, jsonType},
		{"FormRefused", "POST", "application/x-www-form-urlencoded", "", "query=%7B%20ok%20%7D", 415, "UNSUPPORTED_MEDIA_TYPE", false, jsonType},
		{"MultipartRefused", "POST", "multipart/form-data; boundary=x", "", "--x--", 415, "UNSUPPORTED_MEDIA_TYPE", false, jsonType},
		{"TextPlainRefused", "POST", "text/plain", "", okQuery, 415, "UNSUPPORTED_MEDIA_TYPE", false, jsonType},
		{"NoContentType", "POST", "", "", okQuery, 415, "UNSUPPORTED_MEDIA_TYPE", false, jsonType},
		{"Latin1Refused", "POST", "application/json; charset=latin1", "", okQuery, 415, "UNSUPPORTED_MEDIA_TYPE", false, jsonType},
		{"NotAcceptable", "POST", jsonType, "text/html", okQuery, 406, "NOT_ACCEPTABLE", false, jsonType},
		{"MutationOverGet", "GET", "", "", "query=mutation%20%7B%20ok%20%7D", 405, "METHOD_NOT_ALLOWED", false, jsonType},
		{"Put", "PUT", jsonType, "", okQuery, 405, "METHOD_NOT_ALLOWED", false, jsonType},
		{"SubscriptionOverPost", "POST", jsonType, "", `{"query":"subscription { ok }"}`, 400, "BAD_REQUEST", false, jsonType},
		{"TooLarge", "POST", jsonType, "", `{"query":"{ ok }","variables":{"x":"` + strings.Repeat("a", 2000) + `"}}`, 413, "REQUEST_TOO_LARGE", false, jsonType},
		{"TokenLimit", "POST", jsonType, gqlResp, `{"query":"{` + strings.Repeat(" ok", 120) + ` }"}`, 400, "GRAPHQL_PARSE_FAILED", false, gqlResp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, srv, tc.method, tc.contentType, tc.accept, tc.body)
			if a.status != tc.status {
				t.Errorf("status = %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if got := a.code(); got != tc.code {
				t.Errorf("code = %q, want %q: %s", got, tc.code, a.raw)
			}
			if _, ok := a.body["data"]; ok != tc.hasData {
				t.Errorf("data entry present = %v, want %v: %s", ok, tc.hasData, a.raw)
			}
			if got, want := a.header.Get("Content-Type"), tc.media+"; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
		})
	}
	t.Run("LimitErrorsNameTheLimit", func(t *testing.T) {
		a := send(t, srv, "POST", jsonType, gqlResp, `{"query":"{ a: ok b: ok c: ok d: ok e: ok f: ok }"}`)
		if a.status != 400 || a.code() != gqllimit.Code || !strings.Contains(a.message(), "max-aliases") {
			t.Errorf("got %d %s", a.status, a.raw)
		}
		a = send(t, srv, "POST", jsonType, "", `{"query":"{ ok }","variables":{"x":"`+strings.Repeat("a", 2000)+`"}}`)
		if !strings.Contains(a.message(), "max-body-bytes") {
			t.Errorf("413 message does not name the limit: %s", a.raw)
		}
	})
}

func TestErrors(t *testing.T) {
	srv, logs := newServer(t)
	t.Run("DomainErrorKeepsMessageAndCode", func(t *testing.T) {
		a := send(t, srv, "POST", jsonType, "", `{"query":"{ domain }"}`)
		if a.code() != "NOT_FOUND" || a.message() != "source src_123 not found" {
			t.Errorf("got %s", a.raw)
		}
	})
	t.Run("PlainErrorIsInternalAndLogged", func(t *testing.T) {
		a := send(t, srv, "POST", jsonType, "", `{"query":"{ plain }"}`)
		if a.code() != "INTERNAL" || a.message() != "internal error" {
			t.Errorf("got %s", a.raw)
		}
		if strings.Contains(a.raw, "secret") {
			t.Errorf("internal detail reached the client: %s", a.raw)
		}
		id := a.header.Get("X-Request-Id")
		if !logHas(logs.String(), id, "disk full at /secret/path") {
			t.Errorf("the error is not logged with request id %s:\n%s", id, logs)
		}
	})
	t.Run("PanicIsInternalWithStackInLog", func(t *testing.T) {
		a := send(t, srv, "POST", jsonType, "", `{"query":"{ boom }"}`)
		if a.status != 200 || a.code() != "INTERNAL" || a.message() != "internal error" || strings.Contains(a.raw, "nil map") {
			t.Errorf("got %d %s", a.status, a.raw)
		}
		id := a.header.Get("X-Request-Id")
		if !logHas(logs.String(), id, "nil map write") || !strings.Contains(logs.String(), "goroutine ") {
			t.Errorf("panic and stack not logged with request id %s:\n%s", id, logs)
		}
		// The server is still serving.
		if a := send(t, srv, "POST", jsonType, "", okQuery); a.status != 200 {
			t.Errorf("after a panic: %d %s", a.status, a.raw)
		}
	})
	t.Run("OperationTimeout", func(t *testing.T) {
		start := time.Now()
		a := send(t, srv, "POST", jsonType, "", `{"query":"{ slow }"}`)
		if time.Since(start) > 3*time.Second || a.code() != "TIMEOUT" || !strings.Contains(a.message(), "operation-timeout") {
			t.Errorf("slow operation was not cut by the timeout: %s", a.raw)
		}
	})
}

// logHas tells whether one JSON log line carries both the request id and text.
func logHas(logs, requestID, text string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"request_id":"`+requestID+`"`) && strings.Contains(line, text) {
			return true
		}
	}
	return false
}
