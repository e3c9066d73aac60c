package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// TestPermissions walks every root field of the schema (Query, Mutation, Subscription) for every
// persona and checks that each is allowed or refused as the table says. The list of fields is read
// from schema/*.graphqls: a new field without a row fails the test, and so does a row whose field
// is gone. Every persona lives in one workspace W built through the API; destructive operations get
// their own victims, or a fresh workspace built like W, so that no row depends on another.
//
// Along the way it checks that a refused caller cannot tell an object of W from one that never
// existed, that no answer carries a password or a secret it should not, and that the server's logs
// carry none either.
func TestPermissions(t *testing.T) {
	start := time.Now()
	table := permissionTable()
	fields := permSchemaRootFields(t)
	permCheckCoverage(t, table, fields)

	f := newPermFixture(t, table)
	var order []string
	byField := map[string][]*permRow{}
	for _, r := range table {
		if !fields[r.root+"."+r.field] {
			continue // reported by permCheckCoverage
		}
		if byField[r.field] == nil {
			order = append(order, r.field)
		}
		byField[r.field] = append(byField[r.field], r)
	}
	seen := map[string]*[numPersonas]string{}
	for _, field := range order {
		t.Run(field, func(t *testing.T) {
			for _, r := range byField[field] {
				got := &[numPersonas]string{}
				seen[r.name()] = got
				walk := func(t *testing.T) {
					for p := range numPersonas {
						t.Run(p.String(), func(t *testing.T) { got[p] = f.run(t, r, p) })
					}
				}
				if r.variant == "" {
					walk(t)
				} else {
					t.Run(r.variant, walk)
				}
			}
		})
	}

	t.Run("logs", func(t *testing.T) {
		_ = f.s.stop(t) // every log line written
		logs := f.s.Logs.String()
		if logs == "" {
			t.Fatal("no server logs to check")
		}
		for _, pw := range f.book.passwords {
			if strings.Contains(logs, pw) {
				t.Errorf("the server logs contain a password (%s…)", pw[:6])
			}
		}
		for _, s := range f.book.secrets {
			if strings.Contains(logs, s[4:]) { // the random part, with or without its prefix
				t.Errorf("the server logs contain a secret (%s…)", s[:8])
			}
		}
		for _, s := range f.book.settings {
			if strings.Contains(logs, s) {
				t.Errorf("the server logs contain a destination's secret setting (%s…)", s[:8])
			}
		}
	})

	var b strings.Builder
	fmt.Fprintf(&b, "%-40s", "outcomes")
	for p := range numPersonas {
		fmt.Fprintf(&b, " %-15s", p)
	}
	for _, r := range table {
		if got := seen[r.name()]; got != nil {
			fmt.Fprintf(&b, "\n%-40s", r.name())
			for _, o := range got {
				fmt.Fprintf(&b, " %-15s", o)
			}
		}
	}
	t.Logf("%s\nwalk took %s", b.String(), time.Since(start).Round(time.Millisecond))
}

// permPersona is who makes a request.
type permPersona int

const (
	asAnonymous   permPersona = iota // no credentials
	asOutsider                       // a user who owns another workspace, W2, and is not in W
	asMember                         // MEMBER of W
	asAdmin                          // ADMIN of W
	asOwner                          // OWNER of W, its only one
	asSourceAdmin                    // MINIMAL in W with a SOURCE_ADMIN grant on environment:prod
	asToken                          // an ADMIN access token of W made by its owner
	numPersonas
)

func (p permPersona) String() string {
	return [numPersonas]string{"anonymous", "outsider", "member", "admin", "owner", "sourceAdmin", "token"}[p]
}

// permOutcome is what a persona gets.
type permOutcome struct {
	kind permOutcomeKind
	// code is extensions.code for a denial; for an allowed mutation, the code its userErrors must
	// hold ("" when they must be empty).
	code string
}

// permWant is the outcome of a row for each persona.
type permWant = [numPersonas]permOutcome

type permOutcomeKind int

const (
	outcomeUnset permOutcomeKind = iota
	outcomeAllow                 // an answer without errors
	outcomeNull                  // null without errors, like node(id:) for what the viewer may not see
	outcomeDeny                  // an error with extensions.code
)

var (
	allowed             = permOutcome{kind: outcomeAllow}
	nullAnswer          = permOutcome{kind: outcomeNull}
	denyUnauthenticated = permOutcome{kind: outcomeDeny, code: "UNAUTHENTICATED"}
	denyForbidden       = permOutcome{kind: outcomeDeny, code: "FORBIDDEN"}
	denyNotFound        = permOutcome{kind: outcomeDeny, code: "NOT_FOUND"}
)

// allowedWithUserError is an allowed mutation whose payload refuses the input with a userErrors
// code.
func allowedWithUserError(code string) permOutcome {
	return permOutcome{kind: outcomeAllow, code: code}
}

func (o permOutcome) String() string {
	switch {
	case o.kind == outcomeAllow && o.code != "":
		return "UE:" + o.code
	case o.kind == outcomeAllow:
		return "ALLOW"
	case o.kind == outcomeNull:
		return "NULL"
	case o.kind == outcomeDeny:
		return o.code
	}
	return "unset"
}

// permRow is one operation on one root field, and what every persona gets.
type permRow struct {
	root, field string // "Mutation", "workspaceUpdate"
	// variant names a second operation on the same field, such as one nested connection; "" for
	// the row of the field itself.
	variant string
	query   string
	// fresh gives every persona a new workspace built like W, for operations that would change W
	// for the rows after.
	fresh bool
	// vars builds the variables, aimed at W's objects; it may make victims through the API.
	vars func(t *testing.T, c *permCall) map[string]any
	// ghost builds the same variables aimed at objects that never existed. Callers who are
	// refused or answered null must get the very same answer for both.
	ghost func(c *permCall) map[string]any
	// bearer replaces the persona's credential (logOut ends a session of its own).
	bearer func(t *testing.T, c *permCall) string
	// check makes more assertions on an allowed answer.
	check func(t *testing.T, c *permCall, data map[string]any)
	// trigger, for a subscription, makes the server publish something the persona may receive;
	// it runs until the first message arrives.
	trigger func(t *testing.T, c *permCall)
	// source, for an operation on a source or on something of one, is the label of the source vars
	// aim at (permCall.label). Each row on a permProd source gets a copy on a permNonProd one
	// (permNonProdVariant).
	source string
	want   permWant
}

func (r *permRow) name() string {
	if r.variant == "" {
		return r.field
	}
	return r.field + "/" + r.variant
}

// The labels of W's two sources: sourceAdmin's grant covers the first only.
const (
	permProd    = "environment:prod"
	permNonProd = "environment:dev"
)

// permNonProdVariant copies a row on a prod source to aim at a non-prod one. sourceAdmin's grant
// does not cover it, so to sourceAdmin it must not exist, just as W's objects do not exist to the
// outsider.
func permNonProdVariant(r *permRow) *permRow {
	v := *r
	v.variant, v.source = "nonProd", permNonProd
	if r.variant != "" {
		v.variant = r.variant + "/nonProd"
	}
	v.want[asSourceAdmin] = r.want[asOutsider]
	return &v
}

// permInput wraps a mutation's input as the $in variable.
func permInput(m map[string]any) map[string]any { return map[string]any{"in": m} }

// permMutation is the text of a mutation of field taking $in, selecting sel and the userErrors.
func permMutation(field, inputType, sel string) string {
	return fmt.Sprintf(`mutation($in: %s!) { %s(input: $in) { %s userErrors { field code message } } }`, inputType, field, sel)
}

var (
	permSignUp            = permMutation("signUp", "SignUpInput", "token user { id email }")
	permLogIn             = permMutation("logIn", "LogInInput", "token user { id }")
	permWorkspaceCreate   = permMutation("workspaceCreate", "WorkspaceCreateInput", "workspace { id slug members(role: OWNER) { nodes { id } } }")
	permMemberInvite      = permMutation("memberInvite", "MemberInviteInput", "invitation { id email } token")
	permInvitationAccept  = permMutation("invitationAccept", "InvitationAcceptInput", "membership { id role } workspace { id }")
	permMemberUpdate      = permMutation("memberUpdate", "MemberUpdateInput", "membership { id role }")
	permMemberGrantAdd    = permMutation("memberGrantAdd", "MemberGrantAddInput", "membership { id grants { id label } }")
	permAccessTokenCreate = permMutation("accessTokenCreate", "AccessTokenCreateInput", "accessToken { id name role } secret")
	permWorkspaceBySlug   = `query($slug: String!) { workspace(slug: $slug) { %s } }`
	permSourceCreate      = permMutation("sourceCreate", "SourceCreateInput", "source { id labels writeKeys { key } }")
	permDestinationCreate = permMutation("destinationCreate", "DestinationCreateInput", "destination { id settings secretSettings { name isSet } }")
	permConnectionCreate  = permMutation("connectionCreate", "ConnectionCreateInput", "connection { id source { id } destination { id } }")
	permWriteKeyCreate    = permMutation("writeKeyCreate", "SourceIdInput", "writeKey { key }")

	permNotificationSettingsUpdate = permMutation("notificationSettingsUpdate", "NotificationSettingsUpdateInput",
		"settings { areas { area types { type inApp } } webhook { url updatedAt } }")
	permNotificationMarkRead = permMutation("notificationMarkRead", "NotificationMarkReadInput", "marked unreadNotificationCount")
)

// permWorkspaceVar and permNoWorkspaceVar aim a subscription at W, or at a workspace that never
// existed.
func permWorkspaceVar(t *testing.T, c *permCall) map[string]any { return map[string]any{"ws": c.w.id} }
func permNoWorkspaceVar(c *permCall) map[string]any             { return map[string]any{"ws": id.New("ws")} }

// permTriggerNotification makes someone else change a workspace of the persona's, which notifies
// them: in W the admin (or the owner, for the admin) renames it; the outsider's own workspace is
// renamed by the victim, its admin.
func permTriggerNotification(t *testing.T, c *permCall) {
	actor, ws := c.users[asAdmin].session, c.w.id
	switch c.p {
	case asAnonymous:
		return
	case asOutsider:
		actor, ws = c.victim.session, c.outsiderWorkspace
	case asAdmin:
		actor = c.users[asOwner].session
	}
	c.must(t, actor, permMutation("workspaceUpdate", "WorkspaceUpdateInput", "workspace { id }"),
		permInput(map[string]any{"workspaceId": ws, "name": c.slug("Renamed")}))
}

// permTrack sends one event to the source of W labelled label through the tracking API.
func permTrack(t *testing.T, c *permCall, label string, event map[string]any) {
	t.Helper()
	if r := trkSend(t, c.s, "/v1/track", event, trkBasic(c.w.keys[label])...); r.Status != 200 {
		t.Fatalf("tracking API: %d %s", r.Status, r.Raw)
	}
}

// permSettingIs tells whether the notification settings at path have typ turned on or off.
func permSettingIs(data map[string]any, path, typ string, inApp bool) bool {
	areas, _ := permDig(data, path+".areas").([]any)
	for _, a := range areas {
		types, _ := permDig(a, "types").([]any)
		for _, x := range types {
			if permStr(x, "type") == typ {
				return permDig(x, "inApp") == inApp
			}
		}
	}
	return false
}

