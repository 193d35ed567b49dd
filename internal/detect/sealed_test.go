package detect

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// mayMatchDefinition is what MayMatch decides, written over every candidate.
func mayMatchDefinition(I []signin.Record, n *signin.Record) bool {
	for k := range I {
		i := &I[k]
		d := n.TimeGenerated.Sub(i.TimeGenerated)
		if i.UserPrincipalName == n.UserPrincipalName && i.IPAddress != n.IPAddress && i.Location != n.Location && d >= MinGap && d <= MaxGap {
			return true
		}
	}
	return false
}

// pairsOf is every pair of n with I, sorted.
func pairsOf(I []signin.Record, n *signin.Record) []Result {
	var out []Result
	for k := range I {
		if Match(&I[k], n) {
			out = append(out, Pair(&I[k], n))
		}
	}
	Sort(out)
	return out
}

// IPs and Locations that do not fit inline (IPv6, long text) must still be
// compared exactly, including strings that differ only after a long common
// prefix or only in length, and strings at the inline limits. Equal hashes
// of long strings must not pass for equal strings, so the test runs again
// with every long string hashing alike.
func TestMayMatchLongStrings(t *testing.T) {
	defer func(m uint64) { longMask = m }(longMask)
	for _, longMask = range []uint64{^uint64(0), 0} {
		testMayMatchLongStrings(t)
	}
}

func testMayMatchLongStrings(t *testing.T) {
	ips := []string{
		"255.255.255.255", "255.255.255.25", "10.0.0.1", "",
		"2001:db8:aaaa::1", "2001:db8:aaaa::2", "2001:db8:aaaa::12", // 16 and 17 bytes
		"2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7335",
		"fe80::1%eth0", "fe80::1%eth1",
	}
	locs := []string{"US", "DE", "", "1234567", "12345678", "123456789", "12345679", "United States", "United Kingdom"}
	users := []string{"a@x.com", "b@x.com"}
	checked, positive := 0, 0
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		pick := func(s []string) string { return s[r.IntN(len(s))] }
		x := NewIndex()
		var I []signin.Record
		for k := 0; k < 1+r.IntN(40); k++ {
			i := ir(pick(users), pick(ips), pick(locs), time.Duration(r.IntN(300))*time.Minute, func(rec *signin.Record) { rec.Id = fmt.Sprint("i", k) })
			x.Add(i)
			I = append(I, i)
		}
		x.Seal()
		if x.fast == nil {
			t.Fatal("times near now must use the sealed layout")
		}
		for k := 0; k < 100; k++ {
			n := nr(pick(users), pick(ips), pick(locs), time.Duration(r.IntN(400))*time.Minute, func(rec *signin.Record) { rec.Id = "" })
			want := mayMatchDefinition(I, &n)
			if got := x.MayMatch(&n); got != want {
				t.Fatalf("seed %d: MayMatch(%q %q) = %v, want %v", seed, n.IPAddress, n.Location, got, want)
			}
			if got, pairs := x.Probe(nil, &n), pairsOf(I, &n); !slices.Equal(sorted(got), pairs) {
				t.Fatalf("seed %d: Probe gave %d rows, want %d", seed, len(got), len(pairs))
			}
			checked++
			if want {
				positive++
			}
		}
	}
	if positive < checked/20 || positive > checked*19/20 {
		t.Fatalf("%d of %d probes may match: the data does not exercise both answers", positive, checked)
	}
}

func sorted(rs []Result) []Result {
	Sort(rs)
	return rs
}

// Rows of users that are not indexed, as most non-interactive rows are: a
// false positive is allowed but must be rare, and Probe must find nothing.
func TestMayMatchUnknownUsers(t *testing.T) {
	x := NewIndex()
	var I []signin.Record
	for u := range 5000 {
		i := ir(fmt.Sprintf("user%06d@contoso.com", u), "10.0.0.1", "US", time.Duration(u%60)*time.Minute)
		x.Add(i)
		I = append(I, i)
	}
	x.Seal()
	kept := 0
	const probes = 20000
	for u := range probes {
		upn := fmt.Sprintf("user%06d@contoso.com", 5000+u)
		if u%2 == 1 {
			upn = fmt.Sprintf("User%06d@contoso.com", u%5000) // an indexed user but for case
		}
		n := nr(upn, "2.2.2.2", "RU", 90*time.Minute)
		if x.MayMatch(&n) {
			kept++
		}
		if got := x.Probe(nil, &n); len(got) != 0 {
			t.Fatalf("%s is not indexed, yet Probe paired it: %+v", upn, got)
		}
	}
	if kept > probes/100 {
		t.Fatalf("MayMatch kept %d of %d rows of unknown users", kept, probes)
	}
	// The same rows for the indexed users all may match, and do pair.
	for u := range 5000 {
		n := nr(fmt.Sprintf("user%06d@contoso.com", u), "2.2.2.2", "RU", 90*time.Minute)
		want := mayMatchDefinition(I[u:u+1], &n)
		if !want {
			t.Fatalf("the test's data should pair user %d", u)
		}
		if !x.MayMatch(&n) || len(x.Probe(nil, &n)) != 1 {
			t.Fatalf("user %d: MayMatch %v, Probe %d rows", u, x.MayMatch(&n), len(x.Probe(nil, &n)))
		}
	}
}

