package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// sentinelRules is the corpus of official rules (public Azure-Sentinel
// content) that CI lays out beside the clone, read-only; it is not copied
// into the repository.
const sentinelRules = "../shared/sentinel-rules"

func lintJSON(t *testing.T, args ...string) lintReport {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"rule", "lint", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep lintReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep
}

func count(h []lintCount, key string) int {
	for _, c := range h {
		if c.Key == key {
			return c.Count
		}
	}
	return 0
}

// TestRuleLintSentinelCorpus lints the official Entra rules and the bundled
// rule. The counts are what the compiler refuses today: a change to them is
// either progress (update the counts and the README's lint report) or a
// regression.
func TestRuleLintSentinelCorpus(t *testing.T) {
	if _, err := os.Stat(sentinelRules); err != nil {
		t.Skipf("no rule corpus at %s (CI lays shared/ out beside the clone): %v", sentinelRules, err)
	}
	var yamls []string
	err := filepath.WalkDir(sentinelRules, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			yamls = append(yamls, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const bundled = "internal/rule/token-theft-pivot.yaml"
	rep := lintJSON(t, sentinelRules, bundled)

	// Every rule file is classified, each once, with a reason when refused.
	if len(yamls) != 61 {
		t.Errorf("the corpus holds %d rule files, want 61 (has it changed? see its README)", len(yamls))
	}
	var files []string
	for _, r := range rep.Rules {
		files = append(files, r.File)
	}
	slices.Sort(yamls)
	if want := append(slices.Clone(yamls), bundled); !slices.Equal(slices.Sorted(slices.Values(files)), slices.Sorted(slices.Values(want))) {
		t.Errorf("classified files differ from the corpus:\ngot  %q\nwant %q", files, want)
	}
	if rep.Skipped != 0 {
		t.Errorf("skipped %d files: every corpus file is an analytics rule", rep.Skipped)
	}
	byFile := map[string]lintResult{}
	for _, r := range rep.Rules {
		byFile[r.File] = r
		switch r.Status {
		case lintSupported:
			if r.Reason != "" || r.Error != "" {
				t.Errorf("%s: supported with a reason %q / error %q", r.File, r.Reason, r.Error)
			}
		case lintRefused:
			if r.Reason == "" || r.Op == "" || r.Line <= 0 || r.QueryLine <= 0 || r.ID == "" {
				t.Errorf("%s: refusal without reason, operator, line or id: %+v", r.File, r)
			}
		default:
			t.Errorf("%s: status %q: every corpus rule's query should be classified", r.File, r.Status)
		}
	}
	if got := byFile[bundled]; got.Status != lintSupported || got.Name != "Interactive to Non-Interactive Token Theft Pivot" {
		t.Errorf("the bundled rule: %+v, want supported", got)
	}

	// The refusal histogram's top entries: the official rules' first
	// obstacles (issue 24): the aadFunc(tableName) let every sign-in rule
	// opens with, mv-apply/mv-expand over AuditLogs' dynamic columns, and
	// AuditLogs itself.
	for _, w := range []struct {
		key  string
		n    int
		hist []lintCount
	}{
		{lintSupported, 1, rep.Status},
		{lintRefused, 61, rep.Status},
		{"user-defined function", 19, rep.Reasons},
		{"operator mv-apply", 11, rep.Reasons},
		{"operator mv-expand", 13, rep.Reasons},
		{"operator mvexpand", 1, rep.Reasons},
		{"table AuditLogs", 4, rep.Reasons},
		{"operator project-reorder", 3, rep.Reasons},
		{"operator summarize", 4, rep.Reasons},
		{"function ingestion_time()", 1, rep.Reasons},
		{"let", 19, rep.Ops},
		{"SigninLogs", 40, rep.Tables},
		{"AuditLogs", 27, rep.Tables},
		{"AADNonInteractiveUserSignInLogs", 24, rep.Tables},
		// What the rules need past their first refusal: operator 3 of
		// issue 24 (summarize), the join, union of the sign-in tables.
		{"summarize", 39, rep.Used},
		{"join", 30, rep.Used}, // 29 official rules and the bundled one
		{"union", 24, rep.Used},
		{"mv-expand", 20, rep.Used},
		{"mv-apply", 16, rep.Used},
		{"make-series", 4, rep.Used},
	} {
		if got := count(w.hist, w.key); got != w.n {
			t.Errorf("%s: %d, want %d", w.key, got, w.n)
		}
	}
	if rep.Reasons[0].Key != "user-defined function" {
		t.Errorf("top refusal reason %v, want user-defined function", rep.Reasons[0])
	}

	// A commented-out operator is not used: this rule's only summarize and
	// this one's only join are behind //.
	for file, op := range map[string]string{
		"Solutions/Microsoft Entra ID/Analytic Rules/UserAssignedPrivilegedRole.yaml": "summarize",
		"Solutions/Microsoft Entra ID/Analytic Rules/BypassCondAccessRule.yaml":       "join",
	} {
		r := byFile[filepath.Join(sentinelRules, file)]
		if slices.Contains(r.Operators, op) || !slices.Contains(r.Operators, "where") {
			t.Errorf("%s: operators %q: want where, and not the commented-out %s", file, r.Operators, op)
		}
	}

	// The line a refusal names is the file's line holding what is refused.
	for _, r := range rep.Rules {
		op, isOp := strings.CutPrefix(r.Reason, "operator ")
		if fn, ok := strings.CutPrefix(r.Op, "let "); ok && r.Reason == "user-defined function" {
			op, isOp = "let "+fn, true
		}
		if !isOp {
			continue
		}
		if l := fileLine(t, r.File, r.Line); !strings.Contains(l, op) {
			t.Errorf("%s:%d is %q, which does not hold %q", r.File, r.Line, l, op)
		}
	}

	// The tables each rule names agree with the corpus README's table
	// column, written independently when the corpus was gathered.
	readme := readmeTables(t, filepath.Join(sentinelRules, "README.md"))
	if len(readme) != 61 {
		t.Fatalf("README lists %d rules, want 61", len(readme))
	}
	for path, want := range readme {
		got, ok := byFile[filepath.Join(sentinelRules, path)]
		if !ok {
			t.Errorf("%s: in the README, not linted", path)
			continue
		}
		if !slices.Equal(got.Tables, want) {
			t.Errorf("%s: tables %q, README says %q", path, got.Tables, want)
		}
	}
}

func fileLine(t *testing.T, file string, n int) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// readmeTables reads the corpus README's rows: | `path` | id | name | tables | ...
func readmeTables(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), " | ")
		if !strings.HasPrefix(sc.Text(), "| `") || len(cells) < 4 {
			continue
		}
		path := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		var tables []string
		for tb := range strings.SplitSeq(cells[3], ",") {
			tb, _, _ = strings.Cut(strings.TrimSpace(tb), " (") // "_Im_WebSession (ASIM fn)"
			tables = append(tables, tb)
		}
		slices.Sort(tables)
		out[path] = tables
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lintReasons are the classification of each of rule check's refusals.
var lintReasons = map[string]string{
	"make-series":                      "operator make-series",
	"a different table":                "table SecurityEvent",
	"no join":                          "no join",
	"trailing comma in dynamic([...])": "syntax error (let)",
	"summarize":                        "operator summarize",
	"join kind left to KQL's default (innerunique)": "join shape",
	"a watchlist":                      "function source _GetWatchlist",
	"no time window":                   "join shape",
	"unknown operator (syntax)":        "operator orderby",
	"descending order":                 "result shape (order by)",
	"union of three tables":            "union shape",
	"union withsource=":                "union withsource=",
	"join kind=leftanti":               "join shape",
	"mv-expand":                        "operator mv-expand",
	"member access on a string column": "dynamic column",
	"a column not read":                "column RiskState",
	"join kind=leftanti on a query":    "join shape",
	"summarize after the join with an unsupported aggregate": "operator summarize",
	"summarize before the join":                              "operator summarize",
}

// TestRuleLintClassifies lints a folder of the bundled rule's refused edits
// (rule check's cases) beside files lint must pass over or skip.
func TestRuleLintClassifies(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "nested", "deeper")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := map[string]lintResult{}
	for k, tt := range ruleRefusals {
		reason, ok := lintReasons[tt.name]
		if !ok {
			t.Fatalf("no lint reason for rule check's case %q", tt.name)
		}
		p := write(filepath.Join("nested", "deeper", "r"+fmtInt(k)+".yaml"), refusedYAML(t, tt.old, tt.new))
		want[p] = lintResult{Status: lintRefused, Reason: reason, Op: tt.op}
	}
	want[write("bundled.yml", string(rule.DefaultYAML()))] = lintResult{Status: lintSupported}
	// A rule whose YAML is broken (the query block not indented): invalid.
	want[write("broken.yaml", "id: x\nname: y\nseverity: Low\nquery: |\n  SigninLogs\n| take 1\n")] = lintResult{Status: lintInvalid, Reason: "invalid YAML"}
	// A rule whose query runs but whose other fields do not load: invalid.
	bad := strings.Replace(string(rule.DefaultYAML()), "severity: High", "severity: Dire", 1)
	if bad == string(rule.DefaultYAML()) {
		t.Fatal("no severity: High in the bundled rule")
	}
	want[write("badseverity.yaml", bad)] = lintResult{Status: lintInvalid, Reason: "rule file: severity"}
	// A bad field and a refused query: the query's refusal is the result.
	both := strings.Replace(refusedYAML(t, "  | order by UserPrincipalName asc, InteractiveTime asc", "  | summarize P = percentile(TimeSinceInteractive, 90) by UserPrincipalName"), "severity: High", "severity: Dire", 1)
	want[write("both.yaml", both)] = lintResult{Status: lintRefused, Reason: "operator summarize", Op: "summarize"}
	// Not rules: skipped and counted; not YAML: passed over.
	write("workbook.yaml", "name: a workbook\nitems: [1, 2]\n")
	write("list.yaml", "- a\n- b\n")
	write("notes.txt", "query: not yaml by name\n")

	rep := lintJSON(t, dir)
	if rep.Skipped != 2 {
		t.Errorf("skipped %d, want 2 (workbook.yaml, list.yaml)", rep.Skipped)
	}
	if len(rep.Rules) != len(want) {
		t.Errorf("%d rules, want %d", len(rep.Rules), len(want))
	}
	for _, r := range rep.Rules {
		w, ok := want[r.File]
		if !ok {
			t.Errorf("linted %s", r.File)
			continue
		}
		if r.Status != w.Status || r.Reason != w.Reason || r.Op != w.Op {
			t.Errorf("%s: %s / %q / op %q, want %s / %q / op %q (%s)", filepath.Base(r.File), r.Status, r.Reason, r.Op, w.Status, w.Reason, w.Op, r.Error)
		}
		if r.Status == lintRefused && r.Line <= 0 {
			t.Errorf("%s: no line", r.File)
		}
	}
	if got := count(rep.Status, lintRefused); got != len(ruleRefusals)+1 {
		t.Errorf("refused %d, want %d", got, len(ruleRefusals)+1)
	}
	if got := count(rep.Reasons, "join shape"); got != 4 {
		t.Errorf("join shape %d, want 4", got)
	}
}

