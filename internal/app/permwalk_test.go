package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/junctioncdp/junction/internal/config"
)

// TestPermissionWalk walks every field of every type that the schema's roots lead to, for every
// persona, and compares each answer with what the README's rights table allows. TestPermissions
// checks who may call each root field; this checks what comes back below it, whichever path leads
// there: a resolver that loads an object without the viewer's access shows up here even when
// the field it hangs from is allowed.
//
// The walk is made from the schema. For each object of a workspace fixture W (one of each kind:
// sources labelled prod and dev, a destination connected to both, their events, delivery attempts
// and health issues, members, grants, tokens, notifications ...) that a persona may see, it asks
// node(id:) for every field of the object's type, each object-valued field expanded one more level
// (its scalar fields), and lists expanded through their edges and nodes. Then:
//
//   - every object in any answer (anything with an id of the fixture) must be one the persona may
//     see (walkVisible, the README's table);
//   - every field must answer as walkFieldRules says for the persona: allowed, or FORBIDDEN;
//   - nodes(ids:) of every object answers exactly the objects the persona may see.
//
// Every field of every type the roots lead to needs a rule, and every rule a field: a new field
// without an expectation fails the walk, as does one the walk never selected.
func TestPermissionWalk(t *testing.T) {
	start := time.Now()
	schema := walkLoadSchema(t)
	gen := &walkGen{schema: schema, args: walkArgs(), selected: map[string]bool{}}
	walkCheckCoverage(t, schema)
	f := newWalkFixture(t)

	ran := 0
	for p := range numWalkPersonas {
		t.Run(p.String(), func(t *testing.T) { ran++; f.walkPersona(t, gen, p) })
	}
	t.Run("leaks", func(t *testing.T) { ran++; f.leaks(t, gen) })
	if ran < int(numWalkPersonas)+1 {
		return // some were left out by -run: what they would have selected is unknown
	}

	// Every field with a rule was asked for at least once (LiveEvent by the liveEvents leak).
	var never []string
	for typ, fields := range walkFieldRules {
		for field := range fields {
			if !gen.selected[typ+"."+field] {
				never = append(never, typ+"."+field)
			}
		}
	}
	sort.Strings(never)
	if len(never) > 0 {
		t.Errorf("fields the walk never selected: %s", strings.Join(never, ", "))
	}
	t.Logf("walk took %s, %d requests", time.Since(start).Round(time.Millisecond), f.requests)
}

// walkPersona is who makes a request in the walk.
type walkPersona int

const (
	wAnonymous   walkPersona = iota // no credentials
	wOutsider                       // owns W2, not in W
	wOwner                          // OWNER of W
	wAdmin                          // ADMIN of W
	wMember                         // MEMBER of W
	wMinimal                        // MINIMAL of W without grants
	wReader                         // MINIMAL of W with SOURCE_READ on the prod source (by id)
	wSourceAdmin                    // MINIMAL of W with SOURCE_ADMIN on environment:prod (by label)
	wTokenOwner                     // access tokens of W made by its owner, one of each role
	wTokenAdmin
	wTokenMember
	wTokenMinimal
	numWalkPersonas
)

func (p walkPersona) String() string {
	return [numWalkPersonas]string{"anonymous", "outsider", "owner", "admin", "member", "minimal", "reader", "sourceAdmin",
		"ownerToken", "adminToken", "memberToken", "minimalToken"}[p]
}

func (p walkPersona) isToken() bool { return p >= wTokenOwner }

// walkRole is each persona's role in W: for a token, its own (its creator, the owner, has more).
var walkRole = [numWalkPersonas]string{
	wOwner: "OWNER", wAdmin: "ADMIN", wMember: "MEMBER", wMinimal: "MINIMAL", wReader: "MINIMAL", wSourceAdmin: "MINIMAL",
	wTokenOwner: "OWNER", wTokenAdmin: "ADMIN", wTokenMember: "MEMBER", wTokenMinimal: "MINIMAL",
}

// walkCan is what the README's rights table gives a persona in one workspace.
type walkCan struct {
	in         bool   // sees the workspace and its members
	readAll    bool   // sees every resource: OWNER, ADMIN, MEMBER
	administer bool   // changes resources, reads the audit trail and invitations: OWNER, ADMIN
	prodGrant  string // its grant on the prod source: "", "read" or "admin"
	engage     bool   // the workspace's plan has Engage: W is on BUSINESS, W2 on FREE
}

// seesSource: every source with readAll, else those its grants cover.
func (c walkCan) seesSource(label string) bool {
	return c.readAll || (label == permProd && c.prodGrant != "")
}

// seesDestinations: with readAll, and source admins, who connect their sources to them.
func (c walkCan) seesDestinations() bool { return c.readAll || c.prodGrant == "admin" }

// rights is what p may do in workspace ws ("W" or "W2", where the outsider is the owner).
func (p walkPersona) rights(ws string) walkCan {
	if ws == "W2" {
		if p == wOutsider {
			return walkCan{in: true, readAll: true, administer: true}
		}
		return walkCan{}
	}
	role := walkRole[p]
	c := walkCan{in: role != "", readAll: role == "OWNER" || role == "ADMIN" || role == "MEMBER", administer: role == "OWNER" || role == "ADMIN",
		engage: true}
	switch p {
	case wReader:
		c.prodGrant = "read"
	case wSourceAdmin:
		c.prodGrant = "admin"
	}
	return c
}

// walkAreaRole is the least role that hears of each notification area (the README's
// notifications section): a token reads its creator's notifications of the areas its role hears of.
var walkAreaRole = map[string]string{
	"SOURCES": "MEMBER", "DESTINATIONS": "MEMBER", "STORAGE": "MEMBER", "CONNECTIONS": "MEMBER", "HEALTH": "MEMBER",
	"MEMBERS": "ADMIN", "WORKSPACE": "MINIMAL", "ACCESS_TOKENS": "ADMIN",
}

func walkRoleAtLeast(role, least string) bool {
	rank := map[string]int{"OWNER": 0, "ADMIN": 1, "MEMBER": 2, "MINIMAL": 3}
	r, ok1 := rank[role]
	l, ok2 := rank[least]
	return ok1 && ok2 && r <= l
}

// walkObject is an object of the fixture, registered with what decides who sees it.
type walkObject struct {
	id, kind string // kind is the GraphQL type
	ws       string // "W" or "W2"
	label    string // the source it belongs to, for sources and what hangs from them; "" for none
	user     string // for people: their user id; for notifications: their recipient's
	inW      bool   // for people: a member of W
	inW2     bool   // for people: a member of W2
	area     string // for notifications
	walk     bool   // walk its fields (one object of each kind and visibility)
}

// walkVisible is the README's rights table for objects: whether persona p may see o at all.
func (f *walkFixture) walkVisible(p walkPersona, o *walkObject) bool {
	c := p.rights(o.ws)
	switch o.kind {
	case "Workspace", "Membership", "ResourceGrant":
		return c.in
	case "Invitation", "AuditEvent":
		return c.administer
	case "AccessToken":
		// All are the owner's: owners and admins see every token, others their own (a token's
		// viewer is its creator).
		return c.administer || (c.in && f.userOf(p) == f.users[wOwner].id)
	case "User":
		return o.user == f.userOf(p) || (o.inW && p.rights("W").in) || (o.inW2 && p.rights("W2").in)
	case "Source", "Event":
		return c.seesSource(o.label)
	case "Destination":
		return c.seesDestinations()
	case "Connection", "DeliveryAttempt":
		return c.seesDestinations() && c.seesSource(o.label)
	case "HealthIssue":
		if o.label == "" { // the destination's
			return c.seesDestinations()
		}
		return c.seesSource(o.label)
	case "Profile", "ComputedTrait", "Audience":
		return c.readAll && c.engage
	case "Notification":
		if o.user != f.userOf(p) {
			return false
		}
		return !p.isToken() || (o.ws == "W" && walkRoleAtLeast(walkRole[p], walkAreaRole[o.area]))
	}
	panic("walkVisible: no rule for " + o.kind)
}

