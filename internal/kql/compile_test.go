package kql_test

import (
	"os"
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
