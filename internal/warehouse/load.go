package warehouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/junctioncdp/junction/internal/egress"
)

// Conn is what it takes to reach a warehouse.
type Conn struct {
	Host, Database, User, Password string
	Port                           int
	SSLMode                        string // disable, require or verify-full
	SchemaPrefix                   string
}

// connect opens a connection to the warehouse, dialing through the egress filter like every
// connection to an address a user chose.
func connect(ctx context.Context, c Conn, eg *egress.Filter) (*pgx.Conn, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(c.User, c.Password), Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path: "/" + c.Database, RawQuery: "sslmode=disable&connect_timeout=10"}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, &Failure{Type: ConnectionFailed, Err: err}
	}
	switch c.SSLMode {
	case "require":
		cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // sslmode=require checks no certificate, as libpq's
	case "verify-full":
		cfg.TLSConfig = &tls.Config{ServerName: c.Host}
	}
	cfg.Fallbacks = nil
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if eg != nil {
		dialer.Control = eg.Control
	}
	cfg.DialFunc = dialer.DialContext
	cfg.RuntimeParams["application_name"] = "junction"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify(err)
	}
	return conn, nil
}

// Error types of failed syncs, which become health issues of the warehouse.
const (
	ConnectionFailed = "CONNECTION_FAILED"
	PermissionDenied = "PERMISSION_DENIED"
	SchemaConflict   = "SCHEMA_CONFLICT"
	LoadFailed       = "LOAD_FAILED"
)

// Failure is a failed sync's error and its type.
type Failure struct {
	Type string
	Err  error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// classify gives an error from the warehouse its type: wrong credentials and unknown databases or
// roles are CONNECTION_FAILED (nothing can be loaded until the settings change), a missing
// privilege PERMISSION_DENIED, anything else LOAD_FAILED.
func classify(err error) error {
	var f *Failure
	if errors.As(err, &f) {
		return err
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "42501": // insufficient_privilege
			return &Failure{Type: PermissionDenied, Err: err}
		case strings.HasPrefix(pg.Code, "28"), pg.Code == "3D000", strings.HasPrefix(pg.Code, "08"), pg.Code == "57P03":
			return &Failure{Type: ConnectionFailed, Err: err}
		}
		return &Failure{Type: LoadFailed, Err: err}
	}
	var ce *pgconn.ConnectError
	var blocked *egress.Blocked
	if errors.As(err, &ce) || errors.As(err, &blocked) || errors.Is(err, context.DeadlineExceeded) {
		return &Failure{Type: ConnectionFailed, Err: err}
	}
	return &Failure{Type: LoadFailed, Err: err}
}

// metaSchema is the schema of the warehouse's own bookkeeping: _junction_syncs holds, per
// destination, the last event loaded, written in the transaction that loads.
func metaSchema(prefix string) string { return Identifier(prefix + "_junction") }

// begin starts the load's transaction, makes sure the bookkeeping table exists and locks this
// destination's cursor row (a second sync of the same warehouse, from another replica, waits
// here and then loads only what the first did not). It returns the cursor: the id of the last
// event loaded ("" before the first).
func begin(ctx context.Context, conn *pgx.Conn, prefix, destinationID string) (pgx.Tx, string, error) {
	meta := metaSchema(prefix)
	// DDL outside the load's transaction, so that two first syncs do not trip on each other.
	for _, q := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + quote(meta),
		`CREATE TABLE IF NOT EXISTS ` + qualified(meta, "_junction_syncs") + ` (destination_id text PRIMARY KEY,
			last_event_id text NOT NULL, sync_id text, synced_at timestamp with time zone)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			var pg *pgconn.PgError
			if errors.As(err, &pg) && pg.Code == "23505" { // created concurrently
				continue
			}
			return nil, "", classify(err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, "", classify(err)
	}
	table := qualified(meta, "_junction_syncs")
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (destination_id, last_event_id) VALUES ($1, '') ON CONFLICT DO NOTHING`, destinationID); err != nil {
		_ = tx.Rollback(ctx)
		return nil, "", classify(err)
	}
	var cursor string
	if err := tx.QueryRow(ctx, `SELECT last_event_id FROM `+table+` WHERE destination_id = $1 FOR UPDATE`, destinationID).Scan(&cursor); err != nil {
		_ = tx.Rollback(ctx)
		return nil, "", classify(err)
	}
	return tx, cursor, nil
}

// commit moves the cursor and commits the load.
func commit(ctx context.Context, tx pgx.Tx, prefix, destinationID, syncID, cursor string) error {
	if _, err := tx.Exec(ctx, `UPDATE `+qualified(metaSchema(prefix), "_junction_syncs")+` SET last_event_id = $2, sync_id = $3, synced_at = now()
		WHERE destination_id = $1`, destinationID, cursor, syncID); err != nil {
		return classify(err)
	}
	return classify0(tx.Commit(ctx))
}

func classify0(err error) error {
	if err == nil {
		return nil
	}
	return classify(err)
}

