package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

const setUpdate = `mutation($i: WorkspaceSettingsUpdateInput!) { workspaceSettingsUpdate(input: $i) { settings {
	retention { auditTrailHours inboxHours serverAuditTrailHours serverInboxHours } sourceDefaults { labels enabled } }
	userErrors { field message code } } }`

// TestSettingsRetentionAndSourceDefaults changes the audit trail's and the inbox's retention and
// the defaults of new sources: validated, audited, and applied by sourceCreate where its input
// leaves the field out.
func TestSettingsRetentionAndSourceDefaults(t *testing.T) {
	s := startServer(t)
	e := dlvNewEnv(t, s, "set-defaults")
	admin := e.member(t, "set-defaults-admin@example.com", "ADMIN")

	t.Run("ServerDefaults", func(t *testing.T) {
		st := trkObj(e.gql(t, `query($slug: String!) { workspace(slug: $slug) { settings {
			retention { auditTrailHours inboxHours serverAuditTrailHours serverInboxHours } sourceDefaults { labels enabled } } } }`,
			map[string]any{"slug": e.slug}), "workspace.settings")
		want := `{"retention":{"auditTrailHours":8760,"inboxHours":2160,"serverAuditTrailHours":8760,"serverInboxHours":2160},"sourceDefaults":{"enabled":true,"labels":[]}}`
		if got := acJSON(st); got != want {
			t.Fatalf("settings:\n got %s\nwant %s", got, want)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		for name, c := range map[string]struct {
			input map[string]any
			want  string
		}{
			"AuditUnderADay":  {map[string]any{"auditTrailRetentionHours": 23}, "auditTrailRetentionHours:INVALID"},
			"AuditOverServer": {map[string]any{"auditTrailRetentionHours": 8761}, "auditTrailRetentionHours:INVALID"},
			"InboxUnderADay":  {map[string]any{"inboxRetentionHours": 1}, "inboxRetentionHours:INVALID"},
			"InboxOverServer": {map[string]any{"inboxRetentionHours": 100000}, "inboxRetentionHours:INVALID"},
			"LabelNotKeyed":   {map[string]any{"defaultSourceLabels": []string{"env:prod", "prod"}}, "defaultSourceLabels:INVALID"},
		} {
			t.Run(name, func(t *testing.T) {
				c.input["workspaceId"] = e.wsID
				p := trkObj(e.gql(t, setUpdate, map[string]any{"i": c.input}), "workspaceSettingsUpdate")
				if got := regUserErrorCodes(p); len(got) != 1 || got[0] != c.want || p["settings"] != nil {
					t.Fatalf("got %v, want %s", got, c.want)
				}
			})
		}
		r := dlvPost(t, s, admin, setUpdate, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "inboxRetentionHours": 48}})
		if r.errorCode() != "FORBIDDEN" {
			t.Fatalf("an admin changes the settings: %s", r.Raw)
		}
	})

	t.Run("UpdateIsAuditedAndApplied", func(t *testing.T) {
		p := trkObj(e.gql(t, setUpdate, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "auditTrailRetentionHours": 720,
			"inboxRetentionHours": 24, "defaultSourceLabels": []string{" Team:Web ", "env:dev", "env:dev"}, "newSourcesEnabled": false}}),
			"workspaceSettingsUpdate")
		want := `{"retention":{"auditTrailHours":720,"inboxHours":24,"serverAuditTrailHours":8760,"serverInboxHours":2160},"sourceDefaults":{"enabled":false,"labels":["env:dev","team:web"]}}`
		if got := acJSON(p["settings"]); got != want {
			t.Fatalf("updated:\n got %s\nwant %s", got, want)
		}
		raw := acJSON(acEvents(t, s, e.tok, e.slug, map[string]any{"types": []string{"WORKSPACE_SETTINGS_UPDATED"}}))
		for _, part := range []string{`"auditTrailRetentionHours":{"from":8760,"to":720}`, `"inboxRetentionHours":{"from":2160,"to":24}`,
			`"defaultSourceLabels":{"from":[],"to":["env:dev","team:web"]}`, `"newSourcesEnabled":{"from":true,"to":false}`} {
			if !strings.Contains(raw, part) {
				t.Errorf("the audit trail lacks %s: %s", part, raw)
			}
		}

		const create = `mutation($i: SourceCreateInput!) { sourceCreate(input: $i) { source { labels enabled } userErrors { message } } }`
		src := trkObj(e.gql(t, create, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_javascript", "name": "Defaulted"}}),
			"sourceCreate.source")
		if got := acJSON(src); got != `{"enabled":false,"labels":["env:dev","team:web"]}` {
			t.Errorf("a source created without labels or enabled: %s", got)
		}
		src = trkObj(e.gql(t, create, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_javascript", "name": "Explicit",
			"labels": []string{}, "enabled": true}}), "sourceCreate.source")
		if got := acJSON(src); got != `{"enabled":true,"labels":[]}` {
			t.Errorf("a source created with its own labels and enabled: %s", got)
		}
		other := dlvNewEnv(t, s, "set-defaults-other")
		src = trkObj(other.gql(t, create, map[string]any{"i": map[string]any{"workspaceId": other.wsID, "catalogId": "cat_javascript", "name": "Elsewhere"}}),
			"sourceCreate.source")
		if got := acJSON(src); got != `{"enabled":true,"labels":[]}` {
			t.Errorf("another workspace's new source took these defaults: %s", got)
		}

		p = trkObj(e.gql(t, setUpdate, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "auditTrailRetentionHours": 0,
			"defaultSourceLabels": []string{}}}), "workspaceSettingsUpdate")
		if trkInt(trkPath(p, "settings.retention.auditTrailHours")) != 8760 || acJSON(trkPath(p, "settings.sourceDefaults.labels")) != `[]` {
			t.Fatalf("back to the server's retention and no labels: %v", p)
		}
	})
}

