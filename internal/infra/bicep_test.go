package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// No Bicep compiler runs here (none is reachable offline), so this is a small,
// honest text scan of the constructs infra/bicep uses, written to fail loudly
// on anything it does not understand rather than guess:
//   - top-level `resource sym 'Type@api' [existing] = [if (...)] {` blocks,
//   - `module sym 'file.bicep' = [if (...)] {` blocks,
//   - `param name type [= default]`, `var name = value` (values may span a
//     balanced {...} block), `output name type = value`,
//   - inside blocks, `key: value` lines.
// Loops (`[for ...]` resources), nested child resources and multi-line '''
// strings are not used by the templates and are rejected.

type bicepResource struct {
	symbol, typ, api string
	existing         bool
	body             string
	line             int
}

type bicepModule struct {
	symbol, path string
	body         string
}

type bicepFile struct {
	path       string
	text       string // comments blanked out, strings kept
	resources  map[string]*bicepResource
	modules    map[string]*bicepModule
	params     map[string]string // name -> default expression ("" = none)
	paramTypes map[string]string // name -> declared type (schema checks)
	vars       map[string]string
	outputs    map[string]string
}

var (
	reResource = regexp.MustCompile(`(?m)^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s+(existing\s+)?=\s*`)
	reModule   = regexp.MustCompile(`(?m)^module\s+(\w+)\s+'([^']+)'\s*=\s*`)
	reParam    = regexp.MustCompile(`(?m)^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.*))?$`)
	reVar      = regexp.MustCompile(`(?m)^var\s+(\w+)\s*=\s*(.*)$`)
	reOutput   = regexp.MustCompile(`(?m)^output\s+(\w+)\s+\w+\s*=\s*(.*)$`)
	reTopLevel = regexp.MustCompile(`(?m)^(\w+)\b`)
	reIdent    = regexp.MustCompile(`^[A-Za-z_]\w*$`)
)

