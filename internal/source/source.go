// Package source owns a workspace's sources: the websites, apps and servers that send it events,
// their write keys, labels and settings (secret ones, such as a cloud app's signing secret,
// encrypted at rest and read back as a mask), and what their status says about the data arriving. Who
// may see or change a source is decided by workspace.Access.SourceRights: owners and admins all of
// them, members read them, source admins and readers the ones their grants name.
package source

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of sources.
const Prefix = "src"

// Audit event types of this package.
const (
	EventCreated         audit.Type = "SOURCE_CREATED"
	EventUpdated         audit.Type = "SOURCE_UPDATED"
	EventEnabled         audit.Type = "SOURCE_ENABLED"
	EventDisabled        audit.Type = "SOURCE_DISABLED"
	EventDeleted         audit.Type = "SOURCE_DELETED"
	EventWriteKeyCreated audit.Type = "WRITE_KEY_CREATED"
	EventWriteKeyRevoked audit.Type = "WRITE_KEY_REVOKED"
)

// Mask is what a secret setting that is set reads as, in place of its value.
const Mask = "••••••••"

// Status says whether a source's data is arriving.
type Status string

const (
	NeverReceived Status = "NEVER_RECEIVED"
	Receiving     Status = "RECEIVING"
	NoRecentData  Status = "NO_RECENT_DATA"
	Disabled      Status = "DISABLED"
)

// Source is one source.
type Source struct {
	ID          string   `db:"id"`
	WorkspaceID string   `db:"workspace_id"`
	CatalogSlug string   `db:"catalog_slug"`
	Name        string   `db:"name"`
	Enabled     bool     `db:"enabled"`
	SettingsRaw string   `db:"settings"`
	LabelsRaw   string   `db:"labels"`
	LastSeenAt  *db.Time `db:"last_seen_at"`
	// DeletedAt is set once the source is deleted: it is seen nowhere, and internal/reap deletes
	// its events.
	DeletedAt *db.Time `db:"deleted_at"`
	CreatedBy *string  `db:"created_by"`
	UpdatedBy *string  `db:"updated_by"`
	CreatedAt db.Time  `db:"created_at"`
	UpdatedAt db.Time  `db:"updated_at"`
}

// Labels returns the source's labels.
func (s *Source) Labels() []string {
	var l []string
	_ = json.Unmarshal([]byte(s.LabelsRaw), &l)
	if l == nil {
		l = []string{}
	}
	return l
}

// Settings returns the source's settings; a secret one that is set reads as Mask (its value lives
// encrypted in source_secrets).
func (s *Source) Settings() map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(s.SettingsRaw), &m)
	return m
}

// SecretsSet tells which secret settings have a value: those that read as the mask.
func (s *Source) SecretsSet() map[string]bool {
	set := map[string]bool{}
	for k, v := range s.Settings() {
		if v == Mask {
			set[k] = true
		}
	}
	return set
}

// WriteKey is a key a source's libraries authenticate with.
type WriteKey struct {
	Key         string   `db:"key"`
	SourceID    string   `db:"source_id"`
	WorkspaceID string   `db:"workspace_id"`
	CreatedAt   db.Time  `db:"created_at"`
	RevokedAt   *db.Time `db:"revoked_at"`
}

// Service owns sources.
type Service struct {
	db         *db.DB
	catalog    *catalog.Catalog
	workspaces *workspace.Service
	box        *secret.Box
	// QuietPeriod is how long without events a receiving source waits before NO_RECENT_DATA.
	QuietPeriod time.Duration
	// OnChange, when set, is called after a transaction that changed a source (its settings,
	// enabled state, write keys, or its existence) commits: the tracking API drops what it cached.
	OnChange func(sourceID string)
}

// changed schedules OnChange for after tx commits.
func (s *Service) changed(tx *db.Tx, sourceID string) {
	if s.OnChange != nil {
		tx.AfterCommit(func() { s.OnChange(sourceID) })
	}
}

