package audience

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
)

// Condition is one node of an audience's definition: exactly one of its fields is set. The
// GraphQL input AudienceConditionInput is bound to it, and it is stored as JSON in the same shape.
type Condition struct {
	Trait         *TraitCondition      `json:"trait,omitempty"`
	ComputedTrait *TraitCondition      `json:"computedTrait,omitempty"`
	Event         *EventCondition      `json:"event,omitempty"`
	Audience      *MembershipCondition `json:"audience,omitempty"`
	And           []*Condition         `json:"and,omitempty"`
	Or            []*Condition         `json:"or,omitempty"`
	Not           *Condition           `json:"not,omitempty"`
}

// Operator compares a trait's or a property's value.
type Operator string

// Operators of TraitCondition and PropertyCondition.
const (
	Equals       Operator = "EQUALS"
	NotEquals    Operator = "NOT_EQUALS"
	Contains     Operator = "CONTAINS"
	NotContains  Operator = "NOT_CONTAINS"
	Exists       Operator = "EXISTS"
	NotExists    Operator = "NOT_EXISTS"
	Greater      Operator = "GREATER_THAN"
	GreaterEqual Operator = "GREATER_THAN_OR_EQUAL"
	Less         Operator = "LESS_THAN"
	LessEqual    Operator = "LESS_THAN_OR_EQUAL"
)

// TraitCondition holds for profiles whose trait name compares with value. A computed trait's
// condition is the same on the trait named after the computed trait's key: computed traits write
// their current value among the profile's traits under that name.
type TraitCondition struct {
	Name     string   `json:"name,omitempty"`
	Key      string   `json:"key,omitempty"` // a computed trait's key
	Operator Operator `json:"operator"`
	Value    *string  `json:"value,omitempty"`
}

// CountOperator compares how many times an event was performed.
type CountOperator string

// Count operators.
const (
	AtLeast CountOperator = "AT_LEAST"
	AtMost  CountOperator = "AT_MOST"
	Exactly CountOperator = "EXACTLY"
)

// EventCount is how many times an event must have been performed.
type EventCount struct {
	Operator CountOperator `json:"operator"`
	Value    int           `json:"value"`
}

// TimeUnit is the unit of a window.
type TimeUnit string

// Time units.
const (
	Minutes TimeUnit = "MINUTES"
	Hours   TimeUnit = "HOURS"
	Days    TimeUnit = "DAYS"
)

// Window is the last Amount units before now.
type Window struct {
	Amount int      `json:"amount"`
	Unit   TimeUnit `json:"unit"`
}

// Duration is the window's length.
func (w *Window) Duration() time.Duration {
	unit := time.Minute
	switch w.Unit {
	case Hours:
		unit = time.Hour
	case Days:
		unit = 24 * time.Hour
	}
	return time.Duration(w.Amount) * unit
}

// PropertyCondition compares one of an event's properties.
type PropertyCondition struct {
	Name     string   `json:"name"`
	Operator Operator `json:"operator"`
	Value    *string  `json:"value,omitempty"`
}

// EventCondition holds for profiles that performed (or, with Performed false, did not perform)
// events of a type (and name), with properties, Count times within Window (at least once ever by
// default).
type EventCondition struct {
	Type       *ingest.Type         `json:"type,omitempty"`
	Name       *string              `json:"name,omitempty"`
	Performed  *bool                `json:"performed,omitempty"`
	Count      *EventCount          `json:"count,omitempty"`
	Within     *Window              `json:"within,omitempty"`
	Properties []*PropertyCondition `json:"properties,omitempty"`
}

// MembershipCondition holds for the members of another audience of the workspace.
type MembershipCondition struct {
	AudienceID string `json:"audienceId"`
}

// Limits of a definition.
const (
	maxDepth      = 8
	maxConditions = 50
	maxWindow     = 366 * 24 * time.Hour
	maxNameLen    = 200
)

var (
	keyPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)
	validTypes   = map[ingest.Type]bool{ingest.Track: true, ingest.Identify: true, ingest.Page: true, ingest.Screen: true, ingest.Group: true, ingest.Alias: true}
	validOps     = map[Operator]bool{Equals: true, NotEquals: true, Contains: true, NotContains: true, Exists: true, NotExists: true, Greater: true, GreaterEqual: true, Less: true, LessEqual: true}
	validCounts  = map[CountOperator]bool{AtLeast: true, AtMost: true, Exactly: true}
	validUnits   = map[TimeUnit]bool{Minutes: true, Hours: true, Days: true}
	numericOps   = map[Operator]bool{Greater: true, GreaterEqual: true, Less: true, LessEqual: true}
	valuelessOps = map[Operator]bool{Exists: true, NotExists: true}
)

