// Package egress is the one way this server opens connections to addresses that users choose
// (destinations, notification webhooks, and later warehouses). Its Filter refuses, at dial time,
// every address that reaches into the server's own network rather than the internet: loopback,
// private, link-local (cloud metadata services live there), unspecified, multicast, shared
// (CGNAT) and reserved ranges, and the server's own listen addresses. The check runs in the
// dialer's Control hook, after DNS resolution and for every connection a redirect opens, so that
// neither a name that resolves to 127.0.0.1 nor a redirect to http://169.254.169.254/ gets through.
// An operator lets chosen ranges through with an allow list (EGRESS_ALLOW); the server's own
// listen addresses stay refused whatever it says.
//
// Settings that name a refused address literally (127.0.0.1, localhost, [::1], 0.0.0.0, 2130706433,
// 127.1, 0x7f.1 ...) are refused when they are saved, through CheckURL, so that the mistake shows at
// once instead of as failed deliveries.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxRedirects is how many redirects one request may follow.
const MaxRedirects = 3

// range_ is a refused range and what it is called in error messages.
type range_ struct {
	prefix netip.Prefix
	what   string
}

// refused are the ranges no outgoing connection may reach unless the allow list names them.
var refused = func() []range_ {
	var out []range_
	for _, r := range []struct{ cidr, what string }{
		{"0.0.0.0/8", "an unspecified address"},
		{"::/128", "an unspecified address"},
		{"127.0.0.0/8", "a loopback address"},
		{"::1/128", "a loopback address"},
		{"10.0.0.0/8", "a private address"},
		{"172.16.0.0/12", "a private address"},
		{"192.168.0.0/16", "a private address"},
		{"fc00::/7", "a private address"},
		{"fec0::/10", "a private address"},
		{"169.254.0.0/16", "a link-local address"},
		{"fe80::/10", "a link-local address"},
		{"100.64.0.0/10", "a shared (CGNAT) address"},
		{"224.0.0.0/4", "a multicast address"},
		{"ff00::/8", "a multicast address"},
		{"240.0.0.0/4", "a reserved address"},
	} {
		out = append(out, range_{netip.MustParsePrefix(r.cidr), r.what})
	}
	return out
}()

// embedding are IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64, and the
// deprecated IPv4-compatible form): the IPv4 address is checked too.
var embedding = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("::/96")}

// Blocked is the error of a refused connection or setting.
type Blocked struct {
	Addr   string // the address refused, as given or as dialed
	Reason string // "a loopback address", "this server's own listen address" ...
}

func (b *Blocked) Error() string {
	return "egress refused: " + b.Addr + " is " + b.Reason + "; the server does not connect to it (EGRESS_ALLOW lists exceptions)"
}

// RedirectRefused is the error of a redirect the policy does not follow.
type RedirectRefused struct{ Reason string }

func (r *RedirectRefused) Error() string { return "redirect not followed: " + r.Reason }

// Filter decides which addresses outgoing connections may reach. It is safe for concurrent use.
type Filter struct {
	allow []netip.Prefix

	mu   sync.RWMutex
	self []netip.AddrPort // listen addresses; an unspecified address stands for every local one
	// local are the addresses of this host's interfaces, for listen addresses on all of them.
	local map[netip.Addr]bool
}

// New returns a filter that lets the allow list through (nil: nothing beyond the internet).
func New(allow []netip.Prefix) *Filter {
	return &Filter{allow: allow}
}

// ParseAllow reads a comma-separated list of CIDRs (a bare address counts as its own /32 or /128).
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.1.0.0/16 or ::1/128", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Listening tells the filter an address the server listens on: connections to it are refused
// whatever the allow list says (a webhook to the server's own /graphql would run the event as a
// query). A listen address on all interfaces (":8080") stands for every address of this host
// with that port.
func (f *Filter) Listening(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	local := map[netip.Addr]bool{}
	if ap.Addr().IsUnspecified() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					local[p.Addr().Unmap().WithZone("")] = true
				}
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.self = append(f.self, ap)
	if f.local == nil {
		f.local = map[netip.Addr]bool{}
	}
	for a := range local {
		f.local[a] = true
	}
}

// isSelf tells whether a destination address is one the server listens on.
func (f *Filter) isSelf(ip netip.Addr, port uint16) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.self {
		if s.Port() != port {
			continue
		}
		switch {
		case s.Addr() == ip:
			return true
		case s.Addr().IsUnspecified() && (ip.IsLoopback() || ip.IsUnspecified() || f.local[ip]):
			return true
		case s.Addr().IsLoopback() && ip.IsUnspecified(): // 0.0.0.0 reaches the host's loopback listeners
			return true
		}
	}
	return false
}

// check returns nil when ip (with port, 0 for any) may be reached, else *Blocked naming addr.
func (f *Filter) check(addr string, ip netip.Addr, port uint16) error {
	ip = ip.Unmap().WithZone("")
	if port != 0 && f.isSelf(ip, port) {
		return &Blocked{Addr: addr, Reason: "this server's own listen address"}
	}
	reason := refusedReason(ip)
	if reason == "" {
		return nil
	}
	for _, p := range f.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return &Blocked{Addr: addr, Reason: reason}
}

