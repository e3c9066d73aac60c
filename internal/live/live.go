// Package live publishes what dashboards watch, after the transactions that changed it commit:
// sources whose status, enabled state or last-seen minute changed, destinations, health issues,
// the events arriving at each source, and each workspace's usage and sources with new violations
// (at most once a second). It
// keeps what it needs to notice changes that no transaction makes, such as a source going quiet.
package live

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/source"
)

// Topics of the bus.
func SourcesTopic(workspaceID string) bus.Topic { return bus.Topic{Kind: "source", Key: workspaceID} }
func DestinationsTopic(workspaceID string) bus.Topic {
	return bus.Topic{Kind: "destination", Key: workspaceID}
}
func HealthTopic(workspaceID string) bus.Topic { return bus.Topic{Kind: "health", Key: workspaceID} }
func UsageTopic(workspaceID string) bus.Topic  { return bus.Topic{Kind: "usage", Key: workspaceID} }
func EventsTopic(sourceID string) bus.Topic    { return bus.Topic{Kind: "events", Key: sourceID} }

// Publisher turns domain changes into bus messages.
type Publisher struct {
	Bus   *bus.Bus
	db    *db.DB
	srcs  *source.Service
	dests *destination.Service
	usage *ingest.Queries
	log   *slog.Logger

	mu    sync.Mutex
	seen  map[string]seenSource // by source id: what was last published
	dirty map[string]bool       // workspaces whose usage changed since the last tick
	// violations are, by workspace, the sources with new violations since the last tick.
	violations map[string]map[string]bool
	stop       chan struct{}
	stopped    chan struct{}

	// Leads, when set, tells whether this process runs the clocks' work (quiet sources, usage,
	// violations): among replicas one does. The others hand what they noted to it with Forward.
	Leads   func() bool
	Forward func(Noted)
	// Listened, when set, tells whether any replica listens to a topic; without it, whether a
	// subscriber of this process does. Usage is computed only for workspaces someone watches.
	Listened func(bus.Topic) bool
}

// Noted is what a replica noted since its last tick, for the one that publishes it.
type Noted struct {
	Usage      []string            `json:"usage,omitempty"`      // workspaces whose usage changed
	Violations map[string][]string `json:"violations,omitempty"` // by workspace, sources with new violations
}

// Note adds what another replica noted; a replica that does not lead drops it (the leader hears
// it too).
func (p *Publisher) Note(n Noted) {
	if !p.leads() {
		return
	}
	p.mu.Lock()
	for _, ws := range n.Usage {
		p.dirty[ws] = true
	}
	p.mu.Unlock()
	for ws, ids := range n.Violations {
		p.ViolationsChanged(ws, ids)
	}
}

func (p *Publisher) leads() bool { return p.Leads == nil || p.Leads() }

func (p *Publisher) listened(t bus.Topic) bool {
	if p.Listened != nil {
		return p.Listened(t)
	}
	return p.Bus.Listened(t)
}

