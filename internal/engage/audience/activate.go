package audience

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
)

// Activation sends each change of an audience's membership to each destination the audience is
// connected to, once: as an event of the workspace's Engage source (a source made when the first
// audience is connected, and connected to the destination), stored through the tracking API's
// writer with a messageId made of the change's and the destination's ids, and naming only that
// destination in its integrations object. The delivery engine then sends it like any event of a
// connected source: attempts, retries, Event Delivery and Health cover it, and the messageId's
// deduplication keeps a change sent twice (a crash between storing the events and moving the
// connection's position) from reaching the destination twice.

// activationBatch bounds the changes sent per store.
const activationBatch = 200

// ConnectInput is what audienceConnectDestination takes.
type ConnectInput struct {
	AudienceID    string
	DestinationID string
	Mode          Mode
}

// Connect connects an audience to a destination of its workspace: each current member is sent as
// entering (the sync), then each change from now on. Connecting again changes the mode, and makes
// the workspace's Engage source again if it was deleted. Owners and admins.
func (s *Service) Connect(ctx context.Context, in ConnectInput) (*Audience, apperr.UserErrors, error) {
	a, err := s.mustGet(ctx, in.AudienceID)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.writeAccess(ctx, s.db.Reader(), a.WorkspaceID); err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	if in.Mode != Track && in.Mode != Identify {
		errs.Add("mode", apperr.InvalidValue, "mode %q is not TRACK or IDENTIFY", in.Mode)
		return nil, errs, nil
	}
	act := s.Activation
	if act == nil {
		return nil, nil, errors.New("audience activation is not wired")
	}
	if ok, err := act.DestinationVisible(ctx, a.WorkspaceID, in.DestinationID); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, apperr.NotFoundf("destination not found")
	}
	sourceID, err := s.engageSource(ctx, a.WorkspaceID)
	if err != nil {
		return nil, nil, err
	}
	if err := act.Connect(ctx, sourceID, in.DestinationID); err != nil {
		return nil, nil, err
	}
	user := auth.ViewerFrom(ctx).User.ID
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM audience_destinations WHERE audience_id = ? AND destination_id = ?`, a.ID, in.DestinationID); err != nil {
			return err
		}
		if n > 0 {
			// Connected already: the mode may change (from the next change on).
			_, err := tx.Exec(ctx, `UPDATE audience_destinations SET mode = ? WHERE audience_id = ? AND destination_id = ?`, in.Mode, a.ID, in.DestinationID)
			return err
		}
		// The current members first (the sync), then the changes after the last one now (read
		// under the lock its writers take: those not committed yet come after it).
		if err := tx.Lock(ctx, "audience:"+a.ID); err != nil {
			return err
		}
		var last *string
		if err := tx.Get(ctx, &last, `SELECT MAX(id) FROM audience_changes WHERE audience_id = ?`, a.ID); err != nil {
			return err
		}
		from := ""
		if last != nil {
			from = *last
		}
		_, err := tx.Exec(ctx, `INSERT INTO audience_destinations (audience_id, destination_id, workspace_id, mode, last_change_id, sync_after, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, '', ?, ?)`, a.ID, in.DestinationID, a.WorkspaceID, in.Mode, from, user, db.Time{Time: s.now()})
		return err
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	s.comp.mu.Lock()
	s.comp.send = true
	s.comp.mu.Unlock()
	s.comp.wakeUp()
	return a, nil, nil
}

// Disconnect stops sending an audience to a destination. Owners and admins.
func (s *Service) Disconnect(ctx context.Context, audienceID, destinationID string) (*Audience, error) {
	a, err := s.mustGet(ctx, audienceID)
	if err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := s.writeAccess(ctx, &tx.Queryer, a.WorkspaceID); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `DELETE FROM audience_destinations WHERE audience_id = ? AND destination_id = ?`, a.ID, destinationID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.NotFoundf("the audience is not connected to this destination")
		}
		return nil
	})
	return a, err
}

// engageSource returns the workspace's Engage source, made (with the viewer's rights) if it has
// none or it was deleted.
func (s *Service) engageSource(ctx context.Context, ws string) (string, error) {
	var ids []string
	if err := s.db.Select(ctx, &ids, `SELECT source_id FROM engage_sources WHERE workspace_id = ?`, ws); err != nil {
		return "", err
	}
	if len(ids) == 1 {
		ok, err := s.Activation.SourceExists(ctx, ids[0])
		if err != nil {
			return "", err
		}
		if ok {
			return ids[0], nil
		}
	}
	src, err := s.Activation.CreateSource(ctx, ws)
	if err != nil {
		return "", err
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO engage_sources (workspace_id, source_id) VALUES (?, ?)
			ON CONFLICT (workspace_id) DO UPDATE SET source_id = excluded.source_id`, ws, src)
		return err
	})
	return src, err
}

// change is a recorded change of membership.
type change struct {
	ID        string  `db:"id"`
	ProfileID string  `db:"profile_id"`
	Entered   bool    `db:"entered"`
	At        db.Time `db:"at"`
}

