// Package id makes and parses the ids of every stored object: a short type prefix, an
// underscore and 26 characters of lower-case Crockford base32 (`src_01jdxk6v2d8q9w3m4n5p6r7s8t`).
//
// The 26 characters encode 48 bits of Unix milliseconds followed by 80 random bits, as in a
// ULID, so ids sort as strings in the order they were made. The same string is the primary key
// and the GraphQL ID; the prefix tells `node(id:)` which domain owns an id, and Prefix rejects
// malformed ids before anything touches the database.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync"
	"time"
)

const (
	// encoding is Crockford's base32 alphabet in lower case: no i, l, o or u. Its characters are
	// in ASCII order, which is what makes the encoded ids sort like the numbers they encode.
	encoding = "0123456789abcdefghjkmnpqrstvwxyz"

	// suffixLen is the length of the encoded part: 130 bits, of which the top two are zero.
	suffixLen = 26

	// maxPrefixLen bounds the type prefix; real prefixes are a few letters (ws, src, conn).
	maxPrefixLen = 16

	// maxTime is the largest millisecond count that fits in 48 bits (year 10889).
	maxTime = 1<<48 - 1
)

// decoding maps an ASCII byte to its 5-bit value, or to 0xff when it is not in the alphabet.
var decoding = func() (d [256]byte) {
	for i := range d {
		d[i] = 0xff
	}
	for i := 0; i < len(encoding); i++ {
		d[encoding[i]] = byte(i)
	}
	return d
}()

// New returns a new id with the given prefix. Ids made later in the same process sort after
// earlier ones, even within one millisecond. It is safe for concurrent use.
//
// The prefix must be 1 to 16 lower-case letters or digits starting with a letter; New panics
// otherwise, since prefixes are constants in the code and a bad one is a programming error.
func New(prefix string) string {
	if !validPrefix(prefix) {
		panic("id: invalid prefix " + strconv.Quote(prefix))
	}
	return defaultGenerator.new(prefix)
}

// Prefix returns the type prefix of id and whether id is well formed: a valid prefix, an
// underscore and 26 base32 characters that fit in 128 bits. Ids that are not exactly in this
// form, including upper-case variants of a valid id, are rejected, so that every object has
// exactly one id string.
func Prefix(id string) (string, bool) {
	n := len(id) - suffixLen - 1
	if n < 1 || id[n] != '_' {
		return "", false
	}
	prefix, suffix := id[:n], id[n+1:]
	if !validPrefix(prefix) || !validSuffix(suffix) {
		return "", false
	}
	return prefix, true
}

// Time returns the instant encoded in a well-formed id, with millisecond precision, in UTC.
func Time(id string) (time.Time, bool) {
	if _, ok := Prefix(id); !ok {
		return time.Time{}, false
	}
	var ms int64
	for _, c := range []byte(id[len(id)-suffixLen : len(id)-suffixLen+10]) {
		ms = ms<<5 | int64(decoding[c])
	}
	// Ten characters hold 50 bits; the top two are the zero bits above the 128.
	return time.UnixMilli(ms).UTC(), true
}

func validPrefix(p string) bool {
	if len(p) == 0 || len(p) > maxPrefixLen || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if c := p[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func validSuffix(s string) bool {
	if len(s) != suffixLen || s[0] > '7' { // above '7' the value needs more than 128 bits
		return false
	}
	for i := 0; i < len(s); i++ {
		if decoding[s[i]] == 0xff {
			return false
		}
	}
	return true
}

// generator keeps the state that makes ids monotonic: the last millisecond used and the last
// random part, which is incremented instead of drawn again within the same millisecond.
type generator struct {
	mu     sync.Mutex
	now    func() time.Time
	ms     uint64 // last millisecond used
	hi     uint16 // top 16 of the 80 random bits
	lo     uint64 // low 64 of the 80 random bits
	random func(b []byte)
}

var defaultGenerator = &generator{now: time.Now, random: func(b []byte) { _, _ = rand.Read(b) }}

func (g *generator) new(prefix string) string {
	g.mu.Lock()
	ms := uint64(max(g.now().UnixMilli(), 0))
	if ms > g.ms {
		g.ms = ms
		g.draw()
	} else {
		// Same millisecond, or the clock went back: stay on the last millisecond and count up,
		// so the new id still sorts after the previous one.
		g.lo++
		if g.lo == 0 {
			g.hi++
			if g.hi == 0 {
				// 2^80 ids in one millisecond: borrow the next millisecond.
				g.ms++
				g.draw()
			}
		}
	}
	if g.ms > maxTime {
		g.mu.Unlock()
		panic("id: time does not fit in 48 bits")
	}
	ms, hi, lo := g.ms, g.hi, g.lo
	g.mu.Unlock()

	return encode(prefix, ms<<16|uint64(hi), lo)
}

// Raise makes every id that New returns from now on, in this process, sort after floor among ids of
// floor's prefix. It is how ids stay in commit order when several processes write one table: under
// a lock, raise the generator to the table's largest id, then make the new ids. A malformed floor
// is ignored.
func Raise(floor string) {
	defaultGenerator.raise(floor)
}

func (g *generator) raise(floor string) {
	if _, ok := Prefix(floor); !ok {
		return
	}
	var a, b uint64 // a: ms<<16 | hi; b: lo
	for _, c := range []byte(floor[len(floor)-suffixLen:]) {
		v := uint64(decoding[c])
		a = a<<5 | b>>59
		b = b<<5 | v
	}
	ms, hi, lo := a>>16, uint16(a), b
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms < g.ms || ms == g.ms && (hi < g.hi || hi == g.hi && lo <= g.lo) {
		return // already above
	}
	// Stand on floor: the next id counts up from it, or starts a later millisecond.
	g.ms, g.hi, g.lo = ms, hi, lo
}

// encode writes prefix, '_' and the 128-bit value a (high 64 bits: ms<<16 | hi) b (low 64 bits)
// in base32, 5 bits at a time from the end.
func encode(prefix string, a, b uint64) string {
	buf := make([]byte, len(prefix)+1+suffixLen)
	copy(buf, prefix)
	buf[len(prefix)] = '_'
	s := buf[len(prefix)+1:]
	for i := suffixLen - 1; i >= 0; i-- {
		s[i] = encoding[b&31]
		b = b>>5 | a<<59
		a >>= 5
	}
	return string(buf)
}

// draw fills the random part with fresh random bits.
func (g *generator) draw() {
	var r [10]byte
	g.random(r[:])
	g.hi = binary.BigEndian.Uint16(r[:2])
	g.lo = binary.BigEndian.Uint64(r[2:])
}

// Floor returns the smallest id with prefix that New could have made at t: every id made at or
// after t sorts at or after it. It turns a time range into an id range, so that queries on
// time-sortable ids use the primary key or an (x, id) index instead of a timestamp column.
func Floor(prefix string, t time.Time) string {
	return encode(prefix, uint64(max(t.UnixMilli(), 0))<<16, 0)
}
