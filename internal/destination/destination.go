// Package destination owns a workspace's destinations (the tools its events are sent to, with their
// settings, secret ones encrypted at rest), the connections from sources to them, and the overview
// graph of all three. Secret settings are write-only: they are never returned, logged or put in
// the audit trail, and read back as a mask.
package destination

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of destinations.
const Prefix = "dst"

// Mask is what a secret setting that is set reads as.
const Mask = "••••••••"

// Audit event types of destinations.
const (
	EventCreated  audit.Type = "DESTINATION_CREATED"
	EventUpdated  audit.Type = "DESTINATION_UPDATED"
	EventEnabled  audit.Type = "DESTINATION_ENABLED"
	EventDisabled audit.Type = "DESTINATION_DISABLED"
	EventDeleted  audit.Type = "DESTINATION_DELETED"
	// A warehouse's creation and deletion are STORAGE activities.
	EventWarehouseCreated audit.Type = "WAREHOUSE_CREATED"
	EventWarehouseDeleted audit.Type = "WAREHOUSE_DELETED"
)

// Kind tells tools, which are sent events as they arrive, from warehouses, which are synced.
type Kind string

const (
	Tool      Kind = "TOOL"
	Warehouse Kind = "WAREHOUSE"
)

// Kind is the destination's kind: a warehouse is in the catalog's Warehouse category.
func (d *Destination) Kind() Kind {
	if d.Category == catalog.WarehouseCategory {
		return Warehouse
	}
	return Tool
}

// Status says whether data is being sent to a destination.
type Status string

const (
	Sending  Status = "SENDING"
	Idle     Status = "IDLE"
	Failing  Status = "FAILING"
	Disabled Status = "DISABLED"
)

// Destination is one destination. Its secret settings live apart, encrypted.
type Destination struct {
	ID          string  `db:"id"`
	WorkspaceID string  `db:"workspace_id"`
	CatalogSlug string  `db:"catalog_slug"`
	Category    string  `db:"category"`
	Name        string  `db:"name"`
	Enabled     bool    `db:"enabled"`
	SettingsRaw string  `db:"settings"`
	CreatedBy   *string `db:"created_by"`
	UpdatedBy   *string `db:"updated_by"`
	CreatedAt   db.Time `db:"created_at"`
	UpdatedAt   db.Time `db:"updated_at"`
	// Sending is true when an enabled connection from an enabled source leads here (computed).
	Sending bool `db:"sending"`
	// Failing is true while the destination has an unresolved delivery health issue (computed).
	Failing bool `db:"failing"`
	// SecretsSet lists the secret settings that have a value (computed).
	SecretsSet []string `db:"-"`
}

// Status derives the destination's status.
func (d *Destination) Status() Status {
	switch {
	case !d.Enabled:
		return Disabled
	case d.Failing:
		return Failing
	case d.Sending:
		return Sending
	default:
		return Idle
	}
}

// PublicSettings returns the settings with each secret that is set replaced by Mask. A HEADERS
// secret is stored among the plain settings as its names with masked values, and shows as such.
func (d *Destination) PublicSettings() map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(d.SettingsRaw), &m)
	for _, name := range d.SecretsSet {
		if _, names := m[name].(map[string]any); !names {
			m[name] = Mask
		}
	}
	return m
}

// Service owns destinations and connections.
type Service struct {
	db         *db.DB
	catalog    *catalog.Catalog
	workspaces *workspace.Service
	sources    *source.Service
	box        *secret.Box
	egress     *egress.Filter
	// OnChange, when set, is called after a destination, or a connection to it, is created,
	// changed or deleted (the delivery engine reconfigures its lanes; dashboards hear of it).
	OnChange func(destinationID string)
	// CheckSettings, when set, adds the rules of a kind of destination to the validation of its
	// settings (warehouses check their host against the egress filter).
	CheckSettings func(entry *catalog.Entry, clean map[string]any, errs *apperr.UserErrors)
}

func (s *Service) changed(tx *db.Tx, destinationID string) {
	if s.OnChange != nil {
		tx.AfterCommit(func() { s.OnChange(destinationID) })
	}
}

// New returns the service. Settings that are URLs must lead where the egress filter lets
// deliveries go.
func New(d *db.DB, c *catalog.Catalog, w *workspace.Service, s *source.Service, box *secret.Box, eg *egress.Filter) *Service {
	return &Service{db: d, catalog: c, workspaces: w, sources: s, box: box, egress: eg}
}

