package delivery

import (
	"context"
	"encoding/json"
	"net/http"
)

// amplitude sends events to Amplitude's HTTP V2 API: POST {endpoint} with
// {"api_key": ..., "events": [...]}, up to 2,000 events a request (which the Batch Event Upload
// API, https://api2.amplitude.com/batch, takes too, with the same body).
//
//   - track: event_type is the event's name, event_properties its properties;
//   - page and screen: event_type "Viewed <name> Page" / "Viewed <name> Screen", or "Loaded a
//     Page" / "Loaded a Screen" without a name (Segment's naming);
//   - identify: event_type "$identify" with user_properties {"$set": traits} (skipped without
//     traits);
//   - group, when a group type is set: "$identify" with groups {type: groupId} and user_properties
//     {"$set": {type: groupId}}, which puts the user in the group, then "$groupidentify" with the
//     group's traits as group_properties {"$set": traits} (as Amplitude's SDKs send setGroup and
//     groupIdentify); without a group type, group calls are skipped;
//   - alias is skipped: Amplitude maps users through a separate API.
//
// Every event carries user_id, device_id (the anonymousId), time (ms), insert_id (the messageId,
// which Amplitude uses to drop duplicates for 7 days), ip and the device, OS, location and app
// fields of the context; track, page and screen events carry context.traits as user_properties.
type amplitude struct{}

const amplitudeEndpoint = "https://api2.amplitude.com/2/httpapi"

func init() { register("amplitude", amplitude{}) }

// amplitudeEvent is one event of Amplitude's HTTP V2 API; the field names are Amplitude's.
type amplitudeEvent struct {
	UserID             string         `json:"user_id,omitempty"`
	DeviceID           string         `json:"device_id,omitempty"`
	EventType          string         `json:"event_type"`
	Time               int64          `json:"time"`
	InsertID           string         `json:"insert_id,omitempty"`
	EventProperties    map[string]any `json:"event_properties,omitempty"`
	UserProperties     map[string]any `json:"user_properties,omitempty"`
	Groups             map[string]any `json:"groups,omitempty"`
	GroupProperties    map[string]any `json:"group_properties,omitempty"`
	AppVersion         string         `json:"app_version,omitempty"`
	Platform           string         `json:"platform,omitempty"`
	OSName             string         `json:"os_name,omitempty"`
	OSVersion          string         `json:"os_version,omitempty"`
	DeviceBrand        string         `json:"device_brand,omitempty"`
	DeviceManufacturer string         `json:"device_manufacturer,omitempty"`
	DeviceModel        string         `json:"device_model,omitempty"`
	Carrier            string         `json:"carrier,omitempty"`
	Country            string         `json:"country,omitempty"`
	Region             string         `json:"region,omitempty"`
	City               string         `json:"city,omitempty"`
	Language           string         `json:"language,omitempty"`
	LocationLat        *float64       `json:"location_lat,omitempty"`
	LocationLng        *float64       `json:"location_lng,omitempty"`
	Revenue            *float64       `json:"revenue,omitempty"`
	ProductID          string         `json:"productId,omitempty"`
	RevenueType        string         `json:"revenueType,omitempty"`
	IP                 string         `json:"ip,omitempty"`
	Library            string         `json:"library"`
}

func (amplitude) Limits() Limits { return Limits{Items: 2000, Bytes: 900 << 10} }

func (amplitude) Prepare(cfg Config, ev *Event) (Part, error) {
	groupType := cfg.String("groupType", "")
	switch ev.Type {
	case "alias":
		return Part{}, Skip("Amplitude takes no alias calls")
	case "identify":
		if len(ev.Object("traits")) == 0 {
			return Part{}, Skip("an identify call without traits sets nothing in Amplitude")
		}
	case "group":
		if groupType == "" {
			return Part{}, Skip("group calls need the Group type setting")
		}
	}
	base := amplitudeBase(ev)
	var events []amplitudeEvent
	switch ev.Type {
	case "track", "page", "screen":
		e := base
		e.EventType = ev.Str("event")
		if ev.Type != "track" {
			e.EventType = viewName(ev)
		}
		props := ev.Object("properties")
		e.EventProperties = nonEmpty(props)
		e.UserProperties = nonEmpty(atObject(ev.Payload, "context", "traits"))
		// Only an explicit revenue makes a revenue event: a price alone (as on Product Viewed)
		// would count as revenue in Amplitude.
		if r, ok := props["revenue"].(float64); ok {
			e.Revenue = &r
			e.ProductID, _ = props["productId"].(string)
			e.RevenueType, _ = props["revenueType"].(string)
		}
		events = append(events, e)
	case "identify":
		e := base
		e.EventType = "$identify"
		e.UserProperties = map[string]any{"$set": ev.Object("traits")}
		events = append(events, e)
	case "group":
		groups := map[string]any{groupType: ev.Str("groupId")}
		member := base
		member.EventType = "$identify"
		member.Groups = groups
		member.UserProperties = map[string]any{"$set": groups}
		events = append(events, member)
		if traits := ev.Object("traits"); len(traits) > 0 {
			props := base
			props.EventType = "$groupidentify"
			props.InsertID = base.InsertID + "-group"
			props.Groups = groups
			props.GroupProperties = map[string]any{"$set": traits}
			events = append(events, props)
		}
	default:
		return Part{}, Skip("Amplitude takes no " + ev.Type + " calls")
	}
	var part Part
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return Part{}, err
		}
		part.Items = append(part.Items, b)
	}
	return part, nil
}

