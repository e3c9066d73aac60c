// Package delivery sends accepted events to the destinations their sources are connected to. Each
// destination has its own lane: a loop that reads the event log after the destination's cursor
// and the events due for a retry, sends each through the destination's connector with a bounded
// concurrency, and records every attempt with its request, response and outcome. A hanging or
// failing destination slows only its own lane. Delivery is at least once: the cursor advances
// only in the transaction that records the attempts, and each request carries an Idempotency-Key
// of <event id>:<destination id> so that receivers can drop duplicates.
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

// Connector turns an event into the HTTP request that delivers it to one kind of destination.
type Connector interface {
	// Request builds the request. An error means the destination's settings cannot work (the
	// attempt fails for good with INVALID_SETTINGS); return Skip to leave the event out.
	Request(ctx context.Context, cfg Config, ev *Event) (*http.Request, error)
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
