package engage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// ProfileAPIPattern is the route of the Profile API: Segment's paths, with the workspace's id as
// the space.
const ProfileAPIPattern = "GET /v1/spaces/{space}/collections/users/profiles/{externalID}/{resource}"

// Authenticator resolves an Authorization header to the viewer (internal/auth).
type Authenticator interface {
	Authenticate(ctx context.Context, header string) (*auth.Viewer, error)
}

// EventLog pages through the event log (ingest.Queries).
type EventLog interface {
	EventsIn(ctx context.Context, a *workspace.Access, ids string, idArgs []any, f ingest.EventFilter, args relay.Args, count bool) (relay.Page[ingest.StoredEvent], error)
}

// ProfileAPI is Segment's Profile API for programs: a profile's traits, events, external ids and
// metadata, looked up by `type:value` (or `segment_id:<profile id>`), with an access token as the
// user name of Basic authentication (as Segment's) or as a Bearer token. The token's rights apply:
// members, owners and admins read, on a plan with Engage.
type ProfileAPI struct {
	s      *Service
	auth   Authenticator
	events EventLog
}

// NewProfileAPI returns the Profile API's handler (mount it at ProfileAPIPattern).
func (s *Service) NewProfileAPI(a Authenticator, events EventLog) *ProfileAPI {
	return &ProfileAPI{s: s, auth: a, events: events}
}

// Page sizes, as Segment's.
const (
	traitsDefault, traitsMax = 10, 200
	idsDefault, idsMax       = 25, 100
	eventsDefault, eventsMax = 10, 100
)

