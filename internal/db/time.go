package db

import (
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"time"
)

// timeLayout is how every timestamp is stored, in SQLite and PostgreSQL alike: UTC text of fixed
// width, so that comparing and sorting the strings compares and sorts the instants, and a day or a
// month is a prefix (substr(ts, 1, 10)).
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Time is a timestamp column. It reads and writes the one stored form.
type Time struct{ time.Time }

// Now returns the current time, truncated to what is stored (microseconds).
func Now() Time { return Time{time.Now().UTC().Truncate(time.Microsecond)} }

// FormatTime renders t in the stored form, for building arguments and comparisons.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Value implements driver.Valuer.
func (t Time) Value() (driver.Value, error) { return FormatTime(t.Time), nil }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case time.Time:
		t.Time = v.UTC()
		return nil
	default:
		return fmt.Errorf("db.Time: cannot scan %T", v)
	}
	p, err := time.Parse(timeLayout, s)
	if err != nil {
		return fmt.Errorf("db.Time: %w", err)
	}
	t.Time = p
	return nil
}

// MarshalGQL writes t as the GraphQL DateTime scalar (RFC 3339 in UTC), so that domain types
// with timestamps bind to the schema directly.
func (t Time) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
}

// UnmarshalGQL reads a DateTime argument.
func (t *Time) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("DateTime must be an RFC 3339 string such as 2026-11-27T09:18:16Z")
	}
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("DateTime must be an RFC 3339 string such as 2026-11-27T09:18:16Z, got %q", s)
	}
	t.Time = p.UTC()
	return nil
}
