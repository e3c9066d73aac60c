// Package warehouse loads the events of the sources connected to a warehouse destination into the
// warehouse, in Segment's warehouse schema: a schema per source, tables tracks, identifies, users,
// pages, screens, groups, aliases and one per track event, with context, properties and traits
// flattened into snake_case columns. A warehouse is not sent events one by one: it is synced, on
// a schedule or when asked, each sync reading the event log after the warehouse's cursor and
// loading it with COPY in one transaction of the warehouse that also moves the cursor, which lives
// in the warehouse itself (its _junction_syncs table). So a sync that dies half way loads nothing
// and the next one loads its events: exactly once. Each sync leaves a record (rows per table,
// warnings, the error masked of secrets) that feeds Health and notifications.
package warehouse

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// SyncPrefix is the id prefix of syncs.
const SyncPrefix = "whs"

// Sync statuses and triggers.
const (
	Running   = "RUNNING"
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"

	Scheduled = "SCHEDULE"
	Manual    = "MANUAL"
)

// EventSyncFailed is the notification of a warehouse whose syncs started failing.
const EventSyncFailed audit.Type = "WAREHOUSE_SYNC_FAILED"

// Sync is one sync of a warehouse.
type Sync struct {
	ID            string   `db:"id"`
	WorkspaceID   string   `db:"workspace_id"`
	DestinationID string   `db:"destination_id"`
	Trigger       string   `db:"trigger_kind"`
	Status        string   `db:"status"`
	StartedAt     db.Time  `db:"started_at"`
	FinishedAt    *db.Time `db:"finished_at"`
	RowCountsRaw  string   `db:"row_counts"`
	WarningsRaw   string   `db:"warnings"`
	ErrorType     *string  `db:"error_type"`
	ErrorMessage  *string  `db:"error_message"`
}

// TableRows is how many rows a sync loaded into one table.
type TableRows struct {
	Schema, Table string
	Rows          int
}

