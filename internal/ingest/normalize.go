package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxIDLength bounds userId, anonymousId, messageId, groupId and previousId.
const maxIDLength = 256

// normaliser turns the raw events of one request into Events: merges the batch-level context,
// integrations and sentAt, stamps receivedAt, corrects timestamp for clock skew, assigns missing
// messageIds and fills context.ip. Invalid events come back discarded, with a reason.
type normaliser struct {
	req        *request
	pathType   Type // the type the path names; "" for batch endpoints
	receivedAt time.Time
	clientIP   string

	// batchRaw holds the batch-level context and integrations encoded once, for the fast path.
	batchRaw map[string]object
}

// normalise returns the event at index; its WorkspaceID/SourceID are set by the caller. Most
// events are well formed: the fast path (normalise_fast.go) takes those without decoding their
// nested objects. Anything it does not handle goes through the full decoding below, which also
// says why an event is discarded.
func (n *normaliser) normalise(index int, raw json.RawMessage) *Event {
	if ev := n.fast(index, raw); ev != nil {
		return ev
	}
	return n.full(index, raw)
}

// full normalises an event by decoding all of it.
func (n *normaliser) full(index int, raw json.RawMessage) *Event {
	ev := &Event{Index: index, ReceivedAt: n.receivedAt, Status: Accepted}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		// Keep what arrived, as a string, so that the debugger can show it.
		m = map[string]any{"raw": string(raw)}
		return n.discard(ev, m, InvalidField, "the event must be a JSON object")
	}

	delete(m, "writeKey") // a credential, not part of the event
	if path := outOfRange(m, ""); path != "" {
		ev.Type = n.pathType
		if name, _ := m["type"].(string); ev.Type == "" && len(name) > 1 {
			ev.Type = typesByName[strings.ToLower(name)]
		}
		return n.discard(ev, m, InvalidField, path+" is a number too large to store")
	}

	typ := n.pathType
	if typ == "" {
		name, _ := m["type"].(string)
		t, ok := typesByName[strings.ToLower(name)]
		if !ok || len(name) == 1 {
			ev.Type = Unknown
			if name == "" {
				return n.discard(ev, m, UnknownType, "type is required: track, identify, page, screen, group or alias")
			}
			return n.discard(ev, m, UnknownType, fmt.Sprintf("type %q is not track, identify, page, screen, group or alias", name))
		}
		typ = t
	}
	ev.Type = typ
	m["type"] = strings.ToLower(string(typ))

	// messageId: kept, or assigned, so that retries of this request are recognised.
	if id, ok, err := idField(m, "messageId"); err != "" {
		n.assignMessageID(ev, m)
		return n.discard(ev, m, InvalidField, err)
	} else if ok {
		ev.MessageID = id
		m["messageId"] = id
	} else {
		n.assignMessageID(ev, m)
	}

	// Batch-level fields, under the event's own.
	for _, f := range []struct {
		name  string
		batch map[string]any
	}{{"context", n.req.Context}, {"integrations", n.req.Integrations}} {
		v, present := m[f.name]
		own, isObject := v.(map[string]any)
		if present && v != nil && !isObject {
			return n.discard(ev, m, InvalidField, f.name+" must be an object")
		}
		if own == nil {
			own = map[string]any{}
		}
		for k, bv := range f.batch {
			if _, set := own[k]; !set {
				own[k] = bv
			}
		}
		if len(own) > 0 || f.name == "context" {
			m[f.name] = own
		}
	}
	ctx := m["context"].(map[string]any)
	if _, set := ctx["ip"]; !set && n.clientIP != "" {
		ctx["ip"] = n.clientIP
	}
	for _, f := range []string{"properties", "traits"} {
		if v, present := m[f]; present && v != nil {
			if _, ok := v.(map[string]any); !ok {
				return n.discard(ev, m, InvalidField, f+" must be an object")
			}
		}
	}

	// Identity.
	for _, f := range []struct {
		name string
		dst  **string
	}{{"userId", &ev.UserID}, {"anonymousId", &ev.AnonymousID}} {
		id, ok, err := idField(m, f.name)
		if err != "" {
			return n.discard(ev, m, InvalidField, err)
		}
		if ok {
			*f.dst = &id
			m[f.name] = id
		}
	}
	if ev.UserID == nil && ev.AnonymousID == nil {
		return n.discard(ev, m, MissingIdentity, "userId or anonymousId is required")
	}

	// Type-specific fields.
	switch typ {
	case Track:
		name, ok := m["event"].(string)
		if _, present := m["event"]; present && !ok {
			return n.discard(ev, m, InvalidField, "event must be a string")
		}
		if strings.TrimSpace(name) == "" {
			return n.discard(ev, m, MissingEvent, "a track call needs an event name")
		}
		if strings.IndexByte(name, 0) >= 0 {
			return n.discard(ev, m, InvalidField, "event must not contain NUL characters")
		}
		ev.EventName = &name
	case Page, Screen:
		if v, present := m["name"]; present && v != nil {
			if _, ok := v.(string); !ok {
				return n.discard(ev, m, InvalidField, "name must be a string")
			}
		}
	case Group:
		id, ok, err := idField(m, "groupId")
		if err != "" {
			return n.discard(ev, m, InvalidField, err)
		}
		if !ok {
			return n.discard(ev, m, MissingGroupID, "a group call needs groupId")
		}
		m["groupId"] = id
	case Alias:
		id, ok, err := idField(m, "previousId")
		if err != "" {
			return n.discard(ev, m, InvalidField, err)
		}
		if !ok {
			return n.discard(ev, m, MissingPreviousID, "an alias call needs previousId")
		}
		m["previousId"] = id
	}

	// Times: originalTimestamp is what the client said; timestamp is corrected for its clock skew.
	sentAt := m["sentAt"]
	if sentAt == nil {
		sentAt = n.req.SentAt
	}
	sent, err := timeField("sentAt", sentAt)
	if err != "" {
		return n.discard(ev, m, InvalidField, err)
	}
	origValue := m["timestamp"]
	if origValue == nil {
		origValue = m["originalTimestamp"]
	}
	orig, err := timeField("timestamp", origValue)
	if err != "" {
		return n.discard(ev, m, InvalidField, err)
	}
	ts := n.receivedAt
	if orig != nil {
		ts = *orig
		if sent != nil {
			ts = n.receivedAt.Add(-sent.Sub(*orig))
		}
		m["originalTimestamp"] = orig.UTC().Format(time.RFC3339Nano)
	}
	if sent != nil {
		m["sentAt"] = sent.UTC().Format(time.RFC3339Nano)
	}
	if y := ts.UTC().Year(); y < 1 || y > 9999 {
		return n.discard(ev, m, InvalidField, "timestamp must fall between the years 1 and 9999 once corrected for the client's clock")
	}
	ev.Timestamp = &ts
	m["timestamp"] = ts.UTC().Format(time.RFC3339Nano)
	m["receivedAt"] = n.receivedAt.UTC().Format(time.RFC3339Nano)
	return n.finish(ev, m)
}

