package privacy

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Masked replaces values of RED and YELLOW fields for viewers without PII access.
const Masked = "••••"

// accessCache remembers members' PII access for cacheTTL: payloads are shown by the page and by
// the live tail, each of which would otherwise ask once per event. Changes made here apply at once.
type accessCache struct {
	mu sync.Mutex
	m  map[string]accessEntry
}

type accessEntry struct {
	ok      bool
	expires time.Time
}

// PIIAccessByMemberships tells, for memberships of the workspace of a, whether each has PII
// access: as set, or by default owners only. For dataloaders.
func (s *Service) PIIAccessByMemberships(ctx context.Context, a *workspace.Access, ids []string) (map[string]bool, error) {
	var rows []struct {
		ID     string    `db:"id"`
		Role   auth.Role `db:"role"`
		Access *bool     `db:"pii_access"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT m.id, m.role, p.pii_access FROM memberships m LEFT JOIN privacy_access p ON p.membership_id = m.id
		WHERE m.workspace_id = ? AND m.id IN (`+db.Placeholders(len(ids))+`)`, append([]any{a.WorkspaceID}, db.Args(ids)...)...); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Role == auth.Owner
		if r.Access != nil {
			out[r.ID] = *r.Access
		}
	}
	return out, nil
}

// hasPIIAccess tells whether the viewer sees values of RED and YELLOW fields in the workspace of a.
func (s *Service) hasPIIAccess(ctx context.Context, a *workspace.Access) (bool, error) {
	now := time.Now()
	s.access.mu.Lock()
	e, ok := s.access.m[a.MembershipID]
	s.access.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ok, nil
	}
	m, err := s.PIIAccessByMemberships(ctx, a, []string{a.MembershipID})
	if err != nil {
		return false, err
	}
	s.access.mu.Lock()
	if len(s.access.m) > 100_000 {
		s.access.m = map[string]accessEntry{}
	}
	s.access.m[a.MembershipID] = accessEntry{ok: m[a.MembershipID], expires: now.Add(cacheTTL)}
	s.access.mu.Unlock()
	return m[a.MembershipID], nil
}

// SetPIIAccess gives a member PII access or takes it away. Owners.
func (s *Service) SetPIIAccess(ctx context.Context, membershipID string, access bool) error {
	var m workspace.Membership
	if err := s.db.Get(ctx, &m, `SELECT id, workspace_id, user_id, role, created_at, 0 AS role_rank FROM memberships WHERE id = ?`, membershipID); err != nil {
		if db.IsNoRows(err) {
			return apperr.NotFoundf("membership not found")
		}
		return err
	}
	a, err := s.workspaces.Access(ctx, m.WorkspaceID)
	if err != nil {
		return apperr.NotFoundf("membership not found")
	}
	if !a.CanManageMembers() {
		return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to give PII access")
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO privacy_access (membership_id, pii_access) VALUES (?, ?)
			ON CONFLICT (membership_id) DO UPDATE SET pii_access = excluded.pii_access`, membershipID, access); err != nil {
			return err
		}
		return audit.Record(ctx, tx, m.WorkspaceID, EventPIIAccessChanged, "Membership", membershipID, map[string]any{"piiAccess": access, "userId": m.UserID})
	})
	if err != nil {
		return err
	}
	s.access.mu.Lock()
	delete(s.access.m, membershipID)
	s.access.mu.Unlock()
	return nil
}

// masker hides values for one viewer in one workspace; nil when they see everything.
type masker struct{ r *rules }

// maskerFor returns the viewer's masker in a workspace: nil with PII access, or when the
// workspace's plan has no Privacy Portal (nothing is classified there).
func (s *Service) maskerFor(ctx context.Context, workspaceID string) (*masker, error) {
	r, err := s.cache.rules(ctx, workspaceID)
	if err != nil || !r.enabled {
		return nil, err
	}
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	ok, err := s.hasPIIAccess(ctx, a)
	if err != nil || ok {
		return nil, err
	}
	return &masker{r: r}, nil
}

// MaskEvent returns an event's payload as the viewer may see it: values of RED and YELLOW fields
// of properties, traits and context masked without PII access (by the inventory, the matchers'
// key and value recommendations). The payload given is not changed.
func (s *Service) MaskEvent(ctx context.Context, workspaceID string, payload any) (any, error) {
	m, err := s.maskerFor(ctx, workspaceID)
	if err != nil || m == nil {
		return payload, err
	}
	doc, ok := payload.(map[string]any)
	if !ok {
		return payload, nil
	}
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	for _, sec := range sections {
		if sub, ok := doc[sec].(map[string]any); ok {
			out[sec] = m.object(sec, sub, true)
		}
	}
	return out, nil
}

// MaskJSON returns any JSON value (a request as sent to a destination, whose shape is the
// destination's) as the viewer may see it: every field whose key or value a matcher recommends
// RED or YELLOW, or whose key is that of a classified RED or YELLOW field, masked.
func (s *Service) MaskJSON(ctx context.Context, workspaceID string, v any) (any, error) {
	m, err := s.maskerFor(ctx, workspaceID)
	if err != nil || m == nil {
		return v, err
	}
	return m.value("", "", v, false), nil
}

// MaskText is MaskJSON for a JSON text (other text is returned as it is when the viewer has PII
// access, and masked whole otherwise: it cannot be looked into).
func (s *Service) MaskText(ctx context.Context, workspaceID, text string) (string, error) {
	m, err := s.maskerFor(ctx, workspaceID)
	if err != nil || m == nil || text == "" {
		return text, err
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return Masked, nil
	}
	b, err := json.Marshal(m.value("", "", v, false))
	return string(b), err
}

func (m *masker) sensitive(path, key string, v any, byPath bool) bool {
	if byPath {
		if c, ok := m.r.classified[path]; ok {
			return c.Sensitive()
		}
	} else if m.r.sensitiveKeys[key].Sensitive() {
		return true
	}
	if key != "" {
		if km, ok := m.r.keyAt(path, key); ok && km.Classification.Sensitive() {
			return true
		}
	}
	vm, ok := m.r.matchers.Value(v)
	return ok && vm.Classification.Sensitive()
}

func (m *masker) object(prefix string, obj map[string]any, byPath bool) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		out[k] = m.value(path, k, v, byPath)
	}
	return out
}

func (m *masker) value(path, key string, v any, byPath bool) any {
	switch x := v.(type) {
	case map[string]any:
		if path != "" && m.sensitive(path, key, nil, byPath) {
			return Masked
		}
		return m.object(path, x, byPath)
	case []any:
		if path != "" && m.sensitive(path+"[]", key, nil, byPath) {
			return Masked
		}
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = m.value(path+"[]", key, el, byPath)
		}
		return out
	case nil, bool:
		return v
	}
	if m.sensitive(path, key, v, byPath) {
		return Masked
	}
	return v
}

// MaskSample returns a field's sample as the viewer may see it.
func (s *Service) MaskSample(ctx context.Context, f *Field) (any, error) {
	m, err := s.maskerFor(ctx, f.WorkspaceID)
	v := f.Sample()
	if err != nil || m == nil || v == nil {
		return v, err
	}
	if f.Sensitivity().Sensitive() || m.sensitive(f.Path, lastKey(f.Path), v, true) {
		return Masked, nil
	}
	return v, nil
}

// ViewerHasPIIAccess tells whether the viewer sees values of RED and YELLOW fields in a workspace.
func (s *Service) ViewerHasPIIAccess(ctx context.Context, workspaceID string) (bool, error) {
	m, err := s.maskerFor(ctx, workspaceID)
	return err == nil && m == nil, err
}
