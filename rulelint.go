package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// runRuleCommand dispatches `tokenpivot rule check|lint`.
func runRuleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "lint" {
		return runRuleLint(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, "usage: tokenpivot rule check FILE")
		fmt.Fprintln(stderr, "       tokenpivot rule lint [--format table|json] PATH...")
		return flag.ErrHelp
	}
	return runRule(ctx, args, stdout, stderr)
}

// Lint statuses. A refusal is a result, not an error: lint exits 0.
const (
	lintSupported = "supported" // compiles to a plan the engine runs
	lintRefused   = "refused"   // the query is outside what the engine runs
	lintInvalid   = "invalid"   // a rule (it has a query:) that is not valid YAML, or whose query runs but another field does not load
)

// lintResult is one rule file's classification.
type lintResult struct {
	File   string `json:"file"`
	ID     string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	// Reason classifies the first refusal: "operator summarize", "table
	// AuditLogs", "function ingestion_time()", "no join", "syntax error", ...
	Reason string `json:"reason,omitempty"`
	// Op is the operator or clause the compiler stopped at.
	Op string `json:"op,omitempty"`
	// Line is the line in the file (0 when unknown); QueryLine the line in the query.
	Line      int    `json:"line,omitempty"`
	QueryLine int    `json:"queryLine,omitempty"`
	Error     string `json:"error,omitempty"`
	// Tables are the tables (and table-valued sources) the query names.
	Tables []string `json:"tables"`
	// Operators are the tabular operators the query uses anywhere (after a
	// '|', and union): what the whole rule needs, past its first refusal.
	Operators []string `json:"operators"`
}

// lintCount is one entry of a histogram.
type lintCount struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

type lintReport struct {
	Rules []lintResult `json:"rules"`
	// Skipped counts YAML files with no query: field (not analytics rules).
	Skipped  int         `json:"skippedNonRuleYAML"`
	Status   []lintCount `json:"byStatus"`
	Reasons  []lintCount `json:"byReason"`
	Ops      []lintCount `json:"byOperator"`
	Tables   []lintCount `json:"byTable"`
	Used     []lintCount `json:"byOperatorUsed"`
	Warnings []string    `json:"warnings,omitempty"`
}

// runRuleLint is `tokenpivot rule lint PATH...`: every Sentinel analytics
// rule YAML under the paths (a file with a query: field), classified as
// supported or refused with the first thing the compiler refuses, and the
// coverage over them. Refusals are results (exit 0); an unreadable path is
// bad usage (exit 2).
func runRuleLint(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rule lint", stderr, "[--format table|json] PATH...")
	format := fs.String("format", "table", "output format: table or json")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	if len(paths) == 0 {
		return usagef("name at least one rule YAML file or folder")
	}
	rep, err := lintPaths(paths)
	if err != nil {
		return usageError{err}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.writeTable(stdout)
}

// lintPaths walks the paths. A path that cannot be read is an error naming
// it; a file in a walked folder that is not YAML is passed over.
func lintPaths(paths []string) (*lintReport, error) {
	rep := &lintReport{Rules: []lintResult{}}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p) // named explicitly: linted whatever its extension
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isYAMLName(path) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		res, ok := lintFile(f, data)
		if !ok {
			rep.Skipped++
			continue
		}
		rep.Rules = append(rep.Rules, res)
	}
	rep.summarise()
	return rep, nil
}

