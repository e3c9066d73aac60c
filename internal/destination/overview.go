package destination

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/source"
)

// Overview is the graph of a workspace: the sources and destinations the viewer may see and the
// connections between them, read in a fixed number of statements whatever the size.
type Overview struct {
	Sources      []source.Source
	Destinations []Destination
	Connections  []Connection
	At           time.Time // when it was read, for source statuses
	// Delivered24h counts, by connection id, the events delivered through it in the last 24 hours.
	Delivered24h map[string]int
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
	dstWhere, dstArgs := VisibleWhere(a)
	if err := q.Select(ctx, &o.Destinations, selectDestinations+` WHERE `+dstWhere+` ORDER BY d.name, d.id`, dstArgs...); err != nil {
		return nil, err
	}
	connWhere, connArgs := ConnectionVisibleWhere(a)
	if err := q.Select(ctx, &o.Connections, `SELECT c.* FROM connections c WHERE `+connWhere+` ORDER BY c.id`, connArgs...); err != nil {
		return nil, err
	}
	ptrs := make([]*Destination, len(o.Destinations))
	ids := make([]string, len(o.Destinations))
	for i := range o.Destinations {
		ptrs[i] = &o.Destinations[i]
		ids[i] = o.Destinations[i].ID
	}
	if err := s.withSecrets(ctx, q, ptrs); err != nil {
		return nil, err
	}
	// Attempt ids start with their time, so "the last 24 hours" is an id range of the
	// (destination_id, id) index: one statement whatever the size of the graph.
	var counts []struct {
		DestinationID string `db:"destination_id"`
		SourceID      string `db:"source_id"`
		N             int    `db:"n"`
	}
	if err := q.Select(ctx, &counts, `SELECT destination_id, source_id, COUNT(*) AS n FROM delivery_attempts
		WHERE destination_id IN (`+db.Placeholders(len(ids))+`) AND id >= ? AND outcome = 'DELIVERED'
		GROUP BY destination_id, source_id`, append(db.Args(ids), id.Floor("att", o.At.Add(-24*time.Hour)))...); err != nil {
		return nil, err
	}
	byPair := map[[2]string]int{}
	for _, c := range counts {
		byPair[[2]string{c.SourceID, c.DestinationID}] = c.N
	}
	o.Delivered24h = map[string]int{}
	for _, c := range o.Connections {
		o.Delivered24h[c.ID] = byPair[[2]string{c.SourceID, c.DestinationID}]
	}
	return o, nil
}
