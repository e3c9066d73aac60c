package catalog

import (
	"strings"
	"testing"
)

func TestEmbeddedCatalogLoads(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"javascript", "node", "python", "go", "ruby", "java", "php", "dotnet", "ios", "android",
		"react-native", "flutter", "kotlin", "swift", "http-api"} {
		e := c.Entry(SourceKind, slug)
		if e == nil {
			t.Errorf("source %s missing", slug)
			continue
		}
		if !strings.Contains(e.Instructions, "WRITE_KEY") {
			t.Errorf("source %s: instructions do not show where the write key goes", slug)
		}
	}
	// analytics.js takes the scheme from the settings this server answers: a snippet that forces
	// https breaks every event on a plain-http server while the library logs "Delivered".
	if js := c.Entry(SourceKind, "javascript").Instructions; strings.Contains(js, "protocol:") || strings.Contains(js, "apiHost:") {
		t.Errorf("the analytics.js snippet overrides the server's scheme or host:\n%s", js)
	}
	// Cloud-app sources receive their vendor's webhooks: their instructions give the inbound URL,
	// and a signing secret is a secret setting.
	for _, slug := range []string{"stripe", "github", "shopify", "hubspot", "incoming-webhook"} {
		e := c.Entry(SourceKind, slug)
		if e == nil || e.SourceType == nil || *e.SourceType != CloudApp {
			t.Errorf("cloud-app source %s missing", slug)
			continue
		}
		if !strings.Contains(e.Instructions, "/v1/webhooks/SOURCE_ID") {
			t.Errorf("source %s: instructions do not give the inbound URL", slug)
		}
		if st := e.Setting("signingSecret"); st == nil || !st.Secret || st.Type != "STRING" || st.Required {
			t.Errorf("source %s: signingSecret %+v", slug, st)
		}
	}
	for _, slug := range []string{"webhook", "segment", "amplitude", "mixpanel", "google-analytics-4", "slack", "postgres"} {
		e := c.Entry(DestinationKind, slug)
		if e == nil {
			t.Errorf("destination %s missing", slug)
			continue
		}
		if e.Instructions == "" || e.Status != "PUBLIC" {
			t.Errorf("destination %s: status %s, instructions %q", slug, e.Status, e.Instructions)
		}
	}
	if got := len(c.List(DestinationKind, "", "")); got != 7 {
		t.Errorf("%d destinations, want 7", got)
	}
	if c.Entry(DestinationKind, "javascript") != nil || c.Entry(SourceKind, "webhook") != nil {
		t.Error("Entry ignores the kind")
	}
	if e := c.Entry("", "cat_webhook"); e == nil || e.ID() != "cat_webhook" {
		t.Error("lookup by ID failed")
	}
}

func TestSearch(t *testing.T) {
	c := MustLoad()
	names := func(es []*Entry) string {
		var n []string
		for _, e := range es {
			n = append(n, e.Slug)
		}
		return strings.Join(n, " ")
	}
	for _, tc := range []struct{ search, category, want string }{
		{"node", "", "node"},
		{"NODE", "", "node"},
		{"android", "", "android flutter"}, // Flutter's description names Android
		{"", "Website", "javascript"},
		{"", "website", "javascript"},
		{"swift", "Mobile", "ios swift"},
		{"kotlin", "Server", "kotlin"},
		{"no such thing", "", ""},
	} {
		if got := names(c.List(SourceKind, tc.search, tc.category)); got != tc.want {
			t.Errorf("search %q category %q: got %q, want %q", tc.search, tc.category, got, tc.want)
		}
	}
	if got := strings.Join(c.Categories(SourceKind), ","); got != "CRM,Custom,Developer Tools,E-commerce,Mobile,Payments,Server,Website" {
		t.Errorf("source categories %q", got)
	}
	newest := c.Newest(2)
	if len(newest) != 2 || newest[0].Slug != "github" {
		t.Errorf("newest: %v", names(newest))
	}
	for i := 1; i < len(c.Newest(100)); i++ {
		if all := c.Newest(100); all[i].AddedAt.After(all[i-1].AddedAt) {
			t.Fatal("newest not sorted")
		}
	}
}

