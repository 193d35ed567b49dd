package infra

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/tokenpivot/tokenpivot/internal/settings"
)

var tfFunctions = map[string]function.Function{
	"ceil":   stdlib.CeilFunc,
	"floor":  stdlib.FloorFunc,
	"concat": stdlib.ConcatFunc,
	"regex":  stdlib.RegexFunc,
	"can":    tryfunc.CanFunc,
	"join":   stdlib.JoinFunc,
	"split":  stdlib.SplitFunc,
	"slice":  stdlib.SliceFunc,
}

// typeMap pairs each Azure resource type the Bicep declares with the azurerm
// resource that creates it. A type missing here fails the parity test: add
// the pair, and the resource to the other template.
var typeMap = map[string]string{
	"Microsoft.Storage/storageAccounts":                         "azurerm_storage_account",
	"Microsoft.Storage/storageAccounts/blobServices/containers": "azurerm_storage_container",
	"Microsoft.Storage/storageAccounts/queueServices/queues":    "azurerm_storage_queue",
	"Microsoft.Storage/storageAccounts/managementPolicies":      "azurerm_storage_management_policy",
	"Microsoft.Web/serverfarms":                                 "azurerm_service_plan",
	"Microsoft.Web/sites":                                       "azapi_resource", // same body as Bicep, see TestNoPerpetualDiff
	"Microsoft.ManagedIdentity/userAssignedIdentities":          "azurerm_user_assigned_identity",
	"Microsoft.Authorization/roleAssignments":                   "azurerm_role_assignment",
	"Microsoft.OperationalInsights/workspaces":                  "azurerm_log_analytics_workspace",
	"Microsoft.Insights/components":                             "azurerm_application_insights",
	"Microsoft.EventGrid/systemTopics":                          "azurerm_eventgrid_system_topic",
	"Microsoft.EventGrid/systemTopics/eventSubscriptions":       "azurerm_eventgrid_system_topic_event_subscription",
	"Microsoft.OperationalInsights/workspaces/tables":           "azurerm_log_analytics_workspace_table_custom_log",
	"Microsoft.Insights/dataCollectionRules":                    "azapi_resource", // kind Direct, which azurerm's kind does not accept
	"Microsoft.SecurityInsights/alertRules":                     "azurerm_sentinel_alert_rule_nrt",
	"Microsoft.Authorization/roleDefinitions":                   "azurerm_role_definition",
	"Microsoft.Insights/metricAlerts":                           "azurerm_monitor_metric_alert",
	"Microsoft.Insights/scheduledQueryRules":                    "azurerm_monitor_scheduled_query_rules_alert_v2",
	"Microsoft.Storage/storageAccounts/blobServices":            "", // existing parent only: no azurerm resource
	"Microsoft.Storage/storageAccounts/queueServices":           "",
}

// roleIDs are the built-in role definitions the templates use (Bicep names
// them by id, Terraform by name).
var roleIDs = map[string]string{
	"Storage Blob Data Reader":       "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
	"Storage Blob Data Contributor":  "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
	"Storage Blob Data Owner":        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
	"Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
	"Monitoring Metrics Publisher":   "3913510d-42f4-4e42-8a64-420c390055eb",
	"Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
	"Log Analytics Reader":           "73c42c96-874c-492b-b04d-ab87d138a893",
	"Reader":                         "acdd72a7-3385-48ef-bd42-f606fba81ae7",
	// tokenpivot's own custom role (infra/bicep/modules/export-workspace.bicep,
	// infra/terraform/exportjobs.tf), fixed id in both.
	"tokenpivot Export Job Runner": "e874627b-4284-4eea-baba-9b27eacaab15",
}

func roleName(id string) string {
	for name, v := range roleIDs {
		if v == id {
			return name
		}
	}
	return "role " + id
}

// wantRoles is least privilege, written out: every role assignment either
// template may make, and nothing else. Keys are "azurerm type.name" with the
// name lowercased and without '_' (Terraform names are the snake_case of the
// Bicep symbols).
var wantRoles = []roleAssignment{
	// The function's identity: read the two export containers only.
	{"Storage Blob Data Reader", "azurerm_storage_container.interactivecontainer", "azurerm_user_assigned_identity.functionidentity"},
	{"Storage Blob Data Reader", "azurerm_storage_container.noninteractivecontainer", "azurerm_user_assigned_identity.functionidentity"},
	// Read/write its own data.
	{"Storage Blob Data Contributor", "azurerm_storage_container.statecontainer", "azurerm_user_assigned_identity.functionidentity"},
	{"Storage Blob Data Contributor", "azurerm_storage_container.alertscontainer", "azurerm_user_assigned_identity.functionidentity"},
	{"Storage Blob Data Contributor", "azurerm_storage_container.incidentscontainer", "azurerm_user_assigned_identity.functionidentity"},
	// The Functions host and Flex deployment storage (own account only).
	{"Storage Blob Data Owner", "azurerm_storage_account.storage", "azurerm_user_assigned_identity.functionidentity"},
	{"Storage Queue Data Contributor", "azurerm_storage_account.storage", "azurerm_user_assigned_identity.functionidentity"},
	// The host's diagnostic events (a table in AzureWebJobsStorage), as in
	// Microsoft's Flex Consumption samples.
	{"Storage Table Data Contributor", "azurerm_storage_account.storage", "azurerm_user_assigned_identity.functionidentity"},
	// Telemetry with Entra auth.
	{"Monitoring Metrics Publisher", "azurerm_application_insights.appinsights", "azurerm_user_assigned_identity.functionidentity"},
	// Microsoft Sentinel: send alerts through the Logs Ingestion API, to
	// the data collection rule only (not the workspace).
	{"Monitoring Metrics Publisher", "azapi_resource.alertsingestionrule", "azurerm_user_assigned_identity.functionidentity"},
	// Event Grid's topic identity writes dead letters.
	{"Storage Blob Data Contributor", "azurerm_storage_container.deadlettercontainer", "azurerm_eventgrid_system_topic.exporttopic"},
	// Export jobs (optional, internal/exportjob), as Microsoft Learn's "Run
	// an export job" requires, and no more: the caller needs
	// jobs/export/action and query read of the two tables on the workspace
	// (the custom role, not Log Analytics Reader's every table); the
	// workspace's system identity needs blob write on the two export
	// containers (not the account) and storageAccounts/read on the account
	// (Reader: control plane only).
	{"tokenpivot Export Job Runner", "azurerm_log_analytics_workspace.exportworkspace", "azurerm_user_assigned_identity.functionidentity"},
	{"Storage Blob Data Contributor", "azurerm_storage_container.interactivecontainer", "azurerm_log_analytics_workspace.exportworkspace"},
	{"Storage Blob Data Contributor", "azurerm_storage_container.noninteractivecontainer", "azurerm_log_analytics_workspace.exportworkspace"},
	{"Reader", "azurerm_storage_account.exportaccount", "azurerm_log_analytics_workspace.exportworkspace"},
}

