package auth

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

type throttleState struct {
	failures  int           // the most failures of any key within the window
	lockedFor time.Duration // how long the longest lock still runs
}

// throttleState reads the failure counts of keys (an email and a client address).
func (s *Service) throttleState(ctx context.Context, keys []string) (throttleState, error) {
	var rows []struct {
		Failures    int      `db:"failures"`
		WindowStart db.Time  `db:"window_start"`
		LockedUntil *db.Time `db:"locked_until"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT failures, window_start, locked_until FROM login_throttle
		WHERE key IN (`+db.Placeholders(len(keys))+`)`, db.Args(keys)...); err != nil {
		return throttleState{}, err
	}
	now := time.Now()
	var st throttleState
	for _, r := range rows {
		if r.LockedUntil != nil && r.LockedUntil.After(now) {
			st.lockedFor = max(st.lockedFor, r.LockedUntil.Sub(now))
		}
		if now.Sub(r.WindowStart.Time) < s.policy.Window {
			st.failures = max(st.failures, r.Failures)
		}
	}
	return st, nil
}

// delayFor is the wait before answering an attempt after failures failed ones.
func (s *Service) delayFor(failures int) time.Duration {
	if failures < s.policy.SlowAfter {
		return 0
	}
	return s.policy.Delay << min(failures-s.policy.SlowAfter, 3)
}

// recordFailure counts a failed attempt for each key, starting a new window when the old one has
// passed, and locks a key that reaches MaxFailures.
func (s *Service) recordFailure(ctx context.Context, keys []string) error {
	return s.db.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		windowFloor := db.Time{Time: now.Add(-s.policy.Window)}
		for _, k := range keys {
			if _, err := tx.Exec(ctx, `INSERT INTO login_throttle (key, failures, window_start) VALUES (?, 1, ?)
				ON CONFLICT (key) DO UPDATE SET
					failures = CASE WHEN login_throttle.window_start < ? THEN 1 ELSE login_throttle.failures + 1 END,
					window_start = CASE WHEN login_throttle.window_start < ? THEN excluded.window_start ELSE login_throttle.window_start END`,
				k, now, windowFloor, windowFloor); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE login_throttle SET locked_until = ?, failures = 0, window_start = ?
				WHERE key = ? AND failures >= ?`, db.Time{Time: now.Add(s.policy.Lockout)}, now, k, s.policy.MaxFailures); err != nil {
				return err
			}
		}
		return nil
	})
}
