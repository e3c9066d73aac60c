package app_test

// The Privacy Portal through the real server: events sent to the tracking API with real write
// keys, the fields they carried read back from the inbox and the inventory, the matchers changed
// over GraphQL, the source and destination controls observed in the event log and at a real
// local receiver, and payloads masked for members without PII access, over HTTP and websockets.

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pvTeam is a workspace on the TEAM plan with a source.
type pvTeam struct {
	*team
	srcID, key string
}

func pvNewTeam(t *testing.T, s *server, slug string) *pvTeam {
	t.Helper()
	tm := newTeam(t, s, slug, "Owner")
	tm.mutate(t, tm.owner.tok, "workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }",
		map[string]any{"workspaceId": tm.wsID, "plan": "TEAM"})
	p := &pvTeam{team: tm}
	p.srcID, p.key = tm.source(t, "Web")
	return p
}

func (p *pvTeam) track(t *testing.T, key, id, event string, props map[string]any) {
	t.Helper()
	subTrack(t, p.s, key, map[string]any{"type": "track", "messageId": id, "userId": "u1", "event": event, "properties": props,
		"context": map[string]any{"ip": "192.168.1.20", "library": map[string]any{"name": "analytics.js"}}})
}

const pvFieldSelection = `path recommendedClassification classification count sample matcher { id name }
	origins { source { id } eventName count } destinations { destination { id } action }`

// inbox returns the inbox's fields by path, as the holder of tok sees them.
func (p *pvTeam) inbox(t *testing.T, tok string) map[string]map[string]any {
	t.Helper()
	d := p.gql(t, tok, `query($ws: ID!) { workspace: node(id: $ws) { ... on Workspace { privacyInbox(first: 100) { totalCount nodes { `+pvFieldSelection+` } } } } }`,
		map[string]any{"ws": p.wsID})
	return pvByPath(trkPath(d, "workspace.privacyInbox.nodes"))
}

func (p *pvTeam) inventory(t *testing.T, tok string, filter map[string]any) map[string]map[string]any {
	t.Helper()
	d := p.gql(t, tok, `query($ws: ID!, $f: PrivacyInventoryFilter) { workspace: node(id: $ws) { ... on Workspace { privacyInventory(filter: $f, first: 100) { nodes { `+pvFieldSelection+` } } } } }`,
		map[string]any{"ws": p.wsID, "f": filter})
	return pvByPath(trkPath(d, "workspace.privacyInventory.nodes"))
}

