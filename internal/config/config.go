// Package config reads the server's settings from command-line flags, falling back to environment
// variables, falling back to defaults that need nothing installed.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/mail"
)

// Config is every setting of the server. The zero value is not useful: use Load or Default.
type Config struct {
	Addr          string        // host:port to listen on
	DatabaseURL   string        // SQLite file path (or file: URI), or a postgres:// URL
	LogLevel      slog.Level    // debug, info, warn, error
	LogFormat     string        // json or text
	Introspection bool          // serve __schema/__type (GraphiQL needs it)
	Origins       []string      // extra origins allowed to open websockets; same-origin always is
	ShutdownGrace time.Duration // how long in-flight work may take after SIGTERM
	// DatabaseReadConns bounds the read pool; the writer is one connection.
	DatabaseReadConns int

	// Failed log-ins: after 3 within 15 minutes for one email or address each attempt waits
	// LoginDelay (doubling, up to 8x); after LoginMaxFailures they are refused for LoginLockout.
	LoginDelay       time.Duration
	LoginMaxFailures int
	LoginLockout     time.Duration

	// EventRetention is how long events are kept for the debugger (at least 24 hours, which is also
	// how long messageIds are remembered for deduplication).
	EventRetention time.Duration
	// IngestRate is the events a second one workspace may send to the tracking API (burst:
	// IngestBurst); a request costs its number of events.
	IngestRate  float64
	IngestBurst int
	// IngestQueueEvents and IngestQueueBytes bound what waits for the single writer; a request that
	// does not fit, or waits longer than IngestQueueWait, is answered 503 with Retry-After.
	IngestQueueEvents int
	IngestQueueBytes  int
	IngestQueueWait   time.Duration

	// Delivery: requests in flight per destination, and the retry bounds.
	DeliveryConcurrency int
	DeliveryMaxAttempts int
	DeliveryMaxAge      time.Duration
	DeliveryBackoff     time.Duration
	// Attempts are kept this long for Event Delivery; failures longer than successes.
	DeliveredRetention time.Duration
	FailedRetention    time.Duration
	// The audit trail and the inbox (activity notifications) are kept this long; a workspace may
	// keep them for less (its settings), never more. At least 24 hours.
	AuditRetention time.Duration
	InboxRetention time.Duration
	// HealthResolveAfter is how long a target must work without an error before its issue resolves.
	HealthResolveAfter time.Duration
	// AudienceRecompute is how often an Engage audience with a time window is computed again over
	// every profile (its members leave as the window passes them by).
	AudienceRecompute time.Duration
	// EgressAllow lists the address ranges outgoing requests (deliveries, notification webhooks)
	// may reach although the egress filter refuses them by default (loopback, private, link-local
	// ...). Empty: only public addresses.
	EgressAllow []netip.Prefix

	// SourceQuietPeriod is how long a source may go without events before it shows NO_RECENT_DATA.
	SourceQuietPeriod time.Duration
	// RegulationMonthlySubjects caps the subjects a workspace's regulations name per month.
	RegulationMonthlySubjects int
	// RegulationDelay is how long a deletion request waits before it starts (it can be canceled
	// until then).
	RegulationDelay time.Duration
	// EncryptionKey encrypts secret settings at rest (base64 of 32 bytes). Empty: a key file next
	// to the SQLite database, generated on first start. Required on PostgreSQL, where every
	// replica must use the same key.
	EncryptionKey string

	// PublicURL is where people reach the server (https://junction.example.com): the links it
	// mails and shows start with it. Default: http://localhost:<port of Addr>.
	PublicURL string
	// SMTPURL is the mail server (smtp://user:password@host:port, or smtps://); empty: the server
	// sends no mail. SMTPFrom is the sender of its messages, required with SMTPURL.
	SMTPURL  string
	SMTPFrom string

	Limits Limits
}

