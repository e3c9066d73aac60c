// Package app wires the server together: configuration in, one http.Handler and a Serve loop with
// graceful shutdown out. server.go (package main) and the end-to-end tests both build the server
// through New, so that the tests exercise exactly what runs in production.
package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctioncdp/junction/graph"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/delivery"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/gqllimit"
	"github.com/junctioncdp/junction/internal/gqlserver"
	"github.com/junctioncdp/junction/internal/gqlws"
	"github.com/junctioncdp/junction/internal/graphiql"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/live"
	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/notify"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/regulation"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
	"github.com/junctioncdp/junction/migrations"
)

// App is a running server's parts.
type App struct {
	cfg        config.Config
	log        *slog.Logger
	db         *db.DB
	migrations []db.Migration
	metrics    *obs.Metrics
	ws         *gqlws.Transport
	gql        *handler.Server
	handler    http.Handler
	stopping   atomic.Bool
	ingest     *ingest.Service
	events     *ingest.Queries
	delivery   *delivery.Engine
	deliveries *delivery.Queries
	health     *health.Service
	bus        *bus.Bus
	live       *live.Publisher
	notify     *notify.Service
	reaper     *reap.Reaper
	protocols  *protocols.Service
	regulator  *regulation.Service
	workspaces *workspace.Service
	egress     *egress.Filter
	stop       chan struct{} // closed when Serve shuts down: background work ends
	background sync.WaitGroup
}

