package app

import (
	"context"
	"encoding/json"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/live"
	"github.com/junctioncdp/junction/internal/replica"
	"github.com/junctioncdp/junction/internal/workspace"
)

// joinReplicas makes this process one of the replicas on its PostgreSQL database. The bus's
// messages reach the subscribers of every replica, and what this process keeps in memory follows
// the changes made through the others, each signal handled by the domain that keeps it: rights
// epochs, revoked sessions and tokens (their websockets close), cached write keys and tracking
// plan controls, destinations (delivery lanes) and lanes to wake.
func (a *App) joinReplicas(ctx context.Context, authSvc *auth.Service, workspaces *workspace.Service) error {
	set, err := replica.Open(ctx, replica.Options{URL: a.cfg.DatabaseURL, Space: a.db.Space(), Bus: a.bus, Logger: a.log,
		Sparse: []string{"events", "usage"}})
	if err != nil {
		return err
	}
	set.Handle("rights", func(id string, _ []byte) { workspaces.EpochMoved(id) })
	set.Handle("revoked", func(_ string, p []byte) {
		var ids []string
		if json.Unmarshal(p, &ids) == nil {
			authSvc.RevokedElsewhere(ids...)
		}
	})
	set.Handle("source", func(id string, _ []byte) {
		a.ingest.ForgetSource(id)
		a.protocols.ForgetSource(id)
		a.reaper.Wake()
	})
	set.Handle("protocols", func(id string, _ []byte) { a.protocols.ForgetSource(id) })
	set.Handle("workspace.deleted", func(string, []byte) {
		a.ingest.ForgetAll()
		a.protocols.ForgetAll()
		a.reaper.Wake()
	})
	set.Handle("destination", func(string, []byte) { a.delivery.RefreshSoon() })
	set.Handle("delivery.wake", func(_ string, p []byte) {
		var sources []string
		if json.Unmarshal(p, &sources) == nil {
			a.delivery.Notify(sources)
		}
	})
	set.Handle("delivery.retry", func(id string, _ []byte) { a.delivery.WakeHere(id) })
	// Signals sent while the connection to the others was down were missed: drop every cache and
	// read rights again.
	set.OnReconnect(func() {
		workspaces.EveryEpochMoved()
		a.ingest.ForgetAll()
		a.protocols.ForgetAll()
		a.delivery.RefreshSoon()
		if err := authSvc.CheckWatched(context.Background()); err != nil {
			a.log.Error("replicas: checking revoked credentials failed", "error", err.Error())
		}
	})
	set.Handle("live.noted", func(_ string, p []byte) {
		var n live.Noted
		if json.Unmarshal(p, &n) == nil {
			a.live.Note(n)
		}
	})
	a.live.Leads = set.Leads
	a.live.Listened = func(t bus.Topic) bool { return a.bus.Listened(t) || set.Wanted(t) }
	a.live.Forward = func(n live.Noted) { set.Send("live.noted", "", n) }
	// The periodic work that runs at start runs when a replica starts leading.
	set.OnLeader(func() {
		select {
		case a.leading <- struct{}{}:
		default:
		}
		a.reaper.Wake()
		a.engage.Wake() // the follower of the log resumes from its cursor here
	})
	workspaces.OnRightsChanged = func(id string) { set.Send("rights", id, nil) }
	authSvc.OnRevoked = func(ids []string) { set.Send("revoked", "", ids) }
	a.protocols.OnForget = func(id string) { set.Send("protocols", id, nil) }
	a.delivery.OnWake = func(id string) { set.SendWhenShared("delivery.retry", id, nil) }
	// The tracking API's rate limit per workspace: each replica enforces its share.
	a.ingest.ShareRate(set.Replicas)
	// Each destination's lane runs on the replica that holds its lease.
	a.delivery.Owner = set
	set.Lanes(a.delivery.Release, a.delivery.Refresh)

	if err := set.Start(ctx); err != nil {
		set.Close()
		return err
	}
	a.replicas = set
	a.log.Info("replicas: joined", "replica", set.ID(), "replicas", set.Replicas())
	a.metrics.RegisterGaugeFunc("junction_replicas", "Live replicas of the server on this database, this one included, as last counted.",
		func() float64 { return float64(set.Replicas()) })
	return nil
}

// signal tells the other replicas, if any, that something this process changed and committed
// must be forgotten or reloaded there too.
func (a *App) signal(kind, key string, payload any) {
	if a.replicas != nil {
		a.replicas.Send(kind, key, payload)
	}
}
