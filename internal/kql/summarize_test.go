package kql_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/kql"
)

// pre is a pair row of the bundled rule's result, as the summarize reads
// it: NISignInTime, InteractiveTime, UserPrincipalName, AppDisplayName,
// NIIPAddress, NICountry, InteractiveIP, InteractiveCountry, CorrelationId,
// UniqueTokenIdentifier, TimeSinceInteractive, then added columns.
func pre(ni string, upn, app, ip, country string, gap time.Duration, extra ...kql.Value) []kql.Value {
	t, err := time.Parse(time.RFC3339, ni)
	if err != nil {
		panic(err)
	}
	return append([]kql.Value{kql.Datetime(t), kql.Datetime(t.Add(-gap)), kql.Str(upn), kql.Str(app), kql.Str(ip), kql.Str(country),
		kql.Str("20.1.1.1"), kql.Str("US"), kql.Str("corr"), kql.Str("tok"), kql.Timespan(gap)}, extra...)
}

func texts(rows [][]kql.Value) string {
	var lines []string
	for _, r := range rows {
		var cells []string
		for _, v := range r {
			cells = append(cells, v.Text())
		}
		lines = append(lines, strings.Join(cells, " | "))
	}
	return strings.Join(lines, "\n")
}

// TestSummarizeSemantics checks each aggregate's KQL semantics on rows
// written by hand: grouping, null handling, make_set's first-seen order,
// make_list's limit, arg_min's tie, bin(), the where and order after it.
func TestSummarizeSemantics(t *testing.T) {
	q := bundledQuery(t)
	const alice, bob = "alice@contoso.example", "bob@contoso.example"
	rows := [][]kql.Value{
		pre("2026-11-20T08:10:00Z", alice, "Microsoft Teams", "91.200.1.6", "FR", 10*time.Minute),
		pre("2026-11-20T08:59:59Z", alice, "Outlook Mobile", "45.9.9.9", "DE", 5*time.Minute),
		pre("2026-11-20T09:00:00Z", alice, "Microsoft Teams Web Client", "91.200.1.6", "FR", 5*time.Minute),
		pre("2026-11-20T11:30:00Z", bob, "Azure Portal", "45.9.9.9", "GB", 90*time.Minute),
	}
	for _, tt := range []struct {
		name, ops string
		rows      [][]kql.Value
		want      string
	}{
		{"count, make_set, make_list with a limit", "summarize count(), make_set(NIIPAddress), make_list(NICountry, 2) by UserPrincipalName", rows,
			alice + ` | 3 | ["91.200.1.6","45.9.9.9"] | ["FR","DE"]` + "\n" + bob + ` | 1 | ["45.9.9.9"] | ["GB"]`},
		{"dcount with a threshold", "summarize Ips = dcount(NIIPAddress), Apps = dcount(AppDisplayName) by UserPrincipalName\n| where Ips >= 2", rows,
			alice + " | 2 | 3"},
		{"bin(NISignInTime, 1h) keeps the column's name", "summarize Pairs = count() by bin(NISignInTime, 1h)", rows,
			"2026-11-20T08:00:00Z | 2\n2026-11-20T09:00:00Z | 1\n2026-11-20T11:00:00Z | 1"},
		{"min, max, countif, arg_min keeps the first of a tie", "summarize First = min(NISignInTime), Last = max(TimeSinceInteractive), Teams = countif(AppDisplayName has \"Teams\"), arg_min(TimeSinceInteractive, AppDisplayName) by UserPrincipalName", rows,
			alice + " | 2026-11-20T08:10:00Z | 00:10:00 | 2 | 00:05:00 | Outlook Mobile\n" + bob + " | 2026-11-20T11:30:00Z | 01:30:00 | 0 | 01:30:00 | Azure Portal"},
		{"order by and project after it", "summarize n = count() by UserPrincipalName, NICountry\n| order by n desc, NICountry asc\n| project NICountry, Twice = n * 2", rows,
			"FR | 4\nDE | 2\nGB | 2"},
		{"no by over no rows: one row", "summarize count(), make_set(NIIPAddress)", nil, `0 | []`},
		{"by over no rows: none", "summarize count() by UserPrincipalName", nil, ""},
		{"sum of an added long column", "extend Weight = iff(NICountry == \"FR\", 10, 1)\n| summarize sum(Weight) by UserPrincipalName", [][]kql.Value{
			pre("2026-11-20T08:10:00Z", alice, "a", "1.1.1.1", "FR", time.Minute, kql.ParseText(kql.KLong, "10")),
			pre("2026-11-20T08:20:00Z", alice, "a", "1.1.1.1", "DE", time.Minute, kql.ParseText(kql.KLong, "1")),
		}, alice + " | 11"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := kql.Compile(q + "\n| " + tt.ops)
			if err != nil {
				t.Fatal(err)
			}
			if p.Summary == nil || p.Default() {
				t.Fatalf("no summary in the plan:\n%s", p)
			}
			got, inexact := p.Summary.Run(tt.rows)
			if s := texts(got); s != tt.want || inexact != 0 {
				t.Errorf("got (inexact %d)\n%s\nwant\n%s", inexact, s, tt.want)
			}
			if !strings.Contains(p.String(), "summarize (line ") {
				t.Errorf("the plan does not show the summarize:\n%s", p)
			}
		})
	}
}

