package firstseen_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/firstseen"
	"github.com/tokenpivot/tokenpivot/internal/opstate/opstatetest"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// BenchmarkDay: a generated day (24 hours, 20,000 sign-ins an hour from
// 2,000 users) through "new country for this user", blob by blob; storage
// requests per export blob and CPU per row (docs/rule-family.md). Run with
// -benchtime=1x.
func BenchmarkDay(b *testing.B) {
	blobs := opstatetest.Generate(opstatetest.Options{Seed: 1, Hours: 24, Users: 2000, RowsPerHour: 20000})
	var rows int
	for _, bl := range blobs {
		rows += len(bl.Rows)
	}
	anchor := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, spec := range []firstseen.Spec{
		{Rule: "event-7d", Keys: 1, Window: 7 * 24 * time.Hour, Lateness: 2 * time.Hour},
		{Rule: "sched-1h-14d", Keys: 1, Lateness: 2 * time.Hour,
			Schedule: &firstseen.Schedule{Anchor: anchor, Frequency: time.Hour, Period: 14 * 24 * time.Hour}},
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
				op, err := firstseen.New(firstseen.Config{Spec: spec, Store: counts, Container: stateContainer})
				if err != nil {
					b.Fatal(err)
				}
				sink := newRecorder()
				wm := opstatetest.NewWatermark(blobs)
				for i, bl := range blobs {
					if _, err := op.Apply(ctx, bl.Source, rowsOf(bl)); err != nil {
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
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(rows), "cpu-ns/row")
			b.ReportMetric(n, "blobs")
			b.ReportMetric(float64(results), "results")
			b.Log("\n" + counts.Report())
		})
	}
}
