package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/obs"
)

// Options configure the tracking API.
type Options struct {
	// RatePerWorkspace is the events a second a workspace may send (burst: RateBurst); 0 means no limit.
	RatePerWorkspace float64
	RateBurst        int
	// KeyCacheTTL bounds how long a write key's source settings are remembered.
	KeyCacheTTL time.Duration
	// Queue bounds what waits for the writer (DefaultQueueLimits when zero).
	Queue QueueLimits
	// InflightBytes bounds the request bodies being read and decoded at once (64 MiB when zero):
	// beyond it requests wait up to Queue.Wait, then get 503.
	InflightBytes int64
	// Listeners hear, on a goroutine of their own and in commit order, the events each group
	// commit stored. They must not block for long: commits made meanwhile reach them together.
	Listeners []Listener
	// Stages look at each request's events after normalisation, before they are stored, in order.
	Stages []Stage
	Logger *slog.Logger
}

// Service is the tracking API.
type Service struct {
	db       *db.DB
	keys     *keyCache
	writer   *writer
	follower *follower
	limiter  *rateLimiter
	inflight *semaphore.Weighted
	stages   []Stage
	wait     time.Duration
	log      *slog.Logger

	events   *prometheus.CounterVec
	requests *prometheus.CounterVec
	commits  prometheus.Histogram
	groups   prometheus.Histogram
}

// New starts the tracking API's writer.
func New(d *db.DB, o Options) *Service {
	if o.KeyCacheTTL <= 0 {
		o.KeyCacheTTL = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Queue.Events <= 0 {
		o.Queue = DefaultQueueLimits
	}
	if o.InflightBytes <= 0 {
		o.InflightBytes = 64 << 20
	}
	s := &Service{db: d, keys: newKeyCache(d, o.KeyCacheTTL), limiter: newRateLimiter(o.RatePerWorkspace, o.RateBurst),
		inflight: semaphore.NewWeighted(o.InflightBytes), stages: o.Stages, wait: o.Queue.Wait, log: o.Logger}
	s.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_ingest_events_total",
		Help: "Events received by the tracking API, by status (accepted, discarded, blocked) and discard reason.",
	}, []string{"status", "reason"})
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_ingest_requests_total",
		Help: "Tracking API requests, by HTTP status code.",
	}, []string{"code"})
	s.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "junction_ingest_commit_seconds",
		Help:    "Time of one group commit of events.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	s.groups = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "junction_ingest_commit_events",
		Help:    "Events stored by one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	s.follower = newFollower(o.Logger, o.Listeners)
	s.writer = newWriter(d, o.Queue, func(n int, d time.Duration) {
		s.commits.Observe(d.Seconds())
		s.groups.Observe(float64(n))
	}, s.follower)
	go s.writer.run()
	return s
}

// Collectors are the tracking API's metrics, for the server's registry.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.events, s.requests, s.commits, s.groups}
}

// Close stops the writer after committing what is queued, and lets the listeners hear of it. Call
// it after the HTTP server stopped taking requests.
func (s *Service) Close() {
	s.writer.close()
	s.follower.close()
}

// ShareRate makes the rate limit per workspace hold across replicas: each enforces its share of
// it, the limit divided by replicas() (the live replicas). Call it before serving.
func (s *Service) ShareRate(replicas func() int) { s.limiter.replicas = replicas }

// ForgetSource makes the next request with one of a source's write keys read the source anew
// (it was disabled, deleted, or its settings or keys changed).
func (s *Service) ForgetSource(sourceID string) { s.keys.forgetSource(sourceID) }

// ForgetAll drops every cached write key (a workspace was deleted).
func (s *Service) ForgetAll() { s.keys.forgetAll() }

// paths maps the tracking API's paths to the type they take; "" for batches.
var paths = map[string]Type{
	"track": Track, "identify": Identify, "page": Page, "screen": Screen, "group": Group, "alias": Alias,
	"t": Track, "i": Identify, "p": Page, "s": Screen, "g": Group, "a": Alias,
	"batch": "", "b": "", "import": "",
}

// StrictHeader turns on strict mode for one request (any value but "", "0" or "false").
const StrictHeader = "X-Strict-Mode"

// ServeHTTP serves /v1/*.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Content-Encoding, "+StrictHeader)
	h.Set("Access-Control-Max-Age", "86400")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/")
	if key, ok := strings.CutPrefix(rest, "projects/"); ok && strings.HasSuffix(key, "/settings") {
		s.settings(w, r, strings.TrimSuffix(key, "/settings"))
		return
	}
	typ, ok := paths[strings.Trim(rest, "/")]
	if !ok {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint: "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST, OPTIONS")
		s.fail(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "send events with POST")
		return
	}
	s.ingest(w, r, typ, typ == "")
}

