package app_test

// End-to-end tests of what proves an address and what an invitation's secret is for: sign-up that
// answers alike for every address, links mailed through a real SMTP server on loopback, and
// invitations accepted with the link read from the mail.

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/mail/mailtest"
)

// acWithMail points the server at an SMTP server.
func acWithMail(m *mailtest.Server) func(*config.Config) {
	return func(c *config.Config) {
		c.SMTPURL, c.SMTPFrom, c.PublicURL = m.URL, "Junction <junction@example.com>", "https://junction.example.com"
	}
}

// acSecretIn returns the secret of kind (invitation, email-verification) in a link.
func acSecretIn(t testing.TB, link, kind string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	k, v, _ := strings.Cut(u.Fragment, "=")
	if k != kind || u.Scheme+"://"+u.Host != "https://junction.example.com" {
		t.Fatalf("link %q is not a %s link of https://junction.example.com", link, kind)
	}
	return v
}

const acVerifyMutation = `mutation($t: String!) { emailVerify(input: {token: $t}) {
	token user { id email emailVerified } userErrors { field message code } } }`

// acMailSignUp signs up through the mail: signUp, the link from the mail, emailVerify.
func acMailSignUp(t testing.TB, s *server, m *mailtest.Server, email, name string) acUser {
	t.Helper()
	r := s.post(t, acSignUpMutation, map[string]any{"i": map[string]any{"email": email, "password": acPassword, "name": name}})
	if p := acPayload(t, r, "signUp"); p["token"] != nil || p["user"] != nil {
		t.Fatalf("signUp on a server with mail answered %s", r.Raw)
	}
	msg := m.Next(t)
	if len(msg.To) != 1 || msg.To[0] != email {
		t.Fatalf("sign-up mail went to %v, want %s", msg.To, email)
	}
	secret := acSecretIn(t, msg.Link(t, "#email-verification="), "email-verification")
	p := acPayload(t, s.post(t, acVerifyMutation, map[string]any{"t": secret}), "emailVerify")
	u := acUser{ID: acStr(p, "user.id"), Email: acStr(p, "user.email"), Token: acStr(p, "token")}
	if !strings.HasPrefix(u.Token, "jcs_") || u.Email != email || acAt(p, "user.emailVerified") != true {
		t.Fatalf("emailVerify: %s", acJSON(p))
	}
	return u
}

// TestAccountsSignUpTakenAddress: without a mail server, signUp on an address with an account is a
// log-in attempt, answered and counted as logIn would, never "already has an account".
func TestAccountsSignUpTakenAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *config.Config) { acFastLogin(c); c.LoginMaxFailures = 3 })
	alice := acSignUp(t, s, "alice@example.com", "Alice")
	signUp := func(email, password, name string) gqlResponse {
		return s.post(t, acSignUpMutation, map[string]any{"i": map[string]any{"email": email, "password": password, "name": name}})
	}

	t.Run("WrongPasswordAnsweredAsLogIn", func(t *testing.T) {
		su := signUp("ALICE@example.com", "another password", "Mallory")
		li := acLogIn(t, s, "alice@example.com", "another password")
		e := acWantUserError(t, su, "signUp", "", "INVALID")
		if a, b := acJSON(acAt(su.Data, "signUp.userErrors")), acJSON(acAt(li.Data, "logIn.userErrors")); a != b {
			t.Errorf("signUp answered %s, logIn %s", a, b)
		}
		if strings.Contains(strings.ToLower(e.Message), "account") || strings.Contains(su.Raw, "alice") {
			t.Errorf("signUp's answer %q tells the address has an account", su.Raw)
		}
		if acAt(su.Data, "signUp.token") != nil || acAt(su.Data, "signUp.user") != nil {
			t.Errorf("signUp gave a session: %s", su.Raw)
		}
	})

	t.Run("RightPasswordLogsIn", func(t *testing.T) {
		p := acPayload(t, signUp("alice@example.com", acPassword, "Someone Else"), "signUp")
		tok := acStr(p, "token")
		if acStr(p, "user.id") != alice.ID || !strings.HasPrefix(tok, "jcs_") || tok == alice.Token {
			t.Fatalf("signUp with the account's own password: %s", acJSON(p))
		}
		if d := acData(t, acPost(t, s, tok, `{ viewer { id name } }`, nil)); acStr(d, "viewer.name") != "Alice" {
			t.Errorf("the account changed: %s", acJSON(d))
		}
	})

	t.Run("CountedAsFailedLogIns", func(t *testing.T) {
		acExec(t, s, `DELETE FROM login_throttle`)
		for i := 0; i < 3; i++ {
			acWantUserError(t, signUp("alice@example.com", "not her password", "Mallory"), "signUp", "", "INVALID")
		}
		acWantUserError(t, acLogIn(t, s, "alice@example.com", acPassword), "logIn", "", "THROTTLED")
		// The address is locked as for logIn: signUp of a new address from it is refused alike.
		acWantUserError(t, signUp("someone-new@example.com", acPassword, "New"), "signUp", "", "THROTTLED")
	})
}

