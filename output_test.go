package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

// maxWidth is the widest line of s, in characters.
func maxWidth(s string) (int, string) {
	w, widest := 0, ""
	for _, l := range strings.Split(s, "\n") {
		if n := len([]rune(l)); n > w {
			w, widest = n, l
		}
	}
	return w, widest
}

// The README's demo day, as a new user runs it: every table and help text
// fits 120 columns, --wide has the full ids and names, a rerun says what is
// stored, and --format json has the run and its alerts.
func TestOutputFitsAndSaysWhatItHas(t *testing.T) {
	o := gen.NewOptions(filepath.Join(t.TempDir(), "tenant"))
	o.Users, o.Hours, o.Attacks = 1000, 24, 5
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what, out string) {
		t.Helper()
		if w, l := maxWidth(out); w > 120 {
			t.Errorf("%s: a line of %d columns:\n%s", what, w, l)
		}
	}
	code, out, errs := runCLI(t, "gen", "--out", filepath.Join(t.TempDir(), "again"), "--users", "1000", "--hours", "24", "--attacks", "5")
	if code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errs)
	}
	check("gen", out)
	if regexp.MustCompile(`[+-]\d+(h|m|s|ms)\d`).MatchString(out) || !strings.Contains(out, "NI 00:41:20.7908750") {
		t.Errorf("gen prints Go durations; want KQL timespans as detect's AFTER:\n%s", out)
	}
	code, out, errs = runCLI(t, "process", "--storage", o.Out)
	if code != 0 {
		t.Fatalf("process: exit %d: %s", code, errs)
	}
	check("process", out)
	if !strings.Contains(out, "START (UTC)") || !strings.Contains(out, "FIRST (UTC)") {
		t.Errorf("process: the tables' times do not say UTC:\n%s", out)
	}
	code, out, errs = runCLI(t, "process", "--storage", o.Out)
	want := fmt.Sprintf("nothing new; %d alerts stored", countPlannedAlerts(t, o.Out))
	if code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("rerun: exit %d, stdout %q, want %q; stderr %s", code, out, want, errs)
	}
	if code, out, errs = runCLI(t, "alerts", "--storage", o.Out); code != 0 {
		t.Fatalf("alerts: exit %d: %s", code, errs)
	}
	check("alerts", out)
	code, wide, errs := runCLI(t, "alerts", "--storage", o.Out, "--wide")
	if code != 0 {
		t.Fatalf("alerts --wide: exit %d: %s", code, errs)
	}
	docs, _, err := alertsOf(t, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if strings.Contains(out, d.SystemAlertId) || !strings.Contains(out, d.SystemAlertId[:8]) {
			t.Errorf("alerts: want the id %s shortened to its first 8", d.SystemAlertId)
		}
		if !strings.Contains(wide, d.SystemAlertId) || !strings.Contains(wide, d.DisplayName) {
			t.Errorf("alerts --wide lacks the full id %s or the name", d.SystemAlertId)
		}
	}
	for _, c := range commands() {
		_, help, _ := runCLI(t, "help", c.name)
		check("help "+c.name, help)
	}
	_, table, _ := runCLI(t, "detect", "--interactive", "testdata/cases/interactive.jsonl", "--noninteractive", "testdata/cases/noninteractive.jsonl", "--format", "table")
	check("detect --format table", table)

	// A fresh state folder, and the run as JSON.
	for _, d := range []string{"tokenpivot-state", "tokenpivot-alerts", "tokenpivot-incidents"} {
		os.RemoveAll(filepath.Join(o.Out, d))
	}
	code, out, errs = runCLI(t, "process", "--storage", o.Out, "--format", "json")
	if code != 0 {
		t.Fatalf("process --format json: exit %d: %s", code, errs)
	}
	var run struct {
		Blobs      int `json:"blobs"`
		ResultRows int `json:"resultRows"`
		AlertCount int `json:"alertCount"`
		Rejected   []string
		Alerts     []struct {
			SystemAlertId string
			Results       []json.RawMessage
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("process --format json is not one JSON object: %v\n%s", err, out)
	}
	if run.Blobs == 0 || run.ResultRows != len(sum.Pivots()) || run.AlertCount != len(docs) || len(run.Alerts) != len(docs) || run.Rejected == nil {
		t.Errorf("process --format json: %d blobs, %d rows (planted %d), %d alerts (%d documents; stored %d)",
			run.Blobs, run.ResultRows, len(sum.Pivots()), run.AlertCount, len(run.Alerts), len(docs))
	}
	for _, a := range run.Alerts {
		if a.SystemAlertId == "" || len(a.Results) == 0 {
			t.Errorf("an alert without id or evidence: %+v", a)
		}
	}
}