// permissionTable is the table: one row per root field, and more for some (variants).
func permissionTable() []*permRow {
	wsOnly := func(t *testing.T, c *permCall) map[string]any { return map[string]any{"slug": c.w.slug} }
	noWorkspace := func(c *permCall) map[string]any { return map[string]any{"slug": "never-existed"} }
	// Expectations shared by many rows.
	ownersOnly := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: denyForbidden, asAdmin: denyForbidden, asOwner: allowed,
		asSourceAdmin: denyForbidden, asToken: denyForbidden,
	}
	everyone := permWant{
		asAnonymous: allowed, asOutsider: allowed,
		asMember: allowed, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: allowed,
	}
	membersOfW := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: nullAnswer,
		asMember: allowed, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: allowed,
	}
	adminsOfW := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: nullAnswer,
		asMember: denyForbidden, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: denyForbidden, asToken: allowed,
	}
	sessions := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: allowed,
		asMember: allowed, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: denyForbidden,
	}
	// Answering an invitation by id: only from a verified address, which no persona has.
	inviteeOnly := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: denyNotFound, asAdmin: denyNotFound, asOwner: denyNotFound,
		asSourceAdmin: denyNotFound, asToken: denyForbidden,
	}
	adminsOnly := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: denyForbidden, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: denyForbidden, asToken: allowed,
	}
	// Tracking plans: those who read the whole workspace see them, owners and admins change them;
	// to a source admin they do not exist.
	planAdmins := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: denyForbidden, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: denyNotFound, asToken: allowed,
	}
	// Changes to a source, its write keys and its connections, on a prod source.
	sourceAdmins := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: denyForbidden, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: allowed,
	}
	// Subscriptions to what happens in W: everyone in it; to the outsider W does not exist.
	membersOnly := permWant{
		asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
		asMember: allowed, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: allowed,
	}
	readersOfW := permWant{
		asAnonymous: nullAnswer, asOutsider: nullAnswer,
		asMember: allowed, asAdmin: allowed, asOwner: allowed,
		asSourceAdmin: allowed, asToken: allowed,
	}
	noSource := func(c *permCall) map[string]any { return permInput(map[string]any{"sourceId": id.New("src")}) }
	noDestination := func(c *permCall) map[string]any { return permInput(map[string]any{"destinationId": id.New("dst")}) }
	noConnection := func(c *permCall) map[string]any { return permInput(map[string]any{"connectionId": id.New("conn")}) }

	rows := []*permRow{
		// Query.
		{
			root: "Query", field: "node", query: `query($id: ID!) { node(id: $id) { id } }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { return map[string]any{"id": c.w.id} },
			ghost: func(c *permCall) map[string]any { return map[string]any{"id": id.New("ws")} },
			want:  readersOfW,
		},
		{
			// A source with its debugger and ingest figures: for whoever may read the source.
			root: "Query", field: "node", variant: "source", source: permProd,
			query: `query($id: ID!) { node(id: $id) { id ... on Source { viewerCanUpdate viewerCanDelete
				recentEvents(first: 10) { totalCount nodes { id } } ingestStats { lastHour { received } last24Hours { received discarded } } } } }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { return map[string]any{"id": c.w.sources[c.label]} },
			ghost: func(c *permCall) map[string]any { return map[string]any{"id": id.New("src")} },
			want:  readersOfW, check: permCheckSourceCan,
		},
		{
			// One object of each type of W: which of them each persona may fetch is in permNodeVisibility.
			root: "Query", field: "nodes", query: `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
			vars: func(t *testing.T, c *permCall) map[string]any {
				w := c.w
				return map[string]any{"ids": []string{
					w.id, w.membership[asOwner], w.grant, w.invitation, w.tokenID, w.event, c.users[asOwner].id,
					w.sources[permProd], w.sources[permNonProd], w.destination, w.connections[permProd], w.connections[permNonProd], "cat_webhook",
				}}
			},
			ghost: func(c *permCall) map[string]any {
				var ids []string
				for _, k := range permNodeKinds {
					prefix, _, _ := strings.Cut(k, ":")
					ids = append(ids, id.New(prefix))
				}
				return map[string]any{"ids": ids}
			},
			want:  everyone,
			check: permCheckNodes,
		},
		{
			root: "Query", field: "viewer", query: `{ viewer { id email workspaces(first: 50) { nodes { id } } invitations { id } } }`,
			want: permWant{
				asAnonymous: nullAnswer, asOutsider: allowed,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: allowed, asToken: allowed,
			},
			check: permCheckViewer,
		},
		{root: "Query", field: "serverInfo", query: `{ serverInfo { version now emailEnabled } }`, want: everyone},
		{
			// Only the workspaces the viewer deleted: for every signed-in persona, an empty list here.
			root: "Query", field: "workspaceDeletions", query: `{ workspaceDeletions { workspaceId name finished stepsDone stepCount } }`,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: allowed,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: allowed, asToken: allowed,
			},
		},
		{
			// An invitation by its token: any person's session (whoever holds the link).
			root: "Query", field: "invitation",
			query: `query($token: String!) { invitation(token: $token) { id email role status workspaceName viewerCanAccept } }`,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return map[string]any{"token": permStr(permInvitationToAnswer(t, c), "in.token")}
			},
			ghost: func(c *permCall) map[string]any { return map[string]any{"token": permNeverToken("jci_")} },
			want:  sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if permDig(data, "invitation.viewerCanAccept") != true {
					t.Errorf("the holder of the token may not accept: %v", data)
				}
			},
		},
		{
			// The catalog is public.
			root: "Query", field: "catalog",
			query: `{ catalog { sources(first: 5) { totalCount nodes { id } } destinations(first: 5) { nodes { id } }
				sourceCategories destinationCategories newAndNoteworthy { id } entry(slug: "webhook") { id settings { name secret } } } }`,
			want: everyone,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if got := permStr(data, "catalog.entry.id"); got != "cat_webhook" {
					t.Errorf("catalog.entry(slug: webhook).id = %q, want cat_webhook", got)
				}
			},
		},
		{
			root: "Query", field: "workspace",
			query: fmt.Sprintf(permWorkspaceBySlug, "id viewerRole viewerCanUpdate viewerCanDelete viewerCanManageMembers viewerCanChangePlan plan { plan }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW, check: permCheckViewerCan,
		},
		{
			root: "Query", field: "workspace", variant: "members",
			query: fmt.Sprintf(permWorkspaceBySlug, "members(first: 50) { totalCount nodes { id role user { id } } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW,
		},
		{
			root: "Query", field: "workspace", variant: "invitations",
			query: fmt.Sprintf(permWorkspaceBySlug, "invitations(first: 50) { totalCount nodes { id email } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: adminsOfW,
		},
		{
			root: "Query", field: "workspace", variant: "accessTokens",
			query: fmt.Sprintf(permWorkspaceBySlug, "accessTokens(first: 100) { nodes { id createdBy { id } } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW, check: permCheckTokenList,
		},
		{
			root: "Query", field: "workspace", variant: "auditEvents",
			query: fmt.Sprintf(permWorkspaceBySlug, "auditEvents(first: 50) { totalCount nodes { id type changes } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: adminsOfW,
		},
		{
			root: "Query", field: "workspace", variant: "sources",
			query: fmt.Sprintf(permWorkspaceBySlug, "sources(first: 100) { totalCount nodes { id labels } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW, check: permCheckSourceList,
		},
		{
			// Source admins see every destination: they connect their sources to them.
			root: "Query", field: "workspace", variant: "destinations",
			query: fmt.Sprintf(permWorkspaceBySlug, "destinations(first: 100) { totalCount nodes { id settings viewerCanUpdate } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW, check: permCheckDestinationList,
		},
		{
			root: "Query", field: "workspace", variant: "overview",
			query: fmt.Sprintf(permWorkspaceBySlug, "overview { nodes { id kind } edges { id from to } }"),
			vars:  wsOnly,
			ghost: noWorkspace, want: membersOfW, check: permCheckOverview,
		},
		{
			root: "Query", field: "workspace", variant: "usage",
			query: fmt.Sprintf(permWorkspaceBySlug, fmt.Sprintf("usage(month: %q) { month apiCalls mtus bySource { sourceId } }", time.Now().UTC().Format("2006-01"))),
			vars:  wsOnly,
			ghost: noWorkspace,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: nullAnswer,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyForbidden, asToken: allowed,
			},
		},

		// Accounts.
		{
			root: "Mutation", field: "signUp", query: permSignUp,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"email": c.email("signup"), "password": c.book.newPassword(), "name": "New " + c.p.String()})
			},
			want: everyone,
		},
		{
			// Without a mail server no link is ever sent: every link is unknown, to anyone.
			root: "Mutation", field: "emailVerify", query: permMutation("emailVerify", "EmailVerifyInput", "token user { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"token": permNeverToken("jcv_")})
			},
			want: permWant{
				asAnonymous: allowedWithUserError("INVALID"), asOutsider: allowedWithUserError("INVALID"),
				asMember: allowedWithUserError("INVALID"), asAdmin: allowedWithUserError("INVALID"), asOwner: allowedWithUserError("INVALID"),
				asSourceAdmin: allowedWithUserError("INVALID"), asToken: allowedWithUserError("INVALID"),
			},
		},
		{
			// A person asks for a link to their own address; this server sends no mail.
			root: "Mutation", field: "emailVerificationSend", query: `mutation { emailVerificationSend { emailSent userErrors { field code message } } }`,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: allowedWithUserError("NOT_ALLOWED"),
				asMember: allowedWithUserError("NOT_ALLOWED"), asAdmin: allowedWithUserError("NOT_ALLOWED"), asOwner: allowedWithUserError("NOT_ALLOWED"),
				asSourceAdmin: allowedWithUserError("NOT_ALLOWED"), asToken: denyForbidden,
			},
		},
		{
			root: "Mutation", field: "logIn", query: permLogIn,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"email": c.victim.email, "password": c.victim.password})
			},
			want: everyone,
		},
		{
			// Each persona ends a session of its own made for this row; a token is refused.
			root: "Mutation", field: "logOut", query: `mutation { logOut { sessionsEnded userErrors { code message } } }`,
			bearer: func(t *testing.T, c *permCall) string {
				if c.p == asAnonymous || c.p == asToken {
					return c.bearer
				}
				u := c.users[c.p]
				d := c.must(t, "", permLogIn, permInput(map[string]any{"email": u.email, "password": u.password}))
				return permStr(d, "logIn.token")
			},
			want: sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if n := permDig(data, "logOut.sessionsEnded"); n != 1.0 {
					t.Errorf("sessionsEnded = %v, want 1", n)
				}
				if r := c.gql(t, c.bearer, `{ viewer { id } }`, nil); r.Status != 401 || r.errorCode() != "UNAUTHENTICATED" {
					t.Errorf("the ended session still works: %d %s", r.Status, r.Raw)
				}
			},
		},

		// The viewer's account and notifications: their own, so a session of anyone's; a token may
		// mark notifications read but not change the account or its settings.
		{
			root: "Mutation", field: "viewerUpdate", query: permMutation("viewerUpdate", "ViewerUpdateInput", "user { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"name": c.p.String() + " (renamed)"})
			},
			want: sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if got, want := permStr(data, "viewerUpdate.user.id"), c.users[c.p].id; got != want {
					t.Errorf("viewerUpdate renamed %s, want the viewer %s", got, want)
				}
				if got, want := permStr(data, "viewerUpdate.user.name"), c.p.String()+" (renamed)"; got != want {
					t.Errorf("name = %q, want %q", got, want)
				}
			},
		},
		{
			// Each persona changes its own password with its session, which stays valid.
			root: "Mutation", field: "passwordChange", query: permMutation("passwordChange", "PasswordChangeInput", "sessionsEnded"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				next := c.book.newPassword()
				u := c.users[c.p]
				if u == nil { // anonymous and the token: refused whatever the input
					return permInput(map[string]any{"currentPassword": c.book.newPassword(), "newPassword": next})
				}
				in := permInput(map[string]any{"currentPassword": u.password, "newPassword": next})
				u.password = next
				return in
			},
			want: sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if r := c.gql(t, c.bearer, `{ viewer { id } }`, nil); r.Status != 200 || permStr(r.Data, "viewer.id") != c.users[c.p].id {
					t.Errorf("the session that changed the password no longer works: %d %s", r.Status, r.Raw)
				}
				u := c.users[c.p]
				if d := c.must(t, "", permLogIn, permInput(map[string]any{"email": u.email, "password": u.password})); permStr(d, "logIn.user.id") != u.id {
					t.Errorf("logIn with the new password: %v", d)
				}
			},
		},
		{
			root: "Mutation", field: "notificationSettingsUpdate", query: permNotificationSettingsUpdate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"settings": []any{map[string]any{"type": "PLAN_CHANGED", "inApp": false}}})
			},
			want: sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if !permSettingIs(data, "notificationSettingsUpdate.settings", "PLAN_CHANGED", false) {
					t.Errorf("PLAN_CHANGED is not off: %v", data)
				}
			},
		},
		{
			// The webhook's secret is write-only: the payload shows the URL, never the secret
			// (screened like every answer). Port 1 of loopback refuses at once.
			root: "Mutation", field: "notificationSettingsUpdate", variant: "webhook", query: permNotificationSettingsUpdate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"webhookUrl": "http://127.0.0.1:1/notify", "webhookSecret": c.book.newSetting()})
			},
			want: sessions,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if got := permStr(data, "notificationSettingsUpdate.settings.webhook.url"); got != "http://127.0.0.1:1/notify" {
					t.Errorf("webhook url = %q", got)
				}
			},
		},
		{
			root: "Mutation", field: "notificationMarkRead", query: permNotificationMarkRead,
			vars: func(t *testing.T, c *permCall) map[string]any { return permInput(map[string]any{}) },
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: allowed,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: allowed, asToken: allowed,
			},
		},
		{
			// Someone else's notification (the victim's) is not found, as one that never existed.
			root: "Mutation", field: "notificationMarkRead", variant: "othersNotification", query: permNotificationMarkRead,
			vars: func(t *testing.T, c *permCall) map[string]any {
				d := c.must(t, c.victim.session, `{ viewer { notifications(first: 1) { nodes { id } } } }`, nil)
				ids := permIDs(permDig(d, "viewer.notifications.nodes"))
				if len(ids) != 1 {
					t.Fatalf("the victim has no notification: %v", d)
				}
				return permInput(map[string]any{"notificationId": ids[0]})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"notificationId": id.New("ntf")}) },
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyNotFound, asAdmin: denyNotFound, asOwner: denyNotFound,
				asSourceAdmin: denyNotFound, asToken: denyNotFound,
			},
		},

		// Workspaces.
		{
			root: "Mutation", field: "workspaceCreate", query: permWorkspaceCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				slug := c.slug("new")
				return permInput(map[string]any{"name": "New " + slug, "slug": slug})
			},
			want: sessions,
		},
		{
			// Renames W; the slug stays, which the workspace rows use.
			root: "Mutation", field: "workspaceUpdate", query: permMutation("workspaceUpdate", "WorkspaceUpdateInput", "workspace { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "Acme by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "Acme by " + c.p.String()})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "workspaceDelete", fresh: true,
			query: permMutation("workspaceDelete", "WorkspaceDeleteInput", "deletedWorkspaceId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "confirmSlug": c.w.slug})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "confirmSlug": c.w.slug})
			},
			want: ownersOnly,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				if r := c.gql(t, c.users[asOwner].session, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": c.w.id}); permDig(r.Data, "node") != nil {
					t.Errorf("the workspace is still there: %s", r.Raw)
				}
				if r := c.gql(t, c.w.token, `{ viewer { id } }`, nil); r.Status != 401 {
					t.Errorf("the deleted workspace's access token still works: %d %s", r.Status, r.Raw)
				}
			},
		},
		{
			root: "Mutation", field: "workspacePlanUpdate", query: permMutation("workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id plan { plan } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "plan": "TEAM"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "plan": "TEAM"})
			},
			want: ownersOnly,
		},
		{
			root: "Mutation", field: "workspaceSettingsUpdate", query: permMutation("workspaceSettingsUpdate", "WorkspaceSettingsUpdateInput",
				"settings { id retention { eventsHours auditTrailHours inboxHours } sourceDefaults { labels enabled } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				// The source defaults given are the server's: sources the fixture makes later keep their labels.
				return permInput(map[string]any{"workspaceId": c.w.id, "eventsRetentionHours": 100, "auditTrailRetentionHours": 100,
					"inboxRetentionHours": 100, "defaultSourceLabels": []string{}, "newSourcesEnabled": true})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "eventsRetentionHours": 100})
			},
			want: ownersOnly,
		},

		// Members and invitations.
		{
			root: "Mutation", field: "memberInvite", query: permMemberInvite,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "email": c.email("invitee"), "role": "MEMBER"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "email": c.email("invitee"), "role": "MEMBER"})
			},
			want: ownersOnly,
		},
		{
			// Whoever holds an invitation's token may accept it with a session: each persona accepts
			// one to a new workspace of the victim's, sent to an address that is nobody's.
			root: "Mutation", field: "invitationAccept", query: permInvitationAccept,
			vars:  permInvitationToAnswer,
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"token": permNeverToken("jci_")}) },
			want:  sessions,
		},
		{
			// By id only from a verified address; this server verifies none, so an invitation to the
			// persona's own address is not theirs to answer by id: as one that never existed.
			root: "Mutation", field: "invitationAccept", variant: "byId", query: permInvitationAccept,
			vars:  permInvitationByAddress,
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"invitationId": id.New("inv")}) },
			want:  inviteeOnly,
		},
		{
			root: "Mutation", field: "invitationDecline", query: permMutation("invitationDecline", "InvitationDeclineInput", "invitation { id status }"),
			vars:  permInvitationToAnswer,
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"token": permNeverToken("jci_")}) },
			want:  sessions,
		},
		{
			root: "Mutation", field: "invitationDecline", variant: "byId", query: permMutation("invitationDecline", "InvitationDeclineInput", "invitation { id status }"),
			vars:  permInvitationByAddress,
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"invitationId": id.New("inv")}) },
			want:  inviteeOnly,
		},
		{
			root: "Mutation", field: "invitationRevoke", query: permMutation("invitationRevoke", "InvitationInput", "invitation { id status }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				d := c.must(t, c.users[asOwner].session, permMemberInvite, permInput(map[string]any{"workspaceId": c.w.id, "email": c.email("revokee"), "role": "MEMBER"}))
				return permInput(map[string]any{"invitationId": permStr(d, "memberInvite.invitation.id")})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"invitationId": id.New("inv")}) },
			want:  ownersOnly,
		},
		{
			// Promotes the victim, a MEMBER of W who is no persona.
			root: "Mutation", field: "memberUpdate", query: permMemberUpdate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "ADMIN"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": id.New("mem"), "role": "ADMIN"})
			},
			want: ownersOnly,
		},
		{
			root: "Mutation", field: "memberRemove", fresh: true,
			query: permMutation("memberRemove", "MemberRemoveInput", "removedMembershipId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": c.w.victimMembership})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"membershipId": id.New("mem")}) },
			want:  ownersOnly,
		},
		{
			// Leaving: each member removes their own membership, the token its creator's (the
			// owner's); the others aim at the owner's.
			root: "Mutation", field: "memberRemove", variant: "self", fresh: true,
			query: permMutation("memberRemove", "MemberRemoveInput", "removedMembershipId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				m := c.w.membership[c.p]
				if m == "" {
					m = c.w.membership[asOwner]
				}
				return permInput(map[string]any{"membershipId": m})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"membershipId": id.New("mem")}) },
			// The owner is the last one and cannot leave. A token is not a person: it cannot make
			// its creator leave (an ADMIN token may not remove members).
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowedWithUserError("NOT_ALLOWED"),
				asSourceAdmin: allowed, asToken: denyForbidden,
			},
		},
		{
			root: "Mutation", field: "memberGrantAdd", query: permMemberGrantAdd,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "SOURCE_READ", "label": "team:" + strings.ToLower(c.p.String())})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": id.New("mem"), "role": "SOURCE_READ", "label": "team:" + strings.ToLower(c.p.String())})
			},
			want: ownersOnly,
		},
		{
			// A grant on one source names a source of W: the outsider's source (of W2) is refused,
			// with the very answer a source that never existed gets.
			root: "Mutation", field: "memberGrantAdd", variant: "otherWorkspacesSource", query: permMemberGrantAdd,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "SOURCE_READ", "sourceId": c.outsiderSource})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "SOURCE_READ", "sourceId": id.New("src")})
			},
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyForbidden, asAdmin: denyForbidden, asOwner: allowedWithUserError("INVALID"),
				asSourceAdmin: denyForbidden, asToken: denyForbidden,
			},
			check: func(t *testing.T, c *permCall, data map[string]any) {
				ghost := c.gql(t, c.bearer, permMemberGrantAdd, permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "SOURCE_READ", "sourceId": id.New("src")}))
				if got, want := permDig(ghost.Data, "memberGrantAdd.userErrors"), permDig(data, "memberGrantAdd.userErrors"); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("another workspace's source answers %v, one that never existed %v", want, got)
				}
				d := c.must(t, c.bearer, `query($id: ID!) { node(id: $id) { ... on Membership { grants { id } } } }`, map[string]any{"id": c.w.victimMembership})
				for _, g := range permIDs(permDig(d, "node.grants")) {
					if n := c.must(t, c.bearer, `query($id: ID!) { node(id: $id) { ... on ResourceGrant { sourceId } } }`, map[string]any{"id": g}); permStr(n, "node.sourceId") == c.outsiderSource {
						t.Errorf("the grant on another workspace's source was made: %s", g)
					}
				}
			},
		},
		{
			root: "Mutation", field: "memberGrantRemove", query: permMutation("memberGrantRemove", "MemberGrantRemoveInput", "membership { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				label := "victim:" + c.slug("grant")
				d := c.must(t, c.users[asOwner].session, permMemberGrantAdd, permInput(map[string]any{"membershipId": c.w.victimMembership, "role": "SOURCE_READ", "label": label}))
				return permInput(map[string]any{"grantId": permGrantWithLabel(t, d, label)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"grantId": id.New("grt")}) },
			want:  ownersOnly,
		},

		// Access tokens.
		{
			root: "Mutation", field: "accessTokenCreate", query: permAccessTokenCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "ci " + c.p.String(), "role": "MEMBER"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "ci " + c.p.String(), "role": "MEMBER"})
			},
			// MINIMAL members may not make tokens at all (workspace.CreateToken).
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyForbidden, asToken: denyForbidden,
			},
		},
		{
			root: "Mutation", field: "accessTokenCreate", variant: "aboveOwnRole", query: permAccessTokenCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "root " + c.p.String(), "role": "OWNER"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "root " + c.p.String(), "role": "OWNER"})
			},
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowedWithUserError("NOT_ALLOWED"), asAdmin: allowedWithUserError("NOT_ALLOWED"), asOwner: allowed,
				asSourceAdmin: denyForbidden, asToken: denyForbidden,
			},
		},
		{
			// A victim token made by the owner. Members see only their own tokens, so another's is
			// not found rather than forbidden.
			root: "Mutation", field: "accessTokenRevoke", query: permMutation("accessTokenRevoke", "AccessTokenRevokeInput", "accessToken { id revokedAt }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				d := c.must(t, c.users[asOwner].session, permAccessTokenCreate, permInput(map[string]any{"workspaceId": c.w.id, "name": "victim " + c.p.String(), "role": "MEMBER"}))
				return permInput(map[string]any{"accessTokenId": permStr(d, "accessTokenCreate.accessToken.id")})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"accessTokenId": id.New("tok")}) },
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyNotFound, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyNotFound, asToken: allowed,
			},
		},

		// Sources. Owners and admins add them; source admins change the ones their grants cover, and
		// do not see the others. Changes that remove or stop something act on a victim of their own.
		{
			// Even labelled with what its grant covers, a source admin may not add a source.
			root: "Mutation", field: "sourceCreate", query: permSourceCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "catalogId": "cat_javascript", "name": "Web by " + c.p.String(), "labels": []string{permProd}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "catalogId": "cat_javascript", "name": "Web by " + c.p.String(), "labels": []string{permProd}})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "sourceUpdate", source: permProd,
			query: permMutation("sourceUpdate", "SourceUpdateInput", "source { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": c.w.sources[c.label], "name": "Web by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "name": "Web by " + c.p.String()})
			},
			want: sourceAdmins,
		},
		{
			root: "Mutation", field: "sourceEnable", source: permProd,
			query: permMutation("sourceEnable", "SourceIdInput", "source { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, _ := c.newSource(t, c.label, false)
				return permInput(map[string]any{"sourceId": src})
			},
			ghost: noSource, want: sourceAdmins, check: permCheckEnabled("sourceEnable.source", true),
		},
		{
			root: "Mutation", field: "sourceDisable", source: permProd,
			query: permMutation("sourceDisable", "SourceIdInput", "source { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, _ := c.newSource(t, c.label, true)
				return permInput(map[string]any{"sourceId": src})
			},
			ghost: noSource, want: sourceAdmins, check: permCheckEnabled("sourceDisable.source", false),
		},
		{
			root: "Mutation", field: "sourceDelete", source: permProd,
			query: permMutation("sourceDelete", "SourceIdInput", "deletedSourceId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, _ := c.newSource(t, c.label, true)
				return permInput(map[string]any{"sourceId": src})
			},
			ghost: noSource, want: sourceAdmins, check: permCheckGone("sourceDelete.deletedSourceId"),
		},
		{
			root: "Mutation", field: "writeKeyCreate", source: permProd, query: permWriteKeyCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": c.w.sources[c.label]})
			},
			ghost: noSource, want: sourceAdmins,
		},
		{
			// A victim source with two live keys gives up its first.
			root: "Mutation", field: "writeKeyRevoke", source: permProd,
			query: permMutation("writeKeyRevoke", "WriteKeyRevokeInput", "source { id writeKeys { key revokedAt } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, key := c.newSource(t, c.label, true)
				c.must(t, c.users[asOwner].session, permWriteKeyCreate, permInput(map[string]any{"sourceId": src}))
				return permInput(map[string]any{"sourceId": src, "key": key})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "key": "never-existed"})
			},
			want: sourceAdmins,
			check: func(t *testing.T, c *permCall, data map[string]any) {
				keys, _ := permDig(data, "writeKeyRevoke.source.writeKeys").([]any)
				if len(keys) != 2 || permDig(keys[0], "revokedAt") == nil || permDig(keys[1], "revokedAt") != nil {
					t.Errorf("want the first of two keys revoked, got %v", keys)
				}
			},
		},
		{
			// A source keeps at least one live key.
			root: "Mutation", field: "writeKeyRevoke", variant: "lastKey", source: permProd,
			query: permMutation("writeKeyRevoke", "WriteKeyRevokeInput", "source { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, key := c.newSource(t, c.label, true)
				return permInput(map[string]any{"sourceId": src, "key": key})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "key": "never-existed"})
			},
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyForbidden, asAdmin: allowedWithUserError("NOT_ALLOWED"), asOwner: allowedWithUserError("NOT_ALLOWED"),
				asSourceAdmin: allowedWithUserError("NOT_ALLOWED"), asToken: allowedWithUserError("NOT_ALLOWED"),
			},
		},

		// Destinations: owners and admins.
		{
			root: "Mutation", field: "destinationCreate", query: permDestinationCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "catalogId": "cat_webhook", "name": "Hook by " + c.p.String(), "settings": c.webhookSettings()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "catalogId": "cat_webhook", "name": "Hook by " + c.p.String(), "settings": c.webhookSettings()})
			},
			want: adminsOnly, check: permCheckMasked("destinationCreate.destination"),
		},
		{
			// Renames W's webhook and gives it a new shared secret.
			root: "Mutation", field: "destinationUpdate", query: permMutation("destinationUpdate", "DestinationUpdateInput", "destination { id settings secretSettings { name isSet } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.w.destination, "name": "Hook by " + c.p.String(), "settings": map[string]any{"sharedSecret": c.book.newSetting()}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": id.New("dst"), "name": "Hook by " + c.p.String(), "settings": map[string]any{"sharedSecret": c.book.newSetting()}})
			},
			want: adminsOnly, check: permCheckMasked("destinationUpdate.destination"),
		},
		{
			root: "Mutation", field: "destinationEnable", query: permMutation("destinationEnable", "DestinationIdInput", "destination { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.newDestination(t, false)})
			},
			ghost: noDestination, want: adminsOnly, check: permCheckEnabled("destinationEnable.destination", true),
		},
		{
			root: "Mutation", field: "destinationDisable", query: permMutation("destinationDisable", "DestinationIdInput", "destination { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.newDestination(t, true)})
			},
			ghost: noDestination, want: adminsOnly, check: permCheckEnabled("destinationDisable.destination", false),
		},
		{
			root: "Mutation", field: "destinationDelete", query: permMutation("destinationDelete", "DestinationIdInput", "deletedDestinationId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.newDestination(t, true)})
			},
			ghost: noDestination, want: adminsOnly, check: permCheckGone("destinationDelete.deletedDestinationId"),
		},
		{
			// W's destination is a webhook, not a warehouse: those who may sync are told so.
			root: "Mutation", field: "warehouseSyncNow", query: permMutation("warehouseSyncNow", "WarehouseSyncNowInput", "sync { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.w.destination})
			},
			ghost: noDestination,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyForbidden, asAdmin: allowedWithUserError("INVALID"), asOwner: allowedWithUserError("INVALID"),
				asSourceAdmin: denyForbidden, asToken: allowedWithUserError("INVALID"),
			},
		},

		// Privacy Portal: members read (the walk), owners and admins change (W is on BUSINESS, which has it).
		{
			root: "Mutation", field: "privacyMatcherCreate", query: permMutation("privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "Matcher by " + c.p.String(), "classification": "RED"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "x", "classification": "RED"})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "privacyMatcherUpdate", query: permMutation("privacyMatcherUpdate", "PrivacyMatcherUpdateInput", "matcher { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "matcherId": "email", "synonyms": []string{"mail of " + c.p.String()}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "matcherId": "email", "enabled": false})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "privacyMatcherReset", query: permMutation("privacyMatcherReset", "PrivacyMatcherIdInput", "matcher { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "matcherId": "email"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "matcherId": "email"})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "privacyMatcherDelete", query: permMutation("privacyMatcherDelete", "PrivacyMatcherIdInput", "deletedMatcherId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				d := c.must(t, c.users[asOwner].session, permMutation("privacyMatcherCreate", "PrivacyMatcherCreateInput", "matcher { id }"),
					permInput(map[string]any{"workspaceId": c.w.id, "name": c.slug("matcher"), "classification": "YELLOW"}))
				return permInput(map[string]any{"workspaceId": c.w.id, "matcherId": permStr(d, "privacyMatcherCreate.matcher.id")})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "matcherId": id.New("pm")})
			},
			want: adminsOnly,
		},
		{
			// No field was seen by this name: those who may classify are told so in userErrors.
			root: "Mutation", field: "privacyFieldClassify", query: permMutation("privacyFieldClassify", "PrivacyFieldClassifyInput", "count"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "fields": []string{"properties.never_seen"}, "classification": "RED"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "fields": []string{"properties.x"}, "classification": "RED"})
			},
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: denyForbidden, asAdmin: allowedWithUserError("INVALID"), asOwner: allowedWithUserError("INVALID"),
				asSourceAdmin: denyForbidden, asToken: allowedWithUserError("INVALID"),
			},
		},
		{
			root: "Mutation", field: "sourcePrivacyBlockUpdate", query: permMutation("sourcePrivacyBlockUpdate", "SourcePrivacyBlockInput", "source { id privacyBlock }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"sourceId": c.w.sources[permProd], "block": "NONE"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "block": "RED"})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "destinationPrivacyControlsUpdate", query: permMutation("destinationPrivacyControlsUpdate", "DestinationPrivacyControlsInput", "destination { id privacyControls { red } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"destinationId": c.w.destination, "red": "ALLOW"})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": id.New("dst"), "red": "BLOCK"})
			},
			want: adminsOnly,
		},

		// Regulations: owners and admins make and cancel them; members read them.
		{
			root: "Mutation", field: "regulationCreate", query: permMutation("regulationCreate", "RegulationCreateInput", "regulation { id status }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": c.w.id, "type": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjects": []string{"user-of-" + c.p.String()}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "type": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjects": []string{"x"}})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "regulationCancel", query: permMutation("regulationCancel", "RegulationCancelInput", "regulation { id status }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"regulationId": c.newRegulation(t)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"regulationId": id.New("reg")}) },
			want:  planAdmins, // to a source admin, who reads no regulation, it does not exist
		},

		// Protocols: members read, owners and admins change (W is on BUSINESS, which has it).
		{
			root: "Mutation", field: "trackingPlanCreate", query: permMutation("trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "Plan by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "Plan by " + c.p.String()})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "trackingPlanUpdate", query: permMutation("trackingPlanUpdate", "TrackingPlanUpdateInput", "trackingPlan { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"planId": c.newTrackingPlan(t), "name": "Renamed by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"planId": id.New("tp"), "name": "x"})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanDelete", query: permMutation("trackingPlanDelete", "TrackingPlanIdInput", "deletedTrackingPlanId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"planId": c.newTrackingPlan(t)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"planId": id.New("tp")}) },
			want:  planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanRulesUpsert", query: permMutation("trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"planId": c.newTrackingPlan(t), "rules": []any{map[string]any{"type": "TRACK", "eventName": "Order Completed"}}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"planId": id.New("tp"), "rules": []any{map[string]any{"type": "TRACK", "eventName": "Order Completed"}}})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanRulesDelete", query: permMutation("trackingPlanRulesDelete", "TrackingPlanRulesDeleteInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"planId": c.newTrackingPlan(t, "Order Completed"), "rules": []any{map[string]any{"type": "TRACK", "eventName": "Order Completed"}}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"planId": id.New("tp"), "rules": []any{map[string]any{"type": "TRACK", "eventName": "Order Completed"}}})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanConnectSource", query: permMutation("trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				src, _ := c.newSource(t, permProd, true)
				return permInput(map[string]any{"planId": c.newTrackingPlan(t), "sourceId": src})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"planId": id.New("tp"), "sourceId": id.New("src")})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanDisconnectSource", query: permMutation("trackingPlanDisconnectSource", "TrackingPlanSourceInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				plan := c.newTrackingPlan(t)
				src, _ := c.newSource(t, permProd, true)
				c.must(t, c.users[asOwner].session, permMutation("trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }"),
					permInput(map[string]any{"planId": plan, "sourceId": src}))
				return permInput(map[string]any{"planId": plan, "sourceId": src})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"planId": id.New("tp"), "sourceId": id.New("src")})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "trackingPlanImport", query: permMutation("trackingPlanImport", "TrackingPlanImportInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "name": "Imported by " + c.p.String(), "format": "JSON", "text": `{"rules": []}`})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "name": "Imported", "format": "JSON", "text": `{"rules": []}`})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "trackingPlanCreateFromSchema", query: permMutation("trackingPlanCreateFromSchema", "TrackingPlanCreateFromSchemaInput", "trackingPlan { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"sourceId": c.w.sources[permProd], "name": "From schema by " + c.p.String()})
			},
			ghost: noSource, want: adminsOnly,
		},
		{
			root: "Mutation", field: "sourceSchemaControlsUpdate", query: permMutation("sourceSchemaControlsUpdate", "SchemaControlsUpdateInput", "source { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"sourceId": c.w.sources[permProd], "unplannedEvents": "ALLOW"})
			},
			ghost: noSource, want: adminsOnly,
		},
		{
			root: "Mutation", field: "sourceSchemaEventArchive", query: permMutation("sourceSchemaEventArchive", "SchemaEventArchiveInput", "schemaEvent { type }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				name := "Archived by " + c.p.String()
				c.seenInSchema(t, name)
				return permInput(map[string]any{"sourceId": c.w.sources[permProd], "type": "TRACK", "eventName": name, "archived": true})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "type": "TRACK", "eventName": "Never Seen", "archived": true})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "blockedEventsReplay", query: permMutation("blockedEventsReplay", "BlockedEventsReplayInput", "replayed"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"sourceId": c.w.sources[permProd]})
			},
			ghost: noSource, want: adminsOnly,
		},
		{
			root: "Query", field: "trackingPlanExport", query: `query($id: ID!) { trackingPlanExport(id: $id, format: JSON) }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { return map[string]any{"id": c.newTrackingPlan(t)} },
			ghost: func(c *permCall) map[string]any { return map[string]any{"id": id.New("tp")} },
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyNotFound, asToken: allowed,
			},
		},
		{
			root: "Subscription", field: "violationsChanged", query: `subscription($ws: ID!) { violationsChanged(workspaceId: $ws) { workspaceId } }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { c.violationsPlan(t); return permWorkspaceVar(t, c) },
			ghost: permNoWorkspaceVar, want: membersOnly,
			trigger: func(t *testing.T, c *permCall) {
				permTrack(t, c, permProd, map[string]any{"userId": "perm-" + c.p.String(), "event": "Unplanned " + c.p.String()})
			},
		},

		// Engage: members read profiles and the rules, owners and admins change the rules (W is on BUSINESS).
		{
			root: "Mutation", field: "identityResolutionSettingsUpdate",
			query: permMutation("identityResolutionSettingsUpdate", "IdentityResolutionSettingsUpdateInput", "settings { blockedValues { value } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "blockedValues": []any{map[string]any{"value": "by-" + c.p.String()}}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "blockedValues": []any{}})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "computedTraitCreate", query: permMutation("computedTraitCreate", "ComputedTraitCreateInput", "computedTrait { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "key": strings.ReplaceAll(c.slug("perm"), "-", "_"), "name": "By " + c.p.String(),
					"definition": map[string]any{"kind": "EVENT_COUNTER"}})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "key": "x", "name": "X", "definition": map[string]any{"kind": "EVENT_COUNTER"}})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "computedTraitUpdate", query: permMutation("computedTraitUpdate", "ComputedTraitUpdateInput", "computedTrait { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"id": c.newComputedTrait(t), "name": "Renamed by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"id": id.New("ctr"), "name": "x"}) },
			want:  adminsOnly,
		},
		{
			root: "Mutation", field: "computedTraitDelete", query: permMutation("computedTraitDelete", "ComputedTraitDeleteInput", "deletedComputedTraitId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"id": c.newComputedTrait(t)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"id": id.New("ctr")}) },
			want:  adminsOnly,
		},

		// Audiences: members read and preview them, owners and admins change and connect them; to a
		// MINIMAL member (the source admin) they do not exist.
		{
			root: "Mutation", field: "audienceCreate", query: permMutation("audienceCreate", "AudienceCreateInput", "audience { id key status }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "key": "by_" + strings.ToLower(c.p.String()), "name": "By " + c.p.String(),
					"definition": permAudienceDefinition})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "key": "ghost", "name": "Ghost", "definition": permAudienceDefinition})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "audienceUpdate", query: permMutation("audienceUpdate", "AudienceUpdateInput", "audience { id name }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"id": c.newAudience(t), "name": "Renamed by " + c.p.String()})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"id": id.New("audn"), "name": "Ghost"})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "audienceDelete", query: permMutation("audienceDelete", "AudienceIdInput", "deletedAudienceId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"id": c.newAudience(t)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"id": id.New("audn")}) },
			want:  planAdmins,
		},
		{
			root: "Mutation", field: "audiencePreview", query: permMutation("audiencePreview", "AudiencePreviewInput", "size sample { id }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				c.business(t)
				return permInput(map[string]any{"workspaceId": c.w.id, "definition": permAudienceDefinition})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"workspaceId": id.New("ws"), "definition": permAudienceDefinition})
			},
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyForbidden, asToken: allowed,
			},
		},
		{
			root: "Mutation", field: "audienceConnectDestination",
			query: permMutation("audienceConnectDestination", "AudienceDestinationInput", "audience { id destinations { mode destination { id } } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"audienceId": c.newAudience(t), "destinationId": c.w.destination})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"audienceId": id.New("audn"), "destinationId": id.New("dst")})
			},
			want: planAdmins,
		},
		{
			root: "Mutation", field: "audienceDisconnectDestination",
			query: permMutation("audienceDisconnectDestination", "AudienceDestinationInput", "audience { id destinations { mode } }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				a := c.newAudience(t)
				c.must(t, c.users[asOwner].session, permMutation("audienceConnectDestination", "AudienceDestinationInput", "audience { id }"),
					permInput(map[string]any{"audienceId": a, "destinationId": c.w.destination}))
				return permInput(map[string]any{"audienceId": a, "destinationId": c.w.destination})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"audienceId": id.New("audn"), "destinationId": id.New("dst")})
			},
			want: planAdmins,
		},
		{
			root: "Subscription", field: "audienceSizeChanged", query: `subscription($id: ID!) { audienceSizeChanged(audienceId: $id) { id size } }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { return map[string]any{"id": c.newAudience(t)} },
			ghost: func(c *permCall) map[string]any { return map[string]any{"id": id.New("audn")} },
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyNotFound, asToken: allowed,
			},
			trigger: func(t *testing.T, c *permCall) {
				permTrack(t, c, permProd, map[string]any{"userId": "aud-" + c.p.String() + "-" + id.New("u"), "event": "Audience trigger"})
			},
		},

		// Event Delivery and Health.
		{
			root: "Mutation", field: "deliveryRetry", query: permMutation("deliveryRetry", "DeliveryRetryInput", "queued"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": c.w.destination, "eventId": id.New("evt")})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"destinationId": id.New("dst"), "eventId": id.New("evt")})
			},
			want: adminsOnly,
		},
		{
			root: "Mutation", field: "healthIssueAcknowledge", query: permMutation("healthIssueAcknowledge", "HealthIssueAcknowledgeInput", "issue { id status }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"issueId": c.newHealthIssue(t)})
			},
			ghost: func(c *permCall) map[string]any { return permInput(map[string]any{"issueId": id.New("hi")}) },
			want:  adminsOnly,
		},

		// Connections: as their sources. Each row connects W's source to a destination of its own.
		{
			root: "Mutation", field: "connectionCreate", source: permProd, query: permConnectionCreate,
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": c.w.sources[c.label], "destinationId": c.newDestination(t, true)})
			},
			ghost: func(c *permCall) map[string]any {
				return permInput(map[string]any{"sourceId": id.New("src"), "destinationId": id.New("dst")})
			},
			want: sourceAdmins,
		},
		{
			root: "Mutation", field: "connectionEnable", source: permProd,
			query: permMutation("connectionEnable", "ConnectionIdInput", "connection { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"connectionId": c.connect(t, c.w.sources[c.label], c.newDestination(t, true), false)})
			},
			ghost: noConnection, want: sourceAdmins, check: permCheckEnabled("connectionEnable.connection", true),
		},
		{
			root: "Mutation", field: "connectionDisable", source: permProd,
			query: permMutation("connectionDisable", "ConnectionIdInput", "connection { id enabled }"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"connectionId": c.connect(t, c.w.sources[c.label], c.newDestination(t, true), true)})
			},
			ghost: noConnection, want: sourceAdmins, check: permCheckEnabled("connectionDisable.connection", false),
		},
		{
			root: "Mutation", field: "connectionDelete", source: permProd,
			query: permMutation("connectionDelete", "ConnectionIdInput", "deletedConnectionId"),
			vars: func(t *testing.T, c *permCall) map[string]any {
				return permInput(map[string]any{"connectionId": c.connect(t, c.w.sources[c.label], c.newDestination(t, true), true)})
			},
			ghost: noConnection, want: sourceAdmins, check: permCheckGone("connectionDelete.deletedConnectionId"),
		},

		// Subscriptions, over a websocket. Those that wait for changes get a trigger: a change that
		// every persona allowed to subscribe may see, so that "allowed" means a message arrived.
		{root: "Subscription", field: "serverTime", query: `subscription { serverTime(intervalSeconds: 1) }`, want: everyone},
		{
			root: "Subscription", field: "notificationReceived", query: `subscription { notificationReceived { id type workspace { id } } }`,
			trigger: permTriggerNotification,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: allowed,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: allowed, asToken: allowed,
			},
			check: func(t *testing.T, c *permCall, data map[string]any) {
				want := c.w.id
				if c.p == asOutsider {
					want = c.outsiderWorkspace
				}
				if got := permStr(data, "notificationReceived.workspace.id"); got != want {
					t.Errorf("a notification of workspace %q, want %s", got, want)
				}
			},
		},
		{
			root: "Subscription", field: "sourceStatusChanged", query: `subscription($ws: ID!) { sourceStatusChanged(workspaceId: $ws) { id status } }`,
			vars: permWorkspaceVar, ghost: permNoWorkspaceVar, want: membersOnly,
			trigger: func(t *testing.T, c *permCall) {
				c.must(t, c.users[asOwner].session, permMutation("sourceUpdate", "SourceUpdateInput", "source { id }"),
					permInput(map[string]any{"sourceId": c.w.sources[permProd], "name": c.slug("web")}))
			},
		},
		{
			root: "Subscription", field: "destinationStatusChanged", query: `subscription($ws: ID!) { destinationStatusChanged(workspaceId: $ws) { id status } }`,
			vars: permWorkspaceVar, ghost: permNoWorkspaceVar, want: membersOnly,
			trigger: func(t *testing.T, c *permCall) {
				c.must(t, c.users[asOwner].session, permMutation("destinationUpdate", "DestinationUpdateInput", "destination { id }"),
					permInput(map[string]any{"destinationId": c.w.destination, "name": c.slug("hook")}))
			},
		},
		{
			// An event without identity is discarded and counts towards the prod source's issue.
			root: "Subscription", field: "healthIssueChanged", query: `subscription($ws: ID!) { healthIssueChanged(workspaceId: $ws) { id status count } }`,
			vars: permWorkspaceVar, ghost: permNoWorkspaceVar, want: membersOnly,
			trigger: func(t *testing.T, c *permCall) { permTrack(t, c, permProd, map[string]any{"event": "No One"}) },
		},
		{
			root: "Subscription", field: "liveEvents", source: permProd,
			query: `subscription($id: ID!) { liveEvents(sourceId: $id) { sourceId event { id status } } }`,
			vars:  func(t *testing.T, c *permCall) map[string]any { return map[string]any{"id": c.w.sources[c.label]} },
			ghost: func(c *permCall) map[string]any { return map[string]any{"id": id.New("src")} },
			want:  membersOnly,
			trigger: func(t *testing.T, c *permCall) {
				permTrack(t, c, c.label, map[string]any{"userId": "perm-" + c.p.String(), "event": "Walked"})
			},
		},
		{
			// Usage, like Workspace.usage, is for MEMBER and above.
			root: "Subscription", field: "workspaceUsageChanged", query: `subscription($ws: ID!) { workspaceUsageChanged(workspaceId: $ws) { month apiCalls } }`,
			vars: permWorkspaceVar, ghost: permNoWorkspaceVar,
			want: permWant{
				asAnonymous: denyUnauthenticated, asOutsider: denyNotFound,
				asMember: allowed, asAdmin: allowed, asOwner: allowed,
				asSourceAdmin: denyForbidden, asToken: allowed,
			},
			trigger: func(t *testing.T, c *permCall) {
				permTrack(t, c, permProd, map[string]any{"userId": "perm-" + c.p.String(), "event": "Counted"})
			},
		},
	}
	var table []*permRow
	for _, r := range rows {
		table = append(table, r)
		if r.source == permProd {
			table = append(table, permNonProdVariant(r))
		}
	}
	return table
}

