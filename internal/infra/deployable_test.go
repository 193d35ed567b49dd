package infra

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"
)

// TestEverySettingDeployable: every provision (Bicep, azd, Terraform)
// replaces the site's whole app-settings set, so a setting an operator adds
// by hand is deleted by the next deployment and, for the webhook, delivery
// stops without a word. The rendered app settings of both languages must
// therefore hold every TOKENPIVOT_* setting the code reads, each from a value
// a deployment can give (not a literal empty one), except the two profiling
// switches (a developer's, never deployed) and the test harness's own
// variables (internal/azurite, not settings of the app).
func TestEverySettingDeployable(t *testing.T) {
	harnessOnly := func(where []string) bool {
		for _, w := range where {
			if !strings.Contains(filepath.ToSlash(w), "internal/azurite/") {
				return false
			}
		}
		return true
	}
	profiling := []string{"TOKENPIVOT_CPUPROFILE", "TOKENPIVOT_MEMPROFILE", "TOKENPIVOT_HEAPPEAK"}

	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	bicep := props(main.vars["appSettings"])
	cfg := loadTerraform(t, terraformDir)
	obj, ok := cfg.locals["app_settings"].(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatal("terraform: local.app_settings is not an object")
	}
	tf := map[string]hclsyntax.Expression{}
	for _, item := range obj.Items {
		tf[hcl.ExprAsKeyword(item.KeyExpr)] = item.ValueExpr
	}

	read := goSettingNames(t)
	checked := 0
	for _, name := range sortedKeys(read) {
		if slices.Contains(profiling, name) || harnessOnly(read[name]) {
			continue
		}
		checked++
		switch expr, ok := bicep[name]; {
		case !ok:
			t.Errorf("Bicep: %s (read at %s) is not in the app settings: a redeploy deletes it", name, read[name][0])
		case expr == "''":
			t.Errorf("Bicep: %s is a literal empty value: no deployment can set it", name)
		}
		switch expr, ok := tf[name]; {
		case !ok:
			t.Errorf("Terraform: %s (read at %s) is not in the app settings: an apply deletes it", name, read[name][0])
		case len(expr.Variables()) == 0:
			if v, diags := expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.AsString() == "" {
				t.Errorf("Terraform: %s is a literal empty value: no apply can set it", name)
			}
		}
	}
	if checked < 30 {
		t.Errorf("only %d settings checked: the scan of the code probably missed some", checked)
	}
	// Secrets are secure parameters / sensitive variables: never in
	// deployment logs or plan output.
	for _, p := range []string{"webhookUrl", "webhookSecret", "storageConnectionString"} {
		if !regexp.MustCompile(`@secure\(\)\nparam ` + p + ` string`).MatchString(main.text) {
			t.Errorf("main.bicep: param %s is not @secure()", p)
		}
	}
	for _, v := range []string{"webhook_url", "webhook_secret", "storage_connection_string"} {
		body, ok := cfg.variables[v]
		if !ok {
			t.Errorf("terraform: no variable %s", v)
			continue
		}
		if s, ok := body.Attributes["sensitive"]; !ok {
			t.Errorf("terraform: variable %s is not sensitive", v)
		} else if val, _ := s.Expr.Value(nil); val != cty.True {
			t.Errorf("terraform: variable %s is not sensitive", v)
		}
	}
	// Key Vault references resolve with the app's only identity.
	if !strings.Contains(main.resources["functionApp"].body, "keyVaultReferenceIdentity: functionIdentity.id") {
		t.Error("main.bicep: functionApp does not resolve Key Vault references with functionIdentity (keyVaultReferenceIdentity)")
	}
	app := cfg.resources["azapi_resource.function_app"]
	if !strings.Contains(string(app.body.SrcRange.SliceBytes(cfg.files[app.file])), "keyVaultReferenceIdentity = azurerm_user_assigned_identity.function_identity.id") {
		t.Error("terraform: function_app does not resolve Key Vault references with function_identity (keyVaultReferenceIdentity)")
	}
}

