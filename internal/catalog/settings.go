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
