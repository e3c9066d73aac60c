package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// NotificationPrefix is the id prefix of notifications.
const NotificationPrefix = "ntf"

// Notification is one person's notice of a workspace activity.
type Notification struct {
	ID           string   `db:"id"`
	UserID       string   `db:"user_id"`
	WorkspaceID  string   `db:"workspace_id"`
	Type         string   `db:"type"`
	Area         string   `db:"area"`
	Message      string   `db:"message"`
	ActorUserID  *string  `db:"actor_user_id"`
	ResourceType string   `db:"resource_type"`
	ResourceID   string   `db:"resource_id"`
	AuditEventID *string  `db:"audit_event_id"`
	ReadAt       *db.Time `db:"read_at"`
	CreatedAt    db.Time  `db:"created_at"`
}

// Areas group notification types, as Segment's settings do, and say who may hear of them: a
// member hears of an activity only if their role lets them see what it is about.
var areas = []struct {
	Name    string
	MinRole auth.Role
	Types   []Type
}{
	{"SOURCES", auth.Member, []Type{"SOURCE_CREATED", "SOURCE_DELETED", "SOURCE_ENABLED", "SOURCE_DISABLED", "SOURCE_UPDATED", "WRITE_KEY_CREATED", "WRITE_KEY_REVOKED"}},
	{"DESTINATIONS", auth.Member, []Type{"DESTINATION_CREATED", "DESTINATION_ENABLED", "DESTINATION_DISABLED", "DESTINATION_UPDATED", "DESTINATION_DELETED"}},
	// Warehouses, and their syncs once they start failing.
	{"STORAGE", auth.Member, []Type{"WAREHOUSE_CREATED", "WAREHOUSE_DELETED", "WAREHOUSE_SYNC_FAILED"}},
	{"CONNECTIONS", auth.Member, []Type{"CONNECTION_CREATED", "CONNECTION_ENABLED", "CONNECTION_DISABLED", "CONNECTION_DELETED"}},
	// Invitations carry invitees' email addresses: only those who may read invitations hear of them.
	{"MEMBERS", auth.Admin, []Type{"MEMBER_INVITED", "INVITATION_ACCEPTED", "INVITATION_DECLINED", "INVITATION_REVOKED", "MEMBER_ROLE_CHANGED", "MEMBER_REMOVED", "MEMBER_LEFT", "GRANT_ADDED", "GRANT_REMOVED"}},
	{"ACCESS_TOKENS", auth.Admin, []Type{"ACCESS_TOKEN_CREATED", "ACCESS_TOKEN_REVOKED"}},
	{"HEALTH", auth.Member, []Type{"HEALTH_ISSUE_OPENED", "HEALTH_ISSUE_RESOLVED"}},
	{"PROTOCOLS", auth.Member, []Type{"TRACKING_PLAN_CREATED", "TRACKING_PLAN_UPDATED", "TRACKING_PLAN_DELETED", "TRACKING_PLAN_SOURCE_CONNECTED",
		"TRACKING_PLAN_SOURCE_DISCONNECTED", "SCHEMA_CONTROLS_UPDATED", "SCHEMA_EVENT_ARCHIVED", "BLOCKED_EVENTS_REPLAYED", "NEW_EVENT_BLOCKED", "VIOLATIONS_DETECTED"}},
	{"PRIVACY", auth.Member, []Type{"PRIVACY_MATCHER_CHANGED", "PRIVACY_FIELDS_CLASSIFIED", "PRIVACY_CONTROLS_UPDATED", "PII_ACCESS_CHANGED", "NEW_PII_FIELD"}},
	{"WORKSPACE", auth.Minimal, []Type{"WORKSPACE_UPDATED", "PLAN_CHANGED"}},
}

// Area is one area of notification types.
type Area struct {
	Name  string
	Types []Type
}

// Areas lists the areas and their types, for settings.
func Areas() []Area {
	out := make([]Area, len(areas))
	for i, a := range areas {
		out[i] = Area{Name: a.Name, Types: a.Types}
	}
	return out
}

func areaOf(t Type) (string, auth.Role, bool) {
	for _, a := range areas {
		for _, x := range a.Types {
			if x == t {
				return a.Name, a.MinRole, true
			}
		}
	}
	return "", "", false
}

// AreasFor lists the areas a role hears of: those whose activities it may see.
func AreasFor(r auth.Role) []string {
	var out []string
	for _, a := range areas {
		if r.AtLeast(a.MinRole) {
			out = append(out, a.Name)
		}
	}
	return out
}

// KnownType tells whether t is a notification type.
func KnownType(t Type) bool { _, _, ok := areaOf(t); return ok }

// rolesAtLeast lists the roles with at least the rights of r.
func rolesAtLeast(r auth.Role) []any {
	var out []any
	for _, x := range []auth.Role{auth.Owner, auth.Admin, auth.Member, auth.Minimal} {
		if x.AtLeast(r) {
			out = append(out, string(x))
		}
	}
	return out
}

type publisherKey struct{}