// permInvitationToAnswer makes a pending invitation to a new workspace of the victim's, sent to an
// address that is nobody's, and returns its token as the input of invitationAccept/Decline.
func permInvitationToAnswer(t *testing.T, c *permCall) map[string]any {
	slug := c.slug("inv")
	d := c.must(t, c.victim.session, permWorkspaceCreate, permInput(map[string]any{"name": slug, "slug": slug}))
	d = c.must(t, c.victim.session, permMemberInvite, permInput(map[string]any{"workspaceId": permStr(d, "workspaceCreate.workspace.id"),
		"email": c.email("invitee"), "role": "MEMBER"}))
	return permInput(map[string]any{"token": permStr(d, "memberInvite.token")})
}

// permInvitationByAddress makes a pending invitation to a new workspace of the victim's, sent to the
// persona's own address (for the token, its creator's), and returns its id as the input of
// invitationAccept/Decline.
func permInvitationByAddress(t *testing.T, c *permCall) map[string]any {
	to := c.email("nobody")
	if u := c.users[c.p]; u != nil {
		to = u.email
	} else if c.p == asToken {
		to = c.users[asOwner].email
	}
	slug := c.slug("inv")
	d := c.must(t, c.victim.session, permWorkspaceCreate, permInput(map[string]any{"name": slug, "slug": slug}))
	d = c.must(t, c.victim.session, permMemberInvite, permInput(map[string]any{"workspaceId": permStr(d, "workspaceCreate.workspace.id"), "email": to, "role": "MEMBER"}))
	return permInput(map[string]any{"invitationId": permStr(d, "memberInvite.invitation.id")})
}