// walkRule says whether a persona with rights c may read a field of an object it sees; when not,
// the field is FORBIDDEN.
type walkRule func(c walkCan) bool

func walkOpenRule(walkCan) bool         { return true }
func walkAdministerRule(c walkCan) bool { return c.administer }
func walkReadAllRule(c walkCan) bool    { return c.readAll }

// walkOpen gives the fields listed the open rule: whoever sees the object reads them. What a
// list or a related object holds is then checked object by object.
func walkOpen(fields string) map[string]walkRule {
	out := map[string]walkRule{}
	for _, f := range strings.Fields(fields) {
		out[f] = walkOpenRule
	}
	return out
}

func walkWith(m map[string]walkRule, field string, r walkRule) map[string]walkRule {
	m[field] = r
	return m
}

// walkFieldRules is the README's rights table for fields, on objects the viewer may see. Relay's
// connection and edge types (edges, nodes, pageInfo, totalCount; cursor, node) need none: what
// they hold is checked object by object.
var walkFieldRules = map[string]map[string]walkRule{
	// invitation(token:) answers whoever holds the secret, which the walk's viewers do not.
	"Query": walkOpen("node nodes viewer catalog serverInfo workspace invitation trackingPlanExport workspaceDeletions"),
	"Workspace": walkEngage(walkWith(walkWith(walkWith(walkOpen(`id name slug createdAt updatedAt viewerRole viewerCanUpdate viewerCanDelete
		viewerCanManageMembers viewerCanChangePlan plan members accessTokens destinations healthIssues healthIssueGroups overview sources trackingPlans
		privacyMatchers privacyInbox privacyInventory privacyInventoryCsv viewerCanUpdatePrivacy viewerHasPiiAccess regulations suppressedSubjects settings`),
		"invitations", walkAdministerRule), "auditEvents", walkAdministerRule), "usage", walkReadAllRule)),
	// Only the viewer's own workspaces, invitations, notifications and settings; others' read as
	// empty, which the objects they would hold check.
	"User":               walkOpen("id email emailVerified name createdAt workspaces invitations notifications unreadNotificationCount notificationSettings"),
	"Membership":         walkOpen("id user role grants createdAt viewerCanUpdate viewerCanDelete piiAccess"),
	"ResourceGrant":      walkOpen("id role sourceId label createdAt"),
	"Invitation":         walkOpen("id email role status workspaceName invitedBy createdAt expiresAt viewerCanAccept viewerCanRevoke"),
	"AccessToken":        walkOpen("id name role createdBy createdAt lastUsedAt expiresAt revokedAt viewerCanRevoke"),
	"AuditEvent":         walkOpen("id type actorType user accessToken resourceType resourceId changes createdAt"),
	"PlanDetails":        walkOpen("plan features apiCallsPerMonth mtusPerMonth"),
	"Catalog":            walkOpen("sources destinations sourceCategories destinationCategories newAndNoteworthy entry"),
	"CatalogEntry":       walkOpen("id slug name description categories status sourceType settings instructions addedAt"),
	"SettingDefinition":  walkOpen("name label type required secret default description options min max"),
	"ServerInfo":         walkOpen("version startedAt now emailEnabled"),
	"Source":             walkOpen(`id name catalogEntry type category enabled status lastSeenAt labels settings secretSettings webhookPath writeKeys destinations connections createdAt updatedAt createdBy updatedBy viewerCanUpdate viewerCanDelete recentEvents ingestStats protocols schema violations privacyBlock`),
	"WriteKey":           walkOpen("key createdAt revokedAt"),
	"Destination":        walkOpen(`id name catalogEntry category enabled status settings secretSettings sources connections createdAt updatedAt createdBy updatedBy viewerCanUpdate deliveryStats deliveryAttempts privacyControls kind warehouseSyncs`),
	"WarehouseSync":      walkOpen("id trigger status startedAt finishedAt rowsLoaded tables warnings errorType errorMessage"),
	"WarehouseTableRows": walkOpen("schema table rows"),
	"SecretSetting":      walkOpen("name isSet"),
	"Connection":         walkOpen("id source destination enabled createdAt createdBy viewerCanUpdate"),
	"Event":              walkOpen("id type messageId event userId anonymousId receivedAt timestamp status discardReason discardMessage payload violations replayedAt"),
	"IngestStats":        walkOpen("lastHour last24Hours"),
	"IngestFigures":      walkOpen("received accepted discarded blocked byReason"),
	// Protocols: members read plans (MINIMAL members see none), violations and schemas of the
	// sources they see; what changes them is TestPermissions' table.
	"TrackingPlan": walkOpen("id name description version commonSchema rules ruleCount sources versions violations createdAt updatedAt createdBy updatedBy viewerCanUpdate"),
	// Regulations: members read them (MINIMAL members see none); subjects are in clear only
	// while a deletion has work to do.
	"Regulation":            walkOpen("id type subjectType subjectCount subjects status destinations warehouses rowsDeleted notBefore createdAt startedAt finishedAt canceledAt createdBy viewerCanCancel"),
	"RegulationDestination": walkOpen("destination destinationId name status attempts error updatedAt"),
	"RegulationWarehouse":   walkOpen("destination destinationId name status attempts rowsDeleted error updatedAt"),
	"SuppressedSubject":     walkOpen("subjectType subjectHash regulation createdAt"),
	// Settings: everyone in the workspace reads them (the privacy overview counts nothing for
	// MINIMAL members); owners change them.
	"WorkspaceSettings": walkOpen("id name slug plan retention sourceDefaults privacy viewerCanUpdate"),
	"RetentionSettings": walkOpen(`eventsHours deliveredAttemptsHours failedAttemptsHours serverEventsHours serverDeliveredAttemptsHours serverFailedAttemptsHours
		auditTrailHours inboxHours serverAuditTrailHours serverInboxHours`),
	"SourceDefaults":  walkOpen("labels enabled"),
	"PrivacyOverview": walkOpen("suppressedSubjects initializedRegulations runningRegulations finishedRegulations failedRegulations subjectsThisMonth monthlySubjectCap"),
	// Deletions: only the person who deleted the workspace sees it (Query.workspaceDeletions).
	"WorkspaceDeletion":       walkOpen("workspaceId name deletedAt finished stepsDone stepCount currentStep rowsDeleted updatedAt"),
	"TrackingPlanRule":        walkOpen("key type eventName description labels properties traits context version updatedAt updatedBy"),
	"TrackingPlanVersion":     walkOpen("version summary changes user byAccessToken createdAt"),
	"TrackingPlanRuleChange":  walkOpen("rule action"),
	"Violation":               walkOpen("type field message"),
	"ViolationGroup":          walkOpen("source sourceId eventType eventName field type message count firstSeenAt lastSeenAt samples"),
	"ViolationSample":         walkOpen("eventId receivedAt payload event"),
	"SourceProtocols":         walkOpen("trackingPlan controls viewerCanUpdate"),
	"SchemaControls":          walkOpen("unplannedEvents unplannedProperties violations commonSchemaViolations forwardBlockedEventsTo forwardViolationsTo"),
	"SchemaEvent":             walkOpen("type name firstSeenAt lastSeenAt count24h count7d blockedCount24h blockedCount7d planned archived keys"),
	"SchemaKey":               walkOpen("field path types firstSeenAt lastSeenAt count24h count7d planned"),
	"ViolationsChange":        walkOpen("workspaceId sources"),
	"DiscardCount":            walkOpen("reason count"),
	"Usage":                   walkOpen("month apiCalls mtus apiCallsLimit mtusLimit bySource byDay"),
	"SourceUsage":             walkOpen("source sourceId apiCalls mtus"),
	"DailyUsage":              walkOpen("day apiCalls newMtus"),
	"DeliveryAttempt":         walkOpen("id destination event eventId eventPayload attempt outcome errorType errorMessage request response latencyMs endToEndMs createdAt"),
	"DeliveryRequest":         walkOpen("method url headers body eventCount redirects"),
	"DeliveryRedirect":        walkOpen("status url followed refusedBecause"),
	"DeliveryResponse":        walkOpen("status headers body"),
	"DeliveryStats":           walkOpen("since until delivered notDelivered retrying attempts p95EndToEndMs"),
	"HealthIssue":             walkOpen("id targetKind target targetId errorType message count firstSeenAt lastSeenAt status sampleAttempt sampleEvent acknowledgedBy resolvedAt viewerCanUpdate"),
	"HealthIssueGroup":        walkOpen("targetKind errorType issueCount count issues"),
	"Overview":                walkOpen("nodes edges"),
	"OverviewNode":            walkOpen("id kind name catalogSlug type status enabled node"),
	"OverviewEdge":            walkOpen("id from to enabled eventCount24h"),
	"Notification":            walkOpen("id type area message workspace actor resourceType resourceId read createdAt"),
	"NotificationSettings":    walkOpen("areas webhook"),
	"NotificationArea":        walkOpen("area types"),
	"NotificationTypeSetting": walkOpen("type inApp"),
	"NotificationWebhook":     walkOpen("url updatedAt"),
	// Engage: members, owners and admins read profiles (W is on BUSINESS); MINIMAL members none.
	"Profile":                    walkOpen("id identifiers traits computedTraits events mergeHistory createdAt updatedAt audiences"),
	"ProfileIdentifier":          walkOpen("type value source firstSeenAt lastSeenAt"),
	"ProfileTrait":               walkOpen("name value updatedAt source"),
	"ProfileMerge":               walkOpen("mergedProfileId event identifiers droppedIdentifiers createdAt"),
	"IdentifierValue":            walkOpen("type value"),
	"IdentityResolutionSettings": walkOpen("identifiers blockedValues updatedAt updatedBy viewerCanUpdate"),
	"IdentifierRule":             walkOpen("type priority limit isDefault"),
	"BlockedValue":               walkOpen("value regexp"),
	"ComputedTrait": walkOpen(`id key name description kind eventName eventType propertyConditions property aggregation window
		enabled status lastComputedAt profileCount createdBy createdAt updatedAt viewerCanUpdate`),
	"ComputedTraitWindow":  walkOpen("amount unit"),
	"PropertyCondition":    walkOpen("path operator value"),
	"ProfileComputedTrait": walkOpen("computedTrait key value computedAt"),
	// Audiences: as profiles; viewerCanUpdate says whether they may change them.
	"Audience":            walkOpen("id key name description definition enabled size members sizeHistory destinations status lastComputedAt viewerCanUpdate createdBy createdAt updatedAt"),
	"AudienceMember":      walkOpen("profile enteredAt"),
	"AudienceSizePoint":   walkOpen("at size"),
	"AudienceDestination": walkOpen("destination mode createdAt"),
	"ProfileAudience":     walkOpen("audience enteredAt"),
	// Only reached from subscriptions; the liveEvents leak selects it. Who may subscribe at all is
	// TestPermissions' table; what the messages hold are the types above.
	"LiveEvent": walkOpen("sourceId event"),
	// Privacy Portal: members read matchers, inbox and inventory (MINIMAL members see them empty);
	// whoever sees a source or destination reads its controls; values are masked without PII
	// access (TestPrivacyMasking).
	"PrivacyMatcher":             walkOpen("id name classification target keyMatch synonyms pattern luhnCheck isDefault modified enabled updatedAt"),
	"PrivacyField":               walkOpen("path recommendedClassification matcher classification classifiedAt classifiedBy firstSeenAt lastSeenAt count sample origins destinations"),
	"PrivacyFieldOrigin":         walkOpen("source eventName firstSeenAt lastSeenAt count"),
	"PrivacyFieldDestination":    walkOpen("destination action"),
	"PrivacyDestinationControls": walkOpen("red yellow green"),
}

