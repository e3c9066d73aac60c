package workspace

import (
	"context"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/relay"
)

// CreateToken makes an access token for the workspace with at most the creator's role. Only a person
// (session) may; not MINIMAL members, whose rights are their grants.
func (s *Service) CreateToken(ctx context.Context, workspaceID, name string, role auth.Role, expiresAt *time.Time) (*auth.Token, string, apperr.UserErrors, error) {
	if _, err := auth.RequireSession(ctx); err != nil {
		return nil, "", nil, err
	}
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, "", nil, err
	}
	if !a.CanReadAll() {
		return nil, "", nil, errForbidden("create access tokens")
	}
	name = strings.TrimSpace(name)
	var errs apperr.UserErrors
	auth.ValidateName(&errs, "name", name)
	switch {
	case !role.Valid():
		errs.Add("role", apperr.InvalidValue, "role must be OWNER, ADMIN, MEMBER or MINIMAL")
	case !a.Role.AtLeast(role):
		errs.Add("role", apperr.NotAllowed, "a token cannot have more rights than you: your role is %s", a.Role)
	}
	if expiresAt != nil && !expiresAt.After(time.Now()) {
		errs.Add("expiresAt", apperr.InvalidValue, "expiresAt must be in the future")
	}
	if len(errs) > 0 {
		return nil, "", errs, nil
	}
	var tok auth.Token
	var secret string
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		tok, secret, err = s.auth.CreateToken(ctx, tx, workspaceID, name, role, a.Viewer.User.ID, expiresAt)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventTokenCreated, "AccessToken", tok.ID, map[string]any{"name": name, "role": role, "expiresAt": tok.ExpiresAt})
	})
	if err != nil {
		return nil, "", nil, err
	}
	return &tok, secret, nil, nil
}

// CanRevokeToken tells whether the viewer may revoke t: owners and admins, and its creator in
// person (a read-only token cannot revoke its creator's other tokens).
func (a *Access) CanRevokeToken(t auth.Token) bool {
	return a.CanAdminister() || (t.CreatedBy == a.Viewer.User.ID && a.Viewer.Token == nil)
}

// tokensWhere is the condition (on access_tokens) for the tokens the viewer sees in a workspace
// with access a: owners and admins all of them, others their own.
func tokensWhere(a *Access) (string, []any) {
	if a.CanAdminister() {
		return "access_tokens.workspace_id = ?", []any{a.WorkspaceID}
	}
	return "access_tokens.workspace_id = ? AND access_tokens.created_by = ?", []any{a.WorkspaceID, a.Viewer.User.ID}
}

// TokensByIDs loads the tokens with the given ids that the viewer sees in the workspace of a,
// for dataloaders.
func (s *Service) TokensByIDs(ctx context.Context, a *Access, ids []string) (map[string]auth.Token, error) {
	where, args := tokensWhere(a)
	return s.auth.TokensWhere(ctx, "access_tokens.id IN ("+db.Placeholders(len(ids))+") AND "+where, append(db.Args(ids), args...)...)
}

// Token returns a token the viewer may see: owners and admins see all of their workspace, others
// their own (nil otherwise).
func (s *Service) Token(ctx context.Context, tokenID string) (*auth.Token, error) {
	a, err := s.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM access_tokens WHERE id = ?`, tokenID)
	if err != nil {
		return nil, visibleOrNil(err)
	}
	m, err := s.TokensByIDs(ctx, a, []string{tokenID})
	if err != nil {
		return nil, err
	}
	if t, ok := m[tokenID]; ok {
		return &t, nil
	}
	return nil, nil
}

// RevokeToken revokes a token at once, websockets included.
func (s *Service) RevokeToken(ctx context.Context, tokenID string) (*auth.Token, apperr.UserErrors, error) {
	t, err := s.Token(ctx, tokenID)
	if err != nil {
		return nil, nil, err
	}
	if t == nil {
		return nil, nil, apperr.NotFoundf("access token not found")
	}
	a, err := s.Access(ctx, t.WorkspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanRevokeToken(*t) {
		return nil, nil, errForbidden("revoke this access token")
	}
	var errs apperr.UserErrors
	if t.RevokedAt != nil {
		errs.Add("accessTokenId", apperr.NotAllowed, "the access token is already revoked")
		return nil, errs, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		ids, err := s.auth.RevokeTokens(ctx, tx, "id = ?", t.ID)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			errs.Add("accessTokenId", apperr.NotAllowed, "the access token is already revoked")
			return nil
		}
		s.rightsChanged(tx, t.WorkspaceID)
		return audit.Record(ctx, tx, t.WorkspaceID, EventTokenRevoked, "AccessToken", t.ID, map[string]any{"name": t.Name})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	now := db.Now()
	t.RevokedAt = &now
	return t, nil, nil
}

// Tokens pages through a workspace's tokens, newest first: all for owners and admins, else the
// viewer's own.
func (s *Service) Tokens(ctx context.Context, workspaceID string, args relay.Args, count bool) (relay.Page[auth.Token], error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[auth.Token]{}, err
	}
	where, qargs := tokensWhere(a)
	return relay.Query(ctx, s.db.Reader(), relay.Spec[auth.Token]{
		Select: "SELECT " + auth.TokenColumns("access_tokens") + " FROM access_tokens", Where: where, Args: qargs,
		SortColumn: "access_tokens.id", IDColumn: "access_tokens.id", Desc: true, Count: count,
		ID: func(t auth.Token) string { return t.ID }, SortKey: func(t auth.Token) any { return t.ID },
	}, args)
}
