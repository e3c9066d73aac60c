package cloudapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Request is a webhook as received, for a vendor to verify and map.
type Request struct {
	SourceID string
	Method   string
	// URLs are the addresses the vendor may have called (HubSpot signs the URL): this request's
	// host and path with https, then http, since a proxy in front may have ended TLS.
	URLs   []string
	Header http.Header
	Body   []byte
	Now    time.Time
}

// vendor knows one cloud app's webhooks: how they are signed and how they become Segment events.
type vendor struct {
	name   string
	verify func(r *Request, secret string) error
	// events maps a verified webhook to Segment spec events; settings are the source's.
	events func(r *Request, settings map[string]any) ([]map[string]any, error)
}

// vendors are the cloud apps by catalog slug.
var vendors = map[string]*vendor{
	"stripe":           {name: "Stripe", verify: verifyStripe, events: stripeEvents},
	"github":           {name: "GitHub", verify: verifyGitHub, events: githubEvents},
	"shopify":          {name: "Shopify", verify: verifyShopify, events: shopifyEvents},
	"hubspot":          {name: "HubSpot", verify: verifyHubSpot, events: hubspotEvents},
	"incoming-webhook": {name: "Incoming Webhook", verify: verifyGeneric, events: genericEvents},
}

// Vendors lists the catalog slugs of the cloud apps this package receives, for the catalog's test.
func Vendors() []string {
	out := make([]string, 0, len(vendors))
	for slug := range vendors {
		out = append(out, slug)
	}
	return out
}

// errPayload is a verified webhook whose body is not what its vendor sends.
type errPayload struct{ msg string }

func (e *errPayload) Error() string { return e.msg }

func payloadErr(format string, args ...any) error { return &errPayload{fmt.Sprintf(format, args...)} }

// decodeJSON decodes a body keeping numbers as they were written (ids beyond 2^53).
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return payloadErr("the body is not the JSON its vendor sends: %v", err)
	}
	return nil
}

// ---- Stripe: https://docs.stripe.com/webhooks#verify-manually

func verifyStripe(r *Request, secret string) error {
	return verifyTimestamped("Stripe-Signature", r.Header.Get("Stripe-Signature"), r.Body, secret, r.Now)
}

func stripeEvents(r *Request, _ map[string]any) ([]map[string]any, error) {
	var ev map[string]any
	if err := decodeJSON(r.Body, &ev); err != nil {
		return nil, err
	}
	id, typ := str(ev["id"]), str(ev["type"])
	obj, _ := lookup(ev, "data.object").(map[string]any)
	if id == "" || typ == "" || obj == nil {
		return nil, payloadErr("a Stripe event has an id, a type and data.object")
	}
	customer := ""
	if str(obj["object"]) == "customer" {
		customer = str(obj["id"])
	} else if c, ok := obj["customer"].(map[string]any); ok {
		customer = str(c["id"])
	} else {
		customer = str(obj["customer"])
	}
	email := firstString(obj, "email", "receipt_email", "customer_email", "billing_details.email", "customer_details.email")
	name := firstString(obj, "name", "customer_name", "billing_details.name", "customer_details.name")
	ts := unixTime(ev["created"], time.Second)
	props := fit(obj)
	props["livemode"] = ev["livemode"]
	out := []map[string]any{spec("track", id, customer, anonOf(customer, "stripe"), ts, "Stripe",
		"event", title(typ), "properties", props)}
	if customer != "" && email != "" {
		traits := map[string]any{"email": email}
		if name != "" {
			traits["name"] = name
		}
		out = append(out, spec("identify", id+"-identify", customer, "", ts, "Stripe", "traits", traits))
	}
	return out, nil
}

// ---- GitHub: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries

func verifyGitHub(r *Request, secret string) error {
	sig := r.Header.Get("X-Hub-Signature-256")
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	switch {
	case sig == "":
		return errors.New("the X-Hub-Signature-256 header is missing")
	case !ok || !equalHex(hexSig, mac(secret, string(r.Body))):
		return errors.New("the X-Hub-Signature-256 header does not match the body signed with the source's signing secret")
	}
	return nil
}

