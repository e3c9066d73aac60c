package relay

import (
	"bytes"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// A cursor is the position of a row in a list: its sort key and id. On the wire it is
// base64url of a small JSON object, opaque to clients:
//
//	{"c":"created_at","t":"t","k":"2026-11-27T09:18:16.123Z","i":"src_01jdxk..."}
//
// c names the sort column, so a cursor from a list sorted another way is refused instead of
// silently comparing unlike values; t is the type of the key as the driver stores it (s string,
// i int64, f float64, t time.Time), so the decoded key is bound exactly as the column was
// written and compares like the stored value (a db.Time key is kept as its stored text).
// c, t and k are absent when the list is sorted by id alone.
type cursor struct {
	key any    // nil when sorted by id alone
	id  string // never empty
}

type wireCursor struct {
	Column string `json:"c,omitempty"`
	Type   string `json:"t,omitempty"`
	Key    string `json:"k,omitempty"`
	ID     string `json:"i"`
}

// maxCursorLen bounds the work done on a cursor a client sends; ours are far shorter.
const maxCursorLen = 2048

var cursorEncoding = base64.RawURLEncoding.Strict()

// cursor returns the cursor of row.
func (s Spec[T]) cursor(row T) (string, error) {
	w := wireCursor{ID: s.ID(row)}
	if w.ID == "" {
		return "", errors.New("relay: ID func returned an empty id")
	}
	if s.SortColumn != "" {
		w.Column = s.SortColumn
		// Convert as database/sql does for a query argument: Valuers, named and sized types.
		v, err := driver.DefaultParameterConverter.ConvertValue(s.SortKey(row))
		if err != nil {
			return "", fmt.Errorf("relay: sort key: %w", err)
		}
		switch k := v.(type) {
		case string:
			w.Type, w.Key = "s", k
		case int64:
			w.Type, w.Key = "i", strconv.FormatInt(k, 10)
		case float64:
			w.Type, w.Key = "f", strconv.FormatFloat(k, 'g', -1, 64)
		case time.Time:
			w.Type, w.Key = "t", k.Format(time.RFC3339Nano)
		default:
			return "", fmt.Errorf("relay: sort key is %T; want a string, integer, float or time", k)
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("relay: encode cursor: %w", err)
	}
	return cursorEncoding.EncodeToString(b), nil
}

// decodeCursor parses a cursor a client sent and checks that it belongs to a list sorted
// like s.
func (s Spec[T]) decodeCursor(text string) (*cursor, error) {
	if len(text) > maxCursorLen {
		return nil, errors.New("cursor too long")
	}
	b, err := cursorEncoding.DecodeString(text)
	if err != nil {
		return nil, err
	}
	var w wireCursor
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after cursor")
	}
	if w.ID == "" {
		return nil, errors.New("cursor has no id")
	}
	if w.Column != s.SortColumn {
		return nil, errors.New("cursor of a list sorted by another column")
	}
	c := &cursor{id: w.ID}
	switch w.Type {
	case "":
		if s.SortColumn != "" || w.Key != "" {
			return nil, errors.New("cursor has no key type")
		}
	case "s":
		c.key = w.Key
	case "i":
		c.key, err = strconv.ParseInt(w.Key, 10, 64)
	case "f":
		c.key, err = strconv.ParseFloat(w.Key, 64)
	case "t":
		c.key, err = time.Parse(time.RFC3339Nano, w.Key)
	default:
		err = errors.New("unknown key type")
	}
	if err != nil {
		return nil, err
	}
	if s.SortColumn == "" && c.key != nil {
		return nil, errors.New("cursor has a key but the list is sorted by id")
	}
	return c, nil
}
