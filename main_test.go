package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
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
	rows, err := alert.ReadJSONL("stdout", strings.NewReader(out))
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
	rows, err := alert.ReadJSONL("stdout", strings.NewReader(out))
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
		if !strings.Contains(out, d.SystemAlertId) {
			t.Errorf("process output does not list alert %s", d.SystemAlertId)
		}
	}
	if rows != len(sum.Pivots()) || !strings.Contains(errs, fmt.Sprintf("%d result rows", len(sum.Pivots()))) {
		t.Fatalf("alerts hold %d rows, gen planted %d pivots; stderr: %s", rows, len(sum.Pivots()), errs)
	}
	code, out, errs = runCLI(t, "process", "--storage", o.Out)
	if code != 0 || !strings.Contains(out, "ALERTS (0)") || !strings.Contains(errs, "processed 0 blobs") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errs)
	}
}

func alertsOf(t *testing.T, dir string) ([]alert.Document, []alert.Incident, error) {
	t.Helper()
	s, err := store.NewLocal(dir)
	if err != nil {
		return nil, nil, err
	}
	return alert.List(context.Background(), s, "tokenpivot-alerts", "tokenpivot-incidents")
}
