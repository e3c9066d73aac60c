package catalog

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
)

// Validate checks settings against the entry's schema and returns them with defaults filled in.
// Each problem is a user error on the field `settings.<name>`. Unknown names are errors too, so
// that a typo is not silently ignored. present tells which secret settings already have a stored
// value (an update may leave them out); nil for a new object.
func (e *Entry) Validate(settings map[string]any, present map[string]bool) (map[string]any, apperr.UserErrors) {
	var errs apperr.UserErrors
	out := map[string]any{}
	known := map[string]bool{}
	for _, s := range e.Settings {
		known[s.Name] = true
		field := "settings." + s.Name
		v, given := settings[s.Name]
		if !given || v == nil {
			switch {
			case s.Required && !(s.Secret && present[s.Name]):
				errs.Add(field, apperr.Required, "%s (%s) is required", field, s.Label)
			case s.Default != nil:
				out[s.Name] = s.Default
			}
			continue
		}
		norm, msg := s.check(v)
		if msg != "" {
			errs.Add(field, apperr.InvalidValue, "%s %s", field, msg)
			continue
		}
		out[s.Name] = norm
	}
	var unknown []string
	for name := range settings {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs.Add("settings."+name, apperr.InvalidValue, "settings.%s is not a setting of %s; its settings are: %s", name, e.Name, e.settingNames())
	}
	return out, errs
}

func (e *Entry) settingNames() string {
	names := make([]string, len(e.Settings))
	for i, s := range e.Settings {
		names[i] = s.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Secrets returns the names of the entry's secret settings.
func (e *Entry) Secrets() []string {
	var out []string
	for _, s := range e.Settings {
		if s.Secret {
			out = append(out, s.Name)
		}
	}
	return out
}

// Setting returns the definition of a setting, or nil.
func (e *Entry) Setting(name string) *Setting {
	for i := range e.Settings {
		if e.Settings[i].Name == name {
			return &e.Settings[i]
		}
	}
	return nil
}

const maxStringSetting = 2000

// check validates one value and returns it in its normal form, or a message saying what is wrong
// ("must be ..."). JSON numbers may arrive as float64 or json.Number.
func (s *Setting) check(v any) (any, string) {
	switch s.Type {
	case "STRING":
		str, ok := v.(string)
		if !ok {
			return nil, "must be a string"
		}
		if len(str) > maxStringSetting {
			return nil, fmt.Sprintf("must be at most %d characters", maxStringSetting)
		}
		if s.Required && strings.TrimSpace(str) == "" {
			return nil, "must not be empty"
		}
		return str, ""
	case "URL":
		str, ok := v.(string)
		if !ok {
			return nil, "must be a URL string"
		}
		u, err := url.Parse(str)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(str) > maxStringSetting {
			return nil, "must be an absolute http or https URL, such as https://example.com/hook"
		}
		return str, ""
	case "NUMBER":
		f, ok := number(v)
		if !ok {
			return nil, "must be a number"
		}
		if s.Min != nil && f < *s.Min || s.Max != nil && f > *s.Max {
			return nil, fmt.Sprintf("must be between %g and %g", deref(s.Min, math.Inf(-1)), deref(s.Max, math.Inf(1)))
		}
		return f, ""
	case "BOOLEAN":
		b, ok := v.(bool)
		if !ok {
			return nil, "must be true or false"
		}
		return b, ""
	case "SELECT":
		str, ok := v.(string)
		if !ok || !contains(s.Options, str) {
			return nil, "must be one of " + strings.Join(s.Options, ", ")
		}
		return str, ""
	case "LIST":
		list, ok := v.([]any)
		if !ok {
			return nil, "must be a list of strings"
		}
		out := make([]any, 0, len(list))
		for i, item := range list {
			str, ok := item.(string)
			if !ok {
				return nil, fmt.Sprintf("must be a list of strings; item %d is not a string", i)
			}
			if len(s.Options) > 0 && !contains(s.Options, str) {
				return nil, fmt.Sprintf("item %q must be one of %s", str, strings.Join(s.Options, ", "))
			}
			out = append(out, str)
		}
		return out, ""
	case "MAP":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of string values"
		}
		for k, item := range m {
			if _, ok := item.(string); !ok {
				return nil, fmt.Sprintf("must be an object of string values; %q is not a string", k)
			}
		}
		return m, ""
	case "HEADERS":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of header names to values"
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			str, ok := m[k].(string)
			if !ok {
				return nil, fmt.Sprintf("must be an object of header names to values; the value of %q is not a string", k)
			}
			if msg := CheckHeader(k, str); msg != "" {
				return nil, msg
			}
		}
		return m, ""
	}
	return nil, "has an unknown type"
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func deref(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CheckHeader says what is wrong with an HTTP header ("" when nothing): its name must be an RFC 7230
// token, its value free of line breaks and other control characters (which would end the header
// early or be refused by the HTTP client).
func CheckHeader(name, value string) string {
	if name == "" {
		return "has a header without a name"
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Sprintf("header name %q is not a valid name: letters, digits and !#$%%&'*+-.^_`|~ only", name)
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Sprintf("header %s has a line break or a control character in its value", name)
		}
	}
	if len(value) > maxStringSetting {
		return fmt.Sprintf("header %s has a value longer than %d characters", name, maxStringSetting)
	}
	return ""
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
