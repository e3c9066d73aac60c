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
	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/cloudapp"
	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/delivery"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/engage/audience"
	"github.com/junctioncdp/junction/internal/gqllimit"
	"github.com/junctioncdp/junction/internal/gqlserver"
	"github.com/junctioncdp/junction/internal/gqlws"
	"github.com/junctioncdp/junction/internal/graphiql"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/live"
	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/notify"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/privacy"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/regulation"
	"github.com/junctioncdp/junction/internal/regulation/forget"
	"github.com/junctioncdp/junction/internal/replica"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/warehouse"
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
	privacy    *privacy.Service
	regulator  *regulation.Service
	engage     *engage.Service
	traits     *engage.Traits
	audiences  *audience.Service
	workspaces *workspace.Service
	egress     *egress.Filter
	replicas   *replica.Set // nil on SQLite: one process
	// leading wakes the periodic work when this replica becomes the one that runs it.
	leading    chan struct{}
	jobRuns    *prometheus.CounterVec
	warehouses *warehouse.Service
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
		egress: egress.New(cfg.EgressAllow), leading: make(chan struct{}, 1)}
	a.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_periodic_runs_total",
		Help: "Runs of periodic work by this process (one replica among several runs it)."}, []string{"job"})
	a.metrics.Registry.MustRegister(a.jobRuns)
	a.metrics.RegisterDB("read", func() sql.DBStats { r, _ := d.Stats(); return r })
	a.metrics.RegisterDB("write", func() sql.DBStats { _, w := d.Stats(); return w })
	a.metrics.RegisterCounterFunc("junction_db_statements_total", "SQL statements run since start.",
		func() float64 { return float64(db.StatementsTotal()) })
	writes := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "junction_db_write_transaction_seconds",
		Help: "How long each write transaction held the single writer, from its start to its commit or rollback, " +
			"by kind: commit (requests), background (retention, reaping, recomputation), checkpoint (SQLite's WAL restart).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 5},
	}, []string{"kind"})
	a.metrics.Registry.MustRegister(writes)
	d.ObserveWrites(func(kind db.Hold, held time.Duration) { writes.WithLabelValues(string(kind)).Observe(held.Seconds()) })

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
	workspaces.Retention = workspace.ServerRetention{Events: cfg.EventRetention, Delivered: cfg.DeliveredRetention, Failed: cfg.FailedRetention,
		Audit: cfg.AuditRetention, Inbox: cfg.InboxRetention}
	sources := source.New(d, cat, workspaces, cfg.SourceQuietPeriod, box)
	a.health = health.New(d, workspaces, cfg.HealthResolveAfter)
	a.protocols = protocols.New(d, workspaces, sources, 2*time.Second, log)
	a.privacy = privacy.New(d, workspaces, box, log)
	a.privacy.RecordHealth = a.health.Record
	// Regulations: deletion runs each domain's steps in order; the event log's step also takes
	// what delivery, protocols and the Privacy Portal derived from the events it deletes.
	a.regulator = regulation.New(d, workspaces, key, regulation.Options{MonthlyCap: cfg.RegulationMonthlySubjects, Delay: cfg.RegulationDelay,
		WarehouseRetry: cfg.DeliveryBackoff, Logger: log})
	a.regulator.Add(ingest.ForgetEvents(delivery.ForgetEventAttempts, protocols.ForgetEventSamples, privacy.ForgetEventSamples), delivery.ForgetRequests,
		protocols.ForgetSamples, ingest.ForgetIdentities, audience.Forget, engage.Forget)
	// Identity resolution follows the event log from a stored cursor (Engage, BUSINESS plan); the
	// commits only wake it, and on replicas the leader alone resolves.
	a.engage = engage.New(d, workspaces, log)
	a.engage.Gate = a.leads
	// Computed traits follow identity resolution, with a worker of their own.
	a.traits = engage.NewTraits(a.engage, log)
	a.ingest = ingest.New(d, ingest.Options{RatePerWorkspace: cfg.IngestRate, RateBurst: cfg.IngestBurst, Logger: log,
		Queue: ingest.QueueLimits{Events: cfg.IngestQueueEvents, Bytes: cfg.IngestQueueBytes, Wait: cfg.IngestQueueWait},
		Listeners: []ingest.Listener{{Hear: a.committed}, {Hear: a.recordHealth, Every: time.Second},
			{Hear: func(c ingest.Committed) { a.protocols.Committed(c) }, Every: time.Second},
			{Hear: a.privacy.Committed, Every: time.Second}, a.engage.Listener()},
		// On the request's goroutine, before the writer: suppression first (no later stage sees a
		// suppressed event), then the Privacy Portal notes fields and removes those the source
		// blocks (so that nothing made from the event, such as a blocked event forwarded, carries
		// them), then tracking plans validate, block and trim events.
		Stages: []ingest.Stage{a.regulator.Stage(), a.privacy.Stage(), a.protocols.Stage()}})
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
	a.reaper.Gate = a.leads
	a.regulator.Gate = a.leads
	a.reaper.Pending(reap.Source, sources.DeletedIDs)
	// A deleted source's profile events go before its events (they are found through them).
	a.reaper.Add(reap.Source, engage.ReapSourceSteps()...)
	a.reaper.Add(reap.Source, audience.ReapSource)
	a.reaper.Add(reap.Source, ingest.ReapSourceEvents, delivery.ReapSourceAttempts, delivery.ReapSourceRequests, health.ReapSourceIssues,
		privacy.ReapSourceFields, source.ReapStep)
	a.reaper.Pending(reap.Workspace, workspaces.DeletedIDs)
	a.reaper.Add(reap.Workspace, audience.ReapWorkspace, engage.ReapWorkspaceComputedTraits, engage.ReapWorkspace, delivery.ReapWorkspaceAttempts, delivery.ReapWorkspaceRequests, audit.ReapWorkspace, health.ReapWorkspaceIssues,
		privacy.ReapWorkspaceFields,
		ingest.ReapWorkspaceUsage, workspace.ReapStep)
	// The audit trail and the inbox expire: the server's retention, or a workspace's shorter one.
	own := func(kind func(workspace.OwnRetention) time.Duration) func(ctx context.Context) (map[string]time.Duration, error) {
		return func(ctx context.Context) (map[string]time.Duration, error) {
			list, err := workspaces.ShorterRetentions(ctx)
			out := map[string]time.Duration{}
			for _, w := range list {
				if d := kind(w); d > 0 {
					out[w.WorkspaceID] = d
				}
			}
			return out, err
		}
	}
	a.reaper.Expire(
		reap.Expiry{Name: "audit trail", Floor: func(t time.Time) string { return id.Floor(audit.Prefix, t) }, Server: cfg.AuditRetention,
			Own: own(func(w workspace.OwnRetention) time.Duration { return w.Audit }), Delete: audit.ExpireEvents},
		reap.Expiry{Name: "inbox", Floor: func(t time.Time) string { return id.Floor(audit.NotificationPrefix, t) }, Server: cfg.InboxRetention,
			Own: own(func(w workspace.OwnRetention) time.Duration { return w.Inbox }), Delete: audit.ExpireNotifications})
	workspaces.OnPlanChanged = a.engage.PlanChanged
	workspaces.OnDelete = func(id string) {
		a.ingest.ForgetAll()
		a.protocols.ForgetAll()
		a.privacy.ForgetAll()
		a.engage.ForgetAll()
		a.reaper.Wake()
		a.signal("workspace.deleted", id, nil)
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
		Outgoing: a.privacy.Outgoing,
	})
	// Audiences follow identity resolution's transactions; their scheduled work (windows,
	// activation) runs on the leader.
	a.audiences = audience.New(d, workspaces, a.engage, a.bus, audience.Options{Logger: log,
		Recompute: cfg.AudienceRecompute, Every: min(10*time.Second, max(cfg.AudienceRecompute/4, 50*time.Millisecond))})
	a.audiences.Gate = a.leads
	a.audiences.Activation = audienceActivation(sources, dests, a.ingest)
	a.live = live.New(a.bus, d, sources, dests, a.events, log)
	a.notify = notify.New(d, a.bus, box, log, a.egress)
	a.protocols.OnViolations = a.live.ViolationsChanged
	a.protocols.Publish = a.notify.Publish
	a.privacy.Publish = a.notify.Publish
	sources.OnChange = func(id string) {
		a.reaper.Wake()
		a.ingest.ForgetSource(id)
		a.protocols.ForgetSource(id)
		a.live.SourceChanged(id)
		a.signal("source", id, nil)
	}
	dests.OnChange = func(id string) {
		a.delivery.Refresh()
		a.live.DestinationChanged(id)
		a.signal("destination", id, nil)
	}
	a.health.OnChange = a.healthChanged
	// Warehouses are not sent events by lanes (they have no connector): they are synced.
	a.warehouses = warehouse.New(d, dests, workspaces, cat, a.health, a.egress, warehouse.Options{Logger: log, Publish: a.notify.Publish})
	a.warehouses.Gate = a.leads
	// A regulation deletes its subjects' rows in every warehouse of the workspace, after the
	// event log lost their events (so no later sync loads them).
	a.regulator.Warehouses = regulationWarehouses{a.warehouses}
	a.regulator.Destinations = regulationDeliveries{a.delivery, a.warehouses}
	dests.CheckSettings = a.warehouses.CheckSettings
	a.deliveries = delivery.NewQueries(d, dests, workspaces, a.delivery)
	if d.Dialect() == db.Postgres {
		if err := a.joinReplicas(ctx, authSvc, workspaces); err != nil {
			d.Close()
			return nil, err
		}
	}
	resolver := &graph.Resolver{Auth: authSvc, Workspaces: workspaces, Integrations: cat, Sources: sources,
		Destinations: dests, Events: a.events, Deliveries: a.deliveries, Health: a.health, Notify: a.notify, Protocols: a.protocols,
		Privacy: a.privacy, Regulator: a.regulator, Warehouses: a.warehouses, Engage: a.engage,
		ComputedTraits: a.traits, Audiences: a.audiences, Bus: a.bus}
	go a.live.Run()
	a.delivery.Start()
	a.warehouses.Start()
	a.engage.Start()
	a.traits.Start()
	a.audiences.Start()

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
	route(cloudapp.PathPrefix, "webhooks", cloudapp.New(sources, a.ingest))
	route("/v1/regulations", "regulations", authSvc.Middleware(a.regulator.Handler()))
	route("/v1/regulations/", "regulations", authSvc.Middleware(a.regulator.Handler()))
	route(engage.ProfileAPIPattern, "profiles", a.engage.NewProfileAPI(authSvc, a.events))
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
	a.background.Add(5)
	go a.periodically("prune", time.Hour, a.leading, a.pruneEvents)
	// Windowed computed traits are recomputed as time passes, once among the replicas.
	go a.periodically("computed-traits", time.Minute, nil, a.scheduleTraits)
	go a.periodically("health-resolve", min(max(a.cfg.HealthResolveAfter/4, 50*time.Millisecond), 30*time.Second), nil, a.resolveHealth)
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
	// Audiences first: their activation stores events through the tracking API's writer. What
	// identity resolution still tells them is left for the next computation.
	a.audiences.Close()
	// The tracking API next: its last commits' listeners still publish to live views, wake
	// lanes and record health (which notifies).
	a.ingest.Close()
	a.engage.Close()
	a.traits.Close()
	a.live.Close()
	a.delivery.Close()
	a.warehouses.Close()
	a.notify.Close()
	if a.replicas != nil {
		a.replicas.Close()
	}
	return a.db.Close()
}

