package app_test

// End-to-end tests of accounts, workspaces, members, access tokens and the audit trail, over the
// real HTTP API and websockets. Helpers here are prefixed with "ac" so that they do not collide
// with those of other test files of the package.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
)

// acPassword is every test user's password.
const acPassword = "correct horse battery staple"

// acNeverSuffix makes well-formed ids of objects that never existed.
const acNeverSuffix = "_01jdxk6v2d8q9w3m4n5p6r7s8t"

// acUser is a signed-up user and the session token signUp returned.
type acUser struct{ ID, Email, Token string }

// acFastLogin keeps the log-in slow-down short, for tests that fail a log-in or two.
func acFastLogin(c *config.Config) { c.LoginDelay = time.Millisecond }

// acPost sends query with tok as bearer ("" for anonymous).
func acPost(t testing.TB, s *server, tok, query string, vars map[string]any) gqlResponse {
	t.Helper()
	if tok == "" {
		return s.post(t, query, vars)
	}
	return s.post(t, query, vars, "Authorization", "Bearer "+tok)
}

// acAt walks a decoded JSON value along a dot-separated path of keys and list indexes.
func acAt(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscanf(k, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func acStr(v any, path string) string { s, _ := acAt(v, path).(string); return s }

func acList(v any, path string) []any { l, _ := acAt(v, path).([]any); return l }

func acJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// acData fails the test unless r is a 200 without errors, and returns its data.
func acData(t testing.TB, r gqlResponse) map[string]any {
	t.Helper()
	if r.Status != 200 || len(r.Errors) > 0 {
		t.Fatalf("want data without errors, got %d %s", r.Status, r.Raw)
	}
	return r.Data
}

// acPayload returns the payload of mutation field, failing on errors and on userErrors.
func acPayload(t testing.TB, r gqlResponse, field string) map[string]any {
	t.Helper()
	p, _ := acData(t, r)[field].(map[string]any)
	if ue := acList(p, "userErrors"); len(ue) > 0 {
		t.Fatalf("%s: unexpected userErrors %s", field, acJSON(ue))
	}
	return p
}

// acUserError is a UserError as a client sees it; Field is "" for null.
type acUserError struct{ Field, Message, Code string }

// acUserErrors returns the userErrors of mutation field, failing on GraphQL errors.
func acUserErrors(t testing.TB, r gqlResponse, field string) []acUserError {
	t.Helper()
	var out []acUserError
	for _, e := range acList(acData(t, r), field+".userErrors") {
		out = append(out, acUserError{Field: acStr(e, "field"), Message: acStr(e, "message"), Code: acStr(e, "code")})
	}
	return out
}

// acWantUserError checks that mutation field answered exactly one userError, with the given field
// and code, and returns it.
func acWantUserError(t testing.TB, r gqlResponse, mutation, field, code string) acUserError {
	t.Helper()
	errs := acUserErrors(t, r, mutation)
	if len(errs) != 1 || errs[0].Field != field || errs[0].Code != code || errs[0].Message == "" {
		t.Fatalf("%s: want one userError {field %q, code %s}, got %+v", mutation, field, code, errs)
	}
	return errs[0]
}

// acWantError checks that r failed with extensions.code code, and returns the message.
func acWantError(t testing.TB, r gqlResponse, code string) string {
	t.Helper()
	if got := r.errorCode(); got != code {
		t.Fatalf("want error %s, got %d %s", code, r.Status, r.Raw)
	}
	return r.errorMessage()
}

// acWant401 checks that a request with a dead credential is refused as a whole.
func acWant401(t testing.TB, s *server, tok string) {
	t.Helper()
	r := acPost(t, s, tok, `{ viewer { id } }`, nil)
	if r.Status != 401 || r.errorCode() != "UNAUTHENTICATED" || r.Data != nil {
		t.Fatalf("want 401 UNAUTHENTICATED, got %d %s", r.Status, r.Raw)
	}
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

const acSignUpMutation = `mutation($i: SignUpInput!) { signUp(input: $i) {
	token user { id email name createdAt } userErrors { field message code } } }`

func acSignUp(t testing.TB, s *server, email, name string) acUser {
	t.Helper()
	r := s.post(t, acSignUpMutation, map[string]any{"i": map[string]any{"email": email, "password": acPassword, "name": name}})
	p := acPayload(t, r, "signUp")
	u := acUser{ID: acStr(p, "user.id"), Email: acStr(p, "user.email"), Token: acStr(p, "token")}
	if u.ID == "" || u.Token == "" {
		t.Fatalf("signUp %s: %s", email, r.Raw)
	}
	return u
}

const acWorkspaceFields = `id name slug createdAt updatedAt viewerRole viewerCanUpdate viewerCanDelete
	viewerCanManageMembers viewerCanChangePlan plan { plan features apiCallsPerMonth mtusPerMonth }`

func acCreateWorkspace(t testing.TB, s *server, tok, name, slug string) string {
	t.Helper()
	r := acPost(t, s, tok, `mutation($i: WorkspaceCreateInput!) { workspaceCreate(input: $i) { workspace { id } userErrors { field message code } } }`,
		map[string]any{"i": map[string]any{"name": name, "slug": slug}})
	id := acStr(acPayload(t, r, "workspaceCreate"), "workspace.id")
	if id == "" {
		t.Fatalf("workspaceCreate: %s", r.Raw)
	}
	return id
}

const acInviteMutation = `mutation($i: MemberInviteInput!) { memberInvite(input: $i) {
	invitation { id email role status workspaceName invitedBy { id } viewerCanAccept viewerCanRevoke }
	token acceptUrl emailSent userErrors { field message code } } }`

// acInvitation is a new invitation: its id, and its token (the secret that accepts it).
type acInvitation struct{ ID, Token string }

func acInvite(t testing.TB, s *server, tok, wsID, email, role string) acInvitation {
	t.Helper()
	r := acPost(t, s, tok, acInviteMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "email": email, "role": role}})
	p := acPayload(t, r, "memberInvite")
	inv := acInvitation{ID: acStr(p, "invitation.id"), Token: acStr(p, "token")}
	if inv.ID == "" || !strings.HasPrefix(inv.Token, "jci_") {
		t.Fatalf("memberInvite: %s", r.Raw)
	}
	return inv
}

// acAcceptMutation accepts the invitation of $i (token or invitationId).
const acAcceptMutation = `mutation($i: InvitationAcceptInput!) { invitationAccept(input: $i) {
	membership { id role user { id } } workspace { id slug viewerRole } userErrors { field message code } } }`

// acAcceptToken and acAcceptID are acAcceptMutation's variables for a token or an id.
func acAcceptToken(token string) map[string]any {
	return map[string]any{"i": map[string]any{"token": token}}
}
func acAcceptID(id string) map[string]any {
	return map[string]any{"i": map[string]any{"invitationId": id}}
}

// acAccept accepts inv with its token as the holder of tok, and returns the membership id.
func acAccept(t testing.TB, s *server, tok string, inv acInvitation) string {
	t.Helper()
	r := acPost(t, s, tok, acAcceptMutation, acAcceptToken(inv.Token))
	id := acStr(acPayload(t, r, "invitationAccept"), "membership.id")
	if id == "" {
		t.Fatalf("invitationAccept: %s", r.Raw)
	}
	return id
}

// acJoin invites u to the workspace with role and has them accept; it returns the membership id.
func acJoin(t testing.TB, s *server, ownerTok, wsID string, u acUser, role string) string {
	t.Helper()
	return acAccept(t, s, u.Token, acInvite(t, s, ownerTok, wsID, u.Email, role))
}

const acMemberUpdateMutation = `mutation($id: ID!, $role: Role!) { memberUpdate(input: {membershipId: $id, role: $role}) {
	membership { id role } userErrors { field message code } } }`

const acMemberRemoveMutation = `mutation($id: ID!) { memberRemove(input: {membershipId: $id}) {
	removedMembershipId userErrors { field message code } } }`

func acSetRole(t testing.TB, s *server, tok, membershipID, role string) {
	t.Helper()
	r := acPost(t, s, tok, acMemberUpdateMutation, map[string]any{"id": membershipID, "role": role})
	if got := acStr(acPayload(t, r, "memberUpdate"), "membership.role"); got != role {
		t.Fatalf("memberUpdate to %s: %s", role, r.Raw)
	}
}

const acTokenCreateMutation = `mutation($i: AccessTokenCreateInput!) { accessTokenCreate(input: $i) {
	secret accessToken { id name role createdAt lastUsedAt expiresAt revokedAt createdBy { id } viewerCanRevoke }
	userErrors { field message code } } }`

func acCreateToken(t testing.TB, s *server, tok, wsID, name, role string) (id, secret string) {
	t.Helper()
	r := acPost(t, s, tok, acTokenCreateMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": name, "role": role}})
	p := acPayload(t, r, "accessTokenCreate")
	id, secret = acStr(p, "accessToken.id"), acStr(p, "secret")
	if id == "" || secret == "" {
		t.Fatalf("accessTokenCreate: %s", r.Raw)
	}
	return id, secret
}

const acTokenRevokeMutation = `mutation($id: ID!) { accessTokenRevoke(input: {accessTokenId: $id}) {
	accessToken { id revokedAt } userErrors { field message code } } }`

const acEventsQuery = `query($slug: String!, $first: Int, $after: String, $f: AuditEventFilter) {
	workspace(slug: $slug) { auditEvents(first: $first, after: $after, filter: $f) {
		totalCount pageInfo { hasNextPage endCursor }
		nodes { id type actorType user { id } accessToken { id } resourceType resourceId changes createdAt } } } }`

// acEvents returns the audit trail of a workspace, newest first (up to 100 events).
func acEvents(t testing.TB, s *server, tok, slug string, filter map[string]any) []any {
	t.Helper()
	vars := map[string]any{"slug": slug, "first": 100}
	if filter != nil {
		vars["f"] = filter
	}
	return acList(acData(t, acPost(t, s, tok, acEventsQuery, vars)), "workspace.auditEvents.nodes")
}

// acLatest returns the newest event of a type.
func acLatest(t testing.TB, s *server, tok, slug, typ string) any {
	t.Helper()
	events := acEvents(t, s, tok, slug, map[string]any{"types": []string{typ}})
	if len(events) == 0 {
		t.Fatalf("no %s event", typ)
	}
	return events[0]
}

// acWantChanges compares an event's changes with want, given as JSON.
func acWantChanges(t testing.TB, event any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if got := acAt(event, "changes"); !reflect.DeepEqual(got, w) {
		t.Errorf("%s changes = %s, want %s", acStr(event, "type"), acJSON(got), want)
	}
}

// acSubscribe opens a websocket authenticated with bearer in its connection_init payload, runs
// `subscription { serverTime }` and waits for its first event.
func acSubscribe(t *testing.T, s *server, bearer string) *websocket.Conn {
	t.Helper()
	c := dialWS(t, s, nil)
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + bearer}}); err != nil {
		t.Fatal(err)
	}
	var m struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := c.ReadJSON(&m); err != nil || m.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v %v", m, err)
	}
	if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "subscription { serverTime }"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadJSON(&m); err != nil || m.Type != "next" || !strings.Contains(string(m.Payload), "serverTime") {
		t.Fatalf("first serverTime: %+v %v", m, err)
	}
	return c
}

// acWantClosed reads from c until the server closes it, and checks the close code. The deadline
// is short: a revoked credential's websocket must end at once, not at the next event.
func acWantClosed(t testing.TB, c *websocket.Conn, code int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // serverTime events sent before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("websocket not closed with a close frame: %v", err)
		}
		if ce.Code != code {
			t.Fatalf("close code %d %q, want %d", ce.Code, ce.Text, code)
		}
		return
	}
}