type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func (h *ProfileAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := h.serve(r)
	if err != nil {
		e, ok := err.(*apiError)
		if !ok {
			e = fromAppErr(r.Context(), err)
		}
		writeJSON(w, e.status, map[string]any{"error": map[string]any{"code": e.code, "message": e.message}})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func fromAppErr(ctx context.Context, err error) *apiError {
	e, ok := apperr.As(err)
	if !ok {
		obs.Logger(ctx).Error("profile API failed", "error", err.Error())
		return &apiError{http.StatusInternalServerError, "internal_error", "internal error"}
	}
	switch e.Code {
	case apperr.Unauthenticated:
		return &apiError{http.StatusUnauthorized, "unauthorized", e.Message}
	case apperr.Forbidden:
		return &apiError{http.StatusForbidden, "forbidden", e.Message}
	case apperr.NotFound:
		return &apiError{http.StatusNotFound, "not_found", e.Message}
	case apperr.BadUserInput:
		return &apiError{http.StatusBadRequest, "bad_request", e.Message}
	}
	obs.Logger(ctx).Error("profile API failed", "error", err.Error())
	return &apiError{http.StatusInternalServerError, "internal_error", "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// credentials turns Basic authentication with the token as user name into a Bearer header.
func credentials(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		return "Bearer " + user
	}
	return r.Header.Get("Authorization")
}

func (h *ProfileAPI) serve(r *http.Request) (any, error) {
	header := credentials(r)
	if strings.TrimSpace(header) == "" {
		return nil, &apiError{http.StatusUnauthorized, "unauthorized", "an access token is required (Basic authentication with the token as user name, or Bearer)"}
	}
	v, err := h.auth.Authenticate(r.Context(), header)
	if err != nil {
		return nil, err
	}
	ctx := workspace.WithAccessCache(auth.WithViewer(r.Context(), v))
	a, err := h.s.readAccess(ctx, r.PathValue("space"))
	if err != nil {
		return nil, err
	}
	typ, value, ok := strings.Cut(r.PathValue("externalID"), ":")
	if !ok || typ == "" || value == "" {
		return nil, &apiError{http.StatusBadRequest, "bad_request", "the profile is named type:value, such as user_id:u1 or email:ann@example.com"}
	}
	var p *Profile
	if typ == "segment_id" {
		p, err = h.s.Get(ctx, value)
		if p != nil && p.WorkspaceID != a.WorkspaceID {
			p = nil
		}
	} else {
		p, err = h.s.Lookup(ctx, a.WorkspaceID, typ, value)
	}
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, &apiError{http.StatusNotFound, "not_found", "no profile has " + r.PathValue("externalID")}
	}
	q := r.URL.Query()
	limit := func(def, most int) (int, error) {
		s := q.Get("limit")
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > most {
			return 0, &apiError{http.StatusBadRequest, "bad_request", "limit is between 1 and " + strconv.Itoa(most)}
		}
		return n, nil
	}
	switch r.PathValue("resource") {
	case "traits":
		n, err := limit(traitsDefault, traitsMax)
		if err != nil {
			return nil, err
		}
		return h.traits(ctx, r, a, p, n)
	case "external_ids":
		n, err := limit(idsDefault, idsMax)
		if err != nil {
			return nil, err
		}
		return h.externalIDs(ctx, r, a, p, n)
	case "events":
		n, err := limit(eventsDefault, eventsMax)
		if err != nil {
			return nil, err
		}
		return h.eventList(ctx, r, a, p, n)
	case "metadata":
		return h.metadata(ctx, a, p)
	}
	return nil, &apiError{http.StatusNotFound, "not_found", "not a resource of a profile: traits, events, external_ids or metadata"}
}

// cursor is Segment's: the page's URL, whether there is more, and the `next` to pass for it.
func cursor(r *http.Request, more bool, next string) map[string]any {
	if !more {
		next = ""
	}
	return map[string]any{"url": r.URL.RequestURI(), "has_more": more, "next": next}
}

func encodeNext(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x00")))
}

func decodeNext(s string, n int) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.Split(string(b), "\x00")
	if err != nil || len(parts) != n {
		return nil, &apiError{http.StatusBadRequest, "bad_request", "next is not a cursor of this list"}
	}
	return parts, nil
}

func includeList(r *http.Request) []string {
	var out []string
	for _, x := range strings.Split(r.URL.Query().Get("include"), ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (h *ProfileAPI) traits(ctx context.Context, r *http.Request, a *workspace.Access, p *Profile, limit int) (any, error) {
	after, err := decodeNext(r.URL.Query().Get("next"), 1)
	if err != nil {
		return nil, err
	}
	where, args := "profile_id = ? AND workspace_id = ?", []any{p.ID, a.WorkspaceID}
	if after != nil {
		where += " AND name > ?"
		args = append(args, after[0])
	}
	if inc := includeList(r); len(inc) > 0 {
		where += " AND name IN (" + db.Placeholders(len(inc)) + ")"
		args = append(args, db.Args(inc)...)
	}
	var rows []Trait
	if err := h.s.db.Select(ctx, &rows, `SELECT * FROM profile_traits WHERE `+where+` ORDER BY name LIMIT ?`, append(args, limit+1)...); err != nil {
		return nil, err
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	traits := map[string]json.RawMessage{}
	next := ""
	for _, t := range rows {
		traits[t.Name] = json.RawMessage(t.Value)
		next = encodeNext(t.Name)
	}
	return map[string]any{"traits": traits, "cursor": cursor(r, more, next)}, nil
}

func (h *ProfileAPI) externalIDs(ctx context.Context, r *http.Request, a *workspace.Access, p *Profile, limit int) (any, error) {
	after, err := decodeNext(r.URL.Query().Get("next"), 2)
	if err != nil {
		return nil, err
	}
	where, args := "profile_id = ? AND workspace_id = ?", []any{p.ID, a.WorkspaceID}
	if after != nil {
		where += " AND (type > ? OR (type = ? AND value > ?))"
		args = append(args, after[0], after[0], after[1])
	}
	if inc := includeList(r); len(inc) > 0 {
		where += " AND type IN (" + db.Placeholders(len(inc)) + ")"
		args = append(args, db.Args(inc)...)
	}
	var rows []Identifier
	if err := h.s.db.Select(ctx, &rows, `SELECT * FROM profile_identifiers WHERE `+where+` ORDER BY type, value LIMIT ?`, append(args, limit+1)...); err != nil {
		return nil, err
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	data := make([]map[string]any, 0, len(rows))
	next := ""
	for _, x := range rows {
		var src any
		if x.SourceID != nil {
			src = *x.SourceID
		}
		data = append(data, map[string]any{"id": x.Value, "type": x.Type, "source_id": src, "collection": "users",
			"created_at": x.FirstSeenAt, "encoding": "none"})
		next = encodeNext(x.Type, x.Value)
	}
	return map[string]any{"data": data, "cursor": cursor(r, more, next)}, nil
}

func (h *ProfileAPI) eventList(ctx context.Context, r *http.Request, a *workspace.Access, p *Profile, limit int) (any, error) {
	_, ids, idArgs, err := h.s.EventIDs(ctx, p)
	if err != nil {
		return nil, err
	}
	args := relay.Args{First: &limit}
	if next := r.URL.Query().Get("next"); next != "" {
		args.After = &next
	}
	page, err := h.events.EventsIn(ctx, a, ids, idArgs, ingest.EventFilter{}, args, false)
	if err != nil {
		if e, ok := apperr.As(err); ok && e.Code == apperr.BadUserInput {
			return nil, &apiError{http.StatusBadRequest, "bad_request", "next is not a cursor of this list"}
		}
		return nil, err
	}
	data := make([]json.RawMessage, 0, len(page.Edges))
	for _, e := range page.Edges {
		data = append(data, json.RawMessage(e.Node.Payload))
	}
	next := ""
	if page.PageInfo.EndCursor != nil {
		next = *page.PageInfo.EndCursor
	}
	return map[string]any{"data": data, "cursor": cursor(r, page.PageInfo.HasNextPage, next)}, nil
}

func (h *ProfileAPI) metadata(ctx context.Context, a *workspace.Access, p *Profile) (any, error) {
	var span struct {
		First *string `db:"first"`
		Last  *string `db:"last"`
	}
	if err := h.s.db.Get(ctx, &span, `SELECT MIN(pe.event_id) AS first, MAX(pe.event_id) AS last FROM profile_events pe WHERE pe.profile_id IN
		(SELECT x.id FROM profiles x WHERE (x.id = ? OR x.merged_into = ?) AND x.workspace_id = ?)`, p.ID, p.ID, a.WorkspaceID); err != nil {
		return nil, err
	}
	return map[string]any{"metadata": map[string]any{"segment_id": p.ID, "created_at": p.CreatedAt, "updated_at": p.UpdatedAt,
		"expires_at": nil, "first_message_id": span.First, "last_message_id": span.Last}}, nil
}