// validate checks a definition's shape and rules, with each problem's path in the input
// ("definition.and.1.event.count.value"). Audiences it names are checked by the caller (refs).
func validate(errs *apperr.UserErrors, path string, c *Condition) {
	n := 0
	validateNode(errs, path, c, 1, &n)
	if n > maxConditions {
		errs.Add(path, apperr.InvalidValue, "a definition has at most %d conditions; this one has %d", maxConditions, n)
	}
}

func validateNode(errs *apperr.UserErrors, path string, c *Condition, depth int, n *int) {
	if c == nil {
		errs.Add(path, apperr.Required, "a condition is required")
		return
	}
	*n++
	if depth > maxDepth {
		errs.Add(path, apperr.InvalidValue, "conditions nest at most %d deep", maxDepth)
		return
	}
	set := 0
	for _, on := range []bool{c.Trait != nil, c.ComputedTrait != nil, c.Event != nil, c.Audience != nil, c.And != nil, c.Or != nil, c.Not != nil} {
		if on {
			set++
		}
	}
	if set != 1 {
		errs.Add(path, apperr.InvalidValue, "a condition has exactly one of trait, computedTrait, event, audience, and, or, not; this one has %d", set)
		return
	}
	switch {
	case c.Trait != nil:
		t := c.Trait
		if strings.TrimSpace(t.Name) == "" || len(t.Name) > maxNameLen {
			errs.Add(path+".trait.name", apperr.Required, "a trait's name is required, at most %d characters", maxNameLen)
		}
		validateCompare(errs, path+".trait", t.Operator, t.Value)
	case c.ComputedTrait != nil:
		t := c.ComputedTrait
		if !keyPattern.MatchString(t.Key) {
			errs.Add(path+".computedTrait.key", apperr.InvalidValue, "a computed trait's key is lower-case letters, digits and '_', starting with a letter")
		}
		validateCompare(errs, path+".computedTrait", t.Operator, t.Value)
	case c.Event != nil:
		e := c.Event
		p := path + ".event"
		if e.Type != nil && !validTypes[*e.Type] {
			errs.Add(p+".type", apperr.InvalidValue, "type %q is not an event type", *e.Type)
		}
		if e.Name != nil && (strings.TrimSpace(*e.Name) == "" || len(*e.Name) > maxNameLen) {
			errs.Add(p+".name", apperr.InvalidValue, "an event's name is not blank, at most %d characters", maxNameLen)
		}
		if e.Count != nil {
			if !validCounts[e.Count.Operator] {
				errs.Add(p+".count.operator", apperr.InvalidValue, "operator %q is not AT_LEAST, AT_MOST or EXACTLY", e.Count.Operator)
			}
			if e.Count.Value < 0 || e.Count.Value > 1_000_000 {
				errs.Add(p+".count.value", apperr.InvalidValue, "a count is 0 to 1000000")
			}
		}
		if w := e.Within; w != nil {
			if !validUnits[w.Unit] {
				errs.Add(p+".within.unit", apperr.InvalidValue, "unit %q is not MINUTES, HOURS or DAYS", w.Unit)
			} else if w.Amount < 1 || w.Duration() > maxWindow {
				errs.Add(p+".within.amount", apperr.InvalidValue, "a window is at least 1 unit and at most 366 days")
			}
		}
		for i, pc := range e.Properties {
			pp := fmt.Sprintf("%s.properties.%d", p, i)
			if pc == nil || !propertyPattern.MatchString(pc.Name) {
				errs.Add(pp+".name", apperr.InvalidValue, "a property's name is letters, digits, '_', '-', '$' and ' ', dot-separated for nested properties")
				continue
			}
			validateCompare(errs, pp, pc.Operator, pc.Value)
		}
	case c.Audience != nil:
		if !strings.HasPrefix(c.Audience.AudienceID, Prefix+"_") {
			errs.Add(path+".audience.audienceId", apperr.InvalidValue, "audienceId is not an audience's id")
		}
	case c.Not != nil:
		validateNode(errs, path+".not", c.Not, depth+1, n)
	default:
		list, name := c.And, "and"
		if c.Or != nil {
			list, name = c.Or, "or"
		}
		if len(list) == 0 {
			errs.Add(path+"."+name, apperr.Required, "%s needs at least one condition", name)
		}
		for i, sub := range list {
			validateNode(errs, fmt.Sprintf("%s.%s.%d", path, name, i), sub, depth+1, n)
		}
	}
}

var propertyPattern = regexp.MustCompile(`^[A-Za-z0-9_\-$ ]+(\.[A-Za-z0-9_\-$ ]+)*$`)

