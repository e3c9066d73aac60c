package ingest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// normRecv is the receivedAt of the normaliser tests.
var normRecv = time.Date(2026, 11, 27, 9, 18, 16, 0, time.UTC)

// normalise runs one raw event through a normaliser for a request; typ "" is a batch endpoint.
func normaliseOne(t *testing.T, req *request, typ Type, raw string) (*Event, map[string]any) {
	t.Helper()
	if req == nil {
		req = &request{}
	}
	n := &normaliser{req: req, pathType: typ, receivedAt: normRecv, clientIP: "198.51.100.7"}
	ev := n.normalise(3, json.RawMessage(raw))
	var p map[string]any
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatalf("payload %s: %v", ev.Payload, err)
	}
	return ev, p
}

// mustAccept normalises raw and fails unless it is accepted.
func mustAccept(t *testing.T, req *request, typ Type, raw string) (*Event, map[string]any) {
	t.Helper()
	ev, p := normaliseOne(t, req, typ, raw)
	if ev.Status != Accepted {
		t.Fatalf("%s: %s %s %q", raw, ev.Status, ev.Reason, ev.Message)
	}
	return ev, p
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestNormaliseTimes(t *testing.T) {
	t.Run("TimestampCorrectedForClockSkew", func(t *testing.T) {
		// The client's clock is 1 h 2 min ahead; the event happened 5.25 s before it was sent.
		sent := normRecv.Add(62 * time.Minute)
		orig := sent.Add(-5250 * time.Millisecond)
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","timestamp":"`+rfc(orig)+`","sentAt":"`+rfc(sent)+`"}`)
		want := normRecv.Add(-sent.Sub(orig))
		if ev.Timestamp == nil || !ev.Timestamp.Equal(want) {
			t.Errorf("Timestamp %v, want receivedAt - (sentAt - originalTimestamp) = %v", ev.Timestamp, want)
		}
		if got := p["timestamp"]; got != rfc(want) {
			t.Errorf("payload timestamp %v, want %s", got, rfc(want))
		}
		if got := p["originalTimestamp"]; got != rfc(orig) {
			t.Errorf("originalTimestamp %v, want the client's %s", got, rfc(orig))
		}
		if got := p["sentAt"]; got != rfc(sent) {
			t.Errorf("sentAt %v, want %s", got, rfc(sent))
		}
		if got := p["receivedAt"]; got != rfc(normRecv) {
			t.Errorf("receivedAt %v, want %s", got, rfc(normRecv))
		}
		if !ev.ReceivedAt.Equal(normRecv) {
			t.Errorf("ReceivedAt %v", ev.ReceivedAt)
		}
	})
	t.Run("ClientBehindTheServer", func(t *testing.T) {
		sent := normRecv.Add(-3 * time.Hour)
		orig := sent.Add(-time.Second)
		ev, _ := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","timestamp":"`+rfc(orig)+`","sentAt":"`+rfc(sent)+`"}`)
		if want := normRecv.Add(-time.Second); !ev.Timestamp.Equal(want) {
			t.Errorf("Timestamp %v, want %v", ev.Timestamp, want)
		}
	})
	t.Run("OriginalTimestampKeptWithoutSentAt", func(t *testing.T) {
		orig := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","timestamp":"2026-11-27T09:00:00+01:00"}`)
		if !ev.Timestamp.Equal(orig) {
			t.Errorf("Timestamp %v, want the client's %v (no sentAt: no correction)", ev.Timestamp, orig)
		}
		if p["originalTimestamp"] != rfc(orig) || p["timestamp"] != rfc(orig) {
			t.Errorf("originalTimestamp %v timestamp %v, want %s in UTC", p["originalTimestamp"], p["timestamp"], rfc(orig))
		}
	})
	t.Run("OriginalTimestampFieldRead", func(t *testing.T) {
		orig := normRecv.Add(-time.Minute)
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","originalTimestamp":"`+rfc(orig)+`"}`)
		if !ev.Timestamp.Equal(orig) || p["originalTimestamp"] != rfc(orig) {
			t.Errorf("Timestamp %v originalTimestamp %v, want %v", ev.Timestamp, p["originalTimestamp"], orig)
		}
	})
	t.Run("NoTimestampMeansReceivedAt", func(t *testing.T) {
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","sentAt":"2020-01-01T00:00:00Z"}`)
		if !ev.Timestamp.Equal(normRecv) || p["timestamp"] != rfc(normRecv) {
			t.Errorf("Timestamp %v / %v, want receivedAt %v", ev.Timestamp, p["timestamp"], normRecv)
		}
		if _, ok := p["originalTimestamp"]; ok {
			t.Errorf("originalTimestamp invented: %v", p["originalTimestamp"])
		}
	})
	t.Run("SentAtFromTheBatch", func(t *testing.T) {
		sent := normRecv.Add(time.Hour)
		orig := sent.Add(-2 * time.Second)
		req := &request{SentAt: rfc(sent)}
		ev, p := mustAccept(t, req, "", `{"type":"track","userId":"u1","event":"E","timestamp":"`+rfc(orig)+`"}`)
		if want := normRecv.Add(-2 * time.Second); !ev.Timestamp.Equal(want) {
			t.Errorf("Timestamp %v, want %v (corrected with the batch's sentAt)", ev.Timestamp, want)
		}
		if p["sentAt"] != rfc(sent) {
			t.Errorf("sentAt %v, want the batch's %s", p["sentAt"], rfc(sent))
		}
	})
	t.Run("EventSentAtOverBatchSentAt", func(t *testing.T) {
		req := &request{SentAt: rfc(normRecv.Add(time.Hour))}
		orig := normRecv.Add(-time.Minute)
		ev, _ := mustAccept(t, req, "", `{"type":"track","userId":"u1","event":"E","timestamp":"`+rfc(orig)+`","sentAt":"`+rfc(orig.Add(time.Second))+`"}`)
		if want := normRecv.Add(-time.Second); !ev.Timestamp.Equal(want) {
			t.Errorf("Timestamp %v, want %v (the event's own sentAt)", ev.Timestamp, want)
		}
	})
	t.Run("UnixMilliseconds", func(t *testing.T) {
		ms := normRecv.Add(-time.Hour).UnixMilli()
		ev, _ := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","timestamp":`+itoa(ms)+`}`)
		if want := time.UnixMilli(ms); !ev.Timestamp.Equal(want) {
			t.Errorf("Timestamp %v, want %v", ev.Timestamp, want)
		}
	})
	t.Run("LayoutsWithoutZone", func(t *testing.T) {
		for raw, want := range map[string]time.Time{
			"2026-11-27":                     time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
			"2026-11-27T08:00:00.5":          time.Date(2026, 11, 27, 8, 0, 0, 5e8, time.UTC),
			"2026-11-27T08:00:00.123+0200":   time.Date(2026, 11, 27, 6, 0, 0, 123e6, time.UTC),
			"2026-11-27T08:00:00.123456789Z": time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC),
		} {
			ev, _ := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","timestamp":"`+raw+`"}`)
			if !ev.Timestamp.Equal(want) {
				t.Errorf("timestamp %q read as %v, want %v", raw, ev.Timestamp, want)
			}
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestNormaliseBatchFields(t *testing.T) {
	req := &request{
		Context:      map[string]any{"library": map[string]any{"name": "analytics-node"}, "locale": "en-US", "ip": "10.1.1.1"},
		Integrations: map[string]any{"All": false, "Mixpanel": true},
	}
	t.Run("MergedUnderTheEventsOwnKeys", func(t *testing.T) {
		_, p := mustAccept(t, req, "", `{"type":"track","userId":"u1","event":"E",
			"context":{"library":{"name":"own"},"page":{"path":"/"}},"integrations":{"Mixpanel":false}}`)
		ctx := p["context"].(map[string]any)
		if got := ctx["library"].(map[string]any)["name"]; got != "own" {
			t.Errorf("context.library.name %v: the event's own key must win", got)
		}
		if ctx["locale"] != "en-US" || ctx["page"] == nil {
			t.Errorf("context %v: want the batch's locale added to the event's page", ctx)
		}
		in := p["integrations"].(map[string]any)
		if in["Mixpanel"] != false || in["All"] != false {
			t.Errorf("integrations %v: want Mixpanel false (own), All false (batch)", in)
		}
	})
	t.Run("AddedToEventsWithoutThem", func(t *testing.T) {
		_, p := mustAccept(t, req, "", `{"type":"identify","userId":"u1"}`)
		ctx := p["context"].(map[string]any)
		if ctx["locale"] != "en-US" || ctx["library"].(map[string]any)["name"] != "analytics-node" {
			t.Errorf("context %v", ctx)
		}
		if in := p["integrations"].(map[string]any); in["All"] != false || in["Mixpanel"] != true {
			t.Errorf("integrations %v", in)
		}
	})
	t.Run("NoIntegrationsInvented", func(t *testing.T) {
		_, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E"}`)
		if _, ok := p["integrations"]; ok {
			t.Errorf("integrations %v added to an event without any", p["integrations"])
		}
	})
	t.Run("BatchContextNotShared", func(t *testing.T) {
		n := &normaliser{req: &request{Context: map[string]any{"locale": "en"}}, receivedAt: normRecv, clientIP: "198.51.100.7"}
		n.normalise(0, json.RawMessage(`{"type":"track","userId":"u1","event":"E","context":{"ip":"1.2.3.4"}}`))
		if _, ok := n.req.Context["ip"]; ok {
			t.Errorf("the batch context was changed by one event: %v", n.req.Context)
		}
	})
}

func TestNormaliseIdentifiers(t *testing.T) {
	t.Run("MessageIDKept", func(t *testing.T) {
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","messageId":"ajs-next-1"}`)
		if ev.MessageID != "ajs-next-1" || p["messageId"] != "ajs-next-1" {
			t.Errorf("MessageID %q payload %v", ev.MessageID, p["messageId"])
		}
	})
	t.Run("MessageIDAssigned", func(t *testing.T) {
		seen := map[string]bool{}
		for _, raw := range []string{`{"userId":"u1","event":"E"}`, `{"userId":"u1","event":"E","messageId":""}`, `{"userId":"u1","event":"E","messageId":null}`} {
			ev, p := mustAccept(t, nil, Track, raw)
			if !strings.HasPrefix(ev.MessageID, "api-") || len(ev.MessageID) != 36 || p["messageId"] != ev.MessageID {
				t.Errorf("%s: MessageID %q payload %v", raw, ev.MessageID, p["messageId"])
			}
			if seen[ev.MessageID] {
				t.Errorf("MessageID %q assigned twice", ev.MessageID)
			}
			seen[ev.MessageID] = true
		}
	})
	t.Run("MessageIDAssignedToDiscardedEvents", func(t *testing.T) {
		ev, p := normaliseOne(t, nil, "", `{"type":"nope","userId":"u1"}`)
		if ev.Status != Discarded || ev.MessageID == "" || p["messageId"] != ev.MessageID {
			t.Errorf("%s MessageID %q payload %v", ev.Status, ev.MessageID, p["messageId"])
		}
		ev, _ = normaliseOne(t, nil, "", `{"type":"nope","userId":"u1","messageId":"m-9"}`)
		if ev.MessageID != "m-9" {
			t.Errorf("discarded event: MessageID %q, want the one sent", ev.MessageID)
		}
	})
	t.Run("NumericIDsAcceptedAsStrings", func(t *testing.T) {
		ev, p := mustAccept(t, nil, Track, `{"userId":12345678901234567890,"anonymousId":42,"event":"E"}`)
		if ev.UserID == nil || *ev.UserID != "12345678901234567890" || p["userId"] != "12345678901234567890" {
			t.Errorf("userId %v / %v, want the digits as sent, as a string", ev.UserID, p["userId"])
		}
		if ev.AnonymousID == nil || *ev.AnonymousID != "42" || p["anonymousId"] != "42" {
			t.Errorf("anonymousId %v / %v", ev.AnonymousID, p["anonymousId"])
		}
		_, p = mustAccept(t, nil, Group, `{"userId":"u1","groupId":7}`)
		if p["groupId"] != "7" {
			t.Errorf("groupId %v", p["groupId"])
		}
		_, p = mustAccept(t, nil, Alias, `{"userId":"u1","previousId":8}`)
		if p["previousId"] != "8" {
			t.Errorf("previousId %v", p["previousId"])
		}
	})
	t.Run("NumericMessageIDStoredAsString", func(t *testing.T) {
		// The message_id column holds "42"; the payload the debugger shows must say the same.
		ev, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","messageId":42}`)
		if ev.MessageID != "42" || p["messageId"] != "42" {
			t.Errorf("MessageID %q payload messageId %#v, want \"42\" in both", ev.MessageID, p["messageId"])
		}
	})
	t.Run("NumericMessageIDOfDiscardedEventKept", func(t *testing.T) {
		// A retried request must store its discarded events once too.
		ev, _ := normaliseOne(t, nil, "", `{"type":"nope","userId":"u1","messageId":42}`)
		if ev.MessageID != "42" {
			t.Errorf("MessageID %q, want \"42\" as for an accepted event", ev.MessageID)
		}
	})
	t.Run("ContextIPFilled", func(t *testing.T) {
		_, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E"}`)
		if got := p["context"].(map[string]any)["ip"]; got != "198.51.100.7" {
			t.Errorf("context.ip %v, want the client's address", got)
		}
	})
	t.Run("ContextIPNotOverwritten", func(t *testing.T) {
		_, p := mustAccept(t, nil, Track, `{"userId":"u1","event":"E","context":{"ip":"203.0.113.9"}}`)
		if got := p["context"].(map[string]any)["ip"]; got != "203.0.113.9" {
			t.Errorf("context.ip %v, want the one sent", got)
		}
	})
	t.Run("TypeFromThePath", func(t *testing.T) {
		ev, p := mustAccept(t, nil, Identify, `{"type":"track","userId":"u1","writeKey":"k"}`)
		if ev.Type != Identify || p["type"] != "identify" {
			t.Errorf("Type %s payload %v: the path names the type", ev.Type, p["type"])
		}
		if _, ok := p["writeKey"]; ok {
			t.Error("the write key was kept in the payload")
		}
	})
	t.Run("TypeInBatchAnyCase", func(t *testing.T) {
		ev, p := mustAccept(t, nil, "", `{"type":"Page","anonymousId":"a1"}`)
		if ev.Type != Page || p["type"] != "page" {
			t.Errorf("Type %s payload %v", ev.Type, p["type"])
		}
	})
	t.Run("TrackEventName", func(t *testing.T) {
		ev, _ := mustAccept(t, nil, Track, `{"userId":"u1","event":"Order Completed"}`)
		if ev.EventName == nil || *ev.EventName != "Order Completed" {
			t.Errorf("EventName %v", ev.EventName)
		}
	})
	t.Run("IDAt256Characters", func(t *testing.T) {
		mustAccept(t, nil, Track, `{"userId":"`+strings.Repeat("u", 256)+`","event":"E"}`)
	})
}

func TestNormaliseDiscards(t *testing.T) {
	long := strings.Repeat("x", 257)
	for _, c := range []struct {
		name   string
		typ    Type
		raw    string
		reason Reason
		field  string // the message must name it
	}{
		{"MissingIdentity", Track, `{"event":"E"}`, MissingIdentity, "userId or anonymousId"},
		{"EmptyIdentity", Identify, `{"userId":"","anonymousId":null}`, MissingIdentity, "userId or anonymousId"},
		{"TrackWithoutEvent", Track, `{"userId":"u1"}`, MissingEvent, "event name"},
		{"TrackWithBlankEvent", Track, `{"userId":"u1","event":"  "}`, MissingEvent, "event name"},
		{"GroupWithoutGroupID", Group, `{"userId":"u1"}`, MissingGroupID, "groupId"},
		{"AliasWithoutPreviousID", Alias, `{"userId":"u1"}`, MissingPreviousID, "previousId"},
		{"TypeMissing", "", `{"userId":"u1"}`, UnknownType, "type"},
		{"TypeUnknown", "", `{"type":"purchase","userId":"u1"}`, UnknownType, `"purchase"`},
		{"TypeShortLetter", "", `{"type":"t","userId":"u1","event":"E"}`, UnknownType, `"t"`},
		{"TypeNotAString", "", `{"type":7,"userId":"u1"}`, UnknownType, "type"},
		{"NotAnObject", "", `[1,2]`, InvalidField, "JSON object"},
		{"Null", "", `null`, InvalidField, "JSON object"},
		{"UserIDObject", Track, `{"userId":{"id":1},"event":"E"}`, InvalidField, "userId"},
		{"AnonymousIDBoolean", Track, `{"anonymousId":true,"event":"E"}`, InvalidField, "anonymousId"},
		{"UserIDTooLong", Track, `{"userId":"` + long + `","event":"E"}`, InvalidField, "userId"},
		{"MessageIDArray", Track, `{"userId":"u1","event":"E","messageId":["m"]}`, InvalidField, "messageId"},
		{"MessageIDTooLong", Track, `{"userId":"u1","event":"E","messageId":"` + long + `"}`, InvalidField, "messageId"},
		{"EventNumber", Track, `{"userId":"u1","event":7}`, InvalidField, "event"},
		{"ContextString", Track, `{"userId":"u1","event":"E","context":"web"}`, InvalidField, "context"},
		{"IntegrationsArray", Track, `{"userId":"u1","event":"E","integrations":[1]}`, InvalidField, "integrations"},
		{"PropertiesArray", Track, `{"userId":"u1","event":"E","properties":[1]}`, InvalidField, "properties"},
		{"TraitsString", Identify, `{"userId":"u1","traits":"vip"}`, InvalidField, "traits"},
		{"PageNameObject", Page, `{"userId":"u1","name":{}}`, InvalidField, "name"},
		{"ScreenNameNumber", Screen, `{"userId":"u1","name":3}`, InvalidField, "name"},
		{"GroupIDObject", Group, `{"userId":"u1","groupId":{}}`, InvalidField, "groupId"},
		{"PreviousIDBoolean", Alias, `{"userId":"u1","previousId":false}`, InvalidField, "previousId"},
		{"TimestampText", Track, `{"userId":"u1","event":"E","timestamp":"yesterday"}`, InvalidField, "timestamp"},
		{"TimestampNegative", Track, `{"userId":"u1","event":"E","timestamp":-5}`, InvalidField, "timestamp"},
		{"SentAtBoolean", Track, `{"userId":"u1","event":"E","sentAt":true}`, InvalidField, "sentAt"},
		{"TimestampAfterYear9999", Track, `{"userId":"u1","event":"E","timestamp":"9999-12-31T23:59:59-01:00"}`, InvalidField, "timestamp"},
		{"TimestampMillisecondsAfterYear9999", Track, `{"userId":"u1","event":"E","timestamp":253402300800000}`, InvalidField, "timestamp"},
		{"UserIDWithNUL", Track, `{"userId":"u\u00001","event":"E"}`, InvalidField, "userId"},
		{"MessageIDWithNUL", Track, `{"userId":"u1","event":"E","messageId":"m\u0000"}`, InvalidField, "messageId"},
		{"EventWithNUL", Track, `{"userId":"u1","event":"Sign\u0000ed Up"}`, InvalidField, "event"},
		{"TimestampBeforeYear1", Track, `{"userId":"u1","event":"E","timestamp":"0001-01-01T00:00:00+01:00"}`, InvalidField, "timestamp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, p := normaliseOne(t, nil, c.typ, c.raw)
			if ev.Status != Discarded || ev.Reason != c.reason {
				t.Fatalf("%s %s %q, want DISCARDED %s", ev.Status, ev.Reason, ev.Message, c.reason)
			}
			if !strings.Contains(ev.Message, c.field) {
				t.Errorf("message %q does not name %s", ev.Message, c.field)
			}
			if ev.MessageID == "" || ev.Type == "" || ev.Index != 3 {
				t.Errorf("MessageID %q Type %q Index %d", ev.MessageID, ev.Type, ev.Index)
			}
			if p["receivedAt"] != rfc(normRecv) {
				t.Errorf("receivedAt %v", p["receivedAt"])
			}
		})
	}
	t.Run("UnknownTypeIsNotListedAsTrack", func(t *testing.T) {
		for _, raw := range []string{`{"userId":"u1"}`, `{"type":"purchase","userId":"u1"}`, `{"type":"t","userId":"u1","event":"E"}`} {
			if ev, _ := normaliseOne(t, nil, "", raw); ev.Type != Unknown {
				t.Errorf("%s: type %s, want UNKNOWN", raw, ev.Type)
			}
		}
		if ev, _ := normaliseOne(t, nil, "", `{"type":"identify","userId":"u1","traits":{"n":1e400}}`); ev.Type != Identify {
			t.Errorf("an identify discarded for a number out of range has type %s", ev.Type)
		}
	})
	t.Run("NumberBeyondFloat64", func(t *testing.T) {
		// Valid JSON, but the debugger decodes payloads into Go values: such an event must be
		// refused with a reason, or stored in a form that decodes.
		n := &normaliser{req: &request{}, pathType: Track, receivedAt: normRecv}
		ev := n.normalise(0, json.RawMessage(`{"userId":"u1","event":"E","properties":{"big":1e400}}`))
		var v any
		if err := json.Unmarshal(ev.Payload, &v); err != nil || (ev.Status == Accepted && v.(map[string]any)["properties"] == nil) {
			t.Errorf("%s %s %q: the payload %s does not decode: %v", ev.Status, ev.Reason, ev.Message, ev.Payload, err)
		}
	})
	t.Run("TimestampCorrectedPastYear9999", func(t *testing.T) {
		// A client clock far behind pushes the corrected timestamp past what can be stored.
		n := &normaliser{req: &request{}, pathType: Track, receivedAt: time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)}
		ev := n.normalise(0, json.RawMessage(`{"userId":"u1","event":"E","timestamp":"2026-01-01T00:00:00Z","sentAt":"2025-01-01T00:00:00Z"}`))
		if ev.Status != Discarded || ev.Reason != InvalidField || !strings.Contains(ev.Message, "timestamp") {
			t.Errorf("%s %s %q", ev.Status, ev.Reason, ev.Message)
		}
	})
	t.Run("PayloadKeepsWhatArrived", func(t *testing.T) {
		_, p := normaliseOne(t, nil, "", `[1,2]`)
		if p["raw"] != "[1,2]" {
			t.Errorf("payload %v, want the raw event", p)
		}
		_, p = normaliseOne(t, nil, Track, `{"userId":"u1","properties":{"plan":"team"}}`)
		if p["properties"].(map[string]any)["plan"] != "team" {
			t.Errorf("payload %v", p)
		}
	})
}

// checkFastMatchesFull checks that, where the fast path takes an event, it normalises it as the
// full decoding does: the same fields, and a payload that decodes to the same value.
func checkFastMatchesFull(t *testing.T, n *normaliser, i int, raw json.RawMessage) {
	t.Helper()
	fast := n.fast(i, raw)
	if fast == nil {
		return
	}
	full := n.full(i, raw)
	if full.Status != Accepted {
		t.Fatalf("%s: the fast path accepts what full discards (%s: %s)", raw, full.Reason, full.Message)
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	generated := strings.HasPrefix(full.MessageID, "api-") && !strings.Contains(string(raw), full.MessageID)
	if fast.Type != full.Type || (!generated && fast.MessageID != full.MessageID) || str(fast.EventName) != str(full.EventName) ||
		str(fast.UserID) != str(full.UserID) || str(fast.AnonymousID) != str(full.AnonymousID) ||
		!fast.Timestamp.Equal(*full.Timestamp) || fast.Index != full.Index {
		t.Fatalf("%s:\nfast %+v\nfull %+v", raw, fast, full)
	}
	decode := func(b []byte) map[string]any {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("payload %s: %v", b, err)
		}
		if generated {
			delete(m, "messageId")
		}
		return m
	}
	if a, b := decode(fast.Payload), decode(full.Payload); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s:\nfast payload %s\nfull payload %s", raw, fast.Payload, full.Payload)
	}
}

func TestNormaliseFastMatchesFull(t *testing.T) {
	withBatch := &request{SentAt: "2026-11-27T09:18:16.200Z", Context: map[string]any{"app": map[string]any{"name": "shop"}, "ip": "10.0.0.1"},
		Integrations: map[string]any{"All": false, "Slack": true}}
	taken := 0
	for _, raw := range []string{
		`{"type":"track","event":"E","userId":"u1","properties":{"a":1,"b":[1,2,{"c":"d"}],"e":null,"f":1.5e3}}`,
		`{"type":"identify","userId":42,"traits":{"email":"a@example.com","name":"A \"quoted\" \\ name","emoji":"🎉"}}`,
		`{"type":"page","anonymousId":"a1","name":"Home","properties":{"url":"https://x.test/?q=<b>&r=1"}}`,
		`{"type":"screen","userId":"u","name":null}`,
		`{"type":"group","userId":"u","groupId":7,"traits":{}}`,
		`{"type":"alias","userId":"u","previousId":"p"}`,
		`{"type":"track","event":"E","userId":"u","context":{"ip":"1.2.3.4","library":{"name":"x"}},"integrations":{"Slack":false}}`,
		`{"type":"track","event":"E","userId":"u","context":null,"integrations":null}`,
		`{"type":"track","event":"E","userId":"u","context":{},"integrations":{}}`,
		`{"type":"track","event":"E","userId":"u","timestamp":"2026-11-27T09:00:00+01:00","sentAt":"2026-11-27T08:00:00.5Z"}`,
		`{"type":"track","event":"E","userId":"u","timestamp":1732699096123}`,
		`{"type":"track","event":"E","userId":"u","originalTimestamp":"2026-11-27T09:00:00Z"}`,
		`{"type":"TRACK","event":"E","userId":"u","messageId":"m-1","writeKey":"secret"}`,
		`{"type":"track","event":"E","userId":"u","type":"identify"}`,
		` { "type" : "track" , "event" : "E" , "userId" : "u" , "properties" : { "x" : [ 1 , 2 ] } } `,
		`{"type":"track","event":"E\u00e9\n","userId":"\u00fc","properties":{"k\u0000":"v\u2028"}}`,
		`{"type":"track","event":"E","userId":"u","anonymousId":""}`,
		`{"type":"track","event":"E","userId":"u","properties":{"big":1e400}}`,
		`{"type":"track","userId":"u"}`,
	} {
		for _, req := range []*request{withBatch, {}} {
			for _, pathType := range []Type{"", Track} {
				n := &normaliser{req: req, pathType: pathType, receivedAt: normRecv, clientIP: "198.51.100.7"}
				if n.fast(0, json.RawMessage(raw)) != nil {
					taken++
				}
				checkFastMatchesFull(t, n, 0, json.RawMessage(raw))
			}
		}
	}
	if taken < 40 {
		t.Errorf("the fast path took only %d of the well-formed events", taken)
	}
}
