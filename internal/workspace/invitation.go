package workspace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/relay"
)

// Invitations. An invitation is accepted with its secret: a random value shown once to the
// inviter (and mailed to the invitee when the server sends mail), stored only as a hash. Whoever
// holds it may accept or decline. An address proves nothing until its owner followed a link mailed
// to it: only then do they see the invitations to it and may answer them by id.

// InvitationStatus is where an invitation stands.
type InvitationStatus string

const (
	Pending  InvitationStatus = "PENDING"
	Accepted InvitationStatus = "ACCEPTED"
	Declined InvitationStatus = "DECLINED"
	Revoked  InvitationStatus = "REVOKED"
	Expired  InvitationStatus = "EXPIRED"
)

// Invitation is an offer to join a workspace.
type Invitation struct {
	ID            string           `db:"id"`
	WorkspaceID   string           `db:"workspace_id"`
	WorkspaceName string           `db:"workspace_name"`
	Email         string           `db:"email"`
	Role          auth.Role        `db:"role"`
	Status        InvitationStatus `db:"status"`
	InvitedBy     *string          `db:"invited_by"`
	CreatedAt     db.Time          `db:"created_at"`
	ExpiresAt     db.Time          `db:"expires_at"`
	RespondedAt   *db.Time         `db:"responded_at"`
	// ByToken is set when the viewer loaded the invitation with its secret, which lets them answer it.
	ByToken bool `db:"-"`
	// Inviter is who sent it, read along with it when it was loaded by its secret: the secret is
	// what entitles the holder to see them.
	Inviter *auth.User `db:"-"`
}

// EffectiveStatus is Expired for a pending invitation past its expiry.
func (i Invitation) EffectiveStatus() InvitationStatus {
	if i.Status == Pending && !i.ExpiresAt.After(time.Now()) {
		return Expired
	}
	return i.Status
}

// CanBeAnsweredBy tells whether v may accept or decline the invitation now: a person (not an
// access token), while it is pending, who loaded it with its secret or whose verified address it
// was sent to.
func (i Invitation) CanBeAnsweredBy(v *auth.Viewer) bool {
	return v != nil && v.Token == nil && i.EffectiveStatus() == Pending && (i.ByToken || addressedTo(i, v))
}

// addressedTo tells whether the invitation went to v's address and v proved it is theirs.
func addressedTo(i Invitation, v *auth.Viewer) bool {
	return v.Token == nil && v.User.EmailVerified() && i.Email == v.User.Email
}

// invitationTTL is how long an invitation can be accepted.
const invitationTTL = 14 * 24 * time.Hour

// LinkInvitation is the fragment key of invitation links ("https://host/#invitation=jci_…").
const LinkInvitation = "invitation"

// invitationSelect reads invitations with their workspace's name, never the secret's hash.
const invitationSelect = `SELECT i.id, i.workspace_id, i.email, i.role, i.status, i.invited_by, i.created_at, i.expires_at,
	i.responded_at, w.name AS workspace_name FROM invitations i JOIN workspaces w ON w.id = i.workspace_id`

// NewInvitation is a new invitation and what is shown of it once.
type NewInvitation struct {
	Invitation *Invitation
	Secret     string // accepts the invitation; never stored, never shown again
	AcceptURL  string // the link with Secret
	EmailSent  bool   // the mail server took a message with the link to the invitee
}

