package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/id"
)

// AttemptPrefix is the id prefix of delivery attempts.
const AttemptPrefix = "att"

// Options tune the engine.
type Options struct {
	Policy      Policy
	Concurrency int           // requests in flight per destination
	Batch       int           // events read per step of a lane
	Poll        time.Duration // how often an idle lane looks for work without being woken
	// OnAttempts is called after each step's attempts are committed (health issues, live views).
	OnAttempts func(ctx context.Context, attempts []Attempt)
	Logger     *slog.Logger
}

// Engine runs one lane per enabled destination.
type Engine struct {
	db    *db.DB
	dests *destination.Service
	opt   Options
	log   *slog.Logger

	mu      sync.Mutex
	lanes   map[string]*lane
	refresh chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New returns an engine; Start runs it.
func New(d *db.DB, dests *destination.Service, o Options) *Engine {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Batch <= 0 {
		o.Batch = 200
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Policy.MaxAttempts <= 0 {
		o.Policy = DefaultPolicy
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Engine{db: d, dests: dests, opt: o, log: o.Logger, lanes: map[string]*lane{},
		refresh: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Start runs the manager, which keeps a lane for each enabled destination.
func (e *Engine) Start() {
	e.wg.Add(1)
	go e.manage()
}

// Close stops every lane after its current step and waits for them.
func (e *Engine) Close() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.wg.Wait()
}

// Notify wakes every lane: new events were committed.
func (e *Engine) Notify() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.lanes {
		l.wake()
	}
}

// Refresh makes the manager re-read the destinations now (one was created, changed or deleted).
func (e *Engine) Refresh() {
	select {
	case e.refresh <- struct{}{}:
	default:
	}
}

func (e *Engine) manage() {
	defer e.wg.Done()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		if err := e.sync(); err != nil {
			e.log.Error("delivery: reading destinations failed", "error", err.Error())
		}
		select {
		case <-e.stop:
			e.mu.Lock()
			lanes := e.lanes
			e.lanes = map[string]*lane{}
			e.mu.Unlock()
			for _, l := range lanes {
				l.close()
			}
			return
		case <-e.refresh:
		case <-tick.C:
		}
	}
}

// sync starts lanes for enabled destinations with a connector, stops the others, and hands
// changed settings to running lanes.
func (e *Engine) sync() error {
	ctx := context.Background()
	var rows []struct {
		ID          string  `db:"id"`
		CatalogSlug string  `db:"catalog_slug"`
		UpdatedAt   db.Time `db:"updated_at"`
	}
	if err := e.db.Select(ctx, &rows, `SELECT id, catalog_slug, updated_at FROM destinations WHERE enabled = TRUE`); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, r := range rows {
		if ConnectorFor(r.CatalogSlug) == nil {
			continue
		}
		want[r.ID] = true
		e.mu.Lock()
		l := e.lanes[r.ID]
		e.mu.Unlock()
		if l != nil && l.version.Equal(r.UpdatedAt.Time) {
			continue
		}
		cfg, err := e.config(ctx, r.ID)
		if err != nil {
			e.log.Error("delivery: loading a destination failed", "destination", r.ID, "error", err.Error())
			continue
		}
		if l != nil {
			l.setConfig(cfg, r.UpdatedAt.Time)
			continue
		}
		l = e.newLane(cfg, r.UpdatedAt.Time)
		e.mu.Lock()
		e.lanes[r.ID] = l
		e.mu.Unlock()
	}
	e.mu.Lock()
	var stale []*lane
	for id, l := range e.lanes {
		if !want[id] {
			stale = append(stale, l)
			delete(e.lanes, id)
		}
	}
	e.mu.Unlock()
	for _, l := range stale {
		l.close()
	}
	return nil
}

type laneConfig struct {
	Config
	slug    string
	timeout time.Duration
}

func (e *Engine) config(ctx context.Context, destinationID string) (laneConfig, error) {
	d, err := e.dests.Internal(ctx, destinationID)
	if err != nil {
		return laneConfig{}, err
	}
	secrets, err := e.dests.Secrets(ctx, d)
	if err != nil {
		return laneConfig{}, err
	}
	settings := map[string]any{}
	_ = json.Unmarshal([]byte(d.SettingsRaw), &settings)
	c := Config{DestinationID: d.ID, WorkspaceID: d.WorkspaceID, Name: d.Name, Settings: settings, Secrets: secrets}
	return laneConfig{Config: c, slug: d.CatalogSlug, timeout: time.Duration(c.Number("timeoutSeconds", 10) * float64(time.Second))}, nil
}

// lane delivers to one destination.
type lane struct {
	e        *Engine
	id       string
	mu       sync.Mutex
	cfg      laneConfig
	version  time.Time
	client   *http.Client
	wakeCh   chan struct{}
	stopCh   chan struct{}
	done     chan struct{}
	catalogs map[string]string // catalog slug -> name, for the integrations object
}

func (e *Engine) newLane(cfg laneConfig, version time.Time) *lane {
	l := &lane{e: e, id: cfg.DestinationID, cfg: cfg, version: version,
		// A transport of its own: a destination that hangs holds only its own connections.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: e.opt.Concurrency, MaxConnsPerHost: e.opt.Concurrency,
			IdleConnTimeout: 90 * time.Second}}, // each request has the timeout of the current settings
		wakeCh: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{})}
	e.wg.Add(1)
	go l.run()
	return l
}

