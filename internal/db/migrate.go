package db

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Migration is one numbered SQL file (or dialect-specific pair) of the schema.
type Migration struct {
	Version string // the file name without its dialect and .sql suffix: "0001_accounts"
	SQL     string
}

// LoadMigrations returns the migrations in fsys that apply to dialect, in version order. A file
// NNNN_name.sql applies to every dialect, NNNN_name.<dialect>.sql to one.
func LoadMigrations(fsys fs.FS, dialect Dialect) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	type parts struct{ shared, specific string }
	byVersion := map[string]*parts{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		base := strings.TrimSuffix(name, ".sql")
		specific := false
		if i := strings.LastIndexByte(base, '.'); i >= 0 {
			if Dialect(base[i+1:]) != dialect {
				continue
			}
			base, specific = base[:i], true
		}
		if len(base) < 5 || base[4] != '_' || strings.Trim(base[:4], "0123456789") != "" {
			return nil, fmt.Errorf("migration %s: want a name like 0001_name.sql", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		m := byVersion[base]
		if m == nil {
			m = &parts{}
			byVersion[base] = m
		}
		if specific {
			m.specific = string(body) + "\n"
		} else {
			m.shared = string(body) + "\n"
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for v, m := range byVersion {
		// The part for every dialect first: the dialect's part may build on it.
		out = append(out, Migration{Version: v, SQL: m.shared + m.specific})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies, in order and each in its own transaction, the migrations not yet recorded in
// the schema_migrations table. It returns the versions it applied. Each transaction takes the
// migrations lock before it looks at schema_migrations, so that servers starting together on one
// PostgreSQL database apply every migration once: the others wait, then find it recorded.
func (d *DB) Migrate(ctx context.Context, migrations []Migration) ([]string, error) {
	if err := d.Tx(ctx, func(tx *Tx) error {
		if err := tx.Lock(ctx, migrationsLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    TEXT PRIMARY KEY,
			applied_at TEXT NOT NULL
		)`)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []string
	for _, m := range migrations {
		// A SQLite migration that rebuilds a table others point at runs with foreign keys off (they
		// cannot change inside a transaction), and checks them before it commits.
		fkOff := d.dialect == SQLite && strings.HasPrefix(m.SQL, foreignKeysOff)
		if fkOff {
			if _, err := d.write.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
				return applied, err
			}
		}
		err := d.Tx(ctx, func(tx *Tx) error {
			if err := tx.Lock(ctx, migrationsLock); err != nil {
				return err
			}
			var n int
			if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			if fkOff {
				var broken []struct {
					Table  string `db:"table"`
					RowID  *int64 `db:"rowid"`
					Parent string `db:"parent"`
					FKID   int    `db:"fkid"`
				}
				if err := tx.Select(ctx, &broken, `PRAGMA foreign_key_check`); err != nil {
					return err
				}
				if len(broken) > 0 {
					return fmt.Errorf("%d rows break foreign keys, the first in %s (parent %s)", len(broken), broken[0].Table, broken[0].Parent)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.Version, Now()); err != nil {
				return err
			}
			applied = append(applied, m.Version)
			return nil
		})
		if fkOff {
			if _, ferr := d.write.ExecContext(ctx, `PRAGMA foreign_keys = ON`); ferr != nil && err == nil {
				err = ferr
			}
		}
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Version, err)
		}
	}
	return applied, nil
}

// foreignKeysOff, as the first line of a SQLite migration, runs it with foreign keys off.
const foreignKeysOff = "-- junction:foreign-keys=off"

// migrationsLock is the name of the lock under which migrations run.
const migrationsLock = "schema_migrations"

// Pending returns the versions of migrations that are not applied yet. The readiness check uses it.
func (d *DB) Pending(ctx context.Context, migrations []Migration) ([]string, error) {
	var done []string
	if err := d.Select(ctx, &done, `SELECT version FROM schema_migrations`); err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(done))
	for _, v := range done {
		have[v] = true
	}
	var pending []string
	for _, m := range migrations {
		if !have[m.Version] {
			pending = append(pending, m.Version)
		}
	}
	return pending, nil
}