// Invite sends an invitation; owners. The secret that accepts it is returned once; with a mail
// server it is also mailed to the address.
func (s *Service) Invite(ctx context.Context, workspaceID, email string, role auth.Role) (*NewInvitation, apperr.UserErrors, error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanManageMembers() {
		return nil, nil, errForbidden("invite members")
	}
	email = auth.NormaliseEmail(email)
	var errs apperr.UserErrors
	auth.ValidateEmail(&errs, "email", email)
	if !role.Valid() {
		errs.Add("role", apperr.InvalidValue, "role must be OWNER, ADMIN, MEMBER or MINIMAL")
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	secret, hash := auth.NewSecret(auth.InvitationSecretPrefix)
	var inv *Invitation
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? AND u.email = ?`, workspaceID, email); err != nil {
			return err
		}
		if n > 0 {
			errs.Add("email", apperr.Taken, "%s is already a member of this workspace", email)
			return nil
		}
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM invitations WHERE workspace_id = ? AND email = ? AND status = ? AND expires_at > ?`,
			workspaceID, email, Pending, db.Now()); err != nil {
			return err
		}
		if n > 0 {
			errs.Add("email", apperr.Taken, "%s already has a pending invitation to this workspace: revoke it to send another", email)
			return nil
		}
		now := db.Now()
		inviter := a.Viewer.User.ID
		newID := id.New(InvitationPrefix)
		if _, err := tx.Exec(ctx, `INSERT INTO invitations (id, workspace_id, email, role, status, invited_by, token_hash, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, newID, workspaceID, email, role, Pending, inviter, hash, now, db.Time{Time: now.Add(invitationTTL)}); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, workspaceID, EventMemberInvited, "Invitation", newID, map[string]any{"email": email, "role": role}); err != nil {
			return err
		}
		inv = &Invitation{}
		return tx.Get(ctx, inv, invitationSelect+` WHERE i.id = ?`, newID)
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	out := &NewInvitation{Invitation: inv, Secret: secret, AcceptURL: s.mail.Link(LinkInvitation, secret)}
	if s.mail.Enabled() {
		out.EmailSent = s.mailInvitation(ctx, inv, a.Viewer.User, out.AcceptURL)
	}
	return out, nil, nil
}

// mailInvitation mails the invitee the link; it tells whether the mail server took the message.
// A failure is logged without the message, whose link is a secret.
func (s *Service) mailInvitation(ctx context.Context, inv *Invitation, inviter auth.User, link string) bool {
	text := fmt.Sprintf("Hello,\n\n%s (%s) invited you to join the workspace “%s” on Junction as %s.\n\n"+
		"Follow this link to accept, once logged in (or signed up) with any address:\n\n%s\n\n"+
		"The invitation expires on %s. Whoever has this link may accept it: do not forward it. "+
		"If you did not expect it, ignore this message or decline the invitation from the link.\n",
		inviter.Name, inviter.Email, inv.WorkspaceName, strings.ToLower(string(inv.Role)), link,
		inv.ExpiresAt.UTC().Format("2 January 2006 at 15:04 UTC"))
	err := s.mail.Send(ctx, mail.Message{To: inv.Email, Subject: fmt.Sprintf("%s invited you to %s on Junction", inviter.Name, inv.WorkspaceName), Text: text})
	if err != nil {
		obs.Logger(ctx).Warn("mail not sent", "kind", "invitation", "invitation", inv.ID, "error", err.Error())
		return false
	}
	return true
}

// Invitation returns an invitation the viewer may see: the workspace's owners and admins, and the
// invitee once their address is verified (nil otherwise).
func (s *Service) Invitation(ctx context.Context, invitationID string) (*Invitation, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	// Visible to whom it is addressed (a verified address, in person) and to the workspace's owners
	// and admins: decided in the query.
	where, args := "FALSE", []any{}
	if v.Token == nil && v.User.EmailVerified() {
		where, args = "i.email = ?", []any{v.User.Email}
	}
	a, err := s.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM invitations WHERE id = ?`, invitationID)
	switch {
	case err == nil && a.CanAdminister():
		where, args = "("+where+" OR i.workspace_id = ?)", append(args, a.WorkspaceID)
	case err != nil && apperr.CodeOf(err) != apperr.NotFound:
		return nil, err
	}
	var inv Invitation
	err = s.db.Get(ctx, &inv, invitationSelect+` WHERE i.id = ? AND `+where, append([]any{invitationID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &inv, nil
}

// InvitationByToken returns the invitation a secret belongs to, whatever its status, so that a page
// can show what a link offers before it is answered; nil for an unknown secret. Sessions only.
func (s *Service) InvitationByToken(ctx context.Context, token string) (*Invitation, error) {
	if _, err := auth.RequireSession(ctx); err != nil {
		return nil, err
	}
	var inv Invitation
	err := s.db.Get(ctx, &inv, invitationSelect+` WHERE i.token_hash = ?`, auth.HashSecret(strings.TrimSpace(token)))
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	inv.ByToken = true
	if inv.InvitedBy != nil {
		users, err := s.auth.UsersWhere(ctx, []string{*inv.InvitedBy}, "TRUE")
		if err != nil {
			return nil, err
		}
		if u, ok := users[*inv.InvitedBy]; ok {
			inv.Inviter = &u
		}
	}
	return &inv, nil
}

// ViewerInvitations lists the pending, unexpired invitations to the viewer's address, once it is
// verified: until then nothing proves the address is theirs, and the list is empty.
func (s *Service) ViewerInvitations(ctx context.Context) ([]Invitation, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	out := []Invitation{}
	if v.Token != nil || !v.User.EmailVerified() {
		return out, nil
	}
	err = s.db.Select(ctx, &out, invitationSelect+` WHERE i.email = ? AND i.status = ? AND i.expires_at > ? ORDER BY i.id DESC`,
		v.User.Email, Pending, db.Now())
	return out, err
}

// Invitations pages through a workspace's invitations, newest first; owners and admins.
func (s *Service) Invitations(ctx context.Context, workspaceID string, status *InvitationStatus, args relay.Args, count bool) (relay.Page[Invitation], error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Invitation]{}, err
	}
	if !a.CanAdminister() {
		return relay.Page[Invitation]{}, errForbidden("see invitations")
	}
	where, qargs := "i.workspace_id = ?", []any{workspaceID}
	if status != nil {
		switch *status {
		case Expired:
			where += " AND i.status = ? AND i.expires_at <= ?"
			qargs = append(qargs, Pending, db.Now())
		case Pending:
			where += " AND i.status = ? AND i.expires_at > ?"
			qargs = append(qargs, Pending, db.Now())
		default:
			where += " AND i.status = ?"
			qargs = append(qargs, *status)
		}
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Invitation]{
		Select: invitationSelect, Where: where, Args: qargs,
		SortColumn: "i.id", IDColumn: "i.id", Desc: true, Count: count,
		ID: func(i Invitation) string { return i.ID }, SortKey: func(i Invitation) any { return i.ID },
	}, args)
}

