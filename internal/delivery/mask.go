package delivery

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/junctioncdp/junction/internal/catalog"
)

// masked replaces secrets in what is recorded of a request.
const masked = "••••••••"

// sensitiveHeaders are never recorded in clear, whatever their value.
var sensitiveHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "apikey"}

// masker hides a destination's secrets in what is recorded and logged: every secret value (and
// its URL-escaped forms), each value of a secret headers setting, the whole value of headers that
// carry credentials, and the whole value of the secret headers.
type masker struct {
	values  []string        // longest first, so that a secret containing another is masked whole
	headers map[string]bool // canonical names of secret headers
}

func newMasker(secrets map[string]string) masker {
	m := masker{headers: map[string]bool{}}
	add := func(v string) {
		if len(v) < 4 { // shorter values would mask ordinary text
			return
		}
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if !contains(m.values, form) {
				m.values = append(m.values, form)
			}
		}
	}
	for _, v := range secrets {
		add(v)
		var values map[string]string // a HEADERS secret: a JSON object of values
		if strings.HasPrefix(v, "{") && json.Unmarshal([]byte(v), &values) == nil {
			for name, hv := range values {
				add(hv)
				m.headers[http.CanonicalHeaderKey(name)] = true
			}
		}
	}
	sort.Slice(m.values, func(i, j int) bool { return len(m.values[i]) > len(m.values[j]) })
	return m
}

// text replaces every secret value that occurs in s.
func (m masker) text(s string) string {
	for _, v := range m.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, masked)
		}
	}
	return s
}

// headerJSON renders headers as JSON with credentials masked.
func (m masker) headerJSON(h http.Header) string {
	out := map[string]string{}
	for k := range h {
		v := strings.Join(h.Values(k), ", ")
		lk := strings.ToLower(k)
		switch {
		case m.headers[http.CanonicalHeaderKey(k)], contains(sensitiveHeaders, lk),
			strings.Contains(lk, "token"), strings.Contains(lk, "secret"), strings.Contains(lk, "password"):
			v = masked
		}
		out[k] = m.text(v)
	}
	b, _ := json.Marshal(out) // maps marshal in key order
	return string(b)
}

// mask replaces every secret value that occurs in s.
func mask(s string, secrets map[string]string) string { return newMasker(secrets).text(s) }

// maskHeaders renders headers as JSON with credentials masked.
func maskHeaders(h http.Header, secrets map[string]string) string {
	return newMasker(secrets).headerJSON(h)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// catalog names, for the integrations object ("Webhooks": false).
var catalogNames = func() map[string]string {
	m := map[string]string{}
	for _, e := range catalog.MustLoad().List(catalog.DestinationKind, "", "") {
		m[e.Slug] = e.Name
	}
	return m
}()

func catalogName(slug string) string { return catalogNames[slug] }
