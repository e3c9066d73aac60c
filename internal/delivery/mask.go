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
var sensitiveHeaders = []string{"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey"}

// mask replaces every secret value that occurs in s.
func mask(s string, secrets map[string]string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, masked)
			s = strings.ReplaceAll(s, url.QueryEscape(v), masked)
			s = strings.ReplaceAll(s, url.PathEscape(v), masked)
		}
	}
	return s
}

// maskHeaders renders headers as JSON with credentials masked.
func maskHeaders(h http.Header, secrets map[string]string) string {
	out := map[string]string{}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.Join(h.Values(k), ", ")
		lk := strings.ToLower(k)
		for _, s := range sensitiveHeaders {
			if lk == s {
				v = masked
			}
		}
		if strings.Contains(lk, "token") || strings.Contains(lk, "secret") || strings.Contains(lk, "password") {
			v = masked
		}
		out[k] = mask(v, secrets)
	}
	b, _ := json.Marshal(out)
	return string(b)
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
