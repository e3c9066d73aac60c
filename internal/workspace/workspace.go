// Package workspace owns workspaces, their members, roles and resource grants, invitations,
// plans and access tokens, and decides what a viewer may do in a workspace (Access). Every other
// domain asks it before touching a workspace's data. A workspace the viewer is not in is NOT_FOUND,
// exactly like one that does not exist.
package workspace

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
)

// Id prefixes of this package's objects.
const (
	Prefix           = "ws"
	MembershipPrefix = "mem"
	GrantPrefix      = "grt"
	InvitationPrefix = "inv"
)

// Audit event types of this package.
const (
	EventWorkspaceCreated   audit.Type = "WORKSPACE_CREATED"
	EventWorkspaceUpdated   audit.Type = "WORKSPACE_UPDATED"
	EventPlanChanged        audit.Type = "PLAN_CHANGED"
	EventMemberInvited      audit.Type = "MEMBER_INVITED"
	EventInvitationAccepted audit.Type = "INVITATION_ACCEPTED"
	EventInvitationDeclined audit.Type = "INVITATION_DECLINED"
	EventInvitationRevoked  audit.Type = "INVITATION_REVOKED"
	EventMemberRoleChanged  audit.Type = "MEMBER_ROLE_CHANGED"
	EventMemberRemoved      audit.Type = "MEMBER_REMOVED"
	EventMemberLeft         audit.Type = "MEMBER_LEFT"
	EventGrantAdded         audit.Type = "GRANT_ADDED"
	EventGrantRemoved       audit.Type = "GRANT_REMOVED"
	EventTokenCreated       audit.Type = "ACCESS_TOKEN_CREATED"
	EventTokenRevoked       audit.Type = "ACCESS_TOKEN_REVOKED"
)

// Workspace is one workspace.
type Workspace struct {
	ID        string  `db:"id"`
	Name      string  `db:"name"`
	Slug      string  `db:"slug"`
	Plan      Plan    `db:"plan"`
	CreatedAt db.Time `db:"created_at"`
	UpdatedAt db.Time `db:"updated_at"`
	// DeletedAt is set once the workspace is deleted: nobody reaches it any more, and internal/reap
	// deletes what it holds.
	DeletedAt *db.Time `db:"deleted_at"`
}

// Service owns this package's data.
type Service struct {
	db     *db.DB
	auth   *auth.Service
	mail   *mail.Mailer // mails invitations, when it has an SMTP server; builds their links
	epochs sync.Map     // workspace id -> *atomic.Uint64: bumped when anyone's rights in it change
	// allEpochs moves every workspace's epoch at once (EveryEpochMoved).
	allEpochs atomic.Uint64
	// OnRightsChanged, when set, hears each workspace whose epoch moved here, after the commit:
	// other replicas move theirs (EpochMoved).
	OnRightsChanged func(workspaceID string)
	// OnDelete, when set, is called after a workspace's deletion commits (the tracking API drops
	// the write keys it cached).
	OnDelete func(workspaceID string)
	// OnPlanChanged, when set, is called after a change of a workspace's plan commits (Engage
	// follows the workspaces on BUSINESS at once rather than at its next look).
	OnPlanChanged func(workspaceID string)
	// Sources tells whether a source belongs to a workspace, for grants on one source. The source
	// package, which depends on this one, sets it when it is made.
	Sources SourceLookup
	// Retention is the server's retention of each kind of data, which workspace settings may
	// shorten; the server sets it.
	Retention ServerRetention
}

// SourceLookup finds sources, which the source package owns.
type SourceLookup interface {
	// InWorkspace tells whether sourceID is a source of workspaceID.
	InWorkspace(ctx context.Context, q *db.Queryer, workspaceID, sourceID string) (bool, error)
}

// New returns the service.
func New(d *db.DB, a *auth.Service, m *mail.Mailer) *Service {
	return &Service{db: d, auth: a, mail: m}
}

