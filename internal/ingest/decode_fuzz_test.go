package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// fuzzReceivedAt is the normaliser's clock in FuzzDecode: fixed, so that failures replay.
var fuzzReceivedAt = time.Date(2026, 11, 27, 9, 18, 16, 123456789, time.UTC)

// fuzzPathTypes are the types of the single-event endpoints, picked by the mode argument.
var fuzzPathTypes = []Type{Track, Identify, Page, Screen, Group, Alias}

// fuzzSeeds are realistic Segment payloads, and broken ones. Each runs as a batch body and as a
// single-event body, plain and gzipped.
var fuzzSeeds = []string{
	// One call of each type, as the libraries send them.
	`{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1","timestamp":"2026-11-27T09:18:10.000Z","sentAt":"2026-11-27T09:18:15.000Z","properties":{"revenue":39.95,"currency":"EUR","products":[{"sku":"A-1","price":19.95,"quantity":2}]}}`,
	`{"type":"identify","userId":"97980cfea0067","anonymousId":"507f191e810c19729de860ea","traits":{"name":"Peter Gibbons","email":"peter@example.com","plan":"premium","logins":5,"address":{"city":"Austin","country":"US"}},"context":{"ip":"24.5.68.47"}}`,
	`{"type":"page","anonymousId":"a1","name":"Home","category":"Docs","properties":{"title":"Welcome","url":"https://example.com/","path":"/","referrer":"https://google.com/"}}`,
	`{"type":"screen","userId":"u1","name":"Settings","properties":{"variation":"blue"},"context":{"device":{"type":"ios","model":"iPhone15,2"},"os":{"name":"iOS","version":"17.1"}}}`,
	`{"type":"group","userId":"u1","groupId":"0e8c78ea9d97a7b8185e8632","traits":{"name":"Initech","industry":"Technology","employees":329}}`,
	`{"type":"alias","userId":"u2","previousId":"39239-239239-239239-23923"}`,
	// A batch as analytics-node sends it: context, integrations and sentAt at the top.
	`{"batch":[{"type":"track","event":"Signed Up","userId":"u1","messageId":"node-1","timestamp":"2026-11-27T09:18:00.000Z","properties":{"plan":"team"}},{"type":"identify","anonymousId":"a1","messageId":"node-2","traits":{"email":"a@example.com"},"context":{"locale":"fr-FR"}}],"context":{"library":{"name":"analytics-node","version":"2.1.0"},"locale":"en-US"},"integrations":{"All":false,"Mixpanel":true},"sentAt":"2026-11-27T09:18:05.000Z","writeKey":"wk_123"}`,
	`{"batch":[{"type":"page","anonymousId":"a1","name":"Pricing","integrations":{"Mixpanel":false}}],"integrations":{"Mixpanel":true,"Amplitude":true},"context":{"ip":"10.0.0.1"}}`,
	// Numbers as ids, and times as Unix milliseconds.
	`{"type":"track","event":"Clicked","userId":12345,"anonymousId":678,"messageId":42,"timestamp":1764235096000,"sentAt":1764235097000}`,
	`{"type":"group","userId":1,"groupId":99999999999999999999999999,"previousId":1.5e3}`,
	`{"type":"alias","userId":"u1","previousId":-7}`,
	// Nested properties and unicode.
	`{"type":"track","event":"Ünïcødé ✓ 事件 🚀","userId":"ユーザー","properties":{"a":{"b":{"c":{"d":[1,[2,[3,{"e":"\u00e9\ud83d\ude80"}]]]}}},"emoji":"🙂","nul":"\u0000","lone":"\udc00"}}`,
	"{\"type\":\"track\",\"event\":\"bad utf8 \xff\xfe\",\"userId\":\"u\xc3\x28\"}",
	// Invalid types and fields.
	`{"type":"bogus","userId":"u1"}`,
	`{"type":"t","userId":"u1","event":"x"}`,
	`{"type":"TRACK","userId":"u1","event":"Upper"}`,
	`{"type":42,"userId":"u1"}`,
	`{"userId":"u1","event":"no type"}`,
	`{"type":"track","userId":{"id":1},"event":"x"}`,
	`{"type":"track","anonymousId":true,"event":"x"}`,
	`{"type":"track","userId":"u1","event":7}`,
	`{"type":"track","userId":"u1","event":"   "}`,
	`{"type":"track","userId":"u1","event":"x","properties":[1,2]}`,
	`{"type":"identify","userId":"u1","traits":"vip"}`,
	`{"type":"track","userId":"u1","event":"x","context":"web"}`,
	`{"type":"track","userId":"u1","event":"x","integrations":[true]}`,
	`{"type":"page","userId":"u1","name":{"first":"x"}}`,
	`{"type":"group","userId":"u1","groupId":{}}`,
	`{"type":"alias","userId":"u1","previousId":false}`,
	`{"type":"track","userId":"u1","event":"x","messageId":["m"]}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"yesterday"}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"2026-11-27","sentAt":"2026-11-27T09:18:16"}`,
	`{"type":"track","userId":"u1","event":"x","sentAt":true}`,
	`{"type":"track","userId":"u1","event":"x","originalTimestamp":"2026-11-27T09:18:16.5+02:00"}`,
	`{"type":"identify"}`,
	`{"type":"track","userId":"","anonymousId":"","event":"x"}`,
	`{"type":"group","userId":"u1"}`,
	`{"type":"alias","userId":"u1"}`,
	// Huge numbers and extreme times. (Numbers beyond float64: testdata/fuzz/FuzzDecode.)
	`{"type":"track","userId":"u1","event":"x","properties":{"big":1.7976931348623157e308,"small":4.9e-324,"int":123456789012345678901234567890,"neg":-0.0,"exp":-1E+300}}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":9223372036854775807}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":-1}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"9999-12-31T23:59:59-01:00"}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"0001-01-01T00:00:00+01:00"}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":"0000-06-01T00:00:00Z"}`,
	`{"type":"track","userId":"u1","event":"x","timestamp":253402300800000}`,
	// Null fields.
	`{"type":"track","userId":null,"anonymousId":"a1","event":"x","messageId":null,"context":null,"integrations":null,"properties":null,"timestamp":null,"sentAt":null}`,
	`{"batch":[null,{"type":"track","userId":"u1","event":"x"}],"context":null,"integrations":null,"sentAt":null}`,
	`{"batch":null}`,
	// Empty and odd batches.
	`{"batch":[]}`,
	`{"batch":[{}]}`,
	`{"batch":[1,"two",[3],true]}`,
	`{"batch":{"type":"track"}}`,
	`{"batch":[{"type":"track","userId":"u1","event":"x"}],"context":"web"}`,
	`{"batch":[{"type":"track","userId":"u1","event":"x"}],"integrations":[1]}`,
	`{"batch":[{"type":"track","userId":"u1","event":"x","messageId":"dup"},{"type":"track","userId":"u1","event":"x","messageId":"dup"}]}`,
	// Deep nesting, just under and over what encoding/json accepts.
	`{"type":"track","userId":"u1","event":"deep","properties":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`,
	`{"type":"track","userId":"u1","event":"deeper","properties":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
	// Not JSON, or not an object.
	``,
	`   `,
	`null`,
	`[]`,
	`"track"`,
	`{"type":"track",`,
	`{"type":"track"} trailing`,
	"\xef\xbb\xbf{\"type\":\"track\"}",
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, batch := range []bool{false, true} {
			f.Add([]byte(s), batch, false, uint8(0))
		}
		f.Add([]byte(s), false, true, uint8(len(s)%6))
	}
	// A batch of 120 small events, as a busy browser tab sends.
	var sb strings.Builder
	sb.WriteString(`{"sentAt":"2026-11-27T09:18:16.000Z","batch":[`)
	for i := 0; i < 120; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"type":"track","event":"E","anonymousId":"a","messageId":"m` + strings.Repeat("x", i%50) + `"}`)
	}
	sb.WriteString(`]}`)
	f.Add([]byte(sb.String()), true, true, uint8(0))
	// Bodies sent as they are with Content-Encoding: gzip (mode 0x80): real gzip streams for the
	// fuzzer to corrupt, and data that is not gzip at all.
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	_, _ = zw.Write([]byte(fuzzSeeds[6]))
	_ = zw.Close()
	f.Add(zbuf.Bytes(), true, true, uint8(0x80))
	f.Add([]byte(`{"batch":[]}`), true, true, uint8(0x80))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00, 0x00}, true, true, uint8(0x80))

	f.Fuzz(func(t *testing.T, data []byte, batch, gz bool, mode uint8) {
		checkDecode(t, data, batch, gz, mode)
	})
}

