package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
)

// The tracking API (/v1/), as Segment's libraries and curl use it: real write keys made through
// GraphQL, real HTTP, and what was stored read back through the debugger and the usage figures.

// trkResp is a tracking API answer.
type trkResp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// trkSend POSTs body to path. body is sent as is when it is []byte or string, else as JSON.
// headers are name/value pairs; an empty value removes the header (Content-Type defaults to JSON).
func trkSend(t testing.TB, s *server, path string, body any, headers ...string) trkResp {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	return trkDo(t, s, http.MethodPost, path, bytes.NewReader(raw), append([]string{"Content-Type", "application/json"}, headers...)...)
}

func trkDo(t testing.TB, s *server, method, path string, body io.Reader, headers ...string) trkResp {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := trkResp{Status: res.StatusCode, Header: res.Header, Raw: string(b)}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &out.Body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, b)
		}
	}
	return out
}

// trkBasic is the Authorization header of a write key as Basic auth "key:".
func trkBasic(key string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))}
}

// trkWantOK checks the answer is 200 {"success": true}, as Segment answers.
func trkWantOK(t testing.TB, r trkResp) {
	t.Helper()
	if r.Status != http.StatusOK || len(r.Body) != 1 || r.Body["success"] != true {
		t.Fatalf("answer %d %s, want 200 {\"success\": true}", r.Status, r.Raw)
	}
}