// columns reads the columns the warehouse has for the tables of a schema: table -> column -> type.
func columns(ctx context.Context, tx pgx.Tx, schema string) (map[string]map[string]ColType, error) {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1`, schema)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := map[string]map[string]ColType{}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			return nil, classify(err)
		}
		if out[t] == nil {
			out[t] = map[string]ColType{}
		}
		out[t][c] = ColType(typ)
	}
	return out, classify0(rows.Err())
}

// Warning is a value that did not fit its column: the column keeps its first type.
type Warning struct {
	Table, Column string
	Has, Got      ColType
}

func (w Warning) String() string {
	return fmt.Sprintf("%s.%s is %s; values of type %s were converted where they could be, left empty where not", w.Table, w.Column, w.Has, w.Got)
}

// loader loads batches into one warehouse within one transaction, evolving its schema.
type loader struct {
	tx       pgx.Tx
	known    map[string]map[string]map[string]ColType // schema -> table -> column -> type
	Rows     map[string]int64                         // "schema.table" -> rows loaded
	Warnings map[Warning]bool
	temps    int
}

func newLoader(tx pgx.Tx) *loader {
	return &loader{tx: tx, known: map[string]map[string]map[string]ColType{}, Rows: map[string]int64{}, Warnings: map[Warning]bool{}}
}

// load writes a batch: each table is created, or given the columns it lacks, then filled with COPY
// (users are upserted: the latest traits of each user win, traits not sent again stay).
func (l *loader) load(ctx context.Context, b *Batch) error {
	for _, t := range b.Tables() {
		if err := l.evolve(ctx, t); err != nil {
			return err
		}
		if err := l.copy(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// evolve creates the table's schema and table, and adds the columns it lacks.
func (l *loader) evolve(ctx context.Context, t *Table) error {
	tables := l.known[t.Schema]
	if tables == nil {
		if _, err := l.tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+quote(t.Schema)); err != nil {
			return classify(err)
		}
		var err error
		if tables, err = columns(ctx, l.tx, t.Schema); err != nil {
			return err
		}
		l.known[t.Schema] = tables
	}
	cols := tables[t.Name]
	names := make([]string, 0, len(t.Types))
	for c := range t.Types {
		names = append(names, c)
	}
	sort.Strings(names)
	if cols == nil {
		defs := make([]string, len(names))
		for i, c := range names {
			defs[i] = quote(c) + " " + string(t.Types[c])
			if c == "id" {
				defs[i] += " PRIMARY KEY"
				if t.Name != "users" {
					defs[i] = quote(c) + " text NOT NULL"
				}
			}
		}
		if _, err := l.tx.Exec(ctx, `CREATE TABLE `+qualified(t.Schema, t.Name)+` (`+strings.Join(defs, ", ")+`)`); err != nil {
			return classify(err)
		}
		cols = map[string]ColType{}
		for _, c := range names {
			cols[c] = t.Types[c]
		}
		tables[t.Name] = cols
		return nil
	}
	for _, c := range names {
		if _, ok := cols[c]; !ok {
			if _, err := l.tx.Exec(ctx, `ALTER TABLE `+qualified(t.Schema, t.Name)+` ADD COLUMN `+quote(c)+` `+string(t.Types[c])); err != nil {
				return classify(err)
			}
			cols[c] = t.Types[c]
		}
	}
	return nil
}

// copy loads the table's rows with COPY, each value converted to its column's type; values that
// do not convert are left NULL and noted as warnings.
func (l *loader) copy(ctx context.Context, t *Table) error {
	if len(t.Rows) == 0 {
		return nil
	}
	cols := l.known[t.Schema][t.Name]
	names := make([]string, 0, len(t.Types))
	for c := range t.Types {
		names = append(names, c)
	}
	sort.Strings(names)
	rows := make([][]any, len(t.Rows))
	for i, r := range t.Rows {
		vals := make([]any, len(names))
		for j, c := range names {
			v, ok := r[c]
			if !ok {
				continue
			}
			has := cols[c]
			if got := typeOf(v); got != has {
				l.Warnings[Warning{Table: t.Schema + "." + t.Name, Column: c, Has: has, Got: got}] = true
			}
			if cv, ok := convert(v, has); ok {
				vals[j] = cv
			}
		}
		rows[i] = vals
	}
	target := pgx.Identifier{t.Schema, t.Name}
	if t.Name == "users" {
		// COPY into a temporary table, then upsert: a user already in the warehouse keeps the
		// traits this sync does not send again.
		l.temps++
		tmp := "_junction_users_" + strconv.Itoa(l.temps)
		if _, err := l.tx.Exec(ctx, `CREATE TEMPORARY TABLE `+quote(tmp)+` (LIKE `+qualified(t.Schema, t.Name)+`) ON COMMIT DROP`); err != nil {
			return classify(err)
		}
		target = pgx.Identifier{tmp}
	}
	n, err := l.tx.CopyFrom(ctx, target, names, pgx.CopyFromRows(rows))
	if err != nil {
		return classify(err)
	}
	if t.Name == "users" {
		sets := make([]string, 0, len(names))
		quoted := make([]string, len(names))
		for i, c := range names {
			quoted[i] = quote(c)
			if c != "id" {
				sets = append(sets, quote(c)+` = COALESCE(EXCLUDED.`+quote(c)+`, u.`+quote(c)+`)`)
			}
		}
		if _, err := l.tx.Exec(ctx, `INSERT INTO `+qualified(t.Schema, t.Name)+` AS u (`+strings.Join(quoted, ", ")+`) SELECT `+strings.Join(quoted, ", ")+
			` FROM `+quote(target[0])+` ON CONFLICT (id) DO UPDATE SET `+strings.Join(sets, ", ")); err != nil {
			return classify(err)
		}
	}
	l.Rows[t.Schema+"."+t.Name] += n
	return nil
}