func f(v float64) *float64 { return &v }

var testEntry = &Entry{Name: "Test", Settings: []Setting{
	{Name: "s", Label: "S", Type: "STRING", Required: true},
	{Name: "n", Label: "N", Type: "NUMBER", Min: f(1), Max: f(30), Default: 10.0},
	{Name: "b", Label: "B", Type: "BOOLEAN", Default: false},
	{Name: "sel", Label: "Sel", Type: "SELECT", Options: []string{"POST", "PUT"}, Default: "POST"},
	{Name: "l", Label: "L", Type: "LIST", Options: []string{"track", "page"}},
	{Name: "m", Label: "M", Type: "MAP"},
	{Name: "u", Label: "U", Type: "URL"},
	{Name: "key", Label: "Key", Type: "STRING", Secret: true, Required: true},
}}

func TestValidate(t *testing.T) {
	ok := map[string]any{"s": "x", "key": "k", "u": "https://example.com/x", "l": []any{"track"}, "m": map[string]any{"a": "b"}}
	t.Run("OKWithDefaults", func(t *testing.T) {
		out, errs := testEntry.Validate(ok, nil)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		if out["n"] != 10.0 || out["b"] != false || out["sel"] != "POST" {
			t.Errorf("defaults not filled: %v", out)
		}
	})
	for _, tc := range []struct {
		name, field string
		value       any
		wantCode    string
		wantText    string
	}{
		{"StringType", "s", 3, "INVALID", "settings.s must be a string"},
		{"StringRequired", "s", nil, "REQUIRED", "settings.s (S) is required"},
		{"StringEmpty", "s", "  ", "INVALID", "must not be empty"},
		{"NumberType", "n", "ten", "INVALID", "settings.n must be a number"},
		{"NumberRange", "n", 31.0, "INVALID", "settings.n must be between 1 and 30"},
		{"BooleanType", "b", "yes", "INVALID", "settings.b must be true or false"},
		{"SelectOption", "sel", "GET", "INVALID", "settings.sel must be one of POST, PUT"},
		{"ListType", "l", "track", "INVALID", "must be a list of strings"},
		{"ListOption", "l", []any{"track", "nope"}, "INVALID", `item "nope" must be one of track, page`},
		{"MapType", "m", []any{}, "INVALID", "must be an object of string values"},
		{"MapValues", "m", map[string]any{"a": 1.0}, "INVALID", `"a" is not a string`},
		{"URLRelative", "u", "/hook", "INVALID", "must be an absolute http or https URL"},
		{"URLScheme", "u", "ftp://example.com", "INVALID", "must be an absolute http or https URL"},
		{"SecretRequired", "key", nil, "REQUIRED", "settings.key (Key) is required"},
		{"Unknown", "colour", "red", "INVALID", "settings.colour is not a setting of Test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{}
			for k, v := range ok {
				in[k] = v
			}
			if tc.value == nil {
				delete(in, tc.field)
			} else {
				in[tc.field] = tc.value
			}
			_, errs := testEntry.Validate(in, nil)
			if len(errs) != 1 {
				t.Fatalf("errors %v", errs)
			}
			if e := errs[0]; e.Field != "settings."+tc.field || e.Code != tc.wantCode || !strings.Contains(e.Message, tc.wantText) {
				t.Errorf("got %+v, want field settings.%s code %s text %q", e, tc.field, tc.wantCode, tc.wantText)
			}
		})
	}
	t.Run("SecretAlreadyStoredMayBeLeftOut", func(t *testing.T) {
		in := map[string]any{"s": "x"}
		if _, errs := testEntry.Validate(in, map[string]bool{"key": true}); len(errs) != 0 {
			t.Error(errs)
		}
	})
}