// New returns the service; box seals secret settings.
func New(d *db.DB, c *catalog.Catalog, w *workspace.Service, quiet time.Duration, box *secret.Box) *Service {
	s := &Service{db: d, catalog: c, workspaces: w, box: box, QuietPeriod: quiet}
	w.Sources = s
	return s
}

// Status derives a source's status at now.
func (s *Service) Status(src *Source, now time.Time) Status {
	switch {
	case !src.Enabled:
		return Disabled
	case src.LastSeenAt == nil:
		return NeverReceived
	case now.Sub(src.LastSeenAt.Time) <= s.QuietPeriod:
		return Receiving
	default:
		return NoRecentData
	}
}

// Entry returns the source's catalog entry.
func (s *Service) Entry(src *Source) *catalog.Entry {
	return s.catalog.Entry(catalog.SourceKind, src.CatalogSlug)
}

func errNotFound() error { return apperr.NotFoundf("source not found") }

// Rights tells what the viewer may do with a source they loaded: NOT_FOUND when they may not see
// it (any more), else their access and whether they administer it.
func (s *Service) Rights(ctx context.Context, src *Source) (a *workspace.Access, admin bool, err error) {
	a, err = s.workspaces.Access(ctx, src.WorkspaceID)
	if err != nil {
		return nil, false, errNotFound()
	}
	read, admin := a.SourceRights(src.ID, src.Labels())
	if !read {
		return nil, false, errNotFound()
	}
	return a, admin, nil
}

