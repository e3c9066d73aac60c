package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/junctioncdp/junction/internal/apperr"
)

func TestSignUpPasswordHashing(t *testing.T) {
	const password = "correct horse battery staple"
	hash, err := hashPassword(password)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("PHCForm", func(t *testing.T) {
		const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
		if !strings.HasPrefix(hash, prefix) {
			t.Errorf("hash %q does not start with %q", hash, prefix)
		}
		parts := strings.Split(hash, "$")
		if got, want := len(parts), 6; got != want {
			t.Fatalf("hash has %d $-separated parts, want %d: %q", got, want, hash)
		}
		salt, err := base64.RawStdEncoding.DecodeString(parts[4])
		if err != nil || len(salt) != 16 {
			t.Errorf("salt %q: %d bytes, %v; want 16", parts[4], len(salt), err)
		}
		key, err := base64.RawStdEncoding.DecodeString(parts[5])
		if err != nil || len(key) != argonKeyLen {
			t.Errorf("key %q: %d bytes, %v; want %d", parts[5], len(key), err, argonKeyLen)
		}
		if strings.Contains(hash, password) {
			t.Error("the hash contains the password")
		}
	})

	t.Run("RightPasswordMatches", func(t *testing.T) {
		ok, err := checkPassword(hash, password)
		if err != nil || !ok {
			t.Errorf("checkPassword(right) = %v, %v; want true", ok, err)
		}
	})

	t.Run("WrongPasswordDoesNotMatch", func(t *testing.T) {
		for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", password + " "} {
			ok, err := checkPassword(hash, wrong)
			if err != nil || ok {
				t.Errorf("checkPassword(%q) = %v, %v; want false, nil", wrong, ok, err)
			}
		}
	})

	t.Run("SaltedEachTime", func(t *testing.T) {
		again, err := hashPassword(password)
		if err != nil {
			t.Fatal(err)
		}
		if again == hash {
			t.Error("two hashes of one password are equal: no random salt")
		}
		if ok, err := checkPassword(again, password); err != nil || !ok {
			t.Errorf("second hash does not verify: %v, %v", ok, err)
		}
	})

	t.Run("ParametersReadFromHash", func(t *testing.T) {
		// A hash made with other costs (as after a future change of the constants) still verifies:
		// checkPassword takes them from the hash, not from the constants.
		salt := []byte("0123456789abcdef")
		key := argon2.IDKey([]byte(password), salt, 1, 8*1024, 2, 16)
		b64 := base64.RawStdEncoding
		other := "$argon2id$v=19$m=8192,t=1,p=2$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
		if ok, err := checkPassword(other, password); err != nil || !ok {
			t.Errorf("hash with other parameters: %v, %v; want true", ok, err)
		}
		if ok, err := checkPassword(other, "wrong password"); err != nil || ok {
			t.Errorf("hash with other parameters, wrong password: %v, %v; want false", ok, err)
		}
	})

	t.Run("MalformedHashIsAnError", func(t *testing.T) {
		for _, bad := range []string{
			"",
			"plaintext",
			"$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$a2V5",
			"$argon2id$v=16$m=19456,t=2,p=1$c2FsdA$a2V5",
			"$argon2id$v=19$m=x,t=2,p=1$c2FsdA$a2V5",
			"$argon2id$v=19$m=19456,t=2,p=1$!!!$a2V5",
			"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$!!!",
			"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
		} {
			if ok, err := checkPassword(bad, password); err == nil || ok {
				t.Errorf("checkPassword(%q) = %v, %v; want an error", bad, ok, err)
			}
		}
	})

	t.Run("DummyHashIsValidAndMatchesNothingUsual", func(t *testing.T) {
		if !strings.HasPrefix(dummyHash, "$argon2id$") {
			t.Fatalf("dummyHash %q is not an argon2id hash: logIn of an unknown email would fail fast", dummyHash)
		}
		if ok, err := checkPassword(dummyHash, password); err != nil || ok {
			t.Errorf("checkPassword(dummyHash) = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestTokenSecret(t *testing.T) {
	for _, prefix := range []string{sessionPrefix, tokenPrefix} {
		t.Run("Format/"+strings.TrimSuffix(prefix, "_"), func(t *testing.T) {
			secret, hash := newSecret(prefix)
			if !strings.HasPrefix(secret, prefix) {
				t.Fatalf("secret %q lacks prefix %q", secret, prefix)
			}
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, prefix))
			if err != nil || len(raw) != 32 {
				t.Errorf("secret body: %d bytes, %v; want 32 random bytes in unpadded base64url", len(raw), err)
			}
			if got, want := len(secret), len(prefix)+43; got != want {
				t.Errorf("len(secret) = %d, want %d", got, want)
			}
			sum := sha256.Sum256([]byte(secret))
			if want := hex.EncodeToString(sum[:]); hash != want {
				t.Errorf("hash = %q, want hex SHA-256 %q", hash, want)
			}
			if hashSecret(secret) != hash {
				t.Error("hashSecret(secret) differs from the hash newSecret returned")
			}
			if strings.Contains(hash, strings.TrimPrefix(secret, prefix)) {
				t.Error("the hash contains the secret")
			}
		})
	}

	t.Run("Unique", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 1000; i++ {
			s, h := newSecret(tokenPrefix)
			if seen[s] || seen[h] {
				t.Fatalf("secret repeated after %d", i)
			}
			seen[s], seen[h] = true, true
		}
	})

	t.Run("HashIsDeterministicAndDistinct", func(t *testing.T) {
		if hashSecret("jct_a") != hashSecret("jct_a") {
			t.Error("hashSecret is not deterministic")
		}
		if hashSecret("jct_a") == hashSecret("jct_b") {
			t.Error("different secrets hash alike")
		}
	})
}

