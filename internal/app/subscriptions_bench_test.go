package app_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/junctioncdp/junction/internal/config"
)

// BenchmarkSubscriptionFanout runs the real server with 10,000 websockets, each with one
// sourceStatusChanged subscription to the same workspace, changes the workspace's source once per
// op (sourceDisable and sourceEnable in turn) and measures how long each subscriber waits for the
// message, from the start of the mutation: p50, p99 and max. It reports what idle subscribers cost
// the server (heap in use, goroutine stacks and goroutines per websocket, and per subscription on
// top; the CPU the server uses over two idle seconds), and the server's CPU time per change, also
// as cores busy for as long as the fan-out took.
//
//	go test -run '^$' -bench SubscriptionFanout -benchtime 5x ./internal/app/
//
// JUNCTION_FANOUT_SUBSCRIBERS changes the number of subscribers. The clients are gorilla
// websockets in a child process (this test binary running TestSubscriptionFanoutClients): in one
// process, client and server sockets together need 20,000 descriptors and more, above common hard
// limits that an unprivileged process cannot raise; apart, the server's memory and CPU figures are
// its own. Both processes share the machine's cores.
func BenchmarkSubscriptionFanout(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("JUNCTION_FANOUT_SUBSCRIBERS")); err == nil && v > 0 {
		n = v
	}
	benchRaiseFileLimit(b, uint64(n+1024))
	// One user on one address opens every websocket here.
	s := startServer(b, func(c *config.Config) {
		c.LogLevel = slog.LevelError
		c.Limits.WSPerUser, c.Limits.WSPerAddress = n, n
	})
	tm := newTeam(b, s, "fanout", "Ada")
	srcID, _ := tm.source(b, "Web")

	g0, h0, st0, rss0 := benchMemory(b)
	swarm := benchStartSwarm(b, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", tm.owner.tok, tm.wsID, n)
	swarm.expect(b, "connected")
	subWait(b, "the server to count the websockets", 30*time.Second, func() bool {
		return strings.Contains(benchGet(b, s.URL+"/metrics"), fmt.Sprintf("\njunction_websocket_connections %d\n", n))
	})
	g1, h1, st1, rss1 := benchMemory(b)
	bus := subBus(b, s)
	swarm.send(b, "subscribe")
	subWait(b, fmt.Sprintf("%d subscriptions", n), time.Minute, func() bool { return bus.Subscribers() == int64(n) })
	g2, h2, st2, rss2 := benchMemory(b)
	if path := os.Getenv("JUNCTION_FANOUT_HEAP_PROFILE"); path != "" {
		// What the idle subscribers hold: go tool pprof -sample_index=inuse_space <path>.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	idle0, idleStart := benchCPU(), time.Now()
	time.Sleep(2 * time.Second) // idle: heartbeats only
	idle := (benchCPU() - idle0).Seconds() / time.Since(idleStart).Seconds()

	var all []time.Duration
	var cpu, fanout time.Duration
	b.ResetTimer()
	for i := range b.N {
		mutation := "sourceDisable"
		if i%2 == 1 {
			mutation = "sourceEnable"
		}
		swarm.send(b, "arm")
		swarm.expect(b, "armed")
		cpu0 := benchCPU()
		start := time.Now()
		tm.mutate(b, tm.owner.tok, mutation, "SourceIdInput", "source { id }", map[string]any{"sourceId": srcID})
		fields := strings.Fields(strings.TrimPrefix(swarm.expect(b, "received "), "received "))
		cpu += benchCPU() - cpu0
		var last time.Duration
		for _, f := range fields {
			ns, _ := strconv.ParseInt(f, 10, 64)
			d := time.Unix(0, ns).Sub(start) // both processes read the same wall clock
			all = append(all, d)
			last = max(last, d)
		}
		fanout += last
	}
	b.StopTimer()
	swarm.send(b, "quit")
	swarm.wait(b)

	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[int(0.99*float64(len(all)-1))]), "p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "max-ms")
	b.ReportMetric(cpu.Seconds()/fanout.Seconds(), "server-cores")
	b.ReportMetric(idle, "idle-server-cores")
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "server-cpu-ms/change")
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	b.ReportMetric(per(h0, h1), "heap-KiB/socket")
	b.ReportMetric(per(st0, st1), "stack-KiB/socket")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/socket")
	b.ReportMetric(per(h1, h2), "heap-KiB/subscription")
	b.ReportMetric(per(st1, st2), "stack-KiB/subscription")
	b.ReportMetric(float64(g2-g1)/float64(n), "goroutines/subscription")
	b.ReportMetric(per(rss0, rss2), "RSS-KiB/subscriber")
	b.Logf("%d subscribers, %d CPUs: server heap in use %.1f → %.1f (sockets) → %.1f MiB (subscriptions); goroutines %d → %d → %d; RSS %.1f → %.1f → %.1f MiB",
		n, runtime.NumCPU(), float64(h0)/(1<<20), float64(h1)/(1<<20), float64(h2)/(1<<20), g0, g1, g2,
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss2)/(1<<20))
}

