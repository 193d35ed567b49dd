package aggregate_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/aggregate"
	"github.com/tokenpivot/tokenpivot/internal/opstate/opstatetest"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// BenchmarkDay applies and finalises a generated day of sign-ins (24 hours,
// 20,000 rows an hour from 2,000 users, about 75 blobs) blob by blob, as the
// pipeline would, and reports storage requests per export blob by kind and
// CPU per row: docs/rule-family.md's figures. Run with -benchtime=1x.
func BenchmarkDay(b *testing.B) {
	blobs := opstatetest.Generate(opstatetest.Options{Seed: 1, Hours: benchHours, Users: 2000, RowsPerHour: 20000})
	var rows int
	for _, bl := range blobs {
		rows += len(bl.Rows)
	}
	anchor := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, spec := range []aggregate.Spec{
		{Rule: "bin-1h", Keys: 1, Bin: time.Hour, Aggs: allAggs, Having: atLeast(0, 20), Lateness: 2 * time.Hour},
		{Rule: "bin-5m", Keys: 1, Bin: 5 * time.Minute, Aggs: allAggs, Having: atLeast(2, 2), Lateness: 2 * time.Hour},
		{Rule: "sched-1h-1d", Keys: 1, Aggs: allAggs, Having: atLeast(0, 200),
			Schedule: &aggregate.Schedule{Anchor: anchor, Frequency: time.Hour, Period: 24 * time.Hour}, Lateness: 2 * time.Hour},
	} {
		b.Run(spec.Rule, func(b *testing.B) {
			ctx := context.Background()
			var counts *store.Counting
			var results int
			cpu0 := opstatetest.CPUTime()
			for b.Loop() {
				local, err := store.NewLocal(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				local.EnsureContainer(ctx, stateContainer)
				counts = store.NewCounting(local)
				op, err := aggregate.New(aggregate.Config{Spec: spec, Store: counts, Container: stateContainer})
				if err != nil {
					b.Fatal(err)
				}
				sink := newRecorder()
				wm := opstatetest.NewWatermark(blobs)
				for i, bl := range blobs {
					in := make([]aggregate.Row, len(bl.Rows))
					for j, s := range bl.Rows {
						in[j] = project(s)
					}
					if _, err := op.Apply(ctx, bl.Source, in); err != nil {
						b.Fatal(err)
					}
					wm.Applied(i)
					if _, err := op.Finalise(ctx, wm.Now(), sink); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := op.Finalise(ctx, wm.Now(), sink); err != nil {
					b.Fatal(err)
				}
				results = len(sink.byID)
			}
			cpu := opstatetest.CPUTime() - cpu0
			n := float64(len(blobs))
			kind := func(ops ...string) float64 {
				return float64(counts.Total(func(r store.Request) bool {
					for _, op := range ops {
						if r.Op == op {
							return true
						}
					}
					return false
				})) / n
			}
			b.ReportMetric(float64(counts.Total(nil))/n, "requests/blob")
			b.ReportMetric(kind(store.OpWrite, store.OpWriteIfMatch, store.OpWriteIfNoneMatch), "writes/blob")
			b.ReportMetric(kind(store.OpRead), "reads/blob")
			b.ReportMetric(kind(store.OpList), "lists/blob")
			b.ReportMetric(kind(store.OpDelete), "deletes/blob")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows), "ns/row")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(rows), "cpu-ns/row")
			b.ReportMetric(n, "blobs")
			b.ReportMetric(float64(results), "results")
			b.Log("\n" + counts.Report())
		})
	}
}

// benchHours is the day's length (a test may shorten it).
var benchHours = 24
