package infra

// Schema checks against Azure's published definitions (a trimmed copy in
// testdata/azure-schemas, see its README): the bicep-types of Azure's REST API
// specs for every Bicep resource and for the body of every azapi_resource, and
// the azurerm provider schema for every azurerm resource, data source and the
// provider block.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const schemaDir = repoRoot + "/testdata/azure-schemas"

// Bicep-types property flags (Azure/bicep-types, ObjectTypePropertyFlags).
const (
	flagRequired = 1
	flagReadOnly = 2
)

// typeIndex is every types.json of the copy: "Type@api" -> its ResourceType.
type typeIndex struct {
	files     map[string][]map[string]any
	resources map[string]typeRef
}

type typeRef struct {
	file string
	idx  int
}

var (
	typesOnce sync.Once
	types     *typeIndex
	typesErr  error
)

func loadTypes(t *testing.T) *typeIndex {
	t.Helper()
	typesOnce.Do(func() {
		types = &typeIndex{files: map[string][]map[string]any{}, resources: map[string]typeRef{}}
		paths, err := filepath.Glob(filepath.Join(schemaDir, "bicep-types", "*", "*", "*", "types.json"))
		if err != nil || len(paths) == 0 {
			typesErr = fmt.Errorf("no bicep-types under %s (%v): run go run ./tools/azschemas", schemaDir, err)
			return
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				typesErr = err
				return
			}
			var nodes []map[string]any
			if err := json.Unmarshal(data, &nodes); err != nil {
				typesErr = fmt.Errorf("%s: %v", p, err)
				return
			}
			types.files[p] = nodes
			for i, n := range nodes {
				if n["$type"] == "ResourceType" {
					name, _ := n["name"].(string)
					// Same lowercase-insensitive lookup as Resource Manager.
					types.resources[strings.ToLower(name)] = typeRef{p, i}
				}
			}
		}
	})
	if typesErr != nil {
		t.Fatal(typesErr)
	}
	return types
}

func (x *typeIndex) deref(file string, ref any) (map[string]any, error) {
	m, ok := ref.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a type reference: %v", ref)
	}
	s, _ := m["$ref"].(string)
	i, err := strconv.Atoi(strings.TrimPrefix(s, "#/"))
	if err != nil || !strings.HasPrefix(s, "#/") || i >= len(x.files[file]) {
		return nil, fmt.Errorf("reference %q outside %s", s, file)
	}
	return x.files[file][i], nil
}

// value is what a template says about a property value without deploying
// it: a literal (known), or only its kind (an interpolated string is a
// string; a parameter has its declared type), or nothing (an expression this
// test cannot evaluate: unknown value, type unchecked).
type value struct {
	kind   string // "string", "int", "bool", "null", "object", "array", "" = unknown
	known  bool   // the literal is known (for objects and arrays: their members are)
	str    string
	num    int64
	b      bool
	fields []field
	items  []*value
	line   int
}

type field struct {
	key   string // "" = a computed key
	value *value
	line  int
}

func (v *value) get(key string) *value {
	for _, f := range v.fields {
		if f.key == key {
			return f.value
		}
	}
	return nil
}

// finding is one schema problem, with where it is.
type finding struct{ at, msg string }

func (f finding) String() string { return f.at + ": " + f.msg }

