package regulation

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/obs"
)

// Handler is the HTTP API of regulations, for programs (Segment's Public API in spirit), behind
// the same authentication as GraphQL (an access token, or a session):
//
//	POST   /v1/regulations       {"regulationType", "subjectType", "subjectIds", "workspaceId"}
//	GET    /v1/regulations/{id}
//	DELETE /v1/regulations/{id}  cancels it while it has not started
//
// workspaceId may be left out with an access token: it is the token's workspace. Answers are
// {"data": {"regulation": ...}} or {"errors": [{"message", "code", "field"}]}.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/regulations", s.httpCreate)
	mux.HandleFunc("GET /v1/regulations/{id}", s.httpGet)
	mux.HandleFunc("DELETE /v1/regulations/{id}", s.httpCancel)
	return mux
}

// View is a regulation as the HTTP API shows it.
type View struct {
	ID           string              `json:"id"`
	WorkspaceID  string              `json:"workspaceId"`
	Type         Type                `json:"regulationType"`
	SubjectType  SubjectType         `json:"subjectType"`
	SubjectCount int                 `json:"subjectCount"`
	Status       Status              `json:"status"`
	Destinations []DestinationStatus `json:"destinations"`
	Warehouses   []WarehouseStatus   `json:"warehouses"`
	RowsDeleted  int64               `json:"rowsDeleted"`
	NotBefore    db.Time             `json:"notBefore"`
	CreatedAt    db.Time             `json:"createdAt"`
	StartedAt    *db.Time            `json:"startedAt"`
	FinishedAt   *db.Time            `json:"finishedAt"`
	CanceledAt   *db.Time            `json:"canceledAt"`
}

func view(r *Regulation) View {
	return View{ID: r.ID, WorkspaceID: r.WorkspaceID, Type: r.Type, SubjectType: r.SubjectType, SubjectCount: r.SubjectCount,
		Status: r.Status, Destinations: r.Destinations(), Warehouses: r.Warehouses(), RowsDeleted: r.RowsDeleted, NotBefore: r.NotBefore, CreatedAt: r.CreatedAt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, CanceledAt: r.CanceledAt}
}

func (s *Service) httpCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		WorkspaceID    string      `json:"workspaceId"`
		RegulationType Type        `json:"regulationType"`
		SubjectType    SubjectType `json:"subjectType"`
		SubjectIDs     []string    `json:"subjectIds"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil {
		writeErr(w, r, apperr.New(apperr.BadUserInput, "the body must be a JSON object with regulationType, subjectType and subjectIds"))
		return
	}
	if body.WorkspaceID == "" {
		if v := auth.ViewerFrom(r.Context()); v != nil && v.Token != nil {
			body.WorkspaceID = v.Token.WorkspaceID
		}
	}
	if body.WorkspaceID == "" {
		if _, err := auth.RequireViewer(r.Context()); err != nil {
			writeErr(w, r, err)
			return
		}
		writeUserErrors(w, apperr.UserErrors{{Field: "workspaceId", Code: apperr.Required, Message: "workspaceId is required with a session"}})
		return
	}
	reg, errs, err := s.Create(r.Context(), Input{WorkspaceID: body.WorkspaceID, Type: body.RegulationType, SubjectType: body.SubjectType, Subjects: body.SubjectIDs})
	switch {
	case err != nil:
		writeErr(w, r, err)
	case len(errs) > 0:
		for i := range errs {
			if errs[i].Field == "type" {
				errs[i].Field = "regulationType"
			} else if errs[i].Field == "subjects" {
				errs[i].Field = "subjectIds"
			}
		}
		writeUserErrors(w, errs)
	default:
		writeData(w, http.StatusCreated, reg)
	}
}

func (s *Service) httpGet(w http.ResponseWriter, r *http.Request) {
	reg, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, r, err)
		return
	}
	writeData(w, http.StatusOK, reg)
}

func (s *Service) httpCancel(w http.ResponseWriter, r *http.Request) {
	reg, errs, err := s.Cancel(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeErr(w, r, err)
	case len(errs) > 0:
		writeJSON(w, http.StatusConflict, map[string]any{"errors": userErrorsJSON(errs)})
	default:
		writeData(w, http.StatusOK, reg)
	}
}

func writeData(w http.ResponseWriter, status int, r *Regulation) {
	writeJSON(w, status, map[string]any{"data": map[string]any{"regulation": view(r)}})
}

func writeUserErrors(w http.ResponseWriter, errs apperr.UserErrors) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": userErrorsJSON(errs)})
}

func userErrorsJSON(errs apperr.UserErrors) []map[string]any {
	out := make([]map[string]any, len(errs))
	for i, e := range errs {
		out[i] = map[string]any{"field": e.Field, "message": e.Message, "code": e.Code}
	}
	return out
}

var statuses = map[apperr.Code]int{
	apperr.Unauthenticated: http.StatusUnauthorized, apperr.Forbidden: http.StatusForbidden, apperr.NotFound: http.StatusNotFound,
	apperr.BadUserInput: http.StatusBadRequest, apperr.Conflict: http.StatusConflict, apperr.RateLimited: http.StatusTooManyRequests,
}

func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := apperr.As(err)
	if !ok || statuses[e.Code] == 0 {
		if !errors.Is(err, r.Context().Err()) {
			obs.Logger(r.Context()).Error("regulations API failed", "error", err.Error())
		}
		e = apperr.New(apperr.Internal, "internal error")
	}
	status := statuses[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"errors": []any{map[string]any{"message": e.Message, "code": string(e.Code)}}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