// permNeverToken is a well-formed secret of a kind (jci_, jcv_) that was never given out.
func permNeverToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// permNodeKinds name the objects the nodes row asks for, in its order: by id prefix, and for a
// source or a connection (from that source) also by the source's label.
var permNodeKinds = []string{"ws", "mem", "grt", "inv", "tok", "aud", "usr", "src:prod", "src:dev", "dst", "conn:prod", "conn:dev", "cat"}

// permNodeVisibility is which of W's objects each persona may fetch by id: the workspace, a
// membership, a grant, a fellow member and the destination for everyone in W, the sources and
// connections they may read (sourceAdmin: the prod ones); invitations, tokens of others and audit
// events for owners and admins; the catalog for everyone.
var permNodeVisibility = [numPersonas]string{
	asAnonymous:   "cat",
	asOutsider:    "cat",
	asMember:      "ws mem grt usr src:prod src:dev dst conn:prod conn:dev cat",
	asAdmin:       "ws mem grt inv tok aud usr src:prod src:dev dst conn:prod conn:dev cat",
	asOwner:       "ws mem grt inv tok aud usr src:prod src:dev dst conn:prod conn:dev cat",
	asSourceAdmin: "ws mem grt usr src:prod dst conn:prod cat",
	asToken:       "ws mem grt inv tok aud usr src:prod src:dev dst conn:prod conn:dev cat",
}