// githubRefs are the objects every GitHub payload carries whole; an event keeps their names.
var githubRefs = map[string]string{"repository": "full_name", "organization": "login", "sender": "login", "installation": "id", "enterprise": "slug"}

func githubEvents(r *Request, _ map[string]any) ([]map[string]any, error) {
	kind, delivery := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
	if kind == "" {
		return nil, payloadErr("a GitHub delivery has the X-GitHub-Event header")
	}
	var p map[string]any
	if err := decodeJSON(r.Body, &p); err != nil {
		return nil, err
	}
	name := title(kind)
	if a := str(p["action"]); a != "" {
		name += " " + title(a)
	}
	sender := str(lookup(p, "sender.login"))
	for k, field := range githubRefs {
		if o, ok := p[k].(map[string]any); ok {
			p[k] = o[field]
		}
	}
	return []map[string]any{spec("track", orDigest(delivery, r.Body), sender, anonOf(sender, "github"), nil, "GitHub",
		"event", name, "properties", fit(p))}, nil
}

// ---- Shopify: https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook

func verifyShopify(r *Request, secret string) error {
	sig := r.Header.Get("X-Shopify-Hmac-Sha256")
	switch {
	case sig == "":
		return errors.New("the X-Shopify-Hmac-Sha256 header is missing")
	case !equalBase64(sig, mac(secret, string(r.Body))):
		return errors.New("the X-Shopify-Hmac-Sha256 header does not match the body signed with the source's signing secret")
	}
	return nil
}

func shopifyEvents(r *Request, _ map[string]any) ([]map[string]any, error) {
	topic := r.Header.Get("X-Shopify-Topic")
	if topic == "" {
		return nil, payloadErr("a Shopify webhook has the X-Shopify-Topic header")
	}
	var p map[string]any
	if err := decodeJSON(r.Body, &p); err != nil {
		return nil, err
	}
	// Shopify's guide to duplicates compares X-Shopify-Event-Id; older deliveries only have the
	// webhook id, which is the same on each retry.
	id := r.Header.Get("X-Shopify-Event-Id")
	if id == "" {
		id = r.Header.Get("X-Shopify-Webhook-Id")
	}
	id = orDigest(id, []byte(topic), r.Body)
	customer, _ := p["customer"].(map[string]any)
	if strings.HasPrefix(topic, "customers/") {
		customer = p
	}
	userID := str(customer["id"])
	var ts any
	if at, err := time.Parse(time.RFC3339Nano, r.Header.Get("X-Shopify-Triggered-At")); err == nil {
		ts = at.UTC().Format(time.RFC3339Nano)
	}
	shop := r.Header.Get("X-Shopify-Shop-Domain")
	props := fit(p)
	if shop != "" {
		props["shop"] = shop
	}
	out := []map[string]any{spec("track", id, userID, anonOf(userID, orString(shop, "shopify")), ts, "Shopify",
		"event", shopifyName(topic), "properties", props)}
	if userID != "" {
		traits := map[string]any{}
		for from, to := range map[string]string{"email": "email", "first_name": "firstName", "last_name": "lastName", "phone": "phone"} {
			if v := str(customer[from]); v != "" {
				traits[to] = v
			}
		}
		if len(traits) > 0 {
			out = append(out, spec("identify", id+"-identify", userID, "", ts, "Shopify", "traits", traits))
		}
	}
	return out, nil
}

// shopifyName names a topic as Segment's e-commerce events do: orders/create is Order Created.
func shopifyName(topic string) string {
	resource, verb, _ := strings.Cut(topic, "/")
	resource = title(resource)
	if strings.HasSuffix(resource, "s") && !strings.HasSuffix(resource, "ss") {
		resource = strings.TrimSuffix(resource, "s")
	}
	switch verb {
	case "create":
		verb = "created"
	case "update":
		verb = "updated"
	case "delete":
		verb = "deleted"
	}
	return strings.TrimSpace(resource + " " + title(verb))
}

