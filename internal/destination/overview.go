package destination

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/source"
)

// Overview is the graph of a workspace: the sources and destinations the viewer may see and the
// connections between them, read in a fixed number of statements whatever the size.
type Overview struct {
	Sources      []source.Source
	Destinations []Destination
	Connections  []Connection
	At           time.Time // when it was read, for source statuses
}

// Overview reads the graph.
func (s *Service) Overview(ctx context.Context, workspaceID string) (*Overview, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	o := &Overview{At: time.Now(), Sources: []source.Source{}, Destinations: []Destination{}, Connections: []Connection{}}
	where, args := source.VisibleWhere(a)
	q := s.db.Reader()
	if err := q.Select(ctx, &o.Sources, `SELECT s.* FROM sources s WHERE `+where+` ORDER BY s.name, s.id`, args...); err != nil {
		return nil, err
	}
	if !canSee(a) {
		return o, nil
	}
	if err := q.Select(ctx, &o.Destinations, selectDestinations+` WHERE d.workspace_id = ? ORDER BY d.name, d.id`, workspaceID); err != nil {
		return nil, err
	}
	if err := q.Select(ctx, &o.Connections, `SELECT c.* FROM connections c JOIN sources s ON s.id = c.source_id WHERE `+where+` ORDER BY c.id`, args...); err != nil {
		return nil, err
	}
	ptrs := make([]*Destination, len(o.Destinations))
	for i := range o.Destinations {
		ptrs[i] = &o.Destinations[i]
	}
	return o, s.withSecrets(ctx, q, ptrs)
}
