package infra

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// perpetualDiffProblems lists what would make a second plan after apply show
// a change to the function app (or the app run with a key-based host
// storage). What a clean result proves, given azapi's documented diff (the
// configured body against the site's GET, ignoring properties the GET does
// not return, which is the default ignore_missing_property = true):
//
//   - no app setting has a literal empty value (the old AzureWebJobsStorage = ""
//     override): an empty value is dropped or mapped by the service and so
//     differs from the configuration on every refresh;
//   - settings that are empty by default (TOKENPIVOT_RULE, ...) are left out
//     of the site, not sent as "", in both templates;
//   - AzureWebJobsStorage itself is set by neither template, and the site is
//     not azurerm_function_app_flex_consumption (which injects a key-based
//     AzureWebJobsStorage on every update, hashicorp/terraform-provider-azurerm#29693);
//   - the site is an azapi_resource whose body carries the app settings in
//     siteConfig.appSettings, which Resource Manager does not return on a GET,
//     and ignore_missing_property is not turned off.
//
// What it cannot prove offline: that every other property the body sets
// comes back from Azure exactly as written (the schema test checks they are
// writable, real properties; the values are the ones Microsoft's samples use).
func perpetualDiffProblems(t *testing.T, infra string) []string {
	t.Helper()
	var out []string
	cfg := loadTerraform(t, filepath.Join(infra, "terraform"))
	for key, r := range cfg.resources {
		if r.typ == "azurerm_function_app_flex_consumption" || r.typ == "azurerm_linux_function_app" {
			out = append(out, fmt.Sprintf("terraform: %s manages the site with azurerm, which writes a key-based AzureWebJobsStorage", key))
		}
	}
	app, ok := cfg.resources["azapi_resource.function_app"]
	if !ok {
		return append(out, "terraform: no azapi_resource.function_app")
	}
	if err := appSettingsFromLocal(app); err != nil {
		out = append(out, "terraform: "+err.Error())
	}
	if a, ok := app.body.Attributes["ignore_missing_property"]; ok {
		if v, diags := a.Expr.Value(nil); diags.HasErrors() || v.Type() != cty.Bool || v.False() {
			out = append(out, "terraform: function_app sets ignore_missing_property other than true: the write-only app settings would show as a change on every plan")
		}
	}
	if obj, ok := cfg.locals["app_settings"].(*hclsyntax.ObjectConsExpr); ok {
		for _, item := range obj.Items {
			name := hcl.ExprAsKeyword(item.KeyExpr)
			if name == "AzureWebJobsStorage" {
				out = append(out, "terraform: local.app_settings sets AzureWebJobsStorage (the key-based connection); use the AzureWebJobsStorage__* identity settings only")
			}
			if len(item.ValueExpr.Variables()) == 0 {
				if v, diags := item.ValueExpr.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.AsString() == "" {
					out = append(out, fmt.Sprintf("terraform: app setting %s is a literal empty value", name))
				}
			}
		}
	} else {
		out = append(out, "terraform: local.app_settings is not an object")
	}

	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(infra, "bicep", "main.bicep"), files)
	if !strings.Contains(main.resources["functionApp"].body, "appSettings: map(filter(items(appSettings), s => !empty(s.value)), s => {") {
		out = append(out, "bicep: functionApp does not leave empty app settings out (filter(items(appSettings), s => !empty(s.value)))")
	}
	for name, expr := range props(main.vars["appSettings"]) {
		if name == "AzureWebJobsStorage" {
			out = append(out, "bicep: appSettings sets AzureWebJobsStorage")
		}
		if expr == "''" {
			out = append(out, fmt.Sprintf("bicep: app setting %s is a literal empty value", name))
		}
	}
	return out
}

func TestNoPerpetualDiff(t *testing.T) {
	for _, p := range perpetualDiffProblems(t, filepath.Join(repoRoot, "infra")) {
		t.Error(p)
	}
	// Each way back to a perpetual diff is caught.
	tests := []struct{ name, file, old, new, want string }{
		{"empty override", "terraform/main.tf",
			"    TOKENPIVOT_ALLOWED_LATENESS          = \"${var.allowed_lateness_hours}h\"\n",
			"    TOKENPIVOT_ALLOWED_LATENESS          = \"${var.allowed_lateness_hours}h\"\n    AzureWebJobsStorage                  = \"\"\n",
			"literal empty value"},
		{"empty values sent", "terraform/main.tf", ` if value != ""]`, `]`, "does not leave out empty values"},
		{"ignore_missing_property off", "terraform/main.tf",
			"  response_export_values = [", "  ignore_missing_property = false\n  response_export_values = [",
			"ignore_missing_property"},
		{"bicep sends empty values", "bicep/main.bicep",
			"map(filter(items(appSettings), s => !empty(s.value)), s => {", "map(items(appSettings), s => {",
			"does not leave empty app settings out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infra := copyInfra(t)
			plant(t, filepath.Join(infra, tt.file), tt.old, tt.new)
			got := perpetualDiffProblems(t, infra)
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Errorf("not reported (want %q): %v", tt.want, got)
			}
		})
	}
}

