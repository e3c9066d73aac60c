package protocols

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/junctioncdp/junction/internal/ingest"
)

// ViolationType is the kind of rule an event broke.
type ViolationType string

const (
	MissingRequired   ViolationType = "MISSING_REQUIRED"
	WrongType         ViolationType = "WRONG_TYPE"
	NotAllowedValue   ViolationType = "NOT_ALLOWED_VALUE" // enum, const, pattern, format, ranges
	UnplannedEvent    ViolationType = "UNPLANNED_EVENT"
	UnplannedProperty ViolationType = "UNPLANNED_PROPERTY"
	CommonSchema      ViolationType = "COMMON_SCHEMA"
)

// RuleTypes are the event types a rule may be for.
var RuleTypes = []ingest.Type{ingest.Track, ingest.Identify, ingest.Group, ingest.Page, ingest.Screen}

func ruleType(t ingest.Type) bool {
	for _, x := range RuleTypes {
		if x == t {
			return true
		}
	}
	return false
}

// RuleKey names a rule within a plan: its event type and, for track, page and screen, the name.
func RuleKey(t ingest.Type, name string) string { return string(t) + ":" + name }

// schemaFields are the parts of an event a rule's schemas describe.
var schemaFields = []string{"properties", "traits", "context"}

// compileSchema compiles one JSON Schema (draft 2020-12 unless its $schema names draft-07 or
// another draft the library knows). Nothing is loaded from elsewhere: a $ref to another document
// does not compile. Formats (date-time, email...) are asserted, as a tracking plan means them.
func compileSchema(doc any) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	const url = "urn:junction:schema"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// schemaError says why a schema does not compile, and where in it: the path within the schema
// (such as properties.price.type) and a sentence.
func schemaError(err error) (path, msg string) {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			leaf := deepest(ve)
			return strings.Join(leaf.InstanceLocation, "."), leaf.ErrorKind.LocalizedString(printer)
		}
	}
	var le *jsonschema.LoadURLError
	if errors.As(err, &le) {
		return "", "refers to " + le.URL + ", which is not part of the schema: only references within the schema work"
	}
	return "", strings.TrimPrefix(err.Error(), "jsonschema: ")
}

func deepest(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := e
	for _, c := range e.Causes {
		if d := deepest(c); len(d.InstanceLocation) > len(best.InstanceLocation) || best == e {
			best = d
		}
	}
	return best
}

var printer = message.NewPrinter(language.English)

// parseSchema decodes a schema given as text or as a JSON value into the form the compiler takes
// (numbers kept exact), and its canonical text (keys sorted, no spaces), which is what is stored.
func parseSchema(v any) (doc any, canonical string, err error) {
	var raw []byte
	switch x := v.(type) {
	case nil:
		return nil, "", nil
	case string:
		raw = []byte(x)
	case json.RawMessage:
		raw = x
	default:
		if raw, err = json.Marshal(x); err != nil {
			return nil, "", err
		}
	}
	doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("is not JSON: %v", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		if _, isBool := doc.(bool); !isBool {
			return nil, "", errors.New("must be a JSON Schema: an object (or true or false)")
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, "", err
	}
	return doc, string(b), nil
}

// Controls are a source's schema controls (Segment's four), and where it forwards what it blocks.
type Controls struct {
	UnplannedEvents        string // ALLOW, BLOCK (track calls)
	UnplannedProperties    string // ALLOW, OMIT (properties; identify and group traits)
	Violations             string // ALLOW, OMIT_PROPERTIES, BLOCK
	CommonSchemaViolations string // ALLOW, OMIT_PROPERTIES, BLOCK
	ForwardBlockedTo       *string
	ForwardViolationsTo    *string
}

// Control values.
const (
	Allow          = "ALLOW"
	Block          = "BLOCK"
	Omit           = "OMIT"
	OmitProperties = "OMIT_PROPERTIES"
)

// DefaultControls let everything through: violations are recorded, nothing is changed.
var DefaultControls = Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: Allow, CommonSchemaViolations: Allow}

// compiledPlan is one version of a plan, ready to check events. Rules compile on first use, so
// that a change to a plan of thousands of rules costs nothing until their events arrive; each
// compiles once per version.
type compiledPlan struct {
	id, name string
	version  int64
	rules    map[ruleID]*compiledRule
	common   *jsonschema.Schema
}

type ruleID struct {
	typ  ingest.Type
	name string
}

type compiledRule struct {
	rule    *Rule
	once    sync.Once
	schemas [3]*jsonschema.Schema // by schemaFields
	// planned are the keys the rule's properties (track, page, screen) or traits (identify,
	// group) schema declares; nil when that schema leaves keys open.
	planned  map[string]bool
	patterns []*regexp.Regexp
	closed   bool // additionalProperties is false: the schema itself reports unplanned keys
	field    string
}

