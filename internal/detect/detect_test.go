package detect

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func ir(upn, ip, loc string, at time.Duration, mod ...func(*signin.Record)) signin.Record {
	r := signin.Record{TimeGenerated: t0.Add(at), UserPrincipalName: upn, IPAddress: ip, Location: loc,
		ResultType: "0", AuthenticationRequirement: "singleFactorAuthentication", ConditionalAccessStatus: "success",
		AppDisplayName: "Office 365", CorrelationId: "ic-" + upn, Id: fmt.Sprintf("i-%s-%v", upn, at)}
	for _, m := range mod {
		m(&r)
	}
	return r
}

func nr(upn, ip, loc string, at time.Duration, mod ...func(*signin.Record)) signin.Record {
	r := signin.Record{TimeGenerated: t0.Add(at), UserPrincipalName: upn, IPAddress: ip, Location: loc,
		ResultType: "0", AppDisplayName: "Microsoft Teams", CorrelationId: "nc-" + upn,
		UniqueTokenIdentifier: "tok-" + upn, Id: fmt.Sprintf("n-%s-%v-%s", upn, at, ip)}
	for _, m := range mod {
		m(&r)
	}
	return r
}

func TestRuleClauses(t *testing.T) {
	const u = "alice@contoso.com"
	mfa := func(r *signin.Record) { r.AuthenticationRequirement = "multiFactorAuthentication" }
	safe, err := rule.NewSafeList([]string{"203.0.113.50", "2001:db8::50"}, []string{"198.51.100.0/24", "2001:db8:1::/48", "0.0.0.0/32"}, rule.SafeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	safe6, err := rule.NewSafeList(nil, []string{"2001:db8:1::/48"}, rule.SafeListOptions{HonorIPv6Networks: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		i, n signin.Record
		safe *rule.SafeList
		want bool
	}{
		{"pivot", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", 45*time.Minute), nil, true},
		{"exactly 1m", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", time.Minute), nil, true},
		{"1m minus 1ns", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", time.Minute-time.Nanosecond), nil, false},
		{"exactly 2h", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", 2*time.Hour), nil, true},
		{"2h plus 100ns", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", 2*time.Hour+100*time.Nanosecond), nil, false},
		{"NI before interactive", ir(u, "1.1.1.1", "US", time.Hour), nr(u, "2.2.2.2", "RU", 0), nil, false},
		{"same IP", ir(u, "1.1.1.1", "US", 0), nr(u, "1.1.1.1", "RU", 10*time.Minute), nil, false},
		{"same country", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "US", 10*time.Minute), nil, false},
		{"empty NI location differs", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "", 10*time.Minute), nil, true},
		{"both locations empty", ir(u, "1.1.1.1", "", 0), nr(u, "2.2.2.2", "", 10*time.Minute), nil, false},
		{"MFA and CA success", ir(u, "1.1.1.1", "US", 0, mfa), nr(u, "2.2.2.2", "RU", 10*time.Minute), nil, false},
		{"MFA with CA notApplied", ir(u, "1.1.1.1", "US", 0, mfa, func(r *signin.Record) { r.ConditionalAccessStatus = "notApplied" }), nr(u, "2.2.2.2", "RU", 10*time.Minute), nil, true},
		{"case differs in requirement", ir(u, "1.1.1.1", "US", 0, func(r *signin.Record) { r.AuthenticationRequirement = "SingleFactorAuthentication" }), nr(u, "2.2.2.2", "RU", 10*time.Minute), nil, false},
		{"interactive failure", ir(u, "1.1.1.1", "US", 0, func(r *signin.Record) { r.ResultType = "50126" }), nr(u, "2.2.2.2", "RU", 10*time.Minute), nil, false},
		{"NI failure", ir(u, "1.1.1.1", "US", 0), nr(u, "2.2.2.2", "RU", 10*time.Minute, func(r *signin.Record) { r.ResultType = "50140" }), nil, false},
		{"UPN case differs", ir(u, "1.1.1.1", "US", 0), nr("Alice@contoso.com", "2.2.2.2", "RU", 10*time.Minute), nil, false},
		{"other user", ir(u, "1.1.1.1", "US", 0), nr("bob@contoso.com", "2.2.2.2", "RU", 10*time.Minute), nil, false},
		{"safe IP on interactive", ir(u, "203.0.113.50", "US", 0), nr(u, "2.2.2.2", "RU", 10*time.Minute), safe, false},
		{"safe IP on NI", ir(u, "1.1.1.1", "US", 0), nr(u, "203.0.113.50", "RU", 10*time.Minute), safe, false},
		{"safe network on interactive", ir(u, "198.51.100.7", "US", 0), nr(u, "2.2.2.2", "RU", 10*time.Minute), safe, false},
		{"safe network on NI", ir(u, "1.1.1.1", "US", 0), nr(u, "198.51.100.200", "RU", 10*time.Minute), safe, false},
		{"outside safe network", ir(u, "198.51.101.7", "US", 0), nr(u, "2.2.2.2", "RU", 10*time.Minute), safe, true},
		{"placeholder 0.0.0.0/32 matches only itself", ir(u, "0.0.0.1", "US", 0), nr(u, "2.2.2.2", "RU", 10*time.Minute), safe, true},
		{"IPv6 safe IP", ir(u, "1.1.1.1", "US", 0), nr(u, "2001:db8::50", "RU", 10*time.Minute), safe, false},
		{"IPv6 in IPv6 network: KQL never matches", ir(u, "1.1.1.1", "US", 0), nr(u, "2001:db8:1::9", "RU", 10*time.Minute), safe, true},
		{"IPv6 in IPv6 network: opt-in honoured", ir(u, "1.1.1.1", "US", 0), nr(u, "2001:db8:1::9", "RU", 10*time.Minute), safe6, false},
		{"IPv6 pivot", ir(u, "2001:db8:2::1", "US", 0), nr(u, "2001:db8:3::1", "DE", 90*time.Minute), nil, true},
		{"unparseable IP is not safe", ir(u, "1.1.1.1", "US", 0), nr(u, "not-an-ip", "RU", 10*time.Minute), safe, true},
		{"empty IPs are equal", ir(u, "", "US", 0), nr(u, "", "RU", 10*time.Minute), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Run([]signin.Record{tc.i}, []signin.Record{tc.n}, Filter{Safe: tc.safe})
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Fatalf("got %d rows, want match=%v: %+v", len(got), tc.want, got)
			}
			if tc.want {
				r := got[0]
				if r.AppDisplayName != tc.n.AppDisplayName || r.CorrelationId != tc.n.CorrelationId {
					t.Errorf("AppDisplayName/CorrelationId must be the non-interactive row's: %+v", r)
				}
				if r.TimeSinceInteractive != tc.n.TimeGenerated.Sub(tc.i.TimeGenerated) || r.InteractiveIP != tc.i.IPAddress || r.NIIPAddress != tc.n.IPAddress {
					t.Errorf("wrong columns: %+v", r)
				}
			}
		})
	}
}

func TestAllPairsAndOrder(t *testing.T) {
	const a, b = "alice@contoso.com", "bob@contoso.com"
	I := []signin.Record{
		ir(b, "1.1.1.1", "US", 0),
		ir(a, "1.1.1.2", "US", 30*time.Minute),
		ir(a, "1.1.1.1", "US", 0),
	}
	N := []signin.Record{
		nr(a, "2.2.2.2", "RU", 40*time.Minute),
		nr(a, "3.3.3.3", "CN", 50*time.Minute),
		nr(b, "2.2.2.2", "RU", 5*time.Minute),
		nr(a, "2.2.2.2", "RU", 40*time.Minute), // same Id as the first: counted once
	}
	got := Run(I, N, Filter{})
	var keys []string
	for _, r := range got {
		keys = append(keys, fmt.Sprintf("%s %s %s", r.UserPrincipalName, r.InteractiveTime.Format("15:04"), r.NIIPAddress))
	}
	want := []string{
		"alice@contoso.com 10:00 2.2.2.2",
		"alice@contoso.com 10:00 3.3.3.3",
		"alice@contoso.com 10:30 2.2.2.2",
		"alice@contoso.com 10:30 3.3.3.3",
		"bob@contoso.com 10:00 2.2.2.2",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("got\n%q\nwant\n%q", keys, want)
	}
}

func TestNowKeepsOnlyTheLookback(t *testing.T) {
	const u = "alice@contoso.com"
	I := []signin.Record{ir(u, "1.1.1.1", "US", 0), ir(u, "1.1.1.2", "US", time.Hour)}
	N := []signin.Record{nr(u, "2.2.2.2", "RU", 90*time.Minute), nr(u, "2.2.2.3", "RU", 5*time.Hour)}
	now := t0.Add(3 * time.Hour) // TimeGenerated > 10:00 excludes the 10:00 interactive row
	got := Run(I, N, Filter{After: now.Add(-Lookback)})
	if len(got) != 1 || got[0].InteractiveIP != "1.1.1.2" || got[0].NIIPAddress != "2.2.2.2" {
		t.Fatalf("got %+v", got)
	}
}

// reference is the rule written as plainly as possible, separately from Run:
// every pair of rows, every clause spelled out.
func reference(I, N []signin.Record, safe *rule.SafeList) []Result {
	var out []Result
	seenI, seenN := map[string]bool{}, map[string]bool{}
	var iu, nu []signin.Record
	for _, r := range I {
		if r.Id != "" && seenI[r.Id] {
			continue
		}
		if r.Id != "" {
			seenI[r.Id] = true
		}
		iu = append(iu, r)
	}
	for _, r := range N {
		if r.Id != "" && seenN[r.Id] {
			continue
		}
		if r.Id != "" {
			seenN[r.Id] = true
		}
		nu = append(nu, r)
	}
	for _, i := range iu {
		if i.ResultType != "0" || !(i.AuthenticationRequirement == "singleFactorAuthentication" || i.ConditionalAccessStatus == "notApplied") || safe.Contains(i.IPAddress) {
			continue
		}
		for _, n := range nu {
			if n.ResultType != "0" || safe.Contains(n.IPAddress) {
				continue
			}
			d := n.TimeGenerated.Sub(i.TimeGenerated)
			if n.UserPrincipalName == i.UserPrincipalName && n.IPAddress != i.IPAddress && n.Location != i.Location && d >= time.Minute && d <= 2*time.Hour {
				out = append(out, Result{n.TimeGenerated, i.TimeGenerated, n.UserPrincipalName, n.AppDisplayName, n.IPAddress, n.Location,
					i.IPAddress, i.Location, n.CorrelationId, n.UniqueTokenIdentifier, d, i.Id, n.Id, Extra{}})
			}
		}
	}
	Sort(out)
	return out
}

func TestRandomAgainstReference(t *testing.T) {
	safe, err := rule.NewSafeList([]string{"10.0.0.3"}, []string{"10.0.1.0/24"}, rule.SafeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"a@x.com", "b@x.com", "A@x.com", "c@x.com"}
	ips := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.5", "2001:db8::1", ""}
	locs := []string{"US", "DE", "", "RU"}
	pick := func(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }
	total := 0
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		mk := func(prefix string, k int) signin.Record {
			rec := signin.Record{
				// Times on a coarse grid so boundaries (1m, 2h) are hit often.
				TimeGenerated:     t0.Add(time.Duration(r.IntN(200)) * 30 * time.Second),
				UserPrincipalName: pick(r, users), IPAddress: pick(r, ips), Location: pick(r, locs),
				ResultType:                pick(r, []string{"0", "0", "0", "50126"}),
				AuthenticationRequirement: pick(r, []string{"singleFactorAuthentication", "multiFactorAuthentication"}),
				ConditionalAccessStatus:   pick(r, []string{"success", "notApplied", "failure"}),
				AppDisplayName:            pick(r, []string{"Teams", "Outlook"}),
				CorrelationId:             fmt.Sprint(r.IntN(5)),
				Id:                        fmt.Sprintf("%s%d", prefix, k),
			}
			if r.IntN(10) == 0 {
				rec.Id = ""
			}
			return rec
		}
		// Exports repeat records whole: some rows are exact copies of earlier ones.
		add := func(rs []signin.Record, prefix string, k int) []signin.Record {
			if len(rs) > 0 && r.IntN(8) == 0 {
				return append(rs, rs[r.IntN(len(rs))])
			}
			return append(rs, mk(prefix, k))
		}
		var I, N []signin.Record
		for k := 0; k < 1+r.IntN(30); k++ {
			I = add(I, "i", k)
		}
		for k := 0; k < 1+r.IntN(80); k++ {
			N = add(N, "n", k)
		}
		got, want := Run(I, N, Filter{Safe: safe}), reference(I, N, safe)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: got %d rows, reference %d\n got %+v\nwant %+v", seed, len(got), len(want), got, want)
		}
		total += len(want)
	}
	if total < 100 {
		t.Fatalf("random data produced only %d matches: the test is not exercising the join", total)
	}
}

// MayMatch must never reject a row that Probe would pair: it is a pushdown.
func TestMayMatchIsNecessary(t *testing.T) {
	users := []string{"a@x.com", "b@x.com"}
	ips := []string{"10.0.0.1", "10.0.0.2", ""}
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 9))
		x := NewIndex()
		for k := 0; k < 1+r.IntN(10); k++ {
			x.Add(ir(users[r.IntN(2)], ips[r.IntN(3)], []string{"US", "DE"}[r.IntN(2)], time.Duration(r.IntN(300))*time.Minute))
		}
		x.Seal()
		for k := 0; k < 50; k++ {
			n := nr(users[r.IntN(2)], ips[r.IntN(3)], []string{"US", "DE", ""}[r.IntN(3)], time.Duration(r.IntN(400))*time.Minute)
			if got := x.Probe(nil, &n); len(got) > 0 && !x.MayMatch(&n) {
				t.Fatalf("seed %d: MayMatch rejected %+v, which pairs: %+v", seed, n, got)
			}
		}
	}
}