// load reads a source the viewer may see, with their access to its workspace: NOT_FOUND when it
// does not exist or they may not see it. An anonymous caller is told to log in before anything
// is looked up, so that the answer does not depend on whether the id exists.
func (s *Service) load(ctx context.Context, q *db.Queryer, sourceID string) (*Source, *workspace.Access, error) {
	a, err := s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM sources WHERE id = ?`, sourceID)
	if err != nil {
		return nil, nil, hide(err)
	}
	where, args := VisibleWhere(a)
	var src Source
	err = q.Get(ctx, &src, `SELECT s.* FROM sources s WHERE s.id = ? AND `+where, append([]any{sourceID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil, errNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return &src, a, nil
}

// hide turns a failed access check into this package's NOT_FOUND, keeping UNAUTHENTICATED and
// errors that are not about access.
func hide(err error) error {
	if apperr.CodeOf(err) == apperr.NotFound {
		return errNotFound()
	}
	return err
}

// Get returns a source the viewer may see, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, sourceID string) (*Source, error) {
	src, _, err := s.load(ctx, s.db.Reader(), sourceID)
	return src, err
}

// requireAdmin loads a source within tx for a change, checking the viewer administers it.
func (s *Service) requireAdmin(ctx context.Context, tx *db.Tx, sourceID string) (*Source, error) {
	src, a, err := s.load(ctx, &tx.Queryer, sourceID)
	if err != nil {
		return nil, err
	}
	if _, admin := a.SourceRights(src.ID, src.Labels()); !admin {
		return nil, apperr.New(apperr.Forbidden, "you may read this source but not change it")
	}
	return src, nil
}

// Filter narrows a listing.
type Filter struct {
	Type, Category, Label, Search string
	Status                        Status
}

// VisibleWhere returns the SQL condition (on alias s) for the sources the viewer may see in a
// workspace with access a, for every read of sources and of things attached to them. It is the
// SQL twin of Access.SourceRights.
func VisibleWhere(a *workspace.Access) (string, []any) {
	if a.CanReadAll() {
		return "s.workspace_id = ? AND s.deleted_at IS NULL", []any{a.WorkspaceID}
	}
	var ids, labels []any
	for _, g := range a.Grants {
		if g.SourceID != nil {
			ids = append(ids, *g.SourceID)
		}
		if g.Label != nil {
			labels = append(labels, strings.ToLower(*g.Label))
		}
	}
	where := "s.workspace_id = ? AND s.deleted_at IS NULL AND (s.id IN (" + db.Placeholders(len(ids)) + ") OR EXISTS (SELECT 1 FROM source_labels sl WHERE sl.source_id = s.id AND sl.label IN (" + db.Placeholders(len(labels)) + ")))"
	return where, append(append([]any{a.WorkspaceID}, ids...), labels...)
}

// VisibleIDWhere returns the SQL condition that column, a source id on a row of the workspace of
// a (an event, a delivery attempt), names a source the viewer may see. Those who see every
// source also see the rows of sources deleted since; the caller checks the row's workspace.
func VisibleIDWhere(a *workspace.Access, column string) (string, []any) {
	if a.CanReadAll() {
		return "TRUE", nil
	}
	where, args := VisibleWhere(a)
	return column + " IN (SELECT s.id FROM sources s WHERE " + where + ")", args
}

// List pages through the sources the viewer may see, by name.
func (s *Service) List(ctx context.Context, workspaceID string, f Filter, args relay.Args, count bool) (relay.Page[Source], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Source]{}, err
	}
	where, qargs := VisibleWhere(a)
	if f.Label != "" {
		where += " AND EXISTS (SELECT 1 FROM source_labels fl WHERE fl.source_id = s.id AND fl.label = ?)"
		qargs = append(qargs, strings.ToLower(strings.TrimSpace(f.Label)))
	}
	if f.Search != "" {
		where += " AND LOWER(s.name) LIKE ? ESCAPE '\\'"
		qargs = append(qargs, "%"+LikeEscape(strings.ToLower(f.Search))+"%")
	}
	if f.Type != "" || f.Category != "" {
		var slugs []any
		for _, e := range s.catalog.List(catalog.SourceKind, "", f.Category) {
			if f.Type == "" || (e.SourceType != nil && string(*e.SourceType) == f.Type) {
				slugs = append(slugs, e.Slug)
			}
		}
		where += " AND s.catalog_slug IN (" + db.Placeholders(len(slugs)) + ")"
		qargs = append(qargs, slugs...)
	}
	if f.Status != "" {
		quietSince := db.Time{Time: time.Now().Add(-s.QuietPeriod)}
		switch f.Status {
		case Disabled:
			where += " AND s.enabled = FALSE"
		case NeverReceived:
			where += " AND s.enabled = TRUE AND s.last_seen_at IS NULL"
		case Receiving:
			where += " AND s.enabled = TRUE AND s.last_seen_at >= ?"
			qargs = append(qargs, quietSince)
		case NoRecentData:
			where += " AND s.enabled = TRUE AND s.last_seen_at < ?"
			qargs = append(qargs, quietSince)
		}
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Source]{
		Select: "SELECT s.* FROM sources s", Where: where, Args: qargs,
		SortColumn: "s.name", IDColumn: "s.id", Count: count,
		ID: func(x Source) string { return x.ID }, SortKey: func(x Source) any { return x.Name },
	}, args)
}

// LikeEscape escapes the wildcards of LIKE (with ESCAPE '\'), so that a search for "%" finds a
// percent sign.
func LikeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func newWriteKey() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Create adds a source with one write key; owners and admins.
func (s *Service) Create(ctx context.Context, workspaceID, catalogID, name string, settings map[string]any, labels []string, enabled *bool) (*Source, apperr.UserErrors, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanAdminister() {
		return nil, nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to add sources")
	}
	var errs apperr.UserErrors
	entry := s.catalog.Entry(catalog.SourceKind, catalogID)
	if entry == nil {
		errs.Add("catalogId", apperr.InvalidValue, "catalogId %q is not a source of the catalog", catalogID)
		return nil, errs, nil
	}
	name = strings.TrimSpace(name)
	auth.ValidateName(&errs, "name", name)
	clean, serrs := entry.Validate(settings, nil)
	errs = append(errs, serrs...)
	plain, seal, _ := splitSecrets(&errs, entry, settings, clean, nil)
	if labels != nil {
		labels = workspace.ValidateLabels(&errs, "labels", labels)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	if labels == nil || enabled == nil {
		// What the request leaves out, the workspace's defaults for new sources say.
		def, err := s.workspaces.SourceDefaults(ctx, s.db.Reader(), workspaceID)
		if err != nil {
			return nil, nil, err
		}
		if labels == nil {
			labels = def.Labels
		}
		if enabled == nil {
			enabled = &def.Enabled
		}
	}
	now := db.Now()
	userID := a.Viewer.User.ID
	src := &Source{ID: id.New(Prefix), WorkspaceID: workspaceID, CatalogSlug: entry.Slug, Name: name, Enabled: *enabled,
		SettingsRaw: marshal(plain), LabelsRaw: marshal(labels), CreatedBy: &userID, UpdatedBy: &userID, CreatedAt: now, UpdatedAt: now}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_by, updated_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, src.ID, src.WorkspaceID, src.CatalogSlug, src.Name, src.Enabled, src.SettingsRaw, src.LabelsRaw,
			src.CreatedBy, src.UpdatedBy, src.CreatedAt, src.UpdatedAt); err != nil {
			return err
		}
		if err := setLabels(ctx, tx, src.ID, labels); err != nil {
			return err
		}
		if err := s.sealSecrets(ctx, tx, src, seal, nil); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO write_keys (key, source_id, workspace_id, created_at) VALUES (?, ?, ?, ?)`,
			newWriteKey(), src.ID, workspaceID, now); err != nil {
			return err
		}
		return audit.Record(ctx, tx, workspaceID, EventCreated, "Source", src.ID,
			map[string]any{"name": name, "catalog": entry.Slug, "labels": labels, "enabled": src.Enabled, "settings": plain})
	})
	if err != nil {
		return nil, nil, err
	}
	return src, nil, nil
}