// Tables returns the rows loaded per table, by schema and table.
func (s *Sync) Tables() []TableRows {
	m := map[string]int64{}
	_ = json.Unmarshal([]byte(s.RowCountsRaw), &m)
	out := make([]TableRows, 0, len(m))
	for k, n := range m {
		schema, table, _ := strings.Cut(k, ".")
		out = append(out, TableRows{Schema: schema, Table: table, Rows: int(n)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Table < out[j].Table
	})
	return out
}

// RowsLoaded is the rows loaded into all tables.
func (s *Sync) RowsLoaded() int {
	n := 0
	for _, t := range s.Tables() {
		n += t.Rows
	}
	return n
}

// Warnings returns the sync's warnings (type conflicts).
func (s *Sync) Warnings() []string {
	var out []string
	_ = json.Unmarshal([]byte(s.WarningsRaw), &out)
	if out == nil {
		out = []string{}
	}
	return out
}

// Options tune the service.
type Options struct {
	// Tick is how often the scheduler looks for warehouses due a sync.
	Tick time.Duration
	// BatchEvents is how many events are read and loaded at a time; MaxEvents bounds a sync.
	BatchEvents, MaxEvents int
	Logger                 *slog.Logger
	// Publish hands committed notifications to their recipients.
	Publish func([]audit.Notification)
}

// Service syncs warehouses and keeps their sync history.
type Service struct {
	db         *db.DB
	dests      *destination.Service
	workspaces *workspace.Service
	catalog    *catalog.Catalog
	health     *health.Service
	egress     *egress.Filter
	opt        Options
	// Gate, when set, tells the scheduler whether to start the syncs that are due: among
	// replicas, only the one that leads does (warehouseSyncNow runs wherever it is asked).
	Gate func() bool

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one sync of a warehouse at a time in this process
	stop  chan struct{}
	wg    sync.WaitGroup
}

// New returns the service; Start runs its scheduler.
func New(d *db.DB, dests *destination.Service, w *workspace.Service, c *catalog.Catalog, h *health.Service, eg *egress.Filter, o Options) *Service {
	if o.Tick <= 0 {
		o.Tick = 15 * time.Second
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 5000
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 200000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{db: d, dests: dests, workspaces: w, catalog: c, health: h, egress: eg, opt: o, locks: map[string]*sync.Mutex{}, stop: make(chan struct{})}
}

// IsWarehouse tells whether a catalog slug is a warehouse's.
func (s *Service) IsWarehouse(slug string) bool {
	e := s.catalog.Entry(catalog.DestinationKind, slug)
	return e != nil && e.Category() == catalog.WarehouseCategory
}

// CheckSettings refuses a warehouse host that names an address the egress filter refuses
// (127.0.0.1, localhost, a private range ...), when settings are saved; names are checked when
// dialed. It is the destination service's check for warehouse entries.
func (s *Service) CheckSettings(entry *catalog.Entry, clean map[string]any, errs *apperr.UserErrors) {
	if entry.Category() != catalog.WarehouseCategory || s.egress == nil {
		return
	}
	host, _ := clean["host"].(string)
	host = strings.TrimSpace(host)
	port, _ := clean["port"].(float64)
	switch {
	case host == "":
	case strings.ContainsAny(host, "/?#@ "):
		errs.Add("settings.host", apperr.InvalidValue, "settings.host must be a host name or address, without a scheme, path or port")
	case port != float64(int(port)):
		errs.Add("settings.port", apperr.InvalidValue, "settings.port must be a whole number")
	default:
		if err := s.egress.CheckURL(&url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}); err != nil {
			errs.Add("settings.host", apperr.NotAllowed, "settings.host %s", strings.TrimPrefix(err.Error(), "egress refused: "))
		}
	}
	for _, name := range []string{"schemaPrefix"} {
		if v, _ := clean[name].(string); v != "" && Snake(v)+"_" != v && Snake(v) != v {
			errs.Add("settings."+name, apperr.InvalidValue, "settings.%s must be lower-case letters, digits and underscores, such as seg_", name)
		}
	}
	checkList := func(name string, ok func(string) bool, rule string) {
		list, _ := clean[name].([]any)
		for _, v := range list {
			if str, _ := v.(string); !ok(str) {
				errs.Add("settings."+name, apperr.InvalidValue, "settings.%s: %q %s", name, str, rule)
			}
		}
	}
	checkList("tables", func(t string) bool { return t != "" && Identifier(Snake(t)) == t || t == "_"+Snake(t) },
		"is not a table name: give it as in the warehouse, such as order_completed")
	checkList("excludedColumns", func(c string) bool {
		t, col, ok := strings.Cut(c, ".")
		return ok && t != "" && col != "" && !fixed[col]
	}, "must be table.column or *.column, and not a column every table has (id, received_at ...)")
}

// config reads a warehouse's connection and selection from its settings and secrets.
func config(d *destination.Destination, secrets map[string]string) (Conn, Selection, time.Duration) {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(d.SettingsRaw), &m)
	s := func(k string) string { v, _ := m[k].(string); return v }
	n := func(k string, def float64) float64 {
		if v, ok := m[k].(float64); ok {
			return v
		}
		return def
	}
	c := Conn{Host: s("host"), Database: s("database"), User: s("user"), Password: secrets["password"], Port: int(n("port", 5432)),
		SSLMode: s("sslmode"), SchemaPrefix: s("schemaPrefix")}
	if c.SSLMode == "" {
		c.SSLMode = "require"
	}
	var sel Selection
	if list, _ := m["tables"].([]any); len(list) > 0 {
		sel.Tables = map[string]bool{}
		for _, t := range list {
			sel.Tables[str(t)] = true
		}
	}
	if list, _ := m["excludedColumns"].([]any); len(list) > 0 {
		sel.Excluded = map[string]bool{}
		for _, c := range list {
			sel.Excluded[str(c)] = true
		}
	}
	return c, sel, time.Duration(n("syncIntervalMinutes", 15)) * time.Minute
}

func (s *Service) lock(destinationID string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[destinationID]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[destinationID] = l
	}
	return l
}