func TestRuleLintUsage(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-rules")
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string // in stderr (exit 2) or stdout (exit 0)
	}{
		{"a missing path is named", []string{"rule", "lint", "internal/rule/token-theft-pivot.yaml", missing}, 2, missing},
		{"no path", []string{"rule", "lint"}, 2, "name at least one"},
		{"bad format", []string{"rule", "lint", "--format", "xml", dir}, 2, `"xml"`},
		{"an empty folder", []string{"rule", "lint", dir}, 0, "0 rule(s); 0 other YAML file(s) skipped"},
		{"table format", []string{"rule", "lint", "internal/rule"}, 0, "by first refusal reason:"},
		{"help", []string{"rule", "-h"}, 0, ""},
		{"check still works", []string{"rule", "check", "internal/rule/token-theft-pivot.yaml"}, 0, "compiles"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tt.code, out, errs)
			}
			got := out
			if code != 0 {
				got = errs
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, got)
			}
		})
	}
	// The table lists the bundled rule as supported.
	_, out, _ := runCLI(t, "rule", "lint", "internal/rule/token-theft-pivot.yaml")
	if !strings.Contains(out, "supported") || !strings.Contains(out, "   1  supported") {
		t.Errorf("table:\n%s", out)
	}
}

// TestOfficialRulesParse: every official rule that Microsoft's parser
// accepts (all 61: the corpus is deployed content) parses in internal/kql:
// the compiler may refuse it by operator, function, table or column, but
// never as a syntax error, which on valid KQL is a parser bug. Lint puts
// none of them under a syntax reason either.
func TestOfficialRulesParse(t *testing.T) {
	if _, err := os.Stat(sentinelRules); err != nil {
		t.Skipf("no rule corpus at %s (CI lays shared/ out beside the clone): %v", sentinelRules, err)
	}
	rep := lintJSON(t, sentinelRules)
	var queries, files []string
	for _, r := range rep.Rules {
		data, err := os.ReadFile(r.File)
		if err != nil {
			t.Fatal(err)
		}
		var y struct {
			Query string `yaml:"query"`
		}
		if err := yaml.Unmarshal(data, &y); err != nil {
			t.Fatal(err)
		}
		queries, files = append(queries, y.Query), append(files, r.File)
		if strings.HasPrefix(r.Reason, "syntax") {
			t.Errorf("%s: lint reason %q: %s", r.File, r.Reason, r.Error)
		}
	}
	if len(queries) != 61 {
		t.Errorf("%d rules, want 61", len(queries))
	}
	accepted := 0
	for k, errs := range msParse(t, queries) {
		if len(errs) > 0 {
			t.Errorf("%s: Microsoft's parser finds syntax errors: %q", files[k], errs)
			continue
		}
		accepted++
		_, err := kql.Compile(queries[k])
		var ke *kql.Error
		if errors.As(err, &ke) && ke.Syntax {
			t.Errorf("%s: valid KQL to Microsoft's parser, a syntax error to ours: %v", files[k], ke)
		}
	}
	if accepted != 61 {
		t.Errorf("Microsoft's parser accepts %d of 61", accepted)
	}
}