func validateCompare(errs *apperr.UserErrors, path string, op Operator, value *string) {
	switch {
	case !validOps[op]:
		errs.Add(path+".operator", apperr.InvalidValue, "operator %q is not one of the comparison operators", op)
	case valuelessOps[op]:
		if value != nil {
			errs.Add(path+".value", apperr.NotAllowed, "%s takes no value", op)
		}
	case value == nil:
		errs.Add(path+".value", apperr.Required, "%s needs a value", op)
	case numericOps[op]:
		if _, err := strconv.ParseFloat(*value, 64); err != nil {
			errs.Add(path+".value", apperr.InvalidValue, "%s compares numbers: %q is not one", op, *value)
		}
	case len(*value) > 1000:
		errs.Add(path+".value", apperr.TooLong, "a value is at most 1000 characters")
	}
}

// refs are the audiences a definition names, each once.
func refs(c *Condition) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(*Condition)
	walk = func(c *Condition) {
		if c == nil {
			return
		}
		if c.Audience != nil && !seen[c.Audience.AudienceID] {
			seen[c.Audience.AudienceID] = true
			out = append(out, c.Audience.AudienceID)
		}
		for _, s := range c.And {
			walk(s)
		}
		for _, s := range c.Or {
			walk(s)
		}
		walk(c.Not)
	}
	walk(c)
	return out
}

// windowed tells whether a definition has a time window: its members may leave as time passes.
func windowed(c *Condition) bool {
	if c == nil {
		return false
	}
	if c.Event != nil && c.Event.Within != nil {
		return true
	}
	for _, s := range append(append([]*Condition{}, c.And...), c.Or...) {
		if windowed(s) {
			return true
		}
	}
	return windowed(c.Not)
}

func parseDefinition(raw string) (*Condition, error) {
	var c Condition
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// compiler turns a definition into a SQL condition on a standing profile (alias p) of one
// workspace. In the incremental form each condition is a correlated subquery on p (cheap for a
// few hundred profiles); in the full form event conditions are one grouped scan each, which is
// what recomputing over every profile needs.
type compiler struct {
	dialect db.Dialect
	ws      string
	now     time.Time
	full    bool
	args    []any
}

func (c *compiler) compile(n *Condition) string {
	switch {
	case n.Trait != nil:
		return c.trait(n.Trait.Name, n.Trait.Operator, n.Trait.Value)
	case n.ComputedTrait != nil:
		return c.trait(n.ComputedTrait.Key, n.ComputedTrait.Operator, n.ComputedTrait.Value)
	case n.Event != nil:
		return c.event(n.Event)
	case n.Audience != nil:
		c.args = append(c.args, n.Audience.AudienceID)
		return `EXISTS (SELECT 1 FROM audience_members am WHERE am.audience_id = ? AND am.profile_id = p.id)`
	case n.Not != nil:
		return "NOT (" + c.compile(n.Not) + ")"
	}
	list, op := n.And, " AND "
	if n.Or != nil {
		list, op = n.Or, " OR "
	}
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = "(" + c.compile(s) + ")"
	}
	return strings.Join(parts, op)
}

// trait compiles a trait condition. NOT_EQUALS and NOT_CONTAINS hold for profiles without the
// trait too (they are the negation of EQUALS and CONTAINS).
func (c *compiler) trait(name string, op Operator, value *string) string {
	if pos, ok := negated[op]; ok {
		return "NOT (" + c.trait(name, pos, value) + ")"
	}
	c.args = append(c.args, name)
	isNum, num := "json_type(pt.value) IN ('integer', 'real')", "CAST(pt.value AS REAL)"
	if c.dialect == db.Postgres {
		isNum, num = "jsonb_typeof(pt.value::jsonb) = 'number'", "pt.value::float8"
	}
	return `EXISTS (SELECT 1 FROM profile_traits pt WHERE pt.profile_id = p.id AND pt.name = ?` + c.compare("pt.text", isNum, num, op, value) + `)`
}

// negated maps each negative operator to the positive one it negates.
var negated = map[Operator]Operator{NotEquals: Equals, NotContains: Contains, NotExists: Exists}

// compare is " AND <test>" for a positive operator, of a value held as text (a string's text,
// other values' JSON), with isNum telling whether it is a number and num its number.
func (c *compiler) compare(text, isNum, num string, op Operator, value *string) string {
	switch op {
	case Exists:
		return ""
	case Equals:
		c.args = append(c.args, *value)
		return " AND " + text + " = ?"
	case Contains:
		c.args = append(c.args, strings.ToLower(*value))
		if c.dialect == db.Postgres {
			return " AND STRPOS(LOWER(" + text + "), ?) > 0"
		}
		return " AND INSTR(LOWER(" + text + "), ?) > 0"
	}
	f, _ := strconv.ParseFloat(*value, 64)
	c.args = append(c.args, f)
	sym := map[Operator]string{Greater: ">", GreaterEqual: ">=", Less: "<", LessEqual: "<="}[op]
	return " AND (CASE WHEN " + isNum + " THEN " + num + " END) " + sym + " ?"
}