// checkDecode runs one request body through readBody, decode and the normaliser, as the handler
// does, and checks what each step promises.
func checkDecode(t *testing.T, data []byte, batch, gz bool, mode uint8) {
	body := data
	asIs := mode&0x80 != 0
	if gz && !asIs {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(data)
		_ = zw.Close()
		body = buf.Bytes()
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/batch", bytes.NewReader(body))
	if gz {
		r.Header.Set("Content-Encoding", "gzip")
	}
	got, rerr := readBody(r)
	if rerr != nil {
		checkRequestError(t, "readBody", rerr)
		if !gz && len(data) <= MaxRequestBytes {
			t.Fatalf("readBody refused a plain body of %d bytes: %v", len(data), rerr)
		}
		return
	}
	if len(got) > MaxRequestBytes {
		t.Fatalf("readBody returned %d bytes, over the limit", len(got))
	}
	if (!gz || !asIs) && !bytes.Equal(got, data) {
		t.Fatalf("readBody changed the body: got %d bytes, sent %d", len(got), len(data))
	}

	req, rerr := decode(got, batch)
	if rerr != nil {
		checkRequestError(t, "decode", rerr)
		return
	}
	if req == nil {
		t.Fatal("decode returned neither a request nor an error")
	}
	if !batch && len(req.Events) != 1 {
		t.Fatalf("single-event body decoded to %d events", len(req.Events))
	}
	if len(req.Events) > MaxBatchEvents {
		t.Fatalf("decode let %d events through", len(req.Events))
	}
	for i, e := range req.Events {
		if len(e) > MaxEventBytes {
			t.Fatalf("event %d is %d bytes, over the limit", i, len(e))
		}
		if !json.Valid(e) {
			t.Fatalf("event %d is not valid JSON: %q", i, e)
		}
	}

	n := &normaliser{req: req, receivedAt: fuzzReceivedAt, clientIP: "192.0.2.1"}
	if !batch {
		n.pathType = fuzzPathTypes[int(mode&0x7f)%len(fuzzPathTypes)]
	}
	for i, raw := range req.Events {
		checkEvent(t, n, i, raw)
	}
}

// requestCodes are the codes a refused request may carry.
var requestCodes = map[string]int{
	"INVALID_GZIP": 400, "UNSUPPORTED_ENCODING": 415, "INVALID_BODY": 400, "REQUEST_TOO_LARGE": 400,
	"INVALID_JSON": 400, "INVALID_FIELD": 400, "MISSING_BATCH": 400, "BATCH_TOO_LARGE": 400, "EVENT_TOO_LARGE": 400,
}

func checkRequestError(t *testing.T, step string, e *requestError) {
	t.Helper()
	if status, ok := requestCodes[e.Code]; !ok || status != e.Status || e.Message == "" {
		t.Fatalf("%s: unexpected refusal %d %q %q", step, e.Status, e.Code, e.Message)
	}
}

// checkEvent normalises one event and checks the Event is whole: storable, with an id, a type, a
// status and, when discarded, a reason.
func checkEvent(t *testing.T, n *normaliser, i int, raw json.RawMessage) {
	t.Helper()
	ev := n.normalise(i, raw)
	if ev == nil {
		t.Fatalf("event %d: normalise returned nil", i)
	}
	checkFastMatchesFull(t, n, i, raw)
	if ev.Index != i {
		t.Errorf("event %d: Index %d", i, ev.Index)
	}
	if ev.MessageID == "" || len(ev.MessageID) > maxIDLength {
		t.Errorf("event %d: MessageID %q", i, ev.MessageID)
	}
	if _, ok := typesByName[strings.ToLower(string(ev.Type))]; (!ok || len(ev.Type) < 4) && !(ev.Type == Unknown && ev.Reason != "") {
		t.Errorf("event %d: Type %q", i, ev.Type)
	}
	if !ev.ReceivedAt.Equal(fuzzReceivedAt) {
		t.Errorf("event %d: ReceivedAt %v", i, ev.ReceivedAt)
	}
	switch ev.Status {
	case Accepted:
		if ev.Reason != "" || ev.Message != "" {
			t.Errorf("event %d: accepted with reason %q %q", i, ev.Reason, ev.Message)
		}
	case Discarded:
		if ev.Reason == "" || ev.Message == "" {
			t.Errorf("event %d: discarded without a reason: %q %q", i, ev.Reason, ev.Message)
		}
	default:
		t.Errorf("event %d: Status %q", i, ev.Status)
	}
	if !json.Valid(ev.Payload) {
		t.Fatalf("event %d: Payload is not valid JSON: %q", i, ev.Payload)
	}
	// The debugger decodes the payload into Go values (graph's Event.payload): it must decode.
	var p map[string]any
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p == nil {
		t.Fatalf("event %d: Payload does not decode to an object (%v): %.300q", i, err, ev.Payload)
	}
	if got, want := p["receivedAt"], fuzzReceivedAt.Format(time.RFC3339Nano); got != want {
		t.Errorf("event %d: payload receivedAt %v, want %v", i, got, want)
	}

	// The messageId a library sent is the one stored: retries are recognised by it.
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		if id, ok := m["messageId"].(string); ok && id != "" && len(id) <= maxIDLength {
			if ev.MessageID != id {
				t.Errorf("event %d: messageId %q sent, %q kept", i, id, ev.MessageID)
			}
		}
	}

	if ev.Status != Accepted {
		return
	}
	if ev.UserID == nil && ev.AnonymousID == nil {
		t.Errorf("event %d: accepted without identity", i)
	}
	for _, id := range []*string{ev.UserID, ev.AnonymousID} {
		if id != nil && (*id == "" || len(*id) > maxIDLength) {
			t.Errorf("event %d: identity %q", i, *id)
		}
	}
	if ev.Type == Track && (ev.EventName == nil || strings.TrimSpace(*ev.EventName) == "") {
		t.Errorf("event %d: accepted track without an event name", i)
	}
	if n.pathType != "" && ev.Type != n.pathType {
		t.Errorf("event %d: type %s on the %s endpoint", i, ev.Type, n.pathType)
	}
	if got := p["type"]; got != strings.ToLower(string(ev.Type)) {
		t.Errorf("event %d: payload type %v for %s", i, got, ev.Type)
	}
	if got := p["messageId"]; got != ev.MessageID {
		t.Errorf("event %d: payload messageId %v, MessageID %q", i, got, ev.MessageID)
	}
	if _, ok := p["writeKey"]; ok {
		t.Errorf("event %d: the write key stayed in the payload", i)
	}
	ctx, ok := p["context"].(map[string]any)
	if !ok {
		t.Fatalf("event %d: payload context %v", i, p["context"])
	}
	if _, ok := ctx["ip"]; !ok {
		t.Errorf("event %d: context.ip not filled", i)
	}
	// The times must survive the database: the stored form is fixed-width text.
	if ev.Timestamp == nil {
		t.Fatalf("event %d: accepted without a timestamp", i)
	}
	for name, at := range map[string]time.Time{"timestamp": *ev.Timestamp, "receivedAt": ev.ReceivedAt} {
		var back db.Time
		if err := back.Scan(db.FormatTime(at)); err != nil {
			t.Errorf("event %d: %s %v cannot be stored and read back: %v", i, name, at, err)
		} else if !back.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("event %d: %s %v read back as %v", i, name, at, back.Time)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, p["timestamp"].(string)); err != nil {
		t.Errorf("event %d: payload timestamp %v: %v", i, p["timestamp"], err)
	}
}