// Answer names the invitation a person accepts or declines: by its secret (Token), or by id when it
// went to their verified address. Exactly one is given.
type Answer struct {
	Token        *string
	InvitationID *string
}

// respond loads, within tx, the pending invitation v answers. By secret: an unknown one is a
// userError on token. By id: an invitation that did not go to v's verified address is NOT_FOUND,
// as one that never existed. One that is no longer pending is a userError.
func (s *Service) respond(ctx context.Context, tx *db.Tx, v *auth.Viewer, ans Answer, errs *apperr.UserErrors) (*Invitation, error) {
	field := "invitationId"
	var inv Invitation
	switch {
	case (ans.Token == nil) == (ans.InvitationID == nil):
		errs.Add("token", apperr.InvalidValue, "give exactly one of token (from the invitation's link) and invitationId")
		return nil, nil
	case ans.Token != nil:
		field = "token"
		err := tx.Get(ctx, &inv, invitationSelect+` WHERE i.token_hash = ?`, auth.HashSecret(strings.TrimSpace(*ans.Token)))
		if db.IsNoRows(err) {
			errs.Add("token", apperr.InvalidValue, "token is not an invitation's: copy the whole link the invitation came with")
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		inv.ByToken = true
	default:
		err := tx.Get(ctx, &inv, invitationSelect+` WHERE i.id = ?`, *ans.InvitationID)
		if db.IsNoRows(err) || (err == nil && !addressedTo(inv, v)) {
			return nil, apperr.NotFoundf("invitation not found")
		}
		if err != nil {
			return nil, err
		}
	}
	if st := inv.EffectiveStatus(); st != Pending {
		errs.Add(field, apperr.NotAllowed, "the invitation is %s, not pending", strings.ToLower(string(st)))
		return nil, nil
	}
	return &inv, nil
}

// Accept makes the viewer a member with the invitation's role; sessions only.
func (s *Service) Accept(ctx context.Context, ans Answer) (*Membership, *Workspace, apperr.UserErrors, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var errs apperr.UserErrors
	var m Membership
	var w Workspace
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		inv, err := s.respond(ctx, tx, v, ans, &errs)
		if err != nil || inv == nil {
			return err
		}
		now := db.Now()
		var existing int
		if err := tx.Get(ctx, &existing, `SELECT COUNT(*) FROM memberships WHERE workspace_id = ? AND user_id = ?`, inv.WorkspaceID, v.User.ID); err != nil {
			return err
		}
		if existing > 0 {
			field := "invitationId"
			if inv.ByToken {
				field = "token"
			}
			errs.Add(field, apperr.NotAllowed, "you are already a member of this workspace")
			return nil
		}
		if ok, err := answered(ctx, tx, inv, Accepted, now, &errs); err != nil || !ok {
			return err
		}
		m = Membership{ID: id.New(MembershipPrefix), WorkspaceID: inv.WorkspaceID, UserID: v.User.ID, Role: inv.Role, RoleRank: inv.Role.Rank(), CreatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO memberships (id, workspace_id, user_id, role, role_rank, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			m.ID, m.WorkspaceID, m.UserID, m.Role, m.RoleRank, m.CreatedAt); err != nil {
			return err
		}
		s.rightsChanged(tx, inv.WorkspaceID)
		if err := audit.Record(ctx, tx, inv.WorkspaceID, EventInvitationAccepted, "Membership", m.ID, map[string]any{"invitationId": inv.ID, "role": m.Role}); err != nil {
			return err
		}
		return tx.Get(ctx, &w, `SELECT * FROM workspaces WHERE id = ?`, inv.WorkspaceID)
	})
	if err != nil || len(errs) > 0 {
		return nil, nil, errs, err
	}
	return &m, &w, nil, nil
}

