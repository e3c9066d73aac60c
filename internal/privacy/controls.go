package privacy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/secret"
)

// What a source removes from its events before they are stored.
const (
	BlockNone         = "NONE"
	BlockRed          = "RED"
	BlockRedAndYellow = "RED_AND_YELLOW"
)

// Action is what a destination receives of a field.
type Action string

const (
	Allow Action = "ALLOW"
	Block Action = "BLOCK" // the field is left out
	Hash  Action = "HASH"  // the value is replaced by its keyed SHA-256 (HMAC) with the workspace's salt
)

// DestinationControls say what a destination receives of fields of each classification.
type DestinationControls struct {
	DestinationID string
	WorkspaceID   string
	Red           Action
	Yellow        Action
	Green         Action
}

// DefaultDestinationControls let everything through, as Segment does.
func defaultDestinationControls(destinationID, workspaceID string) DestinationControls {
	return DestinationControls{DestinationID: destinationID, WorkspaceID: workspaceID, Red: Allow, Yellow: Allow, Green: Allow}
}

func (d DestinationControls) action(c Classification) Action {
	switch c {
	case Red:
		return d.Red
	case Yellow:
		return d.Yellow
	case Green:
		return d.Green
	}
	return Allow
}

func (d DestinationControls) hashes() bool {
	return d.Red == Hash || d.Yellow == Hash || d.Green == Hash
}

func (d DestinationControls) allowsAll() bool {
	return d.Red == Allow && d.Yellow == Allow && d.Green == Allow
}

type destRow struct {
	DestinationID string `db:"destination_id"`
	WorkspaceID   string `db:"workspace_id"`
	Red           string `db:"red"`
	Yellow        string `db:"yellow"`
	Green         string `db:"green"`
}

func (r destRow) controls() DestinationControls {
	return DestinationControls{DestinationID: r.DestinationID, WorkspaceID: r.WorkspaceID, Red: Action(r.Red), Yellow: Action(r.Yellow), Green: Action(r.Green)}
}

// Resources is what the service needs of sources and destinations: their workspace, when the
// viewer sees them (NOT_FOUND otherwise).
type Resources interface {
	SourceWorkspace(ctx context.Context, sourceID string) (string, error)
	DestinationWorkspace(ctx context.Context, destinationID string) (string, error)
}

// SourceControls returns what a source removes before storing: NONE, RED or RED_AND_YELLOW.
func (s *Service) SourceControls(ctx context.Context, res Resources, sourceID string) (string, error) {
	// Whoever sees the source sees its controls.
	if _, err := res.SourceWorkspace(ctx, sourceID); err != nil {
		return "", err
	}
	var blocks []string
	if err := s.db.Select(ctx, &blocks, `SELECT block FROM privacy_source_controls WHERE source_id = ?`, sourceID); err != nil {
		return "", err
	}
	if len(blocks) == 0 {
		return BlockNone, nil
	}
	return blocks[0], nil
}

// UpdateSourceControls sets what a source removes before storing. Owners and admins.
func (s *Service) UpdateSourceControls(ctx context.Context, res Resources, sourceID, block string) (apperr.UserErrors, error) {
	ws, err := res.SourceWorkspace(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	if _, err := s.admin(ctx, ws); err != nil {
		return nil, err
	}
	if block != BlockNone && block != BlockRed && block != BlockRedAndYellow {
		return apperr.UserErrors{{Field: "block", Code: apperr.InvalidValue, Message: "block must be NONE, RED or RED_AND_YELLOW"}}, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO privacy_source_controls (source_id, workspace_id, block) VALUES (?, ?, ?)
			ON CONFLICT (source_id) DO UPDATE SET block = excluded.block`, sourceID, ws, block); err != nil {
			return err
		}
		return audit.Record(ctx, tx, ws, EventControlsUpdated, "Source", sourceID, map[string]any{"block": block})
	})
	if err != nil {
		return nil, err
	}
	s.cache.forget(ws)
	return nil, nil
}

// DestinationControls returns what a destination receives of fields of each classification.
func (s *Service) DestinationControls(ctx context.Context, res Resources, destinationID string) (DestinationControls, error) {
	// Whoever sees the destination sees its controls.
	ws, err := res.DestinationWorkspace(ctx, destinationID)
	if err != nil {
		return DestinationControls{}, err
	}
	var rows []destRow
	if err := s.db.Select(ctx, &rows, `SELECT * FROM privacy_destination_controls WHERE destination_id = ? AND workspace_id = ?`, destinationID, ws); err != nil {
		return DestinationControls{}, err
	}
	if len(rows) == 0 {
		return defaultDestinationControls(destinationID, ws), nil
	}
	return rows[0].controls(), nil
}

// UpdateDestinationControls sets what a destination receives; nil actions stay as they are.
// Owners and admins.
func (s *Service) UpdateDestinationControls(ctx context.Context, res Resources, destinationID string, red, yellow, green *Action) (DestinationControls, apperr.UserErrors, error) {
	dc, err := s.DestinationControls(ctx, res, destinationID)
	if err != nil {
		return dc, nil, err
	}
	if _, err := s.admin(ctx, dc.WorkspaceID); err != nil {
		return dc, nil, err
	}
	var errs apperr.UserErrors
	for _, x := range []struct {
		field string
		in    *Action
		out   *Action
	}{{"red", red, &dc.Red}, {"yellow", yellow, &dc.Yellow}, {"green", green, &dc.Green}} {
		if x.in == nil {
			continue
		}
		if *x.in != Allow && *x.in != Block && *x.in != Hash {
			errs.Add(x.field, apperr.InvalidValue, "%s must be ALLOW, BLOCK or HASH", x.field)
			continue
		}
		*x.out = *x.in
	}
	if len(errs) > 0 {
		return dc, errs, nil
	}
	if dc.hashes() {
		if _, err := s.salt(ctx, s.db.Reader(), dc.WorkspaceID); err != nil {
			return dc, nil, err
		}
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO privacy_destination_controls (destination_id, workspace_id, red, yellow, green) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (destination_id) DO UPDATE SET red = excluded.red, yellow = excluded.yellow, green = excluded.green`,
			destinationID, dc.WorkspaceID, string(dc.Red), string(dc.Yellow), string(dc.Green)); err != nil {
			return err
		}
		return audit.Record(ctx, tx, dc.WorkspaceID, EventControlsUpdated, "Destination", destinationID,
			map[string]any{"red": dc.Red, "yellow": dc.Yellow, "green": dc.Green})
	})
	if err != nil {
		return dc, nil, err
	}
	s.cache.forget(dc.WorkspaceID)
	s.cache.mu.Lock()
	delete(s.cache.dests, destinationID)
	s.cache.mu.Unlock()
	return dc, nil, nil
}