// wantSettings are the app settings the code reads and their defaults
// (computed = known only in Azure). TOKENPIVOT_STORAGE_CONNECTION_STRING is
// Azurite/dev only and must not be set.
var wantSettings = map[string]string{
	"TOKENPIVOT_STORAGE_ACCOUNT_URL":       computed,
	"TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL": computed,
	"TOKENPIVOT_INTERACTIVE_CONTAINER":     "am-signinlogs",
	"TOKENPIVOT_NONINTERACTIVE_CONTAINER":  "am-aadnoninteractiveusersigninlogs",
	"TOKENPIVOT_STATE_CONTAINER":           "tokenpivot-state",
	"TOKENPIVOT_ALERTS_CONTAINER":          "tokenpivot-alerts",
	"TOKENPIVOT_INCIDENTS_CONTAINER":       "tokenpivot-incidents",
	"TOKENPIVOT_RULE":                      "",
	"TOKENPIVOT_SAFE_IPS":                  "",
	"TOKENPIVOT_SAFE_NETWORKS":             "",
	"TOKENPIVOT_ALLOWED_LATENESS":          "168h",
	"TOKENPIVOT_IPV6_SAFE_NETWORKS":        "false",
	"TOKENPIVOT_MAX_EXPANSION":             "64",
	// Export jobs (the settings table has the meanings): off by
	// default; the schedule is always set because function.json names it.
	"TOKENPIVOT_EXPORT_WORKSPACE_ID":       "",
	"TOKENPIVOT_EXPORT_STORAGE_ACCOUNT_ID": computed,
	"TOKENPIVOT_EXPORT_SCHEDULE":           "0 5 * * * *",
	"TOKENPIVOT_EXPORT_LOOKBACK":           "48h",
	"TOKENPIVOT_EXPORT_SETTLE":             "30m",
	"TOKENPIVOT_EXPORT_LEASE":              "15m",
	"TOKENPIVOT_EXPORT_STUCK_AFTER":        "6h",
	"TOKENPIVOT_EXPORT_MAX_ATTEMPTS":       "3",
	"TOKENPIVOT_EXPORT_MAX_ACTIVE":         "4",
	"TOKENPIVOT_EXPORT_ENDPOINT":           "",
	"TOKENPIVOT_EXPORT_FIRST_HOUR":         "",
	// The precision mode (only exact deploys) and its lists (bundled).
	"TOKENPIVOT_PRECISION":                  "exact",
	"TOKENPIVOT_PRECISION_HOSTING_ASNS":     "",
	"TOKENPIVOT_PRECISION_M365_RANGES":      "",
	"TOKENPIVOT_PRECISION_FIRST_PARTY_APPS": "",
	// The SOC's settings (secure parameters / sensitive variables): every
	// provision replaces the whole set, so what is not here is deleted.
	"TOKENPIVOT_WEBHOOK_URL":               "",
	"TOKENPIVOT_WEBHOOK_FORMAT":            "standard",
	"TOKENPIVOT_WEBHOOK_SECRET":            "",
	"TOKENPIVOT_STORAGE_CONNECTION_STRING": "",
	"AZURE_CLIENT_ID":                      computed,
	// Microsoft Sentinel, from the data collection rule: empty (left out of
	// the site) without the SOC's workspace.
	"TOKENPIVOT_LOGS_INGESTION_ENDPOINT": computed,
	"TOKENPIVOT_LOGS_INGESTION_RULE_ID":  computed,
	"TOKENPIVOT_LOGS_INGESTION_STREAM":   computed,
	// 11/16 of the default 2048 MB instance (infra/README.md, "Memory").
	"GOMEMLIMIT": "1408MiB",
}

// notSet are names the code reads that infra leaves unset on purpose. Only
// these: every provision replaces the whole app-settings set, so a setting a
// deployment cannot set is one an operator adds by hand and the next
// deployment deletes (TestEverySettingDeployable).
var notSet = map[string]string{
	"TOKENPIVOT_AZURITE_CONNECTION_STRING": "test harness only (internal/azurite), not a setting of the app",
	"TOKENPIVOT_REQUIRE_AZURITE":           "test harness only (internal/azurite), not a setting of the app",
	"TOKENPIVOT_CPUPROFILE":                "a developer's profiling switch (docs/performance.md), never deployed",
	"TOKENPIVOT_MEMPROFILE":                "a developer's profiling switch (docs/performance.md), never deployed",
	"TOKENPIVOT_HEAPPEAK":                  "a developer's profiling switch (docs/performance.md), never deployed",
}

