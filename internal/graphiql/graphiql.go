// Package graphiql serves GraphiQL, the in-browser GraphQL IDE, from files embedded in the binary:
// building the server needs no npm and the page loads nothing from any host but this server.
//
// The files under assets/ are vendored by scripts/fetch-graphiql.sh; index.html, init.js and
// page.css are ours.
package graphiql

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// assetPrefix is the path under which Handler serves the page's scripts and stylesheets.
const assetPrefix = "/graphiql/"

//go:embed index.html init.js page.css assets
var files embed.FS

// contentTypes lists the kinds of file that are served, by extension; other embedded files
// (none today) would not be.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
}

type asset struct {
	body        []byte
	contentType string
	version     string // a hash of body: the ?v= of the asset's URL and its ETag
}

// Handler serves GraphiQL for the GraphQL endpoint at the path endpoint (such as "/graphql"):
//
//	GET /                   the page
//	GET /graphiql/<file>    its scripts, stylesheets and licence texts
//
// Every other path is 404. The page sends queries to endpoint over HTTP and subscriptions over a
// websocket on the same path. The asset URLs in the page carry ?v=<hash of the file>, and only such
// a request is cached for a long time; a request without it (or with a stale one) gets the current
// file with no-cache.
//
// Handler panics if endpoint is not an absolute path: the page's Content-Security-Policy lets it
// connect to this origin only.
func Handler(endpoint string) http.Handler {
	if !strings.HasPrefix(endpoint, "/") || strings.HasPrefix(endpoint, "//") {
		panic("graphiql: endpoint must be an absolute path such as /graphql, got " + endpoint)
	}
	assets, err := loadAssets()
	if err != nil {
		panic("graphiql: " + err.Error()) // the embedded files are fixed at build time
	}
	page, err := parsePage(assets)
	if err != nil {
		panic("graphiql: " + err.Error())
	}
	return &handler{endpoint: endpoint, page: page, assets: assets}
}

type handler struct {
	endpoint string
	page     *template.Template
	assets   map[string]asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, isAsset := strings.CutPrefix(r.URL.Path, assetPrefix)
	a, known := h.assets[name]
	if r.URL.Path != "/" && !(isAsset && known) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if isAsset {
		serveAsset(w, r, a)
	} else {
		h.servePage(w, r)
	}
}

// servePage renders the page with a fresh nonce: GraphiQL's dialogs add a <style> element (to lock
// scrolling), which the CSP allows only with the nonce; init.js hands it to them.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	var b bytes.Buffer
	if err := h.page.Execute(&b, page{Endpoint: h.endpoint, Nonce: nonce}); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(r.Host, nonce))
	hdr.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.Bytes()))
}

func serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// hostPattern matches a Host header that is safe to repeat in a CSP: a name, IPv4 or bracketed
// IPv6 address, and an optional port.
var hostPattern = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// contentSecurityPolicy allows the page its own scripts, styles and fonts (GraphiQL's are data:
// URLs in its stylesheet), style elements carrying nonce, and connections to this origin only.
// CSP level 3 lets 'self' cover the websocket on the same host, but not every browser does, so ws:
// and wss: to the request's host are named too.
func contentSecurityPolicy(host, nonce string) string {
	connect := "'self'"
	if hostPattern.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-" + nonce + "'; font-src 'self' data:; " +
		"img-src 'self' data:; connect-src " + connect + "; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func loadAssets() (map[string]asset, error) {
	assets := map[string]asset{}
	add := func(name, file string) error {
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := files.ReadFile(file)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		assets[name] = asset{body: body, contentType: ct, version: hex.EncodeToString(sum[:8])}
		return nil
	}
	for _, name := range []string{"init.js", "page.css"} {
		if err := add(name, name); err != nil {
			return nil, err
		}
	}
	vendored, err := fs.ReadDir(files, "assets")
	if err != nil {
		return nil, err
	}
	for _, e := range vendored {
		if err := add(e.Name(), "assets/"+e.Name()); err != nil {
			return nil, err
		}
	}
	return assets, nil
}

// page is what index.html is rendered from.
type page struct {
	Endpoint string // the GraphQL endpoint's path
	Nonce    string // this response's CSP nonce for style elements
}

func parsePage(assets map[string]asset) (*template.Template, error) {
	t, err := template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := assets[name]
			if !ok {
				return "", fs.ErrNotExist
			}
			return assetPrefix + name + "?v=" + a.version, nil
		},
	}).ParseFS(files, "index.html")
	if err != nil {
		return nil, err
	}
	// Render once now so that a missing asset fails at start, not on the first request.
	return t, t.Execute(io.Discard, page{})
}
