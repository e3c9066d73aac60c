package app_test

import (
	"strings"
	"testing"
)

// TestConformanceGraphQLHTTP runs graphql-http's auditServer: every MUST and SHOULD audit passes.
func TestConformanceGraphQLHTTP(t *testing.T) {
	s := startServer(t)
	runNode(t, "audit.mjs", s.URL+"/graphql")
}

// TestConformanceGraphQLWS runs the graphql-ws npm client: a query, a subscription and a refused
// query over one websocket.
func TestConformanceGraphQLWS(t *testing.T) {
	s := startServer(t)
	runNode(t, "ws.mjs", "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql")
}

// TestConformanceGraphiQL opens / in headless Chromium, runs a query and a subscription in GraphiQL,
// and checks that the page made no request to any other host.
func TestConformanceGraphiQL(t *testing.T) {
	s := startServer(t)
	runNode(t, "graphiql.mjs", s.URL)
}
