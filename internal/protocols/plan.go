package protocols

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// RuleInput is a rule as a mutation or an import gives it. Schemas are JSON values or JSON text.
type RuleInput struct {
	Type        ingest.Type
	EventName   string
	Description string
	Labels      []string
	Properties  any
	Traits      any
	Context     any
}

// RuleRef names a rule to delete.
type RuleRef struct {
	Type      ingest.Type
	EventName string
}

// Limits of plans.
const (
	maxRulesPerPlan   = 20_000
	maxEventNameRunes = 256
	maxDescription    = 2000
)

// validateRule checks one rule of an input (field is its path, such as rules.3) and returns it
// ready to store, schemas compiled once to be sure they do. A schema that does not compile is a
// userError naming the rule and the path within the schema.
func validateRule(errs *apperr.UserErrors, field string, in RuleInput) (Rule, bool) {
	before := len(*errs)
	r := Rule{Type: in.Type, EventName: in.EventName, Description: in.Description}
	if !ruleType(in.Type) {
		errs.Add(field+".type", apperr.InvalidValue, "%s.type must be TRACK, IDENTIFY, GROUP, PAGE or SCREEN", field)
		return r, false
	}
	switch in.Type {
	case ingest.Track:
		if strings.TrimSpace(in.EventName) == "" {
			errs.Add(field+".eventName", apperr.Required, "%s.eventName is required for a TRACK rule", field)
		}
	case ingest.Identify, ingest.Group:
		if in.EventName != "" {
			errs.Add(field+".eventName", apperr.InvalidValue, "%s.eventName must be empty for an %s rule: it applies to every %s call", field, in.Type, strings.ToLower(string(in.Type)))
		}
	}
	if n := utf8.RuneCountInString(in.EventName); n > maxEventNameRunes {
		errs.Add(field+".eventName", apperr.TooLong, "%s.eventName must be at most %d characters, got %d", field, maxEventNameRunes, n)
	} else if strings.IndexByte(in.EventName, 0) >= 0 {
		errs.Add(field+".eventName", apperr.InvalidValue, "%s.eventName must not contain NUL characters", field)
	}
	if n := utf8.RuneCountInString(in.Description); n > maxDescription {
		errs.Add(field+".description", apperr.TooLong, "%s.description must be at most %d characters, got %d", field, maxDescription, n)
	}
	r.Key = RuleKey(in.Type, in.EventName)
	labels := validateLabels(errs, field+".labels", in.Labels)
	r.LabelsRaw = marshal(labels)
	for _, f := range []struct {
		name string
		v    any
		dst  **string
	}{{"properties", in.Properties, &r.Properties}, {"traits", in.Traits, &r.Traits}, {"context", in.Context, &r.Context}} {
		text := checkSchema(errs, field+"."+f.name, "rule "+r.Key+": the "+f.name+" schema", f.v)
		if text != nil {
			*f.dst = text
		}
	}
	return r, len(*errs) == before
}

// checkSchema parses and compiles a schema; nil (with a userError when it was given but is
// wrong) when there is none to store.
func checkSchema(errs *apperr.UserErrors, field, what string, v any) *string {
	doc, canonical, err := parseSchema(v)
	if err != nil {
		errs.Add(field, apperr.InvalidValue, "%s %s", what, err.Error())
		return nil
	}
	if doc == nil {
		return nil
	}
	if _, err := compileSchema(doc); err != nil {
		path, msg := schemaError(err)
		if path != "" {
			errs.Add(field, apperr.InvalidValue, "%s does not compile at %s: %s", what, path, msg)
		} else {
			errs.Add(field, apperr.InvalidValue, "%s does not compile: %s", what, msg)
		}
		return nil
	}
	return &canonical
}

