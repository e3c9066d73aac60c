// Package audience is Engage's audiences: definitions over profiles (traits, computed traits,
// events performed within windows, membership of other audiences, combined with and/or/not),
// whose members are kept current as identity resolution commits (Service.OnResolved of
// internal/engage), by a scheduled recomputation of audiences with time windows, and by a
// computation over every profile when a definition is saved. Each change of membership is
// recorded; activation sends the changes of an audience to the destinations it is connected to,
// as events of the workspace's Engage source, through the delivery engine.
//
// Rights: members read audiences; owners and admins change them. Audiences are part of Engage,
// on the BUSINESS plan.
package audience

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Id prefixes of audiences and of their changes of membership ("aud" is the audit trail's).
const (
	Prefix       = "audn"
	ChangePrefix = "audch"
)

// Status of an audience's computation.
type Status string

// Statuses.
const (
	// Computing: the definition is new or changed and its computation over every profile is not
	// done; members and size are those found so far.
	Computing Status = "COMPUTING"
	// Live: computed, and kept current.
	Live Status = "LIVE"
)

// Audience is a saved definition and what its computation found.
type Audience struct {
	ID              string   `db:"id"`
	WorkspaceID     string   `db:"workspace_id"`
	Key             string   `db:"key"`
	Name            string   `db:"name"`
	Description     string   `db:"description"`
	DefinitionRaw   string   `db:"definition"`
	Enabled         bool     `db:"enabled"`
	Windowed        bool     `db:"windowed"`
	Size            int      `db:"size"`
	Status          Status   `db:"status"`
	Version         int64    `db:"version"`
	ComputedVersion int64    `db:"computed_version"`
	LastComputedAt  *db.Time `db:"last_computed_at"`
	CreatedBy       *string  `db:"created_by"`
	UpdatedBy       *string  `db:"updated_by"`
	CreatedAt       db.Time  `db:"created_at"`
	UpdatedAt       db.Time  `db:"updated_at"`
	DeletedAt       *db.Time `db:"deleted_at"`
}

// IsNode marks Audience as a GraphQL Node.
func (Audience) IsNode() {}

// GetID is the Node's id.
func (a Audience) GetID() string { return a.ID }

// Definition is the audience's definition, decoded.
func (a *Audience) Definition() *Condition {
	c, err := parseDefinition(a.DefinitionRaw)
	if err != nil {
		return &Condition{}
	}
	return c
}

// Member is a profile in an audience, since when.
type Member struct {
	AudienceID string  `db:"audience_id"`
	EnteredAt  db.Time `db:"entered_at"`
	engage.Profile
}

// SizePoint is an audience's size at the end of a minute in which it changed.
type SizePoint struct {
	At   db.Time `db:"at"`
	Size int     `db:"size"`
}

// Mode is how an audience is sent to a destination.
type Mode string

// Modes.
const (
	// Track sends Audience Entered and Audience Exited track events.
	Track Mode = "TRACK"
	// Identify sends identify calls with a boolean trait named after the audience's key.
	Identify Mode = "IDENTIFY"
)

// Destination is a destination an audience is connected to.
type Destination struct {
	AudienceID    string  `db:"audience_id"`
	DestinationID string  `db:"destination_id"`
	WorkspaceID   string  `db:"workspace_id"`
	Mode          Mode    `db:"mode"`
	LastChangeID  string  `db:"last_change_id"`
	SyncAfter     *string `db:"sync_after"`
	CreatedBy     *string `db:"created_by"`
	CreatedAt     db.Time `db:"created_at"`
}

// Activation is what activation needs of other domains, wired by internal/app: the Engage
// source of a workspace is made and connected with the viewer's rights, and events are stored as
// the tracking API stores a batch (deduplicated by messageId).
type Activation struct {
	// CreateSource adds the workspace's Engage source, with the viewer's rights.
	CreateSource func(ctx context.Context, workspaceID string) (string, error)
	// SourceExists tells whether a source still stands (it may have been deleted).
	SourceExists func(ctx context.Context, sourceID string) (bool, error)
	// Connect connects the source to the destination unless they are already connected, with
	// the viewer's rights.
	Connect func(ctx context.Context, sourceID, destinationID string) error
	// Receive stores events (Segment spec JSON) as the source's.
	Receive func(ctx context.Context, workspaceID, sourceID string, events []json.RawMessage) error
	// DestinationVisible tells whether the viewer sees a destination of the workspace.
	DestinationVisible func(ctx context.Context, workspaceID, destinationID string) (bool, error)
}

// Options tune the service.
type Options struct {
	// Every is how often scheduled work runs: audiences with windows recomputed (when their
	// Recompute period passed), audiences left computing picked up, deleted ones drained.
	Every time.Duration
	// Recompute is how often an audience with a time window is recomputed over every profile.
	Recompute time.Duration
	// Now is the clock (tests move it).
	Now    func() time.Time
	Logger *slog.Logger
}

// Service owns audiences, their members, changes, sizes and destinations.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	profiles   *engage.Service
	bus        *bus.Bus
	log        *slog.Logger
	opt        Options

	// Gate tells whether this process runs the scheduled work (the leader among replicas).
	Gate func() bool
	// Activation, when set, sends changes to connected destinations.
	Activation *Activation

	comp *computer
}

