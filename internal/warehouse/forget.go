package warehouse

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// Ref names one warehouse of a workspace.
type Ref struct {
	ID   string `db:"id"`
	Name string `db:"name"`
}

// Of lists the warehouses of a workspace, enabled or not (a disabled warehouse still holds what
// it was loaded with), for a regulation's deletion; no viewer is checked.
func (s *Service) Of(ctx context.Context, workspaceID string) ([]Ref, error) {
	slugs := s.slugs()
	var out []Ref
	err := s.db.Select(ctx, &out, `SELECT id, name FROM destinations WHERE workspace_id = ? AND catalog_slug IN (`+
		db.Placeholders(len(slugs))+`) ORDER BY id`, append([]any{workspaceID}, db.Args(slugs)...)...)
	return out, err
}

// Forget deletes the subjects' rows from one warehouse, in every schema its sources were loaded
// into, in one transaction of the warehouse, and returns how many rows went: the rows of every
// table whose user_id or anonymous_id is one of theirs (for emails: whose user_id, email or
// context_traits_email is one, in any case), and the users rows of their user ids (for anonymous
// ids, of the users an identify tied to one; for emails, whose id or email is one).
//
// It first locks the warehouse's cursor row, as a sync does: a sync under way, which may have
// read the subjects' events before the event log lost them, commits before the deletion looks,
// and a later sync reads the event log without them. So nothing of theirs is loaded afterwards.
// The error it returns is masked of the warehouse's password and of the subjects.
func (s *Service) Forget(ctx context.Context, destinationID string, subjects forget.Subjects) (int64, error) {
	l := s.lock(destinationID)
	l.Lock()
	defer l.Unlock()
	d, err := s.dests.Internal(ctx, destinationID)
	if db.IsNoRows(err) {
		return 0, &Failure{Type: ConnectionFailed, Err: errors.New("the warehouse was deleted from the workspace during the deletion: its rows must be deleted there by hand")}
	}
	if err != nil {
		return 0, err
	}
	secrets, err := s.dests.Secrets(ctx, d)
	if err != nil {
		return 0, err
	}
	c, _, _ := config(d, secrets)
	var schemas []string
	if err := s.db.Select(ctx, &schemas, `SELECT schema_name FROM warehouse_schemas WHERE destination_id = ? ORDER BY schema_name`, destinationID); err != nil {
		return 0, err
	}
	if len(schemas) == 0 {
		// Never loaded. A first sync under way records its schemas before it reads events, so
		// it reads them after the event log lost the subjects'.
		return 0, nil
	}
	n, err := forgetIn(ctx, s, c, destinationID, schemas, subjects)
	if err != nil {
		msg := mask(err.Error(), c.Password)
		for _, v := range subjects.All() {
			msg = strings.ReplaceAll(msg, v, "[subject]")
		}
		f := &Failure{Type: classifyType(err), Err: maskedError(msg)}
		s.recordForgetHealth(ctx, d, f)
		return 0, f
	}
	return n, nil
}

// recordForgetHealth counts a failed deletion towards the warehouse's health issues, as a failed
// sync counts: a warehouse that cannot be reached to delete cannot be reached to load either. A
// sync that works resolves it.
func (s *Service) recordForgetHealth(ctx context.Context, d *destination.Destination, f *Failure) {
	if s.health == nil {
		return
	}
	occ := health.Occurrence{WorkspaceID: d.WorkspaceID, TargetKind: health.WarehouseTarget, TargetID: d.ID, ErrorType: f.Type,
		Message: "deleting a regulation's subjects failed: " + f.Error(), N: 1, At: time.Now()}
	if err := s.health.Record(ctx, []health.Occurrence{occ}); err != nil {
		s.opt.Logger.Error("warehouse: recording health failed", "destination", d.ID, "error", err.Error())
	}
}

type maskedError string

func (e maskedError) Error() string { return string(e) }

func classifyType(err error) string {
	if f, ok := classify(err).(*Failure); ok {
		return f.Type
	}
	return LoadFailed
}

func forgetIn(ctx context.Context, s *Service, c Conn, destinationID string, schemas []string, subjects forget.Subjects) (int64, error) {
	conn, err := connect(ctx, c, s.egress)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, _, err := begin(ctx, conn, c.SchemaPrefix, destinationID)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var total int64
	for _, schema := range schemas {
		tables, err := columns(ctx, tx, schema)
		if err != nil {
			return 0, err
		}
		names := make([]string, 0, len(tables))
		for t := range tables {
			names = append(names, t)
		}
		// users first: for anonymous ids it is found through identifies, which go after.
		sort.Slice(names, func(i, j int) bool {
			if (names[i] == "users") != (names[j] == "users") {
				return names[i] == "users"
			}
			return names[i] < names[j]
		})
		for _, t := range names {
			where, args := subjectWhere(schema, t, tables, subjects)
			if where == "" {
				continue
			}
			tag, err := tx.Exec(ctx, `DELETE FROM `+qualified(schema, t)+` WHERE `+where, args...)
			if err != nil {
				return 0, classify(err)
			}
			total += tag.RowsAffected()
		}
	}
	return total, classify0(tx.Commit(ctx))
}

// subjectWhere is the condition on a table's rows that are the subjects', with its arguments; ""
// when the table has no column that can name them.
func subjectWhere(schema, table string, tables map[string]map[string]ColType, subj forget.Subjects) (string, []any) {
	cols := tables[table]
	text := func(c string) bool { return cols[c] == Text }
	var conds []string
	var args []any
	in := func(expr string, values []string) {
		if len(values) == 0 {
			return
		}
		args = append(args, values)
		conds = append(conds, expr+` = ANY($`+strconv.Itoa(len(args))+`::text[])`)
	}
	lower := make([]string, len(subj.Emails))
	for i, e := range subj.Emails {
		lower[i] = strings.ToLower(e)
	}
	if table == "users" {
		if text("id") {
			in("id", subj.UserIDs)
			in("lower(id)", lower)
			if ids := tables["identifies"]; len(subj.AnonymousIDs) > 0 && ids["user_id"] == Text && ids["anonymous_id"] == Text {
				args = append(args, subj.AnonymousIDs)
				conds = append(conds, `id IN (SELECT user_id FROM `+qualified(schema, "identifies")+` WHERE anonymous_id = ANY($`+strconv.Itoa(len(args))+`::text[]))`)
			}
		}
		if text("email") {
			in("lower(email)", lower)
		}
	} else {
		if text("user_id") {
			in("user_id", subj.UserIDs)
			in("lower(user_id)", lower)
		}
		if text("anonymous_id") {
			in("anonymous_id", subj.AnonymousIDs)
		}
		for _, c := range []string{"email", "context_traits_email"} {
			if text(c) {
				in("lower("+pgx.Identifier{c}.Sanitize()+")", lower)
			}
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return strings.Join(conds, " OR "), args
}