func isYAMLName(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

// lintFile classifies one file; ok is false for YAML that is not an
// analytics rule (no top-level query: field).
func lintFile(name string, data []byte) (res lintResult, ok bool) {
	res = lintResult{File: name, Tables: []string{}, Operators: []string{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// Not readable as YAML: a rule only if it has a query: key at all.
		if !bytes.Contains(data, []byte("\nquery:")) && !bytes.HasPrefix(data, []byte("query:")) {
			return res, false
		}
		res.Status, res.Reason, res.Error = lintInvalid, "invalid YAML", err.Error()
		return res, true
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return res, false
	}
	doc := root.Content[0]
	var query *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		switch k, v := doc.Content[i].Value, doc.Content[i+1]; k {
		case "query":
			query = v
		case "id":
			res.ID = strings.TrimSpace(v.Value)
		case "name":
			res.Name = strings.TrimSpace(v.Value)
		}
	}
	if query == nil {
		return res, false
	}
	if query.Kind != yaml.ScalarNode {
		res.Status, res.Reason, res.Error, res.Line = lintInvalid, "rule file: query", "query: is not a string", query.Line
		return res, true
	}
	res.Tables, res.Operators = queryTables(query.Value)
	_, err := rule.Load(name, data)
	if err == nil {
		res.Status = lintSupported
		return res, true
	}
	res.Error = err.Error()
	var re *rule.Error
	if errors.As(err, &re) {
		res.Line = re.Line
	}
	var ke *kql.Error
	if !errors.As(err, &ke) {
		// A field other than the query is wrong (for this loader). What
		// matters for coverage is still whether the query would run, so it
		// is compiled on its own: a refusal there is the rule's result.
		res.Status, res.Reason = lintInvalid, "rule file"
		if re != nil && re.Field != "" {
			res.Reason = "rule file: " + re.Field
		}
		if _, qerr := kql.Compile(query.Value); !errors.As(qerr, &ke) {
			return res, true
		}
		res.Error += "; and the query: " + ke.Error()
		res.Line = 0
		if query.Style&yaml.LiteralStyle != 0 {
			res.Line = query.Line + ke.Pos.Line
		}
	}
	res.Status, res.Op, res.QueryLine = lintRefused, ke.Op, ke.Pos.Line
	res.Reason = refusalReason(ke)
	return res, true
}

var (
	reFunction   = regexp.MustCompile(`^the function (\S+)\(\) is not supported`)
	reDynFunc    = regexp.MustCompile(`^(\S+)\(\): no dynamic column`)
	reTabular    = regexp.MustCompile(`^(\S+)\(\.\.\.\) as a tabular source`)
	reColumn     = regexp.MustCompile(`^column (\S+): no such column`)
	reTable      = regexp.MustCompile(`^table (\S+): this engine reads only`)
	reStatement  = regexp.MustCompile(`^(\S+) statements are not supported`)
	reBinaryOp   = regexp.MustCompile(`^operator (.+) is not supported$`)
	reUnknownOp  = regexp.MustCompile(`^unknown operator "([^"]+)"`)
	reEvaluate   = regexp.MustCompile(`^the (\S+) plugin is not supported`)
	reUnknownArg = regexp.MustCompile(`^unknown name (\S+)`)
	reParameter  = regexp.MustCompile(`^(union|join) parameter (\S+) is not supported`)
	reInCall     = regexp.MustCompile(` in (\w+)\(\.\.\.\)`)
)

// refusalReason classifies a compiler refusal into a histogram key: what
// the engine would need to run the rule.
func refusalReason(ke *kql.Error) string {
	m := ke.Msg
	if ke.Syntax {
		// Mostly KQL this parser does not know yet (an operator or syntax),
		// not broken rules: Microsoft's parser is the judge of that.
		if s := reUnknownOp.FindStringSubmatch(m); s != nil {
			return "operator " + s[1]
		}
		if s := reInCall.FindStringSubmatch(m); s != nil {
			return "syntax in " + s[1] + "()" // e.g. a query as materialize()'s argument
		}
		return "syntax error (" + opKind(ke.Op) + ")"
	}
	switch {
	case reTable.MatchString(m):
		return "table " + reTable.FindStringSubmatch(m)[1]
	case reParameter.MatchString(m):
		s := reParameter.FindStringSubmatch(m)
		return s[1] + " " + s[2] + "="
	case reTabular.MatchString(m):
		return "function source " + reTabular.FindStringSubmatch(m)[1]
	case reFunction.MatchString(m):
		return "function " + reFunction.FindStringSubmatch(m)[1] + "()"
	case reDynFunc.MatchString(m), strings.HasPrefix(m, "member access"):
		return "dynamic column"
	case reColumn.MatchString(m):
		return "column " + reColumn.FindStringSubmatch(m)[1]
	case reStatement.MatchString(m):
		return "statement " + reStatement.FindStringSubmatch(m)[1]
	case reBinaryOp.MatchString(m):
		return "operator " + reBinaryOp.FindStringSubmatch(m)[1]
	case reEvaluate.MatchString(m):
		return "plugin " + reEvaluate.FindStringSubmatch(m)[1]
	case reUnknownArg.MatchString(m):
		return "unknown name"
	case strings.HasPrefix(m, "user-defined functions"):
		return "user-defined function"
	case strings.Contains(m, "has no join"):
		return "no join"
	case strings.HasSuffix(m, "operator is not supported by this engine"),
		strings.HasPrefix(m, "summarize is not supported"), strings.HasPrefix(m, "union is not supported"),
		ke.Op == "summarize": // the summarize's shape or aggregates (before the join, percentile, ...)
		return "operator " + ke.Op
	case ke.Op == "join" || ke.Op == "union":
		return ke.Op + " shape"
	case ke.Op == "project" || ke.Op == "order by" || ke.Op == "where":
		return "result shape (" + ke.Op + ")"
	}
	return "other (" + ke.Op + ")"
}

// knownTables are the Log Analytics tables the linter names in its
// per-table count: the Entra ID tables (those the diagnostic settings
// archive) and the other tables the Entra rules correlate with. A query's
// table is found by name, outside comments, as an identifier or as the
// string given to table() or a function (aadFunc("SigninLogs")).
var knownTables = map[string]bool{
	"SigninLogs": true, "AADNonInteractiveUserSignInLogs": true, "AADServicePrincipalSignInLogs": true,
	"AADManagedIdentitySignInLogs": true, "AADProvisioningLogs": true, "AADRiskyUsers": true,
	"AADUserRiskEvents": true, "AADRiskyServicePrincipals": true, "AADServicePrincipalRiskEvents": true,
	"MicrosoftGraphActivityLogs": true, "AuditLogs": true,
	"IdentityInfo": true, "BehaviorAnalytics": true, "DeviceInfo": true, "ThreatIntelIndicators": true,
	"ThreatIntelligenceIndicator": true, "AWSCloudTrail": true, "AzureDiagnostics": true,
	"CommonSecurityLog": true, "OfficeActivity": true, "SecurityEvent": true, "Syslog": true,
	"W3CIISLog": true, "WindowsEvent": true, "AzureActivity": true, "SecurityAlert": true,
	"SecurityIncident": true, "Heartbeat": true, "DeviceLogonEvents": true, "DeviceEvents": true,
	"IdentityLogonEvents": true, "CloudAppEvents": true, "EmailEvents": true,
}

var (
	kqlComment = regexp.MustCompile(`//[^\n]*`)
	kqlString  = regexp.MustCompile(`@?"(?:[^"\\\n]|\\.)*"|@?'(?:[^'\\\n]|\\.)*'`)
	kqlIdent   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
)

// queryTables returns the tables a query names, sorted: known tables,
// ASIM parsers (_Im_*, _ASim_*) and externaldata, outside comments; and
// the tabular operators it uses (the word after each '|', and union).
func queryTables(q string) (tables, ops []string) {
	seen := map[string]bool{}
	// Strings first, so a // inside a string (a URL) is not a comment; then
	// comments; then identifiers of what is left.
	var rest strings.Builder
	last := 0
	for _, loc := range kqlString.FindAllStringIndex(q, -1) {
		before := q[last:loc[0]]
		if i := strings.LastIndex(before, "\n"); strings.Contains(before[max(i, 0):], "//") {
			continue // the quote is inside a comment
		}
		rest.WriteString(before)
		rest.WriteString(" ")
		s := strings.Trim(strings.TrimPrefix(q[loc[0]:loc[1]], "@"), `"'`)
		if knownTables[s] {
			seen[s] = true
		}
		last = loc[1]
	}
	rest.WriteString(q[last:])
	code := kqlComment.ReplaceAllString(rest.String(), " ")
	for _, id := range kqlIdent.FindAllString(code, -1) {
		if knownTables[id] || id == "externaldata" || strings.HasPrefix(id, "_Im_") || strings.HasPrefix(id, "_ASim_") {
			seen[id] = true
		}
	}
	used := map[string]bool{}
	for _, m := range kqlOperator.FindAllStringSubmatch(code, -1) {
		op := m[1] + m[3]
		if m[2] != "" && (op == "order" || op == "sort") {
			op += " by"
		}
		used[op] = true
	}
	return sortedKeys(seen), sortedKeys(used)
}

var kqlOperator = regexp.MustCompile(`(?:\|\s*([a-z][a-z-]*)(?:\s+(by)\b)?|\b(union)\b)`)

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// opKind is an operator without the name a let gives: "let aadFunc" is "let".
func opKind(op string) string {
	if strings.HasPrefix(op, "let ") {
		return "let"
	}
	return op
}

func (rep *lintReport) summarise() {
	status, reasons, ops, tables, used := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, r := range rep.Rules {
		status[r.Status]++
		if r.Reason != "" {
			reasons[r.Reason]++
		}
		if r.Op != "" {
			ops[opKind(r.Op)]++
		}
		for _, t := range r.Tables {
			tables[t]++
		}
		for _, o := range r.Operators {
			used[o]++
		}
	}
	rep.Status, rep.Reasons, rep.Ops, rep.Tables = histogram(status), histogram(reasons), histogram(ops), histogram(tables)
	rep.Used = histogram(used)
}

// histogram sorts by count, most first, then by key.
func histogram(m map[string]int) []lintCount {
	out := make([]lintCount, 0, len(m))
	for k, n := range m {
		out = append(out, lintCount{k, n})
	}
	slices.SortFunc(out, func(a, b lintCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key))
	})
	return out
}

func (rep *lintReport) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tLINE\tREASON\tTABLES\tFILE")
	for _, r := range rep.Rules {
		line := "-"
		if r.Line > 0 {
			line = fmt.Sprint(r.Line)
		}
		reason := r.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Status, line, reason, strings.Join(r.Tables, ","), r.File)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d rule(s); %d other YAML file(s) skipped (no query: field)\n", len(rep.Rules), rep.Skipped)
	for _, h := range []struct {
		title string
		c     []lintCount
	}{{"by status", rep.Status}, {"by first refusal reason", rep.Reasons}, {"by operator refused at", rep.Ops}, {"by table named", rep.Tables}, {"rules using each operator", rep.Used}} {
		fmt.Fprintf(w, "\n%s:\n", h.title)
		for _, c := range h.c {
			fmt.Fprintf(w, "  %4d  %s\n", c.Count, c.Key)
		}
	}
	return nil
}