// tfOnlySettings are set only by Terraform, each for a provider quirk. None
// today: the empty AzureWebJobsStorage override is gone (TestNoPerpetualDiff).
var tfOnlySettings = map[string]string{}

type roleAssignment struct {
	role, scope, principal string
}

func (r roleAssignment) String() string {
	return fmt.Sprintf("%s on %s for %s", r.role, r.scope, r.principal)
}

func norm(name string) string { return strings.ToLower(strings.ReplaceAll(name, "_", "")) }

// infraModel is what one template declares, in Terraform's vocabulary.
type infraModel struct {
	resources map[string]string // "azurerm type.normalized name" -> where
	roles     map[roleAssignment]string
	settings  map[string]string // name -> default or computed
}

func bicepModel(t *testing.T) (*infraModel, map[string]*bicepFile) {
	t.Helper()
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	m := &infraModel{resources: map[string]string{}, roles: map[roleAssignment]string{}, settings: map[string]string{}}
	for _, f := range files {
		for _, r := range f.resources {
			at := fmt.Sprintf("%s:%d", f.path, r.line)
			tfType, ok := typeMap[r.typ]
			if !ok {
				t.Errorf("%s: %s has type %s, which has no Terraform counterpart in typeMap", at, r.symbol, r.typ)
				continue
			}
			if r.existing {
				continue
			}
			if tfType == "" {
				t.Errorf("%s: %s (%s) is created, but only existing references of this type are paired", at, r.symbol, r.typ)
				continue
			}
			m.resources[tfType+"."+norm(r.symbol)] = at
			if r.typ != "Microsoft.Authorization/roleAssignments" {
				continue
			}
			ra, err := bicepRole(files, f, r)
			if err != nil {
				t.Errorf("%s: %s: %v", at, r.symbol, err)
				continue
			}
			m.roles[ra] = at
		}
	}
	app, ok := main.resources["functionApp"]
	if !ok {
		t.Fatal("main.bicep: no functionApp resource")
	}
	if !strings.Contains(app.body, "items(appSettings)") {
		t.Fatal("main.bicep: functionApp does not take its app settings from var appSettings")
	}
	block, ok := main.vars["appSettings"]
	if !ok {
		t.Fatal("main.bicep: no var appSettings")
	}
	for name, expr := range props(block) {
		m.settings[name] = main.value(expr)
	}
	return m, files
}

var (
	reRoleRef     = regexp.MustCompile(`roles\.(\w+)`)
	reGUID        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	rePrincipalOf = regexp.MustCompile(`^(\w+)\.(?:properties|identity)\.principalId$`)
	reOutputOf    = regexp.MustCompile(`^(\w+)\.outputs\.(\w+)$`)
)

// bicepRole reads one roleAssignments resource: its scope symbol, the role
// id (through var roles), and the principal, followed through module
// parameters and outputs to the resource it belongs to.
func bicepRole(files map[string]*bicepFile, f *bicepFile, r *bicepResource) (roleAssignment, error) {
	top := props(r.body)
	scope, ok := f.resources[top["scope"]]
	if !ok {
		return roleAssignment{}, fmt.Errorf("scope %q is not a resource symbol", top["scope"])
	}
	inner := props(mustBlockErr(r.body, "properties:"))
	m := reRoleRef.FindStringSubmatch(inner["roleDefinitionId"])
	if m == nil {
		return roleAssignment{}, fmt.Errorf("roleDefinitionId %q does not use var roles", inner["roleDefinitionId"])
	}
	id := f.value(props(f.vars["roles"])[m[1]])
	if !reGUID.MatchString(id) {
		return roleAssignment{}, fmt.Errorf("roles.%s = %q is not a role definition id", m[1], id)
	}
	principal, err := bicepPrincipal(files, f, inner["principalId"], 0)
	if err != nil {
		return roleAssignment{}, err
	}
	return roleAssignment{roleName(id), typeMap[scope.typ] + "." + norm(scope.symbol), principal}, nil
}

func bicepPrincipal(files map[string]*bicepFile, f *bicepFile, expr string, depth int) (string, error) {
	if depth > 5 {
		return "", fmt.Errorf("principal %q: too many indirections", expr)
	}
	if m := rePrincipalOf.FindStringSubmatch(expr); m != nil {
		r, ok := f.resources[m[1]]
		if !ok {
			return "", fmt.Errorf("principal %q: %s is not a resource of %s", expr, m[1], f.path)
		}
		r = f.createdOf(r)
		return typeMap[r.typ] + "." + norm(r.symbol), nil
	}
	if m := reOutputOf.FindStringSubmatch(expr); m != nil {
		mod, ok := f.modules[m[1]]
		if !ok {
			return "", fmt.Errorf("principal %q: %s is not a module", expr, m[1])
		}
		callee := files[mod.path]
		out, ok := callee.outputs[m[2]]
		if !ok {
			return "", fmt.Errorf("principal %q: %s has no output %s", expr, callee.path, m[2])
		}
		return bicepPrincipal(files, callee, out, depth+1)
	}
	if _, ok := f.params[expr]; ok {
		for _, caller := range files {
			for _, mod := range caller.modules {
				if mod.path == f.path {
					arg, ok := props(mustBlockErr(mod.body, "params:"))[expr]
					if !ok {
						return "", fmt.Errorf("module %s does not pass %s", mod.symbol, expr)
					}
					return bicepPrincipal(files, caller, arg, depth+1)
				}
			}
		}
	}
	return "", fmt.Errorf("principal %q is not understood by this scan", expr)
}

