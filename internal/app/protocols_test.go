package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// Protocols through the real server: tracking plans made and changed over GraphQL, events sent to
// the tracking API with real write keys, and what was stored, blocked, trimmed, forwarded and
// counted read back through the debugger, the schema and the violations.

// tpEnv is a workspace on the BUSINESS plan with a source.
type tpEnv struct {
	*trkEnv
	src trkSource
}

func tpNewEnv(t *testing.T, s *server, slug string) *tpEnv {
	t.Helper()
	e := &tpEnv{trkEnv: trkNewEnv(t, s, slug)}
	e.gql(t, `mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": e.wsID, "plan": "BUSINESS"}})
	e.src = e.source(t, "Web")
	return e
}

// mutate runs a mutation with one input and fails on GraphQL errors or userErrors.
func (e *tpEnv) mutate(t *testing.T, name, inputType, selection string, input map[string]any) map[string]any {
	t.Helper()
	d := e.gql(t, fmt.Sprintf(`mutation($i: %s!) { %s(input: $i) { %s userErrors { field message code } } }`, inputType, name, selection),
		map[string]any{"i": input})
	p := trkObj(d, name)
	if errs, _ := p["userErrors"].([]any); len(errs) > 0 {
		t.Fatalf("%s: userErrors %v", name, errs)
	}
	return p
}

const tpOrderSchema = `{"type":"object","properties":{"price":{"type":"number"},"currency":{"enum":["USD","EUR"]},
	"coupon":{"type":"string","pattern":"^[A-Z]+$"},"order_id":{"type":"string"}},"required":["order_id"]}`

// plan creates a plan with an Order Completed rule and an identify rule, connected to the source.
func (e *tpEnv) plan(t *testing.T) string {
	t.Helper()
	p := e.mutate(t, "trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id version }",
		map[string]any{"workspaceId": e.wsID, "name": "Shop"})
	planID := trkStr(p, "trackingPlan.id")
	e.mutate(t, "trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "count", map[string]any{"planId": planID, "rules": []any{
		map[string]any{"type": "TRACK", "eventName": "Order Completed", "properties": tpOrderSchema},
		map[string]any{"type": "IDENTIFY", "traits": `{"type":"object","properties":{"email":{"type":"string","format":"email"}}}`},
	}})
	e.mutate(t, "trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }", map[string]any{"planId": planID, "sourceId": e.src.ID})
	return planID
}

func (e *tpEnv) controls(t *testing.T, c map[string]any) {
	t.Helper()
	c["sourceId"] = e.src.ID
	e.mutate(t, "sourceSchemaControlsUpdate", "SchemaControlsUpdateInput", "source { id }", c)
}

func (e *tpEnv) send(t *testing.T, key string, events ...map[string]any) {
	t.Helper()
	batch := make([]any, len(events))
	for i, ev := range events {
		batch[i] = ev
	}
	trkWantOK(t, trkSend(t, e.s, "/v1/batch", map[string]any{"batch": batch}, trkBasic(key)...))
}

func track(id, event string, props map[string]any) map[string]any {
	return map[string]any{"type": "track", "messageId": id, "userId": "u1", "event": event, "properties": props}
}

func violationTypes(ev map[string]any) []string {
	var out []string
	list, _ := ev["violations"].([]any)
	for _, v := range list {
		m := v.(map[string]any)
		out = append(out, m["type"].(string)+" "+m["field"].(string))
	}
	return out
}

func (e *tpEnv) stored(t *testing.T, srcID, messageID string) map[string]any {
	t.Helper()
	d := e.gql(t, `query($id: ID!, $m: String!) { node(id: $id) { ... on Source { recentEvents(search: $m) { nodes {
		id status messageId payload replayedAt violations { type field message } } } } } }`, map[string]any{"id": srcID, "m": messageID})
	nodes, _ := trkPath(d, "node.recentEvents.nodes").([]any)
	if len(nodes) == 0 {
		return nil
	}
	return nodes[0].(map[string]any)
}

func TestProtocolsRuleKinds(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "rules")
	e.plan(t)
	e.send(t, e.src.Key,
		track("ok", "Order Completed", map[string]any{"order_id": "o1", "price": 10, "currency": "USD", "coupon": "SAVE"}),
		track("missing", "Order Completed", map[string]any{"price": 10}),
		track("wrongtype", "Order Completed", map[string]any{"order_id": "o2", "price": "ten"}),
		track("enum", "Order Completed", map[string]any{"order_id": "o3", "currency": "GBP"}),
		track("pattern", "Order Completed", map[string]any{"order_id": "o4", "coupon": "save"}),
		track("unplannedprop", "Order Completed", map[string]any{"order_id": "o5", "color": "red"}),
		track("unplannedevent", "Cart Viewed", map[string]any{}),
		map[string]any{"type": "identify", "messageId": "idbad", "userId": "u1", "traits": map[string]any{"email": "not an address"}},
	)
	want := map[string]string{
		"ok": "", "missing": "MISSING_REQUIRED properties.order_id", "wrongtype": "WRONG_TYPE properties.price",
		"enum": "NOT_ALLOWED_VALUE properties.currency", "pattern": "NOT_ALLOWED_VALUE properties.coupon",
		"unplannedprop": "UNPLANNED_PROPERTY properties.color", "unplannedevent": "UNPLANNED_EVENT event",
		"idbad": "NOT_ALLOWED_VALUE traits.email",
	}
	for id, w := range want {
		ev := e.stored(t, e.src.ID, id)
		if ev == nil || ev["status"] != "ACCEPTED" {
			t.Fatalf("%s: %v, want accepted (controls allow)", id, ev)
		}
		if got := strings.Join(violationTypes(ev), ","); got != w {
			t.Errorf("%s: violations %q, want %q", id, got, w)
		}
	}
	// The common schema: every event must carry context.app.
	var planID string
	d := e.gql(t, `query($s: String!) { workspace(slug: $s) { trackingPlans { nodes { id } } } }`, map[string]any{"s": e.slug})
	planID = trkStr(trkPath(d, "workspace.trackingPlans.nodes").([]any)[0], "id")
	e.mutate(t, "trackingPlanUpdate", "TrackingPlanUpdateInput", "trackingPlan { version }", map[string]any{"planId": planID,
		"commonSchema": `{"type":"object","properties":{"context":{"type":"object","required":["app"]}}}`})
	e.send(t, e.src.Key, track("common", "Order Completed", map[string]any{"order_id": "o6"}))
	if got := strings.Join(violationTypes(e.stored(t, e.src.ID, "common")), ","); got != "COMMON_SCHEMA context.app" {
		t.Errorf("common schema: violations %q", got)
	}
	// A schema that does not compile is a userError naming the rule and the schema path.
	r := e.s.post(t, `mutation($i: TrackingPlanRulesUpsertInput!) { trackingPlanRulesUpsert(input: $i) { userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"planId": planID, "rules": []any{map[string]any{"type": "TRACK", "eventName": "Bad", "properties": `{"properties":{"a":{"type":"strin"}}}`}}}}, e.auth...)
	errs, _ := trkPath(r.Data, "trackingPlanRulesUpsert.userErrors").([]any)
	if len(errs) != 1 || trkStr(errs[0], "field") != "rules.0.properties" || !strings.Contains(trkStr(errs[0], "message"), "TRACK:Bad") ||
		!strings.Contains(trkStr(errs[0], "message"), "properties.a.type") {
		t.Errorf("bad schema: %s", r.Raw)
	}
}

