package privacy

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Classification is how sensitive a field is: RED (never to be collected carelessly), YELLOW
// (personal), GREEN (not personal). The empty classification is "not recognised".
type Classification string

const (
	Red    Classification = "RED"
	Yellow Classification = "YELLOW"
	Green  Classification = "GREEN"
)

// rank orders classifications by severity.
func (c Classification) rank() int {
	switch c {
	case Red:
		return 3
	case Yellow:
		return 2
	case Green:
		return 1
	}
	return 0
}

// Sensitive tells whether values of fields of this classification are personal (RED or YELLOW).
func (c Classification) Sensitive() bool { return c == Red || c == Yellow }

// Target is what of a field a matcher looks at.
type Target string

const (
	OnKey        Target = "KEY"
	OnValue      Target = "VALUE"
	OnKeyOrValue Target = "KEY_OR_VALUE"
)

// KeyMatch is how a matcher compares keys with its synonyms.
type KeyMatch string

const (
	Exact   KeyMatch = "EXACT"
	Similar KeyMatch = "SIMILAR"
)

// similarity is the Dice coefficient over bigrams above which a key is similar to a synonym.
const similarity = 0.7

// minSimilarLen is the shortest synonym (letters, separators removed) that keys may be similar
// to: below it one letter changes the word ("race" and "trace"), so short synonyms match exactly.
const minSimilarLen = 5

// maxValueLen bounds the values matched against patterns: longer text is not one identifier.
const maxValueLen = 256

// Rule is what a matcher recognises: a field whose key is one of its synonyms (exactly, or
// similarly), or whose value matches its pattern (credit card numbers must also pass the Luhn
// check).
type Rule struct {
	Name           string
	Classification Classification
	Target         Target
	KeyMatch       KeyMatch
	Synonyms       []string
	Pattern        string
	Luhn           bool
}

// compiled is a rule ready to match.
type compiled struct {
	id       string
	rule     Rule
	keys     []string // synonyms (and the name) normalised: words joined without separators
	keyGrams [][]string
	re       *regexp.Regexp
}

// compile prepares a rule; the error is the pattern's.
func compile(id string, r Rule) (*compiled, error) {
	c := &compiled{id: id, rule: r}
	if r.Target != OnValue {
		seen := map[string]bool{}
		for _, s := range append([]string{r.Name}, r.Synonyms...) {
			k := squash(s)
			if k == "" || seen[k] {
				continue
			}
			seen[k] = true
			c.keys = append(c.keys, k)
			c.keyGrams = append(c.keyGrams, bigrams(k))
		}
	}
	if r.Target != OnKey && r.Pattern != "" {
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			return nil, err
		}
		c.re = re
	}
	return c, nil
}

// matchKey scores a key (squashed) against the rule's synonyms: 2 when it is one of them, the
// Dice coefficient when similar to one, 0 when neither.
func (c *compiled) matchKey(key string, grams []string) float64 {
	if c.rule.Target == OnValue {
		return 0
	}
	best := 0.0
	for i, k := range c.keys {
		if k == key {
			return 2
		}
		if c.rule.KeyMatch == Similar && len(k) >= minSimilarLen {
			if d := dice(grams, c.keyGrams[i]); d > similarity && d > best {
				best = d
			}
		}
	}
	return best
}

// matchValue tells whether a scalar value matches the rule's pattern.
func (c *compiled) matchValue(v string) bool {
	if c.re == nil || v == "" || len(v) > maxValueLen {
		return false
	}
	if !c.re.MatchString(v) {
		return false
	}
	return !c.rule.Luhn || luhn(v)
}

// Match is a matcher's recommendation for a field.
type Match struct {
	MatcherID      string
	Name           string
	Classification Classification
}

// Matchers are a workspace's enabled matchers, compiled, most severe first.
type Matchers struct {
	list []*compiled
}

// NewMatchers compiles rules (by id); rules whose pattern does not compile are left out (they
// were refused when saved; a default's pattern is tested).
func NewMatchers(rules map[string]Rule) *Matchers {
	m := &Matchers{}
	for id, r := range rules {
		if c, err := compile(id, r); err == nil {
			m.list = append(m.list, c)
		}
	}
	sortCompiled(m.list)
	return m
}

