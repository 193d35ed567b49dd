package kql_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// FuzzCompile feeds Compile arbitrary queries: it must never panic, every
// failure must be a *kql.Error, and a plan it returns must evaluate on
// records (with and without the columns beyond the engine's own).
func FuzzCompile(f *testing.F) {
	data, err := os.ReadFile("../rule/token-theft-pivot.yaml")
	if err != nil {
		f.Fatal(err)
	}
	var r struct {
		Query string `yaml:"query"`
	}
	if err := yaml.Unmarshal(data, &r); err != nil {
		f.Fatal(err)
	}
	f.Add(r.Query)
	for _, q := range []string{
		"let S = SigninLogs | where ResultType != 0;\nSigninLogs | where UserPrincipalName in ((S | project UserPrincipalName))",
		"let n = toscalar(SigninLogs | summarize count());\nSigninLogs | where n > 0",
		"let E = materialize(union isfuzzy=True SigninLogs, AADNonInteractiveUserSignInLogs | where ResultType == 0);\nE",
		"SigninLogs | extend (A, B) = f(x) | extend M = tostring(parse_json(DeviceDetail).[0].x)",
		"SigninLogs | summarize arg_max(TimeGenerated, *) by UserPrincipalName",
		"union (SigninLogs | where AppDisplayName != 'x'), AADNonInteractiveUserSignInLogs | join kind=inner (SigninLogs) on UserPrincipalName | where (TimeGenerated - TimeGenerated1) between (0s .. 1h)",
		"AADNonInteractiveUserSignInLogs | join kind=leftanti (datatable(UserPrincipalName: string) ['a']) on UserPrincipalName",
	} {
		f.Add(q)
	}
	if files, _ := filepath.Glob("../../../shared/sentinel-rules/Solutions/Microsoft Entra ID/Analytic Rules/*.yaml"); len(files) > 0 {
		for _, file := range files[:min(10, len(files))] {
			if data, err := os.ReadFile(file); err == nil {
				var y struct {
					Query string `yaml:"query"`
				}
				if yaml.Unmarshal(data, &y) == nil {
					f.Add(y.Query)
				}
			}
		}
	}
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	i := &signin.Record{TimeGenerated: at, UserPrincipalName: "a@x", IPAddress: "10.0.0.1", Location: "US", ResultType: "0",
		AuthenticationRequirement: "singleFactorAuthentication", AppDisplayName: "Teams",
		Extra: &signin.Extra{DeviceDetail: `{"browser":"Edge","a":[1,{"b":null}]}`, ClientAppUsed: "Browser", AutonomousSystemNumber: "8075"}}
	n := &signin.Record{TimeGenerated: at.Add(5 * time.Minute), UserPrincipalName: "a@x", IPAddress: "2001:db8::1", ResultType: "0"}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := kql.Compile(q)
		if err != nil {
			var ke *kql.Error
			if !errors.As(err, &ke) {
				t.Fatalf("error %T is not a *kql.Error: %v", err, err)
			}
			return
		}
		for _, pair := range [][2]*signin.Record{{i, n}, {n, i}} {
			p.IRow(pair[0])
			p.NRow(pair[1])
			p.NRowFrom(kql.SideI, pair[0])
			p.NRowFrom(kql.SideN, pair[1])
			p.PairOK(pair[0], pair[1])
			p.ExtraValues(pair[0], pair[1])
		}
		_ = p.String()
	})
}