// checkValue checks v against the type node n of file, appending findings
// about path.
func (x *typeIndex) checkValue(file string, n map[string]any, v *value, path, at string, out *[]finding) {
	report := func(format string, args ...any) {
		*out = append(*out, finding{at, path + ": " + fmt.Sprintf(format, args...)})
	}
	if v == nil || v.kind == "" {
		return // unknown value: type unchecked
	}
	if v.kind == "null" {
		return
	}
	switch n["$type"] {
	case "AnyType":
	case "StringType":
		if v.kind != "string" {
			report("is %s, want a string", v.kind)
		} else if v.known {
			if minLen, ok := n["minLength"].(float64); ok && len(v.str) < int(minLen) {
				report("%q is shorter than %d", v.str, int(minLen))
			}
			if maxLen, ok := n["maxLength"].(float64); ok && len(v.str) > int(maxLen) {
				report("%q is longer than %d", v.str, int(maxLen))
			}
		}
	case "StringLiteralType":
		want, _ := n["value"].(string)
		if v.kind != "string" {
			report("is %s, want the string %q", v.kind, want)
		} else if v.known && v.str != want {
			report("%q, want %q", v.str, want)
		}
	case "UnionType":
		// An enum is a union of string literals; an "open" one (Azure's
		// modelAsString) also has a plain string, which Bicep accepts any
		// string for. This check is stricter: a literal must be one of the
		// known values in both cases (the service may reject others, and a
		// typo is far likelier than a value the spec does not list).
		elems, _ := n["elements"].([]any)
		var literals []string
		matched := false
		for _, e := range elems {
			en, err := x.deref(file, e)
			if err != nil {
				report("%v", err)
				return
			}
			if en["$type"] == "StringLiteralType" {
				literals = append(literals, fmt.Sprintf("%q", en["value"]))
				if v.kind == "string" && v.known && en["value"] == v.str {
					return
				}
				if v.kind == "string" && !v.known {
					return // an interpolated string may be any of them
				}
				continue
			}
			var sub []finding
			x.checkValue(file, en, v, path, at, &sub)
			if len(sub) == 0 {
				matched = true
			}
		}
		switch {
		case v.kind == "string" && v.known && len(literals) > 0:
			report("%q is not one of %s", v.str, strings.Join(literals, ", "))
		case !matched:
			report("%s value matches none of the allowed types", v.kind)
		}
	case "IntegerType":
		if v.kind != "int" {
			report("is %s, want an integer", v.kind)
		} else if v.known {
			if lo, ok := n["minValue"].(float64); ok && v.num < int64(lo) {
				report("%d is below the minimum %d", v.num, int64(lo))
			}
			if hi, ok := n["maxValue"].(float64); ok && v.num > int64(hi) {
				report("%d is above the maximum %d", v.num, int64(hi))
			}
		}
	case "BooleanType":
		if v.kind != "bool" {
			report("is %s, want a bool", v.kind)
		}
	case "ArrayType":
		if v.kind != "array" {
			report("is %s, want an array", v.kind)
			return
		}
		item, err := x.deref(file, n["itemType"])
		if err != nil {
			report("%v", err)
			return
		}
		for i, it := range v.items {
			x.checkValue(file, item, it, fmt.Sprintf("%s[%d]", path, i), lineAt(at, it.line), out)
		}
	case "ObjectType":
		if v.kind != "object" {
			report("is %s, want an object", v.kind)
			return
		}
		props, _ := n["properties"].(map[string]any)
		x.checkObject(file, props, n["additionalProperties"], v, path, at, out)
	case "DiscriminatedObjectType":
		if v.kind != "object" {
			report("is %s, want an object", v.kind)
			return
		}
		key, _ := n["discriminator"].(string)
		props := map[string]any{}
		base, _ := n["baseProperties"].(map[string]any)
		for k, p := range base {
			props[k] = p
		}
		d := v.get(key)
		elems, _ := n["elements"].(map[string]any)
		switch {
		case d == nil:
			report("missing required property %s (one of %s)", key, strings.Join(sortedKeys(elems), ", "))
			return
		case d.kind == "string" && d.known:
			ref, ok := elems[d.str]
			if !ok {
				report("%s %q is not one of %s", key, d.str, strings.Join(sortedKeys(elems), ", "))
				return
			}
			en, err := x.deref(file, ref)
			if err != nil {
				report("%v", err)
				return
			}
			eprops, _ := en["properties"].(map[string]any)
			for k, p := range eprops {
				props[k] = p
			}
		default:
			return // which variant is not known here: unchecked
		}
		x.checkObject(file, props, nil, v, path, at, out)
	case "ResourceType":
		body, err := x.deref(file, n["body"])
		if err != nil {
			report("%v", err)
			return
		}
		x.checkValue(file, body, v, path, at, out)
	default:
		report("type %v is not understood by this check", n["$type"])
	}
}

