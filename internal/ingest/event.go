// Package ingest is the tracking API: a drop-in target for Segment's client libraries. It decodes
// and normalises events (Segment's HTTP Tracking API semantics: paths, write keys, limits, clock
// skew, messageId dedup), records why bad ones are discarded, and stores everything through one
// writer that commits the events of concurrent requests together (group commit) with their usage,
// answering each request only after its events are durable.
package ingest

import (
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
}
