package app_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// TestConformanceSegmentNode sends every call type through @segment/analytics-node (Segment's own
// Node.js library, flushAt 1 and maxRetries 0 as in its tests, plus a client batching 50 events) and
// checks through the debugger that each event is stored once, accepted, as the library sent it.
func TestConformanceSegmentNode(t *testing.T) {
	s := startServer(t)
	src := newTrackingSource(t, s, "segment")
	run := src.send(t, 0)
	if got, want := run.Statuses["200"], run.Requests; got != want {
		t.Errorf("answers 200: got %d of %d requests (%v)", got, want, run.Statuses)
	}
	src.checkStored(t, run)
}

// TestConformanceSegmentNodeRateLimited runs the same client against a workspace allowed 2 requests a
// second: the library must take the 429s, wait the Retry-After seconds and send again, and every
// event must end up stored exactly once.
func TestConformanceSegmentNodeRateLimited(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.IngestRate, c.IngestBurst = 2, 2 })
	src := newTrackingSource(t, s, "segment")
	run := src.send(t, 3)
	if run.Statuses["429"] == 0 {
		t.Fatalf("no request was rate limited (%v): the test proves nothing", run.Statuses)
	}
	if got, want := run.Statuses["200"], 7; got != want { // 6 single calls and one batch of 50
		t.Errorf("answers 200: got %d, want %d (%v)", got, want, run.Statuses)
	}
	// The server answers Retry-After: 1 (whole seconds, at least 1). The library keeps one
	// rate-limit state per client and clears it on any success, so a batch refused just before
	// another batch succeeded is sent again at once; the others must wait the second.
	waited := 0
	for _, ms := range run.RetryWaitsMs {
		if ms >= 990 {
			waited++
		}
	}
	t.Logf("retries %d ms after their 429", run.RetryWaitsMs)
	if waited == 0 {
		t.Errorf("no retry waited the Retry-After second: %v ms", run.RetryWaitsMs)
	}
	src.checkStored(t, run)
}

// trackingSource is a source in a fresh workspace, its write key, and its owner's credentials.
type trackingSource struct {
	s        *server
	auth     []string
	id       string
	writeKey string
}

// newTrackingSource signs up an owner, creates a workspace named slug and a Node.js source in it.
func newTrackingSource(tb testing.TB, s *server, slug string) trackingSource {
	tb.Helper()
	must := func(r gqlResponse, field string) map[string]any {
		tb.Helper()
		p, _ := r.Data[field].(map[string]any)
		if len(r.Errors) > 0 || r.Status != 200 || p == nil {
			tb.Fatalf("%s: %d %s", field, r.Status, r.Raw)
		}
		return p
	}
	p := must(s.post(tb, `mutation($i: SignUpInput!) { signUp(input: $i) { token } }`, map[string]any{"i": map[string]any{
		"email": slug + "@example.com", "password": "correct horse battery", "name": "Owner of " + slug}}), "signUp")
	auth := []string{"Authorization", "Bearer " + p["token"].(string)}
	p = must(s.post(tb, `mutation($i: WorkspaceCreateInput!) { workspaceCreate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"name": slug, "slug": slug}}, auth...), "workspaceCreate")
	wsID := p["workspace"].(map[string]any)["id"].(string)
	p = must(s.post(tb, `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { id writeKeys { key } } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "catalogId": "cat_node", "name": "Node.js backend"}}, auth...), "sourceCreate")
	src := p["source"].(map[string]any)
	keys := src["writeKeys"].([]any)
	return trackingSource{s: s, auth: auth, id: src["id"].(string), writeKey: keys[0].(map[string]any)["key"].(string)}
}

