package ingest

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// fast normalises a well-formed event without decoding its nested objects: the top level is
// decoded into raw values, only the fields the rules read are decoded further, and the payload is
// written back from the raw values. It returns nil for anything unusual (invalid input, an event
// to discard, a number beyond float64, invalid UTF-8), which full then handles; the two agree on
// everything else (TestNormaliseFastMatchesFull).
func (n *normaliser) fast(index int, raw json.RawMessage) *Event {
	if !utf8.Valid(raw) || (!n.validJSON() && !json.Valid(raw)) || hugeNumber(raw) {
		return nil
	}
	m, ok := splitObject(raw)
	if !ok {
		return nil
	}
	m.del("writeKey")
	ev := &Event{Index: index, ReceivedAt: n.receivedAt, Status: Accepted}

	typ := n.pathType
	if typ == "" {
		v, _ := m.get("type")
		name, ok := rawString(v)
		t, known := typesByName[strings.ToLower(name)]
		if !ok || !known || len(name) == 1 {
			return nil
		}
		typ = t
	}
	ev.Type = typ
	m.set("type", quoteRaw(strings.ToLower(string(typ))))

	v, _ := m.get("messageId")
	id, ok := rawID(v)
	if !ok {
		return nil
	}
	if id == "" {
		id = newMessageID()
	}
	ev.MessageID = id
	m.set("messageId", quoteRaw(id))

	for _, name := range []string{"context", "integrations"} {
		v, present := m.get(name)
		var own object
		if present && !isNull(v) {
			if own, ok = splitObject(v); !ok {
				return nil
			}
		}
		for _, bm := range n.batchLevel(name) {
			if _, set := own.get(bm.key); !set {
				own = append(own, bm)
			}
		}
		if name == "context" && n.clientIP != "" {
			if _, set := own.get("ip"); !set {
				own = append(own, member{"ip", quoteRaw(n.clientIP)})
			}
		}
		if len(own) > 0 || name == "context" {
			m.set(name, own.bytes())
		} // else null or empty, with nothing to merge: kept as sent, as full does
	}
	for _, name := range []string{"properties", "traits"} {
		if v, present := m.get(name); present && !isNull(v) && !isObject(v) {
			return nil
		}
	}

	for _, f := range []struct {
		name string
		dst  **string
	}{{"userId", &ev.UserID}, {"anonymousId", &ev.AnonymousID}} {
		v, present := m.get(f.name)
		id, ok := rawID(v)
		if !ok {
			return nil
		}
		if id != "" {
			*f.dst = &id
			m.set(f.name, quoteRaw(id))
		} else if present {
			return nil // an empty or null identifier: full decides
		}
	}
	if ev.UserID == nil && ev.AnonymousID == nil {
		return nil
	}

	switch typ {
	case Track:
		v, _ := m.get("event")
		name, ok := rawString(v)
		if !ok || strings.TrimSpace(name) == "" || strings.IndexByte(name, 0) >= 0 {
			return nil
		}
		ev.EventName = &name
	case Page, Screen:
		if v, present := m.get("name"); present && !isNull(v) {
			if _, ok := rawString(v); !ok {
				return nil
			}
		}
	case Group, Alias:
		field := "groupId"
		if typ == Alias {
			field = "previousId"
		}
		v, _ := m.get(field)
		id, ok := rawID(v)
		if !ok || id == "" {
			return nil
		}
		m.set(field, quoteRaw(id))
	}

	sentAt := n.req.SentAt
	if v, present := m.get("sentAt"); present && !isNull(v) {
		sentAt = decodeScalar(v)
	}
	sent, bad := timeField("sentAt", sentAt)
	if bad != "" {
		return nil
	}
	var origValue any
	if v, present := m.get("timestamp"); present && !isNull(v) {
		origValue = decodeScalar(v)
	} else if v, present := m.get("originalTimestamp"); present && !isNull(v) {
		origValue = decodeScalar(v)
	}
	orig, bad := timeField("timestamp", origValue)
	if bad != "" {
		return nil
	}
	ts := n.receivedAt
	if orig != nil {
		ts = *orig
		if sent != nil {
			ts = n.receivedAt.Add(-sent.Sub(*orig))
		}
		m.set("originalTimestamp", quoteRaw(orig.UTC().Format(time.RFC3339Nano)))
	}
	if sent != nil {
		m.set("sentAt", quoteRaw(sent.UTC().Format(time.RFC3339Nano)))
	}
	if y := ts.UTC().Year(); y < 1 || y > 9999 {
		return nil
	}
	ev.Timestamp = &ts
	m.set("timestamp", quoteRaw(ts.UTC().Format(time.RFC3339Nano)))
	m.set("receivedAt", quoteRaw(n.receivedAt.UTC().Format(time.RFC3339Nano)))
	ev.Payload = m.bytes()
	return ev
}

// validJSON tells whether the request's events are known to be well-formed JSON (decode checked
// its body), so that fast need not scan each one again.
func (n *normaliser) validJSON() bool { return n.req != nil && n.req.valid }

// batchLevel returns the members of the batch-level context or integrations, encoded once per
// request.
func (n *normaliser) batchLevel(name string) object {
	if n.batchRaw == nil {
		n.batchRaw = map[string]object{}
		for k, obj := range map[string]map[string]any{"context": n.req.Context, "integrations": n.req.Integrations} {
			var out object
			for key, v := range obj {
				if b, err := json.Marshal(v); err == nil {
					out = append(out, member{key, b})
				}
			}
			n.batchRaw[k] = out
		}
	}
	return n.batchRaw[name]
}

func isNull(v []byte) bool   { return len(v) == 0 || string(v) == "null" }
func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }

// rawString decodes a JSON string; false for anything else (absent included).
func rawString(v []byte) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	return unquote(v)
}

// rawID reads an identifier as idField does: a string, or a number turned into its text; "" when
// absent, null or empty. false when full must decide (wrong type, too long, NUL).
func rawID(v []byte) (string, bool) {
	if isNull(v) {
		return "", true
	}
	var s string
	switch {
	case v[0] == '"':
		var ok bool
		if s, ok = rawString(v); !ok {
			return "", false
		}
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		s = string(v)
	default:
		return "", false
	}
	if len(s) > maxIDLength || strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	return s, true
}

// decodeScalar decodes a time field's value the way full sees it: a string, a json.Number, or
// something else that timeField refuses.
func decodeScalar(v []byte) any {
	switch {
	case len(v) > 0 && v[0] == '"':
		if s, ok := unquote(v); ok {
			return s
		}
	case len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')):
		return json.Number(v)
	}
	return v // an object, array or literal: timeField refuses it
}

func newMessageID() string {
	ev, m := &Event{}, map[string]any{}
	(&normaliser{}).assignMessageID(ev, m)
	return ev.MessageID
}

// hugeNumber tells whether raw JSON holds a number that does not fit a float64 (full stores such
// numbers as text and reports them), scanning numbers outside strings.
func hugeNumber(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			exp := false
			for j < len(raw) && strings.IndexByte("0123456789+-.eE", raw[j]) >= 0 {
				exp = exp || raw[j] == 'e' || raw[j] == 'E'
				j++
			}
			if exp || j-i > 300 {
				if _, err := strconv.ParseFloat(string(raw[i:j]), 64); err != nil {
					return true
				}
			}
			i = j - 1
		}
	}
	return false
}
