package alert

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

var stormCountries = []string{"US", "GB", "DE", "FR", "NL", "RU", "NG", "BR", "IN", "CN", "JP", "AU", "ZA", "TR", "VN"}

// stormRows are the result rows of a noisy hour: alerts distinct users
// (each one interactive sign-in, refreshed from a foreign IP 1-3 times),
// plus big alerts of bigRows refreshes each (a token replayed by a bot).
func stormRows(alerts, big, bigRows int) []detect.Result {
	rng := rand.New(rand.NewPCG(42, uint64(alerts)))
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var rows []detect.Result
	add := func(u, k int, it time.Time, iip, ic, nip, nc string) {
		nt := it.Add(time.Minute + time.Duration(rng.IntN(7140))*time.Second + time.Duration(k)*time.Millisecond)
		rows = append(rows, detect.Result{
			NISignInTime: nt, InteractiveTime: it, UserPrincipalName: fmt.Sprintf("user%05d@contoso.com", u),
			AppDisplayName: []string{"Microsoft Office", "Microsoft Teams", "Outlook Mobile", "Azure CLI"}[rng.IntN(4)],
			NIIPAddress:    nip, NICountry: nc, InteractiveIP: iip, InteractiveCountry: ic,
			CorrelationId:         fmt.Sprintf("%08x-c0de-4000-8000-%012x", u, k),
			UniqueTokenIdentifier: fmt.Sprintf("tok-%d-%d", u, k), TimeSinceInteractive: nt.Sub(it),
			InteractiveId: fmt.Sprintf("i-%d", u), NonInteractiveId: fmt.Sprintf("n-%d-%d", u, k),
		})
	}
	for u := range alerts + big {
		it := base.Add(time.Duration(rng.IntN(3600)) * time.Second)
		iip := fmt.Sprintf("203.0.%d.%d", u/250%250, u%250+1)
		ic := stormCountries[rng.IntN(3)]
		nip := fmt.Sprintf("198.51.%d.%d", rng.IntN(250), rng.IntN(250)+1)
		nc := stormCountries[3+rng.IntN(len(stormCountries)-3)]
		n := 1 + rng.IntN(3)
		if u >= alerts {
			n = bigRows
		}
		for k := range n {
			add(u, k, it, iip, ic, nip, nc)
		}
	}
	return rows
}

func benchWriter(b *testing.B) *Writer {
	s, err := store.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []string{alertsC, incidentsC} {
		if err := s.EnsureContainer(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	return &Writer{Store: Store{Blobs: s, AlertsContainer: alertsC, IncidentsContainer: incidentsC}, Rule: anyAlertRule()}
}

// BenchmarkWriteStorm writes an alert storm with the bundled rule (incidents
// on, AnyAlert): every alert of the hour joins the same grouping key.
func BenchmarkWriteStorm(b *testing.B) {
	for _, c := range []struct{ alerts, big int }{{1000, 0}, {15000, 3}} {
		b.Run(fmt.Sprintf("alerts=%d+%dx20k", c.alerts, c.big), func(b *testing.B) {
			docs := Group(anyAlertRule(), stormRows(c.alerts, c.big, 20000), false)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				w := benchWriter(b)
				b.StartTimer()
				if _, err := w.Write(context.Background(), docs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(docs)*b.N)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}

// BenchmarkMerge40k builds one alert of 40k evidence rows (Group), merges
// two 20k halves into one, and merges a redelivery of all 40k rows into it.
func BenchmarkMerge40k(b *testing.B) {
	rows := stormRows(0, 1, 40000)
	detect.Sort(rows)
	r := anyAlertRule()
	b.Run("Group", func(b *testing.B) {
		for range b.N {
			if docs := Group(r, rows, false); len(docs) != 1 || docs[0].ExtendedProperties.ResultCount != 40000 {
				b.Fatal("not one alert of 40k rows")
			}
		}
	})
	all := Group(r, rows, false)[0]
	// Halves interleaved in query order, the worst case for the kept ends.
	var odd, even []detect.Result
	for i, row := range rows {
		if i%2 == 0 {
			even = append(even, row)
		} else {
			odd = append(odd, row)
		}
	}
	h1, h2 := Group(r, even, false)[0], Group(r, odd, false)[0]
	b.Run("halves", func(b *testing.B) {
		for range b.N {
			d := h1
			if !d.Merge(h2) || d.ExtendedProperties.ResultCount != 40000 {
				b.Fatal("merge of the halves lost rows")
			}
		}
	})
	b.Run("redelivery", func(b *testing.B) {
		for range b.N {
			d := all
			if d.Merge(all) {
				b.Fatal("redelivered evidence changed the alert")
			}
		}
	})
}
