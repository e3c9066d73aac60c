package engage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// ComputedTraitPrefix is the id prefix of computed traits.
const ComputedTraitPrefix = "ctr"

// Kind is what a computed trait computes from the events of a profile that meet its conditions
// within its window (Segment's computed trait types).
type Kind string

const (
	// EventCounter counts the events.
	EventCounter Kind = "EVENT_COUNTER"
	// Aggregation sums, or takes the minimum, maximum or average of, a numeric property.
	Aggregation Kind = "AGGREGATION"
	// MostFrequent is the value of a property seen most often (ties: the latest seen).
	MostFrequent Kind = "MOST_FREQUENT"
	// First and Last are a property's value in the earliest and latest events that have it.
	First Kind = "FIRST"
	Last  Kind = "LAST"
	// UniqueList lists a property's distinct values (in the order first seen, at most
	// maxUniqueValues); UniqueListCount counts them.
	UniqueList      Kind = "UNIQUE_LIST"
	UniqueListCount Kind = "UNIQUE_LIST_COUNT"
)

var kinds = map[Kind]bool{EventCounter: true, Aggregation: true, MostFrequent: true, First: true, Last: true, UniqueList: true, UniqueListCount: true}

// counts tells whether a kind's value is a count: a profile that had one keeps it at 0 when its
// events leave the window, as Segment's counters go back to 0 rather than disappearing.
func (k Kind) counts() bool { return k == EventCounter || k == UniqueListCount }

// Aggregate is how an AGGREGATION combines its property's values.
type Aggregate string

const (
	Sum     Aggregate = "SUM"
	Min     Aggregate = "MIN"
	Max     Aggregate = "MAX"
	Average Aggregate = "AVERAGE"
)

// WindowUnit is the unit of a computed trait's time window.
type WindowUnit string

const (
	Hours WindowUnit = "HOURS"
	Days  WindowUnit = "DAYS"
)

// Window is how far back a computed trait looks from now; a trait without one covers all the
// events still in the event log.
type Window struct {
	Amount int        `json:"amount"`
	Unit   WindowUnit `json:"unit"`
}

// Duration is the window's length.
func (w Window) Duration() time.Duration {
	if w.Unit == Hours {
		return time.Duration(w.Amount) * time.Hour
	}
	return time.Duration(w.Amount) * 24 * time.Hour
}

// Operator compares an event's property with a condition's value.
type Operator string

const (
	Equals             Operator = "EQUALS"
	NotEquals          Operator = "NOT_EQUALS"
	Contains           Operator = "CONTAINS"
	NotContains        Operator = "NOT_CONTAINS"
	StartsWith         Operator = "STARTS_WITH"
	EndsWith           Operator = "ENDS_WITH"
	GreaterThan        Operator = "GREATER_THAN"
	GreaterThanOrEqual Operator = "GREATER_THAN_OR_EQUAL"
	LessThan           Operator = "LESS_THAN"
	LessThanOrEqual    Operator = "LESS_THAN_OR_EQUAL"
	Exists             Operator = "EXISTS"
	NotExists          Operator = "NOT_EXISTS"
)

var operators = map[Operator]bool{Equals: true, NotEquals: true, Contains: true, NotContains: true, StartsWith: true, EndsWith: true,
	GreaterThan: true, GreaterThanOrEqual: true, LessThan: true, LessThanOrEqual: true, Exists: true, NotExists: true}

func (o Operator) numeric() bool {
	return o == GreaterThan || o == GreaterThanOrEqual || o == LessThan || o == LessThanOrEqual
}

// PropertyCondition keeps the events whose property at Path compares with Value by Operator.
// Path is a dot path into the event: under `properties` unless it starts with `properties.`,
// `traits.` or `context.`.
type PropertyCondition struct {
	Path     string   `json:"path"`
	Operator Operator `json:"operator"`
	Value    *string  `json:"value,omitempty"`
}

// Definition is what a computed trait computes and over which events.
type Definition struct {
	Kind Kind `json:"kind"`
	// EventName and EventType keep the events of that name (a track call's event, a page or
	// screen call's name) and of that type; neither keeps every event.
	EventName  *string             `json:"eventName,omitempty"`
	EventType  *ingest.Type        `json:"eventType,omitempty"`
	Conditions []PropertyCondition `json:"conditions"`
	// Property is the path (as a condition's) of the value every kind but EVENT_COUNTER reads.
	Property    string    `json:"property,omitempty"`
	Aggregation Aggregate `json:"aggregation,omitempty"`
	Window      *Window   `json:"window,omitempty"`
}