// TestSubscriptionFanoutClients is the client side of BenchmarkSubscriptionFanout, run by it in a
// child process; it skips otherwise. It speaks lines on stdin and stdout: it dials the websockets
// ("connected"), subscribes each on "subscribe", and on "arm" ("armed") waits until every
// subscriber got a message and answers "received" with when each did (Unix ns).
func TestSubscriptionFanoutClients(t *testing.T) {
	args := strings.Fields(os.Getenv("JUNCTION_FANOUT_CLIENTS"))
	if len(args) != 4 {
		t.Skip("the client side of BenchmarkSubscriptionFanout")
	}
	url, tok, wsID := args[0], args[1], args[2]
	n, _ := strconv.Atoi(args[3])
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	clients := make([]*benchSubscriber, n)
	if err := benchParallel(n, 64, func(i int) (err error) {
		clients[i], err = benchDial(url, tok)
		return err
	}); err != nil {
		say("error %v", err)
		return
	}
	defer func() {
		for _, c := range clients {
			c.ws.Close()
		}
	}()
	say("connected")
	subscribe := []byte(fmt.Sprintf(`{"id":"1","type":"subscribe","payload":{"query":%q,"variables":{"ws":%q}}}`, subSourceStatus, wsID))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "subscribe":
			if err := benchParallel(n, 64, func(i int) error { return clients[i].ws.WriteMessage(websocket.TextMessage, subscribe) }); err != nil {
				say("error %v", err)
				return
			}
			for _, c := range clients {
				go c.read()
			}
		case "arm":
			var got sync.WaitGroup
			got.Add(n)
			for _, c := range clients {
				c.arm(&got)
			}
			say("armed")
			done := make(chan struct{})
			go func() { got.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				say("error not every subscriber got the change within 60 s")
				return
			}
			var sb strings.Builder
			sb.WriteString("received")
			for _, c := range clients {
				fmt.Fprintf(&sb, " %d", c.received.Load())
			}
			say("%s", sb.String())
		case "quit":
			return
		}
	}
}

// benchSubscriber is one websocket with one subscription and, once subscribed, a goroutine that
// reads it. Each change arms it; the first next message after that records when it came.
type benchSubscriber struct {
	ws       *websocket.Conn
	mu       sync.Mutex
	got      *sync.WaitGroup
	received atomic.Int64 // Unix ns
}

func benchDial(url, tok string) (*benchSubscriber, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init","payload":{"Authorization":"Bearer `+tok+`"}}`)); err != nil {
		return nil, err
	}
	_, ack, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(ack, []byte(`"connection_ack"`)) {
		return nil, fmt.Errorf("connection_init: %s %v", ack, err)
	}
	return &benchSubscriber{ws: ws}, nil
}

func (c *benchSubscriber) arm(got *sync.WaitGroup) {
	c.mu.Lock()
	c.got = got
	c.mu.Unlock()
}

func (c *benchSubscriber) read() {
	for {
		_, m, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if !bytes.Contains(m, []byte(`"type":"next"`)) {
			continue // the server's ping
		}
		now := time.Now()
		c.mu.Lock()
		if c.got != nil {
			c.received.Store(now.UnixNano())
			c.got.Done()
			c.got = nil
		}
		c.mu.Unlock()
	}
}

// benchSwarm is the child process that runs the clients.
type benchSwarm struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func benchStartSwarm(b *testing.B, url, tok, wsID string, n int) *benchSwarm {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSubscriptionFanoutClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("JUNCTION_FANOUT_CLIENTS=%s %s %s %d", url, tok, wsID, n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	sw := &benchSwarm{cmd: cmd, in: in, out: sc}
	b.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return sw
}

func (sw *benchSwarm) send(b *testing.B, line string) {
	b.Helper()
	if _, err := io.WriteString(sw.in, line+"\n"); err != nil {
		b.Fatal(err)
	}
}

// expect reads the child's lines until one starts with prefix, and fails on an error line.
func (sw *benchSwarm) expect(b *testing.B, prefix string) string {
	b.Helper()
	for sw.out.Scan() {
		line := sw.out.Text()
		switch {
		case strings.HasPrefix(line, prefix):
			return line
		case strings.HasPrefix(line, "error "):
			b.Fatalf("clients: %s", line)
		}
	}
	b.Fatalf("clients ended before %q: %v", prefix, sw.out.Err())
	return ""
}

func (sw *benchSwarm) wait(b *testing.B) {
	b.Helper()
	sw.in.Close()
	if err := sw.cmd.Wait(); err != nil {
		b.Errorf("clients: %v", err)
	}
}

// benchParallel runs f for 0..n-1 on workers goroutines and returns the first error.
func benchParallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					errs <- fmt.Errorf("subscriber %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func benchGet(b *testing.B, url string) string {
	b.Helper()
	res, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// benchMemory measures the server process after a collection: goroutines, heap in use and
// goroutine stacks in use.
func benchMemory(b *testing.B) (goroutines int, heap, stacks, rss uint64) {
	b.Helper()
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond) // let the closed connections' goroutines return
	runtime.GC()
	debug.FreeOSMemory() // what the process holds, not what the runtime has not returned yet
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, benchRSS(b)
}

// benchRSS is the resident set size of this process, from /proc.
func benchRSS(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// benchCPU is the CPU time (user and system) this process has used.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRaiseFileLimit raises the soft limit of open files to at least want, within the hard limit.
func benchRaiseFileLimit(b *testing.B, want uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < want {
		b.Fatalf("open-file limit %d (hard %d), need %d: %v", lim.Cur, lim.Max, want, err)
	}
}