func validateLabels(errs *apperr.UserErrors, field string, labels []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for i, l := range labels {
		l = strings.TrimSpace(l)
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || len(l) > 100 || strings.ContainsAny(l, ",") {
			errs.Add(field, apperr.InvalidValue, "%s[%d] must be key:value without commas, such as platform:ios, at most 100 characters", field, i)
			continue
		}
		if strings.IndexFunc(l, auth.UnsafeRune) >= 0 {
			errs.Add(field, apperr.InvalidValue, "%s[%d] must not contain control characters or bidirectional overrides", field, i)
			continue
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// loadPlan reads a plan the viewer sees, with their access: NOT_FOUND otherwise (another
// workspace's plan is not found, as one that never existed).
func (s *Service) loadPlan(ctx context.Context, q *db.Queryer, planID string) (*Plan, *workspace.Access, error) {
	a, err := s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM tracking_plans WHERE id = ?`, planID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil, errPlanNotFound()
		}
		return nil, nil, err
	}
	where, args := planWhere(a)
	var p Plan
	err = q.Get(ctx, &p, `SELECT p.* FROM tracking_plans p WHERE p.id = ? AND `+where, append([]any{planID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil, errPlanNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return &p, a, nil
}

// Get returns a plan the viewer sees, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, planID string) (*Plan, error) {
	p, _, err := s.loadPlan(ctx, s.db.Reader(), planID)
	return p, err
}

// List pages through a workspace's plans by name; members, owners and admins.
func (s *Service) List(ctx context.Context, workspaceID string, args relay.Args, count bool) (relay.Page[Plan], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Plan]{}, err
	}
	where, qargs := planWhere(a)
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Plan]{
		Select: "SELECT p.* FROM tracking_plans p", Where: where, Args: qargs,
		SortColumn: "p.name", IDColumn: "p.id", Count: count,
		ID: func(p Plan) string { return p.ID }, SortKey: func(p Plan) any { return p.Name },
	}, args)
}

// ByIDs loads the plans with the given ids that the viewer sees in the workspace of a.
func (s *Service) ByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]Plan, error) {
	where, args := planWhere(a)
	var rows []Plan
	if err := s.db.Select(ctx, &rows, `SELECT p.* FROM tracking_plans p WHERE p.id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string]Plan, len(rows))
	for _, p := range rows {
		out[p.ID] = p
	}
	return out, nil
}

// Create adds an empty plan (rules come with trackingPlanRulesUpsert or an import); owners and
// admins of a workspace on the BUSINESS plan.
func (s *Service) Create(ctx context.Context, workspaceID, name, description string, commonSchema any) (*Plan, apperr.UserErrors, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	var p *Plan
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		name = strings.TrimSpace(name)
		auth.ValidateName(&errs, "name", name)
		checkDescription(&errs, "description", description)
		common := checkSchema(&errs, "commonSchema", "the common schema", commonSchema)
		if len(errs) > 0 {
			return nil
		}
		var err error
		p, err = s.insertPlan(ctx, tx, a, name, description, common)
		return err
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return p, nil, nil
}

func checkDescription(errs *apperr.UserErrors, field, d string) {
	if n := utf8.RuneCountInString(d); n > maxDescription {
		errs.Add(field, apperr.TooLong, "%s must be at most %d characters, got %d", field, maxDescription, n)
	}
}

func (s *Service) insertPlan(ctx context.Context, tx *db.Tx, a *workspace.Access, name, description string, common *string) (*Plan, error) {
	now := db.Now()
	userID := a.Viewer.User.ID
	p := &Plan{ID: id.New(Prefix), WorkspaceID: a.WorkspaceID, Name: name, Description: description, CommonSchema: common,
		Version: 1, CreatedBy: &userID, UpdatedBy: &userID, CreatedAt: now, UpdatedAt: now}
	if _, err := tx.Exec(ctx, `INSERT INTO tracking_plans (id, workspace_id, name, description, common_schema, version, created_by, updated_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.WorkspaceID, p.Name, p.Description, p.CommonSchema, p.Version, p.CreatedBy, p.UpdatedBy, p.CreatedAt, p.UpdatedAt); err != nil {
		return nil, err
	}
	if err := s.recordVersion(ctx, tx, p, "created the plan", nil); err != nil {
		return nil, err
	}
	return p, audit.Record(ctx, tx, p.WorkspaceID, EventPlanCreated, "TrackingPlan", p.ID, map[string]any{"name": name, "description": description})
}

// ruleChange is one rule a version changed.
type ruleChange struct {
	Rule   string `json:"rule"`
	Action string `json:"action"` // ADDED, CHANGED, REMOVED
}

// recordVersion writes the version the plan is at, who made it and what it changed.
func (s *Service) recordVersion(ctx context.Context, tx *db.Tx, p *Plan, summary string, changes []ruleChange) error {
	userID, tokenID := auth.ViewerFrom(ctx).ActorIDs()
	var token *string
	if tokenID != "" {
		token = &tokenID
	}
	if changes == nil {
		changes = []ruleChange{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO tracking_plan_versions (plan_id, version, actor_user_id, actor_token_id, summary, changes, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Version, userID, token, summary, marshal(changes), db.Now())
	return err
}

// change runs a change to a plan in one transaction: the viewer must administer it; fn changes
// it and says what it did (nothing when summary is empty). The plan's version moves, the version
// is recorded with the audit event, and the ingest of its sources uses it from the commit on.
func (s *Service) change(ctx context.Context, planID string, fn func(tx *db.Tx, p *Plan) (summary string, changes []ruleChange, audited map[string]any, err error)) (*Plan, error) {
	var p *Plan
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var a *workspace.Access
		var err error
		if p, a, err = s.loadPlan(ctx, &tx.Queryer, planID); err != nil {
			return err
		}
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		summary, changes, audited, err := fn(tx, p)
		if err != nil || summary == "" {
			return err
		}
		userID := a.Viewer.User.ID
		p.Version++
		p.UpdatedBy, p.UpdatedAt = &userID, db.Now()
		if _, err := tx.Exec(ctx, `UPDATE tracking_plans SET name = ?, description = ?, common_schema = ?, version = ?, updated_by = ?, updated_at = ? WHERE id = ?`,
			p.Name, p.Description, p.CommonSchema, p.Version, p.UpdatedBy, p.UpdatedAt, p.ID); err != nil {
			return err
		}
		if err := s.recordVersion(ctx, tx, p, summary, changes); err != nil {
			return err
		}
		if audited == nil {
			audited = map[string]any{}
		}
		audited["name"] = p.Name
		audited["version"] = p.Version
		tx.AfterCommit(func() { s.cache.forgetPlan(p.ID) })
		return audit.Record(ctx, tx, p.WorkspaceID, EventPlanUpdated, "TrackingPlan", p.ID, audited)
	})
	return p, err
}

// errUser carries userErrors out of a transaction, which then changes nothing.
type errUser struct{ errs apperr.UserErrors }

func (e *errUser) Error() string { return "invalid input" }

func userErrs(err error) (apperr.UserErrors, error) {
	if u, ok := err.(*errUser); ok {
		return u.errs, nil
	}
	return nil, err
}

// Update renames a plan, changes its description or common schema (setCommon: replace it, nil
// removing it); owners and admins.
func (s *Service) Update(ctx context.Context, planID string, name, description *string, setCommon bool, commonSchema any) (*Plan, apperr.UserErrors, error) {
	p, err := s.change(ctx, planID, func(tx *db.Tx, p *Plan) (string, []ruleChange, map[string]any, error) {
		var errs apperr.UserErrors
		changes := map[string]any{}
		var what []string
		if name != nil {
			n := strings.TrimSpace(*name)
			auth.ValidateName(&errs, "name", n)
			if n != p.Name {
				changes["name"] = audit.Change{From: p.Name, To: n}
				what = append(what, "renamed the plan")
				p.Name = n
			}
		}
		if description != nil {
			checkDescription(&errs, "description", *description)
			if *description != p.Description {
				changes["description"] = audit.Change{From: p.Description, To: *description}
				what = append(what, "changed the description")
				p.Description = *description
			}
		}
		if setCommon {
			common := checkSchema(&errs, "commonSchema", "the common schema", commonSchema)
			if deref(common) != deref(p.CommonSchema) {
				changes["commonSchema"] = audit.Change{From: p.CommonSchema != nil, To: common != nil}
				what = append(what, "changed the common schema")
				p.CommonSchema = common
			}
		}
		if len(errs) > 0 {
			return "", nil, nil, &errUser{errs}
		}
		if len(what) == 0 {
			return "", nil, nil, nil
		}
		delete(changes, "name")
		out := map[string]any{"changes": changes}
		if c, ok := changes["name"]; ok {
			out["renamed"] = c
		}
		return strings.Join(what, ", "), nil, out, nil
	})
	errs, err := userErrs(err)
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return p, nil, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Delete removes a plan; its sources keep their controls and have no plan. Owners and admins.
func (s *Service) Delete(ctx context.Context, planID string) error {
	return s.db.Tx(ctx, func(tx *db.Tx) error {
		p, a, err := s.loadPlan(ctx, &tx.Queryer, planID)
		if err != nil {
			return err
		}
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tracking_plans WHERE id = ?`, p.ID); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.cache.forgetPlan(p.ID) })
		return audit.Record(ctx, tx, p.WorkspaceID, EventPlanDeleted, "TrackingPlan", p.ID, map[string]any{"name": p.Name})
	})
}

