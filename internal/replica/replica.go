// Package replica lets several processes of the server share one PostgreSQL database. What a
// process keeps in memory is carried to the others over LISTEN/NOTIFY: the bus's messages (GraphQL
// subscriptions), and signals such as a moved rights epoch, revoked credentials or a changed
// source, each handled by the domain that owns it. Work that must happen in one process at a time
// is held by a lease in the database (leases.go): each destination's delivery lane, and the
// periodic work (the leader's).
//
// NOTIFY payloads are limited to 8000 bytes: a larger batch of messages is stored in
// replica_messages and the NOTIFY carries its id. Each process ignores its own messages. Nothing
// of this runs on SQLite, where one process owns the database file.
package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/id"
)

const (
	// notifyLimit is the largest payload sent inline: PostgreSQL refuses NOTIFY payloads of 8000
	// bytes or more.
	notifyLimit = 7900
	// queueLimit bounds the bus messages waiting to leave; past it they are dropped, as the bus
	// drops a slow subscriber. Signals are never dropped.
	queueLimit = 20000
	// keepMessages is how long stored batches stay for replicas to read.
	keepMessages = 5 * time.Minute
	// signalPrefix starts the kinds of signals, which share the channel with the bus's topics.
	signalPrefix = "!"
)

// Options configure a Set.
type Options struct {
	URL    string // the PostgreSQL database, as the server opened it
	Space  string // db.DB.Space(): the channel is named after it
	Bus    *bus.Bus
	Logger *slog.Logger
	// LeaseTTL is how long a lease lives without renewal (5 s); leases are renewed every
	// LeaseTTL/5.
	LeaseTTL time.Duration
	// Sparse names the kinds of topic whose messages go only to the replicas that listen to the
	// topic (many messages, few listeners: a source's live tail).
	Sparse []string
}

// Set is this process's membership of the replicas on one database.
type Set struct {
	id      string
	channel string
	opt     Options
	log     *slog.Logger
	bus     *bus.Bus
	pool    *pgxpool.Pool
	listenC *pgx.ConnConfig

	handlers    sync.Map // kind -> func(key string, payload []byte)
	reconnected []func()

	mu      sync.Mutex
	queue   []item
	queued  int // bus messages among queue
	wake    chan struct{}
	peers   atomic.Int64 // other live replicas, as last counted
	dropped atomic.Int64

	leases   leases
	interest interest

	stop chan struct{}
	wg   sync.WaitGroup
}

// item is one message between replicas: a bus message (Kind is a topic's kind) or a signal.
type item struct {
	Kind    string          `json:"k"`
	Key     string          `json:"t,omitempty"`
	Payload json.RawMessage `json:"p,omitempty"`
	value   any             // encoded by the sender, off the publisher's goroutine
	signal  bool
}

// envelope is what a NOTIFY (or a stored batch) carries.
type envelope struct {
	Origin string `json:"o"`
	Items  []item `json:"m"`
}

// Open joins the replicas of the database: it registers this process, listens on the channel and
// relays b's messages. Handlers and OnReconnect are set before Start.
func Open(ctx context.Context, o Options) (*Set, error) {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	pcfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = "junction-replica"
	pcfg.MaxConns = 3
	pcfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte(o.Space))
	s := &Set{
		id:      id.New("rep"),
		channel: "junction_" + strconv.FormatUint(h.Sum64(), 36),
		opt:     o, log: o.Logger, bus: o.Bus, pool: pool,
		listenC: pcfg.ConnConfig.Copy(),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	s.leases.init(s)
	s.interest.init(o.Sparse)
	if err := s.heartbeat(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("replicas: registering: %w", err)
	}
	return s, nil
}

// ID is this process's id among the replicas.
func (s *Set) ID() string { return s.id }

// Handle makes f hear the signals of kind that other replicas send. f must not block for long.
func (s *Set) Handle(kind string, f func(key string, payload []byte)) {
	s.handlers.Store(signalPrefix+kind, f)
}

// OnReconnect adds f to what runs after the listening connection was lost and is back: messages
// sent meanwhile were missed, so caches are dropped and rights read again.
func (s *Set) OnReconnect(f func()) { s.reconnected = append(s.reconnected, f) }

// Start listens (before it returns, so that nothing sent after it is missed), sends, and keeps
// the leases.
func (s *Set) Start(ctx context.Context) error {
	conn, err := s.connectListener(ctx)
	if err != nil {
		return err
	}
	s.bus.Relay(s.relay)
	s.watchInterest()
	// The first round before serving: a replica alone leads at once.
	s.leases.roundOrWarn()
	s.wg.Add(3)
	go s.listen(conn)
	go s.send()
	go s.leases.run()
	return nil
}