func permCheckNodes(t *testing.T, c *permCall, data map[string]any) {
	list, _ := data["nodes"].([]any)
	if len(list) != len(permNodeKinds) {
		t.Fatalf("nodes: %v", data)
	}
	want := strings.Fields(permNodeVisibility[c.p])
	for i, k := range permNodeKinds {
		if got, visible := list[i] != nil, permContains(want, k); got != visible {
			t.Errorf("node %s_…: visible = %v, want %v", k, got, visible)
		}
	}
}

// permCheckViewer: the viewer's workspaces are theirs (a token's: its own only).
func permCheckViewer(t *testing.T, c *permCall, data map[string]any) {
	ids := permIDs(permDig(data, "viewer.workspaces.nodes"))
	switch c.p {
	case asOutsider:
		if permContains(ids, c.w.id) {
			t.Errorf("the outsider's workspaces include W: %v", ids)
		}
	case asToken:
		if len(ids) != 1 || ids[0] != c.w.id {
			t.Errorf("a token's workspaces = %v, want only W %s", ids, c.w.id)
		}
		if got := permStr(data, "viewer.id"); got != c.users[asOwner].id {
			t.Errorf("a token's viewer is %s, want its creator %s", got, c.users[asOwner].id)
		}
	default:
		if !permContains(ids, c.w.id) {
			t.Errorf("W is missing from the viewer's workspaces: %v", ids)
		}
	}
}