func (l *lane) setConfig(cfg laneConfig, version time.Time) {
	l.mu.Lock()
	l.cfg, l.version = cfg, version
	l.mu.Unlock()
	l.wake()
}

func (l *lane) config() laneConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

func (l *lane) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

func (l *lane) close() {
	close(l.stopCh)
	<-l.done
}

func (l *lane) run() {
	defer l.e.wg.Done()
	defer close(l.done)
	defer l.client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-l.stopCh:
			return
		case <-l.wakeCh:
		case <-timer.C:
		}
		for ctx.Err() == nil {
			n, err := l.step(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.e.log.Error("delivery: a step failed", "destination", l.id, "error", err.Error())
				}
				break
			}
			if n == 0 {
				break
			}
		}
		timer.Reset(l.nextWake(ctx))
	}
}

// nextWake is how long an idle lane sleeps: until its next retry is due, at most Poll.
func (l *lane) nextWake(ctx context.Context) time.Duration {
	wait := l.e.opt.Poll
	var next *db.Time
	if err := l.e.db.Get(ctx, &next, `SELECT MIN(next_attempt_at) FROM delivery_retries WHERE destination_id = ?`, l.id); err == nil && next != nil {
		wait = min(wait, max(time.Until(next.Time), time.Millisecond))
	}
	return wait
}

// pending is an event to send, with its retry state.
type pending struct {
	ev        *Event
	attempts  int       // made before this one
	firstAt   time.Time // of the first attempt; zero for a new event
	fromRetry bool
}

// Attempt is the record of one attempt, as stored.
type Attempt struct {
	ID, WorkspaceID, DestinationID, EventID, SourceID string
	Number                                            int
	Outcome, ErrorType, ErrorMessage                  string
	Method, URL, RequestHeaders, RequestBody          string
	ResponseStatus                                    *int
	ResponseHeaders, ResponseBody                     *string
	LatencyMS, EndToEndMS                             float64
	EventPayload                                      string
	CreatedAt                                         time.Time
	next                                              time.Time // for RETRYING: when
	firstAt                                           time.Time
}

