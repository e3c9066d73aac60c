package delivery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/id"
)

// deleter is implemented by connectors whose vendor has a call that deletes an end user's data
// (a regulation of internal/regulation).
type deleter interface {
	// deleteRequests builds the calls that delete the subjects' data, subjectType being USER_ID,
	// ANONYMOUS_ID or EMAIL; supported is false when the vendor has no call for that kind of
	// identifier. An error means the settings cannot work.
	deleteRequests(ctx context.Context, cfg Config, regulationID, subjectType string, subjects []string) (reqs []*http.Request, supported bool, err error)
}

// Deletion statuses of one destination, as regulations name them.
const (
	DeletionFinished     = "FINISHED"
	DeletionFailed       = "FAILED"
	DeletionNotSupported = "NOT_SUPPORTED"
)

// DeletionResult is what one destination made of a regulation's deletion.
type DeletionResult struct {
	DestinationID, Name, Status string
	Attempts                    int
	Error                       string // why it failed, masked
}

// deletionTries is how many times one deletion call is made before it fails.
const deletionTries = 3

// DeleteSubjects sends the deletion calls of a regulation to every enabled destination of the
// workspace that an enabled connection leads to, through the egress filter, each call retried a
// few times (5xx, 429, timeouts). Every try is recorded as a delivery attempt whose event id is
// the regulation's, with its request (the subjects masked, like secrets), so that it shows in
// Event Delivery and counts in the destination's health; destinations whose connector has no
// deletion call are NOT_SUPPORTED.
func (e *Engine) DeleteSubjects(ctx context.Context, workspaceID, regulationID, subjectType string, subjects []string) ([]DeletionResult, error) {
	var dests []struct {
		ID   string `db:"id"`
		Slug string `db:"catalog_slug"`
		Name string `db:"name"`
	}
	if err := e.db.Select(ctx, &dests, `SELECT d.id, d.catalog_slug, d.name FROM destinations d WHERE d.workspace_id = ? AND d.enabled = TRUE
		AND EXISTS (SELECT 1 FROM connections c WHERE c.destination_id = d.id AND c.enabled = TRUE) ORDER BY d.id`, workspaceID); err != nil {
		return nil, err
	}
	out := make([]DeletionResult, 0, len(dests))
	for _, d := range dests {
		res := DeletionResult{DestinationID: d.ID, Name: d.Name, Status: DeletionNotSupported}
		del, ok := ConnectorFor(d.Slug).(deleter)
		if !ok {
			out = append(out, res)
			continue
		}
		cfg, err := e.config(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		res, err = e.deleteAt(ctx, cfg, del, regulationID, subjectType, subjects)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (e *Engine) deleteAt(ctx context.Context, cfg *laneConfig, del deleter, regulationID, subjectType string, subjects []string) (DeletionResult, error) {
	res := DeletionResult{DestinationID: cfg.DestinationID, Name: cfg.Name, Status: DeletionFinished}
	// The subjects are masked in what is recorded, like secrets: the record of a deletion must
	// not keep what it deleted.
	hide := map[string]string{}
	for k, v := range cfg.Secrets {
		hide[k] = v
	}
	for i, s := range subjects {
		hide[fmt.Sprintf("\x00subject%d", i)] = s
	}
	mask := newMasker(hide)
	reqs, supported, err := del.deleteRequests(ctx, cfg.Config, regulationID, subjectType, subjects)
	switch {
	case err != nil:
		res.Status, res.Error = DeletionFailed, mask.text(err.Error())
		return res, nil
	case !supported:
		res.Status = DeletionNotSupported
		return res, nil
	}
	client := egress.Client(e.opt.Egress.Transport(), cfg.timeout)
	for _, req := range reqs {
		for try := 1; ; try++ {
			a, rec, retry := e.deletionCall(ctx, client, mask, cfg, req, regulationID, try)
			res.Attempts++
			if err := e.recordDeletion(ctx, rec, a); err != nil {
				return res, err
			}
			if a.Outcome == Delivered {
				break
			}
			if !retry || try >= deletionTries {
				res.Status, res.Error = DeletionFailed, a.ErrorMessage
				break
			}
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(e.opt.Policy.backoff(try+1, 0)):
			}
		}
		if res.Status == DeletionFailed {
			break
		}
	}
	return res, nil
}

// deletionCall makes one try of a deletion call and says what happened.
func (e *Engine) deletionCall(ctx context.Context, client *http.Client, mask masker, cfg *laneConfig, req *http.Request, regulationID string, try int) (*Attempt, *requestRecord, bool) {
	reqCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	r := req.Clone(reqCtx)
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			r.Body = b
		}
	}
	r.Header.Set("Idempotency-Key", regulationID+":"+cfg.DestinationID)
	rec := &requestRecord{ID: id.New(RequestPrefix), WorkspaceID: cfg.WorkspaceID, DestinationID: cfg.DestinationID, Events: 0,
		Method: r.Method, URL: mask.text(r.URL.String()), Headers: mask.headerJSON(r.Header), Redirects: "[]"}
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(b)
			rec.Body = mask.text(string(raw))
		}
	}
	start := time.Now()
	resp, err := client.Do(r)
	status := 0
	if err == nil {
		status = resp.StatusCode
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
		body, headers := sanitize(mask.text(string(answer))), sanitize(mask.headerJSON(resp.Header))
		rec.ResponseStatus, rec.ResponseBody, rec.ResponseHeaders = &status, &body, &headers
	} else if reqCtx.Err() != nil && ctx.Err() == nil {
		err = context.DeadlineExceeded
	}
	end := time.Now()
	rec.LatencyMS, rec.CreatedAt = ms(end.Sub(start)), end
	a := &Attempt{ID: id.New(AttemptPrefix), WorkspaceID: cfg.WorkspaceID, DestinationID: cfg.DestinationID, EventID: regulationID,
		RequestID: rec.ID, Number: try, LatencyMS: rec.LatencyMS, EndToEndMS: rec.LatencyMS, CreatedAt: end, Outcome: Delivered}
	errType, retryable := classify(status, err)
	if errType != "" {
		a.Outcome, a.ErrorType, a.ErrorMessage = Failed, errType, sanitize(mask.text("deletion call: "+describe(status, err)))
		if retryable && try < deletionTries {
			a.Outcome = Retrying
		}
	}
	rec.Delivered = a.Outcome == Delivered
	return a, rec, retryable
}

