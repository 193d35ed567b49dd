package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

var caseFlags = []string{"--safe-ips", "203.0.113.50", "--safe-networks", "198.51.100.0/24,2001:db8:ffff::/48"}

func TestDetectRuleCases(t *testing.T) {
	want, err := os.ReadFile("testdata/cases/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []struct{ name, i, n string }{
		{"jsonl", "testdata/cases/interactive.jsonl", "testdata/cases/noninteractive.jsonl"},
	}
	// The same rows written by DuckDB, when present (testdata/duckdb).
	if _, err := os.Stat("testdata/cases/parquet/interactive.parquet"); err == nil {
		inputs = append(inputs, struct{ name, i, n string }{"duckdb parquet", "testdata/cases/parquet/interactive.parquet", "testdata/cases/parquet/noninteractive.parquet"})
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			code, out, errs := runCLI(t, append([]string{"detect", "--interactive", in.i, "--noninteractive", in.n}, caseFlags...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if out != string(want) {
				t.Fatalf("detect output differs from expected.jsonl\n got:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

func TestDetectIPv6SafeNetworksOptIn(t *testing.T) {
	code, out, errs := runCLI(t, append([]string{"detect", "--interactive", "testdata/cases/interactive.jsonl",
		"--noninteractive", "testdata/cases/noninteractive.jsonl", "--ipv6-safe-networks"}, caseFlags...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rows, err := detect.ReadJSONL("stdout", strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 11 || strings.Contains(out, "ipv6@contoso.com") {
		t.Fatalf("with the opt-in the IPv6 case is safe: want 11 rows without ipv6@, got %d", len(rows))
	}
}

func TestDetectNow(t *testing.T) {
	// A run at 12:30 keeps rows after 09:30: everything. A run at 13:00:30
	// drops the 10:00:00 interactive rows (not > 10:00:30), leaving multi's 10:20.
	for _, tc := range []struct {
		now  string
		rows int
	}{{"2026-11-20T12:30:00Z", 12}, {"2026-11-20T13:00:30Z", 2}} {
		code, out, errs := runCLI(t, append([]string{"detect", "--interactive", "testdata/cases/interactive.jsonl",
			"--noninteractive", "testdata/cases/noninteractive.jsonl", "--now", tc.now}, caseFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if n := strings.Count(out, "\n"); n != tc.rows {
			t.Errorf("--now %s: %d rows, want %d:\n%s", tc.now, n, tc.rows, out)
		}
	}
}

func TestDetectFormats(t *testing.T) {
	base := []string{"detect", "--interactive", "testdata/cases/interactive.jsonl", "--noninteractive", "testdata/cases/noninteractive.jsonl"}
	code, out, _ := runCLI(t, append(base, "--format", "csv")...)
	if code != 0 || !strings.HasPrefix(out, "NISignInTime,InteractiveTime,UserPrincipalName,AppDisplayName,NIIPAddress,NICountry,InteractiveIP,InteractiveCountry,CorrelationId,UniqueTokenIdentifier,TimeSinceInteractive\n") {
		t.Fatalf("csv: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append(base, "--format", "table")...)
	if code != 0 || !strings.Contains(out, "01:59:59.9999990") || !strings.Contains(out, "result rows") {
		t.Fatalf("table: exit %d\n%s", code, out)
	}
}

func TestDetectBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "testdata/cases/noninteractive.jsonl"
	tests := []struct {
		name  string
		args  []string
		code  int
		words []string
	}{
		{"missing column", []string{"--interactive", write("nocol.json", `{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":"a@b.c","IPAddress":"1.1.1.1","Location":"US","ResultType":"0","ConditionalAccessStatus":"success"}`+"\n"), "--noninteractive", good},
			2, []string{"nocol.json", "AuthenticationRequirement"}},
		{"wrong type", []string{"--interactive", write("badtype.json", `{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":42,"IPAddress":"1.1.1.1","Location":"US","ResultType":"0","AuthenticationRequirement":"x","ConditionalAccessStatus":"y"}`+"\n"), "--noninteractive", good},
			2, []string{"badtype.json", "UserPrincipalName"}},
		{"truncated parquet", []string{"--interactive", write("cut.parquet", "PAR1\x15\x04\x15\x10"), "--noninteractive", good},
			2, []string{"cut.parquet"}},
		{"bad safe network", []string{"--interactive", good, "--noninteractive", good, "--safe-networks", "10.0.0.0/33"}, 2, []string{"10.0.0.0/33"}},
		{"bad now", []string{"--interactive", good, "--noninteractive", good, "--now", "yesterday"}, 2, []string{"--now"}},
		{"bad format", []string{"--interactive", good, "--noninteractive", good, "--format", "xml"}, 2, []string{"xml"}},
		{"missing path", []string{"--interactive", filepath.Join(dir, "nope"), "--noninteractive", good}, 2, []string{"nope"}},
		{"no paths", []string{"--interactive", good}, 2, []string{"--noninteractive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, append([]string{"detect"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errs)
			}
			for _, w := range tc.words {
				if !strings.Contains(errs, w) {
					t.Errorf("error %q does not name %q", errs, w)
				}
			}
		})
	}
}

// TestDetectFindsExactlyWhatGenPlanted: gen's background never matches by
// design, so the rule's rows over its output are exactly the planted pivots.
func TestDetectFindsExactlyWhatGenPlanted(t *testing.T) {
	o := gen.NewOptions(t.TempDir())
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 300, 6, 4, 1, 42
	o.DuplicateRate = 0.01
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "detect", "--interactive", filepath.Join(o.Out, o.InteractiveContainer),
		"--noninteractive", filepath.Join(o.Out, o.NonInteractiveContainer))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rows, err := detect.ReadJSONL("stdout", strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	pivots := sum.Pivots()
	if len(rows) != len(pivots) || len(pivots) < 4 {
		t.Fatalf("detect found %d rows, gen planted %d pivots\n%s", len(rows), len(pivots), out)
	}
	for k, p := range pivots {
		r := rows[k]
		if r.UserPrincipalName != p.UserPrincipalName || !r.InteractiveTime.Equal(p.InteractiveTime) ||
			!r.NISignInTime.Equal(p.NITime) || r.NIIPAddress != p.NIIP || r.InteractiveIP != p.InteractiveIP ||
			r.NICountry != p.NICountry || r.CorrelationId != p.CorrelationId || r.TimeSinceInteractive != p.NITime.Sub(p.InteractiveTime) {
			t.Errorf("row %d: got %+v\nplanted %+v", k, r, p)
		}
	}
	_ = time.Second
}

// TestProcessOverAFolder: `process` runs the event pipeline over a folder
// laid out like the storage account; its alerts cover exactly the planted
// pivots, and a second run has nothing left to do.
func TestProcessOverAFolder(t *testing.T) {
	o := gen.NewOptions(t.TempDir())
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 300, 6, 4, 1, 7
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "process", "--storage", o.Out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	docs, _, err := alertsOf(t, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	for _, d := range docs {
		rows += len(d.Results)
		// The table shows ids by their first 8 characters (--wide in full).
		if !strings.Contains(out, d.SystemAlertId[:8]) {
			t.Errorf("process output does not list alert %s", d.SystemAlertId)
		}
	}
	if rows != len(sum.Pivots()) || !strings.Contains(errs, fmt.Sprintf("%d result rows", len(sum.Pivots()))) {
		t.Fatalf("alerts hold %d rows, gen planted %d pivots; stderr: %s", rows, len(sum.Pivots()), errs)
	}
	code, out, errs = runCLI(t, "process", "--storage", o.Out)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("nothing new; %d alerts stored", len(docs))) || !strings.Contains(errs, "processed 0 blobs") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errs)
	}
}

func alertsOf(t *testing.T, dir string) ([]alert.Document, []alert.Incident, error) {
	t.Helper()
	s, err := store.NewLocal(dir)
	if err != nil {
		return nil, nil, err
	}
	return alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents"}.List(context.Background())
}

// detectCases runs detect on the rule cases with the given inputs and checks
// the result rows are the expected ones; it returns stderr.
func detectCases(t *testing.T, i, n string, extra ...string) string {
	t.Helper()
	want, err := os.ReadFile("testdata/cases/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"detect", "--interactive", i, "--noninteractive", n}, caseFlags...)
	code, out, errs := runCLI(t, append(args, extra...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out != string(want) {
		t.Fatalf("detect output differs from expected.jsonl\n got:\n%s\nwant:\n%s", out, want)
	}
	return errs
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A folder walk reads what signin.IsExportName accepts and counts the rest
// on stderr; a file named on the command line is read whatever its name.
func TestDetectFolderSkipsNonExports(t *testing.T) {
	dir := t.TempDir()
	idir := filepath.Join(dir, "am-signinlogs")
	copyFile(t, "testdata/cases/interactive.jsonl", filepath.Join(idir, "y=2026/m=11/d=20/h=10/m=00/PT05M.ndjson"))
	for _, junk := range []string{"README.txt", "y=2026/_SUCCESS", "y=2026/m=11/.PT05M.json.crc"} {
		copyFile(t, "testdata/cases/interactive.jsonl", filepath.Join(idir, junk))
	}
	errs := detectCases(t, idir, "testdata/cases/noninteractive.jsonl")
	if want := "detect: skipped 3 files that are not exports (e.g. " + filepath.Join(idir, "README.txt") + ")\n"; !strings.Contains(errs, want) {
		t.Errorf("stderr %q does not say %q", errs, want)
	}

	clean := filepath.Join(dir, "clean")
	copyFile(t, "testdata/cases/noninteractive.jsonl", filepath.Join(clean, "PT05M.json"))
	named := filepath.Join(dir, "interactive-export.txt")
	copyFile(t, "testdata/cases/interactive.jsonl", named)
	if errs := detectCases(t, named, clean); strings.Contains(errs, "skipped") {
		t.Errorf("nothing was skipped, stderr says: %s", errs)
	}
}

// A row whose TimeGenerated cannot be read is skipped with a warning naming
// the file, the count and the first bad row; the other rows still count.
func TestDetectWarnsAboutSkippedRows(t *testing.T) {
	data, err := os.ReadFile("testdata/cases/interactive.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	bad := strings.Replace(first, `"TimeGenerated":"2026-11-20T10:00:00Z"`, `"TimeGenerated":"20/11/2026 10:00"`, 1)
	if bad == first {
		t.Fatal("the first case row has no TimeGenerated to break")
	}
	p := filepath.Join(t.TempDir(), "signin.json")
	if err := os.WriteFile(p, append(data, bad+"\n"+bad+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	errs := detectCases(t, p, "testdata/cases/noninteractive.jsonl")
	lines := strings.Count(string(data), "\n")
	for _, w := range []string{"warning", p, "skipped 2 rows", "column TimeGenerated", fmt.Sprintf("row %d", lines+1), "20/11/2026 10:00"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q does not say %q", errs, w)
		}
	}
}

// A gzip export past --max-expansion is rejected naming the file and the
// flag; the same file passes with the default bound.
func TestDetectMaxExpansion(t *testing.T) {
	data, err := os.ReadFile("testdata/cases/noninteractive.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Write(bytes.Repeat([]byte("\n"), 3<<20)) // compresses ~1000x
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "PT05M.json.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	detectCases(t, "testdata/cases/interactive.jsonl", p)

	code, _, errs := runCLI(t, append([]string{"detect", "--interactive", "testdata/cases/interactive.jsonl", "--noninteractive", p, "--max-expansion", "2"}, caseFlags...)...)
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errs)
	}
	for _, w := range []string{p, "decompresses to more than 2097152 bytes (2x its compressed size); raise --max-expansion"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q does not say %q", errs, w)
		}
	}
	if code, _, errs := runCLI(t, "detect", "--interactive", p, "--noninteractive", p, "--max-expansion", "0"); code != 2 || !strings.Contains(errs, "--max-expansion") {
		t.Errorf("--max-expansion 0: exit %d: %s", code, errs)
	}
}
