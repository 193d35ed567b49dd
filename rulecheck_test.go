package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// ruleRefusals are rules the engine must not run as written: each edit of
// the bundled YAML, the operator and the YAML line (the text on it) the
// refusal names.
var ruleRefusals = []struct {
	name     string
	old, new string
	op, line string
	syntax   bool
}{
	{"make-series", "  | join kind=inner InteractiveSessions on UserPrincipalName", "  | make-series n = count() on TimeGenerated step 1h", "make-series", "make-series", false},
	{"a different table", "  AADNonInteractiveUserSignInLogs\n", "  SecurityEvent\n", "SecurityEvent", "  SecurityEvent", false},
	{"no join", bodyMarker, "  InteractiveSessions\n  | order by UserPrincipalName asc\n", "query", "  InteractiveSessions", false},
	{"trailing comma in dynamic([...])", `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50", // Example VPN egress IP 1`, "let KnownSafeIPs", "  ]);", true},
	{"summarize before the join", "  | where ResultType == 0\n  | where AuthenticationRequirement", "  | where ResultType == 0\n  | summarize arg_max(TimeGenerated, IPAddress, Location) by UserPrincipalName\n  | where AuthenticationRequirement", "summarize", "summarize arg_max", false},
	{"join kind left to KQL's default (innerunique)", "join kind=inner InteractiveSessions", "join InteractiveSessions", "join", "  | join InteractiveSessions", false},
	{"a watchlist", "  let KnownSafeIPs = dynamic([", "  let Watch = _GetWatchlist('VPN') | project SearchKey;\n  let KnownSafeIPs = dynamic([", "_GetWatchlist", "let Watch", false},
	{"no time window", "  and (TimeGenerated - InteractiveTime) between (1m .. 2h)\n", "", "join", "  | join kind=inner", false},
	{"unknown operator (syntax)", "  | order by UserPrincipalName asc, InteractiveTime asc", "  | orderby UserPrincipalName asc", "orderby", "orderby", true},
	{"descending order", "  | order by UserPrincipalName asc, InteractiveTime asc", "  | order by UserPrincipalName, InteractiveTime asc", "order by", "  | order by", false},
	{"union of three tables", "  AADNonInteractiveUserSignInLogs\n", "  union AADNonInteractiveUserSignInLogs, SigninLogs, AADServicePrincipalSignInLogs\n", "union", "  union AADNon", false},
	{"union withsource=", "  AADNonInteractiveUserSignInLogs\n", "  union withsource=SourceTable AADNonInteractiveUserSignInLogs, SigninLogs\n", "union", "  union withsource", false},
	{"join kind=leftanti", "join kind=inner InteractiveSessions", "join kind=leftanti InteractiveSessions", "join", "  | join kind=leftanti", false},
	{"mv-expand", "  | order by UserPrincipalName asc", "  | mv-expand AppDisplayName\n  | order by UserPrincipalName asc", "mv-expand", "mv-expand", false},
	{"member access on a string column", "  | where ResultType == 0\n  | where not", "  | where ResultType == 0\n  | extend D = AppDisplayName.name\n  | where not", "extend", "AppDisplayName.name", false},
	{"a column not read", "  | where ResultType == 0\n  | where not", "  | where ResultType == 0\n  | where RiskState != \"none\"\n  | where not", "where", "RiskState", false},
	{"join kind=leftanti on a query", "  | join kind=inner", "  | join kind=leftanti (SigninLogs | where ResultType != 0) on UserPrincipalName\n  | join kind=inner", "join", "join kind=leftanti", false},
	{"summarize after the join with an unsupported aggregate", "  | order by UserPrincipalName asc, InteractiveTime asc", "  | summarize Pairs = count(), P90 = percentile(TimeSinceInteractive, 90) by UserPrincipalName, NIIPAddress", "summarize", "summarize", false},
}

// bodyMarker stands for the query's final statement in ruleRefusals.
const bodyMarker = "@BODY@"

