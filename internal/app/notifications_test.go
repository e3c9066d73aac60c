package app_test

// Notifications as people get them: made from the audit trail for the other members of a
// workspace (never for the one who acted, directly or with a token), filtered by role and by each
// person's settings, marked read, POSTed signed to a person's webhook channel, and made by health
// issues; and the account mutations that sit next to them (viewerUpdate, passwordChange).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// ---------------------------------------------------------------------------------------------
// Helpers

// team is a workspace made through the API, its owner and the members added to it.
type team struct {
	s     *server
	owner teamUser
	wsID  string
	slug  string
}

// teamUser is someone with a session.
type teamUser struct {
	tok, id, email, password string
	membership               string // in the team's workspace; "" for the owner
}

const teamPassword = "correct horse battery"

// newTeam signs the owner up (named name) and creates the workspace slug.
func newTeam(tb testing.TB, s *server, slug, name string) *team {
	tb.Helper()
	tm := &team{s: s, slug: slug}
	tm.owner = tm.signUp(tb, slug+"-owner@example.com", name)
	d := tm.mutate(tb, tm.owner.tok, "workspaceCreate", "WorkspaceCreateInput", "workspace { id }", map[string]any{"name": slug, "slug": slug})
	tm.wsID = trkStr(d, "workspace.id")
	return tm
}

func (tm *team) signUp(tb testing.TB, email, name string) teamUser {
	tb.Helper()
	d := tm.gql(tb, "", `mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } userErrors { message } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": teamPassword, "name": name}})
	u := teamUser{tok: trkStr(d, "signUp.token"), id: trkStr(d, "signUp.user.id"), email: email, password: teamPassword}
	if u.tok == "" {
		tb.Fatalf("signUp %s: %v", email, d)
	}
	return u
}

// add signs someone up and makes them a member with role (MEMBER, ADMIN or MINIMAL).
func (tm *team) add(tb testing.TB, label, name, role string) teamUser {
	tb.Helper()
	u := tm.signUp(tb, tm.slug+"-"+label+"@example.com", name)
	inv := tm.mutate(tb, tm.owner.tok, "memberInvite", "MemberInviteInput", "token",
		map[string]any{"workspaceId": tm.wsID, "email": u.email, "role": role})
	acc := tm.mutate(tb, u.tok, "invitationAccept", "InvitationAcceptInput", "membership { id role }",
		map[string]any{"token": trkStr(inv, "token")})
	if u.membership = trkStr(acc, "membership.id"); trkStr(acc, "membership.role") != role {
		tb.Fatalf("invitationAccept: %v, want role %s", acc, role)
	}
	return u
}

// gql runs an operation as the holder of tok ("" for anonymous) and wants no errors.
func (tm *team) gql(tb testing.TB, tok, query string, vars map[string]any) map[string]any {
	tb.Helper()
	return dlvData(tb, dlvPost(tb, tm.s, tok, query, vars))
}

// mutate runs a mutation taking $i, wants no userErrors, and returns its payload.
func (tm *team) mutate(tb testing.TB, tok, name, inputType, selection string, input map[string]any) map[string]any {
	tb.Helper()
	p := tm.try(tb, tok, name, inputType, selection, input)
	if errs, _ := p["userErrors"].([]any); len(errs) > 0 {
		tb.Fatalf("%s: %v", name, errs)
	}
	return p
}

// try runs a mutation taking $i and returns its payload, userErrors { field code message } included.
func (tm *team) try(tb testing.TB, tok, name, inputType, selection string, input map[string]any) map[string]any {
	tb.Helper()
	d := tm.gql(tb, tok, fmt.Sprintf(`mutation($i: %s!) { %s(input: $i) { %s userErrors { field code message } } }`, inputType, name, selection),
		map[string]any{"i": input})
	return trkObj(d, name)
}

// source creates an enabled javascript source and returns its id and write key.
func (tm *team) source(tb testing.TB, name string) (id, key string) {
	tb.Helper()
	p := tm.mutate(tb, tm.owner.tok, "sourceCreate", "SourceCreateInput", "source { id writeKeys { key } }",
		map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_javascript", "name": name})
	keys, _ := trkPath(p, "source.writeKeys").([]any)
	if len(keys) != 1 {
		tb.Fatalf("sourceCreate: %v", p)
	}
	return trkStr(p, "source.id"), trkStr(keys[0], "key")
}

// rename renames a source as the holder of tok.
func (tm *team) rename(tb testing.TB, tok, sourceID, name string) {
	tb.Helper()
	tm.mutate(tb, tok, "sourceUpdate", "SourceUpdateInput", "source { id }", map[string]any{"sourceId": sourceID, "name": name})
}

// ntfNotification is a notification as its recipient reads it.
type ntfNotification struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	Area         string `json:"area"`
	Message      string `json:"message"`
	ResourceType string `json:"resourceType"`
	ResourceID   string `json:"resourceId"`
	Read         bool   `json:"read"`
	Actor        *struct {
		ID string `json:"id"`
	} `json:"actor"`
	Workspace *struct {
		ID string `json:"id"`
	} `json:"workspace"`
}

const ntfFields = `id type area message resourceType resourceId read actor { id } workspace { id }`

// ntfInbox is what a viewer sees of their notifications.
type ntfInbox struct {
	Unread int
	Total  int
	List   []ntfNotification // newest first
}

// inbox reads the viewer's notifications (the newest 100).
func (tm *team) inbox(tb testing.TB, tok string) ntfInbox {
	tb.Helper()
	r := dlvPost(tb, tm.s, tok, `{ viewer { unreadNotificationCount notifications(first: 100) { totalCount nodes { `+ntfFields+` } } } }`, nil)
	var out struct {
		Data struct {
			Viewer struct {
				Unread        int `json:"unreadNotificationCount"`
				Notifications struct {
					TotalCount int               `json:"totalCount"`
					Nodes      []ntfNotification `json:"nodes"`
				} `json:"notifications"`
			} `json:"viewer"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.Raw), &out); err != nil || len(r.Errors) > 0 {
		tb.Fatalf("notifications: %v %s", err, r.Raw)
	}
	v := out.Data.Viewer
	return ntfInbox{Unread: v.Unread, Total: v.Notifications.TotalCount, List: v.Notifications.Nodes}
}