func setLabels(ctx context.Context, tx *db.Tx, sourceID string, labels []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM source_labels WHERE source_id = ?`, sourceID); err != nil {
		return err
	}
	for _, l := range labels {
		if _, err := tx.Exec(ctx, `INSERT INTO source_labels (source_id, label) VALUES (?, ?)`, sourceID, l); err != nil {
			return err
		}
	}
	return nil
}

// Update renames a source, replaces its settings or labels; its administrators.
func (s *Service) Update(ctx context.Context, sourceID string, name *string, settings map[string]any, labels []string) (*Source, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var src *Source
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if src, err = s.requireAdmin(ctx, tx, sourceID); err != nil {
			return err
		}
		changes := map[string]audit.Change{}
		if name != nil {
			n := strings.TrimSpace(*name)
			auth.ValidateName(&errs, "name", n)
			if n != src.Name {
				changes["name"] = audit.Change{From: src.Name, To: n}
				src.Name = n
			}
		}
		if settings != nil {
			entry := s.Entry(src)
			was := src.SecretsSet()
			clean, serrs := entry.Validate(settings, was)
			errs = append(errs, serrs...)
			plain, seal, cleared := splitSecrets(&errs, entry, settings, clean, was)
			if raw := marshal(plain); raw != src.SettingsRaw {
				changes["settings"] = audit.Change{From: src.Settings(), To: plain}
				src.SettingsRaw = raw
			}
			if len(seal) > 0 {
				changes["secretsChanged"] = audit.Change{To: sortedKeys(seal)}
			}
			if len(cleared) > 0 {
				changes["secretsCleared"] = audit.Change{To: cleared}
			}
			if len(errs) == 0 {
				if err := s.sealSecrets(ctx, tx, src, seal, cleared); err != nil {
					return err
				}
			}
		}
		if labels != nil {
			clean := workspace.ValidateLabels(&errs, "labels", labels)
			if raw := marshal(clean); raw != src.LabelsRaw {
				changes["labels"] = audit.Change{From: src.Labels(), To: clean}
				src.LabelsRaw = raw
				if len(errs) == 0 {
					if err := setLabels(ctx, tx, src.ID, clean); err != nil {
						return err
					}
					// Label grants match by label: who may see the source changed.
					s.workspaces.RightsChanged(tx, src.WorkspaceID)
				}
			}
		}
		if len(errs) > 0 || len(changes) == 0 {
			return nil
		}
		return s.save(ctx, tx, src, EventUpdated, changes)
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return src, nil, nil
}

// save writes a changed source and its audit event.
func (s *Service) save(ctx context.Context, tx *db.Tx, src *Source, typ audit.Type, changes any) error {
	s.changed(tx, src.ID)
	userID := auth.ViewerFrom(ctx).User.ID
	src.UpdatedBy, src.UpdatedAt = &userID, db.Now()
	if _, err := tx.Exec(ctx, `UPDATE sources SET name = ?, enabled = ?, settings = ?, labels = ?, updated_by = ?, updated_at = ? WHERE id = ?`,
		src.Name, src.Enabled, src.SettingsRaw, src.LabelsRaw, src.UpdatedBy, src.UpdatedAt, src.ID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, src.WorkspaceID, typ, "Source", src.ID, changes)
}

// SetEnabled enables or disables a source; its administrators.
func (s *Service) SetEnabled(ctx context.Context, sourceID string, enabled bool) (*Source, error) {
	var src *Source
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if src, err = s.requireAdmin(ctx, tx, sourceID); err != nil || src.Enabled == enabled {
			return err
		}
		src.Enabled = enabled
		typ := EventDisabled
		if enabled {
			typ = EventEnabled
		}
		return s.save(ctx, tx, src, typ, map[string]audit.Change{"enabled": {From: !enabled, To: enabled}})
	})
	return src, err
}

// Delete removes a source, its write keys and its connections; its administrators. The source is
// marked deleted and cut off at once; its events go in the background (internal/reap).
func (s *Service) Delete(ctx context.Context, sourceID string) error {
	return s.db.Tx(ctx, func(tx *db.Tx) error {
		src, err := s.requireAdmin(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		// Connections are the destination package's rows; deleting the source used to cascade to
		// them, and still does, here, so that nothing is sent from it any more.
		for _, q := range []string{`DELETE FROM write_keys WHERE source_id = ?`, `DELETE FROM source_labels WHERE source_id = ?`,
			`DELETE FROM source_secrets WHERE source_id = ?`, `DELETE FROM connections WHERE source_id = ?`} {
			if _, err := tx.Exec(ctx, q, src.ID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE sources SET deleted_at = ?, enabled = FALSE WHERE id = ?`, db.Now(), src.ID); err != nil {
			return err
		}
		s.changed(tx, src.ID)
		// Open subscriptions to the source (its live tail) re-check and end.
		s.workspaces.RightsChanged(tx, src.WorkspaceID)
		return audit.Record(ctx, tx, src.WorkspaceID, EventDeleted, "Source", src.ID, map[string]any{"name": src.Name})
	})
}