// MayMatch and Probe agree with their definitions (every pair, exactly) for
// a user with many candidates and distinct IPs, and for times far from now
// or with a monotonic reading, which a faster index would have to treat apart.
func TestIndexExactOnEdges(t *testing.T) {
	base := []time.Time{t0, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		nips := []int{3, 17, 60}[r.IntN(3)] // users with few and with many distinct IPs
		extremes := seed%3 == 0             // else only times near t0
		at := func() time.Time {
			b := base[0]
			if extremes && r.IntN(4) == 0 {
				b = base[r.IntN(len(base))]
			}
			return b.Add(time.Duration(r.IntN(300)) * time.Minute)
		}
		ip := func() string { return fmt.Sprintf("10.0.%d.%d", r.IntN(2), r.IntN(nips)) }
		x := NewIndex()
		var I []signin.Record
		for k := 0; k < 1+r.IntN(120); k++ {
			i := ir("a@x.com", ip(), []string{"US", "DE"}[r.IntN(2)], 0, func(rec *signin.Record) { rec.Id = fmt.Sprint("i", k) })
			i.TimeGenerated = at()
			if seed%10 == 0 && k == 0 {
				i.TimeGenerated = time.Now() // a monotonic reading
			}
			x.Add(i)
			I = append(I, i)
		}
		x.Seal()
		for k := 0; k < 100; k++ {
			n := nr("a@x.com", ip(), []string{"US", "DE", ""}[r.IntN(3)], 0, func(rec *signin.Record) { rec.Id = "" })
			n.TimeGenerated = at()
			var want bool
			var pairs []Result
			for _, i := range I {
				d := n.TimeGenerated.Sub(i.TimeGenerated)
				want = want || (i.IPAddress != n.IPAddress && i.Location != n.Location && d >= MinGap && d <= MaxGap)
				if Match(&i, &n) {
					pairs = append(pairs, Pair(&i, &n))
				}
			}
			if want != (len(pairs) > 0) {
				t.Fatalf("seed %d: the MayMatch definition and Match disagree", seed)
			}
			if got := x.MayMatch(&n); got != want {
				t.Fatalf("seed %d: MayMatch(%v %s) = %v, want %v", seed, n.TimeGenerated, n.IPAddress, got, want)
			}
			got := x.Probe(nil, &n)
			Sort(got)
			Sort(pairs)
			if !slices.Equal(got, pairs) {
				t.Fatalf("seed %d: Probe gave %d rows, want %d", seed, len(got), len(pairs))
			}
		}
	}
}