// trkWantError checks a refused request: status, success false, code, and words in the message.
func trkWantError(t testing.TB, r trkResp, status int, code string, words ...string) {
	t.Helper()
	if r.Status != status || r.Body["success"] != false || r.Body["code"] != code {
		t.Fatalf("answer %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	msg, _ := r.Body["message"].(string)
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
}

// trkEnv is a user with a workspace of their own.
type trkEnv struct {
	s    *server
	auth []string
	wsID string
	slug string
}

// trkNewEnv signs a user up and creates their workspace, named slug.
func trkNewEnv(t *testing.T, s *server, slug string) *trkEnv {
	t.Helper()
	tok, _ := s.signUp(t, slug+"@example.com", slug)
	e := &trkEnv{s: s, auth: []string{"Authorization", "Bearer " + tok}, slug: slug}
	d := e.gql(t, `mutation($i: WorkspaceCreateInput!) { workspaceCreate(input: $i) { workspace { id } userErrors { message } } }`,
		map[string]any{"i": map[string]any{"name": slug, "slug": slug}})
	e.wsID = trkStr(d, "workspaceCreate.workspace.id")
	if e.wsID == "" {
		t.Fatalf("workspaceCreate: %v", d)
	}
	return e
}

func (e *trkEnv) gql(t *testing.T, query string, vars map[string]any) map[string]any {
	t.Helper()
	return mustData(t, e.s.post(t, query, vars, e.auth...))
}

// trkSource is a source and its first write key.
type trkSource struct{ ID, Key string }

func (e *trkEnv) source(t *testing.T, name string) trkSource {
	t.Helper()
	d := e.gql(t, `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { id writeKeys { key } } userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_javascript", "name": name}})
	src := trkObj(d, "sourceCreate.source")
	keys, _ := src["writeKeys"].([]any)
	if src == nil || len(keys) != 1 {
		t.Fatalf("sourceCreate: %v", d)
	}
	return trkSource{ID: trkStr(src, "id"), Key: trkStr(keys[0].(map[string]any), "key")}
}

// trkEventFields is what the tests read of an event.
const trkEventFields = `id type messageId event userId anonymousId receivedAt timestamp status discardReason discardMessage payload`

// trkPage is a page of a source's recentEvents.
type trkPage struct {
	Total       int
	Nodes       []map[string]any
	HasNext     bool
	EndCursor   string
	StartCursor string
}

// events reads a source's debugger list; args are recentEvents' arguments ("" for none).
func (e *trkEnv) events(t *testing.T, srcID, args string) trkPage {
	t.Helper()
	if args != "" {
		args = "(" + args + ")"
	}
	d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents`+args+` {
		totalCount pageInfo { hasNextPage startCursor endCursor } nodes { `+trkEventFields+` } } } } }`, map[string]any{"id": srcID})
	c := trkObj(d, "node.recentEvents")
	if c == nil {
		t.Fatalf("recentEvents of %s: %v", srcID, d)
	}
	p := trkPage{Total: trkInt(c["totalCount"]), HasNext: trkPath(c, "pageInfo.hasNextPage") == true,
		EndCursor: trkStr(c, "pageInfo.endCursor"), StartCursor: trkStr(c, "pageInfo.startCursor")}
	for _, n := range c["nodes"].([]any) {
		p.Nodes = append(p.Nodes, n.(map[string]any))
	}
	return p
}

// event returns the one event of a source that search finds.
func (e *trkEnv) event(t *testing.T, srcID, search string) map[string]any {
	t.Helper()
	p := e.events(t, srcID, fmt.Sprintf("search: %q", search))
	if len(p.Nodes) != 1 {
		t.Fatalf("%d events of %s match %q, want 1: %v", len(p.Nodes), srcID, search, p.Nodes)
	}
	return p.Nodes[0]
}

// sourceInfo reads fields of a source.
func (e *trkEnv) sourceInfo(t *testing.T, srcID, fields string) map[string]any {
	t.Helper()
	d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Source { `+fields+` } } }`, map[string]any{"id": srcID})
	n := trkObj(d, "node")
	if n == nil {
		t.Fatalf("source %s not found", srcID)
	}
	return n
}

// usage reads the workspace's usage in month.
func (e *trkEnv) usage(t *testing.T, month string) map[string]any {
	t.Helper()
	d := e.gql(t, `query($slug: String!, $m: String!) { workspace(slug: $slug) { usage(month: $m) {
		month apiCalls mtus bySource { sourceId apiCalls mtus source { id } } byDay { day apiCalls newMtus } } } }`,
		map[string]any{"slug": e.slug, "m": month})
	return trkObj(d, "workspace.usage")
}

// trkStored counts the stored events, in any source, that carry userId.
func trkStored(t *testing.T, s *server, userID string) int {
	t.Helper()
	var n int
	if err := s.App.DB().Get(context.Background(), &n, `SELECT COUNT(*) FROM events WHERE user_id = ?`, userID); err != nil {
		t.Fatal(err)
	}
	return n
}

func trkPath(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func trkObj(v any, path string) map[string]any { m, _ := trkPath(v, path).(map[string]any); return m }
func trkStr(v any, path string) string         { s, _ := trkPath(v, path).(string); return s }
func trkInt(v any) int                         { f, _ := v.(float64); return int(f) }

func trkTime(t testing.TB, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

func trkGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// trkBatch is a batch body.
func trkBatch(events ...map[string]any) map[string]any {
	list := make([]any, len(events))
	for i, e := range events {
		list[i] = e
	}
	return map[string]any{"batch": list}
}

func trkMonth() string { return time.Now().UTC().Format("2006-01") }

func TestTracking(t *testing.T) {
	s := startServer(t)
	e := trkNewEnv(t, s, "trk-acme")

	t.Run("EveryPathStoresItsType", func(t *testing.T) {
		src := e.source(t, "Paths")
		single := map[string]string{"track": "TRACK", "t": "TRACK", "identify": "IDENTIFY", "i": "IDENTIFY", "page": "PAGE", "p": "PAGE",
			"screen": "SCREEN", "s": "SCREEN", "group": "GROUP", "g": "GROUP", "alias": "ALIAS", "a": "ALIAS"}
		want := map[string]string{}
		for path, typ := range single {
			// No type in the body: the path names it. Every type's required fields are there.
			uid := "path-" + path
			trkWantOK(t, trkSend(t, s, "/v1/"+path, map[string]any{"userId": uid, "event": "E", "groupId": "g1", "previousId": "p1"}, trkBasic(src.Key)...))
			want[uid] = typ
		}
		for _, path := range []string{"batch", "b", "import"} {
			var events []map[string]any
			for _, typ := range []string{"track", "identify", "page", "screen", "group", "alias"} {
				uid := "path-" + path + "-" + typ
				events = append(events, map[string]any{"type": typ, "userId": uid, "event": "E", "groupId": "g1", "previousId": "p1"})
				want[uid] = strings.ToUpper(typ)
			}
			trkWantOK(t, trkSend(t, s, "/v1/"+path, trkBatch(events...), trkBasic(src.Key)...))
		}
		p := e.events(t, src.ID, "first: 100")
		got := map[string]string{}
		for _, n := range p.Nodes {
			if n["status"] != "ACCEPTED" {
				t.Errorf("%v: %v %v", n["userId"], n["status"], n["discardMessage"])
			}
			got[trkStr(n, "userId")] = trkStr(n, "type")
			if pt := trkStr(n, "payload.type"); pt != strings.ToLower(trkStr(n, "type")) {
				t.Errorf("%v: payload type %q for %v", n["userId"], pt, n["type"])
			}
		}
		for uid, typ := range want {
			if got[uid] != typ {
				t.Errorf("%s: stored as %q, want %s", uid, got[uid], typ)
			}
		}
		if p.Total != len(want) {
			t.Errorf("totalCount %d, want %d", p.Total, len(want))
		}
	})

	t.Run("PathTypeWinsOverBodyType", func(t *testing.T) {
		src := e.source(t, "PathWins")
		trkWantOK(t, trkSend(t, s, "/v1/identify", map[string]any{"type": "track", "userId": "pw1", "event": "E"}, trkBasic(src.Key)...))
		if n := e.event(t, src.ID, "pw1"); n["type"] != "IDENTIFY" || trkStr(n, "payload.type") != "identify" {
			t.Errorf("stored %v (payload %v), want IDENTIFY", n["type"], trkPath(n, "payload.type"))
		}
	})

	t.Run("UnknownPathAndMethod", func(t *testing.T) {
		trkWantError(t, trkSend(t, s, "/v1/purchase", map[string]any{}), 404, "NOT_FOUND")
		r := trkDo(t, s, http.MethodGet, "/v1/track", nil)
		trkWantError(t, r, 405, "METHOD_NOT_ALLOWED")
		if !strings.Contains(r.Header.Get("Allow"), "POST") {
			t.Errorf("Allow %q", r.Header.Get("Allow"))
		}
	})

	t.Run("WriteKey", func(t *testing.T) {
		src := e.source(t, "Keys")
		other := e.source(t, "OtherKeys")
		ev := func(uid string) map[string]any { return map[string]any{"type": "track", "userId": uid, "event": "E"} }
		withKey := func(uid, key string) map[string]any { m := ev(uid); m["writeKey"] = key; return m }
		cases := []struct {
			name    string
			body    map[string]any
			headers []string
		}{
			{"BasicKeyColon", ev("wk-colon"), []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(src.Key+":"))}},
			{"BasicKeyNoColon", ev("wk-nocolon"), []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(src.Key))}},
			{"BodyWriteKey", withKey("wk-body", src.Key), nil},
			{"BasicAndBody", withKey("wk-both", src.Key), trkBasic(src.Key)},
			// The Basic-auth key is the one used when both are sent and differ.
			{"BasicWinsOverBody", withKey("wk-basic-wins", other.Key), trkBasic(src.Key)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				trkWantOK(t, trkSend(t, s, "/v1/track", c.body, c.headers...))
				uid := c.body["userId"].(string)
				if n := e.event(t, src.ID, uid); n["status"] != "ACCEPTED" {
					t.Errorf("%v %v", n["status"], n["discardMessage"])
				}
				if _, ok := trkObj(e.event(t, src.ID, uid), "payload")["writeKey"]; ok {
					t.Error("the write key was stored in the payload")
				}
			})
		}
		if p := e.events(t, other.ID, ""); p.Total != 0 {
			t.Errorf("the body's key got %d events though Basic auth named another source", p.Total)
		}
		t.Run("BatchBodyWriteKey", func(t *testing.T) {
			b := trkBatch(ev("wk-batch"))
			b["writeKey"] = src.Key
			trkWantOK(t, trkSend(t, s, "/v1/batch", b))
			e.event(t, src.ID, "wk-batch")
		})
	})

	t.Run("ContentTypeIgnored", func(t *testing.T) {
		src := e.source(t, "ContentType")
		for uid, ct := range map[string]string{"ct-plain": "text/plain", "ct-none": "", "ct-form": "application/x-www-form-urlencoded"} {
			trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": uid, "event": "E"}, append(trkBasic(src.Key), "Content-Type", ct)...))
			if n := e.event(t, src.ID, uid); n["status"] != "ACCEPTED" {
				t.Errorf("Content-Type %q: %v", ct, n["status"])
			}
		}
	})

	t.Run("GzipBody", func(t *testing.T) {
		src := e.source(t, "Gzip")
		body, _ := json.Marshal(trkBatch(map[string]any{"type": "track", "userId": "gz1", "event": "E"}))
		trkWantOK(t, trkSend(t, s, "/v1/batch", trkGzip(body), append(trkBasic(src.Key), "Content-Encoding", "gzip")...))
		e.event(t, src.ID, "gz1")
		t.Run("NotGzip400", func(t *testing.T) {
			trkWantError(t, trkSend(t, s, "/v1/batch", body, append(trkBasic(src.Key), "Content-Encoding", "gzip")...), 400, "INVALID_GZIP")
		})
		t.Run("OtherEncoding415", func(t *testing.T) {
			trkWantError(t, trkSend(t, s, "/v1/batch", body, append(trkBasic(src.Key), "Content-Encoding", "br")...), 415, "UNSUPPORTED_ENCODING")
		})
	})

	t.Run("Limits", func(t *testing.T) {
		src := e.source(t, "Limits")
		key := trkBasic(src.Key)
		// sized returns a track call of exactly n bytes.
		sized := func(uid string, n int) []byte {
			b, _ := json.Marshal(map[string]any{"userId": uid, "event": "E", "properties": map[string]any{"pad": ""}})
			b, _ = json.Marshal(map[string]any{"userId": uid, "event": "E", "properties": map[string]any{"pad": strings.Repeat("x", n-len(b))}})
			if len(b) != n {
				t.Fatalf("sized: %d bytes", len(b))
			}
			return b
		}
		t.Run("EventOf32KBAccepted", func(t *testing.T) {
			trkWantOK(t, trkSend(t, s, "/v1/track", sized("lim-32k", 32<<10), key...))
			e.event(t, src.ID, "lim-32k")
		})
		t.Run("EventOver32KB400EventTooLarge", func(t *testing.T) {
			trkWantError(t, trkSend(t, s, "/v1/track", sized("lim-big", 32<<10+1), key...), 400, "EVENT_TOO_LARGE", "32 KB", "32768")
			var big map[string]any
			_ = json.Unmarshal(sized("lim-big-batch", 33<<10), &big)
			big["type"] = "track"
			b := trkBatch(map[string]any{"type": "track", "userId": "lim-small", "event": "E"}, big)
			trkWantError(t, trkSend(t, s, "/v1/batch", b, key...), 400, "EVENT_TOO_LARGE", "event 1", "32 KB")
			for _, uid := range []string{"lim-big", "lim-big-batch", "lim-small"} {
				if n := trkStored(t, s, uid); n != 0 {
					t.Errorf("%s: %d stored from a refused request", uid, n)
				}
			}
		})
		t.Run("RequestOver500KB400RequestTooLarge", func(t *testing.T) {
			var events []map[string]any
			for i := 0; i < 20; i++ {
				events = append(events, map[string]any{"type": "track", "userId": "lim-req", "event": "E", "properties": map[string]any{"pad": strings.Repeat("x", 26000)}})
			}
			trkWantError(t, trkSend(t, s, "/v1/batch", trkBatch(events...), key...), 400, "REQUEST_TOO_LARGE", "500 KB")
			// The limit is on the body as decompressed: a small gzip body must not expand past it.
			bomb := []byte(`{"batch":[], "pad": "` + strings.Repeat(" ", 600<<10) + `"}`)
			trkWantError(t, trkSend(t, s, "/v1/batch", trkGzip(bomb), append(key, "Content-Encoding", "gzip")...), 400, "REQUEST_TOO_LARGE", "500 KB")
			if n := trkStored(t, s, "lim-req"); n != 0 {
				t.Errorf("%d stored from a refused request", n)
			}
		})
		t.Run("BatchOf2500EventsAccepted", func(t *testing.T) {
			bulk := e.source(t, "Bulk")
			var events []map[string]any
			for i := 0; i < 2500; i++ {
				events = append(events, map[string]any{"type": "track", "anonymousId": "bulk", "event": "E", "messageId": "bulk-" + strconv.Itoa(i)})
			}
			trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(events...), trkBasic(bulk.Key)...))
			if p := e.events(t, bulk.ID, "first: 1"); p.Total != 2500 {
				t.Errorf("totalCount %d, want 2500", p.Total)
			}
		})
		t.Run("BatchOf2501Events400BatchTooLarge", func(t *testing.T) {
			var events []map[string]any
			for i := 0; i < 2501; i++ {
				events = append(events, map[string]any{"type": "track", "userId": "lim-2501", "event": "E"})
			}
			trkWantError(t, trkSend(t, s, "/v1/batch", trkBatch(events...), key...), 400, "BATCH_TOO_LARGE", "2501", "2500")
			if n := trkStored(t, s, "lim-2501"); n != 0 {
				t.Errorf("%d stored from a refused batch", n)
			}
		})
		t.Run("InvalidJSON400", func(t *testing.T) {
			for _, body := range []string{`{"userId": "u", "event": `, `not json`, ``, `[{"userId":"u"}]`, `"track"`, `{"userId":"u"} {}`} {
				for _, path := range []string{"/v1/track", "/v1/batch"} {
					trkWantError(t, trkSend(t, s, path, body, key...), 400, "INVALID_JSON")
				}
			}
			trkWantError(t, trkSend(t, s, "/v1/batch", `{"events":[]}`, key...), 400, "MISSING_BATCH", "batch")
			trkWantError(t, trkSend(t, s, "/v1/batch", `{"batch":{"type":"track"}}`, key...), 400, "INVALID_FIELD", "batch")
			trkWantError(t, trkSend(t, s, "/v1/batch", `{"batch":[],"context":"web"}`, key...), 400, "INVALID_FIELD", "context")
		})
		t.Run("EmptyBatch200", func(t *testing.T) {
			trkWantOK(t, trkSend(t, s, "/v1/batch", `{"batch":[]}`, key...))
		})
	})

	t.Run("InvalidEventsAnswered200AndRecordedAsDiscarded", func(t *testing.T) {
		src := e.source(t, "Discards")
		r := trkSend(t, s, "/v1/batch", trkBatch(
			map[string]any{"type": "track", "event": "No Identity", "messageId": "d-identity"},
			map[string]any{"type": "track", "userId": "d1", "messageId": "d-event"},
			map[string]any{"type": "track", "userId": map[string]any{"id": 1}, "event": "E", "messageId": "d-userid"},
			map[string]any{"type": "identify", "userId": "d1", "traits": []any{"vip"}, "messageId": "d-traits"},
			map[string]any{"type": "purchase", "userId": "d1", "messageId": "d-type"},
			map[string]any{"type": "group", "userId": "d1", "messageId": "d-group"},
			map[string]any{"type": "alias", "userId": "d1", "messageId": "d-alias"},
			map[string]any{"type": "track", "userId": "d1", "event": "Fine", "messageId": "d-ok"},
		), trkBasic(src.Key)...)
		trkWantOK(t, r)
		want := map[string][2]string{ // messageId -> reason, words of the message
			"d-identity": {"MISSING_IDENTITY", "userId or anonymousId"},
			"d-event":    {"MISSING_EVENT", "event name"},
			"d-userid":   {"INVALID_FIELD", "userId"},
			"d-traits":   {"INVALID_FIELD", "traits"},
			"d-type":     {"UNKNOWN_TYPE", `"purchase"`},
			"d-group":    {"MISSING_GROUP_ID", "groupId"},
			"d-alias":    {"MISSING_PREVIOUS_ID", "previousId"},
		}
		p := e.events(t, src.ID, "status: DISCARDED, first: 100")
		if p.Total != len(want) {
			t.Errorf("%d discarded, want %d", p.Total, len(want))
		}
		for _, n := range p.Nodes {
			w, ok := want[trkStr(n, "messageId")]
			if !ok || n["status"] != "DISCARDED" || n["discardReason"] != w[0] || !strings.Contains(trkStr(n, "discardMessage"), w[1]) {
				t.Errorf("%v: %v %v %q, want %v", n["messageId"], n["status"], n["discardReason"], n["discardMessage"], w)
			}
			if trkObj(n, "payload") == nil {
				t.Errorf("%v: no payload", n["messageId"])
			}
		}
		if n := e.event(t, src.ID, "d-ok"); n["status"] != "ACCEPTED" || n["discardReason"] != nil {
			t.Errorf("the valid event of the batch: %v %v", n["status"], n["discardReason"])
		}
		st := e.sourceInfo(t, src.ID, `ingestStats {
			lastHour { received accepted discarded byReason { reason count } }
			last24Hours { received accepted discarded byReason { reason count } } }`)
		for _, period := range []string{"lastHour", "last24Hours"} {
			f := trkObj(st, "ingestStats."+period)
			if trkInt(f["received"]) != 8 || trkInt(f["accepted"]) != 1 || trkInt(f["discarded"]) != 7 {
				t.Errorf("%s: %v", period, f)
			}
			got := map[string]int{}
			for _, b := range f["byReason"].([]any) {
				got[trkStr(b, "reason")] = trkInt(b.(map[string]any)["count"])
			}
			wantBy := map[string]int{"MISSING_IDENTITY": 1, "MISSING_EVENT": 1, "INVALID_FIELD": 2, "UNKNOWN_TYPE": 1, "MISSING_GROUP_ID": 1, "MISSING_PREVIOUS_ID": 1}
			if fmt.Sprint(got) != fmt.Sprint(wantBy) {
				t.Errorf("%s byReason %v, want %v", period, got, wantBy)
			}
		}
	})

	t.Run("RevokedWriteKeyDiscarded", func(t *testing.T) {
		src := e.source(t, "Revoked")
		d := e.gql(t, `mutation($id: ID!) { writeKeyCreate(input: {sourceId: $id}) { writeKey { key } userErrors { message } } }`, map[string]any{"id": src.ID})
		fresh := trkStr(d, "writeKeyCreate.writeKey.key")
		d = e.gql(t, `mutation($id: ID!, $k: String!) { writeKeyRevoke(input: {sourceId: $id, key: $k}) { userErrors { message } } }`,
			map[string]any{"id": src.ID, "k": src.Key})
		if errs := trkPath(d, "writeKeyRevoke.userErrors").([]any); fresh == "" || len(errs) > 0 {
			t.Fatalf("rotation: %v", d)
		}
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "rv-old", "event": "E"}, trkBasic(src.Key)...))
		n := e.event(t, src.ID, "rv-old")
		if n["status"] != "DISCARDED" || n["discardReason"] != "REVOKED_WRITE_KEY" || !strings.Contains(trkStr(n, "discardMessage"), "revoked") {
			t.Errorf("event with the revoked key: %v %v %v", n["status"], n["discardReason"], n["discardMessage"])
		}
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "rv-new", "event": "E"}, trkBasic(fresh)...))
		if n := e.event(t, src.ID, "rv-new"); n["status"] != "ACCEPTED" {
			t.Errorf("event with the new key: %v", n["status"])
		}
		st := e.sourceInfo(t, src.ID, `ingestStats { last24Hours { byReason { reason count } } }`)
		if by := trkPath(st, "ingestStats.last24Hours.byReason").([]any); len(by) != 1 || trkStr(by[0], "reason") != "REVOKED_WRITE_KEY" {
			t.Errorf("byReason %v", by)
		}
		t.Run("Strict401", func(t *testing.T) {
			trkWantError(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "rv-strict", "event": "E"}, append(trkBasic(src.Key), "X-Strict-Mode", "1")...),
				401, "REVOKED_WRITE_KEY", "revoked")
			if n := trkStored(t, s, "rv-strict"); n != 0 {
				t.Errorf("%d stored", n)
			}
		})
	})

	t.Run("DisabledSourceDiscarded", func(t *testing.T) {
		src := e.source(t, "Disabled")
		d := e.gql(t, `mutation($id: ID!) { sourceDisable(input: {sourceId: $id}) { source { enabled status } } }`, map[string]any{"id": src.ID})
		if trkStr(d, "sourceDisable.source.status") != "DISABLED" {
			t.Fatalf("sourceDisable: %v", d)
		}
		trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(
			map[string]any{"type": "track", "userId": "dis1", "event": "E"},
			map[string]any{"type": "track", "userId": "dis2"}, // invalid as well: keeps its own reason
		), trkBasic(src.Key)...))
		if n := e.event(t, src.ID, "dis1"); n["status"] != "DISCARDED" || n["discardReason"] != "SOURCE_DISABLED" {
			t.Errorf("event to a disabled source: %v %v", n["status"], n["discardReason"])
		}
		if n := e.event(t, src.ID, "dis2"); n["discardReason"] != "MISSING_EVENT" {
			t.Errorf("invalid event to a disabled source: %v", n["discardReason"])
		}
		if info := e.sourceInfo(t, src.ID, "status lastSeenAt"); info["status"] != "DISABLED" || info["lastSeenAt"] != nil {
			t.Errorf("disabled source: %v", info)
		}
		if p := e.events(t, src.ID, "status: DISCARDED"); p.Total != 2 {
			t.Errorf("%d discarded, want 2", p.Total)
		}
		st := e.sourceInfo(t, src.ID, `ingestStats { lastHour { accepted discarded byReason { reason count } } }`)
		if got := fmt.Sprint(trkPath(st, "ingestStats.lastHour")); !strings.Contains(got, "SOURCE_DISABLED") || !strings.Contains(got, "MISSING_EVENT") || trkInt(trkPath(st, "ingestStats.lastHour.accepted")) != 0 {
			t.Errorf("ingestStats %s, want SOURCE_DISABLED and MISSING_EVENT", got)
		}
		e.gql(t, `mutation($id: ID!) { sourceEnable(input: {sourceId: $id}) { source { id } } }`, map[string]any{"id": src.ID})
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "dis3", "event": "E"}, trkBasic(src.Key)...))
		if n := e.event(t, src.ID, "dis3"); n["status"] != "ACCEPTED" {
			t.Errorf("after sourceEnable: %v %v", n["status"], n["discardReason"])
		}
	})

	t.Run("UnknownWriteKey200NothingStored", func(t *testing.T) {
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "unknown-key", "event": "E"}, trkBasic("no-such-key")...))
		trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(map[string]any{"type": "track", "userId": "unknown-key", "event": "E"})))
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "unknown-key", "event": "E", "writeKey": ""}))
		if n := trkStored(t, s, "unknown-key"); n != 0 {
			t.Errorf("%d events stored without a known write key", n)
		}
	})

	t.Run("StrictMode", func(t *testing.T) {
		src := e.source(t, "Strict")
		strict := []string{"X-Strict-Mode", "1"}
		t.Run("HeaderUnknownKey401", func(t *testing.T) {
			for _, h := range [][]string{trkBasic("no-such-key"), nil} {
				r := trkSend(t, s, "/v1/track", map[string]any{"userId": "st-unknown", "event": "E"}, append(h, strict...)...)
				trkWantError(t, r, 401, "UNKNOWN_WRITE_KEY", "write key")
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
				}
			}
		})
		t.Run("HeaderInvalidEvents400WithPerEventErrors", func(t *testing.T) {
			r := trkSend(t, s, "/v1/batch", trkBatch(
				map[string]any{"type": "track", "userId": "st-ok1", "event": "E"},
				map[string]any{"type": "track", "event": "E", "messageId": "st-bad1"},
				map[string]any{"type": "identify", "userId": "st-ok2"},
				map[string]any{"type": "nope", "userId": "st-bad3", "messageId": "st-bad3"},
			), append(trkBasic(src.Key), strict...)...)
			if r.Status != 400 || r.Body["success"] != false || r.Body["code"] != "INVALID_EVENTS" {
				t.Fatalf("answer %d %s, want 400 INVALID_EVENTS", r.Status, r.Raw)
			}
			errs, _ := r.Body["errors"].([]any)
			if len(errs) != 2 {
				t.Fatalf("errors %v, want 2", errs)
			}
			for i, w := range []struct {
				index           int
				reason, message string
			}{{1, "MISSING_IDENTITY", "userId"}, {3, "UNKNOWN_TYPE", "nope"}} {
				got := errs[i].(map[string]any)
				if trkInt(got["index"]) != w.index || got["reason"] != w.reason || !strings.Contains(trkStr(got, "message"), w.message) || got["messageId"] == "" {
					t.Errorf("errors[%d] = %v, want index %d %s", i, got, w.index, w.reason)
				}
			}
			for _, uid := range []string{"st-ok1", "st-ok2"} {
				if n := e.event(t, src.ID, uid); n["status"] != "ACCEPTED" {
					t.Errorf("%s: %v", uid, n["status"])
				}
			}
			if n := e.event(t, src.ID, "st-bad1"); n["discardReason"] != "MISSING_IDENTITY" {
				t.Errorf("st-bad1: %v", n["discardReason"])
			}
		})
		t.Run("HeaderOffValues", func(t *testing.T) {
			for _, v := range []string{"0", "false", "FALSE"} {
				trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"event": "E"}, append(trkBasic(src.Key), "X-Strict-Mode", v)...))
			}
		})
		t.Run("BySourceSetting", func(t *testing.T) {
			strictSrc := e.source(t, "StrictSetting")
			trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"event": "E"}, trkBasic(strictSrc.Key)...)) // warms the key cache
			d := e.gql(t, `mutation($i: SourceUpdateInput!) { sourceUpdate(input: $i) { source { settings } userErrors { field message } } }`,
				map[string]any{"i": map[string]any{"sourceId": strictSrc.ID, "settings": map[string]any{"strictMode": true}}})
			if trkPath(d, "sourceUpdate.source.settings.strictMode") != true {
				t.Fatalf("sourceUpdate: %v", d)
			}
			r := trkSend(t, s, "/v1/batch", trkBatch(
				map[string]any{"type": "track", "userId": "ss-ok", "event": "E"},
				map[string]any{"type": "track", "userId": "ss-bad"},
			), trkBasic(strictSrc.Key)...)
			if r.Status != 400 || r.Body["code"] != "INVALID_EVENTS" {
				t.Fatalf("answer %d %s, want 400 INVALID_EVENTS", r.Status, r.Raw)
			}
			if errs, _ := r.Body["errors"].([]any); len(errs) != 1 || trkInt(errs[0].(map[string]any)["index"]) != 1 || trkStr(errs[0], "reason") != "MISSING_EVENT" {
				t.Errorf("errors %v", errs)
			}
			if n := e.event(t, strictSrc.ID, "ss-ok"); n["status"] != "ACCEPTED" {
				t.Errorf("valid event: %v", n["status"])
			}
			trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "ss-ok2", "event": "E"}, trkBasic(strictSrc.Key)...))
			// A revoked key of a strict source is refused.
			d = e.gql(t, `mutation($id: ID!) { writeKeyCreate(input: {sourceId: $id}) { writeKey { key } } }`, map[string]any{"id": strictSrc.ID})
			e.gql(t, `mutation($id: ID!, $k: String!) { writeKeyRevoke(input: {sourceId: $id, key: $k}) { userErrors { message } } }`,
				map[string]any{"id": strictSrc.ID, "k": strictSrc.Key})
			trkWantError(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "ss-revoked", "event": "E"}, trkBasic(strictSrc.Key)...), 401, "REVOKED_WRITE_KEY")
			trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "ss-new", "event": "E"}, trkBasic(trkStr(d, "writeKeyCreate.writeKey.key"))...))
		})
	})

	t.Run("BatchContextIntegrationsSentAtMerged", func(t *testing.T) {
		src := e.source(t, "Merge")
		sentAt := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
		b := trkBatch(
			map[string]any{"type": "track", "userId": "mg1", "event": "E", "context": map[string]any{"locale": "fr-FR"}, "integrations": map[string]any{"Mixpanel": false}},
			map[string]any{"type": "identify", "userId": "mg2"},
		)
		b["context"] = map[string]any{"library": map[string]any{"name": "analytics-python", "version": "2.3.0"}, "locale": "en-US"}
		b["integrations"] = map[string]any{"All": false, "Mixpanel": true}
		b["sentAt"] = sentAt
		trkWantOK(t, trkSend(t, s, "/v1/batch", b, trkBasic(src.Key)...))
		for uid, want := range map[string][2]any{"mg1": {"fr-FR", false}, "mg2": {"en-US", true}} {
			p := trkObj(e.event(t, src.ID, uid), "payload")
			if got := trkStr(p, "context.library.name"); got != "analytics-python" {
				t.Errorf("%s: context.library.name %q, want the batch's", uid, got)
			}
			if got := trkPath(p, "context.locale"); got != want[0] {
				t.Errorf("%s: context.locale %v, want %v", uid, got, want[0])
			}
			if got := trkPath(p, "integrations.Mixpanel"); got != want[1] {
				t.Errorf("%s: integrations.Mixpanel %v, want %v", uid, got, want[1])
			}
			if got := trkPath(p, "integrations.All"); got != false {
				t.Errorf("%s: integrations.All %v, want the batch's false", uid, got)
			}
			if got := trkTime(t, p["sentAt"]); !got.Equal(trkTime(t, sentAt)) {
				t.Errorf("%s: sentAt %v, want the batch's %s", uid, got, sentAt)
			}
		}
	})

	t.Run("TimesStampedKeptAndCorrected", func(t *testing.T) {
		src := e.source(t, "Times")
		// The client's clock is an hour ahead; the event happened 5 s before the batch was sent.
		before := time.Now().UTC()
		sent := before.Add(time.Hour)
		orig := sent.Add(-5 * time.Second).Format(time.RFC3339Nano)
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "tm1", "event": "E", "timestamp": orig, "sentAt": sent.Format(time.RFC3339Nano)}, trkBasic(src.Key)...))
		after := time.Now().UTC()
		n := e.event(t, src.ID, "tm1")
		p := trkObj(n, "payload")
		received := trkTime(t, n["receivedAt"])
		if received.Before(before.Truncate(time.Microsecond)) || received.After(after) {
			t.Errorf("receivedAt %v, not between %v and %v", received, before, after)
		}
		if got := trkTime(t, p["receivedAt"]); got.Truncate(time.Microsecond) != received {
			t.Errorf("payload receivedAt %v, event receivedAt %v", got, received)
		}
		if p["originalTimestamp"] != orig {
			t.Errorf("originalTimestamp %v, want the client's %s", p["originalTimestamp"], orig)
		}
		want := trkTime(t, p["receivedAt"]).Add(-5 * time.Second)
		if got := trkTime(t, p["timestamp"]); !got.Equal(want) {
			t.Errorf("payload timestamp %v, want receivedAt - (sentAt - originalTimestamp) = %v", got, want)
		}
		if got := trkTime(t, n["timestamp"]); got.Sub(want).Abs() > time.Microsecond {
			t.Errorf("timestamp %v, want %v", got, want)
		}
	})

	t.Run("MessageID", func(t *testing.T) {
		src := e.source(t, "MessageIDs")
		trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(
			map[string]any{"type": "track", "userId": "mid-none", "event": "E"},
			map[string]any{"type": "track", "userId": "mid-given", "event": "E", "messageId": "ajs-next-42"},
		), trkBasic(src.Key)...))
		n := e.event(t, src.ID, "mid-none")
		if id := trkStr(n, "messageId"); id == "" || trkStr(n, "payload.messageId") != id {
			t.Errorf("missing messageId: assigned %q, payload %v", id, trkPath(n, "payload.messageId"))
		}
		if n := e.event(t, src.ID, "mid-given"); n["messageId"] != "ajs-next-42" || trkStr(n, "payload.messageId") != "ajs-next-42" {
			t.Errorf("given messageId: %v / %v", n["messageId"], trkPath(n, "payload.messageId"))
		}
	})

	t.Run("ContextIPFilled", func(t *testing.T) {
		src := e.source(t, "IP")
		trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(
			map[string]any{"type": "track", "userId": "ip-none", "event": "E"},
			map[string]any{"type": "track", "userId": "ip-given", "event": "E", "context": map[string]any{"ip": "203.0.113.9"}},
		), append(trkBasic(src.Key), "X-Forwarded-For", "198.51.100.1")...))
		if got := trkPath(e.event(t, src.ID, "ip-none"), "payload.context.ip"); got != "127.0.0.1" {
			t.Errorf("context.ip %v, want the peer's 127.0.0.1 (X-Forwarded-For not trusted)", got)
		}
		if got := trkPath(e.event(t, src.ID, "ip-given"), "payload.context.ip"); got != "203.0.113.9" {
			t.Errorf("context.ip %v, want the one sent", got)
		}
	})

	t.Run("NumericUserIDAcceptedAsString", func(t *testing.T) {
		src := e.source(t, "Numeric")
		trkWantOK(t, trkSend(t, s, "/v1/track", `{"userId": 12345678901234567890, "anonymousId": 7, "event": "E"}`, trkBasic(src.Key)...))
		n := e.event(t, src.ID, "12345678901234567890")
		if n["status"] != "ACCEPTED" || n["anonymousId"] != "7" || trkPath(n, "payload.userId") != "12345678901234567890" {
			t.Errorf("%v userId %v anonymousId %v payload %v", n["status"], n["userId"], n["anonymousId"], trkPath(n, "payload.userId"))
		}
	})

	t.Run("SameRequestTwiceStoredOnce", func(t *testing.T) {
		src := e.source(t, "Dedup")
		b := trkBatch(
			map[string]any{"type": "track", "userId": "dd1", "event": "E", "messageId": "dd-1"},
			map[string]any{"type": "identify", "userId": "dd2", "messageId": "dd-2"},
			map[string]any{"type": "track", "userId": "dd3", "messageId": "dd-3"}, // discarded: stored once too
		)
		srcUsage := func() map[string]any {
			for _, u := range e.usage(t, trkMonth())["bySource"].([]any) {
				if trkStr(u, "sourceId") == src.ID {
					return u.(map[string]any)
				}
			}
			return nil
		}
		trkWantOK(t, trkSend(t, s, "/v1/batch", b, trkBasic(src.Key)...))
		first := srcUsage()
		if p := e.events(t, src.ID, ""); p.Total != 3 {
			t.Errorf("totalCount %d after the first request, want 3", p.Total)
		}
		trkWantOK(t, trkSend(t, s, "/v1/batch", b, trkBasic(src.Key)...))
		if p := e.events(t, src.ID, ""); p.Total != 3 {
			t.Errorf("totalCount %d after sending the request twice, want 3", p.Total)
		}
		second := srcUsage()
		if trkInt(first["apiCalls"]) != 2 || trkInt(second["apiCalls"]) != 2 || trkInt(second["mtus"]) != 2 {
			t.Errorf("usage %v then %v, want apiCalls 2 (accepted events, once), mtus 2", first, second)
		}
		// Retries that arrive together land in one group commit: still stored once.
		conc := e.source(t, "DedupConcurrent")
		body, _ := json.Marshal(b)
		answers := make([]int, 6)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/batch", bytes.NewReader(body))
				req.Header.Set("Authorization", trkBasic(conc.Key)[1])
				if res, err := http.DefaultClient.Do(req); err == nil {
					answers[i] = res.StatusCode
					res.Body.Close()
				}
			}()
		}
		wg.Wait()
		if fmt.Sprint(answers) != "[200 200 200 200 200 200]" {
			t.Errorf("concurrent retries answered %v", answers)
		}
		if p := e.events(t, conc.ID, ""); p.Total != 3 {
			t.Errorf("concurrent retries: totalCount %d, want 3", p.Total)
		}
		for _, u := range e.usage(t, trkMonth())["bySource"].([]any) {
			if trkStr(u, "sourceId") == conc.ID && trkInt(u.(map[string]any)["apiCalls"]) != 2 {
				t.Errorf("concurrent retries: usage %v, want apiCalls 2", u)
			}
		}
		// A discarded event does not block its corrected resend with the same messageId: only
		// accepted events count for deduplication.
		trkWantError(t, trkSend(t, s, "/v1/track", map[string]any{"event": "Fixed", "messageId": "dd-fix"},
			append(trkBasic(src.Key), "X-Strict-Mode", "1")...), 400, "INVALID_EVENTS")
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "dd-fix-user", "event": "Fixed", "messageId": "dd-fix"}, trkBasic(src.Key)...))
		if n := e.event(t, src.ID, "dd-fix-user"); n["status"] != "ACCEPTED" {
			t.Errorf("the corrected resend of a discarded event: %v, want ACCEPTED", n)
		}
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "dd-fix-user", "event": "Fixed", "messageId": "dd-fix"}, trkBasic(src.Key)...))
		if p := e.events(t, src.ID, `search: "dd-fix"`); p.Total != 2 {
			t.Errorf("%d events with messageId dd-fix after discard, resend and retry, want 2 (one discarded, one accepted)", p.Total)
		}
		// messageIds are unique per source: another source stores the same ones.
		other := e.source(t, "Dedup2")
		trkWantOK(t, trkSend(t, s, "/v1/batch", b, trkBasic(other.Key)...))
		if p := e.events(t, other.ID, ""); p.Total != 3 {
			t.Errorf("another source: totalCount %d, want 3", p.Total)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		r := trkDo(t, s, http.MethodOptions, "/v1/batch", nil, "Origin", "https://shop.example.com",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,authorization")
		if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Errorf("preflight: %d", r.Status)
		}
		h := r.Header
		if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight headers %v", h)
		}
		for _, want := range []string{"content-type", "authorization", "content-encoding"} {
			if !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), want) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
			}
		}
		src := e.source(t, "CORS")
		for _, r := range []trkResp{
			trkSend(t, s, "/v1/track", map[string]any{"userId": "cors", "event": "E"}, append(trkBasic(src.Key), "Origin", "https://shop.example.com")...),
			trkSend(t, s, "/v1/track", "nope", "Origin", "https://shop.example.com"),
			trkSend(t, s, "/v1/track", "{}", "Origin", "https://shop.example.com", "X-Strict-Mode", "1"),
			trkDo(t, s, http.MethodGet, "/v1/projects/"+src.Key+"/settings", nil, "Origin", "https://shop.example.com"),
		} {
			if r.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("answer %d without Access-Control-Allow-Origin: %v", r.Status, r.Header)
			}
		}
	})

	t.Run("SettingsEndpoint", func(t *testing.T) {
		src := e.source(t, "Settings")
		r := trkDo(t, s, http.MethodGet, "/v1/projects/"+src.Key+"/settings", nil)
		if r.Status != 200 {
			t.Fatalf("settings: %d %s", r.Status, r.Raw)
		}
		seg := trkObj(r.Body, "integrations")["Segment.io"].(map[string]any)
		host := strings.TrimPrefix(s.URL, "http://")
		if seg["apiKey"] != src.Key || seg["apiHost"] != host+"/v1" || seg["protocol"] != "http" {
			t.Errorf("Segment.io settings %v, want apiKey %s apiHost %s/v1", seg, src.Key, host)
		}
		if trkObj(r.Body, "plan") == nil {
			t.Errorf("no plan in %s", r.Raw)
		}
		trkWantError(t, trkDo(t, s, http.MethodGet, "/v1/projects/no-such-key/settings", nil), 404, "UNKNOWN_WRITE_KEY")
		d := e.gql(t, `mutation($id: ID!) { writeKeyCreate(input: {sourceId: $id}) { writeKey { key } } }`, map[string]any{"id": src.ID})
		e.gql(t, `mutation($id: ID!, $k: String!) { writeKeyRevoke(input: {sourceId: $id, key: $k}) { userErrors { message } } }`,
			map[string]any{"id": src.ID, "k": src.Key})
		trkWantError(t, trkDo(t, s, http.MethodGet, "/v1/projects/"+src.Key+"/settings", nil), 404, "UNKNOWN_WRITE_KEY")
		fresh := trkStr(d, "writeKeyCreate.writeKey.key")
		if r := trkDo(t, s, http.MethodGet, "/v1/projects/"+fresh+"/settings", nil); r.Status != 200 {
			t.Errorf("settings of the new key: %d", r.Status)
		}
		trkWantError(t, trkSend(t, s, "/v1/projects/"+fresh+"/settings", "{}"), 405, "METHOD_NOT_ALLOWED")
	})

	t.Run("SourceStatusAndLastSeenAt", func(t *testing.T) {
		src := e.source(t, "Status")
		if info := e.sourceInfo(t, src.ID, "status lastSeenAt"); info["status"] != "NEVER_RECEIVED" || info["lastSeenAt"] != nil {
			t.Errorf("new source: %v", info)
		}
		before := time.Now().UTC().Truncate(time.Microsecond)
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "status", "event": "E"}, trkBasic(src.Key)...))
		after := time.Now().UTC()
		info := e.sourceInfo(t, src.ID, "status lastSeenAt")
		if info["status"] != "RECEIVING" {
			t.Errorf("after an event: %v", info["status"])
		}
		if at := trkTime(t, info["lastSeenAt"]); at.Before(before) || at.After(after) {
			t.Errorf("lastSeenAt %v, not between %v and %v", at, before, after)
		}
		d := e.gql(t, `query($slug: String!) { workspace(slug: $slug) { sources(first: 100, filter: {status: RECEIVING}) { nodes { id } } } }`, map[string]any{"slug": e.slug})
		if !strings.Contains(fmt.Sprint(trkPath(d, "workspace.sources.nodes")), src.ID) {
			t.Errorf("sources(filter: {status: RECEIVING}) lacks the source: %v", d)
		}
		e.gql(t, `mutation($id: ID!) { sourceDisable(input: {sourceId: $id}) { source { id } } }`, map[string]any{"id": src.ID})
		if info := e.sourceInfo(t, src.ID, "status"); info["status"] != "DISABLED" {
			t.Errorf("disabled: %v", info["status"])
		}
	})

	t.Run("Usage", func(t *testing.T) {
		u := trkNewEnv(t, s, "trk-usage")
		web, app := u.source(t, "Web"), u.source(t, "App")
		month := trkMonth()
		step := func(src trkSource, ev map[string]any, apiCalls, mtus int) {
			t.Helper()
			trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(ev), trkBasic(src.Key)...))
			got := u.usage(t, month)
			if trkInt(got["apiCalls"]) != apiCalls || trkInt(got["mtus"]) != mtus {
				t.Errorf("after %v: apiCalls %v mtus %v, want %d and %d", ev, got["apiCalls"], got["mtus"], apiCalls, mtus)
			}
		}
		step(web, map[string]any{"type": "track", "anonymousId": "a1", "event": "E"}, 1, 1)
		step(web, map[string]any{"type": "identify", "userId": "u1", "anonymousId": "a1"}, 2, 1) // a1 is u1 now
		step(web, map[string]any{"type": "page", "anonymousId": "a2"}, 3, 2)
		step(web, map[string]any{"type": "track", "userId": "u9"}, 3, 2) // discarded: not counted
		step(app, map[string]any{"type": "track", "userId": "u1", "event": "E"}, 4, 2)

		got := u.usage(t, month)
		if got["month"] != month {
			t.Errorf("month %v", got["month"])
		}
		by := map[string][2]int{}
		for _, x := range got["bySource"].([]any) {
			m := x.(map[string]any)
			by[trkStr(m, "sourceId")] = [2]int{trkInt(m["apiCalls"]), trkInt(m["mtus"])}
			if trkStr(m, "source.id") != trkStr(m, "sourceId") {
				t.Errorf("bySource source %v", m["source"])
			}
		}
		if want := map[string][2]int{web.ID: {3, 2}, app.ID: {1, 1}}; fmt.Sprint(by) != fmt.Sprint(want) {
			t.Errorf("bySource (apiCalls, mtus) %v, want %v", by, want)
		}
		days := got["byDay"].([]any)
		today := time.Now().UTC().Format("2006-01-02")
		if len(days) != 1 || trkStr(days[0], "day") != today || trkInt(days[0].(map[string]any)["apiCalls"]) != 4 || trkInt(days[0].(map[string]any)["newMtus"]) != 2 {
			t.Errorf("byDay %v, want %s: 4 calls, 2 new MTUs", days, today)
		}
		prev := time.Now().UTC().AddDate(0, -1, -time.Now().UTC().Day()+1).Format("2006-01")
		if old := u.usage(t, prev); trkInt(old["apiCalls"]) != 0 || trkInt(old["mtus"]) != 0 || len(old["bySource"].([]any)) != 0 {
			t.Errorf("usage of %s: %v", prev, old)
		}
		// Another workspace's events are not counted here.
		if mine := e.usage(t, month); trkInt(mine["apiCalls"]) == 0 {
			t.Errorf("the first workspace has no usage: %v", mine)
		}
		r := s.post(t, `query($slug: String!, $m: String!) { workspace(slug: $slug) { usage(month: $m) { apiCalls } } }`, map[string]any{"slug": u.slug, "m": month}, e.auth...)
		if trkObj(r.Data, "workspace") != nil {
			t.Errorf("a stranger read the usage: %s", r.Raw)
		}
	})

	t.Run("Debugger", func(t *testing.T) {
		src := e.source(t, "Debugger")
		sent := []map[string]any{
			{"type": "track", "userId": "dbg-u1", "event": "Signed Up", "messageId": "dbg-0"},
			{"type": "identify", "anonymousId": "dbg-a1", "messageId": "dbg-1"},
			{"type": "page", "userId": "dbg-u1", "messageId": "dbg-2"},
			{"type": "track", "userId": "dbg-u2", "messageId": "dbg-3"}, // discarded
			{"type": "track", "userId": "dbg-u2", "event": "Order Completed", "messageId": "dbg-4"},
		}
		for _, ev := range sent {
			trkWantOK(t, trkSend(t, s, "/v1/batch", trkBatch(ev), trkBasic(src.Key)...))
		}
		t.Run("NewestFirstPaginated", func(t *testing.T) {
			var got []string
			after := ""
			for page := 0; page < 3; page++ {
				args := "first: 2"
				if after != "" {
					args += fmt.Sprintf(", after: %q", after)
				}
				p := e.events(t, src.ID, args)
				if p.Total != 5 {
					t.Errorf("page %d: totalCount %d, want 5", page, p.Total)
				}
				for _, n := range p.Nodes {
					got = append(got, trkStr(n, "messageId"))
				}
				if want := page < 2; p.HasNext != want {
					t.Errorf("page %d: hasNextPage %v", page, p.HasNext)
				}
				after = p.EndCursor
			}
			if want := "[dbg-4 dbg-3 dbg-2 dbg-1 dbg-0]"; fmt.Sprint(got) != want {
				t.Errorf("pages %v, want %s (newest first)", got, want)
			}
		})
		t.Run("Filters", func(t *testing.T) {
			for args, want := range map[string]string{
				"type: TRACK":                   "[dbg-4 dbg-3 dbg-0]",
				"type: IDENTIFY":                "[dbg-1]",
				"status: DISCARDED":             "[dbg-3]",
				"status: ACCEPTED, type: TRACK": "[dbg-4 dbg-0]",
				`search: "Signed Up"`:           "[dbg-0]",
				`search: "dbg-u1"`:              "[dbg-2 dbg-0]",
				`search: "dbg-a1"`:              "[dbg-1]",
				`search: "dbg-3"`:               "[dbg-3]",
				`search: "nobody"`:              "[]",
			} {
				p := e.events(t, src.ID, args)
				var ids []string
				for _, n := range p.Nodes {
					ids = append(ids, trkStr(n, "messageId"))
				}
				if got := fmt.Sprint(ids); got != want && !(want == "[]" && ids == nil) {
					t.Errorf("%s: %s, want %s", args, got, want)
				}
				if p.Total != len(p.Nodes) {
					t.Errorf("%s: totalCount %d for %d events", args, p.Total, len(p.Nodes))
				}
			}
		})
		t.Run("EventNode", func(t *testing.T) {
			n := e.event(t, src.ID, "dbg-4")
			d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Event { messageId event } } }`, map[string]any{"id": n["id"]})
			if trkStr(d, "node.messageId") != "dbg-4" || trkStr(d, "node.event") != "Order Completed" {
				t.Errorf("node(%v): %v", n["id"], d)
			}
		})
		t.Run("OtherWorkspaceUserSeesNothing", func(t *testing.T) {
			tok, _ := s.signUp(t, "trk-stranger@example.com", "Stranger")
			stranger := []string{"Authorization", "Bearer " + tok}
			evID := trkStr(e.event(t, src.ID, "dbg-4"), "id")
			for _, id := range []string{src.ID, evID} {
				r := s.post(t, `query($id: ID!) { node(id: $id) { id ... on Source { recentEvents { totalCount nodes { id } } } } }`, map[string]any{"id": id}, stranger...)
				if r.Data["node"] != nil || (len(r.Errors) > 0 && r.errorCode() != "NOT_FOUND") {
					t.Errorf("stranger reads %s: %s", id, r.Raw)
				}
				if strings.Contains(r.Raw, "dbg-") {
					t.Errorf("stranger sees events: %s", r.Raw)
				}
			}
			r := s.post(t, `query($slug: String!) { workspace(slug: $slug) { id } }`, map[string]any{"slug": e.slug}, stranger...)
			if r.Data["workspace"] != nil {
				t.Errorf("stranger reads the workspace: %s", r.Raw)
			}
		})
	})

	// Integers beyond 2^53 come back from the debugger exactly as sent, not rounded by a float64.
	t.Run("BigIntegersReadBackExactly", func(t *testing.T) {
		src := e.source(t, "BigInt")
		trkWantOK(t, trkSend(t, s, "/v1/track", `{"userId": "big-int", "event": "E", "properties": {"order": 9007199254740993, "neg": -12345678901234567890}}`, trkBasic(src.Key)...))
		r := s.post(t, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents { nodes { payload } } } } }`, map[string]any{"id": src.ID}, e.auth...)
		for _, want := range []string{"9007199254740993", "-12345678901234567890"} {
			if !strings.Contains(r.Raw, want) {
				t.Errorf("payload lost %s: %s", want, r.Raw)
			}
		}
	})

	// Values a library can send must not break reading the source's events back.
	t.Run("OutOfRangeValues", func(t *testing.T) {
		for name, c := range map[string]struct{ body, status, reason string }{
			"NumberBeyondFloat64ReadBack":            {`{"userId": "rb-num", "event": "E", "properties": {"big": 1e400}}`, "", ""},
			"TimestampAfterYear9999Discarded":        {`{"userId": "rb-ts", "event": "E", "timestamp": "9999-12-31T23:59:59-01:00"}`, "DISCARDED", "INVALID_FIELD"},
			"TimestampMillisecondsPast9999Discarded": {`{"userId": "rb-ms", "event": "E", "timestamp": 253402300800000}`, "DISCARDED", "INVALID_FIELD"},
		} {
			t.Run(name, func(t *testing.T) {
				src := e.source(t, "Range "+name)
				trkWantOK(t, trkSend(t, s, "/v1/track", c.body, trkBasic(src.Key)...))
				r := s.post(t, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents { nodes { `+trkEventFields+` } } } } }`, map[string]any{"id": src.ID}, e.auth...)
				nodes, _ := trkPath(r.Data, "node.recentEvents.nodes").([]any)
				if len(r.Errors) > 0 || len(nodes) != 1 {
					t.Fatalf("the debugger cannot show the event: %s", r.Raw)
				}
				n := nodes[0].(map[string]any)
				if c.status != "" && (n["status"] != c.status || n["discardReason"] != c.reason || !strings.Contains(trkStr(n, "discardMessage"), "timestamp")) {
					t.Errorf("%v %v %v, want %s %s naming timestamp", n["status"], n["discardReason"], n["discardMessage"], c.status, c.reason)
				}
			})
		}
	})
}

