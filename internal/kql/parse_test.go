package kql_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/kql"
)

// TestParseValidKQL: forms the official Sentinel rules use (each one
// accepted by Microsoft's parser; see TestOfficialRulesParse) parse here.
// The compiler may refuse them by the operator or function it does not
// run, naming it, but a syntax error on valid KQL is a parser bug.
func TestParseValidKQL(t *testing.T) {
	for _, tt := range []struct {
		name, query string
		op          string // the refusal's operator
		msg         string // in the refusal's message
	}{
		{"an index after a dot", "SigninLogs\n| extend A = parse_json(AuthenticationDetails)\n| extend M = tostring(A.[0].authenticationMethod)", "extend", "AuthenticationDetails"},
		{"a subquery in in (...)", "let S = SigninLogs | where ResultType != 0;\nSigninLogs\n| where UserPrincipalName in ((S | project UserPrincipalName))", "where", "subquery"},
		{"a query as toscalar()'s argument", "let n = toscalar(SigninLogs\n  | where ResultType == 0\n  | summarize count());\nSigninLogs | where n > 0", "let n", "toscalar"},
		{"materialize(union isfuzzy=...)", "let E = materialize(\nunion isfuzzy=True SigninLogs, AADNonInteractiveUserSignInLogs\n| where ResultType == 0\n| make-series n = count() on TimeGenerated step 1h);\nE", "make-series", ""},
		{"materialize with a space", "let R = materialize (SigninLogs\n| where ResultType == 0\n| extend Name = split(UserPrincipalName, \"@\")[0]);\nR", "extend", "split"},
		{"a tuple extend", "SigninLogs\n| extend (Anomalies, Score, Baseline) = series_decompose_anomalies(D, 1.5, -1, 'linefit')", "extend", "several columns"},
		{"union of parenthesised queries", "union isfuzzy=true\n  (SigninLogs | where TimeGenerated >= ago(1h)),\n  (AADNonInteractiveUserSignInLogs | where TimeGenerated >= ago(1h))\n| summarize count() by IPAddress", "summarize", ""},
		{"arg_max(T, *)", "SigninLogs | summarize arg_max(TimeGenerated, *) by UserPrincipalName", "summarize", ""},
		{"mvexpand, the older spelling", "SigninLogs | mvexpand AppDisplayName", "mvexpand", ""},
		{"a function as the source", "let W = _GetWatchlist('VPN') | project SearchKey;\nSigninLogs", "_GetWatchlist", "tabular source"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kql.Compile(tt.query)
			var ke *kql.Error
			if !errors.As(err, &ke) {
				t.Fatalf("compiled, want a refusal by %s (%v)", tt.op, err)
			}
			if ke.Syntax {
				t.Fatalf("syntax error on valid KQL: %v", ke)
			}
			if ke.Op != tt.op || !strings.Contains(ke.Msg, tt.msg) {
				t.Errorf("refused %v; want operator %s and %q", ke, tt.op, tt.msg)
			}
		})
	}
}