// refusedYAML is the bundled rule with a refusal's edit.
func refusedYAML(t *testing.T, old, new string) string {
	t.Helper()
	y := string(rule.DefaultYAML())
	if old == bodyMarker { // the query's tabular statement, to its end
		from := strings.Index(y, "  AADNonInteractiveUserSignInLogs\n")
		old = y[from:strings.Index(y, "entityMappings:")]
	}
	if !strings.Contains(y, old) {
		t.Fatalf("%q not in the bundled rule", old)
	}
	return strings.Replace(y, old, new, 1)
}

func TestRuleCheckRefusals(t *testing.T) {
	for _, tt := range ruleRefusals {
		t.Run(tt.name, func(t *testing.T) {
			y := refusedYAML(t, tt.old, tt.new)
			f := filepath.Join(t.TempDir(), "rule.yaml")
			if err := os.WriteFile(f, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCLI(t, "rule", "check", f)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stdout %s", code, out)
			}
			// The line the message names holds the expected text.
			lines := strings.Split(y, "\n")
			want := -1
			for k, l := range lines {
				if strings.Contains(l, tt.line) {
					want = k + 1
					break
				}
			}
			if !strings.Contains(errs, f+":"+itoa(want)+":") {
				t.Errorf("message does not name line %d (%q): %s", want, tt.line, errs)
			}
			if !strings.Contains(errs, tt.op+":") {
				t.Errorf("message does not name the operator %s: %s", tt.op, errs)
			}
			if strings.Contains(errs, "syntax error") != tt.syntax {
				t.Errorf("syntax error = %v, want %v: %s", !tt.syntax, tt.syntax, errs)
			}
			// detect refuses it too, before reading anything.
			if code, _, _ := runCLI(t, "detect", "--rule", f, "--interactive", f, "--noninteractive", f); code != 2 {
				t.Errorf("detect --rule: exit %d, want 2", code)
			}
		})
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	if n < 0 {
		return "-" + fmtInt(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return fmtInt(n/10) + string(rune('0'+n%10))
}

func TestRuleCheckPrintsThePlan(t *testing.T) {
	code, out, errs := runCLI(t, "rule", "check", "internal/rule/token-theft-pivot.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"join: kind=inner on UserPrincipalName", "window: N.TimeGenerated - I.TimeGenerated between (1m .. 2h)",
		"  TimeSinceInteractive = (N.TimeGenerated - I.TimeGenerated)", "engine: the bundled rule's fast path, nothing added"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
}

// TestRuleCheckPrintsTheSummarize: a summarize after the join is a step of
// the plan, with its line in the rule file, its aggregates and what runs it.
func TestRuleCheckPrintsTheSummarize(t *testing.T) {
	y := refusedYAML(t, "  | order by UserPrincipalName asc, InteractiveTime asc\n",
		"  | order by UserPrincipalName asc, InteractiveTime asc\n  | summarize Ips = dcount(NIIPAddress), make_set(NIIPAddress, 10) by UserPrincipalName, bin(NISignInTime, 1h)\n  | where Ips >= 3\n")
	f := filepath.Join(t.TempDir(), "rule.yaml")
	if err := os.WriteFile(f, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	line := 0
	for k, l := range strings.Split(y, "\n") {
		if strings.Contains(l, "| summarize") {
			line = k + 1
		}
	}
	code, out, errs := runCLI(t, "rule", "check", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"summarize (line " + itoa(line) + "), after the join over its pair rows (detect and test only: process and serve refuse it)",
		"  by NISignInTime = bin(NISignInTime, 1h)",
		"  Ips = dcount(NIIPAddress)   (exact: Kusto's dcount is an estimate)",
		"  set_NIIPAddress = make_set(NIIPAddress, 10)",
		"  then where (Ips >= 3)",
		"  output: UserPrincipalName NISignInTime Ips set_NIIPAddress",
		"engine: the bundled rule's fast path with the differences above",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
}
