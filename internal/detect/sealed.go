package detect

import (
	"encoding/binary"
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
	// slots is open addressing with linear probing, at most half full.
	slots []slot
	mask  uint64
	ents  []entry
	// recs[k] is the record of ents[k], kept only when some IP or Location
	// is too long to hold inline and must be compared from the original.
	recs []*signin.Record
	// The index's window and pair tests (the bundled rule's unless a plan
	// changes them).
	minGap, maxGap  int64
	ipDiff, locDiff bool
}

// slot is one indexed user.
type slot struct {
	tag        uint32 // the high half of the user's hash, low bit set; 0 when empty
	start, end uint32 // the user's entries are ents[start:end]
	// loc is the Location all the user's candidates share, inline in 4
	// bytes, or long when they differ or it does not fit: a row from that
	// same country cannot pair, and is rejected without reading ents.
	loc uint32
}

// entry is one candidate: its time in Unix nanoseconds and its IP and
// Location inline (see inline).
type entry struct {
	t   int64
	ip  ip16
	loc uint64
}

// ip16 is an IP inline in 16 bytes, compared as two words.
type ip16 struct{ a, b uint64 }

// long marks an inline field whose string did not fit: the remaining bytes
// hold a hash of it, so different forms still prove different strings.
const long = 0xff

// inline writes s into b as its length and bytes when it fits, else as long
// and a hash. Equal forms of short strings mean equal strings; different
// forms always mean different strings; equal long forms prove nothing.
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

func inlineIP(s string, seed maphash.Seed) ip16 {
	var b [16]byte
	inline(b[:], s, seed)
	return ip16{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

func inline8(s string, seed maphash.Seed) uint64 {
	var b [8]byte
	inline(b[:], s, seed)
	return binary.LittleEndian.Uint64(b[:])
}

func inline4(s string, seed maphash.Seed) uint32 {
	var b [4]byte
	inline(b[:], s, seed)
	return binary.LittleEndian.Uint32(b[:])
}

// isLong reports whether an inline form (its first byte) is long.
func isLong[T uint32 | uint64](v T) bool { return byte(v) == long }

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
	s := &sealed{seed: maphash.MakeSeed(), minGap: int64(x.minGap), maxGap: int64(x.maxGap), ipDiff: true, locDiff: true}
	if x.plan != nil {
		s.ipDiff, s.locDiff = x.plan.IPDiffers, x.plan.LocationDiffers
	}
	n := 0
	for _, rs := range x.byUser {
		n += len(rs)
	}
	if uint64(n) >= 1<<32 {
		return nil
	}
	size := 1 << bits.Len(uint(2*len(x.byUser)))
	s.slots = make([]slot, size)
	s.mask = uint64(size - 1)
	s.ents = make([]entry, 0, n)
	users := make([][]signin.Record, 0, len(x.byUser)) // in ents order, for recs
	hasLong := false
	for upn, rs := range x.byUser {
		users = append(users, rs)
		sl := slot{start: uint32(len(s.ents)), loc: inline4(rs[0].Location, s.seed)}
		for k := range rs {
			r := &rs[k]
			if r.TimeGenerated != r.TimeGenerated.Round(0) { // Round(0) strips only a monotonic reading
				return nil
			}
			t, ok := unixNano(r.TimeGenerated)
			if !ok {
				return nil
			}
			e := entry{t: t, ip: inlineIP(r.IPAddress, s.seed), loc: inline8(r.Location, s.seed)}
			hasLong = hasLong || isLong(e.ip.a) || isLong(e.loc)
			s.ents = append(s.ents, e)
			if r.Location != rs[0].Location {
				sl.loc = long
			}
		}
		sl.end = uint32(len(s.ents))
		h := maphash.String(s.seed, upn)
		sl.tag = tag(h)
		i := h & s.mask
		for s.slots[i].tag != 0 {
			i = (i + 1) & s.mask
		}
		s.slots[i] = sl
	}
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
	var loc4 uint32
	encoded := false
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		sl := &s.slots[i]
		if sl.tag == 0 {
			return false
		}
		if sl.tag != want {
			continue
		}
		if !encoded {
			loc4 = inline4(n.Location, s.seed)
			encoded = true
		}
		// A short shared form equal to n's proves the same country for
		// every candidate.
		if s.locDiff && sl.loc == loc4 && !isLong(loc4) {
			continue
		}
		if s.spanMayMatch(sl, n, nt) {
			return true
		}
	}
}

// spanMayMatch reports whether the user of sl has a candidate in
// [nt-MaxGap, nt-MinGap] with an IP other than n's and a Location other
// than n's.
func (s *sealed) spanMayMatch(sl *slot, n *signin.Record, nt int64) bool {
	lo, hi := nt-s.maxGap, nt-s.minGap
	a, b := int(sl.start), int(sl.end)
	for a < b { // the first entry at or after lo
		m := int(uint(a+b) >> 1)
		if s.ents[m].t < lo {
			a = m + 1
		} else {
			b = m
		}
	}
	end := int(sl.end)
	if a == end || s.ents[a].t > hi {
		return false
	}
	ip, loc := inlineIP(n.IPAddress, s.seed), inline8(n.Location, s.seed)
	for k := a; k < end && s.ents[k].t <= hi; k++ {
		e := &s.ents[k]
		// Different inline forms prove different strings; equal ones do
		// too unless the strings were long, then the originals decide.
		ipDiffers := !s.ipDiff || e.ip != ip || (isLong(ip.a) && s.recs[k].IPAddress != n.IPAddress)
		if ipDiffers && (!s.locDiff || e.loc != loc || (isLong(loc) && s.recs[k].Location != n.Location)) {
			return true
		}
	}
	return false
}
