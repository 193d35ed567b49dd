package main

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		code, out, errs := runCLI(t, arg)
		if code != 0 || errs != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errs)
		}
		// A test binary has no module version or VCS stamp: "(devel)".
		if !strings.HasPrefix(out, "tokenpivot ") || !strings.Contains(out, runtime.Version()) || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: %q, want one line: tokenpivot VERSION [(revision ...)] %s", arg, out, runtime.Version())
		}
	}
}

// Help that was asked for is output (stdout, exit 0); help that answers a
// mistake goes to stderr with exit 2.
func TestHelpOnStdout(t *testing.T) {
	code, out, errs := runCLI(t, "help")
	if code != 0 || errs != "" || !strings.Contains(out, "usage: tokenpivot <command>") || !strings.Contains(out, "detect") {
		t.Fatalf("help: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runCLI(t)
	if code != 2 || out != "" || !strings.Contains(errs, "usage: tokenpivot <command>") {
		t.Fatalf("no command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, c := range commands() {
		for _, args := range [][]string{{"help", c.name}, {c.name, "-h"}, {c.name, "--help"}} {
			code, out, errs := runCLI(t, args...)
			if code != 0 || errs != "" || !strings.Contains(out, "usage: tokenpivot "+c.name) {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want the usage on stdout", args, code, out, errs)
			}
		}
	}
	code, _, errs = runCLI(t, "help", "nosuch")
	if code != 2 || !strings.Contains(errs, `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d, stderr %q", code, errs)
	}
}

// Every bad usage exits 2 with one "tokenpivot CMD:" prefix, names the flag
// it is about (the variable only when the value came from the environment),
// and shows no Go internals.
func TestBadUsage(t *testing.T) {
	internals := regexp.MustCompile(`netip\.|strconv\.|ParseAddr|ParsePrefix|\*[a-z]+\.[A-Z]|\bstat /|\bopen /|invalid syntax|store: store:|storage: store:`)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"gen", "--out", "x", "--users", "0"}, nil, "--users"},
		{[]string{"gen", "--out", "x", "--hours", "-1"}, nil, "--hours"},
		{[]string{"gen", "--out", "x", "--roam-rate", "0.9"}, nil, "--roam-rate"},
		{[]string{"gen", "--out", "x", "--compression", "lzo"}, nil, "--compression"},
		{[]string{"gen", "--out", "x", "--compression", "zstd:3"}, nil, "--compression"},
		{[]string{"gen"}, nil, "--out"},
		{[]string{"gen", "--out", "x", "--users", "many"}, nil, "-users"},
		{[]string{"detect", "--interactive", "a"}, nil, "--noninteractive"},
		{[]string{"detect", "--interactive", "a", "--noninteractive", "b", "--safe-networks", "1.2.3/99"}, nil, "--safe-networks"},
		{[]string{"detect", "--interactive", "a", "--noninteractive", "b"}, map[string]string{"TOKENPIVOT_SAFE_NETWORKS": "10.0.0.0/33"}, "TOKENPIVOT_SAFE_NETWORKS"},
		{[]string{"detect", "--interactive", "a", "--noninteractive", "b", "--now", "yesterday"}, nil, "--now"},
		{[]string{"detect", "--interactive", "a", "--noninteractive", "b", "--format", "xml"}, nil, "--format"},
		{[]string{"detect", "--interactive", "nosuch.json", "--noninteractive", "nosuch2.json"}, nil, "nosuch.json"},
		{[]string{"test"}, nil, "case folder"},
		{[]string{"process"}, nil, "--storage"},
		{[]string{"process", "--storage", "x", "--workers", "0"}, nil, "--workers"},
		{[]string{"alerts", "--storage", "x", "--format", "xml"}, nil, "--format"},
		{[]string{"exports"}, nil, "schedule"},
		{[]string{"exports", "schedule", "--from", "x"}, nil, "--from"},
		{[]string{"serve", "extra"}, nil, "extra"},
		{[]string{"nosuch"}, nil, "nosuch"},
		{[]string{"process", "--storage", "http://x"}, nil, "--storage"},
		{[]string{"detect", "--interactive", "a", "--noninteractive", "b", "--rule", "/nonexist.yaml"}, nil, "/nonexist.yaml: no such file"},
		{[]string{"process", "--storage", "x"}, map[string]string{"TOKENPIVOT_ALLOWED_LATENESS": "5q"}, "TOKENPIVOT_ALLOWED_LATENESS"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		code, out, errs := runCLI(t, tc.args...)
		for k := range tc.env {
			t.Setenv(k, "")
		}
		if code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %q", tc.args, code, errs)
		}
		if !strings.Contains(errs, tc.want) {
			t.Errorf("%q: stderr %q does not name %q", tc.args, errs, tc.want)
		}
		if m := internals.FindString(errs); m != "" {
			t.Errorf("%q: stderr shows Go internals (%q): %q", tc.args, m, errs)
		}
		if cmd := tc.args[0]; strings.Contains(errs, cmd+": "+cmd+":") {
			t.Errorf("%q: doubled prefix: %q", tc.args, errs)
		}
		if out != "" {
			t.Errorf("%q: stdout %q, want nothing", tc.args, out)
		}
	}
}

// detect --now T keeps T-3h < TimeGenerated <= T: the rule cases' pairs
// whose non-interactive row is after 11:00 are not seen by a run at 11:00
// (ipv6@'s, at 11:00:00 exactly, is), and a run in 2020 sees nothing.
func TestDetectNowUpperBound(t *testing.T) {
	for _, tc := range []struct {
		now   string
		users []string
	}{
		{"2026-11-20T11:00:00Z", []string{"bound1m", "dup", "emptyloc", "ipv6", "mfaca", "multi", "multi", "pivot"}},
		{"2020-01-01T00:00:00Z", nil},
	} {
		code, out, errs := runCLI(t, append([]string{"detect", "--interactive", "testdata/cases/interactive.jsonl",
			"--noninteractive", "testdata/cases/noninteractive.jsonl", "--now", tc.now}, caseFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		rows, err := detect.ReadJSONL("stdout", strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		for _, r := range rows {
			users = append(users, strings.TrimSuffix(r.UserPrincipalName, "@contoso.com"))
		}
		if !slices.Equal(users, tc.users) {
			t.Errorf("--now %s: users %q, want %q", tc.now, users, tc.users)
		}
	}
}

// One file that can never be read does not hide the others' rows: detect
// prints them, names the file and what it is, and exits 2. A 0-byte file is
// said to be empty; a file of the other table is refused by its content.
func TestDetectReportsBadFilesAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "signin.parquet")
	os.WriteFile(csv, []byte("TimeGenerated,UserPrincipalName,IPAddress\n2026-11-20T10:00:00Z,a@b.c,1.1.1.1\n"), 0o644)
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, nil, 0o644)
	code, out, errs := runCLI(t, append([]string{"detect", "--interactive", csv, "--interactive", empty, "--interactive", "testdata/cases/interactive.jsonl",
		"--noninteractive", "testdata/cases/noninteractive.jsonl"}, caseFlags...)...)
	want, _ := os.ReadFile("testdata/cases/expected.jsonl")
	if code != 2 || out != string(want) {
		t.Fatalf("exit %d, want 2 with the good files' rows:\n%s\n%s", code, out, errs)
	}
	for _, w := range []string{csv + ": row 1: invalid JSON: the file is CSV text", "not Parquet, as its name says", empty + ": empty (0 bytes)"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr does not say %q:\n%s", w, errs)
		}
	}
	code, out, errs = runCLI(t, "detect", "--interactive", "testdata/cases/noninteractive.jsonl", "--noninteractive", "testdata/cases/interactive.jsonl")
	if code != 2 || out != "" || !strings.Contains(errs, `testdata/cases/noninteractive.jsonl: column Type: row 1: Type "AADNonInteractiveUserSignInLogs"`) ||
		!strings.Contains(errs, `testdata/cases/interactive.jsonl: column Type: row 1: Type "SigninLogs"`) {
		t.Errorf("swapped tables: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
}

// A diagnostic archive with the off-spec time seen in the field reads at
// properties.createdDateTime, with a warning naming the first such record.
func TestDetectArchiveTimeFallback(t *testing.T) {
	dir := t.TempDir()
	for _, table := range []string{"insights-logs-signinlogs", "insights-logs-noninteractiveusersigninlogs"} {
		err := filepath.WalkDir(filepath.Join("testdata", "diagnostic", table), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			// Every record's time in the off-spec US form, createdDateTime kept.
			data = regexp.MustCompile(`"time":"[^"]*"`).ReplaceAll(data, []byte(`"time":"11/14/2025 1:48:53 AM"`))
			out := filepath.Join(dir, table, strings.NewReplacer("/", "_", "=", "").Replace(filepath.ToSlash(p))+".json")
			os.MkdirAll(filepath.Dir(out), 0o755)
			return os.WriteFile(out, data, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI(t, append([]string{"detect", "--interactive", filepath.Join(dir, "insights-logs-signinlogs"),
		"--noninteractive", filepath.Join(dir, "insights-logs-noninteractiveusersigninlogs")}, caseFlags...)...)
	want, _ := os.ReadFile("testdata/cases/expected.jsonl")
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, want the rule cases' rows:\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "their properties.createdDateTime was used; first:") || !strings.Contains(errs, "11/14/2025 1:48:53 AM") {
		t.Errorf("stderr does not warn about the fallback:\n%s", errs)
	}
	// The pipeline over the same archive: the same rows, the fallback said.
	code, _, errs = runCLI(t, append([]string{"process", "--storage", dir, "--interactive-container", "insights-logs-signinlogs",
		"--noninteractive-container", "insights-logs-noninteractiveusersigninlogs"}, caseFlags...)...)
	if code != 0 || !strings.Contains(errs, "time fallback: insights-logs-signinlogs/") || !strings.Contains(errs, "12 result rows") {
		t.Errorf("process: exit %d, want the 12 rows and the fallback said:\n%s", code, errs)
	}
}

// Times keep the precision the input has: in JSON Lines, a pair 59.9999999 s
// apart is not 1 minute apart, and the rule does not report it.
func TestDetectKeepsSevenDigits(t *testing.T) {
	dir := t.TempDir()
	i := `{"TimeGenerated":"2026-11-20T10:00:00.0000000Z","UserPrincipalName":"p@contoso.com","IPAddress":"20.1.1.1","Location":"US","ResultType":"0","AuthenticationRequirement":"singleFactorAuthentication","ConditionalAccessStatus":"success","Id":"i1"}` + "\n"
	n := `{"TimeGenerated":"2026-11-20T10:00:59.9999999Z","UserPrincipalName":"p@contoso.com","IPAddress":"91.1.1.1","Location":"RU","ResultType":"0","Id":"n1"}` + "\n" +
		`{"TimeGenerated":"2026-11-20T10:01:00.0000000Z","UserPrincipalName":"p@contoso.com","IPAddress":"91.1.1.2","Location":"RU","ResultType":"0","Id":"n2"}` + "\n"
	os.WriteFile(filepath.Join(dir, "i.jsonl"), []byte(i), 0o644)
	os.WriteFile(filepath.Join(dir, "n.jsonl"), []byte(n), 0o644)
	code, out, errs := runCLI(t, "detect", "--interactive", filepath.Join(dir, "i.jsonl"), "--noninteractive", filepath.Join(dir, "n.jsonl"))
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "91.1.1.2") {
		t.Fatalf("exit %d: want only the pair exactly 1m apart:\n%s%s", code, out, errs)
	}
}

// The pipeline counts the same Id with other content as another row, as
// detect does, whichever table's blob comes first: two non-interactive rows
// sharing an Id but not an IP are two result rows (in two alerts), and a
// retried copy of one adds nothing.
func TestProcessExactDedupById(t *testing.T) {
	for _, order := range []string{"interactive first", "non-interactive first"} {
		dir := t.TempDir()
		i := `{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":"p@contoso.com","IPAddress":"20.1.1.1","Location":"US","ResultType":"0","AuthenticationRequirement":"singleFactorAuthentication","ConditionalAccessStatus":"success","Id":"i1"}` + "\n"
		n1 := `{"TimeGenerated":"2026-11-20T10:30:00Z","UserPrincipalName":"p@contoso.com","IPAddress":"91.1.1.1","Location":"RU","ResultType":"0","Id":"n1"}` + "\n"
		n2 := strings.Replace(n1, "91.1.1.1", "91.1.1.2", 1) // same Id, other IP
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(n1 + n2 + n1)) // gzip: the compact extract path
		zw.Close()
		files := map[string][]byte{"am-signinlogs/h=10/i.json": []byte(i), "am-aadnoninteractiveusersigninlogs/h=10/n.json.gz": gz.Bytes()}
		for name, data := range files {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
			os.WriteFile(filepath.Join(dir, name), data, 0o644)
		}
		// The one processed second sees the other's extract.
		first, second := "am-signinlogs", "am-aadnoninteractiveusersigninlogs"
		if order != "interactive first" {
			first, second = second, first
		}
		os.Rename(filepath.Join(dir, second), filepath.Join(dir, second+".later"))
		if code, _, errs := runCLI(t, "process", "--storage", dir, "--interactive-container", "am-signinlogs", "--workers", "1"); code != 0 && first == "am-signinlogs" {
			t.Fatalf("%s: exit %d: %s", order, code, errs)
		}
		os.Rename(filepath.Join(dir, second+".later"), filepath.Join(dir, second))
		code, out, errs := runCLI(t, "process", "--storage", dir, "--format", "json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", order, code, errs)
		}
		docs, _, err := alertsOf(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, d := range docs {
			rows += d.ExtendedProperties.ResultCount
		}
		if rows != 2 || len(docs) != 2 {
			t.Errorf("%s: %d alerts holding %d rows, want 2 and 2:\n%s", order, len(docs), rows, out)
		}
	}
}