// Close releases this process's leases (others take them at once), stops listening and
// sending, and forgets this replica.
func (s *Set) Close() {
	select {
	case <-s.stop:
		return
	default:
		close(s.stop)
	}
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM replica_leases WHERE owner = $1`, s.id); err != nil {
		s.log.Warn("replicas: releasing leases failed", "error", err.Error())
	}
	_, _ = s.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, s.id)
	s.pool.Close()
}

// Send carries a signal to the other replicas (never to this one). Call it after the transaction
// that made the change has committed. payload is encoded as JSON.
func (s *Set) Send(kind, key string, payload any) {
	s.enqueue(item{Kind: signalPrefix + kind, Key: key, value: payload, signal: true})
}

// SendWhenShared is Send for signals that only save time (waking a lane that would poll anyway):
// they are not sent while this replica is alone.
func (s *Set) SendWhenShared(kind, key string, payload any) {
	if s.peers.Load() > 0 {
		s.Send(kind, key, payload)
	}
}

// relay hears the bus's messages. While no other replica is alive nothing is sent: a replica that
// starts registers itself before it serves, and the others count it within a lease round. A
// message of a sparse kind is sent only when another replica listens to its topic.
func (s *Set) relay(m bus.Message) {
	if s.peers.Load() == 0 || !s.interest.wanted(m.Topic) {
		return
	}
	s.enqueue(item{Kind: m.Topic.Kind, Key: m.Topic.Key, value: m.Payload})
}

func (s *Set) enqueue(it item) {
	s.mu.Lock()
	if !it.signal {
		if s.queued >= queueLimit {
			s.mu.Unlock()
			if s.dropped.Add(1)%1000 == 1 {
				s.log.Warn("replicas: bus messages dropped, the other replicas are not keeping up", "dropped", s.dropped.Load())
			}
			return
		}
		s.queued++
	}
	s.queue = append(s.queue, it)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// send sends what is queued, as one NOTIFY per round (or one stored batch when too large), in the
// order it was queued.
func (s *Set) send() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			s.flush() // signals of the last commits
			return
		case <-s.wake:
		}
		s.flush()
	}
}

func (s *Set) flush() {
	s.mu.Lock()
	items := s.queue
	s.queue, s.queued = nil, 0
	s.mu.Unlock()
	if len(items) == 0 {
		return
	}
	env := envelope{Origin: s.id, Items: items[:0]}
	for _, it := range items {
		if it.value != nil {
			raw, err := json.Marshal(it.value)
			if err != nil {
				s.log.Error("replicas: encoding a message failed", "kind", it.Kind, "error", err.Error())
				continue
			}
			it.Payload = raw
		}
		env.Items = append(env.Items, it)
	}
	body, err := json.Marshal(env)
	if err != nil {
		s.log.Error("replicas: encoding messages failed", "error", err.Error())
		return
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if len(body) <= notifyLimit {
			_, err = s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, string(body))
		} else {
			// The row and the NOTIFY commit together: a replica that hears the id finds the row.
			_, err = s.pool.Exec(ctx, `WITH m AS (INSERT INTO replica_messages (origin, body) VALUES ($1, $2) RETURNING id)
				SELECT pg_notify($3, '#' || id) FROM m`, s.id, string(body), s.channel)
		}
		cancel()
		if err == nil || attempt == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond << attempt)
	}
	if err != nil {
		s.log.Error("replicas: sending messages failed", "messages", len(env.Items), "error", err.Error())
	}
}

func (s *Set) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.listenC)
	if err != nil {
		return nil, fmt.Errorf("replicas: listening: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("replicas: listening: %w", err)
	}
	return conn, nil
}

// listen receives the other replicas' messages on its own connection, and connects again when it
// is lost (then runs the OnReconnect functions: what was sent meanwhile was missed).
func (s *Set) listen(conn *pgx.Conn) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.stop; cancel() }()
	defer cancel()
	for {
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("replicas: listening connection lost", "error", err.Error())
				}
				break
			}
			s.received(ctx, conn, n.Payload)
		}
		conn.Close(context.Background())
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			if ctx.Err() != nil {
				return
			}
			var err error
			if conn, err = s.connectListener(ctx); err == nil {
				break
			}
			s.log.Warn("replicas: listening again failed", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		s.log.Info("replicas: listening again; caches dropped")
		for _, f := range s.reconnected {
			f()
		}
	}
}

func (s *Set) received(ctx context.Context, conn *pgx.Conn, payload string) {
	if rowID, ok := strings.CutPrefix(payload, "#"); ok {
		err := conn.QueryRow(ctx, `SELECT body FROM replica_messages WHERE id = $1 AND origin <> $2`, rowID, s.id).Scan(&payload)
		if errors.Is(err, pgx.ErrNoRows) {
			return // this replica's own batch
		}
		if err != nil {
			s.log.Error("replicas: reading a stored batch failed", "id", rowID, "error", err.Error())
			return
		}
	}
	var env envelope
	if err := json.Unmarshal([]byte(payload), &env); err != nil {
		s.log.Error("replicas: a message could not be decoded", "error", err.Error())
		return
	}
	if env.Origin == s.id {
		return
	}
	for _, it := range env.Items {
		if strings.HasPrefix(it.Kind, signalPrefix) {
			if h, ok := s.handlers.Load(it.Kind); ok {
				h.(func(string, []byte))(it.Key, it.Payload)
			}
			continue
		}
		if err := s.bus.Arrived(bus.Topic{Kind: it.Kind, Key: it.Key}, it.Payload); err != nil {
			s.log.Error("replicas: a bus message could not be decoded", "kind", it.Kind, "error", err.Error())
		}
	}
}

// reapMessages deletes stored batches old enough that every replica has read them, in small
// batches. The leader runs it.
func (s *Set) reapMessages(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM replica_messages WHERE id IN (
			SELECT id FROM replica_messages WHERE created_at < now() - make_interval(secs => $1) ORDER BY id LIMIT 500)`,
			keepMessages.Seconds())
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 500 {
			return total, nil
		}
	}
}