// vacuumAfter is how many rows a source's reaping must have deleted for ReapStep to vacuum events
// first: 10,000 dead index entries are about a hundred pages for the look to pass, a millisecond.
const vacuumAfter = 10_000

// DeletedIDs lists the sources deleted and not yet reaped, for internal/reap.
func (s *Service) DeletedIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.Select(ctx, &ids, `SELECT id FROM sources WHERE deleted_at IS NOT NULL ORDER BY id`)
	return ids, err
}

// ReapStep is the last step of reaping a source: its row. Its events went in an earlier step, but
// deleting the row still looks for them (the foreign keys cascade), and on PostgreSQL that look
// walks past the index entries of every event deleted since the last vacuum: 20-140 ms inside
// the writer after 500,000 of them, more with more. So Find first has events vacuumed, on the
// read side, and the look inside the writer finds an index without them. A vacuum reads all of
// events, though, every workspace's: it runs only when the source's earlier steps deleted enough
// rows for the look to cost more than a few index pages (vacuumAfter).
var ReapStep = reap.Step{Name: "source",
	Find: func(ctx context.Context, r *db.Queryer, sourceID, after string, limit int) ([]string, error) {
		if after != "" {
			return nil, nil
		}
		if reap.Deleted(ctx) >= vacuumAfter {
			if err := r.Vacuum(ctx, "events"); err != nil {
				return nil, err
			}
		}
		return []string{sourceID}, nil
	},
	Apply: func(ctx context.Context, tx *db.Tx, sourceID string, _ []string) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM sources WHERE id = ? AND deleted_at IS NOT NULL`, sourceID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}

// CreateWriteKey adds a key to a source, for rotation.
func (s *Service) CreateWriteKey(ctx context.Context, sourceID string) (*Source, *WriteKey, error) {
	var src *Source
	var wk WriteKey
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if src, err = s.requireAdmin(ctx, tx, sourceID); err != nil {
			return err
		}
		wk = WriteKey{Key: newWriteKey(), SourceID: src.ID, WorkspaceID: src.WorkspaceID, CreatedAt: db.Now()}
		if _, err := tx.Exec(ctx, `INSERT INTO write_keys (key, source_id, workspace_id, created_at) VALUES (?, ?, ?, ?)`,
			wk.Key, wk.SourceID, wk.WorkspaceID, wk.CreatedAt); err != nil {
			return err
		}
		s.changed(tx, src.ID)
		return audit.Record(ctx, tx, src.WorkspaceID, EventWriteKeyCreated, "Source", src.ID, map[string]any{"writeKey": wk.Key})
	})
	if err != nil {
		return nil, nil, err
	}
	return src, &wk, nil
}

// RevokeWriteKey revokes a key; the source keeps at least one live key.
func (s *Service) RevokeWriteKey(ctx context.Context, sourceID, key string) (*Source, apperr.UserErrors, error) {
	var src *Source
	var errs apperr.UserErrors
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if src, err = s.requireAdmin(ctx, tx, sourceID); err != nil {
			return err
		}
		var live []string
		if err := tx.Select(ctx, &live, `SELECT key FROM write_keys WHERE source_id = ? AND revoked_at IS NULL`, src.ID); err != nil {
			return err
		}
		found := false
		for _, k := range live {
			found = found || k == key
		}
		switch {
		case !found:
			errs.Add("key", apperr.InvalidValue, "key is not a live write key of this source")
			return nil
		case len(live) == 1:
			errs.Add("key", apperr.NotAllowed, "a source keeps at least one write key: create a new one before revoking this one")
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE write_keys SET revoked_at = ? WHERE key = ?`, db.Now(), key); err != nil {
			return err
		}
		s.changed(tx, src.ID)
		return audit.Record(ctx, tx, src.WorkspaceID, EventWriteKeyRevoked, "Source", src.ID, map[string]any{"writeKey": key})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return src, nil, nil
}