// New returns the service; Start runs its worker.
func New(d *db.DB, w *workspace.Service, profiles *engage.Service, b *bus.Bus, o Options) *Service {
	if o.Every <= 0 {
		o.Every = 10 * time.Second
	}
	if o.Recompute <= 0 {
		o.Recompute = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d, workspaces: w, profiles: profiles, bus: b, log: o.Logger, opt: o}
	s.comp = newComputer(s)
	if b != nil {
		b.Decoder(topicKind, bus.JSON[*Audience])
	}
	if profiles != nil {
		profiles.OnResolved(s.comp.resolved)
	}
	return s
}

const topicKind = "audience"

// Topic carries an audience whose size changed, by audience id.
func Topic(audienceID string) bus.Topic { return bus.Topic{Kind: topicKind, Key: audienceID} }

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

func errNotFound() error { return apperr.NotFoundf("audience not found") }

// readAccess is the viewer's access for reading audiences: members, owners and admins, on a plan
// with Engage.
func (s *Service) readAccess(ctx context.Context, workspaceID string) (*workspace.Access, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanReadAll() {
		return nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to read audiences")
	}
	if err := engage.RequirePlan(ctx, s.db.Reader(), workspaceID); err != nil {
		return nil, err
	}
	return a, nil
}

// writeAccess is the viewer's access for changing audiences: owners and admins, on a plan with
// Engage.
func (s *Service) writeAccess(ctx context.Context, q *db.Queryer, workspaceID string) (*workspace.Access, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanAdminister() {
		return nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change audiences")
	}
	if err := engage.RequirePlan(ctx, q, workspaceID); err != nil {
		return nil, err
	}
	return a, nil
}

// CanChange tells whether the viewer may change the workspace's audiences.
func (s *Service) CanChange(ctx context.Context, workspaceID string) bool {
	_, err := s.writeAccess(ctx, s.db.Reader(), workspaceID)
	return err == nil
}

// audienceWhere is the condition (on alias a) for the audiences the viewer sees in the workspace
// of acc: all standing ones for members, owners and admins; none for MINIMAL members.
func audienceWhere(acc *workspace.Access) (string, []any) {
	if !acc.CanReadAll() {
		return "FALSE", nil
	}
	return "a.workspace_id = ? AND a.deleted_at IS NULL", []any{acc.WorkspaceID}
}

