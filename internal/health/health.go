// Package health turns errors into health issues: repeated or consistent failures of a target (a
// source's discarded events, a destination's failed deliveries), grouped by target and error type,
// counted, with a sample to open, acknowledged by people and resolved by themselves once the
// target has worked for a while. Messages are normalised so that the same error with different
// ids, numbers or addresses is one issue.
package health

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of health issues.
const Prefix = "hi"

// Target kinds and statuses.
const (
	SourceTarget      = "SOURCE"
	DestinationTarget = "DESTINATION"
	// WarehouseTarget is a destination that is a warehouse: its issues come from its syncs, and
	// Health lists them in a section of their own.
	WarehouseTarget = "WAREHOUSE"

	Open         = "OPEN"
	Acknowledged = "ACKNOWLEDGED"
	Resolved     = "RESOLVED"
)

// Issue is one health issue.
type Issue struct {
	ID             string   `db:"id"`
	WorkspaceID    string   `db:"workspace_id"`
	TargetKind     string   `db:"target_kind"`
	TargetID       string   `db:"target_id"`
	ErrorType      string   `db:"error_type"`
	Message        string   `db:"message"`
	Count          int      `db:"count"`
	FirstSeenAt    db.Time  `db:"first_seen_at"`
	LastSeenAt     db.Time  `db:"last_seen_at"`
	SampleID       *string  `db:"sample_id"`
	Status         string   `db:"status"`
	AcknowledgedBy *string  `db:"acknowledged_by"`
	ResolvedAt     *db.Time `db:"resolved_at"`
	// Opened is true on the issue Record hands to OnChange when this occurrence opened it.
	Opened bool `db:"-"`
}

// IsDestination tells whether a target kind is a destination's (a tool's or a warehouse's).
func IsDestination(kind string) bool { return kind == DestinationTarget || kind == WarehouseTarget }

// Occurrence is one error to count: n times for a target with an error type, with a sample.
type Occurrence struct {
	WorkspaceID, TargetKind, TargetID, ErrorType, Message, SampleID string
	N                                                               int
	At                                                              time.Time
}

// Service owns health issues.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	// ResolveAfter is how long a target must work without the error before its issue resolves.
	ResolveAfter time.Duration
	// OnChange is called after an issue opens, grows, is acknowledged or resolves.
	OnChange func(Issue)
}

// New returns the service.
func New(d *db.DB, w *workspace.Service, resolveAfter time.Duration) *Service {
	return &Service{db: d, workspaces: w, ResolveAfter: resolveAfter}
}

var (
	reUUID   = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	reOurID  = regexp.MustCompile(`\b[a-z][a-z0-9]{0,15}_[0-9a-z]{26}\b`)
	reHex    = regexp.MustCompile(`(?i)\b(0x)?[0-9a-f]{12,}\b`)
	reIP     = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|\[[0-9a-f:]+\](:\d+)?`)
	reNumber = regexp.MustCompile(`\b\d+(\.\d+)?\b`)
	reQuoted = regexp.MustCompile(`"[^"]{0,200}"|'[^']{0,200}'`)
	reQuery  = regexp.MustCompile(`\?[^\s"]*`)
	reSpaces = regexp.MustCompile(`\s+`)
)

