package replica

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	leaderLease = "leader"
	lanePrefix  = "lane:"
)

// leases keeps what this replica holds: the leader's lease (periodic work) and the delivery lanes
// of some destinations, an even share of those the engine wants among the live replicas. Every
// round (LeaseTTL/5) it renews them in one statement, counts the live replicas, gives back what
// is over its share and claims expired or free leases up to it. Times are the database's, so
// that the replicas' clocks do not matter.
type leases struct {
	s     *Set
	every time.Duration

	mu        sync.Mutex
	want      map[string]bool // destination ids whose lane should run somewhere
	held      map[string]bool // destination ids whose lane this replica owns
	leader    bool
	lastRenew time.Time // start of the last round that renewed the leases
	release   func(ids []string)
	gained    func()
	onLeader  []func()
	lastReap  time.Time
	kick      chan struct{} // a round now: lanes are wanted that were not
}

func (l *leases) init(s *Set) {
	l.s = s
	l.every = s.opt.LeaseTTL / 5
	l.want, l.held = map[string]bool{}, map[string]bool{}
	l.kick = make(chan struct{}, 1)
}

// Lanes connects the delivery engine: release closes the named lanes and returns once they have
// stopped (their leases go after it); gained tells it that it now owns more lanes.
func (s *Set) Lanes(release func(destinationIDs []string), gained func()) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	s.leases.release, s.leases.gained = release, gained
}

// Want tells which destinations' lanes should run, on some replica.
func (s *Set) Want(destinationIDs []string) {
	w := make(map[string]bool, len(destinationIDs))
	for _, id := range destinationIDs {
		w[id] = true
	}
	s.leases.mu.Lock()
	added := false
	for id := range w {
		added = added || !s.leases.want[id]
	}
	s.leases.want = w
	s.leases.mu.Unlock()
	if added {
		select {
		case s.leases.kick <- struct{}{}:
		default:
		}
	}
}

// Owns tells whether this replica holds the lease of a destination's lane.
func (s *Set) Owns(destinationID string) bool {
	l := &s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[destinationID] && l.fresh()
}

// Leads tells whether this replica holds the leader's lease: it alone runs the periodic work.
func (s *Set) Leads() bool {
	l := &s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader && l.fresh()
}

// OnLeader adds f to what runs when this replica becomes the leader (periodic work starts at once).
func (s *Set) OnLeader(f func()) {
	s.leases.mu.Lock()
	s.leases.onLeader = append(s.leases.onLeader, f)
	s.leases.mu.Unlock()
}

// Replicas returns how many replicas are alive, this one included, as last counted.
func (s *Set) Replicas() int { return int(s.peers.Load()) + 1 }

// fresh tells whether the leases were renewed recently enough to be still ours, with a margin of
// two rounds before they expire.
func (l *leases) fresh() bool {
	return time.Since(l.lastRenew) < l.s.opt.LeaseTTL-2*l.every
}

// heartbeat records this replica as alive and counts the live ones.
func (s *Set) heartbeat(ctx context.Context) error {
	var n int64
	err := s.pool.QueryRow(ctx, `WITH me AS (
			INSERT INTO replicas (id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
			ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING id)
		SELECT count(*) FROM replicas WHERE expires_at > now() AND id <> (SELECT id FROM me)`,
		s.id, s.opt.LeaseTTL.Seconds()).Scan(&n)
	if err == nil {
		s.peers.Store(n)
	}
	return err
}

func (l *leases) run() {
	defer l.s.wg.Done()
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	for {
		select {
		case <-l.s.stop:
			l.dropAll()
			return
		case <-tick.C:
		case <-l.kick:
		}
		l.roundOrWarn()
		l.expire()
		l.s.announceDue()
	}
}

// roundOrWarn runs a round, bounded in time, and logs its failure.
func (l *leases) roundOrWarn() {
	ctx, cancel := context.WithTimeout(context.Background(), l.every*3/2)
	defer cancel()
	if err := l.round(ctx); err != nil {
		select {
		case <-l.s.stop:
		default:
			l.s.log.Warn("replicas: renewing leases failed", "error", err.Error())
		}
	}
}

// expire gives everything up locally when the leases could not be renewed in time: another replica
// may take them once they expire, and must find the lanes stopped.
func (l *leases) expire() {
	l.mu.Lock()
	stale := !l.fresh() && (l.leader || len(l.held) > 0)
	l.mu.Unlock()
	if stale {
		l.s.log.Warn("replicas: leases not renewed in time; lanes stopped until they are")
		l.dropAll()
	}
}

func (l *leases) dropAll() {
	l.mu.Lock()
	ids := keys(l.held)
	l.held, l.leader = map[string]bool{}, false
	release := l.release
	l.mu.Unlock()
	if release != nil && len(ids) > 0 {
		release(ids)
	}
}