// about returns the notifications of type typ about resourceID.
func (in ntfInbox) about(typ, resourceID string) []ntfNotification {
	var out []ntfNotification
	for _, n := range in.List {
		if n.Type == typ && (resourceID == "" || n.ResourceID == resourceID) {
			out = append(out, n)
		}
	}
	return out
}

// inArea counts the notifications of an area.
func (in ntfInbox) inArea(area string) int {
	n := 0
	for _, x := range in.List {
		if x.Area == area {
			n++
		}
	}
	return n
}

// ntfReceiver is a webhook channel on loopback that records the POSTs it gets.
type ntfReceiver struct {
	URL  string
	mu   sync.Mutex
	hits []ntfHit
}

type ntfHit struct {
	Header http.Header
	Body   []byte
}

func ntfNewReceiver(tb testing.TB, status int) *ntfReceiver {
	rc := &ntfReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, ntfHit{Header: r.Header.Clone(), Body: body})
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	rc.URL = srv.URL
	tb.Cleanup(srv.Close)
	return rc
}

func (rc *ntfReceiver) Hits() []ntfHit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]ntfHit(nil), rc.hits...)
}

// waitFor returns the first POST whose body has "type": typ.
func (rc *ntfReceiver) waitFor(tb testing.TB, typ string) ntfHit {
	tb.Helper()
	var found ntfHit
	subWait(tb, "a POST of "+typ+" at "+rc.URL, 10*time.Second, func() bool {
		for _, h := range rc.Hits() {
			var b struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(h.Body, &b) == nil && b.Type == typ {
				found = h
				return true
			}
		}
		return false
	})
	return found
}

// ---------------------------------------------------------------------------------------------
// Tests

