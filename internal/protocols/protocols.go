// Package protocols is Segment's Protocols: tracking plans (rules that say which events a source
// sends and what they hold, as JSON Schemas), their validation of every event at ingest (an
// ingest.Stage, on the request's goroutine), each source's schema controls (block unplanned
// events, omit unplanned properties, block or trim events with violations), the quarantine of
// blocked events and their replay once the plan is fixed, forwarding of blocked events and of
// violations to another source, and what people look at: each source's schema (every event and
// key seen) and its violations, aggregated by a listener of commits.
//
// Rights: members read plans, violations and schemas (of the sources they see); owners and admins
// change them. Protocols is part of the BUSINESS plan: on other plans nothing can be changed and
// nothing is validated, but the schema of each source is kept, as Segment's Schema tab is.
package protocols

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of tracking plans.
const Prefix = "tp"

// Audit event types of this package; all are activity notifications of the PROTOCOLS area.
const (
	EventPlanCreated        audit.Type = "TRACKING_PLAN_CREATED"
	EventPlanUpdated        audit.Type = "TRACKING_PLAN_UPDATED"
	EventPlanDeleted        audit.Type = "TRACKING_PLAN_DELETED"
	EventSourceConnected    audit.Type = "TRACKING_PLAN_SOURCE_CONNECTED"
	EventSourceDisconnected audit.Type = "TRACKING_PLAN_SOURCE_DISCONNECTED"
	EventControlsUpdated    audit.Type = "SCHEMA_CONTROLS_UPDATED"
	EventSchemaArchived     audit.Type = "SCHEMA_EVENT_ARCHIVED"
	EventBlockedReplayed    audit.Type = "BLOCKED_EVENTS_REPLAYED"
	// What the system noticed, not anyone's change: notifications without an audit event.
	EventNewEventBlocked    audit.Type = "NEW_EVENT_BLOCKED"
	EventViolationsDetected audit.Type = "VIOLATIONS_DETECTED"
)

// Plan is a tracking plan.
type Plan struct {
	ID           string  `db:"id"`
	WorkspaceID  string  `db:"workspace_id"`
	Name         string  `db:"name"`
	Description  string  `db:"description"`
	CommonSchema *string `db:"common_schema"`
	Version      int64   `db:"version"`
	CreatedBy    *string `db:"created_by"`
	UpdatedBy    *string `db:"updated_by"`
	CreatedAt    db.Time `db:"created_at"`
	UpdatedAt    db.Time `db:"updated_at"`
}

// Rule is one event of a plan: its type and name, and JSON Schemas for its properties, traits or
// context (canonical JSON text; nil for none).
type Rule struct {
	PlanID      string      `db:"plan_id"`
	Key         string      `db:"rule_key"`
	Type        ingest.Type `db:"type"`
	EventName   string      `db:"event_name"`
	Description string      `db:"description"`
	LabelsRaw   string      `db:"labels"`
	Properties  *string     `db:"properties"`
	Traits      *string     `db:"traits"`
	Context     *string     `db:"context"`
	Version     int64       `db:"version"`
	UpdatedBy   *string     `db:"updated_by"`
	UpdatedAt   db.Time     `db:"updated_at"`
	// WorkspaceID is the plan's, for loaders of the people who changed rules.
	WorkspaceID string `db:"-"`
}

// Labels are the rule's key:value labels.
func (r *Rule) Labels() []string {
	var l []string
	_ = json.Unmarshal([]byte(r.LabelsRaw), &l)
	if l == nil {
		l = []string{}
	}
	return l
}

func (r *Rule) schema(field string) *string {
	switch field {
	case "properties":
		return r.Properties
	case "traits":
		return r.Traits
	}
	return r.Context
}

// Writer stores events through the tracking API's writer (ingest.Service.Write).
type Writer interface {
	Write(ctx context.Context, workspaceID string, events []*ingest.Event) error
}

// Service owns tracking plans, schema controls, schemas and violations.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	sources    *source.Service
	log        *slog.Logger
	// Writer stores replayed events; set by the server once the tracking API runs.
	Writer Writer
	// OnViolations hears, after the listener stored them, which sources of a workspace have new
	// violations (the live publisher sends violationsChanged at most once a second).
	OnViolations func(workspaceID string, sourceIDs []string)
	// Publish hands the notifications the listener makes (new event blocked, violations
	// detected) to subscribers and webhook channels.
	Publish func([]audit.Notification)
	// OnForget, when set, hears each source whose controls changed here, after the commit: other
	// replicas drop what they cached of it (ForgetSource).
	OnForget func(sourceID string)

	cache    *sourceCache
	compiled *planCache
	observer *observer
}

// New returns the service. ttl bounds how long another process's change to a plan or to
// controls may take to reach this one's ingest (changes made here apply at once).
func New(d *db.DB, w *workspace.Service, s *source.Service, ttl time.Duration, log *slog.Logger) *Service {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	svc := &Service{db: d, workspaces: w, sources: s, log: log}
	svc.compiled = newPlanCache()
	svc.cache = newSourceCache(svc, ttl)
	svc.observer = &observer{s: svc}
	return svc
}

// hasProtocols tells whether a workspace's plan includes Protocols.
func (s *Service) hasProtocols(ctx context.Context, q *db.Queryer, workspaceID string) (bool, error) {
	var plan workspace.Plan
	if err := q.Get(ctx, &plan, `SELECT plan FROM workspaces WHERE id = ?`, workspaceID); err != nil {
		if db.IsNoRows(err) {
			return false, nil
		}
		return false, err
	}
	return plan.Details().Has(workspace.Protocols), nil
}

// errNotOnPlan refuses a change to Protocols in a workspace whose plan does not include it.
func errNotOnPlan() error {
	return apperr.New(apperr.Forbidden, "the workspace's plan does not include Protocols: it is part of the BUSINESS plan")
}

// requireAdmin checks the viewer may change Protocols in a workspace: owners and admins, on a
// plan that includes it.
func (s *Service) requireAdmin(ctx context.Context, q *db.Queryer, a *workspace.Access) error {
	if !a.CanAdminister() {
		return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change tracking plans or schema controls")
	}
	ok, err := s.hasProtocols(ctx, q, a.WorkspaceID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotOnPlan()
	}
	return nil
}

// planWhere is the condition (on alias p) for the plans the viewer sees in the workspace of a:
// all of them for members, owners and admins; none for MINIMAL members.
func planWhere(a *workspace.Access) (string, []any) {
	if !a.CanReadAll() {
		return "FALSE", nil
	}
	return "p.workspace_id = ?", []any{a.WorkspaceID}
}

func errPlanNotFound() error { return apperr.NotFoundf("tracking plan not found") }

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// CanChange tells whether the viewer may change Protocols in a workspace (viewerCanUpdate).
func (s *Service) CanChange(ctx context.Context, workspaceID string) bool {
	a, err := s.workspaces.Access(ctx, workspaceID)
	return err == nil && s.requireAdmin(ctx, s.db.Reader(), a) == nil
}
