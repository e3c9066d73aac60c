package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// job is what the scheduler hands to the recorder: settled events and where the cursor may go.
type job struct {
	requests []*requestRecord
	attempts []*Attempt
	clear    []string // retry rows to delete for events left out
	released []string // retry events that may be loaded again once this commits
	cursor   string   // "" to leave it
	n        int      // events settled
}

// merge adds a later job to j.
func (j *job) merge(o *job) {
	j.requests = append(j.requests, o.requests...)
	j.attempts = append(j.attempts, o.attempts...)
	j.clear = append(j.clear, o.clear...)
	j.released = append(j.released, o.released...)
	if o.cursor > j.cursor {
		j.cursor = o.cursor
	}
	j.n += o.n
}

// ack tells the scheduler what committed.
type ack struct {
	n        int
	released []string
	retries  bool // retries were scheduled: the lane's timer must know when the first is due
}

// recorder commits a lane's jobs in order, as many as have queued up in one transaction. When a
// commit fails (a full disk, a database that went away), it keeps the jobs and tries again with
// exponential backoff; the scheduler meanwhile stops loading once its window is full, so nothing
// is sent twice because its record failed.
type recorder struct {
	l       *lane
	mu      sync.Mutex
	queue   []*job
	closing bool
	pending ack // committed, not yet taken by the scheduler
	signal  chan struct{}
	acks    chan struct{} // poked when pending grows
	done    chan struct{}
}

// Backoff of failed commits.
const (
	recordBackoff    = time.Second
	recordBackoffMax = time.Minute
)

// A lane's recorder commits at most every recordEvery, unless recordBatch events are waiting.
const (
	recordEvery = 10 * time.Millisecond
	recordBatch = 2000
)

func newRecorder(l *lane) *recorder {
	return &recorder{l: l, signal: make(chan struct{}, 1), acks: make(chan struct{}, 1), done: make(chan struct{})}
}

func (r *recorder) submit(j *job) {
	r.mu.Lock()
	r.queue = append(r.queue, j)
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// close makes the recorder try once more to commit what it holds, and waits for it.
func (r *recorder) close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.poke()
	<-r.done
}

