package signin

import (
	"bytes"
	"context"
	"fmt"
	pq "github.com/parquet-go/parquet-go"
	"math/rand/v2"
	"testing"
	"time"
)

// benchRecords generates n sign-ins with the cardinality of a real tenant
// hour: a few thousand users and IPs, tens of countries, mostly successes.
func benchRecords(n int) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	countries := []string{"US", "DE", "GB", "FR", "NL", "PL", "IN", "JP", "BR", "CA", "AU", "SE", "RU", "CN", "ZA"}
	results := []string{"0", "0", "0", "0", "0", "0", "0", "50126", "50140", "50074", "70044"}
	apps := []string{"Microsoft Teams", "Office 365 Exchange Online", "Azure Portal", "OfficeHome", "Microsoft Outlook", "SharePoint Online"}
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	out := make([]Record, n)
	for i := range out {
		u := rng.IntN(3000)
		out[i] = Record{
			TimeGenerated:             start.Add(time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Microsecond),
			UserPrincipalName:         fmt.Sprintf("user%04d@contoso.com", u),
			IPAddress:                 fmt.Sprintf("198.51.%d.%d", u%200, rng.IntN(25)),
			Location:                  countries[rng.IntN(len(countries))],
			ResultType:                results[rng.IntN(len(results))],
			AuthenticationRequirement: []string{"singleFactorAuthentication", "multiFactorAuthentication"}[rng.IntN(2)],
			ConditionalAccessStatus:   []string{"notApplied", "success", "failure"}[rng.IntN(3)],
			AppDisplayName:            apps[rng.IntN(len(apps))],
			CorrelationId:             fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Int64N(1<<48)),
			UniqueTokenIdentifier:     fmt.Sprintf("%022x", rng.Uint64()),
			Id:                        fmt.Sprintf("%08x-%04x-4%03x-9%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Int64N(1<<48)),
		}
	}
	return out
}

func BenchmarkScanParquet(b *testing.B) {
	const n = 200_000
	data := writeParquet(b, stdCols(tsCol(pq.Microsecond, true), strResultType), benchRecords(n),
		[]pqOpt{withCodec(&pq.Snappy), withRowGroup(122_880)})
	for _, bc := range []struct {
		name string
		keep func(*Record) bool
	}{
		{"all", nil},
		// The rule's interactive candidate filter, without the safe lists.
		{"keep-candidates", func(r *Record) bool {
			return r.ResultType == "0" && (r.AuthenticationRequirement == "singleFactorAuthentication" || r.ConditionalAccessStatus == "notApplied")
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				st, err := Scan(context.Background(), bytes.NewReader(data), int64(len(data)), Options{Name: "bench.parquet", Table: Interactive, Keep: bc.keep}, func([]Record) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				if st.Read != n {
					b.Fatalf("read %d rows", st.Read)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