// step sends one batch: the retries that are due, then new events after the cursor. It returns
// how many events it handled.
func (l *lane) step(ctx context.Context) (int, error) {
	cfg := l.config()
	now := time.Now()
	// The end of the log, read before the events: when nothing is left to send, the cursor may
	// move up to here, never past an event committed after the load looked.
	var head *string
	if err := l.e.db.Get(ctx, &head, `SELECT MAX(id) FROM events`); err != nil {
		return 0, err
	}
	batch, cursor, err := l.load(ctx, now)
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, l.idle(ctx, cursor, head)
	}
	results := make([]*Attempt, len(batch))
	sem := make(chan struct{}, l.e.opt.Concurrency)
	var wg sync.WaitGroup
	for i, p := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, p pending) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = l.attempt(ctx, cfg, p)
		}(i, p)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return 0, ctx.Err() // shutting down: nothing recorded, the events will be sent again
	}
	newCursor := cursor
	for _, p := range batch {
		if !p.fromRetry && p.ev.ID > newCursor {
			newCursor = p.ev.ID
		}
	}
	var recorded []Attempt
	for _, a := range results {
		if a != nil {
			recorded = append(recorded, *a)
		}
	}
	if err := l.record(ctx, batch, results, cursor, newCursor); err != nil {
		return 0, err
	}
	if l.e.opt.OnAttempts != nil && len(recorded) > 0 {
		l.e.opt.OnAttempts(ctx, recorded)
	}
	return len(batch), nil
}

// idle moves the cursor to the end of the log when nothing is left for this destination, so that
// events that arrive while its connections are disabled are not delivered once re-enabled.
func (l *lane) idle(ctx context.Context, cursor string, last *string) error {
	if last == nil || *last <= cursor {
		return nil
	}
	return l.e.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE delivery_cursors SET last_event_id = ? WHERE destination_id = ? AND last_event_id < ?`, *last, l.id, *last)
		return err
	})
}

type eventRow struct {
	ID         string  `db:"id"`
	SourceID   string  `db:"source_id"`
	Type       string  `db:"type"`
	ReceivedAt db.Time `db:"received_at"`
	Payload    string  `db:"payload"`
	Attempts   int     `db:"attempts"`
	FirstAt    *string `db:"first_attempt_at"`
}

// load reads the due retries and the new events of connected, enabled sources.
func (l *lane) load(ctx context.Context, now time.Time) ([]pending, string, error) {
	cursor, err := l.cursor(ctx)
	if err != nil {
		return nil, "", err
	}
	var retries, fresh []eventRow
	if err := l.e.db.Select(ctx, &retries, `SELECT e.id, e.source_id, e.type, e.received_at, e.payload, r.attempts, r.first_attempt_at
		FROM delivery_retries r JOIN events e ON e.id = r.event_id
		WHERE r.destination_id = ? AND r.next_attempt_at <= ? ORDER BY r.next_attempt_at LIMIT ?`,
		l.id, db.Time{Time: now}, l.e.opt.Batch); err != nil {
		return nil, "", err
	}
	if room := l.e.opt.Batch - len(retries); room > 0 {
		if err := l.e.db.Select(ctx, &fresh, `SELECT e.id, e.source_id, e.type, e.received_at, e.payload, 0 AS attempts, NULL AS first_attempt_at
			FROM events e JOIN connections c ON c.source_id = e.source_id AND c.destination_id = ?
			JOIN sources s ON s.id = e.source_id
			WHERE e.id > ? AND e.status = 'ACCEPTED' AND c.enabled = TRUE AND s.enabled = TRUE AND e.received_at >= c.created_at
			ORDER BY e.id LIMIT ?`, l.id, cursor, room); err != nil {
			return nil, "", err
		}
	}
	out := make([]pending, 0, len(retries)+len(fresh))
	for _, r := range retries {
		p := pending{ev: toEvent(r), attempts: r.Attempts, fromRetry: true}
		if r.FirstAt != nil {
			var t db.Time
			_ = t.Scan(*r.FirstAt)
			p.firstAt = t.Time
		}
		out = append(out, p)
	}
	for _, r := range fresh {
		out = append(out, pending{ev: toEvent(r)})
	}
	return out, cursor, nil
}

func toEvent(r eventRow) *Event {
	ev := &Event{ID: r.ID, SourceID: r.SourceID, Type: strings.ToLower(r.Type), Raw: []byte(r.Payload), ReceivedAt: r.ReceivedAt.Time}
	_ = json.Unmarshal(ev.Raw, &ev.Payload)
	if ev.Payload == nil {
		ev.Payload = map[string]any{}
	}
	return ev
}

// cursor returns the destination's cursor, creating it at the current end of the log: a new
// destination receives the events that arrive from now on.
func (l *lane) cursor(ctx context.Context) (string, error) {
	var c string
	err := l.e.db.Get(ctx, &c, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, l.id)
	if err == nil || !db.IsNoRows(err) {
		return c, err
	}
	var created db.Time
	if err := l.e.db.Get(ctx, &created, `SELECT created_at FROM destinations WHERE id = ?`, l.id); err != nil {
		return "", err
	}
	c = id.Floor("evt", created.Time)
	err = l.e.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO delivery_cursors (destination_id, last_event_id) VALUES (?, ?) ON CONFLICT (destination_id) DO NOTHING`, l.id, c)
		return err
	})
	return c, err
}