func (s *Service) ingest(w http.ResponseWriter, r *http.Request, typ Type, batch bool) {
	// Bodies being read and decoded hold memory: take their size (the most a request may be,
	// when its length is not known in advance) from a bounded budget, or answer 503.
	size := int64(MaxRequestBytes)
	if r.ContentLength >= 0 && r.ContentLength < size && r.Header.Get("Content-Encoding") == "" {
		size = max(r.ContentLength, 1)
	}
	release, err := s.Admit(r.Context(), size)
	if err != nil {
		s.busy(w)
		return
	}
	defer release()
	body, rerr := readBody(r)
	if rerr != nil {
		s.fail(w, rerr.Status, rerr.Code, rerr.Message)
		return
	}
	req, rerr := decode(body, batch)
	if rerr != nil {
		s.fail(w, rerr.Status, rerr.Code, rerr.Message)
		return
	}
	key := basicWriteKey(r)
	if key == "" {
		key = req.WriteKey
	}
	strict := isStrict(r.Header.Get(StrictHeader))
	ctx := r.Context()
	info, err := s.keys.lookup(ctx, key)
	if err != nil {
		obs.Logger(ctx).Error("ingest: write key lookup failed", "error", err.Error())
		s.fail(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the server could not take the events; retry")
		return
	}
	strict = strict || info.Strict
	if !info.Known {
		s.events.WithLabelValues("discarded", string(UnknownWriteKey)).Add(float64(len(req.Events)))
		obs.Logger(ctx).Info("ingest: events with an unknown write key discarded", "events", len(req.Events), "has_key", key != "")
		if strict {
			h := w.Header()
			h.Set("WWW-Authenticate", `Basic realm="write key"`)
			s.fail(w, http.StatusUnauthorized, "UNKNOWN_WRITE_KEY", "the write key is missing or unknown: send it as the Basic-auth user name or as writeKey")
			return
		}
		s.ok(w)
		return
	}
	if info.Revoked && strict {
		s.fail(w, http.StatusUnauthorized, "REVOKED_WRITE_KEY", "the write key was revoked: use another key of the source")
		return
	}
	events, err := s.store(ctx, target{WorkspaceID: info.WorkspaceID, SourceID: info.SourceID, Enabled: info.Enabled,
		Revoked: info.Revoked}, req, typ, clientIP(r))
	if err != nil {
		s.failStore(w, err)
		return
	}
	var problems []map[string]any
	for _, e := range events {
		if e.Status == Discarded {
			problems = append(problems, map[string]any{"index": e.Index, "messageId": e.MessageID, "reason": e.Reason, "message": e.Message})
		}
	}
	if strict && len(problems) > 0 {
		s.reply(w, http.StatusBadRequest, map[string]any{"success": false, "code": "INVALID_EVENTS",
			"message": strconv.Itoa(len(problems)) + " of the events were discarded; the others were accepted", "errors": problems})
		return
	}
	s.ok(w)
}

// target is the source a request's events are for, and what it says about them.
type target struct {
	WorkspaceID, SourceID string
	Enabled, Revoked      bool
	// Discard, when set, stores every event discarded for this reason, with Message.
	Discard Reason
	Message string
}

// RateLimited is the error of events over their workspace's rate: nothing was stored; retry
// after Wait.
type RateLimited struct{ Wait time.Duration }

func (e *RateLimited) Error() string { return "ingest: the workspace is over its event rate" }

// errUnavailable is a failure already logged: the caller answers 503 and the client retries.
var errUnavailable = errors.New("ingest: the events could not be stored")

// store normalises a request's events for t, lets the stages see them, and stores them through
// the writer, returning them once committed (discarded ones included, with their reasons). It is
// the one way in for events, whether they came with a write key or through a cloud app's webhook.
// Errors: *RateLimited, ErrBusy, or errUnavailable (logged).
func (s *Service) store(ctx context.Context, t target, req *request, typ Type, ip string) ([]*Event, error) {
	if ok, wait := s.limiter.allow(t.WorkspaceID, time.Now(), len(req.Events)); !ok {
		return nil, &RateLimited{Wait: wait}
	}
	n := &normaliser{req: req, pathType: typ, receivedAt: time.Now().UTC(), clientIP: ip}
	events := make([]*Event, len(req.Events))
	for i, raw := range req.Events {
		e := n.normalise(i, raw)
		e.WorkspaceID, e.SourceID = t.WorkspaceID, t.SourceID
		switch {
		case t.Discard != "":
			e.Status, e.Reason, e.Message = Discarded, t.Discard, t.Message
		case t.Revoked:
			e.Status, e.Reason, e.Message = Discarded, RevokedWriteKey, "the write key was revoked"
		case !t.Enabled && e.Status == Accepted:
			e.Status, e.Reason, e.Message = Discarded, SourceDisabled, "the source is disabled"
		}
		events[i] = e
	}
	stored := events
	if len(s.stages) > 0 {
		b := &Batch{WorkspaceID: t.WorkspaceID, SourceID: t.SourceID, Events: events}
		for _, st := range s.stages {
			if err := st.Process(ctx, b); err != nil {
				obs.Logger(ctx).Error("ingest: a stage failed", "error", err.Error())
				return nil, errUnavailable
			}
		}
		if len(b.added) > 0 {
			stored = append(append(make([]*Event, 0, len(events)+len(b.added)), events...), b.added...)
		}
	}
	for _, e := range stored {
		e.prepare()
	}
	if err := s.writer.write(ctx, t.WorkspaceID, stored); err != nil {
		if errors.Is(err, ErrBusy) {
			return nil, err
		}
		obs.Logger(ctx).Error("ingest: storing events failed", "events", len(events), "error", err.Error())
		return nil, errUnavailable
	}
	for _, e := range events {
		switch e.Status {
		case Discarded:
			s.events.WithLabelValues("discarded", string(e.Reason)).Inc()
		case Blocked:
			// Kept with its violations, as Segment's libraries expect no error for it.
			s.events.WithLabelValues("blocked", "").Inc()
		default:
			s.events.WithLabelValues("accepted", "").Inc()
		}
	}
	return events, nil
}

// failStore answers a request whose events store refused.
func (s *Service) failStore(w http.ResponseWriter, err error) {
	var limited *RateLimited
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(limited.Wait.Seconds(), 1)))))
		s.fail(w, http.StatusTooManyRequests, "RATE_LIMITED", "the workspace is over its event rate; retry after the Retry-After seconds")
	case errors.Is(err, ErrBusy):
		s.busy(w)
	default:
		s.fail(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the events could not be stored; retry")
	}
}

