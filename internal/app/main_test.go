package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/app"
	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/obs"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestMain runs the package's tests on SQLite, then on PostgreSQL (internal/testdb).
func TestMain(m *testing.M) { testdb.Main(m) }

// server is a real server on a real database of the backend under test (a SQLite file, or a
// PostgreSQL schema of its own), listening on a loopback port.
type server struct {
	URL    string // http://127.0.0.1:port
	Config config.Config
	App    *app.App
	Logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServer starts the server as server.go does, with the configuration changed by opts, and
// stops it when the test ends. Its database is a fresh one (testdb.URL) unless opts name another.
func startServer(t testing.TB, opts ...func(*config.Config)) *server {
	t.Helper()
	cfg := config.Default()
	cfg.DatabaseURL = testdb.URL(t)
	cfg.Addr = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	cfg.LogLevel = slog.LevelDebug
	for _, o := range opts {
		o(&cfg)
	}
	serverDatabase(&cfg)
	logs := &syncBuffer{}
	log := obs.NewLogger(logs, "json", cfg.LogLevel)
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{URL: "http://" + ln.Addr().String(), Config: cfg, App: a, Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			logErrors(t, logs.String())
		}
	})
	return s
}

// logErrors shows the error lines of a failed test's server log, where an INTERNAL error's cause is.
func logErrors(t testing.TB, logs string) {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && n < 20 {
			t.Log("server log: " + line)
			n++
		}
	}
}

// serverDatabase sets what a server on PostgreSQL needs beside its URL: a small read pool (many
// test servers share one PostgreSQL) and an encryption key, the same for every server on one
// database, as replicas would share it.
func serverDatabase(cfg *config.Config) {
	if !db.IsPostgresURL(cfg.DatabaseURL) {
		return
	}
	cfg.DatabaseReadConns = testdb.ReadConns
	if cfg.EncryptionKey == "" {
		cfg.EncryptionKey = testdb.KeyFor(cfg.DatabaseURL)
	}
}

// allowLoopback lets deliveries and notification webhooks reach receivers on loopback (the
// tests' httptest servers), which the egress filter refuses by default, as an operator would with
// EGRESS_ALLOW=127.0.0.0/8,::1/128.
func allowLoopback(c *config.Config) {
	c.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// stop shuts the server down gracefully and waits for it.
func (s *server) stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop within 15 s")
		return nil
	}
}

// gqlResponse is a GraphQL response as a client sees it.
type gqlResponse struct {
	Status int
	Header http.Header
	Data   map[string]any   `json:"data"`
	Errors []map[string]any `json:"errors"`
	Raw    string
}

// post sends a GraphQL request over HTTP POST and decodes the answer.
func (s *server) post(t testing.TB, query string, variables map[string]any, headers ...string) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": variables})
	return s.do(t, http.MethodPost, "/graphql", bytes.NewReader(body), append([]string{"Content-Type", "application/json"}, headers...)...)
}

func (s *server) do(t testing.TB, method, path string, body io.Reader, headers ...string) gqlResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := gqlResponse{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if strings.Contains(res.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return out
}

// errorCode returns extensions.code of the first error, or "".
func (r gqlResponse) errorCode() string {
	if len(r.Errors) == 0 {
		return ""
	}
	ext, _ := r.Errors[0]["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

func (r gqlResponse) errorMessage() string {
	if len(r.Errors) == 0 {
		return ""
	}
	m, _ := r.Errors[0]["message"].(string)
	return m
}

// syncBuffer collects the server's logs for assertions.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// conformanceDir is where the Node.js conformance runners live.
func conformanceDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "conformance")
}

// runNode runs a conformance script with node. Without node or its packages the test is skipped,
// except in CI (CI=true), where .ci/run installs them and a missing one is a failure.
func runNode(t *testing.T, script string, args ...string) string {
	t.Helper()
	dir := conformanceDir(t)
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules"))
	if nodeErr != nil || modErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or conformance/node_modules missing in CI (node: %v, modules: %v)", nodeErr, modErr)
		}
		t.Skip("node or conformance/node_modules missing: run `npm ci --prefix conformance`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	report(t, strings.TrimSpace(lastLine(string(out))))
	return string(out)
}

// report records a conformance summary line: in the test log, and in the file named by
// CONFORMANCE_LOG (which .ci/run prints at the end of the CI log).
func report(t *testing.T, line string) {
	t.Log(line)
	if path := os.Getenv("CONFORMANCE_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString(line + "\n")
			f.Close()
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// storedBytes returns what the server's database holds, to look for secrets stored in clear: the
// SQLite file and its write-ahead log as they are on disk, or on PostgreSQL every row of every
// table of the server's schema in PostgreSQL's text form.
func storedBytes(t testing.TB, s *server) []byte {
	t.Helper()
	d := s.App.DB()
	if d.Dialect() == db.SQLite {
		var files []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(d.Path() + suffix)
			if err != nil && !(suffix == "-wal" && os.IsNotExist(err)) {
				t.Fatal(err)
			}
			files = append(files, b...)
		}
		return files
	}
	ctx := context.Background()
	var tables []string
	if err := d.Select(ctx, &tables, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, table := range tables {
		var rows []string
		if err := d.Select(ctx, &rows, `SELECT t::text FROM `+table+` t`); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, r...)
			out = append(out, '\n')
		}
	}
	return out
}