// ComputedTrait is a per-profile value computed from the events resolved to each profile.
type ComputedTrait struct {
	ID             string   `db:"id"`
	WorkspaceID    string   `db:"workspace_id"`
	Key            string   `db:"key"`
	Name           string   `db:"name"`
	Description    string   `db:"description"`
	Kind           Kind     `db:"kind"`
	DefinitionRaw  string   `db:"definition"`
	Enabled        bool     `db:"enabled"`
	Version        int64    `db:"version"`
	Pass           *Pass    `db:"pass"`
	PassCursor     *string  `db:"pass_cursor"`
	LastComputedAt *db.Time `db:"last_computed_at"`
	CreatedBy      *string  `db:"created_by"`
	CreatedAt      db.Time  `db:"created_at"`
	UpdatedAt      db.Time  `db:"updated_at"`
}

// Definition is the trait's definition. It is decoded at each call, not kept: gqlgen resolves
// an object's fields concurrently.
func (c *ComputedTrait) Definition() *Definition {
	d := &Definition{}
	_ = json.Unmarshal([]byte(c.DefinitionRaw), d)
	d.Kind = c.Kind
	if d.Conditions == nil {
		d.Conditions = []PropertyCondition{}
	}
	return d
}

// Pass is a pass of a trait's computation over profiles.
type Pass string

const (
	// Backfill computes every standing profile: a new, changed or re-enabled trait.
	Backfill Pass = "BACKFILL"
	// WindowPass recomputes the profiles holding a value of a windowed trait, as time passes:
	// events only leave a window with time, so a profile without a value cannot gain one (nor
	// can a counter at 0 change).
	WindowPass Pass = "WINDOW"
)

func passOf(p Pass) *Pass { return &p }

// Status says where the trait's computation is.
type Status string

const (
	// Computing: a new, changed or re-enabled trait's backfill runs over every profile; values of
	// profiles not yet reached may be old or missing.
	Computing Status = "COMPUTING"
	Ready     Status = "READY"
	Disabled  Status = "DISABLED"
)

// Status is the trait's status.
func (c *ComputedTrait) Status() Status {
	switch {
	case !c.Enabled:
		return Disabled
	case c.Pass != nil && *c.Pass == Backfill:
		return Computing
	}
	return Ready
}

// ComputedValue is one profile's value of a computed trait.
type ComputedValue struct {
	ComputedTraitID string  `db:"computed_trait_id"`
	ProfileID       string  `db:"profile_id"`
	WorkspaceID     string  `db:"workspace_id"`
	Key             string  `db:"key"`
	Value           string  `db:"value"` // JSON
	ComputedAt      db.Time `db:"computed_at"`
}

// Bounds of definitions.
const (
	maxKeyLen        = 100
	maxConditions    = 20
	maxPathLen       = 200
	maxCondValueLen  = 1000
	maxEventNameLen  = 200
	maxDescription   = 1000
	maxWindowDays    = 3 * 365
	maxUniqueValues  = 100
	maxComputedTrait = 100 // per workspace
)