func (amplitude) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	apiKey, err := required(cfg, "apiKey")
	if err != nil {
		return nil, err
	}
	u, err := endpoint(cfg, amplitudeEndpoint)
	if err != nil {
		return nil, err
	}
	return postJSON(ctx, u.String(), struct {
		APIKey string            `json:"api_key"`
		Events []json.RawMessage `json:"events"`
	}{apiKey, items(parts)})
}

// refused reads Amplitude's 400, which lists the refused events of a batch by index
// ({"events_with_invalid_fields": {"time": [3]}, "events_with_missing_fields": {...},
// "silenced_events": [...]}). Amplitude then takes none of the batch: the others go again.
func (amplitude) refused(status int, body []byte) (map[int]string, bool, bool) {
	if status != http.StatusBadRequest {
		return nil, false, false
	}
	var answer struct {
		Error         string           `json:"error"`
		Invalid       map[string][]int `json:"events_with_invalid_fields"`
		Missing       map[string][]int `json:"events_with_missing_fields"`
		InvalidLength map[string][]int `json:"events_with_invalid_id_lengths"`
		Silenced      []int            `json:"silenced_events"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return nil, false, false
	}
	out := map[int]string{}
	add := func(byField map[string][]int, say func(field string) string) {
		for field, indexes := range byField {
			for _, i := range indexes {
				out[i] = "Amplitude refused the event: " + say(field)
			}
		}
	}
	add(answer.Invalid, func(f string) string { return "invalid " + f })
	add(answer.Missing, func(f string) string { return "missing " + f })
	add(answer.InvalidLength, func(f string) string { return f + " shorter than Amplitude takes" })
	for _, i := range answer.Silenced {
		out[i] = "Amplitude silenced the event (its device or user is blocked)"
	}
	if len(out) == 0 {
		return nil, false, false
	}
	return out, false, true
}

// amplitudeBase fills the fields every event carries.
func amplitudeBase(ev *Event) amplitudeEvent {
	p := ev.Payload
	e := amplitudeEvent{
		UserID:             ev.Str("userId"),
		DeviceID:           ev.Str("anonymousId"),
		Time:               eventTime(ev).UnixMilli(),
		InsertID:           ev.Str("messageId"),
		AppVersion:         atString(p, "context", "app", "version"),
		Platform:           atString(p, "context", "device", "type"),
		OSName:             atString(p, "context", "os", "name"),
		OSVersion:          atString(p, "context", "os", "version"),
		DeviceBrand:        atString(p, "context", "device", "brand"),
		DeviceManufacturer: atString(p, "context", "device", "manufacturer"),
		DeviceModel:        atString(p, "context", "device", "model"),
		Carrier:            atString(p, "context", "network", "carrier"),
		Country:            atString(p, "context", "location", "country"),
		Region:             atString(p, "context", "location", "region"),
		City:               atString(p, "context", "location", "city"),
		Language:           atString(p, "context", "locale"),
		IP:                 atString(p, "context", "ip"),
		Library:            "junction",
	}
	if e.DeviceID == "" {
		e.DeviceID = atString(p, "context", "device", "id")
	}
	switch e.Platform { // Segment's libraries say ios and android; Amplitude's say iOS and Android
	case "ios":
		e.Platform = "iOS"
	case "android":
		e.Platform = "Android"
	}
	if lat, ok := atNumber(p, "context", "location", "latitude"); ok {
		e.LocationLat = &lat
	}
	if lng, ok := atNumber(p, "context", "location", "longitude"); ok {
		e.LocationLng = &lng
	}
	return e
}
