package main

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/precision"
)

const labeledCase = "testdata/precision/labeled"

// labels reads the labeled case's sidecar (Id -> label).
func labels(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(labeledCase + "/labels.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(zr).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs[1:] {
		out[r[0]] = r[1]
	}
	return out
}

// The shipped labeled case holds one instance of every attack variant: in
// every mode, each variant the mode does not give up by design has an
// alert row carrying one of its rows, and the mode's rows are exact's.
func TestPrecisionModesKeepEveryVariant(t *testing.T) {
	lab := labels(t)
	f := detect.Filter{}
	ifiles := []exportFile{{labeledCase + "/interactive.jsonl.gz", size(t, labeledCase+"/interactive.jsonl.gz")}}
	nfiles := []exportFile{{labeledCase + "/noninteractive.jsonl.gz", size(t, labeledCase+"/noninteractive.jsonl.gz")}}
	var exact map[[2]string]bool
	for _, m := range precision.Modes {
		t.Run(m.String(), func(t *testing.T) {
			pf := newPairFilter(nil)
			if m.On() {
				pf = newPairFilter(precision.New(m, nil))
			}
			rows, rejected, err := detectFiles(context.Background(), ifiles, nfiles, f, pf, fileReader{"test", 0, io.Discard}, &progress{})
			if err != nil || len(rejected) > 0 {
				t.Fatal(err, rejected)
			}
			keys := map[[2]string]bool{}
			found := map[string]bool{}
			for _, r := range rows {
				keys[[2]string{r.InteractiveId, r.NonInteractiveId}] = true
				for _, id := range []string{r.InteractiveId, r.NonInteractiveId} {
					if v, _, ok := gen.AttackLabel(lab[id]); ok {
						found[v] = true
					}
				}
			}
			if m == precision.Exact {
				exact = keys
			} else {
				for k := range keys {
					if !exact[k] {
						t.Errorf("row %v is not one of exact's", k)
					}
				}
				if pf.stats.Pairs != len(exact) || pf.stats.Kept != len(rows) {
					t.Errorf("stats %+v: want %d pairs, %d kept", pf.stats, len(exact), len(rows))
				}
			}
			for _, v := range gen.Variants {
				if v.Seen && !slices.Contains(v.LostBy, m.String()) && !found[v.ID] {
					t.Errorf("%s: no alert for variant %s (%s)", m, v.ID, v.About)
				}
			}
			if m.On() && len(rows) >= len(exact) {
				t.Errorf("%s kept all %d rows: it filters nothing", m, len(rows))
			}
		})
	}
}

func size(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// detect prints the mode's counts on stderr only when a mode is on, and
// exact (the default) prints what it always did.
func TestDetectPrecisionFlag(t *testing.T) {
	base := []string{"detect", "--interactive", labeledCase + "/interactive.jsonl.gz", "--noninteractive", labeledCase + "/noninteractive.jsonl.gz"}
	code, plain, errs := runCLI(t, base...)
	if code != 0 || strings.Contains(errs, "precision") {
		t.Fatalf("exact: code %d, stderr %q", code, errs)
	}
	code, exact, _ := runCLI(t, append(base, "--precision", "exact")...)
	if code != 0 || exact != plain {
		t.Fatalf("--precision exact differs from the default")
	}
	code, bal, errs := runCLI(t, append(base, "--precision", "balanced")...)
	if code != 0 || !strings.Contains(errs, "detect: precision balanced: kept 23 of 88 exact pairs; suppressed ") || !strings.Contains(errs, "other-session=") {
		t.Fatalf("balanced: code %d, stderr %q", code, errs)
	}
	want, err := os.ReadFile(labeledCase + "/expected.balanced.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if bal != string(want) {
		t.Errorf("balanced rows differ from the case's")
	}
	t.Setenv("TOKENPIVOT_PRECISION", "loose")
	if code, _, errs := runCLI(t, base...); code != 2 || !strings.Contains(errs, "TOKENPIVOT_PRECISION") {
		t.Errorf("a bad mode: code %d, stderr %q", code, errs)
	}
}

func TestPrecisionCases(t *testing.T) {
	code, out, _ := runCLI(t, "test", "testdata/precision")
	if code != 0 || !strings.Contains(out, "3 cases: 3 passed, 0 failed") || !strings.Contains(out, "[balanced] (23 rows)") {
		t.Fatalf("code %d:\n%s", code, out)
	}
}

// process in each mode stores the rows detect prints in that mode (the
// case's expected[.MODE].jsonl, which TestDetectPrecisionFlag and
// TestPrecisionCases hold detect to), and says what the mode suppressed.
func TestProcessPrecisionModes(t *testing.T) {
	for _, tc := range []struct {
		mode, expected, stderr string
	}{
		{"exact", "expected.jsonl", ""},
		{"balanced", "expected.balanced.jsonl", "process: precision balanced: kept 23 of 88 exact pairs; suppressed "},
		{"strict", "expected.strict.jsonl", "process: precision strict: kept "},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			for c, f := range map[string]string{"am-signinlogs": "interactive.jsonl.gz", "am-aadnoninteractiveusersigninlogs": "noninteractive.jsonl.gz"} {
				data, err := os.ReadFile(labeledCase + "/" + f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir+"/"+c, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir+"/"+c+"/"+f, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, _, errs := runCLI(t, "process", "--storage", dir, "--precision", tc.mode, "--workers", "1")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if tc.stderr == "" && strings.Contains(errs, "precision") || !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q, want %q", errs, tc.stderr)
			}
			docs, _, err := alertsOf(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				for _, r := range d.Results {
					got = append(got, string(detect.AppendJSON(nil, r))+"\n")
				}
			}
			want, err := os.ReadFile(labeledCase + "/" + tc.expected)
			if err != nil {
				t.Fatal(err)
			}
			wantLines := strings.SplitAfter(strings.TrimSuffix(string(want), "\n"), "\n")
			for k := range wantLines {
				wantLines[k] = strings.TrimSuffix(wantLines[k], "\n") + "\n"
			}
			slices.Sort(got)
			slices.Sort(wantLines)
			if !slices.Equal(got, wantLines) {
				t.Errorf("process --precision %s stored %d rows, detect prints %d", tc.mode, len(got), len(wantLines))
			}
		})
	}
}
