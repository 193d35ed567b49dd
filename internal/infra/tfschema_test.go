package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// tfSchemaBlock is a block of `terraform providers schema -json`.
type tfSchemaBlock struct {
	Attributes map[string]struct {
		Type       json.RawMessage `json:"type"`
		Required   bool            `json:"required"`
		Optional   bool            `json:"optional"`
		Computed   bool            `json:"computed"`
		Deprecated bool            `json:"deprecated"`
	} `json:"attributes"`
	BlockTypes map[string]struct {
		NestingMode string        `json:"nesting_mode"`
		MinItems    int           `json:"min_items"`
		MaxItems    int           `json:"max_items"`
		Block       tfSchemaBlock `json:"block"`
	} `json:"block_types"`
	Deprecated bool `json:"deprecated"`
}

type tfProviderSchema struct {
	Provider struct {
		Block tfSchemaBlock `json:"block"`
	} `json:"provider"`
	Resources   map[string]struct{ Block tfSchemaBlock } `json:"resource_schemas"`
	DataSources map[string]struct{ Block tfSchemaBlock } `json:"data_source_schemas"`
}

var (
	azurermOnce   sync.Once
	azurermSchema *tfProviderSchema
	azurermErr    error
)

func loadAzurerm(t *testing.T) *tfProviderSchema {
	t.Helper()
	azurermOnce.Do(func() {
		paths, err := filepath.Glob(filepath.Join(schemaDir, "azurerm-*.schema.json"))
		if err != nil || len(paths) != 1 {
			azurermErr = fmt.Errorf("want one azurerm-*.schema.json in %s, found %v: run go run ./tools/azschemas", schemaDir, paths)
			return
		}
		data, err := os.ReadFile(paths[0])
		if err != nil {
			azurermErr = err
			return
		}
		var doc struct {
			ProviderSchemas map[string]*tfProviderSchema `json:"provider_schemas"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			azurermErr = err
			return
		}
		azurermSchema = doc.ProviderSchemas["registry.terraform.io/hashicorp/azurerm"]
		if azurermSchema == nil {
			azurermErr = fmt.Errorf("%s has no hashicorp/azurerm", paths[0])
		}
	})
	if azurermErr != nil {
		t.Fatal(azurermErr)
	}
	return azurermSchema
}

// Meta-arguments Terraform itself handles, in any resource or data block.
var tfMetaArgs = map[string]bool{"count": true, "for_each": true, "depends_on": true, "provider": true}
var tfMetaBlocks = map[string]bool{"lifecycle": true, "provisioner": true, "connection": true}

// checkTFBlock checks body against a provider schema block: every argument
// and block exists, none is deprecated or computed-only, every required one
// is set, nested blocks respect their counts, and literal values have the
// attribute's primitive type. Values computed from references are unchecked.
func checkTFBlock(body *hclsyntax.Body, s tfSchemaBlock, path string, out *[]finding) {
	at := func(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }
	for name, attr := range body.Attributes {
		if tfMetaArgs[name] && path == "" {
			continue
		}
		a, ok := s.Attributes[name]
		switch {
		case !ok:
			msg := "unknown argument"
			if c := closest(name, sortedKeys(s.Attributes)); c != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", c)
			}
			*out = append(*out, finding{at(attr.SrcRange), path + name + ": " + msg})
			continue
		case a.Deprecated:
			*out = append(*out, finding{at(attr.SrcRange), path + name + ": deprecated argument"})
		case a.Computed && !a.Optional && !a.Required:
			*out = append(*out, finding{at(attr.SrcRange), path + name + ": read-only (computed) attribute set"})
		}
		if len(attr.Expr.Variables()) == 0 {
			if v, diags := attr.Expr.Value(nil); !diags.HasErrors() && v.IsWhollyKnown() && !v.IsNull() {
				var typ any
				_ = json.Unmarshal(a.Type, &typ)
				if msg := tfTypeMismatch(v, typ); msg != "" {
					*out = append(*out, finding{at(attr.SrcRange), path + name + ": " + msg})
				}
			}
		}
	}
	for _, name := range sortedKeys(s.Attributes) {
		if a := s.Attributes[name]; a.Required {
			if _, ok := body.Attributes[name]; !ok {
				*out = append(*out, finding{at(body.SrcRange), path + name + ": missing required argument"})
			}
		}
	}
	counts := map[string]int{}
	for _, b := range body.Blocks {
		if tfMetaBlocks[b.Type] && path == "" {
			continue
		}
		if b.Type == "dynamic" {
			// dynamic "x" { for_each = ...; content { ... } }: zero or more x
			// blocks, each the content body. It may make none, so it counts
			// towards no minimum (nor maximum).
			if len(b.Labels) != 1 {
				*out = append(*out, finding{at(b.TypeRange), path + "dynamic: want one label, the block type"})
				continue
			}
			bt, ok := s.BlockTypes[b.Labels[0]]
			if !ok {
				*out = append(*out, finding{at(b.TypeRange), path + "dynamic " + b.Labels[0] + ": unknown block"})
				continue
			}
			if _, ok := b.Body.Attributes["for_each"]; !ok {
				*out = append(*out, finding{at(b.TypeRange), path + "dynamic " + b.Labels[0] + ": no for_each"})
			}
			contents := 0
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					contents++
					checkTFBlock(c.Body, bt.Block, path+b.Labels[0]+".", out)
				}
			}
			if contents != 1 {
				*out = append(*out, finding{at(b.TypeRange), fmt.Sprintf("%sdynamic %s: %d content blocks, want 1", path, b.Labels[0], contents)})
			}
			continue
		}
		bt, ok := s.BlockTypes[b.Type]
		if !ok {
			msg := "unknown block"
			if c := closest(b.Type, sortedKeys(s.BlockTypes)); c != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", c)
			}
			*out = append(*out, finding{at(b.TypeRange), path + b.Type + ": " + msg})
			continue
		}
		if bt.Block.Deprecated {
			*out = append(*out, finding{at(b.TypeRange), path + b.Type + ": deprecated block"})
		}
		counts[b.Type]++
		checkTFBlock(b.Body, bt.Block, path+b.Type+".", out)
	}
	for _, name := range sortedKeys(s.BlockTypes) {
		bt := s.BlockTypes[name]
		if counts[name] < bt.MinItems {
			*out = append(*out, finding{at(body.SrcRange), fmt.Sprintf("%s%s: missing required block (at least %d)", path, name, bt.MinItems)})
		}
		if bt.MaxItems > 0 && counts[name] > bt.MaxItems {
			*out = append(*out, finding{at(body.SrcRange), fmt.Sprintf("%s%s: %d blocks, at most %d", path, name, counts[name], bt.MaxItems)})
		}
	}
}

// tfTypeMismatch compares a literal with a schema type ("string", "bool",
// "number", ["list", ...], ["map", ...], ...), allowing Terraform's own
// conversions between primitives.
func tfTypeMismatch(v cty.Value, typ any) string {
	switch typ := typ.(type) {
	case string:
		switch typ {
		case "string":
			if !v.Type().IsPrimitiveType() {
				return fmt.Sprintf("is %s, want a string", v.Type().FriendlyName())
			}
		case "bool":
			if v.Type() == cty.String && v.AsString() != "true" && v.AsString() != "false" || v.Type() == cty.Number || !v.Type().IsPrimitiveType() {
				return fmt.Sprintf("is %s %s, want a bool", v.Type().FriendlyName(), v.GoString())
			}
		case "number":
			if v.Type() == cty.Bool || !v.Type().IsPrimitiveType() {
				return fmt.Sprintf("is %s, want a number", v.Type().FriendlyName())
			}
			if v.Type() == cty.String {
				if _, err := cty.ParseNumberVal(v.AsString()); err != nil {
					return fmt.Sprintf("%q is not a number", v.AsString())
				}
			}
		}
	case []any:
		if len(typ) == 0 {
			return ""
		}
		switch typ[0] {
		case "list", "set":
			if !v.Type().IsTupleType() && !v.Type().IsListType() && !v.Type().IsSetType() {
				return fmt.Sprintf("is %s, want a %s", v.Type().FriendlyName(), typ[0])
			}
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				if msg := tfTypeMismatch(e, typ[1]); msg != "" {
					return "element " + msg
				}
			}
		case "map", "object":
			if !v.Type().IsObjectType() && !v.Type().IsMapType() {
				return fmt.Sprintf("is %s, want a %s", v.Type().FriendlyName(), typ[0])
			}
		}
	}
	return ""
}

// azapiResourceArgs are the azapi_resource arguments and blocks (azapi 2.x
// documentation; no schema of the azapi provider is available offline, so
// this list stands in for it: argument names only, no types).
var azapiResourceArgs = map[string]bool{
	"type": true, "name": true, "parent_id": true, "location": true, "body": true, "tags": true,
	"response_export_values": true, "ignore_missing_property": true, "ignore_casing": true,
	"ignore_null_property": true, "schema_validation_enabled": true, "locks": true,
	"replace_triggers_external_values": true, "replace_triggers_refs": true, "sensitive_body": true,
	"sensitive_body_version": true, "create_headers": true, "read_headers": true, "update_headers": true,
	"delete_headers": true, "create_query_parameters": true, "read_query_parameters": true,
	"update_query_parameters": true, "delete_query_parameters": true, "retry": true,
}
var azapiResourceBlocks = map[string]map[string]bool{
	"identity": {"type": true, "identity_ids": true},
	"timeouts": {"create": true, "read": true, "update": true, "delete": true},
}

// tfValue turns an HCL expression into the value model of the bicep-types
// check: literals, object and tuple constructors, [for ...] lists (a list of
// the item), templates (strings; known only without interpolation) and
// var.* (the variable's declared primitive type). Anything else is unknown.
func tfValue(cfg *tfConfig, e hclsyntax.Expression) *value {
	line := e.Range().Start.Line
	switch e := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		obj := &value{kind: "object", known: true, line: line}
		for _, item := range e.Items {
			obj.fields = append(obj.fields, field{tfKey(item.KeyExpr), tfValue(cfg, item.ValueExpr), item.KeyExpr.Range().Start.Line})
		}
		return obj
	case *hclsyntax.TupleConsExpr:
		arr := &value{kind: "array", known: true, line: line}
		for _, it := range e.Exprs {
			arr.items = append(arr.items, tfValue(cfg, it))
		}
		return arr
	case *hclsyntax.ForExpr:
		if e.KeyExpr != nil {
			return &value{kind: "object", line: line}
		}
		return &value{kind: "array", known: true, items: []*value{tfValue(cfg, e.ValExpr)}, line: line}
	case *hclsyntax.TemplateExpr:
		if v, diags := e.Value(nil); len(e.Variables()) == 0 && !diags.HasErrors() && v.Type() == cty.String {
			return &value{kind: "string", known: true, str: v.AsString(), line: line}
		}
		return &value{kind: "string", line: line}
	case *hclsyntax.LiteralValueExpr:
		v := e.Val
		switch {
		case v.IsNull():
			return &value{kind: "null", known: true, line: line}
		case v.Type() == cty.String:
			return &value{kind: "string", known: true, str: v.AsString(), line: line}
		case v.Type() == cty.Bool:
			return &value{kind: "bool", known: true, b: v.True(), line: line}
		case v.Type() == cty.Number:
			if n, acc := v.AsBigFloat().Int64(); acc == 0 {
				return &value{kind: "int", known: true, num: n, line: line}
			}
		}
	case *hclsyntax.ScopeTraversalExpr:
		if e.Traversal.RootName() == "var" && len(e.Traversal) == 2 {
			name := e.Traversal[1].(hcl.TraverseAttr).Name
			if body, ok := cfg.variables[name]; ok {
				if ta, ok := body.Attributes["type"]; ok {
					switch hcl.ExprAsKeyword(ta.Expr) {
					case "string":
						return &value{kind: "string", line: line}
					case "bool":
						return &value{kind: "bool", line: line}
					case "number":
						return &value{kind: "int", line: line} // every number variable here is whole
					}
				}
			}
		}
	}
	return &value{line: line}
}

// terraformSchemaFindings checks every resource, data source and the azurerm
// provider block of dir: azurerm ones against the provider schema, the
// azapi_resource ones' arguments against azapiResourceArgs and their body
// (with name, location, tags and identity.type) against the bicep-types of
// their type@api. What it cannot check: values computed from other resources
// or functions (their types), provider-side validation (enums of azurerm
// arguments are not in the provider schema, naming rules), and anything the
// azapi provider or Resource Manager checks only at plan or apply.
func terraformSchemaFindings(t *testing.T, dir string) []finding {
	t.Helper()
	cfg := loadTerraform(t, dir)
	schema := loadAzurerm(t)
	x := loadTypes(t)
	var out []finding
	for _, path := range sortedKeys(cfg.bodies) {
		for _, b := range cfg.bodies[path].Blocks {
			if b.Type == "provider" && b.Labels[0] == "azurerm" {
				checkTFBlock(b.Body, schema.Provider.Block, "provider.azurerm.", &out)
			}
		}
	}
	for _, key := range sortedKeys(cfg.data) {
		d := cfg.data[key]
		if d.typ == "azapi_resource" {
			out = append(out, checkAzapiData(x, key, d)...)
			continue
		}
		s, ok := schema.DataSources[d.typ]
		if !ok {
			out = append(out, finding{d.file, "data." + key + ": data source type not in the azurerm schema copy"})
			continue
		}
		var fs []finding
		checkTFBlock(d.body, s.Block, "", &fs)
		for _, f := range fs {
			out = append(out, finding{f.at, "data." + key + "." + f.msg})
		}
	}
	for _, key := range sortedKeys(cfg.resources) {
		r := cfg.resources[key]
		if r.typ == "azapi_resource" {
			out = append(out, checkAzapi(cfg, x, key, r)...)
			continue
		}
		s, ok := schema.Resources[r.typ]
		if !ok {
			out = append(out, finding{r.file, key + ": resource type not in the azurerm schema copy (misspelt, or add it to tools/azschemas)"})
			continue
		}
		if s.Block.Deprecated {
			out = append(out, finding{r.file, key + ": deprecated resource type"})
		}
		var fs []finding
		checkTFBlock(r.body, s.Block, "", &fs)
		for _, f := range fs {
			out = append(out, finding{f.at, key + "." + f.msg})
		}
	}
	return out
}

func checkAzapi(cfg *tfConfig, x *typeIndex, key string, r tfBlock) []finding {
	var out []finding
	at := func(rg hcl.Range) string { return fmt.Sprintf("%s:%d", rg.Filename, rg.Start.Line) }
	for name, attr := range r.body.Attributes {
		if !azapiResourceArgs[name] && !tfMetaArgs[name] {
			out = append(out, finding{at(attr.SrcRange), key + "." + name + ": unknown azapi_resource argument"})
		}
	}
	for _, need := range []string{"type", "name", "parent_id", "body"} {
		if _, ok := r.body.Attributes[need]; !ok {
			out = append(out, finding{at(r.body.SrcRange), key + "." + need + ": missing required argument"})
		}
	}
	for _, b := range r.body.Blocks {
		args, ok := azapiResourceBlocks[b.Type]
		if !ok && !tfMetaBlocks[b.Type] {
			out = append(out, finding{at(b.TypeRange), key + "." + b.Type + ": unknown azapi_resource block"})
			continue
		}
		for name, attr := range b.Body.Attributes {
			if !args[name] && !tfMetaBlocks[b.Type] {
				out = append(out, finding{at(attr.SrcRange), key + "." + b.Type + "." + name + ": unknown argument"})
			}
		}
	}
	ta, ok := r.body.Attributes["type"]
	if !ok {
		return out
	}
	tv, diags := ta.Expr.Value(nil)
	if diags.HasErrors() || tv.Type() != cty.String {
		return append(out, finding{at(ta.SrcRange), key + ".type: not a literal Type@apiVersion"})
	}
	body := &value{kind: "object", known: true}
	if a, ok := r.body.Attributes["body"]; ok {
		body = tfValue(cfg, a.Expr)
		if body.kind != "object" {
			return append(out, finding{at(a.SrcRange), key + ".body: not an object"})
		}
	}
	// The arguments azapi moves into the request body.
	for _, name := range []string{"name", "location", "tags"} {
		if a, ok := r.body.Attributes[name]; ok {
			body.fields = append(body.fields, field{name, tfValue(cfg, a.Expr), a.SrcRange.Start.Line})
		}
	}
	for _, b := range r.body.Blocks {
		if b.Type == "identity" {
			id := &value{kind: "object", line: b.TypeRange.Start.Line}
			if a, ok := b.Body.Attributes["type"]; ok {
				id.fields = append(id.fields, field{"type", tfValue(cfg, a.Expr), a.SrcRange.Start.Line})
			}
			body.fields = append(body.fields, field{"identity", id, b.TypeRange.Start.Line})
		}
	}
	for _, f := range x.checkResource(tv.AsString(), body, at(r.body.SrcRange)) {
		out = append(out, finding{f.at, key + ": " + f.msg})
	}
	return out
}

// azapiDataArgs are the arguments of the azapi_resource data source (azapi
// 2.x documentation; as for azapiResourceArgs, names only).
var azapiDataArgs = map[string]bool{
	"type": true, "resource_id": true, "name": true, "parent_id": true, "response_export_values": true,
	"ignore_not_found": true, "headers": true, "query_parameters": true, "retry": true,
	"read_headers": true, "read_query_parameters": true,
}

// checkAzapiData checks a data "azapi_resource": known arguments, a literal
// Type@apiVersion that exists in the bicep-types, and what it reads named by
// resource_id or name and parent_id.
func checkAzapiData(x *typeIndex, key string, d tfBlock) []finding {
	var out []finding
	at := func(rg hcl.Range) string { return fmt.Sprintf("%s:%d", rg.Filename, rg.Start.Line) }
	for name, attr := range d.body.Attributes {
		if !azapiDataArgs[name] && !tfMetaArgs[name] {
			out = append(out, finding{at(attr.SrcRange), "data." + key + "." + name + ": unknown azapi_resource data source argument"})
		}
	}
	for _, b := range d.body.Blocks {
		if b.Type != "timeouts" && !tfMetaBlocks[b.Type] {
			out = append(out, finding{at(b.TypeRange), "data." + key + "." + b.Type + ": unknown azapi_resource data source block"})
		}
	}
	_, byID := d.body.Attributes["resource_id"]
	_, byName := d.body.Attributes["name"]
	if !byID && !byName {
		out = append(out, finding{at(d.body.SrcRange), "data." + key + ": needs resource_id, or name and parent_id"})
	}
	ta, ok := d.body.Attributes["type"]
	if !ok {
		return append(out, finding{at(d.body.SrcRange), "data." + key + ".type: missing required argument"})
	}
	tv, diags := ta.Expr.Value(nil)
	if diags.HasErrors() || tv.Type() != cty.String {
		return append(out, finding{at(ta.SrcRange), "data." + key + ".type: not a literal Type@apiVersion"})
	}
	// An empty body: only the type and API version are checked.
	for _, f := range x.checkResource(tv.AsString(), &value{kind: "object", known: true}, at(d.body.SrcRange)) {
		if strings.Contains(f.msg, "required") {
			continue // a read sends no body
		}
		out = append(out, finding{f.at, "data." + key + ": " + f.msg})
	}
	return out
}

func TestTerraformSchema(t *testing.T) {
	for _, f := range terraformSchemaFindings(t, terraformDir) {
		t.Error(f)
	}
}

// TestTerraformValidate runs `terraform validate` where it can: it needs the
// providers, which `terraform init` downloads from the registry. Offline
// (this project's CI machine) init fails and the test says so and skips;
// the checks above are what stands in for it.
func TestTerraformValidate(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("no terraform binary on PATH")
	}
	dir := t.TempDir()
	paths, _ := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	// Bounded: a network that drops packets must not hang the test run.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	init := exec.CommandContext(ctx, bin, "init", "-backend=false", "-input=false", "-no-color")
	init.Dir, init.Env = dir, env
	if out, err := init.CombinedOutput(); err != nil {
		first := string(out)
		if i := strings.Index(first, "Error:"); i >= 0 {
			first = first[i:]
		}
		if len(first) > 300 {
			first = first[:300]
		}
		t.Skipf("terraform validate skipped: init -backend=false cannot install the providers here (%v): %s", err, strings.TrimSpace(first))
	}
	validate := exec.CommandContext(ctx, bin, "validate", "-no-color")
	validate.Dir, validate.Env = dir, env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Errorf("terraform validate: %v\n%s", err, out)
	}
}