// Limits protect the GraphQL API from expensive or malicious requests.
type Limits struct {
	BodyBytes        int64         // request body size (413 above)
	Tokens           int           // parser token limit per document
	Depth            int           // selection depth
	Aliases          int           // aliased fields per operation
	Fields           int           // field selections per document
	Directives       int           // directives on one selection
	Complexity       int           // cost, with page sizes as multipliers
	OperationTimeout time.Duration // per HTTP operation
	WSSubscriptions  int           // concurrent subscriptions per websocket
	WSInitTimeout    time.Duration // connection_init must arrive within
	WSPerUser        int           // websockets open at once for one user (or token)
	WSPerAddress     int           // websockets open at once from one client address
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:                      ":8080",
		DatabaseURL:               "data/junction.db",
		LogLevel:                  slog.LevelInfo,
		LogFormat:                 "json",
		Introspection:             true,
		ShutdownGrace:             15 * time.Second,
		DatabaseReadConns:         8,
		LoginDelay:                250 * time.Millisecond,
		LoginMaxFailures:          10,
		LoginLockout:              15 * time.Minute,
		SourceQuietPeriod:         time.Hour,
		EventRetention:            7 * 24 * time.Hour,
		IngestRate:                50000,
		IngestQueueEvents:         50000,
		IngestQueueBytes:          64 << 20,
		IngestQueueWait:           2 * time.Second,
		DeliveryConcurrency:       16,
		DeliveryMaxAttempts:       12,
		DeliveryMaxAge:            4 * time.Hour,
		DeliveryBackoff:           time.Second,
		DeliveredRetention:        24 * time.Hour,
		FailedRetention:           7 * 24 * time.Hour,
		AuditRetention:            365 * 24 * time.Hour,
		InboxRetention:            90 * 24 * time.Hour,
		HealthResolveAfter:        15 * time.Minute,
		AudienceRecompute:         5 * time.Minute,
		RegulationMonthlySubjects: 110_000,
		RegulationDelay:           5 * time.Minute,
		IngestBurst:               100000,
		Limits: Limits{
			BodyBytes:        1 << 20,
			Tokens:           10000,
			Depth:            12,
			Aliases:          30,
			Fields:           300,
			Directives:       5,
			Complexity:       5000,
			OperationTimeout: 30 * time.Second,
			WSSubscriptions:  100,
			WSInitTimeout:    10 * time.Second,
			WSPerUser:        100,
			WSPerAddress:     2000,
		},
	}
}