// newCompiledPlan prepares a plan's rules for checking; the common schema compiles now.
func newCompiledPlan(p *Plan, rules []Rule) (*compiledPlan, error) {
	cp := &compiledPlan{id: p.ID, name: p.Name, version: p.Version, rules: make(map[ruleID]*compiledRule, len(rules))}
	for i := range rules {
		r := &rules[i]
		cp.rules[ruleID{r.Type, r.EventName}] = &compiledRule{rule: r}
	}
	if p.CommonSchema != nil {
		doc, _, err := parseSchema(*p.CommonSchema)
		if err != nil {
			return nil, err
		}
		if cp.common, err = compileSchema(doc); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

func (r *compiledRule) compile() {
	r.once.Do(func() {
		r.field = "properties"
		if r.rule.Type == ingest.Identify || r.rule.Type == ingest.Group {
			r.field = "traits"
		}
		for i, f := range schemaFields {
			text := r.rule.schema(f)
			if text == nil {
				continue
			}
			doc, _, err := parseSchema(*text)
			if err != nil {
				continue // stored schemas were checked when saved
			}
			r.schemas[i], _ = compileSchema(doc)
			if f == r.field {
				r.planned, r.patterns, r.closed = plannedKeys(doc)
			}
		}
	})
}

// plannedKeys reads which keys of an object a schema plans: those under properties and those
// matching patternProperties. A schema with additionalProperties set decides itself (closed when
// false, open otherwise): then nil.
func plannedKeys(doc any) (map[string]bool, []*regexp.Regexp, bool) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, nil, false
	}
	if ap, set := m["additionalProperties"]; set {
		return nil, nil, ap == false
	}
	planned := map[string]bool{}
	if props, ok := m["properties"].(map[string]any); ok {
		for k := range props {
			planned[k] = true
		}
	}
	var patterns []*regexp.Regexp
	if pp, ok := m["patternProperties"].(map[string]any); ok {
		for p := range pp {
			if re, err := regexp.Compile(p); err == nil {
				patterns = append(patterns, re)
			}
		}
	}
	return planned, patterns, false
}