// UpsertRules adds or replaces rules (by type and name), as many as given in one change and one
// version; owners and admins. Each rule is checked and its schemas compiled; any userError
// changes nothing.
func (s *Service) UpsertRules(ctx context.Context, planID string, inputs []RuleInput) (*Plan, int, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	rules := make([]Rule, 0, len(inputs))
	seen := map[string]int{}
	for i, in := range inputs {
		field := fmt.Sprintf("rules.%d", i)
		r, ok := validateRule(&errs, field, in)
		if !ok {
			continue
		}
		if j, dup := seen[r.Key]; dup {
			errs.Add(field, apperr.Taken, "%s is the rule %s, which rules.%d gives already", field, r.Key, j)
			continue
		}
		seen[r.Key] = i
		rules = append(rules, r)
	}
	if len(inputs) == 0 {
		errs.Add("rules", apperr.Required, "rules must hold at least one rule")
	}
	if len(errs) > 0 {
		// The plan must still be one the viewer may change: an outsider learns nothing from userErrors.
		if _, err := s.change(ctx, planID, func(*db.Tx, *Plan) (string, []ruleChange, map[string]any, error) {
			return "", nil, nil, nil
		}); err != nil {
			return nil, 0, nil, err
		}
		return nil, 0, errs, nil
	}
	p, err := s.change(ctx, planID, func(tx *db.Tx, p *Plan) (string, []ruleChange, map[string]any, error) {
		return s.upsertRules(ctx, tx, p, rules)
	})
	errs, err = userErrs(err)
	if err != nil || len(errs) > 0 {
		return nil, 0, errs, err
	}
	return p, len(rules), nil, nil
}

