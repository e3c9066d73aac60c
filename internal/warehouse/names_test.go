package warehouse

import (
	"strings"
	"testing"
	"time"
)

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"Order Completed": "order_completed", "orderCompleted": "order_completed", "userID": "user_id", "IDToken": "id_token",
		"context.page.url": "context_page_url", "  Spaced -- out  ": "spaced_out", "already_snake": "already_snake",
		"Ümlaut Straße": "ümlaut_straße", "v2Event": "v2_event", "$#@": "", "HTTPRequest": "http_request",
	} {
		if got := Snake(in); got != want {
			t.Errorf("Snake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIdentifier(t *testing.T) {
	if got := Identifier("2fa_enabled"); got != "_2fa_enabled" {
		t.Errorf("a name starting with a digit: %q", got)
	}
	a, b := strings.Repeat("x", 70)+"_a", strings.Repeat("x", 70)+"_b"
	ia, ib := Identifier(a), Identifier(b)
	if len(ia) > MaxIdentifier || len(ib) > MaxIdentifier || ia == ib || Identifier(a) != ia {
		t.Errorf("long names: %q %q", ia, ib)
	}
	if got := EventTable("Identifies"); got != "_identifies" {
		t.Errorf("an event named as a reserved table: %q", got)
	}
	if got := quote(`we"ird`); got != `"we""ird"` {
		t.Errorf("quote: %s", got)
	}
}

func TestBatch(t *testing.T) {
	b := NewBatch(Selection{Excluded: map[string]bool{"*.secret": true}}, time.Now())
	b.Add("s", &Event{Type: "track", Payload: map[string]any{"messageId": "m1", "userId": "u", "event": "Signed Up", "receivedAt": "2026-12-01T10:00:00Z",
		"properties": map[string]any{"plan": "pro", "secret": "x", "id": "dropped", "nested": map[string]any{"deepKey": true}, "gone": nil}}})
	b.Add("s", &Event{Type: "identify", Payload: map[string]any{"messageId": "m2", "userId": "u", "traits": map[string]any{"a": "1", "b": "2"}}})
	b.Add("s", &Event{Type: "identify", Payload: map[string]any{"messageId": "m3", "userId": "u", "traits": map[string]any{"a": "3"}}})
	tables := map[string]*Table{}
	for _, tb := range b.Tables() {
		tables[tb.Name] = tb
	}
	ev := tables["signed_up"]
	if ev == nil || len(ev.Rows) != 1 {
		t.Fatalf("tables %v", tables)
	}
	r := ev.Rows[0]
	if r["id"] != "m1" || r["plan"] != "pro" || r["nested_deep_key"] != true || r["secret"] != nil || r["event"] != "signed_up" {
		t.Errorf("event row %v", r)
	}
	if _, ok := r["gone"]; ok {
		t.Error("a null property made a column")
	}
	if ev.Types["nested_deep_key"] != Boolean || ev.Types["received_at"] != Timestamp || ev.Types["plan"] != Text {
		t.Errorf("types %v", ev.Types)
	}
	if u := tables["users"]; len(u.Rows) != 1 || u.Rows[0]["a"] != "3" || u.Rows[0]["b"] != "2" {
		t.Errorf("users merge the traits of the batch: %v", u.Rows)
	}
}

func TestConvert(t *testing.T) {
	for _, c := range []struct {
		v    any
		to   ColType
		want any
		ok   bool
	}{
		{5.0, Text, "5", true}, {true, Text, "true", true}, {[]any{1.0}, Text, "[1]", true},
		{"2.5", Number, 2.5, true}, {"lots", Number, nil, false}, {"true", Boolean, true, true}, {1.0, Boolean, nil, false},
		{"2026-12-01T10:00:00Z", Timestamp, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), true}, {"yesterday", Timestamp, nil, false},
	} {
		got, ok := convert(c.v, c.to)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("convert(%v, %s) = %v, %v; want %v, %v", c.v, c.to, got, ok, c.want, c.ok)
		}
	}
}

func TestDue(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if Due(time.Time{}, created, 15*time.Minute, created.Add(14*time.Minute)) || !Due(time.Time{}, created, 15*time.Minute, created.Add(15*time.Minute)) {
		t.Error("the first sync is due one interval after creation")
	}
	last := created.Add(time.Hour)
	if Due(last, created, time.Minute, last.Add(59*time.Second)) || !Due(last, created, time.Minute, last.Add(time.Minute)) {
		t.Error("then one interval after the last began")
	}
}