// periodically runs job at start, every period and when woken, until Close, while this process
// leads the replicas (always on SQLite): the work is done once, not once per replica.
func (a *App) periodically(job string, period time.Duration, wake <-chan struct{}, run func(ctx context.Context)) {
	defer a.background.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(period)
	defer tick.Stop()
	select {
	case <-wake: // leading since before this started: the first run is now
	default:
	}
	for {
		if a.leads() {
			a.jobRuns.WithLabelValues(job).Inc()
			run(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}

// leads tells whether this process runs the periodic work: on SQLite it is the only one; among
// replicas, the holder of the leader's lease.
func (a *App) leads() bool { return a.replicas == nil || a.replicas.Leads() }

// scheduleTraits starts the recomputations of windowed computed traits that are due.
func (a *App) scheduleTraits(ctx context.Context) {
	if err := a.traits.Schedule(ctx); err != nil && ctx.Err() == nil {
		a.log.Error("scheduling computed traits failed", "error", err.Error())
	}
}

// pruneEvents deletes what is past its retention period (at start, or when this replica starts
// leading, and then hourly).
func (a *App) pruneEvents(ctx context.Context) {
	n, err := a.Prune(ctx, time.Now())
	if err != nil && ctx.Err() == nil {
		a.log.Error("pruning events failed", "error", err.Error())
	} else if n > 0 {
		a.log.Info("events and delivery attempts pruned", "deleted", n)
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
	m, err = a.engage.Prune(ctx, now.Add(-a.cfg.EventRetention))
	n += m
	if err != nil {
		return n, err
	}
	m, err = a.audiences.Prune(ctx, now.Add(-a.cfg.EventRetention))
	n += m
	if err != nil {
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
	if a.replicas != nil && len(sources) > 0 {
		a.replicas.SendWhenShared("delivery.wake", "", sources)
	}
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

// resolveHealth resolves health issues whose target has recovered; it runs often enough for the
// configured resolve delay.
func (a *App) resolveHealth(ctx context.Context) {
	if _, err := a.health.ResolveRecovered(ctx, time.Now()); err != nil && ctx.Err() == nil {
		a.log.Error("resolving health issues failed", "error", err.Error())
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

// Warehouses is the warehouse service, for tests that run its scheduler at a time they choose.
func (a *App) Warehouses() *warehouse.Service { return a.warehouses }

// regulationDeliveries sends regulations' deletion calls through the delivery engine. Warehouses
// are left out: they have no deletion call, their rows are deleted as regulationWarehouses says.
type regulationDeliveries struct {
	e  *delivery.Engine
	wh *warehouse.Service
}

func (r regulationDeliveries) DeleteSubjects(ctx context.Context, workspaceID, regulationID string, subjectType regulation.SubjectType,
	subjects []string) ([]regulation.DestinationStatus, error) {
	results, err := r.e.DeleteSubjects(ctx, workspaceID, regulationID, string(subjectType), subjects)
	if err != nil {
		return nil, err
	}
	whs, err := r.wh.Of(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	isWarehouse := map[string]bool{}
	for _, w := range whs {
		isWarehouse[w.ID] = true
	}
	now := db.Now()
	out := make([]regulation.DestinationStatus, 0, len(results))
	for _, x := range results {
		if isWarehouse[x.DestinationID] {
			continue
		}
		st := regulation.DestinationStatus{DestinationID: x.DestinationID, Name: x.Name, Status: regulation.Status(x.Status),
			Attempts: x.Attempts, UpdatedAt: now, WorkspaceID: workspaceID}
		if x.Error != "" {
			st.Error = &x.Error
		}
		out = append(out, st)
	}
	return out, nil
}

// regulationWarehouses deletes regulations' subjects in the workspaces' warehouses.
type regulationWarehouses struct{ s *warehouse.Service }

func (r regulationWarehouses) Warehouses(ctx context.Context, workspaceID string) ([]regulation.WarehouseStatus, error) {
	list, err := r.s.Of(ctx, workspaceID)
	out := make([]regulation.WarehouseStatus, len(list))
	for i, w := range list {
		out[i] = regulation.WarehouseStatus{DestinationID: w.ID, Name: w.Name}
	}
	return out, err
}

func (r regulationWarehouses) Forget(ctx context.Context, destinationID string, s forget.Subjects) (int64, error) {
	return r.s.Forget(ctx, destinationID, s)
}

func (r regulationWarehouses) Failed(err error) bool {
	var f *warehouse.Failure
	return errors.As(err, &f)
}

// Reaper is the reaper of deleted sources and workspaces, for tests that want to wait for it.
func (a *App) Reaper() *reap.Reaper { return a.reaper }

// audienceActivation is what audiences' activation needs of sources, destinations and the
// tracking API's writer.
func audienceActivation(sources *source.Service, dests *destination.Service, in *ingest.Service) *audience.Activation {
	return &audience.Activation{
		CreateSource: func(ctx context.Context, workspaceID string) (string, error) {
			src, errs, err := sources.Create(ctx, workspaceID, "http-api", "Engage", nil, nil, nil)
			if err != nil {
				return "", err
			}
			if len(errs) > 0 {
				return "", fmt.Errorf("making the Engage source: %s", errs[0].Message)
			}
			return src.ID, nil
		},
		SourceExists: func(ctx context.Context, sourceID string) (bool, error) {
			m, err := sources.InternalByIDs(ctx, []string{sourceID})
			return len(m) == 1, err
		},
		Connect: func(ctx context.Context, sourceID, destinationID string) error {
			_, errs, err := dests.Connect(ctx, sourceID, destinationID, nil)
			if err == nil && len(errs) > 0 && errs[0].Code != apperr.Taken {
				return apperr.Invalid("destinationId", "%s", errs[0].Message)
			}
			return err
		},
		Receive: func(ctx context.Context, workspaceID, sourceID string, events []json.RawMessage) error {
			// As the source stands: disabled, its events are stored discarded, as any source's.
			m, err := sources.InternalByIDs(ctx, []string{sourceID})
			if err != nil {
				return err
			}
			src, ok := m[sourceID]
			if !ok {
				return fmt.Errorf("the Engage source %s of workspace %s was deleted: connect the audience again", sourceID, workspaceID)
			}
			_, err = in.Receive(ctx, ingest.Inbound{WorkspaceID: workspaceID, SourceID: sourceID, Enabled: src.Enabled, Events: events})
			return err
		},
		DestinationVisible: func(ctx context.Context, workspaceID, destinationID string) (bool, error) {
			d, err := dests.Get(ctx, destinationID)
			if apperr.CodeOf(err) == apperr.NotFound {
				return false, nil
			}
			return err == nil && d != nil && d.WorkspaceID == workspaceID, err
		},
	}
}
