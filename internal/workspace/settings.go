package workspace

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
)

// EventSettingsUpdated is the audit event of a change of the Settings tab beyond name and slug.
const EventSettingsUpdated audit.Type = "WORKSPACE_SETTINGS_UPDATED"

// ServerRetention is how long the server keeps each kind of data: a workspace may keep its data
// for less, never more.
type ServerRetention struct {
	Events, Delivered, Failed time.Duration
	Audit, Inbox              time.Duration
}

// Settings are what the Settings tab shows of a workspace.
type Settings struct {
	ID        string
	Name      string
	Slug      string
	Plan      PlanDetails
	Retention Retention
	// SourceDefaults are what a source created without saying gets.
	SourceDefaults SourceDefaults
}

// SourceDefaults are the workspace's defaults for new sources: the labels a source created
// without labels gets, and whether a source created without saying accepts events at once.
type SourceDefaults struct {
	Labels  []string
	Enabled bool
}

// Retention is how long a workspace's data is kept, in hours, and the server's most.
type Retention struct {
	EventsHours, DeliveredAttemptsHours, FailedAttemptsHours                   int
	ServerEventsHours, ServerDeliveredAttemptsHours, ServerFailedAttemptsHours int
	AuditTrailHours, InboxHours                                                int
	ServerAuditTrailHours, ServerInboxHours                                    int
}

type retentionRow struct {
	WorkspaceID string `db:"workspace_id"`
	Events      *int   `db:"events_retention_hours"`
	Delivered   *int   `db:"delivered_retention_hours"`
	Failed      *int   `db:"failed_retention_hours"`
	Audit       *int   `db:"audit_retention_hours"`
	Inbox       *int   `db:"inbox_retention_hours"`
	// The defaults of new sources: labels as a JSON array (NULL: none), enabled (NULL: true).
	SourceLabels  *string `db:"default_source_labels"`
	SourceEnabled *bool   `db:"new_sources_enabled"`
}

// settingsColumns are the columns of workspace_settings that retentionRow reads.
const settingsColumns = `workspace_id, events_retention_hours, delivered_retention_hours, failed_retention_hours, audit_retention_hours,
	inbox_retention_hours, default_source_labels, new_sources_enabled`

// sourceDefaults reads the row's defaults for new sources.
func (r retentionRow) sourceDefaults() SourceDefaults {
	d := SourceDefaults{Labels: []string{}, Enabled: r.SourceEnabled == nil || *r.SourceEnabled}
	if r.SourceLabels != nil {
		_ = json.Unmarshal([]byte(*r.SourceLabels), &d.Labels)
	}
	return d
}

func hours(d time.Duration) int { return int(d / time.Hour) }

func (s *Service) retention(row retentionRow) Retention {
	r := Retention{ServerEventsHours: hours(s.Retention.Events), ServerDeliveredAttemptsHours: hours(s.Retention.Delivered),
		ServerFailedAttemptsHours: hours(s.Retention.Failed), ServerAuditTrailHours: hours(s.Retention.Audit), ServerInboxHours: hours(s.Retention.Inbox)}
	pick := func(own *int, server int) int {
		if own != nil && *own < server {
			return *own
		}
		return server
	}
	r.EventsHours = pick(row.Events, r.ServerEventsHours)
	r.DeliveredAttemptsHours = pick(row.Delivered, r.ServerDeliveredAttemptsHours)
	r.FailedAttemptsHours = pick(row.Failed, r.ServerFailedAttemptsHours)
	r.AuditTrailHours = pick(row.Audit, r.ServerAuditTrailHours)
	r.InboxHours = pick(row.Inbox, r.ServerInboxHours)
	return r
}

// ownRetention reads a workspace's own retention (nil fields: the server's).
func ownRetention(ctx context.Context, q *db.Queryer, workspaceID string) (retentionRow, error) {
	var row retentionRow
	err := q.Get(ctx, &row, `SELECT `+settingsColumns+` FROM workspace_settings WHERE workspace_id = ?`, workspaceID)
	if db.IsNoRows(err) {
		return retentionRow{WorkspaceID: workspaceID}, nil // sqlx may have allocated the pointers already
	}
	return row, err
}

// Settings returns a workspace's settings; everyone in it.
func (s *Service) Settings(ctx context.Context, workspaceID string) (*Settings, error) {
	if _, err := s.Access(ctx, workspaceID); err != nil {
		return nil, err
	}
	return s.settings(ctx, s.db.Reader(), workspaceID)
}

