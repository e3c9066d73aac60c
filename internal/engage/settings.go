package engage

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
)

// IdentifierRule is the rule of one identifier type: its priority (1 is the highest: when an
// event would exceed a limit, the identifier of the lowest priority is left out first) and how
// many values of it one profile may hold.
type IdentifierRule struct {
	Type     string `json:"type"`
	Priority int    `json:"priority"`
	Limit    int    `json:"limit"`
}

// BlockedValue is a value no identifier may have: matched exactly (ignoring case), or as a
// regular expression (RE2 syntax) when Regexp is set.
type BlockedValue struct {
	Value  string `json:"value"`
	Regexp bool   `json:"regexp"`
}

// Settings are a workspace's identity resolution rules.
type Settings struct {
	WorkspaceID string
	Identifiers []IdentifierRule
	Blocked     []BlockedValue
	UpdatedBy   *string
	UpdatedAt   *db.Time

	rules    map[string]IdentifierRule
	patterns []*regexp.Regexp
	exact    []string
	maxPrio  int
}

// Default identifier types, as Segment promotes them, with Segment's default rules: user_id first
// with a limit of 1, email second, then the others, each with a limit of 5.
var defaultIdentifiers = []IdentifierRule{
	{"user_id", 1, 1}, {"email", 2, 5}, {"android.id", 3, 5}, {"android.idfa", 4, 5}, {"android.push_token", 5, 5},
	{"anonymous_id", 6, 5}, {"ga_client_id", 7, 5}, {"ios.id", 8, 5}, {"ios.idfa", 9, 5}, {"ios.push_token", 10, 5},
}

// defaultBlocked are Segment's suggested blocked values: zeroes and dashes, -1, null, anonymous,
// undefined.
var defaultBlocked = []BlockedValue{
	{`^[0-]*$`, true}, {"-1", false}, {"null", false}, {"anonymous", false}, {"undefined", false},
}

// IsDefaultType tells whether t is one of the identifier types Segment promotes by default.
func IsDefaultType(t string) bool {
	for _, r := range defaultIdentifiers {
		if r.Type == t {
			return true
		}
	}
	return false
}

// defaultLimit is the limit of an identifier type that the rules do not name (a custom id of
// context.externalIds); such types rank after every named one.
const defaultLimit = 5

// Bounds of the rules.
const (
	maxRules     = 50
	maxBlocked   = 100
	maxLimit     = 1000
	maxTypeLen   = 64
	maxValueLen  = 200
	maxIdentLen  = 1000 // longer identifier values are ignored
	maxTraitName = 200
)

var typeRE = regexp.MustCompile(`^[a-z0-9_.\-]+$`)

// DefaultSettings returns Segment's defaults for a workspace.
func DefaultSettings(workspaceID string) *Settings {
	s := &Settings{WorkspaceID: workspaceID, Identifiers: append([]IdentifierRule(nil), defaultIdentifiers...),
		Blocked: append([]BlockedValue(nil), defaultBlocked...)}
	if err := s.compile(); err != nil {
		panic(err)
	}
	return s
}

func (s *Settings) compile() error {
	s.rules = map[string]IdentifierRule{}
	s.maxPrio = 0
	sort.SliceStable(s.Identifiers, func(i, j int) bool { return s.Identifiers[i].Priority < s.Identifiers[j].Priority })
	for _, r := range s.Identifiers {
		s.rules[r.Type] = r
		s.maxPrio = max(s.maxPrio, r.Priority)
	}
	s.patterns, s.exact = nil, nil
	for _, b := range s.Blocked {
		if b.Regexp {
			re, err := regexp.Compile(b.Value)
			if err != nil {
				return err
			}
			s.patterns = append(s.patterns, re)
		} else {
			s.exact = append(s.exact, b.Value)
		}
	}
	return nil
}

// rule returns the rule of an identifier type; types the rules do not name rank after every named
// one, among themselves by name.
func (s *Settings) rule(t string) IdentifierRule {
	if r, ok := s.rules[t]; ok {
		return r
	}
	return IdentifierRule{Type: t, Priority: s.maxPrio + 1, Limit: defaultLimit}
}