// loadBicep scans path and, recursively, the modules it uses.
func loadBicep(t *testing.T, path string, files map[string]*bicepFile) *bicepFile {
	t.Helper()
	if f, ok := files[path]; ok {
		return f
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text, err := stripBicepComments(string(src))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := checkBalance(text); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if strings.Contains(text, "'''") {
		t.Fatalf("%s: multi-line ''' strings are not understood by this scan", path)
	}
	f := &bicepFile{
		path:      path,
		text:      text,
		resources: map[string]*bicepResource{},
		modules:   map[string]*bicepModule{},
		params:    map[string]string{},
		vars:      map[string]string{},
		outputs:   map[string]string{},
	}
	files[path] = f

	for _, m := range reTopLevel.FindAllStringSubmatchIndex(text, -1) {
		switch kw := text[m[2]:m[3]]; kw {
		case "targetScope", "resource", "module", "param", "var", "output", "metadata", "using", "type", "func", "import":
		default:
			t.Errorf("%s:%d: unexpected top-level %q", path, lineOf(text, m[0]), kw)
		}
	}
	for _, m := range reResource.FindAllStringSubmatchIndex(text, -1) {
		r := &bicepResource{
			symbol:   text[m[2]:m[3]],
			typ:      text[m[4]:m[5]],
			api:      text[m[6]:m[7]],
			existing: m[8] >= 0,
			line:     lineOf(text, m[0]),
		}
		body, err := blockAfter(text, m[1])
		if err != nil {
			t.Fatalf("%s:%d: resource %s: %v", path, r.line, r.symbol, err)
		}
		r.body = body
		if _, dup := f.resources[r.symbol]; dup {
			t.Errorf("%s:%d: symbol %s declared twice", path, r.line, r.symbol)
		}
		if !strings.Contains(r.typ, "/") {
			t.Errorf("%s:%d: resource %s: nested child types (%q) are not understood by this scan", path, r.line, r.symbol, r.typ)
		}
		f.resources[r.symbol] = r
	}
	for _, m := range reModule.FindAllStringSubmatchIndex(text, -1) {
		mod := &bicepModule{symbol: text[m[2]:m[3]], path: filepath.Join(filepath.Dir(path), text[m[4]:m[5]])}
		body, err := blockAfter(text, m[1])
		if err != nil {
			t.Fatalf("%s: module %s: %v", path, mod.symbol, err)
		}
		mod.body = body
		f.modules[mod.symbol] = mod
		loadBicep(t, mod.path, files)
	}
	for _, m := range reParam.FindAllStringSubmatch(text, -1) {
		f.params[m[1]] = strings.TrimSpace(m[3])
	}
	for _, m := range reVar.FindAllStringSubmatchIndex(text, -1) {
		name, value := text[m[2]:m[3]], strings.TrimSpace(text[m[4]:m[5]])
		if strings.HasPrefix(value, "{") || strings.HasPrefix(value, "[") {
			block, err := blockAfter(text, m[4])
			if err != nil {
				t.Fatalf("%s: var %s: %v", path, name, err)
			}
			value = block
		}
		f.vars[name] = value
	}
	for _, m := range reOutput.FindAllStringSubmatch(text, -1) {
		f.outputs[m[1]] = strings.TrimSpace(m[2])
	}
	return f
}

// createdOf returns, for an `existing` reference, the resource of the same
// file that creates the same thing (same type, same name expression), so that
// a reference used either way (created here or already there) counts as that
// resource; otherwise r itself.
func (f *bicepFile) createdOf(r *bicepResource) *bicepResource {
	if !r.existing {
		return r
	}
	name := props(r.body)["name"]
	for _, c := range f.resources {
		if !c.existing && c.typ == r.typ && name != "" && props(c.body)["name"] == name {
			return c
		}
	}
	return r
}

func lineOf(text string, off int) int { return strings.Count(text[:off], "\n") + 1 }

// stripBicepComments blanks // and /* */ comments (keeping line numbers) and
// leaves '...' strings as they are; an unterminated string or comment is an
// error.
func stripBicepComments(src string) (string, error) {
	out := []byte(src)
	for i := 0; i < len(src); i++ {
		switch {
		case src[i] == '\'':
			j := i + 1
			for ; j < len(src) && src[j] != '\''; j++ {
				if src[j] == '\\' {
					j++
				} else if src[j] == '\n' {
					return "", fmt.Errorf("line %d: unterminated string", lineOf(src, i))
				}
			}
			if j >= len(src) {
				return "", fmt.Errorf("line %d: unterminated string", lineOf(src, i))
			}
			i = j
		case strings.HasPrefix(src[i:], "//"):
			for ; i < len(src) && src[i] != '\n'; i++ {
				out[i] = ' '
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return "", fmt.Errorf("line %d: unterminated comment", lineOf(src, i))
			}
			for k := i; k < i+2+end+2; k++ {
				if out[k] != '\n' {
					out[k] = ' '
				}
			}
			i += 2 + end + 1
		}
	}
	return string(out), nil
}

// checkBalance checks that (), [] and {} nest and close outside strings;
// '${' inside a string opens an interpolation that must close with '}'.
func checkBalance(text string) error {
	var stack []rune
	var lines []int
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	line := 1
	inString := false
	interp := 0 // open ${ inside the current string
	for i := 0; i < len(text); i++ {
		c := rune(text[i])
		if c == '\n' {
			line++
		}
		if inString {
			switch {
			case c == '\\':
				i++
			case c == '$' && i+1 < len(text) && text[i+1] == '{':
				interp++
				i++
			case c == '}' && interp > 0:
				interp--
			case c == '\'' && interp == 0:
				inString = false
			}
			continue
		}
		switch c {
		case '\'':
			inString = true
		case '(', '[', '{':
			stack = append(stack, c)
			lines = append(lines, line)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("line %d: unbalanced %q", line, c)
			}
			stack, lines = stack[:len(stack)-1], lines[:len(lines)-1]
		}
	}
	if inString {
		return fmt.Errorf("a string or its ${...} is never closed")
	}
	if len(stack) > 0 {
		return fmt.Errorf("line %d: %q is never closed", lines[len(lines)-1], stack[len(stack)-1])
	}
	return nil
}

