package delivery

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestNotifyWakesOnlyConnectedLanes checks that Notify wakes the lanes of the destinations the
// given sources lead to, and no other.
func TestNotifyWakesOnlyConnectedLanes(t *testing.T) {
	e := &Engine{lanes: map[string]*lane{}, bySource: map[string][]string{
		"src_a": {"dst_1", "dst_2"},
		"src_b": {"dst_3"},
	}}
	for _, id := range []string{"dst_1", "dst_2", "dst_3", "dst_4"} {
		e.lanes[id] = &lane{id: id, wakeCh: make(chan struct{}, 1)}
	}
	e.Notify([]string{"src_a", "src_unknown"})
	for id, want := range map[string]bool{"dst_1": true, "dst_2": true, "dst_3": false, "dst_4": false} {
		if got := len(e.lanes[id].wakeCh) == 1; got != want {
			t.Errorf("lane %s woken %v, want %v", id, got, want)
		}
	}
	e.Wake("dst_4")
	if len(e.lanes["dst_4"].wakeCh) != 1 {
		t.Error("Wake(dst_4) did not wake its lane")
	}
}

// TestTake checks how queued events are packed into requests: in order, within the items and
// bytes limits, with one source, one key and one configuration per request, the others left
// queued in order.
func TestTake(t *testing.T) {
	cfg := &laneConfig{limits: Limits{Items: 3, Bytes: 1000}}
	other := &laneConfig{limits: cfg.limits}
	p := func(name, key string, items, size int, c *laneConfig) *pending {
		return &pending{ev: &Event{ID: name, SourceID: "src_1"}, cfg: c, part: Part{Key: key, Items: make([]json.RawMessage, items)}, size: size}
	}
	s := &scheduler{queue: []*pending{
		p("a", "k1", 1, 100, cfg), p("b", "k2", 1, 100, cfg), p("c", "k1", 2, 100, cfg), p("d", "k1", 1, 100, cfg),
		p("e", "k1", 1, 950, cfg), p("f", "k1", 1, 10, other), p("g", "k2", 1, 100, cfg), p("h", "k2", 1, 10, cfg),
	}}
	s.queue[7].ev.SourceID = "src_2" // h: another source
	names := func(list []*pending) string {
		var out []string
		for _, x := range list {
			out = append(out, x.ev.ID)
		}
		return strings.Join(out, "")
	}
	var got []string
	for len(s.queue) > 0 {
		got = append(got, names(s.take()))
	}
	// a+c fill 3 items; b and g share k2 (not h, of another source); d alone (e is too large to
	// join it); e; f has other settings; h.
	if want := "ac bg d e f h"; strings.Join(got, " ") != want {
		t.Errorf("requests %q, want %q", strings.Join(got, " "), want)
	}
}

// TestPartialAnswers checks the reading of the vendors' answers that name the refused events of a
// batch.
func TestPartialAnswers(t *testing.T) {
	ref, others, ok := mixpanel{}.refused(http.StatusBadRequest, []byte(`{"code":400,"error":"some data points in the request failed validation",
		"failed_records":[{"index":2,"$insert_id":"x","field":"properties.time","message":"'properties.time' is invalid"}],"num_records_imported":3}`))
	if !ok || !others || len(ref) != 1 || !strings.Contains(ref[2], "properties.time") {
		t.Errorf("mixpanel: %v %v %v", ref, others, ok)
	}
	if _, _, ok := (mixpanel{}).refused(http.StatusUnauthorized, []byte(`{"error":"Invalid credentials"}`)); ok {
		t.Error("mixpanel: a 401 names no events")
	}
	ref, others, ok = amplitude{}.refused(http.StatusBadRequest, []byte(`{"code":400,"error":"Invalid field values on some events",
		"events_with_invalid_fields":{"time":[0,3]},"events_with_missing_fields":{"event_type":[1]},"silenced_events":[4]}`))
	if !ok || others || len(ref) != 4 || !strings.Contains(ref[3], "invalid time") || !strings.Contains(ref[1], "missing event_type") {
		t.Errorf("amplitude: %v %v %v", ref, others, ok)
	}
	if _, _, ok := (amplitude{}).refused(http.StatusBadRequest, []byte(`{"code":400,"error":"Invalid API key"}`)); ok {
		t.Error("amplitude: an invalid key names no events: the status counts for all")
	}
}

// TestMasker checks what is hidden in recorded requests and error texts: secret values in plain,
// query-escaped and path-escaped form, every value of secret headers whatever its length, and the
// credential headers.
func TestMasker(t *testing.T) {
	m := newMasker(map[string]string{
		"apiSecret": "s3cret/with space",
		"headers":   `{"X-Api-Key":"hk-1234567","X-Short":"ab"}`,
	})
	for _, in := range []string{"s3cret/with space", "s3cret%2Fwith+space", "s3cret%2Fwith%20space", "hk-1234567"} {
		if got := m.text("before " + in + " after"); got != "before "+masked+" after" {
			t.Errorf("text(%q) = %q", in, got)
		}
	}
	h := http.Header{}
	h.Set("X-Api-Key", "hk-1234567")
	h.Set("X-Short", "ab")
	h.Set("Authorization", "Basic Zm9vOg==")
	h.Set("X-Custom-Token", "t")
	h.Set("Content-Type", "application/json")
	var got map[string]string
	_ = json.Unmarshal([]byte(m.headerJSON(h)), &got)
	for name, want := range map[string]string{"X-Api-Key": masked, "X-Short": masked, "Authorization": masked, "X-Custom-Token": masked,
		"Content-Type": "application/json"} {
		if got[name] != want {
			t.Errorf("%s recorded as %q, want %q", name, got[name], want)
		}
	}
}

// TestWebhookHeaderValidation checks that headers stored before they were validated (or that do not
// parse) make the settings invalid, a final INVALID_SETTINGS, rather than a retried connection
// error.
func TestWebhookHeaderValidation(t *testing.T) {
	ev := &Event{ID: "evt_1", Type: "track", Raw: []byte(`{"type":"track"}`), Payload: map[string]any{}}
	for name, headers := range map[string]string{
		"LineBreak": `{"X-Key":"a\r\nX-Evil: 1"}`,
		"BadName":   `{"Bad Name":"v"}`,
		"NotJSON":   `not json`,
	} {
		cfg := Config{Settings: map[string]any{"url": "https://hooks.example.com/in"}, Secrets: map[string]string{"headers": headers}}
		_, err := RequestFor(t.Context(), "webhook", cfg, ev)
		if err == nil || !strings.Contains(err.Error(), "settings.headers") {
			t.Errorf("%s: %v, want a settings.headers error", name, err)
		}
	}
}