// blocked tells whether an identifier value is blocked.
func (s *Settings) blocked(v string) bool {
	for _, x := range s.exact {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	for _, re := range s.patterns {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// loadSettings returns a workspace's rules, Segment's defaults when it has none of its own.
func (s *Service) loadSettings(ctx context.Context, q *db.Queryer, workspaceID string) (*Settings, error) {
	var row struct {
		Identifiers string   `db:"identifiers"`
		Blocked     string   `db:"blocked_values"`
		UpdatedBy   *string  `db:"updated_by"`
		UpdatedAt   *db.Time `db:"updated_at"`
	}
	err := q.Get(ctx, &row, `SELECT identifiers, blocked_values, updated_by, updated_at FROM engage_settings WHERE workspace_id = ?`, workspaceID)
	if db.IsNoRows(err) {
		return DefaultSettings(workspaceID), nil
	}
	if err != nil {
		return nil, err
	}
	out := &Settings{WorkspaceID: workspaceID, UpdatedBy: row.UpdatedBy, UpdatedAt: row.UpdatedAt}
	if err := json.Unmarshal([]byte(row.Identifiers), &out.Identifiers); err != nil {
		return nil, fmt.Errorf("engage settings of %s: %w", workspaceID, err)
	}
	if err := json.Unmarshal([]byte(row.Blocked), &out.Blocked); err != nil {
		return nil, fmt.Errorf("engage settings of %s: %w", workspaceID, err)
	}
	if err := out.compile(); err != nil {
		return nil, fmt.Errorf("engage settings of %s: %w", workspaceID, err)
	}
	return out, nil
}

// Settings returns a workspace's identity resolution rules; members, owners and admins, on a plan
// with Engage.
func (s *Service) Settings(ctx context.Context, workspaceID string) (*Settings, error) {
	if _, err := s.readAccess(ctx, workspaceID); err != nil {
		return nil, err
	}
	return s.loadSettings(ctx, s.db.Reader(), workspaceID)
}

// SettingsInput changes the rules: a nil list keeps the current one, a given one replaces it.
type SettingsInput struct {
	Identifiers []IdentifierRule
	Blocked     []BlockedValue
}

// validateSettings checks new rules, naming the input field of each problem.
func validateSettings(errs *apperr.UserErrors, in *Settings) {
	if len(in.Identifiers) > maxRules {
		errs.Add("identifiers", apperr.InvalidValue, "at most %d identifier types", maxRules)
	}
	types, prios := map[string]bool{}, map[int]string{}
	for i, r := range in.Identifiers {
		f := fmt.Sprintf("identifiers.%d", i)
		switch {
		case r.Type == "":
			errs.Add(f+".type", apperr.Required, "an identifier type is required")
		case len(r.Type) > maxTypeLen:
			errs.Add(f+".type", apperr.TooLong, "an identifier type has at most %d characters", maxTypeLen)
		case !typeRE.MatchString(r.Type):
			errs.Add(f+".type", apperr.InvalidValue, "an identifier type is lower-case letters, digits, '_', '.' and '-'")
		case types[r.Type]:
			errs.Add(f+".type", apperr.Taken, "%q is listed twice", r.Type)
		}
		types[r.Type] = true
		if r.Priority < 1 {
			errs.Add(f+".priority", apperr.InvalidValue, "priority is 1 or more (1 is the highest)")
		} else if other, ok := prios[r.Priority]; ok {
			errs.Add(f+".priority", apperr.Taken, "priority %d is already %q's", r.Priority, other)
		}
		prios[r.Priority] = r.Type
		if r.Limit < 1 || r.Limit > maxLimit {
			errs.Add(f+".limit", apperr.InvalidValue, "limit is between 1 and %d", maxLimit)
		}
	}
	if len(in.Blocked) > maxBlocked {
		errs.Add("blockedValues", apperr.InvalidValue, "at most %d blocked values", maxBlocked)
	}
	for i, b := range in.Blocked {
		f := fmt.Sprintf("blockedValues.%d.value", i)
		switch {
		case b.Value == "":
			errs.Add(f, apperr.Required, "a blocked value is required")
		case len(b.Value) > maxValueLen:
			errs.Add(f, apperr.TooLong, "a blocked value has at most %d characters", maxValueLen)
		case b.Regexp:
			if _, err := regexp.Compile(b.Value); err != nil {
				errs.Add(f, apperr.InvalidValue, "not a regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
	}
}

// UpdateSettings changes a workspace's rules; owners and admins, on a plan with Engage. They
// apply to events processed from then on, as Segment's do.
func (s *Service) UpdateSettings(ctx context.Context, workspaceID string, in SettingsInput) (*Settings, apperr.UserErrors, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanAdminister() {
		return nil, nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change identity resolution rules")
	}
	var errs apperr.UserErrors
	var out *Settings
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		ok, err := hasEngage(ctx, &tx.Queryer, workspaceID)
		if err != nil {
			return err
		}
		if !ok {
			return errNotOnPlan()
		}
		cur, err := s.loadSettings(ctx, &tx.Queryer, workspaceID)
		if err != nil {
			return err
		}
		next := &Settings{WorkspaceID: workspaceID, Identifiers: cur.Identifiers, Blocked: cur.Blocked}
		if in.Identifiers != nil {
			next.Identifiers = in.Identifiers
		}
		if in.Blocked != nil {
			next.Blocked = in.Blocked
		}
		for i := range next.Identifiers {
			next.Identifiers[i].Type = strings.TrimSpace(next.Identifiers[i].Type)
		}
		validateSettings(&errs, next)
		if len(errs) > 0 {
			return nil
		}
		if err := next.compile(); err != nil {
			return err
		}
		userID, _ := auth.ViewerFrom(ctx).ActorIDs()
		var by *string
		if userID != "" {
			by = &userID
		}
		now := db.Now()
		next.UpdatedBy, next.UpdatedAt = by, &now
		if _, err := tx.Exec(ctx, `INSERT INTO engage_settings (workspace_id, identifiers, blocked_values, updated_by, updated_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET identifiers = excluded.identifiers,
			blocked_values = excluded.blocked_values, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			workspaceID, marshal(next.Identifiers), marshal(next.Blocked), by, now); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.states.forget(workspaceID) })
		out = next
		return nil
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return out, nil, nil
}

// CanChange tells whether the viewer may change a workspace's rules (viewerCanUpdate).
func (s *Service) CanChange(ctx context.Context, workspaceID string) bool {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil || !a.CanAdminister() {
		return false
	}
	ok, err := hasEngage(ctx, s.db.Reader(), workspaceID)
	return err == nil && ok
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// IsDefault tells whether the rule's type is one Segment promotes by default.
func (r IdentifierRule) IsDefault() bool { return IsDefaultType(r.Type) }