// acRows returns every value of every row of a table, as text, for checks that no secret is stored.
func acRows(t testing.TB, s *server, table string) string {
	t.Helper()
	rows, err := s.App.DB().Reader().QueryContext(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			fmt.Fprintf(&b, "%v\t", v)
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// acExec runs a statement on the server's database, for test set-up that the API cannot do.
func acExec(t testing.TB, s *server, query string, args ...any) {
	t.Helper()
	if err := s.App.DB().Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// acConcurrently sends n requests at once and returns their answers.
func acConcurrently(n int, send func() gqlResponse) []gqlResponse {
	out := make([]gqlResponse, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func acSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAccountsSignUp covers signUp: its validation rules, the session it returns, and how the
// password and the session are stored.
func TestAccountsSignUp(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	signUp := func(t *testing.T, email, password, name string) gqlResponse {
		t.Helper()
		return s.post(t, acSignUpMutation, map[string]any{"i": map[string]any{"email": email, "password": password, "name": name}})
	}

	var alice acUser
	t.Run("OK", func(t *testing.T) {
		p := acPayload(t, signUp(t, "  Alice@Example.COM ", acPassword, "  Alice  "), "signUp")
		alice = acUser{ID: acStr(p, "user.id"), Email: acStr(p, "user.email"), Token: acStr(p, "token")}
		if !strings.HasPrefix(alice.Token, "jcs_") || !strings.HasPrefix(alice.ID, "usr_") {
			t.Errorf("token %q, user id %q", alice.Token, alice.ID)
		}
		if got, want := alice.Email, "alice@example.com"; got != want {
			t.Errorf("email stored as %q, want %q (trimmed, lower-case)", got, want)
		}
		if got, want := acStr(p, "user.name"), "Alice"; got != want {
			t.Errorf("name %q, want %q", got, want)
		}
		if ts, err := time.Parse(time.RFC3339Nano, acStr(p, "user.createdAt")); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("createdAt %q: %v", acStr(p, "user.createdAt"), err)
		}
	})
	if alice.Token == "" {
		t.FailNow()
	}

	t.Run("TokenWorks", func(t *testing.T) {
		d := acData(t, acPost(t, s, alice.Token, `{ viewer { id email name } }`, nil))
		if acStr(d, "viewer.id") != alice.ID || acStr(d, "viewer.email") != alice.Email || acStr(d, "viewer.name") != "Alice" {
			t.Errorf("viewer = %s", acJSON(d["viewer"]))
		}
	})

	t.Run("AnonymousViewerIsNull", func(t *testing.T) {
		d := acData(t, s.post(t, `{ viewer { id } }`, nil))
		if d["viewer"] != nil {
			t.Errorf("anonymous viewer = %s", acJSON(d["viewer"]))
		}
	})

	for _, c := range []struct {
		name, email, password, userName string
		field, code                     string
	}{
		{"EmailRequired", "", acPassword, "X", "email", "REQUIRED"},
		{"EmailRequired/Blank", "   ", acPassword, "X", "email", "REQUIRED"},
		{"EmailInvalid/NoAt", "not-an-email", acPassword, "X", "email", "INVALID"},
		{"EmailInvalid/NoDotInDomain", "ada@localhost", acPassword, "X", "email", "INVALID"},
		{"EmailInvalid/DisplayName", "Ada <ada@example.com>", acPassword, "X", "email", "INVALID"},
		{"EmailInvalid/TwoAts", "ada@@example.com", acPassword, "X", "email", "INVALID"},
		{"EmailTooLong", strings.Repeat("a", 250) + "@example.com", acPassword, "X", "email", "TOO_LONG"},
		{"PasswordRequired", "p0@example.com", "", "X", "password", "REQUIRED"},
		{"PasswordTooShort", "p1@example.com", "123456789", "X", "password", "TOO_SHORT"},
		{"PasswordTooShort/CountsCharacters", "p2@example.com", "ééééé", "X", "password", "TOO_SHORT"}, // 10 bytes, 5 characters
		{"PasswordTooLong", "p3@example.com", strings.Repeat("x", 201), "X", "password", "TOO_LONG"},
		{"NameRequired", "n1@example.com", acPassword, "", "name", "REQUIRED"},
		{"NameRequired/Blank", "n2@example.com", acPassword, " \t ", "name", "REQUIRED"},
		{"NameTooLong", "n3@example.com", acPassword, strings.Repeat("é", 101), "name", "TOO_LONG"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := signUp(t, c.email, c.password, c.userName)
			e := acWantUserError(t, r, "signUp", c.field, c.code)
			if !strings.Contains(e.Message, c.field) {
				t.Errorf("message %q does not name the field %s", e.Message, c.field)
			}
			if p := r.Data["signUp"]; acAt(p, "token") != nil || acAt(p, "user") != nil {
				t.Errorf("token or user returned with a userError: %s", r.Raw)
			}
		})
	}

	t.Run("EveryRuleAtOnce", func(t *testing.T) {
		errs := acUserErrors(t, signUp(t, "nope", "short", ""), "signUp")
		var got []string
		for _, e := range errs {
			got = append(got, e.Field+":"+e.Code)
		}
		if want := []string{"email:INVALID", "password:TOO_SHORT", "name:REQUIRED"}; !slices.Equal(got, want) {
			t.Errorf("userErrors %v, want %v", got, want)
		}
	})

	t.Run("NothingStoredOnError", func(t *testing.T) {
		var users, sessions int
		_ = s.App.DB().Get(context.Background(), &users, `SELECT COUNT(*) FROM users`)
		_ = s.App.DB().Get(context.Background(), &sessions, `SELECT COUNT(*) FROM sessions`)
		if users != 1 || sessions != 1 {
			t.Errorf("%d users and %d sessions after one successful signUp", users, sessions)
		}
	})

	t.Run("Boundaries", func(t *testing.T) {
		acPayload(t, signUp(t, "ten@example.com", "0123456789", strings.Repeat("é", 100)), "signUp")
		acPayload(t, signUp(t, "twohundred@example.com", strings.Repeat("é", 200), "Z"), "signUp")
	})

	t.Run("PasswordStoredHashed", func(t *testing.T) {
		var hash string
		if err := s.App.DB().Get(context.Background(), &hash, `SELECT password_hash FROM users WHERE id = ?`, alice.ID); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$") {
			t.Errorf("password_hash %q is not an argon2id PHC string", hash)
		}
		if users := acRows(t, s, "users"); strings.Contains(users, acPassword) {
			t.Error("the users table contains the plaintext password")
		}
	})

	t.Run("SessionStoredAsHash", func(t *testing.T) {
		var hash string
		if err := s.App.DB().Get(context.Background(), &hash, `SELECT token_hash FROM sessions WHERE user_id = ?`, alice.ID); err != nil {
			t.Fatal(err)
		}
		if hash != acSHA256(alice.Token) {
			t.Errorf("token_hash %q is not the SHA-256 of the token", hash)
		}
		body := strings.TrimPrefix(alice.Token, "jcs_")
		if rows := acRows(t, s, "sessions"); strings.Contains(rows, body) {
			t.Error("the sessions table contains the session secret")
		}
	})

	t.Run("NoSecretStored", func(t *testing.T) {
		body := strings.TrimPrefix(alice.Token, "jcs_")
		b := string(storedBytes(t, s))
		if !strings.Contains(b, alice.Email) {
			t.Fatalf("the database (%d bytes) does not hold alice's email: not the right bytes?", len(b))
		}
		if strings.Contains(b, acPassword) || strings.Contains(b, body) {
			t.Error("the database contains the password or the session secret")
		}
	})
}

const acLogInMutation = `mutation($i: LogInInput!) { logIn(input: $i) { token user { id } userErrors { field message code } } }`

func acLogIn(t testing.TB, s *server, email, password string) gqlResponse {
	t.Helper()
	return s.post(t, acLogInMutation, map[string]any{"i": map[string]any{"email": email, "password": password}})
}

// acLogInOK logs in and returns the new session token.
func acLogInOK(t testing.TB, s *server, email string) string {
	t.Helper()
	r := acLogIn(t, s, email, acPassword)
	tok := acStr(acPayload(t, r, "logIn"), "token")
	if tok == "" {
		t.Fatalf("logIn: %s", r.Raw)
	}
	return tok
}

// TestAccountsLogIn covers logIn, logOut and bad credentials.
func TestAccountsLogIn(t *testing.T) {
	t.Parallel()
	s := startServer(t, acFastLogin)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	const logOut = `mutation($all: Boolean) { logOut(input: {allSessions: $all}) { sessionsEnded userErrors { field message code } } }`

	t.Run("WrongPasswordAndUnknownEmailAlike", func(t *testing.T) {
		wrong := acLogIn(t, s, alice.Email, "not the password")
		unknown := acLogIn(t, s, "nobody@example.com", acPassword)
		e := acWantUserError(t, wrong, "logIn", "", "INVALID")
		acWantUserError(t, unknown, "logIn", "", "INVALID")
		if a, b := acJSON(wrong.Data), acJSON(unknown.Data); a != b {
			t.Errorf("answers differ:\nwrong password: %s\nunknown email:  %s", a, b)
		}
		if acAt(wrong.Data, "logIn.token") != nil || acAt(wrong.Data, "logIn.user") != nil {
			t.Errorf("failed logIn returned a token or user: %s", wrong.Raw)
		}
		if strings.Contains(strings.ToLower(e.Message), "unknown") || strings.Contains(e.Message, "alice") {
			t.Errorf("message %q hints at whether the account exists", e.Message)
		}
	})

	t.Run("RequiredFields", func(t *testing.T) {
		acWantUserError(t, acLogIn(t, s, "", acPassword), "logIn", "email", "REQUIRED")
		acWantUserError(t, acLogIn(t, s, alice.Email, ""), "logIn", "password", "REQUIRED")
	})

	var second string
	t.Run("OK", func(t *testing.T) {
		r := acLogIn(t, s, "  ALICE@Example.com ", acPassword)
		p := acPayload(t, r, "logIn")
		second = acStr(p, "token")
		if !strings.HasPrefix(second, "jcs_") || second == alice.Token || acStr(p, "user.id") != alice.ID {
			t.Fatalf("logIn: %s", r.Raw)
		}
		if got := acStr(acData(t, acPost(t, s, second, `{ viewer { id } }`, nil)), "viewer.id"); got != alice.ID {
			t.Errorf("new token's viewer = %q", got)
		}
	})

	t.Run("LogOutEndsThatSession", func(t *testing.T) {
		p := acPayload(t, acPost(t, s, second, logOut, nil), "logOut")
		if n := acAt(p, "sessionsEnded"); n != 1.0 {
			t.Errorf("sessionsEnded = %v, want 1", n)
		}
		acWant401(t, s, second)
		acData(t, acPost(t, s, alice.Token, `{ viewer { id } }`, nil)) // the other session lives on
	})

	t.Run("LogOutClosesWebsocket", func(t *testing.T) {
		tok := acLogInOK(t, s, alice.Email)
		c := acSubscribe(t, s, tok)
		acPayload(t, acPost(t, s, tok, logOut, nil), "logOut")
		acWantClosed(t, c, 4403)
	})

	t.Run("LogOutNeedsACredential", func(t *testing.T) {
		acWantError(t, s.post(t, logOut, nil), "UNAUTHENTICATED")
	})

	t.Run("BadBearerIs401", func(t *testing.T) {
		for _, h := range []string{
			"Bearer garbage",
			"Bearer jcs_" + strings.Repeat("A", 43),
			"Bearer jct_" + strings.Repeat("A", 43),
			"Bearer " + strings.TrimPrefix(alice.Token, "jcs_"), // the secret without its kind
			"Bearer",
			"Basic YWxpY2U6cGFzc3dvcmQ=",
			alice.Token, // no scheme
		} {
			r := s.post(t, `{ viewer { id } }`, nil, "Authorization", h)
			if r.Status != 401 || r.errorCode() != "UNAUTHENTICATED" || r.Data != nil {
				t.Errorf("Authorization %q: %d %s, want 401 UNAUTHENTICATED", h, r.Status, r.Raw)
			}
		}
	})

	t.Run("LogOutAllSessions", func(t *testing.T) {
		third, fourth := acLogInOK(t, s, alice.Email), acLogInOK(t, s, alice.Email)
		p := acPayload(t, acPost(t, s, third, logOut, map[string]any{"all": true}), "logOut")
		// alice.Token, the one of LogOutClosesWebsocket is gone already, third and fourth.
		if n := acAt(p, "sessionsEnded"); n != 3.0 {
			t.Errorf("sessionsEnded = %v, want 3", n)
		}
		for _, tok := range []string{alice.Token, third, fourth} {
			acWant401(t, s, tok)
		}
		acLogInOK(t, s, alice.Email) // logging in again works
	})
}

// TestAccountsThrottling covers the slow-down and lock-out of failed log-ins, per email and per
// client address, and that it does not tell whether an email has an account. Every request comes
// from 127.0.0.1, so the address counter grows with every failure: where a step checks the email
// counter alone, it first clears the address counter in the database.
func TestAccountsThrottling(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *config.Config) {
		c.LoginDelay = time.Millisecond
		c.LoginMaxFailures = 5
		c.LoginLockout = time.Minute
	})
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	carol := acSignUp(t, s, "carol@example.com", "Carol")
	clearAddress := func(t *testing.T) { acExec(t, s, `DELETE FROM login_throttle WHERE key LIKE 'ip:%'`) }
	answer := func(r gqlResponse) string { return acJSON(r.Data) }

	var wrongAnswers []string
	var locked string
	t.Run("EmailLockedEvenWithRightPassword", func(t *testing.T) {
		// Spellings of one address count together.
		for i, email := range []string{alice.Email, "ALICE@example.com", " Alice@Example.COM ", alice.Email, "alice@EXAMPLE.com"} {
			r := acLogIn(t, s, email, "not the password")
			if e := acWantUserError(t, r, "logIn", "", "INVALID"); i > 0 && acJSON(r.Data) != wrongAnswers[0] {
				t.Errorf("failure %d answered %+v", i+1, e)
			}
			wrongAnswers = append(wrongAnswers, answer(r))
		}
		r := acLogIn(t, s, alice.Email, acPassword)
		e := acWantUserError(t, r, "logIn", "", "THROTTLED")
		if acAt(r.Data, "logIn.token") != nil {
			t.Fatalf("token issued while locked: %s", r.Raw)
		}
		if !strings.Contains(e.Message, "a minute") {
			t.Errorf("message %q does not say how long to wait", e.Message)
		}
		locked = answer(r)
	})

	var lockedByEmail string
	t.Run("LockIsPerEmail", func(t *testing.T) {
		clearAddress(t)
		r := acLogIn(t, s, alice.Email, acPassword)
		acWantUserError(t, r, "logIn", "", "THROTTLED") // the email's own lock
		lockedByEmail = answer(r)
		acLogInOK(t, s, bob.Email) // another email of the same address is not locked by it
	})

	t.Run("UnknownEmailLockedAlike", func(t *testing.T) {
		clearAddress(t)
		for i := 0; i < 5; i++ {
			r := acLogIn(t, s, "ghost@example.com", "not the password")
			if got := answer(r); got != wrongAnswers[i] {
				t.Errorf("failure %d: unknown email answered %s, existing one %s", i+1, got, wrongAnswers[i])
			}
		}
		if got := answer(acLogIn(t, s, "ghost@example.com", acPassword)); got != locked {
			t.Errorf("locked unknown email answered %s, locked existing one %s", got, locked)
		}
		clearAddress(t)
		if got := answer(acLogIn(t, s, "ghost@example.com", acPassword)); got != lockedByEmail {
			t.Errorf("unknown email locked by its own count answered %s, existing one %s", got, lockedByEmail)
		}
	})

	t.Run("AddressLockedAcrossEmails", func(t *testing.T) {
		clearAddress(t)
		for i := 0; i < 5; i++ {
			// One failure for each email: no email comes near its own limit.
			acWantUserError(t, acLogIn(t, s, fmt.Sprintf("spray%d@example.com", i), "not the password"), "logIn", "", "INVALID")
		}
		r := acLogIn(t, s, carol.Email, acPassword)
		acWantUserError(t, r, "logIn", "", "THROTTLED")
		if got := answer(r); got != locked {
			t.Errorf("address lock answered %s, email lock %s", got, locked)
		}
		if got := answer(acLogIn(t, s, "nobody@example.com", acPassword)); got != locked {
			t.Errorf("address lock for an unknown email answered %s", got)
		}
	})

	t.Run("SuccessResetsEmailCount", func(t *testing.T) {
		clearAddress(t)
		for i := 0; i < 4; i++ {
			acLogIn(t, s, bob.Email, "not the password")
		}
		acLogInOK(t, s, bob.Email)
		clearAddress(t)
		for i := 0; i < 4; i++ {
			acWantUserError(t, acLogIn(t, s, bob.Email, "not the password"), "logIn", "", "INVALID")
		}
		acLogInOK(t, s, bob.Email) // 8 failures in all, never 5 in a row
	})
}

