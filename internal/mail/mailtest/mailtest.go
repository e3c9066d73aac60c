// Package mailtest is a real SMTP server on loopback for tests: it takes every message (with
// PLAIN authentication when it has credentials) and hands them to the test, decoded. It uses
// emersion/go-smtp's server; only tests import it.
package mailtest

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is a message as the server received it.
type Message struct {
	From    string   // MAIL FROM
	To      []string // RCPT TO
	Raw     []byte   // as sent, headers and encoded body
	Header  mail.Header
	Subject string // decoded
	Text    string // the body, decoded
}

// Server is a running SMTP server.
type Server struct {
	// URL is the server for SMTP_URL, with its credentials: smtp://user:password@127.0.0.1:port.
	URL string
	// Addr is host:port.
	Addr string

	user, password string
	mu             sync.Mutex
	received       []Message
	taken          int           // how many of received Next returned
	arrived        chan struct{} // receives a value each time a message arrives
}

// Start starts a server on 127.0.0.1 that requires user and password (no authentication when user
// is ""), and stops it when the test ends.
func Start(tb testing.TB, user, password string) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), user: user, password: password, arrived: make(chan struct{}, 1000)}
	u := url.URL{Scheme: "smtp", Host: s.Addr}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	s.URL = u.String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "mailtest.localhost"
	srv.AllowInsecureAuth = true // loopback, no TLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	tb.Cleanup(func() { srv.Close(); <-done })
	return s
}

// Received returns the messages received so far, oldest first.
func (s *Server) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.received...)
}

// Next waits for the next message not yet taken by Next (up to 10 seconds, then fails the test).
func (s *Server) Next(tb testing.TB) Message {
	tb.Helper()
	select {
	case <-s.arrived:
	case <-time.After(10 * time.Second):
		tb.Fatalf("no message arrived at %s", s.Addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken++
	return s.received[s.taken-1]
}

// linkRE finds links in a message's text.
var linkRE = regexp.MustCompile(`https?://\S+`)

// Link returns the first link in the message's text that contains part (failing the test when
// there is none).
func (m Message) Link(tb testing.TB, part string) string {
	tb.Helper()
	for _, l := range linkRE.FindAllString(m.Text, -1) {
		if strings.Contains(l, part) {
			return l
		}
	}
	tb.Fatalf("no link with %q in the message:\n%s", part, m.Text)
	return ""
}

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
}

func (x *session) AuthMechanisms() []string {
	if x.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != x.s.user || password != x.s.password {
			return errors.New("wrong user or password")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.user != "" && !x.authed {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Raw: raw}
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "not a message: " + err.Error()}
	}
	m.Header = parsed.Header
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject")); err != nil {
		return &smtp.SMTPError{Code: 554, Message: "bad Subject: " + err.Error()}
	}
	body := parsed.Body
	if strings.EqualFold(parsed.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "bad body: " + err.Error()}
	}
	m.Text = strings.ReplaceAll(string(text), "\r\n", "\n")
	x.s.mu.Lock()
	x.s.received = append(x.s.received, m)
	x.s.mu.Unlock()
	x.s.arrived <- struct{}{}
	return nil
}

func (x *session) Reset() { x.from, x.to = "", nil }

func (x *session) Logout() error { return nil }
