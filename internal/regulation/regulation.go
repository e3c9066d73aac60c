// Package regulation is end-user privacy: Segment's regulations, the requests a workspace makes
// when a person asks to be forgotten or no longer tracked. A regulation suppresses its subjects
// (their events are refused at ingest, on every source: an ingest.Stage), lifts a suppression, or
// deletes every stored trace of them, inside (each domain's forget.Step, in bounded batches) and
// at the connected destinations that support a deletion call.
//
// Subjects are kept in clear only while the request has work to do; once it has finished (or was
// canceled) they are kept only as salted hashes (HMAC-SHA-256 with a key derived from the server's
// encryption key, per workspace), which is enough to go on suppressing them.
//
// Rights: owners and admins create and cancel regulations; members read them.
package regulation

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/regulation/forget"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of regulations.
const Prefix = "reg"

// Audit event types of this package.
const (
	EventCreated  audit.Type = "REGULATION_CREATED"
	EventCanceled audit.Type = "REGULATION_CANCELED"
)

// Type is what a regulation does (Segment's regulation types).
type Type string

const (
	SuppressOnly       Type = "SUPPRESS_ONLY"
	Unsuppress         Type = "UNSUPPRESS"
	DeleteInternal     Type = "DELETE_INTERNAL"
	DeleteOnly         Type = "DELETE_ONLY"
	SuppressWithDelete Type = "SUPPRESS_WITH_DELETE"
)

var types = map[Type]struct{ suppress, deleteInternal, deleteDestinations bool }{
	SuppressOnly:       {suppress: true},
	Unsuppress:         {},
	DeleteInternal:     {deleteInternal: true},
	DeleteOnly:         {deleteInternal: true, deleteDestinations: true},
	SuppressWithDelete: {suppress: true, deleteInternal: true, deleteDestinations: true},
}

// Deletes tells whether the regulation deletes stored data (and so has work for the worker).
func (t Type) Deletes() bool { return types[t].deleteInternal }

// SubjectType is the kind of identifier a regulation's subjects are.
type SubjectType string

const (
	UserID      SubjectType = "USER_ID"
	AnonymousID SubjectType = "ANONYMOUS_ID"
	Email       SubjectType = "EMAIL"
)

// kind is the short name of a subject type in hashes.
func (t SubjectType) kind() string {
	switch t {
	case UserID:
		return "u"
	case AnonymousID:
		return "a"
	case Email:
		return "e"
	}
	return ""
}

// Status is where a regulation (or its deletion at one destination) is.
type Status string

const (
	Initialized    Status = "INITIALIZED"
	Running        Status = "RUNNING"
	Finished       Status = "FINISHED"
	Failed         Status = "FAILED"
	PartialSuccess Status = "PARTIAL_SUCCESS"
	NotSupported   Status = "NOT_SUPPORTED"
	Canceled       Status = "CANCELED"
)

// Regulation is one request.
type Regulation struct {
	ID              string      `db:"id"`
	WorkspaceID     string      `db:"workspace_id"`
	Type            Type        `db:"type"`
	SubjectType     SubjectType `db:"subject_type"`
	SubjectCount    int         `db:"subject_count"`
	Status          Status      `db:"status"`
	NotBefore       db.Time     `db:"not_before"`
	RowsDeleted     int64       `db:"rows_deleted"`
	DestinationsRaw string      `db:"destinations"`
	WarehousesRaw   string      `db:"warehouses"`
	Error           *string     `db:"error"`
	CreatedBy       *string     `db:"created_by"`
	CreatedByToken  *string     `db:"created_by_token"`
	CreatedAt       db.Time     `db:"created_at"`
	StartedAt       *db.Time    `db:"started_at"`
	ClaimedAt       *db.Time    `db:"claimed_at"` // when its worker last renewed its claim
	FinishedAt      *db.Time    `db:"finished_at"`
	CanceledAt      *db.Time    `db:"canceled_at"`
}

// DestinationStatus is a regulation's deletion at one connected destination.
type DestinationStatus struct {
	DestinationID string  `json:"destinationId"`
	Name          string  `json:"name"`
	Status        Status  `json:"status"`
	Attempts      int     `json:"attempts"`
	Error         *string `json:"error,omitempty"`
	UpdatedAt     db.Time `json:"updatedAt"`
	WorkspaceID   string  `json:"-"`
}