// totalCount is the number of the source's events the debugger lists.
func (src trackingSource) totalCount(tb testing.TB) int {
	tb.Helper()
	r := src.s.post(tb, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents(first: 1) { totalCount } } } }`,
		map[string]any{"id": src.id}, src.auth...)
	n, ok := dig(r.Data, "node", "recentEvents", "totalCount").(float64)
	if !ok || len(r.Errors) > 0 {
		tb.Fatalf("recentEvents: %d %s", r.Status, r.Raw)
	}
	return int(n)
}

// segmentRun is what segment.mjs reports on its last-but-one line.
type segmentRun struct {
	Events       []map[string]any `json:"events"` // as on the wire, one per messageId
	Requests     int              `json:"requests"`
	Statuses     map[string]int   `json:"statuses"`
	RetryWaitsMs []int            `json:"retryWaitsMs"` // from each 429 to the batch's next attempt
}

func (src trackingSource) send(t *testing.T, maxRetries int) segmentRun {
	t.Helper()
	out := runNode(t, "segment.mjs", src.s.URL, src.writeKey, strconv.Itoa(maxRetries))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("segment.mjs: want a JSON line and a summary, got:\n%s", out)
	}
	var run segmentRun
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &run); err != nil {
		t.Fatalf("segment.mjs: the last-but-one line is not its JSON report: %v\n%s", err, out)
	}
	types := map[string]int{}
	for _, e := range run.Events {
		types[e["type"].(string)]++
	}
	if want := map[string]int{"track": 51, "identify": 1, "page": 1, "screen": 1, "group": 1, "alias": 1}; !reflect.DeepEqual(types, want) {
		t.Fatalf("the library sent %v, want %v", types, want)
	}
	return run
}

// checkStored compares the source's events in the debugger with the events on the wire: the same
// set of messageIds, each once, accepted, with every field the library sent.
func (src trackingSource) checkStored(t *testing.T, run segmentRun) {
	t.Helper()
	d := mustData(t, src.s.post(t, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents(first: 100) {
		totalCount nodes { type messageId event userId anonymousId status payload } } } } }`, map[string]any{"id": src.id}, src.auth...))
	conn := d["node"].(map[string]any)["recentEvents"].(map[string]any)
	nodes := conn["nodes"].([]any)
	stored := map[string]map[string]any{}
	for _, n := range nodes {
		e := n.(map[string]any)
		id := e["messageId"].(string)
		if stored[id] != nil {
			t.Errorf("messageId %s stored twice", id)
		}
		stored[id] = e
	}
	if got, want := int(conn["totalCount"].(float64)), len(run.Events); got != want || len(nodes) != want {
		t.Errorf("stored: totalCount %d, %d listed; sent %d", got, len(nodes), want)
	}
	for _, sent := range run.Events {
		id := sent["messageId"].(string)
		e := stored[id]
		if e == nil {
			t.Errorf("%s (%s): not stored", id, sent["type"])
			continue
		}
		delete(stored, id)
		if got, want := e["type"], strings.ToUpper(sent["type"].(string)); got != want {
			t.Errorf("%s: type %v, want %v", id, got, want)
		}
		if e["status"] != "ACCEPTED" {
			t.Errorf("%s: status %v: %v", id, e["status"], e["payload"])
		}
		for _, f := range []string{"event", "userId", "anonymousId"} {
			if got, want := e[f], sent[f]; got != want {
				t.Errorf("%s: %s %v, want %v", id, f, got, want)
			}
		}
		payload, _ := e["payload"].(map[string]any)
		if lib := dig(payload, "context", "library", "name"); lib != "@segment/analytics-node" {
			t.Errorf("%s: context.library.name %v", id, lib)
		}
		for k, v := range sent {
			if k == "timestamp" {
				// Kept as originalTimestamp; timestamp is corrected for the client's clock.
				want, _ := time.Parse(time.RFC3339Nano, v.(string))
				got, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(payload["originalTimestamp"]))
				if !got.Equal(want) {
					t.Errorf("%s: originalTimestamp %v, sent timestamp %v", id, payload["originalTimestamp"], v)
				}
				continue
			}
			if diff := jsonSubset(k, payload[k], v); diff != "" {
				t.Errorf("%s: %s", id, diff)
			}
		}
	}
	var extra []string
	for id := range stored {
		extra = append(extra, id)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("stored but not sent: %v", extra)
	}
}

// jsonSubset reports the first place where want (decoded JSON) is not in got: objects may have more
// keys in got (the server adds context.ip, receivedAt ...), everything else must be equal.
func jsonSubset(path string, got, want any) string {
	w, ok := want.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s: stored %#v, sent %#v", path, got, want)
		}
		return ""
	}
	g, ok := got.(map[string]any)
	if !ok {
		return fmt.Sprintf("%s: stored %#v, sent an object", path, got)
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		gv, present := g[k]
		if !present {
			return fmt.Sprintf("%s.%s: missing (sent %#v)", path, k, w[k])
		}
		if d := jsonSubset(path+"."+k, gv, w[k]); d != "" {
			return d
		}
	}
	return ""
}

// dig follows object keys through decoded JSON.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