// New opens the database, applies the migrations and builds the handlers.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if db.IsPostgresURL(cfg.DatabaseURL) && cfg.EncryptionKey == "" {
		// A key file on one machine's disk would give each replica its own key.
		return nil, errors.New("ENCRYPTION_KEY must be set with PostgreSQL, the same on every replica (openssl rand -base64 32)")
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, db.Options{ReadConns: cfg.DatabaseReadConns})
	if err != nil {
		return nil, err
	}
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		d.Close()
		return nil, err
	}
	applied, err := d.Migrate(ctx, migs)
	if err != nil {
		d.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("migrations applied", "versions", applied)
	}

	a := &App{cfg: cfg, log: log, db: d, migrations: migs, metrics: obs.NewMetrics(), stop: make(chan struct{}),
		egress: egress.New(cfg.EgressAllow)}
	a.metrics.RegisterDB("read", func() sql.DBStats { r, _ := d.Stats(); return r })
	a.metrics.RegisterDB("write", func() sql.DBStats { _, w := d.Stats(); return w })
	a.metrics.RegisterCounterFunc("junction_db_statements_total", "SQL statements run since start.",
		func() float64 { return float64(db.StatementsTotal()) })
	writes := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "junction_db_write_transaction_seconds",
		Help:    "How long each write transaction held the single writer, from its start to its commit or rollback.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 5},
	})
	a.metrics.Registry.MustRegister(writes)
	d.ObserveWrites(func(held time.Duration) { writes.Observe(held.Seconds()) })

	mailer, err := mail.New(mail.Config{URL: cfg.SMTPURL, From: cfg.SMTPFrom, PublicURL: cfg.PublicURL})
	if err != nil {
		d.Close()
		return nil, err
	}
	authSvc := auth.New(d, auth.Policy{
		SessionTTL: auth.DefaultPolicy.SessionTTL, SlowAfter: auth.DefaultPolicy.SlowAfter, Window: auth.DefaultPolicy.Window,
		MaxFailures: cfg.LoginMaxFailures, Lockout: cfg.LoginLockout, Delay: cfg.LoginDelay,
	}, mailer)
	key, err := secret.LoadKey(cfg.EncryptionKey, filepath.Join(filepath.Dir(d.Path()), "encryption.key"))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		d.Close()
		return nil, err
	}
	cat := catalog.MustLoad()
	workspaces := workspace.New(d, authSvc, mailer)
	a.workspaces = workspaces
	workspaces.Retention = workspace.ServerRetention{Events: cfg.EventRetention, Delivered: cfg.DeliveredRetention, Failed: cfg.FailedRetention}
	sources := source.New(d, cat, workspaces, cfg.SourceQuietPeriod)
	a.health = health.New(d, workspaces, cfg.HealthResolveAfter)
	a.protocols = protocols.New(d, workspaces, sources, 2*time.Second, log)
	// Regulations: suppression is the first ingest stage (no later stage sees a suppressed
	// event); deletion runs each domain's steps, the event log's with what delivery and
	// protocols derived from its events.
	a.regulator = regulation.New(d, workspaces, key, regulation.Options{MonthlyCap: cfg.RegulationMonthlySubjects, Delay: cfg.RegulationDelay, Logger: log})
	a.regulator.Add(ingest.ForgetEvents(delivery.ForgetEventAttempts, protocols.ForgetEventSamples), delivery.ForgetRequests,
		protocols.ForgetSamples, ingest.ForgetIdentities)
	a.ingest = ingest.New(d, ingest.Options{RatePerWorkspace: cfg.IngestRate, RateBurst: cfg.IngestBurst, Logger: log,
		Queue: ingest.QueueLimits{Events: cfg.IngestQueueEvents, Bytes: cfg.IngestQueueBytes, Wait: cfg.IngestQueueWait},
		Listeners: []ingest.Listener{{Hear: a.committed}, {Hear: a.recordHealth, Every: time.Second},
			{Hear: func(c ingest.Committed) { a.protocols.Committed(c) }, Every: time.Second}},
		// Tracking plans validate, block and trim events on the request's goroutine, before the writer.
		Stages: []ingest.Stage{a.regulator.Stage(), a.protocols.Stage()}})
	a.protocols.Writer = a.ingest
	a.metrics.Registry.MustRegister(a.ingest.Collectors()...)
	// Subscribers are served as soon as a message waits (gqlws.Push), so a small queue is
	// enough, and idle subscribers cost little; a source's live tail gets bursts of a commit's events.
	a.bus = bus.New(8)
	a.bus.BufferByKind = map[string]int{"events": 64}
	a.metrics.RegisterGaugeFunc("junction_bus_subscribers", "Subscriptions open on the in-process bus.",
		func() float64 { return float64(a.bus.Subscribers()) })
	// Deleted sources and workspaces are marked at once and reaped in the background, each domain
	// deleting its own rows; the owner of the object deletes its row last.
	a.reaper = reap.New(d, log)
	a.reaper.Pending(reap.Source, sources.DeletedIDs)
	a.reaper.Add(reap.Source, ingest.ReapSourceEvents, delivery.ReapSourceAttempts, delivery.ReapSourceRequests, health.ReapSourceIssues, source.ReapStep)
	a.reaper.Pending(reap.Workspace, workspaces.DeletedIDs)
	a.reaper.Add(reap.Workspace, delivery.ReapWorkspaceAttempts, delivery.ReapWorkspaceRequests, audit.ReapWorkspace, health.ReapWorkspaceIssues,
		ingest.ReapWorkspaceUsage, workspace.ReapStep)
	workspaces.OnDelete = func(string) {
		a.ingest.ForgetAll()
		a.protocols.ForgetAll()
		a.reaper.Wake()
	}
	a.events = ingest.NewQueries(d, sources, workspaces)
	dests := destination.New(d, cat, workspaces, sources, box, a.egress)
	if n, err := dests.SealPlainSecrets(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("sealing secret settings: %w", err)
	} else if n > 0 {
		log.Info("secret settings stored in the clear were sealed", "destinations", n)
	}
	a.delivery = delivery.New(d, dests, delivery.Options{
		Policy:      delivery.Policy{MaxAttempts: cfg.DeliveryMaxAttempts, MaxAge: cfg.DeliveryMaxAge, BaseBackoff: cfg.DeliveryBackoff, MaxBackoff: 30 * time.Minute},
		Concurrency: cfg.DeliveryConcurrency, Egress: a.egress, Logger: log, OnAttempts: a.attempted,
	})
	a.regulator.Destinations = regulationDeliveries{a.delivery}
	a.live = live.New(a.bus, d, sources, dests, a.events, log)
	a.notify = notify.New(d, a.bus, box, log, a.egress)
	a.protocols.OnViolations = a.live.ViolationsChanged
	a.protocols.Publish = a.notify.Publish
	sources.OnChange = func(id string) {
		a.reaper.Wake()
		a.ingest.ForgetSource(id)
		a.protocols.ForgetSource(id)
		a.live.SourceChanged(id)
	}
	dests.OnChange = func(id string) {
		a.delivery.Refresh()
		a.live.DestinationChanged(id)
	}
	a.health.OnChange = a.healthChanged
	go a.live.Run()
	a.deliveries = delivery.NewQueries(d, dests, workspaces, a.delivery)
	resolver := &graph.Resolver{Auth: authSvc, Workspaces: workspaces, Integrations: cat, Sources: sources,
		Destinations: dests, Events: a.events, Deliveries: a.deliveries, Health: a.health, Notify: a.notify, Protocols: a.protocols,
		Regulator: a.regulator, Bus: a.bus}
	a.delivery.Start()

	a.ws = &gqlws.Transport{
		InitFunc:         authSvc.InitFunc,
		InitTimeout:      cfg.Limits.WSInitTimeout,
		MaxSubscriptions: cfg.Limits.WSSubscriptions,
		CheckOrigin:      originChecker(cfg.Origins),
		OnConnect:        a.metrics.WebsocketOpened,
		OnDisconnect:     a.metrics.WebsocketClosed,
		Logger:           log,
		MaxPerAddress:    cfg.Limits.WSPerAddress,
		MaxPerIdentity:   cfg.Limits.WSPerUser,
		Identity:         authSvc.Identity,
	}
	a.gql = gqlserver.New(graph.NewExecutableSchema(graph.Config{Resolvers: resolver}), gqlserver.Options{
		Introspection:    cfg.Introspection,
		MaxBodyBytes:     cfg.Limits.BodyBytes,
		OperationTimeout: cfg.Limits.OperationTimeout,
		Limits: gqllimit.Limits{
			Tokens:          cfg.Limits.Tokens,
			Depth:           cfg.Limits.Depth,
			Aliases:         cfg.Limits.Aliases,
			Fields:          cfg.Limits.Fields,
			Directives:      cfg.Limits.Directives,
			Complexity:      cfg.Limits.Complexity,
			DefaultPageSize: 20,
		},
		Metrics:    a.metrics,
		Websocket:  a.ws,
		Operations: resolver.Operations,
	})

	mux := http.NewServeMux()
	route := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, a.metrics.Middleware(log, name, h))
	}
	route("/graphql", "graphql", authSvc.Middleware(a.gql))
	route("GET /healthz", "healthz", http.HandlerFunc(a.healthz))
	route("GET /readyz", "readyz", http.HandlerFunc(a.readyz))
	route("GET /metrics", "metrics", a.metrics.Handler())
	route("/v1/", "tracking", a.ingest)
	route("/v1/regulations", "regulations", authSvc.Middleware(a.regulator.Handler()))
	route("/v1/regulations/", "regulations", authSvc.Middleware(a.regulator.Handler()))
	route("/", "graphiql", graphiql.Handler("/graphql"))
	a.handler = mux
	return a, nil
}

