// Package notify is what a person hears of their workspaces: their notifications (made from the
// audit trail and from health issues), their settings per type, and their optional webhook channel,
// to which each notification is POSTed with an HMAC-SHA256 signature.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/secret"
)

// Service owns notifications and their settings.
type Service struct {
	db     *db.DB
	bus    *bus.Bus
	box    *secret.Box
	log    *slog.Logger
	egress *egress.Filter
	client *http.Client
	sem    chan struct{} // bounds webhook posts in flight
	wg     sync.WaitGroup
}

// Close waits for the webhook posts under way.
func (s *Service) Close() { s.wg.Wait() }

// scope restricts a query of notifications to the viewer's. A token reads its creator's
// notifications of its workspace in the areas its role hears of: a MINIMAL token does not read
// of destinations its creator was told about.
func scope(v *auth.Viewer) (string, []any) {
	if v.Token != nil {
		areas := audit.AreasFor(v.Token.Role)
		return "user_id = ? AND workspace_id = ? AND area IN (" + db.Placeholders(len(areas)) + ")",
			append([]any{v.User.ID, v.Token.WorkspaceID}, db.Args(areas)...)
	}
	return "user_id = ?", []any{v.User.ID}
}

// VisibleTo tells whether the viewer may read n, as scope does in SQL, for notifications that
// come from the bus rather than from a query.
func VisibleTo(v *auth.Viewer, n *audit.Notification) bool {
	if n.UserID != v.User.ID {
		return false
	}
	if v.Token == nil {
		return true
	}
	if n.WorkspaceID != v.Token.WorkspaceID {
		return false
	}
	for _, a := range audit.AreasFor(v.Token.Role) {
		if a == n.Area {
			return true
		}
	}
	return false
}

// New returns the service. Webhook channels dial through the egress filter, like deliveries.
func New(d *db.DB, b *bus.Bus, box *secret.Box, log *slog.Logger, eg *egress.Filter) *Service {
	b.Decoder("notification", bus.JSON[*audit.Notification])
	return &Service{db: d, bus: b, box: box, log: log, egress: eg, client: egress.Client(eg.Transport(), 10*time.Second), sem: make(chan struct{}, 8)}
}

// Topic is the bus topic of one user's notifications.
func Topic(userID string) bus.Topic { return bus.Topic{Kind: "notification", Key: userID} }

// Publish hands committed notifications to their recipients' subscriptions and webhook channels.
func (s *Service) Publish(list []audit.Notification) {
	for i := range list {
		n := list[i]
		s.bus.Publish(Topic(n.UserID), &n)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sendWebhooks(list)
	}()
}

// Setting is one notification type's setting for a user.
type Setting struct {
	Type  audit.Type
	InApp bool
}

// Settings returns the viewer's settings of every type, by area.
func (s *Service) Settings(ctx context.Context) (map[audit.Type]bool, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Type  string `db:"type"`
		InApp bool   `db:"in_app"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT type, in_app FROM notification_settings WHERE user_id = ?`, v.User.ID); err != nil {
		return nil, err
	}
	out := map[audit.Type]bool{}
	for _, a := range audit.Areas() {
		for _, t := range a.Types {
			out[t] = true
		}
	}
	for _, r := range rows {
		out[audit.Type(r.Type)] = r.InApp
	}
	return out, nil
}

// Webhook is a user's webhook channel, without its secret.
type Webhook struct {
	URL       string  `db:"url"`
	UpdatedAt db.Time `db:"updated_at"`
}

// WebhookOf returns the viewer's channel, or nil.
func (s *Service) WebhookOf(ctx context.Context) (*Webhook, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, err
	}
	var w Webhook
	err = s.db.Get(ctx, &w, `SELECT url, updated_at FROM notification_webhooks WHERE user_id = ?`, v.User.ID)
	if db.IsNoRows(err) {
		return nil, nil
	}
	return &w, err
}