// TestAccountsWorkspaces covers creating, fetching, renaming, re-planning and deleting workspaces.
func TestAccountsWorkspaces(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	const create = `mutation($i: WorkspaceCreateInput!) { workspaceCreate(input: $i) { workspace { ` + acWorkspaceFields + ` } userErrors { field message code } } }`
	const update = `mutation($i: WorkspaceUpdateInput!) { workspaceUpdate(input: $i) { workspace { ` + acWorkspaceFields + ` } userErrors { field message code } } }`
	const plan = `mutation($id: ID!, $plan: Plan!) { workspacePlanUpdate(input: {workspaceId: $id, plan: $plan}) { workspace { ` + acWorkspaceFields + ` } userErrors { field message code } } }`
	const del = `mutation($id: ID!, $confirm: String!) { workspaceDelete(input: {workspaceId: $id, confirmSlug: $confirm}) { deletedWorkspaceId userErrors { field message code } } }`
	const bySlug = `query($slug: String!) { workspace(slug: $slug) { ` + acWorkspaceFields + ` } }`
	const byID = `query($id: ID!) { node(id: $id) { id ... on Workspace { slug name } } }`

	var wsID string
	t.Run("Create", func(t *testing.T) {
		r := acPost(t, s, alice.Token, create, map[string]any{"i": map[string]any{"name": " Acme ", "slug": "acme"}})
		w := acAt(acPayload(t, r, "workspaceCreate"), "workspace")
		wsID = acStr(w, "id")
		want := map[string]any{"name": "Acme", "slug": "acme", "viewerRole": "OWNER", "viewerCanUpdate": true, "viewerCanDelete": true,
			"viewerCanManageMembers": true, "viewerCanChangePlan": true}
		for k, v := range want {
			if got := acAt(w, k); got != v {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
		if !strings.HasPrefix(wsID, "ws_") {
			t.Errorf("id %q", wsID)
		}
		if got, want := acJSON(acAt(w, "plan")), `{"apiCallsPerMonth":250000,"features":[],"mtusPerMonth":1000,"plan":"FREE"}`; got != want {
			t.Errorf("plan = %s, want %s", got, want)
		}
	})
	if wsID == "" {
		t.FailNow()
	}

	for _, c := range []struct{ name, slug, code string }{
		{"Taken", "acme", "TAKEN"},
		{"Required", "", "REQUIRED"},
		{"TooShort", "ab", "TOO_SHORT"},
		{"TooLong", strings.Repeat("a", 41), "TOO_LONG"},
		{"UpperCase", "Acme2", "INVALID"},
		{"StartsWithDigit", "1acme", "INVALID"},
		{"StartsWithDash", "-acme", "INVALID"},
		{"EndsWithDash", "acme-", "INVALID"},
		{"DoubleDash", "ac--me", "INVALID"},
		{"Underscore", "ac_me", "INVALID"},
		{"Space", "ac me", "INVALID"},
		{"NonASCII", "acmé", "INVALID"},
	} {
		t.Run("SlugRules/"+c.name, func(t *testing.T) {
			r := acPost(t, s, alice.Token, create, map[string]any{"i": map[string]any{"name": "X", "slug": c.slug}})
			acWantUserError(t, r, "workspaceCreate", "slug", c.code)
			if acAt(r.Data, "workspaceCreate.workspace") != nil {
				t.Errorf("workspace returned with a userError: %s", r.Raw)
			}
		})
	}

	t.Run("SlugRules/Boundaries", func(t *testing.T) {
		acCreateWorkspace(t, s, alice.Token, "Three", "abc")
		acCreateWorkspace(t, s, alice.Token, "Forty", "a"+strings.Repeat("0", 38)+"z")
		acCreateWorkspace(t, s, alice.Token, "Dashes", "a-b-c")
	})

	t.Run("NameRules", func(t *testing.T) {
		for _, c := range []struct{ name, code string }{{"", "REQUIRED"}, {"   ", "REQUIRED"}, {strings.Repeat("n", 101), "TOO_LONG"}} {
			r := acPost(t, s, alice.Token, create, map[string]any{"i": map[string]any{"name": c.name, "slug": "named"}})
			acWantUserError(t, r, "workspaceCreate", "name", c.code)
		}
	})

	t.Run("CreateNeedsACredential", func(t *testing.T) {
		acWantError(t, s.post(t, create, map[string]any{"i": map[string]any{"name": "X", "slug": "anon"}}), "UNAUTHENTICATED")
	})

	t.Run("FetchBySlugAndNode", func(t *testing.T) {
		if got := acStr(acData(t, acPost(t, s, alice.Token, bySlug, map[string]any{"slug": "acme"})), "workspace.id"); got != wsID {
			t.Errorf("workspace(slug) id = %q, want %q", got, wsID)
		}
		d := acData(t, acPost(t, s, alice.Token, byID, map[string]any{"id": wsID}))
		if acStr(d, "node.id") != wsID || acStr(d, "node.slug") != "acme" {
			t.Errorf("node(id) = %s", acJSON(d["node"]))
		}
		d = acData(t, acPost(t, s, alice.Token, `{ viewer { workspaces { totalCount nodes { slug } } } }`, nil))
		if acAt(d, "viewer.workspaces.totalCount") != 4.0 {
			t.Errorf("viewer.workspaces = %s", acJSON(acAt(d, "viewer.workspaces")))
		}
		// Not visible to someone else.
		if d := acData(t, acPost(t, s, bob.Token, byID, map[string]any{"id": wsID})); d["node"] != nil {
			t.Errorf("bob sees alice's workspace by id: %s", acJSON(d))
		}
		if d := acData(t, acPost(t, s, bob.Token, bySlug, map[string]any{"slug": "acme"})); d["workspace"] != nil {
			t.Errorf("bob sees alice's workspace by slug: %s", acJSON(d))
		}
	})

	t.Run("Update", func(t *testing.T) {
		r := acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "Acme Inc", "slug": "acme-inc"}})
		w := acAt(acPayload(t, r, "workspaceUpdate"), "workspace")
		if acStr(w, "name") != "Acme Inc" || acStr(w, "slug") != "acme-inc" || acStr(w, "updatedAt") == acStr(w, "createdAt") {
			t.Errorf("workspace after update: %s", acJSON(w))
		}
		if d := acData(t, acPost(t, s, alice.Token, bySlug, map[string]any{"slug": "acme"})); d["workspace"] != nil {
			t.Error("the old slug still finds the workspace")
		}
		if got := acStr(acData(t, acPost(t, s, alice.Token, bySlug, map[string]any{"slug": "acme-inc"})), "workspace.id"); got != wsID {
			t.Errorf("new slug finds %q", got)
		}
		e := acLatest(t, s, alice.Token, "acme-inc", "WORKSPACE_UPDATED")
		if acStr(e, "resourceId") != wsID || acStr(e, "resourceType") != "Workspace" || acStr(e, "actorType") != "USER" || acStr(e, "user.id") != alice.ID {
			t.Errorf("event %s", acJSON(e))
		}
		acWantChanges(t, e, `{"name": {"from": "Acme", "to": "Acme Inc"}, "slug": {"from": "acme", "to": "acme-inc"}}`)
	})

	t.Run("UpdateOneField", func(t *testing.T) {
		r := acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "Acme Incorporated"}})
		if got := acStr(acPayload(t, r, "workspaceUpdate"), "workspace.slug"); got != "acme-inc" {
			t.Errorf("slug changed to %q by a rename", got)
		}
		acWantChanges(t, acLatest(t, s, alice.Token, "acme-inc", "WORKSPACE_UPDATED"), `{"name": {"from": "Acme Inc", "to": "Acme Incorporated"}}`)
	})

	t.Run("UpdateUnchangedRecordsNothing", func(t *testing.T) {
		before := len(acEvents(t, s, alice.Token, "acme-inc", nil))
		acPayload(t, acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "slug": "acme-inc"}}), "workspaceUpdate")
		if after := len(acEvents(t, s, alice.Token, "acme-inc", nil)); after != before {
			t.Errorf("an update that changes nothing recorded %d events", after-before)
		}
	})

	t.Run("UpdateSlugTaken", func(t *testing.T) {
		r := acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "slug": "abc"}})
		acWantUserError(t, r, "workspaceUpdate", "slug", "TAKEN")
	})

	t.Run("UpdateSlugInvalid", func(t *testing.T) {
		for _, c := range []struct{ slug, code string }{{"Bad Slug", "INVALID"}, {"x", "TOO_SHORT"}, {strings.Repeat("x", 41), "TOO_LONG"}} {
			r := acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "slug": c.slug}})
			acWantUserError(t, r, "workspaceUpdate", "slug", c.code)
		}
		r := acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": ""}})
		acWantUserError(t, r, "workspaceUpdate", "name", "REQUIRED")
	})

	t.Run("AdminMayUpdateButNotChangePlanOrDelete", func(t *testing.T) {
		acJoin(t, s, alice.Token, wsID, bob, "ADMIN")
		w := acAt(acData(t, acPost(t, s, bob.Token, bySlug, map[string]any{"slug": "acme-inc"})), "workspace")
		if acAt(w, "viewerRole") != "ADMIN" || acAt(w, "viewerCanUpdate") != true || acAt(w, "viewerCanDelete") != false ||
			acAt(w, "viewerCanManageMembers") != false || acAt(w, "viewerCanChangePlan") != false {
			t.Errorf("admin's view: %s", acJSON(w))
		}
		acPayload(t, acPost(t, s, bob.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "Acme by Bob"}}), "workspaceUpdate")
		acWantError(t, acPost(t, s, bob.Token, plan, map[string]any{"id": wsID, "plan": "BUSINESS"}), "FORBIDDEN")
		acWantError(t, acPost(t, s, bob.Token, del, map[string]any{"id": wsID, "confirm": "acme-inc"}), "FORBIDDEN")
	})

	t.Run("PlanChange", func(t *testing.T) {
		r := acPost(t, s, alice.Token, plan, map[string]any{"id": wsID, "plan": "TEAM"})
		if got, want := acJSON(acAt(acPayload(t, r, "workspacePlanUpdate"), "workspace.plan")),
			`{"apiCallsPerMonth":2500000,"features":["PRIVACY_PORTAL"],"mtusPerMonth":10000,"plan":"TEAM"}`; got != want {
			t.Errorf("TEAM plan = %s, want %s", got, want)
		}
		e := acLatest(t, s, alice.Token, "acme-inc", "PLAN_CHANGED")
		if acStr(e, "resourceId") != wsID || acStr(e, "user.id") != alice.ID {
			t.Errorf("event %s", acJSON(e))
		}
		acWantChanges(t, e, `{"plan": {"from": "FREE", "to": "TEAM"}}`)

		acPayload(t, acPost(t, s, alice.Token, plan, map[string]any{"id": wsID, "plan": "BUSINESS"}), "workspacePlanUpdate")
		d := acData(t, acPost(t, s, alice.Token, bySlug, map[string]any{"slug": "acme-inc"}))
		if got, want := acJSON(acAt(d, "workspace.plan")),
			`{"apiCallsPerMonth":null,"features":["ENGAGE","PROTOCOLS","PRIVACY_PORTAL"],"mtusPerMonth":null,"plan":"BUSINESS"}`; got != want {
			t.Errorf("BUSINESS plan = %s, want %s", got, want)
		}
		acWantChanges(t, acLatest(t, s, alice.Token, "acme-inc", "PLAN_CHANGED"), `{"plan": {"from": "TEAM", "to": "BUSINESS"}}`)
	})

	t.Run("DeleteNeedsConfirmSlug", func(t *testing.T) {
		for _, wrong := range []string{"acme", "", "ACME-INC", "acme-inc2"} {
			r := acPost(t, s, alice.Token, del, map[string]any{"id": wsID, "confirm": wrong})
			acWantUserError(t, r, "workspaceDelete", "confirmSlug", "INVALID")
			if acAt(r.Data, "workspaceDelete.deletedWorkspaceId") != nil {
				t.Errorf("deletedWorkspaceId with a userError: %s", r.Raw)
			}
		}
		if d := acData(t, acPost(t, s, alice.Token, bySlug, map[string]any{"slug": "acme-inc"})); d["workspace"] == nil {
			t.Fatal("the workspace is gone after a refused deletion")
		}
	})

	t.Run("Delete", func(t *testing.T) {
		_, secret := acCreateToken(t, s, alice.Token, wsID, "ci", "ADMIN")
		c := acSubscribe(t, s, secret)
		r := acPost(t, s, alice.Token, del, map[string]any{"id": wsID, "confirm": "acme-inc"})
		if got := acStr(acPayload(t, r, "workspaceDelete"), "deletedWorkspaceId"); got != wsID {
			t.Errorf("deletedWorkspaceId = %q", got)
		}
		for _, tok := range []string{alice.Token, bob.Token} {
			if d := acData(t, acPost(t, s, tok, bySlug, map[string]any{"slug": "acme-inc"})); d["workspace"] != nil {
				t.Errorf("workspace(slug) after deletion: %s", acJSON(d))
			}
			if d := acData(t, acPost(t, s, tok, byID, map[string]any{"id": wsID})); d["node"] != nil {
				t.Errorf("node(id) after deletion: %s", acJSON(d))
			}
		}
		d := acData(t, acPost(t, s, alice.Token, `{ viewer { workspaces { nodes { id } } } }`, nil))
		if strings.Contains(acJSON(d), wsID) {
			t.Errorf("viewer.workspaces still lists it: %s", acJSON(d))
		}
		acWant401(t, s, secret)
		acWantClosed(t, c, 4403)
		msg := acWantError(t, acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "Back"}}), "NOT_FOUND")
		never := acWantError(t, acPost(t, s, alice.Token, update, map[string]any{"i": map[string]any{"workspaceId": "ws" + acNeverSuffix, "name": "Back"}}), "NOT_FOUND")
		if msg != never {
			t.Errorf("deleted workspace: %q; never-existing one: %q", msg, never)
		}
	})
}