// activate sends what connected destinations have not been sent yet.
func (s *Service) activate(ctx context.Context) error {
	if s.Activation == nil {
		return nil
	}
	var conns []struct {
		Destination
		Key  string `db:"key"`
		Name string `db:"name"`
	}
	if err := s.db.Select(ctx, &conns, `SELECT ad.*, a.key, a.name FROM audience_destinations ad JOIN audiences a ON a.id = ad.audience_id
		WHERE a.deleted_at IS NULL AND a.enabled = TRUE
		AND (ad.sync_after IS NOT NULL OR EXISTS (SELECT 1 FROM audience_changes c WHERE c.audience_id = ad.audience_id AND c.id > ad.last_change_id))
		ORDER BY ad.audience_id, ad.destination_id`); err != nil {
		return err
	}
	var errs []error
	for _, c := range conns {
		if err := s.send(ctx, &c.Destination, c.Key, c.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// send sends one connection's sync of current members, then its changes after its position, a
// batch at a time, moving the sync's and the changes' positions after each batch is stored.
func (s *Service) send(ctx context.Context, d *Destination, key, name string) error {
	var sources []string
	if err := s.db.Select(ctx, &sources, `SELECT source_id FROM engage_sources WHERE workspace_id = ?`, d.WorkspaceID); err != nil || len(sources) == 0 {
		return err
	}
	for d.SyncAfter != nil {
		// Current members, as entering: each with its entry's change id, so that the sync and
		// the change (when it is after the position too) make one message.
		var members []change
		if err := s.db.Select(ctx, &members, `SELECT change_id AS id, profile_id, TRUE AS entered, entered_at AS at FROM audience_members
			WHERE audience_id = ? AND profile_id > ? ORDER BY profile_id LIMIT ?`, d.AudienceID, *d.SyncAfter, activationBatch); err != nil {
			return err
		}
		if err := s.sendChanges(ctx, d, key, name, sources[0], members); err != nil {
			return err
		}
		var next *string
		if len(members) == activationBatch {
			next = &members[len(members)-1].ProfileID
		}
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE audience_destinations SET sync_after = ? WHERE audience_id = ? AND destination_id = ?`,
				next, d.AudienceID, d.DestinationID)
			return err
		}); err != nil {
			return err
		}
		d.SyncAfter = next
	}
	for {
		var changes []change
		if err := s.db.Select(ctx, &changes, `SELECT id, profile_id, entered, at FROM audience_changes WHERE audience_id = ? AND id > ? ORDER BY id LIMIT ?`,
			d.AudienceID, d.LastChangeID, activationBatch); err != nil || len(changes) == 0 {
			return err
		}
		if err := s.sendChanges(ctx, d, key, name, sources[0], changes); err != nil {
			return err
		}
		last := changes[len(changes)-1].ID
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE audience_destinations SET last_change_id = ? WHERE audience_id = ? AND destination_id = ? AND last_change_id < ?`,
				last, d.AudienceID, d.DestinationID, last)
			return err
		}); err != nil {
			return err
		}
		d.LastChangeID = last
		if len(changes) < activationBatch {
			return nil
		}
	}
}

// sendChanges stores the events of changes for one connection.
func (s *Service) sendChanges(ctx context.Context, d *Destination, key, name, sourceID string, changes []change) error {
	if len(changes) == 0 {
		return nil
	}
	profiles := make([]string, 0, len(changes))
	for _, c := range changes {
		profiles = append(profiles, c.ProfileID)
	}
	idents, err := s.profiles.IdentifiersOf(ctx, d.WorkspaceID, profiles)
	if err != nil {
		return err
	}
	var events []json.RawMessage
	for _, c := range changes {
		if ev := activationEvent(d, key, name, c, idents[c.ProfileID]); ev != nil {
			events = append(events, ev)
		}
	}
	if len(events) == 0 {
		return nil
	}
	return s.Activation.Receive(ctx, d.WorkspaceID, sourceID, events)
}

// activationEvent is the event of one change for one destination, in Segment's shape: a track
// Audience Entered / Audience Exited with the audience's key and name in its properties, or an
// identify with a boolean trait named after the key. Its profile's user id, anonymous id and
// email identify the person; a profile with none of them (gone, or known by other ids only) is
// not sent.
func activationEvent(d *Destination, key, name string, c change, idents []engage.Identifier) json.RawMessage {
	ev := map[string]any{
		"messageId":    "audience-" + c.ID + "-" + d.DestinationID,
		"timestamp":    c.At.Time,
		"integrations": map[string]any{"All": false, d.DestinationID: true},
		"context": map[string]any{"personas": map[string]any{"computation_class": "audience", "computation_id": d.AudienceID,
			"computation_key": key, "space_id": d.WorkspaceID}},
	}
	traits := map[string]any{}
	found := false
	for _, i := range idents {
		switch i.Type {
		case "user_id":
			if ev["userId"] == nil {
				ev["userId"], found = i.Value, true
			}
		case "anonymous_id":
			if ev["anonymousId"] == nil {
				ev["anonymousId"], found = i.Value, true
			}
		case "email":
			if traits["email"] == nil {
				traits["email"] = i.Value
			}
		}
	}
	if !found {
		email, ok := traits["email"].(string)
		if !ok {
			return nil
		}
		// The tracking spec asks for a userId or an anonymousId: the email's profile finds it.
		ev["anonymousId"] = email
	}
	if d.Mode == Identify {
		ev["type"] = "identify"
		traits[key] = c.Entered
		ev["traits"] = traits
	} else {
		ev["type"] = "track"
		ev["event"] = "Audience Exited"
		if c.Entered {
			ev["event"] = "Audience Entered"
		}
		ev["properties"] = map[string]any{"audience_key": key, "audience_name": name, "audience_id": d.AudienceID, key: c.Entered}
		if len(traits) > 0 {
			ev["context"].(map[string]any)["traits"] = traits
		}
	}
	b, _ := json.Marshal(ev)
	return b
}
