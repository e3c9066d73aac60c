package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseLiteral(t *testing.T) {
	for _, tc := range []struct {
		host, want string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0.0.0.0", "0.0.0.0"},
		{"[::1]", "::1"},
		{"::1", "::1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"169.254.169.254", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
	} {
		got, ok := ParseLiteral(tc.host)
		if !ok || got.String() != tc.want {
			t.Errorf("ParseLiteral(%q) = %v, %v; want %s", tc.host, got, ok, tc.want)
		}
	}
	for _, host := range []string{"example.com", "1e100.net", "127.0.0.256", "256.1", "1.2.3.4.5", "0x", "09.1.1.1", "", "a.b"} {
		if host == "0x" {
			continue // inet_aton reads a bare 0x as 0; nothing to say either way
		}
		if got, ok := ParseLiteral(host); ok {
			t.Errorf("ParseLiteral(%q) = %v, want no address", host, got)
		}
	}
}

// TestCheckURL checks each notation of a refused address in a setting, and that other hosts pass.
func TestCheckURL(t *testing.T) {
	f := New(nil)
	for _, raw := range []string{
		"http://127.0.0.1/hook", "http://localhost:8080/", "http://LOCALHOST./", "http://api.localhost/x",
		"http://[::1]/", "http://0.0.0.0:9/", "http://2130706433/", "http://127.1/", "http://0x7f.1/",
		"http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://10.1.2.3/", "http://172.16.0.1/",
		"http://192.168.1.1/", "http://[fc00::1]/", "http://[fd12::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1%25eth0]/", "http://100.64.0.1/", "http://224.0.0.1/", "http://[ff02::1]/",
		"http://255.255.255.255/", "http://[64:ff9b::7f00:1]/", "http://[::7f00:1]/",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		err = f.CheckURL(u)
		if !IsBlocked(err) {
			t.Errorf("CheckURL(%s) = %v, want it refused", raw, err)
		}
	}
	for _, raw := range []string{"https://hooks.example.com/in", "http://203.0.113.7:8080/", "https://[2001:db8::1]/", "https://8.8.8.8/"} {
		u, _ := url.Parse(raw)
		if err := f.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%s) = %v, want it allowed", raw, err)
		}
	}
}

func TestAllowList(t *testing.T) {
	allow, err := ParseAllow(" 127.0.0.0/8, ::1/128 ,10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(allow); got != 3 {
		t.Fatalf("ParseAllow: %v", allow)
	}
	if _, err := ParseAllow("127.0.0.1/33"); err == nil {
		t.Error("ParseAllow accepted 127.0.0.1/33")
	}
	if _, err := ParseAllow("localhost"); err == nil {
		t.Error("ParseAllow accepted a name")
	}
	f := New(allow)
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:9/": true, "http://localhost/": true, "http://[::1]/": true, "http://10.1.2.3/": true,
		"http://10.1.2.4/": false, "http://169.254.169.254/": false,
	} {
		u, _ := url.Parse(raw)
		if err := f.CheckURL(u); (err == nil) != ok {
			t.Errorf("with the allow list, CheckURL(%s) = %v, want allowed %v", raw, err, ok)
		}
	}
}

// TestSelfRefused checks that the server's own listen address stays refused whatever the allow
// list says, for a listener on one address and for one on all interfaces.
func TestSelfRefused(t *testing.T) {
	f := New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	f.Listening(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:8080/graphql": false, "http://localhost:8080/metrics": false, "http://127.0.0.1:8081/": true,
		"http://0.0.0.0:8080/": false,
	} {
		u, _ := url.Parse(raw)
		if err := f.CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%s) = %v, want allowed %v", raw, err, ok)
		}
	}
	all := New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	all.Listening(&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090})
	for raw, ok := range map[string]bool{"http://127.0.0.1:9090/": false, "http://[::1]:9090/": false, "http://127.0.0.1:9091/": true} {
		u, _ := url.Parse(raw)
		if err := all.CheckURL(u); (err == nil) != ok {
			t.Errorf("listening on all interfaces, CheckURL(%s) = %v, want allowed %v", raw, err, ok)
		}
	}
	if err := all.Control("tcp4", "127.0.0.1:9090", nil); !IsBlocked(err) {
		t.Errorf("Control(127.0.0.1:9090) = %v, want refused", err)
	}
}

func okServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	return srv
}

// TestDialRefusesLoopback checks the dial-time check: a name that resolves to loopback is refused
// by default and reached with the allow list.
func TestDialRefusesLoopback(t *testing.T) {
	srv := okServer(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "http://localhost:" + port + "/" // a name: only the dial sees the address
	res, err := Client(New(nil).Transport(), 5*time.Second).Get(target)
	if err == nil {
		res.Body.Close()
		t.Fatalf("GET %s through the default filter answered %d, want refused", target, res.StatusCode)
	}
	if !IsBlocked(err) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %v, want a loopback refusal", err)
	}
	allowed := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	res, err = Client(allowed.Transport(), 5*time.Second).Get(target)
	if err != nil {
		t.Fatalf("with loopback allowed: %v", err)
	}
	res.Body.Close()
}

func redirector(t *testing.T, status int, to func(r *http.Request) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to(r), status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRedirects(t *testing.T) {
	loopback := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	client := Client(loopback.Transport(), 5*time.Second)
	post := func(t *testing.T, c *http.Client, u string) (*http.Response, []Redirect, error) {
		ctx, trace := Trace(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{}`))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(`{}`)), nil }
		res, err := c.Do(req)
		if res != nil {
			res.Body.Close()
		}
		return res, *trace, err
	}

	t.Run("Followed", func(t *testing.T) {
		final := okServer(t)
		r := redirector(t, http.StatusTemporaryRedirect, func(*http.Request) string { return final.URL + "/in" })
		res, trace, err := post(t, client, r.URL)
		if err != nil || res.StatusCode != 200 || res.Request.URL.String() != final.URL+"/in" {
			t.Fatalf("%v %v", res, err)
		}
		if len(trace) != 1 || trace[0].Status != 307 || trace[0].URL != final.URL+"/in" || trace[0].Refused != "" {
			t.Errorf("trace %+v", trace)
		}
	})

	t.Run("ToInternalAddress", func(t *testing.T) {
		r := redirector(t, http.StatusPermanentRedirect, func(*http.Request) string { return "http://169.254.169.254/latest/meta-data/" })
		_, _, err := post(t, client, r.URL)
		if !IsBlocked(err) || !strings.Contains(err.Error(), "link-local") {
			t.Errorf("error %v, want the metadata address refused", err)
		}
		r2 := redirector(t, http.StatusPermanentRedirect, func(*http.Request) string { return "http://127.0.0.2:1/" })
		if _, _, err := post(t, client, r2.URL); !IsBlocked(err) {
			t.Errorf("redirect to 127.0.0.2 (outside the allow list): %v, want refused", err)
		}
	})

	t.Run("MoreThanThree", func(t *testing.T) {
		var srv *httptest.Server
		srv = redirector(t, http.StatusTemporaryRedirect, func(r *http.Request) string {
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			return srv.URL + "/" + strconv.Itoa(n+1)
		})
		_, trace, err := post(t, client, srv.URL+"/0")
		if !IsRedirectRefused(err) || len(trace) != 4 || trace[3].Refused == "" || trace[2].Refused != "" {
			t.Errorf("error %v, trace %+v; want 3 followed and the 4th refused", err, trace)
		}
	})

	t.Run("MethodChange", func(t *testing.T) {
		final := okServer(t)
		r := redirector(t, http.StatusFound, func(*http.Request) string { return final.URL })
		_, trace, err := post(t, client, r.URL)
		if !IsRedirectRefused(err) || len(trace) != 1 || !strings.Contains(trace[0].Refused, "GET") {
			t.Errorf("error %v, trace %+v; want a POST turned into a GET refused", err, trace)
		}
	})

	t.Run("HTTPSToHTTP", func(t *testing.T) {
		plain := okServer(t)
		tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(tlsSrv.Close)
		tr := loopback.Transport()
		tr.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		_, trace, err := post(t, Client(tr, 5*time.Second), tlsSrv.URL)
		var rr *RedirectRefused
		if !errors.As(err, &rr) || !strings.Contains(rr.Reason, "https to http") || len(trace) != 1 {
			t.Errorf("error %v, trace %+v; want https to http refused", err, trace)
		}
	})
}