func (l *leases) round(ctx context.Context) error {
	s := l.s
	start := time.Now()
	if err := s.heartbeat(ctx); err != nil {
		return err
	}
	live := int(s.peers.Load()) + 1
	kept, err := s.names(ctx, `UPDATE replica_leases SET expires_at = now() + make_interval(secs => $2)
		WHERE owner = $1 RETURNING name`, s.id, s.opt.LeaseTTL.Seconds())
	if err != nil {
		return err
	}
	renewed := map[string]bool{}
	leader := false
	for _, name := range kept {
		if id, ok := strings.CutPrefix(name, lanePrefix); ok {
			renewed[id] = true
		} else if name == leaderLease {
			leader = true
		}
	}

	l.mu.Lock()
	l.lastRenew = start
	want := l.want
	// Lanes this replica ran but no longer holds (taken after an expiry) stop at once.
	var lost []string
	for id := range l.held {
		if !renewed[id] {
			lost = append(lost, id)
			delete(l.held, id)
		}
	}
	l.mu.Unlock()
	l.releaseLocal(lost)

	// Give back what is no longer wanted, and what is over this replica's share.
	share := (len(want) + live - 1) / live
	var giveBack []string
	held := make([]string, 0, len(renewed))
	for id := range renewed {
		if want[id] {
			held = append(held, id)
		} else {
			giveBack = append(giveBack, id)
		}
	}
	sort.Strings(held)
	if len(held) > share {
		giveBack = append(giveBack, held[share:]...)
		held = held[:share]
	}
	if len(giveBack) > 0 {
		l.mu.Lock()
		for _, id := range giveBack {
			delete(l.held, id)
		}
		l.mu.Unlock()
		l.releaseLocal(giveBack)
		names := make([]string, len(giveBack))
		for i, id := range giveBack {
			names[i] = lanePrefix + id
		}
		if _, err := s.pool.Exec(ctx, `DELETE FROM replica_leases WHERE owner = $1 AND name = ANY($2)`, s.id, names); err != nil {
			return err
		}
	}

	// Claim free or expired leases up to the share, in random order so that replicas claiming
	// together do not all go for the same ones.
	var claim []string
	if !leader {
		claim = append(claim, leaderLease)
	}
	if len(held) < share {
		mine := map[string]bool{}
		for _, id := range held {
			mine[id] = true
		}
		var names []string
		for id := range want {
			if !mine[id] {
				names = append(names, lanePrefix+id)
			}
		}
		taken := map[string]bool{}
		if len(names) > 0 {
			list, err := s.names(ctx, `SELECT name FROM replica_leases WHERE name = ANY($1) AND expires_at > now()`, names)
			if err != nil {
				return err
			}
			for _, n := range list {
				taken[n] = true
			}
		}
		rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		room := share - len(held)
		for _, n := range names {
			if room == 0 {
				break
			}
			if !taken[n] {
				claim = append(claim, n)
				room--
			}
		}
	}
	var gained []string
	becameLeader := false
	if len(claim) > 0 {
		got, err := s.names(ctx, `INSERT INTO replica_leases (name, owner, expires_at)
			SELECT n, $1, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS n
			ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
			WHERE replica_leases.expires_at <= now()
			RETURNING name`, s.id, claim, s.opt.LeaseTTL.Seconds())
		if err != nil {
			return err
		}
		for _, n := range got {
			if id, ok := strings.CutPrefix(n, lanePrefix); ok {
				gained = append(gained, id)
			} else if n == leaderLease {
				becameLeader = true
			}
		}
	}

	l.mu.Lock()
	l.leader = leader || becameLeader
	// Leases kept after the lanes were stopped for want of renewal count as gained again.
	for _, id := range held {
		if !l.held[id] {
			gained = append(gained, id)
		}
	}
	for _, id := range gained {
		l.held[id] = true
	}
	gainedF, onLeader := l.gained, l.onLeader
	reap := l.leader && time.Since(l.lastReap) > time.Minute
	if reap {
		l.lastReap = time.Now()
	}
	l.mu.Unlock()
	if len(gained) > 0 && gainedF != nil {
		gainedF()
	}
	if becameLeader {
		s.log.Info("replicas: this replica leads the periodic work", "replica", s.id, "replicas", live)
		for _, f := range onLeader {
			f()
		}
	}
	if reap {
		if _, err := s.reapMessages(ctx); err != nil {
			return err
		}
		if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE expires_at < now() - interval '1 hour'`); err != nil {
			return err
		}
	}
	return nil
}

// releaseLocal stops lanes this replica no longer holds, before their leases are given back.
func (l *leases) releaseLocal(ids []string) {
	if len(ids) == 0 {
		return
	}
	l.mu.Lock()
	release := l.release
	l.mu.Unlock()
	if release != nil {
		release(ids)
	}
}

// names runs a query that returns lease names.
func (s *Set) names(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