const acMembersQuery = `query($slug: String!) { workspace(slug: $slug) { members { nodes { id role user { id } } } } }`

// acMembers returns the user id -> role map of a workspace's members, and user id -> membership id.
func acMembers(t testing.TB, s *server, tok, slug string) (roles, memberships map[string]string) {
	t.Helper()
	roles, memberships = map[string]string{}, map[string]string{}
	for _, m := range acList(acData(t, acPost(t, s, tok, acMembersQuery, map[string]any{"slug": slug})), "workspace.members.nodes") {
		roles[acStr(m, "user.id")] = acStr(m, "role")
		memberships[acStr(m, "user.id")] = acStr(m, "id")
	}
	return roles, memberships
}

// acWantNoWorkspace checks that tok does not see the workspace with slug.
func acWantNoWorkspace(t testing.TB, s *server, tok, slug string) {
	t.Helper()
	if d := acData(t, acPost(t, s, tok, `query($slug: String!) { workspace(slug: $slug) { id } }`, map[string]any{"slug": slug})); d["workspace"] != nil {
		t.Errorf("still sees workspace %s: %s", slug, acJSON(d))
	}
}

// TestAccountsMembers covers invitations and their answers, role changes, leaving and removal.
func TestAccountsMembers(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *config.Config) { c.PublicURL = "https://junction.example.com" })
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	carol := acSignUp(t, s, "carol@example.com", "Carol")
	dave := acSignUp(t, s, "dave@example.com", "Dave")
	erin := acSignUp(t, s, "erin@example.com", "Erin")
	wsID := acCreateWorkspace(t, s, alice.Token, "Team", "team")
	const invitations = `{ viewer { invitations { id email role status workspaceName viewerCanAccept viewerCanRevoke invitedBy { id } } } }`
	const decline = `mutation($i: InvitationDeclineInput!) { invitationDecline(input: $i) { invitation { id status } userErrors { field message code } } }`
	const revoke = `mutation($id: ID!) { invitationRevoke(input: {invitationId: $id}) { invitation { id status } userErrors { field message code } } }`
	invite := func(t *testing.T, tok, email, role string) gqlResponse {
		t.Helper()
		return acPost(t, s, tok, acInviteMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "email": email, "role": role}})
	}
	_, ms := acMembers(t, s, alice.Token, "team")
	aliceMem := ms[alice.ID]

	var bobInv acInvitation
	t.Run("Invite", func(t *testing.T) {
		p := acPayload(t, invite(t, alice.Token, "  Bob@Example.COM ", "ADMIN"), "memberInvite")
		inv := acAt(p, "invitation")
		bobInv = acInvitation{ID: acStr(inv, "id"), Token: acStr(p, "token")}
		want := map[string]any{"email": "bob@example.com", "role": "ADMIN", "status": "PENDING", "workspaceName": "Team",
			"viewerCanAccept": false, "viewerCanRevoke": true}
		for k, v := range want {
			if got := acAt(inv, k); got != v {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
		if acStr(inv, "invitedBy.id") != alice.ID || !strings.HasPrefix(bobInv.ID, "inv_") {
			t.Errorf("invitation %s", acJSON(inv))
		}
		if !strings.HasPrefix(bobInv.Token, "jci_") || len(bobInv.Token) < 40 {
			t.Errorf("token %q", bobInv.Token)
		}
		if got, want := acStr(p, "acceptUrl"), "https://junction.example.com/#invitation="+bobInv.Token; got != want {
			t.Errorf("acceptUrl %q, want %q", got, want)
		}
		if acAt(p, "emailSent") != false {
			t.Errorf("emailSent = %v on a server without mail", acAt(p, "emailSent"))
		}
	})

	t.Run("TokenShownOnceStoredHashed", func(t *testing.T) {
		body := strings.TrimPrefix(bobInv.Token, "jci_")
		listed := acPost(t, s, alice.Token, `query($id: ID!) { workspace(slug: "team") { invitations { nodes { id email } } } node(id: $id) { id } }`,
			map[string]any{"id": bobInv.ID})
		rows := acRows(t, s, "invitations")
		for what, text := range map[string]string{"listing": listed.Raw, "invitations table": rows, "audit trail": acRows(t, s, "audit_events"),
			"notifications": acRows(t, s, "notifications"), "logs": s.Logs.String()} {
			if strings.Contains(text, body) {
				t.Errorf("the %s shows the invitation's token", what)
			}
		}
		if !strings.Contains(rows, acSHA256(bobInv.Token)) {
			t.Error("the invitations table does not hold the token's SHA-256")
		}
	})

	t.Run("AddressProvesNothing", func(t *testing.T) {
		// Bob signed up with the invited address, but nothing proves it is his (this server sends
		// no mail): he neither sees the invitation nor may answer it by id, exactly as a stranger.
		if list := acList(acData(t, acPost(t, s, bob.Token, invitations, nil)), "viewer.invitations"); len(list) != 0 {
			t.Fatalf("bob's invitations by address: %s", acJSON(list))
		}
		const node = `query($id: ID!) { node(id: $id) { id } }`
		for _, u := range []acUser{bob, carol} {
			if d := acData(t, acPost(t, s, u.Token, node, map[string]any{"id": bobInv.ID})); d["node"] != nil {
				t.Errorf("%s's node(id) = %s", u.Email, acJSON(d))
			}
		}
		byID := acPost(t, s, bob.Token, acAcceptMutation, acAcceptID(bobInv.ID))
		never := acPost(t, s, bob.Token, acAcceptMutation, acAcceptID("inv"+acNeverSuffix))
		acWantError(t, byID, "NOT_FOUND")
		if acJSON(byID.Errors) != acJSON(never.Errors) || acJSON(byID.Data) != acJSON(never.Data) {
			t.Errorf("accepting by id differs from a never-existing id:\n%s\n%s", byID.Raw, never.Raw)
		}
		acWantError(t, acPost(t, s, bob.Token, decline, acAcceptID(bobInv.ID)), "NOT_FOUND")
		if roles, _ := acMembers(t, s, alice.Token, "team"); roles[bob.ID] != "" {
			t.Errorf("bob joined by address: %v", roles)
		}
	})

	t.Run("TokenHolderSeesInvitation", func(t *testing.T) {
		const byToken = `query($t: String!) { invitation(token: $t) { id email role status workspaceName invitedBy { id } viewerCanAccept viewerCanRevoke } }`
		d := acData(t, acPost(t, s, bob.Token, byToken, map[string]any{"t": bobInv.Token}))
		inv := acAt(d, "invitation")
		if acStr(inv, "id") != bobInv.ID || acAt(inv, "viewerCanAccept") != true || acAt(inv, "viewerCanRevoke") != false ||
			acStr(inv, "workspaceName") != "Team" || acStr(inv, "role") != "ADMIN" {
			t.Errorf("invitation(token:) = %s", acJSON(inv))
		}
		if d := acData(t, acPost(t, s, bob.Token, byToken, map[string]any{"t": "jci_" + strings.Repeat("A", 43)})); d["invitation"] != nil {
			t.Errorf("an unknown token found %s", acJSON(d))
		}
		acWantError(t, s.post(t, byToken, map[string]any{"t": bobInv.Token}), "UNAUTHENTICATED")
	})

	var bobMem string
	t.Run("AcceptWithToken", func(t *testing.T) {
		p := acPayload(t, acPost(t, s, bob.Token, acAcceptMutation, acAcceptToken(bobInv.Token)), "invitationAccept")
		bobMem = acStr(p, "membership.id")
		if acStr(p, "membership.role") != "ADMIN" || acStr(p, "membership.user.id") != bob.ID ||
			acStr(p, "workspace.id") != wsID || acStr(p, "workspace.viewerRole") != "ADMIN" {
			t.Errorf("accept payload %s", acJSON(p))
		}
		if roles, _ := acMembers(t, s, alice.Token, "team"); roles[bob.ID] != "ADMIN" {
			t.Errorf("members: %v", roles)
		}
		e := acLatest(t, s, alice.Token, "team", "INVITATION_ACCEPTED")
		if acStr(e, "resourceId") != bobMem || acStr(e, "user.id") != bob.ID {
			t.Errorf("event %s", acJSON(e))
		}
	})

	t.Run("AcceptTwice", func(t *testing.T) {
		acWantUserError(t, acPost(t, s, bob.Token, acAcceptMutation, acAcceptToken(bobInv.Token)), "invitationAccept", "token", "NOT_ALLOWED")
	})

	t.Run("TokenWorksForWhoeverHoldsIt", func(t *testing.T) {
		// Sent to an address nobody has; the owner hands the link to Zed, who signs up with another.
		inv := acInvite(t, s, alice.Token, wsID, "zed-at-work@example.com", "MINIMAL")
		zed := acSignUp(t, s, "zed@example.com", "Zed")
		if list := acList(acData(t, acPost(t, s, zed.Token, invitations, nil)), "viewer.invitations"); len(list) != 0 {
			t.Errorf("zed's invitations: %s", acJSON(list))
		}
		acAccept(t, s, zed.Token, inv)
		if roles, _ := acMembers(t, s, alice.Token, "team"); roles[zed.ID] != "MINIMAL" {
			t.Errorf("members: %v", roles)
		}
	})

	t.Run("AnswerRules", func(t *testing.T) {
		inv := acInvite(t, s, alice.Token, wsID, "rules@example.com", "MEMBER")
		for _, c := range []struct {
			name  string
			input map[string]any
		}{
			{"Neither", map[string]any{}},
			{"Both", map[string]any{"token": inv.Token, "invitationId": inv.ID}},
			{"UnknownToken", map[string]any{"token": "jci_" + strings.Repeat("A", 43)}},
			{"NotAToken", map[string]any{"token": inv.ID}},
		} {
			t.Run(c.name, func(t *testing.T) {
				acWantUserError(t, acPost(t, s, carol.Token, acAcceptMutation, map[string]any{"i": c.input}), "invitationAccept", "token", "INVALID")
			})
		}
		_, secret := acCreateToken(t, s, alice.Token, wsID, "no answers", "OWNER")
		acWantError(t, acPost(t, s, secret, acAcceptMutation, acAcceptToken(inv.Token)), "FORBIDDEN")
		acWantError(t, acPost(t, s, "", acAcceptMutation, acAcceptToken(inv.Token)), "UNAUTHENTICATED")
		acPayload(t, acPost(t, s, alice.Token, revoke, map[string]any{"id": inv.ID}), "invitationRevoke")
	})

	t.Run("InviteOwnerOnly", func(t *testing.T) {
		acWantError(t, invite(t, bob.Token, carol.Email, "MEMBER"), "FORBIDDEN")
	})

	t.Run("InviteValidation", func(t *testing.T) {
		acWantUserError(t, invite(t, alice.Token, "not-an-email", "MEMBER"), "memberInvite", "email", "INVALID")
		acWantUserError(t, invite(t, alice.Token, "", "MEMBER"), "memberInvite", "email", "REQUIRED")
	})

	t.Run("Decline", func(t *testing.T) {
		inv := acInvite(t, s, alice.Token, wsID, carol.Email, "MEMBER")
		p := acPayload(t, acPost(t, s, carol.Token, decline, map[string]any{"i": map[string]any{"token": inv.Token}}), "invitationDecline")
		if acStr(p, "invitation.status") != "DECLINED" {
			t.Errorf("decline payload %s", acJSON(p))
		}
		acWantUserError(t, acPost(t, s, carol.Token, acAcceptMutation, acAcceptToken(inv.Token)), "invitationAccept", "token", "NOT_ALLOWED")
		acWantNoWorkspace(t, s, carol.Token, "team")
		if e := acLatest(t, s, alice.Token, "team", "INVITATION_DECLINED"); acStr(e, "resourceId") != inv.ID || acStr(e, "user.id") != carol.ID {
			t.Errorf("event %s", acJSON(e))
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		inv := acInvite(t, s, alice.Token, wsID, dave.Email, "MEMBER")
		p := acPayload(t, acPost(t, s, alice.Token, revoke, map[string]any{"id": inv.ID}), "invitationRevoke")
		if acStr(p, "invitation.status") != "REVOKED" {
			t.Errorf("revoke payload %s", acJSON(p))
		}
		acWantUserError(t, acPost(t, s, dave.Token, acAcceptMutation, acAcceptToken(inv.Token)), "invitationAccept", "token", "NOT_ALLOWED")
		acWantUserError(t, acPost(t, s, alice.Token, revoke, map[string]any{"id": inv.ID}), "invitationRevoke", "invitationId", "NOT_ALLOWED")
		acWantNoWorkspace(t, s, dave.Token, "team")
		if e := acLatest(t, s, alice.Token, "team", "INVITATION_REVOKED"); acStr(e, "resourceId") != inv.ID {
			t.Errorf("event %s", acJSON(e))
		}
	})

	t.Run("Expired", func(t *testing.T) {
		inv := acInvite(t, s, alice.Token, wsID, "late@example.com", "MEMBER")
		acExec(t, s, `UPDATE invitations SET expires_at = ? WHERE id = ?`, db.Time{Time: time.Now().Add(-time.Second)}, inv.ID)
		e := acWantUserError(t, acPost(t, s, dave.Token, acAcceptMutation, acAcceptToken(inv.Token)), "invitationAccept", "token", "NOT_ALLOWED")
		if !strings.Contains(e.Message, "expired") {
			t.Errorf("message %q", e.Message)
		}
		acWantUserError(t, acPost(t, s, dave.Token, decline, map[string]any{"i": map[string]any{"token": inv.Token}}), "invitationDecline", "token", "NOT_ALLOWED")
		d := acData(t, acPost(t, s, dave.Token, `query($t: String!) { invitation(token: $t) { status viewerCanAccept } }`, map[string]any{"t": inv.Token}))
		if acJSON(d) != `{"invitation":{"status":"EXPIRED","viewerCanAccept":false}}` {
			t.Errorf("an expired invitation by token: %s", acJSON(d))
		}
		// An expired invitation no longer blocks a new one to the address.
		acInvite(t, s, alice.Token, wsID, "late@example.com", "MEMBER")
	})

	var erinInv acInvitation
	t.Run("RevokeOwnerOnly", func(t *testing.T) {
		erinInv = acInvite(t, s, alice.Token, wsID, erin.Email, "MEMBER")
		acWantError(t, acPost(t, s, bob.Token, revoke, map[string]any{"id": erinInv.ID}), "FORBIDDEN")
	})

	t.Run("DuplicateInvite", func(t *testing.T) {
		for _, email := range []string{erin.Email, "ERIN@Example.com"} {
			acWantUserError(t, invite(t, alice.Token, email, "ADMIN"), "memberInvite", "email", "TAKEN")
		}
	})

	t.Run("InviteExistingMember", func(t *testing.T) {
		for _, email := range []string{bob.Email, "BOB@example.com", alice.Email} {
			acWantUserError(t, invite(t, alice.Token, email, "MEMBER"), "memberInvite", "email", "TAKEN")
		}
	})

	var carolMem string
	t.Run("InviteAgainAfterDecline", func(t *testing.T) {
		carolMem = acJoin(t, s, alice.Token, wsID, carol, "MEMBER")
	})

	t.Run("MemberUpdate", func(t *testing.T) {
		acSetRole(t, s, alice.Token, bobMem, "MEMBER")
		if d := acData(t, acPost(t, s, bob.Token, `{ workspace(slug: "team") { viewerRole viewerCanUpdate } }`, nil)); acStr(d, "workspace.viewerRole") != "MEMBER" ||
			acAt(d, "workspace.viewerCanUpdate") != false {
			t.Errorf("bob's view after demotion: %s", acJSON(d))
		}
		e := acLatest(t, s, alice.Token, "team", "MEMBER_ROLE_CHANGED")
		if acStr(e, "resourceId") != bobMem || acStr(e, "resourceType") != "Membership" {
			t.Errorf("event %s", acJSON(e))
		}
		acWantChanges(t, e, `{"role": {"from": "ADMIN", "to": "MEMBER"}}`)
	})

	t.Run("MemberUpdateOwnerOnly", func(t *testing.T) {
		acWantError(t, acPost(t, s, bob.Token, acMemberUpdateMutation, map[string]any{"id": carolMem, "role": "ADMIN"}), "FORBIDDEN")
		acWantError(t, acPost(t, s, bob.Token, acMemberUpdateMutation, map[string]any{"id": bobMem, "role": "OWNER"}), "FORBIDDEN")
		acWantError(t, acPost(t, s, bob.Token, acMemberRemoveMutation, map[string]any{"id": carolMem}), "FORBIDDEN")
	})

	t.Run("LastOwnerCannotBeDemoted", func(t *testing.T) {
		for _, role := range []string{"ADMIN", "MEMBER", "MINIMAL"} {
			r := acPost(t, s, alice.Token, acMemberUpdateMutation, map[string]any{"id": aliceMem, "role": role})
			acWantUserError(t, r, "memberUpdate", "role", "NOT_ALLOWED")
		}
		if roles, _ := acMembers(t, s, alice.Token, "team"); roles[alice.ID] != "OWNER" {
			t.Errorf("alice is %s", roles[alice.ID])
		}
	})

	t.Run("LastOwnerCannotLeave", func(t *testing.T) {
		acWantUserError(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": aliceMem}), "memberRemove", "membershipId", "NOT_ALLOWED")
		if roles, _ := acMembers(t, s, alice.Token, "team"); roles[alice.ID] != "OWNER" {
			t.Errorf("alice is %q", roles[alice.ID])
		}
	})

	t.Run("MemberLeaves", func(t *testing.T) {
		p := acPayload(t, acPost(t, s, carol.Token, acMemberRemoveMutation, map[string]any{"id": carolMem}), "memberRemove")
		if acStr(p, "removedMembershipId") != carolMem {
			t.Errorf("payload %s", acJSON(p))
		}
		acWantNoWorkspace(t, s, carol.Token, "team")
		e := acLatest(t, s, alice.Token, "team", "MEMBER_LEFT")
		if acStr(e, "resourceId") != carolMem || acStr(e, "user.id") != carol.ID {
			t.Errorf("event %s", acJSON(e))
		}
		acWantChanges(t, e, fmt.Sprintf(`{"userId": %q, "role": "MEMBER", "revokedAccessTokens": 0}`, carol.ID))
	})

	t.Run("OwnerRemovesMember", func(t *testing.T) {
		erinMem := acAccept(t, s, erin.Token, erinInv)
		p := acPayload(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": erinMem}), "memberRemove")
		if acStr(p, "removedMembershipId") != erinMem {
			t.Errorf("payload %s", acJSON(p))
		}
		acWantNoWorkspace(t, s, erin.Token, "team")
		e := acLatest(t, s, alice.Token, "team", "MEMBER_REMOVED")
		if acStr(e, "resourceId") != erinMem || acStr(e, "user.id") != alice.ID {
			t.Errorf("event %s", acJSON(e))
		}
		acWantChanges(t, e, fmt.Sprintf(`{"userId": %q, "role": "MEMBER", "revokedAccessTokens": 0}`, erin.ID))
	})

	t.Run("RemoveTwiceAtOnceRecordsOnce", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			mem := acJoin(t, s, alice.Token, wsID, dave, "MEMBER")
			answers := acConcurrently(8, func() gqlResponse {
				return acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": mem})
			})
			removed := 0
			for _, r := range answers {
				if acStr(r.Data, "memberRemove.removedMembershipId") != "" {
					removed++
				}
			}
			events := acEvents(t, s, alice.Token, "team", map[string]any{"types": []string{"MEMBER_REMOVED"}, "resourceId": mem})
			if removed != 1 || len(events) != 1 {
				t.Fatalf("round %d: 8 concurrent removals of one membership: %d answered success, %d MEMBER_REMOVED events; want 1 and 1",
					round, removed, len(events))
			}
		}
	})

	t.Run("RevokeRacingAcceptHasOneWinner", func(t *testing.T) {
		const revokeStatus = `mutation($id: ID!) { invitationRevoke(input: {invitationId: $id}) { invitation { status } userErrors { code } } }`
		for round := 0; round < 10; round++ {
			inv := acInvite(t, s, alice.Token, wsID, dave.Email, "MEMBER")
			var revoked, accepted gqlResponse
			done := make(chan struct{})
			go func() {
				defer close(done)
				revoked = acPost(t, s, alice.Token, revokeStatus, map[string]any{"id": inv.ID})
			}()
			accepted = acPost(t, s, dave.Token, acAcceptMutation, acAcceptToken(inv.Token))
			<-done
			revokeWon := acStr(revoked.Data, "invitationRevoke.invitation.status") == "REVOKED"
			acceptWon := acStr(accepted.Data, "invitationAccept.membership.id") != ""
			_, ms := acMembers(t, s, alice.Token, "team")
			if revokeWon && acceptWon {
				t.Fatalf("round %d: both won: invitationRevoke answered %s and invitationAccept %s; dave's membership: %q",
					round, revoked.Raw, accepted.Raw, ms[dave.ID])
			}
			if revokeWon == (ms[dave.ID] != "") {
				t.Fatalf("round %d: revoke %s, accept %s, yet dave's membership is %q", round, revoked.Raw, accepted.Raw, ms[dave.ID])
			}
			if ms[dave.ID] != "" {
				acPayload(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": ms[dave.ID]}), "memberRemove")
			}
		}
	})

	t.Run("OwnerCanLeaveAfterPromotingAnother", func(t *testing.T) {
		acSetRole(t, s, alice.Token, bobMem, "OWNER")
		acSetRole(t, s, alice.Token, aliceMem, "ADMIN") // two owners: alice may step down
		acSetRole(t, s, bob.Token, aliceMem, "OWNER")
		p := acPayload(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": aliceMem}), "memberRemove")
		if acStr(p, "removedMembershipId") != aliceMem {
			t.Errorf("payload %s", acJSON(p))
		}
		acWantNoWorkspace(t, s, alice.Token, "team")
		if e := acLatest(t, s, bob.Token, "team", "MEMBER_LEFT"); acStr(e, "resourceId") != aliceMem || acStr(e, "user.id") != alice.ID {
			t.Errorf("event %s", acJSON(e))
		}
		// Now bob is the last owner.
		acWantUserError(t, acPost(t, s, bob.Token, acMemberRemoveMutation, map[string]any{"id": bobMem}), "memberRemove", "membershipId", "NOT_ALLOWED")
	})
}

// TestAccountsMemberRemovalAtOnce checks that removing a member ends their access to the
// workspace at once: their access tokens over HTTP and websockets, and their session's view.
func TestAccountsMemberRemovalAtOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	wsID := acCreateWorkspace(t, s, alice.Token, "Acme", "acme")
	acCreateWorkspace(t, s, bob.Token, "Bob's", "bobs")
	bobMem := acJoin(t, s, alice.Token, wsID, bob, "MEMBER")
	_, secret := acCreateToken(t, s, bob.Token, wsID, "bob's script", "MEMBER")
	c := acSubscribe(t, s, secret)

	const probe = `query($id: ID!, $slug: String!) { node(id: $id) { id } workspace(slug: $slug) { id } }`
	const update = `mutation($id: ID!) { workspaceUpdate(input: {workspaceId: $id, name: "Mine"}) { workspace { id } } }`
	const tokenCreate = `mutation($id: ID!) { accessTokenCreate(input: {workspaceId: $id, name: "x", role: MEMBER}) { secret } }`
	for _, tok := range []string{bob.Token, secret} {
		d := acData(t, acPost(t, s, tok, probe, map[string]any{"id": wsID, "slug": "acme"}))
		if acStr(d, "node.id") != wsID || acStr(d, "workspace.id") != wsID {
			t.Fatalf("before removal: %s", acJSON(d))
		}
	}
	never := map[string]gqlResponse{
		"probe":       acPost(t, s, bob.Token, probe, map[string]any{"id": "ws" + acNeverSuffix, "slug": "never-was"}),
		"update":      acPost(t, s, bob.Token, update, map[string]any{"id": "ws" + acNeverSuffix}),
		"tokenCreate": acPost(t, s, bob.Token, tokenCreate, map[string]any{"id": "ws" + acNeverSuffix}),
	}

	acPayload(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": bobMem}), "memberRemove")

	t.Run("TokenIs401", func(t *testing.T) {
		acWant401(t, s, secret)
	})

	t.Run("WebsocketClosed4403", func(t *testing.T) {
		acWantClosed(t, c, 4403)
	})

	t.Run("SessionGetsNotFoundLikeNeverExisting", func(t *testing.T) {
		got := acPost(t, s, bob.Token, probe, map[string]any{"id": wsID, "slug": "acme"})
		if d := acData(t, got); d["node"] != nil || d["workspace"] != nil {
			t.Errorf("removed member still sees the workspace: %s", got.Raw)
		}
		if got.Raw != never["probe"].Raw {
			t.Errorf("queries differ:\nremoved:  %s\nnever:    %s", got.Raw, never["probe"].Raw)
		}
		for name, r := range map[string]gqlResponse{
			"update":      acPost(t, s, bob.Token, update, map[string]any{"id": wsID}),
			"tokenCreate": acPost(t, s, bob.Token, tokenCreate, map[string]any{"id": wsID}),
		} {
			acWantError(t, r, "NOT_FOUND")
			if r.Status != never[name].Status || acJSON(r.Errors) != acJSON(never[name].Errors) || acJSON(r.Data) != acJSON(never[name].Data) {
				t.Errorf("%s differs:\nremoved: %d %s\nnever:   %d %s", name, r.Status, r.Raw, never[name].Status, never[name].Raw)
			}
		}
	})

	t.Run("SessionKeepsWorkingForOwnThings", func(t *testing.T) {
		d := acData(t, acPost(t, s, bob.Token, `{ viewer { id workspaces { nodes { slug } } } workspace(slug: "bobs") { viewerRole } }`, nil))
		if acStr(d, "viewer.id") != bob.ID || acStr(d, "workspace.viewerRole") != "OWNER" {
			t.Errorf("bob's own things: %s", acJSON(d))
		}
		if got := acJSON(acAt(d, "viewer.workspaces.nodes")); got != `[{"slug":"bobs"}]` {
			t.Errorf("bob's workspaces: %s", got)
		}
		acCreateToken(t, s, bob.Token, acStr(acData(t, acPost(t, s, bob.Token, `{ workspace(slug: "bobs") { id } }`, nil)), "workspace.id"), "own", "OWNER")
	})

	t.Run("AuditCountsRevokedTokens", func(t *testing.T) {
		acWantChanges(t, acLatest(t, s, alice.Token, "acme", "MEMBER_REMOVED"), fmt.Sprintf(`{"userId": %q, "role": "MEMBER", "revokedAccessTokens": 1}`, bob.ID))
	})
}

const acTokensQuery = `query($slug: String!) { workspace(slug: $slug) { accessTokens { totalCount nodes {
	id name role createdAt lastUsedAt expiresAt revokedAt createdBy { id } } } } }`

// acTokenListed returns the listed token with id (nil when absent) and the raw listing.
func acTokenListed(t testing.TB, s *server, tok, slug, id string) (any, string) {
	t.Helper()
	r := acPost(t, s, tok, acTokensQuery, map[string]any{"slug": slug})
	for _, n := range acList(acData(t, r), "workspace.accessTokens.nodes") {
		if acStr(n, "id") == id {
			return n, r.Raw
		}
	}
	return nil, r.Raw
}

// TestAccountsTokens covers access tokens: the secret shown once, the listing, roles, expiry,
// what a token may not do, revocation and the effective role.
func TestAccountsTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	carol := acSignUp(t, s, "carol@example.com", "Carol")
	wsID := acCreateWorkspace(t, s, alice.Token, "Acme", "acme")
	ws2ID := acCreateWorkspace(t, s, alice.Token, "Second", "second")
	bobMem := acJoin(t, s, alice.Token, wsID, bob, "ADMIN")
	carolMem := acJoin(t, s, alice.Token, wsID, carol, "MEMBER")
	create := func(t *testing.T, tok string, input map[string]any) gqlResponse {
		t.Helper()
		input["workspaceId"] = wsID
		return acPost(t, s, tok, acTokenCreateMutation, map[string]any{"i": input})
	}

	// A token that expires while the other subtests run, with a websocket open on it.
	expiresAt := time.Now().Add(1500 * time.Millisecond)
	p := acPayload(t, create(t, alice.Token, map[string]any{"name": "brief", "role": "ADMIN", "expiresAt": expiresAt.UTC().Format(time.RFC3339Nano)}), "accessTokenCreate")
	briefSecret := acStr(p, "secret")
	acData(t, acPost(t, s, briefSecret, `{ viewer { id } }`, nil))
	briefWS := acSubscribe(t, s, briefSecret)

	var ciID, ciSecret string
	t.Run("CreateReturnsSecretOnce", func(t *testing.T) {
		r := create(t, alice.Token, map[string]any{"name": " ci ", "role": "ADMIN"})
		p := acPayload(t, r, "accessTokenCreate")
		ciID, ciSecret = acStr(p, "accessToken.id"), acStr(p, "secret")
		if !strings.HasPrefix(ciSecret, "jct_") || !strings.HasPrefix(ciID, "tok_") {
			t.Fatalf("secret %q, id %q", ciSecret, ciID)
		}
		tok := acAt(p, "accessToken")
		if acStr(tok, "name") != "ci" || acStr(tok, "role") != "ADMIN" || acStr(tok, "createdBy.id") != alice.ID ||
			acAt(tok, "lastUsedAt") != nil || acAt(tok, "expiresAt") != nil || acAt(tok, "revokedAt") != nil || acAt(tok, "viewerCanRevoke") != true {
			t.Errorf("created token %s", acJSON(tok))
		}
		listed, raw := acTokenListed(t, s, alice.Token, "acme", ciID)
		if listed == nil || acStr(listed, "name") != "ci" || acStr(listed, "role") != "ADMIN" || acStr(listed, "createdAt") != acStr(tok, "createdAt") ||
			acAt(listed, "lastUsedAt") != nil || acAt(listed, "expiresAt") != nil {
			t.Errorf("listed token %s", acJSON(listed))
		}
		body := strings.TrimPrefix(ciSecret, "jct_")
		node := acPost(t, s, alice.Token, `query($id: ID!) { node(id: $id) { id ... on AccessToken { name role } } }`, map[string]any{"id": ciID})
		for what, text := range map[string]string{"listing": raw, "node": node.Raw, "access_tokens table": acRows(t, s, "access_tokens")} {
			if strings.Contains(text, body) {
				t.Errorf("the %s shows the secret", what)
			}
		}
		if acStr(acData(t, node), "node.name") != "ci" {
			t.Errorf("node(id): %s", node.Raw)
		}
		var hash string
		_ = s.App.DB().Get(context.Background(), &hash, `SELECT token_hash FROM access_tokens WHERE id = ?`, ciID)
		if hash != acSHA256(ciSecret) {
			t.Errorf("token_hash %q is not the SHA-256 of the secret", hash)
		}
	})
	if ciSecret == "" {
		t.FailNow()
	}

	t.Run("LastUsedAtSetAfterUse", func(t *testing.T) {
		acData(t, acPost(t, s, ciSecret, `{ viewer { id } }`, nil))
		listed, _ := acTokenListed(t, s, alice.Token, "acme", ciID)
		used, err := time.Parse(time.RFC3339Nano, acStr(listed, "lastUsedAt"))
		created, _ := time.Parse(time.RFC3339Nano, acStr(listed, "createdAt"))
		if err != nil || used.Before(created) || time.Since(used) > time.Minute {
			t.Errorf("lastUsedAt %q after use (createdAt %q): %v", acStr(listed, "lastUsedAt"), acStr(listed, "createdAt"), err)
		}
	})

	t.Run("ExpiresAtListed", func(t *testing.T) {
		at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		p := acPayload(t, create(t, alice.Token, map[string]any{"name": "hourly", "role": "MEMBER", "expiresAt": at.Format(time.RFC3339Nano)}), "accessTokenCreate")
		listed, _ := acTokenListed(t, s, alice.Token, "acme", acStr(p, "accessToken.id"))
		got, err := time.Parse(time.RFC3339Nano, acStr(listed, "expiresAt"))
		if err != nil || !got.Equal(at) {
			t.Errorf("listed expiresAt %q, want %s", acStr(listed, "expiresAt"), at.Format(time.RFC3339Nano))
		}
	})

	t.Run("RoleAboveCreatorsRole", func(t *testing.T) {
		for _, c := range []struct {
			who  acUser
			role string
		}{{carol, "ADMIN"}, {carol, "OWNER"}, {bob, "OWNER"}} {
			r := create(t, c.who.Token, map[string]any{"name": "too much", "role": c.role})
			acWantUserError(t, r, "accessTokenCreate", "role", "NOT_ALLOWED")
			if acAt(r.Data, "accessTokenCreate.secret") != nil || acAt(r.Data, "accessTokenCreate.accessToken") != nil {
				t.Errorf("token made with a userError: %s", r.Raw)
			}
		}
		acCreateToken(t, s, carol.Token, wsID, "carol's", "MEMBER")      // her own role
		acCreateToken(t, s, carol.Token, wsID, "carol's min", "MINIMAL") // less
	})

	t.Run("ExpiresAtInPast", func(t *testing.T) {
		r := create(t, alice.Token, map[string]any{"name": "old", "role": "MEMBER", "expiresAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
		acWantUserError(t, r, "accessTokenCreate", "expiresAt", "INVALID")
	})

	t.Run("NameRules", func(t *testing.T) {
		acWantUserError(t, create(t, alice.Token, map[string]any{"name": " ", "role": "MEMBER"}), "accessTokenCreate", "name", "REQUIRED")
		acWantUserError(t, create(t, alice.Token, map[string]any{"name": strings.Repeat("n", 101), "role": "MEMBER"}), "accessTokenCreate", "name", "TOO_LONG")
	})

	t.Run("TokenCannotCreateTokensOrWorkspaces", func(t *testing.T) {
		acWantError(t, acPost(t, s, ciSecret, acTokenCreateMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "child", "role": "MEMBER"}}), "FORBIDDEN")
		acWantError(t, acPost(t, s, ciSecret, `mutation { workspaceCreate(input: {name: "T", slug: "from-token"}) { workspace { id } } }`, nil), "FORBIDDEN")
		acWantError(t, acPost(t, s, ciSecret, `mutation { logOut { sessionsEnded } }`, nil), "FORBIDDEN")
	})

	t.Run("TokenSeesOnlyItsWorkspace", func(t *testing.T) {
		d := acData(t, acPost(t, s, ciSecret, `query($id: ID!) { viewer { id workspaces { totalCount nodes { slug } } invitations { id } }
			second: workspace(slug: "second") { id } node(id: $id) { id } }`, map[string]any{"id": ws2ID}))
		if acStr(d, "viewer.id") != alice.ID {
			t.Errorf("a token's viewer is %q, want its creator", acStr(d, "viewer.id"))
		}
		if got := acJSON(acAt(d, "viewer.workspaces")); got != `{"nodes":[{"slug":"acme"}],"totalCount":1}` {
			t.Errorf("token's workspaces: %s", got)
		}
		if d["second"] != nil || d["node"] != nil {
			t.Errorf("token sees another workspace of its creator: %s", acJSON(d))
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		id, secret := acCreateToken(t, s, alice.Token, wsID, "temp", "MEMBER")
		c := acSubscribe(t, s, secret)
		p := acPayload(t, acPost(t, s, alice.Token, acTokenRevokeMutation, map[string]any{"id": id}), "accessTokenRevoke")
		if acStr(p, "accessToken.id") != id || acStr(p, "accessToken.revokedAt") == "" {
			t.Errorf("revoke payload %s", acJSON(p))
		}
		acWant401(t, s, secret)
		acWantClosed(t, c, 4403)
		acWantUserError(t, acPost(t, s, alice.Token, acTokenRevokeMutation, map[string]any{"id": id}), "accessTokenRevoke", "accessTokenId", "NOT_ALLOWED")
		if listed, _ := acTokenListed(t, s, alice.Token, "acme", id); acStr(listed, "revokedAt") == "" {
			t.Errorf("listing of a revoked token: %s", acJSON(listed))
		}
	})

	t.Run("MembersSeeAndRevokeOnlyTheirOwn", func(t *testing.T) {
		id, secret := acCreateToken(t, s, carol.Token, wsID, "mine", "MEMBER")
		r := acPost(t, s, carol.Token, acTokensQuery, map[string]any{"slug": "acme"})
		for _, n := range acList(acData(t, r), "workspace.accessTokens.nodes") {
			if acStr(n, "createdBy.id") != carol.ID {
				t.Errorf("a member sees another's token: %s", acJSON(n))
			}
		}
		acWantError(t, acPost(t, s, carol.Token, acTokenRevokeMutation, map[string]any{"id": ciID}), "NOT_FOUND")
		acData(t, acPost(t, s, ciSecret, `{ viewer { id } }`, nil)) // still works
		acPayload(t, acPost(t, s, carol.Token, acTokenRevokeMutation, map[string]any{"id": id}), "accessTokenRevoke")
		acWant401(t, s, secret)
	})

	t.Run("RevokeTwiceAtOnceRecordsOnce", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			id, _ := acCreateToken(t, s, alice.Token, wsID, "raced", "MEMBER")
			answers := acConcurrently(8, func() gqlResponse {
				return acPost(t, s, alice.Token, acTokenRevokeMutation, map[string]any{"id": id})
			})
			revoked := 0
			for _, r := range answers {
				if acStr(r.Data, "accessTokenRevoke.accessToken.revokedAt") != "" {
					revoked++
				}
			}
			events := acEvents(t, s, alice.Token, "acme", map[string]any{"types": []string{"ACCESS_TOKEN_REVOKED"}, "resourceId": id})
			if revoked != 1 || len(events) != 1 {
				t.Fatalf("round %d: 8 concurrent revocations of one token: %d answered success, %d ACCESS_TOKEN_REVOKED events; want 1 and 1",
					round, revoked, len(events))
			}
		}
	})

	time.Sleep(time.Until(expiresAt) + 50*time.Millisecond)
	t.Run("ExpiredTokenIs401", func(t *testing.T) {
		acWant401(t, s, briefSecret)
	})

	t.Run("ExpiredTokenClosesWebsocket", func(t *testing.T) {
		// The websocket was opened before the expiry; after it, no operation may run over it.
		if err := briefWS.WriteJSON(map[string]any{"id": "2", "type": "subscribe", "payload": map[string]any{"query": `{ workspace(slug: "acme") { name } }`}}); err != nil {
			acWantClosed(t, briefWS, 4403) // closed already
			return
		}
		_ = briefWS.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			_, b, err := briefWS.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4403 {
					t.Fatalf("websocket of an expired token: %v, want a 4403 close", err)
				}
				return
			}
			if strings.Contains(string(b), `"id":"2"`) && strings.Contains(string(b), `"data"`) {
				t.Fatalf("an operation ran over the websocket of an expired token: %s", b)
			}
		}
	})

	t.Run("TokenCannotMakeItsCreatorLeave", func(t *testing.T) {
		_, secret := acCreateToken(t, s, carol.Token, wsID, "read only", "MEMBER")
		r := acPost(t, s, secret, acMemberRemoveMutation, map[string]any{"id": carolMem})
		if _, ms := acMembers(t, s, alice.Token, "acme"); ms[carol.ID] == "" || r.errorCode() != "FORBIDDEN" {
			t.Errorf("a MEMBER token removed its creator from the workspace: %s", r.Raw)
		}
	})

	t.Run("EffectiveRoleIsLesser", func(t *testing.T) {
		_, secret := acCreateToken(t, s, bob.Token, wsID, "bob admin", "ADMIN")
		const view = `{ workspace(slug: "acme") { viewerRole viewerCanUpdate viewerCanDelete } }`
		const rename = `mutation($id: ID!, $name: String!) { workspaceUpdate(input: {workspaceId: $id, name: $name}) { workspace { name } userErrors { message } } }`
		if d := acData(t, acPost(t, s, secret, view, nil)); acStr(d, "workspace.viewerRole") != "ADMIN" {
			t.Errorf("token of an admin: %s", acJSON(d))
		}
		acPayload(t, acPost(t, s, secret, rename, map[string]any{"id": wsID, "name": "Acme by token"}), "workspaceUpdate")

		acSetRole(t, s, alice.Token, bobMem, "MEMBER")
		if d := acData(t, acPost(t, s, secret, view, nil)); acStr(d, "workspace.viewerRole") != "MEMBER" || acAt(d, "workspace.viewerCanUpdate") != false {
			t.Errorf("token after its creator's demotion: %s", acJSON(d))
		}
		acWantError(t, acPost(t, s, secret, rename, map[string]any{"id": wsID, "name": "Acme by demoted token"}), "FORBIDDEN")

		// Promoting the creator above the token's role does not raise the token.
		acSetRole(t, s, alice.Token, bobMem, "OWNER")
		if d := acData(t, acPost(t, s, secret, view, nil)); acStr(d, "workspace.viewerRole") != "ADMIN" || acAt(d, "workspace.viewerCanDelete") != false {
			t.Errorf("ADMIN token of an owner: %s", acJSON(d))
		}
	})
}