// Epoch is a number that changes whenever someone's rights in the workspace change (roles,
// grants, removals, revoked tokens, deletion). Long-lived subscriptions keep the Access they were
// authorised with and load it again only when the epoch moved: every message is authorised
// without a query per subscriber.
func (s *Service) Epoch(workspaceID string) uint64 {
	all := s.allEpochs.Load()
	if v, ok := s.epochs.Load(workspaceID); ok {
		return all + v.(*atomic.Uint64).Load()
	}
	return all // nothing changed since start; reading stores nothing, so any id may be asked
}

// rightsChanged moves the workspace's epoch once tx commits.
func (s *Service) rightsChanged(tx *db.Tx, workspaceID string) {
	tx.AfterCommit(func() {
		s.EpochMoved(workspaceID)
		if s.OnRightsChanged != nil {
			s.OnRightsChanged(workspaceID)
		}
	})
}

// EpochMoved moves a workspace's epoch in this process: rights changed through another replica.
func (s *Service) EpochMoved(workspaceID string) {
	v, _ := s.epochs.LoadOrStore(workspaceID, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// EveryEpochMoved moves every workspace's epoch: changes of rights may have been missed (a
// replica lost its connection to the others), so every subscription loads its rights again.
func (s *Service) EveryEpochMoved() { s.allEpochs.Add(1) }

var slugPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)

func validateSlug(errs *apperr.UserErrors, slug string) {
	switch {
	case slug == "":
		errs.Add("slug", apperr.Required, "slug is required")
	case len(slug) > 40:
		errs.Add("slug", apperr.TooLong, "slug must be at most 40 characters, got %d", len(slug))
	case len(slug) < 3:
		errs.Add("slug", apperr.TooShort, "slug must be at least 3 characters, got %d", len(slug))
	case !slugPattern.MatchString(slug) || strings.Contains(slug, "--"):
		errs.Add("slug", apperr.InvalidValue, "slug must be lower-case letters, digits and single dashes, starting with a letter and not ending with a dash")
	}
}

// slugTaken tells whether another workspace than exceptID uses slug.
func slugTaken(ctx context.Context, tx *db.Tx, slug, exceptID string) (bool, error) {
	var n int
	err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM workspaces WHERE slug = ? AND id <> ?`, slug, exceptID)
	return n > 0, err
}

// Create makes a workspace on the FREE plan, with the viewer (who must use a session) as owner.
func (s *Service) Create(ctx context.Context, name, slug string) (*Workspace, apperr.UserErrors, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, nil, err
	}
	name, slug = strings.TrimSpace(name), strings.TrimSpace(slug)
	var errs apperr.UserErrors
	auth.ValidateName(&errs, "name", name)
	validateSlug(&errs, slug)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	now := db.Now()
	w := &Workspace{ID: id.New(Prefix), Name: name, Slug: slug, Plan: Free, CreatedAt: now, UpdatedAt: now}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if taken, err := slugTaken(ctx, tx, slug, ""); err != nil || taken {
			if taken {
				errs.Add("slug", apperr.Taken, "slug %q is taken: choose another", slug)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			w.ID, w.Name, w.Slug, w.Plan, w.CreatedAt, w.UpdatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO memberships (id, workspace_id, user_id, role, role_rank, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id.New(MembershipPrefix), w.ID, v.User.ID, auth.Owner, auth.Owner.Rank(), now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, w.ID, EventWorkspaceCreated, "Workspace", w.ID, map[string]any{"name": w.Name, "slug": w.Slug, "plan": w.Plan})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return w, nil, nil
}

// Get returns a workspace of the viewer, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, workspaceID string) (*Workspace, error) {
	if _, err := s.Access(ctx, workspaceID); err != nil {
		return nil, err
	}
	var w Workspace
	if err := s.db.Get(ctx, &w, `SELECT * FROM workspaces WHERE id = ?`, workspaceID); err != nil {
		if db.IsNoRows(err) {
			return nil, errNotFound()
		}
		return nil, err
	}
	return &w, nil
}

// BySlug returns the viewer's workspace with that slug, or nil.
func (s *Service) BySlug(ctx context.Context, slug string) (*Workspace, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, err
	}
	var wsID string
	err := s.db.Get(ctx, &wsID, `SELECT id FROM workspaces WHERE slug = ?`, slug)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	w, err := s.Get(ctx, wsID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return w, err
}

// ListForViewer pages through the viewer's workspaces by name (a token sees only its own).
func (s *Service) ListForViewer(ctx context.Context, args relay.Args, count bool) (relay.Page[Workspace], error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return relay.Page[Workspace]{}, err
	}
	where, qargs := "w.id IN (SELECT workspace_id FROM memberships WHERE user_id = ?)", []any{v.User.ID}
	if v.Token != nil {
		where += " AND w.id = ?"
		qargs = append(qargs, v.Token.WorkspaceID)
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Workspace]{
		Select: "SELECT w.* FROM workspaces w", Where: where, Args: qargs,
		SortColumn: "w.name", IDColumn: "w.id", Count: count,
		ID: func(w Workspace) string { return w.ID }, SortKey: func(w Workspace) any { return w.Name },
	}, args)
}

// Update renames a workspace or changes its slug; owners and admins.
func (s *Service) Update(ctx context.Context, workspaceID string, name, slug *string) (*Workspace, apperr.UserErrors, error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanUpdateWorkspace() {
		return nil, nil, errForbidden("change the workspace's settings")
	}
	var errs apperr.UserErrors
	if name != nil {
		*name = strings.TrimSpace(*name)
		auth.ValidateName(&errs, "name", *name)
	}
	if slug != nil {
		*slug = strings.TrimSpace(*slug)
		validateSlug(&errs, *slug)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	var w Workspace
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Get(ctx, &w, `SELECT * FROM workspaces WHERE id = ?`, workspaceID); err != nil {
			return err
		}
		changes := map[string]audit.Change{}
		if name != nil && *name != w.Name {
			changes["name"] = audit.Change{From: w.Name, To: *name}
			w.Name = *name
		}
		if slug != nil && *slug != w.Slug {
			if taken, err := slugTaken(ctx, tx, *slug, w.ID); err != nil || taken {
				if taken {
					errs.Add("slug", apperr.Taken, "slug %q is taken: choose another", *slug)
				}
				return err
			}
			changes["slug"] = audit.Change{From: w.Slug, To: *slug}
			w.Slug = *slug
		}
		if len(changes) == 0 {
			return nil
		}
		w.UpdatedAt = db.Now()
		if _, err := tx.Exec(ctx, `UPDATE workspaces SET name = ?, slug = ?, updated_at = ? WHERE id = ?`, w.Name, w.Slug, w.UpdatedAt, w.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, w.ID, EventWorkspaceUpdated, "Workspace", w.ID, changes)
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return &w, nil, nil
}

// Delete removes a workspace and everything in it; owners, confirming with the slug. Every access
// token of the workspace stops working, websockets included.
func (s *Service) Delete(ctx context.Context, workspaceID, confirmSlug string) (apperr.UserErrors, error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanDeleteWorkspace() {
		return nil, errForbidden("delete the workspace")
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var slug string
		if err := tx.Get(ctx, &slug, `SELECT slug FROM workspaces WHERE id = ?`, workspaceID); err != nil {
			return err
		}
		if strings.TrimSpace(confirmSlug) != slug {
			errs.Add("confirmSlug", apperr.InvalidValue, "confirmSlug must be the workspace's slug, %q, to confirm the deletion", slug)
			return nil
		}
		if _, err := s.auth.RevokeTokens(ctx, tx, "workspace_id = ?", workspaceID); err != nil {
			return err
		}
		if s.OnDelete != nil {
			tx.AfterCommit(func() { s.OnDelete(workspaceID) })
		}
		s.rightsChanged(tx, workspaceID)
		// What reaches the workspace goes now, in this transaction: its people, so nobody sees it;
		// its sources' write keys and connections, so no event comes in or goes out; its slug, so
		// that it can be used again. What it holds is reaped in the background (internal/reap).
		now := db.Now()
		for _, q := range []string{
			`DELETE FROM memberships WHERE workspace_id = ?`,
			`DELETE FROM invitations WHERE workspace_id = ?`,
			`DELETE FROM write_keys WHERE workspace_id = ?`,
			`DELETE FROM connections WHERE workspace_id = ?`,
		} {
			if _, err := tx.Exec(ctx, q, workspaceID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE sources SET deleted_at = ?, enabled = FALSE WHERE workspace_id = ? AND deleted_at IS NULL`, now, workspaceID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE destinations SET enabled = FALSE WHERE workspace_id = ?`, workspaceID); err != nil {
			return err
		}
		// Whoever deleted it watches its data go (workspaceDeletions).
		if _, err := tx.Exec(ctx, `INSERT INTO workspace_deletions (workspace_id, name, deleted_by, deleted_at)
			SELECT id, name, ?, ? FROM workspaces WHERE id = ?`, a.Viewer.User.ID, now, workspaceID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE workspaces SET deleted_at = ?, slug = id WHERE id = ?`, now, workspaceID)
		return err
	})
	return errs, err
}