// Forks of one index probe its candidates each with a dedup of its own, at
// once from several goroutines, and the shared candidates cannot change.
func TestIndexFork(t *testing.T) {
	x := NewIndex()
	x.Add(ir("a@x.com", "1.1.1.1", "US", 0, func(r *signin.Record) { r.Id = "i1" }))
	n := nr("a@x.com", "2.2.2.2", "RU", 30*time.Minute, func(r *signin.Record) { r.Id = "n1" })
	var wg sync.WaitGroup
	for range 4 {
		f := x.Fork()
		wg.Go(func() {
			if got := f.Probe(nil, &n); len(got) != 1 {
				t.Errorf("fork's first probe: %d rows, want 1", len(got))
			}
			if got := f.Probe(nil, &n); len(got) != 0 {
				t.Errorf("fork's second probe of the same row: %d rows, want 0", len(got))
			}
			if !f.MayMatch(&n) {
				t.Errorf("fork's MayMatch = false")
			}
		})
	}
	wg.Wait()
	for _, idx := range []*Index{x, x.Fork()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add to a shared index did not panic")
				}
			}()
			idx.Add(ir("b@x.com", "1.1.1.1", "US", 0))
		}()
	}
}

// A run at T sees T-3h < TimeGenerated <= T on both sides: rows after T are
// in the future for it, and a run long before the rows sees none of them.
func TestNowBoundsBothEnds(t *testing.T) {
	const u = "alice@contoso.com"
	I := []signin.Record{ir(u, "1.1.1.1", "US", time.Hour)}                                                        // 11:00
	N := []signin.Record{nr(u, "2.2.2.2", "RU", 2*time.Hour), nr(u, "2.2.2.3", "RU", 2*time.Hour+time.Nanosecond)} // 12:00, just after
	for _, tc := range []struct {
		name string
		now  time.Time
		nis  []string
	}{
		{"at the NI row: inclusive", t0.Add(2 * time.Hour), []string{"2.2.2.2"}},
		{"a nanosecond later", t0.Add(2*time.Hour + time.Nanosecond), []string{"2.2.2.2", "2.2.2.3"}},
		{"before the NI rows", t0.Add(2*time.Hour - time.Nanosecond), nil},
		{"years before", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{"the interactive row just out of the lookback", t0.Add(time.Hour + Lookback), nil},
	} {
		got := Run(I, N, Filter{After: tc.now.Add(-Lookback), Until: tc.now})
		var nis []string
		for _, r := range got {
			nis = append(nis, r.NIIPAddress)
		}
		if !slices.Equal(nis, tc.nis) {
			t.Errorf("%s: NI rows %q, want %q", tc.name, nis, tc.nis)
		}
	}
}

// Dedup by Id is exact: a record repeated whole (an export retry) counts
// once, but the same Id with other content is another row, as KQL's join
// counts it (real SigninLogs repeat an Id with two AuthenticationRequirement
// values).
func TestDedupByIdIsExact(t *testing.T) {
	const u = "alice@contoso.com"
	id := func(s string) func(*signin.Record) { return func(r *signin.Record) { r.Id = s } }
	ca := func(r *signin.Record) {
		r.AuthenticationRequirement, r.ConditionalAccessStatus = "multiFactorAuthentication", "notApplied"
	}
	i1 := ir(u, "1.1.1.1", "US", 0, id("I"))
	i1ca := ir(u, "1.1.1.1", "US", 0, id("I"), ca) // same Id, other content
	n1 := nr(u, "2.2.2.2", "RU", 30*time.Minute, id("N"))
	n1ip := nr(u, "2.2.2.3", "RU", 30*time.Minute, id("N")) // same Id, other IP
	for _, tc := range []struct {
		name string
		I, N []signin.Record
		rows int
	}{
		{"retried records count once", []signin.Record{i1, i1}, []signin.Record{n1, n1}, 1},
		{"same interactive Id, other requirement", []signin.Record{i1, i1ca}, []signin.Record{n1}, 2},
		{"same non-interactive Id, other IP", []signin.Record{i1}, []signin.Record{n1, n1ip}, 2},
		{"both, and a retry of each", []signin.Record{i1, i1ca, i1ca}, []signin.Record{n1, n1ip, n1}, 4},
	} {
		if got := Run(tc.I, tc.N, Filter{}); len(got) != tc.rows {
			t.Errorf("%s: %d rows, want %d", tc.name, len(got), tc.rows)
		}
	}
}