// Handler is the server's whole HTTP surface.
func (a *App) Handler() http.Handler { return a.handler }

// DB is the application's database, for tests.
func (a *App) DB() *db.DB { return a.db }

// Serve answers requests on ln until ctx is done, then shuts down gracefully: it stops accepting
// connections, lets in-flight requests finish (up to the configured grace), closes websockets with a
// 1001 close frame, and closes the database.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for the slowest operation the operation timeout allows to be written out.
		WriteTimeout:   a.cfg.Limits.OperationTimeout + 15*time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return obs.WithLogger(context.Background(), a.log) },
	}
	// Outgoing requests never reach the server itself, whatever EGRESS_ALLOW says.
	a.egress.Listening(ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.background.Add(4)
	go a.pruneEvents()
	go a.resolveHealth()
	go func() {
		defer a.background.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-a.stop; cancel() }()
		a.reaper.Run(ctx, time.Minute)
	}()
	go func() {
		defer a.background.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-a.stop; cancel() }()
		a.regulator.Run(ctx, min(time.Minute, max(a.cfg.RegulationDelay/4, 50*time.Millisecond)))
	}()
	a.log.Info("listening", "addr", ln.Addr().String(), "graphql", "http://"+displayAddr(ln.Addr())+"/graphql",
		"graphiql", "http://"+displayAddr(ln.Addr())+"/", "database", a.cfg.DatabaseURL,
		"public_url", a.cfg.PublicURL, "email", a.cfg.SMTPURL != "")

	select {
	case err := <-errc:
		a.Close()
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", a.cfg.ShutdownGrace.String())
	a.stopping.Store(true)
	graceCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	// http.Server.Shutdown does not know hijacked connections: close the websockets ourselves, in
	// parallel, with a proper close frame.
	wsDone := make(chan error, 1)
	go func() { wsDone <- a.ws.Shutdown(graceCtx) }()
	err := srv.Shutdown(graceCtx)
	err = errors.Join(err, <-wsDone)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	err = errors.Join(err, a.Close())
	a.log.Info("stopped", "error", fmt.Sprint(err))
	return err
}

