package delivery

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/junctioncdp/junction/internal/egress"
)

// Outcomes of an attempt.
const (
	Delivered = "DELIVERED"
	Retrying  = "RETRYING"
	Failed    = "FAILED"
)

// Error types of failed attempts: what health issues and filters group by.
const (
	ErrInvalidSettings   = "INVALID_SETTINGS"
	ErrTimeout           = "TIMEOUT"
	ErrConnectionRefused = "CONNECTION_REFUSED"
	ErrConnection        = "CONNECTION_ERROR"
	ErrHTTP5xx           = "HTTP_5XX"
	// ErrEgressBlocked: the address is one deliveries may not reach (loopback, private,
	// link-local, the server itself); retrying cannot help.
	ErrEgressBlocked = "EGRESS_BLOCKED"
	// ErrRedirectRefused: the destination redirected where the policy does not follow.
	ErrRedirectRefused = "REDIRECT_REFUSED"
)

// Policy bounds retries.
type Policy struct {
	MaxAttempts int           // attempts in all, the first included
	MaxAge      time.Duration // from the first attempt
	BaseBackoff time.Duration // before the second attempt; doubles, with jitter
	MaxBackoff  time.Duration
}

// DefaultPolicy retries for up to four hours, as Segment does.
var DefaultPolicy = Policy{MaxAttempts: 12, MaxAge: 4 * time.Hour, BaseBackoff: time.Second, MaxBackoff: 30 * time.Minute}

// classify turns a response or a transport error into an error type (empty for success) and
// whether the failure may be retried. 2xx is success; 408, 429 and 5xx are retried, as are
// timeouts and connection errors; any other 4xx is final, as are refused addresses and redirects.
func classify(status int, err error) (errType string, retryable bool) {
	if err != nil {
		var netErr net.Error
		switch {
		case egress.IsBlocked(err):
			return ErrEgressBlocked, false
		case egress.IsRedirectRefused(err):
			return ErrRedirectRefused, false
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
			return ErrTimeout, true
		case errors.Is(err, syscall.ECONNREFUSED):
			return ErrConnectionRefused, true
		default:
			return ErrConnection, true
		}
	}
	switch {
	case status >= 200 && status < 300:
		return "", false
	case status >= 500:
		return ErrHTTP5xx, true
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return "HTTP_" + strconv.Itoa(status), true
	default:
		return "HTTP_" + strconv.Itoa(status), false
	}
}

// backoff is the wait before attempt number next (2 for the first retry): exponential with ±20%
// jitter, capped, or the server's Retry-After when it asks for longer.
func (p Policy) backoff(next int, retryAfter time.Duration) time.Duration {
	d := p.BaseBackoff << min(next-2, 30)
	if d <= 0 || d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	if retryAfter > d {
		d = min(retryAfter, p.MaxAge)
	}
	return d
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