func TestProtocolsControlsQuarantineAndReplay(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "controls")
	planID := e.plan(t)
	fwd := e.source(t, "Blocked events")
	viol := e.source(t, "Violations")
	e.controls(t, map[string]any{"unplannedEvents": "BLOCK", "unplannedProperties": "OMIT", "violations": "BLOCK",
		"forwardBlockedEventsTo": fwd.ID, "forwardViolationsTo": viol.ID})
	usage := func() int {
		d := e.gql(t, `query($s: String!) { workspace(slug: $s) { usage(month: "`+monthNow()+`") { bySource { sourceId apiCalls } } } }`, map[string]any{"s": e.slug})
		for _, x := range trkPath(d, "workspace.usage.bySource").([]any) {
			if trkStr(x, "sourceId") == e.src.ID {
				return trkInt(x.(map[string]any)["apiCalls"])
			}
		}
		return 0
	}
	e.send(t, e.src.Key,
		track("good", "Order Completed", map[string]any{"order_id": "o1", "price": 1, "color": "red"}),
		track("unplanned", "Cart Viewed", map[string]any{}),
		track("bad", "Order Completed", map[string]any{"order_id": "o2", "price": "x"}),
	)
	// OMIT: the unplanned property is gone from the stored event, and named in context.protocols.
	good := e.stored(t, e.src.ID, "good")
	if good["status"] != "ACCEPTED" {
		t.Fatalf("good: %v", good)
	}
	props := trkObj(good["payload"], "properties")
	if _, ok := props["color"]; ok || props["order_id"] != "o1" {
		t.Errorf("unplanned property not omitted: %v", props)
	}
	if om, _ := trkPath(good["payload"], "context.protocols.omitted").([]any); len(om) != 1 || om[0] != "properties.color" {
		t.Errorf("context.protocols.omitted: %v", trkPath(good["payload"], "context.protocols"))
	}
	// BLOCK: kept as BLOCKED with violations, not counted.
	for _, id := range []string{"unplanned", "bad"} {
		if ev := e.stored(t, e.src.ID, id); ev["status"] != "BLOCKED" || len(violationTypes(ev)) == 0 {
			t.Errorf("%s: %v, want blocked with violations", id, ev)
		}
	}
	if n := usage(); n != 1 {
		t.Errorf("API calls %d, want 1 (blocked events are not counted)", n)
	}
	// A retried request stores nothing twice, blocked events included.
	e.send(t, e.src.Key, track("bad", "Order Completed", map[string]any{"order_id": "o2", "price": "x"}))
	if p := e.events(t, e.src.ID, `status: BLOCKED`); p.Total != 2 {
		t.Errorf("%d blocked events after a retry, want 2", p.Total)
	}
	// Forwarding: the blocked events reach the other source, accepted; violations as Violation Generated.
	if ev := e.stored(t, fwd.ID, "bad"); ev == nil || ev["status"] != "ACCEPTED" || trkStr(ev["payload"], "forwardedFromProject") != e.src.ID {
		t.Errorf("forwarded blocked event: %v", ev)
	}
	vg := e.events(t, viol.ID, `search: "schema-violations"`)
	if vg.Total < 3 {
		t.Errorf("%d Violation Generated events, want at least 3", vg.Total)
	}
	for _, n := range vg.Nodes {
		if trkStr(n["payload"], "event") != "Violation Generated" || trkStr(n["payload"], "properties.sourceID") != e.src.ID {
			t.Errorf("Violation Generated: %v", n["payload"])
		}
	}
	// Fix the plan: the price may be a string now. Replay sends "bad" once; "unplanned" stays blocked.
	e.mutate(t, "trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "count", map[string]any{"planId": planID, "rules": []any{
		map[string]any{"type": "TRACK", "eventName": "Order Completed", "properties": strings.Replace(tpOrderSchema, `"price":{"type":"number"}`, `"price":{"type":["number","string"]}`, 1)},
	}})
	replay := func() map[string]any {
		return e.mutate(t, "blockedEventsReplay", "BlockedEventsReplayInput", "matched replayed stillBlocked", map[string]any{"sourceId": e.src.ID})
	}
	r := replay()
	if trkInt(r["replayed"]) != 1 || trkInt(r["stillBlocked"]) != 1 || trkInt(r["matched"]) != 2 {
		t.Errorf("replay: %v", r)
	}
	p := e.events(t, e.src.ID, `search: "bad"`)
	statuses := map[string]int{}
	for _, n := range p.Nodes {
		statuses[n["status"].(string)]++
	}
	if statuses["ACCEPTED"] != 1 || statuses["BLOCKED"] != 1 {
		t.Errorf("after replay: %v", statuses)
	}
	if blocked := e.stored(t, e.src.ID, "bad"); blocked == nil {
		t.Fatal("bad gone")
	}
	// At most once: a second replay sends nothing more.
	r = replay()
	if trkInt(r["replayed"]) != 0 {
		t.Errorf("second replay: %v", r)
	}
	if n := usage(); n != 2 {
		t.Errorf("API calls %d, want 2 after the replay", n)
	}
	// A fixed resend of a blocked event with the same messageId is accepted.
	e.send(t, e.src.Key, track("unplanned", "Order Completed", map[string]any{"order_id": "o9"}))
	if p := e.events(t, e.src.ID, `search: "unplanned"`); p.Total != 2 {
		t.Errorf("fixed resend: %d events, want the blocked one and the accepted one", p.Total)
	}
	// Violations of the source, aggregated, with samples; and the schema with counts.
	waitFor(t, "violations aggregated", func() bool {
		d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Source { violations { nodes { eventName field type count samples { eventId payload } } } } } }`, map[string]any{"id": e.src.ID})
		for _, v := range trkPath(d, "node.violations.nodes").([]any) {
			if trkStr(v, "field") == "properties.price" && trkStr(v, "type") == "WRONG_TYPE" && trkInt(v.(map[string]any)["count"]) >= 1 &&
				len(v.(map[string]any)["samples"].([]any)) >= 1 {
				return true
			}
		}
		return false
	})
	waitFor(t, "schema observed", func() bool {
		if r := e.s.post(t, `{ __typename }`, nil); r.Status != 200 {
			t.Fatal(r.Raw)
		}
		d := e.gqlLog(t, `query($id: ID!) { node(id: $id) { ... on Source { schema(type: TRACK) { nodes { name count24h blockedCount24h planned keys { path types planned } } } } } }`, map[string]any{"id": e.src.ID})
		for _, ev := range trkPath(d, "node.schema.nodes").([]any) {
			m := ev.(map[string]any)
			if m["name"] == "Cart Viewed" && m["planned"] == false && trkInt(m["blockedCount24h"]) >= 1 {
				return true
			}
		}
		return false
	})
}

func monthNow() string { return time.Now().UTC().Format("2006-01") }

// gqlLog is gql that shows the server's error log when the operation fails.
func (e *tpEnv) gqlLog(t *testing.T, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := e.s.post(t, query, vars, e.auth...)
	if len(r.Errors) > 0 {
		for _, l := range strings.Split(e.s.Logs.String(), "\n") {
			if strings.Contains(l, `"level":"ERROR"`) {
				t.Log(l)
			}
		}
		t.Fatalf("%s", r.Raw)
	}
	return r.Data
}

func TestProtocolsBulkAndRoundTrips(t *testing.T) {
	// The exported text of 2,000 rules, sent back in a GraphQL variable, is larger than the
	// default request limit: an operator raises max-body-bytes for that.
	s := startServer(t, func(c *config.Config) { c.Limits.BodyBytes = 8 << 20 })
	e := tpNewEnv(t, s, "bulk")
	p := e.mutate(t, "trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id }", map[string]any{"workspaceId": e.wsID, "name": "Big",
		"commonSchema": `{"type":"object","required":["userId"]}`})
	planID := trkStr(p, "trackingPlan.id")
	var rules []any
	for i := range 2000 {
		r := map[string]any{"type": "TRACK", "eventName": fmt.Sprintf("Event %04d", i), "description": "the event, \"quoted\", with a comma",
			"labels":     []any{"team:web"},
			"properties": fmt.Sprintf(`{"type":"object","properties":{"a%d":{"enum":["x","y"]},"n":{"type":["integer","null"],"description":"n"},"o":{"type":"object","properties":{"k":{"pattern":"^k"}},"required":["k"]}},"required":["n"]}`, i)}
		if i%10 == 0 { // some say more than the CSV columns can: they go whole into the JSON Schema column
			r["properties"] = `{"type":"object","properties":{"total":{"type":"number","minimum":0}}}`
			r["context"] = `{"type":"object","required":["app"]}`
		}
		rules = append(rules, r)
	}
	rules = append(rules, map[string]any{"type": "IDENTIFY", "traits": `{"type":"object","properties":{"email":{"type":"string"}}}`},
		map[string]any{"type": "PAGE", "eventName": "Home"})
	up := e.mutate(t, "trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "count trackingPlan { version ruleCount }", map[string]any{"planId": planID, "rules": rules})
	if trkInt(up["count"]) != 2002 || trkInt(trkPath(up, "trackingPlan.ruleCount")) != 2002 {
		t.Fatalf("bulk upsert: %v", up)
	}
	export := func(id, format string) string {
		d := e.gql(t, `query($id: ID!, $f: TrackingPlanFormat!) { trackingPlanExport(id: $id, format: $f) }`, map[string]any{"id": id, "f": format})
		return d["trackingPlanExport"].(string)
	}
	for _, format := range []string{"JSON", "CSV"} {
		text := export(planID, format)
		imp := e.mutate(t, "trackingPlanImport", "TrackingPlanImportInput", "trackingPlan { id ruleCount }",
			map[string]any{"workspaceId": e.wsID, "name": "Big", "format": format, "text": text})
		copyID := trkStr(imp, "trackingPlan.id")
		if n := trkInt(trkPath(imp, "trackingPlan.ruleCount")); n != 2002 {
			t.Errorf("%s import: %d rules", format, n)
		}
		if again := export(copyID, format); again != text {
			t.Errorf("%s does not round-trip: %d bytes, then %d", format, len(text), len(again))
		}
		if format == "CSV" && !strings.HasPrefix(text, "Version,Event Type,Event Name,Property Name,Source,Description,Labels,Property Status,Property Data Type,Allowed Property Values,Enum Values") {
			t.Errorf("CSV header: %q", strings.SplitN(text, "\n", 2)[0])
		}
		// Importing over the copy with the original's text changes nothing.
		before := trkInt(trkPath(e.gql(t, `query($id: ID!) { node(id: $id) { ... on TrackingPlan { version } } }`, map[string]any{"id": copyID}), "node.version"))
		e.mutate(t, "trackingPlanImport", "TrackingPlanImportInput", "trackingPlan { id }", map[string]any{"planId": copyID, "format": format, "text": text})
		after := trkInt(trkPath(e.gql(t, `query($id: ID!) { node(id: $id) { ... on TrackingPlan { version } } }`, map[string]any{"id": copyID}), "node.version"))
		if after != before {
			t.Errorf("%s: importing the same text made version %d from %d", format, after, before)
		}
	}
	// Delete in bulk, and the versions say who changed what.
	var refs []any
	for i := range 1500 {
		refs = append(refs, map[string]any{"type": "TRACK", "eventName": fmt.Sprintf("Event %04d", i)})
	}
	del := e.mutate(t, "trackingPlanRulesDelete", "TrackingPlanRulesDeleteInput", "count trackingPlan { ruleCount }", map[string]any{"planId": planID, "rules": refs})
	if trkInt(del["count"]) != 1500 || trkInt(trkPath(del, "trackingPlan.ruleCount")) != 502 {
		t.Errorf("bulk delete: %v", del)
	}
	d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on TrackingPlan { versions(first: 3) { nodes { version summary user { email } changes { rule action } } } } } }`, map[string]any{"id": planID})
	vs := trkPath(d, "node.versions.nodes").([]any)
	if len(vs) != 2 && len(vs) != 3 || trkStr(vs[0], "user.email") != "bulk@example.com" || len(vs[0].(map[string]any)["changes"].([]any)) != 1500 {
		t.Errorf("versions: %d, first %v", len(vs), trkStr(vs[0], "summary"))
	}
}

