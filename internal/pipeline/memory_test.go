package pipeline

import (
	"context"
	"io/fs"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestMemoryBoundedByRowGroup holds DESIGN.md 8: the live heap while one
// non-interactive blob is processed does not grow with the blob. Two
// realistic blobs (time-ordered, so every 20k-row row group holds most of
// the tenant's users; 2% roaming, thousands of pairs) of 100k and 400k
// rows are each processed against the same interactive hour, with the
// collector kept close to the live heap (GOGC 10), and the peak heap
// sampled every millisecond. Holding the blob's candidates (the pipeline
// before streaming: about 0.7 KiB a row) makes the larger blob peak over
// 200 MB higher; streaming holds the row groups in flight, the interactive
// index and the results (which grow with the pairs, about 1% of the rows).
func TestMemoryBoundedByRowGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and processes 0.5M rows")
	}
	// The race detector makes it ten times slower: a quarter of the rows
	// (the blobs' candidates would still hold 25 MB more than the limit).
	small, users := 100_000, 20_000
	if raceEnabled {
		small, users = 40_000, 8_000
	}
	peaks := map[int]uint64{}
	for _, rows := range []int{small, 4 * small} {
		dir := t.TempDir()
		o := gen.NewOptions(dir)
		o.Users, o.Hours, o.InteractivePerHour = users, 1, users
		o.NIPerInteractive = float64(rows) / float64(users)
		o.RowsPerFile, o.RowGroupRows = rows, users
		o.TimeOrdered, o.RoamRate, o.DuplicateRate = true, gen.DefaultRoamRate, 0.001
		o.Attacks, o.LookalikeSets = 2, 0
		if _, err := gen.Run(context.Background(), o, nil); err != nil {
			t.Fatal(err)
		}
		s, err := store.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		sink := &countingSink{}
		p := benchPipeline(t, s, sink)
		for _, w := range exportsIn(t, dir, ic) {
			if o, err := p.Process(context.Background(), w); err != nil || o.Status != Processed {
				t.Fatalf("%s: %v %s", w, err, o.Status)
			}
		}
		blobs := exportsIn(t, dir, nc)
		big := blobs[0] // the blob of the hour; the other holds the export retries
		for _, w := range blobs {
			if st, _ := s.Stat(context.Background(), w.Container, w.Name); st.Size > 1<<20 {
				big = w
			}
		}
		var out Outcome
		peak := peakHeap(func() {
			if out, err = p.Process(context.Background(), big); err != nil || out.Status != Processed {
				t.Fatalf("%s: %v %s", big, err, out.Status)
			}
		})
		if out.RowsRead < int64(rows)*9/10 || out.Results < 20 {
			t.Fatalf("%d-row blob: read %d rows, %d results: not the blob meant", rows, out.RowsRead, out.Results)
		}
		t.Logf("%d-row blob (%d candidates, %d results): peak heap %.1f MiB", rows, out.Candidates, out.Results, float64(peak)/(1<<20))
		peaks[rows] = peak
	}
	// 3x more rows: at most 32 MiB more heap (sampling noise, the results).
	// Holding the candidates (0.7 KiB a row) adds 84 MB at the race
	// detector's sizes and over 200 MB at the others.
	if lo, hi := peaks[small], peaks[4*small]; hi > lo+32<<20 {
		t.Errorf("peak heap grew with the blob: %.1f MiB for %d rows, %.1f MiB for %d", float64(lo)/(1<<20), small, float64(hi)/(1<<20), 4*small)
	}
}

// exportsIn lists the export blobs gen wrote into container.
func exportsIn(t *testing.T, dir, container string) []Work {
	var ws []Work
	root := filepath.Join(dir, container)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(root, path)
		ws = append(ws, Work{container, filepath.ToSlash(rel)})
		return err
	})
	if err != nil || len(ws) == 0 {
		t.Fatalf("exports in %s: %v (%d)", root, err, len(ws))
	}
	return ws
}

// peakHeap runs fn with the collector kept close to the live heap and
// returns the largest heap in use sampled meanwhile, above what was in use
// before.
func peakHeap(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return peak - min(peak, before.HeapInuse)
}
