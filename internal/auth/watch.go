package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// ErrRevoked is the cause of a watched context that ended because its credential was revoked.
var ErrRevoked = errors.New("credentials revoked")

// ErrExpired is the cause of a watched context that ended because its credential expired.
var ErrExpired = errors.New("credentials expired")

// watchers remembers the contexts of long-lived connections by the credential they authenticated
// with, so that revoking the credential ends them at once.
type watchers struct {
	mu   sync.Mutex
	byID map[string]map[*context.CancelCauseFunc]struct{}
}

func newWatchers() *watchers {
	return &watchers{byID: map[string]map[*context.CancelCauseFunc]struct{}{}}
}

// Watch returns a context derived from ctx that is cancelled (cause ErrRevoked) when the viewer's
// session or token is revoked. The websocket transport closes the connection with 4403 then. The
// registration goes away with ctx, without a goroutine.
func (s *Service) Watch(ctx context.Context, v *Viewer) context.Context {
	if v == nil {
		return ctx
	}
	ctx, cancel := context.WithCancelCause(ctx)
	key := v.CredentialID()
	w := s.watchers
	w.mu.Lock()
	set := w.byID[key]
	if set == nil {
		set = map[*context.CancelCauseFunc]struct{}{}
		w.byID[key] = set
	}
	set[&cancel] = struct{}{}
	w.mu.Unlock()
	if exp := v.expiresAt(); !exp.IsZero() {
		timer := time.AfterFunc(time.Until(exp), func() { cancel(ErrExpired) })
		context.AfterFunc(ctx, func() { timer.Stop() })
	}
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		delete(set, &cancel)
		if len(set) == 0 && w.byID[key] != nil && len(w.byID[key]) == 0 {
			delete(w.byID, key)
		}
		w.mu.Unlock()
	})
	return ctx
}

// Revoked ends every watched context of the given sessions or tokens. Callers run it after the
// transaction that revoked them has committed.
func (s *Service) Revoked(credentialIDs ...string) {
	s.RevokedElsewhere(credentialIDs...)
	if s.OnRevoked != nil && len(credentialIDs) > 0 {
		s.OnRevoked(credentialIDs)
	}
}

// RevokedElsewhere ends the watched contexts of credentials that another replica revoked.
func (s *Service) RevokedElsewhere(credentialIDs ...string) {
	w := s.watchers
	w.mu.Lock()
	var cancels []context.CancelCauseFunc
	for _, id := range credentialIDs {
		for c := range w.byID[id] {
			cancels = append(cancels, *c)
		}
	}
	w.mu.Unlock()
	for _, c := range cancels {
		c(ErrRevoked)
	}
}

// watching counts watched contexts, for tests.
func (s *Service) watching() int {
	s.watchers.mu.Lock()
	defer s.watchers.mu.Unlock()
	n := 0
	for _, set := range s.watchers.byID {
		n += len(set)
	}
	return n
}

// CheckWatched ends the watched contexts whose credential is revoked in the database: for a
// replica that may have missed revocations (its connection to the others was lost).
func (s *Service) CheckWatched(ctx context.Context) error {
	s.watchers.mu.Lock()
	ids := make([]string, 0, len(s.watchers.byID))
	for id := range s.watchers.byID {
		ids = append(ids, id)
	}
	s.watchers.mu.Unlock()
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		var revoked []string
		err := s.db.Select(ctx, &revoked, `SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND id IN (`+db.Placeholders(len(chunk))+`)
			UNION ALL SELECT id FROM access_tokens WHERE revoked_at IS NOT NULL AND id IN (`+db.Placeholders(len(chunk))+`)`,
			append(db.Args(chunk), db.Args(chunk)...)...)
		if err != nil {
			return err
		}
		s.RevokedElsewhere(revoked...)
	}
	return nil
}