func (r *compiledRule) isPlanned(key string) bool {
	if r.planned == nil || r.planned[key] {
		return true
	}
	for _, re := range r.patterns {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

// result is what checking one event decided.
type result struct {
	violations []ingest.Violation
	blocked    bool
	omit       [][]string // paths in the event to remove
}

// check validates one event's payload against the plan with a source's controls.
func (cp *compiledPlan) check(typ ingest.Type, name string, doc map[string]any, c *Controls) result {
	var res result
	if ruleType(typ) {
		r := cp.rules[ruleID{typ, name}]
		switch {
		case r == nil && typ == ingest.Track:
			res.violations = append(res.violations, ingest.Violation{Type: string(UnplannedEvent), Field: "event",
				Message: fmt.Sprintf("the event %q is not in the tracking plan", name)})
			if c.UnplannedEvents == Block {
				res.blocked = true
			}
		case r != nil:
			cp.checkRule(r, doc, c, &res)
		}
	}
	if cp.common != nil {
		var found []found
		collect(cp.common.Validate(any(doc)), nil, &found)
		for _, f := range found {
			res.violations = append(res.violations, ingest.Violation{Type: string(CommonSchema), Field: f.field(""), Message: f.message("")})
			switch c.CommonSchemaViolations {
			case Block:
				res.blocked = true
			case OmitProperties:
				if len(f.path) >= 2 && isSchemaField(f.path[0]) && f.typ != MissingRequired {
					res.omit = append(res.omit, f.path)
				}
			}
		}
	}
	return res
}

func isSchemaField(s string) bool { return s == "properties" || s == "traits" || s == "context" }

func (cp *compiledPlan) checkRule(r *compiledRule, doc map[string]any, c *Controls, res *result) {
	r.compile()
	for i, f := range schemaFields {
		sch := r.schemas[i]
		if sch == nil {
			continue
		}
		v, _ := doc[f].(map[string]any)
		if v == nil {
			v = map[string]any{} // an absent object has none of its required keys
		}
		var found []found
		collect(sch.Validate(any(v)), nil, &found)
		for _, x := range found {
			res.violations = append(res.violations, ingest.Violation{Type: string(x.typ), Field: x.field(f), Message: x.message(f)})
			omittable := len(x.path) >= 1 && x.typ != MissingRequired
			if x.typ == UnplannedProperty {
				if c.UnplannedProperties == Omit && omittable {
					res.omit = append(res.omit, append([]string{f}, x.path[0]))
				}
				continue
			}
			switch c.Violations {
			case Block:
				res.blocked = true
			case OmitProperties:
				if omittable {
					res.omit = append(res.omit, append([]string{f}, x.path[0]))
				}
			}
		}
	}
	if r.closed {
		return // additionalProperties: false reported the unplanned keys above
	}
	obj, _ := doc[r.field].(map[string]any)
	if len(obj) == 0 || (r.planned == nil && r.patterns == nil) {
		return
	}
	var unplanned []string
	for k := range obj {
		if !r.isPlanned(k) {
			unplanned = append(unplanned, k)
		}
	}
	sort.Strings(unplanned)
	for _, k := range unplanned {
		res.violations = append(res.violations, ingest.Violation{Type: string(UnplannedProperty), Field: r.field + "." + k,
			Message: fmt.Sprintf("%s.%s is not in the tracking plan", r.field, k)})
		if c.UnplannedProperties == Omit {
			res.omit = append(res.omit, []string{r.field, k})
		}
	}
}

// found is one leaf error of a validation, classified.
type found struct {
	typ  ViolationType
	path []string // within the validated value
	text string
	kind jsonschema.ErrorKind
}

func (f found) field(prefix string) string {
	parts := f.path
	if prefix != "" {
		parts = append([]string{prefix}, f.path...)
	}
	if len(parts) == 0 {
		return "(event)"
	}
	return strings.Join(parts, ".")
}

func (f found) message(prefix string) string {
	field := f.field(prefix)
	switch k := f.kind.(type) {
	case *kind.Type:
		return fmt.Sprintf("%s must be %s, not %s", field, strings.Join(k.Want, " or "), k.Got)
	case *kind.Required, *kind.DependentRequired, *kind.Dependency:
		return field + " is required"
	case *kind.AdditionalProperties:
		return field + " is not in the tracking plan"
	}
	return field + ": " + f.text
}

// collect flattens a validation error into classified leaves: one per missing key and per
// unplanned key, one per other failed keyword. anyOf, oneOf and not count as one each.
func collect(err error, _ []string, out *[]found) {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	walk(ve, out)
}

func walk(e *jsonschema.ValidationError, out *[]found) {
	loc := e.InstanceLocation
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, found{typ: MissingRequired, path: appendPath(loc, m), kind: k})
		}
		return
	case *kind.DependentRequired:
		for _, m := range k.Missing {
			*out = append(*out, found{typ: MissingRequired, path: appendPath(loc, m), kind: k})
		}
		return
	case *kind.Dependency:
		for _, m := range k.Missing {
			*out = append(*out, found{typ: MissingRequired, path: appendPath(loc, m), kind: k})
		}
		return
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			*out = append(*out, found{typ: UnplannedProperty, path: appendPath(loc, p), kind: k})
		}
		return
	case *kind.Type:
		*out = append(*out, found{typ: WrongType, path: loc, kind: k, text: k.LocalizedString(printer)})
		return
	case *kind.AnyOf, *kind.OneOf, *kind.Not:
		typ := WrongType
		for _, c := range e.Causes {
			if _, ok := c.ErrorKind.(*kind.Type); !ok {
				typ = NotAllowedValue
			}
		}
		if len(e.Causes) == 0 {
			typ = NotAllowedValue
		}
		*out = append(*out, found{typ: typ, path: loc, kind: e.ErrorKind, text: e.ErrorKind.LocalizedString(printer)})
		return
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		for _, c := range e.Causes {
			walk(c, out)
		}
		return
	}
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			walk(c, out)
		}
		return
	}
	*out = append(*out, found{typ: NotAllowedValue, path: loc, kind: e.ErrorKind, text: e.ErrorKind.LocalizedString(printer)})
}

func appendPath(loc []string, key string) []string {
	return append(append(make([]string, 0, len(loc)+1), loc...), key)
}

// omit removes the values at paths from doc and notes their paths under context.protocols.omitted
// (Segment inserts context.protocols in events whose properties it omitted).
func omit(doc map[string]any, paths [][]string) bool {
	var removed []string
	seen := map[string]bool{}
	for _, p := range paths {
		if len(p) < 2 || !isSchemaField(p[0]) {
			continue
		}
		key := strings.Join(p, ".")
		if seen[key] {
			continue
		}
		seen[key] = true
		m, _ := doc[p[0]].(map[string]any)
		for _, k := range p[1 : len(p)-1] {
			if m == nil {
				break
			}
			m, _ = m[k].(map[string]any)
		}
		if m == nil {
			continue
		}
		if _, ok := m[p[len(p)-1]]; ok {
			delete(m, p[len(p)-1])
			removed = append(removed, key)
		}
	}
	if len(removed) == 0 {
		return false
	}
	sort.Strings(removed)
	ctx, _ := doc["context"].(map[string]any)
	if ctx == nil {
		ctx = map[string]any{}
		doc["context"] = ctx
	}
	pr, _ := ctx["protocols"].(map[string]any)
	if pr == nil {
		pr = map[string]any{}
		ctx["protocols"] = pr
	}
	pr["omitted"] = removed
	return true
}
