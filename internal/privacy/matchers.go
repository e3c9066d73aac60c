package privacy

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// Matcher is one of a workspace's matchers: a default (as shipped, or as the workspace edited it)
// or its own.
type Matcher struct {
	ID          string
	WorkspaceID string
	Rule
	IsDefault bool
	// Modified: a default the workspace edited (resettable).
	Modified  bool
	Enabled   bool
	UpdatedAt *db.Time
}

type matcherRow struct {
	WorkspaceID    string  `db:"workspace_id"`
	ID             string  `db:"id"`
	IsDefault      bool    `db:"is_default"`
	Name           string  `db:"name"`
	Classification string  `db:"classification"`
	Target         string  `db:"target"`
	KeyMatch       string  `db:"key_match"`
	Synonyms       string  `db:"synonyms"`
	Pattern        string  `db:"pattern"`
	Luhn           bool    `db:"luhn"`
	Enabled        bool    `db:"enabled"`
	CreatedAt      db.Time `db:"created_at"`
	UpdatedAt      db.Time `db:"updated_at"`
}

func (r matcherRow) matcher() Matcher {
	var syn []string
	_ = json.Unmarshal([]byte(r.Synonyms), &syn)
	at := r.UpdatedAt
	return Matcher{ID: r.ID, WorkspaceID: r.WorkspaceID, IsDefault: r.IsDefault, Modified: r.IsDefault, Enabled: r.Enabled, UpdatedAt: &at,
		Rule: Rule{Name: r.Name, Classification: Classification(r.Classification), Target: Target(r.Target), KeyMatch: KeyMatch(r.KeyMatch),
			Synonyms: nonNil(syn), Pattern: r.Pattern, Luhn: r.Luhn}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// matchers lists a workspace's matchers: the defaults (by name), then its own (oldest first).
func matchers(ctx context.Context, q *db.Queryer, workspaceID string) ([]Matcher, error) {
	var rows []matcherRow
	if err := q.Select(ctx, &rows, `SELECT * FROM privacy_matchers WHERE workspace_id = ? ORDER BY is_default, created_at, id`, workspaceID); err != nil {
		return nil, err
	}
	edited := map[string]Matcher{}
	var custom []Matcher
	for _, r := range rows {
		if r.IsDefault {
			edited[r.ID] = r.matcher()
		} else {
			custom = append(custom, r.matcher())
		}
	}
	out := make([]Matcher, 0, len(Defaults)+len(custom))
	for _, id := range defaultIDs() {
		if m, ok := edited[id]; ok {
			out = append(out, m)
			continue
		}
		r := Defaults[id]
		r.Synonyms = nonNil(r.Synonyms)
		out = append(out, Matcher{ID: id, WorkspaceID: workspaceID, Rule: r, IsDefault: true, Enabled: true})
	}
	return append(out, custom...), nil
}

func defaultIDs() []string {
	ids := make([]string, 0, len(Defaults))
	for id := range Defaults {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := Defaults[ids[i]], Defaults[ids[j]]
		if a.Classification != b.Classification {
			return a.Classification.rank() > b.Classification.rank()
		}
		return a.Name < b.Name
	})
	return ids
}

// enabledRules are a workspace's enabled matchers by id, to compile.
func enabledRules(ms []Matcher) map[string]Rule {
	out := make(map[string]Rule, len(ms))
	for _, m := range ms {
		if m.Enabled {
			out[m.ID] = m.Rule
		}
	}
	return out
}

// Matchers lists a workspace's matchers. Members, owners and admins.
func (s *Service) Matchers(ctx context.Context, workspaceID string) ([]Matcher, error) {
	a, err := s.read(ctx, workspaceID)
	if err != nil || !a.CanReadAll() {
		return []Matcher{}, err
	}
	return matchers(ctx, s.db.Reader(), workspaceID)
}

// MatcherInput is what a mutation sets of a matcher; nil fields are left as they are (on
// create: the defaults EXACT, KEY, enabled).
type MatcherInput struct {
	Name           *string
	Classification *Classification
	Target         *Target
	KeyMatch       *KeyMatch
	Synonyms       []string
	Pattern        *string
	Enabled        *bool
}

func (in MatcherInput) apply(m *Matcher) {
	if in.Name != nil {
		m.Name = strings.TrimSpace(*in.Name)
	}
	if in.Classification != nil {
		m.Classification = *in.Classification
	}
	if in.Target != nil {
		m.Target = *in.Target
	}
	if in.KeyMatch != nil {
		m.KeyMatch = *in.KeyMatch
	}
	if in.Synonyms != nil {
		var syn []string
		for _, x := range in.Synonyms {
			if x = strings.TrimSpace(x); x != "" {
				syn = append(syn, x)
			}
		}
		m.Synonyms = nonNil(syn)
	}
	if in.Pattern != nil {
		m.Pattern = *in.Pattern
	}
	if in.Enabled != nil {
		m.Enabled = *in.Enabled
	}
}

func validate(m *Matcher) apperr.UserErrors {
	var errs apperr.UserErrors
	auth.ValidateName(&errs, "name", m.Name)
	if m.Classification != Red && m.Classification != Yellow {
		errs.Add("classification", apperr.InvalidValue, "a matcher recommends RED or YELLOW")
	}
	if m.Target != OnKey && m.Target != OnValue && m.Target != OnKeyOrValue {
		errs.Add("target", apperr.InvalidValue, "target must be KEY, VALUE or KEY_OR_VALUE")
	}
	if m.KeyMatch != Exact && m.KeyMatch != Similar {
		errs.Add("keyMatch", apperr.InvalidValue, "keyMatch must be EXACT or SIMILAR")
	}
	if len(m.Synonyms) > maxSynonyms {
		errs.Add("synonyms", apperr.TooLong, "at most %d synonyms", maxSynonyms)
	}
	for _, x := range m.Synonyms {
		if len([]rune(x)) > maxNameLen {
			errs.Add("synonyms", apperr.TooLong, "a synonym is at most %d characters", maxNameLen)
			break
		}
		auth.ValidateText(&errs, "synonyms", x)
	}
	switch {
	case len(m.Pattern) > maxPatternLen:
		errs.Add("pattern", apperr.TooLong, "pattern is at most %d characters", maxPatternLen)
	case m.Pattern != "":
		if _, err := regexp.Compile(m.Pattern); err != nil {
			errs.Add("pattern", apperr.InvalidValue, "pattern is not a valid regular expression: %s", err.Error())
		}
	case m.Target == OnValue || m.Target == OnKeyOrValue:
		errs.Add("pattern", apperr.Required, "a matcher on values needs a pattern")
	}
	return errs
}

func (s *Service) saveMatcher(ctx context.Context, tx *db.Tx, m *Matcher, insert bool) error {
	now := db.Now()
	m.UpdatedAt = &now
	syn, _ := json.Marshal(nonNil(m.Synonyms))
	if insert {
		_, err := tx.Exec(ctx, `INSERT INTO privacy_matchers (workspace_id, id, is_default, name, classification, target, key_match, synonyms, pattern, luhn, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (workspace_id, id) DO UPDATE SET name = excluded.name, classification = excluded.classification, target = excluded.target,
			key_match = excluded.key_match, synonyms = excluded.synonyms, pattern = excluded.pattern, enabled = excluded.enabled, updated_at = excluded.updated_at`,
			m.WorkspaceID, m.ID, m.IsDefault, m.Name, string(m.Classification), string(m.Target), string(m.KeyMatch), string(syn), m.Pattern, m.Luhn, m.Enabled, now, now)
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE privacy_matchers SET name = ?, classification = ?, target = ?, key_match = ?, synonyms = ?, pattern = ?, enabled = ?, updated_at = ?
		WHERE workspace_id = ? AND id = ?`, m.Name, string(m.Classification), string(m.Target), string(m.KeyMatch), string(syn), m.Pattern, m.Enabled, now, m.WorkspaceID, m.ID)
	return err
}

// CreateMatcher adds a custom matcher. Owners and admins.
func (s *Service) CreateMatcher(ctx context.Context, workspaceID string, in MatcherInput) (*Matcher, apperr.UserErrors, error) {
	a, err := s.admin(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	m := &Matcher{ID: id.New(MatcherPrefix), WorkspaceID: workspaceID, Enabled: true, Rule: Rule{Target: OnKey, KeyMatch: Exact, Synonyms: []string{}}}
	in.apply(m)
	if errs := validate(m); len(errs) > 0 {
		return nil, errs, nil
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM privacy_matchers WHERE workspace_id = ? AND is_default = FALSE`, workspaceID); err != nil {
			return err
		}
		if n >= maxCustomMatchers {
			errs.Add("", apperr.NotAllowed, "a workspace has at most %d custom matchers", maxCustomMatchers)
			return nil
		}
		if err := s.saveMatcher(ctx, tx, m, true); err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventMatcherChanged, "PrivacyMatcher", m.ID, map[string]any{"action": "created", "name": m.Name, "actor": actor(a)})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	s.cache.forget(workspaceID)
	return m, nil, nil
}