// upsertRules writes rules at the plan's next version and says which it added and changed.
func (s *Service) upsertRules(ctx context.Context, tx *db.Tx, p *Plan, rules []Rule) (string, []ruleChange, map[string]any, error) {
	existing := map[string]Rule{}
	var old []Rule
	if err := tx.Select(ctx, &old, `SELECT * FROM tracking_plan_rules WHERE plan_id = ?`, p.ID); err != nil {
		return "", nil, nil, err
	}
	for _, r := range old {
		existing[r.Key] = r
	}
	var changes []ruleChange
	var rows [][]any
	now := db.Now()
	userID := auth.ViewerFrom(ctx).User.ID
	added := 0
	for _, r := range rules {
		prev, had := existing[r.Key]
		if had && sameRule(prev, r) {
			continue
		}
		action := "CHANGED"
		if !had {
			action = "ADDED"
			added++
		}
		changes = append(changes, ruleChange{Rule: r.Key, Action: action})
		rows = append(rows, []any{p.ID, r.Key, string(r.Type), r.EventName, r.Description, r.LabelsRaw, r.Properties, r.Traits, r.Context, p.Version + 1, userID, now})
	}
	if len(existing)+added > maxRulesPerPlan {
		var errs apperr.UserErrors
		errs.Add("rules", apperr.NotAllowed, "a plan holds at most %d rules: this one would hold %d", maxRulesPerPlan, len(existing)+added)
		return "", nil, nil, &errUser{errs}
	}
	if len(rows) == 0 {
		return "", nil, nil, nil
	}
	if err := tx.InsertRows(ctx, `INSERT INTO tracking_plan_rules (plan_id, rule_key, type, event_name, description, labels, properties, traits, context, version, updated_by, updated_at) VALUES `,
		12, rows, ` ON CONFLICT (plan_id, rule_key) DO UPDATE SET type = excluded.type, event_name = excluded.event_name, description = excluded.description,
		labels = excluded.labels, properties = excluded.properties, traits = excluded.traits, context = excluded.context, version = excluded.version,
		updated_by = excluded.updated_by, updated_at = excluded.updated_at`); err != nil {
		return "", nil, nil, err
	}
	return fmt.Sprintf("added %d and changed %d rules", added, len(changes)-added), changes, auditedRules(changes), nil
}

