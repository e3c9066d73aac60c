package cloudapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far from now a signed timestamp may be (Stripe's, HubSpot's and the generic
// webhook's): a captured request replayed later is refused.
const Tolerance = 5 * time.Minute

// errNoSecret refuses every request to a source whose signing secret is not set yet.
var errNoSecret = errors.New("the source has no signing secret: set its signingSecret setting")

func mac(secret string, parts ...string) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// equalHex compares a hex signature with the expected MAC in constant time.
func equalHex(sig string, want []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	return err == nil && hmac.Equal(got, want)
}

// equalBase64 compares a base64 signature with the expected MAC in constant time.
func equalBase64(sig string, want []byte) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	return err == nil && hmac.Equal(got, want)
}

// checkTime refuses a timestamp farther than Tolerance from now.
func checkTime(at, now time.Time, header string) error {
	if d := now.Sub(at); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%s is %s away from the server's clock, more than the 5 minutes allowed", header, d.Round(time.Second).Abs())
	}
	return nil
}

// verifyTimestamped checks Stripe's scheme, which the generic webhook uses too: the header is
// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (several v1 while a secret is rolled,
// other schemes such as v0 ignored).
func verifyTimestamped(header, value string, body []byte, secret string, now time.Time) error {
	if value == "" {
		return fmt.Errorf("the %s header is missing", header)
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(value, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("the %s header must be t=<unix seconds>,v1=<hex signature>", header)
	}
	want := mac(secret, ts, ".", string(body))
	ok := false
	for _, s := range sigs {
		ok = equalHex(s, want) || ok
	}
	if !ok {
		return fmt.Errorf("the %s header does not match the body signed with the source's signing secret", header)
	}
	return checkTime(time.Unix(sec, 0), now, header)
}
