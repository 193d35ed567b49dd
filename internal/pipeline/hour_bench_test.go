package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingSink takes the result rows and writes nothing: the pipeline's own
// cost, without the alert documents (measured apart, internal/alert).
type countingSink struct{ rows atomic.Int64 }

func (c *countingSink) WriteResults(_ context.Context, rows []detect.Result) ([]alert.Stored, int, error) {
	c.rows.Add(int64(len(rows)))
	return nil, 0, nil
}

func (c *countingSink) EnsureContainers(context.Context) error { return nil }

// BenchmarkProcessHour processes a whole hour of exports (both tables, one
// order then the other, two blobs at a time as `process --workers 2`) on a
// fresh local store per run, with the alerts computed but not written. It
// reports CPU seconds per hour (user+system of the whole process) and the
// state bytes written. TOKENPIVOT_BENCH_DATA names the hour (tokenpivot gen
// --benchmark --out DIR); it skips without one.
func BenchmarkProcessHour(b *testing.B) {
	dir := os.Getenv("TOKENPIVOT_BENCH_DATA")
	if dir == "" {
		b.Skip("set TOKENPIVOT_BENCH_DATA to a generated hour (tokenpivot gen --benchmark --out DIR)")
	}
	blobs := map[string][][]byte{ic: readParquetFiles(b, filepath.Join(dir, ic)), nc: readParquetFiles(b, filepath.Join(dir, nc))}
	for _, order := range [][2]string{{ic, nc}, {nc, ic}} {
		b.Run(fmt.Sprintf("%s-first", map[string]string{ic: "interactive", nc: "noninteractive"}[order[0]]), func(b *testing.B) {
			var cpu time.Duration
			var state, results int64
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				s, err := store.NewLocal(root)
				if err != nil {
					b.Fatal(err)
				}
				sink := &countingSink{}
				p := benchPipeline(b, s, sink)
				for _, c := range order {
					for k, data := range blobs[c] {
						if _, err := s.Write(context.Background(), c, fmt.Sprintf("hour/%02d.parquet", k), data, store.Condition{}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				before := processCPU()
				for _, c := range order {
					processAll(b, p, c, len(blobs[c]))
				}
				cpu += processCPU() - before
				b.StopTimer()
				state, results = dirBytes(b, filepath.Join(root, "tokenpivot-state")), sink.rows.Load()
				os.RemoveAll(root)
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/hour")
			b.ReportMetric(float64(state), "state-bytes")
			b.ReportMetric(float64(results), "rows-to-sink") // pairs found twice (both sides at once) count twice here; alert ids dedup them
		})
	}
}

// benchPipeline returns a pipeline over local store s (exports and state)
// with its containers made, writing alerts to alerts.
func benchPipeline(b testing.TB, s *store.Local, alerts AlertSink) *Pipeline {
	ctx := context.Background()
	safe, err := rule.Default().SafeList(nil, nil, rule.SafeListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// TOKENPIVOT_BENCH_PRECISION runs a precision mode (default exact).
	mode, err := precision.ParseMode(os.Getenv("TOKENPIVOT_BENCH_PRECISION"))
	if err != nil {
		b.Fatal(err)
	}
	var pf *precision.Filter
	if mode.On() {
		pf = precision.New(mode, nil)
	}
	p, err := New(Config{Exports: s, State: s, InteractiveContainer: ic, NonInteractiveContainer: nc,
		StateContainer: "tokenpivot-state", Filter: detect.Filter{Safe: safe}, Precision: pf, Alerts: alerts})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []string{ic, nc} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.EnsureContainers(ctx); err != nil {
		b.Fatal(err)
	}
	return p
}

// processAll processes container's n blobs two at a time.
func processAll(b *testing.B, p *Pipeline, container string, n int) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range 2 {
		wg.Go(func() {
			for k := range work {
				o, err := p.Process(context.Background(), Work{container, fmt.Sprintf("hour/%02d.parquet", k)})
				if err != nil || o.Status != Processed {
					b.Errorf("%s/%d: err %v, status %s %v", container, k, err, o.Status, o.Reason)
				}
			}
		})
	}
	for k := range n {
		work <- k
	}
	close(work)
	wg.Wait()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
