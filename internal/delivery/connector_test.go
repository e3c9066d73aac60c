package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/catalog"
)

// Helpers for the connector tests: events as the tracking API stores them, a local receiver that
// records what arrives, and a field-by-field comparison of JSON bodies.

// storedEvent makes an Event the way the engine loads one from the log.
func storedEvent(t *testing.T, payload string) *Event {
	t.Helper()
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(payload)); err != nil {
		t.Fatalf("test event: %v", err)
	}
	ev := &Event{ID: "evt_0000000000000000000001", SourceID: "src_test", Raw: compact.Bytes()}
	if err := json.Unmarshal(ev.Raw, &ev.Payload); err != nil {
		t.Fatalf("test event: %v", err)
	}
	ev.Type = strings.ToLower(ev.Str("type"))
	ev.ReceivedAt, _ = time.Parse(time.RFC3339Nano, ev.Str("receivedAt"))
	return ev
}

// received is a request as the receiver saw it.
type received struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// receiver is a local HTTP server that answers 200 and keeps what it receives.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	last received
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.last = received{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery, Header: req.Header.Clone(), Body: body}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(r.Close)
	return r
}

// deliver sends a connector's request to the receiver and returns what arrived. It also checks
// that GetBody, which the engine reads to record the request, gives the body that was sent.
func (r *receiver) deliver(t *testing.T, req *http.Request) received {
	t.Helper()
	var replay []byte
	if req.GetBody == nil {
		t.Error("request has no GetBody: the engine could not record its body")
	} else if b, err := req.GetBody(); err == nil {
		replay, _ = io.ReadAll(b)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("sending: %v", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.GetBody != nil && !bytes.Equal(replay, r.last.Body) {
		t.Errorf("GetBody gives %s, the request sent %s", replay, r.last.Body)
	}
	return r.last
}

// request builds the request of a connector, failing the test on any error.
func request(t *testing.T, slug string, cfg Config, ev *Event) *http.Request {
	t.Helper()
	req, err := RequestFor(context.Background(), slug, cfg, ev)
	if err != nil {
		t.Fatalf("%s: %s event: %v", slug, ev.Type, err)
	}
	return req
}

// wantSkip checks that a connector leaves an event out.
func wantSkip(t *testing.T, slug string, cfg Config, ev *Event) {
	t.Helper()
	req, err := RequestFor(context.Background(), slug, cfg, ev)
	var sk *skip
	if !errors.As(err, &sk) {
		t.Errorf("%s: %s event: got request %v, error %v; want Skip", slug, ev.Type, req, err)
	}
}

// wantInvalidSettings checks that a connector refuses its settings: an error that is not Skip,
// which the engine records as a final INVALID_SETTINGS failure.
func wantInvalidSettings(t *testing.T, slug string, cfg Config, ev *Event, wantText string) {
	t.Helper()
	req, err := RequestFor(context.Background(), slug, cfg, ev)
	var sk *skip
	if err == nil || errors.As(err, &sk) {
		t.Fatalf("%s: got request %v, error %v; want a settings error", slug, req, err)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("%s: error %q, want it to say %q", slug, err, wantText)
	}
}

// wantHeaders checks request headers exactly, by name.
func wantHeaders(t *testing.T, got received, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
}

// wantJSON compares a JSON body with the expected JSON, reporting every field that differs.
func wantJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("expected JSON: %v", err)
	}
	var diffs []string
	diffJSON("$", g, w, &diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	if len(diffs) > 0 {
		t.Logf("body: %s", got)
	}
}

func diffJSON(path string, got, want any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s = %v, want an object", path, got))
			return
		}
		keys := map[string]bool{}
		for k := range g {
			keys[k] = true
		}
		for k := range w {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				*out = append(*out, fmt.Sprintf("%s.%s missing, want %v", path, k, wv))
			case !wok:
				*out = append(*out, fmt.Sprintf("%s.%s = %v, not expected", path, k, gv))
			default:
				diffJSON(path+"."+k, gv, wv, out)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s = %v, want %v", path, got, want))
			return
		}
		for i := range w {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], out)
		}
	default:
		if !reflect.DeepEqual(got, want) {
			*out = append(*out, fmt.Sprintf("%s = %#v, want %#v", path, got, want))
		}
	}
}

