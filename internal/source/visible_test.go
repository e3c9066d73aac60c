package source_test

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/internal/workspace"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// mustOpenDB opens a fresh migrated database of the backend under test.
func mustOpenDB(tb testing.TB) *db.DB {
	tb.Helper()
	ctx := context.Background()
	d := testdb.Open(tb)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		tb.Fatal(err)
	}
	return d
}

// TestVisibleWhereIsSourceRights checks that the SQL rule every read of sources puts in its WHERE
// clause (VisibleWhere, and VisibleIDWhere for rows that carry a source id) lets through exactly
// the sources Access.SourceRights says the viewer may read, for each kind of access.
func TestVisibleWhereIsSourceRights(t *testing.T) {
	d := mustOpenDB(t)
	ctx := context.Background()
	now := db.Now()
	type src struct {
		id, ws string
		labels []string
	}
	sources := []src{
		{"src_prod", "ws_a", []string{"environment:prod", "team:web"}},
		{"src_dev", "ws_a", []string{"environment:dev"}},
		{"src_bare", "ws_a", nil},
		{"src_other", "ws_b", []string{"environment:prod"}},
	}
	err := d.Tx(ctx, func(tx *db.Tx) error {
		for _, ws := range []string{"ws_a", "ws_b"} {
			if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, 'FREE', ?, ?)`,
				ws, ws, ws+"-slug", now, now); err != nil {
				return err
			}
		}
		for _, s := range sources {
			labels, _ := json.Marshal(s.labels)
			if _, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
				VALUES (?, ?, 'javascript', ?, TRUE, '{}', ?, ?, ?)`, s.id, s.ws, s.id, string(labels), now, now); err != nil {
				return err
			}
			for _, l := range s.labels {
				if _, err := tx.Exec(ctx, `INSERT INTO source_labels (source_id, label) VALUES (?, ?)`, s.id, l); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ptr := func(s string) *string { return &s }
	grant := func(role workspace.ResourceRole, sourceID, label *string) workspace.Grant {
		return workspace.Grant{Role: role, SourceID: sourceID, Label: label}
	}
	viewer := &auth.Viewer{User: auth.User{ID: "usr_viewer"}}
	for _, tc := range []struct {
		name   string
		role   auth.Role
		grants []workspace.Grant
	}{
		{"Owner", auth.Owner, nil},
		{"Admin", auth.Admin, nil},
		{"Member", auth.Member, nil},
		{"MinimalWithoutGrants", auth.Minimal, nil},
		{"SourceReadByID", auth.Minimal, []workspace.Grant{grant(workspace.SourceRead, ptr("src_dev"), nil)}},
		{"SourceAdminByLabelInAnotherCase", auth.Minimal, []workspace.Grant{grant(workspace.SourceAdmin, nil, ptr("Environment:PROD"))}},
		{"GrantsByIDAndLabel", auth.Minimal, []workspace.Grant{grant(workspace.SourceRead, ptr("src_bare"), nil), grant(workspace.SourceRead, nil, ptr("team:web"))}},
		{"GrantOnAnotherWorkspacesSource", auth.Minimal, []workspace.Grant{grant(workspace.SourceRead, ptr("src_other"), nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &workspace.Access{WorkspaceID: "ws_a", Role: tc.role, Grants: tc.grants, Viewer: viewer}
			var want []string
			for _, s := range sources {
				if read, _ := a.SourceRights(s.id, s.labels); read && s.ws == a.WorkspaceID {
					want = append(want, s.id)
				}
			}
			where, args := source.VisibleWhere(a)
			var got []string
			if err := d.Select(ctx, &got, `SELECT s.id FROM sources s WHERE `+where+` ORDER BY s.id`, args...); err != nil {
				t.Fatal(err)
			}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("VisibleWhere lets through %v, SourceRights %v", got, want)
			}
			// Rows that carry a source id (events, attempts) of the workspace.
			where, args = source.VisibleIDWhere(a, "x.id")
			got = nil
			if err := d.Select(ctx, &got, `SELECT x.id FROM sources x WHERE x.workspace_id = ? AND `+where+` ORDER BY x.id`,
				append([]any{a.WorkspaceID}, args...)...); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("VisibleIDWhere lets through %v, SourceRights %v", got, want)
			}
		})
	}
}
