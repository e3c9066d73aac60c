package workspace

import (
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
)

func TestInvitationCanBeAnsweredBy(t *testing.T) {
	verified := db.Now()
	person := func(email string, verifiedAt *db.Time) *auth.Viewer {
		return &auth.Viewer{User: auth.User{ID: "usr_1", Email: email, EmailVerifiedAt: verifiedAt}, SessionID: "ses_1"}
	}
	token := person("grace@example.com", &verified)
	token.Token, token.SessionID = &auth.Token{ID: "tok_1"}, ""
	pending := Invitation{Email: "grace@example.com", Status: Pending, ExpiresAt: db.Time{Time: time.Now().Add(time.Hour)}}
	expired := pending
	expired.ExpiresAt = db.Time{Time: time.Now().Add(-time.Second)}
	byToken := pending
	byToken.ByToken = true
	for _, c := range []struct {
		name string
		inv  Invitation
		v    *auth.Viewer
		want bool
	}{
		{"VerifiedInvitee", pending, person("grace@example.com", &verified), true},
		{"UnverifiedInvitee", pending, person("grace@example.com", nil), false},
		{"SomeoneElseVerified", pending, person("eve@example.com", &verified), false},
		{"TokenHolder", byToken, person("eve@example.com", nil), true},
		{"TokenHolderExpired", func() Invitation { i := expired; i.ByToken = true; return i }(), person("eve@example.com", nil), false},
		{"VerifiedInviteeExpired", expired, person("grace@example.com", &verified), false},
		{"AccessToken", byToken, token, false},
		{"Anonymous", byToken, nil, false},
		{"Revoked", func() Invitation { i := byToken; i.Status = Revoked; return i }(), person("grace@example.com", &verified), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.inv.CanBeAnsweredBy(c.v); got != c.want {
				t.Errorf("CanBeAnsweredBy = %v, want %v", got, c.want)
			}
		})
	}
}
