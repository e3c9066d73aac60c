package warehouse

import (
	"fmt"
	"testing"

	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// TestSubjectWhere checks which columns name the subjects in each table: user and anonymous ids
// as they are, emails in any case, text columns only, and users by id (or through identifies).
func TestSubjectWhere(t *testing.T) {
	tables := map[string]map[string]ColType{
		"tracks":     {"id": Text, "user_id": Text, "anonymous_id": Text, "context_traits_email": Text},
		"identifies": {"id": Text, "user_id": Text, "anonymous_id": Text, "email": Text},
		"users":      {"id": Text, "email": Text},
		"orders":     {"id": Text, "email": Number}, // a property email that held numbers first
	}
	for _, c := range []struct {
		table string
		subj  forget.Subjects
		want  string
		args  string
	}{
		{"tracks", forget.Subjects{UserIDs: []string{"u1"}}, `user_id = ANY($1::text[])`, `[[u1]]`},
		{"tracks", forget.Subjects{AnonymousIDs: []string{"a1"}}, `anonymous_id = ANY($1::text[])`, `[[a1]]`},
		{"tracks", forget.Subjects{Emails: []string{"Ada@Example.com"}},
			`lower(user_id) = ANY($1::text[]) OR lower("context_traits_email") = ANY($2::text[])`, `[[ada@example.com] [ada@example.com]]`},
		{"users", forget.Subjects{UserIDs: []string{"u1"}}, `id = ANY($1::text[])`, `[[u1]]`},
		{"users", forget.Subjects{AnonymousIDs: []string{"a1"}},
			`id IN (SELECT user_id FROM "web"."identifies" WHERE anonymous_id = ANY($1::text[]))`, `[[a1]]`},
		{"users", forget.Subjects{Emails: []string{"a@b.c"}}, `lower(id) = ANY($1::text[]) OR lower(email) = ANY($2::text[])`, `[[a@b.c] [a@b.c]]`},
		{"orders", forget.Subjects{UserIDs: []string{"u1"}}, ``, `[]`},
		{"orders", forget.Subjects{Emails: []string{"a@b.c"}}, ``, `[]`},
	} {
		t.Run(c.table, func(t *testing.T) {
			where, args := subjectWhere("web", c.table, tables, c.subj)
			if where != c.want || fmt.Sprint(args) != c.args {
				t.Errorf("subjectWhere(%s, %+v) = %q %v, want %q %s", c.table, c.subj, where, args, c.want, c.args)
			}
		})
	}
}
