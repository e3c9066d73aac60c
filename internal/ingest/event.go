// Package ingest is the tracking API: a drop-in target for Segment's client libraries. It decodes
// and normalises events (Segment's HTTP Tracking API semantics: paths, write keys, limits, clock
// skew, messageId dedup), records why bad ones are discarded, and stores everything through one
// writer that commits the events of concurrent requests together (group commit) with their usage,
// answering each request only after its events are durable.
package ingest

import (
	"bytes"
	"encoding/json"
	"time"
)

// Type is an event type, upper-case as in the schema.
type Type string

const (
	Track    Type = "TRACK"
	Identify Type = "IDENTIFY"
	Page     Type = "PAGE"
	Screen   Type = "SCREEN"
	Group    Type = "GROUP"
	Alias    Type = "ALIAS"
	// Unknown is the type of an event discarded because its type was missing or not one of the above.
	Unknown Type = "UNKNOWN"
)

// typesByName maps the wire names of event types (and the short path letters) to types.
var typesByName = map[string]Type{
	"track": Track, "identify": Identify, "page": Page, "screen": Screen, "group": Group, "alias": Alias,
	"t": Track, "i": Identify, "p": Page, "s": Screen, "g": Group, "a": Alias,
}

// Status of a stored event.
const (
	Accepted  = "ACCEPTED"
	Discarded = "DISCARDED"
	// Blocked events broke a rule a Stage enforces (a tracking plan's): they are kept, with their
	// violations, but reach no destination and count in no usage.
	Blocked = "BLOCKED"
)

// Reason is why an event was discarded.
type Reason string

const (
	MissingIdentity   Reason = "MISSING_IDENTITY"
	MissingEvent      Reason = "MISSING_EVENT"
	MissingGroupID    Reason = "MISSING_GROUP_ID"
	MissingPreviousID Reason = "MISSING_PREVIOUS_ID"
	InvalidField      Reason = "INVALID_FIELD"
	UnknownType       Reason = "UNKNOWN_TYPE"
	RevokedWriteKey   Reason = "REVOKED_WRITE_KEY"
	SourceDisabled    Reason = "SOURCE_DISABLED"
	// Suppressed events are about a subject a regulation suppresses (internal/regulation): they
	// are stored without payload or identifiers, and are no source's fault.
	Suppressed Reason = "SUPPRESSED"
	// UnknownWriteKey is not stored (there is no source to store it for); it is counted in metrics.
	UnknownWriteKey Reason = "UNKNOWN_WRITE_KEY"
)

// Event is one normalised event, ready to store.
type Event struct {
	ID          string
	WorkspaceID string
	SourceID    string
	MessageID   string
	Type        Type
	EventName   *string
	UserID      *string
	AnonymousID *string
	Status      string
	Reason      Reason
	Message     string // the discard reason in words
	ReceivedAt  time.Time
	Timestamp   *time.Time
	Payload     []byte // JSON

	// Index is the event's position in its request, for per-event errors.
	Index int

	// Violations are the rules the event broke, attached by a Stage; stored with the event (on
	// accepted events too, so that its result is kept with it).
	Violations []Violation
	// ReplayOf is the id of a blocked event that this one sends again: the writer marks that one
	// replayed in the same transaction, and stores this one only if it was not replayed before.
	ReplayOf string
	// Notes are what stages attach for the listeners of commits (what they observed of the
	// event); kept in memory only.
	Notes []any `json:"-"`

	doc        map[string]any // the decoded payload, while stages look at it
	docChanged bool
	violations *string // Violations as JSON, made on the request's goroutine
}

// Violation is one rule an event broke: its kind, the field's path and a message.
type Violation struct {
	Type    string `json:"type"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Doc returns the event's payload decoded (numbers as json.Number), for a Stage to read and
// change. A Stage that changes it calls Changed, and the payload is written anew before storing.
func (e *Event) Doc() map[string]any {
	if e.doc == nil {
		if m, ok := parseDoc(e.Payload); ok {
			e.doc = m
			return m
		}
		dec := json.NewDecoder(bytes.NewReader(e.Payload))
		dec.UseNumber()
		if err := dec.Decode(&e.doc); err != nil || e.doc == nil {
			e.doc = map[string]any{}
		}
	}
	return e.doc
}

// Changed says the Stage changed Doc: the stored payload is made from it.
func (e *Event) Changed() { e.docChanged = true }

// prepare makes what the writer stores from what the stages left, on the caller's goroutine, and
// lets go of the decoded payload (listeners of commits hold events for a while).
func (e *Event) prepare() {
	if e.docChanged && e.doc != nil {
		if b, err := json.Marshal(e.doc); err == nil {
			e.Payload = b
		}
	}
	e.doc, e.docChanged = nil, false
	e.violations = nil
	if len(e.Violations) > 0 {
		if b, err := json.Marshal(e.Violations); err == nil {
			s := string(b)
			e.violations = &s
		}
	}
}
