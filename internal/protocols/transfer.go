package protocols

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
)

// Formats of export and import.
const (
	FormatJSON = "JSON"
	FormatCSV  = "CSV"
)

// planFile is the JSON form of a plan: its name, description, common schema and rules by key.
type planFile struct {
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	CommonSchema any        `json:"commonSchema"`
	Rules        []ruleFile `json:"rules"`
}

type ruleFile struct {
	Type        ingest.Type `json:"type"`
	EventName   string      `json:"eventName"`
	Description string      `json:"description"`
	Labels      []string    `json:"labels"`
	Properties  any         `json:"properties"`
	Traits      any         `json:"traits"`
	Context     any         `json:"context"`
}

// Export writes a plan as JSON or as Segment's tracking plan CSV. Importing the text into a plan
// and exporting it again gives the same text.
func (s *Service) Export(ctx context.Context, planID, format string) (string, error) {
	p, _, err := s.loadPlan(ctx, s.db.Reader(), planID)
	if err != nil {
		return "", err
	}
	rules, err := s.allRules(ctx, s.db.Reader(), p.ID)
	if err != nil {
		return "", err
	}
	if format == FormatCSV {
		return exportCSV(p, rules), nil
	}
	f := planFile{Name: p.Name, Description: p.Description, Rules: []ruleFile{}}
	if p.CommonSchema != nil {
		f.CommonSchema = json.RawMessage(*p.CommonSchema)
	}
	for _, r := range rules {
		rf := ruleFile{Type: r.Type, EventName: r.EventName, Description: r.Description, Labels: r.Labels()}
		for _, x := range []struct {
			src *string
			dst *any
		}{{r.Properties, &rf.Properties}, {r.Traits, &rf.Traits}, {r.Context, &rf.Context}} {
			if x.src != nil {
				*x.dst = json.RawMessage(*x.src)
			}
		}
		f.Rules = append(f.Rules, rf)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Import reads a plan's text (JSON or CSV) into a new plan of workspaceID (named name, or as the
// JSON says), or, with planID, replaces that plan's rules (and, from JSON, its description and
// common schema) with the text's, in one version. Owners and admins.
func (s *Service) Import(ctx context.Context, workspaceID, planID, name, format, text string) (*Plan, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var f planFile
	var inputs []RuleInput
	setCommon := false
	switch format {
	case FormatJSON:
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			errs.Add("text", apperr.InvalidValue, "text is not a plan in JSON: %v", err)
			return nil, errs, nil
		}
		for _, r := range f.Rules {
			labels := r.Labels
			inputs = append(inputs, RuleInput{Type: r.Type, EventName: r.EventName, Description: r.Description, Labels: labels,
				Properties: r.Properties, Traits: r.Traits, Context: r.Context})
		}
		setCommon = true
	case FormatCSV:
		var common any
		inputs, common = parseCSV(&errs, text)
		if common != nil {
			f.CommonSchema, setCommon = common, true
		}
	default:
		errs.Add("format", apperr.InvalidValue, "format must be JSON or CSV")
	}
	if name != "" {
		f.Name = name
	}
	rules := make([]Rule, 0, len(inputs))
	seen := map[string]int{}
	for i, in := range inputs {
		field := fmt.Sprintf("text.rules.%d", i)
		r, ok := validateRule(&errs, field, in)
		if !ok {
			continue
		}
		if j, dup := seen[r.Key]; dup {
			errs.Add(field, apperr.Taken, "%s is the rule %s, which rule %d gives already", field, r.Key, j)
			continue
		}
		seen[r.Key] = i
		rules = append(rules, r)
	}
	var common *string
	if setCommon {
		common = checkSchema(&errs, "text.commonSchema", "the common schema", f.CommonSchema)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	if planID == "" {
		a, err := s.workspaces.Access(ctx, workspaceID)
		if err != nil {
			return nil, nil, err
		}
		var p *Plan
		err = s.db.Tx(ctx, func(tx *db.Tx) error {
			if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
				return err
			}
			f.Name = strings.TrimSpace(f.Name)
			if f.Name == "" {
				errs.Add("name", apperr.Required, "name is required: the text does not give one")
				return nil
			}
			validateName(&errs, f.Name)
			checkDescription(&errs, "text.description", f.Description)
			if len(errs) > 0 {
				return nil
			}
			var err error
			if p, err = s.insertPlan(ctx, tx, a, f.Name, f.Description, common); err != nil {
				return err
			}
			if len(rules) == 0 {
				return nil
			}
			_, changes, _, err := s.upsertRules(ctx, tx, p, rules)
			if err != nil {
				return err
			}
			p.Version++
			if _, err := tx.Exec(ctx, `UPDATE tracking_plans SET version = ? WHERE id = ?`, p.Version, p.ID); err != nil {
				return err
			}
			return s.recordVersion(ctx, tx, p, fmt.Sprintf("imported %d rules from %s", len(rules), format), changes)
		})
		ue, err := userErrs(err)
		errs = append(errs, ue...)
		if err != nil || len(errs) > 0 {
			return nil, errs, err
		}
		return p, nil, nil
	}
	p, err := s.change(ctx, planID, func(tx *db.Tx, p *Plan) (string, []ruleChange, map[string]any, error) {
		var what []string
		if format == FormatJSON && f.Description != p.Description {
			p.Description = f.Description
			what = append(what, "changed the description")
		}
		if setCommon && deref(common) != deref(p.CommonSchema) {
			p.CommonSchema = common
			what = append(what, "changed the common schema")
		}
		if name != "" && name != p.Name {
			p.Name = name
			what = append(what, "renamed the plan")
		}
		keep := map[string]bool{}
		for _, r := range rules {
			keep[r.Key] = true
		}
		old, err := s.allRules(ctx, &tx.Queryer, p.ID)
		if err != nil {
			return "", nil, nil, err
		}
		var changes []ruleChange
		for _, r := range old {
			if !keep[r.Key] {
				if _, err := tx.Exec(ctx, `DELETE FROM tracking_plan_rules WHERE plan_id = ? AND rule_key = ?`, p.ID, r.Key); err != nil {
					return "", nil, nil, err
				}
				changes = append(changes, ruleChange{Rule: r.Key, Action: "REMOVED"})
			}
		}
		summary, upserted, _, err := s.upsertRules(ctx, tx, p, rules)
		if err != nil {
			return "", nil, nil, err
		}
		changes = append(changes, upserted...)
		if summary != "" || len(changes) > 0 {
			what = append(what, fmt.Sprintf("imported %d rules from %s (%d rule changes)", len(rules), format, len(changes)))
		}
		if len(what) == 0 {
			return "", nil, nil, nil
		}
		return strings.Join(what, ", "), changes, auditedRules(changes), nil
	})
	ue, err := userErrs(err)
	if err != nil || len(ue) > 0 {
		return nil, ue, err
	}
	return p, nil, nil
}

// Segment's tracking plan CSV: one row per event, then one per property (or trait) of it, nested
// objects' properties by dotted name. A rule whose schemas say more than these columns can (other
// keywords, context schemas, the common schema) is written whole, as JSON, in a last column,
// added only when some rule needs it, so that every plan round-trips exactly.
var csvHeader = []string{"Version", "Event Type", "Event Name", "Property Name", "Source", "Description", "Labels",
	"Property Status", "Property Data Type", "Allowed Property Values", "Enum Values"}

const csvJSONColumn = "JSON Schema"

var csvTypes = map[ingest.Type]string{ingest.Track: "Track", ingest.Identify: "Identify", ingest.Group: "Group", ingest.Page: "Page", ingest.Screen: "Screen"}

func exportCSV(p *Plan, rules []Rule) string {
	type line []string
	var lines []line
	needJSON := p.CommonSchema != nil
	for _, r := range rules {
		field, props, ok := simpleRule(&r)
		ev := line{"1", csvTypes[r.Type], r.EventName, "", "", r.Description, strings.Join(r.Labels(), ","), "", "", "", "", ""}
		if !ok {
			needJSON = true
			whole := map[string]any{}
			for _, f := range schemaFields {
				if t := r.schema(f); t != nil {
					whole[f] = json.RawMessage(*t)
				}
			}
			ev[11] = marshal(whole)
			lines = append(lines, ev)
			continue
		}
		lines = append(lines, ev)
		_ = field
		for _, pr := range props {
			lines = append(lines, line{"1", csvTypes[r.Type], r.EventName, pr.name, "", pr.description, "", pr.status, pr.dataType, pr.pattern, pr.enum, ""})
		}
	}
	if p.CommonSchema != nil {
		lines = append(lines, line{"1", "Common", "", "", "", "", "", "", "", "", "", *p.CommonSchema})
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	header := csvHeader
	if needJSON {
		header = append(append([]string(nil), csvHeader...), csvJSONColumn)
	}
	_ = w.Write(header)
	for _, l := range lines {
		_ = w.Write(l[:len(header)])
	}
	w.Flush()
	return buf.String()
}

// csvProperty is one property row.
type csvProperty struct {
	name, description, status, dataType, pattern, enum string
}

// simpleRule tells whether a rule's schemas fit the CSV columns, and lists its property rows: only
// a properties schema (track, page, screen) or a traits schema (identify, group) of type object
// whose properties use type, description, pattern, enum (of strings) and nested objects, with
// required keys listed in order.
func simpleRule(r *Rule) (string, []csvProperty, bool) {
	field := "properties"
	if r.Type == ingest.Identify || r.Type == ingest.Group {
		field = "traits"
	}
	for _, f := range schemaFields {
		if f != field && r.schema(f) != nil {
			return field, nil, false
		}
	}
	text := r.schema(field)
	if text == nil {
		return field, nil, true
	}
	doc, _, err := parseSchema(*text)
	if err != nil {
		return field, nil, false
	}
	var props []csvProperty
	if !simpleObject(doc, "", &props, true) || len(props) == 0 {
		return field, nil, false
	}
	// The columns must give back exactly the stored text.
	back, ok := buildObject(props, "")
	if !ok || marshal(back) != *text {
		return field, nil, false
	}
	return field, props, true
}

func simpleObject(doc any, prefix string, out *[]csvProperty, top bool) bool {
	m, ok := doc.(map[string]any)
	if !ok || m["type"] != "object" {
		return false
	}
	for k := range m {
		if k != "type" && k != "properties" && k != "required" && (top || k != "description") {
			return false
		}
	}
	props, _ := m["properties"].(map[string]any)
	if _, has := m["properties"]; has && len(props) == 0 {
		return false
	}
	required := map[string]bool{}
	if req, has := m["required"]; has {
		list, ok := req.([]any)
		if !ok || len(list) == 0 {
			return false
		}
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return false
			}
			required[s] = true
		}
	}
	names := make([]string, 0, len(props))
	for k := range props {
		if k == "" || strings.Contains(k, ".") {
			return false
		}
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, ok := props[k].(map[string]any)
		if !ok {
			return false
		}
		row := csvProperty{name: prefix + k, status: "optional"}
		if required[k] {
			row.status = "required"
		}
		for key, v := range p {
			switch key {
			case "description":
				s, ok := v.(string)
				if !ok || s == "" {
					return false
				}
				row.description = s
			case "type":
				switch t := v.(type) {
				case string:
					row.dataType = t
				case []any:
					if len(t) < 2 {
						return false
					}
					var names []string
					for _, x := range t {
						s, ok := x.(string)
						if !ok {
							return false
						}
						names = append(names, s)
					}
					row.dataType = strings.Join(names, "|")
				default:
					return false
				}
			case "pattern":
				s, ok := v.(string)
				if !ok || s == "" {
					return false
				}
				row.pattern = s
			case "enum":
				list, ok := v.([]any)
				if !ok || len(list) == 0 {
					return false
				}
				var vals []string
				for _, x := range list {
					s, ok := x.(string)
					if !ok || s == "" || strings.Contains(s, ",") {
						return false
					}
					vals = append(vals, s)
				}
				row.enum = strings.Join(vals, ",")
			case "properties", "required":
			default:
				return false
			}
		}
		if row.dataType == "" {
			row.dataType = "any"
		}
		*out = append(*out, row)
		if _, nested := p["properties"]; nested || p["required"] != nil {
			if row.dataType != "object" {
				return false
			}
			cp := map[string]any{}
			for key, v := range p {
				if key == "type" || key == "properties" || key == "required" {
					cp[key] = v
				}
			}
			if !simpleObject(cp, prefix+k+".", out, false) {
				return false
			}
		}
	}
	return true
}

// buildObject makes the object schema that property rows describe (names relative to prefix).
func buildObject(rows []csvProperty, prefix string) (map[string]any, bool) {
	obj := map[string]any{"type": "object"}
	props := map[string]any{}
	var required []any
	for i := 0; i < len(rows); i++ {
		r := rows[i]
		rest := strings.TrimPrefix(r.name, prefix)
		if !strings.HasPrefix(r.name, prefix) || strings.Contains(rest, ".") {
			return nil, false
		}
		p := map[string]any{}
		if r.description != "" {
			p["description"] = r.description
		}
		if r.dataType != "any" && r.dataType != "" {
			if strings.Contains(r.dataType, "|") {
				var list []any
				for _, t := range strings.Split(r.dataType, "|") {
					list = append(list, t)
				}
				p["type"] = list
			} else {
				p["type"] = r.dataType
			}
		}
		if r.pattern != "" {
			p["pattern"] = r.pattern
		}
		if r.enum != "" {
			var list []any
			for _, v := range strings.Split(r.enum, ",") {
				list = append(list, v)
			}
			p["enum"] = list
		}
		switch r.status {
		case "required":
			required = append(required, rest)
		case "optional", "":
		default:
			return nil, false
		}
		// Rows right after an object's row, below its name, are its properties.
		j := i + 1
		for j < len(rows) && strings.HasPrefix(rows[j].name, r.name+".") {
			j++
		}
		if j > i+1 {
			child, ok := buildObject(rows[i+1:j], r.name+".")
			if !ok {
				return nil, false
			}
			for k, v := range child {
				if k != "type" {
					p[k] = v
				}
			}
			i = j - 1
		}
		props[rest] = p
	}
	if len(props) > 0 {
		obj["properties"] = props
	}
	if len(required) > 0 {
		obj["required"] = required
	}
	return obj, true
}