// TestAccountsAuditTrail runs one mutation of every kind and checks the trail: types, actors,
// resources and changes, filters, pagination, who may read it, and that no secret is in it.
func TestAccountsAuditTrail(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	carol := acSignUp(t, s, "carol@example.com", "Carol")
	dave := acSignUp(t, s, "dave@example.com", "Dave")

	type want struct {
		typ, actorType, userID, tokenID, resourceType, resourceID, changes string
	}
	var wants []want
	expect := func(typ, userID, tokenID, resourceType, resourceID, changes string) {
		actor := "USER"
		if tokenID != "" {
			actor = "ACCESS_TOKEN"
		}
		wants = append(wants, want{typ, actor, userID, tokenID, resourceType, resourceID, changes})
	}
	var secrets []string

	wsID := acCreateWorkspace(t, s, alice.Token, "Audit", "audit")
	expect("WORKSPACE_CREATED", alice.ID, "", "Workspace", wsID, `{"name": "Audit", "slug": "audit", "plan": "FREE"}`)
	acPayload(t, acPost(t, s, alice.Token, `mutation($id: ID!) { workspaceUpdate(input: {workspaceId: $id, name: "Audited"}) { workspace { id } userErrors { message } } }`,
		map[string]any{"id": wsID}), "workspaceUpdate")
	expect("WORKSPACE_UPDATED", alice.ID, "", "Workspace", wsID, `{"name": {"from": "Audit", "to": "Audited"}}`)
	acPayload(t, acPost(t, s, alice.Token, `mutation($id: ID!) { workspacePlanUpdate(input: {workspaceId: $id, plan: TEAM}) { workspace { id } userErrors { message } } }`,
		map[string]any{"id": wsID}), "workspacePlanUpdate")
	expect("PLAN_CHANGED", alice.ID, "", "Workspace", wsID, `{"plan": {"from": "FREE", "to": "TEAM"}}`)

	inv := acInvite(t, s, alice.Token, wsID, bob.Email, "ADMIN")
	expect("MEMBER_INVITED", alice.ID, "", "Invitation", inv.ID, `{"email": "bob@example.com", "role": "ADMIN"}`)
	bobMem := acAccept(t, s, bob.Token, inv)
	expect("INVITATION_ACCEPTED", bob.ID, "", "Membership", bobMem, fmt.Sprintf(`{"invitationId": %q, "role": "ADMIN"}`, inv.ID))

	inv = acInvite(t, s, alice.Token, wsID, carol.Email, "MEMBER")
	expect("MEMBER_INVITED", alice.ID, "", "Invitation", inv.ID, `{"email": "carol@example.com", "role": "MEMBER"}`)
	acPayload(t, acPost(t, s, carol.Token, `mutation($t: String!) { invitationDecline(input: {token: $t}) { invitation { id } userErrors { message } } }`,
		map[string]any{"t": inv.Token}), "invitationDecline")
	secrets = append(secrets, inv.Token)
	expect("INVITATION_DECLINED", carol.ID, "", "Invitation", inv.ID, `null`)

	inv = acInvite(t, s, alice.Token, wsID, "frank@example.com", "MEMBER")
	expect("MEMBER_INVITED", alice.ID, "", "Invitation", inv.ID, `{"email": "frank@example.com", "role": "MEMBER"}`)
	acPayload(t, acPost(t, s, alice.Token, `mutation($id: ID!) { invitationRevoke(input: {invitationId: $id}) { invitation { id } userErrors { message } } }`,
		map[string]any{"id": inv.ID}), "invitationRevoke")
	expect("INVITATION_REVOKED", alice.ID, "", "Invitation", inv.ID, `{"email": "frank@example.com"}`)

	inv = acInvite(t, s, alice.Token, wsID, dave.Email, "MINIMAL")
	expect("MEMBER_INVITED", alice.ID, "", "Invitation", inv.ID, `{"email": "dave@example.com", "role": "MINIMAL"}`)
	daveMem := acAccept(t, s, dave.Token, inv)
	expect("INVITATION_ACCEPTED", dave.ID, "", "Membership", daveMem, fmt.Sprintf(`{"invitationId": %q, "role": "MINIMAL"}`, inv.ID))

	r := acPost(t, s, alice.Token, `mutation($id: ID!) { memberGrantAdd(input: {membershipId: $id, role: SOURCE_READ, label: "environment:prod"}) {
		membership { grants { id } } userErrors { message } } }`, map[string]any{"id": daveMem})
	grantID := acStr(acPayload(t, r, "memberGrantAdd"), "membership.grants.0.id")
	expect("GRANT_ADDED", alice.ID, "", "ResourceGrant", grantID, fmt.Sprintf(`{"membershipId": %q, "role": "SOURCE_READ", "sourceId": null, "label": "environment:prod"}`, daveMem))
	acPayload(t, acPost(t, s, alice.Token, `mutation($id: ID!) { memberGrantRemove(input: {grantId: $id}) { membership { id } userErrors { message } } }`,
		map[string]any{"id": grantID}), "memberGrantRemove")
	expect("GRANT_REMOVED", alice.ID, "", "ResourceGrant", grantID, fmt.Sprintf(`{"membershipId": %q, "role": "SOURCE_READ"}`, daveMem))

	acSetRole(t, s, alice.Token, bobMem, "MEMBER")
	expect("MEMBER_ROLE_CHANGED", alice.ID, "", "Membership", bobMem, `{"role": {"from": "ADMIN", "to": "MEMBER"}}`)

	expiry := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	r = acPost(t, s, alice.Token, acTokenCreateMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "name": "automation", "role": "OWNER",
		"expiresAt": expiry.Format(time.RFC3339)}})
	p := acPayload(t, r, "accessTokenCreate")
	tokID, tokSecret := acStr(p, "accessToken.id"), acStr(p, "secret")
	secrets = append(secrets, tokSecret)
	expect("ACCESS_TOKEN_CREATED", alice.ID, "", "AccessToken", tokID, fmt.Sprintf(`{"name": "automation", "role": "OWNER", "expiresAt": %q}`, expiry.Format(time.RFC3339Nano)))

	// The token acts: the events name it, and its creator as the user.
	acPayload(t, acPost(t, s, tokSecret, `mutation($id: ID!) { workspaceUpdate(input: {workspaceId: $id, name: "By token"}) { workspace { id } userErrors { message } } }`,
		map[string]any{"id": wsID}), "workspaceUpdate")
	expect("WORKSPACE_UPDATED", alice.ID, tokID, "Workspace", wsID, `{"name": {"from": "Audited", "to": "By token"}}`)
	inv = acInvite(t, s, tokSecret, wsID, "grace@example.com", "MEMBER")
	expect("MEMBER_INVITED", alice.ID, tokID, "Invitation", inv.ID, `{"email": "grace@example.com", "role": "MEMBER"}`)

	bobTokID, bobSecret := acCreateToken(t, s, bob.Token, wsID, "bob's", "MEMBER")
	secrets = append(secrets, bobSecret)
	expect("ACCESS_TOKEN_CREATED", bob.ID, "", "AccessToken", bobTokID, `{"name": "bob's", "role": "MEMBER", "expiresAt": null}`)
	acPayload(t, acPost(t, s, alice.Token, acMemberRemoveMutation, map[string]any{"id": bobMem}), "memberRemove")
	expect("MEMBER_REMOVED", alice.ID, "", "Membership", bobMem, fmt.Sprintf(`{"userId": %q, "role": "MEMBER", "revokedAccessTokens": 1}`, bob.ID))

	inv = acInvite(t, s, alice.Token, wsID, carol.Email, "ADMIN")
	expect("MEMBER_INVITED", alice.ID, "", "Invitation", inv.ID, `{"email": "carol@example.com", "role": "ADMIN"}`)
	carolMem := acAccept(t, s, carol.Token, inv)
	expect("INVITATION_ACCEPTED", carol.ID, "", "Membership", carolMem, fmt.Sprintf(`{"invitationId": %q, "role": "ADMIN"}`, inv.ID))
	acPayload(t, acPost(t, s, carol.Token, acMemberRemoveMutation, map[string]any{"id": carolMem}), "memberRemove")
	expect("MEMBER_LEFT", carol.ID, "", "Membership", carolMem, fmt.Sprintf(`{"userId": %q, "role": "ADMIN", "revokedAccessTokens": 0}`, carol.ID))

	acPayload(t, acPost(t, s, alice.Token, acTokenRevokeMutation, map[string]any{"id": tokID}), "accessTokenRevoke")
	expect("ACCESS_TOKEN_REVOKED", alice.ID, "", "AccessToken", tokID, `{"name": "automation"}`)

	all := acEvents(t, s, alice.Token, "audit", nil)

	t.Run("EveryMutationRecorded", func(t *testing.T) {
		if len(all) != len(wants) {
			t.Fatalf("%d events, want %d:\n%s", len(all), len(wants), acJSON(all))
		}
		seen := map[string]bool{}
		for i, w := range wants {
			e := all[len(all)-1-i] // the trail is newest first
			seen[w.typ] = true
			got := want{acStr(e, "type"), acStr(e, "actorType"), acStr(e, "user.id"), acStr(e, "accessToken.id"), acStr(e, "resourceType"), acStr(e, "resourceId"), w.changes}
			if got != w {
				t.Errorf("event %d:\n got %+v\nwant %+v", i, got, w)
				continue
			}
			acWantChanges(t, e, w.changes)
			if !strings.HasPrefix(acStr(e, "id"), "aud_") || acStr(e, "createdAt") == "" {
				t.Errorf("event %d: id %q createdAt %q", i, acStr(e, "id"), acStr(e, "createdAt"))
			}
		}
		for _, typ := range []string{"WORKSPACE_CREATED", "WORKSPACE_UPDATED", "PLAN_CHANGED", "MEMBER_INVITED", "INVITATION_ACCEPTED",
			"INVITATION_DECLINED", "INVITATION_REVOKED", "MEMBER_ROLE_CHANGED", "MEMBER_REMOVED", "MEMBER_LEFT", "GRANT_ADDED",
			"GRANT_REMOVED", "ACCESS_TOKEN_CREATED", "ACCESS_TOKEN_REVOKED"} {
			if !seen[typ] {
				t.Errorf("no %s event was checked", typ)
			}
		}
	})

	ids := func(events []any) []string {
		var out []string
		for _, e := range events {
			out = append(out, acStr(e, "id"))
		}
		return out
	}
	filtered := func(keep func(e any) bool) []string {
		var out []string
		for _, e := range all {
			if keep(e) {
				out = append(out, acStr(e, "id"))
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		filter map[string]any
		keep   func(e any) bool
	}{
		{"Filter/Types", map[string]any{"types": []string{"MEMBER_INVITED"}}, func(e any) bool { return acStr(e, "type") == "MEMBER_INVITED" }},
		{"Filter/SeveralTypes", map[string]any{"types": []string{"PLAN_CHANGED", "GRANT_ADDED", "GRANT_REMOVED"}}, func(e any) bool {
			return slices.Contains([]string{"PLAN_CHANGED", "GRANT_ADDED", "GRANT_REMOVED"}, acStr(e, "type"))
		}},
		{"Filter/ActorUser", map[string]any{"actorId": bob.ID}, func(e any) bool { return acStr(e, "user.id") == bob.ID }},
		{"Filter/ActorUserIncludesTheirTokens", map[string]any{"actorId": alice.ID}, func(e any) bool { return acStr(e, "user.id") == alice.ID }},
		{"Filter/ActorToken", map[string]any{"actorId": tokID}, func(e any) bool { return acStr(e, "accessToken.id") == tokID }},
		{"Filter/Resource", map[string]any{"resourceId": wsID}, func(e any) bool { return acStr(e, "resourceId") == wsID }},
		{"Filter/Combined", map[string]any{"types": []string{"WORKSPACE_UPDATED"}, "actorId": tokID, "resourceId": wsID}, func(e any) bool {
			return acStr(e, "type") == "WORKSPACE_UPDATED" && acStr(e, "accessToken.id") == tokID
		}},
		{"Filter/NoMatch", map[string]any{"actorId": "usr" + acNeverSuffix}, func(any) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := filtered(c.keep)
			if c.name != "Filter/NoMatch" && len(want) == 0 {
				t.Fatal("the filter's expectation is empty: the test is wrong")
			}
			if got := ids(acEvents(t, s, alice.Token, "audit", c.filter)); !slices.Equal(got, want) {
				t.Errorf("filter %s:\n got %v\nwant %v", acJSON(c.filter), got, want)
			}
		})
	}
	t.Run("Filter/ActorTokenOnlyItsOwn", func(t *testing.T) {
		for _, e := range acEvents(t, s, alice.Token, "audit", map[string]any{"actorId": tokID}) {
			if acStr(e, "actorType") != "ACCESS_TOKEN" || acStr(e, "user.id") != alice.ID {
				t.Errorf("event by token: %s", acJSON(e))
			}
		}
	})

	for _, c := range []struct {
		name   string
		filter map[string]any
	}{{"Pagination", nil}, {"Pagination/Filtered", map[string]any{"actorId": alice.ID}}} {
		t.Run(c.name, func(t *testing.T) {
			want := ids(acEvents(t, s, alice.Token, "audit", c.filter))
			var got []string
			var after any
			for page := 0; ; page++ {
				vars := map[string]any{"slug": "audit", "first": 4, "after": after}
				if c.filter != nil {
					vars["f"] = c.filter
				}
				conn := acAt(acData(t, acPost(t, s, alice.Token, acEventsQuery, vars)), "workspace.auditEvents")
				if n := acAt(conn, "totalCount"); n != float64(len(want)) {
					t.Errorf("page %d: totalCount %v, want %d", page, n, len(want))
				}
				nodes := acList(conn, "nodes")
				if len(nodes) > 4 {
					t.Fatalf("page %d has %d events, asked for 4", page, len(nodes))
				}
				got = append(got, ids(nodes)...)
				if acAt(conn, "pageInfo.hasNextPage") != true {
					break
				}
				if page > len(want) {
					t.Fatal("pagination does not end")
				}
				after = acAt(conn, "pageInfo.endCursor")
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages:\n got %v\nwant %v", got, want)
			}
		})
	}

	t.Run("MembersAndMinimalCannotRead", func(t *testing.T) {
		eve := acSignUp(t, s, "eve@example.com", "Eve")
		acJoin(t, s, alice.Token, wsID, eve, "MEMBER")
		_, memberSecret := acCreateToken(t, s, alice.Token, wsID, "member-level", "MEMBER")
		secrets = append(secrets, memberSecret)
		for name, tok := range map[string]string{"member": eve.Token, "minimal": dave.Token, "member-level token of an owner": memberSecret} {
			r := acPost(t, s, tok, acEventsQuery, map[string]any{"slug": "audit"})
			if r.errorCode() != "FORBIDDEN" || acAt(r.Data, "workspace.auditEvents") != nil {
				t.Errorf("%s reads the audit trail: %s", name, r.Raw)
			}
			d := acData(t, acPost(t, s, tok, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": acStr(all[0], "id")}))
			if d["node"] != nil {
				t.Errorf("%s reads an audit event by id: %s", name, acJSON(d))
			}
		}
		// Owners (above) and admins may.
		acSetRole(t, s, alice.Token, acMembersOf(t, s, alice.Token, "audit", eve.ID), "ADMIN")
		if len(acEvents(t, s, eve.Token, "audit", nil)) == 0 {
			t.Error("an admin reads no events")
		}
	})

	t.Run("NoSecretInChanges", func(t *testing.T) {
		r := acPost(t, s, alice.Token, `{ workspace(slug: "audit") { auditEvents(first: 100) { nodes { changes } } } }`, nil)
		stored := acRows(t, s, "audit_events")
		for _, secret := range secrets {
			body := secret[4:]
			if strings.Contains(r.Raw, body) || strings.Contains(stored, body) {
				t.Errorf("a token secret is in the audit trail")
			}
		}
		for _, u := range []acUser{alice, bob, carol, dave} {
			if strings.Contains(stored, u.Token[4:]) {
				t.Errorf("%s's session secret is in the audit trail", u.Email)
			}
		}
		if strings.Contains(r.Raw, acPassword) || strings.Contains(stored, acPassword) || strings.Contains(stored, "argon2") || strings.Contains(stored, acSHA256(tokSecret)) {
			t.Error("a password, a password hash or a token hash is in the audit trail")
		}
	})
}

// acMembersOf returns the membership id of userID in the workspace with slug.
func acMembersOf(t testing.TB, s *server, tok, slug, userID string) string {
	t.Helper()
	_, ms := acMembers(t, s, tok, slug)
	if ms[userID] == "" {
		t.Fatalf("%s is not a member of %s", userID, slug)
	}
	return ms[userID]
}

// TestAccountsOutsiderNotFound checks that another workspace's objects are NOT_FOUND to an
// outsider, with the very answer given for ids that never existed, for every mutation that takes
// an id, and that nothing changes.
func TestAccountsOutsiderNotFound(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	bob := acSignUp(t, s, "bob@example.com", "Bob")
	mallory := acSignUp(t, s, "mallory@example.com", "Mallory")
	wsID := acCreateWorkspace(t, s, alice.Token, "Acme", "acme")
	bobMem := acJoin(t, s, alice.Token, wsID, bob, "MEMBER")
	invID := acInvite(t, s, alice.Token, wsID, "dave@example.com", "MEMBER").ID
	malInvID := acInvite(t, s, alice.Token, wsID, mallory.Email, "MEMBER").ID // addressed to mallory (unverified): not hers to revoke
	tokID, tokSecret := acCreateToken(t, s, alice.Token, wsID, "ci", "OWNER")
	r := acPost(t, s, alice.Token, `mutation($id: ID!) { memberGrantAdd(input: {membershipId: $id, role: SOURCE_READ, label: "env:prod"}) {
		membership { grants { id } } userErrors { message } } }`, map[string]any{"id": bobMem})
	grantID := acStr(acPayload(t, r, "memberGrantAdd"), "membership.grants.0.id")
	malWs := acCreateWorkspace(t, s, mallory.Token, "Mal", "mal")
	_, malSecret := acCreateToken(t, s, mallory.Token, malWs, "mal", "OWNER")
	// Alice's own token of another of her workspaces is an outsider to this one.
	aliceWs2 := acCreateWorkspace(t, s, alice.Token, "Alice 2", "alice-two")
	_, alice2Secret := acCreateToken(t, s, alice.Token, aliceWs2, "other", "OWNER")

	type mutation struct {
		name, query, prefix, real string
		session                   bool // refused to tokens before any lookup (FORBIDDEN)
	}
	mutations := []mutation{
		{"workspaceUpdate", `mutation($id: ID!) { workspaceUpdate(input: {workspaceId: $id, name: "Pwned", slug: "pwned"}) { workspace { id } userErrors { field message code } } }`, "ws", wsID, false},
		{"workspaceDelete", `mutation($id: ID!) { workspaceDelete(input: {workspaceId: $id, confirmSlug: "acme"}) { deletedWorkspaceId userErrors { field message code } } }`, "ws", wsID, false},
		{"workspacePlanUpdate", `mutation($id: ID!) { workspacePlanUpdate(input: {workspaceId: $id, plan: BUSINESS}) { workspace { id } userErrors { field message code } } }`, "ws", wsID, false},
		{"memberInvite", `mutation($id: ID!) { memberInvite(input: {workspaceId: $id, email: "mallory2@example.com", role: OWNER}) { invitation { id } userErrors { field message code } } }`, "ws", wsID, false},
		{"accessTokenCreate", `mutation($id: ID!) { accessTokenCreate(input: {workspaceId: $id, name: "x", role: OWNER}) { secret userErrors { field message code } } }`, "ws", wsID, true},
		{"memberUpdate", `mutation($id: ID!) { memberUpdate(input: {membershipId: $id, role: OWNER}) { membership { id } userErrors { field message code } } }`, "mem", bobMem, false},
		{"memberRemove", `mutation($id: ID!) { memberRemove(input: {membershipId: $id}) { removedMembershipId userErrors { field message code } } }`, "mem", bobMem, false},
		{"memberGrantAdd", `mutation($id: ID!) { memberGrantAdd(input: {membershipId: $id, role: SOURCE_ADMIN, label: "env:prod"}) { membership { id } userErrors { field message code } } }`, "mem", bobMem, false},
		{"memberGrantRemove", `mutation($id: ID!) { memberGrantRemove(input: {grantId: $id}) { membership { id } userErrors { field message code } } }`, "grt", grantID, false},
		{"invitationRevoke", `mutation($id: ID!) { invitationRevoke(input: {invitationId: $id}) { invitation { id } userErrors { field message code } } }`, "inv", invID, false},
		{"invitationRevoke/AddressedToOutsider", `mutation($id: ID!) { invitationRevoke(input: {invitationId: $id}) { invitation { id } userErrors { field message code } } }`, "inv", malInvID, false},
		{"invitationAccept", `mutation($id: ID!) { invitationAccept(input: {invitationId: $id}) { membership { id } userErrors { field message code } } }`, "inv", invID, true},
		{"invitationDecline", `mutation($id: ID!) { invitationDecline(input: {invitationId: $id}) { invitation { id } userErrors { field message code } } }`, "inv", invID, true},
		{"accessTokenRevoke", `mutation($id: ID!) { accessTokenRevoke(input: {accessTokenId: $id}) { accessToken { id } userErrors { field message code } } }`, "tok", tokID, false},
	}
	for _, actor := range []struct {
		name, tok string
		token     bool
	}{
		{"Session", mallory.Token, false},
		{"TokenOfAnotherWorkspace", malSecret, true},
		{"CreatorsTokenOfAnotherWorkspace", alice2Secret, true},
	} {
		for _, m := range mutations {
			t.Run(actor.name+"/"+m.name, func(t *testing.T) {
				real := acPost(t, s, actor.tok, m.query, map[string]any{"id": m.real})
				never := acPost(t, s, actor.tok, m.query, map[string]any{"id": m.prefix + acNeverSuffix})
				want := "NOT_FOUND"
				if actor.token && m.session {
					want = "FORBIDDEN"
				}
				acWantError(t, real, want)
				if real.Status != never.Status || acJSON(real.Errors) != acJSON(never.Errors) || acJSON(real.Data) != acJSON(never.Data) {
					t.Errorf("answers differ:\nreal:  %d %s\nnever: %d %s", real.Status, real.Raw, never.Status, never.Raw)
				}
			})
		}
		t.Run(actor.name+"/node", func(t *testing.T) {
			for _, id := range []string{wsID, bobMem, grantID, invID, tokID} {
				d := acData(t, acPost(t, s, actor.tok, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id}))
				if d["node"] != nil {
					t.Errorf("node(%s) = %s", id, acJSON(d))
				}
			}
		})
	}

	t.Run("NothingChanged", func(t *testing.T) {
		d := acData(t, acPost(t, s, alice.Token, `{ workspace(slug: "acme") { name plan { plan }
			members { nodes { id role grants { id } } } invitations(status: PENDING) { totalCount } } }`, nil))
		if acStr(d, "workspace.name") != "Acme" || acStr(d, "workspace.plan.plan") != "FREE" {
			t.Errorf("workspace changed: %s", acJSON(d))
		}
		if got := acAt(d, "workspace.invitations.totalCount"); got != 2.0 {
			t.Errorf("%v pending invitations, want 2", got)
		}
		members := acJSON(acAt(d, "workspace.members.nodes"))
		if !strings.Contains(members, bobMem) || !strings.Contains(members, grantID) || strings.Count(members, `"role":"OWNER"`) != 1 {
			t.Errorf("members changed: %s", members)
		}
		acData(t, acPost(t, s, tokSecret, `{ viewer { id } }`, nil))
		if events := acEvents(t, s, alice.Token, "acme", nil); len(events) != 7 {
			t.Errorf("%d events, want the 7 of the set-up: %s", len(events), acJSON(events))
		}
	})
}
