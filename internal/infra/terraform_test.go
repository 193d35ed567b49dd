// Package infra holds only tests: they keep infra/bicep and infra/terraform in
// step (same resources, role assignments and app settings), check the
// Terraform files offline (syntax, fmt, references) and tie both to what the
// Go code and the function.json files expect. Nothing here reaches Azure.
package infra

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

const (
	repoRoot     = "../.."
	terraformDir = repoRoot + "/infra/terraform"
	bicepDir     = repoRoot + "/infra/bicep"
)

// tfBlock is one top-level resource or data block.
type tfBlock struct {
	typ, name string
	body      *hclsyntax.Body
	file      string
}

// tfConfig is the part of a Terraform root module the tests reason about.
type tfConfig struct {
	resources map[string]tfBlock // "type.name"
	data      map[string]tfBlock // "type.name"
	variables map[string]*hclsyntax.Body
	locals    map[string]hclsyntax.Expression
	outputs   map[string]*hclsyntax.Body
	imports   []*hclsyntax.Body
	files     map[string][]byte
	bodies    map[string]*hclsyntax.Body // file -> body
}

// loadTerraform parses every .tf file of dir with the HCL native syntax
// parser; any syntax error fails the test with its position.
func loadTerraform(t *testing.T, dir string) *tfConfig {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no .tf files in %s", dir)
	}
	cfg := &tfConfig{
		resources: map[string]tfBlock{},
		data:      map[string]tfBlock{},
		variables: map[string]*hclsyntax.Body{},
		locals:    map[string]hclsyntax.Expression{},
		outputs:   map[string]*hclsyntax.Body{},
		files:     map[string][]byte{},
		bodies:    map[string]*hclsyntax.Body{},
	}
	parser := hclparse.NewParser()
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, diags := parser.ParseHCL(src, path)
		if diags.HasErrors() {
			t.Fatalf("terraform syntax: %s", diags.Error())
		}
		body := f.Body.(*hclsyntax.Body)
		cfg.files[path] = src
		cfg.bodies[path] = body
		for _, b := range body.Blocks {
			at := fmt.Sprintf("%s:%d", path, b.DefRange().Start.Line)
			switch b.Type {
			case "resource", "data":
				if len(b.Labels) != 2 {
					t.Fatalf("%s: %s block needs 2 labels", at, b.Type)
				}
				key := b.Labels[0] + "." + b.Labels[1]
				m := cfg.resources
				if b.Type == "data" {
					m = cfg.data
				}
				if _, dup := m[key]; dup {
					t.Errorf("%s: %s %s declared twice", at, b.Type, key)
				}
				m[key] = tfBlock{typ: b.Labels[0], name: b.Labels[1], body: b.Body, file: path}
			case "variable":
				cfg.variables[b.Labels[0]] = b.Body
			case "output":
				cfg.outputs[b.Labels[0]] = b.Body
			case "locals":
				for name, attr := range b.Body.Attributes {
					if _, dup := cfg.locals[name]; dup {
						t.Errorf("%s: local.%s declared twice", at, name)
					}
					cfg.locals[name] = attr.Expr
				}
			case "import":
				cfg.imports = append(cfg.imports, b.Body)
			case "terraform", "provider":
			default:
				t.Errorf("%s: unexpected top-level block %q", at, b.Type)
			}
		}
	}
	return cfg
}

// walkExprs calls fn for every expression in body, nested blocks included.
func walkExprs(body *hclsyntax.Body, fn func(name string, e hclsyntax.Expression)) {
	for name, attr := range body.Attributes {
		fn(name, attr.Expr)
	}
	for _, b := range body.Blocks {
		walkExprs(b.Body, fn)
	}
}

// varDefaults returns var.* as an object of the declared defaults; variables
// without a default are unknown.
func (c *tfConfig) varDefaults(t *testing.T) cty.Value {
	t.Helper()
	vals := map[string]cty.Value{}
	for name, body := range c.variables {
		attr, ok := body.Attributes["default"]
		if !ok {
			vals[name] = cty.DynamicVal
			continue
		}
		v, diags := attr.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("variable %q default: %s", name, diags.Error())
		}
		vals[name] = v
	}
	return cty.ObjectVal(vals)
}