// TestNotifications: Ada owns a workspace where Bea is a MEMBER and Cy is MINIMAL. What one of
// them does reaches the others' inboxes, never their own.
func TestNotifications(t *testing.T) {
	s := startServer(t, allowLoopback, func(c *config.Config) {
		c.LogLevel = slog.LevelWarn
		c.DeliveryMaxAttempts = 1
	})
	tm := newTeam(t, s, "ntf-acme", "Ada")
	ada := tm.owner
	bea := tm.add(t, "bea", "Bea", "MEMBER")
	cy := tm.add(t, "cy", "Cy", "MINIMAL")
	tok := trkStr(tm.mutate(t, ada.tok, "accessTokenCreate", "AccessTokenCreateInput", "secret",
		map[string]any{"workspaceId": tm.wsID, "name": "deploy", "role": "ADMIN"}), "secret")

	srcID, srcKey := tm.source(t, "Backend")

	t.Run("OthersHearTheActorDoesNot", func(t *testing.T) {
		got := tm.inbox(t, bea.tok).about("SOURCE_CREATED", srcID)
		if len(got) != 1 {
			t.Fatalf("Bea's SOURCE_CREATED notifications of %s: %+v", srcID, got)
		}
		n := got[0]
		if n.Area != "SOURCES" || n.ResourceType != "Source" || n.Read || n.Actor == nil || n.Actor.ID != ada.id ||
			n.Workspace == nil || n.Workspace.ID != tm.wsID || n.Message != "Ada created source “Backend”" {
			t.Errorf("notification %+v", n)
		}
		if mine := tm.inbox(t, ada.tok).about("SOURCE_CREATED", srcID); len(mine) != 0 {
			t.Errorf("Ada was notified of her own change: %+v", mine)
		}

		before := tm.inbox(t, bea.tok)
		tm.mutate(t, ada.tok, "writeKeyCreate", "SourceIdInput", "writeKey { key }", map[string]any{"sourceId": srcID})
		after := tm.inbox(t, bea.tok)
		if got, want := after.Unread, before.Unread+1; got != want {
			t.Errorf("Bea's unreadNotificationCount = %d after one change, want %d", got, want)
		}
		if got, want := after.Total, before.Total+1; got != want {
			t.Errorf("Bea's notifications.totalCount = %d, want %d", got, want)
		}
		if len(after.List) == 0 || after.List[0].Type != "WRITE_KEY_CREATED" || !strings.Contains(after.List[0].Message, "added a write key") {
			t.Errorf("Bea's newest notification: %+v", after.List)
		}
		if got := tm.inbox(t, ada.tok).about("WRITE_KEY_CREATED", ""); len(got) != 0 {
			t.Errorf("Ada was notified of her own change: %+v", got)
		}
	})

	t.Run("TokenActsForItsCreator", func(t *testing.T) {
		tm.rename(t, tok, srcID, "Backend API")
		got := tm.inbox(t, bea.tok).about("SOURCE_UPDATED", srcID)
		if len(got) != 1 || got[0].Actor == nil || got[0].Actor.ID != ada.id || !strings.HasPrefix(got[0].Message, "Ada ") {
			t.Fatalf("Bea's SOURCE_UPDATED notifications: %+v, want one by Ada", got)
		}
		for _, who := range []string{ada.tok, tok} {
			if mine := tm.inbox(t, who).about("SOURCE_UPDATED", srcID); len(mine) != 0 {
				t.Errorf("Ada heard of what her token did: %+v", mine)
			}
		}
	})

	t.Run("MinimalMembersDoNotHearOfSources", func(t *testing.T) {
		in := tm.inbox(t, cy.tok)
		if n := in.inArea("SOURCES"); n != 0 {
			t.Errorf("Cy (MINIMAL) has %d notifications of sources: %+v", n, in.List)
		}
		if n := in.inArea("MEMBERS"); n != 0 {
			t.Errorf("Cy (MINIMAL) has %d notifications of members: %+v", n, in.List)
		}
	})

	t.Run("TypeTurnedOff", func(t *testing.T) {
		set := func(typ string, on bool) map[string]any {
			return tm.mutate(t, bea.tok, "notificationSettingsUpdate", "NotificationSettingsUpdateInput",
				"settings { areas { area types { type inApp } } }",
				map[string]any{"settings": []any{map[string]any{"type": typ, "inApp": on}}})
		}
		if p := set("SOURCE_UPDATED", false); !permSettingIs(p, "settings", "SOURCE_UPDATED", false) || !permSettingIs(p, "settings", "SOURCE_DISABLED", true) {
			t.Fatalf("settings after turning SOURCE_UPDATED off: %v", p)
		}
		d := tm.gql(t, bea.tok, `{ viewer { notificationSettings { areas { area types { type inApp } } } } }`, nil)
		if !permSettingIs(d, "viewer.notificationSettings", "SOURCE_UPDATED", false) {
			t.Errorf("viewer.notificationSettings: %v", d)
		}
		before := len(tm.inbox(t, bea.tok).about("SOURCE_UPDATED", srcID))
		tm.rename(t, ada.tok, srcID, "Backend v2")
		tm.mutate(t, ada.tok, "sourceDisable", "SourceIdInput", "source { id }", map[string]any{"sourceId": srcID})
		in := tm.inbox(t, bea.tok)
		if got := len(in.about("SOURCE_UPDATED", srcID)); got != before {
			t.Errorf("SOURCE_UPDATED is off, yet Bea got %d more", got-before)
		}
		if len(in.about("SOURCE_DISABLED", srcID)) != 1 {
			t.Errorf("SOURCE_DISABLED is still on, yet Bea did not get it: %+v", in.List)
		}
		set("SOURCE_UPDATED", true)
		tm.rename(t, ada.tok, srcID, "Backend v3")
		if got := len(tm.inbox(t, bea.tok).about("SOURCE_UPDATED", srcID)); got != before+1 {
			t.Errorf("turned on again: %d SOURCE_UPDATED, want %d", got, before+1)
		}
		tm.mutate(t, ada.tok, "sourceEnable", "SourceIdInput", "source { id }", map[string]any{"sourceId": srcID})

		p := tm.try(t, bea.tok, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { areas { area } }",
			map[string]any{"settings": []any{map[string]any{"type": "NOT_A_TYPE", "inApp": false}}})
		if ues, _ := p["userErrors"].([]any); len(ues) != 1 || trkStr(ues[0], "code") != "INVALID" || trkStr(ues[0], "field") != "settings.0.type" {
			t.Errorf("an unknown type: %v", p)
		}
	})

	t.Run("MarkRead", func(t *testing.T) {
		in := tm.inbox(t, bea.tok)
		if in.Unread < 3 {
			t.Fatalf("Bea has %d unread notifications, want at least 3", in.Unread)
		}
		one := in.List[len(in.List)-1].ID
		mark := func(tok string, input map[string]any) gqlResponse {
			return dlvPost(t, s, tok, `mutation($i: NotificationMarkReadInput!) { notificationMarkRead(input: $i) { marked unreadNotificationCount userErrors { code } } }`,
				map[string]any{"i": input})
		}
		d := dlvData(t, mark(bea.tok, map[string]any{"notificationId": one}))
		if trkInt(trkPath(d, "notificationMarkRead.marked")) != 1 || trkInt(trkPath(d, "notificationMarkRead.unreadNotificationCount")) != in.Unread-1 {
			t.Errorf("marking one read: %v (unread was %d)", d, in.Unread)
		}
		d = dlvData(t, mark(bea.tok, map[string]any{"notificationId": one}))
		if trkInt(trkPath(d, "notificationMarkRead.marked")) != 0 {
			t.Errorf("marking it again: %v", d)
		}
		for _, n := range tm.inbox(t, bea.tok).List {
			if n.Read != (n.ID == one) {
				t.Errorf("notification %s read = %v", n.ID, n.Read)
			}
		}
		adas := tm.inbox(t, ada.tok).List
		if len(adas) == 0 {
			t.Fatal("Ada has no notification")
		}
		if r := mark(bea.tok, map[string]any{"notificationId": adas[0].ID}); r.errorCode() != "NOT_FOUND" {
			t.Errorf("Bea marking Ada's notification: %s", r.Raw)
		}
		d = dlvData(t, mark(bea.tok, map[string]any{}))
		if trkInt(trkPath(d, "notificationMarkRead.marked")) != in.Unread-1 || trkInt(trkPath(d, "notificationMarkRead.unreadNotificationCount")) != 0 {
			t.Errorf("marking all read: %v", d)
		}
		d = tm.gql(t, bea.tok, `{ viewer { notifications(unreadOnly: true) { totalCount nodes { id } } } }`, nil)
		if n := trkInt(trkPath(d, "viewer.notifications.totalCount")); n != 0 {
			t.Errorf("%d unread notifications after marking all", n)
		}
		if tm.inbox(t, ada.tok).List[0].Read {
			t.Error("Bea's marking all read marked Ada's too")
		}
	})

	t.Run("WebhookChannel", func(t *testing.T) {
		rc := ntfNewReceiver(t, http.StatusNoContent)
		const secret = "ntf-webhook-5ecret-of-bea"
		update := func(input map[string]any) map[string]any {
			return tm.try(t, bea.tok, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { webhook { url updatedAt } }", input)
		}
		for _, c := range []struct {
			name  string
			input map[string]any
			field string
			code  string
		}{
			{"NotHTTP", map[string]any{"webhookUrl": "ftp://example.com/x", "webhookSecret": secret}, "webhookUrl", "INVALID"},
			{"SecretTooShort", map[string]any{"webhookUrl": rc.URL, "webhookSecret": "short"}, "webhookSecret", "TOO_SHORT"},
			{"NoSecretYet", map[string]any{"webhookUrl": rc.URL}, "webhookSecret", "TOO_SHORT"},
		} {
			p := update(c.input)
			ues, _ := p["userErrors"].([]any)
			if len(ues) != 1 || trkStr(ues[0], "field") != c.field || trkStr(ues[0], "code") != c.code || p["settings"] != nil {
				t.Errorf("%s: %v, want %s %s", c.name, p, c.field, c.code)
			}
		}
		p := update(map[string]any{"webhookUrl": rc.URL + "/bea", "webhookSecret": secret})
		if ues, _ := p["userErrors"].([]any); len(ues) > 0 || trkStr(p, "settings.webhook.url") != rc.URL+"/bea" {
			t.Fatalf("setting the channel: %v", p)
		}

		tm.rename(t, ada.tok, srcID, "Backend v4")
		hit := rc.waitFor(t, "SOURCE_UPDATED")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(hit.Body)
		if got, want := hit.Header.Get("X-Signature"), hex.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("X-Signature %q, want HMAC-SHA256 of the body with Bea's secret %q", got, want)
		}
		var body struct {
			ID, Type, Area, Message, WorkspaceID, ResourceType, ResourceID string
		}
		if err := json.Unmarshal(hit.Body, &body); err != nil {
			t.Fatalf("body: %v %s", err, hit.Body)
		}
		newest := tm.inbox(t, bea.tok).List[0]
		if body.ID != newest.ID || body.Type != "SOURCE_UPDATED" || body.ResourceID != srcID || body.WorkspaceID != tm.wsID ||
			body.Message != newest.Message || hit.Header.Get("Idempotency-Key") != newest.ID {
			t.Errorf("POST %s (Idempotency-Key %s), want Bea's notification %+v", hit.Body, hit.Header.Get("Idempotency-Key"), newest)
		}
		if strings.Contains(string(hit.Body), secret) {
			t.Error("the POST carries the secret")
		}
		for _, h := range rc.Hits() {
			if strings.Contains(string(h.Body), `"type":"SOURCE_UPDATED"`) && h.Header.Get("Idempotency-Key") != newest.ID {
				t.Errorf("a second POST of the change (Ada's own notification?): %s", h.Body)
			}
		}

		// The URL changes without the secret; an empty URL removes the channel.
		if p := update(map[string]any{"webhookUrl": rc.URL + "/bea2"}); trkStr(p, "settings.webhook.url") != rc.URL+"/bea2" {
			t.Errorf("changing the URL alone: %v", p)
		}
		if p := update(map[string]any{"webhookUrl": ""}); trkPath(p, "settings.webhook") != nil || p["settings"] == nil {
			t.Errorf("removing the channel: %v", p)
		}
	})

	t.Run("HealthIssueOpened", func(t *testing.T) {
		rc := ntfNewReceiver(t, http.StatusUnauthorized)
		dst := trkStr(tm.mutate(t, ada.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
			map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_webhook", "name": "Locked", "settings": map[string]any{"url": rc.URL + "/hook"}}),
			"destination.id")
		tm.mutate(t, ada.tok, "connectionCreate", "ConnectionCreateInput", "connection { id }", map[string]any{"sourceId": srcID, "destinationId": dst})
		trkWantOK(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "ntf-1", "event": "Signed Up"}, trkBasic(srcKey)...))

		var got []ntfNotification
		subWait(t, "Bea's HEALTH_ISSUE_OPENED", 10*time.Second, func() bool {
			got = nil
			for _, n := range tm.inbox(t, bea.tok).about("HEALTH_ISSUE_OPENED", "") {
				if strings.Contains(n.Message, "401") {
					got = append(got, n)
				}
			}
			return len(got) > 0
		})
		n := got[0]
		if len(got) != 1 || n.Area != "HEALTH" || n.ResourceType != "HealthIssue" || n.Actor != nil || !strings.HasPrefix(n.Message, "destination health issue opened: HTTP_401") {
			t.Errorf("Bea's health notifications: %+v", got)
		}
		d := tm.gql(t, ada.tok, `query($id: ID!) { node(id: $id) { ... on HealthIssue { id targetId errorType } } }`, map[string]any{"id": n.ResourceID})
		if trkStr(d, "node.targetId") != dst || trkStr(d, "node.errorType") != "HTTP_401" {
			t.Errorf("the notification's resource is not the issue: %v", d)
		}
		// What the system did is news to everyone who may see it, the owner included; not to MINIMAL members.
		if len(tm.inbox(t, ada.tok).about("HEALTH_ISSUE_OPENED", n.ResourceID)) != 1 {
			t.Error("Ada did not hear of the health issue")
		}
		if len(tm.inbox(t, cy.tok).about("HEALTH_ISSUE_OPENED", n.ResourceID)) != 0 {
			t.Error("Cy (MINIMAL) heard of a health issue")
		}
	})

	t.Run("ViewerUpdate", func(t *testing.T) {
		rename := func(name string) map[string]any {
			return tm.try(t, bea.tok, "viewerUpdate", "ViewerUpdateInput", "user { id name }", map[string]any{"name": name})
		}
		for _, bad := range []string{"", "   ", strings.Repeat("b", 101)} {
			p := rename(bad)
			if ues, _ := p["userErrors"].([]any); len(ues) != 1 || trkStr(ues[0], "field") != "name" || p["user"] != nil {
				t.Errorf("name %q: %v", bad, p)
			}
		}
		if p := rename("  Bea Renamed "); trkStr(p, "user.name") != "Bea Renamed" || trkStr(p, "user.id") != bea.id {
			t.Fatalf("viewerUpdate: %v", p)
		}
		if d := tm.gql(t, bea.tok, `{ viewer { name } }`, nil); trkStr(d, "viewer.name") != "Bea Renamed" {
			t.Errorf("viewer.name: %v", d)
		}
		if r := dlvPost(t, s, tok, `mutation { viewerUpdate(input: {name: "Token"}) { user { id } } }`, nil); r.errorCode() != "FORBIDDEN" {
			t.Errorf("a token renaming its creator: %s", r.Raw)
		}
		// Bea's next activity reaches Ada under the new name.
		tm.mutate(t, bea.tok, "accessTokenCreate", "AccessTokenCreateInput", "accessToken { id }",
			map[string]any{"workspaceId": tm.wsID, "name": "bea-ci", "role": "MEMBER"})
		got := tm.inbox(t, ada.tok).about("ACCESS_TOKEN_CREATED", "")
		if len(got) != 1 || !strings.HasPrefix(got[0].Message, "Bea Renamed ") {
			t.Errorf("Ada's ACCESS_TOKEN_CREATED: %+v", got)
		}
	})

	t.Run("PasswordChange", func(t *testing.T) {
		login := func(password string) string {
			d := tm.gql(t, "", permLogIn, permInput(map[string]any{"email": bea.email, "password": password}))
			return trkStr(d, "logIn.token")
		}
		other := login(teamPassword)
		if other == "" {
			t.Fatal("logIn failed")
		}
		ws := subDial(t, s, other)
		change := func(current, next string) map[string]any {
			return tm.try(t, bea.tok, "passwordChange", "PasswordChangeInput", "sessionsEnded",
				map[string]any{"currentPassword": current, "newPassword": next})
		}
		p := change("not her password", "a brand new password")
		if ues, _ := p["userErrors"].([]any); len(ues) != 1 || trkStr(ues[0], "field") != "currentPassword" || trkStr(ues[0], "code") != "INVALID" || trkInt(p["sessionsEnded"]) != 0 {
			t.Errorf("a wrong current password: %v", p)
		}
		p = change(teamPassword, "short")
		if ues, _ := p["userErrors"].([]any); len(ues) != 1 || trkStr(ues[0], "field") != "newPassword" || trkStr(ues[0], "code") != "TOO_SHORT" {
			t.Errorf("a short new password: %v", p)
		}
		if r := dlvPost(t, s, other, `{ viewer { id } }`, nil); r.Status != http.StatusOK {
			t.Fatalf("a refused change ended the other session: %d %s", r.Status, r.Raw)
		}

		p = change(teamPassword, "a brand new password")
		if ues, _ := p["userErrors"].([]any); len(ues) > 0 || trkInt(p["sessionsEnded"]) != 1 {
			t.Fatalf("passwordChange: %v, want 1 other session ended", p)
		}
		if r := dlvPost(t, s, other, `{ viewer { id } }`, nil); r.Status != http.StatusUnauthorized || r.errorCode() != "UNAUTHENTICATED" {
			t.Errorf("the other session still works: %d %s", r.Status, r.Raw)
		}
		if code := ws.closedWith(t, 5*time.Second); code != 4403 {
			t.Errorf("the other session's websocket closed with %d, want 4403", code)
		}
		if d := tm.gql(t, bea.tok, `{ viewer { id } }`, nil); trkStr(d, "viewer.id") != bea.id {
			t.Errorf("the session that changed the password ended: %v", d)
		}
		if login(teamPassword) != "" {
			t.Error("the old password still logs in")
		}
		if login("a brand new password") == "" {
			t.Error("the new password does not log in")
		}
	})
}