// Entry returns the destination's catalog entry.
func (s *Service) Entry(d *Destination) *catalog.Entry {
	return s.catalog.Entry(catalog.DestinationKind, d.CatalogSlug)
}

func errNotFound() error { return apperr.NotFoundf("destination not found") }

// CanSee tells whether access a sees the workspace's destinations: everyone who reads the whole
// workspace, and source admins (who connect their sources).
func CanSee(a *workspace.Access) bool { return canSee(a) }

// VisibleWhere returns the SQL condition (on alias d) for the destinations the viewer may see in
// the workspace of a, for every read of destinations: all of them or none.
func VisibleWhere(a *workspace.Access) (string, []any) {
	if !canSee(a) {
		return "FALSE", nil
	}
	return "d.workspace_id = ?", []any{a.WorkspaceID}
}

func canSee(a *workspace.Access) bool {
	if a.CanReadAll() {
		return true
	}
	for _, g := range a.Grants {
		if g.Role == workspace.SourceAdmin {
			return true
		}
	}
	return false
}

// selectDestinations reads destinations with their computed fields.
const selectDestinations = `SELECT d.*, EXISTS (SELECT 1 FROM connections c JOIN sources s ON s.id = c.source_id
	WHERE c.destination_id = d.id AND c.enabled = TRUE AND s.enabled = TRUE) AS sending,
	EXISTS (SELECT 1 FROM health_issues h WHERE h.target_id = d.id AND h.status <> 'RESOLVED') AS failing FROM destinations d`

func (s *Service) withSecrets(ctx context.Context, q *db.Queryer, ds []*Destination) error {
	if len(ds) == 0 {
		return nil
	}
	byID := map[string]*Destination{}
	ids := make([]string, len(ds))
	for i, d := range ds {
		byID[d.ID], ids[i] = d, d.ID
	}
	var rows []struct {
		DestinationID string `db:"destination_id"`
		Name          string `db:"name"`
	}
	if err := q.Select(ctx, &rows, `SELECT destination_id, name FROM destination_secrets WHERE destination_id IN (`+db.Placeholders(len(ids))+`) ORDER BY name`,
		db.Args(ids)...); err != nil {
		return err
	}
	for _, r := range rows {
		byID[r.DestinationID].SecretsSet = append(byID[r.DestinationID].SecretsSet, r.Name)
	}
	return nil
}

