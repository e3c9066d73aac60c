// Package privacy is the Privacy Portal: matchers that recognise personal data in events (Segment's
// defaults, editable, and a workspace's own), the fields seen in every accepted event with the
// classification a matcher recommends (the inbox) or a person chose (the inventory), and the
// controls over where personal data goes: fields removed at the source before events are stored,
// fields blocked or hashed on their way to each destination, and values masked for people without
// PII access wherever payloads are shown.
//
// Cost at ingest: a Stage walks each accepted event's payload, decoded once for all stages (the
// tracking plan's reads the same), and notes its fields (path and one value); the listener of commits adds them up
// once a second, matches each distinct key once (the result is cached), and writes the inbox in
// small batched transactions, off the tracking API's writer.
//
// Rights: members read the inbox, the inventory, matchers and controls; owners and admins change
// them; owners give PII access. The Privacy Portal is part of the TEAM and BUSINESS plans: on
// FREE nothing is detected or controlled, and nothing can be changed.
package privacy

import (
	"context"
	"log/slog"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/workspace"
)

// MatcherPrefix is the id prefix of custom matchers.
const MatcherPrefix = "pm"

// Audit and notification types of this package (the PRIVACY area).
const (
	EventMatcherChanged   audit.Type = "PRIVACY_MATCHER_CHANGED"
	EventFieldsClassified audit.Type = "PRIVACY_FIELDS_CLASSIFIED"
	EventControlsUpdated  audit.Type = "PRIVACY_CONTROLS_UPDATED"
	EventPIIAccessChanged audit.Type = "PII_ACCESS_CHANGED"
	EventNewPIIField      audit.Type = "NEW_PII_FIELD" // noticed by the system: a notification without an audit event
	HealthNewPIIField                = "NEW_PII_FIELD"
	defaultInboxWindow               = 7 * 24 * time.Hour
	maxCustomMatchers                = 200
	maxSynonyms                      = 50
	maxNameLen                       = 100
	maxPatternLen                    = 500
	sampleLen                        = 200
	cacheTTL                         = 2 * time.Second
	maxClassifyFields                = 500
	maxFieldsPerEvent                = 300
	maxDepth                         = 8
)

// Service owns matchers, fields, controls and PII access.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	box        *secret.Box
	log        *slog.Logger
	// Publish hands the notifications the listener makes (new PII fields) to subscribers.
	Publish func([]audit.Notification)
	// RecordHealth counts health occurrences (NEW_PII_FIELD issues of sources).
	RecordHealth func(context.Context, []health.Occurrence) error
	// InboxWindow is how far back the inbox looks (7 days by default).
	InboxWindow time.Duration

	cache  *cache
	access *accessCache
}

// New returns the service.
func New(d *db.DB, w *workspace.Service, box *secret.Box, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d, workspaces: w, box: box, log: log, InboxWindow: defaultInboxWindow}
	s.cache = newCache(s)
	s.access = &accessCache{m: map[string]accessEntry{}}
	return s
}

// hasPortal tells whether a workspace's plan includes the Privacy Portal.
func hasPortal(ctx context.Context, q *db.Queryer, workspaceID string) (bool, error) {
	var plan workspace.Plan
	if err := q.Get(ctx, &plan, `SELECT plan FROM workspaces WHERE id = ?`, workspaceID); err != nil {
		if db.IsNoRows(err) {
			return false, nil
		}
		return false, err
	}
	return plan.Details().Has(workspace.PrivacyPortal), nil
}

func errNotOnPlan() error {
	return apperr.New(apperr.Forbidden, "the workspace's plan does not include the Privacy Portal: it is part of the TEAM and BUSINESS plans")
}

// read returns the viewer's access to a workspace's Privacy Portal. Members, owners and admins
// see all of it; MINIMAL members none (fields come from every source, matchers and inbox alike),
// as lists that are empty: callers check a.CanReadAll.
func (s *Service) read(ctx context.Context, workspaceID string) (*workspace.Access, error) {
	return s.workspaces.Access(ctx, workspaceID)
}

// admin returns the viewer's access when they may change the Privacy Portal: owners and admins,
// on a plan that includes it.
func (s *Service) admin(ctx context.Context, workspaceID string) (*workspace.Access, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanAdminister() {
		return nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to change the Privacy Portal")
	}
	ok, err := hasPortal(ctx, s.db.Reader(), workspaceID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotOnPlan()
	}
	return a, nil
}

// CanChange tells whether the viewer may change the workspace's Privacy Portal (viewerCanUpdate).
func (s *Service) CanChange(ctx context.Context, workspaceID string) bool {
	_, err := s.admin(ctx, workspaceID)
	return err == nil
}

func actor(a *workspace.Access) *string {
	if a.Viewer == nil || a.Viewer.User.ID == "" {
		return nil
	}
	return &a.Viewer.User.ID
}