// permCheckViewerCan: Workspace.viewerRole and the viewerCan... fields agree with the table's rows
// of the mutations they announce.
func permCheckViewerCan(t *testing.T, c *permCall, data map[string]any) {
	role := map[permPersona]string{asMember: "MEMBER", asAdmin: "ADMIN", asOwner: "OWNER", asSourceAdmin: "MINIMAL", asToken: "ADMIN"}[c.p]
	if got := permStr(data, "workspace.viewerRole"); got != role {
		t.Errorf("viewerRole = %s, want %s", got, role)
	}
	for flag, field := range map[string]string{
		"viewerCanUpdate": "workspaceUpdate", "viewerCanDelete": "workspaceDelete",
		"viewerCanManageMembers": "memberInvite", "viewerCanChangePlan": "workspacePlanUpdate",
	} {
		want := c.rows[field].want[c.p] == allowed
		if got := permDig(data, "workspace."+flag); got != want {
			t.Errorf("%s = %v, but the table says %s is %s", flag, got, field, c.rows[field].want[c.p])
		}
	}
}

// permCheckTokenList: owners and admins list every token of W; others only their own.
func permCheckTokenList(t *testing.T, c *permCall, data map[string]any) {
	nodes, _ := permDig(data, "workspace.accessTokens.nodes").([]any)
	viewer := c.users[asOwner].id // a token's viewer is its creator
	if u := c.users[c.p]; u != nil {
		viewer = u.id
	}
	for _, n := range nodes {
		if by := permStr(n, "createdBy.id"); by != viewer && (c.p == asMember || c.p == asSourceAdmin) {
			t.Errorf("a %s sees a token of %s", c.p, by)
		}
	}
	if c.p == asAdmin || c.p == asOwner || c.p == asToken {
		if !permContains(permIDs(nodes), c.w.tokenID) {
			t.Errorf("the owner's token %s is not listed", c.w.tokenID)
		}
	}
}

// permCheckSourceCan: Source.viewerCanUpdate and viewerCanDelete agree with the table's rows of
// the mutations they announce.
func permCheckSourceCan(t *testing.T, c *permCall, data map[string]any) {
	for flag, field := range map[string]string{"viewerCanUpdate": "sourceUpdate", "viewerCanDelete": "sourceDelete"} {
		want := c.rows[field].want[c.p] == allowed
		if got := permDig(data, "node."+flag); got != want {
			t.Errorf("%s = %v, but the table says %s is %s", flag, got, field, c.rows[field].want[c.p])
		}
	}
}

// permCheckSourceList: sourceAdmin lists the sources its grant covers and counts only them;
// everyone else in W lists and counts all of them.
func permCheckSourceList(t *testing.T, c *permCall, data map[string]any) {
	nodes, _ := permDig(data, "workspace.sources.nodes").([]any)
	var filter map[string]any
	if c.p == asSourceAdmin {
		filter = map[string]any{"label": permProd}
		for _, n := range nodes {
			labels, _ := permDig(n, "labels").([]any)
			covered := false
			for _, l := range labels {
				covered = covered || l == permProd
			}
			if !covered {
				t.Errorf("sourceAdmin sees a source its grant does not cover: %v", n)
			}
		}
	}
	d := c.must(t, c.users[asOwner].session, `query($slug: String!, $filter: SourceFilter) { workspace(slug: $slug) { sources(filter: $filter) { totalCount } } }`,
		map[string]any{"slug": c.w.slug, "filter": filter})
	if got, want := permDig(data, "workspace.sources.totalCount"), permDig(d, "workspace.sources.totalCount"); got != want {
		t.Errorf("totalCount = %v, want %v", got, want)
	}
	ids := permIDs(nodes)
	for label, src := range c.w.sources {
		if got, want := permContains(ids, src), c.p != asSourceAdmin || label == permProd; got != want {
			t.Errorf("the %s source listed = %v, want %v", label, got, want)
		}
	}
}

// permCheckDestinationList: W's webhook is listed with its secret masked, and viewerCanUpdate
// agrees with the table's destinationUpdate row.
func permCheckDestinationList(t *testing.T, c *permCall, data map[string]any) {
	nodes, _ := permDig(data, "workspace.destinations.nodes").([]any)
	want := c.rows["destinationUpdate"].want[c.p] == allowed
	found := false
	for _, n := range nodes {
		if got := permDig(n, "viewerCanUpdate"); got != want {
			t.Errorf("viewerCanUpdate = %v, but the table says destinationUpdate is %s", got, c.rows["destinationUpdate"].want[c.p])
		}
		if permStr(n, "id") == c.w.destination {
			found = true
			if got := permStr(n, "settings.sharedSecret"); got != permMask {
				t.Errorf("the shared secret reads %q, want the mask", got)
			}
		}
	}
	if !found {
		t.Errorf("W's destination %s is not listed", c.w.destination)
	}
}

// permCheckOverview: the graph holds the sources the viewer may read, the destination, and the
// connections from those sources.
func permCheckOverview(t *testing.T, c *permCall, data map[string]any) {
	nodes := permIDs(permDig(data, "workspace.overview.nodes"))
	edges := permIDs(permDig(data, "workspace.overview.edges"))
	if !permContains(nodes, c.w.destination) {
		t.Errorf("W's destination %s is not in the overview", c.w.destination)
	}
	for label, src := range c.w.sources {
		want := c.p != asSourceAdmin || label == permProd
		if got := permContains(nodes, src); got != want {
			t.Errorf("the %s source in the overview = %v, want %v", label, got, want)
		}
		if got := permContains(edges, c.w.connections[label]); got != want {
			t.Errorf("the connection from the %s source in the overview = %v, want %v", label, got, want)
		}
	}
}

// permMask is what a secret setting that is set reads as.
const permMask = "••••••••"

// permCheckMasked: the destination at path reads its shared secret as the mask, and says it is set.
func permCheckMasked(path string) func(t *testing.T, c *permCall, data map[string]any) {
	return func(t *testing.T, c *permCall, data map[string]any) {
		if got := permStr(data, path+".settings.sharedSecret"); got != permMask {
			t.Errorf("the shared secret reads %q, want the mask", got)
		}
		secrets, _ := permDig(data, path+".secretSettings").([]any)
		for _, s := range secrets {
			if permStr(s, "name") == "sharedSecret" && permDig(s, "isSet") != true {
				t.Errorf("secretSettings says the shared secret is not set: %v", secrets)
			}
		}
	}
}

// permCheckEnabled: the object at path is now enabled, or disabled.
func permCheckEnabled(path string, want bool) func(t *testing.T, c *permCall, data map[string]any) {
	return func(t *testing.T, c *permCall, data map[string]any) {
		if got := permDig(data, path+".enabled"); got != want {
			t.Errorf("%s.enabled = %v, want %v", path, got, want)
		}
	}
}

// permCheckGone: the object whose id is at path is gone, even to the owner.
func permCheckGone(path string) func(t *testing.T, c *permCall, data map[string]any) {
	return func(t *testing.T, c *permCall, data map[string]any) {
		gone := permStr(data, path)
		if gone == "" {
			t.Fatalf("%s is empty: %v", path, data)
		}
		r := c.gql(t, c.users[asOwner].session, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": gone})
		if len(r.Errors) > 0 || permDig(r.Data, "node") != nil {
			t.Errorf("%s is still there: %s", gone, r.Raw)
		}
	}
}

func permGrantWithLabel(t *testing.T, data map[string]any, label string) string {
	t.Helper()
	grants, _ := permDig(data, "memberGrantAdd.membership.grants").([]any)
	for _, g := range grants {
		if permStr(g, "label") == label {
			return permStr(g, "id")
		}
	}
	t.Fatalf("no grant with label %s in %v", label, data)
	return ""
}

// permSchemaRootFields reads schema/*.graphqls and returns the root fields as "Query.node".
func permSchemaRootFields(t *testing.T) map[string]bool {
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
	out := map[string]bool{}
	for _, def := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if def == nil {
			continue
		}
		for _, f := range def.Fields {
			if !strings.HasPrefix(f.Name, "__") {
				out[def.Name+"."+f.Name] = true
			}
		}
	}
	return out
}