// find returns one of a workspace's matchers, or NOT_FOUND.
func (s *Service) find(ctx context.Context, q *db.Queryer, workspaceID, matcherID string) (*Matcher, error) {
	ms, err := matchers(ctx, q, workspaceID)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].ID == matcherID {
			return &ms[i], nil
		}
	}
	return nil, apperr.NotFoundf("matcher not found")
}

// UpdateMatcher changes a matcher: a default (the workspace's edit is kept, resettable) or a
// custom one. Owners and admins.
func (s *Service) UpdateMatcher(ctx context.Context, workspaceID, matcherID string, in MatcherInput) (*Matcher, apperr.UserErrors, error) {
	if _, err := s.admin(ctx, workspaceID); err != nil {
		return nil, nil, err
	}
	m, err := s.find(ctx, s.db.Reader(), workspaceID, matcherID)
	if err != nil {
		return nil, nil, err
	}
	in.apply(m)
	if errs := validate(m); len(errs) > 0 {
		return nil, errs, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := s.saveMatcher(ctx, tx, m, m.IsDefault); err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventMatcherChanged, "PrivacyMatcher", m.ID, map[string]any{"action": "updated", "name": m.Name})
	})
	if err != nil {
		return nil, nil, err
	}
	s.cache.forget(workspaceID)
	m.Modified = m.IsDefault
	return m, nil, nil
}

