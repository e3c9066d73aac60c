package auth

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/obs"
)

// Middleware resolves the Authorization header of each request to the viewer in its context. A
// header that names no live session or token is answered 401 with an UNAUTHENTICATED GraphQL
// error, rather than treated as anonymous, so that a client learns at once that its token died.
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.Unauthenticated {
				obs.Logger(r.Context()).Error("authentication failed", "error", err.Error())
				e = apperr.New(apperr.Internal, "internal error")
			}
			status := http.StatusUnauthorized
			if e.Code == apperr.Internal {
				status = http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("WWW-Authenticate", `Bearer realm="junction"`)
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
				"message": e.Message, "extensions": map[string]any{"code": string(e.Code)}}}})
			return
		}
		if v != nil {
			r = r.WithContext(WithViewer(r.Context(), v))
		}
		next.ServeHTTP(w, r)
	})
}

// InitFunc authenticates a websocket from its connection_init payload ({"Authorization": "Bearer
// ..."} or {"authToken": "..."}), falling back to the upgrade request's Authorization header. The
// context it returns ends when the credential is revoked, which closes the socket with 4403.
// Rejected credentials are an error (4403).
func (s *Service) InitFunc(ctx context.Context, payload map[string]any) (context.Context, error) {
	v, err := s.AuthenticateInitPayload(ctx, payload)
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = ViewerFrom(ctx) // from the upgrade request's header, if any
	}
	if v == nil {
		return ctx, nil
	}
	return WithViewer(s.Watch(ctx, v), v), nil
}

// Identity names who a websocket is for, for the cap on websockets per user: the user of a
// session, or the access token; "" for an anonymous connection (capped per address only).
func (s *Service) Identity(ctx context.Context) string {
	v := ViewerFrom(ctx)
	switch {
	case v == nil:
		return ""
	case v.Token != nil:
		return "token:" + v.Token.ID
	default:
		return "user:" + v.User.ID
	}
}