// Admit takes size bytes from the budget of request bodies being read and decoded
// (Options.InflightBytes), waiting up to the queue's wait, and returns the function that gives
// them back; ErrBusy when there is no room.
func (s *Service) Admit(ctx context.Context, size int64) (release func(), err error) {
	actx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	if err := s.inflight.Acquire(actx, size); err != nil {
		return nil, ErrBusy
	}
	return func() { s.inflight.Release(size) }, nil
}

func isStrict(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return v != "" && v != "0" && v != "false"
}

// clientIP is the TCP peer's address: no forwarding header is trusted.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

func (s *Service) ok(w http.ResponseWriter) {
	s.reply(w, http.StatusOK, map[string]any{"success": true})
}

// busy answers 503 with Retry-After: the server is at its bounds (queue, memory) and took nothing.
func (s *Service) busy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	s.fail(w, http.StatusServiceUnavailable, "BUSY", "the server is busy and stored none of the events; retry after the Retry-After seconds")
}

func (s *Service) fail(w http.ResponseWriter, status int, code, message string) {
	s.reply(w, status, map[string]any{"success": false, "code": code, "message": message})
}

func (s *Service) reply(w http.ResponseWriter, status int, body any) {
	s.requests.WithLabelValues(strconv.Itoa(status)).Inc()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// settings answers what analytics.js loads at start: the settings of its source, pointing it at
// this server for sending.
func (s *Service) settings(w http.ResponseWriter, r *http.Request, key string) {
	if r.Method != http.MethodGet {
		s.fail(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "use GET")
		return
	}
	info, err := s.keys.lookup(r.Context(), key)
	if err != nil {
		s.fail(w, http.StatusServiceUnavailable, "UNAVAILABLE", "retry")
		return
	}
	if !info.Known || info.Revoked {
		s.fail(w, http.StatusNotFound, "UNKNOWN_WRITE_KEY", "no source has this write key")
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	s.reply(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{"Segment.io": map[string]any{
			"apiKey": key, "apiHost": r.Host + "/v1", "protocol": scheme,
			"unbundledIntegrations": []any{}, "addBundledMetadata": true, "maybeBundledConfigIds": map[string]any{},
			"versionSettings": map[string]any{"version": "4.4.7", "componentTypes": []string{"browser"}},
		}},
		"plan":                      map[string]any{"track": map[string]any{"__default": map[string]any{"enabled": true, "integrations": map[string]any{}}}, "identify": map[string]any{"__default": map[string]any{"enabled": true}}, "group": map[string]any{"__default": map[string]any{"enabled": true}}},
		"edgeFunction":              map[string]any{},
		"analyticsNextEnabled":      true,
		"middlewareSettings":        map[string]any{},
		"enabledMiddleware":         map[string]any{},
		"metrics":                   map[string]any{"sampleRate": 0},
		"legacyVideoPluginsEnabled": false,
		"remotePlugins":             []any{},
	})
}