// Get returns an audience by id (nil when the viewer may not see it).
func (s *Service) Get(ctx context.Context, audienceID string) (*Audience, error) {
	acc, err := s.workspaces.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM audiences WHERE id = ? AND deleted_at IS NULL`, audienceID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	if _, err := s.readAccess(ctx, acc.WorkspaceID); err != nil {
		if apperr.CodeOf(err) == apperr.Forbidden {
			return nil, nil
		}
		return nil, err
	}
	where, args := audienceWhere(acc)
	var rows []Audience
	if err := s.db.Select(ctx, &rows, `SELECT a.* FROM audiences a WHERE a.id = ? AND `+where, append([]any{audienceID}, args...)...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// mustGet is Get for mutations: NOT_FOUND when the viewer may not see the audience.
func (s *Service) mustGet(ctx context.Context, audienceID string) (*Audience, error) {
	a, err := s.Get(ctx, audienceID)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errNotFound()
	}
	return a, nil
}

// List pages through a workspace's audiences, newest first.
func (s *Service) List(ctx context.Context, workspaceID string, args relay.Args, count bool) (relay.Page[Audience], error) {
	acc, err := s.readAccess(ctx, workspaceID)
	if err != nil {
		return relay.Page[Audience]{}, err
	}
	where, qargs := audienceWhere(acc)
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Audience]{
		Select: "SELECT a.* FROM audiences a", Where: where, Args: qargs, IDColumn: "a.id", Desc: true, Count: count,
		ID: func(a Audience) string { return a.ID },
	}, args)
}

// Input is what audienceCreate and audienceUpdate take; nil fields of an update stay.
type Input struct {
	Key         *string
	Name        *string
	Description *string
	Definition  *Condition
	Enabled     *bool
}

// Create saves an audience and starts its computation over every profile; owners and admins.
func (s *Service) Create(ctx context.Context, workspaceID string, in Input) (*Audience, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var out *Audience
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		acc, err := s.writeAccess(ctx, &tx.Queryer, workspaceID)
		if err != nil {
			return err
		}
		a := &Audience{ID: id.New(Prefix), WorkspaceID: workspaceID, Enabled: in.Enabled == nil || *in.Enabled, Status: Computing, Version: 1}
		if in.Key == nil {
			errs.Add("key", apperr.Required, "key is required")
		} else {
			a.Key = strings.TrimSpace(*in.Key)
			if !keyPattern.MatchString(a.Key) {
				errs.Add("key", apperr.InvalidValue, "a key is 1 to 100 lower-case letters, digits and '_', starting with a letter")
			}
		}
		if in.Definition == nil {
			errs.Add("definition", apperr.Required, "definition is required")
		}
		s.apply(ctx, tx, &errs, a, in)
		if len(errs) > 0 {
			return nil
		}
		var taken int
		if err := tx.Get(ctx, &taken, `SELECT COUNT(*) FROM audiences WHERE workspace_id = ? AND key = ? AND deleted_at IS NULL`, workspaceID, a.Key); err != nil {
			return err
		}
		if taken > 0 {
			errs.Add("key", apperr.Taken, "the workspace has an audience with key %q", a.Key)
			return nil
		}
		now := db.Time{Time: s.now()}
		user := acc.Viewer.User.ID
		a.CreatedBy, a.UpdatedBy, a.CreatedAt, a.UpdatedAt = &user, &user, now, now
		if _, err := tx.Exec(ctx, `INSERT INTO audiences (id, workspace_id, key, name, description, definition, enabled, windowed, size, status,
			version, computed_version, created_by, updated_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?)`,
			a.ID, a.WorkspaceID, a.Key, a.Name, a.Description, a.DefinitionRaw, a.Enabled, a.Windowed, a.Status, a.Version,
			a.CreatedBy, a.UpdatedBy, a.CreatedAt, a.UpdatedAt); err != nil {
			return err
		}
		out = a
		tx.AfterCommit(func() { s.comp.recompute(a.WorkspaceID, a.ID) })
		return nil
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return out, nil, nil
}

// apply validates and sets the fields of in on a (name, description, definition, enabled).
func (s *Service) apply(ctx context.Context, tx *db.Tx, errs *apperr.UserErrors, a *Audience, in Input) {
	if in.Name != nil || a.Name == "" {
		name := ""
		if in.Name != nil {
			name = strings.TrimSpace(*in.Name)
		}
		auth.ValidateName(errs, "name", name)
		a.Name = name
	}
	if in.Description != nil {
		a.Description = strings.TrimSpace(*in.Description)
		if len(a.Description) > 2000 {
			errs.Add("description", apperr.TooLong, "a description is at most 2000 characters")
		}
	}
	if in.Enabled != nil {
		a.Enabled = *in.Enabled
	}
	if in.Definition == nil {
		return
	}
	n := len(*errs)
	validate(errs, "definition", in.Definition)
	if len(*errs) > n {
		return
	}
	if err := s.checkRefs(ctx, tx, errs, a, in.Definition); err != nil {
		errs.Add("definition", apperr.InvalidValue, "the audiences it names could not be read")
		return
	}
	b, _ := json.Marshal(in.Definition)
	a.DefinitionRaw = string(b)
	a.Windowed = windowed(in.Definition)
}

// checkRefs checks that the audiences a definition names are audiences of the workspace, and
// that following them never leads back to a (no cycles).
func (s *Service) checkRefs(ctx context.Context, tx *db.Tx, errs *apperr.UserErrors, a *Audience, def *Condition) error {
	named := refs(def)
	if len(named) == 0 {
		return nil
	}
	var all []Audience
	if err := tx.Select(ctx, &all, `SELECT id, definition FROM audiences WHERE workspace_id = ? AND deleted_at IS NULL`, a.WorkspaceID); err != nil {
		return err
	}
	deps := map[string][]string{}
	for _, x := range all {
		if x.ID != a.ID {
			deps[x.ID] = refs(x.Definition())
		}
	}
	for _, r := range named {
		if r == a.ID {
			errs.Add("definition", apperr.InvalidValue, "an audience cannot be defined by its own membership")
			return nil
		}
		if _, ok := deps[r]; !ok {
			errs.Add("definition", apperr.InvalidValue, "audience %s is not an audience of this workspace", r)
			return nil
		}
	}
	// A cycle would come back to a through the audiences it names.
	seen := map[string]bool{}
	var leads func(string) bool
	leads = func(x string) bool {
		if x == a.ID {
			return true
		}
		if seen[x] {
			return false
		}
		seen[x] = true
		for _, y := range deps[x] {
			if leads(y) {
				return true
			}
		}
		return false
	}
	for _, r := range named {
		if leads(r) {
			errs.Add("definition", apperr.InvalidValue, "audience %s depends on this audience: membership conditions may not form a cycle", r)
			return nil
		}
	}
	return nil
}

// Update changes an audience; a changed definition is computed again over every profile. Owners
// and admins. The key stays: it names the audience at destinations.
func (s *Service) Update(ctx context.Context, audienceID string, in Input) (*Audience, apperr.UserErrors, error) {
	cur, err := s.mustGet(ctx, audienceID)
	if err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	var out *Audience
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		acc, err := s.writeAccess(ctx, &tx.Queryer, cur.WorkspaceID)
		if err != nil {
			return err
		}
		var rows []Audience
		if err := tx.Select(ctx, &rows, `SELECT * FROM audiences WHERE id = ? AND deleted_at IS NULL`, audienceID); err != nil {
			return err
		}
		if len(rows) == 0 {
			return errNotFound()
		}
		a := &rows[0]
		if in.Key != nil && strings.TrimSpace(*in.Key) != a.Key {
			errs.Add("key", apperr.NotAllowed, "an audience's key cannot change: destinations know the audience by it")
		}
		wasEnabled, before := a.Enabled, a.DefinitionRaw
		s.apply(ctx, tx, &errs, a, in)
		if len(errs) > 0 {
			return nil
		}
		recompute := a.DefinitionRaw != before || (a.Enabled && !wasEnabled)
		if recompute {
			a.Version++
			a.Status = Computing
		}
		user := acc.Viewer.User.ID
		a.UpdatedBy, a.UpdatedAt = &user, db.Time{Time: s.now()}
		if _, err := tx.Exec(ctx, `UPDATE audiences SET name = ?, description = ?, definition = ?, enabled = ?, windowed = ?, status = ?, version = ?,
			updated_by = ?, updated_at = ? WHERE id = ?`, a.Name, a.Description, a.DefinitionRaw, a.Enabled, a.Windowed, a.Status, a.Version,
			a.UpdatedBy, a.UpdatedAt, a.ID); err != nil {
			return err
		}
		out = a
		if recompute {
			tx.AfterCommit(func() { s.comp.recompute(a.WorkspaceID, a.ID) })
		}
		return nil
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return out, nil, nil
}

// Delete deletes an audience: it disappears at once, and its members, changes and sizes are
// drained in the background. An audience that others name in their definitions cannot be deleted.
func (s *Service) Delete(ctx context.Context, audienceID string) (apperr.UserErrors, error) {
	cur, err := s.mustGet(ctx, audienceID)
	if err != nil {
		return nil, err
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := s.writeAccess(ctx, &tx.Queryer, cur.WorkspaceID); err != nil {
			return err
		}
		var all []Audience
		if err := tx.Select(ctx, &all, `SELECT id, name, definition FROM audiences WHERE workspace_id = ? AND deleted_at IS NULL AND id <> ?`,
			cur.WorkspaceID, cur.ID); err != nil {
			return err
		}
		for _, x := range all {
			for _, r := range refs(x.Definition()) {
				if r == cur.ID {
					errs.Add("id", apperr.NotAllowed, "audience %q is defined by this audience's membership: change it first", x.Name)
					return nil
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE audiences SET deleted_at = ? WHERE id = ?`, db.Time{Time: s.now()}, cur.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM audience_destinations WHERE audience_id = ?`, cur.ID)
		tx.AfterCommit(s.comp.wakeUp)
		return err
	})
	return errs, err
}

// MembersIn is the subquery (and its arguments) of the ids of an audience's members, for
// workspace.profiles(filter: {audienceId}); NOT_FOUND when the viewer does not see the audience
// in the workspace.
func (s *Service) MembersIn(ctx context.Context, workspaceID, audienceID string) (*engage.Subquery, error) {
	a, err := s.Get(ctx, audienceID)
	if err != nil {
		return nil, err
	}
	if a == nil || a.WorkspaceID != workspaceID {
		return nil, apperr.NotFoundf("audience not found")
	}
	return &engage.Subquery{SQL: `SELECT am.profile_id FROM audience_members am WHERE am.audience_id = ?`, Args: []any{audienceID}}, nil
}

// Members pages through an audience's members, most recently entered first.
func (s *Service) Members(ctx context.Context, a *Audience, args relay.Args, count bool) (relay.Page[Member], error) {
	if _, err := s.readAccess(ctx, a.WorkspaceID); err != nil {
		return relay.Page[Member]{}, err
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Member]{
		Select: "SELECT am.audience_id, am.entered_at, p.* FROM audience_members am JOIN profiles p ON p.id = am.profile_id",
		Where:  "am.audience_id = ? AND am.workspace_id = ? AND p.workspace_id = ?", Args: []any{a.ID, a.WorkspaceID, a.WorkspaceID},
		SortColumn: "am.entered_at", IDColumn: "am.profile_id", Desc: true, Count: count,
		ID: func(m Member) string { return m.ID }, SortKey: func(m Member) any { return m.EnteredAt },
	}, args)
}

// maxHistory bounds the points sizeHistory answers.
const maxHistory = 1000

// SizeHistory returns an audience's size at the end of each minute it changed since since (all
// when nil), oldest first, at most the last 1000 points.
func (s *Service) SizeHistory(ctx context.Context, a *Audience, since *time.Time) ([]SizePoint, error) {
	if _, err := s.readAccess(ctx, a.WorkspaceID); err != nil {
		return nil, err
	}
	from := db.Time{}
	if since != nil {
		from = db.Time{Time: *since}
	}
	var out []SizePoint
	if err := s.db.Select(ctx, &out, `SELECT at, size FROM audience_sizes WHERE audience_id = ? AND at >= ? ORDER BY at DESC LIMIT ?`,
		a.ID, from, maxHistory); err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// DestinationsByAudience loads the destinations audiences of the workspace of acc are connected
// to, oldest connection first, for dataloaders (nothing for viewers who may not read audiences).
func (s *Service) DestinationsByAudience(ctx context.Context, acc *workspace.Access, audienceIDs []string) (map[string][]Destination, error) {
	out := map[string][]Destination{}
	if !acc.CanReadAll() || engage.RequirePlan(ctx, s.db.Reader(), acc.WorkspaceID) != nil {
		return out, nil
	}
	var rows []Destination
	if err := s.db.Select(ctx, &rows, `SELECT * FROM audience_destinations WHERE audience_id IN (`+db.Placeholders(len(audienceIDs))+`)
		AND workspace_id = ? ORDER BY created_at, destination_id`, append(db.Args(audienceIDs), acc.WorkspaceID)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.AudienceID] = append(out[r.AudienceID], r)
	}
	return out, nil
}

// ProfileAudience is an audience a profile is in, since when.
type ProfileAudience struct {
	Audience  Audience
	EnteredAt db.Time
}

// ByProfile loads the audiences of standing profiles the viewer sees in the workspace of acc,
// most recently entered first, for dataloaders.
func (s *Service) ByProfile(ctx context.Context, acc *workspace.Access, profileIDs []string) (map[string][]ProfileAudience, error) {
	out := map[string][]ProfileAudience{}
	if !acc.CanReadAll() {
		return out, nil
	}
	if err := engage.RequirePlan(ctx, s.db.Reader(), acc.WorkspaceID); err != nil {
		return out, nil
	}
	where, args := audienceWhere(acc)
	rows, err := s.db.Reader().QueryxContext(ctx, `SELECT am.profile_id, am.entered_at, a.* FROM audience_members am JOIN audiences a ON a.id = am.audience_id
		WHERE am.profile_id IN (`+db.Placeholders(len(profileIDs))+`) AND am.workspace_id = ? AND `+where+` ORDER BY am.entered_at DESC, a.id`,
		append(append(db.Args(profileIDs), acc.WorkspaceID), args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r struct {
			ProfileID string  `db:"profile_id"`
			EnteredAt db.Time `db:"entered_at"`
			Audience
		}
		if err := rows.StructScan(&r); err != nil {
			return nil, err
		}
		out[r.ProfileID] = append(out[r.ProfileID], ProfileAudience{Audience: r.Audience, EnteredAt: r.EnteredAt})
	}
	return out, rows.Err()
}