// load reads a destination the viewer may see, with their access to its workspace: NOT_FOUND when
// it does not exist or they may not see it. Anonymous callers are told to log in first, whether
// or not the id exists.
func (s *Service) load(ctx context.Context, q *db.Queryer, destinationID string) (*Destination, *workspace.Access, error) {
	a, err := s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM destinations WHERE id = ?`, destinationID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil, errNotFound()
		}
		return nil, nil, err
	}
	where, args := VisibleWhere(a)
	var d Destination
	err = q.Get(ctx, &d, selectDestinations+` WHERE d.id = ? AND `+where, append([]any{destinationID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil, errNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return &d, a, s.withSecrets(ctx, q, []*Destination{&d})
}

// Get returns a destination the viewer may see, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, destinationID string) (*Destination, error) {
	d, _, err := s.load(ctx, s.db.Reader(), destinationID)
	return d, err
}

// Filter narrows a listing.
type Filter struct {
	Status           Status
	Category, Search string
}

// List pages through a workspace's destinations by name, or by category then name.
func (s *Service) List(ctx context.Context, workspaceID string, byCategory bool, f Filter, args relay.Args, count bool) (relay.Page[Destination], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Destination]{}, err
	}
	const sending = `EXISTS (SELECT 1 FROM connections c JOIN sources s ON s.id = c.source_id WHERE c.destination_id = d.id AND c.enabled = TRUE AND s.enabled = TRUE)`
	const failing = `EXISTS (SELECT 1 FROM health_issues h WHERE h.target_id = d.id AND h.status <> 'RESOLVED')`
	where, qargs := VisibleWhere(a)
	switch f.Status {
	case Disabled:
		where += " AND d.enabled = FALSE"
	case Sending:
		where += " AND d.enabled = TRUE AND NOT " + failing + " AND " + sending
	case Idle:
		where += " AND d.enabled = TRUE AND NOT " + failing + " AND NOT " + sending
	case Failing:
		where += " AND d.enabled = TRUE AND " + failing
	}
	if f.Category != "" {
		where += " AND LOWER(d.category) = ?"
		qargs = append(qargs, strings.ToLower(f.Category))
	}
	if f.Search != "" {
		where += " AND LOWER(d.name) LIKE ? ESCAPE '\\'"
		qargs = append(qargs, "%"+source.LikeEscape(strings.ToLower(f.Search))+"%")
	}
	spec := relay.Spec[Destination]{
		Select: selectDestinations, Where: where, Args: qargs,
		SortColumn: "d.name", IDColumn: "d.id", Count: count,
		ID: func(d Destination) string { return d.ID }, SortKey: func(d Destination) any { return d.Name },
	}
	if byCategory {
		// By category, then in the order they were added (the id): keyset pagination takes one
		// sort column and the id.
		spec.SortColumn = "d.category"
		spec.SortKey = func(d Destination) any { return d.Category }
	}
	page, err := relay.Query(ctx, s.db.Reader(), spec, args)
	if err != nil {
		return page, err
	}
	ptrs := make([]*Destination, len(page.Edges))
	for i := range page.Edges {
		ptrs[i] = &page.Edges[i].Node
	}
	return page, s.withSecrets(ctx, s.db.Reader(), ptrs)
}

// splitSecrets separates validated settings into plain ones and secrets to seal. A STRING secret
// given as the mask means "unchanged". A HEADERS secret stays among the plain settings as its
// names with masked values, and its values are sealed together as one JSON object; a value given
// as the mask keeps the value stored for that name (stored holds the decrypted secrets; nil for a
// new destination). A HEADERS secret whose values are unchanged is not sealed again; one left
// without any header is cleared.
func splitSecrets(entry *catalog.Entry, clean map[string]any, stored map[string]string) (plain map[string]any, secrets map[string]string, cleared []string, errs apperr.UserErrors) {
	plain, secrets = map[string]any{}, map[string]string{}
	for k, v := range clean {
		st := entry.Setting(k)
		switch {
		case st == nil || !st.Secret:
			plain[k] = v
		case st.Type == "HEADERS":
			given, _ := v.(map[string]any)
			var before map[string]string
			_ = json.Unmarshal([]byte(stored[k]), &before)
			values, names := map[string]string{}, map[string]any{}
			for name, val := range given {
				str, _ := val.(string)
				if str == Mask {
					prev, ok := before[name]
					if !ok {
						errs.Add("settings."+k, apperr.Required, "settings.%s: header %s reads as the mask, but it has no stored value: give its value", k, name)
						continue
					}
					str = prev
				}
				values[name], names[name] = str, Mask
			}
			plain[k] = names
			switch {
			case len(values) == 0:
				if _, had := stored[k]; had {
					cleared = append(cleared, k)
				}
			case !sameStrings(values, before):
				secrets[k] = marshal(values)
			}
		default:
			if str, _ := v.(string); str != Mask {
				secrets[k] = str
			}
		}
	}
	sort.Strings(cleared)
	return plain, secrets, cleared, errs
}

func sameStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkEgress refuses settings that are URLs naming an address deliveries may not reach
// (127.0.0.1, localhost, a private range, this server itself ...), secret ones included.
func (s *Service) checkEgress(entry *catalog.Entry, clean map[string]any, errs *apperr.UserErrors) {
	if s.egress == nil {
		return
	}
	names := make([]string, 0, len(clean))
	for k := range clean {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		str, ok := clean[k].(string)
		if !ok || str == Mask {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(str))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		if err := s.egress.CheckURL(u); err != nil {
			errs.Add("settings."+k, apperr.NotAllowed, "settings.%s %s", k, strings.TrimPrefix(err.Error(), "egress refused: "))
		}
	}
}

func (s *Service) sealSecrets(ctx context.Context, tx *db.Tx, d *Destination, secrets map[string]string) error {
	for name, value := range secrets {
		c, err := s.box.Seal(value, secret.Scope{WorkspaceID: d.WorkspaceID, OwnerID: d.ID, Field: name})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO destination_secrets (destination_id, name, ciphertext) VALUES (?, ?, ?)
			ON CONFLICT (destination_id, name) DO UPDATE SET ciphertext = excluded.ciphertext`, d.ID, name, c); err != nil {
			return err
		}
	}
	return nil
}

