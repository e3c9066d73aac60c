package engage

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/junctioncdp/junction/internal/ingest"
)

// Ident is one identifier: its type and value.
type Ident struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func parseIdents(s string) []Ident {
	var out []Ident
	_ = json.Unmarshal([]byte(s), &out)
	if out == nil {
		out = []Ident{}
	}
	return out
}

// traitValue is one trait an event sets.
type traitValue struct {
	value string // JSON
	text  string
}

// extracted is what identity resolution reads of one event.
type extracted struct {
	idents []Ident
	// previousID is an alias call's previousId: an anonymous_id or a user_id of before.
	previousID string
	traits     map[string]traitValue
}

// extract reads an event's identifiers and traits where Segment promotes them:
//
//	user_id       userId
//	anonymous_id  anonymousId
//	email         traits.email (identify) or context.traits.email
//	android.id, ios.id                  context.device.id, by context.device.type
//	android.idfa, ios.idfa              context.device.advertisingId, when context.device.adTrackingEnabled
//	android.push_token, ios.push_token  context.device.token
//	ga_client_id  context.integrations["Google Analytics"].clientId (Segment's documented place), or
//	              the message's integrations["Google Analytics"].clientId (where analytics.js sends it)
//	custom        context.externalIds [{id, type}]
//
// Traits are those of an identify call and context.traits of any call. A group call's traits are
// the group's (an account's), not the person's, and are left out.
func extract(e *ingest.Event) extracted {
	var out extracted
	doc := decode(e.Payload)
	add := func(t string, v any) {
		s, ok := idString(v)
		if !ok {
			return
		}
		out.idents = append(out.idents, Ident{t, s})
	}
	if e.UserID != nil {
		add("user_id", *e.UserID)
	}
	ctx, _ := doc["context"].(map[string]any)
	var traits, ctxTraits map[string]any
	if e.Type == ingest.Identify {
		traits, _ = doc["traits"].(map[string]any)
	}
	ctxTraits, _ = ctx["traits"].(map[string]any)
	if v, ok := traits["email"]; ok {
		add("email", v)
	} else if v, ok := ctxTraits["email"]; ok {
		add("email", v)
	}
	if device, ok := ctx["device"].(map[string]any); ok {
		if typ, _ := device["type"].(string); typ == "android" || typ == "ios" {
			add(typ+".id", device["id"])
			if on, _ := device["adTrackingEnabled"].(bool); on {
				add(typ+".idfa", device["advertisingId"])
			}
			add(typ+".push_token", device["token"])
		}
	}
	if e.AnonymousID != nil {
		add("anonymous_id", *e.AnonymousID)
	}
	for _, integrations := range []any{ctx["integrations"], doc["integrations"]} {
		m, _ := integrations.(map[string]any)
		if ga, ok := m["Google Analytics"].(map[string]any); ok {
			if _, ok := idString(ga["clientId"]); ok {
				add("ga_client_id", ga["clientId"])
				break
			}
		}
	}
	if ext, ok := ctx["externalIds"].([]any); ok {
		for _, x := range ext {
			m, _ := x.(map[string]any)
			typ, _ := m["type"].(string)
			typ = strings.ToLower(strings.TrimSpace(typ))
			if typ == "" || len(typ) > maxTypeLen || !typeRE.MatchString(typ) {
				continue
			}
			add(typ, m["id"])
		}
	}
	if e.Type == ingest.Alias {
		out.previousID, _ = idString(doc["previousId"])
	}
	for _, m := range []map[string]any{ctxTraits, traits} { // identify traits win over context.traits
		for k, v := range m {
			if k == "" || len(k) > maxTraitName {
				continue
			}
			if out.traits == nil {
				out.traits = map[string]traitValue{}
			}
			out.traits[k] = newTraitValue(v)
		}
	}
	out.idents = dedupe(out.idents)
	return out
}

func newTraitValue(v any) traitValue {
	b, _ := json.Marshal(v)
	t := traitValue{value: string(b), text: string(b)}
	switch x := v.(type) {
	case string:
		t.text = x
	case json.Number:
		t.text = x.String()
	}
	return t
}

// message holds the parts of an event identity resolution reads; the rest (properties above all)
// is skipped without being decoded.
type message struct {
	Traits       json.RawMessage `json:"traits"`
	PreviousID   json.RawMessage `json:"previousId"`
	Context      json.RawMessage `json:"context"`
	Integrations json.RawMessage `json:"integrations"`
}

type messageContext struct {
	Traits       json.RawMessage `json:"traits"`
	Device       json.RawMessage `json:"device"`
	ExternalIDs  json.RawMessage `json:"externalIds"`
	Integrations json.RawMessage `json:"integrations"`
}

// decode returns the parts of an event identity resolution reads, as a document of decoded values
// (numbers as json.Number); a part that is not valid JSON is left out.
func decode(payload []byte) map[string]any {
	doc := map[string]any{}
	var m message
	if err := json.Unmarshal(payload, &m); err != nil {
		return doc
	}
	value := func(raw json.RawMessage) any {
		if len(raw) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return nil
		}
		return v
	}
	doc["traits"], doc["previousId"], doc["integrations"] = value(m.Traits), value(m.PreviousID), value(m.Integrations)
	var c messageContext
	if len(m.Context) > 0 && json.Unmarshal(m.Context, &c) == nil {
		doc["context"] = map[string]any{"traits": value(c.Traits), "device": value(c.Device), "externalIds": value(c.ExternalIDs),
			"integrations": value(c.Integrations)}
	}
	return doc
}

// idString is an identifier's value as text: strings (trimmed) and numbers; empty and overlong
// values are none.
func idString(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		s = x.String()
	default:
		return "", false
	}
	if s == "" || len(s) > maxIdentLen || strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	return s, true
}

func dedupe(in []Ident) []Ident {
	seen := map[Ident]bool{}
	out := in[:0]
	for _, x := range in {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
