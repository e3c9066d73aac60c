package delivery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// googleAnalytics4 sends track and page calls to GA4's Measurement Protocol: POST
// {endpoint}/mp/collect?measurement_id=...&api_secret=... with
// {"client_id", "user_id", "timestamp_micros", "events": [{"name", "params", "timestamp_micros"}]},
// up to 25 events of one client and user a request.
//
// client_id is the anonymousId (GA4's browser instance), else the userId; user_id the userId. A
// track call's name becomes a GA4 event name: lower snake_case of its letters and digits, at most
// 40 characters, starting with a letter, not one GA4 reserves (else the event is skipped: GA4
// would drop it without saying so). A page call becomes page_view with page_location,
// page_title and page_referrer. The params are the event's properties flattened to scalars
// (nested keys joined by _, arrays left out, booleans as "true"/"false", strings cut to GA4's
// lengths), at most 25 of them. Screen calls (an app stream's, which the Measurement Protocol
// takes through Firebase ids), identify, group and alias calls are skipped.
type googleAnalytics4 struct{}

const ga4Endpoint = "https://www.google-analytics.com"

func init() { register("google-analytics-4", googleAnalytics4{}) }

// ga4Limits are GA4's collection limits.
const (
	ga4MaxName   = 40
	ga4MaxParams = 25
	ga4MaxValue  = 100
)

// ga4ValueLimits are the longer limits of the page parameters.
var ga4ValueLimits = map[string]int{"page_location": 1000, "page_referrer": 420, "page_title": 300}

// ga4ReservedNames are the event names the Measurement Protocol reserves.
var ga4ReservedNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`ad_activeview ad_click ad_exposure ad_impression ad_query ad_reward
		adunit_exposure app_background app_clear_data app_exception app_install app_remove app_store_refund
		app_update app_upgrade dynamic_link_app_open dynamic_link_app_update dynamic_link_first_open error
		first_open first_visit in_app_purchase notification_dismiss notification_foreground notification_open
		notification_receive os_update session_start session_start_with_rollout user_engagement`) {
		ga4ReservedNames[n] = true
	}
}

// ga4ReservedPrefixes start no event or parameter name.
var ga4ReservedPrefixes = []string{"firebase_", "ga_", "google_", "gtag."}

type ga4Event struct {
	Name            string         `json:"name"`
	Params          map[string]any `json:"params,omitempty"`
	TimestampMicros int64          `json:"timestamp_micros"`
}

// ga4Batch is the most events the Measurement Protocol takes in one request.
const ga4Batch = 25

func (googleAnalytics4) Limits() Limits { return Limits{Items: ga4Batch, Bytes: 120 << 10} }

// Prepare maps an event to a GA4 event; its key is its client and user, which a request shares.
func (googleAnalytics4) Prepare(cfg Config, ev *Event) (Part, error) {
	var name string
	switch ev.Type {
	case "track":
		name = ga4Name(ev.Str("event"), true)
		if !ga4ValidName(name) {
			return Part{}, Skip("GA4 takes no event named " + strconv.Quote(ev.Str("event")) + " (" + strconv.Quote(name) + ")")
		}
		if ga4ReservedNames[name] {
			return Part{}, Skip("GA4 reserves the event name " + name)
		}
	case "page":
		name = "page_view"
	default:
		return Part{}, Skip("GA4 takes track and page calls only")
	}
	flat := map[string]any{}
	ga4Flatten("", ev.Object("properties"), flat)
	var first []string // set before the properties, so that the 25-parameter cap keeps them
	if ev.Type == "page" {
		p := ev.Payload
		for _, f := range []struct{ param, prop string }{{"page_location", "url"}, {"page_title", "title"}, {"page_referrer", "referrer"}} {
			v := atString(p, "properties", f.prop)
			if v == "" {
				v = atString(p, "context", "page", f.prop)
			}
			if v != "" {
				flat[f.param] = ga4Truncate(v, ga4ValueLimits[f.param])
				first = append(first, f.param)
			}
		}
	}
	clientID, userID := ev.Str("anonymousId"), ev.Str("userId")
	if clientID == "" {
		clientID = userID
	}
	part, err := one(ga4Event{name, ga4Cap(flat, first), eventTime(ev).UnixMicro()})
	part.Key = clientID + "\x00" + userID
	return part, err
}

// Request sends the events of one client and user: {"client_id", "user_id", "timestamp_micros",
// "events": [...]}, each event with its own timestamp_micros (the request's is the first's).
func (googleAnalytics4) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	measurementID, err := required(cfg, "measurementId")
	if err != nil {
		return nil, err
	}
	apiSecret, err := required(cfg, "apiSecret")
	if err != nil {
		return nil, err
	}
	u, err := endpoint(cfg, ga4Endpoint)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/mp/collect"
	u.RawQuery = "measurement_id=" + url.QueryEscape(measurementID) + "&api_secret=" + url.QueryEscape(apiSecret)
	clientID, userID, _ := strings.Cut(parts[0].Key, "\x00")
	events := items(parts)
	var first struct {
		TimestampMicros int64 `json:"timestamp_micros"`
	}
	_ = json.Unmarshal(events[0], &first)
	return postJSON(ctx, u.String(), struct {
		ClientID        string            `json:"client_id"`
		UserID          string            `json:"user_id,omitempty"`
		TimestampMicros int64             `json:"timestamp_micros"`
		Events          []json.RawMessage `json:"events"`
	}{clientID, userID, first.TimestampMicros, events})
}

// ga4Name keeps the letters and digits of s, joined by single underscores, at most 40 of them;
// lower-cased for event names ("Order Completed" → "order_completed").
func ga4Name(s string, lower bool) string {
	if lower {
		s = strings.ToLower(s)
	}
	var b strings.Builder
	gap := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if gap && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			gap = false
		} else {
			gap = true
		}
	}
	runes := []rune(b.String())
	if len(runes) > ga4MaxName {
		runes = runes[:ga4MaxName]
	}
	return strings.TrimRight(string(runes), "_")
}

// ga4ValidName tells whether GA4 takes a name made by ga4Name.
func ga4ValidName(name string) bool {
	if first, _ := utf8.DecodeRuneInString(name); !unicode.IsLetter(first) {
		return false // also the empty name
	}
	for _, p := range ga4ReservedPrefixes {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return false
		}
	}
	return true
}

// ga4Flatten adds the scalar values of v to out under GA4 parameter names; the first key that
// makes a name keeps it.
func ga4Flatten(prefix string, v map[string]any, out map[string]any) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "_" + k
		}
		var value any
		switch x := v[k].(type) {
		case map[string]any:
			ga4Flatten(path, x, out)
			continue
		case string:
			value = ga4Truncate(x, ga4MaxValue)
		case float64:
			value = x
		case bool:
			value = strconv.FormatBool(x) // GA4 parameters are strings or numbers
		default: // arrays and nulls
			continue
		}
		name := ga4Name(path, false)
		if _, taken := out[name]; !taken && ga4ValidName(name) {
			out[name] = value
		}
	}
}

// ga4Cap keeps at most 25 parameters: first the names in first, then the others by name.
func ga4Cap(params map[string]any, first []string) map[string]any {
	if len(params) <= ga4MaxParams {
		return nonEmpty(params)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range append(first, keys...) {
		if len(out) == ga4MaxParams {
			break
		}
		out[k] = params[k]
	}
	return out
}

func ga4Truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}
