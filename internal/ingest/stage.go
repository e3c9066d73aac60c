package ingest

import "context"

// A Stage looks at the events of one request after normalisation and before the writer stores
// them, on the request's goroutine (its CPU is the request's, never the writer's). It may change
// an accepted event's payload (through Doc and Changed), block it (Status = Blocked), attach
// Violations and Notes for the listeners of commits, and add events for other sources of the same
// workspace (Batch.Add). The tracking plan is one; removing PII fields and suppressing users are
// others of the same kind.
type Stage interface {
	Process(ctx context.Context, b *Batch) error
}

// Batch is what a Stage sees of one request: its workspace and source, and its events in order
// (discarded ones included, which a Stage leaves alone).
type Batch struct {
	WorkspaceID string
	SourceID    string
	Events      []*Event
	added       []*Event
}

// Add stores e with the request's events: an event a Stage makes for another source of the
// workspace (a blocked event forwarded, a violation reported). Later stages do not see it.
func (b *Batch) Add(e *Event) {
	e.WorkspaceID = b.WorkspaceID
	e.Index = -1
	b.added = append(b.added, e)
}

// Write stores events that do not come from a request (blocked events replayed once a tracking
// plan lets them through), through the same writer and its group commits, without stages. It
// returns once they are committed.
func (s *Service) Write(ctx context.Context, workspaceID string, events []*Event) error {
	for _, e := range events {
		e.WorkspaceID = workspaceID
		e.prepare()
	}
	return s.writer.write(ctx, workspaceID, events)
}
