// Package testdb runs a package's tests on every database backend and gives each test a fresh,
// empty database of the backend under test.
//
// A package whose tests touch a database calls Main from its TestMain. Main runs the tests on SQLite,
// then runs the same test binary again, with the same arguments, on PostgreSQL, and fails when
// either run fails. JUNCTION_TEST_BACKENDS picks the backends: sqlite, postgres or both (the
// default). PostgreSQL is the server at TEST_DATABASE_URL (DefaultPostgresURL when unset); when
// it cannot be reached the PostgreSQL run is skipped with a message, except with CI=true, where it
// is a failure. On PostgreSQL every URL call creates a schema of its own, dropped when the test
// ends, so that many tests share one server without sharing tables.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/migrations"
)

const (
	// EnvBackends names the backends to test: sqlite, postgres or both (default).
	EnvBackends = "JUNCTION_TEST_BACKENDS"
	// EnvURL is the PostgreSQL server the tests use.
	EnvURL = "TEST_DATABASE_URL"
	// DefaultPostgresURL is the PostgreSQL server used when TEST_DATABASE_URL is unset.
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	// envBackend is set by Main on the run it starts: the backend that run tests.
	envBackend = "JUNCTION_TEST_BACKEND"
	// ReadConns is the read pool of a server under test on PostgreSQL: many servers share one
	// PostgreSQL and its max_connections.
	ReadConns = 2
	// schemaPrefix starts the name of every schema the tests create.
	schemaPrefix = "junction_test_"
)

// Backend is the database the tests of this process run on.
func Backend() db.Dialect {
	if os.Getenv(envBackend) == string(db.Postgres) {
		return db.Postgres
	}
	return db.SQLite
}

// IsPostgres tells whether the tests of this process run on PostgreSQL.
func IsPostgres() bool { return Backend() == db.Postgres }

// ServerURL is the PostgreSQL server of the tests.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// URL returns the URL of a new, empty database for t on the backend under test: a SQLite file in
// t.TempDir(), or on PostgreSQL the test server's database with a schema of its own as search_path,
// dropped with everything in it when t ends.
func URL(t testing.TB) string {
	t.Helper()
	if !IsPostgres() {
		return filepath.Join(t.TempDir(), "junction.db")
	}
	admin, err := adminDB()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := schemaPrefix + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("testdb: create schema: %v", err)
	}
	// The creation time lets a later run drop the schemas of a run that was killed.
	if _, err := admin.ExecContext(ctx, `COMMENT ON SCHEMA `+schema+` IS '`+strconv.FormatInt(time.Now().Unix(), 10)+`'`); err != nil {
		t.Fatalf("testdb: comment on schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A statement of the closed server may still run in PostgreSQL for a moment (a VACUUM
		// the reaper started is cancelled, not waited for), and the drop, which locks every
		// table of the schema, can deadlock with it: PostgreSQL then fails one of the two.
		var err error
		for try := 0; try < 5; try++ {
			if _, err = admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err == nil || !strings.Contains(err.Error(), "40P01") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("testdb: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("testdb: %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens a fresh database (URL) for t with a small read pool, and closes it when t ends.
func Open(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), URL(t), db.Options{ReadConns: ReadConns})
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// OpenMigrated opens a fresh database for t (Open) with every migration of the schema applied.
func OpenMigrated(t testing.TB) *db.DB {
	t.Helper()
	d := Open(t)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if _, err := d.Migrate(context.Background(), migs); err != nil {
		t.Fatalf("testdb: migrate: %v", err)
	}
	return d
}

// KeyFor returns an encryption key in ENCRYPTION_KEY's form for the servers of the test database
// at url: servers on PostgreSQL need one, and servers started one after the other on the same
// database must share it.
func KeyFor(url string) string {
	k := sha256.Sum256([]byte("junction test key\x00" + url))
	return base64.StdEncoding.EncodeToString(k[:])
}

var admin struct {
	once sync.Once
	db   *sql.DB
	err  error
}

// adminDB is the connection to the test server that creates and drops schemas.
func adminDB() (*sql.DB, error) {
	admin.once.Do(func() {
		d, err := sql.Open("pgx", ServerURL())
		if err != nil {
			admin.err = err
			return
		}
		d.SetMaxOpenConns(2)
		admin.db = d
	})
	return admin.db, admin.err
}

// Main runs the tests of m on the backends JUNCTION_TEST_BACKENDS names and exits. It is the whole
// body of a TestMain.
func Main(m *testing.M) {
	if os.Getenv(envBackend) != "" {
		// The run Main started: test the backend it was given.
		fmt.Printf("testdb: running the tests on %s\n", Backend())
		os.Exit(m.Run())
	}
	if !flag.Parsed() {
		flag.Parse() // m.Run would; once() reads the flags whether or not SQLite runs
	}
	sqlite, postgres, err := backends(os.Getenv(EnvBackends))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(2)
	}
	if !postgres || once() {
		os.Exit(m.Run())
	}
	if err := reachable(); err != nil {
		msg := fmt.Sprintf("testdb: PostgreSQL at %s is unreachable (%v): the PostgreSQL half of the tests is skipped; set %s, or %s=sqlite", ServerURL(), err, EnvURL, EnvBackends)
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, strings.Replace(msg, "is skipped", "cannot run, and CI needs it", 1))
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, msg)
		if !sqlite {
			os.Exit(0)
		}
		os.Exit(m.Run())
	}
	dropStale()
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), envBackend+"="+string(db.Postgres))
	dieWithParent(cmd)
	if benchmarking() {
		// One after the other, so that neither run's figures pay for the other's work.
		code := 0
		if sqlite {
			fmt.Printf("testdb: running the tests on %s\n", db.SQLite)
			code = m.Run()
		}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		os.Exit(max(code, exitCode(cmd.Run())))
	}
	// Otherwise the PostgreSQL run goes on beside the SQLite run: most of a test's time is spent
	// waiting (for commits, deliveries, timers), and go test gives a package's binary its -timeout
	// plus a minute in all. Its output is kept and shown after the SQLite run's.
	out, err := os.CreateTemp("", "testdb-postgres-*.log")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(1)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testdb: running the tests on PostgreSQL:", err)
		os.Exit(1)
	}
	code := 0
	if sqlite {
		fmt.Printf("testdb: running the tests on %s\n", db.SQLite)
		code = m.Run()
	}
	pgCode := exitCode(cmd.Wait())
	_, _ = out.Seek(0, io.SeekStart)
	_, _ = io.Copy(os.Stdout, out)
	out.Close()
	os.Remove(out.Name())
	os.Exit(max(code, pgCode))
}

