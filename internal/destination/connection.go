package destination

import (
	"context"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/source"
)

// ConnectionPrefix is the id prefix of connections.
const ConnectionPrefix = "conn"

// Audit event types of connections.
const (
	EventConnectionCreated  audit.Type = "CONNECTION_CREATED"
	EventConnectionEnabled  audit.Type = "CONNECTION_ENABLED"
	EventConnectionDisabled audit.Type = "CONNECTION_DISABLED"
	EventConnectionDeleted  audit.Type = "CONNECTION_DELETED"
)

// Connection sends a source's events to a destination while it, the source and the destination are
// enabled.
type Connection struct {
	ID            string  `db:"id"`
	WorkspaceID   string  `db:"workspace_id"`
	SourceID      string  `db:"source_id"`
	DestinationID string  `db:"destination_id"`
	Enabled       bool    `db:"enabled"`
	CreatedBy     *string `db:"created_by"`
	CreatedAt     db.Time `db:"created_at"`
	UpdatedAt     db.Time `db:"updated_at"`
}

func errConnectionNotFound() error { return apperr.NotFoundf("connection not found") }

// connectionRights loads a connection and tells whether the viewer administers it: owners, admins
// and the source admins of its source. NOT_FOUND when the viewer may not see its source.
func (s *Service) connectionRights(ctx context.Context, q *db.Queryer, connectionID string) (*Connection, bool, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, false, err
	}
	var c Connection
	err := q.Get(ctx, &c, `SELECT * FROM connections WHERE id = ?`, connectionID)
	if db.IsNoRows(err) {
		return nil, false, errConnectionNotFound()
	}
	if err != nil {
		return nil, false, err
	}
	src, err := s.sources.Get(ctx, c.SourceID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.Unauthenticated {
			return nil, false, err
		}
		return nil, false, errConnectionNotFound()
	}
	_, admin, err := s.sources.Rights(ctx, src)
	if err != nil {
		return nil, false, errConnectionNotFound()
	}
	return &c, admin, nil
}