// property compiles one property condition on the payload of the event e: a string's text, or
// another value's JSON, as traits are compared.
func (c *compiler) property(pc *PropertyCondition) string {
	if pos, ok := negated[pc.Operator]; ok {
		return "NOT (" + c.property(&PropertyCondition{Name: pc.Name, Operator: pos, Value: pc.Value}) + ")"
	}
	segs := quoteAll(strings.Split(pc.Name, "."), `"`)
	var text, isNum, num string
	if c.dialect == db.Postgres {
		path := "'{properties," + strings.Join(segs, ",") + "}'"
		text = "(e.payload::jsonb #>> " + path + ")"
		isNum = "jsonb_typeof(e.payload::jsonb #> " + path + ") = 'number'"
		num = "(e.payload::jsonb #>> " + path + ")::float8"
	} else {
		path := "'$.properties." + strings.Join(segs, ".") + "'"
		// json_extract gives SQL values (true is 1): json_type tells what the JSON held.
		text = "(CASE json_type(e.payload, " + path + ") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' " +
			"ELSE CAST(json_extract(e.payload, " + path + ") AS TEXT) END)"
		isNum = "json_type(e.payload, " + path + ") IN ('integer', 'real')"
		num = "CAST(json_extract(e.payload, " + path + ") AS REAL)"
	}
	return text + " IS NOT NULL" + c.compare(text, isNum, num, pc.Operator, pc.Value)
}

func quoteAll(segs []string, q string) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = q + s + q
	}
	return out
}

// event compiles an event condition: the number of matching events (of the profile and of the
// profiles merged into it) within the window, compared with the count.
func (c *compiler) event(e *EventCondition) string {
	op, n := AtLeast, 1
	if e.Count != nil {
		op, n = e.Count.Operator, e.Count.Value
	}
	negate := e.Performed != nil && !*e.Performed
	// Each count test as "some events match at least k" (positive) or its negation.
	var test string
	switch {
	case op == AtLeast && n == 0:
		test = "1 = 1"
	case op == AtLeast:
		test = c.eventCount(e, ">= ?", n)
	case op == AtMost:
		test = "NOT (" + c.eventCount(e, "> ?", n) + ")"
	case n == 0: // exactly 0
		test = "NOT (" + c.eventCount(e, ">= ?", 1) + ")"
	default:
		test = c.eventCount(e, "= ?", n)
	}
	if negate {
		return "NOT (" + test + ")"
	}
	return test
}

// eventCount is the test that a profile's matching events number `having` (e.g. ">= ?" with n).
func (c *compiler) eventCount(e *EventCondition, having string, n int) string {
	typ := ingest.Track
	if e.Type != nil {
		typ = *e.Type
	}
	where := `e.type = ?`
	args := []any{string(typ)}
	if e.Name != nil {
		where += ` AND e.event_name = ?`
		args = append(args, *e.Name)
	}
	floor := ""
	if e.Within != nil {
		// Event ids are time-sortable: the window is a range of the profile's event ids, read
		// from profile_events alone.
		floor = " AND pe.event_id >= ?"
	}
	inner := c.args
	c.args = nil
	for _, pc := range e.Properties {
		where += " AND " + c.property(pc)
	}
	propArgs := c.args
	c.args = inner
	var floorArg []any
	if e.Within != nil {
		floorArg = []any{id.Floor(ingest.EventPrefix, c.now.Add(-e.Within.Duration()))}
	}
	if c.full {
		c.args = append(c.args, c.ws)
		c.args = append(c.args, floorArg...)
		c.args = append(c.args, args...)
		c.args = append(c.args, propArgs...)
		c.args = append(c.args, n)
		return `p.id IN (SELECT COALESCE(x.merged_into, x.id) FROM profiles x JOIN profile_events pe ON pe.profile_id = x.id
			JOIN events e ON e.id = pe.event_id WHERE x.workspace_id = ?` + floor + ` AND ` + where + `
			GROUP BY COALESCE(x.merged_into, x.id) HAVING COUNT(*) ` + having + `)`
	}
	c.args = append(c.args, floorArg...)
	c.args = append(c.args, args...)
	c.args = append(c.args, propArgs...)
	c.args = append(c.args, n)
	return `(SELECT COUNT(*) FROM profile_events pe JOIN events e ON e.id = pe.event_id
		WHERE pe.profile_id IN (SELECT x.id FROM profiles x WHERE x.id = p.id OR x.merged_into = p.id)` + floor + ` AND ` + where + `) ` + having
}