// TestAccountsMail runs sign-up, address verification and invitations against a real SMTP server:
// the links are read from the mail it receives.
func TestAccountsMail(t *testing.T) {
	t.Parallel()
	m := mailtest.Start(t, "junction", "smtp pass")
	s := startServer(t, acWithMail(m))

	if d := acData(t, s.post(t, `{ serverInfo { emailEnabled } }`, nil)); acAt(d, "serverInfo.emailEnabled") != true {
		t.Fatalf("serverInfo: %s", acJSON(d))
	}

	var secrets []string
	var ada acUser
	t.Run("SignUpByMail", func(t *testing.T) {
		r := s.post(t, acSignUpMutation, map[string]any{"i": map[string]any{"email": "Ada@Example.com", "password": acPassword, "name": "Ada"}})
		if got := acJSON(r.Data); got != `{"signUp":{"token":null,"user":null,"userErrors":[]}}` {
			t.Errorf("signUp = %s", got)
		}
		msg := m.Next(t)
		if msg.To[0] != "ada@example.com" || msg.From != "junction@example.com" || !strings.Contains(msg.Subject, "Confirm") || !strings.Contains(msg.Text, "Hello Ada") {
			t.Errorf("mail to %v from %s: %q\n%s", msg.To, msg.From, msg.Subject, msg.Text)
		}
		secret := acSecretIn(t, msg.Link(t, "#email-verification="), "email-verification")
		secrets = append(secrets, secret)

		// No account before the link is followed.
		acWantUserError(t, acLogIn(t, s, "ada@example.com", acPassword), "logIn", "", "INVALID")

		p := acPayload(t, s.post(t, acVerifyMutation, map[string]any{"t": secret}), "emailVerify")
		ada = acUser{ID: acStr(p, "user.id"), Email: acStr(p, "user.email"), Token: acStr(p, "token")}
		if !strings.HasPrefix(ada.Token, "jcs_") || ada.Email != "ada@example.com" || acAt(p, "user.emailVerified") != true {
			t.Fatalf("emailVerify: %s", acJSON(p))
		}
		acWantUserError(t, s.post(t, acVerifyMutation, map[string]any{"t": secret}), "emailVerify", "token", "INVALID") // once
		acLogInOK(t, s, "ada@example.com")
	})
	if ada.Token == "" {
		t.FailNow()
	}

	t.Run("SignUpAnswersAlike", func(t *testing.T) {
		const sel = `mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } emailSent userErrors { field message code } } }`
		taken := s.post(t, sel, map[string]any{"i": map[string]any{"email": "ada@example.com", "password": "another password", "name": "Mallory"}})
		free := s.post(t, sel, map[string]any{"i": map[string]any{"email": "free@example.com", "password": "another password", "name": "Free"}})
		if taken.Raw != free.Raw || taken.Status != free.Status {
			t.Errorf("answers differ:\ntaken: %s\nfree:  %s", taken.Raw, free.Raw)
		}
		if acAt(taken.Data, "signUp.emailSent") != true {
			t.Errorf("emailSent: %s", taken.Raw)
		}
		toAda, toFree := m.Next(t), m.Next(t)
		if toAda.To[0] != "ada@example.com" || !strings.Contains(toAda.Subject, "already have") || strings.Contains(toAda.Text, "#email-verification=") {
			t.Errorf("mail to the address with an account: %q\n%s", toAda.Subject, toAda.Text)
		}
		if toFree.To[0] != "free@example.com" {
			t.Errorf("mail to %v", toFree.To)
		}
		secrets = append(secrets, acSecretIn(t, toFree.Link(t, "#email-verification="), "email-verification"))
		acLogInOK(t, s, "ada@example.com") // her password did not change
	})

	wsID := acCreateWorkspace(t, s, ada.Token, "Acme", "acme")

	t.Run("InvitationMailed", func(t *testing.T) {
		r := acPost(t, s, ada.Token, acInviteMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "email": "grace@example.com", "role": "ADMIN"}})
		p := acPayload(t, r, "memberInvite")
		token, acceptURL := acStr(p, "token"), acStr(p, "acceptUrl")
		if acAt(p, "emailSent") != true || acceptURL != "https://junction.example.com/#invitation="+token {
			t.Fatalf("memberInvite: %s", r.Raw)
		}
		msg := m.Next(t)
		if msg.To[0] != "grace@example.com" || msg.Subject != "Ada invited you to Acme on Junction" || !strings.Contains(msg.Text, "as admin") {
			t.Errorf("invitation mail to %v: %q\n%s", msg.To, msg.Subject, msg.Text)
		}
		link := msg.Link(t, "#invitation=")
		if link != acceptURL {
			t.Errorf("mailed link %q, acceptUrl %q", link, acceptURL)
		}
		secret := acSecretIn(t, link, "invitation")
		secrets = append(secrets, secret)

		// Grace signs up with another address of hers and accepts with the link from the mail.
		grace := acMailSignUp(t, s, m, "grace.h@example.com", "Grace")
		d := acData(t, acPost(t, s, grace.Token, `query($t: String!) { invitation(token: $t) { workspaceName role invitedBy { name } viewerCanAccept } }`, map[string]any{"t": secret}))
		if acJSON(d) != `{"invitation":{"invitedBy":{"name":"Ada"},"role":"ADMIN","viewerCanAccept":true,"workspaceName":"Acme"}}` {
			t.Errorf("invitation(token:) = %s", acJSON(d))
		}
		p = acPayload(t, acPost(t, s, grace.Token, acAcceptMutation, acAcceptToken(secret)), "invitationAccept")
		if acStr(p, "workspace.slug") != "acme" || acStr(p, "workspace.viewerRole") != "ADMIN" {
			t.Errorf("invitationAccept: %s", acJSON(p))
		}
	})

	t.Run("VerifiedAddressSeesAndAnswersById", func(t *testing.T) {
		bob := acMailSignUp(t, s, m, "bob@example.com", "Bob")
		inv := acInvite(t, s, ada.Token, wsID, "bob@example.com", "MEMBER")
		secrets = append(secrets, inv.Token)
		m.Next(t) // the invitation
		list := acList(acData(t, acPost(t, s, bob.Token, `{ viewer { invitations { id viewerCanAccept } } }`, nil)), "viewer.invitations")
		if len(list) != 1 || acStr(list[0], "id") != inv.ID || acAt(list[0], "viewerCanAccept") != true {
			t.Fatalf("bob's invitations: %s", acJSON(list))
		}
		p := acPayload(t, acPost(t, s, bob.Token, acAcceptMutation, acAcceptID(inv.ID)), "invitationAccept")
		if acStr(p, "membership.role") != "MEMBER" {
			t.Errorf("invitationAccept by id: %s", acJSON(p))
		}
	})

	t.Run("AccountMailBounded", func(t *testing.T) {
		before := len(m.Received())
		var last gqlResponse
		for i := 0; i < 6; i++ {
			last = s.post(t, `mutation($i: SignUpInput!) { signUp(input: $i) { emailSent userErrors { code } } }`,
				map[string]any{"i": map[string]any{"email": "flood@example.com", "password": acPassword, "name": "Flood"}})
		}
		if got := acJSON(last.Data); got != `{"signUp":{"emailSent":false,"userErrors":[]}}` {
			t.Errorf("sixth signUp within an hour: %s", got)
		}
		for i := 0; i < 5; i++ {
			m.Next(t)
		}
		if n := len(m.Received()) - before; n != 5 {
			t.Errorf("%d messages to one address within an hour, want 5", n)
		}
	})

	t.Run("SecretsStoredHashedNeverLogged", func(t *testing.T) {
		logs := s.Logs.String()
		var stored strings.Builder
		for _, table := range []string{"email_verifications", "invitations", "users", "audit_events", "notifications", "account_mails"} {
			stored.WriteString(acRows(t, s, table))
		}
		for _, secret := range secrets {
			body := secret[4:]
			if strings.Contains(logs, body) {
				t.Errorf("the logs hold a secret (%s…)", secret[:8])
			}
			if strings.Contains(stored.String(), body) {
				t.Errorf("the database holds a secret in clear (%s…)", secret[:8])
			}
		}
		var n int
		if err := s.App.DB().Get(context.Background(), &n, `SELECT COUNT(*) FROM email_verifications WHERE token_hash = ?`, acSHA256(secrets[0])); err != nil || n != 1 {
			t.Errorf("email_verifications holds %d rows with the SHA-256 of the first link's secret: %v", n, err)
		}
		if regexp.MustCompile(`jc[iv]_[A-Za-z0-9_-]{20,}`).MatchString(logs) {
			t.Error("the logs hold a link's secret")
		}
	})
}