func countPlannedAlerts(t *testing.T, dir string) int {
	docs, _, err := alertsOf(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(docs)
}

// test --format junit: one test case per case folder, a failure with the
// rows that differ, an error for a case that cannot run; exit 1 on either.
func TestTestJUnit(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "wrong")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"interactive.jsonl", "noninteractive.jsonl", "rule.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "cases", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(bad, f), data, 0o644)
	}
	exp, _ := os.ReadFile("testdata/cases/expected.jsonl")
	lines := strings.SplitAfter(string(exp), "\n")
	os.WriteFile(filepath.Join(bad, "expected.jsonl"), []byte(strings.Join(lines[1:], "")), 0o644) // one row missing from expected: one extra
	broken := filepath.Join(dir, "broken")
	os.MkdirAll(broken, 0o755)
	os.WriteFile(filepath.Join(broken, "expected.jsonl"), nil, 0o644) // no exports: an error

	code, out, errs := runCLI(t, "test", "--format", "junit", "testdata/cases", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errs)
	}
	var doc struct {
		XMLName xml.Name `xml:"testsuites"`
		Suite   struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JUnit XML: %v\n%s", err, out)
	}
	s := doc.Suite
	if s.Tests != 4 || s.Failures != 1 || s.Errors != 1 || len(s.Cases) != 4 {
		t.Fatalf("tests %d failures %d errors %d cases %d, want 4 1 1 4:\n%s", s.Tests, s.Failures, s.Errors, len(s.Cases), out)
	}
	for _, c := range s.Cases {
		switch c.Name {
		case bad:
			if c.Failure == nil || !strings.Contains(c.Failure.Message, "1 extra") || !strings.Contains(c.Failure.Text, "+ {") {
				t.Errorf("%s: failure %+v", c.Name, c.Failure)
			}
		case broken:
			if c.Error == nil || !strings.Contains(c.Error.Message, "interactive") {
				t.Errorf("%s: error %+v", c.Name, c.Error)
			}
		default:
			if c.Failure != nil || c.Error != nil {
				t.Errorf("%s should pass: %+v %+v", c.Name, c.Failure, c.Error)
			}
		}
	}
}

// The delivery table `alerts` prints after the alerts fits 120 columns too
// (it was 167 wide with a refused connection's error): ids shortened, each
// error cut in the middle so its cause shows, explanations wrapped; --wide
// has the full ids and errors.
func TestDeliveryStatusFits(t *testing.T) {
	o := gen.NewOptions(filepath.Join(t.TempDir(), "tenant"))
	o.Users, o.Hours, o.Attacks = 300, 24, 3
	if _, err := gen.Run(context.Background(), o, nil); err != nil {
		t.Fatal(err)
	}
	// A receiver that refuses the key: a configuration error, retried.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	t.Setenv("TOKENPIVOT_WEBHOOK_SECRET", "whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if code, _, errs := runCLI(t, "process", "--storage", o.Out, "--webhook-url-file", secretFile(t, srv.URL+"/hook")); code != 0 {
		t.Fatalf("process: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, "alerts", "--storage", o.Out)
	if code != 0 {
		t.Fatalf("alerts: exit %d: %s", code, errs)
	}
	code, wide, errs := runCLI(t, "alerts", "--storage", o.Out, "--wide")
	if code != 0 {
		t.Fatalf("alerts --wide: exit %d: %s", code, errs)
	}
	status, wideStatus := out[strings.Index(out, "DELIVERY"):], wide[strings.Index(wide, "DELIVERY"):]
	if w, l := maxWidth(out); w > 120 {
		t.Errorf("alerts with a delivery table: a line of %d columns:\n%s\n%s", w, l, status)
	}
	if !strings.Contains(status, "configuration error: webhook") || !strings.Contains(status, "(ids shortened, errors cut: --wide shows them)") {
		t.Errorf("the delivery table does not say what it has:\n%s", status)
	}
	docs, _, err := alertsOf(t, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	// Each row's error: in full with --wide; cut in the middle by default,
	// keeping its end (the cause).
	when := regexp.MustCompile(`^webhook  (\S+)  .*next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (.*)$`)
	narrow := map[string]string{}
	for _, l := range strings.Split(status, "\n") {
		if m := when.FindStringSubmatch(l); m != nil {
			narrow[m[1]] = m[2]
		}
	}
	rows := 0
	for _, l := range strings.Split(wideStatus, "\n") {
		m := when.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		rows++
		full, cut := m[2], narrow[m[1][:8]]
		if len(full) < 60 || !strings.Contains(full, "HTTP 403") {
			t.Errorf("--wide: want the whole error, got %q", full)
		}
		if !strings.Contains(cut, "…") || !strings.HasSuffix(cut, full[len(full)-20:]) || !strings.HasPrefix(full, strings.Split(cut, "…")[0]) {
			t.Errorf("error of %s: %q is not %q cut in the middle", m[1], cut, full)
		}
	}
	if rows < len(docs) {
		t.Errorf("--wide: %d pending rows for %d alerts:\n%s", rows, len(docs), wideStatus)
	}
}