// attempt sends one event and describes what happened; nil when the event is skipped (its
// integrations object or the connector leaves this destination out).
func (l *lane) attempt(ctx context.Context, cfg laneConfig, p pending) *Attempt {
	if !wanted(p.ev, cfg) {
		return nil
	}
	now := time.Now()
	a := &Attempt{ID: id.New(AttemptPrefix), WorkspaceID: cfg.WorkspaceID, DestinationID: cfg.DestinationID, EventID: p.ev.ID,
		SourceID: p.ev.SourceID, Number: p.attempts + 1, EventPayload: string(p.ev.Raw), firstAt: p.firstAt}
	if a.firstAt.IsZero() {
		a.firstAt = now
	}
	conn := ConnectorFor(cfg.slug)
	reqCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	req, err := conn.Request(reqCtx, cfg.Config, p.ev)
	var sk *skip
	if errors.As(err, &sk) {
		return nil
	}
	if err != nil {
		a.Outcome, a.ErrorType, a.ErrorMessage = Failed, ErrInvalidSettings, err.Error()
		a.Method, a.URL, a.RequestHeaders = "", "", "{}"
		a.CreatedAt = time.Now()
		a.EndToEndMS = ms(a.CreatedAt.Sub(p.ev.ReceivedAt))
		return a
	}
	req.Header.Set("Idempotency-Key", p.ev.ID+":"+cfg.DestinationID)
	a.Method, a.URL = req.Method, mask(req.URL.String(), cfg.Secrets)
	a.RequestHeaders = maskHeaders(req.Header, cfg.Secrets)
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(b)
			a.RequestBody = mask(string(raw), cfg.Secrets)
		}
	}
	start := time.Now()
	res, err := l.client.Do(req)
	end := time.Now()
	a.LatencyMS = ms(end.Sub(start))
	a.CreatedAt = end
	a.EndToEndMS = ms(end.Sub(p.ev.ReceivedAt))
	var wait time.Duration
	status := 0
	if err == nil {
		status = res.StatusCode
		a.ResponseStatus = &status
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxResponseBody+1))
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)) // let the connection be reused
		res.Body.Close()
		rb := string(body)
		if len(rb) > maxResponseBody {
			rb = rb[:maxResponseBody] + "…(truncated)"
		}
		rb = db.Text(rb)
		a.ResponseBody = &rb
		rh := maskHeaders(res.Header, nil)
		a.ResponseHeaders = &rh
		wait = retryAfter(res.Header, end)
	} else if reqCtx.Err() != nil && ctx.Err() == nil {
		err = context.DeadlineExceeded
	}
	errType, retryable := classify(status, err)
	switch {
	case errType == "":
		a.Outcome = Delivered
	case !retryable:
		a.Outcome, a.ErrorType = Failed, errType
	default:
		pol := l.e.opt.Policy
		next := end.Add(pol.backoff(a.Number+1, wait))
		if a.Number >= pol.MaxAttempts || next.Sub(a.firstAt) > pol.MaxAge {
			a.Outcome, a.ErrorType = Failed, errType
		} else {
			a.Outcome, a.ErrorType, a.next = Retrying, errType, next
		}
	}
	if errType != "" {
		a.ErrorMessage = describe(status, err)
		if a.Outcome == Failed && retryable {
			a.ErrorMessage += " (gave up: retries exhausted)"
		}
	}
	return a
}

