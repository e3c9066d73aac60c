package migrations_test

import (
	"context"
	"slices"
	"testing"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// migrateTo opens a new database and applies the migrations before version first.
func migrateTo(t *testing.T, first string) (*db.DB, []db.Migration) {
	t.Helper()
	ctx := context.Background()
	d := testdb.Open(t)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(migs, func(m db.Migration) bool { return m.Version >= first })
	if i < 0 {
		t.Fatalf("no migration %s", first)
	}
	if _, err := d.Migrate(ctx, migs[:i]); err != nil {
		t.Fatal(err)
	}
	return d, migs
}

func exec(t *testing.T, d *db.DB, query string, args ...any) {
	t.Helper()
	if err := d.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMembersNotificationsTakenBack: 0040 deletes the MEMBERS notifications of members who are
// neither owners nor admins, and keeps everything else.
func TestMembersNotificationsTakenBack(t *testing.T) {
	ctx := context.Background()
	d, migs := migrateTo(t, "0040")
	now := db.Now()
	exec(t, d, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES ('ws_1', 'W', 'w', 'FREE', ?, ?)`, now, now)
	for i, role := range []string{"OWNER", "ADMIN", "MEMBER", "MINIMAL"} {
		u := "usr_" + role
		exec(t, d, `INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES (?, ?, ?, 'x', ?, ?)`, u, role+"@example.com", role, now, now)
		exec(t, d, `INSERT INTO memberships (id, workspace_id, user_id, role, role_rank, created_at) VALUES (?, 'ws_1', ?, ?, ?, ?)`, "mem_"+role, u, role, i, now)
		for _, area := range []string{"MEMBERS", "SOURCES"} {
			exec(t, d, `INSERT INTO notifications (id, user_id, workspace_id, type, area, message, resource_type, resource_id, created_at)
				VALUES (?, ?, 'ws_1', 'X', ?, 'Ada invited eve@example.com', 'Invitation', 'inv_1', ?)`, "ntf_"+role+area, u, area, now)
		}
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := d.Select(ctx, &left, `SELECT id FROM notifications ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []string{"ntf_ADMINMEMBERS", "ntf_ADMINSOURCES", "ntf_MEMBERSOURCES", "ntf_MINIMALSOURCES", "ntf_OWNERMEMBERS", "ntf_OWNERSOURCES"}
	if !slices.Equal(left, want) {
		t.Errorf("notifications left %v, want %v", left, want)
	}
}

// TestTenantForeignKeysIndexed: every foreign key that points at a workspace or a source has an
// index that starts with its column. The reapers delete those rows last, and the delete's look
// for rows still pointing at them reads the whole table without one, holding the writer.
func TestTenantForeignKeysIndexed(t *testing.T) {
	ctx := context.Background()
	d := testdb.OpenMigrated(t)
	type key struct {
		Table  string `db:"tbl"`
		Column string `db:"col"`
		Parent string `db:"parent"`
	}
	var keys []key
	var indexed func(k key) bool
	var err error
	if d.Dialect() == db.SQLite {
		err = d.Select(ctx, &keys, `SELECT m.name AS tbl, f."from" AS col, f."table" AS parent
			FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' AND f."table" IN ('workspaces', 'sources')`)
		indexed = func(k key) bool {
			var n int
			if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM pragma_index_list(?) l
				WHERE (SELECT name FROM pragma_index_info(l.name) WHERE seqno = 0) = ?`, k.Table, k.Column); err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
	} else {
		err = d.Select(ctx, &keys, `SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confrelid::regclass::text AS parent
			FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
			WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace AND c.confrelid::regclass::text IN ('workspaces', 'sources')`)
		indexed = func(k key) bool {
			var n int
			if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
				WHERE i.indrelid = ?::regclass AND a.attname = ?`, k.Table, k.Column); err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 20 {
		t.Fatalf("found %d foreign keys to workspaces and sources, want the schema's many", len(keys))
	}
	for _, k := range keys {
		if !indexed(k) {
			t.Errorf("%s.%s points at %s without an index that starts with it", k.Table, k.Column, k.Parent)
		}
	}
}
