package destination

import (
	"context"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
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

// ConnectionVisibleWhere returns the SQL condition (on alias c) for the connections the viewer may
// see in the workspace of a: those from a source they see to a destination they see. A reader of
// a source who may not see destinations sees none of its connections.
func ConnectionVisibleWhere(a *workspace.Access) (string, []any) {
	dst, dstArgs := VisibleWhere(a)
	src, srcArgs := source.VisibleWhere(a)
	where := "c.workspace_id = ? AND EXISTS (SELECT 1 FROM destinations d WHERE d.id = c.destination_id AND " + dst +
		") AND EXISTS (SELECT 1 FROM sources s WHERE s.id = c.source_id AND " + src + ")"
	return where, append(append([]any{a.WorkspaceID}, dstArgs...), srcArgs...)
}

// connectionRights loads a connection the viewer may see and tells whether they administer it:
// owners, admins and the source admins of its source. NOT_FOUND when they may not see it.
func (s *Service) connectionRights(ctx context.Context, q *db.Queryer, connectionID string) (*Connection, bool, error) {
	a, err := s.workspaces.AccessVia(ctx, q, `SELECT workspace_id FROM connections WHERE id = ?`, connectionID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, false, errConnectionNotFound()
		}
		return nil, false, err
	}
	where, args := ConnectionVisibleWhere(a)
	var c struct {
		Connection
		Labels string `db:"labels"`
	}
	err = q.Get(ctx, &c, `SELECT c.*, s.labels FROM connections c JOIN sources s ON s.id = c.source_id WHERE c.id = ? AND `+where,
		append([]any{connectionID}, args...)...)
	if db.IsNoRows(err) {
		return nil, false, errConnectionNotFound()
	}
	if err != nil {
		return nil, false, err
	}
	src := source.Source{ID: c.SourceID, LabelsRaw: c.Labels}
	_, admin := a.SourceRights(src.ID, src.Labels())
	return &c.Connection, admin, nil
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
		d, _, err := s.load(ctx, &tx.Queryer, destinationID)
		if err != nil {
			return err
		}
		if d.WorkspaceID != src.WorkspaceID {
			return errNotFound()
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

// ConnectionsBySource loads the connections the viewer sees of sources of the workspace of a,
// for dataloaders.
func (s *Service) ConnectionsBySource(ctx context.Context, a *workspace.Access, sourceIDs []string) (map[string][]Connection, error) {
	return s.connectionsBy(ctx, a, "c.source_id", sourceIDs, func(c Connection) string { return c.SourceID })
}

// ConnectionsByDestination loads the connections the viewer sees to destinations of the workspace
// of a, for dataloaders.
func (s *Service) ConnectionsByDestination(ctx context.Context, a *workspace.Access, destinationIDs []string) (map[string][]Connection, error) {
	return s.connectionsBy(ctx, a, "c.destination_id", destinationIDs, func(c Connection) string { return c.DestinationID })
}

func (s *Service) connectionsBy(ctx context.Context, a *workspace.Access, column string, ids []string, key func(Connection) string) (map[string][]Connection, error) {
	where, args := ConnectionVisibleWhere(a)
	var rows []Connection
	if err := s.db.Select(ctx, &rows, `SELECT c.* FROM connections c WHERE `+column+` IN (`+db.Placeholders(len(ids))+`) AND `+where+` ORDER BY c.id`,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := map[string][]Connection{}
	for _, c := range rows {
		out[key(c)] = append(out[key(c)], c)
	}
	return out, nil
}
