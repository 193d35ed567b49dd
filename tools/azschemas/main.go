// Command azschemas regenerates testdata/azure-schemas, the trimmed copy of
// Azure's published resource definitions that internal/infra's schema tests
// check infra/ against:
//
//	go run ./tools/azschemas -src /work/shared/azure-schemas -dst testdata/azure-schemas
//
// src holds bicep-types/<group>/<namespace>/<apiVersion>/types.json (from
// Azure/bicep-types-az) and azurerm-<version>.schema.json (`terraform
// providers schema -json` of hashicorp/azurerm). The copy keeps, per
// types.json below, only the resource types listed and the type nodes they
// reach (references renumbered, descriptions dropped), and of the azurerm
// schema only the provider block and the resource and data source types
// listed. The kept lists are the types infra/ uses and those the SOC work
// will use; add to them and rerun to check a new resource.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// bicepTypes: types.json path under bicep-types -> resource types kept.
var bicepTypes = map[string][]string{
	"web/microsoft.web/2024-04-01": {"Microsoft.Web/sites", "Microsoft.Web/serverfarms", "Microsoft.Web/sites/config"},
	"storage/microsoft.storage/2023-05-01": {
		"Microsoft.Storage/storageAccounts",
		"Microsoft.Storage/storageAccounts/blobServices", "Microsoft.Storage/storageAccounts/blobServices/containers",
		"Microsoft.Storage/storageAccounts/queueServices", "Microsoft.Storage/storageAccounts/queueServices/queues",
		"Microsoft.Storage/storageAccounts/tableServices", "Microsoft.Storage/storageAccounts/tableServices/tables",
		"Microsoft.Storage/storageAccounts/managementPolicies",
	},
	"eventgrid/microsoft.eventgrid/2022-06-15":          {"Microsoft.EventGrid/systemTopics", "Microsoft.EventGrid/systemTopics/eventSubscriptions"},
	"eventgrid/microsoft.eventgrid/2025-02-15":          {"Microsoft.EventGrid/systemTopics", "Microsoft.EventGrid/systemTopics/eventSubscriptions"},
	"authorization/microsoft.authorization/2022-04-01":  {"Microsoft.Authorization/roleAssignments", "Microsoft.Authorization/roleDefinitions"},
	"applicationinsights/microsoft.insights/2020-02-02": {"Microsoft.Insights/components"},
	"monitor_1/microsoft.insights/2023-03-11":           {"Microsoft.Insights/dataCollectionRules", "Microsoft.Insights/dataCollectionEndpoints", "Microsoft.Insights/dataCollectionRuleAssociations"},
	// Direct DCRs (Logs Ingestion API without a DCE) return properties.endpoints.logsIngestion.
	"monitor_1/microsoft.insights/2024-03-11": {"Microsoft.Insights/dataCollectionRules"},
	// Alerts on the dead-letter container, the poison queue and the function.
	"monitor_1/microsoft.insights/2026-01-01": {"Microsoft.Insights/metricAlerts"},
	"monitor_1/microsoft.insights/2023-12-01": {"Microsoft.Insights/scheduledQueryRules"},
	"operationalinsights/microsoft.operationalinsights/2023-09-01": {
		"Microsoft.OperationalInsights/workspaces", "Microsoft.OperationalInsights/workspaces/tables", "Microsoft.OperationalInsights/workspaces/dataExports",
	},
	"operationalinsights/microsoft.operationalinsights/2025-07-01": {"Microsoft.OperationalInsights/workspaces", "Microsoft.OperationalInsights/workspaces/tables"},
	"msi/microsoft.managedidentity/2023-01-31":                     {"Microsoft.ManagedIdentity/userAssignedIdentities"},
	"securityinsights/microsoft.securityinsights/2025-09-01":       {"Microsoft.SecurityInsights/alertRules"},
}

// azurermResources and azurermDataSources: kept names; a trailing * keeps a prefix.
var (
	azurermResources = []string{
		"azurerm_function_app_flex_consumption", "azurerm_service_plan", "azurerm_application_insights",
		"azurerm_log_analytics_workspace", "azurerm_user_assigned_identity", "azurerm_role_assignment",
		"azurerm_storage_*", "azurerm_eventgrid_*", "azurerm_role_definition",
		"azurerm_monitor_metric_alert", "azurerm_monitor_scheduled_query_rules_alert_v2",
		// The SOC work to come.
		"azurerm_log_analytics_workspace_table_custom_log", "azurerm_monitor_data_collection_rule",
		"azurerm_monitor_data_collection_endpoint", "azurerm_sentinel_alert_rule_nrt",
	}
	azurermDataSources = []string{
		"azurerm_resource_group", "azurerm_storage_account", "azurerm_eventgrid_system_topic",
		"azurerm_function_app_host_keys", "azurerm_client_config",
	}
)

func main() {
	src := flag.String("src", "/work/shared/azure-schemas", "Azure schema source directory")
	dst := flag.String("dst", "testdata/azure-schemas", "output directory")
	flag.Parse()
	if err := run(*src, *dst); err != nil {
		log.Fatal(err)
	}
}

