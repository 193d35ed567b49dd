package signin_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// BenchmarkHour runs the whole rule the way `tokenpivot detect` does over a
// generated hour of Parquet exports (reader, filters, join), so it can be
// profiled:
//
//	TOKENPIVOT_BENCH_DATA=/tmp/tokenpivot-bench/hour-realistic go test -run '^$' \
//	    -bench Hour -benchtime 1x -cpuprofile cpu.prof ./internal/signin
//
// TOKENPIVOT_BENCH_DATA is a folder holding the two export containers, as
// `tokenpivot gen --benchmark --out DIR` or `make bench` writes it.
func BenchmarkHour(b *testing.B) {
	dir := os.Getenv("TOKENPIVOT_BENCH_DATA")
	if dir == "" {
		b.Skip("set TOKENPIVOT_BENCH_DATA to a generated hour (tokenpivot gen --benchmark --out DIR)")
	}
	ifiles := parquetFiles(b, filepath.Join(dir, "am-signinlogs"))
	nfiles := parquetFiles(b, filepath.Join(dir, "am-aadnoninteractiveusersigninlogs"))
	f := hourFilter(b)
	ctx := context.Background()

	index := func() *detect.Index {
		x := detect.NewIndex()
		for _, p := range ifiles {
			scanFile(b, ctx, p, signin.Interactive, signin.Options{Keep: f.Interactive}, func(rs []signin.Record) error {
				for _, r := range rs {
					x.Add(r)
				}
				return nil
			})
		}
		return x
	}
	b.Run("interactive-index", func(b *testing.B) {
		for b.Loop() {
			index()
		}
	})
	x := index()
	x.Seal()
	for _, bc := range []struct {
		name string
		keep func(*signin.Record) bool
	}{
		// The reader alone: every row decoded, nothing kept.
		{"noninteractive-scan-all", func(*signin.Record) bool { return false }},
		// What detect does: the MayMatch pushdown, then the filter.
		{"noninteractive-detect", func(r *signin.Record) bool { return x.MayMatch(r) && f.NonInteractive(r) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var read int64
			var rows []detect.Result
			results := -1
			for b.Loop() {
				if results < 0 && len(rows) > 0 {
					// Probe reports a pair once: later runs find none.
					results = len(rows)
				}
				read, rows = 0, rows[:0]
				for _, p := range nfiles {
					read += scanFile(b, ctx, p, signin.NonInteractive, signin.Options{Keep: bc.keep}, func(rs []signin.Record) error {
						for k := range rs {
							rows = x.Probe(rows, &rs[k])
						}
						return nil
					})
				}
			}
			b.ReportMetric(float64(read)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(max(results, len(rows))), "results")
		})
	}
}

func parquetFiles(b *testing.B, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
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

// scanFile scans one export file and returns the rows read.
func scanFile(b *testing.B, ctx context.Context, path string, t signin.Table, opts signin.Options, fn func([]signin.Record) error) int64 {
	fh, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		b.Fatal(err)
	}
	opts.Name, opts.Table = path, t
	st, err := signin.Scan(ctx, fh, info.Size(), opts, fn)
	if err != nil {
		b.Fatal(err)
	}
	return st.Read
}

// hourFilter is the bundled rule's candidate filter with its (empty) safe lists.
func hourFilter(b *testing.B) detect.Filter {
	safe, err := rule.Default().SafeList(nil, nil, rule.SafeListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return detect.Filter{Safe: safe}
}