func (r *recorder) run() {
	defer close(r.done)
	var held *job
	var last time.Time // of the last commit
	failures := 0
	for {
		r.mu.Lock()
		queued, closing := r.queue, r.closing
		r.queue = nil
		r.mu.Unlock()
		for _, j := range queued {
			if held == nil {
				held = j
			} else {
				held.merge(j)
			}
		}
		if held == nil {
			if closing {
				return
			}
			<-r.signal
			continue
		}
		// Records share the single writer with the tracking API: one commit per lane at most every
		// recordEvery, with whatever queued up meanwhile, rather than one per request.
		if wait := time.Until(last.Add(recordEvery)); wait > 0 && !closing && held.n < recordBatch {
			select {
			case <-time.After(wait):
			case <-r.l.stopCh:
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.commit(ctx, held)
		cancel()
		last = time.Now()
		if err == nil {
			r.committed(held)
			held, failures = nil, 0
			continue
		}
		if r.l.gone() {
			// Deleted while its events were sent: nothing is left to record them against.
			r.committed(&job{n: held.n, released: held.released})
			held, failures = nil, 0
			continue
		}
		failures++
		wait := min(recordBackoff<<min(failures-1, 10), recordBackoffMax)
		r.l.e.log.Error("delivery: recording attempts failed; the events are kept and their records retried",
			"destination", r.l.id, "events", held.n, "failures", failures, "retry_in", wait.String(), "error", err.Error())
		if closing {
			return // not recorded: the events are sent again at the next start
		}
		select {
		case <-time.After(wait):
		case <-r.l.stopCh:
			// One more try, then stop.
			r.mu.Lock()
			r.closing = true
			r.mu.Unlock()
		}
	}
}

// gone tells whether the lane's destination was deleted (a record or a new cursor then fails on
// its foreign key). When the database cannot say, it is not gone.
func (l *lane) gone() bool {
	var n int
	err := l.e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM destinations WHERE id = ?`, l.id)
	return err == nil && n == 0
}

// committed acknowledges a job to the scheduler and reports its attempts.
func (r *recorder) committed(j *job) {
	retries := false
	for _, a := range j.attempts {
		retries = retries || a.Outcome == Retrying
	}
	r.mu.Lock()
	r.pending.n += j.n
	r.pending.released = append(r.pending.released, j.released...)
	r.pending.retries = r.pending.retries || retries
	r.mu.Unlock()
	select {
	case r.acks <- struct{}{}:
	default:
	}
	if r.l.e.opt.OnAttempts != nil && len(j.attempts) > 0 {
		list := make([]Attempt, len(j.attempts))
		for i, a := range j.attempts {
			list[i] = *a
		}
		r.l.e.opt.OnAttempts(context.Background(), list)
	}
}

// take returns what committed since the last call.
func (r *recorder) take() ack {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.pending
	r.pending = ack{}
	return a
}

// commit writes a job: requests, attempts, the retry table and the cursor, in one transaction.
func (r *recorder) commit(ctx context.Context, j *job) error {
	id := r.l.id
	return r.l.e.db.Tx(ctx, func(tx *db.Tx) error {
		var rows [][]any
		for _, q := range j.requests {
			rows = append(rows, []any{q.ID, q.WorkspaceID, q.DestinationID, q.SourceID, q.Events, q.Method, q.URL, q.Headers, q.Body, q.Redirects,
				q.ResponseStatus, q.ResponseHeaders, q.ResponseBody, q.LatencyMS, q.Delivered, db.FormatTime(q.CreatedAt)})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO delivery_requests (id, workspace_id, destination_id, source_id, events, method, url, headers, body,
			redirects, response_status, response_headers, response_body, latency_ms, delivered, created_at) VALUES `, 16, rows, ""); err != nil {
			return err
		}
		rows = rows[:0]
		for _, a := range j.attempts {
			var errType, errMsg, requestID any
			if a.ErrorType != "" {
				errType, errMsg = a.ErrorType, a.ErrorMessage
			}
			if a.RequestID != "" {
				requestID = a.RequestID
			}
			rows = append(rows, []any{a.ID, a.WorkspaceID, a.DestinationID, a.EventID, a.SourceID, a.Number, a.Outcome, errType, errMsg,
				requestID, a.LatencyMS, a.EndToEndMS, db.FormatTime(a.CreatedAt)})
		}
		if err := tx.InsertRows(ctx, `INSERT INTO delivery_attempts (id, workspace_id, destination_id, event_id, source_id, attempt, outcome,
			error_type, error_message, request_id, latency_ms, end_to_end_ms, created_at) VALUES `, 13, rows, ""); err != nil {
			return err
		}
		// The retry table: an event to retry gets its row (unless the event was pruned meanwhile:
		// a row would break the foreign key and the whole record); any other settled retry loses it.
		gone := append([]string(nil), j.clear...)
		for _, a := range j.attempts {
			switch {
			case a.Outcome == Retrying:
				if _, err := tx.Exec(ctx, `INSERT INTO delivery_retries (destination_id, event_id, attempts, first_attempt_at, next_attempt_at)
					SELECT ?, ?, CAST(? AS INTEGER), ?, ? WHERE EXISTS (SELECT 1 FROM events WHERE id = ?)
					ON CONFLICT (destination_id, event_id) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at`,
					id, a.EventID, a.Number, db.Time{Time: a.firstAt}, db.Time{Time: a.next}, a.EventID); err != nil {
					return err
				}
			case a.fromRetry:
				gone = append(gone, a.EventID)
			}
		}
		for start := 0; start < len(gone); start += 500 {
			chunk := gone[start:min(start+500, len(gone))]
			if _, err := tx.Exec(ctx, `DELETE FROM delivery_retries WHERE destination_id = ? AND event_id IN (`+db.Placeholders(len(chunk))+`)`,
				append([]any{id}, db.Args(chunk)...)...); err != nil {
				return err
			}
		}
		// The cursor only moves forward: another writer (a destination enabled again) may have
		// moved it further.
		if j.cursor != "" {
			if _, err := tx.Exec(ctx, `UPDATE delivery_cursors SET last_event_id = ? WHERE destination_id = ? AND last_event_id < ?`,
				j.cursor, id, j.cursor); err != nil {
				return err
			}
		}
		return nil
	})
}