// SyncNow syncs a warehouse at once and returns the sync; owners and admins. It waits for a sync
// of the same warehouse under way. A failed sync is returned with its error, not as an error.
func (s *Service) SyncNow(ctx context.Context, destinationID string) (*Sync, apperr.UserErrors, error) {
	d, err := s.dests.Get(ctx, destinationID)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.workspaces.Access(ctx, d.WorkspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanAdminister() {
		return nil, nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to sync warehouses")
	}
	var errs apperr.UserErrors
	if !s.IsWarehouse(d.CatalogSlug) {
		errs.Add("destinationId", apperr.InvalidValue, "the destination is not a warehouse: it is sent events as they arrive")
		return nil, errs, nil
	}
	if !d.Enabled {
		errs.Add("destinationId", apperr.NotAllowed, "the warehouse is disabled: enable it to sync")
		return nil, errs, nil
	}
	// The sync goes on if the request goes away: stopping half way would only waste it.
	sy, err := s.Run(context.WithoutCancel(ctx), d.ID, Manual)
	return sy, nil, err
}

// Run syncs one warehouse now, without checking any viewer: for the scheduler, SyncNow and tests.
// The returned sync has failed when the load did; err is for what kept it from being recorded.
func (s *Service) Run(ctx context.Context, destinationID, trigger string) (*Sync, error) {
	l := s.lock(destinationID)
	l.Lock()
	defer l.Unlock()
	d, err := s.dests.Internal(ctx, destinationID)
	if err != nil {
		return nil, err
	}
	secrets, err := s.dests.Secrets(ctx, d)
	if err != nil {
		return nil, err
	}
	conn, sel, _ := config(d, secrets)
	sy := &Sync{ID: id.New(SyncPrefix), WorkspaceID: d.WorkspaceID, DestinationID: d.ID, Trigger: trigger, Status: Running,
		StartedAt: db.Now(), RowCountsRaw: "{}", WarningsRaw: "[]"}
	if err := s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO warehouse_syncs (id, workspace_id, destination_id, trigger_kind, status, started_at, row_counts, warnings)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, sy.ID, sy.WorkspaceID, sy.DestinationID, sy.Trigger, sy.Status, sy.StartedAt, sy.RowCountsRaw, sy.WarningsRaw)
		return err
	}); err != nil {
		return nil, err
	}
	res, loadErr := s.load(ctx, d, conn, sel, sy.ID)
	now := db.Now()
	sy.FinishedAt = &now
	sy.RowCountsRaw = marshal(res.rows)
	sy.WarningsRaw = marshal(res.warnings)
	sy.Status = Succeeded
	if loadErr != nil {
		var f *Failure
		if !errors.As(loadErr, &f) {
			f = &Failure{Type: LoadFailed, Err: loadErr}
		}
		sy.Status, sy.ErrorType = Failed, &f.Type
		msg := mask(f.Error(), conn.Password)
		sy.ErrorMessage = &msg
		sy.RowCountsRaw = "{}" // nothing was loaded: the transaction rolled back
	}
	var previous *string
	if err := s.db.Get(ctx, &previous, `SELECT MAX(status) FROM warehouse_syncs WHERE id = (SELECT MAX(id) FROM warehouse_syncs
		WHERE destination_id = ? AND id < ? AND status <> ?)`, d.ID, sy.ID, Running); err != nil {
		return nil, err
	}
	err = s.db.Tx(audit.WithPublisher(ctx, s.opt.Publish), func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE warehouse_syncs SET status = ?, finished_at = ?, row_counts = ?, warnings = ?, error_type = ?, error_message = ?
			WHERE id = ?`, sy.Status, sy.FinishedAt, sy.RowCountsRaw, sy.WarningsRaw, sy.ErrorType, sy.ErrorMessage, sy.ID); err != nil {
			return err
		}
		// Keep the latest 500 syncs of each warehouse.
		if _, err := tx.Exec(ctx, `DELETE FROM warehouse_syncs WHERE destination_id = ? AND id < (SELECT MIN(id) FROM (SELECT id FROM warehouse_syncs
			WHERE destination_id = ? ORDER BY id DESC LIMIT 500) AS kept)`, d.ID, d.ID); err != nil {
			return err
		}
		if sy.Status == Failed && (previous == nil || *previous != Failed) {
			// Once when syncs start failing, not at every failed sync.
			pctx := audit.WithPublisher(ctx, s.opt.Publish)
			return audit.Notify(pctx, tx, d.WorkspaceID, EventSyncFailed, "Destination", d.ID,
				"syncs of the warehouse “"+d.Name+"” are failing: "+*sy.ErrorType+" — "+*sy.ErrorMessage, nil, nil)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.recordHealth(ctx, d, sy, res.warnings)
	return sy, nil
}

// recordHealth counts a failed sync (and a sync's type conflicts) towards the warehouse's health
// issues, and resolves them once a sync works (without conflicts).
func (s *Service) recordHealth(ctx context.Context, d *destination.Destination, sy *Sync, warnings []string) {
	if s.health == nil {
		return
	}
	var occ []health.Occurrence
	var resolve []string
	if sy.Status == Failed {
		occ = append(occ, health.Occurrence{WorkspaceID: d.WorkspaceID, TargetKind: health.WarehouseTarget, TargetID: d.ID,
			ErrorType: *sy.ErrorType, Message: *sy.ErrorMessage, N: 1, At: sy.FinishedAt.Time})
	} else {
		resolve = append(resolve, ConnectionFailed, PermissionDenied, LoadFailed)
		if len(warnings) > 0 {
			occ = append(occ, health.Occurrence{WorkspaceID: d.WorkspaceID, TargetKind: health.WarehouseTarget, TargetID: d.ID,
				ErrorType: SchemaConflict, Message: warnings[0], N: len(warnings), At: sy.FinishedAt.Time})
		} else {
			resolve = append(resolve, SchemaConflict)
		}
	}
	if err := s.health.Record(ctx, occ); err != nil {
		s.opt.Logger.Error("warehouse: recording health failed", "destination", d.ID, "error", err.Error())
	}
	if _, err := s.health.ResolveTarget(ctx, d.ID, resolve, time.Now()); err != nil {
		s.opt.Logger.Error("warehouse: resolving health failed", "destination", d.ID, "error", err.Error())
	}
}

// mask hides the password in an error message from the warehouse.
func mask(msg, password string) string {
	if password != "" {
		msg = strings.ReplaceAll(msg, password, destination.Mask)
	}
	return msg
}

type loadResult struct {
	rows     map[string]int64
	warnings []string
}

// load runs one sync's transaction in the warehouse: it reads the cursor, loads the events after
// it a batch at a time, moves the cursor and commits. An error rolls everything back.
func (s *Service) load(ctx context.Context, d *destination.Destination, c Conn, sel Selection, syncID string) (loadResult, error) {
	res := loadResult{rows: map[string]int64{}, warnings: []string{}}
	conn, err := connect(ctx, c, s.egress)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, cursor, err := begin(ctx, conn, c.SchemaPrefix, d.ID)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	schemas, err := s.schemas(ctx, d.ID, c.SchemaPrefix)
	if err != nil {
		return res, err
	}
	l := newLoader(tx)
	loadedAt := time.Now()
	for total := 0; total < s.opt.MaxEvents; {
		events, err := s.events(ctx, d.ID, cursor, min(s.opt.BatchEvents, s.opt.MaxEvents-total))
		if err != nil {
			return res, err
		}
		if len(events) == 0 {
			break
		}
		b := NewBatch(sel, loadedAt)
		for i := range events {
			if schema := schemas[events[i].SourceID]; schema != "" {
				b.Add(schema, &events[i])
			}
		}
		if err := l.load(ctx, b); err != nil {
			return res, err
		}
		total += len(events)
		cursor = events[len(events)-1].ID
		if len(events) < s.opt.BatchEvents {
			break
		}
	}
	if err := commit(ctx, tx, c.SchemaPrefix, d.ID, syncID, cursor); err != nil {
		return res, err
	}
	res.rows = l.Rows
	for w := range l.Warnings {
		res.warnings = append(res.warnings, w.String())
	}
	sort.Strings(res.warnings)
	return res, nil
}

// events reads the accepted events after cursor of the sources connected to the warehouse, from
// when each was connected.
func (s *Service) events(ctx context.Context, destinationID, cursor string, limit int) ([]Event, error) {
	var rows []struct {
		ID       string `db:"id"`
		SourceID string `db:"source_id"`
		Type     string `db:"type"`
		Payload  string `db:"payload"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT e.id, e.source_id, e.type, e.payload
		FROM events e JOIN connections c ON c.source_id = e.source_id AND c.destination_id = ?
		WHERE e.id > ? AND e.status = 'ACCEPTED' AND c.enabled = TRUE AND e.received_at >= c.created_at
		ORDER BY e.id LIMIT ?`, destinationID, cursor, limit); err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = Event{ID: r.ID, SourceID: r.SourceID, Type: r.Type}
		if err := json.Unmarshal([]byte(r.Payload), &out[i].Payload); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// schemas returns the schema of each source connected to the warehouse, giving the sources that
// have none yet one named after them (prefixed, snake_case, unique in the warehouse).
func (s *Service) schemas(ctx context.Context, destinationID, prefix string) (map[string]string, error) {
	var connected []struct {
		SourceID string `db:"source_id"`
		Name     string `db:"name"`
	}
	if err := s.db.Select(ctx, &connected, `SELECT c.source_id, s.name FROM connections c JOIN sources s ON s.id = c.source_id
		WHERE c.destination_id = ? ORDER BY c.id`, destinationID); err != nil {
		return nil, err
	}
	var rows []struct {
		SourceID string `db:"source_id"`
		Schema   string `db:"schema_name"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT source_id, schema_name FROM warehouse_schemas WHERE destination_id = ?`, destinationID); err != nil {
		return nil, err
	}
	out := map[string]string{}
	taken := map[string]bool{metaSchema(prefix): true, "public": true, "information_schema": true}
	for _, r := range rows {
		out[r.SourceID], taken[r.Schema] = r.Schema, true
	}
	for _, c := range connected {
		if out[c.SourceID] != "" {
			continue
		}
		base := Snake(c.Name)
		if base == "" {
			base = "source"
		}
		name := Identifier(prefix + base)
		for i := 2; taken[name] || strings.HasPrefix(name, "pg_"); i++ {
			name = Identifier(prefix + base + "_" + strconv.Itoa(i))
		}
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO warehouse_schemas (destination_id, source_id, schema_name) VALUES (?, ?, ?)`, destinationID, c.SourceID, name)
			return err
		}); err != nil {
			return nil, err
		}
		out[c.SourceID], taken[name] = name, true
	}
	return out, nil
}