func (x *typeIndex) checkObject(file string, props map[string]any, additional any, v *value, path, at string, out *[]finding) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	for _, f := range v.fields {
		where := lineAt(at, f.line)
		if f.key == "" {
			continue // computed key: cannot say which property it is
		}
		p, ok := props[f.key].(map[string]any)
		if !ok {
			if additional != nil {
				an, err := x.deref(file, additional)
				if err == nil {
					x.checkValue(file, an, f.value, join(f.key), where, out)
				}
				continue
			}
			msg := "unknown property"
			if s := closest(f.key, sortedKeys(props)); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			*out = append(*out, finding{where, join(f.key) + ": " + msg})
			continue
		}
		flags, _ := p["flags"].(float64)
		if int(flags)&flagReadOnly != 0 {
			*out = append(*out, finding{where, join(f.key) + ": read-only property set"})
			continue
		}
		pn, err := x.deref(file, p["type"])
		if err != nil {
			*out = append(*out, finding{where, join(f.key) + ": " + err.Error()})
			continue
		}
		x.checkValue(file, pn, f.value, join(f.key), where, out)
	}
	if !v.known {
		return // members not all known (e.g. an object parameter)
	}
	for _, k := range sortedKeys(props) {
		p, _ := props[k].(map[string]any)
		flags, _ := p["flags"].(float64)
		if int(flags)&flagRequired != 0 && int(flags)&flagReadOnly == 0 && v.get(k) == nil {
			*out = append(*out, finding{at, join(k) + ": missing required property"})
		}
	}
}

// lineAt replaces the line of "file:line" by line when line is known.
func lineAt(at string, line int) string {
	if line <= 0 {
		return at
	}
	if i := strings.LastIndex(at, ":"); i >= 0 {
		if _, err := strconv.Atoi(at[i+1:]); err == nil {
			return at[:i] + ":" + strconv.Itoa(line)
		}
	}
	return at
}

// closest is the name among names within edit distance 2 of s, if any.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// openValues are values of open enums (a union of literals and any string)
// that Azure documents but the REST spec does not list, by resource type and
// property path: the strict union check would reject them. Both unions below
// allow any string in the spec.
var openValues = []struct{ typ, path, value, why string }{
	{"Microsoft.Insights/dataCollectionRules", `kind`, `Direct`,
		"a DCR for the Logs Ingestion API with its own endpoints, no DCE (learn.microsoft.com/azure/azure-monitor/essentials/data-collection-rule-structure)"},
	{"Microsoft.Insights/dataCollectionRules", `properties\.dataFlows\[\d+\]\.streams\[\d+\]`, `Custom-\w+`,
		"a stream of the rule's own streamDeclarations"},
}

// standIns are type@api the copy cannot hold, checked against the nearest
// definition it has. NRT analytics rules are only in preview API versions of
// Microsoft.SecurityInsights, and the bicep-types source holds stable ones
// only: an NRT rule is checked as the stable Scheduled kind, whose properties
// are a superset of NRT's (what NRT lacks, the schedule, is optional there),
// plus what NRT requires and Scheduled does not (NrtAlertRuleProperties of
// bicep-types-az 2024-01-01-preview: query and severity).
var standIns = map[string]struct {
	typeAPI, kind, asKind string
	require               [][]string
}{
	"microsoft.securityinsights/alertrules@2024-01-01-preview": {"Microsoft.SecurityInsights/alertRules@2025-09-01", "NRT", "Scheduled",
		[][]string{{"properties", "query"}, {"properties", "severity"}}},
}

