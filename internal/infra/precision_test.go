package infra

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/precision"
)

// Both templates allow every precision mode the code has (the pipeline
// applies them all), no more: Bicep's @allowed list and Terraform's
// validation name the same modes.
func TestPrecisionModesDeployable(t *testing.T) {
	var want []string
	for _, m := range precision.Modes {
		want = append(want, m.String())
	}
	bicep, err := os.ReadFile(filepath.Join(bicepDir, "main.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`@allowed\(\[([^\]]*)\]\)\s*param precision string`).FindSubmatch(bicep)
	if m == nil {
		t.Fatal("main.bicep: no @allowed list on param precision")
	}
	tf, err := os.ReadFile(filepath.Join(terraformDir, "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	n := regexp.MustCompile(`condition\s*=\s*contains\(\[([^\]]*)\],\s*var\.precision\)`).FindSubmatch(tf)
	if n == nil {
		t.Fatal("variables.tf: no contains([...], var.precision) validation")
	}
	for name, list := range map[string][]byte{"main.bicep": m[1], "variables.tf": n[1]} {
		var got []string
		for _, v := range strings.Split(string(list), ",") {
			got = append(got, strings.Trim(strings.TrimSpace(v), `'"`))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s allows precision %v, the code has %v", name, got, want)
		}
	}
}
