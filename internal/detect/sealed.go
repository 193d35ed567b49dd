package detect

import (
	"hash/maphash"
	"math/bits"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// sealed is the index laid out for MayMatch, which runs for every
// non-interactive row: a flat hash table of users (no string compare, one
// cache line) and each user's candidates as a span of small entries ordered
// by time (no 200-byte Records to walk). It answers exactly as the map path
// does, except that a row whose user only shares a hash with an indexed one
// may be kept: MayMatch is a pushdown, and Probe stays exact.
type sealed struct {
	seed maphash.Seed
	// slots is open addressing with linear probing, at most half full. A
	// slot is tag<<32 | user, 0 when empty; tag is the high half of the
	// user's hash with the low bit set, so it is never 0.
	slots []uint64
	mask  uint64
	spans []uint32 // user u's entries are entries[spans[u]:spans[u+1]]
	ents  []entry
	// recs[k] is the record of ents[k], kept only when some IP or Location
	// is too long to hold inline and must be compared from the original.
	recs []*signin.Record
}

// entry is one candidate: its time in Unix nanoseconds and its IP and
// Location as inline strings (see inline).
type entry struct {
	t   int64
	ip  [16]byte
	loc [8]byte
}

// long marks an inline field whose string did not fit: the remaining bytes
// hold a hash of it, so different arrays still prove different strings.
const long = 0xff

// inline writes s into b as its length and bytes when it fits, else as long
// and a hash. Equal arrays of short strings mean equal strings; different
// arrays always mean different strings; equal long arrays prove nothing.
func inline(b []byte, s string, seed maphash.Seed) {
	clear(b)
	if len(s) < len(b) {
		b[0] = byte(len(s))
		copy(b[1:], s)
		return
	}
	b[0] = long
	h := maphash.String(seed, s) & longMask
	for k := 1; k < len(b); k++ {
		b[k] = byte(h)
		h >>= 8
	}
}

// fastMin and fastMax bound the Unix seconds where UnixNano is defined
// (1678..2262) with years to spare, so entry times and the window ends
// computed from a probed time never overflow.
var (
	fastMin = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	fastMax = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// unixNano returns t in Unix nanoseconds and whether it is inside
// [fastMin, fastMax], where int64 differences equal time.Sub.
func unixNano(t time.Time) (int64, bool) {
	s := t.Unix()
	if s < fastMin || s > fastMax {
		return 0, false
	}
	return s*int64(time.Second) + int64(t.Nanosecond()), true
}

// seal builds the MayMatch layout from the sorted index, or returns nil
// when some candidate's time cannot be compared as int64 nanoseconds: out
// of range, or a monotonic clock reading, which time.Sub would prefer to
// the wall clock when the probed time has one too.
func (x *Index) seal() *sealed {
	s := &sealed{seed: maphash.MakeSeed(), spans: make([]uint32, 0, len(x.byUser)+1)}
	n := 0
	for _, rs := range x.byUser {
		n += len(rs)
	}
	if uint64(n) >= 1<<32 || uint64(len(x.byUser)) >= 1<<31 {
		return nil
	}
	size := 1 << bits.Len(uint(2*len(x.byUser)))
	s.slots = make([]uint64, size)
	s.mask = uint64(size - 1)
	s.ents = make([]entry, 0, n)
	users := make([][]signin.Record, 0, len(x.byUser)) // in span order, for recs
	hasLong := false
	for upn, rs := range x.byUser {
		u := uint64(len(users))
		users = append(users, rs)
		s.spans = append(s.spans, uint32(len(s.ents)))
		for k := range rs {
			r := &rs[k]
			if r.TimeGenerated != r.TimeGenerated.Round(0) { // Round(0) strips only a monotonic reading
				return nil
			}
			t, ok := unixNano(r.TimeGenerated)
			if !ok {
				return nil
			}
			e := entry{t: t}
			inline(e.ip[:], r.IPAddress, s.seed)
			inline(e.loc[:], r.Location, s.seed)
			hasLong = hasLong || e.ip[0] == long || e.loc[0] == long
			s.ents = append(s.ents, e)
		}
		h := maphash.String(s.seed, upn)
		i := h & s.mask
		for s.slots[i] != 0 {
			i = (i + 1) & s.mask
		}
		s.slots[i] = uint64(tag(h))<<32 | u
	}
	s.spans = append(s.spans, uint32(len(s.ents)))
	if hasLong {
		s.recs = make([]*signin.Record, 0, n)
		for _, rs := range users {
			for k := range rs {
				s.recs = append(s.recs, &rs[k])
			}
		}
	}
	return s
}

// longMask is all ones; tests clear it so that all long strings collide.
var longMask = ^uint64(0)

// tagMask is all ones; tests clear it so that every user shares one tag.
var tagMask = ^uint32(0)

func tag(h uint64) uint32 { return uint32(h>>32)&tagMask | 1 }

// mayMatch is Index.MayMatch for a probed time nt in Unix nanoseconds.
// Every slot whose tag matches is tried: two indexed users may share a tag,
// and stopping at the first would lose the other's pairs.
func (s *sealed) mayMatch(n *signin.Record, nt int64) bool {
	h := maphash.String(s.seed, n.UserPrincipalName)
	want := tag(h)
	var ip [16]byte
	var loc [8]byte
	encoded := false
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		v := s.slots[i]
		if v == 0 {
			return false
		}
		if uint32(v>>32) != want {
			continue
		}
		if !encoded {
			inline(ip[:], n.IPAddress, s.seed)
			inline(loc[:], n.Location, s.seed)
			encoded = true
		}
		if s.spanMayMatch(uint32(v), n, nt, &ip, &loc) {
			return true
		}
	}
}

// spanMayMatch reports whether user u has a candidate in [nt-MaxGap,
// nt-MinGap] with an IP other than n's and a Location other than n's.
func (s *sealed) spanMayMatch(u uint32, n *signin.Record, nt int64, ip *[16]byte, loc *[8]byte) bool {
	lo, hi := nt-int64(MaxGap), nt-int64(MinGap)
	a, b := int(s.spans[u]), int(s.spans[u+1])
	for a < b { // the first entry at or after lo
		m := int(uint(a+b) >> 1)
		if s.ents[m].t < lo {
			a = m + 1
		} else {
			b = m
		}
	}
	end := int(s.spans[u+1])
	for k := a; k < end && s.ents[k].t <= hi; k++ {
		e := &s.ents[k]
		// Different inline forms prove different strings; equal ones do
		// too unless the strings were long, then the originals decide.
		ipDiffers := e.ip != *ip || (e.ip[0] == long && s.recs[k].IPAddress != n.IPAddress)
		if ipDiffers && (e.loc != *loc || (e.loc[0] == long && s.recs[k].Location != n.Location)) {
			return true
		}
	}
	return false
}