// TestSameExportURLBothLanguages: TOKENPIVOT_STORAGE_ACCOUNT_URL is the export
// account's blob endpoint as Azure reports it in both languages (a URL built
// from the public suffix would differ in sovereign clouds and with custom
// DNS), and the host's storage is addressed by its service URIs.
func TestSameExportURLBothLanguages(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	bicep := props(main.vars["appSettings"])
	if got := bicep["TOKENPIVOT_STORAGE_ACCOUNT_URL"]; got != "exportBlobEndpoint" {
		t.Errorf("main.bicep: TOKENPIVOT_STORAGE_ACCOUNT_URL = %s, want exportBlobEndpoint", got)
	}
	if got := main.vars["exportBlobEndpoint"]; got != "createExportStorageAccount ? exportAccount.outputs.blobEndpoint : existingExportAccount.properties.primaryEndpoints.blob" {
		t.Errorf("main.bicep: exportBlobEndpoint = %s, want the primary blob endpoint of the created or existing account", got)
	}
	cfg := loadTerraform(t, terraformDir)
	src, err := os.ReadFile(filepath.Join(terraformDir, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`TOKENPIVOT_STORAGE_ACCOUNT_URL\s+= local\.export_blob_endpoint\n`).Match(src) {
		t.Error("terraform: TOKENPIVOT_STORAGE_ACCOUNT_URL is not local.export_blob_endpoint")
	}
	export, err := os.ReadFile(filepath.Join(terraformDir, "export.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(export), "export_blob_endpoint    = one(concat(azurerm_storage_account.export_account[*].primary_blob_endpoint, data.azurerm_storage_account.existing_export_account[*].primary_blob_endpoint))") {
		t.Error("terraform: local.export_blob_endpoint is not the primary blob endpoint of the created or existing account")
	}
	_ = cfg
	for _, svc := range []string{"blob", "queue", "table"} {
		name := "AzureWebJobsStorage__" + svc + "ServiceUri"
		if got, want := bicep[name], "storage.properties.primaryEndpoints."+svc; got != want {
			t.Errorf("main.bicep: %s = %s, want %s", name, got, want)
		}
		if !regexp.MustCompile(name + `\s+= azurerm_storage_account\.storage\.primary_` + svc + `_endpoint\n`).Match(src) {
			t.Errorf("terraform: %s is not azurerm_storage_account.storage.primary_%s_endpoint", name, svc)
		}
	}
}

// TestHooksEveryPlatform: azd rejects a hook without a form for the
// platform it runs on, so each hook has a POSIX and a Windows (pwsh) form,
// and the scripts they run exist.
func TestHooksEveryPlatform(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "azure.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Hooks map[string]map[string]struct {
			Shell string `yaml:"shell"`
			Run   string `yaml:"run"`
		} `yaml:"hooks"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hooks) == 0 {
		t.Fatal("azure.yaml: no hooks")
	}
	for name, forms := range doc.Hooks {
		for platform, shell := range map[string]string{"posix": "sh", "windows": "pwsh"} {
			h, ok := forms[platform]
			switch {
			case !ok:
				t.Errorf("azure.yaml: hook %s has no %s form", name, platform)
				continue
			case h.Shell != shell:
				t.Errorf("azure.yaml: hook %s.%s runs with %q, want %s", name, platform, h.Shell, shell)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, h.Run)); err != nil {
				t.Errorf("azure.yaml: hook %s.%s: %v", name, platform, err)
			}
		}
	}
}

// TestScriptsNameTheSubscription: every az call of the scripts names the
// subscription (AZURE_SUBSCRIPTION_ID, which azd sets in hooks): with another
// default in the CLI, they would look for the app in the wrong subscription.
func TestScriptsNameTheSubscription(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "infra", "scripts", "*"))
	if err != nil {
		t.Fatal(err)
	}
	reAz := regexp.MustCompile(`(^|[\s$(&|;=])az\s+[a-z]`)
	calls := 0
	for _, p := range paths {
		if !strings.HasSuffix(p, ".sh") && !strings.HasSuffix(p, ".ps1") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			code := strings.TrimSpace(line)
			// `az account ...` is about the CLI's own login, not a resource.
			if strings.HasPrefix(code, "#") || !reAz.MatchString(strings.ReplaceAll(code, "az account", "")) {
				continue
			}
			calls++
			// A call may continue on the next line (\ or `).
			call := code
			for j := i; j+1 < len(lines) && (strings.HasSuffix(strings.TrimSpace(lines[j]), "\\") || strings.HasSuffix(strings.TrimSpace(lines[j]), "`")); j++ {
				call += " " + strings.TrimSpace(lines[j+1])
			}
			if !strings.Contains(call, "--subscription") {
				t.Errorf("%s:%d: az call without --subscription: %s", filepath.Base(p), i+1, code)
			}
		}
	}
	if calls < 4 {
		t.Errorf("found %d az calls in infra/scripts; the scan probably missed some", calls)
	}
}

