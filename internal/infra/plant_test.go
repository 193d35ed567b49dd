package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyInfra copies infra/bicep and infra/terraform into a temporary tree
// with the same layout and returns its infra directory.
func copyInfra(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "infra")
	for _, sub := range []string{"bicep", "terraform"} {
		src := filepath.Join(repoRoot, "infra", sub)
		err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			target := filepath.Join(dst, sub, rel)
			if info.IsDir() {
				if info.Name() == ".terraform" {
					return filepath.SkipDir
				}
				return os.MkdirAll(target, 0o755)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// plant replaces old, which must occur exactly once, by new in file.
func plant(t *testing.T, file, old, new string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s: the text to plant the defect in occurs %d times, want 1: %q", file, n, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaChecksBite plants one defect at a time in a copy of the
// templates and checks that the schema checks report it (and, first, that
// the unmodified copy has no finding, so each report is the defect's). Not
// plantable on the Bicep side: a deprecated property (bicep-types carry no
// deprecation).
func TestSchemaChecksBite(t *testing.T) {
	tests := []struct {
		name, lang, file, old, new, want string
	}{
		// Bicep, against bicep-types.
		{"misspelt property", "bicep", "bicep/main.bicep",
			"    allowBlobPublicAccess: false\n", "    allowBlobPublicAcess: false\n",
			"storage: properties.allowBlobPublicAcess: unknown property (did you mean allowBlobPublicAccess?)"},
		{"wrong enum", "bicep", "bicep/main.bicep",
			"    minimumTlsVersion: 'TLS1_2'\n", "    minimumTlsVersion: 'TLS1_4'\n",
			`storage: properties.minimumTlsVersion: "TLS1_4" is not one of`},
		{"read-only property set", "bicep", "bicep/main.bicep",
			"    publicNetworkAccess: 'Enabled'\n", "    publicNetworkAccess: 'Enabled'\n    provisioningState: 'Succeeded'\n",
			"storage: properties.provisioningState: read-only property set"},
		{"missing required property", "bicep", "bicep/main.bicep",
			"  sku: {\n    name: 'Standard_LRS'\n  }\n", "",
			"storage: sku: missing required property"},
		{"wrong type", "bicep", "bicep/main.bicep",
			"    httpsOnly: true\n", "    httpsOnly: 'yes'\n",
			"functionApp: properties.httpsOnly: is string, want a bool"},
		{"unknown API version", "bicep", "bicep/main.bicep",
			"'Microsoft.Insights/components@2020-02-02'", "'Microsoft.Insights/components@2020-02-03'",
			"API version of Microsoft.Insights/components@2020-02-03 does not exist"},
		{"misspelt property in a loop item", "bicep", "bicep/main.bicep",
			"        name: s.key\n", "        nam: s.key\n",
			"functionApp: properties.siteConfig.appSettings[0].nam: unknown property (did you mean name?)"},
		{"wrong discriminator in a module", "bicep", "bicep/modules/export-access.bicep",
			"    endpointType: 'WebHook'\n", "    endpointType: 'Webhook'\n",
			`properties.destination: endpointType "Webhook" is not one of`},
		{"wrong type through union()", "bicep", "bicep/modules/export-access.bicep",
			"    maxDeliveryAttempts: 30\n", "    maxDeliveryAttempts: '30'\n",
			"properties.retryPolicy.maxDeliveryAttempts: is string, want an integer"},
		// Bicep, Microsoft Sentinel.
		{"table column in the stream's spelling", "bicep", "bicep/modules/sentinel.bicep",
			"{ name: 'TimeGenerated', type: 'dateTime' }", "{ name: 'TimeGenerated', type: 'datetime' }",
			`alertsTable: properties.schema.columns[0].type: "datetime" is not one of`},
		{"stream column type", "bicep", "bicep/modules/alerts-ingestion.bicep",
			"{ name: 'ResultsTruncated', type: 'boolean' }", "{ name: 'ResultsTruncated', type: 'bool' }",
			`alertsIngestionRule: properties.streamDeclarations.Custom-TokenPivotAlerts.columns[19].type: "bool" is not one of`},
		{"DCR kind beyond the open value Direct", "bicep", "bicep/modules/alerts-ingestion.bicep",
			"  kind: 'Direct'\n", "  kind: 'Drect'\n",
			`alertsIngestionRule: kind: "Drect" is not one of`},
		{"DCR stream that is not Custom-", "bicep", "bicep/modules/alerts-ingestion.bicep",
			"        streams: [\n          'Custom-TokenPivotAlerts'\n", "        streams: [\n          'TokenPivotAlerts'\n",
			`alertsIngestionRule: properties.dataFlows[0].streams[0]: "TokenPivotAlerts" is not one of`},
		{"misspelt DCR property", "bicep", "bicep/modules/alerts-ingestion.bicep",
			"        transformKql: 'source'\n", "        transformKQL: 'source'\n",
			"alertsIngestionRule: properties.dataFlows[0].transformKQL: unknown property (did you mean transformKql?)"},
		{"NRT rule: wrong entity type (checked as Scheduled)", "bicep", "bicep/modules/sentinel.bicep",
			"        entityType: 'IP'\n", "        entityType: 'IPAddress'\n",
			`alertRule: properties.entityMappings[1].entityType: "IPAddress" is not one of`},
		{"NRT rule: missing what NRT requires and Scheduled does not", "bicep", "bicep/modules/sentinel.bicep",
			"    severity: 'High'\n", "",
			"alertRule: properties.severity: missing required property (kind NRT)"},
		{"NRT rule: missing required grouping property", "bicep", "bicep/modules/sentinel.bicep",
			"        matchingMethod: 'Selected'\n", "",
			"alertRule: properties.incidentConfiguration.groupingConfiguration.matchingMethod: missing required property"},

		// Terraform, azurerm resources against the provider schema.
		{"misspelt argument", "terraform", "terraform/main.tf",
			"  allow_nested_items_to_be_public = false\n  shared_access_key_enabled ", "  allow_nested_items_to_be_publik = false\n  shared_access_key_enabled ",
			"azurerm_storage_account.storage.allow_nested_items_to_be_publik: unknown argument (did you mean allow_nested_items_to_be_public?)"},
		{"misspelt argument in a dynamic block's content", "terraform", "terraform/operability.tf",
			"      action_group_id = action.value\n", "      action_group_idd = action.value\n",
			"azurerm_monitor_metric_alert.dead_letter_alert.action.action_group_idd: unknown argument"},
		{"deprecated argument", "terraform", "terraform/main.tf",
			"  # Monitoring Metrics Publisher, no instrumentation key is trusted.\n  local_authentication_enabled = false\n",
			"  # Monitoring Metrics Publisher, no instrumentation key is trusted.\n  local_authentication_disabled = true\n",
			"azurerm_application_insights.app_insights.local_authentication_disabled: deprecated argument"},
		{"missing required argument", "terraform", "terraform/main.tf",
			"  account_replication_type        = \"LRS\"\n", "",
			"azurerm_storage_account.storage.account_replication_type: missing required argument"},
		{"read-only attribute set", "terraform", "terraform/main.tf",
			"  public_network_access_enabled   = true\n", "  public_network_access_enabled   = true\n  primary_blob_endpoint = \"https://x.blob.core.windows.net/\"\n",
			"azurerm_storage_account.storage.primary_blob_endpoint: read-only (computed) attribute set"},
		{"wrong literal type", "terraform", "terraform/main.tf",
			"  https_traffic_only_enabled      = true\n  public_network_access_enabled", "  https_traffic_only_enabled      = \"yes\"\n  public_network_access_enabled",
			"azurerm_storage_account.storage.https_traffic_only_enabled: is string"},
		{"unknown block", "terraform", "terraform/export.tf",
			"  identity {\n    type = \"SystemAssigned\"\n  }\n}\n\ndata", "  identiti {\n    type = \"SystemAssigned\"\n  }\n}\n\ndata",
			"azurerm_eventgrid_system_topic.export_topic.identiti: unknown block (did you mean identity?)"},
		{"misspelt provider feature", "terraform", "terraform/versions.tf",
			"      data_plane_available = false\n", "      data_plane_availble = false\n",
			"provider.azurerm.features.storage.data_plane_availble: unknown argument"},

		// Terraform, the azapi_resource body against bicep-types.
		{"azapi: wrong enum", "terraform", "terraform/main.tf",
			"              type                           = \"UserAssignedIdentity\"\n", "              type                           = \"UserAssigned\"\n",
			`properties.functionAppConfig.deployment.storage.authentication.type: "UserAssigned" is not one of`},
		{"azapi: read-only property set", "terraform", "terraform/main.tf",
			"      httpsOnly    = true\n", "      httpsOnly    = true\n      defaultHostName = \"x.azurewebsites.net\"\n",
			"azapi_resource.function_app: properties.defaultHostName: read-only property set"},
		{"azapi: misspelt property", "terraform", "terraform/main.tf",
			"        minTlsVersion = \"1.2\"\n", "        minTlsVersio = \"1.2\"\n",
			"properties.siteConfig.minTlsVersio: unknown property (did you mean minTlsVersion?)"},
		{"azapi: unknown API version", "terraform", "terraform/main.tf",
			"\"Microsoft.Web/sites@2024-04-01\"", "\"Microsoft.Web/sites@2024-04-02\"",
			"API version of Microsoft.Web/sites@2024-04-02 does not exist"},
		{"NRT rule: misspelt argument", "terraform", "terraform/sentinel.tf",
			"  suppression_enabled        = false\n", "  supression_enabled         = false\n",
			"azurerm_sentinel_alert_rule_nrt.alert_rule.supression_enabled: unknown argument (did you mean suppression_enabled?)"},
		{"NRT rule: missing required block", "terraform", "terraform/sentinel.tf",
			"  event_grouping {\n    aggregation_method = \"AlertPerResult\"\n  }\n", "",
			"azurerm_sentinel_alert_rule_nrt.alert_rule.event_grouping: missing required block"},
		{"table: missing required argument", "terraform", "terraform/sentinel.tf",
			"  workspace_id = var.sentinel_workspace_id\n", "",
			"azurerm_log_analytics_workspace_table_custom_log.alerts_table.workspace_id: missing required argument"},
		{"azapi DCR: misspelt property", "terraform", "terraform/sentinel.tf",
			"          transformKql = \"source\"\n", "          transformKgl = \"source\"\n",
			"azapi_resource.alerts_ingestion_rule: properties.dataFlows[0].transformKgl: unknown property"},
		{"azapi DCR: table column type in a stream", "terraform", "terraform/sentinel.tf",
			"{ name = \"StartTime\", type = \"datetime\" }", "{ name = \"StartTime\", type = \"dateTime\" }",
			`azapi_resource.alerts_ingestion_rule: properties.streamDeclarations.Custom-TokenPivotAlerts.columns[15].type: "dateTime" is not one of`},
		{"azapi data source: unknown argument", "terraform", "terraform/sentinel.tf",
			"  resource_id = var.sentinel_workspace_id\n", "  resource_ids = var.sentinel_workspace_id\n",
			"data.azapi_resource.sentinel_workspace.resource_ids: unknown azapi_resource data source argument"},
		{"azapi data source: unknown API version", "terraform", "terraform/sentinel.tf",
			"\"Microsoft.OperationalInsights/workspaces@2023-09-01\"", "\"Microsoft.OperationalInsights/workspaces@2023-09-02\"",
			"data.azapi_resource.sentinel_workspace: API version of Microsoft.OperationalInsights/workspaces@2023-09-02 does not exist"},
		{"azapi: unknown argument", "terraform", "terraform/main.tf",
			"  response_export_values = [", "  response_export_value = [",
			"azapi_resource.function_app.response_export_value: unknown azapi_resource argument"},
	}
	findings := func(t *testing.T, lang, infra string) []finding {
		if lang == "bicep" {
			return bicepSchemaFindings(t, filepath.Join(infra, "bicep", "main.bicep"))
		}
		return terraformSchemaFindings(t, filepath.Join(infra, "terraform"))
	}
	for _, lang := range []string{"bicep", "terraform"} {
		if fs := findings(t, lang, copyInfra(t)); len(fs) != 0 {
			t.Fatalf("%s: the unmodified copy already has findings: %v", lang, fs)
		}
	}
	for _, tt := range tests {
		t.Run(tt.lang+"/"+tt.name, func(t *testing.T) {
			infra := copyInfra(t)
			plant(t, filepath.Join(infra, tt.file), tt.old, tt.new)
			fs := findings(t, tt.lang, infra)
			for _, f := range fs {
				if strings.Contains(f.String(), tt.want) {
					t.Logf("reported: %s", f)
					return
				}
			}
			t.Errorf("planted %s not reported (want %q); findings: %v", tt.name, tt.want, fs)
		})
	}
}