// WriteKeysBySource loads the write keys of the sources the viewer sees in the workspace of a,
// oldest first, for dataloaders.
func (s *Service) WriteKeysBySource(ctx context.Context, a *workspace.Access, sourceIDs []string) (map[string][]WriteKey, error) {
	where, args := VisibleWhere(a)
	var rows []WriteKey
	if err := s.db.Select(ctx, &rows, `SELECT k.* FROM write_keys k JOIN sources s ON s.id = k.source_id
		WHERE k.source_id IN (`+db.Placeholders(len(sourceIDs))+`) AND `+where+` ORDER BY k.created_at, k.key`,
		append(db.Args(sourceIDs), args...)...); err != nil {
		return nil, err
	}
	out := map[string][]WriteKey{}
	for _, k := range rows {
		out[k.SourceID] = append(out[k.SourceID], k)
	}
	return out, nil
}

// ByIDs loads the sources with the given ids that the viewer sees in the workspace of a, for
// dataloaders.
func (s *Service) ByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]Source, error) {
	where, args := VisibleWhere(a)
	return s.byIDs(ctx, `s.id IN (`+db.Placeholders(len(ids))+`) AND `+where, append(db.Args(ids), args...))
}

// InternalByIDs loads sources by id without any viewer, for the live publisher, which authorises
// each subscriber itself; never for the API.
func (s *Service) InternalByIDs(ctx context.Context, ids []string) (map[string]Source, error) {
	return s.byIDs(ctx, `s.id IN (`+db.Placeholders(len(ids))+`) AND s.deleted_at IS NULL`, db.Args(ids))
}

func (s *Service) byIDs(ctx context.Context, where string, args []any) (map[string]Source, error) {
	var rows []Source
	if err := s.db.Select(ctx, &rows, `SELECT s.* FROM sources s WHERE `+where, args...); err != nil {
		return nil, err
	}
	out := make(map[string]Source, len(rows))
	for _, x := range rows {
		out[x.ID] = x
	}
	return out, nil
}