func TestProtocolsGatingRightsIsolation(t *testing.T) {
	s := startServer(t)
	free := trkNewEnv(t, s, "freews")
	r := s.post(t, `mutation($i: TrackingPlanCreateInput!) { trackingPlanCreate(input: $i) { trackingPlan { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": free.wsID, "name": "P"}}, free.auth...)
	if r.errorCode() != "FORBIDDEN" || !strings.Contains(r.errorMessage(), "BUSINESS") {
		t.Errorf("plan gating: %s", r.Raw)
	}
	e := tpNewEnv(t, s, "owner")
	planID := e.plan(t)
	// A member reads, but does not change.
	tok, _ := s.signUp(t, "member@example.com", "Member")
	acJoinFromTrk(t, s, e.trkEnv, "member@example.com", tok, "MEMBER")
	member := []string{"Authorization", "Bearer " + tok}
	d := mustData(t, s.post(t, `query($id: ID!) { node(id: $id) { ... on TrackingPlan { name viewerCanUpdate ruleCount } } }`, map[string]any{"id": planID}, member...))
	if trkStr(d, "node.name") != "Shop" || trkPath(d, "node.viewerCanUpdate") != false {
		t.Errorf("member reads: %v", d)
	}
	r = s.post(t, `mutation($i: TrackingPlanUpdateInput!) { trackingPlanUpdate(input: $i) { trackingPlan { id } } }`,
		map[string]any{"i": map[string]any{"planId": planID, "name": "Mine"}}, member...)
	if r.errorCode() != "FORBIDDEN" {
		t.Errorf("member changes: %s", r.Raw)
	}
	// Another workspace sees nothing of the plan: null, and NOT_FOUND from mutations, as for an id that never existed.
	other := tpNewEnv(t, s, "other")
	if d := mustData(t, s.post(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": planID}, other.auth...)); d["node"] != nil {
		t.Errorf("other workspace sees the plan: %v", d)
	}
	for _, id := range []string{planID, "tp_01jdxk0000000000000000000"} {
		r = s.post(t, `mutation($i: TrackingPlanSourceInput!) { trackingPlanConnectSource(input: $i) { trackingPlan { id } } }`,
			map[string]any{"i": map[string]any{"planId": id, "sourceId": other.src.ID}}, other.auth...)
		if r.errorCode() != "NOT_FOUND" {
			t.Errorf("connect %s from another workspace: %s", id, r.Raw)
		}
	}
	// The owner cannot connect another workspace's source either.
	r = s.post(t, `mutation($i: TrackingPlanSourceInput!) { trackingPlanConnectSource(input: $i) { userErrors { field } } }`,
		map[string]any{"i": map[string]any{"planId": planID, "sourceId": other.src.ID}}, e.auth...)
	if errs, _ := trkPath(r.Data, "trackingPlanConnectSource.userErrors").([]any); len(errs) != 1 || trkStr(errs[0], "field") != "sourceId" {
		t.Errorf("connect another workspace's source: %s", r.Raw)
	}
	// Plans made from a source's schema.
	e.send(t, e.src.Key, track("s1", "Signed Up", map[string]any{"plan": "pro", "seats": 3, "address": map[string]any{"city": "Oslo"}}))
	waitFor(t, "schema", func() bool {
		d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Source { schema { totalCount } } } }`, map[string]any{"id": e.src.ID})
		return trkInt(trkPath(d, "node.schema.totalCount")) >= 1
	})
	p := e.mutate(t, "trackingPlanCreateFromSchema", "TrackingPlanCreateFromSchemaInput", "trackingPlan { id rules { nodes { key properties } } }", map[string]any{"sourceId": e.src.ID})
	nodes := trkPath(p, "trackingPlan.rules.nodes").([]any)
	if len(nodes) != 1 || trkStr(nodes[0], "key") != "TRACK:Signed Up" || trkStr(nodes[0], "properties.properties.seats.type") != "integer" ||
		trkStr(nodes[0], "properties.properties.address.properties.city.type") != "string" {
		t.Errorf("from schema: %v", nodes)
	}
}

// acJoinFromTrk makes the signed-up person a member of the trkEnv's workspace with role.
func acJoinFromTrk(t *testing.T, s *server, e *trkEnv, email, tok, role string) {
	t.Helper()
	inv := acInvite(t, s, strings.TrimPrefix(e.auth[1], "Bearer "), e.wsID, email, role)
	acAccept(t, s, tok, inv)
}
