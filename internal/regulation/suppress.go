package regulation

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/ttlcache"
)

// suppressionSet is one workspace's suppressed subjects: hashes by kind ("u", "a", "e"), and the
// workspace's key to hash an event's identifiers with.
type suppressionSet struct {
	key    []byte
	hashes map[string]map[[32]byte]struct{}
}

func (s *suppressionSet) empty() bool { return len(s.hashes) == 0 }

// has tells whether a subject of a kind is suppressed.
func (s *suppressionSet) has(kind, value string) bool {
	m := s.hashes[kind]
	if m == nil {
		return false
	}
	_, ok := m[rawHash(s.key, kind, value)]
	return ok
}

func (s *suppressionSet) add(kind string, h [32]byte) {
	if s.hashes[kind] == nil {
		s.hashes[kind] = map[[32]byte]struct{}{}
	}
	s.hashes[kind][h] = struct{}{}
}

// suppressionCache keeps each workspace's set in memory (internal/ttlcache), so that the Stage
// costs a map lookup (and, for a workspace that suppresses someone, a hash of the event's
// identifiers). Changes made through this process drop the workspace's set at once; the TTL
// bounds how long another replica's change takes to arrive.
type suppressionCache struct {
	s     *Service
	cache *ttlcache.Cache[*suppressionSet]
}

func newSuppressionCache(s *Service, ttl time.Duration) *suppressionCache {
	c := &suppressionCache{s: s}
	c.cache = ttlcache.New(ttl, c.read)
	return c
}

func (c *suppressionCache) lookup(ctx context.Context, workspaceID string) (*suppressionSet, error) {
	return c.cache.Get(ctx, workspaceID)
}

func (c *suppressionCache) read(ctx context.Context, workspaceID string) (*suppressionSet, error) {
	var rows []struct {
		Type SubjectType `db:"subject_type"`
		Hash string      `db:"subject_hash"`
	}
	if err := c.s.db.Select(ctx, &rows, `SELECT subject_type, subject_hash FROM suppressed_subjects WHERE workspace_id = ?`, workspaceID); err != nil {
		return nil, err
	}
	set := &suppressionSet{key: c.s.workspaceKey(workspaceID), hashes: map[string]map[[32]byte]struct{}{}}
	for _, r := range rows {
		var h [32]byte
		if b, err := hex.DecodeString(r.Hash); err == nil && len(b) == len(h) {
			copy(h[:], b)
			set.add(r.Type.kind(), h)
		}
	}
	return set, nil
}

func (c *suppressionCache) forget(workspaceID string) { c.cache.Forget(workspaceID) }

// Stage returns the ingest stage that refuses the events of suppressed subjects: they are stored
// as discarded (reason SUPPRESSED) without their payload or identifiers, on every source of the
// workspace. It goes before every other stage, so that none of them keeps anything of the event.
func (s *Service) Stage() ingest.Stage { return stage{s} }

type stage struct{ s *Service }

func (st stage) Process(ctx context.Context, b *ingest.Batch) error {
	set, err := st.s.cache.lookup(ctx, b.WorkspaceID)
	if err != nil || set.empty() {
		return err
	}
	for _, e := range b.Events {
		if e.Status == ingest.Discarded || !suppressed(set, e) {
			continue
		}
		e.Status, e.Reason, e.Message = ingest.Discarded, ingest.Suppressed, "the event's subject is suppressed by a regulation"
		e.Payload, e.UserID, e.AnonymousID, e.Violations, e.Notes = []byte("{}"), nil, nil, nil, nil
	}
	return nil
}

// suppressed tells whether an event is about a suppressed subject: its userId, its anonymousId,
// or an email address in its traits (or context.traits, or properties).
func suppressed(set *suppressionSet, e *ingest.Event) bool {
	if e.UserID != nil && set.has("u", *e.UserID) {
		return true
	}
	if e.AnonymousID != nil && set.has("a", *e.AnonymousID) {
		return true
	}
	if set.hashes["e"] == nil {
		return false
	}
	for _, email := range emailsOf(e) {
		if set.has("e", email) {
			return true
		}
	}
	return false
}

// emailsOf returns the email addresses an event carries, lower-case.
func emailsOf(e *ingest.Event) []string {
	var out []string
	if e.UserID != nil && strings.Contains(*e.UserID, "@") {
		out = append(out, normalise(Email, *e.UserID))
	}
	doc := e.Doc()
	for _, path := range [][]string{{"traits", "email"}, {"context", "traits", "email"}, {"properties", "email"}} {
		var v any = doc
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if str, ok := v.(string); ok && str != "" {
			out = append(out, normalise(Email, str))
		}
	}
	return out
}

// SuppressedSubject is one subject whose events the workspace refuses.
type SuppressedSubject struct {
	WorkspaceID  string      `db:"workspace_id"`
	SubjectType  SubjectType `db:"subject_type"`
	SubjectHash  string      `db:"subject_hash"`
	RegulationID string      `db:"regulation_id"`
	CreatedAt    db.Time     `db:"created_at"`
}

// SuppressedFilter narrows the list of suppressed subjects.
type SuppressedFilter struct {
	SubjectType *SubjectType
	// Subject, with SubjectType, finds one identifier (it is hashed to be looked up).
	Subject *string
}

// ListSuppressed pages through a workspace's suppressed subjects, newest first; members, owners
// and admins.
func (s *Service) ListSuppressed(ctx context.Context, workspaceID string, f SuppressedFilter, args relay.Args, count bool) (relay.Page[SuppressedSubject], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[SuppressedSubject]{}, err
	}
	where, qargs := readWhere(a)
	if f.SubjectType != nil {
		where += " AND r.subject_type = ?"
		qargs = append(qargs, *f.SubjectType)
		if f.Subject != nil {
			where += " AND r.subject_hash = ?"
			qargs = append(qargs, s.hash(workspaceID, f.SubjectType.kind(), normalise(*f.SubjectType, *f.Subject)))
		}
	} else if f.Subject != nil {
		var ors []string
		for _, t := range []SubjectType{UserID, AnonymousID, Email} {
			ors = append(ors, "(r.subject_type = ? AND r.subject_hash = ?)")
			qargs = append(qargs, t, s.hash(workspaceID, t.kind(), normalise(t, *f.Subject)))
		}
		where += " AND (" + strings.Join(ors, " OR ") + ")"
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[SuppressedSubject]{
		Select: "SELECT r.* FROM suppressed_subjects r", Where: where, Args: qargs,
		SortColumn: "r.created_at", IDColumn: "r.subject_hash", Desc: true, Count: count,
		ID:      func(x SuppressedSubject) string { return x.SubjectHash },
		SortKey: func(x SuppressedSubject) any { return x.CreatedAt },
	}, args)
}