// Close stops background work, commits the events still queued, and releases the database. Serve
// calls it on the way out, after the HTTP server has stopped taking requests.
func (a *App) Close() error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.background.Wait()
	// The tracking API first: its last commits' listeners still publish to live views, wake
	// lanes and record health (which notifies).
	a.ingest.Close()
	a.live.Close()
	a.delivery.Close()
	a.notify.Close()
	return a.db.Close()
}

// pruneEvents deletes what is past its retention period, at start and then hourly.
func (a *App) pruneEvents() {
	defer a.background.Done()
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-a.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		n, err := a.Prune(ctx, time.Now())
		cancel()
		if err != nil && ctx.Err() == nil {
			a.log.Error("pruning events failed", "error", err.Error())
		} else if n > 0 {
			a.log.Info("events and delivery attempts pruned", "deleted", n)
		}
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
	}
}

// Prune deletes the events and delivery attempts past their retention periods at now, in small
// transactions, and returns how many rows it deleted.
func (a *App) Prune(ctx context.Context, now time.Time) (int64, error) {
	n, err := a.events.Prune(ctx, now.Add(-a.cfg.EventRetention))
	if err != nil {
		return n, err
	}
	m, err := a.deliveries.Prune(ctx, now, a.cfg.DeliveredRetention, a.cfg.FailedRetention)
	if n += m; err != nil {
		return n, err
	}
	m, err = a.protocols.Prune(ctx, now)
	if n += m; err != nil {
		return n, err
	}
	// Workspaces that keep some data for less than the server does (their settings).
	own, err := a.workspaces.ShorterRetentions(ctx)
	for _, w := range own {
		if err != nil {
			break
		}
		if w.Events > 0 {
			m, err = a.events.PruneWorkspace(ctx, w.WorkspaceID, now.Add(-a.cfg.EventRetention), now.Add(-w.Events))
			n += m
		}
		for _, kind := range []struct {
			delivered bool
			own, all  time.Duration
		}{{true, w.Delivered, a.cfg.DeliveredRetention}, {false, w.Failed, a.cfg.FailedRetention}} {
			if kind.own > 0 && err == nil {
				m, err = a.deliveries.PruneWorkspace(ctx, w.WorkspaceID, kind.delivered, now.Add(-kind.all), now.Add(-kind.own))
				n += m
			}
		}
	}
	return n, err
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz answers 200 when the database answers and every migration is applied, else 503 with why.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	if a.stopping.Load() {
		writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.db.Ping(ctx); err != nil {
		obs.Logger(ctx).Warn("readiness: database unreachable", "error", err.Error())
		writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "database unreachable"})
		return
	}
	pending, err := a.db.Pending(ctx, a.migrations)
	if err != nil {
		obs.Logger(ctx).Warn("readiness: migrations unknown", "error", err.Error())
		writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "migrations unknown"})
		return
	}
	if len(pending) > 0 {
		writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "migrations pending", "pending": pending})
		return
	}
	writeStatus(w, http.StatusOK, map[string]any{"status": "ready", "migrations": len(a.migrations)})
}

func writeStatus(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// originChecker allows websockets from the server's own origin and from the configured ones.
func originChecker(allowed []string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true // not a browser: browsers always send Origin on websocket upgrades
		}
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			return false
		}
		if strings.EqualFold(u.Host, r.Host) {
			return true
		}
		for _, o := range allowed {
			if strings.EqualFold(o, origin) {
				return true
			}
		}
		return false
	}
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// committed hears, on the tracking API's follower goroutine, what each group commit stored: the
// delivery lanes of the sources that received events wake up, and dashboards see the events.
func (a *App) committed(c ingest.Committed) {
	var sources []string
	seen := map[string]bool{}
	for _, e := range c.Events {
		if e.Status == ingest.Accepted && !seen[e.SourceID] {
			seen[e.SourceID] = true
			sources = append(sources, e.SourceID)
		}
	}
	a.delivery.Notify(sources)
	a.live.Committed(c)
}

