package mail_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/mail/mailtest"
)

func TestSend(t *testing.T) {
	srv := mailtest.Start(t, "junction", "s3cret pass")
	m, err := mail.New(mail.Config{URL: srv.URL, From: "Jünction <noreply@example.com>", PublicURL: "https://junction.example.com/"})
	if err != nil {
		t.Fatal(err)
	}
	text := "Hello Zoë,\n\n.a line starting with a dot\nFollow https://junction.example.com/#invitation=jci_abc-DEF_123 to join.\n" +
		strings.Repeat("long ", 40) + "\n"
	if err := m.Send(context.Background(), mail.Message{To: "zoe@example.com", Subject: "Zoë, join “Acme”\r\nBcc: eve@example.com", Text: text}); err != nil {
		t.Fatal(err)
	}
	got := srv.Next(t)

	t.Run("Envelope", func(t *testing.T) {
		if got.From != "noreply@example.com" || len(got.To) != 1 || got.To[0] != "zoe@example.com" {
			t.Errorf("envelope from %q to %q", got.From, got.To)
		}
	})
	t.Run("Headers", func(t *testing.T) {
		if got.Subject != "Zoë, join “Acme”\r\nBcc: eve@example.com" {
			t.Errorf("subject %q", got.Subject)
		}
		if got.Header.Get("Bcc") != "" || strings.Count(string(got.Raw), "\r\nBcc:") != 0 {
			t.Error("a line break in the subject started a header")
		}
		for k, want := range map[string]string{"To": "<zoe@example.com>", "Content-Type": "text/plain; charset=utf-8", "Auto-Submitted": "auto-generated"} {
			if v := got.Header.Get(k); v != want {
				t.Errorf("%s: %q, want %q", k, v, want)
			}
		}
		if from, err := got.Header.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "Jünction" || from[0].Address != "noreply@example.com" {
			t.Errorf("From %q: %v %v", got.Header.Get("From"), from, err)
		}
		if got.Header.Get("Date") == "" || !strings.HasSuffix(got.Header.Get("Message-ID"), "@example.com>") {
			t.Errorf("Date %q, Message-ID %q", got.Header.Get("Date"), got.Header.Get("Message-ID"))
		}
	})
	t.Run("Body", func(t *testing.T) {
		if got.Text != text {
			t.Errorf("text\n%q\nwant\n%q", got.Text, text)
		}
		if l := got.Link(t, "#invitation="); l != "https://junction.example.com/#invitation=jci_abc-DEF_123" {
			t.Errorf("link %q", l)
		}
	})
	t.Run("Link", func(t *testing.T) {
		if l := m.Link("email-verification", "jcv_a+b"); l != "https://junction.example.com/#email-verification=jcv_a%2Bb" {
			t.Errorf("link %q", l)
		}
	})
}

func TestSendRefused(t *testing.T) {
	srv := mailtest.Start(t, "junction", "right")
	t.Run("WrongPassword", func(t *testing.T) {
		m, err := mail.New(mail.Config{URL: strings.Replace(srv.URL, "right", "wrong", 1), From: "noreply@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "x", Text: "x"}); err == nil || !strings.Contains(err.Error(), "AUTH") {
			t.Errorf("Send with a wrong password: %v", err)
		}
	})
	t.Run("NotABareAddress", func(t *testing.T) {
		m, _ := mail.New(mail.Config{URL: srv.URL, From: "noreply@example.com"})
		if err := m.Send(context.Background(), mail.Message{To: "Eve <a@example.com>, b@example.com", Subject: "x", Text: "x"}); err == nil {
			t.Error("sent to a list")
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		m, err := mail.New(mail.Config{PublicURL: "http://localhost:8080"})
		if err != nil || m.Enabled() {
			t.Fatalf("New without URL: %v, enabled %v", err, m.Enabled())
		}
		if err := m.Send(context.Background(), mail.Message{To: "a@example.com"}); !errors.Is(err, mail.ErrDisabled) {
			t.Errorf("Send = %v, want ErrDisabled", err)
		}
	})
	if len(srv.Received()) != 0 {
		t.Errorf("messages arrived: %d", len(srv.Received()))
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  mail.Config
		want string
	}{
		{"Scheme", mail.Config{URL: "http://mail.example.com", From: "a@example.com"}, "scheme"},
		{"NoHost", mail.Config{URL: "smtp://", From: "a@example.com"}, "no host"},
		{"Path", mail.Config{URL: "smtp://mail.example.com/x", From: "a@example.com"}, "nothing after"},
		{"NoFrom", mail.Config{URL: "smtp://mail.example.com"}, "smtp-from"},
		{"BadFrom", mail.Config{URL: "smtp://mail.example.com", From: "not an address"}, "smtp-from"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := mail.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New(%+v) = %v, want an error with %q", c.cfg, err, c.want)
			}
		})
	}
	t.Run("PasswordNotInErrors", func(t *testing.T) {
		_, err := mail.New(mail.Config{URL: "smtp://u:hunter2@mail.example.com:bad port", From: "a@example.com"})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %v", err)
		}
	})
}
