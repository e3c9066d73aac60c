package gqlws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
)

// Close codes of graphql-transport-ws. The legacy protocol defines none, so it uses the same.
const (
	closeBadRequest               = 4400
	closeUnauthorized             = 4401
	closeForbidden                = 4403
	closeSubprotocolNotAcceptable = 4406
	closeInitTimeout              = 4408
	closeSubscriberExists         = 4409
	closeTooManyInits             = 4429
	// closeTryAgainLater is RFC 6455's 1013: the server refuses the connection for now (too many
	// for one user).
	closeTryAgainLater = 1013
)

// kind is what a client message asks for, whatever its protocol calls it.
type kind int

const (
	kindInit kind = iota + 1
	kindSubscribe
	kindComplete
	kindPing
	kindPong
	kindTerminate
)

// dialect is one subprotocol's names for the same state machine.
type dialect struct {
	name      string
	kinds     map[string]kind // client message types
	next      string          // type of a result message
	heartbeat string          // type of the server's periodic message
	legacy    bool            // graphql-ws: connection_error before a rejection close, ka right after the ack
}

var transportWS = &dialect{
	name: "graphql-transport-ws",
	kinds: map[string]kind{
		"connection_init": kindInit,
		"subscribe":       kindSubscribe,
		"complete":        kindComplete,
		"ping":            kindPing,
		"pong":            kindPong,
	},
	next:      "next",
	heartbeat: "ping",
}

var legacyWS = &dialect{
	name: "graphql-ws",
	kinds: map[string]kind{
		"connection_init":      kindInit,
		"start":                kindSubscribe,
		"stop":                 kindComplete,
		"connection_terminate": kindTerminate,
	},
	next:      "data",
	heartbeat: "ka",
	legacy:    true,
}

func dialectFor(subprotocol string) *dialect {
	switch subprotocol {
	case transportWS.name:
		return transportWS
	case legacyWS.name:
		return legacyWS
	}
	return nil
}

// inMessage is a validated client message.
type inMessage struct {
	kind    kind
	typ     string
	id      string          // subscribe and complete
	payload json.RawMessage // init, ping and pong: a JSON object, or empty
	params  *graphql.RawParams
}

// outMessage is a server message.
type outMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// parse validates a client message as graphql-ws's validateMessage does; an error is the reason
// of a 4400 close.
func (d *dialect) parse(data []byte) (inMessage, error) {
	if !json.Valid(data) {
		return inMessage{}, errors.New("Invalid JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return inMessage{}, errors.New("Message must be an object")
	}
	var m inMessage
	if err := json.Unmarshal(fields["type"], &m.typ); err != nil || m.typ == "" {
		return inMessage{}, errors.New("Message is missing a string type")
	}
	m.kind = d.kinds[m.typ]
	switch m.kind {
	case 0:
		return inMessage{}, fmt.Errorf("Unknown message type %q", m.typ)
	case kindSubscribe, kindComplete:
		if err := json.Unmarshal(fields["id"], &m.id); err != nil || m.id == "" {
			return inMessage{}, fmt.Errorf("%q message requires a non-empty string id", m.typ)
		}
	}
	payload, hasPayload := fields["payload"]
	if isNull(payload) {
		hasPayload = false
	}
	switch m.kind {
	case kindInit, kindPing, kindPong:
		if hasPayload {
			if !isObject(payload) {
				return inMessage{}, fmt.Errorf("%q payload must be an object", m.typ)
			}
			m.payload = payload
		}
	case kindSubscribe:
		if !hasPayload || !isObject(payload) {
			return inMessage{}, fmt.Errorf("%q payload must be an object", m.typ)
		}
		params, err := parseParams(payload)
		if err != nil {
			return inMessage{}, fmt.Errorf("%q payload: %w", m.typ, err)
		}
		m.params = params
	}
	return m, nil
}

// parseParams decodes a subscribe payload strictly: gqlgen's own decoder would accept a missing
// query or a number where a string belongs.
func parseParams(payload json.RawMessage) (*graphql.RawParams, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return nil, errors.New("must be an object")
	}
	var p graphql.RawParams
	if q, ok := fields["query"]; !ok || isNull(q) || json.Unmarshal(q, &p.Query) != nil {
		return nil, errors.New("query must be a string")
	}
	if err := decodeOptional(fields["operationName"], &p.OperationName); err != nil {
		return nil, errors.New("operationName must be a string or null")
	}
	if err := decodeOptional(fields["variables"], &p.Variables); err != nil {
		return nil, errors.New("variables must be an object or null")
	}
	if err := decodeOptional(fields["extensions"], &p.Extensions); err != nil {
		return nil, errors.New("extensions must be an object or null")
	}
	return &p, nil
}

// decodeOptional decodes raw into dst unless it is absent or null. Numbers stay json.Number, as
// in gqlgen's HTTP transports.
func decodeOptional(raw json.RawMessage, dst any) error {
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(dst)
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}