// TestDownKeepsTheSOCsData: `azd down` deletes the app's resource group; the
// predown hook refuses while the export account (the exported sign-in logs)
// or the Sentinel workspace (TokenPivotAlerts_CL) is in it. Run with a fake
// az on PATH that answers "the account exists".
func TestDownKeepsTheSOCsData(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "az"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const ws = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/%s/providers/Microsoft.OperationalInsights/workspaces/law-soc"
	tests := []struct {
		name    string
		env     []string
		refused string
	}{
		{"export account in the app's group (the default)", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport"}, "the export storage account stlaexport"},
		{"export account in the app's group, named", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport", "TOKENPIVOT_EXPORT_RESOURCE_GROUP=RG-TokenPivot"}, "the export storage account stlaexport"},
		{"export account elsewhere", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport", "TOKENPIVOT_EXPORT_RESOURCE_GROUP=rg-soc"}, ""},
		{"Sentinel workspace in the app's group", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport", "TOKENPIVOT_EXPORT_RESOURCE_GROUP=rg-soc",
			"TOKENPIVOT_SENTINEL_WORKSPACE_ID=" + fmt.Sprintf(ws, "rg-tokenpivot")}, "the Sentinel workspace"},
		{"Sentinel workspace elsewhere", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport", "TOKENPIVOT_EXPORT_RESOURCE_GROUP=rg-soc",
			"TOKENPIVOT_SENTINEL_WORKSPACE_ID=" + fmt.Sprintf(ws, "rg-soc")}, ""},
		{"deleting it is meant", []string{"TOKENPIVOT_EXPORT_ACCOUNT=stlaexport", "TOKENPIVOT_DOWN_DELETES_EXPORT=true"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", filepath.Join(repoRoot, "infra", "scripts", "azd-predown.sh"))
			cmd.Env = append([]string{"PATH=" + fake + string(os.PathListSeparator) + os.Getenv("PATH"),
				"AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-000000000000", "AZURE_RESOURCE_GROUP=rg-tokenpivot"}, tt.env...)
			out, err := cmd.CombinedOutput()
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v\n%s", err, out)
			case tt.refused != "" && err == nil:
				t.Errorf("azd down allowed; want it refused for %s", tt.refused)
			case tt.refused != "" && (!strings.Contains(string(out), "REFUSED") || !strings.Contains(string(out), tt.refused)):
				t.Errorf("message does not name %q:\n%s", tt.refused, out)
			}
		})
	}
}

// TestTerraformKeepsTheSOCsData: a destroy (or a change that replaces them)
// never deletes the export containers or TokenPivotAlerts_CL.
func TestTerraformKeepsTheSOCsData(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	for _, key := range []string{
		"azurerm_storage_container.interactive_container",
		"azurerm_storage_container.non_interactive_container",
		"azurerm_log_analytics_workspace_table_custom_log.alerts_table",
	} {
		r, ok := cfg.resources[key]
		if !ok {
			t.Errorf("terraform: no %s", key)
			continue
		}
		kept := false
		for _, b := range r.body.Blocks {
			if b.Type != "lifecycle" {
				continue
			}
			if a, ok := b.Body.Attributes["prevent_destroy"]; ok {
				v, _ := a.Expr.Value(nil)
				kept = v == cty.True
			}
		}
		if !kept {
			t.Errorf("terraform: %s has no lifecycle { prevent_destroy = true }", key)
		}
	}
}

// TestOperability: what loses work without a word raises an alert in both
// languages (TestParityResources keeps the two sets equal): a dead-lettered
// event (an export blob never processed), a poison message, failed runs. And
// the function's own Log Analytics workspace takes no shared-key ingestion.
func TestOperability(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	for sym, want := range map[string][]string{
		"deadLetterAlert":       {"metricName: 'DeadLetteredCount'", "metricNamespace: 'Microsoft.EventGrid/systemTopics'", "exportTopicId"},
		"poisonQueueAlert":      {`message has "${workQueueName}-poison"`, "appInsights.id"},
		"functionFailuresAlert": {"requests\\n| where success == false", "appInsights.id"},
		"logAnalytics":          {"disableLocalAuth: true"},
	} {
		r, ok := main.resources[sym]
		if !ok {
			t.Errorf("main.bicep: no resource %s", sym)
			continue
		}
		for _, w := range want {
			if !strings.Contains(r.body, w) {
				t.Errorf("main.bicep: %s lacks %q", sym, w)
			}
		}
	}
	cfg := loadTerraform(t, terraformDir)
	for key, want := range map[string][]string{
		"azurerm_monitor_metric_alert.dead_letter_alert":                         {`metric_name      = "DeadLetteredCount"`, "scopes              = [local.export_topic_id]"},
		"azurerm_monitor_scheduled_query_rules_alert_v2.poison_queue_alert":      {`message has \"${local.work_queue_name}-poison\"`},
		"azurerm_monitor_scheduled_query_rules_alert_v2.function_failures_alert": {`requests\n| where success == false`},
		"azurerm_log_analytics_workspace.log_analytics":                          {"local_authentication_enabled = false"},
	} {
		r, ok := cfg.resources[key]
		if !ok {
			t.Errorf("terraform: no %s", key)
			continue
		}
		src := string(r.body.SrcRange.SliceBytes(cfg.files[r.file]))
		for _, w := range want {
			if !strings.Contains(src, w) {
				t.Errorf("terraform: %s lacks %q", key, w)
			}
		}
	}
}

