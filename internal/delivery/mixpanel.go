package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// mixpanel sends track, page and screen calls to Mixpanel's Import API: POST {endpoint} (by
// default https://api.mixpanel.com/import?strict=1, which reports invalid events with a 400) with
// the project's API secret (or its project token, which /import now also takes) as the Basic-auth
// user name and an empty password, and a body of up to 2,000 events:
// [{"event": name, "properties": {...}}, ...].
//
// The name is the track call's event, or "Viewed <name> Page" / "Loaded a Page" (and the same
// for screens), as Segment names them. The properties are the context's (ip for Mixpanel's
// GeoIP, $current_url, $referrer, $os, $os_version, $app_version_string, $manufacturer, $model,
// $carrier, utm_*), then the event's own, then the ones Mixpanel requires: time (ms),
// distinct_id (userId, else anonymousId), $insert_id, and $user_id / $device_id for Mixpanel's
// identity merge. Identify, group and alias calls are skipped: Mixpanel keeps profiles and
// identities behind other APIs.
type mixpanel struct{}

const mixpanelEndpoint = "https://api.mixpanel.com/import?strict=1"

func init() { register("mixpanel", mixpanel{}) }

func (mixpanel) Limits() Limits { return Limits{Items: 2000, Bytes: 8 << 20} }

func (mixpanel) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	secret, err := required(cfg, "apiSecret")
	if err != nil {
		return nil, err
	}
	u, err := endpoint(cfg, mixpanelEndpoint)
	if err != nil {
		return nil, err
	}
	req, err := postJSON(ctx, u.String(), items(parts))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(secret, "")
	return req, nil
}

// refused reads the 400 of /import?strict=1, which lists the records it refused
// ({"failed_records": [{"index", "field", "message"}], "num_records_imported"}): it imported the
// others.
func (mixpanel) refused(status int, body []byte) (map[int]string, bool, bool) {
	if status != http.StatusBadRequest {
		return nil, false, false
	}
	var answer struct {
		Failed []struct {
			Index   int    `json:"index"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"failed_records"`
	}
	if json.Unmarshal(body, &answer) != nil || len(answer.Failed) == 0 {
		return nil, false, false
	}
	out := map[int]string{}
	for _, f := range answer.Failed {
		out[f.Index] = "Mixpanel refused the event: " + f.Message
	}
	return out, true, true
}

func (mixpanel) Prepare(cfg Config, ev *Event) (Part, error) {
	if ev.Type != "track" && ev.Type != "page" && ev.Type != "screen" {
		return Part{}, Skip("Mixpanel takes track, page and screen calls only")
	}
	name := ev.Str("event")
	if ev.Type != "track" {
		name = viewName(ev)
	}
	p := ev.Payload
	props := map[string]any{}
	for key, path := range mixpanelContext {
		if v := atString(p, path...); v != "" {
			props[key] = v
		}
	}
	for k, v := range ev.Object("properties") {
		props[k] = v
	}
	userID, anonymousID := ev.Str("userId"), ev.Str("anonymousId")
	props["time"] = eventTime(ev).UnixMilli()
	props["distinct_id"] = userID
	if userID == "" {
		props["distinct_id"] = anonymousID
	}
	if userID != "" {
		props["$user_id"] = userID
	}
	if anonymousID != "" {
		props["$device_id"] = anonymousID
	}
	messageID := ev.Str("messageId")
	if messageID == "" {
		messageID = ev.ID
	}
	props["$insert_id"] = mixpanelInsertID(messageID)
	return one(map[string]any{"event": name, "properties": props})
}

// mixpanelContext maps Mixpanel's properties to the context fields they come from.
var mixpanelContext = map[string][]string{
	"ip":                  {"context", "ip"},
	"$current_url":        {"context", "page", "url"},
	"$referrer":           {"context", "page", "referrer"},
	"$os":                 {"context", "os", "name"},
	"$os_version":         {"context", "os", "version"},
	"$app_version_string": {"context", "app", "version"},
	"$manufacturer":       {"context", "device", "manufacturer"},
	"$model":              {"context", "device", "model"},
	"$carrier":            {"context", "network", "carrier"},
	"utm_source":          {"context", "campaign", "source"},
	"utm_medium":          {"context", "campaign", "medium"},
	"utm_campaign":        {"context", "campaign", "name"},
	"utm_term":            {"context", "campaign", "term"},
	"utm_content":         {"context", "campaign", "content"},
}

// mixpanelInsertID returns the messageId when Mixpanel takes it as an $insert_id (at most 36
// letters, digits or dashes), or else the first 32 hex digits of its SHA-256: the same on every
// retry, so that Mixpanel still drops duplicates.
func mixpanelInsertID(messageID string) string {
	ok := len(messageID) > 0 && len(messageID) <= 36
	for i := 0; ok && i < len(messageID); i++ {
		c := messageID[i]
		ok = c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if ok {
		return messageID
	}
	sum := sha256.Sum256([]byte(messageID))
	return hex.EncodeToString(sum[:16])
}