// Load parses args (without the program name) with environment fallbacks read through getenv.
// A flag given on the command line wins over the environment, which wins over the default.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("junction", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: junction [flags]\n\nEvery setting is a flag with an environment variable as fallback: a flag given on the command\n"+
			"line wins over the environment, which wins over the default. The defaults shown already take\nthe environment into account.\n\nFlags:")
		fs.PrintDefaults()
	}
	env := envReader{getenv: getenv}

	port := fs.String("port", env.str("PORT", ""), "port to listen on, on all interfaces (env PORT); ignored when -addr is set")
	addr := fs.String("addr", env.str("ADDR", ""), "host:port to listen on (env ADDR; default :8080)")
	fs.StringVar(&c.DatabaseURL, "database-url", env.str("DATABASE_URL", c.DatabaseURL), "SQLite database file, or a postgres:// URL (env DATABASE_URL)")
	fs.IntVar(&c.DatabaseReadConns, "database-read-conns", env.int("DATABASE_READ_CONNS", c.DatabaseReadConns), "connections of the database read pool; the writer is one more (env DATABASE_READ_CONNS)")
	level := fs.String("log-level", env.str("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env.str("LOG_FORMAT", c.LogFormat), "json or text (env LOG_FORMAT)")
	fs.BoolVar(&c.Introspection, "introspection", env.boolean("INTROSPECTION", c.Introspection), "answer introspection queries; GraphiQL needs them (env INTROSPECTION)")
	origins := fs.String("allowed-origins", env.str("ALLOWED_ORIGINS", ""), "comma-separated origins, besides the server's own, allowed to open websockets (env ALLOWED_ORIGINS)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", env.duration("SHUTDOWN_GRACE", c.ShutdownGrace), "time allowed to in-flight work at shutdown (env SHUTDOWN_GRACE)")
	fs.DurationVar(&c.LoginDelay, "login-delay", env.duration("LOGIN_DELAY", c.LoginDelay), "wait added to log-in attempts after 3 failures, doubling (env LOGIN_DELAY)")
	fs.IntVar(&c.LoginMaxFailures, "login-max-failures", env.int("LOGIN_MAX_FAILURES", c.LoginMaxFailures), "failed log-ins within 15 minutes, per email or address, before a lockout (env LOGIN_MAX_FAILURES)")
	fs.DurationVar(&c.LoginLockout, "login-lockout", env.duration("LOGIN_LOCKOUT", c.LoginLockout), "how long log-ins are refused after too many failures (env LOGIN_LOCKOUT)")
	fs.DurationVar(&c.SourceQuietPeriod, "source-quiet-period", env.duration("SOURCE_QUIET_PERIOD", c.SourceQuietPeriod), "time without events after which a source shows NO_RECENT_DATA (env SOURCE_QUIET_PERIOD)")
	c.EncryptionKey = env.str("ENCRYPTION_KEY", "") // environment only: a flag would show in ps
	fs.StringVar(&c.PublicURL, "public-url", env.str("PUBLIC_URL", ""), "where people reach the server, such as https://junction.example.com; links start with it (env PUBLIC_URL; default http://localhost:<port>)")
	fs.StringVar(&c.SMTPURL, "smtp-url", env.str("SMTP_URL", ""), "mail server, smtp://user:password@host:port or smtps://...; empty sends no mail (env SMTP_URL, better than the flag: a flag shows in ps)")
	fs.StringVar(&c.SMTPFrom, "smtp-from", env.str("SMTP_FROM", ""), "sender of the server's mail, such as \"Junction <junction@example.com>\" (env SMTP_FROM)")
	fs.DurationVar(&c.EventRetention, "event-retention", env.duration("EVENT_RETENTION", c.EventRetention), "how long events are kept for the debugger; at least 24h (env EVENT_RETENTION)")
	fs.Float64Var(&c.IngestRate, "ingest-rate", env.float("INGEST_RATE", c.IngestRate), "tracking API events a second per workspace before 429; 0 for no limit (env INGEST_RATE)")
	fs.IntVar(&c.IngestBurst, "ingest-burst", env.int("INGEST_BURST", c.IngestBurst), "tracking API events a workspace may send at once above its rate (env INGEST_BURST)")
	fs.IntVar(&c.IngestQueueEvents, "ingest-queue-events", env.int("INGEST_QUEUE_EVENTS", c.IngestQueueEvents), "events that may wait for the writer before requests get 503 (env INGEST_QUEUE_EVENTS)")
	fs.IntVar(&c.IngestQueueBytes, "ingest-queue-bytes", env.int("INGEST_QUEUE_BYTES", c.IngestQueueBytes), "event bytes that may wait for the writer before requests get 503 (env INGEST_QUEUE_BYTES)")
	fs.DurationVar(&c.IngestQueueWait, "ingest-queue-wait", env.duration("INGEST_QUEUE_WAIT", c.IngestQueueWait), "longest a request waits for the writer before it gets 503 (env INGEST_QUEUE_WAIT)")
	fs.IntVar(&c.DeliveryConcurrency, "delivery-concurrency", env.int("DELIVERY_CONCURRENCY", c.DeliveryConcurrency), "requests in flight per destination (env DELIVERY_CONCURRENCY)")
	fs.IntVar(&c.DeliveryMaxAttempts, "delivery-max-attempts", env.int("DELIVERY_MAX_ATTEMPTS", c.DeliveryMaxAttempts), "attempts per event and destination before it fails for good (env DELIVERY_MAX_ATTEMPTS)")
	fs.DurationVar(&c.DeliveryMaxAge, "delivery-max-age", env.duration("DELIVERY_MAX_AGE", c.DeliveryMaxAge), "how long after its first attempt an event is retried (env DELIVERY_MAX_AGE)")
	fs.DurationVar(&c.DeliveryBackoff, "delivery-backoff", env.duration("DELIVERY_BACKOFF", c.DeliveryBackoff), "wait before the first retry; doubles with jitter (env DELIVERY_BACKOFF)")
	fs.DurationVar(&c.DeliveredRetention, "delivered-retention", env.duration("DELIVERED_RETENTION", c.DeliveredRetention), "how long successful delivery attempts are kept (env DELIVERED_RETENTION)")
	fs.DurationVar(&c.FailedRetention, "failed-retention", env.duration("FAILED_RETENTION", c.FailedRetention), "how long failed delivery attempts are kept (env FAILED_RETENTION)")
	fs.DurationVar(&c.AuditRetention, "audit-retention", env.duration("AUDIT_RETENTION", c.AuditRetention), "how long the audit trail is kept; at least 24h (env AUDIT_RETENTION)")
	fs.DurationVar(&c.InboxRetention, "inbox-retention", env.duration("INBOX_RETENTION", c.InboxRetention), "how long inbox notifications are kept; at least 24h (env INBOX_RETENTION)")
	fs.DurationVar(&c.AudienceRecompute, "audience-recompute", env.duration("AUDIENCE_RECOMPUTE", c.AudienceRecompute), "how often Engage audiences with time windows are computed again over every profile (env AUDIENCE_RECOMPUTE)")
	fs.DurationVar(&c.HealthResolveAfter, "health-resolve-after", env.duration("HEALTH_RESOLVE_AFTER", c.HealthResolveAfter), "how long a target must work without an error before its health issue resolves (env HEALTH_RESOLVE_AFTER)")
	fs.IntVar(&c.RegulationMonthlySubjects, "regulation-monthly-subjects", env.int("REGULATION_MONTHLY_SUBJECTS", c.RegulationMonthlySubjects), "subjects a workspace's deletion and suppression requests may name per month (env REGULATION_MONTHLY_SUBJECTS)")
	fs.DurationVar(&c.RegulationDelay, "regulation-delay", env.duration("REGULATION_DELAY", c.RegulationDelay), "how long a deletion request waits before it starts, during which it can be canceled (env REGULATION_DELAY)")
	egressAllow := fs.String("egress-allow", env.str("EGRESS_ALLOW", ""), "comma-separated CIDRs that deliveries and webhooks may reach although private, loopback or link-local, such as 10.0.0.0/8 (env EGRESS_ALLOW)")
	l := &c.Limits
	fs.Int64Var(&l.BodyBytes, "max-body-bytes", env.int64("MAX_BODY_BYTES", l.BodyBytes), "largest GraphQL request body (env MAX_BODY_BYTES)")
	fs.IntVar(&l.Tokens, "max-tokens", env.int("MAX_TOKENS", l.Tokens), "largest number of tokens in a GraphQL document (env MAX_TOKENS)")
	fs.IntVar(&l.Depth, "max-depth", env.int("MAX_DEPTH", l.Depth), "deepest selection nesting (env MAX_DEPTH)")
	fs.IntVar(&l.Aliases, "max-aliases", env.int("MAX_ALIASES", l.Aliases), "most aliased fields in an operation (env MAX_ALIASES)")
	fs.IntVar(&l.Fields, "max-fields", env.int("MAX_FIELDS", l.Fields), "most field selections in a document, fragments counted where spread (env MAX_FIELDS)")
	fs.IntVar(&l.Directives, "max-directives", env.int("MAX_DIRECTIVES", l.Directives), "most directives on one field or fragment (env MAX_DIRECTIVES)")
	fs.IntVar(&l.Complexity, "max-complexity", env.int("MAX_COMPLEXITY", l.Complexity), "highest operation cost, page sizes multiplying (env MAX_COMPLEXITY)")
	fs.DurationVar(&l.OperationTimeout, "operation-timeout", env.duration("OPERATION_TIMEOUT", l.OperationTimeout), "time allowed to one query or mutation (env OPERATION_TIMEOUT)")
	fs.IntVar(&l.WSSubscriptions, "ws-max-subscriptions", env.int("WS_MAX_SUBSCRIPTIONS", l.WSSubscriptions), "concurrent subscriptions per websocket (env WS_MAX_SUBSCRIPTIONS)")
	fs.IntVar(&l.WSPerUser, "ws-max-per-user", env.int("WS_MAX_PER_USER", l.WSPerUser), "websockets open at once for one user or access token; more are closed with 1013 (env WS_MAX_PER_USER)")
	fs.IntVar(&l.WSPerAddress, "ws-max-per-address", env.int("WS_MAX_PER_ADDRESS", l.WSPerAddress), "websockets open at once from one client address; more get 429 (env WS_MAX_PER_ADDRESS)")
	fs.DurationVar(&l.WSInitTimeout, "ws-init-timeout", env.duration("WS_INIT_TIMEOUT", l.WSInitTimeout), "time allowed between websocket upgrade and connection_init (env WS_INIT_TIMEOUT)")

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if env.err != nil {
		return c, env.err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	switch {
	case *addr != "":
		c.Addr = *addr
	case *port != "":
		c.Addr = ":" + *port
	}
	if _, p, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("addr %q: want host:port: %v", c.Addr, err)
	} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return c, fmt.Errorf("addr %q: port must be a number from 0 to 65535", c.Addr)
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("log-level %q: want debug, info, warn or error", *level)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return c, fmt.Errorf("log-format %q: want json or text", c.LogFormat)
	}
	if err := c.checkMail(); err != nil {
		return c, err
	}
	if strings.TrimSpace(c.DatabaseURL) == "" {
		return c, errors.New("database-url must not be empty")
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.Origins = append(c.Origins, strings.TrimRight(o, "/"))
		}
	}
	allow, err := egress.ParseAllow(*egressAllow)
	if err != nil {
		return c, fmt.Errorf("egress-allow: %v", err)
	}
	c.EgressAllow = allow
	for name, v := range map[string]int64{
		"max-body-bytes": l.BodyBytes, "max-tokens": int64(l.Tokens), "max-depth": int64(l.Depth),
		"max-aliases": int64(l.Aliases), "max-fields": int64(l.Fields), "max-directives": int64(l.Directives), "max-complexity": int64(l.Complexity),
		"ws-max-subscriptions": int64(l.WSSubscriptions), "login-max-failures": int64(c.LoginMaxFailures),
		"ws-max-per-user": int64(l.WSPerUser), "ws-max-per-address": int64(l.WSPerAddress),
		"delivery-concurrency": int64(c.DeliveryConcurrency), "delivery-max-attempts": int64(c.DeliveryMaxAttempts),
		"ingest-queue-events": int64(c.IngestQueueEvents), "ingest-queue-bytes": int64(c.IngestQueueBytes),
		"database-read-conns": int64(c.DatabaseReadConns),
	} {
		if v <= 0 {
			return c, fmt.Errorf("%s must be greater than 0, got %d", name, v)
		}
	}
	if c.EventRetention < 24*time.Hour {
		return c, fmt.Errorf("event-retention must be at least 24h (messageIds are deduplicated over it), got %s", c.EventRetention)
	}
	for name, d := range map[string]time.Duration{"audit-retention": c.AuditRetention, "inbox-retention": c.InboxRetention} {
		if d < 24*time.Hour {
			return c, fmt.Errorf("%s must be at least 24h, got %s", name, d)
		}
	}
	for name, d := range map[string]time.Duration{"ingest-queue-wait": c.IngestQueueWait, "delivery-max-age": c.DeliveryMaxAge, "delivery-backoff": c.DeliveryBackoff,
		"delivered-retention": c.DeliveredRetention, "failed-retention": c.FailedRetention, "health-resolve-after": c.HealthResolveAfter, "audience-recompute": c.AudienceRecompute} {
		if d <= 0 {
			return c, fmt.Errorf("%s must be greater than 0", name)
		}
	}
	if c.RegulationMonthlySubjects < 1 || c.RegulationDelay < 0 {
		return c, errors.New("regulation-monthly-subjects must be at least 1 and regulation-delay at least 0")
	}
	if c.IngestRate < 0 || c.IngestBurst < 1 {
		return c, errors.New("ingest-rate must be at least 0 and ingest-burst at least 1")
	}
	if l.OperationTimeout <= 0 || l.WSInitTimeout <= 0 || c.ShutdownGrace <= 0 || c.LoginLockout <= 0 || c.LoginDelay < 0 || c.SourceQuietPeriod <= 0 {
		return c, errors.New("operation-timeout, ws-init-timeout, shutdown-grace and login-lockout and source-quiet-period must be greater than 0, login-delay at least 0")
	}
	return c, nil
}

