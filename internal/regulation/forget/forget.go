// Package forget is how each domain takes part in deleting an end user's data (a regulation of
// internal/regulation): the steps it registers, and the helpers they share. Like internal/reap for
// deleted objects, every domain deletes its own rows; the regulation runs the steps in order, a
// bounded batch per transaction, so that a deletion never holds the single writer for long.
package forget

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/junctioncdp/junction/internal/db"
)

// Subjects are the people one regulation is about, in one workspace, by kind of identifier.
// Emails are lower-case.
type Subjects struct {
	WorkspaceID  string
	UserIDs      []string
	AnonymousIDs []string
	Emails       []string
	// Hash returns the salted hash that replaces an identifier where a row must stay (counts
	// already reported): kind is "u", "a" or "e".
	Hash func(kind, value string) string
}

// All lists every identifier, whatever its kind.
func (s Subjects) All() []string {
	return append(append(append([]string{}, s.UserIDs...), s.AnonymousIDs...), s.Emails...)
}

// Step deletes one domain's rows about the subjects, going through its table in order from the
// cursor after ("" at first) and looking at no more than limit rows per call. It returns the
// cursor to go on from ("" once it has looked at everything), how many rows it looked at (limit
// while there is more) and how many it deleted or made anonymous.
type Step struct {
	Name string
	Run  func(ctx context.Context, tx *db.Tx, s Subjects, after string, limit int) (next string, looked, deleted int64, err error)
}

// EventHook deletes what a domain derived from stored events (delivery attempts, samples), in the
// transaction that deletes the events, before they go.
type EventHook func(ctx context.Context, tx *db.Tx, workspaceID string, eventIDs []string) (int64, error)

// Window is the next slice of a table to look at: the ids after `after`, at most limit of them,
// by id order. It returns the last id of the slice ("" when there is none) and how many ids it
// holds; the caller looks at `id > after AND id <= last`.
func Window(ctx context.Context, tx *db.Tx, table, idColumn, after string, limit int) (last string, n int64, err error) {
	var row struct {
		Last *string `db:"last"`
		N    int64   `db:"n"`
	}
	err = tx.Get(ctx, &row, `SELECT MAX(`+idColumn+`) AS last, COUNT(*) AS n FROM (SELECT `+idColumn+` FROM `+table+
		` WHERE `+idColumn+` > ? ORDER BY `+idColumn+` LIMIT ?) w`, after, limit)
	if err != nil || row.Last == nil {
		return "", 0, err
	}
	return *row.Last, row.N, nil
}

// Next is the cursor after a window: "" when it was the last one.
func Next(last string, n int64, limit int) string {
	if n < int64(limit) {
		return ""
	}
	return last
}

// JSONLike returns LIKE patterns (with ESCAPE '\') that match a JSON text holding one of values
// as a whole string, lower-cased when lower is set (match against LOWER(column) then).
func JSONLike(values []string, lower bool) []any {
	out := make([]any, 0, len(values))
	for _, v := range values {
		if lower {
			v = strings.ToLower(v)
		}
		b, _ := json.Marshal(v)
		r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		out = append(out, "%"+r.Replace(string(b))+"%")
	}
	return out
}

// AnyLike is the condition `(expr LIKE ? ESCAPE '\' OR ...)` for n patterns; FALSE for none.
func AnyLike(expr string, n int) string {
	if n == 0 {
		return "FALSE"
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = expr + ` LIKE ? ESCAPE '\'`
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// In is `column IN (?, ...)` for values; FALSE for none.
func In(column string, values []string) (string, []any) {
	if len(values) == 0 {
		return "FALSE", nil
	}
	return column + " IN (" + db.Placeholders(len(values)) + ")", db.Args(values)
}

// DrainWindows goes through table by id from after up to (not including) below, a Window per
// transaction (db.Drain sizes them), and calls del for the ids in (from, to] of each window; it
// returns the rows del deleted. Retention by workspace uses it as regulations' steps do.
func DrainWindows(ctx context.Context, d *db.DB, table, after, below string,
	del func(ctx context.Context, tx *db.Tx, from, to string) (int64, error)) (int64, error) {
	var total int64
	_, err := d.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
		last, n, err := Window(ctx, tx, table, "id", after, limit)
		if err != nil || last == "" {
			return 0, err
		}
		m, err := del(ctx, tx, after, last)
		if err != nil {
			return 0, err
		}
		total += m
		if after = last; last >= below || n < int64(limit) {
			return 0, nil
		}
		return int64(limit), nil
	})
	return total, err
}