func (s *Service) settings(ctx context.Context, q *db.Queryer, workspaceID string) (*Settings, error) {
	var w Workspace
	if err := q.Get(ctx, &w, `SELECT * FROM workspaces WHERE id = ?`, workspaceID); err != nil {
		if db.IsNoRows(err) {
			return nil, errNotFound()
		}
		return nil, err
	}
	row, err := ownRetention(ctx, q, workspaceID)
	if err != nil {
		return nil, err
	}
	return &Settings{ID: w.ID, Name: w.Name, Slug: w.Slug, Plan: w.Plan.Details(), Retention: s.retention(row),
		SourceDefaults: row.sourceDefaults()}, nil
}

// SourceDefaults returns a workspace's defaults for new sources, for the source service once it
// has checked the viewer's rights.
func (s *Service) SourceDefaults(ctx context.Context, q *db.Queryer, workspaceID string) (SourceDefaults, error) {
	row, err := ownRetention(ctx, q, workspaceID)
	return row.sourceDefaults(), err
}

// SettingsUpdate is a change of the Settings tab: nil leaves a field; a retention of 0 goes back
// to the server's.
type SettingsUpdate struct {
	Name, Slug                  *string
	EventsHours, DeliveredHours *int
	FailedHours                 *int
	AuditHours, InboxHours      *int
	// DefaultSourceLabels replaces the labels of new sources (empty: none); nil leaves them.
	DefaultSourceLabels []string
	NewSourcesEnabled   *bool
}