// evalStatic evaluates e with only var.* (defaults) and local.* that are
// themselves static; ok is false when e depends on anything only known in
// Azure (resource attributes, data sources).
func (c *tfConfig) evalStatic(t *testing.T, e hclsyntax.Expression, vars map[string]cty.Value) (cty.Value, bool) {
	t.Helper()
	locals := map[string]cty.Value{}
	for _, tr := range e.Variables() {
		switch tr.RootName() {
		case "var":
		case "local":
			name := tr[1].(hcl.TraverseAttr).Name
			le, ok := c.locals[name]
			if !ok {
				return cty.NilVal, false
			}
			v, ok := c.evalStatic(t, le, vars)
			if !ok {
				return cty.NilVal, false
			}
			locals[name] = v
		default:
			return cty.NilVal, false
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "local": cty.ObjectVal(locals)},
		Functions: tfFunctions,
	}
	v, diags := e.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// tfScope names what a Terraform expression points at: "type.name" of the
// one resource or data source it refers to, resolving locals. A conditional
// whose branches point at different things is an error.
func (c *tfConfig) tfScope(e hclsyntax.Expression, seen map[string]bool) (string, error) {
	var found []string
	for _, tr := range e.Variables() {
		switch root := tr.RootName(); {
		case root == "var" || root == "each" || root == "count":
		case root == "local":
			name := tr[1].(hcl.TraverseAttr).Name
			if seen[name] {
				return "", fmt.Errorf("local.%s refers to itself", name)
			}
			le, ok := c.locals[name]
			if !ok {
				return "", fmt.Errorf("local.%s is not declared", name)
			}
			seen[name] = true
			s, err := c.tfScope(le, seen)
			if err != nil {
				return "", err
			}
			found = append(found, s)
		case root == "data":
			found = append(found, c.existingOf(tr[1].(hcl.TraverseAttr).Name, tr[2].(hcl.TraverseAttr).Name))
		default:
			found = append(found, root+"."+tr[1].(hcl.TraverseAttr).Name)
		}
	}
	uniq := map[string]bool{}
	for _, f := range found {
		uniq[f] = true
	}
	if len(uniq) != 1 {
		return "", fmt.Errorf("refers to %d things %v, want exactly one resource", len(uniq), sortedKeys(uniq))
	}
	return found[0], nil
}

// existingOf names what data.typ.name stands for: a data source that reads
// the existing instance of something this configuration otherwise creates
// (same type, same name expression) is that resource; any other data source
// is itself.
func (c *tfConfig) existingOf(typ, name string) string {
	d, ok := c.data[typ+"."+name]
	if !ok {
		return typ + "." + name
	}
	// An azapi read of an Azure resource counts as the azurerm resource of
	// its type (Bicep reads the same thing as an existing resource).
	if typ == "azapi_resource" {
		if a, ok := d.body.Attributes["type"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String {
				azType, _, _ := strings.Cut(v.AsString(), "@")
				if tf := typeMap[azType]; tf != "" {
					return tf + "." + name
				}
			}
		}
	}
	src := func(b tfBlock) string {
		a, ok := b.body.Attributes["name"]
		if !ok {
			return ""
		}
		return string(a.Expr.Range().SliceBytes(c.files[b.file]))
	}
	for _, r := range c.resources {
		if r.typ == typ && src(r) != "" && src(r) == src(d) {
			return r.typ + "." + r.name
		}
	}
	return typ + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestTerraformSyntaxAndFormat(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	// terraform.tfvars.example is HCL too: parse it and check its names.
	example := filepath.Join(terraformDir, "terraform.tfvars.example")
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, example, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("terraform syntax: %s", diags.Error())
	}
	for name := range f.Body.(*hclsyntax.Body).Attributes {
		if _, ok := cfg.variables[name]; !ok {
			t.Errorf("%s sets %q, which variables.tf does not declare", example, name)
		}
	}
	// The canonical HCL layout, in-process (what `fmt -check` checks).
	tfs, err := filepath.Glob(filepath.Join(terraformDir, "*.tf*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tfs {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not in canonical HCL format (run `terraform fmt` or `tofu fmt` in infra/terraform)", name)
		}
	}
	// `fmt -check` itself needs no provider, so it runs offline wherever a
	// binary is installed.
	bin := ""
	for _, name := range []string{"tofu", "terraform"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Log("no tofu or terraform binary: syntax checked, formatting not checked")
		return
	}
	cmd := exec.Command(bin, "fmt", "-check", "-diff", "-recursive", ".")
	cmd.Dir = terraformDir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s fmt -check in infra/terraform: %v\n%s(run `%s fmt` there)", filepath.Base(bin), err, out, filepath.Base(bin))
	}
}