// TestContradictoryInputs: a new export account has neither containers to
// import nor a system topic to reuse; Terraform rejects the pairs in variable
// validation (at plan, before any resource is read), Bicep with fail() in
// the value it passes on (before the export module deploys).
func TestContradictoryInputs(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	tests := []struct {
		variable         string
		create, existing bool
		accepted         bool
	}{
		{"export_containers_exist", false, false, true},
		{"export_containers_exist", false, true, true},
		{"export_containers_exist", true, false, true},
		{"export_containers_exist", true, true, false},
		{"system_topic_exists", false, true, true},
		{"system_topic_exists", true, false, true},
		{"system_topic_exists", true, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%v,create=%v", tt.variable, tt.existing, tt.create), func(t *testing.T) {
			body, ok := cfg.variables[tt.variable]
			if !ok {
				t.Fatalf("no variable %s", tt.variable)
			}
			vars := cfg.varDefaults(t).AsValueMap()
			vars["create_export_storage_account"] = cty.BoolVal(tt.create)
			vars[tt.variable] = cty.BoolVal(tt.existing)
			accepted := true
			for _, b := range body.Blocks {
				if b.Type != "validation" {
					continue
				}
				v, ok := cfg.evalStatic(t, b.Body.Attributes["condition"].Expr, vars)
				if !ok {
					t.Fatal("validation condition is not computable from variables")
				}
				if v.False() {
					accepted = false
					msg, _ := b.Body.Attributes["error_message"].Expr.Value(nil)
					if !strings.Contains(msg.AsString(), "create_export_storage_account") {
						t.Errorf("error message %q does not name create_export_storage_account", msg.AsString())
					}
				}
			}
			if accepted != tt.accepted {
				t.Errorf("accepted = %v, want %v", accepted, tt.accepted)
			}
		})
	}

	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	if !regexp.MustCompile(`^createExportStorageAccount && systemTopicExists \? fail\('[^']+'\) : systemTopicExists$`).MatchString(main.vars["checkedSystemTopicExists"]) {
		t.Errorf("main.bicep: checkedSystemTopicExists = %q, want a fail() when both are true", main.vars["checkedSystemTopicExists"])
	}
	if got := props(mustBlockErr(main.modules["exportAccess"].body, "params:"))["systemTopicExists"]; got != "checkedSystemTopicExists" {
		t.Errorf("main.bicep: exportAccess gets systemTopicExists: %q, want checkedSystemTopicExists", got)
	}
	if !strings.Contains(main.vars["eventGridWebhookUrl"], "empty(eventGridExtensionKey) ? fail(") {
		t.Error("main.bicep: subscribeEvents without eventGridExtensionKey does not fail")
	}
}

// TestExistingSystemTopicUntouched: with system_topic_exists /
// systemTopicExists the topic is only read, never written, so its owner's
// tags and identity stay; the subscriptions and the dead-letter role use it.
func TestExistingSystemTopicUntouched(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	for _, tt := range []struct {
		exists           bool
		resourceN, dataN int64
	}{{false, 1, 0}, {true, 0, 1}} {
		vars := cfg.varDefaults(t).AsValueMap()
		vars["system_topic_exists"] = cty.BoolVal(tt.exists)
		for key, want := range map[string]int64{
			"azurerm_eventgrid_system_topic.export_topic":               tt.resourceN,
			"data:azurerm_eventgrid_system_topic.existing_export_topic": tt.dataN,
		} {
			b, ok := cfg.resources[key]
			if strings.HasPrefix(key, "data:") {
				b, ok = cfg.data[strings.TrimPrefix(key, "data:")]
			}
			if !ok {
				t.Fatalf("terraform: no %s", key)
			}
			a, ok := b.body.Attributes["count"]
			if !ok {
				t.Fatalf("terraform: %s has no count", key)
			}
			v, ok := cfg.evalStatic(t, a.Expr, vars)
			if !ok {
				t.Fatalf("terraform: %s count is not computable from variables", key)
			}
			if got, _ := v.AsBigFloat().Int64(); got != want {
				t.Errorf("system_topic_exists=%v: %s count = %d, want %d", tt.exists, key, got, want)
			}
		}
	}
	export := string(cfg.files[filepath.Join(terraformDir, "export.tf")])
	for _, want := range []string{"system_topic          = local.export_topic_name", "principal_id         = local.export_topic_principal_id"} {
		if !strings.Contains(export, want) {
			t.Errorf("terraform: export.tf lacks %q", want)
		}
	}

	files := map[string]*bicepFile{}
	loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	access := files[filepath.Join(bicepDir, "modules", "export-access.bicep")]
	if !strings.Contains(access.text, "resource exportTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (!systemTopicExists) {") {
		t.Error("export-access.bicep: exportTopic is not created only when systemTopicExists is false")
	}
	ref, ok := access.resources["systemTopic"]
	if !ok || !ref.existing || access.createdOf(ref) != access.resources["exportTopic"] {
		t.Error("export-access.bicep: no existing reference systemTopic naming the same topic as exportTopic")
	}
	if got := access.outputs["topicPrincipalId"]; got != "systemTopic.identity.principalId" {
		t.Errorf("export-access.bicep: topicPrincipalId = %q, want systemTopic.identity.principalId (the topic either way)", got)
	}
	for _, sym := range []string{"interactiveSubscription", "nonInteractiveSubscription"} {
		if p := props(access.resources[sym].body)["parent"]; p != "systemTopic" {
			t.Errorf("export-access.bicep: %s parent = %q, want systemTopic", sym, p)
		}
	}
}
