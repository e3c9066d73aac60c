// Package delivery sends accepted events to the destinations their sources are connected to. Each
// destination has its own lane: it reads the event log after the destination's cursor and the
// events due for a retry, packs them into requests as the destination's connector takes them (one
// event for a webhook, batches for the vendors that take them), keeps a bounded number of requests
// in flight without waiting for the slowest, and records every attempt (one per event) with the
// request that carried it, the response and the outcome. A hanging or failing destination slows
// only its own lane. Delivery is at least once: the cursor advances only in the transaction that
// records the attempts before it; requests of one event carry an Idempotency-Key of
// <event id>:<destination id>, and batches rely on each event's own id, which vendors deduplicate.
// Every request dials through the egress filter (internal/egress).
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Config is what a connector knows of its destination.
type Config struct {
	DestinationID string
	WorkspaceID   string
	Name          string            // the destination's name
	Settings      map[string]any    // validated, with defaults
	Secrets       map[string]string // decrypted secret settings: never logged or recorded
}

// String returns a string setting, or def.
func (c Config) String(name, def string) string {
	if v, ok := c.Settings[name].(string); ok && v != "" {
		return v
	}
	if v, ok := c.Secrets[name]; ok && v != "" {
		return v
	}
	return def
}

// Number returns a number setting, or def.
func (c Config) Number(name string, def float64) float64 {
	switch v := c.Settings[name].(type) {
	case float64:
		return v
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return f
		}
	}
	return def
}

// Event is an event to deliver.
type Event struct {
	ID         string
	SourceID   string
	Type       string // lower-case: track, identify ...
	Payload    map[string]any
	Raw        []byte // the stored JSON
	ReceivedAt time.Time
}

// Str returns a string field of the event's payload.
func (e *Event) Str(name string) string {
	s, _ := e.Payload[name].(string)
	return s
}

// Object returns an object field of the event's payload (never nil).
func (e *Event) Object(name string) map[string]any {
	if m, ok := e.Payload[name].(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// Part is what one event adds to a request: its entries in the request body (usually one; an
// Amplitude group call makes two), and a key: only events with the same key share a request
// (GA4 takes one client per request).
type Part struct {
	Key   string
	Items []json.RawMessage
}

// Limits bound one request: how many items (vendor events) and how many bytes of them it carries.
// One item per request means one event per request, which carries an Idempotency-Key.
type Limits struct {
	Items int
	Bytes int
}

// Connector turns events into the HTTP requests that deliver them to one kind of destination.
type Connector interface {
	// Prepare maps one event to its part of a request. Skip leaves the event out; another error
	// means the destination's settings cannot work (the attempt fails for good, INVALID_SETTINGS).
	Prepare(cfg Config, ev *Event) (Part, error)
	// Request builds one request carrying parts of the same key, within Limits. An error means the
	// settings cannot work.
	Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error)
	// Limits bounds a request.
	Limits() Limits
}

// partialAnswer is implemented by connectors whose vendor says, when it refuses a batch, which of
// its items it refused.
type partialAnswer interface {
	// refused reads an answer. ok is false when it names no items (the status then counts for
	// every event of the request); otherwise refused maps item indexes to the vendor's reason, and
	// othersDelivered tells whether the other items were taken (else they must be sent again).
	refused(status int, body []byte) (refused map[int]string, othersDelivered, ok bool)
}

// Skip is returned by a connector for an event it does not send (a type it does not take).
type skip struct{ reason string }

func (s *skip) Error() string { return s.reason }

// Skip makes the error a connector returns for an event it leaves out.
func Skip(reason string) error { return &skip{reason} }

// connectors maps catalog slugs to connectors.
var connectors = map[string]Connector{}

// register adds a connector for a catalog slug.
func register(slug string, c Connector) { connectors[slug] = c }

// ConnectorFor returns the connector of a catalog slug, or nil.
func ConnectorFor(slug string) Connector { return connectors[slug] }

// RequestFor builds the request that delivers one event alone: Prepare, then Request.
func RequestFor(ctx context.Context, slug string, cfg Config, ev *Event) (*http.Request, error) {
	c := ConnectorFor(slug)
	part, err := c.Prepare(cfg, ev)
	if err != nil {
		return nil, err
	}
	return c.Request(ctx, cfg, []Part{part})
}

// one is the Part of an event that is one item marshalled from v.
func one(v any) (Part, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Part{}, err
	}
	return Part{Items: []json.RawMessage{b}}, nil
}

// items lists the items of parts in order.
func items(parts []Part) []json.RawMessage {
	var out []json.RawMessage
	for _, p := range parts {
		out = append(out, p.Items...)
	}
	return out
}

// jsonRequest builds a POST (or method) request with a JSON body.
func jsonRequest(ctx context.Context, method, url string, body any) (*http.Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return req, nil
}