// walkEngage adds Engage's fields of a workspace: members, owners and admins read them, on a plan
// with Engage.
func walkEngage(m map[string]walkRule) map[string]walkRule {
	for _, f := range []string{"profiles", "profile", "identityResolutionSettings", "computedTraits", "audiences"} {
		m[f] = func(c walkCan) bool { return c.readAll && c.engage }
	}
	return m
}

// walkArgs gives the required arguments of fields, which the walk cannot invent.
func walkArgs() map[string]string {
	return map[string]string{
		"Workspace.usage":   fmt.Sprintf("(month: %q)", time.Now().UTC().Format("2006-01")),
		"Workspace.profile": `(lookup: {type: "user_id", value: "walker"})`,
		"Catalog.entry":     `(slug: "webhook")`,
		"Query.invitation":  `(token: "jci_not-a-secret-anyone-holds")`,
	}
}

// walkLoadSchema reads schema/*.graphqls.
func walkLoadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "schema", "*.graphqls"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files: %v", err)
	}
	var sources []*ast.Source
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, &ast.Source{Name: name, Input: string(b)})
	}
	schema, err := gqlparser.LoadSchema(sources...)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	return schema
}

// walkIsRelay tells whether def is a relay connection or edge type, which needs no rules of its own.
func walkIsRelay(def *ast.Definition) bool {
	names := map[string]bool{}
	for _, f := range def.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			names[f.Name] = true
		}
	}
	switch {
	case strings.HasSuffix(def.Name, "Connection"):
		return len(names) == 4 && names["edges"] && names["nodes"] && names["pageInfo"] && names["totalCount"]
	case strings.HasSuffix(def.Name, "Edge"):
		return len(names) == 2 && names["cursor"] && names["node"]
	}
	return def.Name == "PageInfo"
}

// walkReachable lists the object types the Query and Subscription roots lead to.
func walkReachable(schema *ast.Schema) map[string]*ast.Definition {
	out := map[string]*ast.Definition{}
	queue := []string{"Query", "Subscription"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		def := schema.Types[name]
		if def == nil || out[name] != nil {
			continue
		}
		switch def.Kind {
		case ast.Interface, ast.Union:
			for _, p := range schema.GetPossibleTypes(def) {
				queue = append(queue, p.Name)
			}
		case ast.Object:
			out[name] = def
			for _, f := range def.Fields {
				if !strings.HasPrefix(f.Name, "__") {
					queue = append(queue, f.Type.Name())
				}
			}
		}
	}
	return out
}

