package detect

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// benchHour generates an hour shaped like `tokenpivot gen --benchmark`:
// users of a 100k tenant, 1 interactive row per 10 non-interactive, ~90%
// successes, a third of interactive rows single-factor, users mostly at one
// home IP and country.
func benchHour(interactive, noninteractive int) (I, N []signin.Record) {
	rng := rand.New(rand.NewPCG(7, 11))
	const users = 100_000
	countries := []string{"US", "GB", "DE", "FR", "NL", "IN", "JP", "BR", "CA", "AU", "RU", "RO"}
	results := []string{"0", "0", "0", "0", "0", "0", "0", "0", "0", "50126"}
	apps := []string{"Microsoft Teams", "Office 365 Exchange Online", "OfficeHome", "Outlook Mobile", "SharePoint Online"}
	upns := make([]string, users)
	for u := range upns {
		upns[u] = fmt.Sprintf("user%06d@contoso.com", u)
	}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	row := func(table signin.Table) signin.Record {
		u := rng.IntN(users)
		home := u % len(countries)
		ip, loc := fmt.Sprintf("10.%d.%d.%d", u>>16, u>>8&255, u&255), countries[home]
		if rng.IntN(50) == 0 { // roaming: another IP and country
			ip, loc = fmt.Sprintf("203.0.%d.%d", rng.IntN(256), rng.IntN(256)), countries[rng.IntN(len(countries))]
		}
		r := signin.Record{
			TimeGenerated:     start.Add(time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Microsecond),
			UserPrincipalName: upns[u],
			IPAddress:         ip,
			Location:          loc,
			ResultType:        results[rng.IntN(len(results))],
			AppDisplayName:    apps[rng.IntN(len(apps))],
			CorrelationId:     fmt.Sprintf("%032x", rng.Uint64()),
			Id:                fmt.Sprintf("%032x", rng.Uint64()),
		}
		if table == signin.Interactive {
			r.AuthenticationRequirement = []string{"singleFactorAuthentication", "multiFactorAuthentication", "multiFactorAuthentication"}[rng.IntN(3)]
			r.ConditionalAccessStatus = []string{"notApplied", "success", "success", "success"}[rng.IntN(4)]
		} else {
			r.UniqueTokenIdentifier = fmt.Sprintf("%022x", rng.Uint64())
		}
		return r
	}
	I = make([]signin.Record, interactive)
	for k := range I {
		I[k] = row(signin.Interactive)
	}
	N = make([]signin.Record, noninteractive)
	for k := range N {
		N[k] = row(signin.NonInteractive)
	}
	return I, N
}

func defaultFilter(b *testing.B) Filter {
	safe, err := rule.Default().SafeList(nil, nil, rule.SafeListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return Filter{Safe: safe}
}

// BenchmarkFilter is the candidate filters alone, per row, with the seed
// rule's safe lists (the 0.0.0.0/32 placeholder network).
func BenchmarkFilter(b *testing.B) {
	I, N := benchHour(100_000, 100_000)
	f := defaultFilter(b)
	for _, bc := range []struct {
		name string
		rows []signin.Record
		keep func(*signin.Record) bool
	}{
		{"interactive", I, f.Interactive},
		{"noninteractive", N, f.NonInteractive},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			kept := 0
			for b.Loop() {
				kept = 0
				for k := range bc.rows {
					if bc.keep(&bc.rows[k]) {
						kept++
					}
				}
			}
			if kept == 0 {
				b.Fatal("no candidates")
			}
			b.ReportMetric(float64(len(bc.rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkJoin is the join as the CLI runs it: index the interactive
// candidates of an hour, then stream non-interactive rows past them (the
// HasUser pushdown, the filter, Id dedup and the windowed probe).
func BenchmarkJoin(b *testing.B) {
	I, N := benchHour(200_000, 1_000_000)
	f := defaultFilter(b)
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x := NewIndex()
			for k := range I {
				if f.Interactive(&I[k]) {
					x.Add(I[k])
				}
			}
			x.Seal()
		}
		b.ReportMetric(float64(len(I))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	x := NewIndex()
	for k := range I {
		if f.Interactive(&I[k]) {
			x.Add(I[k])
		}
	}
	x.Seal() // as detect does, and not timed below
	b.Run("probe", func(b *testing.B) {
		b.ReportAllocs()
		var rows []Result
		for b.Loop() {
			rows = rows[:0]
			clear(x.probed) // else every run after the first finds the pairs already reported
			for k := range N {
				n := &N[k]
				if x.HasUser(n.UserPrincipalName) && f.NonInteractive(n) {
					rows = x.Probe(rows, n)
				}
			}
		}
		if len(rows) == 0 {
			b.Fatal("the join found no pairs: the generated hour should roam")
		}
		b.ReportMetric(float64(len(N))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	// As `tokenpivot detect` streams rows: the MayMatch pushdown on the cheap
	// columns, then the filter and the probe for the rows it keeps.
	b.Run("maymatch", func(b *testing.B) {
		b.ReportAllocs()
		var rows []Result
		for b.Loop() {
			rows = rows[:0]
			clear(x.probed) // else every run after the first finds the pairs already reported
			for k := range N {
				n := &N[k]
				if x.MayMatch(n) && f.NonInteractive(n) {
					rows = x.Probe(rows, n)
				}
			}
		}
		if len(rows) == 0 {
			b.Fatal("the join found no pairs: the generated hour should roam")
		}
		b.ReportMetric(float64(len(N))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