func TestTokenBearerHeader(t *testing.T) {
	for _, c := range []struct {
		header string
		secret string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer jcs_x-y_z", "jcs_x-y_z", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"", "", false},
		{"abc", "", false},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"Token abc", "", false},
		{"Bearerabc", "", false},
	} {
		secret, ok := bearer(c.header)
		if secret != c.secret || ok != c.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", c.header, secret, ok, c.secret, c.ok)
		}
	}

	// Authenticate refuses what bearer refuses, and secrets of no known kind, before any lookup:
	// the service needs no database for these.
	s := &Service{policy: DefaultPolicy, watchers: newWatchers()}
	ctx := context.Background()
	t.Run("EmptyHeaderIsAnonymous", func(t *testing.T) {
		if v, err := s.Authenticate(ctx, "  "); v != nil || err != nil {
			t.Errorf("Authenticate(blank) = %v, %v; want nil, nil", v, err)
		}
	})
	t.Run("NotBearerIsUnauthenticated", func(t *testing.T) {
		if _, err := s.Authenticate(ctx, "Basic abc"); apperr.CodeOf(err) != apperr.Unauthenticated {
			t.Errorf("Authenticate(Basic) err = %v, want UNAUTHENTICATED", err)
		}
	})
	t.Run("UnknownKindIsBadCredentials", func(t *testing.T) {
		if _, err := s.Authenticate(ctx, "Bearer garbage"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(garbage) err = %v, want ErrBadCredentials", err)
		}
	})
	t.Run("InitPayloadWithoutCredentialsIsAnonymous", func(t *testing.T) {
		for _, p := range []map[string]any{nil, {}, {"Authorization": ""}, {"other": "x"}} {
			if v, err := s.AuthenticateInitPayload(ctx, p); v != nil || err != nil {
				t.Errorf("AuthenticateInitPayload(%v) = %v, %v; want nil, nil", p, v, err)
			}
		}
	})
	t.Run("InitPayloadForms", func(t *testing.T) {
		for _, p := range []map[string]any{
			{"Authorization": "Bearer garbage"},
			{"authorization": "Bearer garbage"},
			{"headers": map[string]any{"Authorization": "Bearer garbage"}},
			{"authToken": "garbage"},
			{"authToken": "Bearer garbage"},
		} {
			if _, err := s.AuthenticateInitPayload(ctx, p); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("AuthenticateInitPayload(%v) err = %v, want ErrBadCredentials (the credential was read)", p, err)
			}
		}
	})
}