const maxResponseBody = 4096

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func describe(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "HTTP " + http.StatusText(status) + " (" + itoa(status) + ")"
}

// wanted honours the event's integrations object: {"All": false} leaves out every destination not
// named true; a destination named false (by its name or its catalog name) is left out.
func wanted(ev *Event, cfg laneConfig) bool {
	integ := ev.Object("integrations")
	if len(integ) == 0 {
		return true
	}
	names := []string{cfg.Name, cfg.slug, catalogName(cfg.slug)}
	for _, n := range names {
		for k, v := range integ {
			if n != "" && strings.EqualFold(k, n) {
				if b, ok := v.(bool); ok {
					return b
				}
				return true // an object of options means enabled
			}
		}
	}
	if all, ok := integ["All"].(bool); ok {
		return all
	}
	return true
}

// record commits the attempts of a step: the attempts themselves, the retry table, and the cursor.
func (l *lane) record(ctx context.Context, batch []pending, results []*Attempt, oldCursor, newCursor string) error {
	return l.e.db.Tx(ctx, func(tx *db.Tx) error {
		var rows [][]any
		for _, a := range results {
			if a == nil {
				continue
			}
			var errType, errMsg any
			if a.ErrorType != "" {
				errType, errMsg = a.ErrorType, a.ErrorMessage
			}
			rows = append(rows, []any{a.ID, a.WorkspaceID, a.DestinationID, a.EventID, a.SourceID, a.Number, a.Outcome, errType, errMsg,
				a.Method, a.URL, a.RequestHeaders, a.RequestBody, a.ResponseStatus, a.ResponseHeaders, a.ResponseBody,
				a.LatencyMS, a.EndToEndMS, a.EventPayload, db.FormatTime(a.CreatedAt)})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO delivery_attempts (id, workspace_id, destination_id, event_id, source_id, attempt, outcome,
			error_type, error_message, request_method, request_url, request_headers, request_body, response_status, response_headers,
			response_body, latency_ms, end_to_end_ms, event_payload, created_at) VALUES `, 20, rows, ""); err != nil {
			return err
		}
		for i, a := range results {
			p := batch[i]
			switch {
			case a != nil && a.Outcome == Retrying:
				if _, err := tx.Exec(ctx, `INSERT INTO delivery_retries (destination_id, event_id, attempts, first_attempt_at, next_attempt_at)
					VALUES (?, ?, ?, ?, ?) ON CONFLICT (destination_id, event_id) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at`,
					l.id, p.ev.ID, a.Number, db.Time{Time: a.firstAt}, db.Time{Time: a.next}); err != nil {
					return err
				}
			case p.fromRetry:
				if _, err := tx.Exec(ctx, `DELETE FROM delivery_retries WHERE destination_id = ? AND event_id = ?`, l.id, p.ev.ID); err != nil {
					return err
				}
			}
		}
		if newCursor > oldCursor {
			if _, err := tx.Exec(ctx, `UPDATE delivery_cursors SET last_event_id = ? WHERE destination_id = ?`, newCursor, l.id); err != nil {
				return err
			}
		}
		return nil
	})
}