// unixMilli and unixMicro of a test time, for expected bodies.
func unixMilli(s string) int64 { return mustTime(s).UnixMilli() }
func unixMicro(s string) int64 { return mustTime(s).UnixMicro() }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestCatalogAndConnectorsAgree checks that the catalog lists a destination only if a connector
// delivers it (warehouses excepted: they are synced, internal/warehouse, and must have none), and
// that each entry's settings, filled with defaults and required values, make a request its
// connector accepts.
func TestCatalogAndConnectorsAgree(t *testing.T) {
	var entries []*catalog.Entry
	for _, e := range catalog.MustLoad().List(catalog.DestinationKind, "", "") {
		if e.Category() != catalog.WarehouseCategory {
			entries = append(entries, e)
		} else if ConnectorFor(e.Slug) != nil {
			t.Errorf("warehouse %s has a connector: lanes would deliver to it", e.Slug)
		}
	}
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.Slug] = true
	}
	for slug := range connectors {
		if !listed[slug] {
			t.Errorf("connector %s has no catalog entry", slug)
		}
	}
	track := storedEvent(t, `{"type":"track","messageId":"m-0001","userId":"user-1","anonymousId":"anon-1","event":"Signed Up",
		"properties":{},"context":{},"timestamp":"2026-03-01T12:00:00Z","receivedAt":"2026-03-01T12:00:00Z"}`)
	for _, e := range entries {
		t.Run(e.Slug, func(t *testing.T) {
			if ConnectorFor(e.Slug) == nil {
				t.Fatalf("catalog entry %s has no connector", e.Slug)
			}
			given := map[string]any{}
			for _, s := range e.Settings {
				if s.Secret && s.Type != "STRING" && s.Type != "HEADERS" {
					// An update that leaves a secret out validates it as the mask, which only a
					// STRING takes (and each value of HEADERS, whose values are the secret).
					t.Errorf("secret setting %s is %s; secrets must be STRING or HEADERS", s.Name, s.Type)
				}
				if s.Required {
					given[s.Name] = "test-" + s.Name
					if s.Type == "URL" || strings.HasSuffix(s.Name, "Url") {
						given[s.Name] = "https://receiver.example/" + s.Name
					}
				}
			}
			clean, errs := e.Validate(given, nil)
			if len(errs) > 0 {
				t.Fatalf("settings with defaults and required values: %v", errs)
			}
			cfg := Config{DestinationID: "dst_test", Name: e.Name, Settings: map[string]any{}, Secrets: map[string]string{}}
			for k, v := range clean {
				if st := e.Setting(k); st != nil && st.Secret {
					if s, ok := v.(string); ok {
						cfg.Secrets[k] = s
					} else { // HEADERS: the values are sealed as one JSON object
						b, _ := json.Marshal(v)
						cfg.Secrets[k] = string(b)
					}
				} else {
					cfg.Settings[k] = v
				}
			}
			req, err := RequestFor(context.Background(), e.Slug, cfg, track)
			if err != nil {
				t.Fatalf("a track event with these settings: %v", err)
			}
			ep := e.Setting("endpoint")
			if ep == nil {
				return
			}
			if ep.Type != "URL" || ep.Default == nil {
				t.Errorf("endpoint setting: type %s, default %v; want a URL with the vendor's endpoint as default", ep.Type, ep.Default)
			}
			// Settings stored before the endpoint setting existed lack it: the connector's own
			// default must be the catalog's.
			delete(cfg.Settings, "endpoint")
			bare, err := RequestFor(context.Background(), e.Slug, cfg, track)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := bare.URL.String(), req.URL.String(); got != want {
				t.Errorf("without the endpoint setting the request goes to %s; with the catalog default, to %s", got, want)
			}
		})
	}
}

// TestRecordedRequestsHideSecrets records each connector's request the way the engine does (URL,
// headers and body, masked) and checks that no secret setting shows in the record.
func TestRecordedRequestsHideSecrets(t *testing.T) {
	for _, tc := range []struct {
		slug string
		cfg  Config
	}{
		{"segment", Config{Secrets: map[string]string{"writeKey": "wk-secret-1234"}}},
		{"amplitude", Config{Secrets: map[string]string{"apiKey": "0123456789abcdef0123456789abcdef"}}},
		{"mixpanel", Config{Secrets: map[string]string{"apiSecret": "mp-secret-9f8e7d"}}},
		{"google-analytics-4", Config{Settings: map[string]any{"measurementId": "G-TEST12345"}, Secrets: map[string]string{"apiSecret": "AbCdEfGhIjKlMnOpQrSt-_"}}},
		{"slack", Config{Secrets: map[string]string{"webhookUrl": "https://hooks.slack.com/services/T0001/B0001/abcdefghijklmnopqrstuvwx"}}},
		{"webhook", Config{Settings: map[string]any{"url": "https://hooks.example.com/in"}, Secrets: map[string]string{"sharedSecret": "whsec-test-1"}}},
	} {
		t.Run(tc.slug, func(t *testing.T) {
			req := request(t, tc.slug, tc.cfg, storedEvent(t, trackPayload))
			b, _ := req.GetBody()
			body, _ := io.ReadAll(b)
			recorded := mask(req.URL.String(), tc.cfg.Secrets) + maskHeaders(req.Header, tc.cfg.Secrets) + mask(string(body), tc.cfg.Secrets)
			for name, v := range tc.cfg.Secrets {
				if strings.Contains(recorded, v) {
					t.Errorf("secret %s shows in the recorded request: %s", name, recorded)
				}
			}
			// Basic auth carries the secret base64-encoded: the header as a whole is masked.
			if a := req.Header.Get("Authorization"); a != "" && strings.Contains(recorded, a) {
				t.Errorf("Authorization shows in the recorded request: %s", recorded)
			}
		})
	}
}