func run(src, dst string) error {
	// Everything but README.md is generated.
	if err := os.RemoveAll(filepath.Join(dst, "bicep-types")); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dst, "azurerm-*.schema.json"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for dir, keep := range bicepTypes {
		in := filepath.Join(src, "bicep-types", dir, "types.json")
		data, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		out, err := trimBicepTypes(data, keep)
		if err != nil {
			return fmt.Errorf("%s: %v", in, err)
		}
		path := filepath.Join(dst, "bicep-types", dir, "types.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return err
		}
	}
	if source, err := os.ReadFile(filepath.Join(src, "bicep-types", "SOURCE")); err == nil {
		if err := os.WriteFile(filepath.Join(dst, "bicep-types", "SOURCE"), source, 0o644); err != nil {
			return err
		}
	}
	schemas, err := filepath.Glob(filepath.Join(src, "azurerm-*.schema.json"))
	if err != nil || len(schemas) != 1 {
		return fmt.Errorf("want one azurerm-*.schema.json in %s, found %v (%v)", src, schemas, err)
	}
	data, err := os.ReadFile(schemas[0])
	if err != nil {
		return err
	}
	out, err := trimAzurerm(data)
	if err != nil {
		return fmt.Errorf("%s: %v", schemas[0], err)
	}
	return os.WriteFile(filepath.Join(dst, filepath.Base(schemas[0])), out, 0o644)
}

var reRef = regexp.MustCompile(`^#/(\d+)$`)

// trimBicepTypes keeps the ResourceType nodes named Type@api for Type in keep
// and every node they reach, renumbered in their original order.
func trimBicepTypes(data []byte, keep []string) ([]byte, error) {
	var nodes []map[string]any
	if err := json.Unmarshal(data, &nodes); err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	for _, k := range keep {
		wanted[k] = true
	}
	reached := map[int]bool{}
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				m := reRef.FindStringSubmatch(ref)
				if m == nil {
					return // a reference into another file: kept as it is
				}
				i, _ := strconv.Atoi(m[1])
				if !reached[i] {
					reached[i] = true
					visit(nodes[i])
				}
				return
			}
			for _, x := range v {
				visit(x)
			}
		case []any:
			for _, x := range v {
				visit(x)
			}
		}
	}
	found := map[string]bool{}
	for i, n := range nodes {
		if n["$type"] != "ResourceType" {
			continue
		}
		name, _ := n["name"].(string)
		typ, _, _ := strings.Cut(name, "@")
		if wanted[typ] {
			found[typ] = true
			reached[i] = true
			visit(n)
		}
	}
	for _, k := range keep {
		if !found[k] {
			return nil, fmt.Errorf("no resource type %s", k)
		}
	}
	var order []int
	for i := range reached {
		order = append(order, i)
	}
	sort.Ints(order)
	renum := map[int]int{}
	for j, i := range order {
		renum[i] = j
	}
	var rewrite func(v any) any
	rewrite = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, x := range v {
				// A description is a string; a property or attribute named
				// description (a map) is kept.
				if _, text := x.(string); text && k == "description" {
					continue
				}
				if k == "$ref" {
					if s, ok := x.(string); ok {
						if m := reRef.FindStringSubmatch(s); m != nil {
							i, _ := strconv.Atoi(m[1])
							out[k] = fmt.Sprintf("#/%d", renum[i])
							continue
						}
					}
				}
				out[k] = rewrite(x)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = rewrite(x)
			}
			return out
		}
		return v
	}
	kept := make([]any, len(order))
	for j, i := range order {
		kept[j] = rewrite(nodes[i])
	}
	return jsonLines(kept)
}

// jsonLines writes a JSON array one element a line: small, and diffs stay
// readable when the source is updated.
func jsonLines(items []any) ([]byte, error) {
	var b strings.Builder
	b.WriteString("[\n")
	for i, it := range items {
		line, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		b.Write(line)
		if i < len(items)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	return []byte(b.String()), nil
}

func match(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == name || strings.HasSuffix(p, "*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// trimAzurerm keeps the provider block and the listed resource and data
// source schemas, without descriptions.
func trimAzurerm(data []byte) ([]byte, error) {
	var doc struct {
		FormatVersion   string                                `json:"format_version"`
		ProviderSchemas map[string]map[string]json.RawMessage `json:"provider_schemas"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := map[string]any{"format_version": doc.FormatVersion}
	schemas := map[string]any{}
	for addr, p := range doc.ProviderSchemas {
		kept := map[string]any{}
		var provider any
		if err := json.Unmarshal(p["provider"], &provider); err != nil {
			return nil, err
		}
		kept["provider"] = dropDescriptions(provider)
		for key, patterns := range map[string][]string{"resource_schemas": azurermResources, "data_source_schemas": azurermDataSources} {
			var all map[string]any
			if err := json.Unmarshal(p[key], &all); err != nil {
				return nil, err
			}
			sel := map[string]any{}
			for name, s := range all {
				if match(name, patterns) {
					sel[name] = dropDescriptions(s)
				}
			}
			for _, pat := range patterns {
				if _, ok := sel[pat]; !ok && !strings.HasSuffix(pat, "*") {
					return nil, fmt.Errorf("%s: no %s", key, pat)
				}
			}
			kept[key] = sel
		}
		schemas[addr] = kept
	}
	out["provider_schemas"] = schemas
	return json.MarshalIndent(out, "", " ")
}

func dropDescriptions(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if _, text := x.(string); text && (k == "description" || k == "description_kind") {
				continue
			}
			out[k] = dropDescriptions(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = dropDescriptions(x)
		}
		return v
	}
	return v
}
