package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/id"
)

// A lane delivers to one destination. Its scheduler (one goroutine) reads the events due for a
// retry and the new events after its read position, prepares each through the connector, packs
// them into requests within the connector's limits and hands each request to a goroutine of its
// own as soon as fewer than Concurrency are in flight: requests are pipelined, never held back to
// wait for the slowest of a batch. Finished requests go to the lane's recorder, which commits
// their attempts, the retry table and the cursor in one transaction (several requests' worth when
// they queue up). The cursor moves only over events whose attempts are committed with it, in log
// order, so a crash re-sends what was not recorded and loses nothing: delivery is at least once.
type lane struct {
	e       *Engine
	id      string
	mu      sync.Mutex
	cfg     *laneConfig
	version time.Time
	client  *http.Client
	wakeCh  chan struct{}
	stopCh  chan struct{}
	done    chan struct{}
	// changed is set when the destination changed: its cursor may have moved (enabling a
	// destination moves it to the end of the log), which the scheduler then reads again.
	changed atomic.Bool
	// retriesQueued is set when events were queued for a re-send: the scheduler reads the retry
	// table at its next load.
	retriesQueued atomic.Bool
}

func (l *lane) setConfig(cfg *laneConfig, version time.Time) {
	l.mu.Lock()
	l.cfg, l.version = cfg, version
	l.mu.Unlock()
	l.changed.Store(true)
	l.wake()
}

func (l *lane) config() *laneConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

func (l *lane) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

func (l *lane) close() {
	close(l.stopCh)
	<-l.done
}

// loadChunk is the most events one query reads.
const loadChunk = 1000

// pending is an event on its way: loaded, prepared, and then sent.
type pending struct {
	ev        *Event
	attempts  int       // made before this one
	firstAt   time.Time // of the first attempt; zero for a new event
	fromRetry bool
	cfg       *laneConfig // the settings it was prepared with
	part      Part
	size      int   // bytes of its items
	mark      *mark // new events: its place in the log, for the cursor
}

// mark is a position in the event log that the cursor may pass once it is done: a new event whose
// attempt is recorded (or that was left out), or the end of the log as a load saw it.
type mark struct {
	id   string
	done bool
}

// result is what a request did, for the recorder.
type result struct {
	batch    []*pending
	request  *requestRecord // nil when no request went out (invalid settings)
	attempts []*Attempt     // one per event of batch, in order
	aborted  bool           // the lane is stopping: nothing to record, the events go again
}

// scheduler is the state of a running lane; only its own goroutine touches it.
type scheduler struct {
	l          *lane
	ctx        context.Context
	rec        *recorder
	results    chan *result
	inFlight   int
	queue      []*pending      // prepared, waiting for a request
	marks      []*mark         // new events and log ends, in log order, not yet passed by the cursor
	readAt     string          // the log position after the last new event loaded
	cursorSent string          // the cursor last handed to the recorder
	held       int             // events loaded and not yet committed (bounded by the window)
	retrying   map[string]bool // retry events loaded and not yet committed: not loaded twice
	job        *job            // what the next hand-over to the recorder carries
	more       bool            // the last load was full: more is waiting
	loadedAt   time.Time       // when the last load looked for due retries
	// retriesKnown says that nextRetry is when the next retry not yet loaded is due (zero: none),
	// so that a load before then need not read the retry table: the lane's own recorder makes
	// retries, and a re-send asked through the API wakes the lane with retriesQueued.
	retriesKnown bool
	nextRetry    time.Time
	due          bool // woken, or the timer fired: look for work
}

func (l *lane) run() {
	defer l.e.wg.Done()
	defer close(l.done)
	defer l.client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scheduler{l: l, ctx: ctx, rec: newRecorder(l), results: make(chan *result, l.e.opt.Concurrency),
		retrying: map[string]bool{}, job: &job{}, due: true}
	go s.rec.run()
	s.loop()
	cancel() // abandon requests in flight: their events were not recorded and go again
	for s.inFlight > 0 {
		s.finished(<-s.results)
	}
	s.flush()
	s.rec.close()
}

