package cloudapp

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/catalog"
)

// Every cloud-app source of the catalog has a vendor here, and every vendor an entry with a
// signing secret: an entry is in the catalog only if it works.
func TestVendorsMatchCatalog(t *testing.T) {
	c := catalog.MustLoad()
	var cloud []string
	for _, e := range c.List(catalog.SourceKind, "", "") {
		if e.SourceType != nil && *e.SourceType == catalog.CloudApp {
			cloud = append(cloud, e.Slug)
			if st := e.Setting(SecretSetting); st == nil || !st.Secret {
				t.Errorf("%s: no secret %s setting", e.Slug, SecretSetting)
			}
		}
	}
	got := Vendors()
	slices.Sort(got)
	slices.Sort(cloud)
	if !slices.Equal(got, cloud) {
		t.Errorf("vendors %v, catalog's cloud apps %v", got, cloud)
	}
}

func TestTitle(t *testing.T) {
	for in, want := range map[string]string{
		"charge.succeeded": "Charge Succeeded", "customer.subscription.created": "Customer Subscription Created",
		"pull_request": "Pull Request", "propertyChange": "Property Change", "": "", "ping": "Ping",
	} {
		if got := title(in); got != want {
			t.Errorf("title(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"orders/create": "Order Created", "orders/paid": "Order Paid", "customers/update": "Customer Updated",
		"inventory_items/delete": "Inventory Item Deleted", "orders/partially_fulfilled": "Order Partially Fulfilled",
	} {
		if got := shopifyName(in); got != want {
			t.Errorf("shopifyName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerify(t *testing.T) {
	const secret = "s3cret"
	body := []byte(`{"id":"x"}`)
	now := time.Unix(1_730_720_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	stripe := "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, ".", string(body)))
	hub := base64.StdEncoding.EncodeToString(mac(secret, "POST", "https://h.example/v1/webhooks/src_1", string(body), strconv.FormatInt(now.UnixMilli(), 10)))
	req := func(h ...string) *Request {
		r := &Request{Method: "POST", URLs: []string{"https://h.example/v1/webhooks/src_1", "http://h.example/v1/webhooks/src_1"},
			Header: http.Header{}, Body: body, Now: now}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		verify func(*Request, string) error
		r      *Request
		err    string
	}{
		{"StripeOK", verifyStripe, req("Stripe-Signature", stripe), ""},
		{"StripeRolledSecrets", verifyStripe, req("Stripe-Signature", "t="+ts+",v1=00ff,"+strings.TrimPrefix(stripe, "t="+ts+",")), ""},
		{"StripeNoV1", verifyStripe, req("Stripe-Signature", "t="+ts+",v0=00"), "must be"},
		{"StripeFuture", verifyStripe, func() *Request { r := req("Stripe-Signature", stripe); r.Now = now.Add(-6 * time.Minute); return r }(), "5 minutes"},
		{"GitHubOK", verifyGitHub, req("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac(secret, string(body)))), ""},
		{"GitHubSHA1Only", verifyGitHub, req("X-Hub-Signature", "sha1=00"), "missing"},
		{"GitHubNotHex", verifyGitHub, req("X-Hub-Signature-256", "sha256=zz"), "does not match"},
		{"ShopifyOK", verifyShopify, req("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac(secret, string(body)))), ""},
		{"ShopifyHex", verifyShopify, req("X-Shopify-Hmac-Sha256", hex.EncodeToString(mac(secret, string(body)))), "does not match"},
		{"HubSpotOK", verifyHubSpot, req("X-HubSpot-Signature-v3", hub, "X-HubSpot-Request-Timestamp", strconv.FormatInt(now.UnixMilli(), 10)), ""},
		{"HubSpotOtherURL", verifyHubSpot, func() *Request {
			r := req("X-HubSpot-Signature-v3", hub, "X-HubSpot-Request-Timestamp", strconv.FormatInt(now.UnixMilli(), 10))
			r.URLs = []string{"https://other.example/v1/webhooks/src_1"}
			return r
		}(), "does not match"},
		{"HubSpotDecodedURL", verifyHubSpot, func() *Request {
			u := "https://h.example/v1/webhooks/src_1?tag=a:b"
			ms := strconv.FormatInt(now.UnixMilli(), 10)
			r := req("X-HubSpot-Signature-v3", base64.StdEncoding.EncodeToString(mac(secret, "POST", u, string(body), ms)), "X-HubSpot-Request-Timestamp", ms)
			r.URLs = []string{"https://h.example/v1/webhooks/src_1?tag=a%3Ab"}
			return r
		}(), ""},
		{"GenericOK", verifyGeneric, req(GenericSignatureHeader, stripe), ""},
		{"GenericMissing", verifyGeneric, req(), "missing"},
	} {
		err := tc.verify(tc.r, secret)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.err)
		}
	}
}

// Properties that would make an event larger than the tracking API takes are cut down, nested
// objects first.
func TestFit(t *testing.T) {
	big := strings.Repeat("x", 30<<10)
	m := map[string]any{"id": "a", "nested": map[string]any{"n": 1, "deep": map[string]any{"blob": big}}, "list": []any{big}}
	got := fit(m)
	if got["id"] != "a" || got["list"] != nil || len(got["nested"].(map[string]any)) != 1 {
		t.Errorf("fit: %v", got)
	}
	small := map[string]any{"a": 1.0}
	if got := fit(small); len(got) != 1 {
		t.Errorf("fit(small) = %v", got)
	}
}
