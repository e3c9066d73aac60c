package delivery

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// slack posts a message to a Slack channel for each track call (or each of the ones the
// `events` setting names), through the channel's incoming-webhook URL: POST {webhookUrl} with
// {"text": "<userId or anonymousId> did <event>"} followed by one line per scalar property,
// "• key: value", by key, at most 20. Slack reads &, < and > as markup, so they are escaped.
// Other calls are skipped.
type slack struct{}

func init() { register("slack", slack{}) }

const slackMaxProperties = 20

func (slack) Limits() Limits { return Limits{Items: 1} }

func (slack) Request(ctx context.Context, cfg Config, parts []Part) (*http.Request, error) {
	// The webhook URL is a secret (it is the channel's credential), so it is a STRING setting,
	// checked here: a secret left unchanged on update is validated as the mask.
	hook, err := required(cfg, "webhookUrl")
	if err != nil {
		return nil, err
	}
	if _, err := absoluteURL(cfg, "webhookUrl", ""); err != nil {
		return nil, err
	}
	return postJSON(ctx, hook, parts[0].Items[0])
}

func (slack) Prepare(cfg Config, ev *Event) (Part, error) {
	if ev.Type != "track" {
		return Part{}, Skip("Slack posts track calls only")
	}
	event := ev.Str("event")
	if names, ok := cfg.Settings["events"].([]any); ok && len(names) > 0 && !containsAny(names, event) {
		return Part{}, Skip("the events setting leaves out " + event)
	}
	who := ev.Str("userId")
	if who == "" {
		who = ev.Str("anonymousId")
	}
	var text strings.Builder
	text.WriteString(slackEscape(who) + " did " + slackEscape(event))
	props := ev.Object("properties")
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := 0
	for _, k := range keys {
		var v string
		switch x := props[k].(type) {
		case string:
			v = x
		case float64:
			v = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			v = strconv.FormatBool(x)
		default: // objects, arrays and nulls
			continue
		}
		if n == slackMaxProperties {
			break
		}
		text.WriteString("\n• " + slackEscape(k) + ": " + slackEscape(v))
		n++
	}
	return one(map[string]string{"text": text.String()})
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }
