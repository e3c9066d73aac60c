package protocols

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/ingest"
)

// testPlan compiles a plan of rules given as (type, name, field, schema) and a common schema.
func testPlan(t *testing.T, common string, rules ...RuleInput) *compiledPlan {
	t.Helper()
	p := &Plan{ID: "tp_1", Name: "Test", Version: 1}
	if common != "" {
		p.CommonSchema = &common
	}
	var stored []Rule
	for i, in := range rules {
		var errs apperr.UserErrors
		r, ok := validateRule(&errs, "rules."+string(rune('0'+i)), in)
		if !ok {
			t.Fatalf("rule %d: %v", i, errs)
		}
		stored = append(stored, r)
	}
	cp, err := newCompiledPlan(p, stored)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func doc(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// kinds lists the violations as "TYPE field", sorted.
func kinds(vs []ingest.Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Type+" "+v.Field)
	}
	sort.Strings(out)
	return out
}

const orderSchema = `{"type":"object","required":["order_id","total"],"properties":{
	"order_id":{"type":"string","pattern":"^o-[0-9]+$"},"total":{"type":"number","minimum":0},
	"currency":{"enum":["USD","EUR"]},"coupon":{"type":["string","null"]}}}`

func TestCheckEachViolationType(t *testing.T) {
	cp := testPlan(t, `{"type":"object","required":["userId"]}`,
		RuleInput{Type: ingest.Track, EventName: "Order Completed", Properties: orderSchema},
		RuleInput{Type: ingest.Identify, Traits: `{"type":"object","properties":{"email":{"type":"string","format":"email"}},"required":["email"]}`},
		RuleInput{Type: ingest.Page, EventName: "Home", Properties: `{"type":"object","additionalProperties":false,"properties":{"path":{"type":"string"}}}`},
	)
	c := DefaultControls
	for _, tc := range []struct {
		name      string
		typ       ingest.Type
		event     string
		payload   string
		want      []string
		wantNames []string
	}{
		{"clean", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":3,"currency":"EUR"}}`, []string{}, nil},
		{"missing required", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1"}}`,
			[]string{"MISSING_REQUIRED properties.total"}, nil},
		{"absent properties object", ingest.Track, "Order Completed", `{"userId":"u"}`,
			[]string{"MISSING_REQUIRED properties.order_id", "MISSING_REQUIRED properties.total"}, nil},
		{"wrong type", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":"3"}}`,
			[]string{"WRONG_TYPE properties.total"}, nil},
		{"enum", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":3,"currency":"GBP"}}`,
			[]string{"NOT_ALLOWED_VALUE properties.currency"}, nil},
		{"pattern", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"x","total":3}}`,
			[]string{"NOT_ALLOWED_VALUE properties.order_id"}, nil},
		{"minimum", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":-1}}`,
			[]string{"NOT_ALLOWED_VALUE properties.total"}, nil},
		{"unplanned property (open schema)", ingest.Track, "Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":1,"gift":true}}`,
			[]string{"UNPLANNED_PROPERTY properties.gift"}, nil},
		{"unplanned property (closed schema)", ingest.Page, "Home", `{"userId":"u","properties":{"path":"/","title":"T"}}`,
			[]string{"UNPLANNED_PROPERTY properties.title"}, nil},
		{"unplanned event", ingest.Track, "Order Refunded", `{"userId":"u"}`, []string{"UNPLANNED_EVENT event"}, nil},
		{"unplanned page is no violation", ingest.Page, "Pricing", `{"userId":"u","properties":{"x":1}}`, []string{}, nil},
		{"identify traits", ingest.Identify, "", `{"userId":"u","traits":{"email":7}}`, []string{"WRONG_TYPE traits.email"}, nil},
		{"common schema", ingest.Track, "Order Completed", `{"anonymousId":"a","properties":{"order_id":"o-1","total":3}}`,
			[]string{"COMMON_SCHEMA userId"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := cp.check(tc.typ, tc.event, doc(t, tc.payload), &c)
			if got := kinds(res.violations); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("violations %v, want %v", got, tc.want)
			}
			if res.blocked || len(res.omit) > 0 {
				t.Errorf("default controls changed the event: blocked %v, omit %v", res.blocked, res.omit)
			}
			for _, v := range res.violations {
				if v.Message == "" || !strings.Contains(v.Message, strings.SplitN(v.Field, ".", 2)[0]) {
					t.Errorf("message %q does not name the field %s", v.Message, v.Field)
				}
			}
		})
	}
}

func TestCheckControls(t *testing.T) {
	cp := testPlan(t, `{"type":"object","properties":{"context":{"type":"object","properties":{"locale":{"type":"string"}}}}}`,
		RuleInput{Type: ingest.Track, EventName: "Order Completed", Properties: orderSchema})
	bad := `{"userId":"u","properties":{"order_id":"o-1","total":"3","gift":true},"context":{"locale":5}}`
	for _, tc := range []struct {
		name     string
		controls Controls
		event    string
		payload  string
		blocked  bool
		omit     []string
	}{
		{"unplanned events blocked", Controls{UnplannedEvents: Block, UnplannedProperties: Allow, Violations: Allow, CommonSchemaViolations: Allow},
			"Order Refunded", `{"userId":"u"}`, true, nil},
		{"unplanned events allowed", DefaultControls, "Order Refunded", `{"userId":"u"}`, false, nil},
		{"unplanned properties omitted", Controls{UnplannedEvents: Allow, UnplannedProperties: Omit, Violations: Allow, CommonSchemaViolations: Allow},
			"Order Completed", bad, false, []string{"properties.gift"}},
		{"violations omit their properties", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: OmitProperties, CommonSchemaViolations: Allow},
			"Order Completed", bad, false, []string{"properties.total"}},
		{"violations block", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: Block, CommonSchemaViolations: Allow},
			"Order Completed", bad, true, nil},
		{"unplanned property alone does not block", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: Block, CommonSchemaViolations: Allow},
			"Order Completed", `{"userId":"u","properties":{"order_id":"o-1","total":3,"gift":true}}`, false, nil},
		{"missing required is never omitted", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: OmitProperties, CommonSchemaViolations: Allow},
			"Order Completed", `{"userId":"u","properties":{"order_id":"o-1"}}`, false, nil},
		{"common schema omits", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: Allow, CommonSchemaViolations: OmitProperties},
			"Order Completed", bad, false, []string{"context.locale"}},
		{"common schema blocks", Controls{UnplannedEvents: Allow, UnplannedProperties: Allow, Violations: Allow, CommonSchemaViolations: Block},
			"Order Completed", bad, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := cp.check(ingest.Track, tc.event, doc(t, tc.payload), &tc.controls)
			if res.blocked != tc.blocked {
				t.Errorf("blocked %v, want %v (violations %v)", res.blocked, tc.blocked, kinds(res.violations))
			}
			var omitted []string
			for _, p := range res.omit {
				omitted = append(omitted, strings.Join(p, "."))
			}
			sort.Strings(omitted)
			if !reflect.DeepEqual(omitted, tc.omit) {
				t.Errorf("omit %v, want %v", omitted, tc.omit)
			}
		})
	}
}

func TestOmitNotesWhatItRemoved(t *testing.T) {
	d := doc(t, `{"properties":{"a":1,"b":{"c":2,"d":3}},"context":{"ip":"x"}}`)
	if !omit(d, [][]string{{"properties", "a"}, {"properties", "b", "c"}, {"properties", "a"}, {"properties", "zzz"}, {"userId"}}) {
		t.Fatal("omit removed nothing")
	}
	want := doc(t, `{"properties":{"b":{"d":3}},"context":{"ip":"x","protocols":{"omitted":["properties.a","properties.b.c"]}}}`)
	got, _ := json.Marshal(d)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("after omit %s, want %s", got, wantJSON)
	}
	if omit(d, [][]string{{"properties", "nothing"}}) {
		t.Error("omit of an absent key reported a change")
	}
}

func TestValidateRuleErrorsNameRuleAndPath(t *testing.T) {
	for _, tc := range []struct {
		in         RuleInput
		field, has string
	}{
		{RuleInput{Type: "ALIAS", EventName: "x"}, "r.type", "TRACK, IDENTIFY"},
		{RuleInput{Type: ingest.Track}, "r.eventName", "required"},
		{RuleInput{Type: ingest.Identify, EventName: "x"}, "r.eventName", "must be empty"},
		{RuleInput{Type: ingest.Track, EventName: "E", Properties: `{"type":"object"`}, "r.properties", "is not JSON"},
		{RuleInput{Type: ingest.Track, EventName: "E", Properties: `[1]`}, "r.properties", "must be a JSON Schema"},
		{RuleInput{Type: ingest.Track, EventName: "E", Properties: `{"type":"object","properties":{"a":{"type":"strin"}}}`}, "r.properties", "TRACK:E"},
		{RuleInput{Type: ingest.Track, EventName: "E", Properties: `{"properties":{"a":{"minimum":"x"}}}`}, "r.properties", "at properties.a.minimum"},
	} {
		var errs apperr.UserErrors
		if _, ok := validateRule(&errs, "r", tc.in); ok || len(errs) == 0 {
			t.Errorf("%+v: accepted", tc.in)
			continue
		}
		if errs[0].Field != tc.field || !strings.Contains(errs[0].Message, tc.has) {
			t.Errorf("%+v: error %s %q, want field %s mentioning %q", tc.in, errs[0].Field, errs[0].Message, tc.field, tc.has)
		}
	}
	// Draft-07 schemas compile too.
	var errs apperr.UserErrors
	if _, ok := validateRule(&errs, "r", RuleInput{Type: ingest.Track, EventName: "E",
		Properties: `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","definitions":{"p":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/p"}}}`}); !ok {
		t.Errorf("draft-07 schema refused: %v", errs)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	common := `{"properties":{"context":{"required":["ip"],"type":"object"}},"type":"object"}`
	p := &Plan{ID: "tp_1", Name: "Shop", CommonSchema: &common}
	var rules []Rule
	for i, in := range []RuleInput{
		{Type: ingest.Track, EventName: "Order Completed", Description: "An order, paid", Labels: []string{"team:checkout", "priority:high"}, Properties: orderSchema},
		{Type: ingest.Track, EventName: `Odd, "quoted" name`, Properties: `{"type":"object","properties":{"address":{"type":"object","properties":{"city":{"type":"string","description":"City"}},"required":["city"]}}}`},
		{Type: ingest.Identify, Traits: `{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}`},
		{Type: ingest.Page, EventName: "Home", Context: `{"type":"object","properties":{"locale":{"type":"string"}}}`},
		{Type: ingest.Screen, EventName: "Cart"},
		{Type: ingest.Group, Traits: `{"anyOf":[{"required":["name"]},{"required":["plan"]}]}`},
	} {
		var errs apperr.UserErrors
		r, ok := validateRule(&errs, "rules", in)
		if !ok {
			t.Fatalf("rule %d: %v", i, errs)
		}
		rules = append(rules, r)
	}
	text := exportCSV(p, rules)
	var errs apperr.UserErrors
	inputs, gotCommon := parseCSV(&errs, text)
	if len(errs) > 0 {
		t.Fatalf("parse: %v\n%s", errs, text)
	}
	if len(inputs) != len(rules) {
		t.Fatalf("%d rules back, want %d\n%s", len(inputs), len(rules), text)
	}
	for i, in := range inputs {
		var errs apperr.UserErrors
		r, ok := validateRule(&errs, "rules", in)
		if !ok {
			t.Fatalf("rule %d back: %v", i, errs)
		}
		r.Version, rules[i].Version = 0, 0
		if !reflect.DeepEqual(r, rules[i]) {
			t.Errorf("rule %d:\n back %+v\n sent %+v", i, r, rules[i])
		}
	}
	_, canonical, _ := parseSchema(gotCommon)
	if canonical != common {
		t.Errorf("common schema back %s, want %s", canonical, common)
	}
	if again := exportCSV(p, rules); again != text {
		t.Errorf("export is not stable")
	}

	// A CSV with a wrong header or short lines is refused, naming the line.
	parseCSV(&errs, "Version,Event\n1,Track\n")
	if len(errs) == 0 || errs[0].Field != "text" {
		t.Errorf("bad header accepted: %v", errs)
	}
}