// ---- HubSpot: https://developers.hubspot.com/docs/api/webhooks/validating-requests (v3)

func verifyHubSpot(r *Request, secret string) error {
	sig, ts := r.Header.Get("X-HubSpot-Signature-v3"), r.Header.Get("X-HubSpot-Request-Timestamp")
	if sig == "" || ts == "" {
		return errors.New("the X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header is missing")
	}
	ok := false
	for _, u := range r.URLs {
		ok = equalBase64(sig, mac(secret, r.Method, hubspotURI.Replace(u), string(r.Body), ts)) || ok
	}
	if !ok {
		return errors.New("the X-HubSpot-Signature-v3 header does not match the request signed with the source's signing secret " +
			"(method, this inbound URL, body and timestamp)")
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("X-HubSpot-Request-Timestamp must be milliseconds since 1970")
	}
	return checkTime(time.UnixMilli(ms), r.Now, "X-HubSpot-Request-Timestamp")
}

// hubspotURI decodes the characters HubSpot decodes in the URL before it signs it.
var hubspotURI = func() *strings.Replacer {
	var pairs []string
	for _, c := range ":/?@!$'()*,;" {
		enc := fmt.Sprintf("%%%02X", c)
		pairs = append(pairs, enc, string(c), strings.ToLower(enc), string(c))
	}
	return strings.NewReplacer(pairs...)
}()

// hubspotVerbs name the changes of subscriptionType as past events.
var hubspotVerbs = map[string]string{"creation": "Created", "deletion": "Deleted", "propertyChange": "Property Changed",
	"merge": "Merged", "associationChange": "Association Changed", "restore": "Restored", "privacyDeletion": "Privacy Deleted"}

func hubspotEvents(r *Request, _ map[string]any) ([]map[string]any, error) {
	var list []map[string]any
	if err := decodeJSON(r.Body, &list); err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, ev := range list {
		id, typ := str(ev["eventId"]), str(ev["subscriptionType"])
		if id == "" || typ == "" {
			return nil, payloadErr("each HubSpot event has an eventId and a subscriptionType")
		}
		object, change, _ := strings.Cut(typ, ".")
		name := title(object) + " " + orString(hubspotVerbs[change], title(change))
		userID := ""
		if object == "contact" {
			userID = str(ev["objectId"])
		}
		ts := unixTime(ev["occurredAt"], time.Millisecond)
		out = append(out, spec("track", id, userID, anonOf(userID, "hubspot-portal-"+str(ev["portalId"])), ts, "HubSpot",
			"event", strings.TrimSpace(name), "properties", fit(ev)))
		if userID != "" && str(ev["propertyName"]) == "email" && str(ev["propertyValue"]) != "" {
			out = append(out, spec("identify", id+"-identify", userID, "", ts, "HubSpot",
				"traits", map[string]any{"email": str(ev["propertyValue"])}))
		}
	}
	return out, nil
}

// ---- The generic incoming webhook: X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

// GenericSignatureHeader is the header the generic incoming webhook is signed in.
const GenericSignatureHeader = "X-Webhook-Signature"

func verifyGeneric(r *Request, secret string) error {
	return verifyTimestamped(GenericSignatureHeader, r.Header.Get(GenericSignatureHeader), r.Body, secret, r.Now)
}