// TestAccountsUnverifiedAccount: an account made before the server sent mail has an address that
// nothing proves. It sees no invitation to that address and cannot answer one by id until it asks
// for a link and follows it.
func TestAccountsUnverifiedAccount(t *testing.T) {
	t.Parallel()
	var dbPath string
	first := startServer(t, func(c *config.Config) { dbPath = c.DatabaseURL })
	carol := acSignUp(t, first, "carol@example.com", "Carol")
	owner := acSignUp(t, first, "owner@example.com", "Owner")
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	m := mailtest.Start(t, "", "")
	s := startServer(t, acWithMail(m), func(c *config.Config) { c.DatabaseURL = dbPath })

	wsID := acCreateWorkspace(t, s, owner.Token, "Team", "team")
	inv := acInvite(t, s, owner.Token, wsID, carol.Email, "OWNER")
	m.Next(t) // the invitation, to carol's mailbox

	const invitations = `{ viewer { emailVerified invitations { id } } }`
	t.Run("CannotAnswerByAddress", func(t *testing.T) {
		if got := acJSON(acData(t, acPost(t, s, carol.Token, invitations, nil))); got != `{"viewer":{"emailVerified":false,"invitations":[]}}` {
			t.Errorf("carol's view: %s", got)
		}
		acWantError(t, acPost(t, s, carol.Token, acAcceptMutation, acAcceptID(inv.ID)), "NOT_FOUND")
		if d := acData(t, acPost(t, s, carol.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": inv.ID})); d["node"] != nil {
			t.Errorf("node(id) = %s", acJSON(d))
		}
	})

	t.Run("VerifyThenAnswer", func(t *testing.T) {
		p := acPayload(t, acPost(t, s, carol.Token, `mutation { emailVerificationSend { emailSent userErrors { field message code } } }`, nil), "emailVerificationSend")
		if acAt(p, "emailSent") != true {
			t.Fatalf("emailVerificationSend: %s", acJSON(p))
		}
		msg := m.Next(t)
		if msg.To[0] != carol.Email || !strings.Contains(msg.Text, "Hello Carol") {
			t.Errorf("verification mail to %v:\n%s", msg.To, msg.Text)
		}
		secret := acSecretIn(t, msg.Link(t, "#email-verification="), "email-verification")
		p = acPayload(t, s.post(t, acVerifyMutation, map[string]any{"t": secret}), "emailVerify")
		if p["token"] != nil || acStr(p, "user.id") != carol.ID || acAt(p, "user.emailVerified") != true {
			t.Errorf("emailVerify of an account: %s", acJSON(p))
		}
		d := acData(t, acPost(t, s, carol.Token, invitations, nil))
		if acAt(d, "viewer.emailVerified") != true || len(acList(d, "viewer.invitations")) != 1 {
			t.Errorf("carol's view once verified: %s", acJSON(d))
		}
		e := acWantUserError(t, acPost(t, s, carol.Token, `mutation { emailVerificationSend { emailSent userErrors { field message code } } }`, nil), "emailVerificationSend", "", "NOT_ALLOWED")
		if !strings.Contains(e.Message, "verified already") {
			t.Errorf("message %q", e.Message)
		}
		p = acPayload(t, acPost(t, s, carol.Token, acAcceptMutation, acAcceptID(inv.ID)), "invitationAccept")
		if acStr(p, "membership.role") != "OWNER" {
			t.Errorf("invitationAccept by id: %s", acJSON(p))
		}
	})
}

// TestAccountsReadmeWalkThrough runs the operations of the README's GraphiQL walk-through as they
// are written, on a server set up as the README's commands set it up (no mail server), with the
// ids and tokens each step gives pasted where the text shows "ws_..." and "jci_...".
func TestAccountsReadmeWalkThrough(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "### A walk-through in GraphiQL")
	end := strings.Index(text[start:], "### Rules")
	if start < 0 || end < 0 {
		t.Fatal("the README has no walk-through section")
	}
	var ops []string
	for _, block := range regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(text[start:start+end], -1) {
		ops = append(ops, acOperations(block[1])...)
	}
	if len(ops) != 6 {
		t.Fatalf("want 6 operations in the walk-through (signUp, workspaceCreate, memberInvite, invitation, invitationAccept, the trail), got %d: %q", len(ops), ops)
	}
	s := startServer(t)
	run := func(tok, op string) map[string]any {
		t.Helper()
		r := acPost(t, s, tok, op, nil)
		d := acData(t, r)
		for field, v := range d {
			if ue := acList(v, "userErrors"); len(ue) > 0 {
				t.Fatalf("%s: userErrors %s\n%s", field, acJSON(ue), op)
			}
		}
		return d
	}
	ada := acStr(run("", ops[0]), "signUp.token")
	wsID := acStr(run(ada, ops[1]), "workspaceCreate.workspace.id")
	invite := run(ada, strings.Replace(ops[2], "ws_...", wsID, 1))
	token := acStr(invite, "memberInvite.token")
	if token == "" || acStr(invite, "memberInvite.acceptUrl") == "" {
		t.Fatalf("memberInvite: %s", acJSON(invite))
	}
	grace := acStr(run("", strings.NewReplacer("ada@", "grace@", `"Ada"`, `"Grace"`).Replace(ops[0])), "signUp.token")
	if d := run(grace, strings.Replace(ops[3], "jci_...", token, 1)); acAt(d, "invitation.viewerCanAccept") != true {
		t.Errorf("invitation: %s", acJSON(d))
	}
	if d := run(grace, strings.Replace(ops[4], "jci_...", token, 1)); acStr(d, "invitationAccept.workspace.viewerRole") != "ADMIN" {
		t.Errorf("invitationAccept: %s", acJSON(d))
	}
	if d := run(ada, ops[5]); len(acList(d, "workspace.members.nodes")) != 2 || len(acList(d, "workspace.auditEvents.nodes")) == 0 {
		t.Errorf("the trail: %s", acJSON(d))
	}
}