// Destinations are the statuses per destination.
func (r *Regulation) Destinations() []DestinationStatus {
	var out []DestinationStatus
	_ = json.Unmarshal([]byte(r.DestinationsRaw), &out)
	for i := range out {
		out[i].WorkspaceID = r.WorkspaceID
	}
	if out == nil {
		out = []DestinationStatus{}
	}
	return out
}

// WarehouseStatus is a regulation's deletion of the subjects' rows in one warehouse of the
// workspace.
type WarehouseStatus struct {
	DestinationID string  `json:"destinationId"`
	Name          string  `json:"name"`
	Status        Status  `json:"status"`
	Attempts      int     `json:"attempts"`
	RowsDeleted   int64   `json:"rowsDeleted"`
	Error         *string `json:"error,omitempty"`
	UpdatedAt     db.Time `json:"updatedAt"`
	WorkspaceID   string  `json:"-"`
}

// Warehouses are the statuses per warehouse.
func (r *Regulation) Warehouses() []WarehouseStatus {
	out := []WarehouseStatus{}
	_ = json.Unmarshal([]byte(r.WarehousesRaw), &out)
	for i := range out {
		out[i].WorkspaceID = r.WorkspaceID
	}
	return out
}

// Cancelable tells whether the regulation has not started yet.
func (r *Regulation) Cancelable() bool { return r.Status == Initialized }

// Options configure the service.
type Options struct {
	// MonthlyCap bounds the subjects of a workspace's regulations per calendar month (UTC).
	MonthlyCap int
	// Delay is how long a deletion waits before it starts: until then it can be canceled.
	Delay time.Duration
	// WarehouseRetry is the wait before the second try of a deletion in a warehouse, doubled
	// before the third.
	WarehouseRetry time.Duration
	Logger         *slog.Logger
}

// DefaultMonthlyCap is Segment's: 110,000 subjects per workspace and month.
const DefaultMonthlyCap = 110_000

// MaxSubjects is the most subjects one request may name.
const MaxSubjects = 5_000

// Service owns regulations and suppressions.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	key        []byte
	opts       Options
	log        *slog.Logger
	cache      *suppressionCache
	steps      []forget.Step
	// Destinations, when set, sends the deletion calls of a regulation to its workspace's
	// connected destinations.
	Destinations DestinationDeleter
	// Warehouses, when set, deletes the subjects' rows in the workspace's warehouses.
	Warehouses WarehouseDeleter
	// Gate, when set, tells Run whether to carry out regulations now: among replicas, only the
	// one that leads does.
	Gate func() bool
	wake chan struct{}
}

// New returns the service. serverKey is the server's encryption key, from which the key of the
// subjects' hashes is derived.
func New(d *db.DB, w *workspace.Service, serverKey []byte, o Options) *Service {
	if o.MonthlyCap <= 0 {
		o.MonthlyCap = DefaultMonthlyCap
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WarehouseRetry <= 0 {
		o.WarehouseRetry = 5 * time.Second
	}
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte("junction regulation subjects"))
	s := &Service{db: d, workspaces: w, key: m.Sum(nil), opts: o, log: o.Logger, wake: make(chan struct{}, 1)}
	s.cache = newSuppressionCache(s, 2*time.Second)
	return s
}

// Add appends the steps that delete a domain's rows about a regulation's subjects; they run in
// the order added.
func (s *Service) Add(steps ...forget.Step) { s.steps = append(s.steps, steps...) }

// workspaceKey is the key of a workspace's subject hashes, derived from the service's.
func (s *Service) workspaceKey(workspaceID string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(workspaceID))
	return m.Sum(nil)
}

// rawHash is the salted hash of a subject under a workspace's key: SHA-256 of the key, the kind
// and the value (the key is secret and of fixed length, and the hash is only compared for
// equality, so a plain keyed hash does what HMAC would at a fraction of its cost per event).
func rawHash(wsKey []byte, kind, value string) [32]byte {
	buf := make([]byte, 0, 64+len(value))
	buf = append(append(append(append(buf, wsKey...), kind...), 0), value...)
	return sha256.Sum256(buf)
}

// hash is the salted hash of a subject in a workspace, as stored.
func (s *Service) hash(workspaceID, kind, value string) string {
	h := rawHash(s.workspaceKey(workspaceID), kind, value)
	return hex.EncodeToString(h[:])
}

// normalise trims a subject, and lower-cases an email.
func normalise(t SubjectType, v string) string {
	v = strings.TrimSpace(v)
	if t == Email {
		v = strings.ToLower(v)
	}
	return v
}

// Input is a request to create a regulation.
type Input struct {
	WorkspaceID string
	Type        Type
	SubjectType SubjectType
	Subjects    []string
}

