package obs

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// Middleware gives every request an id (the client's X-Request-Id when it is plain, else a new
// one, echoed in the response), a logger carrying it, an access log line, metrics under route, and
// a last-resort recovery that logs the stack and answers 500 without details.
func (m *Metrics) Middleware(base *slog.Logger, route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		log := base.With("request_id", id)
		ctx := WithLogger(r.Context(), log)
		ctx = contextWithRequestID(ctx, id)
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			ctx = context.WithValue(ctx, clientIPKey{}, host)
		}
		statements := db.StatementCounter(ctx)
		if statements == nil {
			ctx, statements = db.WithStatementCounter(ctx)
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		// A websocket lives as long as its connection: it is counted by the websocket gauges instead.
		upgrade := r.Header.Get("Upgrade") != ""
		if !upgrade {
			m.httpInFlight.WithLabelValues(route).Inc()
		}
		defer func() {
			if !upgrade {
				m.httpInFlight.WithLabelValues(route).Dec()
			}
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic serving request", "panic", p, "stack", string(debug.Stack()))
				if !rec.wroteHeader {
					http.Error(rec, `{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL"}}]}`, http.StatusInternalServerError)
				}
			}
			d := time.Since(start)
			if !rec.hijacked {
				m.httpRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
				m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
			}
			level := slog.LevelInfo
			if route == "healthz" || route == "readyz" || route == "metrics" || route == "graphiql" {
				level = slog.LevelDebug
			}
			log.Log(ctx, level, "http request", "method", r.Method, "path", r.URL.Path, "route", route,
				"status", rec.status, "bytes", rec.bytes, "duration_ms", float64(d.Microseconds())/1000,
				"websocket", rec.hijacked, "sql_statements", statements.Load(), "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// recorder remembers the status and size of a response. It passes Hijack through for websockets
// and Flush for streaming.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int
	wroteHeader bool
	hijacked    bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	r.hijacked, r.status = true, http.StatusSwitchingProtocols
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