// salt returns the workspace's hashing key, making it on first use. It is stored sealed with the
// server's encryption key and never leaves the server.
func (s *Service) salt(ctx context.Context, q *db.Queryer, workspaceID string) ([]byte, error) {
	scope := secret.Scope{WorkspaceID: workspaceID, OwnerID: workspaceID, Field: "privacy.salt"}
	var sealed []string
	if err := q.Select(ctx, &sealed, `SELECT salt FROM privacy_settings WHERE workspace_id = ?`, workspaceID); err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		ct, err := s.box.Seal(base64.StdEncoding.EncodeToString(key), scope)
		if err != nil {
			return nil, err
		}
		// Two first uses at once: the first row wins, and both read it back.
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO privacy_settings (workspace_id, salt) VALUES (?, ?) ON CONFLICT (workspace_id) DO NOTHING`, workspaceID, ct)
			return err
		}); err != nil {
			return nil, err
		}
		if err := s.db.Select(ctx, &sealed, `SELECT salt FROM privacy_settings WHERE workspace_id = ?`, workspaceID); err != nil || len(sealed) == 0 {
			return nil, err
		}
	}
	plain, err := s.box.Open(sealed[0], scope)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(plain)
}

// hashValue is the keyed SHA-256 of a value's text (strings as they are, other values as JSON),
// in hex: equal values hash equal within a workspace, so joins still work.
func hashValue(salt []byte, text string) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

// Outgoing applies a destination's controls to an event about to be sent to it: fields whose
// classification it blocks are left out, those it hashes carry the keyed SHA-256 of their value
// instead (numbers as sent, objects and arrays: of their JSON). A field's classification is the
// inventory's, or for fields not classified yet the recommendation of its key. It returns the
// payload to send and whether it changed. Called by the delivery engine, on the destination's lane.
func (s *Service) Outgoing(ctx context.Context, destinationID string, raw []byte) ([]byte, bool) {
	ws, err := s.cache.destinationWorkspace(ctx, destinationID)
	if err != nil || ws == "" {
		return raw, false
	}
	r, err := s.cache.rules(ctx, ws)
	if err != nil || !r.enabled {
		return raw, false
	}
	dc, ok := r.destinations[destinationID]
	if !ok || dc.allowsAll() {
		return raw, false
	}
	var payload map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // hash numbers as sent: 4111111111111111 is not 4.111111111111111e+15
	if dec.Decode(&payload) != nil {
		return raw, false
	}
	changed := false
	var apply func(prefix string, m map[string]any)
	apply = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + "." + k
			switch dc.action(r.classOf(path, k)) {
			case Block:
				delete(m, k)
				changed = true
				continue
			case Hash:
				if r.salt != nil {
					m[k] = hashValue(r.salt, valueText(v))
					changed = true
				}
				continue
			}
			switch x := v.(type) {
			case map[string]any:
				apply(path, x)
			case []any:
				for _, el := range x {
					if o, ok := el.(map[string]any); ok {
						apply(path+"[]", o)
					}
				}
			}
		}
	}
	for _, sec := range sections {
		if m, ok := payload[sec].(map[string]any); ok {
			apply(sec, m)
		}
	}
	if !changed {
		return raw, false
	}
	out, err := json.Marshal(payload)
	if err != nil {
		return raw, false
	}
	return out, true
}

// valueText is what is hashed of a value: a string as it is, anything else as JSON.
func valueText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}