// acOperations splits a GraphQL document into its top-level operations, as one pastes and runs
// them one at a time.
func acOperations(doc string) []string {
	var ops []string
	depth, from := 0, -1
	for i, r := range doc {
		switch r {
		case '{':
			if depth == 0 && from < 0 {
				from = i
				if j := strings.LastIndex(doc[:i], "mutation"); j >= 0 && strings.TrimSpace(doc[j+len("mutation"):i]) == "" {
					from = j
				}
			}
			depth++
		case '}':
			if depth--; depth == 0 {
				ops = append(ops, doc[from:i+1])
				from = -1
			}
		}
	}
	return ops
}

// TestAccountsMailServerDown: when the mail server does not take a message, the answer says so
// (emailSent false) and the operator's log says why, without the link's secret; an invitation's
// token is still shown to the inviter.
func TestAccountsMailServerDown(t *testing.T) {
	t.Parallel()
	var dbPath string
	first := startServer(t, func(c *config.Config) { dbPath = c.DatabaseURL })
	owner := acSignUp(t, first, "owner@example.com", "Owner")
	wsID := acCreateWorkspace(t, first, owner.Token, "Team", "team")
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *config.Config) {
		c.DatabaseURL = dbPath
		c.SMTPURL, c.SMTPFrom, c.PublicURL = "smtp://"+dlvClosedPort(t), "junction@example.com", "https://junction.example.com"
	})

	r := s.post(t, `mutation($i: SignUpInput!) { signUp(input: $i) { token emailSent userErrors { code } } }`,
		map[string]any{"i": map[string]any{"email": "ada@example.com", "password": acPassword, "name": "Ada"}})
	if got := acJSON(r.Data); got != `{"signUp":{"emailSent":false,"token":null,"userErrors":[]}}` {
		t.Errorf("signUp with the mail server down: %s", got)
	}
	r = acPost(t, s, owner.Token, acInviteMutation, map[string]any{"i": map[string]any{"workspaceId": wsID, "email": "grace@example.com", "role": "MEMBER"}})
	p := acPayload(t, r, "memberInvite")
	token := acStr(p, "token")
	if acAt(p, "emailSent") != false || !strings.HasPrefix(token, "jci_") {
		t.Errorf("memberInvite with the mail server down: %s", r.Raw)
	}
	logs := s.Logs.String()
	if strings.Count(logs, `"msg":"mail not sent"`) != 2 {
		t.Errorf("want two log lines saying a mail was not sent:\n%s", logs)
	}
	if strings.Contains(logs, token[4:]) || regexp.MustCompile(`jc[iv]_[A-Za-z0-9_-]{20,}`).MatchString(logs) {
		t.Error("the log holds a link's secret")
	}
}