// Connection returns a connection the viewer may see (nil otherwise).
func (s *Service) Connection(ctx context.Context, connectionID string) (*Connection, error) {
	c, _, err := s.connectionRights(ctx, s.db.Reader(), connectionID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return c, err
}

// CanUpdateConnection tells whether the viewer may enable, disable or delete c.
func (s *Service) CanUpdateConnection(ctx context.Context, c *Connection) bool {
	_, admin, err := s.connectionRights(ctx, s.db.Reader(), c.ID)
	return err == nil && admin
}

// Connect draws a line from a source to a destination of the same workspace: owners, admins and
// the source's source admins. A source and a destination of different workspaces are never
// connected: to the viewer, the other one does not exist.
func (s *Service) Connect(ctx context.Context, sourceID, destinationID string, enabled *bool) (*Connection, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var c *Connection
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		src, err := s.sources.Get(ctx, sourceID)
		if err != nil {
			return err
		}
		_, admin, err := s.sources.Rights(ctx, src)
		if err != nil {
			return err
		}
		if !admin {
			return apperr.New(apperr.Forbidden, "you may read this source but not connect it")
		}
		d, err := s.load(ctx, &tx.Queryer, destinationID)
		if err != nil {
			return err
		}
		if d.WorkspaceID != src.WorkspaceID {
			return errNotFound()
		}
		if _, err := s.access(ctx, d); err != nil {
			return err
		}
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM connections WHERE source_id = ? AND destination_id = ?`, src.ID, d.ID); err != nil {
			return err
		}
		if n > 0 {
			errs.Add("destinationId", apperr.Taken, "source %s is already connected to destination %s", src.Name, d.Name)
			return nil
		}
		now := db.Now()
		userID := auth.ViewerFrom(ctx).User.ID
		c = &Connection{ID: id.New(ConnectionPrefix), WorkspaceID: src.WorkspaceID, SourceID: src.ID, DestinationID: d.ID,
			Enabled: enabled == nil || *enabled, CreatedBy: &userID, CreatedAt: now, UpdatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO connections (id, workspace_id, source_id, destination_id, enabled, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.WorkspaceID, c.SourceID, c.DestinationID, c.Enabled, c.CreatedBy, c.CreatedAt, c.UpdatedAt); err != nil {
			return err
		}
		s.changed(tx, d.ID)
		return audit.Record(ctx, tx, c.WorkspaceID, EventConnectionCreated, "Connection", c.ID,
			map[string]any{"sourceId": src.ID, "destinationId": d.ID, "enabled": c.Enabled})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return c, nil, nil
}

func (s *Service) changeConnection(ctx context.Context, connectionID string, change func(tx *db.Tx, c *Connection) error) (*Connection, error) {
	var c *Connection
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		var admin bool
		var err error
		if c, admin, err = s.connectionRights(ctx, &tx.Queryer, connectionID); err != nil {
			return err
		}
		if !admin {
			return apperr.New(apperr.Forbidden, "you may read this connection but not change it")
		}
		s.changed(tx, c.DestinationID)
		return change(tx, c)
	})
	return c, err
}

// SetConnectionEnabled enables or disables a connection.
func (s *Service) SetConnectionEnabled(ctx context.Context, connectionID string, enabled bool) (*Connection, error) {
	return s.changeConnection(ctx, connectionID, func(tx *db.Tx, c *Connection) error {
		if c.Enabled == enabled {
			return nil
		}
		c.Enabled, c.UpdatedAt = enabled, db.Now()
		if _, err := tx.Exec(ctx, `UPDATE connections SET enabled = ?, updated_at = ? WHERE id = ?`, c.Enabled, c.UpdatedAt, c.ID); err != nil {
			return err
		}
		typ := EventConnectionDisabled
		if enabled {
			typ = EventConnectionEnabled
		}
		return audit.Record(ctx, tx, c.WorkspaceID, typ, "Connection", c.ID, map[string]audit.Change{"enabled": {From: !enabled, To: enabled}})
	})
}

// Disconnect deletes a connection.
func (s *Service) Disconnect(ctx context.Context, connectionID string) error {
	_, err := s.changeConnection(ctx, connectionID, func(tx *db.Tx, c *Connection) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connections WHERE id = ?`, c.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, c.WorkspaceID, EventConnectionDeleted, "Connection", c.ID,
			map[string]any{"sourceId": c.SourceID, "destinationId": c.DestinationID})
	})
	return err
}

// ConnectionsBySource loads the connections of sources, for dataloaders. The caller has checked
// the viewer may see the sources.
func (s *Service) ConnectionsBySource(ctx context.Context, sourceIDs []string) (map[string][]Connection, error) {
	return s.connectionsBy(ctx, "source_id", sourceIDs, func(c Connection) string { return c.SourceID })
}

// ConnectionsByDestination loads the connections of destinations, for dataloaders; connections from
// sources the viewer may not see are left out by the caller.
func (s *Service) ConnectionsByDestination(ctx context.Context, destinationIDs []string) (map[string][]Connection, error) {
	return s.connectionsBy(ctx, "destination_id", destinationIDs, func(c Connection) string { return c.DestinationID })
}

func (s *Service) connectionsBy(ctx context.Context, column string, ids []string, key func(Connection) string) (map[string][]Connection, error) {
	var rows []Connection
	if err := s.db.Select(ctx, &rows, `SELECT * FROM connections WHERE `+column+` IN (`+db.Placeholders(len(ids))+`) ORDER BY id`, db.Args(ids)...); err != nil {
		return nil, err
	}
	out := map[string][]Connection{}
	for _, c := range rows {
		out[key(c)] = append(out[key(c)], c)
	}
	return out, nil
}

// VisibleSource is the check the GraphQL layer applies to a connection's source before showing it.
func (s *Service) VisibleSource(ctx context.Context, src *source.Source) bool {
	return s.sources.CanSee(ctx, src)
}