func mustBlockErr(body, key string) string {
	i := strings.Index(body, key)
	if i < 0 {
		return ""
	}
	b, err := blockAfter(body, i+len(key))
	if err != nil {
		return ""
	}
	return b
}

func terraformModel(t *testing.T, cfg *tfConfig) *infraModel {
	t.Helper()
	m := &infraModel{resources: map[string]string{}, roles: map[roleAssignment]string{}, settings: map[string]string{}}
	paired := map[string]bool{}
	for _, tf := range typeMap {
		paired[tf] = true
	}
	for key, r := range cfg.resources {
		at := fmt.Sprintf("%s (%s)", key, r.file)
		if !paired[r.typ] {
			t.Errorf("%s: type %s has no Bicep counterpart in typeMap", at, r.typ)
			continue
		}
		m.resources[r.typ+"."+norm(r.name)] = at
		if r.typ != "azurerm_role_assignment" {
			continue
		}
		ra, err := cfg.tfRole(r)
		if err != nil {
			t.Errorf("%s: %v", at, err)
			continue
		}
		m.roles[ra] = at
	}
	app, ok := cfg.resources["azapi_resource.function_app"]
	if !ok {
		t.Fatal("terraform: no azapi_resource.function_app")
	}
	if err := appSettingsFromLocal(app); err != nil {
		t.Fatalf("terraform: function_app: %v", err)
	}
	obj, ok := cfg.locals["app_settings"].(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatal("terraform: local.app_settings is not an object")
	}
	vars := cfg.varDefaults(t).AsValueMap()
	for _, item := range obj.Items {
		name := hcl.ExprAsKeyword(item.KeyExpr)
		if name == "" {
			t.Fatalf("terraform: local.app_settings has a non-literal key at %s", item.KeyExpr.Range())
		}
		m.settings[name] = tfString(t, cfg, item.ValueExpr, vars)
	}
	return m
}