// walkCheckCoverage fails listing the fields without a rule and the rules without a field.
func walkCheckCoverage(t *testing.T, schema *ast.Schema) {
	t.Helper()
	var missing, gone []string
	reachable := walkReachable(schema)
	for name, def := range reachable {
		if walkIsRelay(def) || name == "Subscription" { // subscriptions' root fields: TestPermissions
			continue
		}
		for _, f := range def.Fields {
			if !strings.HasPrefix(f.Name, "__") && walkFieldRules[name][f.Name] == nil {
				missing = append(missing, name+"."+f.Name)
			}
		}
	}
	for typ, fields := range walkFieldRules {
		def := reachable[typ]
		for field := range fields {
			if def == nil || def.Fields.ForName(field) == nil {
				gone = append(gone, typ+"."+field)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(gone)
	if len(missing) > 0 {
		t.Errorf("fields without a rule in walkFieldRules: %s", strings.Join(missing, ", "))
	}
	if len(gone) > 0 {
		t.Errorf("rules of fields that are not in the schema: %s", strings.Join(gone, ", "))
	}
}

// walkGen writes selections from the schema.
type walkGen struct {
	schema   *ast.Schema
	args     map[string]string
	selected map[string]bool // "Type.field" asked at least once
}

// isNode tells whether def is an object with an identity of its own (it implements Node).
func (g *walkGen) isNode(def *ast.Definition) bool {
	for _, i := range def.Interfaces {
		if i == "Node" {
			return true
		}
	}
	return false
}

// field writes the selection of one field of typ. Objects with an identity get their scalar
// fields at depth 0 and everything (one level further down) at depth 1; objects without one
// (lists, figures, requests) are expanded whole at the depth of their parent. Fields that the
// rules refuse c are left out below the top level, where the walk asks for them on their own.
func (g *walkGen) field(t *testing.T, typ string, f *ast.FieldDefinition, depth int, c walkCan) string {
	g.selected[typ+"."+f.Name] = true
	sel := f.Name
	for _, a := range f.Arguments {
		if a.Type.NonNull && a.DefaultValue == nil {
			args, ok := g.args[typ+"."+f.Name]
			if !ok {
				t.Errorf("%s.%s has a required argument %s: give it a value in walkArgs", typ, f.Name, a.Name)
				return ""
			}
			sel += args
			break
		}
	}
	def := g.schema.Types[f.Type.Name()]
	switch def.Kind {
	case ast.Scalar, ast.Enum:
		return sel
	case ast.Interface, ast.Union:
		// The types' fields of the same name may differ in type, which GraphQL refuses in one
		// selection: each type's fields get aliases of their own (but id, which is the same).
		inner := "__typename"
		for _, p := range g.schema.GetPossibleTypes(def) {
			inner += " ... on " + p.Name + " { " + g.objectAliased(t, p, depth-1, c, p.Name+"_") + " }"
		}
		return sel + " { " + inner + " }"
	}
	if g.isNode(def) {
		return sel + " { __typename " + g.object(t, def, depth-1, c) + " }"
	}
	return sel + " { " + g.object(t, def, depth, c) + " }"
}

// object writes the selection of an object type at depth (below 0: its scalar fields only).
func (g *walkGen) object(t *testing.T, def *ast.Definition, depth int, c walkCan) string {
	return g.objectAliased(t, def, depth, c, "")
}

// objectAliased is object with each field but id aliased with prefix.
func (g *walkGen) objectAliased(t *testing.T, def *ast.Definition, depth int, c walkCan, prefix string) string {
	var parts []string
	for _, f := range def.Fields {
		if strings.HasPrefix(f.Name, "__") {
			continue
		}
		ft := g.schema.Types[f.Type.Name()]
		leaf := ft.Kind == ast.Scalar || ft.Kind == ast.Enum
		if depth < 0 && !leaf {
			continue
		}
		if r := walkFieldRules[def.Name][f.Name]; r != nil && !r(c) {
			continue // refused: asked for on its own at the top level
		}
		if s := g.field(t, def.Name, f, depth, c); s != "" {
			if prefix != "" && f.Name != "id" {
				s = prefix + f.Name + ": " + s
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "__typename"
	}
	return strings.Join(parts, " ")
}

// walkFixture is W, with every persona in it, and what the walk found.
type walkFixture struct {
	s        *server
	book     *permSecrets
	users    map[walkPersona]*permAccount // the people behind the personas (tokens: none)
	victim   *permAccount                 // a MEMBER of W and of W2, no persona
	tokens   map[walkPersona]string       // the tokens' secrets
	wsID     string                       // W
	slug     string
	w2       string
	objects  []*walkObject
	byID     map[string]*walkObject
	sources  map[string]string // W's sources by label
	keys     map[string]string // their write keys
	dest     string
	conns    map[string]string // by the source's label
	attempts map[string]string // one attempt of each source's event, by label
	issues   map[string]string // health issues by label ("" for the destination's)
	requests int
	seq      int
}

func (f *walkFixture) userOf(p walkPersona) string {
	switch {
	case p == wAnonymous:
		return ""
	case p.isToken():
		return f.users[wOwner].id
	}
	return f.users[p].id
}

func (f *walkFixture) bearer(p walkPersona) string {
	switch {
	case p == wAnonymous:
		return ""
	case p.isToken():
		return f.tokens[p]
	}
	return f.users[p].session
}

func (f *walkFixture) add(o *walkObject) *walkObject {
	if o.id == "" {
		panic("walk: an object without an id: " + o.kind)
	}
	if f.byID[o.id] == nil {
		f.objects = append(f.objects, o)
		f.byID[o.id] = o
	}
	return f.byID[o.id]
}

// gql sends a query as p and screens the answer for secrets.
func (f *walkFixture) gql(t *testing.T, bearer, query string, vars map[string]any) gqlResponse {
	t.Helper()
	f.requests++
	var headers []string
	if bearer != "" {
		headers = []string{"Authorization", "Bearer " + bearer}
	}
	r := f.s.post(t, query, vars, headers...)
	f.book.screen(t, r.Raw, r.Data)
	return r
}

// must is gql for set-up steps: any error or userError is fatal.
func (f *walkFixture) must(t *testing.T, bearer, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := f.gql(t, bearer, query, vars)
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Fatalf("set-up step failed: %s\n%s", r.Raw, query)
	}
	for _, v := range r.Data {
		if ues, _ := permDig(v, "userErrors").([]any); len(ues) > 0 {
			t.Fatalf("set-up step refused: %s\n%s", r.Raw, query)
		}
	}
	return r.Data
}

func (f *walkFixture) name(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%d", prefix, f.seq)
}

func (f *walkFixture) signUp(t *testing.T, label string) *permAccount {
	t.Helper()
	a := &permAccount{email: f.name(label) + "@example.com", password: f.book.newPassword()}
	d := f.must(t, "", permSignUp, permInput(map[string]any{"email": a.email, "password": a.password, "name": label}))
	a.id, a.session = permStr(d, "signUp.user.id"), permStr(d, "signUp.token")
	return a
}

// newWalkFixture builds W through the API, as its owner: the personas join it, the prod and dev
// sources send events through the tracking API to a webhook on a local receiver that takes the
// prod source's and refuses the dev source's, and discarded events of each open health issues.
func newWalkFixture(t *testing.T) *walkFixture {
	t.Helper()
	s := startServer(t, allowLoopback, func(c *config.Config) {
		c.Limits.Depth, c.Limits.Aliases, c.Limits.Fields, c.Limits.Complexity, c.Limits.Tokens = 50, 100000, 100000, 100000000, 1000000
		c.Limits.BodyBytes = 8 << 20
	})
	f := &walkFixture{s: s, book: &permSecrets{}, users: map[walkPersona]*permAccount{}, tokens: map[walkPersona]string{},
		byID: map[string]*walkObject{}, sources: map[string]string{}, keys: map[string]string{}, conns: map[string]string{},
		attempts: map[string]string{}, issues: map[string]string{}}
	for _, p := range []walkPersona{wOwner, wOutsider, wAdmin, wMember, wMinimal, wReader, wSourceAdmin} {
		f.users[p] = f.signUp(t, p.String())
	}
	f.victim = f.signUp(t, "victim")
	own := f.users[wOwner].session

	// W2, the outsider's, where the victim is a member too, with a source of its own.
	d := f.must(t, f.users[wOutsider].session, permWorkspaceCreate, permInput(map[string]any{"name": "W2", "slug": f.name("w2")}))
	f.w2 = permStr(d, "workspaceCreate.workspace.id")
	f.add(&walkObject{id: f.w2, kind: "Workspace", ws: "W2", walk: true})
	d = f.must(t, f.users[wOutsider].session, permMemberInvite, permInput(map[string]any{"workspaceId": f.w2, "email": f.victim.email, "role": "MEMBER"}))
	f.must(t, f.victim.session, permInvitationAccept, permInput(map[string]any{"token": permStr(d, "memberInvite.token")}))
	d = f.must(t, f.users[wOutsider].session, permSourceCreate, permInput(map[string]any{"workspaceId": f.w2, "catalogId": "cat_javascript", "name": "W2 web"}))
	f.add(&walkObject{id: permStr(d, "sourceCreate.source.id"), kind: "Source", ws: "W2", walk: true})

	// W and its people.
	f.slug = f.name("acme")
	d = f.must(t, own, permWorkspaceCreate, permInput(map[string]any{"name": "Acme", "slug": f.slug}))
	f.wsID = permStr(d, "workspaceCreate.workspace.id")
	f.add(&walkObject{id: f.wsID, kind: "Workspace", ws: "W", walk: true})
	// W is on BUSINESS, so that what Engage builds (profiles) exists to be walked.
	f.must(t, own, permMutation("workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }"),
		permInput(map[string]any{"workspaceId": f.wsID, "plan": "BUSINESS"}))
	memberships := map[string]string{}
	for _, id := range permIDs(permDig(d, "workspaceCreate.workspace.members.nodes")) {
		memberships["owner"] = id
	}
	join := func(a *permAccount, label string) {
		d := f.must(t, own, permMemberInvite, permInput(map[string]any{"workspaceId": f.wsID, "email": a.email, "role": "MEMBER"}))
		d = f.must(t, a.session, permInvitationAccept, permInput(map[string]any{"token": permStr(d, "memberInvite.token")}))
		memberships[label] = permStr(d, "invitationAccept.membership.id")
	}
	for _, p := range []walkPersona{wAdmin, wMember, wMinimal, wReader, wSourceAdmin} {
		join(f.users[p], p.String())
	}
	join(f.victim, "victim")
	f.must(t, own, permMemberUpdate, permInput(map[string]any{"membershipId": memberships["admin"], "role": "ADMIN"}))
	for _, p := range []walkPersona{wMinimal, wReader, wSourceAdmin} {
		f.must(t, own, permMemberUpdate, permInput(map[string]any{"membershipId": memberships[p.String()], "role": "MINIMAL"}))
	}
	for label, m := range memberships {
		f.add(&walkObject{id: m, kind: "Membership", ws: "W", walk: label == "reader"})
	}
	for p, a := range f.users {
		f.add(&walkObject{id: a.id, kind: "User", ws: "W", user: a.id, inW: p != wOutsider, inW2: p == wOutsider,
			walk: p == wOwner || p == wReader || p == wOutsider})
	}
	f.add(&walkObject{id: f.victim.id, kind: "User", ws: "W", user: f.victim.id, inW: true, inW2: true, walk: true})

	// The sources, the destination on the local receiver, and the connections.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "dev-marker") {
			http.Error(w, "refused", http.StatusBadRequest) // fails for good: no retries
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)
	for _, label := range []string{permProd, permNonProd} {
		d := f.must(t, own, permSourceCreate, permInput(map[string]any{"workspaceId": f.wsID, "catalogId": "cat_javascript",
			"name": "Web " + label, "labels": []string{label}}))
		f.sources[label] = permStr(d, "sourceCreate.source.id")
		keys, _ := permDig(d, "sourceCreate.source.writeKeys").([]any)
		f.keys[label] = permStr(keys[0], "key")
		f.add(&walkObject{id: f.sources[label], kind: "Source", ws: "W", label: label, walk: true})
	}
	d = f.must(t, own, permDestinationCreate, permInput(map[string]any{"workspaceId": f.wsID, "catalogId": "cat_webhook", "name": "Hook",
		"settings": map[string]any{"url": receiver.URL + "/hook", "sharedSecret": f.book.newSetting()}}))
	f.dest = permStr(d, "destinationCreate.destination.id")
	f.add(&walkObject{id: f.dest, kind: "Destination", ws: "W", walk: true})
	for _, label := range []string{permProd, permNonProd} {
		d := f.must(t, own, permConnectionCreate, permInput(map[string]any{"sourceId": f.sources[label], "destinationId": f.dest}))
		f.conns[label] = permStr(d, "connectionCreate.connection.id")
		f.add(&walkObject{id: f.conns[label], kind: "Connection", ws: "W", label: label, walk: true})
	}

	// Grants, tokens, a pending invitation.
	d = f.must(t, own, permMemberGrantAdd, permInput(map[string]any{"membershipId": memberships["reader"], "role": "SOURCE_READ", "sourceId": f.sources[permProd]}))
	for _, g := range permIDs(permDig(d, "memberGrantAdd.membership.grants")) {
		f.add(&walkObject{id: g, kind: "ResourceGrant", ws: "W", walk: true})
	}
	d = f.must(t, own, permMemberGrantAdd, permInput(map[string]any{"membershipId": memberships["sourceAdmin"], "role": "SOURCE_ADMIN", "label": permProd}))
	for _, g := range permIDs(permDig(d, "memberGrantAdd.membership.grants")) {
		f.add(&walkObject{id: g, kind: "ResourceGrant", ws: "W"})
	}
	for _, p := range []walkPersona{wTokenOwner, wTokenAdmin, wTokenMember, wTokenMinimal} {
		d := f.must(t, own, permAccessTokenCreate, permInput(map[string]any{"workspaceId": f.wsID, "name": p.String(), "role": walkRole[p]}))
		f.tokens[p] = permStr(d, "accessTokenCreate.secret")
		f.add(&walkObject{id: permStr(d, "accessTokenCreate.accessToken.id"), kind: "AccessToken", ws: "W", walk: p == wTokenMinimal})
	}
	d = f.must(t, own, permMemberInvite, permInput(map[string]any{"workspaceId": f.wsID, "email": f.name("nobody") + "@example.com", "role": "MEMBER"}))
	f.add(&walkObject{id: permStr(d, "memberInvite.invitation.id"), kind: "Invitation", ws: "W", walk: true})

	// Events: one accepted and one discarded of each source. The receiver takes the prod event and
	// refuses the dev one, which opens the destination's health issue with a dev attempt as its sample.
	for _, label := range []string{permProd, permNonProd} {
		marker := map[string]string{permProd: "prod-marker", permNonProd: "dev-marker"}[label]
		for _, ev := range []map[string]any{
			{"userId": "walker", "event": "Walked", "messageId": f.name("walk"), "properties": map[string]any{"marker": marker}},
			{"event": "No One", "messageId": f.name("anon")},
		} {
			if r := trkSend(t, s, "/v1/track", ev, trkBasic(f.keys[label])...); r.Status != http.StatusOK {
				t.Fatalf("tracking API: %d %s", r.Status, r.Raw)
			}
		}
	}
	const issuesQuery = `query($slug: String!) { workspace(slug: $slug) { healthIssues(first: 50) { nodes { id targetKind targetId
		sampleAttempt { id event { id } } sampleEvent { id } } } } }`
	var issues []any
	dlvWait(t, "the delivery attempts and the health issues", 20*time.Second, func() bool {
		d := f.must(t, own, issuesQuery, map[string]any{"slug": f.slug})
		issues, _ = permDig(d, "workspace.healthIssues.nodes").([]any)
		d = f.must(t, own, `query($id: ID!) { node(id: $id) { ... on Destination { deliveryAttempts(first: 50) { nodes { id } } } } }`, map[string]any{"id": f.dest})
		attempts, _ := permDig(d, "node.deliveryAttempts.nodes").([]any)
		return len(issues) == 3 && len(attempts) == 2
	})
	for label, src := range f.sources {
		d := f.must(t, own, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents(first: 50) { nodes { id status } } } } }`, map[string]any{"id": src})
		events, _ := permDig(d, "node.recentEvents.nodes").([]any)
		for _, e := range events {
			f.add(&walkObject{id: permStr(e, "id"), kind: "Event", ws: "W", label: label, walk: permStr(e, "status") == "ACCEPTED"})
		}
		if len(events) != 2 {
			t.Fatalf("the %s source has %d events, want 2", label, len(events))
		}
	}
	d = f.must(t, own, `query($id: ID!) { node(id: $id) { ... on Destination { deliveryAttempts(first: 50) { nodes { id outcome event { id } } } } } }`, map[string]any{"id": f.dest})
	attempts, _ := permDig(d, "node.deliveryAttempts.nodes").([]any)
	for _, a := range attempts {
		ev := f.byID[permStr(a, "event.id")]
		if ev == nil {
			t.Fatalf("an attempt of an unknown event: %v", a)
		}
		f.attempts[ev.label] = permStr(a, "id")
		f.add(&walkObject{id: permStr(a, "id"), kind: "DeliveryAttempt", ws: "W", label: ev.label, walk: true})
	}
	for _, is := range issues {
		label := ""
		if permStr(is, "targetKind") == "SOURCE" {
			label = f.byID[permStr(is, "targetId")].label
		} else if got := permStr(is, "sampleAttempt.id"); got != f.attempts[permNonProd] {
			t.Fatalf("the destination's issue samples %s, want the dev source's attempt %s", got, f.attempts[permNonProd])
		}
		f.issues[label] = permStr(is, "id")
		f.add(&walkObject{id: permStr(is, "id"), kind: "HealthIssue", ws: "W", label: label, walk: true})
	}
	if len(f.attempts) != 2 || len(f.issues) != 3 {
		t.Fatalf("attempts %v, issues %v", f.attempts, f.issues)
	}

	// The profile identity resolution made of the walker's events (both sources).
	var profile string
	dlvWait(t, "the walker's profile", 20*time.Second, func() bool {
		d := f.must(t, own, `query($slug: String!) { workspace(slug: $slug) { profile(lookup: {type: "user_id", value: "walker"}) {
			id events { totalCount } } } }`, map[string]any{"slug": f.slug})
		profile = permStr(d, "workspace.profile.id")
		return permDig(d, "workspace.profile.events.totalCount") == float64(2)
	})
	f.add(&walkObject{id: profile, kind: "Profile", ws: "W", walk: true})
	// A computed trait, with its value on the walker's profile.
	d = f.must(t, own, permMutation("computedTraitCreate", "ComputedTraitCreateInput", "computedTrait { id }"),
		permInput(map[string]any{"workspaceId": f.wsID, "key": "walker_events", "name": "Walker's events",
			"definition": map[string]any{"kind": "EVENT_COUNTER", "window": map[string]any{"amount": 7, "unit": "DAYS"},
				"propertyConditions": []any{map[string]any{"path": "walk", "operator": "NOT_EXISTS"}}}}))
	trait := permStr(d, "computedTraitCreate.computedTrait.id")
	dlvWait(t, "the walker's computed trait", 20*time.Second, func() bool {
		d := f.must(t, own, `query($id: ID!) { node(id: $id) { ... on Profile { computedTraits { key } } } }`, map[string]any{"id": profile})
		list, _ := permDig(d, "node.computedTraits").([]any)
		return len(list) == 1
	})
	f.add(&walkObject{id: trait, kind: "ComputedTrait", ws: "W", walk: true})
	// An audience the walker is in.
	d = f.must(t, own, `mutation($i: AudienceCreateInput!) { audienceCreate(input: $i) { audience { id } userErrors { message } } }`,
		map[string]any{"i": map[string]any{"workspaceId": f.wsID, "key": "walkers", "name": "Walkers",
			"definition": map[string]any{"event": map[string]any{"type": "TRACK"}}}})
	f.add(&walkObject{id: permStr(d, "audienceCreate.audience.id"), kind: "Audience", ws: "W", walk: true})

	// The audit trail, and everyone's notifications (their first few).
	d = f.must(t, own, fmt.Sprintf(permWorkspaceBySlug, "auditEvents(first: 1) { nodes { id } }"), map[string]any{"slug": f.slug})
	for _, e := range permIDs(permDig(d, "workspace.auditEvents.nodes")) {
		f.add(&walkObject{id: e, kind: "AuditEvent", ws: "W", walk: true})
	}
	for _, a := range append([]*permAccount{f.victim}, f.userList()...) {
		d := f.must(t, a.session, `{ viewer { notifications(first: 5) { nodes { id area workspace { id } } } } }`, nil)
		list, _ := permDig(d, "viewer.notifications.nodes").([]any)
		for i, n := range list {
			ws := "W"
			if permStr(n, "workspace.id") == f.w2 {
				ws = "W2"
			}
			f.add(&walkObject{id: permStr(n, "id"), kind: "Notification", ws: ws, user: a.id, area: permStr(n, "area"), walk: i == 0})
		}
	}
	return f
}

func (f *walkFixture) userList() []*permAccount {
	var out []*permAccount
	for p := range numWalkPersonas {
		if a := f.users[p]; a != nil {
			out = append(out, a)
		}
	}
	return out
}

// walkPersona runs the walk as p.
func (f *walkFixture) walkPersona(t *testing.T, gen *walkGen, p walkPersona) {
	bearer := f.bearer(p)

	// nodes(ids:) answers exactly the objects p may see.
	for i := 0; i < len(f.objects); i += 50 {
		chunk := f.objects[i:min(i+50, len(f.objects))]
		ids := make([]string, len(chunk))
		for j, o := range chunk {
			ids[j] = o.id
		}
		r := f.gql(t, bearer, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids})
		list, _ := r.Data["nodes"].([]any)
		if len(r.Errors) > 0 || len(list) != len(ids) {
			t.Fatalf("nodes: %s", r.Raw)
		}
		for j, o := range chunk {
			if got, want := list[j] != nil, f.walkVisible(p, o); got != want {
				t.Errorf("nodes: %s %s (%s) visible = %v, want %v", o.kind, o.id, o.label, got, want)
			}
		}
	}

	// The root fields, then node(id:) of each object p may see.
	schemaQuery := gen.schema.Query
	for _, field := range []string{"viewer", "catalog", "serverInfo"} {
		def := schemaQuery.Fields.ForName(field)
		f.check(t, p, "Query."+field, "{ "+gen.field(t, "Query", def, 1, p.rights("W"))+" }", nil, nil)
	}
	if w := f.byID[f.wsID]; f.walkVisible(p, w) { // who else may ask is TestPermissions' table
		// The same object as node(id:) of W below: its scalar fields are enough here.
		sel := gen.object(t, gen.schema.Types["Workspace"], -1, p.rights("W"))
		f.check(t, p, "Query.workspace", fmt.Sprintf("{ o: workspace(slug: %q) { %s } }", f.slug, sel), nil, w)
	}
	gen.selected["Query.workspace"], gen.selected["Query.node"], gen.selected["Query.nodes"] = true, true, true
	// invitation(token:) answers only the holder of a secret: TestPermissions' table and
	// TestAccountsMail cover who may ask and what it shows.
	gen.selected["Query.invitation"] = true
	// trackingPlanExport takes a plan's id, and violationsChanged's messages exist only in a
	// subscription: TestPermissions' table and TestProtocolsGatingRightsIsolation cover them.
	gen.selected["Query.trackingPlanExport"] = true
	gen.selected["ViolationsChange.sources"], gen.selected["ViolationsChange.workspaceId"] = true, true
	// workspaceDeletions lists only the workspaces the viewer deleted, none of the walk's:
	// TestPermissions' table and TestWorkspaceDeletionProgress cover who sees what.
	gen.selected["Query.workspaceDeletions"] = true
	for field := range walkFieldRules["WorkspaceDeletion"] {
		gen.selected["WorkspaceDeletion."+field] = true
	}
	for _, o := range f.objects {
		if !o.walk || !f.walkVisible(p, o) {
			continue
		}
		f.walkObject(t, gen, p, o.kind+" "+o.id, o, func(sel string) string {
			return fmt.Sprintf("node(id: %q) { __typename ... on %s { %s } }", o.id, o.kind, sel)
		})
	}
}

// walkObject asks, as p, every field of o through at (which wraps a selection of o's type): the
// fields the rules allow p in one alias, each refused one in an alias of its own.
func (f *walkFixture) walkObject(t *testing.T, gen *walkGen, p walkPersona, what string, o *walkObject, at func(sel string) string) {
	c := p.rights(o.ws)
	def := gen.schema.Types[o.kind]
	query := "{ o: " + at(gen.object(t, def, 1, c))
	refused := map[string]string{} // alias -> field
	for _, fd := range def.Fields {
		if r := walkFieldRules[o.kind][fd.Name]; r != nil && !r(c) {
			alias := "refused_" + fd.Name
			refused[alias] = fd.Name
			query += " " + alias + ": " + at(gen.field(t, o.kind, fd, 1, c))
		}
	}
	f.check(t, p, what, query+" }", refused, o)
}

// check sends query as p and compares the answer with the rules: no error but in the refused
// aliases, each of which holds one FORBIDDEN; every object in it visible to p; o itself (when
// given and visible, as it always is here) answered.
func (f *walkFixture) check(t *testing.T, p walkPersona, what, query string, refused map[string]string, o *walkObject) {
	t.Helper()
	r := f.gql(t, f.bearer(p), query, nil)
	if r.Status != http.StatusOK && !(p == wAnonymous && r.Status == http.StatusUnauthorized) {
		t.Errorf("%s: HTTP %d %s", what, r.Status, r.Raw)
		return
	}
	gotRefused := map[string]bool{}
	for _, e := range r.Errors {
		path, _ := e["path"].([]any)
		ext, _ := e["extensions"].(map[string]any)
		alias := ""
		if len(path) > 0 {
			alias, _ = path[0].(string)
		}
		if field, ok := refused[alias]; ok && ext["code"] == "FORBIDDEN" && len(path) == 2 && path[1] == field {
			gotRefused[alias] = true
			continue
		}
		t.Errorf("%s: unexpected error %v at %v: %v", what, ext["code"], path, e["message"])
	}
	for alias, field := range refused {
		if !gotRefused[alias] {
			t.Errorf("%s: %s.%s answered, want FORBIDDEN: %v", what, o.kind, field, r.Data[alias])
		}
	}
	if o != nil && r.Data["o"] == nil {
		t.Errorf("%s: null, but %s may see it", what, p)
	}
	f.checkObjects(t, p, what, r.Data, "")
}

// checkObjects fails on every object of the fixture in v that p may not see.
func (f *walkFixture) checkObjects(t *testing.T, p walkPersona, what string, v any, path string) {
	switch x := v.(type) {
	case map[string]any:
		if id, ok := x["id"].(string); ok {
			if o := f.byID[id]; o != nil && !f.walkVisible(p, o) {
				t.Errorf("%s: %s shows %s %s (%s) at %s", what, p, o.kind, o.id, o.label, path)
			}
		}
		for k, c := range x {
			f.checkObjects(t, p, what, c, path+"."+k)
		}
	case []any:
		for i, c := range x {
			f.checkObjects(t, p, what, c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// leaks are the cases that broke (issue 10), each on its own.
func (f *walkFixture) leaks(t *testing.T, gen *walkGen) {
	own := f.users[wOwner].session
	t.Run("readerSeesNoDestinationThroughSourceConnections", func(t *testing.T) {
		r := f.gql(t, f.bearer(wReader), `query($id: ID!) { node(id: $id) { ... on Source { id connections { id destination { id name settings createdBy { id email } } }
			destinations { id } } } }`, map[string]any{"id": f.sources[permProd]})
		if permStr(r.Data, "node.id") != f.sources[permProd] || len(r.Errors) > 0 {
			t.Fatalf("the reader does not see the prod source: %s", r.Raw)
		}
		if strings.Contains(r.Raw, f.dest) || strings.Contains(r.Raw, "/hook") {
			t.Errorf("a SOURCE_READ member reads the destination: %s", r.Raw)
		}
	})
	t.Run("readerSeesNoConnectionByID", func(t *testing.T) {
		r := f.gql(t, f.bearer(wReader), `query($id: ID!) { node(id: $id) { id ... on Connection { destination { id name } } } }`,
			map[string]any{"id": f.conns[permProd]})
		if permDig(r.Data, "node") != nil || len(r.Errors) > 0 {
			t.Errorf("a SOURCE_READ member reads a connection and its destination: %s", r.Raw)
		}
	})
	t.Run("sourceAdminSeesOnlyItsSourcesAttempts", func(t *testing.T) {
		r := f.gql(t, f.bearer(wSourceAdmin), `query($id: ID!) { node(id: $id) { ... on Destination { deliveryStats { attempts delivered notDelivered }
			deliveryAttempts(first: 50) { totalCount nodes { id eventPayload request { body } } } } } }`, map[string]any{"id": f.dest})
		ids := permIDs(permDig(r.Data, "node.deliveryAttempts.nodes"))
		if len(r.Errors) > 0 || len(ids) != 1 || ids[0] != f.attempts[permProd] || strings.Contains(r.Raw, "dev-marker") {
			t.Errorf("a source admin of the prod source reads attempts %v, want only %s: %s", ids, f.attempts[permProd], r.Raw)
		}
		if got := permDig(r.Data, "node.deliveryStats.attempts"); got != 1.0 || permDig(r.Data, "node.deliveryAttempts.totalCount") != 1.0 {
			t.Errorf("the figures count the dev source's attempt: %s", r.Raw)
		}
		d := f.must(t, own, `query($id: ID!) { node(id: $id) { ... on Destination { deliveryStats { attempts } } } }`, map[string]any{"id": f.dest})
		if got := permDig(d, "node.deliveryStats.attempts"); got != 2.0 {
			t.Errorf("the owner counts %v attempts, want 2", got)
		}
	})
	t.Run("sourceAdminSeesNoAttemptOfAnotherSourceByID", func(t *testing.T) {
		r := f.gql(t, f.bearer(wSourceAdmin), `query($id: ID!) { node(id: $id) { id ... on DeliveryAttempt { eventPayload } } }`,
			map[string]any{"id": f.attempts[permNonProd]})
		if permDig(r.Data, "node") != nil || len(r.Errors) > 0 {
			t.Errorf("a source admin of the prod source reads the dev source's attempt: %s", r.Raw)
		}
	})
	t.Run("sourceAdminSeesNoSampleAttemptOfAnotherSource", func(t *testing.T) {
		r := f.gql(t, f.bearer(wSourceAdmin), `query($id: ID!) { node(id: $id) { id ... on HealthIssue { sampleAttempt { id eventPayload } } } }`,
			map[string]any{"id": f.issues[""]})
		if permStr(r.Data, "node.id") != f.issues[""] || len(r.Errors) > 0 {
			t.Fatalf("a source admin does not see the destination's issue: %s", r.Raw)
		}
		if permDig(r.Data, "node.sampleAttempt") != nil {
			t.Errorf("a source admin of the prod source reads the dev source's attempt as a sample: %s", r.Raw)
		}
	})
	t.Run("subscriptionMessagesHoldOnlyWhatTheSubscriberSees", func(t *testing.T) { f.subscriptionMessages(t, gen) })
	t.Run("liveEventsEndWhenALabelChangeHidesTheSource", func(t *testing.T) {
		f.liveLabelChange(t, gen.object(t, gen.schema.Types["LiveEvent"], 1, wSourceAdmin.rights("W")))
	})
}

// walkMessage is a graphql-transport-ws message.
type walkMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// subscribe opens a websocket as bearer and starts query as operation "1": it returns the
// operation's messages, closed with the socket, which closes when the test ends.
func (f *walkFixture) subscribe(t *testing.T, bearer, query string, vars map[string]any) <-chan walkMessage {
	t.Helper()
	c := dialWS(t, f.s, nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); c.Close() })
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + bearer}}); err != nil {
		t.Fatal(err)
	}
	var ack walkMessage
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		t.Fatal(err)
	}
	messages := make(chan walkMessage)
	go func() { // ends when the socket closes
		defer close(messages)
		for {
			var m walkMessage
			if err := c.ReadJSON(&m); err != nil {
				return
			}
			if m.ID != "1" {
				continue
			}
			select {
			case messages <- m:
			case <-done:
				return
			}
		}
	}()
	return messages
}

// first triggers, every 300 ms, something that makes the server publish, until the first message
// of messages arrives (the server may not have subscribed when the first trigger happens).
func walkFirst(t *testing.T, messages <-chan walkMessage, trigger func(i int)) walkMessage {
	t.Helper()
	for i := 0; ; i++ {
		trigger(i)
		select {
		case m, ok := <-messages:
			if !ok {
				t.Fatal("the socket closed before the first message")
			}
			return m
		case <-time.After(300 * time.Millisecond):
			if i > 30 {
				t.Fatal("no message arrived")
			}
		}
	}
}

// subscriptionMessages: what a subscription's messages hold below their object is read with the
// subscriber's rights, as queries are. Everyone who sees the prod source hears of its renaming,
// with every field of the source one level down.
func (f *walkFixture) subscriptionMessages(t *testing.T, gen *walkGen) {
	for _, p := range []walkPersona{wOwner, wMember, wReader, wSourceAdmin} {
		t.Run(p.String(), func(t *testing.T) {
			sel := gen.object(t, gen.schema.Types["Source"], 1, p.rights("W"))
			messages := f.subscribe(t, f.bearer(p), `subscription($ws: ID!) { sourceStatusChanged(workspaceId: $ws) { `+sel+` } }`,
				map[string]any{"ws": f.wsID})
			rename := func(int) {
				f.must(t, f.users[wOwner].session, permMutation("sourceUpdate", "SourceUpdateInput", "source { id }"),
					permInput(map[string]any{"sourceId": f.sources[permProd], "name": f.name("Web")}))
			}
			for seen := 0; ; seen++ {
				m := walkFirst(t, messages, rename)
				var r gqlResponse
				if err := json.Unmarshal(m.Payload, &r); m.Type != "next" || err != nil || len(r.Errors) > 0 {
					t.Fatalf("message: %s %s", m.Type, m.Payload)
				}
				f.book.screen(t, string(m.Payload), r.Data)
				f.checkObjects(t, p, "sourceStatusChanged", r.Data, "")
				if permStr(r.Data, "sourceStatusChanged.id") == f.sources[permProd] {
					return
				}
				if seen > 10 {
					t.Fatalf("no message of the prod source, the last: %s", m.Payload)
				}
			}
		})
	}
}

// liveLabelChange: sourceAdmin follows the live events of a source its label grant covers; the
// owner relabels the source, out of the grant; the next event ends the subscription instead of
// reaching them.
func (f *walkFixture) liveLabelChange(t *testing.T, sel string) {
	own := f.users[wOwner].session
	d := f.must(t, own, permSourceCreate, permInput(map[string]any{"workspaceId": f.wsID, "catalogId": "cat_javascript",
		"name": f.name("live"), "labels": []string{permProd}}))
	src := permStr(d, "sourceCreate.source.id")
	keys, _ := permDig(d, "sourceCreate.source.writeKeys").([]any)
	key := permStr(keys[0], "key")
	send := func(messageID string) {
		if r := trkSend(t, f.s, "/v1/track", map[string]any{"userId": "u", "event": "Live", "messageId": messageID}, trkBasic(key)...); r.Status != http.StatusOK {
			t.Fatalf("tracking API: %d %s", r.Status, r.Raw)
		}
	}
	messages := f.subscribe(t, f.bearer(wSourceAdmin), `subscription($id: ID!) { liveEvents(sourceId: $id) { `+sel+` } }`, map[string]any{"id": src})
	if m := walkFirst(t, messages, func(i int) { send(fmt.Sprintf("before-%d", i)) }); m.Type != "next" || !strings.Contains(string(m.Payload), `"before-`) {
		t.Fatalf("first message: %s %s", m.Type, m.Payload)
	}
	f.must(t, own, permMutation("sourceUpdate", "SourceUpdateInput", "source { id labels }"),
		permInput(map[string]any{"sourceId": src, "labels": []string{permNonProd}}))
	send("after")
	for {
		select {
		case m, ok := <-messages:
			switch {
			case !ok:
				t.Fatal("the socket closed without ending the subscription")
			case m.Type == "next" && strings.Contains(string(m.Payload), `"after"`):
				t.Fatalf("the source admin still receives the source's events after its label changed: %s", m.Payload)
			case m.Type == "next" && strings.Contains(string(m.Payload), `"before-`):
				continue // sent before the change
			case m.Type == "error" || (m.Type == "next" && strings.Contains(string(m.Payload), "FORBIDDEN")):
				if !strings.Contains(string(m.Payload), "FORBIDDEN") {
					t.Errorf("the subscription ended with %s, want FORBIDDEN", m.Payload)
				}
				return
			default:
				t.Fatalf("unexpected message %s %s", m.Type, m.Payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the subscription neither ended nor sent the event after the label change")
		}
	}
}