// TestPrivateNetworking: vnetEnabled / vnet_enabled joins the app to a subnet
// and closes the function's storage to public networks (trusted Azure
// services still write dead letters), in both languages,
// and a switch without a subnet stops before anything changes.
func TestPrivateNetworking(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	if !regexp.MustCompile(`^vnetEnabled && empty\(appSubnetId\) \? fail\('[^']+'\) : appSubnetId$`).MatchString(main.vars["checkedAppSubnetId"]) {
		t.Errorf("main.bicep: checkedAppSubnetId = %q, want a fail() without appSubnetId", main.vars["checkedAppSubnetId"])
	}
	for sym, want := range map[string]string{
		"storage":     "defaultAction: vnetEnabled ? 'Deny' : 'Allow'\n      bypass: 'AzureServices'",
		"functionApp": "virtualNetworkSubnetId: vnetEnabled ? checkedAppSubnetId : any(null)",
	} {
		if !strings.Contains(main.resources[sym].body, want) {
			t.Errorf("main.bicep: %s lacks %q", sym, want)
		}
	}
	cfg := loadTerraform(t, terraformDir)
	src := func(key string) string {
		r := cfg.resources[key]
		return string(r.body.SrcRange.SliceBytes(cfg.files[r.file]))
	}
	if !strings.Contains(src("azurerm_storage_account.storage"), "default_action = var.vnet_enabled ? \"Deny\" : \"Allow\"\n    bypass         = [\"AzureServices\"]") {
		t.Error("terraform: storage does not deny public networks (but trusted services) with vnet_enabled")
	}
	if !strings.Contains(src("azapi_resource.function_app"), "virtualNetworkSubnetId = var.vnet_enabled ? var.app_subnet_id : null") {
		t.Error("terraform: function_app does not join app_subnet_id with vnet_enabled")
	}
	vars := cfg.varDefaults(t).AsValueMap()
	cond := cfg.variables["app_subnet_id"].Blocks[0].Body.Attributes["condition"].Expr
	for _, tt := range []struct {
		enabled bool
		subnet  string
		ok      bool
	}{{false, "", true}, {true, "", false}, {true, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/app", true}} {
		vars["vnet_enabled"], vars["app_subnet_id"] = cty.BoolVal(tt.enabled), cty.StringVal(tt.subnet)
		v, known := cfg.evalStatic(t, cond, vars)
		if !known || v.True() != tt.ok {
			t.Errorf("terraform: vnet_enabled=%v app_subnet_id=%q accepted = %v, want %v", tt.enabled, tt.subnet, known && v.True(), tt.ok)
		}
	}
}

// TestTerraformSubscriptionExplicit: azurerm 4.x stops without a
// subscription id and no longer takes the Azure CLI's default; the
// configuration names it (a required variable) for both providers.
func TestTerraformSubscriptionExplicit(t *testing.T) {
	cfg := loadTerraform(t, terraformDir)
	v, ok := cfg.variables["subscription_id"]
	if !ok {
		t.Fatal("terraform: no variable subscription_id")
	}
	if _, ok := v.Attributes["default"]; ok {
		t.Error("terraform: subscription_id has a default; it must be given")
	}
	vars := cfg.varDefaults(t).AsValueMap()
	cond := v.Blocks[0].Body.Attributes["condition"].Expr
	for value, want := range map[string]bool{"0b1f6471-1bf0-4dda-aec3-cb9272f09590": true, "": false, "my-subscription": false} {
		vars["subscription_id"] = cty.StringVal(value)
		if got, known := cfg.evalStatic(t, cond, vars); !known || got.True() != want {
			t.Errorf("terraform: subscription_id = %q accepted = %v, want %v", value, known && got.True(), want)
		}
	}
	src, err := os.ReadFile(filepath.Join(terraformDir, "versions.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, provider := range []string{"azurerm", "azapi"} {
		re := regexp.MustCompile(`(?s)provider "` + provider + `" \{.*?\n  subscription_id = var\.subscription_id\n`)
		if !re.Match(src) {
			t.Errorf("terraform: provider %s does not take subscription_id = var.subscription_id", provider)
		}
	}
	example, err := os.ReadFile(filepath.Join(terraformDir, "terraform.tfvars.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^subscription_id\s+=`).Match(example) {
		t.Error("terraform.tfvars.example does not set subscription_id")
	}
}