func requireAdmin(a *workspace.Access) error {
	if !a.CanAdminister() {
		return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change destinations")
	}
	return nil
}

// Create adds a destination; owners and admins. Settings are validated against the catalog entry;
// secrets are sealed for this workspace, destination and field.
func (s *Service) Create(ctx context.Context, workspaceID, catalogID, name string, settings map[string]any, enabled *bool) (*Destination, apperr.UserErrors, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if err := requireAdmin(a); err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	entry := s.catalog.Entry(catalog.DestinationKind, catalogID)
	if entry == nil {
		errs.Add("catalogId", apperr.InvalidValue, "catalogId %q is not a destination of the catalog", catalogID)
		return nil, errs, nil
	}
	name = strings.TrimSpace(name)
	auth.ValidateName(&errs, "name", name)
	clean, serrs := entry.Validate(settings, nil)
	errs = append(errs, serrs...)
	s.checkEgress(entry, clean, &errs)
	if s.CheckSettings != nil && len(serrs) == 0 {
		s.CheckSettings(entry, clean, &errs)
	}
	plain, secrets, _, serrs := splitSecrets(entry, clean, nil)
	errs = append(errs, serrs...)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	now := db.Now()
	userID := a.Viewer.User.ID
	d := &Destination{ID: id.New(Prefix), WorkspaceID: workspaceID, CatalogSlug: entry.Slug, Category: entry.Category(), Name: name,
		Enabled: enabled == nil || *enabled, SettingsRaw: marshal(plain), CreatedBy: &userID, UpdatedBy: &userID, CreatedAt: now, UpdatedAt: now}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO destinations (id, workspace_id, catalog_slug, category, name, enabled, settings, created_by, updated_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.WorkspaceID, d.CatalogSlug, d.Category, d.Name, d.Enabled, d.SettingsRaw,
			d.CreatedBy, d.UpdatedBy, d.CreatedAt, d.UpdatedAt); err != nil {
			return err
		}
		if err := s.sealSecrets(ctx, tx, d, secrets); err != nil {
			return err
		}
		s.changed(tx, d.ID)
		for name := range secrets {
			d.SecretsSet = append(d.SecretsSet, name)
		}
		typ := EventCreated
		if d.Kind() == Warehouse {
			typ = EventWarehouseCreated
		}
		return audit.Record(ctx, tx, workspaceID, typ, "Destination", d.ID,
			map[string]any{"name": name, "catalog": entry.Slug, "enabled": d.Enabled, "settings": plain, "secretsSet": sortedKeys(secrets)})
	})
	if err != nil {
		return nil, nil, err
	}
	return d, nil, nil
}