// Normalise makes messages of the same error equal: ids, addresses, numbers, query strings and
// quoted values become placeholders. HTTP status codes survive, since the error type names them.
func Normalise(msg string) string {
	msg = reQuery.ReplaceAllString(msg, "?…")
	msg = reUUID.ReplaceAllString(msg, "<id>")
	msg = reOurID.ReplaceAllString(msg, "<id>")
	msg = reIP.ReplaceAllString(msg, "<address>")
	msg = reHex.ReplaceAllString(msg, "<hex>")
	msg = reQuoted.ReplaceAllString(msg, `"…"`)
	msg = reNumber.ReplaceAllStringFunc(msg, func(s string) string {
		if len(s) == 3 && (s[0] == '4' || s[0] == '5') { // keep HTTP status codes
			return s
		}
		return "<n>"
	})
	msg = strings.TrimSpace(reSpaces.ReplaceAllString(msg, " "))
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// Record counts occurrences: each adds to the open (or acknowledged) issue of its target and
// error type, or opens one.
func (s *Service) Record(ctx context.Context, occ []Occurrence) error {
	if len(occ) == 0 {
		return nil
	}
	var changed []Issue
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		changed = changed[:0]
		for _, o := range occ {
			var is Issue
			err := tx.Get(ctx, &is, `SELECT * FROM health_issues WHERE target_id = ? AND error_type = ? AND status <> ? ORDER BY id DESC LIMIT 1`,
				o.TargetID, o.ErrorType, Resolved)
			at := db.Time{Time: o.At.UTC().Truncate(time.Microsecond)}
			sample := &o.SampleID
			if o.SampleID == "" {
				sample = nil
			}
			switch {
			case db.IsNoRows(err):
				is = Issue{ID: id.New(Prefix), WorkspaceID: o.WorkspaceID, TargetKind: o.TargetKind, TargetID: o.TargetID, ErrorType: o.ErrorType,
					Message: Normalise(o.Message), Count: o.N, FirstSeenAt: at, LastSeenAt: at, SampleID: sample, Status: Open, Opened: true}
				if _, err := tx.Exec(ctx, `INSERT INTO health_issues (id, workspace_id, target_kind, target_id, error_type, message, count,
					first_seen_at, last_seen_at, sample_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					is.ID, is.WorkspaceID, is.TargetKind, is.TargetID, is.ErrorType, is.Message, is.Count, is.FirstSeenAt, is.LastSeenAt, is.SampleID, is.Status); err != nil {
					return err
				}
			case err != nil:
				return err
			default:
				is.Count += o.N
				is.LastSeenAt, is.Message = at, Normalise(o.Message)
				if sample != nil {
					is.SampleID = sample
				}
				if _, err := tx.Exec(ctx, `UPDATE health_issues SET count = ?, last_seen_at = ?, message = ?, sample_id = ? WHERE id = ?`,
					is.Count, is.LastSeenAt, is.Message, is.SampleID, is.ID); err != nil {
					return err
				}
			}
			changed = append(changed, is)
		}
		return nil
	})
	if err == nil {
		s.notify(changed)
	}
	return err
}

func (s *Service) notify(issues []Issue) {
	if s.OnChange == nil {
		return
	}
	for _, is := range issues {
		s.OnChange(is)
	}
}

// ResolveRecovered resolves the issues whose target has worked since the error was last seen, for
// at least ResolveAfter: a destination with a delivery since, a source with accepted events since.
func (s *Service) ResolveRecovered(ctx context.Context, now time.Time) (int, error) {
	issues, err := s.recovered(ctx, now)
	if err != nil || len(issues) == 0 {
		return 0, err
	}
	return s.resolve(ctx, issues, now)
}

// recovered reads the unresolved issues whose target has worked since, for ResolveAfter.
func (s *Service) recovered(ctx context.Context, now time.Time) ([]Issue, error) {
	var issues []Issue
	quiet := db.Time{Time: now.Add(-s.ResolveAfter)}
	err := s.db.Select(ctx, &issues, `SELECT h.* FROM health_issues h WHERE h.status <> ? AND h.last_seen_at <= ? AND (
		(h.target_kind = ? AND EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.destination_id = h.target_id AND a.outcome = 'DELIVERED' AND a.created_at > h.last_seen_at))
		OR (h.target_kind = ? AND EXISTS (SELECT 1 FROM sources s WHERE s.id = h.target_id AND s.last_seen_at > h.last_seen_at)))`,
		Resolved, quiet, DestinationTarget, SourceTarget)
	return issues, err
}

// ResolveTarget resolves a target's unresolved issues of the given error types at once: for
// targets whose working is one clear event rather than a quiet while (a warehouse whose sync
// succeeded).
func (s *Service) ResolveTarget(ctx context.Context, targetID string, errorTypes []string, now time.Time) (int, error) {
	if len(errorTypes) == 0 {
		return 0, nil
	}
	var issues []Issue
	if err := s.db.Select(ctx, &issues, `SELECT * FROM health_issues WHERE target_id = ? AND status <> ? AND error_type IN (`+
		db.Placeholders(len(errorTypes))+`)`, append([]any{targetID, Resolved}, db.Args(errorTypes)...)...); err != nil || len(issues) == 0 {
		return 0, err
	}
	return s.resolve(ctx, issues, now)
}

// resolve resolves issues read by recovered, each only if it did not recur since it was read.
func (s *Service) resolve(ctx context.Context, issues []Issue, now time.Time) (int, error) {
	resolvedAt := db.Time{Time: now.UTC().Truncate(time.Microsecond)}
	var resolved []Issue
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		resolved = resolved[:0]
		for _, is := range issues {
			// Only if it did not recur since it was read: an occurrence recorded meanwhile moved
			// last_seen_at, and the issue stays open.
			res, err := tx.Exec(ctx, `UPDATE health_issues SET status = ?, resolved_at = ? WHERE id = ? AND status <> ? AND last_seen_at = ?`,
				Resolved, resolvedAt, is.ID, Resolved, is.LastSeenAt)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				is.Status, is.ResolvedAt = Resolved, &resolvedAt
				resolved = append(resolved, is)
			}
		}
		return nil
	})
	if err == nil {
		s.notify(resolved)
	}
	return len(resolved), err
}

// DiscardOccurrences turns the events a group commit of the tracking API discarded into
// occurrences of their sources' issues, one per source and reason.
func DiscardOccurrences(c ingest.Committed) []Occurrence {
	type key struct{ src, reason string }
	byKey := map[key]int{}
	var occ []Occurrence
	for _, e := range c.Events {
		if e.Status != ingest.Discarded || e.Reason == ingest.Suppressed {
			continue // a suppressed subject's events are refused on purpose
		}
		k := key{e.SourceID, string(e.Reason)}
		i, ok := byKey[k]
		if !ok {
			i = len(occ)
			byKey[k] = i
			occ = append(occ, Occurrence{WorkspaceID: e.WorkspaceID, TargetKind: SourceTarget, TargetID: e.SourceID, ErrorType: string(e.Reason)})
		}
		o := &occ[i]
		o.N++
		o.SampleID, o.At, o.Message = e.ID, e.ReceivedAt, e.Message
	}
	return occ
}

// SchemaViolation is the error type of a source's issue for events that broke its tracking plan.
const SchemaViolation = "SCHEMA_VIOLATION"

// ViolationOccurrences turns the events a group commit stored with tracking-plan violations
// (accepted or blocked) into occurrences of their sources' SCHEMA_VIOLATION issues.
func ViolationOccurrences(c ingest.Committed) []Occurrence {
	byKey := map[string]int{}
	var occ []Occurrence
	for _, e := range c.Events {
		if len(e.Violations) == 0 {
			continue
		}
		i, ok := byKey[e.SourceID]
		if !ok {
			i = len(occ)
			byKey[e.SourceID] = i
			occ = append(occ, Occurrence{WorkspaceID: e.WorkspaceID, TargetKind: SourceTarget, TargetID: e.SourceID, ErrorType: SchemaViolation})
		}
		o := &occ[i]
		o.N++
		v := e.Violations[0]
		o.SampleID, o.At, o.Message = e.ID, e.ReceivedAt, "events break the tracking plan: "+v.Type+" on "+v.Field
	}
	return occ
}

// visibleWhere restricts issues (alias h) to those the viewer may see: destination issues for
// those who see destinations, source issues for the sources they see.
func visibleWhere(a *workspace.Access, seeDestinations bool) (string, []any) {
	srcWhere, srcArgs := source.VisibleWhere(a)
	where := "h.workspace_id = ? AND ((h.target_kind = 'SOURCE' AND EXISTS (SELECT 1 FROM sources s WHERE s.id = h.target_id AND " + srcWhere + "))"
	if seeDestinations {
		where += " OR h.target_kind IN ('DESTINATION', 'WAREHOUSE')"
	}
	return where + ")", append([]any{a.WorkspaceID}, srcArgs...)
}

// Filter narrows a listing.
type Filter struct {
	Statuses   []string
	TargetKind string
	ErrorType  string
}

// List pages through a workspace's issues, most recently seen first. seeDestinations says whether
// the viewer may see destinations (decided by the destination package).
func (s *Service) List(ctx context.Context, workspaceID string, seeDestinations bool, f Filter, args relay.Args, count bool) (relay.Page[Issue], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Issue]{}, err
	}
	where, qargs := visibleWhere(a, seeDestinations)
	if len(f.Statuses) > 0 {
		where += " AND h.status IN (" + db.Placeholders(len(f.Statuses)) + ")"
		qargs = append(qargs, db.Args(f.Statuses)...)
	}
	if f.TargetKind != "" {
		where += " AND h.target_kind = ?"
		qargs = append(qargs, f.TargetKind)
	}
	if f.ErrorType != "" {
		where += " AND h.error_type = ?"
		qargs = append(qargs, f.ErrorType)
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Issue]{
		Select: "SELECT h.* FROM health_issues h", Where: where, Args: qargs,
		SortColumn: "h.last_seen_at", IDColumn: "h.id", Desc: true, Count: count,
		ID: func(i Issue) string { return i.ID }, SortKey: func(i Issue) any { return i.LastSeenAt },
	}, args)
}

// Get returns an issue the viewer may see (nil otherwise).
func (s *Service) Get(ctx context.Context, issueID string, seeDestinations func(workspaceID string) bool) (*Issue, error) {
	a, err := s.workspaces.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM health_issues WHERE id = ?`, issueID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	where, args := visibleWhere(a, seeDestinations(a.WorkspaceID))
	var is Issue
	err = s.db.Get(ctx, &is, `SELECT h.* FROM health_issues h WHERE h.id = ? AND `+where, append([]any{issueID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &is, nil
}

// Acknowledge marks an open issue as seen by the viewer: it stays listed until it resolves.
// Owners and admins, and source admins for their sources' issues.
func (s *Service) Acknowledge(ctx context.Context, issueID string, seeDestinations func(string) bool, canChange func(*Issue) bool) (*Issue, apperr.UserErrors, error) {
	is, err := s.Get(ctx, issueID, seeDestinations)
	if err != nil {
		return nil, nil, err
	}
	if is == nil {
		return nil, nil, apperr.NotFoundf("health issue not found")
	}
	if !canChange(is) {
		return nil, nil, apperr.New(apperr.Forbidden, "you may see this issue but not acknowledge it")
	}
	var errs apperr.UserErrors
	if is.Status != Open {
		errs.Add("issueId", apperr.NotAllowed, "the issue is %s, not open", strings.ToLower(is.Status))
		return nil, errs, nil
	}
	userID := auth.ViewerFrom(ctx).User.ID
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE health_issues SET status = ?, acknowledged_by = ? WHERE id = ? AND status = ?`, Acknowledged, userID, is.ID, Open)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	is.Status, is.AcknowledgedBy = Acknowledged, &userID
	s.notify([]Issue{*is})
	return is, nil, nil
}

// Current returns the open and acknowledged issues the viewer may see (at most 500), most recently
// seen first, for grouping.
func (s *Service) Current(ctx context.Context, workspaceID string, seeDestinations bool) ([]Issue, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	where, args := visibleWhere(a, seeDestinations)
	out := []Issue{}
	err = s.db.Select(ctx, &out, `SELECT h.* FROM health_issues h WHERE `+where+` AND h.status <> ? ORDER BY h.last_seen_at DESC, h.id DESC LIMIT 500`,
		append(args, Resolved)...)
	return out, err
}

// Reap steps: the issues of a deleted source, and those of a deleted workspace.
var (
	ReapSourceIssues = reap.Step{Name: "health issues", Run: func(ctx context.Context, tx *db.Tx, sourceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM health_issues WHERE target_id = ?`, sourceID)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
	ReapWorkspaceIssues = reap.Step{Name: "health issues", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
		res, err := tx.Exec(ctx, `DELETE FROM health_issues WHERE id IN (SELECT id FROM health_issues WHERE workspace_id = ? LIMIT ?)`, workspaceID, limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}}
)