// TestTerraformReferences is the part of `terraform validate` that needs no
// provider: every var., local., data. and resource reference is declared,
// every variable is used, required variables appear in the example tfvars.
func TestTerraformReferences(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	used := map[string]bool{}
	// The iterators of dynamic blocks (their label, or `iterator`): x.key and
	// x.value inside their content.
	iterators := map[string]bool{}
	var findDynamic func(b *hclsyntax.Body)
	findDynamic = func(b *hclsyntax.Body) {
		for _, nested := range b.Blocks {
			if nested.Type == "dynamic" && len(nested.Labels) == 1 {
				name := nested.Labels[0]
				if it, ok := nested.Body.Attributes["iterator"]; ok {
					name = hcl.ExprAsKeyword(it.Expr)
				}
				iterators[name] = true
			}
			findDynamic(nested.Body)
		}
	}
	for _, body := range cfg.bodies {
		findDynamic(body)
	}
	check := func(where string, e hclsyntax.Expression) {
		for _, tr := range e.Variables() {
			r := tr.SourceRange()
			at := fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
			attr := func(i int) string {
				if len(tr) <= i {
					return ""
				}
				if a, ok := tr[i].(hcl.TraverseAttr); ok {
					return a.Name
				}
				return ""
			}
			switch root := tr.RootName(); root {
			case "var":
				used[attr(1)] = true
				if _, ok := cfg.variables[attr(1)]; !ok {
					t.Errorf("%s: var.%s is not declared", at, attr(1))
				}
			case "local":
				if _, ok := cfg.locals[attr(1)]; !ok {
					t.Errorf("%s: local.%s is not declared", at, attr(1))
				}
			case "data":
				if _, ok := cfg.data[attr(1)+"."+attr(2)]; !ok {
					t.Errorf("%s: data.%s.%s is not declared", at, attr(1), attr(2))
				}
			case "each", "count", "path", "terraform", "self":
			default:
				if iterators[root] && (attr(1) == "value" || attr(1) == "key") {
					continue
				}
				if _, ok := cfg.resources[root+"."+attr(1)]; !ok {
					t.Errorf("%s: %s.%s is not declared", at, root, attr(1))
				}
			}
		}
	}
	for _, body := range cfg.bodies {
		for _, b := range body.Blocks {
			switch b.Type {
			case "terraform":
				// Provider requirements and versions, no references.
			case "variable":
				// `type` is a type expression (string, map(string)), not a reference.
				for name, attr := range b.Body.Attributes {
					if name != "type" {
						check(name, attr.Expr)
					}
				}
				for _, nested := range b.Body.Blocks {
					walkExprs(nested.Body, check)
				}
			default:
				walkExprs(b.Body, check)
			}
		}
	}
	for name, body := range cfg.variables {
		if !used[name] {
			t.Errorf("variable %q is declared but never used", name)
		}
		if _, ok := body.Attributes["description"]; !ok {
			t.Errorf("variable %q has no description", name)
		}
	}
	for name, body := range cfg.outputs {
		if _, ok := body.Attributes["value"]; !ok {
			t.Errorf("output %q has no value", name)
		}
	}
}

// TestTerraformLocalsEvaluate: Terraform evaluates every local whatever the
// inputs, even one only a disabled feature uses, so a local that fails on a
// default (slice() of an empty id) stops every plan. Each local that depends
// only on variables and other such locals is evaluated with the defaults and
// with each optional feature on.
func TestTerraformLocalsEvaluate(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	const ws = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/law-soc"
	scenarios := map[string]map[string]cty.Value{
		"defaults":    {},
		"export jobs": {"export_workspace_id": cty.StringVal(ws)},
		"sentinel":    {"sentinel_workspace_id": cty.StringVal(ws)},
		"vnet":        {"vnet_enabled": cty.True, "app_subnet_id": cty.StringVal("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/app")},
	}
	for name, set := range scenarios {
		t.Run(name, func(t *testing.T) {
			vars := cfg.varDefaults(t).AsValueMap()
			for k, v := range map[string]cty.Value{
				"subscription_id": cty.StringVal("00000000-0000-0000-0000-000000000000"), "resource_group_name": cty.StringVal("rg-tokenpivot"),
				"name_suffix": cty.StringVal("contoso01"), "export_storage_account_name": cty.StringVal("stlaexport"),
			} {
				vars[k] = v
			}
			for k, v := range set {
				vars[k] = v
			}
			// static reports whether a local depends only on var.* and other
			// such locals.
			var static func(name string, seen map[string]bool) bool
			static = func(name string, seen map[string]bool) bool {
				if seen[name] {
					return false
				}
				seen[name] = true
				for _, tr := range cfg.locals[name].Variables() {
					switch tr.RootName() {
					case "var":
					case "local":
						if !static(tr[1].(hcl.TraverseAttr).Name, seen) {
							return false
						}
					default:
						return false
					}
				}
				return true
			}
			values := map[string]cty.Value{}
			var eval func(name string) cty.Value
			eval = func(name string) cty.Value {
				if v, ok := values[name]; ok {
					return v
				}
				locals := map[string]cty.Value{}
				for _, tr := range cfg.locals[name].Variables() {
					if tr.RootName() == "local" {
						n := tr[1].(hcl.TraverseAttr).Name
						locals[n] = eval(n)
					}
				}
				v, diags := cfg.locals[name].Value(&hcl.EvalContext{
					Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "local": cty.ObjectVal(locals)},
					Functions: tfFunctions,
				})
				if diags.HasErrors() {
					t.Errorf("local.%s: %s", name, diags.Error())
					v = cty.DynamicVal
				}
				values[name] = v
				return v
			}
			n := 0
			for _, name := range sortedKeys(cfg.locals) {
				if static(name, map[string]bool{}) {
					eval(name)
					n++
				}
			}
			if n < 5 {
				t.Errorf("only %d static locals evaluated", n)
			}
		})
	}
}
