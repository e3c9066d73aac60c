package app

import (
	"context"

	"github.com/junctioncdp/junction/internal/replica"
)

// joinReplicas makes this process one of the replicas on its PostgreSQL database: the bus's
// messages reach the subscribers of every replica.
func (a *App) joinReplicas(ctx context.Context) error {
	set, err := replica.Open(ctx, replica.Options{URL: a.cfg.DatabaseURL, Space: a.db.Space(), Bus: a.bus, Logger: a.log})
	if err != nil {
		return err
	}
	if err := set.Start(ctx); err != nil {
		set.Close()
		return err
	}
	a.replicas = set
	a.metrics.RegisterGaugeFunc("junction_replicas", "Live replicas of the server on this database, this one included, as last counted.",
		func() float64 { return float64(set.Replicas()) })
	return nil
}
