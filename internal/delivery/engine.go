package delivery

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/egress"
)

// Id prefixes of delivery attempts and of the requests that carry them.
const (
	AttemptPrefix = "att"
	RequestPrefix = "req"
)

// Options tune the engine.
type Options struct {
	Policy      Policy
	Concurrency int // requests in flight per destination
	// Window is how many events a lane holds at once: loaded, in flight, or sent and waiting for
	// their record to commit. It bounds a lane's memory, and what a lane sends while its records
	// cannot be written (a full disk): nothing more until they are.
	Window int
	Poll   time.Duration // how often an idle lane looks for work without being woken
	// Egress is the filter every request dials through.
	Egress *egress.Filter
	// OnAttempts is called after attempts are committed (health issues), on the lane's recorder,
	// never on the tracking API's writer.
	OnAttempts func(ctx context.Context, attempts []Attempt)
	// Outgoing changes an event's payload (its JSON) before it is prepared for a destination (the
	// Privacy Portal's destination controls: fields blocked or hashed); it tells whether it did.
	Outgoing func(ctx context.Context, destinationID string, raw []byte) ([]byte, bool)
	Logger   *slog.Logger
}

// Engine runs one lane per enabled destination.
type Engine struct {
	db    *db.DB
	dests *destination.Service
	opt   Options
	log   *slog.Logger

	mu       sync.Mutex
	lanes    map[string]*lane
	bySource map[string][]string // source id -> destinations an enabled connection leads to
	refresh  chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup

	// Refresh waits for the manager's next sync: asked counts the calls, synced is the count a
	// completed sync had seen when it began, and syncedNow is closed at each completed sync.
	syncMu    sync.Mutex
	asked     uint64
	synced    uint64
	syncedNow chan struct{}

	// OnWake, when set, hears every Wake: another replica may own the lane.
	OnWake func(destinationID string)
	// Owner, when set, decides which lanes run in this process: among replicas, each lane runs
	// in the one that holds its lease. Set before Start.
	Owner Owner
}

// Owner shares the lanes between processes.
type Owner interface {
	// Want hears, at each reading of the destinations, which lanes should run somewhere.
	Want(destinationIDs []string)
	// Owns tells whether a destination's lane runs here.
	Owns(destinationID string) bool
}

// Release stops the lanes of destinations this process no longer owns, and returns once they
// have stopped: requests in flight are abandoned, and their events are sent again by the new
// owner (at least once).
func (e *Engine) Release(destinationIDs []string) {
	var stop []*lane
	e.mu.Lock()
	for _, id := range destinationIDs {
		if l := e.lanes[id]; l != nil {
			stop = append(stop, l)
			delete(e.lanes, id)
		}
	}
	e.mu.Unlock()
	for _, l := range stop {
		l.close()
	}
}

// New returns an engine; Start runs it.
func New(d *db.DB, dests *destination.Service, o Options) *Engine {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Window <= 0 {
		o.Window = 4000
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
	if o.Egress == nil {
		o.Egress = egress.New(nil)
	}
	return &Engine{db: d, dests: dests, opt: o, log: o.Logger, lanes: map[string]*lane{}, bySource: map[string][]string{},
		refresh: make(chan struct{}, 1), stop: make(chan struct{}), syncedNow: make(chan struct{})}
}

// Start runs the manager, which keeps a lane for each enabled destination.
func (e *Engine) Start() {
	e.wg.Add(1)
	go e.manage()
}

// Close stops every lane and waits for them: requests in flight are abandoned (their events are
// sent again at the next start), the attempts already made are recorded.
func (e *Engine) Close() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.wg.Wait()
}

// Notify wakes the lanes of the destinations that the sources' enabled connections lead to: these
// sources just received events.
func (e *Engine) Notify(sourceIDs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range sourceIDs {
		for _, d := range e.bySource[s] {
			if l := e.lanes[d]; l != nil {
				l.wake()
			}
		}
	}
}

// Wake wakes one destination's lane: events were queued for it to re-send.
func (e *Engine) Wake(destinationID string) {
	e.WakeHere(destinationID)
	if e.OnWake != nil {
		e.OnWake(destinationID)
	}
}

// WakeHere wakes a destination's lane if it runs in this process.
func (e *Engine) WakeHere(destinationID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l := e.lanes[destinationID]; l != nil {
		l.retriesQueued.Store(true)
		l.wake()
	}
}

// RefreshSoon makes the manager re-read the destinations now, without waiting for it: for a
// change made through another replica, whose messages must not wait on this one's manager.
func (e *Engine) RefreshSoon() {
	select {
	case e.refresh <- struct{}{}:
	default:
	}
}

// refreshWait bounds how long Refresh waits for the manager (a sync that stops a lane waits for
// the lane's request in flight).
const refreshWait = 5 * time.Second

