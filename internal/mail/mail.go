// Package mail sends the server's own messages (invitations, links that verify an address) through
// an SMTP server, with the standard library's net/smtp, and builds the links they carry. A Mailer
// without an SMTP server sends nothing but still builds links, which the API shows instead.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config says where mail goes and what links point at.
type Config struct {
	// URL is the SMTP server: smtp://user:password@host:port (STARTTLS when the server offers it;
	// port 587 when none is given) or smtps://... (TLS from the start; port 465). Empty: no mail.
	URL string
	// From is the sender, such as "Junction <junction@example.com>". Required with URL.
	From string
	// PublicURL is where people reach the server, such as https://junction.example.com: links start
	// with it.
	PublicURL string
	// Timeout bounds one message's delivery to the SMTP server (default 15 s).
	Timeout time.Duration
}

// Message is a plain-text message to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
}

// Mailer sends messages and builds links.
type Mailer struct {
	publicURL string
	smtp      *server // nil: no SMTP server configured
}

type server struct {
	addr, host  string // host:port, and the host alone (for TLS and PLAIN auth)
	implicitTLS bool
	auth        smtp.Auth
	from        *netmail.Address
	timeout     time.Duration
	helo        string
}

// ErrDisabled is returned by Send when no SMTP server is configured.
var ErrDisabled = errors.New("mail: no SMTP server configured")

// New checks c and returns its Mailer.
func New(c Config) (*Mailer, error) {
	m := &Mailer{publicURL: strings.TrimRight(c.PublicURL, "/")}
	if c.URL == "" {
		return m, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, errors.New("smtp-url: not a URL") // the error would quote the password
	}
	s := &server{implicitTLS: u.Scheme == "smtps", timeout: c.Timeout, helo: "localhost"}
	if s.timeout <= 0 {
		s.timeout = 15 * time.Second
	}
	port := u.Port()
	switch {
	case u.Scheme != "smtp" && u.Scheme != "smtps":
		return nil, fmt.Errorf("smtp-url: scheme %q: want smtp:// or smtps://", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("smtp-url: no host")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, errors.New("smtp-url: want smtp://user:password@host:port and nothing after it")
	case port == "" && s.implicitTLS:
		port = "465"
	case port == "":
		port = "587"
	}
	s.host = u.Hostname()
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		pass, _ := u.User.Password()
		// PlainAuth refuses to send the password unless the connection is TLS or to localhost.
		s.auth = smtp.PlainAuth("", u.User.Username(), pass, s.host)
	}
	if c.From == "" {
		return nil, errors.New("smtp-from is required with smtp-url")
	}
	if s.from, err = netmail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("smtp-from %q: %v", c.From, err)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		s.helo = h
	}
	m.smtp = s
	return m, nil
}

// Enabled tells whether an SMTP server is configured.
func (m *Mailer) Enabled() bool { return m != nil && m.smtp != nil }

// PublicURL is where people reach the server, without a trailing slash.
func (m *Mailer) PublicURL() string { return m.publicURL }

// Link is the server's public URL with kind=secret in its fragment ("https://host/#invitation=jci_…").
// A fragment never reaches a server's access log, nor a Referer header.
func (m *Mailer) Link(kind, secret string) string {
	return m.publicURL + "/#" + kind + "=" + url.QueryEscape(secret)
}

// Send delivers msg to the SMTP server. It returns ErrDisabled without one.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	if !m.Enabled() {
		return ErrDisabled
	}
	s := m.smtp
	to, err := netmail.ParseAddress(msg.To)
	if err != nil || to.Address != msg.To {
		return fmt.Errorf("mail: recipient %q is not a bare address", msg.To)
	}
	body, err := compose(s.from, to, msg, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // unblocks a stalled exchange
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if s.implicitTLS {
		conn = tls.Client(conn, &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12})
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mail: %w", err)
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return fmt.Errorf("mail: EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && !s.implicitTLS {
		if err := c.StartTLS(&tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("mail: STARTTLS: %w", err)
		}
	}
	if s.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("mail: smtp-url has credentials but the server offers no AUTH")
		}
		if err := c.Auth(s.auth); err != nil {
			return fmt.Errorf("mail: AUTH: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("mail: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("mail: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail: DATA: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("mail: DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail: DATA: %w", err)
	}
	return c.Quit()
}

// compose writes msg as an RFC 5322 message: UTF-8 text, quoted-printable, with header values
// encoded so that no line break in them can start another header.
func compose(from, to *netmail.Address, msg Message, now time.Time) ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	text := strings.ReplaceAll(strings.ReplaceAll(msg.Text, "\r\n", "\n"), "\n", "\r\n")
	if _, err := qp.Write([]byte(text)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