// Update renames a destination or changes some of its settings; owners and admins. Keys given
// replace their values; a secret given as null is cleared, one left out or given as the mask stays.
func (s *Service) Update(ctx context.Context, destinationID string, name *string, settings map[string]any) (*Destination, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var d *Destination
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var err error
		var a *workspace.Access
		if d, a, err = s.load(ctx, &tx.Queryer, destinationID); err != nil {
			return err
		}
		if err := requireAdmin(a); err != nil {
			return err
		}
		changes := map[string]any{}
		if name != nil {
			n := strings.TrimSpace(*name)
			auth.ValidateName(&errs, "name", n)
			if n != d.Name {
				changes["name"] = audit.Change{From: d.Name, To: n}
				d.Name = n
			}
		}
		if settings != nil {
			entry := s.Entry(d)
			present := map[string]bool{}
			for _, n := range d.SecretsSet {
				present[n] = true
			}
			merged := map[string]any{}
			_ = json.Unmarshal([]byte(d.SettingsRaw), &merged)
			var cleared []string
			for k, v := range settings {
				if st := entry.Setting(k); st != nil && st.Secret && v == nil {
					cleared = append(cleared, k)
					delete(present, k)
					delete(merged, k)
					continue
				}
				merged[k] = v
			}
			for _, k := range entry.Secrets() {
				if _, given := merged[k]; !given && present[k] && entry.Setting(k).Type == "STRING" {
					merged[k] = Mask // kept: validated as present
				}
			}
			clean, serrs := entry.Validate(merged, present)
			errs = append(errs, serrs...)
			s.checkEgress(entry, clean, &errs)
			if s.CheckSettings != nil && len(serrs) == 0 {
				s.CheckSettings(entry, clean, &errs)
			}
			if len(errs) > 0 {
				return nil
			}
			stored, err := s.Secrets(ctx, d)
			if err != nil {
				return err
			}
			plain, secrets, emptied, serrs := splitSecrets(entry, clean, stored)
			errs = append(errs, serrs...)
			if len(errs) > 0 {
				return nil
			}
			cleared = append(cleared, emptied...)
			if raw := marshal(plain); raw != d.SettingsRaw {
				changes["settings"] = audit.Change{From: d.PublicSettings(), To: plain}
				d.SettingsRaw = raw
			}
			if len(secrets) > 0 {
				if err := s.sealSecrets(ctx, tx, d, secrets); err != nil {
					return err
				}
				changes["secretsChanged"] = sortedKeys(secrets)
			}
			for _, k := range cleared {
				if _, err := tx.Exec(ctx, `DELETE FROM destination_secrets WHERE destination_id = ? AND name = ?`, d.ID, k); err != nil {
					return err
				}
			}
			if len(cleared) > 0 {
				changes["secretsCleared"] = cleared
			}
		}
		if len(errs) > 0 || len(changes) == 0 {
			return nil
		}
		if err := s.save(ctx, tx, d, EventUpdated, changes); err != nil {
			return err
		}
		d.SecretsSet = nil
		return s.withSecrets(ctx, &tx.Queryer, []*Destination{d})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return d, nil, nil
}

func (s *Service) save(ctx context.Context, tx *db.Tx, d *Destination, typ audit.Type, changes any) error {
	s.changed(tx, d.ID)
	userID := auth.ViewerFrom(ctx).User.ID
	d.UpdatedBy, d.UpdatedAt = &userID, db.Now()
	if _, err := tx.Exec(ctx, `UPDATE destinations SET name = ?, enabled = ?, settings = ?, updated_by = ?, updated_at = ? WHERE id = ?`,
		d.Name, d.Enabled, d.SettingsRaw, d.UpdatedBy, d.UpdatedAt, d.ID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, d.WorkspaceID, typ, "Destination", d.ID, changes)
}

// SetEnabled enables or disables a destination; owners and admins.
func (s *Service) SetEnabled(ctx context.Context, destinationID string, enabled bool) (*Destination, error) {
	var d *Destination
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var a *workspace.Access
		var err error
		if d, a, err = s.load(ctx, &tx.Queryer, destinationID); err != nil {
			return err
		}
		if err := requireAdmin(a); err != nil || d.Enabled == enabled {
			return err
		}
		d.Enabled = enabled
		typ := EventDisabled
		if enabled {
			typ = EventEnabled
			// What arrived while it was disabled is not for it: its delivery starts from now.
			if err := moveCursorToEnd(ctx, tx, d.ID); err != nil {
				return err
			}
		}
		return s.save(ctx, tx, d, typ, map[string]audit.Change{"enabled": {From: !enabled, To: enabled}})
	})
	return d, err
}