// tfObjectPath follows keys through nested object constructors of e.
func tfObjectPath(e hclsyntax.Expression, keys ...string) (hclsyntax.Expression, bool) {
	for _, k := range keys {
		obj, ok := e.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil, false
		}
		found := false
		for _, item := range obj.Items {
			if tfKey(item.KeyExpr) == k {
				e, found = item.ValueExpr, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return e, true
}

// tfKey is an object key written as a bare word or a literal string.
func tfKey(e hclsyntax.Expression) string {
	if k, ok := e.(*hclsyntax.ObjectConsKeyExpr); ok {
		if kw := hcl.ExprAsKeyword(k.Wrapped); kw != "" {
			return kw
		}
		e = k.Wrapped
	}
	if v, diags := e.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() {
		return v.AsString()
	}
	return ""
}

// appSettingsFromLocal checks that the site's app settings are exactly
// local.app_settings, as name/value pairs, with empty values left out:
// body.properties.siteConfig.appSettings =
// [for name, value in local.app_settings : { name = name, value = value } if value != ""].
func appSettingsFromLocal(app tfBlock) error {
	body, ok := app.body.Attributes["body"]
	if !ok {
		return fmt.Errorf("no body")
	}
	e, ok := tfObjectPath(body.Expr, "properties", "siteConfig", "appSettings")
	if !ok {
		return fmt.Errorf("no body.properties.siteConfig.appSettings")
	}
	loop, ok := e.(*hclsyntax.ForExpr)
	if !ok || loop.KeyExpr != nil {
		return fmt.Errorf("appSettings is not a [for ...] list over local.app_settings")
	}
	coll := loop.CollExpr.Variables()
	if len(coll) != 1 || coll[0].RootName() != "local" || len(coll[0]) < 2 {
		return fmt.Errorf("appSettings does not iterate over local.app_settings")
	}
	if a, ok := coll[0][1].(hcl.TraverseAttr); !ok || a.Name != "app_settings" {
		return fmt.Errorf("appSettings does not iterate over local.app_settings")
	}
	name, okName := tfObjectPath(loop.ValExpr, "name")
	value, okValue := tfObjectPath(loop.ValExpr, "value")
	if !okName || !okValue || hcl.ExprAsKeyword(name) != loop.KeyVar || hcl.ExprAsKeyword(value) != loop.ValVar {
		return fmt.Errorf("appSettings items are not { name = %s, value = %s }", loop.KeyVar, loop.ValVar)
	}
	cond, ok := loop.CondExpr.(*hclsyntax.BinaryOpExpr)
	if !ok || cond.Op != hclsyntax.OpNotEqual || hcl.ExprAsKeyword(cond.LHS) != loop.ValVar {
		return fmt.Errorf("appSettings does not leave out empty values (if %s != \"\")", loop.ValVar)
	}
	if v, diags := cond.RHS.Value(nil); diags.HasErrors() || v.Type() != cty.String || v.AsString() != "" {
		return fmt.Errorf("appSettings does not leave out empty values (if %s != \"\")", loop.ValVar)
	}
	return nil
}

func tfString(t *testing.T, cfg *tfConfig, e hclsyntax.Expression, vars map[string]cty.Value) string {
	t.Helper()
	v, ok := cfg.evalStatic(t, e, vars)
	if !ok {
		return computed
	}
	if v.Type() == cty.Number {
		return v.AsBigFloat().String()
	}
	if v.Type() != cty.String {
		t.Fatalf("%s: value is %s, want a string", e.Range(), v.Type().FriendlyName())
	}
	return v.AsString()
}

func (c *tfConfig) tfRole(r tfBlock) (roleAssignment, error) {
	attrs := r.body.Attributes
	nameAttr, ok := attrs["role_definition_name"]
	if !ok {
		// A custom role: role_definition_id from an azurerm_role_definition
		// of this configuration, named by its literal name.
		idAttr, ok := attrs["role_definition_id"]
		if !ok {
			return roleAssignment{}, fmt.Errorf("no role_definition_name or role_definition_id")
		}
		vs := idAttr.Expr.Variables()
		if len(vs) != 1 || vs[0].RootName() != "azurerm_role_definition" || len(vs[0]) < 2 {
			return roleAssignment{}, fmt.Errorf("role_definition_id is not an azurerm_role_definition of this configuration")
		}
		def, ok := c.resources["azurerm_role_definition."+vs[0][1].(hcl.TraverseAttr).Name]
		if !ok {
			return roleAssignment{}, fmt.Errorf("role_definition_id: no such azurerm_role_definition")
		}
		if nameAttr, ok = def.body.Attributes["name"]; !ok {
			return roleAssignment{}, fmt.Errorf("role_definition_id: its azurerm_role_definition has no name")
		}
	}
	v, diags := nameAttr.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String {
		return roleAssignment{}, fmt.Errorf("role_definition_name is not a literal string")
	}
	if _, ok := roleIDs[v.AsString()]; !ok {
		return roleAssignment{}, fmt.Errorf("role %q is not in the known role table", v.AsString())
	}
	key := func(attr string) (string, error) {
		a, ok := attrs[attr]
		if !ok {
			return "", fmt.Errorf("no %s", attr)
		}
		s, err := c.tfScope(a.Expr, map[string]bool{})
		if err != nil {
			return "", fmt.Errorf("%s: %v", attr, err)
		}
		typ, name, _ := strings.Cut(s, ".")
		return typ + "." + norm(name), nil
	}
	scope, err := key("scope")
	if err != nil {
		return roleAssignment{}, err
	}
	principal, err := key("principal_id")
	if err != nil {
		return roleAssignment{}, err
	}
	return roleAssignment{v.AsString(), scope, principal}, nil
}

func diffKeys[V any](a, b map[string]V) (onlyA, onlyB []string) {
	for k := range a {
		if _, ok := b[k]; !ok {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			onlyB = append(onlyB, k)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB
}

func TestParityResources(t *testing.T) {
	bicep, _ := bicepModel(t)
	tf := terraformModel(t, loadTerraform(t, terraformDir))
	onlyBicep, onlyTF := diffKeys(bicep.resources, tf.resources)
	for _, k := range onlyBicep {
		t.Errorf("only in Bicep: %s (%s)", k, bicep.resources[k])
	}
	for _, k := range onlyTF {
		t.Errorf("only in Terraform: %s (%s)", k, tf.resources[k])
	}
	if len(bicep.resources) < 20 {
		t.Errorf("Bicep declares %d resources; the scan probably missed some", len(bicep.resources))
	}
}

func TestParityRoleAssignments(t *testing.T) {
	bicep, _ := bicepModel(t)
	tf := terraformModel(t, loadTerraform(t, terraformDir))
	want := map[roleAssignment]bool{}
	for _, r := range wantRoles {
		want[r] = true
	}
	for name, got := range map[string]map[roleAssignment]string{"Bicep": bicep.roles, "Terraform": tf.roles} {
		for r, at := range got {
			if !want[r] {
				t.Errorf("%s grants %s (%s), which least privilege does not allow", name, r, at)
			}
		}
		for r := range want {
			if _, ok := got[r]; !ok {
				t.Errorf("%s does not grant %s", name, r)
			}
		}
	}
}

func TestParityAppSettings(t *testing.T) {
	bicep, _ := bicepModel(t)
	tf := terraformModel(t, loadTerraform(t, terraformDir))
	for name, reason := range tfOnlySettings {
		if _, ok := tf.settings[name]; !ok {
			t.Errorf("Terraform no longer sets %s (%s): remove it from tfOnlySettings", name, reason)
		}
		delete(tf.settings, name)
	}
	onlyBicep, onlyTF := diffKeys(bicep.settings, tf.settings)
	for _, k := range onlyBicep {
		t.Errorf("app setting %s is set only by Bicep", k)
	}
	for _, k := range onlyTF {
		t.Errorf("app setting %s is set only by Terraform", k)
	}
	for name, b := range bicep.settings {
		if v, ok := tf.settings[name]; ok && v != b {
			t.Errorf("app setting %s: Bicep default %q, Terraform default %q", name, b, v)
		}
	}
	for name, want := range wantSettings {
		for tool, settings := range map[string]map[string]string{"Bicep": bicep.settings, "Terraform": tf.settings} {
			got, ok := settings[name]
			switch {
			case !ok:
				t.Errorf("%s does not set %s", tool, name)
			case got != want:
				t.Errorf("%s sets %s to %q, want %q", tool, name, got, want)
			}
		}
	}
	for name := range notSet {
		if _, ok := bicep.settings[name]; ok {
			t.Errorf("Bicep sets %s: %s", name, notSet[name])
		}
		if _, ok := tf.settings[name]; ok {
			t.Errorf("Terraform sets %s: %s", name, notSet[name])
		}
	}
	// Identity-based host storage, never a key.
	// The service URIs (what the host uses: sovereign clouds, custom DNS),
	// from the account's own endpoints in both.
	for _, name := range []string{"AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri",
		"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"} {
		if _, ok := bicep.settings[name]; !ok {
			t.Errorf("Bicep does not set %s", name)
		}
	}
	if got := bicep.settings["AzureWebJobsStorage__credential"]; got != "managedidentity" {
		t.Errorf("AzureWebJobsStorage__credential = %q, want managedidentity", got)
	}
	if d, err := time.ParseDuration(bicep.settings["TOKENPIVOT_ALLOWED_LATENESS"]); err != nil || d != 168*time.Hour {
		t.Errorf("TOKENPIVOT_ALLOWED_LATENESS default %q is not the Go duration 168h (%v)", bicep.settings["TOKENPIVOT_ALLOWED_LATENESS"], err)
	}
}

// goSettingNames returns the TOKENPIVOT_* names in string literals of the
// non-test Go files at the module root and under internal/.
func goSettingNames(t *testing.T) map[string][]string {
	t.Helper()
	re := regexp.MustCompile(`TOKENPIVOT_[A-Z0-9_]*[A-Z0-9]`)
	names := map[string][]string{}
	fset := token.NewFileSet()
	scan := func(path string) {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, name := range re.FindAllString(s, -1) {
				names[name] = append(names[name], fset.Position(lit.Pos()).String())
			}
			return true
		})
	}
	roots, err := filepath.Glob(filepath.Join(repoRoot, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range roots {
		if !strings.HasSuffix(p, "_test.go") {
			scan(p)
		}
	}
	err = filepath.WalkDir(filepath.Join(repoRoot, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			scan(path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSettingsTheCodeReadsAreSet(t *testing.T) {
	bicep, _ := bicepModel(t)
	tf := terraformModel(t, loadTerraform(t, terraformDir))
	read := goSettingNames(t)
	t.Logf("the Go code names %d TOKENPIVOT_* settings", len(read))
	for _, name := range sortedKeys(read) {
		if _, ok := notSet[name]; ok {
			continue
		}
		if _, ok := bicep.settings[name]; !ok {
			t.Errorf("%s is read by the code (%s) but not set by Bicep", name, read[name][0])
		}
		if _, ok := tf.settings[name]; !ok {
			t.Errorf("%s is read by the code (%s) but not set by Terraform", name, read[name][0])
		}
	}
	for name := range bicep.settings {
		if strings.HasPrefix(name, "TOKENPIVOT_") && len(read[name]) == 0 {
			// Not an error until the code is complete; it shows in -v runs.
			t.Logf("note: %s is set by infra but no Go source names it (yet)", name)
		}
	}
}

// TestLifecycleFollowsLateness: state is deleted only after the allowed
// lateness, rounded up to days, plus a margin; both templates compute it the
// same way from the same parameter.
func TestLifecycleFollowsLateness(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	const formula = "(allowedLatenessHours + 23) / 24 + stateRetentionMarginDays"
	if got := main.vars["stateRetentionDays"]; got != formula {
		t.Fatalf("main.bicep: stateRetentionDays = %q, want %q", got, formula)
	}
	if !strings.Contains(main.resources["storageLifecycle"].body, "daysAfterModificationGreaterThan: stateRetentionDays") {
		t.Error("main.bicep: the lifecycle policy does not delete state after stateRetentionDays")
	}
	bicepDays := func(hours int64) int64 {
		margin, err := strconv.ParseInt(main.params["stateRetentionMarginDays"], 10, 64)
		if err != nil {
			t.Fatalf("stateRetentionMarginDays default: %v", err)
		}
		return (hours+23)/24 + margin // Bicep integer division
	}

	cfg := loadTerraform(t, terraformDir)
	policy := cfg.resources["azurerm_storage_management_policy.storage_lifecycle"]
	if !strings.Contains(string(cfg.files[policy.file]), "delete_after_days_since_modification_greater_than = local.state_retention_days") {
		t.Error("terraform: the lifecycle policy does not delete state after local.state_retention_days")
	}
	for _, hours := range []int64{1, 24, 25, 168, 170, 720} {
		vars := cfg.varDefaults(t).AsValueMap()
		vars["allowed_lateness_hours"] = cty.NumberIntVal(hours)
		v, ok := cfg.evalStatic(t, cfg.locals["state_retention_days"], vars)
		if !ok {
			t.Fatal("terraform: local.state_retention_days is not computable from variables")
		}
		got, _ := v.AsBigFloat().Int64()
		if want := bicepDays(hours); got != want {
			t.Errorf("lateness %dh: Terraform keeps state %d days, Bicep %d", hours, got, want)
		}
		if lateDays := (time.Duration(hours) * time.Hour).Hours() / 24; float64(got) <= lateDays {
			t.Errorf("lateness %dh: state kept %d days, not longer than the lateness", hours, got)
		}
	}
}

// TestFunctionsMatchInfra ties function.json to the resources: the queue the
// functions use is the queue infra creates, the Event Grid webhook names the
// function that has the Event Grid trigger.
func TestFunctionsMatchInfra(t *testing.T) {
	type binding struct {
		Type, Direction, Name, QueueName, Connection, Schedule string
	}
	read := func(name string) []binding {
		data, err := os.ReadFile(filepath.Join(repoRoot, "functions", name, "function.json"))
		if err != nil {
			t.Fatal(err)
		}
		var fn struct{ Bindings []binding }
		if err := json.Unmarshal(data, &fn); err != nil {
			t.Fatalf("functions/%s/function.json: %v", name, err)
		}
		return fn.Bindings
	}
	want := map[string][]binding{
		"OnExportCreated": {
			{Type: "eventGridTrigger", Direction: "in", Name: "event"},
			{Type: "queue", Direction: "out", Name: "work", QueueName: "tokenpivot-work", Connection: "AzureWebJobsStorage"},
		},
		"ProcessExport": {{Type: "queueTrigger", Direction: "in", Name: "work", QueueName: "tokenpivot-work", Connection: "AzureWebJobsStorage"}},
		// Sweep queues the blobs it finds unfinished for ProcessExport.
		"Sweep": {
			{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "0 */15 * * * *"},
			{Type: "queue", Direction: "out", Name: "work", QueueName: "tokenpivot-work", Connection: "AzureWebJobsStorage"},
		},
		// Its schedule is an app setting both templates always set.
		"ScheduleExports": {{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "%TOKENPIVOT_EXPORT_SCHEDULE%"}},
	}
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "functions", "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(want) {
		t.Errorf("functions/ has %d functions, want %d", len(dirs), len(want))
	}
	for name, w := range want {
		if got := read(name); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("functions/%s bindings = %+v, want %+v", name, got, w)
		}
	}

	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	if got := main.value(main.vars["workQueueName"]); got != "tokenpivot-work" {
		t.Errorf("Bicep creates queue %q, the functions use tokenpivot-work", got)
	}
	cfg := loadTerraform(t, terraformDir)
	if v, ok := cfg.evalStatic(t, cfg.locals["work_queue_name"], nil); !ok || v.AsString() != "tokenpivot-work" {
		t.Errorf("Terraform creates queue %v, the functions use tokenpivot-work", v)
	}
	// Bicep takes the key as a secure parameter (listKeys in the deployment
	// that also PUTs the site often fails); main.bicepparam reads it from
	// TOKENPIVOT_EVENTGRID_KEY, which infra/scripts/eventgrid-key.sh prints.
	if !strings.Contains(main.text, "functionName=OnExportCreated&code=${eventGridExtensionKey}") {
		t.Error("Bicep: the webhook does not call OnExportCreated with the eventGridExtensionKey parameter")
	}
	if strings.Contains(main.text, "listKeys(") {
		t.Error("Bicep: main.bicep calls listKeys; pass the key in (eventGridExtensionKey) instead")
	}
	if !regexp.MustCompile(`@secure\(\)\s*param eventGridExtensionKey string`).MatchString(main.text) {
		t.Error("Bicep: eventGridExtensionKey is not a @secure() string parameter")
	}
	if !strings.Contains(string(cfg.files[filepath.Join(terraformDir, "export.tf")]),
		"functionName=OnExportCreated&code=${one(data.azurerm_function_app_host_keys.function_keys[*].event_grid_extension_config_key)}") {
		t.Error("Terraform: the webhook does not call OnExportCreated with the Event Grid extension key")
	}

	// Both subscribe each export container to BlobCreated, with dead letters.
	access := files[filepath.Join(bicepDir, "modules", "export-access.bicep")]
	for _, c := range []string{"interactiveContainerName", "nonInteractiveContainerName"} {
		if !strings.Contains(access.text, "subjectBeginsWith: '/blobServices/default/containers/${"+c+"}/'") {
			t.Errorf("Bicep: no subscription filtered to ${%s}", c)
		}
	}
	for _, k := range []string{"'Microsoft.Storage.BlobCreated'", "deadLetterWithResourceIdentity", "maxDeliveryAttempts"} {
		if !strings.Contains(access.text, k) {
			t.Errorf("Bicep: export-access.bicep lacks %s", k)
		}
	}
	for _, name := range []string{"interactive", "non_interactive"} {
		sub, ok := cfg.resources["azurerm_eventgrid_system_topic_event_subscription."+name+"_subscription"]
		if !ok {
			t.Errorf("Terraform: no %s_subscription", name)
			continue
		}
		text := string(sub.body.SrcRange.SliceBytes(cfg.files[sub.file]))
		for _, k := range []string{
			`"/blobServices/default/containers/${var.` + name + `_container_name}/"`,
			`["Microsoft.Storage.BlobCreated"]`, "dead_letter_identity", "max_delivery_attempts",
		} {
			if !strings.Contains(text, k) {
				t.Errorf("Terraform: %s_subscription lacks %s", name, k)
			}
		}
	}
}

// TestFlexAndHardening checks the facts that make the deployment a Flex
// Consumption custom handler on locked-down storage, in both templates.
func TestFlexAndHardening(t *testing.T) {
	files := map[string]*bicepFile{}
	main := loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	bicepWant := map[string][]string{
		"plan":        {"name: 'FC1'", "tier: 'FlexConsumption'", "reserved: true"},
		"functionApp": {"kind: 'functionapp,linux'", "type: 'blobContainer'", "type: 'UserAssignedIdentity'", "name: 'custom'", "maximumInstanceCount: maximumInstanceCount", "instanceMemoryMB: instanceMemoryMB", "httpsOnly: true", "${deploymentContainerName}"},
		"storage":     {"allowBlobPublicAccess: false", "allowSharedKeyAccess: false", "minimumTlsVersion: 'TLS1_2'", "supportsHttpsTrafficOnly: true"},
		"appInsights": {"WorkspaceResourceId: logAnalytics.id", "DisableLocalAuth: true"},
	}
	for sym, wants := range bicepWant {
		r, ok := main.resources[sym]
		if !ok {
			t.Errorf("main.bicep: no resource %s", sym)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(r.body, w) {
				t.Errorf("main.bicep: %s lacks %q", sym, w)
			}
		}
	}
	exportAccount := files[filepath.Join(bicepDir, "modules", "export-account.bicep")].resources["exportAccount"]
	for _, w := range []string{"allowBlobPublicAccess: false", "minimumTlsVersion: 'TLS1_2'"} {
		if exportAccount == nil || !strings.Contains(exportAccount.body, w) {
			t.Errorf("export-account.bicep: exportAccount lacks %q", w)
		}
	}

	cfg := loadTerraform(t, terraformDir)
	tfWant := map[string]map[string]string{
		"azurerm_service_plan.plan": {"sku_name": "FC1", "os_type": "Linux"},
		"azurerm_storage_account.storage": {
			"allow_nested_items_to_be_public": "false", "shared_access_key_enabled": "false",
			"min_tls_version": "TLS1_2", "https_traffic_only_enabled": "true",
		},
		"azurerm_storage_account.export_account":    {"allow_nested_items_to_be_public": "false", "min_tls_version": "TLS1_2"},
		"azurerm_application_insights.app_insights": {"local_authentication_enabled": "false"},
	}
	for key, attrs := range tfWant {
		r, ok := cfg.resources[key]
		if !ok {
			t.Errorf("terraform: no %s", key)
			continue
		}
		for name, want := range attrs {
			a, ok := r.body.Attributes[name]
			if !ok {
				t.Errorf("terraform: %s lacks %s", key, name)
				continue
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				t.Errorf("terraform: %s.%s is not a literal", key, name)
				continue
			}
			got := ""
			switch v.Type() {
			case cty.String:
				got = v.AsString()
			case cty.Bool:
				got = strconv.FormatBool(v.True())
			}
			if got != want {
				t.Errorf("terraform: %s.%s = %q, want %q", key, name, got, want)
			}
		}
	}
	// The site (azapi_resource): the same body facts as Bicep's functionApp.
	app, ok := cfg.resources["azapi_resource.function_app"]
	if !ok {
		t.Fatal("terraform: no azapi_resource.function_app")
	}
	literal := func(path ...string) string {
		a, ok := app.body.Attributes["body"]
		if !ok {
			return "<no body>"
		}
		e, ok := tfObjectPath(a.Expr, path...)
		if !ok {
			return "<missing>"
		}
		v, diags := e.Value(nil)
		if diags.HasErrors() {
			return "<not a literal>"
		}
		switch v.Type() {
		case cty.String:
			return v.AsString()
		case cty.Bool:
			return strconv.FormatBool(v.True())
		}
		return "<" + v.Type().FriendlyName() + ">"
	}
	for path, want := range map[string]string{
		"kind":                                "functionapp,linux",
		"properties.httpsOnly":                "true",
		"properties.siteConfig.minTlsVersion": "1.2",
		"properties.functionAppConfig.runtime.name":                           "custom",
		"properties.functionAppConfig.runtime.version":                        "1.0",
		"properties.functionAppConfig.deployment.storage.type":                "blobContainer",
		"properties.functionAppConfig.deployment.storage.authentication.type": "UserAssignedIdentity",
	} {
		if got := literal(strings.Split(path, ".")...); got != want {
			t.Errorf("terraform: function_app body.%s = %q, want %q", path, got, want)
		}
	}
	for attr, v := range map[string]string{"maximumInstanceCount": "maximum_instance_count", "instanceMemoryMB": "instance_memory_mb"} {
		body := app.body.Attributes["body"]
		e, ok := tfObjectPath(body.Expr, "properties", "functionAppConfig", "scaleAndConcurrency", attr)
		if !ok || len(e.Variables()) != 1 || e.Variables()[0].RootName() != "var" ||
			e.Variables()[0][1].(hcl.TraverseAttr).Name != v {
			t.Errorf("terraform: function_app scaleAndConcurrency.%s must be var.%s", attr, v)
		}
	}
	if a, ok := app.body.Attributes["type"]; !ok || tfString(t, cfg, a.Expr, nil) != main.resources["functionApp"].typ+"@"+main.resources["functionApp"].api {
		t.Errorf("terraform: function_app is not the %s@%s of main.bicep", main.resources["functionApp"].typ, main.resources["functionApp"].api)
	}
	// Flex's lowest maximum instance count is 40 in both.
	if !strings.Contains(main.text, "@minValue(40)\n@maxValue(1000)\nparam maximumInstanceCount int = 40") {
		t.Error("main.bicep: maximumInstanceCount must be @minValue(40) @maxValue(1000), default 40")
	}
	vars := cfg.varDefaults(t).AsValueMap()
	for n, ok := range map[int64]bool{1: false, 39: false, 40: true, 1000: true, 1001: false} {
		vars["maximum_instance_count"] = cty.NumberIntVal(n)
		v, _ := cfg.evalStatic(t, cfg.variables["maximum_instance_count"].Blocks[0].Body.Attributes["condition"].Expr, vars)
		if v.IsNull() || v.True() != ok {
			t.Errorf("terraform: maximum_instance_count = %d accepted = %v, want %v", n, !v.IsNull() && v.True(), ok)
		}
	}
}

// TestDefaultsMatchCode: the defaults infra writes are the settings
// table's (internal/settings, which `serve --help` prints), so an unset and
// a default-set app setting behave the same, and every setting is either set
// by infra or named as left unset on purpose.
func TestDefaultsMatchCode(t *testing.T) {
	for _, st := range settings.Table() {
		want, set := wantSettings[st.Env]
		switch {
		case st.NotInInfra != "":
			if set {
				t.Errorf("%s: the table says infra leaves it unset (%s), but wantSettings sets it", st.Env, st.NotInInfra)
			}
			if _, ok := notSet[st.Env]; !ok {
				t.Errorf("%s: left unset by infra but not in notSet", st.Env)
			}
		case !set:
			t.Errorf("%s: in the settings table but not set by infra", st.Env)
		case want != computed && want != st.Default:
			t.Errorf("%s: infra default %q, code default %q", st.Env, want, st.Default)
		}
	}
	d := settings.Defaults()
	if lateness, err := time.ParseDuration(wantSettings[settings.AllowedLateness]); err != nil || lateness != d.AllowedLateness {
		t.Errorf("%s: infra default %q, code default %v", settings.AllowedLateness, wantSettings[settings.AllowedLateness], d.AllowedLateness)
	}
}

// TestReadmeNamesEverySetting keeps infra/README.md's settings table complete.
func TestReadmeNamesEverySetting(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "infra", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, name := range append(sortedKeys(wantSettings), "TOKENPIVOT_STORAGE_CONNECTION_STRING") {
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("infra/README.md does not mention `%s`", name)
		}
	}
}