// checkResource checks one resource declaration "Type@api" with body v.
func (x *typeIndex) checkResource(typeAPI string, v *value, at string) []finding {
	if si, ok := standIns[strings.ToLower(typeAPI)]; ok {
		k := v.get("kind")
		if k == nil || k.kind != "string" || !k.known || k.str != si.kind {
			return []finding{{at, fmt.Sprintf("%s is checked as %s only for kind %s", typeAPI, si.typeAPI, si.kind)}}
		}
		c := *v
		c.fields = nil
		for _, f := range v.fields {
			if f.key == "kind" {
				f.value = &value{kind: "string", known: true, str: si.asKind, line: f.line}
			}
			c.fields = append(c.fields, f)
		}
		out := x.checkResource(si.typeAPI, &c, at)
		if v.known {
			for _, req := range si.require {
				p := v
				for _, k := range req {
					if p != nil {
						p = p.get(k)
					}
				}
				if p == nil {
					out = append(out, finding{at, strings.Join(req, ".") + ": missing required property (kind " + si.kind + ")"})
				}
			}
		}
		return out
	}
	typ, _, _ := strings.Cut(typeAPI, "@")
	var out []finding
	for _, f := range x.checkDeclared(typeAPI, v, at) {
		open := false
		for _, o := range openValues {
			if strings.EqualFold(o.typ, typ) && regexp.MustCompile(`^(?:`+o.path+`): "(?:`+o.value+`)" is not one of `).MatchString(f.msg) {
				open = true
			}
		}
		if !open {
			out = append(out, f)
		}
	}
	return out
}

func (x *typeIndex) checkDeclared(typeAPI string, v *value, at string) []finding {
	ref, ok := x.resources[strings.ToLower(typeAPI)]
	if !ok {
		typ, _, _ := strings.Cut(typeAPI, "@")
		var apis []string
		for k := range x.resources {
			if t, api, _ := strings.Cut(k, "@"); t == strings.ToLower(typ) {
				apis = append(apis, api)
			}
		}
		sort.Strings(apis)
		if len(apis) == 0 {
			return []finding{{at, fmt.Sprintf("resource type %s is not in testdata/azure-schemas (a misspelt type, or add it to tools/azschemas)", typ)}}
		}
		return []finding{{at, fmt.Sprintf("API version of %s does not exist for this type (known: %s)", typeAPI, strings.Join(apis, ", "))}}
	}
	var out []finding
	x.checkValue(ref.file, x.files[ref.file][ref.idx], v, "", at, &out)
	return out
}

// ------------------------------------------------------------ Bicep values

// bicepParser reads the values of one Bicep file: object and array literals
// (newline- or comma-separated), strings (interpolated ones are strings of
// unknown value), integers, true/false/null, `[for ... : item]` loops (an
// array of item), union() of object literals (merged), and references to
// parameters (their declared type) and variables (their value). Anything else
// is an expression it cannot evaluate: unknown value, type unchecked.
type bicepParser struct {
	f     *bicepFile
	depth int // variable resolution depth
}

func (p *bicepParser) parse(text string, line int) (*value, error) {
	v, i, err := p.value(text, 0, line)
	if err != nil {
		return nil, err
	}
	if rest := strings.TrimSpace(text[i:]); rest != "" {
		return nil, fmt.Errorf("line %d: unexpected %.20q after the value", line+strings.Count(text[:i], "\n"), rest)
	}
	return v, nil
}

func skipSpace(s string, i int, newlines bool) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || newlines && (s[i] == '\n' || s[i] == ',')) {
		i++
	}
	return i
}

// exprEnd is where an expression starting at i ends: a newline, ',' or a
// closing bracket at depth 0, outside strings.
func exprEnd(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			i = stringEnd(s, i) - 1
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				return i
			}
			depth--
		case '\n', ',':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// stringEnd returns the offset after the string that starts at s[i] == '\”.
func stringEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\':
			j++
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			// An interpolation may hold strings and braces of its own.
			depth := 0
			for k := j + 1; k < len(s); k++ {
				if s[k] == '\'' {
					k = stringEnd(s, k) - 1
				} else if s[k] == '{' {
					depth++
				} else if s[k] == '}' {
					depth--
					if depth == 0 {
						j = k
						break
					}
				}
			}
		case s[j] == '\'':
			return j + 1
		}
	}
	return len(s)
}