// WithPublisher returns a context in which notifications created by Record are handed to publish
// once their transaction commits (the server sends them to subscribers and webhook channels).
func WithPublisher(ctx context.Context, publish func([]Notification)) context.Context {
	return context.WithValue(ctx, publisherKey{}, publish)
}

// Notify creates, within tx, the notifications of an activity for every member of the workspace
// whose role may see it and who did not turn its type off, except actorUserID (the person who did
// it, directly or with a token). It hands them to the context's publisher after commit.
func Notify(ctx context.Context, tx *db.Tx, workspaceID string, typ Type, resourceType, resourceID, message string, actorUserID, auditEventID *string) error {
	area, minRole, ok := areaOf(typ)
	if !ok {
		return nil
	}
	roles := rolesAtLeast(minRole)
	actor := ""
	if actorUserID != nil {
		actor = *actorUserID
	}
	var users []string
	if err := tx.Select(ctx, &users, `SELECT m.user_id FROM memberships m WHERE m.workspace_id = ? AND m.user_id <> ?
		AND m.role IN (`+db.Placeholders(len(roles))+`)
		AND NOT EXISTS (SELECT 1 FROM notification_settings s WHERE s.user_id = m.user_id AND s.type = ? AND s.in_app = FALSE)
		ORDER BY m.user_id`, append(append([]any{workspaceID, actor}, roles...), string(typ))...); err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	now := db.Now()
	out := make([]Notification, len(users))
	for i, u := range users {
		n := Notification{ID: id.New(NotificationPrefix), UserID: u, WorkspaceID: workspaceID, Type: string(typ), Area: area,
			Message: message, ActorUserID: actorUserID, ResourceType: resourceType, ResourceID: resourceID, AuditEventID: auditEventID, CreatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO notifications (id, user_id, workspace_id, type, area, message, actor_user_id, resource_type,
			resource_id, audit_event_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.ID, n.UserID, n.WorkspaceID, n.Type, n.Area, n.Message, n.ActorUserID, n.ResourceType, n.ResourceID, n.AuditEventID, n.CreatedAt); err != nil {
			return err
		}
		out[i] = n
	}
	if publish, ok := ctx.Value(publisherKey{}).(func([]Notification)); ok && publish != nil {
		tx.AfterCommit(func() { publish(out) })
	}
	return nil
}

// phrases say what some activities did, where "verb the resource" reads badly; %s is the name.
var phrases = map[Type]string{
	"MEMBER_INVITED":                    "invited %s",
	"INVITATION_ACCEPTED":               "joined the workspace",
	"INVITATION_DECLINED":               "declined an invitation",
	"INVITATION_REVOKED":                "withdrew the invitation of %s",
	"MEMBER_ROLE_CHANGED":               "changed a member's role",
	"MEMBER_REMOVED":                    "removed a member",
	"MEMBER_LEFT":                       "left the workspace",
	"GRANT_ADDED":                       "gave a member rights on sources",
	"GRANT_REMOVED":                     "took away a member's rights on sources",
	"WRITE_KEY_CREATED":                 "added a write key to a source",
	"WRITE_KEY_REVOKED":                 "revoked a write key of a source",
	"WORKSPACE_UPDATED":                 "changed the workspace's name or slug",
	"PLAN_CHANGED":                      "changed the plan",
	"ACCESS_TOKEN_CREATED":              "created the access token %s",
	"ACCESS_TOKEN_REVOKED":              "revoked the access token %s",
	"TRACKING_PLAN_SOURCE_CONNECTED":    "connected a source to the tracking plan %s",
	"TRACKING_PLAN_SOURCE_DISCONNECTED": "disconnected a source from the tracking plan %s",
	"SCHEMA_CONTROLS_UPDATED":           "changed the schema controls of the source %s",
	"SCHEMA_EVENT_ARCHIVED":             "archived or restored an event of the schema of the source %s",
	"BLOCKED_EVENTS_REPLAYED":           "replayed blocked events of the source %s",
}

// describe writes an activity as a sentence: "Ada created source “Backend”".
func describe(actor string, typ Type, resourceType string, changes any) string {
	name := nameIn(changes)
	quoted := ""
	if name != "" {
		quoted = "“" + name + "”"
	}
	if p, ok := phrases[typ]; ok {
		if strings.Contains(p, "%s") {
			return strings.TrimSpace(actor + " " + strings.TrimSpace(fmt.Sprintf(p, quoted)))
		}
		return actor + " " + p
	}
	verb := strings.ToLower(string(typ))
	if i := strings.LastIndexByte(verb, '_'); i >= 0 {
		verb = verb[i+1:]
	}
	if verb == "updated" {
		verb = "changed"
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", actor, verb, words(resourceType), quoted))
}

// words turns a type name into lower-case words: "AccessToken" is "access token".
func words(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

func nameIn(changes any) string {
	b, _ := json.Marshal(changes)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	switch n := m["name"].(type) {
	case string:
		return n
	case map[string]any:
		if to, ok := n["to"].(string); ok {
			return to
		}
	}
	if e, ok := m["email"].(string); ok {
		return e
	}
	return ""
}
