package rule

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds Load arbitrary files: it must never panic, every failure
// must be a *rule.Error, and every rule it accepts must build its safe list.
func FuzzLoad(f *testing.F) {
	f.Add(DefaultYAML())
	if seed, err := os.ReadFile(filepath.Join("testdata", "seed-rule.txt")); err == nil {
		f.Add(seed)
	}
	f.Add([]byte("id: x\nname: y\nseverity: Low\nquery: |\n  let KnownSafeIPs = dynamic(['192.0.2.1' // c\n  ]);\n"))
	f.Add([]byte("id: x\nname: y\nseverity: Low\nquery: let KnownSafeNetworks = datatable(['n']: string, network: string) [\"a\", \"10.0.0.0/8\"];\n"))
	f.Add([]byte("id: x\nname: y\nseverity: Low\nquery: q\nincidentConfiguration:\n  groupingConfiguration:\n    lookbackDuration: P1DT2H30M\n    matchingMethod: Selected\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Load("fuzz.yaml", data)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *rule.Error: %v", err, err)
			}
			return
		}
		if r.ID == "" || r.Name == "" || r.Query == "" {
			t.Fatalf("accepted a rule without id, name or query: %+v", r)
		}
		if r.QueryPeriod < 0 || r.QueryFrequency < 0 || r.IncidentConfiguration.Grouping.LookbackDuration <= 0 {
			t.Fatalf("bad durations: %+v", r)
		}
		if _, err := r.SafeList(nil, nil, SafeListOptions{}); err != nil {
			t.Fatalf("accepted lists that NewSafeList rejects: %v", err)
		}
	})
}