// recordDeletion stores one try of a deletion call, and hands it to OnAttempts (health).
func (e *Engine) recordDeletion(ctx context.Context, rec *requestRecord, a *Attempt) error {
	err := e.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO delivery_requests (id, workspace_id, destination_id, source_id, events, method, url, headers, body,
			redirects, response_status, response_headers, response_body, latency_ms, delivered, created_at) VALUES (?, ?, ?, '', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rec.ID, rec.WorkspaceID, rec.DestinationID, rec.Method, rec.URL, rec.Headers, rec.Body, rec.Redirects, rec.ResponseStatus,
			rec.ResponseHeaders, rec.ResponseBody, rec.LatencyMS, rec.Delivered, db.FormatTime(rec.CreatedAt)); err != nil {
			return err
		}
		var errType, errMsg any
		if a.ErrorType != "" {
			errType, errMsg = a.ErrorType, a.ErrorMessage
		}
		_, err := tx.Exec(ctx, `INSERT INTO delivery_attempts (id, workspace_id, destination_id, event_id, source_id, attempt, outcome,
			error_type, error_message, request_id, latency_ms, end_to_end_ms, created_at) VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.WorkspaceID, a.DestinationID, a.EventID, a.Number, a.Outcome, errType, errMsg, a.RequestID, a.LatencyMS, a.EndToEndMS,
			db.FormatTime(a.CreatedAt))
		return err
	})
	if err == nil && e.opt.OnAttempts != nil {
		e.opt.OnAttempts(ctx, []Attempt{*a})
	}
	return err
}

// deleteMessages are Segment's `delete` messages for the subjects: one per subject, by userId or
// anonymousId (an email is a userId where it is one).
func deleteMessages(regulationID, subjectType string, subjects []string) ([]map[string]any, bool) {
	field := "userId"
	switch subjectType {
	case "USER_ID", "EMAIL":
	case "ANONYMOUS_ID":
		field = "anonymousId"
	default:
		return nil, false
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	out := make([]map[string]any, len(subjects))
	for i, s := range subjects {
		out[i] = map[string]any{"type": "delete", field: s, "messageId": fmt.Sprintf("%s-%d", regulationID, i), "timestamp": now,
			"context": map[string]any{"regulationId": regulationID}}
	}
	return out, true
}

// chunks splits subjects into lists of at most n.
func chunks(subjects []string, n int) [][]string {
	var out [][]string
	for start := 0; start < len(subjects); start += n {
		out = append(out, subjects[start:min(start+n, len(subjects))])
	}
	return out
}

// The Segment-compatible forward sends the delete messages in batches, as any other messages.
func (s segmentForward) deleteRequests(ctx context.Context, cfg Config, regulationID, subjectType string, subjects []string) ([]*http.Request, bool, error) {
	msgs, ok := deleteMessages(regulationID, subjectType, subjects)
	if !ok {
		return nil, false, nil
	}
	var out []*http.Request
	for start := 0; start < len(msgs); start += 100 {
		parts := make([]Part, 0, 100)
		for _, m := range msgs[start:min(start+100, len(msgs))] {
			p, err := one(m)
			if err != nil {
				return nil, true, err
			}
			parts = append(parts, p)
		}
		req, err := s.Request(ctx, cfg, parts)
		if err != nil {
			return nil, true, err
		}
		out = append(out, req)
	}
	return out, true, nil
}

// A webhook gets one signed delete event per subject, as any other event.
func (w webhook) deleteRequests(ctx context.Context, cfg Config, regulationID, subjectType string, subjects []string) ([]*http.Request, bool, error) {
	msgs, ok := deleteMessages(regulationID, subjectType, subjects)
	if !ok {
		return nil, false, nil
	}
	out := make([]*http.Request, 0, len(msgs))
	for _, m := range msgs {
		p, err := one(m)
		if err != nil {
			return nil, true, err
		}
		req, err := w.Request(ctx, cfg, []Part{p})
		if err != nil {
			return nil, true, err
		}
		out = append(out, req)
	}
	return out, true, nil
}

// amplitudeDeletionEndpoint is Amplitude's User Privacy API (deletions of users by user_id), which
// takes the project's API key and secret key in Basic auth and up to 100 ids a request.
const amplitudeDeletionEndpoint = "https://amplitude.com/api/2/deletions/users"

func (amplitude) deleteRequests(ctx context.Context, cfg Config, regulationID, subjectType string, subjects []string) ([]*http.Request, bool, error) {
	if subjectType != "USER_ID" && subjectType != "EMAIL" {
		return nil, false, nil // Amplitude deletes by user_id (or its own ids), not by device
	}
	apiKey, err := required(cfg, "apiKey")
	if err != nil {
		return nil, true, err
	}
	secretKey, err := required(cfg, "secretKey")
	if err != nil {
		return nil, true, fmt.Errorf("%v: Amplitude's deletion API needs the project's secret key", err)
	}
	u, err := absoluteURL(cfg, "deletionEndpoint", amplitudeDeletionEndpoint)
	if err != nil {
		return nil, true, err
	}
	var out []*http.Request
	for _, ids := range chunks(subjects, 100) {
		req, err := jsonRequest(ctx, http.MethodPost, u.String(), map[string]any{"user_ids": ids, "requester": "junction regulation " + regulationID,
			"ignore_invalid_id": true, "delete_from_org": false})
		if err != nil {
			return nil, true, err
		}
		req.SetBasicAuth(apiKey, secretKey)
		out = append(out, req)
	}
	return out, true, nil
}

// mixpanelDeletionEndpoint is Mixpanel's GDPR API (data deletions by distinct_id, which is the
// userId, else the anonymousId, of the events sent), with the project token in the query and a
// GDPR OAuth token as bearer; up to 2,000 ids a request.
const mixpanelDeletionEndpoint = "https://mixpanel.com/api/app/data-deletions/v3.0/"

func (mixpanel) deleteRequests(ctx context.Context, cfg Config, regulationID, subjectType string, subjects []string) ([]*http.Request, bool, error) {
	if subjectType != "USER_ID" && subjectType != "ANONYMOUS_ID" && subjectType != "EMAIL" {
		return nil, false, nil
	}
	token, err := required(cfg, "projectToken")
	if err != nil {
		return nil, true, fmt.Errorf("%v: Mixpanel's GDPR API needs the project token", err)
	}
	oauth, err := required(cfg, "gdprToken")
	if err != nil {
		return nil, true, fmt.Errorf("%v: Mixpanel's GDPR API needs an OAuth token for GDPR requests", err)
	}
	u, err := absoluteURL(cfg, "deletionEndpoint", mixpanelDeletionEndpoint)
	if err != nil {
		return nil, true, err
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	var out []*http.Request
	for _, ids := range chunks(subjects, 2000) {
		req, err := jsonRequest(ctx, http.MethodPost, u.String(), map[string]any{"distinct_ids": ids, "compliance_type": "GDPR"})
		if err != nil {
			return nil, true, err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(oauth))
		out = append(out, req)
	}
	return out, true, nil
}