// checkMail checks the public URL (deriving it from Addr when unset) and the mail settings.
func (c *Config) checkMail() error {
	if c.PublicURL == "" {
		host, port, _ := net.SplitHostPort(c.Addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("public-url %q: want an absolute http or https URL such as https://junction.example.com", c.PublicURL)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.SMTPURL == "" && c.SMTPFrom != "" {
		return errors.New("smtp-from is set without smtp-url")
	}
	_, err = mail.New(mail.Config{URL: c.SMTPURL, From: c.SMTPFrom, PublicURL: c.PublicURL})
	return err
}

// LoadFromOS is Load on os.Args and os.Getenv.
func LoadFromOS() (Config, error) {
	return Load(os.Args[1:], os.Getenv, os.Stderr)
}

// envReader reads typed environment variables, remembering the first malformed one.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) fail(name, v, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("environment variable %s=%q: want %s", name, v, want)
	}
}

func (e *envReader) boolean(name string, def bool) bool {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, "true or false")
		return def
	}
	return b
}

func (e *envReader) int(name string, def int) int {
	return int(e.int64(name, int64(def)))
}

func (e *envReader) int64(name string, def int64) int64 {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, v, "a whole number")
		return def
	}
	return n
}

func (e *envReader) float(name string, def float64) float64 {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.fail(name, v, "a number")
		return def
	}
	return f
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, v, "a duration such as 30s or 5m")
		return def
	}
	return d
}
