package protocols

import (
	"context"
	"encoding/json"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

func decodeJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// SourceSettings is a source's tracking plan and schema controls.
type SourceSettings struct {
	SourceID    string  `db:"source_id"`
	WorkspaceID string  `db:"workspace_id"`
	PlanID      *string `db:"plan_id"`
	Controls
	UpdatedAt *db.Time `db:"updated_at"`
}

type controlsRow struct {
	SourceID      string  `db:"source_id"`
	WorkspaceID   string  `db:"workspace_id"`
	PlanID        *string `db:"plan_id"`
	Unplanned     string  `db:"unplanned_events"`
	UnplannedKeys string  `db:"unplanned_properties"`
	Violations    string  `db:"violations"`
	Common        string  `db:"common_schema_violations"`
	FwdBlocked    *string `db:"forward_blocked_to"`
	FwdViolations *string `db:"forward_violations_to"`
	UpdatedAt     db.Time `db:"updated_at"`
}

func (r controlsRow) settings() SourceSettings {
	at := r.UpdatedAt
	return SourceSettings{SourceID: r.SourceID, WorkspaceID: r.WorkspaceID, PlanID: r.PlanID, UpdatedAt: &at,
		Controls: Controls{UnplannedEvents: r.Unplanned, UnplannedProperties: r.UnplannedKeys, Violations: r.Violations,
			CommonSchemaViolations: r.Common, ForwardBlockedTo: r.FwdBlocked, ForwardViolationsTo: r.FwdViolations}}
}

// SettingsBySource loads the plan and controls of the sources the viewer sees in the workspace
// of a (the defaults for sources never set up), for dataloaders.
func (s *Service) SettingsBySource(ctx context.Context, a *workspace.Access, sourceIDs []string) (map[string]SourceSettings, error) {
	where, args := source.VisibleWhere(a)
	var ids []string
	if err := s.db.Select(ctx, &ids, `SELECT s.id FROM sources s WHERE s.id IN (`+db.Placeholders(len(sourceIDs))+`) AND `+where,
		append(db.Args(sourceIDs), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string]SourceSettings, len(ids))
	for _, id := range ids {
		out[id] = SourceSettings{SourceID: id, WorkspaceID: a.WorkspaceID, Controls: DefaultControls}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []controlsRow
	if err := s.db.Select(ctx, &rows, `SELECT * FROM source_protocols WHERE source_id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.SourceID] = r.settings()
	}
	return out, nil
}

// adminSource loads a source within tx for a change to its Protocols settings: the viewer must
// see it and administer the workspace, on a plan with Protocols.
func (s *Service) adminSource(ctx context.Context, tx *db.Tx, sourceID string) (*source.Source, *workspace.Access, error) {
	src, err := s.sources.Get(ctx, sourceID)
	if err != nil {
		return nil, nil, err
	}
	a, _, err := s.sources.Rights(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
		return nil, nil, err
	}
	return src, a, nil
}

func (s *Service) readSettings(ctx context.Context, q *db.Queryer, sourceID, workspaceID string) (controlsRow, error) {
	var r controlsRow
	err := q.Get(ctx, &r, `SELECT * FROM source_protocols WHERE source_id = ?`, sourceID)
	if db.IsNoRows(err) {
		d := DefaultControls
		return controlsRow{SourceID: sourceID, WorkspaceID: workspaceID, Unplanned: d.UnplannedEvents, UnplannedKeys: d.UnplannedProperties,
			Violations: d.Violations, Common: d.CommonSchemaViolations}, nil
	}
	return r, err
}

func (s *Service) saveSettings(ctx context.Context, tx *db.Tx, r controlsRow) error {
	r.UpdatedAt = db.Now()
	_, err := tx.Exec(ctx, `INSERT INTO source_protocols (source_id, workspace_id, plan_id, unplanned_events, unplanned_properties, violations,
		common_schema_violations, forward_blocked_to, forward_violations_to, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (source_id) DO UPDATE SET plan_id = excluded.plan_id, unplanned_events = excluded.unplanned_events,
		unplanned_properties = excluded.unplanned_properties, violations = excluded.violations,
		common_schema_violations = excluded.common_schema_violations, forward_blocked_to = excluded.forward_blocked_to,
		forward_violations_to = excluded.forward_violations_to, updated_at = excluded.updated_at`,
		r.SourceID, r.WorkspaceID, r.PlanID, r.Unplanned, r.UnplannedKeys, r.Violations, r.Common, r.FwdBlocked, r.FwdViolations, r.UpdatedAt)
	if err == nil {
		tx.AfterCommit(func() {
			s.cache.forgetSource(r.SourceID)
			if s.OnForget != nil {
				s.OnForget(r.SourceID)
			}
		})
	}
	return err
}

// Connect makes plan the tracking plan of a source (it has none); owners and admins.
func (s *Service) Connect(ctx context.Context, planID, sourceID string) (*Plan, apperr.UserErrors, error) {
	var p *Plan
	var errs apperr.UserErrors
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var a *workspace.Access
		var err error
		if p, a, err = s.loadPlan(ctx, &tx.Queryer, planID); err != nil {
			return err
		}
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		src, err := s.sources.Get(ctx, sourceID)
		if err != nil || src.WorkspaceID != p.WorkspaceID {
			errs.Add("sourceId", apperr.InvalidValue, "sourceId is not a source of the plan's workspace")
			return nil
		}
		r, err := s.readSettings(ctx, &tx.Queryer, src.ID, src.WorkspaceID)
		if err != nil {
			return err
		}
		switch {
		case r.PlanID != nil && *r.PlanID == p.ID:
			return nil
		case r.PlanID != nil:
			errs.Add("sourceId", apperr.NotAllowed, "the source is connected to another tracking plan: a source has at most one; disconnect it first")
			return nil
		}
		r.PlanID = &p.ID
		if err := s.saveSettings(ctx, tx, r); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.WorkspaceID, EventSourceConnected, "TrackingPlan", p.ID, map[string]any{"name": p.Name, "source": src.Name, "sourceId": src.ID})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return p, nil, nil
}

// Disconnect takes a source off a plan; its controls stay. Owners and admins.
func (s *Service) Disconnect(ctx context.Context, planID, sourceID string) (*Plan, apperr.UserErrors, error) {
	var p *Plan
	var errs apperr.UserErrors
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var a *workspace.Access
		var err error
		if p, a, err = s.loadPlan(ctx, &tx.Queryer, planID); err != nil {
			return err
		}
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		src, err := s.sources.Get(ctx, sourceID)
		var r controlsRow
		if err == nil && src.WorkspaceID == p.WorkspaceID {
			r, err = s.readSettings(ctx, &tx.Queryer, src.ID, src.WorkspaceID)
			if err != nil {
				return err
			}
		}
		if src == nil || r.PlanID == nil || *r.PlanID != p.ID {
			errs.Add("sourceId", apperr.InvalidValue, "sourceId is not a source connected to this plan")
			return nil
		}
		r.PlanID = nil
		if err := s.saveSettings(ctx, tx, r); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.WorkspaceID, EventSourceDisconnected, "TrackingPlan", p.ID, map[string]any{"name": p.Name, "source": src.Name, "sourceId": src.ID})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return p, nil, nil
}

// ControlsInput changes a source's controls; nil fields stay, an empty forwarding id stops
// forwarding.
type ControlsInput struct {
	UnplannedEvents, UnplannedProperties, Violations, CommonSchemaViolations *string
	ForwardBlockedTo, ForwardViolationsTo                                    *string
}

// UpdateControls changes a source's schema controls; owners and admins. A forwarding target is
// another enabled source of the same workspace.
func (s *Service) UpdateControls(ctx context.Context, sourceID string, in ControlsInput) (*SourceSettings, apperr.UserErrors, error) {
	var out SourceSettings
	var errs apperr.UserErrors
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		src, _, err := s.adminSource(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		r, err := s.readSettings(ctx, &tx.Queryer, src.ID, src.WorkspaceID)
		if err != nil {
			return err
		}
		before := r.settings().Controls
		set := func(field string, v *string, dst *string, allowed ...string) {
			if v == nil {
				return
			}
			for _, a := range allowed {
				if *v == a {
					*dst = *v
					return
				}
			}
			errs.Add(field, apperr.InvalidValue, "%s must be one of %v", field, allowed)
		}
		set("unplannedEvents", in.UnplannedEvents, &r.Unplanned, Allow, Block)
		set("unplannedProperties", in.UnplannedProperties, &r.UnplannedKeys, Allow, Omit)
		set("violations", in.Violations, &r.Violations, Allow, OmitProperties, Block)
		set("commonSchemaViolations", in.CommonSchemaViolations, &r.Common, Allow, OmitProperties, Block)
		target := func(field string, v *string, dst **string) error {
			if v == nil {
				return nil
			}
			if *v == "" {
				*dst = nil
				return nil
			}
			if *v == src.ID {
				errs.Add(field, apperr.NotAllowed, "%s must be another source: a source cannot forward to itself", field)
				return nil
			}
			ok, err := s.sources.InWorkspace(ctx, &tx.Queryer, src.WorkspaceID, *v)
			if err != nil {
				return err
			}
			if !ok {
				errs.Add(field, apperr.InvalidValue, "%s is not a source of this workspace", field)
				return nil
			}
			id := *v
			*dst = &id
			return nil
		}
		if err := target("forwardBlockedEventsTo", in.ForwardBlockedTo, &r.FwdBlocked); err != nil {
			return err
		}
		if err := target("forwardViolationsTo", in.ForwardViolationsTo, &r.FwdViolations); err != nil {
			return err
		}
		if len(errs) > 0 {
			return nil
		}
		if err := s.saveSettings(ctx, tx, r); err != nil {
			return err
		}
		out = r.settings()
		return audit.Record(ctx, tx, src.WorkspaceID, EventControlsUpdated, "Source", src.ID,
			map[string]any{"name": src.Name, "controls": audit.Change{From: controlsMap(before), To: controlsMap(out.Controls)}})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return &out, nil, nil
}

func controlsMap(c Controls) map[string]any {
	return map[string]any{"unplannedEvents": c.UnplannedEvents, "unplannedProperties": c.UnplannedProperties, "violations": c.Violations,
		"commonSchemaViolations": c.CommonSchemaViolations, "forwardBlockedEventsTo": c.ForwardBlockedTo, "forwardViolationsTo": c.ForwardViolationsTo}
}

// PlanSources lists the sources connected to a plan that the viewer sees, by name.
func (s *Service) PlanSources(ctx context.Context, p *Plan) ([]source.Source, error) {
	a, err := s.workspaces.Access(ctx, p.WorkspaceID)
	if err != nil {
		return nil, err
	}
	where, args := source.VisibleWhere(a)
	out := []source.Source{}
	err = s.db.Select(ctx, &out, `SELECT s.* FROM sources s JOIN source_protocols sp ON sp.source_id = s.id WHERE sp.plan_id = ? AND `+where+` ORDER BY s.name, s.id`,
		append([]any{p.ID}, args...)...)
	return out, err
}