// Delete removes a destination and its connections; owners and admins.
func (s *Service) Delete(ctx context.Context, destinationID string) error {
	return s.db.Tx(ctx, func(tx *db.Tx) error {
		d, a, err := s.load(ctx, &tx.Queryer, destinationID)
		if err != nil {
			return err
		}
		if err := requireAdmin(a); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM destinations WHERE id = ?`, d.ID); err != nil {
			return err
		}
		s.changed(tx, d.ID)
		typ := EventDeleted
		if d.Kind() == Warehouse {
			typ = EventWarehouseDeleted
		}
		return audit.Record(ctx, tx, d.WorkspaceID, typ, "Destination", d.ID, map[string]any{"name": d.Name})
	})
}

// Secrets decrypts a destination's secret settings, for the delivery engine only: never for the API.
func (s *Service) Secrets(ctx context.Context, d *Destination) (map[string]string, error) {
	var rows []struct {
		Name       string `db:"name"`
		Ciphertext string `db:"ciphertext"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT name, ciphertext FROM destination_secrets WHERE destination_id = ?`, d.ID); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		v, err := s.box.Open(r.Ciphertext, secret.Scope{WorkspaceID: d.WorkspaceID, OwnerID: d.ID, Field: r.Name})
		if err != nil {
			return nil, err
		}
		out[r.Name] = v
	}
	return out, nil
}

// ByIDs loads the destinations with the given ids that the viewer sees in the workspace of a, for
// dataloaders.
func (s *Service) ByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]Destination, error) {
	where, args := VisibleWhere(a)
	var rows []Destination
	if err := s.db.Select(ctx, &rows, selectDestinations+` WHERE d.id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	ptrs := make([]*Destination, len(rows))
	for i := range rows {
		ptrs[i] = &rows[i]
	}
	if err := s.withSecrets(ctx, s.db.Reader(), ptrs); err != nil {
		return nil, err
	}
	out := make(map[string]Destination, len(rows))
	for _, d := range rows {
		out[d.ID] = d
	}
	return out, nil
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Visible tells whether the viewer may see the destinations of a workspace.
func (s *Service) Visible(ctx context.Context, workspaceID string) bool {
	a, err := s.workspaces.Access(ctx, workspaceID)
	return err == nil && canSee(a)
}

// Internal reads a destination without checking any viewer, for the delivery engine only.
func (s *Service) Internal(ctx context.Context, destinationID string) (*Destination, error) {
	var d Destination
	if err := s.db.Get(ctx, &d, selectDestinations+` WHERE d.id = ?`, destinationID); err != nil {
		return nil, err
	}
	return &d, s.withSecrets(ctx, s.db.Reader(), []*Destination{&d})
}

// moveCursorToEnd sets a destination's delivery cursor to the end of the event log (never back).
func moveCursorToEnd(ctx context.Context, tx *db.Tx, destinationID string) error {
	var head *string
	if err := tx.Get(ctx, &head, `SELECT MAX(id) FROM events`); err != nil || head == nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO delivery_cursors (destination_id, last_event_id) VALUES (?, ?)
		ON CONFLICT (destination_id) DO UPDATE SET last_event_id = excluded.last_event_id
		WHERE delivery_cursors.last_event_id < excluded.last_event_id`, destinationID, *head); err != nil {
		return err
	}
	return nil
}

// SealPlainSecrets seals the values of secret settings still stored in the clear: settings saved
// before they became secret (the Webhook's headers). It runs at start-up, before anything reads
// settings, and returns how many destinations it changed. It records no audit event: no person
// changed anything.
func (s *Service) SealPlainSecrets(ctx context.Context) (int, error) {
	var rows []Destination
	if err := s.db.Select(ctx, &rows, `SELECT id, workspace_id, catalog_slug, settings FROM destinations`); err != nil {
		return 0, err
	}
	changed := 0
	for i := range rows {
		d := &rows[i]
		entry := s.Entry(d)
		if entry == nil {
			continue
		}
		plain := map[string]any{}
		if err := json.Unmarshal([]byte(d.SettingsRaw), &plain); err != nil {
			continue
		}
		clear := map[string]any{}
		for _, k := range entry.Secrets() {
			switch v := plain[k].(type) {
			case string:
				if v != Mask {
					clear[k] = v
				}
			case map[string]any:
				for _, val := range v {
					if str, _ := val.(string); str != Mask {
						clear[k] = v
						break
					}
				}
			}
		}
		if len(clear) == 0 {
			continue
		}
		stored, err := s.Secrets(ctx, d)
		if err != nil {
			return changed, err
		}
		for k, v := range clear {
			if m, ok := v.(map[string]any); ok {
				var before map[string]string
				_ = json.Unmarshal([]byte(stored[k]), &before)
				merged := map[string]any{}
				for name, val := range before {
					merged[name] = val
				}
				for name, val := range m {
					if str, _ := val.(string); str != Mask {
						merged[name] = str
					}
				}
				clear[k] = merged
			}
		}
		p, secrets, _, _ := splitSecrets(entry, clear, stored)
		for k := range clear {
			if _, isMap := clear[k].(map[string]any); isMap {
				plain[k] = p[k]
			} else {
				delete(plain, k)
			}
		}
		err = s.db.Tx(ctx, func(tx *db.Tx) error {
			if err := s.sealSecrets(ctx, tx, d, secrets); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE destinations SET settings = ? WHERE id = ?`, marshal(plain), d.ID)
			return err
		})
		if err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}