// Syncs pages through a warehouse's syncs, newest first, for a viewer who sees the destination.
func (s *Service) Syncs(ctx context.Context, d *destination.Destination, args relay.Args, count bool) (relay.Page[Sync], error) {
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Sync]{
		Select: `SELECT * FROM warehouse_syncs`, Where: `destination_id = ? AND workspace_id = ?`, Args: []any{d.ID, d.WorkspaceID},
		SortColumn: "id", IDColumn: "id", Desc: true, Count: count,
		ID: func(x Sync) string { return x.ID }, SortKey: func(x Sync) any { return x.ID },
	}, args)
}

// Start runs the scheduler: every warehouse is synced each time its interval has passed since
// its last sync began (or since it was created).
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(s.opt.Tick)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				if s.Gate == nil || s.Gate() {
					s.RunDue(time.Now())
				}
			}
		}
	}()
}

// Close stops the scheduler and waits for the sync under way.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Due tells whether a warehouse is due a sync at now: its interval has passed since its last
// sync began, or since it was created when it has none.
func Due(last, created time.Time, interval time.Duration, now time.Time) bool {
	since := created
	if !last.IsZero() {
		since = last
	}
	return !now.Before(since.Add(interval))
}

// RunDue syncs, one after the other, the enabled warehouses due a sync at now (the scheduler's
// tick; tests call it with a time of their choosing).
func (s *Service) RunDue(now time.Time) {
	ctx := context.Background()
	if err := s.closeInterrupted(ctx, now); err != nil {
		s.opt.Logger.Error("warehouse: closing interrupted syncs failed", "error", err.Error())
	}
	var rows []struct {
		destination.Destination
		LastStarted *db.Time `db:"last_started"`
	}
	slugs := s.slugs()
	if err := s.db.Select(ctx, &rows, `SELECT d.*, FALSE AS sending, FALSE AS failing,
		(SELECT MAX(started_at) FROM warehouse_syncs w WHERE w.destination_id = d.id) AS last_started
		FROM destinations d WHERE d.enabled = TRUE AND d.catalog_slug IN (`+db.Placeholders(len(slugs))+`) ORDER BY d.id`, db.Args(slugs)...); err != nil {
		s.opt.Logger.Error("warehouse: reading warehouses failed", "error", err.Error())
		return
	}
	for _, r := range rows {
		select {
		case <-s.stop:
			return
		default:
		}
		_, _, interval := config(&r.Destination, nil)
		var last time.Time
		if r.LastStarted != nil {
			last = r.LastStarted.Time
		}
		if !Due(last, r.CreatedAt.Time, interval, now) {
			continue
		}
		if _, err := s.Run(ctx, r.ID, Scheduled); err != nil {
			s.opt.Logger.Error("warehouse: sync failed to run", "destination", r.ID, "error", err.Error())
		}
	}
}

// Interrupted is how long a sync may stay RUNNING before it is taken for one whose server
// stopped during it (a sync is bounded by MaxEvents: minutes, not hours).
const Interrupted = time.Hour

// closeInterrupted marks FAILED the syncs still RUNNING long after they began: their server
// stopped during them. What their warehouse transaction did not commit, a later sync loads.
func (s *Service) closeInterrupted(ctx context.Context, now time.Time) error {
	msg := "the sync was interrupted: the server stopped during it; a later sync loads what it did not commit"
	finished := db.Time{Time: now.UTC().Truncate(time.Microsecond)}
	return s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE warehouse_syncs SET status = ?, finished_at = ?, error_type = ?, error_message = ?
			WHERE status = ? AND started_at < ?`, Failed, finished, LoadFailed, msg, Running, db.Time{Time: now.Add(-Interrupted)})
		return err
	})
}

func (s *Service) slugs() []string {
	var out []string
	for _, e := range s.catalog.List(catalog.DestinationKind, "", catalog.WarehouseCategory) {
		out = append(out, e.Slug)
	}
	return out
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
