package main

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
)

// TestProcessBackfillOfOldExports: exports copied with their times kept
// (cp -p, rsync -a, tar) are older than the allowed lateness; a backfill
// still reads them all, and says what it skips when asked to cut by age.
// Files that are not exports are skipped and counted, not errors.
func TestProcessBackfillOfOldExports(t *testing.T) {
	o := gen.NewOptions(t.TempDir())
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 200, 4, 3, 0, 11
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var exports int
	for _, c := range []string{o.InteractiveContainer, o.NonInteractiveContainer} {
		for name, data := range map[string]string{"README.txt": "hourly exports\n", "_SUCCESS": ""} {
			if err := os.WriteFile(filepath.Join(o.Out, c, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := time.Now().Add(-60 * 24 * time.Hour)
	err = filepath.WalkDir(o.Out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			exports++
			err = os.Chtimes(p, old, old)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	exports -= 4

	code, _, errs := runCLI(t, "process", "--storage", o.Out, "--skip-older-than", "168h")
	if code != 0 || !strings.Contains(errs, fmt.Sprintf("skipped %d export blobs last modified more than 168h0m0s ago", exports)) ||
		!strings.Contains(errs, "processed 0 blobs") {
		t.Fatalf("--skip-older-than 168h: exit %d, want every export skipped and counted:\n%s", code, errs)
	}
	code, _, errs = runCLI(t, "process", "--storage", o.Out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "skipped 4 blobs that are not exports") || !strings.Contains(errs, fmt.Sprintf("processed %d blobs", exports)) {
		t.Errorf("stderr should count the 4 non-exports and process all %d exports:\n%s", exports, errs)
	}
	docs, _, err := alertsOf(t, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, d := range docs {
		rows += d.ExtendedProperties.ResultCount
	}
	if rows != len(sum.Pivots()) {
		t.Fatalf("a backfill of old exports found %d rows, gen planted %d", rows, len(sum.Pivots()))
	}
}

// TestProcessHeapPerWorker: process holds the Go heap to --heap-per-worker
// per worker (a streamed blob's live heap is bounded, and without a limit
// the collector lets the heap grow to twice it: docs/performance.md,
// "Blob-size sweep"), lowers a higher GOMEMLIMIT but never raises a lower
// one, and leaves the runtime's limit as it found it.
func TestProcessHeapPerWorker(t *testing.T) {
	o := gen.NewOptions(t.TempDir())
	o.Users, o.Hours, o.Attacks, o.LookalikeSets = 50, 1, 1, 0
	if _, err := gen.Run(context.Background(), o, nil); err != nil {
		t.Fatal(err)
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tc := range []struct {
		name   string
		limit  int64 // the runtime's before the run
		args   []string
		bytes  int64
		source string
	}{
		{"default, 2 workers", math.MaxInt64, []string{"--workers", "2"}, 2 * pipeline.HeapPerWorker, "--heap-per-worker"},
		{"a higher GOMEMLIMIT is lowered", 2 << 30, []string{"--workers", "1", "--heap-per-worker", "100"}, 100 << 20, "--heap-per-worker"},
		{"a lower GOMEMLIMIT stands", 150 << 20, []string{"--workers", "1"}, 150 << 20, "GOMEMLIMIT"},
		{"0: none of its own", math.MaxInt64, []string{"--workers", "1", "--heap-per-worker", "0"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.limit)
			code, _, errs := runCLI(t, append([]string{"process", "--storage", o.Out, "-v"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			want := fmt.Sprintf(`"msg":"memory limit","bytes":%d,"source":"%s"`, tc.bytes, tc.source)
			if !strings.Contains(errs, want) {
				t.Errorf("stderr lacks %s:\n%.600s", want, errs)
			}
			if l := debug.SetMemoryLimit(-1); l != tc.limit {
				t.Errorf("limit after the run %d, want %d as before", l, tc.limit)
			}
		})
	}
	if code, _, errs := runCLI(t, "process", "--storage", o.Out, "--heap-per-worker", "-1"); code != exitBad {
		t.Errorf("--heap-per-worker -1: exit %d, want %d: %s", code, exitBad, errs)
	}
}