// parseCSV reads Segment's CSV (with our JSON Schema column when present) into rules, in order
// of first appearance, and the common schema.
func parseCSV(errs *apperr.UserErrors, text string) ([]RuleInput, any) {
	rd := csv.NewReader(strings.NewReader(text))
	rd.FieldsPerRecord = -1
	records, err := rd.ReadAll()
	if err != nil {
		errs.Add("text", apperr.InvalidValue, "text is not CSV: %v", err)
		return nil, nil
	}
	if len(records) == 0 {
		errs.Add("text", apperr.Required, "text is empty: the first line must be the header %s", strings.Join(csvHeader, ","))
		return nil, nil
	}
	header := records[0]
	withJSON := len(header) == len(csvHeader)+1 && header[len(csvHeader)] == csvJSONColumn
	if !withJSON && strings.Join(header, ",") != strings.Join(csvHeader, ",") || withJSON && strings.Join(header[:len(csvHeader)], ",") != strings.Join(csvHeader, ",") {
		errs.Add("text", apperr.InvalidValue, "the first line must be the header %s (optionally followed by %s)", strings.Join(csvHeader, ","), csvJSONColumn)
		return nil, nil
	}
	types := map[string]ingest.Type{}
	for t, n := range csvTypes {
		types[n] = t
	}
	type pending struct {
		in    RuleInput
		props []csvProperty
		whole string
	}
	var order []string
	byKey := map[string]*pending{}
	var common any
	for i, rec := range records[1:] {
		line := i + 2
		if len(rec) != len(header) {
			errs.Add("text", apperr.InvalidValue, "line %d has %d columns, the header %d", line, len(rec), len(header))
			continue
		}
		jsonCol := ""
		if withJSON {
			jsonCol = rec[len(csvHeader)]
		}
		if rec[1] == "Common" {
			if jsonCol == "" {
				errs.Add("text", apperr.InvalidValue, "line %d: a Common row holds the common schema in the %s column", line, csvJSONColumn)
				continue
			}
			common = jsonCol
			continue
		}
		if rec[0] != "1" && rec[0] != "" {
			errs.Add("text", apperr.InvalidValue, "line %d: Version %q: only version 1 of an event is supported", line, rec[0])
			continue
		}
		t, ok := types[rec[1]]
		if !ok {
			errs.Add("text", apperr.InvalidValue, "line %d: Event Type %q must be Track, Identify, Group, Page or Screen", line, rec[1])
			continue
		}
		key := RuleKey(t, rec[2])
		p := byKey[key]
		if rec[3] == "" {
			if p != nil {
				errs.Add("text", apperr.Taken, "line %d: the event %s is given twice", line, key)
				continue
			}
			p = &pending{in: RuleInput{Type: t, EventName: rec[2], Description: rec[5], Labels: []string{}}, whole: jsonCol}
			if rec[6] != "" {
				p.in.Labels = strings.Split(rec[6], ",")
			}
			byKey[key] = p
			order = append(order, key)
			continue
		}
		if p == nil {
			errs.Add("text", apperr.InvalidValue, "line %d: the property %q comes before the row of its event %s", line, rec[3], key)
			continue
		}
		p.props = append(p.props, csvProperty{name: rec[3], description: rec[5], status: strings.ToLower(rec[7]), dataType: rec[8], pattern: rec[9], enum: rec[10]})
	}
	var out []RuleInput
	for _, key := range order {
		p := byKey[key]
		field := "properties"
		if p.in.Type == ingest.Identify || p.in.Type == ingest.Group {
			field = "traits"
		}
		if p.whole != "" {
			var whole map[string]json.RawMessage
			if err := json.Unmarshal([]byte(p.whole), &whole); err != nil {
				errs.Add("text", apperr.InvalidValue, "the %s column of %s is not a JSON object: %v", csvJSONColumn, key, err)
				continue
			}
			for f, raw := range whole {
				switch f {
				case "properties":
					p.in.Properties = string(raw)
				case "traits":
					p.in.Traits = string(raw)
				case "context":
					p.in.Context = string(raw)
				default:
					errs.Add("text", apperr.InvalidValue, "the %s column of %s has %q: only properties, traits and context", csvJSONColumn, key, f)
				}
			}
		} else if len(p.props) > 0 {
			obj, ok := buildObject(p.props, "")
			if !ok {
				errs.Add("text", apperr.InvalidValue, "the properties of %s do not form objects: a nested property follows its object's row, Property Status is required or optional", key)
				continue
			}
			if field == "traits" {
				p.in.Traits = obj
			} else {
				p.in.Properties = obj
			}
		}
		out = append(out, p.in)
	}
	return out, common
}
