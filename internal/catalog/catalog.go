// Package catalog is the integration catalog: the kinds of source and destination a workspace can
// add, each with its settings schema and setup instructions. The entries are data files embedded
// in the binary, and hold only what works with this server: sources that speak Segment's tracking
// API or whose vendor's webhooks internal/cloudapp receives, destinations the delivery engine
// sends to. It also validates settings against an entry.
package catalog

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind tells sources from destinations.
type Kind string

const (
	SourceKind      Kind = "source"
	DestinationKind Kind = "destination"
)

// WarehouseCategory is the category of destinations that are warehouses: loaded in syncs rather
// than sent events one by one.
const WarehouseCategory = "Warehouse"

// IDPrefix starts every catalog entry's ID, followed by its slug.
const IDPrefix = "cat_"

// Entry is one integration.
type Entry struct {
	Slug         string      `json:"slug"`
	Name         string      `json:"name"`
	Description  string      `json:"description"`
	Categories   []string    `json:"categories"`
	Status       EntryStatus `json:"status"`
	SourceType   *SourceType `json:"sourceType"` // sources only
	Settings     []Setting   `json:"settings"`
	Instructions string      `json:"instructions"`
	AddedAt      time.Time   `json:"addedAt"`
	Kind         Kind        `json:"-"`
}

// ID is the entry's global ID.
func (e *Entry) ID() string { return IDPrefix + e.Slug }

// Category is the entry's first category.
func (e *Entry) Category() string {
	if len(e.Categories) == 0 {
		return ""
	}
	return e.Categories[0]
}

// Setting is one setting of an entry and its rules.
type Setting struct {
	Name        string      `json:"name"`
	Label       string      `json:"label"`
	Type        SettingType `json:"type"`
	Required    bool        `json:"required"`
	Secret      bool        `json:"secret"`
	Default     any         `json:"default"`
	Description string      `json:"description"`
	Options     []string    `json:"options"`
	Min         *float64    `json:"min"`
	Max         *float64    `json:"max"`
}

// EntryStatus is PUBLIC or BETA.
type EntryStatus string

// SourceType is where a source's data comes from: WEBSITE, MOBILE, SERVER or CLOUD_APP.
type SourceType string

// CloudApp is the type of sources that receive their vendor's webhooks (internal/cloudapp)
// instead of our libraries' calls.
const CloudApp SourceType = "CLOUD_APP"

// SettingType is the type of a setting: STRING, NUMBER, BOOLEAN, SELECT, LIST, MAP, URL or HEADERS.
type SettingType string

// Catalog is every entry, read once from the embedded files.
type Catalog struct {
	sources, destinations []*Entry // by name
	bySlug                map[string]*Entry
}

//go:embed data/*.json
var data embed.FS

// Load reads the embedded catalog. It fails only if the embedded files are broken, which tests catch.
func Load() (*Catalog, error) {
	c := &Catalog{bySlug: map[string]*Entry{}}
	for _, f := range []struct {
		file string
		kind Kind
		list *[]*Entry
	}{{"data/sources.json", SourceKind, &c.sources}, {"data/destinations.json", DestinationKind, &c.destinations}} {
		b, err := data.ReadFile(f.file)
		if err != nil {
			return nil, err
		}
		var entries []*Entry
		if err := json.Unmarshal(b, &entries); err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
		for _, e := range entries {
			e.Kind = f.kind
			if err := e.check(); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", f.file, e.Slug, err)
			}
			if c.bySlug[e.Slug] != nil {
				return nil, fmt.Errorf("%s: slug %s used twice", f.file, e.Slug)
			}
			c.bySlug[e.Slug] = e
		}
		sort.Slice(entries, func(i, j int) bool { return strings.ToLower(entries[i].Name) < strings.ToLower(entries[j].Name) })
		*f.list = entries
	}
	return c, nil
}

// MustLoad is Load for start-up: the embedded files are part of the binary.
func MustLoad() *Catalog {
	c, err := Load()
	if err != nil {
		panic("catalog: " + err.Error())
	}
	return c
}

// check validates an entry's own definition.
func (e *Entry) check() error {
	if e.Slug == "" || e.Name == "" || len(e.Categories) == 0 || e.AddedAt.IsZero() {
		return fmt.Errorf("slug, name, categories and addedAt are required")
	}
	if (e.Kind == SourceKind) != (e.SourceType != nil) {
		return fmt.Errorf("sourceType is for sources only, and every source has one")
	}
	for _, s := range e.Settings {
		switch s.Type {
		case "STRING", "NUMBER", "BOOLEAN", "MAP", "URL", "HEADERS":
		case "SELECT", "LIST":
		default:
			return fmt.Errorf("setting %s: unknown type %s", s.Name, s.Type)
		}
		if s.Secret && s.Type != "STRING" && s.Type != "HEADERS" {
			return fmt.Errorf("setting %s: a secret is a STRING or HEADERS (whose values are the secret)", s.Name)
		}
		if s.Secret && e.Kind == SourceKind && s.Type != "STRING" {
			return fmt.Errorf("setting %s: a source's secret is a STRING (a cloud app's signing secret)", s.Name)
		}
		if s.Type == "SELECT" && len(s.Options) == 0 {
			return fmt.Errorf("setting %s: SELECT needs options", s.Name)
		}
		if s.Default != nil {
			if _, msg := s.check(s.Default); msg != "" {
				return fmt.Errorf("setting %s: default %s", s.Name, msg)
			}
		}
	}
	return nil
}

// Entry returns the entry with a slug or ID (cat_<slug>), of kind, or nil.
func (c *Catalog) Entry(kind Kind, slugOrID string) *Entry {
	e := c.bySlug[strings.TrimPrefix(slugOrID, IDPrefix)]
	if e == nil || (kind != "" && e.Kind != kind) {
		return nil
	}
	return e
}

// List returns the entries of kind whose name, slug or description contains search (any case) and
// that are in category (when given), by name.
func (c *Catalog) List(kind Kind, search, category string) []*Entry {
	all := c.sources
	if kind == DestinationKind {
		all = c.destinations
	}
	search = strings.ToLower(strings.TrimSpace(search))
	var out []*Entry
	for _, e := range all {
		if category != "" && !containsFold(e.Categories, category) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(e.Name), search) && !strings.Contains(e.Slug, search) &&
			!strings.Contains(strings.ToLower(e.Description), search) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Categories returns every category of kind, by name.
func (c *Catalog) Categories(kind Kind) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, e := range c.List(kind, "", "") {
		for _, cat := range e.Categories {
			if !seen[cat] {
				seen[cat] = true
				out = append(out, cat)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Newest returns the limit most recently added entries of both kinds, newest first.
func (c *Catalog) Newest(limit int) []*Entry {
	all := append(append([]*Entry{}, c.sources...), c.destinations...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].AddedAt.After(all[j].AddedAt) })
	if limit < len(all) {
		all = all[:max(limit, 0)]
	}
	return all
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