// permCheckCoverage fails listing the root fields without a row, the rows of fields that are
// gone, and the rows that leave a persona out.
func permCheckCoverage(t *testing.T, table []*permRow, fields map[string]bool) {
	t.Helper()
	rowed := map[string]bool{}
	var gone []string
	for _, r := range table {
		key := r.root + "." + r.field
		if !fields[key] {
			gone = append(gone, r.name())
		}
		if r.variant == "" {
			rowed[key] = true
		}
		for p := range numPersonas {
			if r.want[p].kind == outcomeUnset {
				t.Errorf("row %s has no outcome for %s", r.name(), p)
			}
		}
	}
	var missing []string
	for f := range fields {
		if !rowed[f] {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("root fields without a row in the permission table: %s", strings.Join(missing, ", "))
	}
	if len(gone) > 0 {
		t.Errorf("rows of fields that are not in the schema: %s", strings.Join(gone, ", "))
	}
}

// permAccount is a signed-up user and their session.
type permAccount struct {
	id, email, password, session string
}

// permWorkspace is a workspace with every persona in it: W, or a fresh copy for a destructive row.
type permWorkspace struct {
	id, slug         string
	membership       [numPersonas]string // of member, admin, owner and sourceAdmin
	victimMembership string              // the victim's, a MEMBER who is no persona
	grant            string              // sourceAdmin's SOURCE_ADMIN grant on environment:prod
	token, tokenID   string              // the token persona: ADMIN, made by the owner
	invitation       string              // pending, to an address without an account
	event            string              // an audit event
	sources          map[string]string   // by label: one labelled permProd, one permNonProd
	keys             map[string]string   // the sources' write keys, by label
	destination      string              // a webhook with a shared secret
	connections      map[string]string   // from each source to the destination, by the source's label
	violationsPlan   string              // a tracking plan on the prod source, once a row needed one
}

// permWorld is what every row shares: the server, the users and the secrets seen.
type permWorld struct {
	s      *server
	users  [numPersonas]*permAccount // nil for anonymous and token
	victim *permAccount              // a member of every workspace fixture, target of member rows
	// outsiderWorkspace is the outsider's own workspace, W2, where the victim is an admin, and
	// outsiderSource a source of it.
	outsiderWorkspace, outsiderSource string
	book                              *permSecrets
	rows                              map[string]*permRow // the rows of the fields themselves, by field
	seq                               int
}

// permFixture is the world seen from one workspace.
type permFixture struct {
	*permWorld
	w *permWorkspace
}

// permCall is one persona's request on a fixture.
type permCall struct {
	*permFixture
	p      permPersona
	bearer string
	label  string // the row's source label, for the sources it aims at
}

func newPermFixture(t *testing.T, table []*permRow) *permFixture {
	t.Helper()
	w := &permWorld{s: startServer(t, allowLoopback), book: &permSecrets{}, rows: map[string]*permRow{}}
	for _, r := range table {
		if r.variant == "" {
			w.rows[r.field] = r
		}
	}
	f := &permFixture{permWorld: w}
	for _, p := range []permPersona{asOwner, asOutsider, asMember, asAdmin, asSourceAdmin} {
		w.users[p] = f.signUp(t, p.String())
	}
	w.victim = f.signUp(t, "victim")
	slug := f.slug("outsiders")
	d := f.must(t, w.users[asOutsider].session, permWorkspaceCreate, permInput(map[string]any{"name": "W2", "slug": slug}))
	w.outsiderWorkspace = permStr(d, "workspaceCreate.workspace.id")
	d = f.must(t, w.users[asOutsider].session, permMemberInvite, permInput(map[string]any{"workspaceId": w.outsiderWorkspace, "email": w.victim.email, "role": "ADMIN"}))
	f.must(t, w.victim.session, permInvitationAccept, permInput(map[string]any{"token": permStr(d, "memberInvite.token")}))
	d = f.must(t, w.users[asOutsider].session, permSourceCreate, permInput(map[string]any{"workspaceId": w.outsiderWorkspace, "catalogId": "cat_javascript", "name": "W2 web"}))
	w.outsiderSource = permStr(d, "sourceCreate.source.id")
	f.w = f.newWorkspace(t)
	return f
}

func (f *permFixture) signUp(t *testing.T, label string) *permAccount {
	t.Helper()
	a := &permAccount{email: f.email(label), password: f.book.newPassword()}
	d := f.must(t, "", permSignUp, permInput(map[string]any{"email": a.email, "password": a.password, "name": label}))
	a.id, a.session = permStr(d, "signUp.user.id"), permStr(d, "signUp.token")
	return a
}

// newWorkspace builds a workspace like W through the API: the owner creates it and invites the
// others as MEMBER; they accept; the owner makes admin ADMIN and sourceAdmin MINIMAL with a
// SOURCE_ADMIN grant, creates the ADMIN token and a pending invitation, a prod and a non-prod
// source, a webhook destination and a connection from each source to it.
func (f *permFixture) newWorkspace(t *testing.T) *permWorkspace {
	t.Helper()
	own := f.users[asOwner].session
	w := &permWorkspace{slug: f.slug("acme")}
	d := f.must(t, own, permWorkspaceCreate, permInput(map[string]any{"name": "Acme", "slug": w.slug}))
	w.id = permStr(d, "workspaceCreate.workspace.id")
	owners := permIDs(permDig(d, "workspaceCreate.workspace.members.nodes"))
	if len(owners) != 1 {
		t.Fatalf("owners of a new workspace: %v", owners)
	}
	w.membership[asOwner] = owners[0]
	join := func(a *permAccount) string {
		d := f.must(t, own, permMemberInvite, permInput(map[string]any{"workspaceId": w.id, "email": a.email, "role": "MEMBER"}))
		d = f.must(t, a.session, permInvitationAccept, permInput(map[string]any{"token": permStr(d, "memberInvite.token")}))
		return permStr(d, "invitationAccept.membership.id")
	}
	for _, p := range []permPersona{asMember, asAdmin, asSourceAdmin} {
		w.membership[p] = join(f.users[p])
	}
	w.victimMembership = join(f.victim)
	f.must(t, own, permMemberUpdate, permInput(map[string]any{"membershipId": w.membership[asAdmin], "role": "ADMIN"}))
	f.must(t, own, permMemberUpdate, permInput(map[string]any{"membershipId": w.membership[asSourceAdmin], "role": "MINIMAL"}))
	d = f.must(t, own, permMemberGrantAdd, permInput(map[string]any{"membershipId": w.membership[asSourceAdmin], "role": "SOURCE_ADMIN", "label": permProd}))
	w.grant = permGrantWithLabel(t, d, permProd)
	d = f.must(t, own, permAccessTokenCreate, permInput(map[string]any{"workspaceId": w.id, "name": "deploy", "role": "ADMIN"}))
	w.token, w.tokenID = permStr(d, "accessTokenCreate.secret"), permStr(d, "accessTokenCreate.accessToken.id")
	d = f.must(t, own, permMemberInvite, permInput(map[string]any{"workspaceId": w.id, "email": f.email("nobody"), "role": "MEMBER"}))
	w.invitation = permStr(d, "memberInvite.invitation.id")
	in := &permFixture{permWorld: f.permWorld, w: w}
	w.destination = in.newDestination(t, true)
	w.sources, w.keys, w.connections = map[string]string{}, map[string]string{}, map[string]string{}
	for _, label := range []string{permProd, permNonProd} {
		w.sources[label], w.keys[label] = in.newSource(t, label, true)
		w.connections[label] = in.connect(t, w.sources[label], w.destination, true)
	}
	d = f.must(t, own, fmt.Sprintf(permWorkspaceBySlug, "auditEvents(first: 1) { nodes { id } }"), map[string]any{"slug": w.slug})
	if ids := permIDs(permDig(d, "workspace.auditEvents.nodes")); len(ids) == 1 {
		w.event = ids[0]
	} else {
		t.Fatalf("no audit event: %v", d)
	}
	return w
}

// business puts the fixture's workspace on BUSINESS (another row may have changed its plan), so
// that what the plan gates (Protocols) answers by role.
func (f *permFixture) business(t *testing.T) {
	t.Helper()
	f.must(t, f.users[asOwner].session, permMutation("workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }"),
		permInput(map[string]any{"workspaceId": f.w.id, "plan": "BUSINESS"}))
}

// permAudienceDefinition selects the profiles that performed any track event.
var permAudienceDefinition = map[string]any{"event": map[string]any{"type": "TRACK"}}

// newAudience adds an audience to the fixture's workspace (put on BUSINESS), as its owner.
func (f *permFixture) newAudience(t *testing.T) string {
	t.Helper()
	f.business(t)
	d := f.must(t, f.users[asOwner].session, permMutation("audienceCreate", "AudienceCreateInput", "audience { id }"),
		permInput(map[string]any{"workspaceId": f.w.id, "key": "a_" + strings.ReplaceAll(id.New("k"), "k_", ""), "name": f.slug("audience"),
			"definition": permAudienceDefinition}))
	return permStr(d, "audienceCreate.audience.id")
}

// newRegulation makes a deletion request in W that has not started (deletions wait a few minutes).
func (f *permFixture) newRegulation(t *testing.T) string {
	t.Helper()
	d := f.must(t, f.users[asOwner].session, permMutation("regulationCreate", "RegulationCreateInput", "regulation { id }"),
		permInput(map[string]any{"workspaceId": f.w.id, "type": "DELETE_INTERNAL", "subjectType": "USER_ID", "subjects": []string{f.slug("subject")}}))
	return permStr(d, "regulationCreate.regulation.id")
}

// newTrackingPlan adds a tracking plan to the fixture's workspace, as its owner, with a track rule
// for each event name given, and returns its id.
func (f *permFixture) newTrackingPlan(t *testing.T, events ...string) string {
	t.Helper()
	f.business(t)
	own := f.users[asOwner].session
	d := f.must(t, own, permMutation("trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id }"),
		permInput(map[string]any{"workspaceId": f.w.id, "name": f.slug("plan")}))
	plan := permStr(d, "trackingPlanCreate.trackingPlan.id")
	if len(events) > 0 {
		var rules []any
		for _, e := range events {
			rules = append(rules, map[string]any{"type": "TRACK", "eventName": e})
		}
		f.must(t, own, permMutation("trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "trackingPlan { id }"),
			permInput(map[string]any{"planId": plan, "rules": rules}))
	}
	return plan
}

// newComputedTrait adds a computed trait to the fixture's workspace, as its owner, and returns
// its id.
func (f *permFixture) newComputedTrait(t *testing.T) string {
	t.Helper()
	f.business(t)
	d := f.must(t, f.users[asOwner].session, permMutation("computedTraitCreate", "ComputedTraitCreateInput", "computedTrait { id }"),
		permInput(map[string]any{"workspaceId": f.w.id, "key": strings.ReplaceAll(strings.ToLower(f.slug("trait")), "-", "_"), "name": "Trait",
			"definition": map[string]any{"kind": "EVENT_COUNTER"}}))
	return permStr(d, "computedTraitCreate.computedTrait.id")
}

// violationsPlan connects a plan to W's prod source, once, so that an unplanned event there is a
// violation.
func (f *permFixture) violationsPlan(t *testing.T) {
	t.Helper()
	if f.w.violationsPlan != "" {
		f.business(t)
		return
	}
	f.w.violationsPlan = f.newTrackingPlan(t, "Planned")
	f.must(t, f.users[asOwner].session, permMutation("trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }"),
		permInput(map[string]any{"planId": f.w.violationsPlan, "sourceId": f.w.sources[permProd]}))
}

// seenInSchema sends a track event named name to W's prod source and waits until the source's
// schema lists it.
func (f *permFixture) seenInSchema(t *testing.T, name string) {
	t.Helper()
	if r := trkSend(t, f.s, "/v1/track", map[string]any{"userId": "schema", "event": name}, trkBasic(f.w.keys[permProd])...); r.Status != 200 {
		t.Fatalf("tracking API: %d %s", r.Status, r.Raw)
	}
	q := `query($id: ID!, $q: String!) { node(id: $id) { ... on Source { schema(search: $q) { nodes { name } } } } }`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d := f.must(t, f.users[asOwner].session, q, map[string]any{"id": f.w.sources[permProd], "q": name})
		if nodes, _ := permDig(d, "node.schema.nodes").([]any); len(nodes) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never showed in the source's schema", name)
		}
	}
}