// Refresh makes the manager re-read the destinations now (one was created, changed or deleted)
// and returns once it has, so that an event tracked after a change to a destination is sent with
// the new settings: the change's mutation answers only then. It waits refreshWait at most, should
// the manager be busy or stopped.
func (e *Engine) Refresh() {
	e.syncMu.Lock()
	e.asked++
	want := e.asked
	e.syncMu.Unlock()
	select {
	case e.refresh <- struct{}{}:
	default:
	}
	timeout := time.NewTimer(refreshWait)
	defer timeout.Stop()
	for {
		e.syncMu.Lock()
		done, next := e.synced >= want, e.syncedNow
		e.syncMu.Unlock()
		if done {
			return
		}
		select {
		case <-next:
		case <-e.stop:
			return
		case <-timeout.C:
			return
		}
	}
}

func (e *Engine) manage() {
	defer e.wg.Done()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		e.syncMu.Lock()
		asked := e.asked
		e.syncMu.Unlock()
		if err := e.sync(); err != nil {
			e.log.Error("delivery: reading destinations failed", "error", err.Error())
		}
		e.syncMu.Lock()
		e.synced = asked
		close(e.syncedNow)
		e.syncedNow = make(chan struct{})
		e.syncMu.Unlock()
		select {
		case <-e.stop:
			e.mu.Lock()
			lanes := e.lanes
			e.lanes = map[string]*lane{}
			e.mu.Unlock()
			var wg sync.WaitGroup
			for _, l := range lanes {
				wg.Add(1)
				go func() { defer wg.Done(); l.close() }()
			}
			wg.Wait()
			return
		case <-e.refresh:
		case <-tick.C:
		}
	}
}

// sync starts lanes for enabled destinations with a connector, stops the others, hands changed
// settings to running lanes, and re-reads which sources lead to which destinations.
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
	var edges []struct {
		SourceID      string `db:"source_id"`
		DestinationID string `db:"destination_id"`
	}
	if err := e.db.Select(ctx, &edges, `SELECT source_id, destination_id FROM connections WHERE enabled = TRUE`); err != nil {
		return err
	}
	bySource := map[string][]string{}
	for _, c := range edges {
		bySource[c.SourceID] = append(bySource[c.SourceID], c.DestinationID)
	}
	e.mu.Lock()
	e.bySource = bySource
	e.mu.Unlock()
	if e.Owner != nil {
		ids := make([]string, 0, len(rows))
		for _, r := range rows {
			if ConnectorFor(r.CatalogSlug) != nil {
				ids = append(ids, r.ID)
			}
		}
		e.Owner.Want(ids)
	}
	want := map[string]bool{}
	for _, r := range rows {
		if ConnectorFor(r.CatalogSlug) == nil || (e.Owner != nil && !e.Owner.Owns(r.ID)) {
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
		// Released meanwhile: the lease was lost or given back since Owns said yes.
		lost := e.Owner != nil && !e.Owner.Owns(r.ID)
		if !lost {
			e.lanes[r.ID] = l
		}
		e.mu.Unlock()
		if lost {
			l.close()
		}
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

// laneConfig is what a lane knows of its destination at one moment.
type laneConfig struct {
	Config
	slug    string
	conn    Connector
	limits  Limits
	timeout time.Duration
	mask    masker
}

func (e *Engine) config(ctx context.Context, destinationID string) (*laneConfig, error) {
	d, err := e.dests.Internal(ctx, destinationID)
	if err != nil {
		return nil, err
	}
	secrets, err := e.dests.Secrets(ctx, d)
	if err != nil {
		return nil, err
	}
	settings := map[string]any{}
	_ = json.Unmarshal([]byte(d.SettingsRaw), &settings)
	c := Config{DestinationID: d.ID, WorkspaceID: d.WorkspaceID, Name: d.Name, Settings: settings, Secrets: secrets}
	conn := ConnectorFor(d.CatalogSlug)
	lim := conn.Limits()
	if lim.Items <= 0 {
		lim.Items = 1
	}
	if lim.Bytes <= 0 {
		lim.Bytes = 1 << 30
	}
	return &laneConfig{Config: c, slug: d.CatalogSlug, conn: conn, limits: lim,
		timeout: time.Duration(c.Number("timeoutSeconds", 10) * float64(time.Second)), mask: newMasker(secrets)}, nil
}

func (e *Engine) newLane(cfg *laneConfig, version time.Time) *lane {
	t := e.opt.Egress.Transport()
	// A transport of its own: a destination that hangs holds only its own connections.
	t.MaxIdleConnsPerHost, t.MaxConnsPerHost = e.opt.Concurrency, e.opt.Concurrency
	l := &lane{e: e, id: cfg.DestinationID, cfg: cfg, version: version,
		client: egress.Client(t, 0), // each request has the timeout of the current settings
		wakeCh: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{})}
	e.wg.Add(1)
	go l.run()
	return l
}

// wanted honours the event's integrations object: {"All": false} leaves out every destination not
// named true; a destination named false (by its name, its catalog name or its id) is left out.
// Events made for one destination (an Engage audience's) name it by its id.
func wanted(ev *Event, cfg *laneConfig) bool {
	integ := ev.Object("integrations")
	if len(integ) == 0 {
		return true
	}
	names := []string{cfg.Name, cfg.slug, catalogName(cfg.slug), cfg.DestinationID}
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

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// describe is the message of a failed request: the transport error, or the status.
func describe(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "HTTP " + http.StatusText(status) + " (" + itoa(status) + ")"
}
