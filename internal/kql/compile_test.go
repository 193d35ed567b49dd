package kql_test

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
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