// recordHealth counts discarded events and violations towards their sources' health issues, once a
// second at most (ingest.Listener.Every): a transaction per group commit would take the writer as
// often as the tracking API does.
func (a *App) recordHealth(c ingest.Committed) {
	occ := append(health.DiscardOccurrences(c), health.ViolationOccurrences(c)...)
	if err := a.health.Record(context.Background(), occ); err != nil {
		a.log.Error("recording source health failed", "error", err.Error())
	}
}

// attempted runs on a delivery lane's recorder once its attempts are committed (never on the
// tracking API's writer): failed attempts count towards the destination's health issues.
func (a *App) attempted(ctx context.Context, attempts []delivery.Attempt) {
	counts := map[string]*health.Occurrence{}
	var order []string
	for _, at := range attempts {
		if at.Outcome == delivery.Delivered {
			continue
		}
		o := counts[at.ErrorType]
		if o == nil {
			o = &health.Occurrence{WorkspaceID: at.WorkspaceID, TargetKind: health.DestinationTarget, TargetID: at.DestinationID, ErrorType: at.ErrorType}
			counts[at.ErrorType] = o
			order = append(order, at.ErrorType)
		}
		o.N++
		o.SampleID, o.At, o.Message = at.ID, at.CreatedAt, at.ErrorMessage
	}
	occ := make([]health.Occurrence, len(order))
	for i, k := range order {
		occ[i] = *counts[k]
	}
	if err := a.health.Record(ctx, occ); err != nil {
		a.log.Error("recording destination health failed", "error", err.Error())
	}
}

// resolveHealth resolves health issues whose target has recovered, checking often enough for the
// configured resolve delay.
func (a *App) resolveHealth() {
	defer a.background.Done()
	every := min(max(a.cfg.HealthResolveAfter/4, 50*time.Millisecond), 30*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			if _, err := a.health.ResolveRecovered(context.Background(), time.Now()); err != nil {
				a.log.Error("resolving health issues failed", "error", err.Error())
			}
		}
	}
}

// healthChanged publishes an issue to dashboards and, when it opened or resolved, notifies the
// workspace's members who want to hear of it.
func (a *App) healthChanged(is health.Issue) {
	a.live.HealthChanged(is)
	var typ audit.Type
	switch {
	case is.Status == health.Resolved:
		typ = "HEALTH_ISSUE_RESOLVED"
	case is.Opened:
		typ = "HEALTH_ISSUE_OPENED"
	default:
		return
	}
	ctx := audit.WithPublisher(context.Background(), a.notify.Publish)
	msg := strings.ToLower(is.TargetKind) + " health issue " + strings.ToLower(strings.TrimPrefix(string(typ), "HEALTH_ISSUE_")) + ": " + is.ErrorType + " — " + is.Message
	err := a.db.Tx(ctx, func(tx *db.Tx) error {
		return audit.Notify(ctx, tx, is.WorkspaceID, typ, "HealthIssue", is.ID, msg, nil, nil)
	})
	if err != nil {
		a.log.Error("notifying a health issue failed", "error", err.Error())
	}
}

// regulationDeliveries sends regulations' deletion calls through the delivery engine.
type regulationDeliveries struct{ e *delivery.Engine }

func (r regulationDeliveries) DeleteSubjects(ctx context.Context, workspaceID, regulationID string, subjectType regulation.SubjectType,
	subjects []string) ([]regulation.DestinationStatus, error) {
	results, err := r.e.DeleteSubjects(ctx, workspaceID, regulationID, string(subjectType), subjects)
	if err != nil {
		return nil, err
	}
	now := db.Now()
	out := make([]regulation.DestinationStatus, len(results))
	for i, x := range results {
		out[i] = regulation.DestinationStatus{DestinationID: x.DestinationID, Name: x.Name, Status: regulation.Status(x.Status),
			Attempts: x.Attempts, UpdatedAt: now, WorkspaceID: workspaceID}
		if x.Error != "" {
			out[i].Error = &x.Error
		}
	}
	return out, nil
}

// Reaper is the reaper of deleted sources and workspaces, for tests that want to wait for it.
func (a *App) Reaper() *reap.Reaper { return a.reaper }