func TestThrottleDelay(t *testing.T) {
	s := &Service{policy: Policy{SlowAfter: 3, Delay: 250 * time.Millisecond}}
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, 0},
		{2, 0},
		{3, 250 * time.Millisecond},
		{4, 500 * time.Millisecond},
		{5, time.Second},
		{6, 2 * time.Second},
		{7, 2 * time.Second}, // capped at 8 x Delay
		{1000, 2 * time.Second},
	} {
		if got := s.delayFor(c.failures); got != c.want {
			t.Errorf("delayFor(%d) = %v, want %v", c.failures, got, c.want)
		}
	}

	t.Run("ZeroDelay", func(t *testing.T) {
		s := &Service{policy: Policy{SlowAfter: 3, Delay: 0}}
		for _, n := range []int{0, 3, 10} {
			if got := s.delayFor(n); got != 0 {
				t.Errorf("delayFor(%d) = %v with Delay 0", n, got)
			}
		}
	})

	t.Run("LockoutMessageRoundsUp", func(t *testing.T) {
		for _, c := range []struct {
			d    time.Duration
			want string
		}{
			{time.Second, "a minute"},
			{time.Minute, "a minute"},
			{time.Minute + time.Second, "2 minutes"},
			{15 * time.Minute, "15 minutes"},
			{14*time.Minute + time.Millisecond, "15 minutes"},
		} {
			if got := roundUp(c.d); got != c.want {
				t.Errorf("roundUp(%v) = %q, want %q", c.d, got, c.want)
			}
		}
	})
}

func TestMemberRoleOrder(t *testing.T) {
	roles := []Role{Owner, Admin, Member, Minimal}
	for i, a := range roles {
		for j, b := range roles {
			if got, want := a.AtLeast(b), i <= j; got != want {
				t.Errorf("%s.AtLeast(%s) = %v, want %v", a, b, got, want)
			}
			want := a
			if j > i {
				want = b
			}
			if got := Lesser(a, b); got != want {
				t.Errorf("Lesser(%s, %s) = %s, want %s", a, b, got, want)
			}
		}
	}
	if Role("ROOT").Valid() || Role("ROOT").AtLeast(Minimal) || Owner.AtLeast("ROOT") {
		t.Error("an unknown role is treated as valid")
	}
}

func TestTokenAndSessionWatchers(t *testing.T) {
	newService := func() *Service { return &Service{watchers: newWatchers()} }
	session := &Viewer{User: User{ID: "usr_1"}, SessionID: "ses_1"}
	token := &Viewer{User: User{ID: "usr_1"}, Token: &Token{ID: "tok_1"}}

	// unregistered waits for the registrations to go: context.AfterFunc runs its function in a
	// goroutine of its own, after the context ends.
	unregistered := func(t *testing.T, s *Service) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.watching() != 0 || s.watcherKeys() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("still watching %d contexts under %d credentials", s.watching(), s.watcherKeys())
			}
			time.Sleep(time.Millisecond)
		}
	}

	t.Run("RevokedCancelsWithCause", func(t *testing.T) {
		s := newService()
		ctx := s.Watch(context.Background(), session)
		if got := s.watching(); got != 1 {
			t.Fatalf("watching %d, want 1", got)
		}
		s.Revoked("ses_1")
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("context not cancelled by Revoked")
		}
		if cause := context.Cause(ctx); !errors.Is(cause, ErrRevoked) {
			t.Errorf("cause = %v, want ErrRevoked", cause)
		}
		unregistered(t, s)
	})

	t.Run("TokenKeyedByTokenID", func(t *testing.T) {
		s := newService()
		ctx := s.Watch(context.Background(), token)
		s.Revoked("usr_1", "ses_1") // neither is the token
		if ctx.Err() != nil {
			t.Fatal("revoking other credentials ended the token's context")
		}
		s.Revoked("tok_1")
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), ErrRevoked) {
			t.Errorf("cause = %v", context.Cause(ctx))
		}
		unregistered(t, s)
	})

	t.Run("OtherCredentialsUntouched", func(t *testing.T) {
		s := newService()
		a := s.Watch(context.Background(), session)
		b := s.Watch(context.Background(), &Viewer{SessionID: "ses_2"})
		s.Revoked("ses_2")
		<-b.Done()
		if a.Err() != nil {
			t.Error("revoking ses_2 ended ses_1's context")
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.watching() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("watching %d after one of two was revoked, want 1", s.watching())
			}
			time.Sleep(time.Millisecond)
		}
	})

	t.Run("EveryConnectionOfACredential", func(t *testing.T) {
		s := newService()
		var ctxs []context.Context
		for i := 0; i < 5; i++ {
			ctxs = append(ctxs, s.Watch(context.Background(), session))
		}
		s.Revoked("ses_1")
		for i, ctx := range ctxs {
			if !errors.Is(context.Cause(ctx), ErrRevoked) {
				t.Errorf("context %d: cause %v", i, context.Cause(ctx))
			}
		}
		unregistered(t, s)
	})

	t.Run("ParentEndUnregisters", func(t *testing.T) {
		s := newService()
		parent, cancel := context.WithCancel(context.Background())
		ctx := s.Watch(parent, session)
		cancel()
		<-ctx.Done()
		if cause := context.Cause(ctx); errors.Is(cause, ErrRevoked) || !errors.Is(cause, context.Canceled) {
			t.Errorf("cause = %v, want context.Canceled", cause)
		}
		unregistered(t, s)
		s.Revoked("ses_1") // nothing left to cancel; must not panic
	})

	t.Run("NoLeak", func(t *testing.T) {
		s := newService()
		var cancels []context.CancelFunc
		for i := 0; i < 1000; i++ {
			parent, cancel := context.WithCancel(context.Background())
			v := session
			if i%2 == 1 {
				v = &Viewer{Token: &Token{ID: "tok_" + string(rune('a'+i%26))}}
			}
			s.Watch(parent, v)
			cancels = append(cancels, cancel)
		}
		if got := s.watching(); got != 1000 {
			t.Fatalf("watching %d, want 1000", got)
		}
		for _, c := range cancels {
			c()
		}
		unregistered(t, s)
	})

	t.Run("NilViewer", func(t *testing.T) {
		s := newService()
		ctx := context.Background()
		if got := s.Watch(ctx, nil); got != ctx {
			t.Error("Watch(nil viewer) did not return ctx itself")
		}
		if s.watching() != 0 {
			t.Error("anonymous connection registered")
		}
	})
}

