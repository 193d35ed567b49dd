package kql_test

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// bundledQuery is the bundled rule's query.
func bundledQuery(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../rule/token-theft-pivot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Query string `yaml:"query"`
	}
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Query
}

func TestBundledRuleIsTheFastPath(t *testing.T) {
	p, err := kql.Compile(bundledQuery(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + p.String())
	if !p.Default() {
		t.Errorf("the bundled rule does not compile to the fast path:\n%s", p)
	}
}

// Spellings of the same rule compile to the same fast path; a change of
// what it means does not.
func TestFastPathSpellings(t *testing.T) {
	q := bundledQuery(t)
	for _, tt := range []struct {
		name, old, new string
		fast           bool
	}{
		{"!in for not(in)", "| where not(IPAddress in (KnownSafeIPs))", "| where IPAddress !in (KnownSafeIPs)", true},
		{"ResultType as text", "| where ResultType == 0", `| where ResultType == "0"`, true},
		{"a longer ago()", "| where TimeGenerated > ago(3h)", "| where TimeGenerated > ago(1d)", false},
		{"the window", "between (1m .. 2h)", "between (1m .. 10m)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(q, tt.old) {
				t.Fatalf("%q not in the query", tt.old)
			}
			p, err := kql.Compile(strings.ReplaceAll(q, tt.old, tt.new))
			if err != nil {
				t.Fatal(err)
			}
			if p.Default() != tt.fast {
				t.Errorf("Default() = %v, want %v:\n%s", p.Default(), tt.fast, p)
			}
		})
	}
}

// The union of the sign-in tables: what compiles, and what is refused
// with its reason.
func TestUnion(t *testing.T) {
	const tail = ` | join kind=inner (SigninLogs | project UserPrincipalName, InteractiveTime = TimeGenerated, InteractiveIP = IPAddress, InteractiveCountry = Location) on UserPrincipalName
| where (TimeGenerated - InteractiveTime) between (1m .. 2h)
| project NISignInTime = TimeGenerated, InteractiveTime, UserPrincipalName, AppDisplayName, NIIPAddress = IPAddress,
  NICountry = Location, InteractiveIP, InteractiveCountry, CorrelationId, UniqueTokenIdentifier,
  TimeSinceInteractive = (TimeGenerated - InteractiveTime)`
	for _, tt := range []struct {
		name, union string
		refused     string // in the refusal; "" when it compiles
	}{
		{"two tables", "union SigninLogs, AADNonInteractiveUserSignInLogs", ""},
		{"isfuzzy and branches", "union isfuzzy=true (SigninLogs | where AppDisplayName != 'x'), (AADNonInteractiveUserSignInLogs | where ClientAppUsed != 'IMAP4')", ""},
		// Both branches' ago() is the side's lookback, which the
		// interactive side here does not have.
		{"branches' ago() against the other side's", "union (SigninLogs | where TimeGenerated > ago(1h)), (AADNonInteractiveUserSignInLogs | where TimeGenerated > ago(1h))", "differs between the tables (0s, 1h)"},
		{"kind=outer", "union kind=outer AADNonInteractiveUserSignInLogs, SigninLogs", ""},
		{"kind=inner", "union kind=inner AADNonInteractiveUserSignInLogs, SigninLogs", "union parameter kind"},
		{"withsource", "union withsource=T AADNonInteractiveUserSignInLogs, SigninLogs", "union parameter withsource"},
		{"three tables", "union AADNonInteractiveUserSignInLogs, SigninLogs, SigninLogs", "union of 3 tables"},
		{"one table twice", "union SigninLogs, SigninLogs", "one branch each"},
		{"another table", "union SigninLogs, AuditLogs", "table AuditLogs"},
		{"branches' ago() differ", "union (SigninLogs | where TimeGenerated > ago(1h)), AADNonInteractiveUserSignInLogs", "differ in TimeGenerated > ago"},
		{"a column one table lacks", "union SigninLogs, AADNonInteractiveUserSignInLogs | where AuthenticationRequirement == 'x'", "column AuthenticationRequirement"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := kql.Compile(tt.union + tail)
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refused == "" && !p.NFromI:
				t.Errorf("compiled without the union:\n%s", p)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("got %v, want a refusal with %q", err, tt.refused)
			}
		})
	}
}

// join kind=leftanti/leftsemi against a constant table is Key !in / in its
// key column; anything else is refused with its reason.
func TestJoinFilter(t *testing.T) {
	const tail = ` | join kind=inner (SigninLogs | project UserPrincipalName, InteractiveTime = TimeGenerated, InteractiveIP = IPAddress, InteractiveCountry = Location) on UserPrincipalName
| where (TimeGenerated - InteractiveTime) between (1m .. 2h)
| project NISignInTime = TimeGenerated, InteractiveTime, UserPrincipalName, AppDisplayName, NIIPAddress = IPAddress,
  NICountry = Location, InteractiveIP, InteractiveCountry, CorrelationId, UniqueTokenIdentifier,
  TimeSinceInteractive = (TimeGenerated - InteractiveTime)`
	const users = "let U = datatable(UserPrincipalName: string, N: long) ['a@x', 1, 'B@x', 2];\n"
	for _, tt := range []struct {
		name, query string
		refused     string
		keep        map[string]bool // UPN: kept by the N-side predicate
	}{
		{"leftanti on a let", users + "AADNonInteractiveUserSignInLogs | join kind=leftanti U on UserPrincipalName", "", map[string]bool{"a@x": false, "A@x": true, "B@x": false, "": true}},
		{"leftsemi inline, $left/$right", "AADNonInteractiveUserSignInLogs | join kind=leftsemi (datatable(K: string) ['a@x']) on $left.UserPrincipalName == $right.K", "", map[string]bool{"a@x": true, "A@x": false, "": false}},
		{"anti", users + "AADNonInteractiveUserSignInLogs | join kind=anti U on UserPrincipalName", "", map[string]bool{"a@x": false, "c@x": true}},
		{"a non-string key", users + "AADNonInteractiveUserSignInLogs | join kind=leftanti U on $left.UserPrincipalName == $right.N", "holds 1, not a string", nil},
		{"no such column", users + "AADNonInteractiveUserSignInLogs | join kind=leftanti U on $left.UserPrincipalName == $right.X", "no column X", nil},
		{"two keys", users + "AADNonInteractiveUserSignInLogs | join kind=leftanti U on UserPrincipalName, IPAddress", "2 keys", nil},
		{"a query on the right", "AADNonInteractiveUserSignInLogs | join kind=leftanti (SigninLogs | where ResultType != 0) on UserPrincipalName", "constant table", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := kql.Compile(tt.query + tail)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("got %v, want a refusal with %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for upn, want := range tt.keep {
				if got := p.NRow(&signin.Record{UserPrincipalName: upn}); got != want {
					t.Errorf("%q kept %v, want %v", upn, got, want)
				}
			}
		})
	}
}
