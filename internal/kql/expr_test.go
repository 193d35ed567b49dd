package kql

import (
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// KQL's literal rules: adjacent strings are one, verbatim strings keep
// backslashes, // inside a string is not a comment.
func TestLiterals(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`"a" "b"`, "ab"},
		{`"203.0.113.50"  // note` + "\n" + `"198.51.100.12"`, "203.0.113.50198.51.100.12"},
		{`@"C:\temp\x"`, `C:\temp\x`},
		{`@"say ""hi"""`, `say "hi"`},
		{`'it\'s'`, "it's"},
		{`"https://aka.ms/x"`, "https://aka.ms/x"},
		{`h"secret"`, "secret"},
		{"```multi\nline```", "multi\nline"},
	} {
		q, err := Parse("T | where X == " + tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		lit := q.Body.Ops[0].Pred.(*Binary).R.(*Lit)
		if lit.V.S != tt.want {
			t.Errorf("%s = %q, want %q", tt.src, lit.V.S, tt.want)
		}
	}
}

// has is term matching, case-insensitive: not a substring test.
func TestHasTerm(t *testing.T) {
	for _, tt := range []struct {
		s, needle string
		want      bool
	}{
		{"Microsoft Teams", "teams", true},
		{"Microsoft Teams Web Client", "TEAMS", true},
		{"Teamsters Portal2", "teams", false},
		{"Teamsters Portal2", "portal", false},
		{"Teamsters Portal2", "portal2", true},
		{"North America", "america", true},
		{"ad67d136-c1db-4f9f", "c1db", true},
		{"ad67d136-c1db-4f9f", "c1d", false},
		{"Microsoft Teams", "microsoft teams", true},
		{"x", "", true},
	} {
		if got := hasTerm(tt.s, tt.needle, false); got != tt.want {
			t.Errorf("%q has %q = %v, want %v", tt.s, tt.needle, got, tt.want)
		}
	}
	if hasTerm("Microsoft Teams", "teams", true) {
		t.Error("has_cs ignored case")
	}
}

func TestLexErrors(t *testing.T) {
	for _, tt := range []struct {
		q    string
		line int
		col  int
	}{
		{"T\n| where X == \"open", 2, 14},
		{"let a = dynamic([\"x\",]);\nT", 1, 22},
		{"T\n| where X in (\"a\",)", 2, 19},
		{"T | where X == 3q", 1, 16},
	} {
		_, err := Parse(tt.q)
		e, ok := err.(*Error)
		if !ok || !e.Syntax || e.Pos.Line != tt.line || e.Pos.Col != tt.col {
			t.Errorf("%q: %v, want a syntax error at %d:%d", tt.q, err, tt.line, tt.col)
		}
	}
}

// Three-valued logic: where keeps a row only when its predicate is true;
// not(null) is null.
func TestNullLogic(t *testing.T) {
	q := `let N = dynamic(["10.0.0.0/8"]);
AADNonInteractiveUserSignInLogs | where not(ipv4_is_in_any_range(IPAddress, N)) | join kind=inner (SigninLogs) on UserPrincipalName
| where (TimeGenerated - TimeGenerated1) between (0s .. 1h)
| project NISignInTime = TimeGenerated, InteractiveTime = TimeGenerated1, UserPrincipalName, AppDisplayName, NIIPAddress = IPAddress,
  NICountry = Location, InteractiveIP = IPAddress1, InteractiveCountry = Location1, CorrelationId, UniqueTokenIdentifier,
  TimeSinceInteractive = TimeGenerated - TimeGenerated1`
	p, err := Compile(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.NExtra) != 1 {
		t.Fatalf("NExtra = %d", len(p.NExtra))
	}
	for ip, want := range map[string]bool{"10.1.2.3": false, "20.1.2.3": true, "2001:db8::1": false, "": false} {
		v := p.NExtra[0].Eval(&Row{N: recordWithIP(ip)})
		if v.True() != want {
			t.Errorf("%q: %v, want kept %v", ip, v, want)
		}
	}
}

func recordWithIP(ip string) *signin.Record { return &signin.Record{IPAddress: ip} }

// Dynamic values: a dynamic column's JSON text, parse_json, member paths
// and indexes, as KQL reads them; the typed columns beyond the engine's
// own (a long, a bool) compare as their types.
func TestDynamicPaths(t *testing.T) {
	const dev = `{"browser":"Chrome 120","os":{"name":"Windows"},"list":[1,"a",{"k":true}],"deviceId":""}`
	full := &signin.Record{Extra: &signin.Extra{DeviceDetail: dev, ClientAppUsed: "Browser", AutonomousSystemNumber: "8075"}}
	bare := &signin.Record{}
	notJSON := &signin.Record{Extra: &signin.Extra{DeviceDetail: "not json {", ClientAppUsed: `{"a":1}`}}
	for _, tt := range []struct {
		pred             string
		full, bare, notJ bool // kept by where
	}{
		{`tostring(DeviceDetail.browser) == "Chrome 120"`, true, false, false},
		{`DeviceDetail["browser"] == "Chrome 120"`, true, false, false},
		{`tostring(parse_json(DeviceDetail).os.name) == "Windows"`, true, false, false},
		{`tostring(todynamic(DeviceDetail)["os"]) == '{"name":"Windows"}'`, true, false, false},
		{`DeviceDetail.list[1] == "a"`, true, false, false},
		{`DeviceDetail.list.[0] == 1`, true, false, false},
		{`DeviceDetail.list[-1].k == true`, true, false, false},
		{`isnull(DeviceDetail.list[3])`, true, true, true},
		{`isnull(DeviceDetail.missing)`, true, true, true},
		{`isempty(DeviceDetail.deviceId)`, true, true, true},
		{`isempty(tostring(DeviceDetail.browser))`, false, true, true},
		// parse_json of a string that is not JSON is the string; of JSON, the value.
		{`tostring(parse_json(ClientAppUsed)) == "Browser"`, true, false, false},
		{`parse_json(ClientAppUsed).a == 1`, false, false, true},
		{`isnull(parse_json(ClientAppUsed))`, false, true, false},
		{`AutonomousSystemNumber > 1000`, true, false, false},
		{`AutonomousSystemNumber == 8075`, true, false, false},
		{`ClientAppUsed != "Exchange ActiveSync"`, true, true, true},
	} {
		q := "AADNonInteractiveUserSignInLogs | where " + tt.pred + ` | join kind=inner (SigninLogs) on UserPrincipalName
| where (TimeGenerated - TimeGenerated1) between (0s .. 1h)
| project NISignInTime = TimeGenerated, InteractiveTime = TimeGenerated1, UserPrincipalName, AppDisplayName, NIIPAddress = IPAddress,
  NICountry = Location, InteractiveIP = IPAddress1, InteractiveCountry = Location1, CorrelationId, UniqueTokenIdentifier,
  TimeSinceInteractive = TimeGenerated - TimeGenerated1`
		p, err := Compile(q)
		if err != nil {
			t.Errorf("%s: %v", tt.pred, err)
			continue
		}
		if len(p.NExtra) != 1 {
			t.Errorf("%s: NExtra = %d", tt.pred, len(p.NExtra))
			continue
		}
		for _, c := range []struct {
			name string
			r    *signin.Record
			want bool
		}{{"full", full, tt.full}, {"bare", bare, tt.bare}, {"not JSON", notJSON, tt.notJ}} {
			if got := p.NExtra[0].Eval(&Row{N: c.r}).True(); got != c.want {
				t.Errorf("%s on the %s record: kept %v, want %v", tt.pred, c.name, got, c.want)
			}
		}
	}
}