// keyRE is Segment's trait key form: snake_case, lower-case letters, digits and underscores,
// starting with a letter.
var keyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Traits is the service of computed traits: their definitions (members read; owners and admins
// change them, on a plan with Engage) and their computation, kept current by a worker of its own
// that follows identity resolution (OnResolved), backfills new and changed traits, and
// recomputes windowed traits as time passes (Schedule, on the leader).
type Traits struct {
	s   *Service
	db  *db.DB
	log *slog.Logger
	// Now is the clock of windows and schedules; tests set it.
	Now func() time.Time

	// mu serialises computing passes and batches of this process: two computations of one
	// profile never interleave their reads and writes.
	mu sync.Mutex

	pmu     sync.Mutex
	pending map[string]*touched
	wake    chan struct{}
	done    chan struct{}
	closed  bool
	started bool
	cancel  context.CancelFunc
}

// NewTraits returns the service of computed traits over s, following its identity resolution.
// Call it before s.Start; Start runs its worker.
func NewTraits(s *Service, log *slog.Logger) *Traits {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Traits{s: s, db: s.db, log: log, Now: time.Now, pending: map[string]*touched{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.OnResolved(t.resolved)
	return t
}

func errTraitNotFound() error { return apperr.New(apperr.NotFound, "computed trait not found") }

// traitWhere is the condition (on alias c) for the computed traits the viewer sees in the
// workspace of a.
func traitWhere(a *workspace.Access) (string, []any) {
	if !a.CanReadAll() {
		return "FALSE", nil
	}
	return "c.workspace_id = ?", []any{a.WorkspaceID}
}

// load reads a computed trait the viewer sees, with their access (NOT_FOUND otherwise; FORBIDDEN
// when the workspace's plan lacks Engage).
func (t *Traits) load(ctx context.Context, q *db.Queryer, traitID string) (*ComputedTrait, *workspace.Access, error) {
	a, err := t.s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM computed_traits WHERE id = ?`, traitID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil, errTraitNotFound()
		}
		return nil, nil, err
	}
	if err := t.s.checkRead(ctx, a); err != nil {
		return nil, nil, err
	}
	where, args := traitWhere(a)
	var c ComputedTrait
	err = q.Get(ctx, &c, `SELECT c.* FROM computed_traits c WHERE c.id = ? AND `+where, append([]any{traitID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil, errTraitNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return &c, a, nil
}

// Get returns a computed trait the viewer sees (nil when there is none or they may not see it).
func (t *Traits) Get(ctx context.Context, traitID string) (*ComputedTrait, error) {
	c, _, err := t.load(ctx, t.db.Reader(), traitID)
	if code := apperr.CodeOf(err); code == apperr.NotFound || code == apperr.Forbidden {
		return nil, nil
	}
	return c, err
}

// List pages through a workspace's computed traits by key; members, owners and admins, on a plan
// with Engage.
func (t *Traits) List(ctx context.Context, workspaceID string, args relay.Args, count bool) (relay.Page[ComputedTrait], error) {
	a, err := t.s.readAccess(ctx, workspaceID)
	if err != nil {
		return relay.Page[ComputedTrait]{}, err
	}
	where, qargs := traitWhere(a)
	return relay.Query(ctx, t.db.Reader(), relay.Spec[ComputedTrait]{
		Select: "SELECT c.* FROM computed_traits c", Where: where, Args: qargs,
		SortColumn: "c.key", IDColumn: "c.id", Count: count,
		ID: func(c ComputedTrait) string { return c.ID }, SortKey: func(c ComputedTrait) any { return c.Key },
	}, args)
}

// ByIDs loads the computed traits the viewer sees in the workspace of a, for dataloaders.
func (t *Traits) ByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]ComputedTrait, error) {
	out := map[string]ComputedTrait{}
	if ok, err := t.s.readable(ctx, a); err != nil || !ok {
		return out, err
	}
	where, args := traitWhere(a)
	var rows []ComputedTrait
	if err := t.db.Select(ctx, &rows, `SELECT c.* FROM computed_traits c WHERE c.id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	for _, c := range rows {
		out[c.ID] = c
	}
	return out, nil
}

// ProfileCounts loads how many profiles have a value of each computed trait the viewer sees in
// the workspace of a, for dataloaders.
func (t *Traits) ProfileCounts(ctx context.Context, a *workspace.Access, ids []string) (map[string]int, error) {
	out := map[string]int{}
	if ok, err := t.s.readable(ctx, a); err != nil || !ok {
		return out, err
	}
	var rows []struct {
		ID    string `db:"computed_trait_id"`
		Count int    `db:"n"`
	}
	if err := t.db.Select(ctx, &rows, `SELECT v.computed_trait_id, COUNT(*) AS n FROM computed_trait_values v
		JOIN computed_traits c ON c.id = v.computed_trait_id
		WHERE c.id IN (`+db.Placeholders(len(ids))+`) AND c.workspace_id = ? GROUP BY v.computed_trait_id`,
		append(db.Args(ids), a.WorkspaceID)...); err != nil {
		return nil, err
	}
	for _, id := range ids {
		out[id] = 0
	}
	for _, r := range rows {
		out[r.ID] = r.Count
	}
	return out, nil
}

// ValuesByProfile loads the computed trait values of standing profiles the viewer sees in the
// workspace of a, by key, for dataloaders.
func (t *Traits) ValuesByProfile(ctx context.Context, a *workspace.Access, profileIDs []string) (map[string][]ComputedValue, error) {
	out := map[string][]ComputedValue{}
	if ok, err := t.s.readable(ctx, a); err != nil || !ok {
		return out, err
	}
	var rows []ComputedValue
	if err := t.db.Select(ctx, &rows, `SELECT v.computed_trait_id, v.profile_id, v.workspace_id, c.key, v.value, v.computed_at
		FROM computed_trait_values v JOIN computed_traits c ON c.id = v.computed_trait_id
		WHERE v.profile_id IN (`+db.Placeholders(len(profileIDs))+`) AND v.workspace_id = ? AND c.enabled
		ORDER BY v.profile_id, c.key`, append(db.Args(profileIDs), a.WorkspaceID)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ProfileID] = append(out[r.ProfileID], r)
	}
	return out, nil
}

// CanChange tells whether the viewer may change a workspace's computed traits (viewerCanUpdate).
func (t *Traits) CanChange(ctx context.Context, workspaceID string) bool {
	return t.s.CanChange(ctx, workspaceID)
}

// requireAdmin checks, in the change's transaction, that the viewer administers the workspace and
// that its plan includes Engage.
func requireAdmin(ctx context.Context, q *db.Queryer, a *workspace.Access) error {
	if !a.CanAdminister() {
		return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change computed traits")
	}
	ok, err := hasEngage(ctx, q, a.WorkspaceID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotOnPlan()
	}
	return nil
}

// TraitInput creates or changes a computed trait: nil fields keep what a trait has (Key is
// fixed once created; the definition is replaced as a whole).
type TraitInput struct {
	Key         string
	Name        *string
	Description *string
	Definition  *Definition
	Enabled     *bool
}

// validateDefinition checks a definition, naming the input field (under prefix) of each problem,
// and returns it normalised.
func validateDefinition(errs *apperr.UserErrors, prefix string, d *Definition) {
	f := func(name string) string { return prefix + "." + name }
	if !kinds[d.Kind] {
		errs.Add(f("kind"), apperr.InvalidValue, "kind is one of EVENT_COUNTER, AGGREGATION, MOST_FREQUENT, FIRST, LAST, UNIQUE_LIST, UNIQUE_LIST_COUNT")
	}
	if d.EventName != nil {
		n := strings.TrimSpace(*d.EventName)
		switch {
		case n == "":
			d.EventName = nil
		case utf8.RuneCountInString(n) > maxEventNameLen:
			errs.Add(f("eventName"), apperr.TooLong, "eventName has at most %d characters", maxEventNameLen)
		default:
			d.EventName = &n
		}
	}
	if d.EventType != nil {
		switch *d.EventType {
		case ingest.Track, ingest.Identify, ingest.Page, ingest.Screen, ingest.Group, ingest.Alias:
		default:
			errs.Add(f("eventType"), apperr.InvalidValue, "eventType is TRACK, IDENTIFY, PAGE, SCREEN, GROUP or ALIAS")
		}
	}
	if len(d.Conditions) > maxConditions {
		errs.Add(f("propertyConditions"), apperr.InvalidValue, "at most %d property conditions", maxConditions)
	}
	for i := range d.Conditions {
		c := &d.Conditions[i]
		cf := f(fmt.Sprintf("propertyConditions.%d", i))
		c.Path = strings.TrimSpace(c.Path)
		checkPath(errs, cf+".path", c.Path)
		if !operators[c.Operator] {
			errs.Add(cf+".operator", apperr.InvalidValue, "operator %q is not one of the operators", c.Operator)
			continue
		}
		switch {
		case c.Operator == Exists || c.Operator == NotExists:
			c.Value = nil
		case c.Value == nil:
			errs.Add(cf+".value", apperr.Required, "a value is required with %s", c.Operator)
		case len(*c.Value) > maxCondValueLen:
			errs.Add(cf+".value", apperr.TooLong, "a value has at most %d characters", maxCondValueLen)
		case c.Operator.numeric():
			if _, err := strconv.ParseFloat(strings.TrimSpace(*c.Value), 64); err != nil {
				errs.Add(cf+".value", apperr.InvalidValue, "%s compares numbers: %q is not one", c.Operator, *c.Value)
			}
		}
	}
	if d.Conditions == nil {
		d.Conditions = []PropertyCondition{}
	}
	d.Property = strings.TrimSpace(d.Property)
	switch {
	case !kinds[d.Kind]:
	case d.Kind == EventCounter:
		if d.Property != "" {
			errs.Add(f("property"), apperr.NotAllowed, "an EVENT_COUNTER counts events: it reads no property")
		}
	case d.Property == "":
		errs.Add(f("property"), apperr.Required, "a %s reads a property: its path is required", d.Kind)
	default:
		checkPath(errs, f("property"), d.Property)
	}
	switch {
	case d.Kind == Aggregation:
		switch d.Aggregation {
		case Sum, Min, Max, Average:
		case "":
			errs.Add(f("aggregation"), apperr.Required, "an AGGREGATION needs its aggregation: SUM, MIN, MAX or AVERAGE")
		default:
			errs.Add(f("aggregation"), apperr.InvalidValue, "aggregation is SUM, MIN, MAX or AVERAGE")
		}
	case d.Aggregation != "":
		errs.Add(f("aggregation"), apperr.NotAllowed, "only an AGGREGATION has an aggregation")
	}
	if w := d.Window; w != nil {
		switch {
		case w.Unit != Hours && w.Unit != Days:
			errs.Add(f("window.unit"), apperr.InvalidValue, "a window's unit is HOURS or DAYS")
		case w.Amount < 1 || w.Duration() > maxWindowDays*24*time.Hour:
			errs.Add(f("window.amount"), apperr.InvalidValue, "a window is at least 1 %s and at most %d days", strings.ToLower(strings.TrimSuffix(string(w.Unit), "S")), maxWindowDays)
		}
	}
}

// checkPath checks a property path: dot-separated names, none empty.
func checkPath(errs *apperr.UserErrors, field, path string) {
	switch {
	case path == "":
		errs.Add(field, apperr.Required, "a property path is required")
	case len(path) > maxPathLen:
		errs.Add(field, apperr.TooLong, "a property path has at most %d characters", maxPathLen)
	case strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, ".."):
		errs.Add(field, apperr.InvalidValue, "a property path is names separated by single dots, such as `price` or `context.page.path`")
	}
}

func validateKey(errs *apperr.UserErrors, key string) {
	switch {
	case key == "":
		errs.Add("key", apperr.Required, "a key is required")
	case len(key) > maxKeyLen:
		errs.Add("key", apperr.TooLong, "a key has at most %d characters", maxKeyLen)
	case !keyRE.MatchString(key):
		errs.Add("key", apperr.InvalidValue, "a key is snake_case: lower-case letters, digits and underscores, starting with a letter (such as `orders_last_30_days`)")
	}
}

func validateText(errs *apperr.UserErrors, name, description string) {
	auth.ValidateName(errs, "name", name)
	if n := utf8.RuneCountInString(description); n > maxDescription {
		errs.Add("description", apperr.TooLong, "description must be at most %d characters, got %d", maxDescription, n)
	}
}

// Create adds a computed trait, computed for every existing profile in the background (its status
// is COMPUTING until then); owners and admins, on a plan with Engage.
func (t *Traits) Create(ctx context.Context, workspaceID string, in TraitInput) (*ComputedTrait, apperr.UserErrors, error) {
	a, err := t.s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	var c *ComputedTrait
	err = t.db.Tx(ctx, func(tx *db.Tx) error {
		if err := requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		key := strings.TrimSpace(in.Key)
		validateKey(&errs, key)
		name, description := strings.TrimSpace(deref(in.Name)), strings.TrimSpace(deref(in.Description))
		validateText(&errs, name, description)
		def := in.Definition
		if def == nil {
			def = &Definition{}
		}
		validateDefinition(&errs, "definition", def)
		if len(errs) == 0 {
			var n int
			if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM computed_traits WHERE workspace_id = ?`, workspaceID); err != nil {
				return err
			}
			if n >= maxComputedTrait {
				errs.Add("workspaceId", apperr.NotAllowed, "a workspace has at most %d computed traits", maxComputedTrait)
			}
			var taken []string
			if err := tx.Select(ctx, &taken, `SELECT id FROM computed_traits WHERE workspace_id = ? AND key = ?`, workspaceID, key); err != nil {
				return err
			}
			if len(taken) > 0 {
				errs.Add("key", apperr.Taken, "the workspace has a computed trait with key %q already", key)
			}
		}
		if len(errs) > 0 {
			return nil
		}
		now := db.Now()
		userID := a.Viewer.User.ID
		var by *string
		if userID != "" {
			by = &userID
		}
		enabled := in.Enabled == nil || *in.Enabled
		c = &ComputedTrait{ID: id.New(ComputedTraitPrefix), WorkspaceID: workspaceID, Key: key, Name: name, Description: description,
			Kind: def.Kind, DefinitionRaw: marshal(def), Enabled: enabled, Version: 1, CreatedBy: by,
			CreatedAt: now, UpdatedAt: now}
		if enabled {
			c.Pass, c.PassCursor = passOf(Backfill), new(string)
		}
		_, err := tx.Exec(ctx, `INSERT INTO computed_traits (id, workspace_id, key, name, description, kind, definition, enabled, version,
			pass, pass_cursor, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.WorkspaceID, c.Key, c.Name, c.Description, string(c.Kind), c.DefinitionRaw, c.Enabled, c.Version,
			c.Pass, c.PassCursor, c.CreatedBy, c.CreatedAt, c.UpdatedAt)
		if err != nil {
			return err
		}
		tx.AfterCommit(t.poke)
		return nil
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return c, nil, nil
}

// Update changes a computed trait's name, description, definition or whether it is enabled;
// owners and admins, on a plan with Engage. A changed definition, or a trait enabled again, is
// computed anew for every profile in the background; a disabled trait's values are removed (they
// would no longer follow the events).
func (t *Traits) Update(ctx context.Context, traitID string, in TraitInput) (*ComputedTrait, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var c *ComputedTrait
	err := t.db.Tx(ctx, func(tx *db.Tx) error {
		var a *workspace.Access
		var err error
		if c, a, err = t.load(ctx, &tx.Queryer, traitID); err != nil {
			return err
		}
		if err := requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		name, description := c.Name, c.Description
		if in.Name != nil {
			name = strings.TrimSpace(*in.Name)
		}
		if in.Description != nil {
			description = strings.TrimSpace(*in.Description)
		}
		validateText(&errs, name, description)
		raw := c.DefinitionRaw
		kind := c.Kind
		if in.Definition != nil {
			validateDefinition(&errs, "definition", in.Definition)
			raw, kind = marshal(in.Definition), in.Definition.Kind
		}
		if len(errs) > 0 {
			return nil
		}
		enabled := c.Enabled
		if in.Enabled != nil {
			enabled = *in.Enabled
		}
		recompute := (raw != c.DefinitionRaw || (enabled && !c.Enabled)) && enabled
		c.Name, c.Description, c.DefinitionRaw, c.Kind = name, description, raw, kind
		c.UpdatedAt = db.Now()
		if recompute || enabled != c.Enabled {
			c.Version++
		}
		if recompute {
			c.Pass, c.PassCursor = passOf(Backfill), new(string)
		}
		if !enabled {
			c.Pass, c.PassCursor = nil, nil
		}
		c.Enabled = enabled
		if _, err := tx.Exec(ctx, `UPDATE computed_traits SET name = ?, description = ?, kind = ?, definition = ?, enabled = ?, version = ?,
			pass = ?, pass_cursor = ?, updated_at = ? WHERE id = ?`, c.Name, c.Description, string(c.Kind), c.DefinitionRaw, c.Enabled,
			c.Version, c.Pass, c.PassCursor, c.UpdatedAt, c.ID); err != nil {
			return err
		}
		if !enabled {
			if err := queueRemoval(ctx, tx, c); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `DELETE FROM computed_trait_removals WHERE computed_trait_id = ?`, c.ID); err != nil {
			// Enabled again: the backfill overwrites or removes every value left.
			return err
		}
		if recompute || !enabled {
			tx.AfterCommit(t.poke)
		}
		return nil
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return c, nil, nil
}

// Delete removes a computed trait; its values (and their rows in profile_traits) are removed in
// the background, in small transactions. Owners and admins, on a plan with Engage.
func (t *Traits) Delete(ctx context.Context, traitID string) error {
	return t.db.Tx(ctx, func(tx *db.Tx) error {
		c, a, err := t.load(ctx, &tx.Queryer, traitID)
		if err != nil {
			return err
		}
		if err := requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM computed_traits WHERE id = ?`, c.ID); err != nil {
			return err
		}
		if err := queueRemoval(ctx, tx, c); err != nil {
			return err
		}
		tx.AfterCommit(t.poke)
		return nil
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// queueRemoval has the values of a deleted or disabled trait removed in the background.
func queueRemoval(ctx context.Context, tx *db.Tx, c *ComputedTrait) error {
	_, err := tx.Exec(ctx, `INSERT INTO computed_trait_removals (computed_trait_id, workspace_id, key, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (computed_trait_id) DO NOTHING`, c.ID, c.WorkspaceID, c.Key, db.Now())
	return err
}
