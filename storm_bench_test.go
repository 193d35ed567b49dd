package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

// BenchmarkAlertStorm runs `process` (the function's code path: extracts,
// join, alerts, incidents with the bundled rule) and `detect` over the same
// alert-storm hour: 16,000 planted pivots among 40,000 users, about 32,000
// result rows. Each process iteration starts from empty state (--state),
// so every alert and incident is written. Compare the two sub-benchmarks'
// ns/op; the target is process under 3x detect.
//
//	go test -run '^$' -bench AlertStorm -benchtime 3x .
//
// TOKENPIVOT_STORM_DATA names a folder to keep the generated hour in
// between runs (it is generated there when empty).
func BenchmarkAlertStorm(b *testing.B) {
	dir := os.Getenv("TOKENPIVOT_STORM_DATA")
	if dir == "" {
		dir = b.TempDir()
	}
	o := gen.NewOptions(dir)
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.InteractivePerHour = 40_000, 1, 16_000, 0, 80_000
	if _, err := os.Stat(filepath.Join(dir, o.NonInteractiveContainer)); err != nil {
		if _, err := gen.Run(context.Background(), o, nil); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var detectRows int
	b.Run("detect", func(b *testing.B) {
		for b.Loop() {
			var out strings.Builder
			if code := run(ctx, []string{"detect", "--interactive", filepath.Join(dir, o.InteractiveContainer),
				"--noninteractive", filepath.Join(dir, o.NonInteractiveContainer)}, &out, io.Discard); code != 0 {
				b.Fatalf("detect: exit %d", code)
			}
			detectRows = strings.Count(out.String(), "\n")
		}
		b.ReportMetric(float64(detectRows), "rows")
	})
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			state := b.TempDir()
			var errs strings.Builder
			if code := run(ctx, []string{"process", "--storage", dir, "--state", state}, io.Discard, &errs); code != 0 {
				b.Fatalf("process: exit %d: %s", code, errs.String())
			}
			if want := fmt.Sprintf("%d result rows", detectRows); detectRows > 0 && !strings.Contains(errs.String(), want) {
				b.Fatalf("process found other rows than detect (%d): %s", detectRows, errs.String())
			}
		}
	})
}