// TestTrackingRateLimit: a workspace over its request rate gets 429 with Retry-After; others do not.
func TestTrackingRateLimit(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.IngestRate = 1; c.IngestBurst = 2 })
	busy, calm := trkNewEnv(t, s, "trk-busy"), trkNewEnv(t, s, "trk-calm")
	bsrc, csrc := busy.source(t, "Busy"), calm.source(t, "Calm")
	send := func(src trkSource, uid string) trkResp {
		return trkSend(t, s, "/v1/track", map[string]any{"userId": uid, "event": "E"}, trkBasic(src.Key)...)
	}
	t.Run("BurstAccepted", func(t *testing.T) {
		trkWantOK(t, send(bsrc, "rl-1"))
		trkWantOK(t, send(bsrc, "rl-2"))
	})
	var retry int
	t.Run("Over429WithRetryAfter", func(t *testing.T) {
		r := send(bsrc, "rl-3")
		trkWantError(t, r, 429, "RATE_LIMITED", "Retry-After")
		var err error
		if retry, err = strconv.Atoi(r.Header.Get("Retry-After")); err != nil || retry < 1 || retry > 2 {
			t.Errorf("Retry-After %q, want 1 or 2 seconds", r.Header.Get("Retry-After"))
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("429 without Access-Control-Allow-Origin")
		}
		if n := trkStored(t, s, "rl-3"); n != 0 {
			t.Errorf("%d events of a refused request stored", n)
		}
	})
	t.Run("OtherWorkspaceNotAffected", func(t *testing.T) {
		trkWantOK(t, send(csrc, "rl-calm-1"))
		trkWantOK(t, send(csrc, "rl-calm-2"))
	})
	t.Run("AcceptedAfterRetryAfter", func(t *testing.T) {
		time.Sleep(time.Duration(max(retry, 1)) * time.Second)
		trkWantOK(t, send(bsrc, "rl-4"))
	})
	t.Run("GraphQLNotLimited", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			busy.events(t, bsrc.ID, "first: 1")
		}
	})
}

