package graphiql_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/graphiql"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(graphiql.Handler("/graphql"))
	t.Cleanup(srv.Close)
	origin, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Page", func(t *testing.T) {
		resp, body := mustGet(t, srv.URL+"/", nil)
		if got, want := resp.StatusCode, http.StatusOK; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if got, want := resp.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
			t.Errorf("Content-Type = %q, want %q", got, want)
		}
		if got, want := resp.Header.Get("X-Content-Type-Options"), "nosniff"; got != want {
			t.Errorf("X-Content-Type-Options = %q, want %q", got, want)
		}
		if got, want := resp.Header.Get("Cache-Control"), "no-store"; got != want {
			t.Errorf("Cache-Control = %q, want %q", got, want)
		}
		if !strings.Contains(body, `data-endpoint="/graphql"`) {
			t.Errorf("page does not name the endpoint /graphql")
		}
	})

	t.Run("PageReferencesOnlySameOriginAssets", func(t *testing.T) {
		_, body := mustGet(t, srv.URL+"/", nil)
		refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*["']([^"']*)["']`).FindAllStringSubmatch(body, -1)
		if len(refs) == 0 {
			t.Fatal("page references no scripts or stylesheets")
		}
		for _, m := range refs {
			ref := html.UnescapeString(m[1])
			u, err := origin.Parse(ref)
			if err != nil {
				t.Errorf("reference %q: %v", ref, err)
				continue
			}
			if u.Scheme != origin.Scheme || u.Host != origin.Host {
				t.Errorf("reference %q leaves the server", ref)
				continue
			}
			// Every reference resolves to a file the handler serves, with the type its extension says.
			resp, _ := mustGet(t, u.String(), nil)
			if got, want := resp.StatusCode, http.StatusOK; got != want {
				t.Errorf("GET %s: status = %d, want %d", ref, got, want)
			}
			if got, want := resp.Header.Get("Content-Type"), typeByExt(path.Ext(u.Path)); got != want {
				t.Errorf("GET %s: Content-Type = %q, want %q", ref, got, want)
			}
			if got, want := resp.Header.Get("Cache-Control"), "public, max-age=31536000, immutable"; got != want {
				t.Errorf("GET %s: Cache-Control = %q, want %q", ref, got, want)
			}
		}
		for _, abs := range regexp.MustCompile(`(?i)(?:https?:)?//[^\s"'<>)]+`).FindAllString(body, -1) {
			t.Errorf("page names an absolute URL %q", abs)
		}
	})

	t.Run("Assets", func(t *testing.T) {
		for name, want := range map[string]string{
			"graphiql.min.js":             "text/javascript; charset=utf-8",
			"graphiql.min.css":            "text/css; charset=utf-8",
			"react.production.min.js":     "text/javascript; charset=utf-8",
			"react-dom.production.min.js": "text/javascript; charset=utf-8",
			"init.js":                     "text/javascript; charset=utf-8",
			"page.css":                    "text/css; charset=utf-8",
			"THIRD_PARTY_LICENSES.txt":    "text/plain; charset=utf-8",
		} {
			resp, body := mustGet(t, srv.URL+"/graphiql/"+name, nil)
			if got, want := resp.StatusCode, http.StatusOK; got != want {
				t.Errorf("%s: status = %d, want %d", name, got, want)
				continue
			}
			if got := resp.Header.Get("Content-Type"); got != want {
				t.Errorf("%s: Content-Type = %q, want %q", name, got, want)
			}
			if got, want := resp.Header.Get("X-Content-Type-Options"), "nosniff"; got != want {
				t.Errorf("%s: X-Content-Type-Options = %q, want %q", name, got, want)
			}
			// Without the page's ?v= the file may change under the same URL, so it is not cached.
			if got, want := resp.Header.Get("Cache-Control"), "no-cache"; got != want {
				t.Errorf("%s: Cache-Control = %q, want %q", name, got, want)
			}
			if len(body) == 0 {
				t.Errorf("%s: empty body", name)
			}
		}
	})

	t.Run("AssetsLoadNothingRemote", func(t *testing.T) {
		for _, name := range []string{"graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"} {
			_, body := mustGet(t, srv.URL+"/graphiql/"+name, nil)
			if strings.Contains(body, "sourceMappingURL") {
				t.Errorf("%s refers to a source map", name)
			}
			if m := regexp.MustCompile(`(?i)(@import|url\()\s*["']?(https?:)?//`).FindString(body); m != "" {
				t.Errorf("%s loads from another host: %q", name, m)
			}
		}
	})

	t.Run("NotModified", func(t *testing.T) {
		resp, _ := mustGet(t, srv.URL+"/graphiql/init.js", nil)
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		resp, _ = mustGet(t, srv.URL+"/graphiql/init.js", http.Header{"If-None-Match": {etag}})
		if got, want := resp.StatusCode, http.StatusNotModified; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		for _, p := range []string{"/graphiql/nope.js", "/graphiql/", "/graphiql", "/index.html", "/init.js", "/graphiql/../init.js", "/graphiql/assets/graphiql.min.js"} {
			resp, _ := mustGet(t, srv.URL+p, nil)
			if got, want := resp.StatusCode, http.StatusNotFound; got != want {
				t.Errorf("GET %s: status = %d, want %d", p, got, want)
			}
		}
	})

	t.Run("MethodNotAllowed", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusMethodNotAllowed; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
	})

	t.Run("ContentSecurityPolicy", func(t *testing.T) {
		resp, body := mustGet(t, srv.URL+"/", nil)
		csp := resp.Header.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		m := regexp.MustCompile(`<script nonce="([A-Za-z0-9]{16,})"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("page has no script carrying a nonce")
		}
		nonce := m[1]
		for name, want := range map[string]string{
			"default-src":     "'none'",
			"script-src":      "'self'",
			"style-src":       "'self' 'nonce-" + nonce + "'",
			"connect-src":     "'self' ws://" + origin.Host + " wss://" + origin.Host,
			"frame-ancestors": "'none'",
		} {
			if got := directives[name]; got != want {
				t.Errorf("CSP %s = %q, want %q (policy %q)", name, got, want, csp)
			}
		}
		for _, forbidden := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
			if strings.Contains(csp, forbidden) {
				t.Errorf("CSP allows %q: %q", forbidden, csp)
			}
		}
		// A nonce is good for one response only.
		resp, _ = mustGet(t, srv.URL+"/", nil)
		if strings.Contains(resp.Header.Get("Content-Security-Policy"), nonce) {
			t.Errorf("two responses share the nonce %q", nonce)
		}
	})

	t.Run("ContentSecurityPolicyIgnoresOddHost", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "evil.example; script-src *"
		rec := httptest.NewRecorder()
		graphiql.Handler("/graphql").ServeHTTP(rec, req)
		csp := rec.Header().Get("Content-Security-Policy")
		if strings.Contains(csp, "evil") {
			t.Errorf("CSP repeats a malformed Host: %q", csp)
		}
		if !strings.Contains(csp, "; connect-src 'self';") {
			t.Errorf("CSP connect-src is not 'self' alone: %q", csp)
		}
	})

	t.Run("ErrEndpointNotAPath", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("Handler accepted an endpoint on another host")
			}
		}()
		graphiql.Handler("https://elsewhere.example/graphql")
	})
}

func typeByExt(ext string) string {
	return map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
	}[ext]
}

func mustGet(tb testing.TB, url string, header http.Header) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(body)
}
