package delivery

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// segmentForward sends events, as stored, to a Segment-compatible tracking API (Segment,
// RudderStack, another Junction): POST {endpoint}/v1/batch with the write key as the Basic-auth
// user name and {"batch": [events...], "sentAt": now}, up to 500 events and 450 KB a request
// (Segment takes 500 KB).
//
// Each event keeps its messageId (so the receiver drops a retried duplicate), its corrected
// timestamp, originalTimestamp, context and integrations. Its own sentAt is left out: a receiver
// corrects timestamp for clock skew with sentAt, and the client's sentAt against our corrected
// timestamp would shift the event by the client's skew; the batch's sentAt is our clock's, so the
// receiver's correction leaves the timestamp as it is.
type segmentForward struct{}

const segmentEndpoint = "https://api.segment.io"

func init() { register("segment", segmentForward{}) }

func (segmentForward) Limits() Limits { return Limits{Items: 500, Bytes: 450 << 10} }

func (segmentForward) Prepare(cfg Config, ev *Event) (Part, error) {
	var msg map[string]json.RawMessage // raw values: numbers and key spelling stay as stored
	if err := json.Unmarshal(ev.Raw, &msg); err != nil || msg == nil {
		return Part{}, Skip("the stored event is not a JSON object")
	}
	if _, ok := msg["sentAt"]; !ok {
		return Part{Items: []json.RawMessage{ev.Raw}}, nil
	}
	delete(msg, "sentAt")
	return one(msg)
}

func (segmentForward) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	writeKey, err := required(cfg, "writeKey")
	if err != nil {
		return nil, err
	}
	u, err := endpoint(cfg, segmentEndpoint)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/batch"
	body := struct {
		Batch  []json.RawMessage `json:"batch"`
		SentAt string            `json:"sentAt"`
	}{items(parts), time.Now().UTC().Format(time.RFC3339Nano)}
	req, err := postJSON(ctx, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(writeKey, "")
	return req, nil
}
