package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// copyCase copies testdata/cases' JSON Lines case (with its rule) to a new
// folder, replacing expected.jsonl by expected.
func copyCase(t *testing.T, expected string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"interactive.jsonl", "noninteractive.jsonl", "rule.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "cases", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "expected.jsonl"), []byte(expected), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTestCommand(t *testing.T) {
	want, err := os.ReadFile("testdata/cases/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	bogus := strings.Replace(lines[0], `"NICountry":"RU"`, `"NICountry":"FR"`, 1)
	for _, tc := range []struct {
		name     string
		args     func() []string
		code     int
		contains []string
	}{
		{"the bundled cases pass", func() []string { return []string{"test", "testdata/cases"} }, 0,
			[]string{"PASS  testdata/cases (12 rows)", "PASS  " + filepath.Join("testdata", "cases", "parquet") + " (12 rows)", "2 cases: 2 passed, 0 failed"}},
		{"a missing and an extra row", func() []string {
			return []string{"test", copyCase(t, strings.Join(append(lines[1:], bogus), "\n")+"\n")}
		}, 1, []string{"1 missing, 1 extra", "  - " + bogus, "  + " + lines[0], "0 passed, 1 failed"}},
		{"a tuned safe list changes the rows", func() []string {
			return []string{"test", "--safe-ips", "20.1.1.2", "testdata/cases"}
		}, 1, []string{"11 rows, 1 missing, 0 extra", "bound1m@contoso.com"}},
		{"a folder without exports", func() []string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "expected.jsonl"), nil, 0o644)
			return []string{"test", dir}
		}, 1, []string{"want interactive* and noninteractive* exports"}},
		{"not a case", func() []string { return []string{"test", t.TempDir()} }, 2, []string{"no expected.jsonl"}},
		{"no folder", func() []string { return []string{"test"} }, 2, []string{"name at least one case folder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args()...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out+errs, s) {
					t.Errorf("output lacks %q:\n%s%s", s, out, errs)
				}
			}
		})
	}
}

// A case's tuned rule.yaml runs as written: a 1m .. 10m window keeps only
// the expected rows whose TimeSinceInteractive is at most 10 minutes, and
// an added column is part of each row (expected.jsonl holds it too).
func TestTestCommandTunedRule(t *testing.T) {
	want, err := os.ReadFile("testdata/cases/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		r, err := detect.UnmarshalResult([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if r.TimeSinceInteractive <= 10*time.Minute {
			// The added column, as the rule computes it: the country pair.
			kept = append(kept, strings.TrimSuffix(l, "}")+`,"Route":"`+r.InteractiveCountry+`>`+r.NICountry+`"}`)
		}
	}
	if len(kept) == 0 || len(kept) == 12 {
		t.Fatalf("%d of 12 rows within 10m: the case does not tell the windows apart", len(kept))
	}
	dir := copyCase(t, strings.Join(kept, "\n")+"\n")
	ruleFile := filepath.Join(dir, "rule.yaml")
	data, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	tuned := strings.Replace(string(data), "between (1m .. 2h)", "between (1m .. 10m)", 1)
	tuned = strings.Replace(tuned, "  TimeSinceInteractive = (TimeGenerated - InteractiveTime)\n",
		"  TimeSinceInteractive = (TimeGenerated - InteractiveTime),\n  Route = strcat(InteractiveCountry, \">\", Location)\n", 1)
	if err := os.WriteFile(ruleFile, []byte(tuned), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "test", dir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("(%d rows)", len(kept))) {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
}
