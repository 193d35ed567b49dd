package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// msParse runs Microsoft's KQL parser (tools/kqlcheck) over queries and
// returns each one's syntax errors.
func msParse(t *testing.T, queries []string) [][]string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: Microsoft's parser needs it")
	}
	dir := filepath.Join("tools", "kqlcheck")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@kusto", "language-service-next")); err != nil {
		t.Fatalf("Microsoft's KQL parser is not installed: run npm ci in %s", dir)
	}
	var in bytes.Buffer
	for _, q := range queries {
		b, _ := json.Marshal(q)
		in.Write(b)
		in.WriteByte('\n')
	}
	cmd := exec.Command("node", "check.js")
	cmd.Dir = dir
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kqlcheck: %v", err)
	}
	var res [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct{ Errors []string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		res = append(res, r.Errors)
	}
	if len(res) != len(queries) {
		t.Fatalf("kqlcheck answered %d of %d queries", len(res), len(queries))
	}
	return res
}

// TestRulesAgainstMicrosoftsParser: every rule the compiler accepts (the
// bundled one and each tuned variant) is valid KQL to Microsoft's parser;
// every rule it refuses for syntax is not, and every rule it refuses as
// unsupported is (so that the message says the right thing).
func TestRulesAgainstMicrosoftsParser(t *testing.T) {
	type item struct {
		name   string
		yaml   string
		accept bool
		syntax bool
	}
	var items []item
	for _, v := range tunedVariants() {
		y := string(rule.DefaultYAML())
		y = strings.Replace(y, `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50" // Example VPN egress IP 1`, 1)
		for k := 0; k+1 < len(v.edits); k += 2 {
			y = strings.Replace(y, v.edits[k], v.edits[k+1], 1)
		}
		items = append(items, item{name: v.name, yaml: y, accept: true})
	}
	for _, r := range ruleRefusals {
		items = append(items, item{name: r.name, yaml: refusedYAML(t, r.old, r.new), syntax: r.syntax})
	}
	var queries []string
	for _, it := range items {
		var raw struct {
			Query string `yaml:"query"`
		}
		r, err := rule.Load(it.name, []byte(it.yaml))
		if it.accept && err != nil {
			t.Fatalf("%s: refused: %v", it.name, err)
		}
		if !it.accept && err == nil {
			t.Fatalf("%s: accepted", it.name)
		}
		if r != nil {
			raw.Query = r.Query
		} else {
			raw.Query = queryOf(t, it.yaml)
		}
		queries = append(queries, raw.Query)
	}
	res := msParse(t, queries)
	for k, it := range items {
		valid := len(res[k]) == 0
		switch {
		case it.accept && !valid:
			t.Errorf("%s: accepted, but Microsoft's parser finds %q", it.name, res[k])
		case !it.accept && it.syntax && valid:
			t.Errorf("%s: refused as a syntax error, but Microsoft's parser finds none", it.name)
		case !it.accept && !it.syntax && !valid:
			t.Errorf("%s: refused as unsupported, but it is not valid KQL to Microsoft's parser: %q", it.name, res[k])
		}
	}
}

// queryOf is the query of a rule YAML that Load refuses.
func queryOf(t *testing.T, y string) string {
	t.Helper()
	i := strings.Index(y, "query: |\n")
	j := strings.Index(y, "entityMappings:")
	if i < 0 || j < i {
		t.Fatal("no query in the YAML")
	}
	var b strings.Builder
	for _, l := range strings.Split(y[i+len("query: |\n"):j], "\n") {
		b.WriteString(strings.TrimPrefix(l, "  "))
		b.WriteByte('\n')
	}
	return b.String()
}
