package infra

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The Bicep compiler rejects a template whose for-expressions (BCP178) or
// resource names, locations and the like (BCP120) need a value known only
// while the deployment runs: `bicep build` fails, so `az deployment` and
// `azd up` fail before anything is sent. CI runs ../shared/infracheck's
// bicepcheck, which models these rules as the compiler does
// (scripts/infracheck); this is the project's own, smaller guard of the same
// rules on the properties the templates set, so that `go test` catches the
// three forms that once stopped the deployment even where the checker is not
// built.
//
// A value is known at the start when it reads only literals, parameters,
// functions of them, and a resource's or module's id, name, type or
// apiVersion. A resource's other properties (properties, location of an
// existing resource, identity) and a module's outputs are known only during
// the deployment. Variables are followed.

var reSymbolRef = regexp.MustCompile(`\b([A-Za-z_]\w*)(?:\[[^\]]*\])?(?:\.(\w+))?`)

// startOfDeploymentProps are the properties of a resource or module that
// Bicep can calculate at the start of the deployment.
var startOfDeploymentProps = map[string]bool{"id": true, "name": true, "type": true, "apiVersion": true}

// runtimeRefs returns the references in expr (variables followed) that are
// known only during the deployment.
func (f *bicepFile) runtimeRefs(expr string, seen map[string]bool) []string {
	var out []string
	// String literals may contain words that look like symbols; only their
	// interpolations are expressions.
	for _, m := range reSymbolRef.FindAllStringSubmatch(stripStringLiterals(expr), -1) {
		name, prop := m[1], m[2]
		_, isRes := f.resources[name]
		_, isMod := f.modules[name]
		switch {
		case isRes || isMod:
			if prop != "" && !startOfDeploymentProps[prop] {
				out = append(out, name+"."+prop)
			}
		case f.vars[name] != "" && !seen[name]:
			seen[name] = true
			for _, r := range f.runtimeRefs(f.vars[name], seen) {
				out = append(out, name+" -> "+r)
			}
		}
	}
	return out
}

// stripStringLiterals blanks '...' literals but keeps their ${...}
// interpolations.
func stripStringLiterals(s string) string {
	var b strings.Builder
	in, depth := false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case !in && c == '\'':
			in = true
			b.WriteByte(' ')
		case in && depth == 0 && c == '\\' && i+1 < len(s):
			i++
			b.WriteString("  ")
		case in && depth == 0 && c == '\'':
			in = false
			b.WriteByte(' ')
		case in && depth == 0 && c == '$' && i+1 < len(s) && s[i+1] == '{':
			depth = 1
			i++
			b.WriteString(" (")
		case in && depth > 0:
			if c == '{' {
				depth++
			} else if c == '}' {
				depth--
				if depth == 0 {
					b.WriteByte(')')
					continue
				}
			}
			b.WriteByte(c)
		case in:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var reForIn = regexp.MustCompile(`\[\s*for\s+(?:\w+|\(\s*\w+\s*,\s*\w+\s*\))\s+in\s+`)

// deployTimeProblems lists, for the templates under infra, every
// for-expression and every resource name/location/scope/parent that needs a
// value known only during the deployment.
func deployTimeProblems(t *testing.T, infra string) []string {
	t.Helper()
	files := map[string]*bicepFile{}
	loadBicep(t, filepath.Join(infra, "bicep", "main.bicep"), files)
	var out []string
	for _, f := range files {
		rel, _ := filepath.Rel(infra, f.path)
		for _, m := range reForIn.FindAllStringIndex(f.text, -1) {
			// The iterated expression ends at the loop's top-level ':'.
			depth, end := 0, m[1]
			for ; end < len(f.text); end++ {
				c := f.text[end]
				if c == '(' || c == '[' || c == '{' {
					depth++
				} else if c == ')' || c == ']' || c == '}' {
					depth--
				} else if c == ':' && depth == 0 {
					break
				}
			}
			expr := f.text[m[1]:end]
			if refs := f.runtimeRefs(expr, map[string]bool{}); len(refs) > 0 {
				out = append(out, fmt.Sprintf("%s:%d: for-expression over %q reads %s, known only during the deployment (BCP178)",
					rel, lineOf(f.text, m[0]), strings.TrimSpace(expr), strings.Join(refs, ", ")))
			}
		}
		for _, r := range f.resources {
			top := props(r.body)
			for _, key := range []string{"name", "location", "scope", "parent", "kind"} {
				expr, ok := top[key]
				if !ok {
					continue
				}
				if refs := f.runtimeRefs(expr, map[string]bool{}); len(refs) > 0 {
					out = append(out, fmt.Sprintf("%s:%d: %s.%s = %s reads %s, known only during the deployment (BCP120)",
						rel, r.line, r.symbol, key, expr, strings.Join(refs, ", ")))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestStartOfDeploymentValues(t *testing.T) {
	for _, p := range deployTimeProblems(t, filepath.Join(repoRoot, "infra")) {
		t.Error(p)
	}
	// The three forms that stopped `bicep build` are each caught.
	tests := []struct{ name, file, old, new, want string }{
		{"app settings in a for-expression", "bicep/main.bicep",
			"      appSettings: map(filter(items(appSettings), s => !empty(s.value)), s => {\n        name: s.key\n        value: s.value\n      })\n",
			"      appSettings: [for setting in filter(items(appSettings), s => !empty(s.value)): {\n        name: setting.key\n        value: setting.value\n      }]\n",
			"for-expression over \"filter(items(appSettings), s => !empty(s.value))\" reads appSettings -> storage.properties"},
		{"data collection rule in the workspace's region, read in place", "bicep/modules/alerts-ingestion.bicep",
			"resource alertsIngestionRule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {\n  name: name\n  location: location\n",
			"resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {\n  name: last(split(workspaceResourceId, '/'))\n}\n\nresource alertsIngestionRule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {\n  name: name\n  location: workspace.location\n",
			"alertsIngestionRule.location = workspace.location reads workspace.location"},
		{"system topic in the account's region, read in place", "bicep/modules/export-access.bicep",
			"  name: systemTopicName\n  location: location\n", "  name: systemTopicName\n  location: exportAccount.location\n",
			"exportTopic.location = exportAccount.location reads exportAccount.location"},
		{"through a variable", "bicep/main.bicep",
			"  name: 'log-tokenpivot-${nameSuffix}'\n  location: location\n",
			"  name: 'log-tokenpivot-${nameSuffix}'\n  location: exportAccountLocation\n",
			"logAnalytics.location = exportAccountLocation reads exportAccountLocation -> exportAccount.outputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infra := copyInfra(t)
			plant(t, filepath.Join(infra, tt.file), tt.old, tt.new)
			got := strings.Join(deployTimeProblems(t, infra), "\n")
			if !strings.Contains(got, tt.want) {
				t.Errorf("not reported (want %q):\n%s", tt.want, got)
			}
		})
	}
}