// TestNotificationsOfMembersOnlyForAdmins: MEMBERS notifications carry invitees' addresses, so
// only owners and admins (who may read invitations) get them, in the app and on their webhook
// channel; members and minimal members get neither.
func TestNotificationsOfMembersOnlyForAdmins(t *testing.T) {
	t.Parallel()
	s := startServer(t, allowLoopback, func(c *config.Config) { c.LogLevel = slog.LevelWarn })
	tm := newTeam(t, s, "ntf-members", "Ada")
	ada := tm.owner
	al := tm.add(t, "al", "Al", "ADMIN")
	bea := tm.add(t, "bea", "Bea", "MEMBER")
	cy := tm.add(t, "cy", "Cy", "MINIMAL")
	receivers := map[string]*ntfReceiver{}
	for name, u := range map[string]teamUser{"al": al, "bea": bea, "cy": cy} {
		rc := ntfNewReceiver(t, http.StatusNoContent)
		receivers[name] = rc
		tm.mutate(t, u.tok, "notificationSettingsUpdate", "NotificationSettingsUpdateInput", "settings { webhook { url } }",
			map[string]any{"webhookUrl": rc.URL, "webhookSecret": "ntf-members-webhook-secret"})
	}

	const invitee = "ntf-members-dan@example.com"
	inv := tm.mutate(t, ada.tok, "memberInvite", "MemberInviteInput", "invitation { id }",
		map[string]any{"workspaceId": tm.wsID, "email": invitee, "role": "MEMBER"})
	invID := trkStr(inv, "invitation.id")
	tm.mutate(t, ada.tok, "invitationRevoke", "InvitationInput", "invitation { id }", map[string]any{"invitationId": invID})
	tm.mutate(t, ada.tok, "memberUpdate", "MemberUpdateInput", "membership { id }", map[string]any{"membershipId": cy.membership, "role": "MEMBER"})
	tm.mutate(t, ada.tok, "workspaceUpdate", "WorkspaceUpdateInput", "workspace { id }", map[string]any{"workspaceId": tm.wsID, "name": "Renamed"})

	t.Run("AdminsHear", func(t *testing.T) {
		in := tm.inbox(t, al.tok)
		got := in.about("MEMBER_INVITED", invID)
		if len(got) != 1 || !strings.Contains(got[0].Message, invitee) || len(in.about("INVITATION_REVOKED", invID)) != 1 ||
			len(in.about("MEMBER_ROLE_CHANGED", cy.membership)) != 1 {
			t.Errorf("Al (ADMIN) notifications: %+v", in.List)
		}
		receivers["al"].waitFor(t, "MEMBER_INVITED")
	})

	t.Run("OthersDoNot", func(t *testing.T) {
		for name, u := range map[string]teamUser{"bea": bea, "cy": cy} {
			in := tm.inbox(t, u.tok)
			if n := in.inArea("MEMBERS"); n != 0 {
				t.Errorf("%s has %d notifications of members: %+v", name, n, in.List)
			}
			if len(in.about("WORKSPACE_UPDATED", tm.wsID)) != 1 {
				t.Errorf("%s did not hear of the rename: the test proves nothing: %+v", name, in.List)
			}
		}
	})

	t.Run("NotOnTheirWebhooks", func(t *testing.T) {
		for _, name := range []string{"bea", "cy"} {
			receivers[name].waitFor(t, "WORKSPACE_UPDATED")
		}
		_ = s.stop(t) // every webhook POST under way is finished
		for _, name := range []string{"bea", "cy"} {
			for _, h := range receivers[name].Hits() {
				if strings.Contains(string(h.Body), invitee) || strings.Contains(string(h.Body), `"area":"MEMBERS"`) {
					t.Errorf("%s's webhook got %s", name, h.Body)
				}
			}
		}
	})
}