// InWorkspace tells whether sourceID is a source of workspaceID, for grants on one source.
func (s *Service) InWorkspace(ctx context.Context, q *db.Queryer, workspaceID, sourceID string) (bool, error) {
	var n int
	err := q.Get(ctx, &n, `SELECT COUNT(*) FROM sources WHERE id = ? AND workspace_id = ? AND deleted_at IS NULL`, sourceID, workspaceID)
	return n > 0, err
}

// splitSecrets works out what settings given (as sent) and clean (as validated) do to the entry's
// secret settings, of which was are set: a new value is sealed; the mask, or leaving the setting
// out, keeps a stored value; null or "" clears it. plain is clean with each secret that stays set
// as the mask, what the sources table keeps.
func splitSecrets(errs *apperr.UserErrors, entry *catalog.Entry, given, clean map[string]any, was map[string]bool) (plain map[string]any, seal map[string]string, cleared []string) {
	plain, seal = map[string]any{}, map[string]string{}
	for k, v := range clean {
		plain[k] = v
	}
	for _, name := range entry.Secrets() {
		raw, sent := given[name]
		value, _ := clean[name].(string)
		switch {
		case !sent || value == Mask:
			if value == Mask && !was[name] {
				errs.Add("settings."+name, apperr.Required, "settings.%s reads as the mask, but it has no stored value: give its value", name)
			}
			delete(plain, name)
			if was[name] {
				plain[name] = Mask
			}
		case raw == nil || value == "":
			delete(plain, name)
			if was[name] {
				cleared = append(cleared, name)
			}
		default:
			seal[name], plain[name] = value, Mask
		}
	}
	return plain, seal, cleared
}

// sealSecrets stores the secrets of seal encrypted for this workspace, source and setting, and
// deletes those cleared.
func (s *Service) sealSecrets(ctx context.Context, tx *db.Tx, src *Source, seal map[string]string, cleared []string) error {
	for _, name := range sortedKeys(seal) {
		c, err := s.box.Seal(seal[name], secret.Scope{WorkspaceID: src.WorkspaceID, OwnerID: src.ID, Field: name})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO source_secrets (source_id, name, ciphertext) VALUES (?, ?, ?)
			ON CONFLICT (source_id, name) DO UPDATE SET ciphertext = excluded.ciphertext`, src.ID, name, c); err != nil {
			return err
		}
	}
	for _, name := range cleared {
		if _, err := tx.Exec(ctx, `DELETE FROM source_secrets WHERE source_id = ? AND name = ?`, src.ID, name); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Inbound is what a cloud-app source's inbound URL needs to know of it, secrets decrypted.
type Inbound struct {
	ID, WorkspaceID, CatalogSlug string
	Enabled                      bool
	Settings                     map[string]any
	Secrets                      map[string]string
}

// Inbound reads a live source for the webhook receiver (internal/cloudapp), which has no viewer:
// the caller proves itself with a signature made with one of the secrets. Never for the API.
// It returns nil when there is no such source (or it was deleted).
func (s *Service) Inbound(ctx context.Context, sourceID string) (*Inbound, error) {
	var src Source
	err := s.db.Get(ctx, &src, `SELECT * FROM sources WHERE id = ? AND deleted_at IS NULL`, sourceID)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Name       string `db:"name"`
		Ciphertext string `db:"ciphertext"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT name, ciphertext FROM source_secrets WHERE source_id = ?`, src.ID); err != nil {
		return nil, err
	}
	in := &Inbound{ID: src.ID, WorkspaceID: src.WorkspaceID, CatalogSlug: src.CatalogSlug, Enabled: src.Enabled,
		Settings: src.Settings(), Secrets: map[string]string{}}
	for _, r := range rows {
		v, err := s.box.Open(r.Ciphertext, secret.Scope{WorkspaceID: src.WorkspaceID, OwnerID: src.ID, Field: r.Name})
		if err != nil {
			return nil, err
		}
		in.Secrets[r.Name] = v
	}
	return in, nil
}