func (n *normaliser) assignMessageID(ev *Event, m map[string]any) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ev.MessageID = "api-" + hex.EncodeToString(b[:])
	m["messageId"] = ev.MessageID
}

func (n *normaliser) discard(ev *Event, m map[string]any, reason Reason, msg string) *Event {
	ev.Status, ev.Reason, ev.Message = Discarded, reason, msg
	if ev.MessageID == "" {
		if id, ok, bad := idField(m, "messageId"); ok && bad == "" {
			ev.MessageID = id
			m["messageId"] = id
		} else {
			n.assignMessageID(ev, m)
		}
	}
	if ev.Type == "" {
		ev.Type = Unknown
	}
	m["receivedAt"] = n.receivedAt.UTC().Format(time.RFC3339Nano)
	return n.finish(ev, m)
}

func (n *normaliser) finish(ev *Event, m map[string]any) *Event {
	b, err := json.Marshal(m)
	if err != nil {
		b = []byte(`{}`)
	}
	ev.Payload = b
	if ev.Status == Accepted {
		ev.doc = m // stages read it without decoding the payload again
	}
	return ev
}

// idField reads an identifier that may be a string or a number (sent as such by some libraries),
// returning it as a string; empty strings count as absent.
func idField(m map[string]any, name string) (string, bool, string) {
	v, present := m[name]
	if !present || v == nil {
		return "", false, ""
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return "", false, name + " must be a string"
	}
	if s == "" {
		return "", false, ""
	}
	if len(s) > maxIDLength {
		return "", false, fmt.Sprintf("%s must be at most %d characters", name, maxIDLength)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", false, name + " must not contain NUL characters"
	}
	return s, true, ""
}

// timeField reads an ISO 8601 / RFC 3339 time (also a Unix-milliseconds number, which some
// libraries send); nil when absent.
func timeField(name string, v any) (*time.Time, string) {
	switch x := v.(type) {
	case nil:
		return nil, ""
	case string:
		if x == "" {
			return nil, ""
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return &t, ""
			}
		}
	case json.Number:
		if ms, err := strconv.ParseInt(x.String(), 10, 64); err == nil && ms > 0 {
			t := time.UnixMilli(ms)
			return &t, ""
		}
	}
	return nil, name + " must be an ISO 8601 date-time such as 2026-11-27T09:18:16.123Z"
}

// outOfRange finds the numbers that do not fit a float64 (such as 1e400), which nothing that
// decodes JSON numbers as doubles could read back, replaces them by their text so that the stored
// payload stays readable, and returns the path of the first one ("" when there is none).
func outOfRange(v any, path string) string {
	first := ""
	note := func(p string) {
		if first == "" {
			first = p
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if num, ok := item.(json.Number); ok && !fits(num) {
				x[k] = num.String()
				note(p)
			} else if bad := outOfRange(item, p); bad != "" {
				note(bad)
			}
		}
	case []any:
		for i, item := range x {
			p := path + "[" + strconv.Itoa(i) + "]"
			if num, ok := item.(json.Number); ok && !fits(num) {
				x[i] = num.String()
				note(p)
			} else if bad := outOfRange(item, p); bad != "" {
				note(bad)
			}
		}
	}
	return first
}

func fits(n json.Number) bool {
	_, err := strconv.ParseFloat(n.String(), 64)
	return err == nil
}
