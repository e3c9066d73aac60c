package ingest

import (
	"context"
	"encoding/json"
)

// BadSignature is the reason of a webhook refused at a cloud-app source's inbound URL because its
// signature did not verify (or the source has no signing secret yet); internal/cloudapp stores a
// stand-in for it, so that the debugger and Health show the refusal.
const BadSignature Reason = "BAD_SIGNATURE"

// Inbound is events for a source that did not come with a write key: a cloud app's webhook,
// verified and mapped to Segment's spec by internal/cloudapp.
type Inbound struct {
	WorkspaceID, SourceID string
	Enabled               bool
	// Events are Segment spec events, each with its type, as a batch holds them.
	Events []json.RawMessage
	// Discard, when set, stores every event discarded for this reason, with Message.
	Discard  Reason
	Message  string
	ClientIP string
}

// Receive stores inbound events as the tracking API stores a batch: the same normalisation,
// rate limit, stages, writer, deduplication by messageId and listeners. It returns the events
// once committed (a duplicate of an event stored before is among them, though not stored again).
// Errors: *RateLimited, ErrBusy, or another error when the events could not be stored (logged).
func (s *Service) Receive(ctx context.Context, in Inbound) ([]*Event, error) {
	t := target{WorkspaceID: in.WorkspaceID, SourceID: in.SourceID, Enabled: in.Enabled, Discard: in.Discard, Message: in.Message}
	return s.store(ctx, t, &request{Events: in.Events}, "", in.ClientIP)
}