// answered moves a pending invitation to status (an answer, or its revocation) within tx. It adds a
// userError and returns false when the invitation stopped being pending meanwhile: of two
// concurrent requests, one wins.
func answered(ctx context.Context, tx *db.Tx, inv *Invitation, status InvitationStatus, at db.Time, errs *apperr.UserErrors) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE invitations SET status = ?, responded_at = ? WHERE id = ? AND status = ?`, status, at, inv.ID, Pending)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		field := "invitationId"
		if inv.ByToken {
			field = "token"
		}
		errs.Add(field, apperr.NotAllowed, "the invitation is no longer pending")
		return false, err
	}
	return true, nil
}

// Decline records the viewer's refusal; sessions only.
func (s *Service) Decline(ctx context.Context, ans Answer) (*Invitation, apperr.UserErrors, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	var out *Invitation
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		inv, err := s.respond(ctx, tx, v, ans, &errs)
		if err != nil || inv == nil {
			return err
		}
		now := db.Now()
		if ok, err := answered(ctx, tx, inv, Declined, now, &errs); err != nil || !ok {
			return err
		}
		inv.Status, inv.RespondedAt = Declined, &now
		out = inv
		return audit.Record(ctx, tx, inv.WorkspaceID, EventInvitationDeclined, "Invitation", inv.ID, nil)
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return out, nil, nil
}

// Revoke withdraws a pending invitation; owners. Its secret stops working.
func (s *Service) Revoke(ctx context.Context, invitationID string) (*Invitation, apperr.UserErrors, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, nil, err
	}
	var inv Invitation
	err := s.db.Get(ctx, &inv, invitationSelect+` WHERE i.id = ?`, invitationID)
	if db.IsNoRows(err) {
		return nil, nil, apperr.NotFoundf("invitation not found")
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := s.Access(ctx, inv.WorkspaceID)
	if err != nil {
		return nil, nil, hide(err, "invitation not found")
	}
	if !a.CanManageMembers() {
		return nil, nil, errForbidden("revoke invitations")
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Get(ctx, &inv, invitationSelect+` WHERE i.id = ?`, invitationID); err != nil {
			return err
		}
		if st := inv.EffectiveStatus(); st != Pending {
			errs.Add("invitationId", apperr.NotAllowed, "the invitation is %s, not pending", strings.ToLower(string(st)))
			return nil
		}
		if ok, err := answered(ctx, tx, &inv, Revoked, db.Now(), &errs); err != nil || !ok {
			return err
		}
		return audit.Record(ctx, tx, inv.WorkspaceID, EventInvitationRevoked, "Invitation", inv.ID, map[string]any{"email": inv.Email})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	inv.Status = Revoked
	return &inv, nil, nil
}