// TestTrackingQuietPeriod: a source that stops sending shows NO_RECENT_DATA after the quiet period,
// without a new event to trigger it.
func TestTrackingQuietPeriod(t *testing.T) {
	const quiet = 200 * time.Millisecond
	s := startServer(t, func(c *config.Config) { c.SourceQuietPeriod = quiet })
	e := trkNewEnv(t, s, "trk-quiet")
	src := e.source(t, "Quiet")
	start := time.Now()
	trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "q1", "event": "E"}, trkBasic(src.Key)...))
	info := e.sourceInfo(t, src.ID, "status lastSeenAt")
	if time.Since(start) < quiet && info["status"] != "RECEIVING" {
		t.Errorf("right after an event: %v", info["status"])
	}
	seen := info["lastSeenAt"]
	time.Sleep(quiet + 50*time.Millisecond)
	info = e.sourceInfo(t, src.ID, "status lastSeenAt")
	if info["status"] != "NO_RECENT_DATA" || info["lastSeenAt"] != seen {
		t.Errorf("after the quiet period: %v, want NO_RECENT_DATA and lastSeenAt %v", info, seen)
	}
	d := e.gql(t, `query($slug: String!) { workspace(slug: $slug) { sources(filter: {status: NO_RECENT_DATA}) { nodes { id status } } } }`, map[string]any{"slug": e.slug})
	if nodes := trkPath(d, "workspace.sources.nodes").([]any); len(nodes) != 1 || trkStr(nodes[0], "id") != src.ID {
		t.Errorf("sources(filter: {status: NO_RECENT_DATA}): %v", nodes)
	}
	start = time.Now()
	trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "q2", "event": "E"}, trkBasic(src.Key)...))
	info = e.sourceInfo(t, src.ID, "status lastSeenAt")
	if time.Since(start) < quiet && info["status"] != "RECEIVING" {
		t.Errorf("after a new event: %v", info["status"])
	}
	if !trkTime(t, info["lastSeenAt"]).After(trkTime(t, seen)) {
		t.Errorf("lastSeenAt %v did not move past %v", info["lastSeenAt"], seen)
	}
}

