// Package audit is the audit trail: every change to a workspace records who made it (a user, or an
// access token on its creator's behalf), what kind of change, to which object, when, and what
// changed, with secrets left out. Records are written in the same transaction as the change.
package audit

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/reap"
	"github.com/junctioncdp/junction/internal/relay"
)

// Prefix is the id prefix of audit events.
const Prefix = "aud"

// Type is a kind of change, as in the schema's AuditEventType.
type Type string

// Event is one recorded change.
type Event struct {
	ID           string  `db:"id"`
	WorkspaceID  string  `db:"workspace_id"`
	Type         Type    `db:"type"`
	ActorUserID  *string `db:"actor_user_id"`
	ActorTokenID *string `db:"actor_token_id"`
	ResourceType string  `db:"resource_type"`
	ResourceID   string  `db:"resource_id"`
	Changes      *string `db:"changes"` // JSON
	CreatedAt    db.Time `db:"created_at"`
}

// Change is a field's value before and after.
type Change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// Record writes an event within tx. The actor is the viewer of ctx. changes is marshalled to JSON:
// pass only fields that are not secret.
func Record(ctx context.Context, tx *db.Tx, workspaceID string, typ Type, resourceType, resourceID string, changes any) error {
	v := auth.ViewerFrom(ctx)
	if v == nil {
		return errors.New("audit: no viewer in context")
	}
	userID, tokenID := v.ActorIDs()
	e := Event{ID: id.New(Prefix), WorkspaceID: workspaceID, Type: typ, ActorUserID: &userID,
		ResourceType: resourceType, ResourceID: resourceID, CreatedAt: db.Now()}
	if tokenID != "" {
		e.ActorTokenID = &tokenID
	}
	if changes != nil {
		b, err := json.Marshal(changes)
		if err != nil {
			return err
		}
		s := string(b)
		e.Changes = &s
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_events (id, workspace_id, type, actor_user_id, actor_token_id,
		resource_type, resource_id, changes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.WorkspaceID, e.Type, e.ActorUserID, e.ActorTokenID, e.ResourceType, e.ResourceID, e.Changes, e.CreatedAt); err != nil {
		return err
	}
	// Every activity becomes a notification for the members who want it, in the same transaction.
	return Notify(ctx, tx, workspaceID, typ, resourceType, resourceID, describe(v.User.Name, typ, resourceType, changes), &userID, &e.ID)
}

// Filter narrows a listing.
type Filter struct {
	Types      []Type
	ActorID    string // a user (directly or by their tokens) or a token
	ResourceID string
}

// List pages through a workspace's events, newest first. The caller has checked the viewer may.
func List(ctx context.Context, d *db.DB, workspaceID string, f Filter, args relay.Args, count bool) (relay.Page[Event], error) {
	where, qargs := "workspace_id = ?", []any{workspaceID}
	if len(f.Types) > 0 {
		where += " AND type IN (" + db.Placeholders(len(f.Types)) + ")"
		qargs = append(qargs, db.Args(f.Types)...)
	}
	if f.ActorID != "" {
		where += " AND (actor_user_id = ? OR actor_token_id = ?)"
		qargs = append(qargs, f.ActorID, f.ActorID)
	}
	if f.ResourceID != "" {
		where += " AND resource_id = ?"
		qargs = append(qargs, f.ResourceID)
	}
	return relay.Query(ctx, d.Reader(), relay.Spec[Event]{
		Select: "SELECT * FROM audit_events", Where: where, Args: qargs,
		SortColumn: "id", Desc: true, Count: count,
		ID: func(e Event) string { return e.ID }, SortKey: func(e Event) any { return e.ID },
	}, args)
}

// ActedWhere is the SQL condition that the user id in column acted in the workspace: the audit
// trail names them. Those who may read the trail see who it names.
func ActedWhere(column, workspaceID string) (string, []any) {
	return "EXISTS (SELECT 1 FROM audit_events ae WHERE ae.workspace_id = ? AND ae.actor_user_id = " + column + ")", []any{workspaceID}
}

// ByID loads one event of a workspace (nil when none); the caller has checked the viewer may read
// the workspace's audit trail.
func ByID(ctx context.Context, d *db.DB, workspaceID, eventID string) (*Event, error) {
	var e Event
	err := d.Get(ctx, &e, `SELECT * FROM audit_events WHERE id = ? AND workspace_id = ?`, eventID, workspaceID)
	if db.IsNoRows(err) {
		return nil, nil
	}
	return &e, err
}

// ReapWorkspace is the reap step of a deleted workspace's audit trail and notifications.
var ReapWorkspace = reap.Step{Name: "audit trail and notifications", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE workspace_id = ? ORDER BY workspace_id, id LIMIT ?)`,
		`DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE workspace_id = ? ORDER BY workspace_id, id LIMIT ?)`,
	} {
		res, err := tx.Exec(ctx, q, workspaceID, limit-int(total))
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		if total += n; total >= int64(limit) {
			break
		}
	}
	return total, nil
}}

// expire deletes at most limit rows of table whose id is below `below`, of one workspace (through
// its (workspace_id, id) index) or of all when workspaceID is "" (through the primary key).
func expire(ctx context.Context, tx *db.Tx, table, workspaceID, below string, limit int) (int64, error) {
	where, args := `id < ?`, []any{below}
	if workspaceID != "" {
		where, args = `workspace_id = ? AND id < ?`, []any{workspaceID, below}
	}
	res, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE id IN (SELECT id FROM `+table+` WHERE `+where+` ORDER BY id LIMIT ?)`,
		append(args, limit)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ExpireEvents deletes audit events past their retention: at most limit whose id is below
// `below`, of one workspace or of all when workspaceID is "" (a reap.Expiry's Delete).
func ExpireEvents(ctx context.Context, tx *db.Tx, workspaceID, below string, limit int) (int64, error) {
	return expire(ctx, tx, "audit_events", workspaceID, below, limit)
}

// ExpireNotifications deletes inbox notifications past their retention, read or not, as
// ExpireEvents does audit events.
func ExpireNotifications(ctx context.Context, tx *db.Tx, workspaceID, below string, limit int) (int64, error) {
	return expire(ctx, tx, "notifications", workspaceID, below, limit)
}