func (s *scheduler) loop() {
	l := s.l
	for {
		cursor, err := l.cursor(s.ctx)
		if err == nil {
			s.readAt, s.cursorSent = cursor, cursor
			break
		}
		if !l.gone() { // a destination deleted meanwhile has no cursor: its lane is about to stop
			l.e.log.Error("delivery: reading the cursor failed", "destination", l.id, "error", err.Error())
		}
		select {
		case <-l.stopCh:
			return
		case <-time.After(l.e.opt.Poll):
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if l.changed.Swap(false) {
			s.skipTo()
		}
		if room := l.e.opt.Window - s.held; room > 0 && (s.due || s.more) {
			s.due = false
			if err := s.load(room); err != nil {
				if s.ctx.Err() == nil {
					l.e.log.Error("delivery: reading events failed", "destination", l.id, "error", err.Error())
				}
				s.more = false
			}
			if !s.more {
				timer.Reset(s.nextWake())
			}
		}
		s.dispatch()
		s.flush()
		select {
		case <-l.stopCh:
			return
		case r := <-s.results:
			s.finished(r)
		case <-s.rec.acks:
			if a := s.rec.take(); s.acked(a) {
				s.findNextRetry() // the recorder scheduled retries
				timer.Reset(s.nextWake())
			}
		case <-l.wakeCh:
			s.due = true
			if l.retriesQueued.Swap(false) {
				s.retriesKnown = false
			}
		case <-timer.C:
			s.due, s.retriesKnown = true, false // also a safety net: look at the retry table anew
		}
	}
}

// skipTo moves the read position up to the stored cursor when something else moved it ahead (a
// destination disabled and enabled again skips what arrived meanwhile).
func (s *scheduler) skipTo() {
	var c string
	if err := s.l.e.db.Get(s.ctx, &c, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, s.l.id); err != nil {
		return
	}
	if c > s.readAt {
		s.readAt, s.more = c, false
		s.marks = append(s.marks, &mark{id: c, done: true})
		s.advance()
	}
}

// nextWake is how long an idle lane waits before it looks again: until its next retry is due, at
// most Poll.
func (s *scheduler) nextWake() time.Duration {
	wait := s.l.e.opt.Poll
	if s.retriesKnown && !s.nextRetry.IsZero() {
		wait = min(wait, max(time.Until(s.nextRetry), time.Millisecond))
	}
	return wait
}

// findNextRetry reads when the lane's next retry is due. Retries that were due at the last load were
// loaded then, or are in flight (their rows stay until their record commits): they do not count,
// or the lane would look again at once. Zero: none.
func (s *scheduler) findNextRetry() {
	var next *db.Time
	if err := s.l.e.db.Get(s.ctx, &next, `SELECT MIN(next_attempt_at) FROM delivery_retries WHERE destination_id = ? AND next_attempt_at > ?`,
		s.l.id, db.Time{Time: s.loadedAt}); err != nil {
		s.retriesKnown = false
		return
	}
	s.nextRetry, s.retriesKnown = time.Time{}, true
	if next != nil {
		s.nextRetry = next.Time
	}
}

type eventRow struct {
	ID         string  `db:"id"`
	SourceID   string  `db:"source_id"`
	Type       string  `db:"type"`
	ReceivedAt db.Time `db:"received_at"`
	Payload    string  `db:"payload"`
	Attempts   int     `db:"attempts"`
	FirstAt    *string `db:"first_attempt_at"`
}

// load reads up to room events: the retries that are due, then new events after the read position
// from sources connected by an enabled connection (made before the event arrived). Every accepted
// event counts, the source enabled or not now: it was accepted while the source was enabled.
func (s *scheduler) load(room int) error {
	l := s.l
	now := time.Now()
	cfg := l.config()
	s.more = false
	// Retries in flight are still in the table (until their record commits): ask for as many
	// more, and leave them out.
	var retries []eventRow
	limit := min(room, loadChunk) + len(s.retrying)
	if !s.retriesKnown || (!s.nextRetry.IsZero() && !now.Before(s.nextRetry)) {
		s.loadedAt = now
		if err := l.e.db.Select(s.ctx, &retries, `SELECT e.id, e.source_id, e.type, e.received_at, e.payload, r.attempts, r.first_attempt_at
			FROM delivery_retries r JOIN events e ON e.id = r.event_id
			WHERE r.destination_id = ? AND r.next_attempt_at <= ? ORDER BY r.next_attempt_at, r.event_id LIMIT ?`,
			l.id, db.Time{Time: now}, limit); err != nil {
			s.retriesKnown = false
			return err
		}
		s.more = len(retries) == limit
		if s.more {
			s.retriesKnown = false // more are due: read the table again at the next load
		} else {
			s.findNextRetry()
		}
	}
	taken := 0
	for _, r := range retries {
		if s.retrying[r.ID] || taken == room {
			continue
		}
		p := &pending{ev: toEvent(r), attempts: r.Attempts, fromRetry: true}
		if r.FirstAt != nil {
			var t db.Time
			_ = t.Scan(*r.FirstAt)
			p.firstAt = t.Time
		}
		s.retrying[r.ID] = true
		taken++
		s.add(cfg, p)
	}
	room -= taken
	if room <= 0 {
		s.more = true
		return nil
	}
	// The end of the log, read before the events: when fewer events come than asked, the read
	// position moves up to here, never past an event committed after the query looked.
	var head *string
	if err := l.e.db.Get(s.ctx, &head, `SELECT MAX(id) FROM events`); err != nil {
		return err
	}
	ask := min(room, loadChunk)
	var fresh []eventRow
	if err := l.e.db.Select(s.ctx, &fresh, `SELECT e.id, e.source_id, e.type, e.received_at, e.payload, 0 AS attempts, NULL AS first_attempt_at
		FROM events e JOIN connections c ON c.source_id = e.source_id AND c.destination_id = ?
		WHERE e.id > ? AND e.status = 'ACCEPTED' AND c.enabled = TRUE AND e.received_at >= c.created_at
		ORDER BY e.id LIMIT ?`, l.id, s.readAt, ask); err != nil {
		return err
	}
	for _, r := range fresh {
		p := &pending{ev: toEvent(r), mark: &mark{id: r.ID}}
		s.marks = append(s.marks, p.mark)
		s.readAt = r.ID
		s.add(cfg, p)
	}
	if len(fresh) == ask {
		s.more = true
	} else if head != nil && *head > s.readAt {
		s.readAt = *head
		s.marks = append(s.marks, &mark{id: *head, done: true})
		s.advance()
	}
	return nil
}

func toEvent(r eventRow) *Event {
	ev := &Event{ID: r.ID, SourceID: r.SourceID, Type: strings.ToLower(r.Type), Raw: []byte(r.Payload), ReceivedAt: r.ReceivedAt.Time}
	_ = json.Unmarshal(ev.Raw, &ev.Payload)
	if ev.Payload == nil {
		ev.Payload = map[string]any{}
	}
	return ev
}

// cursor returns the destination's cursor, creating it at the current end of the log: a new
// destination receives the events that arrive from now on.
func (l *lane) cursor(ctx context.Context) (string, error) {
	var c string
	err := l.e.db.Get(ctx, &c, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, l.id)
	if err == nil || !db.IsNoRows(err) {
		return c, err
	}
	var created db.Time
	if err := l.e.db.Get(ctx, &created, `SELECT created_at FROM destinations WHERE id = ?`, l.id); err != nil {
		return "", err
	}
	c = id.Floor("evt", created.Time)
	err = l.e.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO delivery_cursors (destination_id, last_event_id) VALUES (?, ?) ON CONFLICT (destination_id) DO NOTHING`, l.id, c)
		return err
	})
	if err != nil {
		return "", err
	}
	err = l.e.db.Get(ctx, &c, `SELECT last_event_id FROM delivery_cursors WHERE destination_id = ?`, l.id)
	return c, err
}

// add prepares a loaded event: left out (its integrations object, or the connector skips it),
// failed for good (the settings cannot work), or queued for a request.
func (s *scheduler) add(cfg *laneConfig, p *pending) {
	s.held++
	p.cfg = cfg
	if !wanted(p.ev, cfg) {
		s.settle(p, nil)
		return
	}
	if f := s.l.e.opt.Outgoing; f != nil {
		if raw, changed := f(s.ctx, s.l.id, p.ev.Raw); changed {
			p.ev.Raw, p.ev.Payload = raw, nil
			if json.Unmarshal(raw, &p.ev.Payload) != nil || p.ev.Payload == nil {
				p.ev.Payload = map[string]any{}
			}
		}
	}
	part, err := cfg.conn.Prepare(cfg.Config, p.ev)
	var sk *skip
	switch {
	case errors.As(err, &sk):
		s.settle(p, nil)
	case err != nil:
		a := s.l.newAttempt(p, time.Now())
		a.Outcome, a.ErrorType, a.ErrorMessage = Failed, ErrInvalidSettings, cfg.mask.text(err.Error())
		s.l.logFailure(cfg, a.ErrorType, 0, 1, a.ErrorMessage)
		s.settle(p, a)
	default:
		p.part = part
		for _, it := range part.Items {
			p.size += len(it) + 1
		}
		s.queue = append(s.queue, p)
	}
}

// settle adds an event's outcome to the next hand-over: its attempt (nil when it was left out),
// its retry row, and its mark, which lets the cursor pass it.
func (s *scheduler) settle(p *pending, a *Attempt) {
	s.job.n++
	switch {
	case a != nil:
		s.job.attempts = append(s.job.attempts, a)
	case p.fromRetry:
		s.job.clear = append(s.job.clear, p.ev.ID) // left out now: no more retries
	}
	if p.fromRetry {
		s.job.released = append(s.job.released, p.ev.ID)
	}
	if p.mark != nil {
		p.mark.done = true
		s.advance()
	}
}

// advance moves the cursor to hand over past the marks that are done, in log order.
func (s *scheduler) advance() {
	for len(s.marks) > 0 && s.marks[0].done {
		if s.marks[0].id > s.cursorSent {
			s.job.cursor = s.marks[0].id
		}
		s.marks = s.marks[1:]
	}
}

// dispatch starts requests while fewer than Concurrency are in flight.
func (s *scheduler) dispatch() {
	for s.inFlight < s.l.e.opt.Concurrency && len(s.queue) > 0 {
		batch := s.take()
		s.inFlight++
		go func() { s.results <- s.l.send(s.ctx, batch) }()
	}
}

// take packs the next request: the first queued event and the queued events after it of the same
// source, key and settings, within the connector's limits. The others stay queued, in order. A
// request never mixes sources: it is shown with the attempts of each of its events, to whoever
// may see that event's source, and it goes with its source when the source is deleted.
func (s *scheduler) take() []*pending {
	first := s.queue[0]
	lim := first.cfg.limits
	batch := []*pending{first}
	items, size := len(first.part.Items), first.size
	rest := s.queue[:0]
	for i, p := range s.queue[1:] {
		if items >= lim.Items {
			rest = append(rest, s.queue[1+i:]...)
			break
		}
		if p.cfg == first.cfg && p.ev.SourceID == first.ev.SourceID && p.part.Key == first.part.Key &&
			items+len(p.part.Items) <= lim.Items && size+p.size <= lim.Bytes {
			batch = append(batch, p)
			items, size = items+len(p.part.Items), size+p.size
			continue
		}
		rest = append(rest, p)
	}
	clear(s.queue[len(rest):])
	s.queue = rest
	return batch
}

// finished takes a request's result.
func (s *scheduler) finished(r *result) {
	s.inFlight--
	if r.aborted {
		s.held -= len(r.batch) // not recorded: loaded again at the next start
		return
	}
	if r.request != nil {
		s.job.requests = append(s.job.requests, r.request)
	}
	for i, p := range r.batch {
		s.settle(p, r.attempts[i])
	}
}

// flush hands what was settled to the recorder.
func (s *scheduler) flush() {
	j := s.job
	if j.n == 0 && j.cursor == "" {
		return
	}
	if j.cursor != "" {
		s.cursorSent = j.cursor
	}
	s.job = &job{}
	s.rec.submit(j)
}

// acked releases what the recorder committed, and tells whether it scheduled retries (the timer
// then wakes the lane when the first is due).
func (s *scheduler) acked(a ack) bool {
	s.held -= a.n
	for _, id := range a.released {
		delete(s.retrying, id)
	}
	return a.retries
}

// Attempt is the record of one attempt to deliver one event, as stored.
type Attempt struct {
	ID, WorkspaceID, DestinationID, EventID, SourceID string
	RequestID                                         string // empty when no request went out
	Number                                            int
	Outcome, ErrorType, ErrorMessage                  string
	LatencyMS, EndToEndMS                             float64
	CreatedAt                                         time.Time
	next                                              time.Time // for RETRYING: when
	firstAt                                           time.Time
	fromRetry                                         bool
}

// requestRecord is one HTTP request and its answer, as stored: masked, the body of the answer
// kept only when it came from the destination's own host.
type requestRecord struct {
	ID, WorkspaceID, DestinationID string
	SourceID                       string // of every event it carried
	Events                         int
	Method, URL, Headers, Body     string
	Redirects                      string
	ResponseStatus                 *int
	ResponseHeaders, ResponseBody  *string
	LatencyMS                      float64
	Delivered                      bool
	CreatedAt                      time.Time
}

func (l *lane) newAttempt(p *pending, now time.Time) *Attempt {
	a := &Attempt{ID: id.New(AttemptPrefix), WorkspaceID: p.cfg.WorkspaceID, DestinationID: p.cfg.DestinationID, EventID: p.ev.ID,
		SourceID: p.ev.SourceID, Number: p.attempts + 1, firstAt: p.firstAt, fromRetry: p.fromRetry, CreatedAt: now,
		EndToEndMS: ms(now.Sub(p.ev.ReceivedAt))}
	if a.firstAt.IsZero() {
		a.firstAt = now
	}
	return a
}

// maxResponseBody is how much of an answer is kept for Event Delivery; maxAnswerRead is how much
// is read to find which events a vendor refused.
const (
	maxResponseBody = 4096
	maxAnswerRead   = 1 << 20
)

// send makes one request for a batch of events and says what happened to each.
func (l *lane) send(ctx context.Context, batch []*pending) *result {
	cfg := batch[0].cfg
	r := &result{batch: batch, attempts: make([]*Attempt, len(batch))}
	parts := make([]Part, len(batch))
	for i, p := range batch {
		parts[i] = p.part
	}
	reqCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	reqCtx, trace := egress.Trace(reqCtx)
	req, err := cfg.conn.Request(reqCtx, cfg.Config, parts)
	if err != nil {
		now := time.Now()
		msg := cfg.mask.text(err.Error())
		for i, p := range batch {
			a := l.newAttempt(p, now)
			a.Outcome, a.ErrorType, a.ErrorMessage = Failed, ErrInvalidSettings, msg
			r.attempts[i] = a
		}
		l.logFailure(cfg, ErrInvalidSettings, 0, len(batch), msg)
		return r
	}
	if cfg.limits.Items == 1 {
		req.Header.Set("Idempotency-Key", batch[0].ev.ID+":"+cfg.DestinationID)
	}
	rec := &requestRecord{ID: id.New(RequestPrefix), WorkspaceID: cfg.WorkspaceID, DestinationID: cfg.DestinationID,
		SourceID: batch[0].ev.SourceID, Events: len(batch),
		Method: req.Method, URL: cfg.mask.text(req.URL.String()), Headers: cfg.mask.headerJSON(req.Header), Redirects: "[]"}
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(b)
			rec.Body = cfg.mask.text(string(raw))
		}
	}
	start := time.Now()
	res, err := l.client.Do(req)
	var answer []byte
	status := 0
	if err == nil {
		status = res.StatusCode
		answer, _ = io.ReadAll(io.LimitReader(res.Body, maxAnswerRead))
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)) // let the connection be reused
		res.Body.Close()
	}
	end := time.Now()
	if ctx.Err() != nil {
		r.aborted = true
		return r
	}
	if err != nil && reqCtx.Err() != nil {
		err = context.DeadlineExceeded
	}
	r.request = rec
	rec.LatencyMS, rec.CreatedAt = ms(end.Sub(start)), end
	if len(*trace) > 0 {
		for i := range *trace {
			(*trace)[i].URL = cfg.mask.text((*trace)[i].URL)
		}
		b, _ := json.Marshal(*trace)
		rec.Redirects = sanitize(string(b))
	}
	var wait time.Duration
	if res != nil && err == nil {
		rec.ResponseStatus = &status
		wait = retryAfter(res.Header, end)
		// Only the destination's own answer is kept: after a redirect to another host, the
		// answer is that host's, and may be an internal service's.
		if sameOrigin(req.URL, res.Request.URL) {
			body := string(answer)
			if len(body) > maxResponseBody {
				body = body[:maxResponseBody] + "…(truncated)"
			}
			body, headers := sanitize(cfg.mask.text(body)), sanitize(cfg.mask.headerJSON(res.Header))
			rec.ResponseBody, rec.ResponseHeaders = &body, &headers
		}
	}
	errType, retryable := classify(status, err)
	msg := ""
	if errType != "" {
		msg = sanitize(cfg.mask.text(describe(status, err)))
	}
	// Vendors that say which events of a batch they refused: the others delivered, or sent again.
	var refused map[int]string
	othersDelivered := false
	if pa, ok := cfg.conn.(partialAnswer); ok && errType != "" && len(batch) > 0 {
		if ref, others, ok := pa.refused(status, answer); ok {
			refused, othersDelivered = map[int]string{}, others
			item := 0
			for i, p := range batch {
				for range p.part.Items {
					if why, bad := ref[item]; bad {
						refused[i] = why
					}
					item++
				}
			}
		}
	}
	// The events of a request that are retried go again together: one backoff (jitter included)
	// per attempt number, so that they are due at the same moment and share a request again.
	nexts := map[int]time.Time{}
	next := func(number int) time.Time {
		t, ok := nexts[number]
		if !ok {
			t = end.Add(l.e.opt.Policy.backoff(number+1, wait))
			nexts[number] = t
		}
		return t
	}
	failures := 0
	for i, p := range batch {
		a := l.newAttempt(p, end)
		a.RequestID, a.LatencyMS = rec.ID, rec.LatencyMS
		et, retry, why := errType, retryable, msg
		if refused != nil {
			if reason, bad := refused[i]; bad {
				retry, why = false, sanitize(cfg.mask.text(reason))
			} else if othersDelivered {
				et = ""
			} else {
				retry, why = true, msg+" (the vendor refused other events of this request; this one is sent again)"
			}
		}
		l.outcome(a, et, retry, why, next)
		if a.Outcome != Delivered {
			failures++
		}
		r.attempts[i] = a
	}
	rec.Delivered = failures == 0
	if failures > 0 {
		l.logFailure(cfg, errType, status, failures, msg)
	}
	return r
}

// outcome sets an attempt's outcome from its error type: delivered, retried at next(attempt
// number) (backoff, or the answer's Retry-After), or failed for good (a final error, or retries
// exhausted).
func (l *lane) outcome(a *Attempt, errType string, retryable bool, msg string, next func(number int) time.Time) {
	switch {
	case errType == "":
		a.Outcome = Delivered
		return
	case !retryable:
		a.Outcome, a.ErrorType = Failed, errType
	default:
		pol := l.e.opt.Policy
		next := next(a.Number)
		if a.Number >= pol.MaxAttempts || next.Sub(a.firstAt) > pol.MaxAge {
			a.Outcome, a.ErrorType = Failed, errType
			msg += " (gave up: retries exhausted)"
		} else {
			a.Outcome, a.ErrorType, a.next = Retrying, errType, next
		}
	}
	a.ErrorMessage = msg
}

// logFailure writes one line for a request that failed, with the error's message masked.
func (l *lane) logFailure(cfg *laneConfig, errType string, status, events int, msg string) {
	args := []any{"destination", cfg.DestinationID, "workspace", cfg.WorkspaceID, "connector", cfg.slug, "error_type", errType, "events", events, "error", msg}
	if status != 0 {
		args = append(args, "status", status)
	}
	l.e.log.Warn("delivery failed", args...)
}

// sameOrigin tells whether two URLs have the same scheme and host.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// sanitize makes text storable in any database: valid UTF-8, without NUL characters (which
// PostgreSQL refuses in text).
func sanitize(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}