func sameRule(a, b Rule) bool {
	return a.Type == b.Type && a.EventName == b.EventName && a.Description == b.Description && a.LabelsRaw == b.LabelsRaw &&
		deref(a.Properties) == deref(b.Properties) && deref(a.Traits) == deref(b.Traits) && deref(a.Context) == deref(b.Context) &&
		(a.Properties == nil) == (b.Properties == nil) && (a.Traits == nil) == (b.Traits == nil) && (a.Context == nil) == (b.Context == nil)
}

// auditedRules is what the audit trail keeps of a change to rules: which, by action, the first
// 100 of each named.
func auditedRules(changes []ruleChange) map[string]any {
	by := map[string][]string{}
	for _, c := range changes {
		by[c.Action] = append(by[c.Action], c.Rule)
	}
	out := map[string]any{}
	for action, keys := range by {
		name := strings.ToLower(action)
		out[name+"Count"] = len(keys)
		if len(keys) > 100 {
			keys = keys[:100]
		}
		out[name] = keys
	}
	return map[string]any{"rules": out}
}

// DeleteRules removes rules by type and name; rules the plan does not have are userErrors.
func (s *Service) DeleteRules(ctx context.Context, planID string, refs []RuleRef) (*Plan, int, apperr.UserErrors, error) {
	deleted := 0
	p, err := s.change(ctx, planID, func(tx *db.Tx, p *Plan) (string, []ruleChange, map[string]any, error) {
		var errs apperr.UserErrors
		if len(refs) == 0 {
			errs.Add("rules", apperr.Required, "rules must name at least one rule")
			return "", nil, nil, &errUser{errs}
		}
		var keys []string
		for _, r := range refs {
			keys = append(keys, RuleKey(r.Type, r.EventName))
		}
		have := map[string]bool{}
		for start := 0; start < len(keys); start += 500 {
			chunk := keys[start:min(start+500, len(keys))]
			var found []string
			if err := tx.Select(ctx, &found, `SELECT rule_key FROM tracking_plan_rules WHERE plan_id = ? AND rule_key IN (`+db.Placeholders(len(chunk))+`)`,
				append([]any{p.ID}, db.Args(chunk)...)...); err != nil {
				return "", nil, nil, err
			}
			for _, k := range found {
				have[k] = true
			}
		}
		var changes []ruleChange
		done := map[string]bool{}
		for i, k := range keys {
			if !have[k] {
				errs.Add(fmt.Sprintf("rules.%d", i), apperr.InvalidValue, "rules.%d: the plan has no rule %s", i, k)
				continue
			}
			if !done[k] {
				done[k] = true
				changes = append(changes, ruleChange{Rule: k, Action: "REMOVED"})
			}
		}
		if len(errs) > 0 {
			return "", nil, nil, &errUser{errs}
		}
		for start := 0; start < len(changes); start += 500 {
			chunk := changes[start:min(start+500, len(changes))]
			args := []any{p.ID}
			for _, c := range chunk {
				args = append(args, c.Rule)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM tracking_plan_rules WHERE plan_id = ? AND rule_key IN (`+db.Placeholders(len(chunk))+`)`, args...); err != nil {
				return "", nil, nil, err
			}
		}
		deleted = len(changes)
		return fmt.Sprintf("removed %d rules", len(changes)), changes, auditedRules(changes), nil
	})
	errs, err := userErrs(err)
	if err != nil || len(errs) > 0 {
		return nil, 0, errs, err
	}
	return p, deleted, nil, nil
}

// RuleFilter narrows a plan's rules.
type RuleFilter struct {
	Type   ingest.Type
	Search string // in the event name
	Label  string
}

// Rules pages through a plan's rules by key (type, then name).
func (s *Service) Rules(ctx context.Context, p *Plan, f RuleFilter, args relay.Args, count bool) (relay.Page[Rule], error) {
	a, err := s.workspaces.Access(ctx, p.WorkspaceID)
	if err != nil {
		return relay.Page[Rule]{}, err
	}
	where, qargs := planWhere(a)
	where = "r.plan_id = ? AND EXISTS (SELECT 1 FROM tracking_plans p WHERE p.id = r.plan_id AND " + where + ")"
	qargs = append([]any{p.ID}, qargs...)
	if f.Type != "" {
		where += " AND r.type = ?"
		qargs = append(qargs, string(f.Type))
	}
	if f.Search != "" {
		where += " AND LOWER(r.event_name) LIKE ? ESCAPE '\\'"
		qargs = append(qargs, "%"+likeEscape(strings.ToLower(f.Search))+"%")
	}
	if f.Label != "" {
		where += " AND r.labels LIKE ? ESCAPE '\\'"
		qargs = append(qargs, "%"+likeEscape(marshal(strings.TrimSpace(f.Label)))+"%")
	}
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[Rule]{
		Select: "SELECT r.* FROM tracking_plan_rules r", Where: where, Args: qargs,
		IDColumn: "r.rule_key", Count: count,
		ID: func(r Rule) string { return r.Key },
	}, args)
	for i := range page.Edges {
		page.Edges[i].Node.WorkspaceID = p.WorkspaceID
	}
	return page, err
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// allRules reads every rule of a plan, by key.
func (s *Service) allRules(ctx context.Context, q *db.Queryer, planID string) ([]Rule, error) {
	var rules []Rule
	err := q.Select(ctx, &rules, `SELECT * FROM tracking_plan_rules WHERE plan_id = ? ORDER BY rule_key`, planID)
	return rules, err
}

// RuleCount counts a plan's rules.
func (s *Service) RuleCount(ctx context.Context, p *Plan) (int, error) {
	var n int
	err := s.db.Get(ctx, &n, `SELECT COUNT(*) FROM tracking_plan_rules WHERE plan_id = ?`, p.ID)
	return n, err
}

// Version is one version of a plan.
type Version struct {
	PlanID       string  `db:"plan_id"`
	Version      int64   `db:"version"`
	ActorUserID  *string `db:"actor_user_id"`
	ActorTokenID *string `db:"actor_token_id"`
	Summary      string  `db:"summary"`
	ChangesRaw   string  `db:"changes"`
	CreatedAt    db.Time `db:"created_at"`
	WorkspaceID  string  `db:"-"`
}

// RuleChange is one rule a version changed.
type RuleChange struct {
	Rule   string `json:"rule"`
	Action string `json:"action"`
}

// Changes lists the rules the version changed.
func (v *Version) Changes() []RuleChange {
	var out []RuleChange
	_ = decodeJSON(v.ChangesRaw, &out)
	return out
}

// Versions pages through a plan's versions, newest first.
func (s *Service) Versions(ctx context.Context, p *Plan, args relay.Args, count bool) (relay.Page[Version], error) {
	a, err := s.workspaces.Access(ctx, p.WorkspaceID)
	if err != nil {
		return relay.Page[Version]{}, err
	}
	where, qargs := planWhere(a)
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[Version]{
		Select: "SELECT v.* FROM tracking_plan_versions v",
		Where:  "v.plan_id = ? AND EXISTS (SELECT 1 FROM tracking_plans p WHERE p.id = v.plan_id AND " + where + ")",
		// Versions are unique within a plan: the plan's id breaks no tie, but keeps the cursor a string.
		Args: append([]any{p.ID}, qargs...), SortColumn: "v.version", IDColumn: "v.plan_id", Desc: true, Count: count,
		ID: func(v Version) string { return v.PlanID }, SortKey: func(v Version) any { return v.Version },
	}, args)
	for i := range page.Edges {
		page.Edges[i].Node.WorkspaceID = p.WorkspaceID
	}
	return page, err
}
