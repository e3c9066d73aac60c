// Package gqlhttp is our GraphQL-over-HTTP transport for gqlgen: POST with a JSON body, and GET for
// queries, as the GraphQL over HTTP specification says. We write our own instead of gqlgen's
// transport.POST/GET because those answer request errors (unparseable or invalid documents) with
// 422 and a `data: null` entry, where the specification asks for 400 without `data` under
// application/graphql-response+json and 200 under application/json, and because we refuse the
// form and multipart encodings that let other sites post to us (cross-site request forgery).
package gqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// Transport serves GraphQL over HTTP POST and GET. Every request error gets a JSON body with
// `errors` and a status that says what went wrong.
type Transport struct {
	// MaxBodyBytes caps a POST body; a larger one is answered 413.
	MaxBodyBytes int64
	// Timeout caps the execution of one query or mutation.
	Timeout time.Duration
}

var _ graphql.Transport = Transport{}

// Supports takes every plain (non-upgrade) request, so that a wrong method or content type gets a
// proper GraphQL error from Do rather than gqlgen's "transport not supported".
func (t Transport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == ""
}

// Do serves one request.
func (t Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		fail(w, mediaJSON, http.StatusNotAcceptable, "NOT_ACCEPTABLE",
			"Accept: the server answers application/graphql-response+json or application/json")
		return
	}
	var params *graphql.RawParams
	var reqErr *requestError
	switch r.Method {
	case http.MethodPost:
		params, reqErr = t.readPost(w, r)
	case http.MethodGet:
		params, reqErr = readGet(r)
	default:
		w.Header().Set("Allow", "GET, POST")
		reqErr = &requestError{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method: GraphQL is served over POST, and GET for queries"}
	}
	if reqErr != nil {
		fail(w, media, reqErr.status, reqErr.code, reqErr.message)
		return
	}
	params.Headers = r.Header

	ctx := r.Context()
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusBadRequest
		}
		// A request error: the operation never started, so the response has no data entry.
		writeJSON(w, media, status, &graphql.Response{Errors: exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs).Errors})
		return
	}
	switch rc.Operation.Operation {
	case ast.Subscription:
		fail(w, media, http.StatusBadRequest, "BAD_REQUEST",
			"subscriptions are served over a websocket on this path (graphql-transport-ws or graphql-ws)")
		return
	case ast.Mutation:
		if r.Method == http.MethodGet {
			w.Header().Set("Allow", "POST")
			fail(w, media, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method: mutations must be sent with POST")
			return
		}
	}
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeJSON(w, media, http.StatusOK, responses(ctx))
}

type requestError struct {
	status  int
	code    string
	message string
}

func badRequest(format string) *requestError {
	return &requestError{http.StatusBadRequest, "BAD_REQUEST", format}
}

// body is a POST body before its members are checked: `any` so that a wrong type can be named.
type body struct {
	Query         any `json:"query"`
	OperationName any `json:"operationName"`
	Variables     any `json:"variables"`
	Extensions    any `json:"extensions"`
}

func (t Transport) readPost(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *requestError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, &requestError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type: send the request as application/json"}
	}
	media, mparams, err := mime.ParseMediaType(ct)
	if err != nil || (media != mediaJSON && media != mediaGraphQLResponse) {
		return nil, &requestError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type: send the request as application/json"}
	}
	if cs, ok := mparams["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &requestError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type: the only charset accepted is utf-8"}
	}
	start := graphql.Now()
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &requestError{http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "body: the request is larger than the limit of " + itoa(t.MaxBodyBytes) + " bytes (max-body-bytes)"}
		}
		return nil, badRequest("body: could not be read")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("body: a JSON object with a query is required")
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return nil, badRequest("body: not a JSON object: " + jsonProblem(err))
	}
	if dec.More() {
		return nil, badRequest("body: unexpected data after the JSON object")
	}
	p := &graphql.RawParams{ReadTime: graphql.TraceTiming{Start: start, End: graphql.Now()}}
	if e := fill(p, b); e != nil {
		return nil, e
	}
	return p, nil
}

func readGet(r *http.Request) (*graphql.RawParams, *requestError) {
	q := r.URL.Query()
	b := body{Query: nil}
	if q.Has("query") {
		b.Query = q.Get("query")
	}
	if q.Has("operationName") {
		b.OperationName = q.Get("operationName")
	}
	for _, f := range []struct {
		name string
		dst  *any
	}{{"variables", &b.Variables}, {"extensions", &b.Extensions}} {
		if !q.Has(f.name) {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(q.Get(f.name)))
		dec.UseNumber()
		if err := dec.Decode(f.dst); err != nil {
			return nil, badRequest(f.name + ": not valid JSON: " + jsonProblem(err))
		}
	}
	p := &graphql.RawParams{ReadTime: graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}}
	if e := fill(p, b); e != nil {
		return nil, e
	}
	return p, nil
}

// fill checks the type of each request parameter and copies it into p.
func fill(p *graphql.RawParams, b body) *requestError {
	switch q := b.Query.(type) {
	case string:
		p.Query = q
	case nil:
	default:
		return badRequest("query: must be a string")
	}
	switch n := b.OperationName.(type) {
	case string:
		p.OperationName = n
	case nil:
	default:
		return badRequest("operationName: must be a string or null")
	}
	switch v := b.Variables.(type) {
	case map[string]any:
		p.Variables = v
	case nil:
	default:
		return badRequest("variables: must be an object or null")
	}
	switch e := b.Extensions.(type) {
	case map[string]any:
		p.Extensions = e
	case nil:
	default:
		return badRequest("extensions: must be an object or null")
	}
	// A persisted query (APQ) may come without its text: the extension looks it up.
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return badRequest("query: a GraphQL document is required")
	}
	return nil
}

// negotiate picks the response media type from the Accept header: the GraphQL response type when the
// client names it, else JSON when it accepts JSON (or anything, or sends no Accept).
func negotiate(accept []string) (string, bool) {
	if len(accept) == 0 {
		return mediaJSON, true
	}
	best, bestQ := "", 0.0
	for _, header := range accept {
		for _, part := range strings.Split(header, ",") {
			media, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
			if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
				continue
			}
			var candidate string
			switch media {
			case mediaGraphQLResponse:
				candidate = mediaGraphQLResponse
			case mediaJSON, "application/*", "*/*":
				candidate = mediaJSON
			default:
				continue
			}
			// Prefer the GraphQL response type on equal quality: it carries the better status codes.
			if q > bestQ || (q == bestQ && q > 0 && candidate == mediaGraphQLResponse) {
				best, bestQ = candidate, q
			}
		}
	}
	return best, bestQ > 0
}

func fail(w http.ResponseWriter, media string, status int, code, message string) {
	writeJSON(w, media, status, &graphql.Response{Errors: gqlerror.List{{
		Message:    message,
		Extensions: map[string]any{"code": code},
	}}})
}

// response is graphql.Response without a data entry when there is no data: the specification
// says a request error must not carry one.
type response struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

func writeJSON(w http.ResponseWriter, media string, status int, r *graphql.Response) {
	out := response{Errors: r.Errors, Data: r.Data, Extensions: r.Extensions}
	b, err := json.Marshal(out)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL"}}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
