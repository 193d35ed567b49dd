package pipeline

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// BenchmarkProcessNonInteractiveBlob processes one non-interactive Parquet
// export blob of 100k rows (the benchmark hour's blob size) with the hour's
// interactive state already published: the work of one ProcessExport call.
// It uses a small generated hour (10k users, 10k interactive rows), or the
// hour in TOKENPIVOT_BENCH_DATA (a folder written by `tokenpivot gen
// --benchmark --out DIR`, whose 200k interactive rows make the state).
func BenchmarkProcessNonInteractiveBlob(b *testing.B) {
	ctx := context.Background()
	dir := os.Getenv("TOKENPIVOT_BENCH_DATA")
	if dir == "" {
		dir = b.TempDir()
		o := gen.NewOptions(dir)
		o.Users, o.Hours, o.InteractivePerHour = 10_000, 1, 10_000
		o.RowsPerFile, o.Attacks, o.LookalikeSets = 100_000, 2, 0
		if _, err := gen.Run(ctx, o, nil); err != nil {
			b.Fatal(err)
		}
	}
	s, err := store.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	w := &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents"}, Rule: rule.Default()}
	p := benchPipeline(b, s, w)
	process := func(container, name string, data []byte) Outcome {
		if _, err := s.Write(ctx, container, name, data, store.Condition{}); err != nil {
			b.Fatal(err)
		}
		o, err := p.Process(ctx, Work{container, name})
		if err != nil || o.Status != Processed {
			b.Fatalf("%s/%s: err %v, status %s %v", container, name, err, o.Status, o.Reason)
		}
		return o
	}
	// The interactive state: every interactive blob of the hour, published.
	for k, data := range readParquetFiles(b, filepath.Join(dir, ic)) {
		process(ic, fmt.Sprintf("setup/%d.parquet", k), data)
	}
	// The largest blob: small ones are export retries repeating a few rows.
	var blob []byte
	for _, data := range readParquetFiles(b, filepath.Join(dir, nc)) {
		if len(data) > len(blob) {
			blob = data
		}
	}
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	var rows, candidates int64
	k := 0
	for b.Loop() {
		// A new name each time: a processed blob is done and would be skipped.
		k++
		o := process(nc, fmt.Sprintf("bench/%d.parquet", k), blob)
		rows, candidates = o.RowsRead, o.Candidates
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(candidates), "candidates/blob")
}

// readParquetFiles returns the content of the Parquet files under dir, in
// name order.
func readParquetFiles(b *testing.B, dir string) [][]byte {
	var out [][]byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		data, err := os.ReadFile(path)
		out = append(out, data)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(out) == 0 {
		b.Fatalf("%s: no Parquet files", dir)
	}
	return out
}