// DeletedIDs lists the workspaces deleted and not yet reaped, for internal/reap.
func (s *Service) DeletedIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.Select(ctx, &ids, `SELECT id FROM workspaces WHERE deleted_at IS NOT NULL ORDER BY id`)
	return ids, err
}

// ReapStep is the last step of reaping a workspace: its row, and with it what still points at it
// (destinations, tokens and the like, which are few).
var ReapStep = reap.Step{Name: "workspace", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
	var left int
	if err := tx.Get(ctx, &left, `SELECT COUNT(*) FROM sources WHERE workspace_id = ?`, workspaceID); err != nil || left > 0 {
		return 0, err // its sources are reaped first
	}
	res, err := tx.Exec(ctx, `DELETE FROM workspaces WHERE id = ? AND deleted_at IS NOT NULL`, workspaceID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}}

// SetPlan changes the plan; owners.
func (s *Service) SetPlan(ctx context.Context, workspaceID string, plan Plan) (*Workspace, apperr.UserErrors, error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanChangePlan() {
		return nil, nil, errForbidden("change the plan")
	}
	var errs apperr.UserErrors
	if !plan.Valid() {
		errs.Add("plan", apperr.InvalidValue, "plan must be FREE, TEAM or BUSINESS")
		return nil, errs, nil
	}
	var w Workspace
	changed := false
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Get(ctx, &w, `SELECT * FROM workspaces WHERE id = ?`, workspaceID); err != nil {
			return err
		}
		if w.Plan == plan {
			return nil
		}
		changed = true
		from := w.Plan
		w.Plan, w.UpdatedAt = plan, db.Now()
		if _, err := tx.Exec(ctx, `UPDATE workspaces SET plan = ?, updated_at = ? WHERE id = ?`, w.Plan, w.UpdatedAt, w.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, w.ID, EventPlanChanged, "Workspace", w.ID, map[string]audit.Change{"plan": {From: from, To: plan}})
	})
	if err != nil {
		return nil, nil, err
	}
	if changed && s.OnPlanChanged != nil {
		s.OnPlanChanged(w.ID)
	}
	return &w, nil, nil
}

