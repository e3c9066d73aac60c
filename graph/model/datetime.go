package model

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/junctioncdp/junction/internal/apperr"
)

// DateTime bounds: the stored form (internal/db.Time) has a four-digit year, so an instant must
// fall within years 0001 to 9999 once in UTC.
var (
	minDateTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDateTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// MarshalDateTime writes a time.Time as the DateTime scalar: RFC 3339 in UTC, null for the zero
// time. It takes a context so that gqlgen hands UnmarshalDateTime one too.
func MarshalDateTime(t time.Time) graphql.ContextMarshaler {
	return graphql.ContextWriterFunc(func(_ context.Context, w io.Writer) error {
		if t.IsZero() {
			_, err := io.WriteString(w, "null")
			return err
		}
		_, err := io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
		return err
	})
}

// UnmarshalDateTime reads a DateTime argument or input field. A value that is not an RFC 3339
// string, or that falls outside years 0001 to 9999 in UTC, is the caller's mistake: a
// BAD_USER_INPUT error whose message and extensions.field name the argument ("since",
// "input.expiresAt"), whether it came inline or in a variable.
func UnmarshalDateTime(ctx context.Context, v any) (time.Time, error) {
	name := argumentPath(ctx)
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.Invalid(name, "%s must be an RFC 3339 date-time string such as 2026-11-27T09:18:16Z, got %s", name, kindOf(v))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apperr.Invalid(name, "%s must be an RFC 3339 date-time such as 2026-11-27T09:18:16Z, got %s", name, quoteShort(s))
	}
	if t = t.UTC(); t.Before(minDateTime) || t.After(maxDateTime) {
		return time.Time{}, apperr.Invalid(name, "%s must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, got %s", name, quoteShort(s))
	}
	return t, nil
}

// argumentPath names the argument or input field being read, from gqlgen's path context: the
// argument, then the input fields and list indexes within it ("input.expiresAt").
func argumentPath(ctx context.Context) string {
	var parts []string
	for pc := graphql.GetPathContext(ctx); pc != nil; pc = pc.Parent {
		switch {
		case pc.Field != nil:
			parts = append(parts, *pc.Field)
		case pc.Index != nil:
			parts = append(parts, strconv.Itoa(*pc.Index))
		}
	}
	if len(parts) == 0 {
		return "DateTime"
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return "a number"
}

// quoteShort quotes s for an error message, cut to 40 characters.
func quoteShort(s string) string {
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return strconv.Quote(s)
}
