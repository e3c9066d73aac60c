package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t)
	err := d.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO write_keys (key, source_id, workspace_id, created_at) VALUES ('key-a', 'src_a', 'ws_a', ?)`, db.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newKeyCache(d, time.Hour)

	t.Run("ARevocationIsNotUndoneByALookupThatReadBeforeIt", func(t *testing.T) {
		// A lookup reads the key while it is live...
		c.mu.Lock()
		gen := c.generation
		c.mu.Unlock()
		stale, err := c.read(ctx, "key-a")
		if err != nil || !stale.Known || stale.Revoked {
			t.Fatalf("read %+v, %v", stale, err)
		}
		// ...the key is revoked and the cache told so...
		err = d.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE write_keys SET revoked_at = ? WHERE key = 'key-a'`, db.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		c.forgetSource("src_a")
		// ...and only then does the lookup put what it read into the cache.
		stale.expires = time.Now().Add(time.Hour)
		c.remember("key-a", stale, gen)
		info, err := c.lookup(ctx, "key-a")
		if err != nil || !info.Revoked {
			t.Errorf("lookup after the revocation: %+v, %v; want revoked", info, err)
		}
	})
	t.Run("CachedUntilForgotten", func(t *testing.T) {
		if _, err := c.lookup(ctx, "key-a"); err != nil {
			t.Fatal(err)
		}
		err := d.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE sources SET enabled = FALSE WHERE id = 'src_a'`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := c.lookup(ctx, "key-a"); !info.Enabled {
			t.Error("the cache read the database again before being told of a change")
		}
		c.forgetSource("src_a")
		if info, _ := c.lookup(ctx, "key-a"); info.Enabled {
			t.Error("still enabled after forgetSource")
		}
	})
}