// InternalByIDs loads workspaces by id without any viewer, for the live publisher's usage figures;
// never for the API.
func (s *Service) InternalByIDs(ctx context.Context, ids []string) (map[string]Workspace, error) {
	var rows []Workspace
	if err := s.db.Select(ctx, &rows, `SELECT * FROM workspaces WHERE id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...); err != nil {
		return nil, err
	}
	out := make(map[string]Workspace, len(rows))
	for _, w := range rows {
		out[w.ID] = w
	}
	return out, nil
}

// AuditEvents pages through the audit trail; owners and admins.
func (s *Service) AuditEvents(ctx context.Context, workspaceID string, f audit.Filter, args relay.Args, count bool) (relay.Page[audit.Event], error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[audit.Event]{}, err
	}
	if !a.CanAdminister() {
		return relay.Page[audit.Event]{}, errForbidden("read the audit trail")
	}
	return audit.List(ctx, s.db, workspaceID, f, args, count)
}

// AuditEvent returns one event if the viewer may read the audit trail of its workspace (nil otherwise).
func (s *Service) AuditEvent(ctx context.Context, eventID string) (*audit.Event, error) {
	a, err := s.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM audit_events WHERE id = ?`, eventID)
	if err != nil || !a.CanAdminister() {
		return nil, visibleOrNil(err)
	}
	return audit.ByID(ctx, s.db, a.WorkspaceID, eventID)
}
