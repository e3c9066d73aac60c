package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestDurabilityKill9 checks the tracking API's promise that an answered request is stored: it runs
// the real binary, sends batches from 8 clients, kills the process with SIGKILL in the middle of the
// load, restarts it on the same database and looks for every messageId of every request that was
// answered 200. On PostgreSQL the promise is the same: the server process dies, the database
// server does not.
func TestDurabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the server binary: not under -short")
	}
	start := time.Now()
	bin := buildJunction(t)
	t.Logf("go build: %s", time.Since(start).Round(time.Millisecond))
	dbURL := testdb.URL(t)
	p := startJunction(t, bin, dbURL)
	src := newTrackingSource(t, &server{URL: p.URL}, "durable")
	writeKey := src.writeKey

	const clients, perBatch = 8, 20
	var (
		mu       sync.Mutex
		acked    = map[string]bool{} // messageIds of requests answered 200
		unacked  = map[string]bool{} // sent, but no 200 came back
		inFlight atomic.Int64
		requests atomic.Int64
		answered atomic.Int64 // requests answered 200
		killed   = make(chan struct{})
		wg       sync.WaitGroup
	)
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer httpc.CloseIdleConnections()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-killed:
					return
				default:
				}
				ids := make([]string, perBatch)
				events := make([]map[string]any, perBatch)
				for i := range ids {
					ids[i] = fmt.Sprintf("dur-%d-%d-%d", c, seq, i)
					events[i] = map[string]any{"type": "track", "event": "Durability Probe", "userId": fmt.Sprintf("user-%d", c),
						"messageId": ids[i], "properties": map[string]any{"client": c, "seq": seq, "i": i}}
				}
				inFlight.Add(1)
				status, err := sendBatch(httpc, p.URL, writeKey, events)
				inFlight.Add(-1)
				requests.Add(1)
				ok := status == http.StatusOK
				if ok {
					answered.Add(1)
				}
				mu.Lock()
				for _, id := range ids {
					if ok {
						acked[id] = true
					} else {
						unacked[id] = true
					}
				}
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
			}
		}()
	}
	// Kill after a second of load, once requests are being answered (a slow CI machine may need
	// longer to get going).
	time.Sleep(time.Second)
	for deadline := time.Now().Add(10 * time.Second); answered.Load() < 10 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	flying := inFlight.Load()
	p.kill(t)
	close(killed)
	wg.Wait()
	sent := requests.Load()

	restart := time.Now()
	p2 := startJunction(t, bin, dbURL)
	t.Logf("restarted in %s", time.Since(restart).Round(time.Millisecond))
	src.s = &server{URL: p2.URL}
	total := src.totalCount(t)

	// Which events: from the database, beside the running server (WAL allows readers on SQLite).
	ctx := context.Background()
	file, err := db.Open(ctx, dbURL, db.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	err = file.Select(ctx, &stored, `SELECT message_id FROM events WHERE source_id = ?`, src.id)
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool, len(stored))
	for _, id := range stored {
		have[id] = true
	}
	missing, unackedStored, unknown := 0, 0, 0
	var firstMissing []string
	for id := range acked {
		if !have[id] {
			missing++
			if len(firstMissing) < 5 {
				firstMissing = append(firstMissing, id)
			}
		}
	}
	for id := range have {
		switch {
		case unacked[id]:
			unackedStored++
		case !acked[id]:
			unknown++
		}
	}
	report(t, fmt.Sprintf("durability (kill -9 mid-load, %d clients x %d-event batches): %d requests, %d in flight at the kill; "+
		"%d events acknowledged, %d unacknowledged; after restart %d stored (GraphQL totalCount %d): %d acknowledged missing, %d unacknowledged but stored",
		clients, perBatch, sent, flying, len(acked), len(unacked), len(stored), total, missing, unackedStored))
	if len(acked) == 0 {
		t.Fatal("no request was acknowledged before the kill")
	}
	if missing > 0 {
		t.Errorf("%d acknowledged events lost, for example %v", missing, firstMissing)
	}
	if unknown > 0 || len(have) != len(stored) {
		t.Errorf("stored events that were never sent: %d; duplicate messageIds: %d", unknown, len(stored)-len(have))
	}
	if total != len(stored) {
		t.Errorf("GraphQL totalCount %d, database %d", total, len(stored))
	}
}

// sendBatch posts events to /v1/batch with a write key without failing the test, for goroutines
// that send while a server is killed: the answer's status, or an error when none came.
func sendBatch(c *http.Client, baseURL, writeKey string, events []map[string]any) (int, error) {
	body, _ := json.Marshal(map[string]any{"batch": events})
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/v1/batch", bytes.NewReader(body))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// moduleRoot is the repository's root directory, where server.go is.
func moduleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildJunction builds the server binary (server.go) into a temporary directory; Go's build cache
// makes this quick after the first time.
func buildJunction(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "junction")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is the server binary running as a child process.
type process struct {
	URL    string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

// startJunction runs the binary on a free loopback port and the database dbURL, waits until it
// listens, and stops it (SIGTERM, then SIGKILL) when the test ends. env adds settings (NAME=value).
func startJunction(t testing.TB, bin, dbURL string, env ...string) *process {
	t.Helper()
	cfg := config.Config{DatabaseURL: dbURL}
	serverDatabase(&cfg)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR=127.0.0.1:0", "DATABASE_URL="+dbURL, "LOG_LEVEL=info", "LOG_FORMAT=json",
		"INGEST_RATE=0", "SHUTDOWN_GRACE=5s")
	if cfg.EncryptionKey != "" {
		cmd.Env = append(cmd.Env, "ENCRYPTION_KEY="+cfg.EncryptionKey, fmt.Sprintf("DATABASE_READ_CONNS=%d", cfg.DatabaseReadConns))
	}
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		// Read every line so that the server never blocks on a full pipe; keep only what is not
		// an access log line.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"msg":"http request"`) {
				continue
			}
			p.logs.Write([]byte(line + "\n"))
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				addr <- entry.Addr
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.exited:
		t.Fatalf("the server exited before listening:\n%s", p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not listen within 30 s:\n%s", p.logs)
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

func (p *process) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("the server did not stop within 10 s of SIGTERM:\n%s", p.logs)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// TestBinaryHelp: `junction -help` lists the settings, says how flags, the environment and the
// defaults rank, and exits with status 0 (it is an answer, not an error).
func TestBinaryHelp(t *testing.T) {
	bin := buildJunction(t)
	out, err := exec.Command(bin, "-help").CombinedOutput()
	if err != nil {
		t.Fatalf("junction -help: %v\n%s", err, out)
	}
	for _, want := range []string{"wins over the environment, which wins over the default", "-database-url", "-ingest-queue-wait", "(env INGEST_RATE)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-help does not say %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command(bin, "-no-such-flag").CombinedOutput(); err == nil {
		t.Errorf("an unknown flag exited with status 0:\n%s", out)
	}
}