func genericEvents(r *Request, settings map[string]any) ([]map[string]any, error) {
	var body any
	if err := decodeJSON(r.Body, &body); err != nil {
		return nil, err
	}
	items, ok := body.([]any)
	if !ok {
		items = []any{body}
	}
	setting := func(name string) string { return str(settings[name]) }
	var out []map[string]any
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, payloadErr("the body must be a JSON object or an array of objects; item %d is not an object", i)
		}
		name := orString(str(lookup(obj, setting("eventField"))), orString(setting("eventName"), "Webhook Received"))
		userID := str(lookup(obj, setting("userIdField")))
		id := str(lookup(obj, setting("messageIdField")))
		if id == "" {
			id = orDigest("", r.Body, []byte(strconv.Itoa(i)))
		}
		props, _ := lookup(obj, setting("propertiesField")).(map[string]any)
		if setting("propertiesField") == "" {
			props = obj
		}
		if props == nil {
			props = map[string]any{}
		}
		out = append(out, spec("track", id, userID, anonOf(userID, r.SourceID), nil, "Incoming Webhook",
			"event", name, "properties", fit(props)))
	}
	return out, nil
}

// ---- helpers

// spec makes one Segment spec event; kv are further fields.
func spec(typ, messageID, userID, anonymousID string, timestamp any, integration string, kv ...any) map[string]any {
	e := map[string]any{"type": typ, "context": map[string]any{"integration": map[string]any{"name": integration}}}
	if messageID != "" {
		e["messageId"] = messageID
	}
	if userID != "" {
		e["userId"] = userID
	}
	if anonymousID != "" {
		e["anonymousId"] = anonymousID
	}
	if timestamp != nil {
		e["timestamp"] = timestamp
	}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i].(string)] = kv[i+1]
	}
	return e
}

// anonOf is the anonymousId of an event without a user: who sent it, so that such events count
// as one user rather than one each.
func anonOf(userID, sender string) string {
	if userID != "" {
		return ""
	}
	return sender
}

// maxProperties bounds an event's properties, under the tracking API's 32 KB per event.
const maxProperties = 24 << 10

// fit returns properties that fit in maxProperties: whole when they do, else with nested
// objects and arrays cut to their scalar fields, else top-level scalars only.
func fit(m map[string]any) map[string]any {
	if size(m) <= maxProperties {
		return m
	}
	cut := map[string]any{}
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			cut[k] = scalars(x)
		case []any:
		default:
			cut[k] = v
		}
	}
	if size(cut) <= maxProperties {
		return cut
	}
	return scalars(m)
}

func scalars(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch v.(type) {
		case map[string]any, []any:
		default:
			out[k] = v
		}
	}
	return out
}

func size(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// lookup follows a dot path ("data.customer.id") through objects; nil when it leads nowhere.
func lookup(v any, path string) any {
	if path == "" {
		return nil
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// str is a string or number as a string; "" for anything else.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func firstString(m map[string]any, paths ...string) string {
	for _, p := range paths {
		if s := str(lookup(m, p)); s != "" {
			return s
		}
	}
	return ""
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// orDigest is id, or when the vendor gave none a digest of parts: a retry of the same body then
// has the same messageId.
func orDigest(id string, parts ...[]byte) string {
	if id != "" {
		return id
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// unixTime turns a number of units since 1970 into an RFC 3339 time, or nil.
func unixTime(v any, unit time.Duration) any {
	n, err := strconv.ParseInt(str(v), 10, 64)
	if err != nil || n <= 0 {
		return nil
	}
	return time.Unix(0, n*int64(unit)).UTC().Format(time.RFC3339Nano)
}

// title turns a vendor's identifier into words: charge.succeeded is Charge Succeeded,
// pull_request is Pull Request, propertyChange is Property Change.
func title(s string) string {
	var words []string
	var w []rune
	flush := func() {
		if len(w) > 0 {
			w[0] = unicode.ToUpper(w[0])
			words = append(words, string(w))
			w = nil
		}
	}
	prev := rune(0)
	for _, c := range s {
		switch {
		case c == '.' || c == '_' || c == '/' || c == '-' || c == ' ':
			flush()
		case unicode.IsUpper(c) && unicode.IsLower(prev):
			flush()
			w = append(w, c)
		default:
			w = append(w, c)
		}
		prev = c
	}
	flush()
	return strings.Join(words, " ")
}