// TestSettingsAuditInboxRetention has the reaper expire audit events and inbox notifications:
// those older than the workspace's retention, or the server's where the workspace chose none,
// go; newer ones and other workspaces' stay.
func TestSettingsAuditInboxRetention(t *testing.T) {
	s := startServer(t)
	short := dlvNewEnv(t, s, "ret-short")
	long := dlvNewEnv(t, s, "ret-long")
	p := trkObj(short.gql(t, setUpdate, map[string]any{"i": map[string]any{"workspaceId": short.wsID, "auditTrailRetentionHours": 48,
		"inboxRetentionHours": 24}}), "workspaceSettingsUpdate")
	if errs, _ := p["userErrors"].([]any); len(errs) > 0 {
		t.Fatal(errs)
	}

	// Rows of various ages, made with the ids of their time (which is their age to the reaper).
	now := time.Now()
	ages := map[string]time.Duration{"1h": time.Hour, "30h": 30 * time.Hour, "100h": 100 * time.Hour, "100d": 100 * 24 * time.Hour, "400d": 400 * 24 * time.Hour}
	ids := map[string]string{} // workspace slug, kind and age -> id
	n := 0
	err := s.App.DB().Tx(t.Context(), func(tx *db.Tx) error {
		for _, e := range []*dlvEnv{short, long} {
			for age, d := range ages {
				n++
				at := now.Add(-d).Add(time.Duration(n) * time.Millisecond)
				aud, ntf := id.Floor("aud", at), id.Floor("ntf", at)
				ids[e.slug+"/audit/"+age], ids[e.slug+"/inbox/"+age] = aud, ntf
				if _, err := tx.Exec(t.Context(), `INSERT INTO audit_events (id, workspace_id, type, actor_user_id, resource_type, resource_id, created_at)
					VALUES (?, ?, 'SOURCE_CREATED', ?, 'Source', 'src_x', ?)`, aud, e.wsID, e.userID, db.Time{Time: at}); err != nil {
					return err
				}
				if _, err := tx.Exec(t.Context(), `INSERT INTO notifications (id, user_id, workspace_id, type, area, message, resource_type, resource_id, created_at)
					VALUES (?, ?, ?, 'SOURCE_CREATED', 'sources', 'a source was created', 'Source', 'src_x', ?)`, ntf, e.userID, e.wsID, db.Time{Time: at}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.App.Reaper().ExpireOnce(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	exists := func(key string) bool {
		table := "audit_events"
		if strings.Contains(key, "/inbox/") {
			table = "notifications"
		}
		var c int
		if err := s.App.DB().Get(t.Context(), &c, `SELECT COUNT(*) FROM `+table+` WHERE id = ?`, ids[key]); err != nil {
			t.Fatal(err)
		}
		return c == 1
	}
	// The server keeps the audit trail 365 days and the inbox 90; ret-short 48 and 24 hours.
	for key, want := range map[string]bool{
		"ret-short/audit/1h": true, "ret-short/audit/30h": true, "ret-short/audit/100h": false, "ret-short/audit/400d": false,
		"ret-short/inbox/1h": true, "ret-short/inbox/30h": false, "ret-short/inbox/100h": false,
		"ret-long/audit/1h": true, "ret-long/audit/100h": true, "ret-long/audit/100d": true, "ret-long/audit/400d": false,
		"ret-long/inbox/30h": true, "ret-long/inbox/100h": true, "ret-long/inbox/100d": false,
	} {
		if got := exists(key); got != want {
			t.Errorf("%s is kept: %v, want %v", key, got, want)
		}
	}
	// What happened today stays readable, in the API too.
	events := acEvents(t, s, short.tok, short.slug, map[string]any{"types": []string{"WORKSPACE_SETTINGS_UPDATED"}})
	if len(events) != 1 {
		t.Errorf("today's settings change: %d events", len(events))
	}
}