// When indexed users share a tag, MayMatch must look at every one of them,
// not stop at the first.
func TestMayMatchSharedTags(t *testing.T) {
	defer func(m uint32) { tagMask = m }(tagMask)
	tagMask = 0
	users := []string{"a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"}
	for seed := uint64(0); seed < 100; seed++ {
		r := rand.New(rand.NewPCG(seed, 19))
		x := NewIndex()
		var I []signin.Record
		for k := 0; k < 1+r.IntN(20); k++ {
			i := ir(users[r.IntN(len(users))], fmt.Sprint("10.0.0.", r.IntN(3)), []string{"US", "DE"}[r.IntN(2)], time.Duration(r.IntN(300))*time.Minute, func(rec *signin.Record) { rec.Id = fmt.Sprint("i", k) })
			x.Add(i)
			I = append(I, i)
		}
		x.Seal()
		for k := 0; k < 100; k++ {
			n := nr(users[r.IntN(len(users))], fmt.Sprint("10.0.0.", r.IntN(3)), []string{"US", "DE", ""}[r.IntN(3)], time.Duration(r.IntN(400))*time.Minute, func(rec *signin.Record) { rec.Id = "" })
			if mayMatchDefinition(I, &n) && !x.MayMatch(&n) {
				t.Fatalf("seed %d: MayMatch rejected %+v, which pairs", seed, n)
			}
			if got, pairs := x.Probe(nil, &n), pairsOf(I, &n); !slices.Equal(sorted(got), pairs) {
				t.Fatalf("seed %d: Probe gave %d rows, want %d", seed, len(got), len(pairs))
			}
		}
	}
}

// Probed times the sealed layout cannot hold (far from now, at its range
// ends, with a monotonic reading) against an index it does hold.
func TestMayMatchProbedTimes(t *testing.T) {
	now := time.Now() // a monotonic reading
	edges := []time.Time{
		time.Unix(fastMin, 0).UTC(), time.Unix(fastMin, 0).Add(-time.Nanosecond), time.Unix(fastMax, 0).UTC(), time.Unix(fastMax, 0).Add(time.Hour),
		now.Round(0), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	const u = "a@x.com"
	x := NewIndex()
	var I []signin.Record
	for k, base := range edges {
		for j, d := range []time.Duration{-119 * time.Minute, -30 * time.Minute, 0, 30 * time.Minute, 119 * time.Minute} {
			if _, ok := unixNano(base.Add(d)); !ok {
				continue // the index itself stays inside the range
			}
			i := ir(u, fmt.Sprint("10.0.0.", j), "US", 0, func(rec *signin.Record) { rec.Id = fmt.Sprint("i", k, j) })
			i.TimeGenerated = base.Add(d)
			x.Add(i)
			I = append(I, i)
		}
	}
	x.Seal()
	if x.fast == nil {
		t.Fatal("the index should use the sealed layout")
	}
	// 2^64 ns later, where UnixNano wraps onto the indexed times.
	third := 6148914691 * time.Second
	alias := now.Round(0).Add(third).Add(third).Add(third + 709551616)
	if alias.UnixNano() != now.UnixNano() {
		t.Fatal("the alias should wrap")
	}
	checked := 0
	for _, base := range append(edges, now, alias) {
		for d := -3 * time.Hour; d <= 5*time.Hour; d += 7 * time.Minute {
			n := nr(u, "10.0.0.1", "DE", 0)
			n.TimeGenerated = base.Add(d)
			want := mayMatchDefinition(I, &n)
			if got := x.MayMatch(&n); got != want {
				t.Fatalf("MayMatch(%v) = %v, want %v", n.TimeGenerated, got, want)
			}
			if want {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no probe may match: the test checks nothing")
	}
}