func (s *Service) requireAdmin(ctx context.Context, workspaceID string) (*workspace.Access, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if !a.CanAdminister() {
		return nil, apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to create or cancel regulations: owners and admins do")
	}
	return a, nil
}

// Create records a regulation; owners and admins. A suppression applies at once (the tracking API
// refuses the subjects' events from the commit on); a deletion waits for the worker.
func (s *Service) Create(ctx context.Context, in Input) (*Regulation, apperr.UserErrors, error) {
	if _, err := s.requireAdmin(ctx, in.WorkspaceID); err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	if _, ok := types[in.Type]; !ok {
		errs.Add("type", apperr.InvalidValue, "type must be SUPPRESS_ONLY, UNSUPPRESS, DELETE_INTERNAL, DELETE_ONLY or SUPPRESS_WITH_DELETE")
	}
	if in.SubjectType.kind() == "" {
		errs.Add("subjectType", apperr.InvalidValue, "subjectType must be USER_ID, ANONYMOUS_ID or EMAIL")
	}
	seen := map[string]bool{}
	var subjects []string
	for i, v := range in.Subjects {
		v = normalise(in.SubjectType, v)
		switch {
		case v == "":
			errs.Add("subjects", apperr.Required, "subjects[%d] is empty", i)
		case len(v) > 1024:
			errs.Add("subjects", apperr.TooLong, "subjects[%d] is longer than 1024 characters", i)
		case in.SubjectType == Email && !strings.Contains(v, "@"):
			errs.Add("subjects", apperr.InvalidValue, "subjects[%d] is not an email address", i)
		case !seen[v]:
			seen[v] = true
			subjects = append(subjects, v)
		}
	}
	switch {
	case len(in.Subjects) == 0:
		errs.Add("subjects", apperr.Required, "name at least one subject")
	case len(subjects) > MaxSubjects:
		errs.Add("subjects", apperr.TooLong, "a regulation names at most %d subjects, got %d", MaxSubjects, len(subjects))
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	now := db.Now()
	v := auth.ViewerFrom(ctx)
	userID, tokenID := v.ActorIDs()
	r := Regulation{ID: id.New(Prefix), WorkspaceID: in.WorkspaceID, Type: in.Type, SubjectType: in.SubjectType,
		SubjectCount: len(subjects), Status: Initialized, NotBefore: db.Time{Time: now.Add(s.opts.Delay)}, DestinationsRaw: "[]", WarehousesRaw: "[]",
		CreatedBy: &userID, CreatedAt: now}
	if tokenID != "" {
		r.CreatedByToken = &tokenID
	}
	if !in.Type.Deletes() {
		r.Status, r.FinishedAt, r.StartedAt = Finished, &now, &now
	}
	kind := in.SubjectType.kind()
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		if in.Type != Unsuppress {
			// The cap counts the subjects of the month's requests; lifting a suppression is free.
			var used int
			month := now.Time.Format("2006-01")
			if err := tx.Get(ctx, &used, `SELECT COALESCE(SUM(subject_count), 0) FROM regulations WHERE workspace_id = ?
				AND created_at >= ? AND type <> 'UNSUPPRESS' AND status <> 'CANCELED'`, in.WorkspaceID, month+"-01"); err != nil {
				return err
			}
			if used+len(subjects) > s.opts.MonthlyCap {
				errs.Add("subjects", apperr.NotAllowed, "the workspace may name %d subjects a month in regulations; %d are used this month",
					s.opts.MonthlyCap, used)
				return nil
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO regulations (id, workspace_id, type, subject_type, subject_count, status, not_before,
			rows_deleted, destinations, created_by, created_by_token, created_at, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, '[]', ?, ?, ?, ?, ?)`, r.ID, r.WorkspaceID, r.Type, r.SubjectType, r.SubjectCount, r.Status,
			r.NotBefore, r.CreatedBy, r.CreatedByToken, r.CreatedAt, r.StartedAt, r.FinishedAt); err != nil {
			return err
		}
		rows := make([][]any, len(subjects))
		hashes := make([]string, len(subjects))
		wsKey := s.workspaceKey(in.WorkspaceID)
		for i, v := range subjects {
			h := rawHash(wsKey, kind, v)
			hashes[i] = hex.EncodeToString(h[:])
			var clear any
			if in.Type.Deletes() {
				clear = v // the worker needs it; it goes once the request has finished
			}
			rows[i] = []any{r.ID, i, clear, hashes[i]}
		}
		for start := 0; start < len(rows); start += 500 {
			if err := tx.InsertRows(ctx, `INSERT INTO regulation_subjects (regulation_id, position, subject, subject_hash) VALUES `, 4,
				rows[start:min(start+500, len(rows))], ""); err != nil {
				return err
			}
		}
		if err := s.applySuppression(ctx, tx, r, hashes); err != nil {
			return err
		}
		return audit.Record(ctx, tx, r.WorkspaceID, EventCreated, "Regulation", r.ID,
			map[string]any{"type": r.Type, "subjectType": r.SubjectType, "subjectCount": r.SubjectCount})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	if in.Type.Deletes() {
		s.Wake()
	}
	return &r, nil, nil
}

// applySuppression adds or removes the suppressions of a regulation, in its transaction, and
// drops this process's cache of the workspace's set once it commits.
func (s *Service) applySuppression(ctx context.Context, tx *db.Tx, r Regulation, hashes []string) error {
	switch {
	case types[r.Type].suppress:
		rows := make([][]any, len(hashes))
		for i, h := range hashes {
			rows[i] = []any{r.WorkspaceID, r.SubjectType, h, r.ID, r.CreatedAt}
		}
		for start := 0; start < len(rows); start += 500 {
			if err := tx.InsertRows(ctx, `INSERT INTO suppressed_subjects (workspace_id, subject_type, subject_hash, regulation_id, created_at) VALUES `, 5,
				rows[start:min(start+500, len(rows))], ` ON CONFLICT (workspace_id, subject_type, subject_hash) DO NOTHING`); err != nil {
				return err
			}
		}
	case r.Type == Unsuppress:
		for start := 0; start < len(hashes); start += 500 {
			chunk := hashes[start:min(start+500, len(hashes))]
			if _, err := tx.Exec(ctx, `DELETE FROM suppressed_subjects WHERE workspace_id = ? AND subject_type = ? AND subject_hash IN (`+
				db.Placeholders(len(chunk))+`)`, append([]any{r.WorkspaceID, r.SubjectType}, db.Args(chunk)...)...); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	tx.AfterCommit(func() { s.cache.forget(r.WorkspaceID) })
	return nil
}

// Cancel withdraws a regulation that has not started; owners and admins. The suppressions it
// added are lifted, and its subjects are kept as hashes only.
func (s *Service) Cancel(ctx context.Context, regulationID string) (*Regulation, apperr.UserErrors, error) {
	r, a, err := s.load(ctx, s.db.Reader(), regulationID)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.requireAdmin(ctx, a.WorkspaceID); err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		res, err := tx.Exec(ctx, `UPDATE regulations SET status = 'CANCELED', canceled_at = ?, finished_at = ? WHERE id = ? AND status = 'INITIALIZED'`,
			now, now, r.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			errs.Add("regulationId", apperr.NotAllowed, "only a regulation that has not started can be canceled")
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE regulation_subjects SET subject = NULL WHERE regulation_id = ?`, r.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM suppressed_subjects WHERE regulation_id = ?`, r.ID); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.cache.forget(r.WorkspaceID) })
		r.Status, r.CanceledAt, r.FinishedAt = Canceled, &now, &now
		return audit.Record(ctx, tx, r.WorkspaceID, EventCanceled, "Regulation", r.ID,
			map[string]any{"status": audit.Change{From: Initialized, To: Canceled}})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return r, nil, nil
}

func errNotFound() error { return apperr.NotFoundf("regulation not found") }

// readWhere is the condition (on alias r) for the regulations the viewer sees in the workspace of
// a: all of them for members, owners and admins; none for MINIMAL members.
func readWhere(a *workspace.Access) (string, []any) {
	if !a.CanReadAll() {
		return "FALSE", nil
	}
	return "r.workspace_id = ?", []any{a.WorkspaceID}
}

func (s *Service) load(ctx context.Context, q *db.Queryer, regulationID string) (*Regulation, *workspace.Access, error) {
	a, err := s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM regulations WHERE id = ?`, regulationID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil, errNotFound()
		}
		return nil, nil, err
	}
	where, args := readWhere(a)
	var r Regulation
	err = q.Get(ctx, &r, `SELECT r.* FROM regulations r WHERE r.id = ? AND `+where, append([]any{regulationID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil, errNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return &r, a, nil
}

// Get returns a regulation the viewer sees, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, regulationID string) (*Regulation, error) {
	r, _, err := s.load(ctx, s.db.Reader(), regulationID)
	return r, err
}

// Filter narrows a listing.
type Filter struct {
	Types    []Type
	Statuses []Status
}

// List pages through a workspace's regulations, newest first; members, owners and admins.
func (s *Service) List(ctx context.Context, workspaceID string, f Filter, args relay.Args, count bool) (relay.Page[Regulation], error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return relay.Page[Regulation]{}, err
	}
	where, qargs := readWhere(a)
	if len(f.Types) > 0 {
		where += " AND r.type IN (" + db.Placeholders(len(f.Types)) + ")"
		qargs = append(qargs, db.Args(f.Types)...)
	}
	if len(f.Statuses) > 0 {
		where += " AND r.status IN (" + db.Placeholders(len(f.Statuses)) + ")"
		qargs = append(qargs, db.Args(f.Statuses)...)
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Regulation]{
		Select: "SELECT r.* FROM regulations r", Where: where, Args: qargs,
		SortColumn: "r.id", IDColumn: "r.id", Desc: true, Count: count,
		ID: func(r Regulation) string { return r.ID }, SortKey: func(r Regulation) any { return r.ID },
	}, args)
}

// CanChange tells whether the viewer may create and cancel regulations in a workspace.
func (s *Service) CanChange(ctx context.Context, workspaceID string) bool {
	a, err := s.workspaces.Access(ctx, workspaceID)
	return err == nil && a.CanAdminister()
}

// ByIDs loads the regulations with the given ids that the viewer sees in the workspace of a.
func (s *Service) ByIDs(ctx context.Context, a *workspace.Access, ids []string) (map[string]Regulation, error) {
	where, args := readWhere(a)
	var rows []Regulation
	if err := s.db.Select(ctx, &rows, `SELECT r.* FROM regulations r WHERE r.id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string]Regulation, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// SubjectsByRegulation loads the subjects still kept in clear of the regulations with the given
// ids that the viewer sees in the workspace of a; a finished or canceled regulation has none.
func (s *Service) SubjectsByRegulation(ctx context.Context, a *workspace.Access, ids []string) (map[string][]string, error) {
	where, args := readWhere(a)
	var rows []struct {
		RegulationID string `db:"regulation_id"`
		Subject      string `db:"subject"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT rs.regulation_id, rs.subject FROM regulation_subjects rs JOIN regulations r ON r.id = rs.regulation_id
		WHERE rs.regulation_id IN (`+db.Placeholders(len(ids))+`) AND rs.subject IS NOT NULL AND `+where+` ORDER BY rs.regulation_id, rs.position`,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(ids))
	for _, id := range ids {
		out[id] = []string{}
	}
	for _, r := range rows {
		out[r.RegulationID] = append(out[r.RegulationID], r.Subject)
	}
	return out, nil
}

// Overview sums up a workspace's regulations for its settings.
type Overview struct {
	SuppressedSubjects     int `db:"suppressed"`
	InitializedRegulations int `db:"initialized"`
	RunningRegulations     int `db:"running"`
	FinishedRegulations    int `db:"finished"`
	FailedRegulations      int `db:"failed"`
	SubjectsThisMonth      int `db:"month"`
	MonthlySubjectCap      int `db:"-"`
}

// Overview returns a workspace's overview; members, owners and admins (MINIMAL members see
// zeros, as they see no regulation).
func (s *Service) Overview(ctx context.Context, workspaceID string) (*Overview, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	o := Overview{MonthlySubjectCap: s.opts.MonthlyCap}
	if !a.CanReadAll() {
		return &o, nil
	}
	month := time.Now().UTC().Format("2006-01") + "-01"
	err = s.db.Get(ctx, &o, `SELECT
		(SELECT COUNT(*) FROM suppressed_subjects WHERE workspace_id = ?) AS suppressed,
		COALESCE(SUM(CASE WHEN status = 'INITIALIZED' THEN 1 ELSE 0 END), 0) AS initialized,
		COALESCE(SUM(CASE WHEN status = 'RUNNING' THEN 1 ELSE 0 END), 0) AS running,
		COALESCE(SUM(CASE WHEN status = 'FINISHED' THEN 1 ELSE 0 END), 0) AS finished,
		COALESCE(SUM(CASE WHEN status IN ('FAILED', 'PARTIAL_SUCCESS') THEN 1 ELSE 0 END), 0) AS failed,
		COALESCE(SUM(CASE WHEN created_at >= ? AND type <> 'UNSUPPRESS' AND status <> 'CANCELED' THEN subject_count ELSE 0 END), 0) AS month
		FROM regulations WHERE workspace_id = ?`, workspaceID, month, workspaceID)
	return &o, err
}