// Key returns the most severe matcher that recognises a key (the last part of a field's path).
func (m *Matchers) Key(key string) (Match, bool) {
	sq := squash(key)
	if sq == "" {
		return Match{}, false
	}
	grams := bigrams(sq)
	// An exact match wins over a similar one (a key one of a matcher's synonyms is that
	// matcher's, however close to another's it is); then the most severe, then the closest.
	var best *compiled
	bestScore := 0.0
	better := func(c *compiled, sc float64) bool {
		if best == nil {
			return true
		}
		if (sc == 2) != (bestScore == 2) {
			return sc == 2
		}
		if r, br := c.rule.Classification.rank(), best.rule.Classification.rank(); r != br {
			return r > br
		}
		return sc > bestScore
	}
	for _, c := range m.list {
		if sc := c.matchKey(sq, grams); sc > 0 && better(c, sc) {
			best, bestScore = c, sc
		}
	}
	if best == nil {
		return Match{}, false
	}
	return Match{MatcherID: best.id, Name: best.rule.Name, Classification: best.rule.Classification}, true
}

// Value returns the most severe matcher whose pattern a scalar value matches (strings and
// numbers; other values never match).
func (m *Matchers) Value(v any) (Match, bool) {
	s, ok := scalarText(v)
	if !ok {
		return Match{}, false
	}
	for _, c := range m.list {
		if c.matchValue(s) {
			return Match{MatcherID: c.id, Name: c.rule.Name, Classification: c.rule.Classification}, true
		}
	}
	return Match{}, false
}

// Field returns the recommendation for a field from its key and one of its values: the more
// severe of the two matches.
func (m *Matchers) Field(key string, v any) (Match, bool) {
	km, kok := m.Key(key)
	vm, vok := m.Value(v)
	switch {
	case kok && vok:
		if vm.Classification.rank() > km.Classification.rank() {
			return vm, true
		}
		return km, true
	case kok:
		return km, true
	}
	return vm, vok
}

// sortCompiled orders matchers most severe first, then by id.
func sortCompiled(list []*compiled) {
	sort.Slice(list, func(i, j int) bool {
		ri, rj := list[i].rule.Classification.rank(), list[j].rule.Classification.rank()
		if ri != rj {
			return ri > rj
		}
		return list[i].id < list[j].id
	})
}

func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		b, _ := json.Marshal(x)
		return string(b), true
	}
	return "", false
}

// Words splits a key into lower-case words at camelCase humps and at snake_case, kebab-case,
// dots and spaces: "billingZip_code" is "billing zip code".
func Words(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && len(cur) > 0:
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			// a hump (cardNumber) or the end of an acronym (IPAddress)
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return words
}

// squash is a key's words joined: "e-mail", "E_Mail" and "eMail" are all "email".
func squash(key string) string { return strings.Join(Words(key), "") }

// bigrams are the pairs of adjacent letters of s.
func bigrams(s string) []string {
	rs := []rune(s)
	if len(rs) < 2 {
		return []string{s}
	}
	out := make([]string, 0, len(rs)-1)
	for i := 0; i+1 < len(rs); i++ {
		out = append(out, string(rs[i:i+2]))
	}
	return out
}

// dice is the Sørensen–Dice coefficient of two bigram multisets: twice the shared bigrams over
// the bigrams of both.
func dice(a, b []string) float64 {
	if len(a)+len(b) == 0 {
		return 0
	}
	count := make(map[string]int, len(a))
	for _, g := range a {
		count[g]++
	}
	shared := 0
	for _, g := range b {
		if count[g] > 0 {
			count[g]--
			shared++
		}
	}
	return 2 * float64(shared) / float64(len(a)+len(b))
}

// Similarity is the Dice coefficient of two keys' bigrams, after splitting them into words.
func Similarity(a, b string) float64 { return dice(bigrams(squash(a)), bigrams(squash(b))) }

// luhn checks a card number's check digit (spaces and dashes ignored).
func luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c == ' ' || c == '-' {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 12 && sum%10 == 0
}