// watcherKeys counts the credentials with registrations, for the leak checks.
func (s *Service) watcherKeys() int {
	s.watchers.mu.Lock()
	defer s.watchers.mu.Unlock()
	return len(s.watchers.byID)
}

func TestValidateName(t *testing.T) {
	for _, c := range []struct {
		name, in, code string
	}{
		{"OK", "Ada Lovelace", ""},
		{"OKNonASCII", "Zoë – 東京 🚀", ""},
		{"OKArabic", "مرحبا", ""}, // right-to-left text is fine; only the overrides are refused
		{"Required", "  ", apperr.Required},
		{"TooLong", strings.Repeat("é", 101), apperr.TooLong},
		{"NUL", "Ada\x00", apperr.InvalidValue},
		{"NewLine", "Ada\nBcc: eve@example.com", apperr.InvalidValue},
		{"Escape", "Ada\x1b[31m", apperr.InvalidValue},
		{"DEL", "Ada\x7f", apperr.InvalidValue},
		{"C1", "Ada\u0085", apperr.InvalidValue},
		{"LRE", "a\u202Ab", apperr.InvalidValue},
		{"RLO", "invoice\u202Efdp.exe", apperr.InvalidValue},
		{"PDF", "a\u202Cb", apperr.InvalidValue},
		{"LRI", "a\u2066b", apperr.InvalidValue},
		{"PDI", "a\u2069b", apperr.InvalidValue},
	} {
		t.Run(c.name, func(t *testing.T) {
			var errs apperr.UserErrors
			ValidateName(&errs, "name", c.in)
			switch {
			case c.code == "" && len(errs) > 0:
				t.Errorf("ValidateName(%q) = %+v, want no error", c.in, errs)
			case c.code != "" && (len(errs) != 1 || errs[0].Code != c.code || errs[0].Field != "name" || !strings.Contains(errs[0].Message, "name")):
				t.Errorf("ValidateName(%q) = %+v, want one %s error on name", c.in, errs, c.code)
			}
		})
	}
	t.Run("Email", func(t *testing.T) {
		for _, email := range []string{"ada\u202e@example.com", "ada@exam\x00ple.com", "ada@example.com\r\nBcc: eve@example.com"} {
			var errs apperr.UserErrors
			validateEmail(&errs, "email", email)
			if len(errs) != 1 || errs[0].Field != "email" || errs[0].Code != apperr.InvalidValue {
				t.Errorf("validateEmail(%q) = %+v, want one INVALID error on email", email, errs)
			}
		}
	})
}