// exitCode turns the end of the PostgreSQL run into an exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "testdb: running the tests on PostgreSQL:", err)
	}
	return 1
}

// benchmarking tells whether benchmarks were asked for.
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// backends parses JUNCTION_TEST_BACKENDS.
func backends(v string) (sqlite, postgres bool, err error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "both", "all", "sqlite,postgres", "postgres,sqlite":
		return true, true, nil
	case "sqlite":
		return true, false, nil
	case "postgres", "postgresql":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s=%q: want sqlite, postgres or both", EnvBackends, v)
}

// once tells whether this run must not be repeated on a second backend: listing tests, and fuzzing,
// whose workers are this binary too.
func once() bool {
	for _, name := range []string{"test.list", "test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// reachable checks that the test server answers and is PostgreSQL 15 or later.
func reachable() error {
	d, err := adminDB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var version int
	if err := d.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return err
	}
	if version < 150000 {
		return fmt.Errorf("server version %d: want PostgreSQL 15 or later", version)
	}
	return nil
}

// dropStale drops the schemas that runs killed before their clean-up left behind: those of the
// tests' prefix created more than a day ago.
func dropStale() {
	d, err := adminDB()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := d.QueryContext(ctx, `SELECT n.nspname, COALESCE(obj_description(n.oid, 'pg_namespace'), '')
		FROM pg_namespace n WHERE n.nspname LIKE '`+schemaPrefix+`%'`)
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var name, created string
		if rows.Scan(&name, &created) != nil {
			continue
		}
		if at, err := strconv.ParseInt(created, 10, 64); err == nil && time.Since(time.Unix(at, 0)) > 24*time.Hour {
			stale = append(stale, name)
		}
	}
	rows.Close()
	for _, name := range stale {
		_, _ = d.ExecContext(ctx, `DROP SCHEMA `+name+` CASCADE`)
	}
}