// refusedReason says which refused range ip is in, or "".
func refusedReason(ip netip.Addr) string {
	for _, r := range refused {
		if r.prefix.Contains(ip) {
			return r.what
		}
	}
	if ip.Is6() {
		for _, p := range embedding {
			if p.Contains(ip) {
				b := ip.As16()
				if reason := refusedReason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); reason != "" {
					return reason
				}
			}
		}
	}
	return ""
}

// Control is the dialer's Control hook: it runs after DNS resolution, once for every address a
// connection is attempted to, and refuses the ones the filter does not allow.
func (f *Filter) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &Blocked{Addr: address, Reason: "not an IP address and port"}
	}
	return f.check(address, ap.Addr(), ap.Port())
}

// CheckURL refuses a URL whose host is literally an address the filter refuses, in any notation
// a resolver might accept (127.0.0.1, 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1, [::1],
// [::ffff:127.0.0.1]), or a name of this host (localhost, *.localhost). Other names pass: they are
// checked when dialed, after DNS.
func (f *Filter) CheckURL(u *url.URL) error {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := uint16(0)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return &Blocked{Addr: u.Host, Reason: "not a valid port"}
		}
		port = uint16(n)
	} else if u.Scheme == "https" {
		port = 443
	} else if u.Scheme == "http" {
		port = 80
	}
	var ips []netip.Addr
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	default:
		ip, ok := ParseLiteral(host)
		if !ok {
			return nil
		}
		ips = []netip.Addr{ip}
	}
	for _, ip := range ips {
		if err := f.check(u.Host, ip, port); err != nil {
			return err
		}
	}
	return nil
}

// ParseLiteral reads a host that is an IP address in any notation resolvers take: IPv6 (with a
// zone or an embedded IPv4), and IPv4 as inet_aton reads it, in one to four parts, each decimal,
// octal (leading 0) or hexadecimal (0x): 127.0.0.1, 127.1, 2130706433, 0x7f.1, 0177.0.0.1.
func ParseLiteral(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), true
	}
	parts := strings.Split(host, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := atonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// The last part fills the remaining bytes: a.b.c.d, a.b.c (c: 16 bits), a.b (b: 24 bits), a (32 bits).
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	var n uint64
	for _, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n = n<<8 | v
	}
	n = n<<(8*(5-len(vals))) | last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func atonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base, digits := 10, p
	switch {
	case strings.HasPrefix(p, "0x"):
		base, digits = 16, p[2:]
		if digits == "" {
			return 0, true // "0x" alone is 0 to inet_aton
		}
	case len(p) > 1 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	v, err := strconv.ParseUint(digits, base, 32)
	return v, err == nil
}

// Transport returns an HTTP transport whose connections dial through the filter, without any
// proxy from the environment (a proxy would make the connection on our behalf, unfiltered).
func (f *Filter) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: f.Control}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns a client on transport t (from Transport) that follows redirects by the policy:
// at most MaxRedirects, never from https to http, never one that changes the method (a POST
// turned into a GET delivers nothing), each to an address the filter allows (its dial is checked
// like the first). Redirects followed or refused are noted in the request's Trace.
func Client(t http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{Transport: t, Timeout: timeout, CheckRedirect: checkRedirect}
}

// Redirect is one redirect a request met.
type Redirect struct {
	Status  int    `json:"status"`
	URL     string `json:"url"`               // where it pointed
	Refused string `json:"refused,omitempty"` // why it was not followed; empty when followed
}

type traceKey struct{}

// Trace returns a context whose requests note their redirects in *list.
func Trace(ctx context.Context) (context.Context, *[]Redirect) {
	list := &[]Redirect{}
	return context.WithValue(ctx, traceKey{}, list), list
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	prev, first := via[len(via)-1], via[0]
	var refuse string
	switch {
	case len(via) > MaxRedirects:
		refuse = fmt.Sprintf("more than %d redirects", MaxRedirects)
	case prev.URL.Scheme == "https" && req.URL.Scheme != "https":
		refuse = "from https to " + req.URL.Scheme
	case req.Method != first.Method:
		refuse = "it would turn the " + first.Method + " into a " + req.Method
	}
	if list, ok := req.Context().Value(traceKey{}).(*[]Redirect); ok {
		status := 0
		if req.Response != nil {
			status = req.Response.StatusCode
		}
		*list = append(*list, Redirect{Status: status, URL: req.URL.String(), Refused: refuse})
	}
	if refuse != "" {
		return &RedirectRefused{Reason: refuse}
	}
	return nil
}

// IsBlocked tells whether err comes from a refused address.
func IsBlocked(err error) bool {
	var b *Blocked
	return errors.As(err, &b)
}

// IsRedirectRefused tells whether err comes from a redirect the policy did not follow.
func IsRedirectRefused(err error) bool {
	var r *RedirectRefused
	return errors.As(err, &r)
}