// TestSummarizeDcountInexact: above Kusto's exact range a dcount is
// reported, since Kusto's estimate may differ there.
func TestSummarizeDcountInexact(t *testing.T) {
	p, err := kql.Compile(bundledQuery(t) + "\n| summarize dcount(CorrelationId) by UserPrincipalName")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]kql.Value
	for k := range kql.KustoExactDcount + 1 {
		r := pre("2026-11-20T08:10:00Z", "alice@contoso.example", "a", "1.1.1.1", "FR", time.Minute)
		r[8] = kql.Str("corr-" + strings.Repeat("x", k%7) + string(rune('a'+k%26)) + time.Duration(k).String())
		rows = append(rows, r)
	}
	out, inexact := p.Summary.Run(rows)
	if inexact != 1 || out[0][1].Text() != "1001" {
		t.Errorf("inexact %d, dcount %s; want 1 and 1001", inexact, out[0][1].Text())
	}
}

func TestSummarizeRefusals(t *testing.T) {
	q := bundledQuery(t)
	for _, tt := range []struct {
		name, old, new, msg string
	}{
		{"before the join", "| where ResultType == 0\n| where AuthenticationRequirement", "| where ResultType == 0\n| summarize arg_max(TimeGenerated, IPAddress) by UserPrincipalName\n| where AuthenticationRequirement", "only after the join"},
		{"an unsupported aggregate", "InteractiveTime asc", "InteractiveTime asc\n| summarize percentile(TimeSinceInteractive, 90) by UserPrincipalName", "percentile() is not supported"},
		{"arg_max(..., *)", "InteractiveTime asc", "InteractiveTime asc\n| summarize arg_max(NISignInTime, *) by UserPrincipalName", "* is not supported"},
		{"two summarizes", "InteractiveTime asc", "InteractiveTime asc\n| summarize n = count() by UserPrincipalName\n| summarize count() by n", "summarize after the summarize is not supported"},
		{"a join after it", "InteractiveTime asc", "InteractiveTime asc\n| summarize n = count() by UserPrincipalName\n| join kind=inner (SigninLogs) on UserPrincipalName", "join after the summarize"},
		{"an unnamed by expression", "InteractiveTime asc", "InteractiveTime asc\n| summarize count() by tolower(UserPrincipalName)", "name the by expression"},
		{"a column it does not output", "InteractiveTime asc", "InteractiveTime asc\n| summarize n = count() by UserPrincipalName\n| where NIIPAddress != \"\"", "column NIIPAddress"},
		{"ago() after it", "InteractiveTime asc", "InteractiveTime asc\n| summarize n = count() by UserPrincipalName\n| extend Since = ago(1h)", "ago()"},
		{"sum of a timespan", "InteractiveTime asc", "InteractiveTime asc\n| summarize sum(TimeSinceInteractive) by UserPrincipalName", "not a number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(q, tt.old) {
				t.Fatalf("%q not in the query", tt.old)
			}
			_, err := kql.Compile(strings.Replace(q, tt.old, tt.new, 1))
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "line ") {
				t.Errorf("got %v, want a refusal naming the line and %q", err, tt.msg)
			}
		})
	}
}
