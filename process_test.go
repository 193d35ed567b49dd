package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/gen"
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