// Update changes the viewer's settings: in-app per type, and the webhook channel (url and secret
// set it, an empty url removes it).
func (s *Service) Update(ctx context.Context, settings []Setting, webhookURL, webhookSecret *string) (apperr.UserErrors, error) {
	v, err := auth.RequireSession(ctx)
	if err != nil {
		return nil, err
	}
	var errs apperr.UserErrors
	for i, st := range settings {
		if !audit.KnownType(st.Type) {
			errs.Add("settings."+itoa(i)+".type", apperr.InvalidValue, "settings[%d].type %s is not a notification type", i, st.Type)
		}
	}
	if webhookURL != nil && *webhookURL != "" {
		u, err := url.Parse(*webhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Add("webhookUrl", apperr.InvalidValue, "webhookUrl must be an absolute http or https URL")
		} else if err := s.egress.CheckURL(u); err != nil {
			errs.Add("webhookUrl", apperr.NotAllowed, "webhookUrl %s", strings.TrimPrefix(err.Error(), "egress refused: "))
		}
		if webhookSecret == nil || len(*webhookSecret) < 16 {
			var have int
			_ = s.db.Get(ctx, &have, `SELECT COUNT(*) FROM notification_webhooks WHERE user_id = ?`, v.User.ID)
			if webhookSecret != nil || have == 0 {
				errs.Add("webhookSecret", apperr.TooShort, "webhookSecret must be at least 16 characters: it signs each POST")
			}
		}
	}
	if len(errs) > 0 {
		return errs, nil
	}
	return nil, s.db.Tx(ctx, func(tx *db.Tx) error {
		for _, st := range settings {
			if _, err := tx.Exec(ctx, `INSERT INTO notification_settings (user_id, type, in_app) VALUES (?, ?, ?)
				ON CONFLICT (user_id, type) DO UPDATE SET in_app = excluded.in_app`, v.User.ID, string(st.Type), st.InApp); err != nil {
				return err
			}
		}
		switch {
		case webhookURL == nil:
		case *webhookURL == "":
			_, err := tx.Exec(ctx, `DELETE FROM notification_webhooks WHERE user_id = ?`, v.User.ID)
			return err
		case webhookSecret != nil:
			sealed, err := s.box.Seal(*webhookSecret, secret.Scope{WorkspaceID: "user", OwnerID: v.User.ID, Field: "notificationWebhook"})
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO notification_webhooks (user_id, url, secret, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (user_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
				v.User.ID, *webhookURL, sealed, db.Now())
			return err
		default:
			_, err := tx.Exec(ctx, `UPDATE notification_webhooks SET url = ?, updated_at = ? WHERE user_id = ?`, *webhookURL, db.Now(), v.User.ID)
			return err
		}
		return nil
	})
}

// List pages through the viewer's notifications, newest first.
func (s *Service) List(ctx context.Context, unreadOnly bool, args relay.Args, count bool) (relay.Page[audit.Notification], error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return relay.Page[audit.Notification]{}, err
	}
	where, qargs := scope(v)
	if unreadOnly {
		where += " AND read_at IS NULL"
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[audit.Notification]{
		Select: "SELECT * FROM notifications", Where: where, Args: qargs, SortColumn: "id", Desc: true, Count: count,
		ID: func(n audit.Notification) string { return n.ID }, SortKey: func(n audit.Notification) any { return n.ID },
	}, args)
}

// Unread counts the viewer's unread notifications.
func (s *Service) Unread(ctx context.Context) (int, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return 0, err
	}
	where, args := scope(v)
	var n int
	err = s.db.Get(ctx, &n, `SELECT COUNT(*) FROM notifications WHERE `+where+` AND read_at IS NULL`, args...)
	return n, err
}

// Get returns one of the viewer's notifications (nil otherwise).
func (s *Service) Get(ctx context.Context, notificationID string) (*audit.Notification, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	where, args := scope(v)
	var n audit.Notification
	err = s.db.Get(ctx, &n, `SELECT * FROM notifications WHERE id = ? AND `+where, append([]any{notificationID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	return &n, err
}

// MarkRead marks one notification (or, with id "", all) of the viewer read; it returns how many changed.
func (s *Service) MarkRead(ctx context.Context, notificationID string) (int, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return 0, err
	}
	if notificationID != "" {
		n, err := s.Get(ctx, notificationID)
		if err != nil {
			return 0, err
		}
		if n == nil {
			return 0, apperr.NotFoundf("notification not found")
		}
	}
	var changed int64
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		where, wargs := scope(v)
		q, args := `UPDATE notifications SET read_at = ? WHERE `+where+` AND read_at IS NULL`, append([]any{db.Now()}, wargs...)
		if notificationID != "" {
			q += " AND id = ?"
			args = append(args, notificationID)
		}
		res, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		changed, err = res.RowsAffected()
		return err
	})
	return int(changed), err
}

// sendWebhooks POSTs each notification to its recipient's channel, signed with their secret.
// Best effort: a channel that fails is logged, not retried.
func (s *Service) sendWebhooks(list []audit.Notification) {
	ctx := context.Background()
	for _, n := range list {
		var row struct {
			URL    string `db:"url"`
			Secret string `db:"secret"`
		}
		if err := s.db.Get(ctx, &row, `SELECT url, secret FROM notification_webhooks WHERE user_id = ?`, n.UserID); err != nil {
			continue // no channel
		}
		key, err := s.box.Open(row.Secret, secret.Scope{WorkspaceID: "user", OwnerID: n.UserID, Field: "notificationWebhook"})
		if err != nil {
			s.log.Error("notification webhook: secret does not decrypt", "user", n.UserID)
			continue
		}
		body, _ := json.Marshal(map[string]any{"id": n.ID, "type": n.Type, "area": n.Area, "message": n.Message,
			"workspaceId": n.WorkspaceID, "resourceType": n.ResourceType, "resourceId": n.ResourceID, "createdAt": n.CreatedAt.Time})
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, row.URL, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("Idempotency-Key", n.ID)
		s.sem <- struct{}{}
		res, err := s.client.Do(req)
		<-s.sem
		if err != nil {
			// The URL is the user's own setting, but it may carry a token: log its host only.
			s.log.Warn("notification webhook failed", "user", n.UserID, "host", req.URL.Host, "error", strings.ReplaceAll(err.Error(), row.URL, req.URL.Host))
			continue
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			s.log.Warn("notification webhook refused", "user", n.UserID, "status", res.StatusCode)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