// UpdateSettings changes a workspace's settings; owners. Each change is audited: name and slug as
// workspaceUpdate does, retention as WORKSPACE_SETTINGS_UPDATED.
func (s *Service) UpdateSettings(ctx context.Context, workspaceID string, u SettingsUpdate) (*Settings, apperr.UserErrors, error) {
	a, err := s.Access(ctx, workspaceID)
	if err != nil {
		return nil, nil, err
	}
	if a.Role != auth.Owner {
		return nil, nil, errForbidden("change the workspace's settings")
	}
	var errs apperr.UserErrors
	check := func(field string, v *int, least int, server time.Duration) {
		switch {
		case v == nil || *v == 0:
		case *v < least:
			errs.Add(field, apperr.InvalidValue, "%s must be at least %d hours (or 0 for the server's), got %d", field, least, *v)
		case *v > hours(server):
			errs.Add(field, apperr.InvalidValue, "%s must be at most the server's %d hours, got %d", field, hours(server), *v)
		}
	}
	// Events are kept at least a day: messageIds are deduplicated over the events kept.
	check("eventsRetentionHours", u.EventsHours, 24, s.Retention.Events)
	check("deliveredAttemptsRetentionHours", u.DeliveredHours, 1, s.Retention.Delivered)
	check("failedAttemptsRetentionHours", u.FailedHours, 24, s.Retention.Failed)
	// The audit trail and the inbox are kept at least a day: what happened today stays readable.
	check("auditTrailRetentionHours", u.AuditHours, 24, s.Retention.Audit)
	check("inboxRetentionHours", u.InboxHours, 24, s.Retention.Inbox)
	if u.DefaultSourceLabels != nil {
		u.DefaultSourceLabels = ValidateLabels(&errs, "defaultSourceLabels", u.DefaultSourceLabels)
	}
	if u.Name != nil {
		*u.Name = strings.TrimSpace(*u.Name)
		auth.ValidateName(&errs, "name", *u.Name)
	}
	if u.Slug != nil {
		*u.Slug = strings.TrimSpace(*u.Slug)
		validateSlug(&errs, *u.Slug)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	if u.Name != nil || u.Slug != nil {
		if _, errs, err := s.Update(ctx, workspaceID, u.Name, u.Slug); err != nil || len(errs) > 0 {
			return nil, errs, err
		}
	}
	var out *Settings
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		before, err := s.settings(ctx, &tx.Queryer, workspaceID)
		if err != nil {
			return err
		}
		row, err := ownRetention(ctx, &tx.Queryer, workspaceID)
		if err != nil {
			return err
		}
		set := func(own **int, v *int) {
			switch {
			case v == nil:
			case *v == 0:
				*own = nil
			default:
				n := *v
				*own = &n
			}
		}
		set(&row.Events, u.EventsHours)
		set(&row.Delivered, u.DeliveredHours)
		set(&row.Failed, u.FailedHours)
		set(&row.Audit, u.AuditHours)
		set(&row.Inbox, u.InboxHours)
		if u.DefaultSourceLabels != nil {
			raw, _ := json.Marshal(u.DefaultSourceLabels)
			labels := string(raw)
			row.SourceLabels = &labels
		}
		if u.NewSourcesEnabled != nil {
			row.SourceEnabled = u.NewSourcesEnabled
		}
		if _, err := tx.Exec(ctx, `INSERT INTO workspace_settings (`+settingsColumns+`, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET events_retention_hours = excluded.events_retention_hours,
			delivered_retention_hours = excluded.delivered_retention_hours, failed_retention_hours = excluded.failed_retention_hours,
			audit_retention_hours = excluded.audit_retention_hours, inbox_retention_hours = excluded.inbox_retention_hours,
			default_source_labels = excluded.default_source_labels, new_sources_enabled = excluded.new_sources_enabled,
			updated_at = excluded.updated_at`, workspaceID, row.Events, row.Delivered, row.Failed, row.Audit, row.Inbox,
			row.SourceLabels, row.SourceEnabled, db.Now()); err != nil {
			return err
		}
		if out, err = s.settings(ctx, &tx.Queryer, workspaceID); err != nil {
			return err
		}
		changes := map[string]audit.Change{}
		for _, c := range []struct {
			name     string
			from, to int
		}{
			{"eventsRetentionHours", before.Retention.EventsHours, out.Retention.EventsHours},
			{"deliveredAttemptsRetentionHours", before.Retention.DeliveredAttemptsHours, out.Retention.DeliveredAttemptsHours},
			{"failedAttemptsRetentionHours", before.Retention.FailedAttemptsHours, out.Retention.FailedAttemptsHours},
			{"auditTrailRetentionHours", before.Retention.AuditTrailHours, out.Retention.AuditTrailHours},
			{"inboxRetentionHours", before.Retention.InboxHours, out.Retention.InboxHours},
		} {
			if c.from != c.to {
				changes[c.name] = audit.Change{From: c.from, To: c.to}
			}
		}
		if !slices.Equal(before.SourceDefaults.Labels, out.SourceDefaults.Labels) {
			changes["defaultSourceLabels"] = audit.Change{From: before.SourceDefaults.Labels, To: out.SourceDefaults.Labels}
		}
		if before.SourceDefaults.Enabled != out.SourceDefaults.Enabled {
			changes["newSourcesEnabled"] = audit.Change{From: before.SourceDefaults.Enabled, To: out.SourceDefaults.Enabled}
		}
		if len(changes) == 0 {
			return nil
		}
		return audit.Record(ctx, tx, workspaceID, EventSettingsUpdated, "Workspace", workspaceID, changes)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, nil, nil
}

// CanUpdateSettings tells whether the viewer may change a workspace's settings (owners).
func (s *Service) CanUpdateSettings(ctx context.Context, workspaceID string) bool {
	a, err := s.Access(ctx, workspaceID)
	return err == nil && a.Role == auth.Owner
}

// OwnRetention is a workspace's retention where it is shorter than the server's, for pruning.
type OwnRetention struct {
	WorkspaceID               string
	Events, Delivered, Failed time.Duration // 0: the server's
	Audit, Inbox              time.Duration
}

// ShorterRetentions lists the workspaces that keep some data for less than the server does.
func (s *Service) ShorterRetentions(ctx context.Context) ([]OwnRetention, error) {
	var rows []retentionRow
	if err := s.db.Select(ctx, &rows, `SELECT `+settingsColumns+` FROM workspace_settings ORDER BY workspace_id`); err != nil {
		return nil, err
	}
	out := make([]OwnRetention, 0, len(rows))
	for _, r := range rows {
		own := OwnRetention{WorkspaceID: r.WorkspaceID}
		for _, x := range []struct {
			hours  *int
			server time.Duration
			to     *time.Duration
		}{{r.Events, s.Retention.Events, &own.Events}, {r.Delivered, s.Retention.Delivered, &own.Delivered}, {r.Failed, s.Retention.Failed, &own.Failed},
			{r.Audit, s.Retention.Audit, &own.Audit}, {r.Inbox, s.Retention.Inbox, &own.Inbox}} {
			if x.hours != nil && time.Duration(*x.hours)*time.Hour < x.server {
				*x.to = time.Duration(*x.hours) * time.Hour
			}
		}
		if own.Events > 0 || own.Delivered > 0 || own.Failed > 0 || own.Audit > 0 || own.Inbox > 0 {
			out = append(out, own)
		}
	}
	return out, nil
}

// ValidateLabels checks `key:value` labels (of a source, or a workspace's defaults for new ones)
// and returns them trimmed, lower-cased, without duplicates and sorted; field names them in errors.
func ValidateLabels(errs *apperr.UserErrors, field string, labels []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for i, l := range labels {
		l = strings.ToLower(strings.TrimSpace(l))
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || len(l) > 100 {
			errs.Add(field, apperr.InvalidValue, "%s[%d] must be key:value, such as environment:prod, at most 100 characters", field, i)
			continue
		}
		if strings.IndexFunc(l, auth.UnsafeRune) >= 0 {
			errs.Add(field, apperr.InvalidValue, "%s[%d] must not contain control characters or bidirectional overrides", field, i)
			continue
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		errs.Add(field, apperr.TooLong, "a source has at most 20 labels, got %d", len(out))
	}
	sort.Strings(out)
	return out
}