var (
	reBicepKey = regexp.MustCompile(`^(?:([A-Za-z_]\w*)|'((?:[^'\\$]|\\.)*)'|'[^']*')\s*:`)
	reBicepInt = regexp.MustCompile(`^-?\d+$`)
	reLoopHead = regexp.MustCompile(`^for\s`)
)

func (p *bicepParser) value(s string, i, line int) (*value, int, error) {
	i = skipSpace(s, i, false)
	at := line + strings.Count(s[:i], "\n")
	if i >= len(s) {
		return nil, i, fmt.Errorf("line %d: missing value", at)
	}
	switch s[i] {
	case '{':
		obj := &value{kind: "object", known: true, line: at}
		i++
		for {
			i = skipSpace(s, i, true)
			if i >= len(s) {
				return nil, i, fmt.Errorf("line %d: object never closes", at)
			}
			if s[i] == '}' {
				return obj, i + 1, nil
			}
			m := reBicepKey.FindStringSubmatchIndex(s[i:])
			if m == nil {
				return nil, i, fmt.Errorf("line %d: expected `key: value`, found %.20q", line+strings.Count(s[:i], "\n"), s[i:])
			}
			key := ""
			switch {
			case m[2] >= 0:
				key = s[i+m[2] : i+m[3]]
			case m[4] >= 0:
				key = s[i+m[4] : i+m[5]]
			}
			fl := line + strings.Count(s[:i], "\n")
			v, j, err := p.value(s, i+m[1], line)
			if err != nil {
				return nil, j, err
			}
			obj.fields = append(obj.fields, field{key, v, fl})
			i = j
		}
	case '[':
		arr := &value{kind: "array", known: true, line: at}
		i++
		if j := skipSpace(s, i, true); reLoopHead.MatchString(s[j:]) {
			// [for x in expr: item] (or [for (x, i) in expr: item])
			depth := 0
			k := j
			for ; k < len(s); k++ {
				if s[k] == '\'' {
					k = stringEnd(s, k) - 1
				} else if s[k] == '(' || s[k] == '[' || s[k] == '{' {
					depth++
				} else if s[k] == ')' || s[k] == ']' || s[k] == '}' {
					depth--
				} else if s[k] == ':' && depth == 0 {
					break
				}
			}
			item, end, err := p.value(s, k+1, line)
			if err != nil {
				return nil, end, err
			}
			end = skipSpace(s, end, true)
			if end >= len(s) || s[end] != ']' {
				return nil, end, fmt.Errorf("line %d: loop never closes", at)
			}
			arr.items = []*value{item}
			return arr, end + 1, nil
		}
		for {
			i = skipSpace(s, i, true)
			if i >= len(s) {
				return nil, i, fmt.Errorf("line %d: array never closes", at)
			}
			if s[i] == ']' {
				return arr, i + 1, nil
			}
			v, j, err := p.value(s, i, line)
			if err != nil {
				return nil, j, err
			}
			arr.items = append(arr.items, v)
			i = j
		}
	case '\'':
		end := stringEnd(s, i)
		after := exprEnd(s, end)
		if strings.TrimSpace(s[end:after]) != "" {
			return &value{line: at}, after, nil // e.g. 'a' == x ? y : z
		}
		raw := s[i+1 : end-1]
		if strings.Contains(raw, "${") {
			return &value{kind: "string", line: at}, end, nil
		}
		return &value{kind: "string", known: true, str: strings.ReplaceAll(raw, `\'`, `'`), line: at}, end, nil
	}
	end := exprEnd(s, i)
	v := p.expr(strings.TrimSpace(s[i:end]), at)
	return v, end, nil
}

var (
	reUnion = regexp.MustCompile(`(?s)^union\((.*)\)$`)
	// map(array, x => item): an array of items of the lambda's shape.
	reMapLambda = regexp.MustCompile(`(?s)^map\((.*)\)$`)
	reLambda    = regexp.MustCompile(`(?s)^\s*\w+\s*=>\s*(.*)$`)
)

