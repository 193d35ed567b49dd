package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/settings"
)

// A rule test case is a folder holding the two tables' exports and the rows
// the rule must give:
//
//	interactive*     SigninLogs exports: a file, or a folder read recursively
//	noninteractive*  AADNonInteractiveUserSignInLogs exports
//	expected.jsonl   the result rows, as `detect --format jsonl` prints them
//	rule.yaml        optional: the (tuned) rule for this case; else the
//	                 nearest rule.yaml in a parent folder, else --rule
//	expected.MODE.jsonl  optional: the rows of precision mode MODE
//	                 (balanced, strict); the case runs once more in each
//	                 such mode. expected.jsonl is --precision's (exact
//	                 unless set).
const (
	caseExpected = "expected.jsonl"
	caseRule     = "rule.yaml"
)

// caseModes returns the runs of case dir: expected.jsonl in mode m, then
// each expected.MODE.jsonl in its mode.
func caseModes(dir string, m precision.Mode) ([]caseRun, error) {
	runs := []caseRun{{caseExpected, m}}
	for _, mode := range precision.Modes {
		name := "expected." + mode.String() + ".jsonl"
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			runs = append(runs, caseRun{name, mode})
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return runs, nil
}

// caseRun is one run of a case: its expected rows' file and the mode.
type caseRun struct {
	expected string
	mode     precision.Mode
}

func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("test", stderr, "[--rule FILE] CASE-DIR...")
	sf := settings.Register(fs, join(ruleSettings, []string{settings.MaxExpansion}, settings.PrecisionSettings)...)
	dirs, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	s, err := sf.Load(nil)
	if err != nil {
		return usageError{err}
	}
	if len(dirs) == 0 {
		return usagef("name at least one case folder (a folder holding %s, or folders of them)", caseExpected)
	}
	var cases []string
	for _, dir := range dirs {
		found, err := findCases(dir)
		if err != nil {
			return usageError{err}
		}
		cases = append(cases, found...)
	}
	passed, failed, total := 0, 0, 0
	for _, dir := range cases {
		runs, err := caseModes(dir, s.Precision)
		if err != nil {
			return err
		}
		for _, run := range runs {
			total++
			if runOne(ctx, dir, run, s, stdout, stderr) {
				passed++
			} else {
				failed++
			}
		}
	}
	fmt.Fprintf(stdout, "%d cases: %d passed, %d failed\n", total, passed, failed)
	if failed > 0 {
		return testFailed{failed}
	}
	return nil
}

// runOne runs one case in one mode and prints its PASS or FAIL line; the
// mode is named when it is not exact.
func runOne(ctx context.Context, dir string, run caseRun, s settings.Settings, stdout, stderr io.Writer) bool {
	name := dir
	if run.mode.On() {
		name += " [" + run.mode.String() + "]"
	}
	s.Precision = run.mode
	missing, extra, n, err := runCase(ctx, dir, run.expected, s, stderr)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "FAIL  %s: %v\n", name, err)
		return false
	case len(missing)+len(extra) > 0:
		fmt.Fprintf(stdout, "FAIL  %s: %d rows, %d missing, %d extra\n", name, n, len(missing), len(extra))
		for _, l := range missing {
			fmt.Fprintf(stdout, "  - %s\n", l)
		}
		for _, l := range extra {
			fmt.Fprintf(stdout, "  + %s\n", l)
		}
		return false
	default:
		fmt.Fprintf(stdout, "PASS  %s (%d rows)\n", name, n)
		return true
	}
}

// testFailed is a failing rule test (exit 1): the rule ran, the rows differ.
type testFailed struct{ n int }

func (e testFailed) Error() string { return fmt.Sprintf("%d cases failed", e.n) }

// findCases returns dir if it is a case, else every case folder under it.
func findCases(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: not a folder (a case is a folder holding %s)", dir, caseExpected)
	}
	var cases []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == caseExpected {
			cases = append(cases, filepath.Dir(p))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no %s in it or below it: not a rule test case", dir, caseExpected)
	}
	slices.Sort(cases)
	return cases, nil
}

// runCase runs the rule over one case and returns the expected rows it did
// not give and the rows it gave that were not expected, as JSON lines.
func runCase(ctx context.Context, dir, expected string, s settings.Settings, stderr io.Writer) (missing, extra []string, n int, err error) {
	var ipaths, npaths []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, e := range entries {
		switch name := strings.ToLower(e.Name()); {
		case strings.HasPrefix(name, "noninteractive"):
			npaths = append(npaths, filepath.Join(dir, e.Name()))
		case strings.HasPrefix(name, "interactive"):
			ipaths = append(ipaths, filepath.Join(dir, e.Name()))
		}
	}
	if len(ipaths) == 0 || len(npaths) == 0 {
		return nil, nil, 0, errors.New("want interactive* and noninteractive* exports beside " + caseExpected)
	}
	if s.Rule == "" {
		s.Rule = nearestRule(dir)
	}
	_, f, err := loadFilter(s)
	if err != nil {
		return nil, nil, 0, err
	}
	var skipped skippedNames
	ifiles, err := exportFiles(ipaths, &skipped)
	if err != nil {
		return nil, nil, 0, err
	}
	nfiles, err := exportFiles(npaths, &skipped)
	if err != nil {
		return nil, nil, 0, err
	}
	mode, err := s.PrecisionFilter()
	if err != nil {
		return nil, nil, 0, err
	}
	rows, err := detectFiles(ctx, ifiles, nfiles, f, newPairFilter(mode), fileReader{"test", s.MaxExpansion, stderr}, &progress{})
	if err != nil {
		return nil, nil, 0, err
	}
	data, err := os.ReadFile(filepath.Join(dir, expected))
	if err != nil {
		return nil, nil, 0, err
	}
	var added []string // a tuned rule's added result columns
	if f.Plan != nil {
		added = f.Plan.ExtraNames()
	}
	want, err := detect.ReadJSONLExtra(filepath.Join(dir, expected), bytes.NewReader(data), added)
	if err != nil {
		return nil, nil, 0, err
	}
	got, exp := jsonLines(rows), jsonLines(want)
	missing, extra = diffLines(exp, got)
	return missing, extra, len(rows), nil
}

// nearestRule is dir's rule.yaml, or the nearest one in a parent folder.
func nearestRule(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		p := filepath.Join(d, caseRule)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if parent := filepath.Dir(d); parent == d {
			return ""
		}
	}
}

// jsonLines renders rows as detect prints them, sorted.
func jsonLines(rows []detect.Result) []string {
	var b bytes.Buffer
	detect.WriteJSONL(&b, rows)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

// diffLines compares two sorted multisets of lines.
func diffLines(want, got []string) (missing, extra []string) {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return missing, extra
}