// ResetMatcher brings a default matcher back as shipped. Owners and admins.
func (s *Service) ResetMatcher(ctx context.Context, workspaceID, matcherID string) (*Matcher, apperr.UserErrors, error) {
	if _, err := s.admin(ctx, workspaceID); err != nil {
		return nil, nil, err
	}
	if _, ok := Defaults[matcherID]; !ok {
		if _, err := s.find(ctx, s.db.Reader(), workspaceID, matcherID); err != nil {
			return nil, nil, err
		}
		return nil, apperr.UserErrors{{Field: "matcherId", Code: apperr.NotAllowed, Message: "only default matchers can be reset"}}, nil
	}
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM privacy_matchers WHERE workspace_id = ? AND id = ? AND is_default = TRUE`, workspaceID, matcherID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventMatcherChanged, "PrivacyMatcher", matcherID, map[string]any{"action": "reset", "name": Defaults[matcherID].Name})
	})
	if err != nil {
		return nil, nil, err
	}
	s.cache.forget(workspaceID)
	m, err := s.find(ctx, s.db.Reader(), workspaceID, matcherID)
	return m, nil, err
}

// DeleteMatcher deletes a custom matcher (defaults are disabled instead). Owners and admins.
func (s *Service) DeleteMatcher(ctx context.Context, workspaceID, matcherID string) (apperr.UserErrors, error) {
	if _, err := s.admin(ctx, workspaceID); err != nil {
		return nil, err
	}
	m, err := s.find(ctx, s.db.Reader(), workspaceID, matcherID)
	if err != nil {
		return nil, err
	}
	if m.IsDefault {
		return apperr.UserErrors{{Field: "matcherId", Code: apperr.NotAllowed, Message: "default matchers cannot be deleted: disable them"}}, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM privacy_matchers WHERE workspace_id = ? AND id = ?`, workspaceID, matcherID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventMatcherChanged, "PrivacyMatcher", matcherID, map[string]any{"action": "deleted", "name": m.Name})
	})
	if err != nil {
		return nil, err
	}
	s.cache.forget(workspaceID)
	return nil, nil
}