// expr classifies an expression that is not a literal object, array or string.
func (p *bicepParser) expr(e string, line int) *value {
	switch {
	case e == "true" || e == "false":
		return &value{kind: "bool", known: true, b: e == "true", line: line}
	case e == "null":
		return &value{kind: "null", known: true, line: line}
	case reBicepInt.MatchString(e):
		n, _ := strconv.ParseInt(e, 10, 64)
		return &value{kind: "int", known: true, num: n, line: line}
	case reIdent.MatchString(e):
		if typ, ok := p.f.paramTypes[e]; ok {
			switch typ {
			case "string", "int", "bool", "object", "array":
				return &value{kind: typ, line: line} // known type, unknown value
			}
			return &value{line: line}
		}
		if src, ok := p.f.vars[e]; ok && p.depth < 10 {
			sub := &bicepParser{f: p.f, depth: p.depth + 1}
			if v, err := sub.parse(src, line); err == nil {
				return relined(v, line)
			}
		}
	case reMapLambda.MatchString(e):
		args := splitArgs(reMapLambda.FindStringSubmatch(e)[1])
		if len(args) != 2 || !reLambda.MatchString(args[1]) {
			break
		}
		sub := &bicepParser{f: p.f, depth: p.depth + 1}
		item, err := sub.parse(reLambda.FindStringSubmatch(args[1])[1], line)
		if err != nil {
			return &value{line: line}
		}
		return &value{kind: "array", known: true, items: []*value{relined(item, line)}, line: line}
	case reUnion.MatchString(e):
		args := splitArgs(reUnion.FindStringSubmatch(e)[1])
		merged := &value{kind: "object", known: true, line: line}
		for _, a := range args {
			sub := &bicepParser{f: p.f, depth: p.depth + 1}
			v, err := sub.parse(a, line)
			if err != nil || v.kind != "object" {
				return &value{line: line}
			}
			if !v.known {
				merged.known = false
			}
			merged.fields = append(merged.fields, v.fields...)
		}
		return merged
	}
	return &value{line: line}
}

// relined gives a value resolved from a variable the line where it is used
// (the variable's own lines are not tracked).
func relined(v *value, line int) *value {
	c := *v
	c.line = line
	c.fields = nil
	for _, f := range v.fields {
		c.fields = append(c.fields, field{f.key, relined(f.value, line), line})
	}
	c.items = nil
	for _, it := range v.items {
		c.items = append(c.items, relined(it, line))
	}
	return &c
}

// splitArgs splits a function's arguments at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			i = stringEnd(s, i) - 1
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

var reParamType = regexp.MustCompile(`(?m)^param\s+(\w+)\s+(\w+)`)

// bicepSchemaFindings checks every resource of the Bicep files under
// main.bicep (modules included) against the bicep-types. What it cannot
// check: expressions it cannot evaluate (function calls, ternaries, property
// references: their type is unchecked), keys computed at deployment
// ('${id}': ...), the values parameters will have (only their declared type),
// and anything Resource Manager validates only at deployment (name rules,
// cross-property constraints, region and SKU availability).
func bicepSchemaFindings(t *testing.T, mainPath string) []finding {
	t.Helper()
	x := loadTypes(t)
	files := map[string]*bicepFile{}
	loadBicep(t, mainPath, files)
	var out []finding
	for _, path := range sortedKeys(files) {
		f := files[path]
		f.paramTypes = map[string]string{}
		for _, m := range reParamType.FindAllStringSubmatch(f.text, -1) {
			f.paramTypes[m[1]] = m[2]
		}
		for _, sym := range sortedKeys(f.resources) {
			r := f.resources[sym]
			at := fmt.Sprintf("%s:%d", path, r.line)
			p := &bicepParser{f: f}
			v, err := p.parse(r.body, r.line)
			if err != nil {
				out = append(out, finding{at, fmt.Sprintf("%s: not understood by this parser: %v", sym, err)})
				continue
			}
			// Bicep's own keywords are not part of the resource body.
			var kept []field
			for _, fl := range v.fields {
				switch fl.key {
				case "parent", "scope", "dependsOn":
				default:
					kept = append(kept, fl)
				}
			}
			v.fields = kept
			if r.existing {
				// Only the name is given; the rest is what Azure has.
				v = &value{kind: "object", fields: v.fields}
			}
			for _, fd := range x.checkResource(r.typ+"@"+r.api, v, at) {
				out = append(out, finding{fd.at, sym + ": " + fd.msg})
			}
		}
	}
	return out
}