func pvByPath(v any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := v.([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out[m["path"].(string)] = m
	}
	return out
}

// waitInbox waits until the inbox holds the paths (the listener writes once a second).
func (p *pvTeam) waitInbox(t *testing.T, paths ...string) map[string]map[string]any {
	t.Helper()
	var got map[string]map[string]any
	dlvWait(t, "fields in the inbox: "+strings.Join(paths, ", "), 10*time.Second, func() bool {
		got = p.inbox(t, p.owner.tok)
		for _, path := range paths {
			if got[path] == nil {
				return false
			}
		}
		return true
	})
	return got
}

func TestPrivacyInbox(t *testing.T) {
	s := startServer(t)
	p := pvNewTeam(t, s, "pv-inbox")
	member := p.add(t, "member", "Mia", "MEMBER")
	p.track(t, p.key, "m1", "Order Completed", map[string]any{
		"card_number": "4111111111111111", "emailAddress": "jane@example.com", "billing": map[string]any{"street": "1 Main St", "zip": "94107"},
		"notes": "4111 1111 1111 1111", "not_a_card": "4111 1111 1111 1112", "color": "red", "products": []any{map[string]any{"sku": "A1"}, map[string]any{"sku": "B2"}},
	})
	p.track(t, p.key, "m2", "Order Completed", map[string]any{"color": "blue"})
	in := p.waitInbox(t, "properties.card_number", "properties.color", "context.ip", "properties.products[].sku")
	dlvWait(t, "color seen twice", 10*time.Second, func() bool {
		in = p.inbox(t, p.owner.tok)
		return trkInt(in["properties.color"]["count"]) == 2
	})
	for path, want := range map[string]string{
		"properties.card_number": "RED credit_card", "properties.emailAddress": "YELLOW email", "properties.billing.street": "YELLOW street",
		"properties.billing.zip": "YELLOW zipcode", "properties.notes": "RED credit_card", "context.ip": "YELLOW ip",
		"properties.not_a_card": " ", "properties.color": " ", "properties.products[].sku": " ", "context.library.name": " ",
	} {
		f := in[path]
		if f == nil {
			t.Errorf("%s not in the inbox", path)
			continue
		}
		rec, _ := f["recommendedClassification"].(string)
		if got := rec + " " + trkStr(f, "matcher.id"); got != want {
			t.Errorf("%s: recommended %q, want %q", path, got, want)
		}
	}
	if c := in["properties.color"]; trkInt(c["count"]) != 2 || len(c["origins"].([]any)) != 1 ||
		trkStr(c["origins"].([]any)[0], "source.id") != p.srcID || trkStr(c["origins"].([]any)[0], "eventName") != "Order Completed" {
		t.Errorf("color: %v", c)
	}
	d0 := p.gql(t, p.owner.tok, `query($ws: ID!, $since: DateTime) { workspace: node(id: $ws) { ... on Workspace { privacyInbox(since: $since) { totalCount } } } }`,
		map[string]any{"ws": p.wsID, "since": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if n := trkInt(trkPath(d0, "workspace.privacyInbox.totalCount")); n != 0 {
		t.Errorf("inbox since an hour from now: %d fields", n)
	}
	if got := in["properties.products[].sku"]["count"]; trkInt(got) != 1 {
		t.Errorf("an array's elements count once per event: %v", got)
	}
	// Samples: in clear for the owner, masked for RED and YELLOW fields for a member without PII access.
	if got := in["properties.card_number"]["sample"]; got != "4111111111111111" {
		t.Errorf("owner's sample: %v", got)
	}
	mi := p.inbox(t, member.tok)
	if got := mi["properties.card_number"]["sample"]; got != "••••" {
		t.Errorf("member's sample of a RED field: %v", got)
	}
	if got := mi["properties.color"]["sample"]; got != "red" && got != "blue" {
		t.Errorf("member's sample of a field without recommendation: %v", got)
	}

	// A notification and a health issue of the source, once, for the new RED fields.
	var msg string
	dlvWait(t, "a NEW_PII_FIELD notification", 5*time.Second, func() bool {
		d := p.gql(t, member.tok, `{ viewer { notifications(first: 20) { nodes { type message resourceId } } } }`, nil)
		for _, n := range trkPath(d, "viewer.notifications.nodes").([]any) {
			if trkStr(n, "type") == "NEW_PII_FIELD" && trkStr(n, "resourceId") == p.srcID {
				msg = trkStr(n, "message")
				return true
			}
		}
		return false
	})
	if !strings.Contains(msg, "properties.card_number") || !strings.Contains(msg, "properties.notes") {
		t.Errorf("notification: %q", msg)
	}
	d := p.gql(t, p.owner.tok, `query($ws: ID!) { workspace: node(id: $ws) { ... on Workspace { healthIssues(first: 10) { nodes { errorType target { ... on Source { id } } } } } } }`,
		map[string]any{"ws": p.wsID})
	found := false
	for _, n := range trkPath(d, "workspace.healthIssues.nodes").([]any) {
		if trkStr(n, "errorType") == "NEW_PII_FIELD" && trkStr(n, "target.id") == p.srcID {
			found = true
		}
	}
	if !found {
		t.Errorf("no NEW_PII_FIELD health issue: %v", d)
	}

	// Classification moves fields to the inventory; filters and CSV.
	cls := p.mutate(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.card_number", "properties.notes"}, "classification": "RED"})
	if trkInt(cls["count"]) != 2 {
		t.Errorf("classify: %v", cls)
	}
	p.mutate(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.color"}, "classification": "GREEN"})
	bad := p.try(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.never_seen"}, "classification": "RED"})
	if errs, _ := bad["userErrors"].([]any); len(errs) != 1 {
		t.Errorf("classifying an unknown field: %v", bad)
	}
	in = p.inbox(t, p.owner.tok)
	if in["properties.card_number"] != nil || in["properties.color"] != nil || in["properties.emailAddress"] == nil {
		t.Errorf("inbox after classification: %v", keysOf(in))
	}
	inv := p.inventory(t, member.tok, nil)
	if len(inv) != 3 || trkStr(inv["properties.card_number"], "classification") != "RED" {
		t.Errorf("inventory: %v", inv)
	}
	if inv := p.inventory(t, member.tok, map[string]any{"classification": "RED", "search": "CARD"}); len(inv) != 1 || inv["properties.card_number"] == nil {
		t.Errorf("inventory(RED, card): %v", keysOf(inv))
	}
	other, otherKey := p.source(t, "Other")
	p.track(t, otherKey, "o1", "Viewed", map[string]any{"color": "green"})
	dlvWait(t, "color from the other source", 10*time.Second, func() bool {
		return len(p.inventory(t, member.tok, map[string]any{"sourceId": other})) == 1
	})
	if inv := p.inventory(t, member.tok, map[string]any{"sourceId": p.srcID}); len(inv) != 3 {
		t.Errorf("inventory(source Web): %v", keysOf(inv))
	}
	d = p.gql(t, member.tok, `query($ws: ID!, $f: PrivacyInventoryFilter) { workspace: node(id: $ws) { ... on Workspace { privacyInventoryCsv(filter: $f) } } }`,
		map[string]any{"ws": p.wsID, "f": map[string]any{"classification": "RED"}})
	csv := trkStr(d, "workspace.privacyInventoryCsv")
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "properties.card_number,RED,RED,Credit Card,Web,Order Completed") || strings.Contains(csv, "4111") {
		t.Errorf("CSV with filter RED:\n%s", csv)
	}
}

func keysOf(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPrivacyMatchers(t *testing.T) {
	s := startServer(t)
	p := pvNewTeam(t, s, "pv-match")
	admin := p.add(t, "admin", "Ada", "ADMIN")
	member := p.add(t, "member", "Mia", "MEMBER")
	const list = `query($ws: ID!) { workspace: node(id: $ws) { ... on Workspace { viewerCanUpdatePrivacy privacyMatchers { id name classification target keyMatch synonyms pattern luhnCheck isDefault modified enabled } } } }`
	d := p.gql(t, member.tok, list, map[string]any{"ws": p.wsID})
	ms, _ := trkPath(d, "workspace.privacyMatchers").([]any)
	if len(ms) != 35 || trkPath(d, "workspace.viewerCanUpdatePrivacy") != false {
		t.Fatalf("%d default matchers (want 35): %v", len(ms), d)
	}
	// A custom matcher on values; a pattern that does not compile is a userError.
	bad := p.try(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "name": "Member code", "classification": "RED", "target": "VALUE", "pattern": "MC-(["})
	if errs, _ := bad["userErrors"].([]any); len(errs) != 1 || trkStr(errs[0], "field") != "pattern" {
		t.Errorf("bad pattern: %v", bad)
	}
	c := p.mutate(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id isDefault }",
		map[string]any{"workspaceId": p.wsID, "name": "Member code", "classification": "RED", "target": "VALUE", "pattern": `^MC-\d{6}$`})
	customID := trkStr(c, "matcher.id")
	if !strings.HasPrefix(customID, "pm_") {
		t.Fatalf("create: %v", c)
	}
	p.mutate(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "name": "Loyalty number", "classification": "YELLOW", "keyMatch": "SIMILAR"})
	// Members read, and may not change.
	if r := dlvPost(t, s, member.tok, `mutation($i: PrivacyMatcherCreateInput!) { privacyMatcherCreate(input: $i) { matcher { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": p.wsID, "name": "X", "classification": "RED"}}); r.errorCode() != "FORBIDDEN" {
		t.Errorf("member creates a matcher: %s", r.Raw)
	}
	// Defaults: disabled, edited, reset; never deleted.
	p.mutate(t, admin.tok, "privacyMatcherUpdate", "PrivacyMatcherUpdateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "matcherId": "email", "enabled": false})
	u := p.mutate(t, admin.tok, "privacyMatcherUpdate", "PrivacyMatcherUpdateInput", "matcher { id classification modified synonyms }",
		map[string]any{"workspaceId": p.wsID, "matcherId": "city", "classification": "RED", "synonyms": []string{"home town"}})
	if trkStr(u, "matcher.classification") != "RED" || trkPath(u, "matcher.modified") != true {
		t.Errorf("edit a default: %v", u)
	}
	del := p.try(t, admin.tok, "privacyMatcherDelete", "PrivacyMatcherIdInput", "deletedMatcherId",
		map[string]any{"workspaceId": p.wsID, "matcherId": "ssn"})
	if errs, _ := del["userErrors"].([]any); len(errs) != 1 {
		t.Errorf("delete a default: %v", del)
	}
	p.track(t, p.key, "m1", "Signed Up", map[string]any{"code": "MC-123456", "email": "jane@example.com", "homeTown": "Paris", "loyalty_numbers": "L1"})
	in := p.waitInbox(t, "properties.code", "properties.email", "properties.homeTown")
	for path, want := range map[string]string{"properties.code": "RED", "properties.email": "", "properties.homeTown": "RED", "properties.loyalty_numbers": "YELLOW"} {
		if got, _ := in[path]["recommendedClassification"].(string); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	// The inbox follows the matchers: a field recommended by a matcher since disabled is
	// recommended by what matches its key now, and a new matcher recommends fields seen before.
	p.mutate(t, admin.tok, "privacyMatcherUpdate", "PrivacyMatcherUpdateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "matcherId": "city", "enabled": false})
	p.mutate(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "name": "Email", "classification": "RED"})
	in = p.inbox(t, admin.tok)
	if got := in["properties.homeTown"]["recommendedClassification"]; got != nil {
		t.Errorf("homeTown after disabling its matcher: %v", got)
	}
	if got := in["properties.email"]; got["recommendedClassification"] != "RED" || trkStr(got, "matcher.name") != "Email" {
		t.Errorf("email after a new matcher: %v", got)
	}
	p.mutate(t, admin.tok, "privacyMatcherUpdate", "PrivacyMatcherUpdateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "matcherId": "city", "enabled": true})
	r := p.mutate(t, admin.tok, "privacyMatcherReset", "PrivacyMatcherIdInput", "matcher { classification modified synonyms }",
		map[string]any{"workspaceId": p.wsID, "matcherId": "city"})
	if trkStr(r, "matcher.classification") != "YELLOW" || trkPath(r, "matcher.modified") != false {
		t.Errorf("reset: %v", r)
	}
	dm := p.mutate(t, admin.tok, "privacyMatcherDelete", "PrivacyMatcherIdInput", "deletedMatcherId",
		map[string]any{"workspaceId": p.wsID, "matcherId": customID})
	if trkStr(dm, "deletedMatcherId") != customID {
		t.Errorf("delete: %v", dm)
	}
	d = p.gql(t, member.tok, list, map[string]any{"ws": p.wsID})
	if ms, _ := trkPath(d, "workspace.privacyMatchers").([]any); len(ms) != 37 {
		t.Errorf("%d matchers after create three times, delete once", len(ms))
	}
	// At most 200 custom matchers.
	for i := 2; i < 200; i++ { // two are there already
		p.mutate(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
			map[string]any{"workspaceId": p.wsID, "name": "Custom " + strconv.Itoa(i), "classification": "YELLOW"})
	}
	over := p.try(t, admin.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
		map[string]any{"workspaceId": p.wsID, "name": "One too many", "classification": "YELLOW"})
	if errs, _ := over["userErrors"].([]any); len(errs) != 1 || trkStr(errs[0], "code") != "NOT_ALLOWED" {
		t.Errorf("the 201st custom matcher: %v", over)
	}
	// On FREE nothing can be changed, and nothing is detected.
	p.mutate(t, p.owner.tok, "workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }", map[string]any{"workspaceId": p.wsID, "plan": "FREE"})
	if r := dlvPost(t, s, admin.tok, `mutation($i: PrivacyMatcherIdInput!) { privacyMatcherReset(input: $i) { matcher { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": p.wsID, "matcherId": "email"}}); r.errorCode() != "FORBIDDEN" || !strings.Contains(r.errorMessage(), "TEAM") {
		t.Errorf("on FREE: %s", r.Raw)
	}
	p.track(t, p.key, "free", "Signed Up", map[string]any{"free_password": "x"})
	p.track(t, p.key, "team", "Signed Up", map[string]any{}) // a commit after, so the listener has heard the first
	time.Sleep(1500 * time.Millisecond)
	if in := p.inbox(t, p.owner.tok); in["properties.free_password"] != nil {
		t.Errorf("detected on FREE: %v", in["properties.free_password"])
	}
}

// pvStored returns the stored payload of the event with messageId id, as the owner sees it.
func (p *pvTeam) stored(t *testing.T, tok, srcID, id string) map[string]any {
	t.Helper()
	d := p.gql(t, tok, `query($id: ID!, $m: String!) { node(id: $id) { ... on Source { recentEvents(search: $m) { nodes { messageId payload } } } } }`,
		map[string]any{"id": srcID, "m": id})
	nodes, _ := trkPath(d, "node.recentEvents.nodes").([]any)
	if len(nodes) != 1 {
		t.Fatalf("event %s: %v", id, d)
	}
	return trkObj(nodes[0], "payload")
}

func TestPrivacySourceControls(t *testing.T) {
	s := startServer(t)
	p := pvNewTeam(t, s, "pv-src")
	props := func() map[string]any {
		return map[string]any{"card_number": "4111111111111111", "email": "jane@example.com", "color": "red", "size": "M",
			"billing": map[string]any{"password": "hunter2", "city": "Paris"}}
	}
	if got := trkStr(p.gql(t, p.owner.tok, `query($id: ID!) { node(id: $id) { ... on Source { privacyBlock } } }`, map[string]any{"id": p.srcID}), "node.privacyBlock"); got != "NONE" {
		t.Errorf("privacyBlock by default: %q", got)
	}
	p.mutate(t, p.owner.tok, "sourcePrivacyBlockUpdate", "SourcePrivacyBlockInput", "source { id privacyBlock }", map[string]any{"sourceId": p.srcID, "block": "RED"})
	p.track(t, p.key, "red", "Order Completed", props())
	got := trkObj(p.stored(t, p.owner.tok, p.srcID, "red"), "properties")
	if _, ok := got["card_number"]; ok || got["email"] != "jane@example.com" || got["color"] != "red" || trkObj(got, "billing")["password"] != nil || trkObj(got, "billing")["city"] != "Paris" {
		t.Errorf("blocking RED: stored %v", got)
	}
	// A discarded event is stored without them too.
	subTrack(t, s, p.key, map[string]any{"type": "track", "messageId": "noid", "event": "Order Completed", "properties": props()})
	if got := trkObj(p.stored(t, p.owner.tok, p.srcID, "noid"), "properties"); got["card_number"] != nil || got["color"] != "red" {
		t.Errorf("discarded event stored with %v", got)
	}
	// A field classified RED is removed too; one classified GREEN is kept whatever its key says.
	p.waitInbox(t, "properties.size", "properties.email")
	p.mutate(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.size"}, "classification": "RED"})
	p.mutate(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.email"}, "classification": "GREEN"})
	p.mutate(t, p.owner.tok, "sourcePrivacyBlockUpdate", "SourcePrivacyBlockInput", "source { id }", map[string]any{"sourceId": p.srcID, "block": "RED_AND_YELLOW"})
	p.track(t, p.key, "yellow", "Order Completed", props())
	got = trkObj(p.stored(t, p.owner.tok, p.srcID, "yellow"), "properties")
	if _, ok := got["size"]; ok || got["email"] != "jane@example.com" || got["color"] != "red" || trkObj(got, "billing")["city"] != nil {
		t.Errorf("blocking RED and YELLOW: stored %v", got)
	}
	// The inbox still knows of the removed fields (they arrive), and the event goes on.
	dlvWait(t, "card_number seen twice", 10*time.Second, func() bool {
		return trkInt(p.inbox(t, p.owner.tok)["properties.card_number"]["count"]) == 2
	})
	bad := dlvPost(t, s, p.owner.tok, `mutation { sourcePrivacyBlockUpdate(input: {sourceId: "src_nope", block: RED}) { userErrors { message } } }`, nil)
	if bad.errorCode() != "NOT_FOUND" {
		t.Errorf("unknown source: %s", bad.Raw)
	}
}

var pvHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestPrivacyDestinationControls(t *testing.T) {
	s := startServer(t, allowLoopback)
	p := pvNewTeam(t, s, "pv-dst")
	rc := dlvNewReceiver(t, nil)
	d := p.mutate(t, p.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": p.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": rc.URL + "/hook"}, "enabled": true})
	destID := trkStr(d, "destination.id")
	p.mutate(t, p.owner.tok, "connectionCreate", "ConnectionCreateInput", "connection { id }", map[string]any{"sourceId": p.srcID, "destinationId": destID, "enabled": true})
	c := p.mutate(t, p.owner.tok, "destinationPrivacyControlsUpdate", "DestinationPrivacyControlsInput", "destination { privacyControls { red yellow green } }",
		map[string]any{"destinationId": destID, "red": "BLOCK", "yellow": "HASH"})
	if got := trkObj(c, "destination.privacyControls"); got["red"] != "BLOCK" || got["yellow"] != "HASH" || got["green"] != "ALLOW" {
		t.Errorf("controls: %v", got)
	}
	// Two phone numbers as JSON numbers that a float64 cannot tell apart.
	p.track(t, p.key, "d1", "Order Completed", map[string]any{"card_number": "4111111111111111", "email": "jane@example.com", "color": "red",
		"phone": json.Number("12345678901234567")})
	p.track(t, p.key, "d2", "Order Completed", map[string]any{"email": "jane@example.com", "color": "blue", "phone": json.Number("12345678901234568")})
	hits := rc.waitHits(t, 2, 10*time.Second)
	var sent []map[string]any
	for _, h := range hits {
		var body map[string]any
		if err := json.Unmarshal(h.Body, &body); err != nil {
			t.Fatalf("body: %s", h.Body)
		}
		sent = append(sent, trkObj(body, "properties"))
	}
	for i, props := range sent {
		if _, ok := props["card_number"]; ok {
			t.Errorf("request %d carried the RED field: %v", i, props)
		}
		if e, _ := props["email"].(string); !pvHex64.MatchString(e) {
			t.Errorf("request %d: email %q not hashed", i, props["email"])
		}
		if props["color"] == nil {
			t.Errorf("request %d lost an unclassified field: %v", i, props)
		}
	}
	if sent[0]["email"] != sent[1]["email"] {
		t.Errorf("equal values hash differently: %v %v", sent[0]["email"], sent[1]["email"])
	}
	if ph, _ := sent[0]["phone"].(string); !pvHex64.MatchString(ph) || sent[0]["phone"] == sent[1]["phone"] {
		t.Errorf("phone numbers hashed %v and %v", sent[0]["phone"], sent[1]["phone"])
	}
	// The event log keeps the event as received; Event Delivery shows the request as sent.
	if got := trkObj(p.stored(t, p.owner.tok, p.srcID, "d1"), "properties"); got["card_number"] != "4111111111111111" {
		t.Errorf("stored: %v", got)
	}
	d = p.gql(t, p.owner.tok, `query($id: ID!) { node(id: $id) { ... on Destination { deliveryAttempts(first: 5) { nodes { request { body } } } } } }`,
		map[string]any{"id": destID})
	for _, a := range trkPath(d, "node.deliveryAttempts.nodes").([]any) {
		if body := trkStr(a, "request.body"); strings.Contains(body, "4111") || strings.Contains(body, "jane@") {
			t.Errorf("request as sent: %s", body)
		}
	}
	// The inventory tells which destinations a field reaches and how.
	p.waitInbox(t, "properties.email")
	p.mutate(t, p.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": p.wsID, "fields": []string{"properties.email"}, "classification": "YELLOW"})
	inv := p.inventory(t, p.owner.tok, nil)
	if ds, _ := inv["properties.email"]["destinations"].([]any); len(ds) != 1 || trkStr(ds[0], "destination.id") != destID || trkStr(ds[0], "action") != "HASH" {
		t.Errorf("destinations of email: %v", inv["properties.email"])
	}
}

func TestPrivacyMasking(t *testing.T) {
	s := startServer(t, allowLoopback, subQuiet)
	p := pvNewTeam(t, s, "pv-mask")
	member := p.add(t, "member", "Mia", "MEMBER")
	// BUSINESS, for a tracking plan whose violations keep samples; a webhook, for Event Delivery.
	p.mutate(t, p.owner.tok, "workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }", map[string]any{"workspaceId": p.wsID, "plan": "BUSINESS"})
	plan := trkStr(p.mutate(t, p.owner.tok, "trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id }", map[string]any{"workspaceId": p.wsID, "name": "Shop"}), "trackingPlan.id")
	p.mutate(t, p.owner.tok, "trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "count", map[string]any{"planId": plan, "rules": []any{
		map[string]any{"type": "TRACK", "eventName": "Order Completed", "properties": `{"type":"object","required":["order_id"]}`}}})
	p.mutate(t, p.owner.tok, "trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }", map[string]any{"planId": plan, "sourceId": p.srcID})
	rc := dlvNewReceiver(t, nil)
	destID := trkStr(p.mutate(t, p.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": p.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": rc.URL + "/hook"}, "enabled": true}), "destination.id")
	p.mutate(t, p.owner.tok, "connectionCreate", "ConnectionCreateInput", "connection { id }", map[string]any{"sourceId": p.srcID, "destinationId": destID, "enabled": true})
	const live = `subscription($id: ID!) { liveEvents(sourceId: $id) { event { messageId payload } } }`
	mc := subDial(t, s, member.tok)
	oc := subDial(t, s, p.owner.tok)
	mSub := mc.subscribe(t, live, map[string]any{"id": p.srcID})
	oSub := oc.subscribe(t, live, map[string]any{"id": p.srcID})
	subWaitSubscribers(t, s, 2)
	p.track(t, p.key, "k1", "Order Completed", map[string]any{"card_number": "4111111111111111", "email": "jane@example.com", "color": "red",
		"notes": "call me at jane@example.com"})

	check := func(who string, props map[string]any, masked bool) {
		t.Helper()
		for _, k := range []string{"card_number", "email"} {
			if (props[k] == "••••") != masked {
				t.Errorf("%s: %s = %v (masked: %v)", who, k, props[k], masked)
			}
		}
		if props["color"] != "red" {
			t.Errorf("%s: color = %v", who, props["color"])
		}
	}
	// Over HTTP.
	check("member over HTTP", trkObj(p.stored(t, member.tok, p.srcID, "k1"), "properties"), true)
	check("owner over HTTP", trkObj(p.stored(t, p.owner.tok, p.srcID, "k1"), "properties"), false)
	if ip := trkObj(p.stored(t, member.tok, p.srcID, "k1"), "context")["ip"]; ip != "••••" {
		t.Errorf("member sees context.ip %v", ip)
	}
	// Over websockets.
	check("member live", trkObj(mSub.next(t, 5*time.Second).data(t), "liveEvents.event.payload.properties"), true)
	check("owner live", trkObj(oSub.next(t, 5*time.Second).data(t), "liveEvents.event.payload.properties"), false)

	// Event Delivery: the event and the request as sent; violation samples.
	rc.waitHits(t, 1, 10*time.Second)
	const attempts = `query($id: ID!) { node(id: $id) { ... on Destination { deliveryAttempts(first: 1) { nodes { eventPayload request { body } } } } } }`
	const samples = `query($id: ID!) { node(id: $id) { ... on Source { violations { nodes { samples { payload } } } } } }`
	for _, who := range []struct {
		name   string
		tok    string
		masked bool
	}{{"member", member.tok, true}, {"owner", p.owner.tok, false}} {
		var a any
		dlvWait(t, "an attempt recorded", 10*time.Second, func() bool {
			list, _ := trkPath(p.gql(t, who.tok, attempts, map[string]any{"id": destID}), "node.deliveryAttempts.nodes").([]any)
			if len(list) > 0 {
				a = list[0]
			}
			return a != nil
		})
		var d map[string]any
		check(who.name+" attempt's event", trkObj(a, "eventPayload.properties"), who.masked)
		var body map[string]any
		if err := json.Unmarshal([]byte(trkStr(a, "request.body")), &body); err != nil {
			t.Fatalf("request body: %v", a)
		}
		check(who.name+" attempt's request", trkObj(body, "properties"), who.masked)
		var sample map[string]any
		dlvWait(t, "a violation sample", 10*time.Second, func() bool {
			d = p.gql(t, who.tok, samples, map[string]any{"id": p.srcID})
			nodes, _ := trkPath(d, "node.violations.nodes").([]any)
			if len(nodes) == 0 {
				return false
			}
			list, _ := nodes[0].(map[string]any)["samples"].([]any)
			if len(list) == 0 {
				return false
			}
			sample = trkObj(list[0], "payload")
			return true
		})
		check(who.name+" violation sample", trkObj(sample, "properties"), who.masked)
	}

	// PII access given: the member sees values, over HTTP and on the open subscription.
	d := p.gql(t, p.owner.tok, `query($ws: ID!) { workspace: node(id: $ws) { ... on Workspace { members(first: 10) { nodes { id piiAccess role } } } } }`, map[string]any{"ws": p.wsID})
	for _, m := range trkPath(d, "workspace.members.nodes").([]any) {
		if want := trkStr(m, "role") == "OWNER"; trkPath(m, "piiAccess") != want {
			t.Errorf("piiAccess by default: %v", m)
		}
	}
	p.mutate(t, p.owner.tok, "memberUpdate", "MemberUpdateInput", "membership { id piiAccess }",
		map[string]any{"membershipId": member.membership, "role": "MEMBER", "piiAccess": true})
	check("member with access over HTTP", trkObj(p.stored(t, member.tok, p.srcID, "k1"), "properties"), false)
	p.track(t, p.key, "k2", "Order Completed", map[string]any{"card_number": "4111111111111111", "email": "jane@example.com", "color": "red"})
	check("member with access live", trkObj(mSub.next(t, 5*time.Second).data(t), "liveEvents.event.payload.properties"), false)
	// Only owners give it.
	admin := p.add(t, "admin", "Ada", "ADMIN")
	if r := dlvPost(t, s, admin.tok, `mutation($i: MemberUpdateInput!) { memberUpdate(input: $i) { membership { id } } }`,
		map[string]any{"i": map[string]any{"membershipId": admin.membership, "role": "ADMIN", "piiAccess": true}}); r.errorCode() != "FORBIDDEN" {
		t.Errorf("admin gives PII access: %s", r.Raw)
	}
}

func TestPrivacyIsolation(t *testing.T) {
	s := startServer(t)
	a := pvNewTeam(t, s, "pv-iso-a")
	b := pvNewTeam(t, s, "pv-iso-b")
	a.track(t, a.key, "a1", "Secret", map[string]any{"a_only_password": "x"})
	b.track(t, b.key, "b1", "Other", map[string]any{"b_only": "y"})
	a.waitInbox(t, "properties.a_only_password")
	b.waitInbox(t, "properties.b_only")
	if in := b.inbox(t, b.owner.tok); in["properties.a_only_password"] != nil {
		t.Errorf("B sees A's field")
	}
	// B's owner acting on A's workspace, source and destination: NOT_FOUND.
	for _, q := range []struct{ query string }{
		{`mutation($ws: ID!) { privacyFieldClassify(input: {workspaceId: $ws, fields: ["properties.a_only_password"], classification: GREEN}) { count } }`},
		{`mutation($ws: ID!) { privacyMatcherCreate(input: {workspaceId: $ws, name: "X", classification: RED}) { matcher { id } } }`},
	} {
		if r := dlvPost(t, s, b.owner.tok, q.query, map[string]any{"ws": a.wsID}); r.errorCode() != "NOT_FOUND" {
			t.Errorf("%s: %s", q.query, r.Raw)
		}
	}
	if r := dlvPost(t, s, b.owner.tok, `query($ws: ID!) { workspace: node(id: $ws) { ... on Workspace { privacyInbox { nodes { path } } } } }`,
		map[string]any{"ws": a.wsID}); len(r.Errors) > 0 || strings.Contains(string(r.Raw), "a_only") || !strings.Contains(string(r.Raw), `"workspace":null`) {
		t.Errorf("B reads A's inbox: %s", r.Raw)
	}
	if r := dlvPost(t, s, b.owner.tok, `mutation($s: ID!) { sourcePrivacyBlockUpdate(input: {sourceId: $s, block: RED}) { source { id } } }`,
		map[string]any{"s": a.srcID}); r.errorCode() != "NOT_FOUND" {
		t.Errorf("B blocks A's source: %s", r.Raw)
	}
	// B classifying a path A sent changes nothing of A's.
	r := b.try(t, b.owner.tok, "privacyFieldClassify", "PrivacyFieldClassifyInput", "count",
		map[string]any{"workspaceId": b.wsID, "fields": []string{"properties.a_only_password"}, "classification": "GREEN"})
	if errs, _ := r["userErrors"].([]any); len(errs) != 1 {
		t.Errorf("B classifies A's path: %v", r)
	}
	if in := a.inbox(t, a.owner.tok); in["properties.a_only_password"] == nil {
		t.Errorf("A's field left A's inbox")
	}
}

// TestPrivacyReaped: what a deleted source and a deleted workspace leave in the Privacy Portal
// goes, and another workspace's stays.
func TestPrivacyReaped(t *testing.T) {
	s := startServer(t)
	doomed, kept := pvNewTeam(t, s, "pv-reap-doomed"), pvNewTeam(t, s, "pv-reap-kept")
	for _, p := range []*pvTeam{doomed, kept} {
		p.track(t, p.key, "r1", "Signed Up", map[string]any{"email": "x@example.com"})
		p.waitInbox(t, "properties.email")
		p.mutate(t, p.owner.tok, "sourcePrivacyBlockUpdate", "SourcePrivacyBlockInput", "source { id }", map[string]any{"sourceId": p.srcID, "block": "RED"})
		p.mutate(t, p.owner.tok, "privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }",
			map[string]any{"workspaceId": p.wsID, "name": "Loyalty", "classification": "YELLOW"})
	}
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.App.DB().Get(context.Background(), &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	doomed.mutate(t, doomed.owner.tok, "sourceDelete", "SourceIdInput", "deletedSourceId", map[string]any{"sourceId": doomed.srcID})
	dlvWait(t, "the source's origins reaped", 10*time.Second, func() bool {
		return count(`SELECT COUNT(*) FROM privacy_field_sources WHERE source_id = ?`, doomed.srcID)+
			count(`SELECT COUNT(*) FROM privacy_source_controls WHERE source_id = ?`, doomed.srcID) == 0
	})
	doomed.mutate(t, doomed.owner.tok, "workspaceDelete", "WorkspaceDeleteInput", "deletedWorkspaceId",
		map[string]any{"workspaceId": doomed.wsID, "confirmSlug": doomed.slug})
	dlvWait(t, "the workspace's fields and matchers reaped", 10*time.Second, func() bool {
		return count(`SELECT COUNT(*) FROM privacy_fields WHERE workspace_id = ?`, doomed.wsID)+
			count(`SELECT COUNT(*) FROM privacy_matchers WHERE workspace_id = ?`, doomed.wsID) == 0
	})
	if n := count(`SELECT COUNT(*) FROM privacy_fields WHERE workspace_id = ?`, kept.wsID) +
		count(`SELECT COUNT(*) FROM privacy_field_sources WHERE workspace_id = ?`, kept.wsID) +
		count(`SELECT COUNT(*) FROM privacy_matchers WHERE workspace_id = ?`, kept.wsID); n < 3 {
		t.Errorf("the other workspace lost its rows: %d left", n)
	}
}