// handOver gives what this replica noted to the one that leads.
func (p *Publisher) handOver() {
	p.mu.Lock()
	n := Noted{Usage: keys(p.dirty)}
	p.dirty = map[string]bool{}
	if len(p.violations) > 0 {
		n.Violations = map[string][]string{}
		for ws, srcs := range p.violations {
			n.Violations[ws] = keys(srcs)
		}
		p.violations = map[string]map[string]bool{}
	}
	p.mu.Unlock()
	if (len(n.Usage) > 0 || len(n.Violations) > 0) && p.Forward != nil {
		p.Forward(n)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type seenSource struct {
	workspaceID string
	status      source.Status
	minute      int64
	lastSeen    time.Time
}

// New returns a publisher; Run drives its clocks.
// Between replicas (internal/replica) the bus carries every topic here; a source that another
// replica published is remembered as if published here, so that whichever replica checks for quiet
// sources knows them all.
func New(b *bus.Bus, d *db.DB, s *source.Service, dst *destination.Service, u *ingest.Queries, log *slog.Logger) *Publisher {
	p := &Publisher{Bus: b, db: d, srcs: s, dests: dst, usage: u, log: log, seen: map[string]seenSource{}, dirty: map[string]bool{},
		violations: map[string]map[string]bool{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	b.Decoder("source", bus.JSON[*source.Source])
	b.Decoder("destination", bus.JSON[*destination.Destination])
	b.Decoder("health", bus.JSON[*health.Issue])
	b.Decoder("usage", bus.JSON[*ingest.Usage])
	b.Decoder("events", bus.JSON[*ingest.Event])
	b.Decoder("violations", bus.JSON[[]string])
	b.OnRemote("source", func(m bus.Message) { p.remember(m.Payload.(*source.Source)) })
	return p
}

// SourceChanged publishes a source that a transaction changed (nothing when it was deleted).
func (p *Publisher) SourceChanged(sourceID string) { p.publishSources([]string{sourceID}) }

func (p *Publisher) publish(src *source.Source) {
	p.remember(src)
	p.Bus.Publish(SourcesTopic(src.WorkspaceID), src)
}

func (p *Publisher) remember(src *source.Source) {
	st := p.srcs.Status(src, time.Now())
	s := seenSource{workspaceID: src.WorkspaceID, status: st}
	if src.LastSeenAt != nil {
		s.lastSeen = src.LastSeenAt.Time
		s.minute = src.LastSeenAt.Unix() / 60
	}
	p.mu.Lock()
	p.seen[src.ID] = s
	p.mu.Unlock()
}

// DestinationChanged publishes a destination after a change (its own, a connection's, a health issue's).
func (p *Publisher) DestinationChanged(destinationID string) {
	d, err := p.dests.Internal(context.Background(), destinationID)
	if err != nil {
		return // deleted
	}
	p.Bus.Publish(DestinationsTopic(d.WorkspaceID), d)
}

// HealthChanged publishes an issue, and its destination when it is about one (its status moves).
func (p *Publisher) HealthChanged(is health.Issue) {
	p.Bus.Publish(HealthTopic(is.WorkspaceID), &is)
	if health.IsDestination(is.TargetKind) {
		p.DestinationChanged(is.TargetID)
	}
}

// Committed publishes what a group commit of the tracking API changed: the events themselves, the
// sources whose status or last-seen minute moved, and (at the next tick) the workspaces' usage.
func (p *Publisher) Committed(c ingest.Committed) {
	latest := map[string]time.Time{}
	for _, e := range c.Events {
		p.Bus.Publish(EventsTopic(e.SourceID), e)
		if e.Status == ingest.Accepted {
			if e.ReceivedAt.After(latest[e.SourceID]) {
				latest[e.SourceID] = e.ReceivedAt
			}
			p.mu.Lock()
			p.dirty[e.WorkspaceID] = true
			p.mu.Unlock()
		}
	}
	var changed []string
	p.mu.Lock()
	for id, at := range latest {
		s, ok := p.seen[id]
		if !ok || s.status != source.Receiving || s.minute != at.Unix()/60 {
			changed = append(changed, id)
		}
	}
	p.mu.Unlock()
	p.publishSources(changed)
}

func (p *Publisher) publishSources(ids []string) {
	if len(ids) == 0 {
		return
	}
	srcs, err := p.srcs.InternalByIDs(context.Background(), ids)
	if err != nil {
		p.log.Error("live: loading sources failed", "error", err.Error())
		return
	}
	for _, id := range ids {
		if s, ok := srcs[id]; ok {
			p.publish(&s)
		}
	}
}

// Run ticks until Close: sources that went quiet are published as NO_RECENT_DATA without waiting
// for an event, and dirty workspaces get their usage, once a second at most.
func (p *Publisher) Run() {
	defer close(p.stopped)
	quietTick := time.NewTicker(min(max(p.srcs.QuietPeriod/4, 20*time.Millisecond), 10*time.Second))
	usageTick := time.NewTicker(time.Second)
	defer quietTick.Stop()
	defer usageTick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-quietTick.C:
			if !p.leads() {
				continue // the leader checks; it hears of every source through the bus
			}
			now := time.Now()
			var quiet []string
			p.mu.Lock()
			for id, s := range p.seen {
				if s.status == source.Receiving && now.Sub(s.lastSeen) > p.srcs.QuietPeriod {
					quiet = append(quiet, id)
				}
			}
			p.mu.Unlock()
			p.publishSources(quiet)
		case <-usageTick.C:
			if !p.leads() {
				p.handOver()
				continue
			}
			p.publishViolations()
			p.mu.Lock()
			dirty := p.dirty
			p.dirty = map[string]bool{}
			p.mu.Unlock()
			month := time.Now().UTC().Format("2006-01")
			for ws := range dirty {
				// Computing usage reads every identity of the month: at every tick for every
				// workspace receiving events, that cost a twentieth of the CPU time of the
				// tracking API at 2,000 requests/s, and grows with the identities. A subscriber
				// that comes later gets the next change.
				if !p.listened(UsageTopic(ws)) {
					continue
				}
				u, err := p.usage.InternalUsage(context.Background(), ws, month)
				if err != nil {
					continue
				}
				p.Bus.Publish(UsageTopic(ws), u)
			}
		}
	}
}

// Close stops the clocks.
func (p *Publisher) Close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		<-p.stopped
	}
}

// ViolationsTopic carries, per workspace, the ids of sources with new violations.
func ViolationsTopic(workspaceID string) bus.Topic {
	return bus.Topic{Kind: "violations", Key: workspaceID}
}

// ViolationsChanged notes sources of a workspace with new violations; Run publishes them at most
// once a second.
func (p *Publisher) ViolationsChanged(workspaceID string, sourceIDs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.violations[workspaceID]
	if m == nil {
		m = map[string]bool{}
		p.violations[workspaceID] = m
	}
	for _, id := range sourceIDs {
		m[id] = true
	}
}

func (p *Publisher) publishViolations() {
	p.mu.Lock()
	pending := p.violations
	p.violations = map[string]map[string]bool{}
	p.mu.Unlock()
	for ws, srcs := range pending {
		p.Bus.Publish(ViolationsTopic(ws), keys(srcs))
	}
}
