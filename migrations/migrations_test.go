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