func TestBicepSchema(t *testing.T) {
	findings := bicepSchemaFindings(t, filepath.Join(bicepDir, "main.bicep"))
	for _, f := range findings {
		t.Error(f)
	}
}

// TestBicepValueParser pins what the parser makes of each construct.
func TestBicepValueParser(t *testing.T) {
	f := &bicepFile{
		params:     map[string]string{"n": "", "tags": ""},
		paramTypes: map[string]string{"n": "int", "tags": "object"},
		vars:       map[string]string{"base": "{\n a: 1\n}"},
	}
	tests := []struct {
		src, want string
	}{
		{"'x'", `string "x"`},
		{"'a${b}c'", "string ?"},
		{"42", "int 42"},
		{"true", "bool true"},
		{"n", "int ?"},
		{"tags", "object ? {}"},
		{"resourceGroup().location", "?"},
		{"x ? 'a' : 'b'", "?"},
		{"'a' == x ? 1 : 2", "?"},
		{"{\n a: 'x'\n b: {\n c: [\n 1\n 2\n ]\n }\n}", `object {a:string "x" b:object {c:array [int 1,int 2]}}`},
		{"{ a: 'x', b: 2 }", `object {a:string "x" b:int 2}`},
		{"[for s in filter(items(v), s => !empty(s.value)): {\n name: s.key\n}]", "array [object {name:?}]"},
		{"union(base, {\n b: 'y'\n})", `object {a:int 1 b:string "y"}`},
		{"{\n '${id}': {}\n}", "object {?:object {}}"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			v, err := (&bicepParser{f: f}).parse(tt.src, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(v); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"{\n a 'x'\n}", "{\n a: 'x'\n", "[\n 1\n"} {
		if _, err := (&bicepParser{f: f}).parse(bad, 1); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func describe(v *value) string {
	if v.kind == "" {
		return "?"
	}
	s := v.kind
	switch v.kind {
	case "string":
		if v.known {
			return s + " " + strconv.Quote(v.str)
		}
		return s + " ?"
	case "int":
		if v.known {
			return s + " " + strconv.FormatInt(v.num, 10)
		}
		return s + " ?"
	case "bool":
		return s + " " + strconv.FormatBool(v.b)
	case "object":
		var parts []string
		for _, f := range v.fields {
			k := f.key
			if k == "" {
				k = "?"
			}
			parts = append(parts, k+":"+describe(f.value))
		}
		if !v.known {
			s += " ?"
		}
		return s + " {" + strings.Join(parts, " ") + "}"
	case "array":
		var parts []string
		for _, it := range v.items {
			parts = append(parts, describe(it))
		}
		return s + " [" + strings.Join(parts, ",") + "]"
	}
	return s
}

// TestSchemaCopy keeps testdata/azure-schemas small and documented: it is
// checked in, so it must stay a few MB at most and say where it came from.
func TestSchemaCopy(t *testing.T) {
	var total int64
	err := filepath.Walk(schemaDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 3<<20 {
		t.Errorf("testdata/azure-schemas is %d bytes, more than 3 MiB: trim the lists in tools/azschemas", total)
	}
	readme, err := os.ReadFile(filepath.Join(schemaDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bicep-types-az", "terraform providers schema -json", "go run ./tools/azschemas"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("testdata/azure-schemas/README.md does not say %q", want)
		}
	}
	t.Logf("testdata/azure-schemas: %d bytes", total)
}
