package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
//	                 (a rule with a summarize after the join: its rows, keys
//	                 in any order, each list's elements in any order)
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
	fs := newFlagSet("test", stderr, "[--rule FILE] [--format text|junit] CASE-DIR...")
	sf := settings.Register(fs, join(ruleSettings, []string{settings.MaxExpansion}, settings.PrecisionSettings)...)
	format := fs.String("format", "text", "output `format`: text (PASS/FAIL lines), or junit (JUnit XML, one test case per case folder and mode, for CI)")
	dirs, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	s, err := sf.Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	if len(dirs) == 0 {
		return usagef("name at least one case folder (a folder holding %s, or folders of them)", caseExpected)
	}
	if *format != "text" && *format != "junit" {
		return usagef("--format %q: want text or junit", *format)
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
	report := junitSuite{Name: "tokenpivot rule tests"}
	text := stdout
	if *format == "junit" {
		text = io.Discard
	}
	for _, dir := range cases {
		runs, err := caseModes(dir, s.Precision)
		if err != nil {
			return err
		}
		for _, run := range runs {
			total++
			ok, tc := runOne(ctx, dir, run, s, text, stderr)
			if ok {
				passed++
			} else {
				failed++
			}
			report.Cases = append(report.Cases, tc)
		}
	}
	fmt.Fprintf(text, "%d cases: %d passed, %d failed\n", total, passed, failed)
	if *format == "junit" {
		if err := report.write(stdout); err != nil {
			return err
		}
	}
	if failed > 0 {
		return testFailed{failed}
	}
	return nil
}

// runOne runs one case in one mode and prints its PASS or FAIL line; the
// mode is named when it is not exact. It returns the run as a JUnit test
// case too.
func runOne(ctx context.Context, dir string, run caseRun, s settings.Settings, stdout, stderr io.Writer) (bool, junitCase) {
	name := dir
	if run.mode.On() {
		name += " [" + run.mode.String() + "]"
	}
	s.Precision = run.mode
	start := time.Now()
	missing, extra, n, err := runCase(ctx, dir, run.expected, s, stderr)
	tc := junitCase{ClassName: "tokenpivot.rule", Name: name, Time: seconds(time.Since(start))}
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "FAIL  %s: %v\n", name, err)
		tc.Error = &junitProblem{Message: err.Error(), Type: "CaseError"}
		return false, tc
	case len(missing)+len(extra) > 0:
		fmt.Fprintf(stdout, "FAIL  %s: %d rows, %d missing, %d extra\n", name, n, len(missing), len(extra))
		var detail strings.Builder
		for _, l := range missing {
			fmt.Fprintf(stdout, "  - %s\n", l)
			fmt.Fprintf(&detail, "- %s\n", l)
		}
		for _, l := range extra {
			fmt.Fprintf(stdout, "  + %s\n", l)
			fmt.Fprintf(&detail, "+ %s\n", l)
		}
		tc.Failure = &junitProblem{Message: fmt.Sprintf("%d rows, %d missing, %d extra", n, len(missing), len(extra)), Type: "RowsDiffer", Text: detail.String()}
		return false, tc
	default:
		fmt.Fprintf(stdout, "PASS  %s (%d rows)\n", name, n)
		return true, tc
	}
}

// JUnit XML, as CI systems read it (Jenkins, GitLab, Azure Pipelines'
// PublishTestResults): a suite of test cases, a failure for rows that
// differ, an error for a case that could not run.
type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func (s *junitSuite) write(w io.Writer) error {
	var total time.Duration
	for _, c := range s.Cases {
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
		if c.Error != nil {
			s.Errors++
		}
		d, _ := time.ParseDuration(c.Time + "s")
		total += d
	}
	s.Time = seconds(total)
	out := struct {
		XMLName xml.Name `xml:"testsuites"`
		Suite   *junitSuite
	}{Suite: s}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

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
	rows, rejected, err := detectFiles(ctx, ifiles, nfiles, f, newPairFilter(mode), fileReader{"test", s.MaxExpansion, stderr}, &progress{})
	if err != nil {
		return nil, nil, 0, err
	}
	if len(rejected) > 0 {
		return nil, nil, 0, errors.Join(rejected...)
	}
	data, err := os.ReadFile(filepath.Join(dir, expected))
	if err != nil {
		return nil, nil, 0, err
	}
	if f.Plan != nil && f.Plan.Summary != nil {
		// A summarize after the join: its rows are the result.
		sm := detect.Summarize(f.Plan, rows)
		var b bytes.Buffer
		if err := detect.WriteSummarized(&b, "jsonl", sm); err != nil {
			return nil, nil, 0, err
		}
		got, err := summarizedForm(b.String())
		if err != nil {
			return nil, nil, 0, err
		}
		exp, err := summarizedForm(string(data))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %w", filepath.Join(dir, expected), err)
		}
		missing, extra = diffLines(exp, got)
		return missing, extra, len(sm.Rows), nil
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

// summarizedForm is summarized JSON rows in one form, sorted, for
// comparing: keys sorted, and each list's elements sorted (KQL leaves
// make_set's and make_list's order undefined, so a row copied from
// Sentinel may list them in another order).
func summarizedForm(text string) ([]string, error) {
	var out []string
	for k, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return nil, fmt.Errorf("line %d: %w", k+1, err)
		}
		for key, v := range m {
			if list, ok := v.([]any); ok {
				els := make([]string, len(list))
				for j, e := range list {
					b, err := json.Marshal(e)
					if err != nil {
						return nil, err
					}
					els[j] = string(b)
				}
				slices.Sort(els)
				raw := make([]json.RawMessage, len(els))
				for j, e := range els {
					raw[j] = json.RawMessage(e)
				}
				m[key] = raw
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out, nil
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
