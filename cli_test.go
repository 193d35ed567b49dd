package main

import (
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
	internals := regexp.MustCompile(`netip\.|strconv\.|ParseAddr|ParsePrefix|\*[a-z]+\.[A-Z]|\bstat /|invalid syntax`)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"gen", "--out", "x", "--users", "0"}, nil, "--users"},
		{[]string{"gen", "--out", "x", "--hours", "-1"}, nil, "--hours"},
		{[]string{"gen", "--out", "x", "--roam-rate", "0.9"}, nil, "--roam-rate"},
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