// newSource adds a javascript source labelled label to the fixture's workspace, as its owner; it
// returns the source's id and its write key.
func (f *permFixture) newSource(t *testing.T, label string, enabled bool) (sourceID, key string) {
	t.Helper()
	d := f.must(t, f.users[asOwner].session, permSourceCreate, permInput(map[string]any{
		"workspaceId": f.w.id, "catalogId": "cat_javascript", "name": f.slug("web"), "labels": []string{label}, "enabled": enabled,
	}))
	keys, _ := permDig(d, "sourceCreate.source.writeKeys").([]any)
	if len(keys) != 1 {
		t.Fatalf("a new source's write keys: %v", d)
	}
	return permStr(d, "sourceCreate.source.id"), permStr(keys[0], "key")
}

// newHealthIssue opens a health issue of the fixture's destination (written directly: a failing
// delivery would take longer to set up than the walk may last).
func (f *permFixture) newHealthIssue(t *testing.T) string {
	t.Helper()
	issueID := id.New("hi")
	now := db.Now()
	err := f.s.App.DB().Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO health_issues (id, workspace_id, target_kind, target_id, error_type, message, count,
			first_seen_at, last_seen_at, status) VALUES (?, ?, 'DESTINATION', ?, 'HTTP_401', 'HTTP Unauthorized (401)', 1, ?, ?, 'OPEN')`,
			issueID, f.w.id, f.w.destination, now, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return issueID
}

// newDestination adds a webhook with a shared secret to the fixture's workspace, as its owner.
func (f *permFixture) newDestination(t *testing.T, enabled bool) string {
	t.Helper()
	d := f.must(t, f.users[asOwner].session, permDestinationCreate, permInput(map[string]any{
		"workspaceId": f.w.id, "catalogId": "cat_webhook", "name": f.slug("hook"), "settings": f.webhookSettings(), "enabled": enabled,
	}))
	return permStr(d, "destinationCreate.destination.id")
}

func (f *permFixture) webhookSettings() map[string]any {
	return map[string]any{"url": "https://example.com/hook", "sharedSecret": f.book.newSetting()}
}

// connect connects a source to a destination, as the owner.
func (f *permFixture) connect(t *testing.T, sourceID, destinationID string, enabled bool) string {
	t.Helper()
	d := f.must(t, f.users[asOwner].session, permConnectionCreate, permInput(map[string]any{
		"sourceId": sourceID, "destinationId": destinationID, "enabled": enabled,
	}))
	return permStr(d, "connectionCreate.connection.id")
}

// bearerOf is the credential persona p sends to act on the fixture's workspace.
func (f *permFixture) bearerOf(p permPersona) string {
	switch p {
	case asAnonymous:
		return ""
	case asToken:
		return f.w.token
	}
	return f.users[p].session
}

func (f *permFixture) slug(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%d", prefix, f.seq)
}

func (f *permFixture) email(label string) string {
	return strings.ToLower(f.slug(label)) + "@example.com"
}

// run makes persona p's request of row r and checks the outcome; it returns what p got.
func (f *permFixture) run(t *testing.T, r *permRow, p permPersona) string {
	if r.fresh {
		f = &permFixture{permWorld: f.permWorld, w: f.newWorkspace(t)}
	}
	c := &permCall{permFixture: f, p: p, bearer: f.bearerOf(p), label: r.source}
	if r.bearer != nil {
		c.bearer = r.bearer(t, c)
	}
	var vars map[string]any
	if r.vars != nil {
		vars = r.vars(t, c)
	}
	send := func(vars map[string]any) gqlResponse {
		if r.root == "Subscription" {
			var trigger func()
			if r.trigger != nil {
				trigger = func() { r.trigger(t, c) }
			}
			within := permSilence
			if r.want[p].kind == outcomeAllow {
				within = permAllowWithin
			}
			return c.subscribe(t, c.bearer, r.query, vars, trigger, within)
		}
		return c.gql(t, c.bearer, r.query, vars)
	}
	res := send(vars)
	want, got := r.want[p], permOutcomeOf(res, r.field)
	if got != want {
		t.Errorf("want %s, got %s: %s", want, got, res.Raw)
		return got.String()
	}
	if want.kind == outcomeDeny && res.Data[r.field] != nil {
		t.Errorf("refused, yet answered: %s", res.Raw)
	}
	if r.ghost != nil && (want == denyNotFound || want == nullAnswer || ((p == asAnonymous || p == asOutsider) && want.kind != outcomeAllow)) {
		if g := send(r.ghost(c)); g.Raw != res.Raw || g.Status != res.Status {
			t.Errorf("the answer tells W's object from one that never existed:\n  W's:   %d %s\n  ghost: %d %s", res.Status, res.Raw, g.Status, g.Raw)
		}
	}
	if want.kind == outcomeAllow && r.check != nil {
		r.check(t, c, res.Data)
	}
	return got.String()
}

// permOutcomeOf classifies an answer for a root field.
func permOutcomeOf(r gqlResponse, field string) permOutcome {
	if len(r.Errors) > 0 {
		return permOutcome{kind: outcomeDeny, code: r.errorCode()}
	}
	v := r.Data[field]
	if v == nil {
		return nullAnswer
	}
	if ues, _ := permDig(v, "userErrors").([]any); len(ues) > 0 {
		return allowedWithUserError(permStr(ues[0], "code"))
	}
	return allowed
}

// gql posts an operation with bearer (none when empty) and screens the answer for secrets.
func (f *permFixture) gql(t *testing.T, bearer, query string, vars map[string]any) gqlResponse {
	t.Helper()
	var headers []string
	if bearer != "" {
		headers = []string{"Authorization", "Bearer " + bearer}
	}
	r := f.s.post(t, query, vars, headers...)
	f.book.screen(t, r.Raw, r.Data)
	return r
}

// must is gql for set-up steps: any error or userError is fatal.
func (f *permFixture) must(t *testing.T, bearer, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := f.gql(t, bearer, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("set-up step failed: %s\n%s", r.Raw, query)
	}
	for _, v := range r.Data {
		if ues, _ := permDig(v, "userErrors").([]any); len(ues) > 0 {
			t.Fatalf("set-up step refused: %s\n%s", r.Raw, query)
		}
	}
	return r.Data
}

// subscribe opens a websocket with bearer in the connection_init payload, starts the subscription
// and returns its first message as a response. Until that message arrives, trigger (when not nil)
// runs every permTriggerEvery to make the server publish something: the first run may come before
// the server has subscribed. A subscription that stays silent for within is answered as null:
// accepted, but nothing arrived.
func (f *permFixture) subscribe(t *testing.T, bearer, query string, vars map[string]any, trigger func(), within time.Duration) gqlResponse {
	t.Helper()
	c := dialWS(t, f.s, nil)
	defer c.Close()
	payload := map[string]any{}
	if bearer != "" {
		payload["Authorization"] = "Bearer " + bearer
	}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		t.Fatal(err)
	}
	type message struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	msgs, done := make(chan message), make(chan struct{})
	defer close(done)
	go func() { // ends when the socket closes or subscribe returns
		for {
			var m message
			if err := c.ReadJSON(&m); err != nil {
				close(msgs)
				return
			}
			if m.Type != "connection_ack" && m.ID != "1" {
				continue
			}
			select {
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()
	if m := <-msgs; m.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v", m)
	}
	_ = c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
	silence := time.NewTimer(within)
	defer silence.Stop()
	tick := time.NewTicker(permTriggerEvery)
	defer tick.Stop()
	var out gqlResponse
wait:
	for {
		if trigger != nil {
			trigger()
		}
		select {
		case msg, ok := <-msgs:
			if !ok {
				t.Fatal("subscription: the socket closed")
			}
			out.Raw = string(msg.Payload)
			switch msg.Type {
			case "next": // data, or a refusal: errors and no data (then complete)
				_ = json.Unmarshal(msg.Payload, &out)
			case "error":
				// The stream started, then ended with an error (or the operation was invalid):
				// not the refusal the table's codes mean.
				var errs []map[string]any
				_ = json.Unmarshal(msg.Payload, &errs)
				code := "ENDED"
				if len(errs) > 0 {
					ext, _ := errs[0]["extensions"].(map[string]any)
					code = fmt.Sprint("ENDED:", ext["code"])
				}
				out.Errors = []map[string]any{{"message": out.Raw, "extensions": map[string]any{"code": code}}}
			default:
				t.Fatalf("subscription: %s %s", msg.Type, msg.Payload)
			}
			break wait
		case <-silence.C:
			out.Raw = fmt.Sprintf("(no message within %s)", within)
			break wait
		case <-tick.C:
		}
	}
	_ = c.WriteJSON(map[string]any{"id": "1", "type": "complete"})
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	f.book.screen(t, out.Raw, out.Data)
	return out
}

// How long subscribe waits for a first message, and how often it triggers one meanwhile. A
// persona that must get one waits longer: it stops at the first message, and some go through
// several steps (an audience's size moves after identity resolution and the audience's own step),
// which took over 4 s once in a CI run on a slow 2-core machine, against 0.1 s alone.
const (
	permSilence      = 4 * time.Second
	permAllowWithin  = 20 * time.Second
	permTriggerEvery = 300 * time.Millisecond
)

// permSecrets remembers every password and secret of the walk, to look for them where they must
// not be.
type permSecrets struct {
	passwords []string
	secrets   []string // session tokens and access-token secrets
	settings  []string // secret settings of destinations: write-only, never read back
}

func (b *permSecrets) newPassword() string {
	p := make([]byte, 12)
	_, _ = rand.Read(p)
	pw := "Pw" + hex.EncodeToString(p)
	b.passwords = append(b.passwords, pw)
	return pw
}

// newSetting makes the value of a destination's secret setting.
func (b *permSecrets) newSetting() string {
	p := make([]byte, 12)
	_, _ = rand.Read(p)
	s := "whsec" + hex.EncodeToString(p)
	b.settings = append(b.settings, s)
	return s
}

// screen fails when an answer holds a password, a password hash or a secret. The one secret
// signUp, logIn or accessTokenCreate answers with belongs in its payload: it is recorded and taken
// out before looking.
func (b *permSecrets) screen(t *testing.T, raw string, data map[string]any) {
	t.Helper()
	for field, key := range map[string]string{"signUp": "token", "logIn": "token", "accessTokenCreate": "secret", "memberInvite": "token", "emailVerify": "token"} {
		s := permStr(data, field+"."+key)
		if s == "" {
			continue
		}
		if permContains(b.secrets, s) {
			t.Errorf("%s answered with a secret given out before (%s…)", field, s[:8])
		}
		b.secrets = append(b.secrets, s)
		raw = strings.Replace(raw, s, "", 1)
		if field == "memberInvite" { // and its link
			raw = strings.Replace(raw, s, "", 1)
		}
	}
	for _, pw := range b.passwords {
		if strings.Contains(raw, pw) {
			t.Errorf("an answer contains a password: %s", raw)
		}
	}
	for _, s := range b.settings {
		if strings.Contains(raw, s) {
			t.Errorf("an answer contains a destination's secret setting: %s", raw)
		}
	}
	// jcs_, jct_, jci_ and jcv_ start session tokens, access-token secrets, invitations' and
	// verification links' secrets (internal/auth/secret.go): as the start of a value, not inside
	// another random one (a write key may hold "jcv_" by chance).
	if m := permSecretMarker.FindString(raw); m != "" {
		t.Errorf("an answer contains %q: %s", m, raw)
	}
	if strings.Contains(raw, "$argon2") {
		t.Errorf("an answer contains a password hash: %s", raw)
	}
}

var permSecretMarker = regexp.MustCompile(`(^|[^A-Za-z0-9_-])(jcs|jct|jci|jcv)_`)

// permDig walks decoded JSON objects along a dot-separated path.
func permDig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func permStr(v any, path string) string {
	s, _ := permDig(v, path).(string)
	return s
}

// permIDs returns the ids of a list of objects.
func permIDs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, n := range list {
		out = append(out, permStr(n, "id"))
	}
	return out
}

func permContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