// TestTrackingBusy: when the single writer cannot take a request within -ingest-queue-wait, the
// answer is 503 with Retry-After and nothing of the request is stored; once the writer is free the
// retry is accepted.
func TestTrackingBusy(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.IngestQueueWait = 200 * time.Millisecond })
	e := trkNewEnv(t, s, "trk-busy-writer")
	src := e.source(t, "Busy")
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		// Something holds the database's writer (a stuck disk, say): the tracking API must not
		// queue without bound behind it.
		_ = s.App.DB().Tx(context.Background(), func(tx *db.Tx) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	// The first request is taken into a group commit, which waits for the database: it is
	// answered when the commit is done, whatever the wait limit.
	first := make(chan trkResp, 1)
	go func() {
		first <- trkSend(t, s, "/v1/track", map[string]any{"userId": "busy-0", "event": "E"}, trkBasic(src.Key)...)
	}()
	time.Sleep(100 * time.Millisecond)
	// The next one waits in the queue behind it, past the limit.
	r := trkSend(t, s, "/v1/track", map[string]any{"userId": "busy-1", "event": "E", "messageId": "busy-1"}, trkBasic(src.Key)...)
	trkWantError(t, r, 503, "BUSY", "retry")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	close(hold)
	trkWantOK(t, <-first)
	if n := trkStored(t, s, "busy-1"); n != 0 {
		t.Errorf("%d events of a request answered 503 stored", n)
	}
	trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "busy-1", "event": "E", "messageId": "busy-1"}, trkBasic(src.Key)...))
	if n := trkStored(t, s, "busy-1"); n != 1 {
		t.Errorf("%d events after the retry, want 1", n)
	}
}
