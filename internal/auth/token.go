package auth

import (
	"context"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// CreateToken stores a new access token within tx and returns it with its secret, which is shown
// once and never stored. The caller has checked the creator's rights.
func (s *Service) CreateToken(ctx context.Context, tx *db.Tx, workspaceID, name string, role Role, createdBy string, expiresAt *time.Time) (Token, string, error) {
	secret, hash := newSecret(tokenPrefix)
	t := Token{ID: id.New(TokenPrefix), WorkspaceID: workspaceID, Name: name, Role: role, CreatedBy: createdBy, CreatedAt: db.Now()}
	if expiresAt != nil {
		t.ExpiresAt = &db.Time{Time: expiresAt.UTC().Truncate(time.Microsecond)}
	}
	_, err := tx.Exec(ctx, `INSERT INTO access_tokens (id, workspace_id, name, role, token_hash, created_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.WorkspaceID, t.Name, t.Role, hash, t.CreatedBy, t.CreatedAt, t.ExpiresAt)
	return t, secret, err
}

// RevokeTokens marks the live tokens matching where (a SQL condition on access_tokens) revoked
// within tx, and ends their websockets once tx commits. It returns the revoked tokens' ids.
func (s *Service) RevokeTokens(ctx context.Context, tx *db.Tx, where string, args ...any) ([]string, error) {
	var ids []string
	if err := tx.Select(ctx, &ids, `SELECT id FROM access_tokens WHERE revoked_at IS NULL AND (`+where+`)`, args...); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE access_tokens SET revoked_at = ? WHERE id IN (`+db.Placeholders(len(ids))+`)`,
		append([]any{db.Now()}, db.Args(ids)...)...); err != nil {
		return nil, err
	}
	tx.AfterCommit(func() { s.Revoked(ids...) })
	return ids, nil
}

// TokensWhere loads the tokens that meet where (a condition on access_tokens, with args), for
// the workspace package, which decides which tokens a viewer may see.
func (s *Service) TokensWhere(ctx context.Context, where string, args ...any) (map[string]Token, error) {
	var tokens []Token
	if err := s.db.Select(ctx, &tokens, `SELECT `+tokenColumns("access_tokens")+` FROM access_tokens WHERE `+where, args...); err != nil {
		return nil, err
	}
	out := make(map[string]Token, len(tokens))
	for _, t := range tokens {
		out[t.ID] = t
	}
	return out, nil
}

// tokenColumns lists the columns of Token (never the hash) qualified by table.
func tokenColumns(table string) string {
	cols := []string{"id", "workspace_id", "name", "role", "created_by", "created_at", "last_used_at", "expires_at", "revoked_at"}
	for i, c := range cols {
		cols[i] = table + "." + c
	}
	return strings.Join(cols, ", ")
}

// TokenColumns is tokenColumns for other packages' queries of access_tokens.
func TokenColumns(table string) string { return tokenColumns(table) }