// blockAfter returns the balanced {...} or [...] block that starts at the
// first opening bracket at or after off, skipping an `if (...)` condition.
// A `[for` loop is rejected: the templates do not use resource loops.
func blockAfter(text string, off int) (string, error) {
	rest := text[off:]
	if strings.HasPrefix(rest, "if") {
		depth := 0
		for i, c := range rest {
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
				if depth == 0 {
					off += i + 1
					break
				}
			}
		}
	}
	start := strings.IndexAny(text[off:], "{[")
	if start < 0 {
		return "", fmt.Errorf("no block")
	}
	start += off
	if strings.HasPrefix(strings.TrimSpace(text[start+1:]), "for ") {
		return "", fmt.Errorf("[for ...] loops are not understood by this scan")
	}
	open, close := text[start], byte('}')
	if open == '[' {
		close = ']'
	}
	depth := 0
	inString := false
	for i := start; i < len(text); i++ {
		c := text[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '\'' {
				inString = false
			}
			continue
		}
		switch c {
		case '\'':
			inString = true
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return text[start : i+1], nil
			}
		}
	}
	return "", fmt.Errorf("block never closes")
}

// props returns the `key: value` lines directly inside a { } block (not
// those of nested blocks).
func props(block string) map[string]string {
	out := map[string]string{}
	depth := 0
	for _, line := range strings.Split(block, "\n") {
		trimmed := strings.TrimSpace(line)
		if depth == 1 {
			if k, v, ok := strings.Cut(trimmed, ":"); ok && reIdent.MatchString(strings.TrimSpace(k)) {
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		depth += strings.Count(trimmed, "{") + strings.Count(trimmed, "[") -
			strings.Count(trimmed, "}") - strings.Count(trimmed, "]")
		// Bracket characters inside strings are rare here; interpolations
		// (${...}) are balanced on one line and cancel out.
	}
	return out
}

// bicepValue is what a Bicep expression is known to be without Azure: a
// literal (with params replaced by their defaults), or "computed".
const computed = "<computed>"

var reInterp = regexp.MustCompile(`\$\{([\w\s*/]+)\}`)

func (f *bicepFile) value(expr string) string {
	expr = strings.TrimSpace(expr)
	if reIdent.MatchString(expr) {
		if def, ok := f.params[expr]; ok && def != "" {
			return f.value(def)
		}
		if v, ok := f.vars[expr]; ok {
			return f.value(v)
		}
		return computed
	}
	if strings.HasPrefix(expr, "'") && strings.HasSuffix(expr, "'") && len(expr) >= 2 {
		inner := expr[1 : len(expr)-1]
		ok := true
		resolved := reInterp.ReplaceAllStringFunc(inner, func(m string) string {
			v := f.value(reInterp.FindStringSubmatch(m)[1])
			if v == computed {
				ok = false
			}
			return v
		})
		if !ok || strings.Contains(resolved, "${") {
			return computed
		}
		return strings.ReplaceAll(resolved, `\'`, `'`)
	}
	if regexp.MustCompile(`^-?\d+$`).MatchString(expr) {
		return expr
	}
	if v, ok := f.arith(expr); ok {
		return v
	}
	return computed
}

// arith evaluates integer '*' and '/' (Bicep's integer division) left to
// right, over integers and parameters with integer defaults, such as
// "instanceMemoryMB * 11 / 16".
func (f *bicepFile) arith(expr string) (string, bool) {
	terms := regexp.MustCompile(`\s*([*/])\s*`).Split(expr, -1)
	ops := regexp.MustCompile(`[*/]`).FindAllString(expr, -1)
	if len(terms) < 2 || len(ops) != len(terms)-1 {
		return "", false
	}
	n := make([]int64, len(terms))
	for k, term := range terms {
		v, err := strconv.ParseInt(f.value(term), 10, 64)
		if err != nil {
			return "", false
		}
		n[k] = v
	}
	acc := n[0]
	for k, op := range ops {
		if op == "*" {
			acc *= n[k+1]
		} else if n[k+1] == 0 {
			return "", false
		} else {
			acc /= n[k+1]
		}
	}
	return strconv.FormatInt(acc, 10), true
}

func TestBicepScan(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	if len(files) < 2 {
		t.Fatalf("main.bicep uses %d modules, expected the export modules too", len(files)-1)
	}
	for _, f := range files {
		for _, r := range f.resources {
			if m := regexp.MustCompile(`(?m)^\s*scope:\s*(\w+)\s*$`).FindStringSubmatch(r.body); m != nil {
				if _, ok := f.resources[m[1]]; !ok {
					t.Errorf("%s:%d: %s: scope %s is not a resource of this file", f.path, r.line, r.symbol, m[1])
				}
			}
			if m := regexp.MustCompile(`(?m)^\s*parent:\s*(\w+)\s*$`).FindStringSubmatch(r.body); m != nil {
				p, ok := f.resources[m[1]]
				if !ok {
					t.Errorf("%s:%d: %s: parent %s is not a resource of this file", f.path, r.line, r.symbol, m[1])
				} else if !strings.HasPrefix(r.typ, p.typ+"/") {
					t.Errorf("%s:%d: %s (%s) cannot be a child of %s (%s)", f.path, r.line, r.symbol, r.typ, p.symbol, p.typ)
				}
			}
		}
		// Module calls pass exactly the module's parameters that have no default.
		for _, mod := range f.modules {
			callee := files[mod.path]
			params := props(mustBlock(t, mod.body, "params:"))
			for name := range params {
				if _, ok := callee.params[name]; !ok {
					t.Errorf("%s: module %s passes %q, which %s does not declare", f.path, mod.symbol, name, callee.path)
				}
			}
			for name, def := range callee.params {
				if _, ok := params[name]; !ok && def == "" {
					t.Errorf("%s: module %s does not pass required %q of %s", f.path, mod.symbol, name, callee.path)
				}
			}
		}
	}
	// main.bicepparam sets only parameters main.bicep declares.
	src, err := os.ReadFile(filepath.Join(bicepDir, "main.bicepparam"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := stripBicepComments(string(src))
	if err != nil {
		t.Fatalf("main.bicepparam: %v", err)
	}
	if err := checkBalance(text); err != nil {
		t.Fatalf("main.bicepparam: %v", err)
	}
	if !regexp.MustCompile(`(?m)^using 'main\.bicep'\s*$`).MatchString(text) {
		t.Error("main.bicepparam does not start with using 'main.bicep'")
	}
	for _, m := range regexp.MustCompile(`(?m)^param\s+(\w+)\s*=`).FindAllStringSubmatch(text, -1) {
		if _, ok := main.params[m[1]]; !ok {
			t.Errorf("main.bicepparam sets %q, which main.bicep does not declare", m[1])
		}
	}
	for name, def := range main.params {
		if def == "" && !regexp.MustCompile(`(?m)^param\s+`+name+`\s*=`).MatchString(text) {
			t.Errorf("main.bicepparam does not set required parameter %q", name)
		}
	}
}

// mustBlock returns the block that follows key inside body.
func mustBlock(t *testing.T, body, key string) string {
	t.Helper()
	i := strings.Index(body, key)
	if i < 0 {
		t.Fatalf("no %q in %.60q", key, body)
	}
	b, err := blockAfter(body, i+len(key))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return b
}

func TestBicepScannerRejects(t *testing.T) {
	tests := []struct {
		name, src, wantErr string
	}{
		{"unclosed brace", "resource a 'A/b@1' = {\n  name: 'x'\n", "never closed"},
		{"stray bracket", "var x = [\n 1\n}\n", "unbalanced"},
		{"unterminated string", "var x = 'abc\n", "unterminated string"},
		{"interpolation not closed", "var x = '${a'\n", "never closed"},
		{"comment hides nothing", "var x = {\n // }\n}\n", ""},
		{"brace in string", "var x = {\n a: '}'\n}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := stripBicepComments(tt.src)
			if err == nil {
				err = checkBalance(text)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
