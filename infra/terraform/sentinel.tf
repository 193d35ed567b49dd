# Microsoft Sentinel (Bicep: main.bicep's Microsoft Sentinel section and
# modules/sentinel.bicep), all of it only with var.sentinel_workspace_id: the
# custom table TokenPivotAlerts_CL in the SOC's existing workspace, the data
# collection rule the function sends its alert revisions to (Logs Ingestion
# API), the function's role on that rule, and the NRT analytics rule that
# raises Sentinel alerts and incidents from the table. The workspace must be
# onboarded to Microsoft Sentinel.

locals {
  sentinel_enabled = var.sentinel_workspace_id != ""
}

# The SOC's workspace, only read (its region), wherever its subscription is.
data "azapi_resource" "sentinel_workspace" {
  count = local.sentinel_enabled ? 1 : 0

  type        = "Microsoft.OperationalInsights/workspaces@2023-09-01"
  resource_id = var.sentinel_workspace_id
}

# Exactly the columns of internal/sentinel.Columns (the contract with the Go
# sink; internal/infra checks it), with the tables API's type names
# (dateTime where the Logs Ingestion stream says datetime).
resource "azurerm_log_analytics_workspace_table_custom_log" "alerts_table" {
  count = local.sentinel_enabled ? 1 : 0

  name         = "TokenPivotAlerts_CL"
  workspace_id = var.sentinel_workspace_id
  plan         = "Analytics"

  column {
    name = "TimeGenerated"
    type = "dateTime"
  }
  column {
    name = "AlertId"
    type = "string"
  }
  column {
    name = "Revision"
    type = "int"
  }
  column {
    name = "IncidentId"
    type = "string"
  }
  column {
    name = "AlertName"
    type = "string"
  }
  column {
    name = "Description"
    type = "string"
  }
  column {
    name = "Severity"
    type = "string"
  }
  column {
    name = "Tactics"
    type = "string"
  }
  column {
    name = "Techniques"
    type = "dynamic"
  }
  column {
    name = "UserPrincipalName"
    type = "string"
  }
  column {
    name = "NIIPAddress"
    type = "string"
  }
  column {
    name = "NICountry"
    type = "string"
  }
  column {
    name = "InteractiveIP"
    type = "string"
  }
  column {
    name = "InteractiveCountry"
    type = "string"
  }
  column {
    name = "AppDisplayName"
    type = "string"
  }
  column {
    name = "StartTime"
    type = "dateTime"
  }
  column {
    name = "EndTime"
    type = "dateTime"
  }
  column {
    name = "ResultCount"
    type = "int"
  }
  column {
    name = "Results"
    type = "dynamic"
  }
  column {
    name = "ResultsTruncated"
    type = "boolean"
  }
  column {
    name = "RuleId"
    type = "string"
  }
  column {
    name = "RuleVersion"
    type = "string"
  }

  # The SOC's alert history: never deleted by a destroy of this
  # configuration (terraform state rm it first to let go of it).
  lifecycle {
    prevent_destroy = true
  }
}

# The Logs Ingestion API's data collection rule, beside the function, with
# azapi rather than azurerm_monitor_data_collection_rule: that resource's kind
# does not accept Direct, and without Direct the rule has no logsIngestion
# endpoint of its own, so a data collection endpoint would have to be added
# (one more resource, and a body unlike Bicep's). This is the same
# Microsoft.Insights/dataCollectionRules body as main.bicep's
# alertsIngestionRule. It must be in its destination workspace's region. The
# stream's columns are exactly internal/sentinel.Columns; the data flow writes
# them unchanged (transformKql source) into the table.
resource "azapi_resource" "alerts_ingestion_rule" {
  count = local.sentinel_enabled ? 1 : 0

  type      = "Microsoft.Insights/dataCollectionRules@2024-03-11"
  name      = "dcr-tokenpivot-${var.name_suffix}"
  parent_id = data.azurerm_resource_group.rg.id
  location  = data.azapi_resource.sentinel_workspace[0].location
  tags      = var.tags

  body = {
    kind = "Direct"
    properties = {
      description = "tokenpivot alert revisions to TokenPivotAlerts_CL (Microsoft Sentinel)."
      streamDeclarations = {
        "Custom-TokenPivotAlerts" = {
          columns = [
            { name = "TimeGenerated", type = "datetime" },
            { name = "AlertId", type = "string" },
            { name = "Revision", type = "int" },
            { name = "IncidentId", type = "string" },
            { name = "AlertName", type = "string" },
            { name = "Description", type = "string" },
            { name = "Severity", type = "string" },
            { name = "Tactics", type = "string" },
            { name = "Techniques", type = "dynamic" },
            { name = "UserPrincipalName", type = "string" },
            { name = "NIIPAddress", type = "string" },
            { name = "NICountry", type = "string" },
            { name = "InteractiveIP", type = "string" },
            { name = "InteractiveCountry", type = "string" },
            { name = "AppDisplayName", type = "string" },
            { name = "StartTime", type = "datetime" },
            { name = "EndTime", type = "datetime" },
            { name = "ResultCount", type = "int" },
            { name = "Results", type = "dynamic" },
            { name = "ResultsTruncated", type = "boolean" },
            { name = "RuleId", type = "string" },
            { name = "RuleVersion", type = "string" },
          ]
        }
      }
      destinations = {
        logAnalytics = [
          {
            name                = "sentinelWorkspace"
            workspaceResourceId = var.sentinel_workspace_id
          },
        ]
      }
      dataFlows = [
        {
          streams      = ["Custom-TokenPivotAlerts"]
          destinations = ["sentinelWorkspace"]
          transformKql = "source"
          outputStream = "Custom-TokenPivotAlerts_CL"
        },
      ]
    }
  }

  # The app settings TOKENPIVOT_LOGS_INGESTION_ENDPOINT and _RULE_ID.
  response_export_values = ["properties.endpoints.logsIngestion", "properties.immutableId"]

  # A data flow can only name a table that exists.
  depends_on = [azurerm_log_analytics_workspace_table_custom_log.alerts_table]
}

# The function sends with its identity: the Logs Ingestion API needs this role
# on the rule, nothing on the workspace.
resource "azurerm_role_assignment" "ingestion_publisher" {
  count = local.sentinel_enabled ? 1 : 0

  scope                = azapi_resource.alerts_ingestion_rule[0].id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

# Near-real-time: Sentinel runs the query about every minute over what was
# ingested since the last run. Every send of an alert is a new revision row;
# arg_max keeps one row per AlertId in a run, the highest Revision (the rows
# of one Logs Ingestion call share one TimeGenerated, so TimeGenerated cannot
# order them), so a re-sent revision never raises two alerts at once. Only
# the columns the rule maps are projected (NRT alerts are size-limited), with
# AlertName cut to Sentinel's 256 characters and Description to 5,000.
# Alerts of one account are grouped into one incident (Selected by Account:
# the only matching method that honours groupByEntities; tokenpivot's own
# incidents group the same way, internal/alert.GroupingKey).
resource "azurerm_sentinel_alert_rule_nrt" "alert_rule" {
  count = local.sentinel_enabled ? 1 : 0

  # Fixed, so Bicep and Terraform manage the same rule; not the bundled
  # Scheduled rule's id, which the SOC may run in the same workspace.
  name                       = "f63c977c-868d-4673-9457-d41789f82ad7"
  log_analytics_workspace_id = var.sentinel_workspace_id
  display_name               = "TokenPivot: Interactive to Non-Interactive Token Theft Pivot"
  description                = "Raises the alerts tokenpivot finds in the exported sign-in logs (table TokenPivotAlerts_CL, one row per alert revision), with their own name, description and severity."
  severity                   = "High"
  enabled                    = true
  query                      = "TokenPivotAlerts_CL\n| summarize arg_max(Revision, *) by AlertId\n| project AlertId, IncidentId, AlertName = substring(AlertName, 0, 256), Description = substring(Description, 0, 5000), Severity, UserPrincipalName, NIIPAddress, InteractiveIP, InteractiveCountry, NICountry, AppDisplayName, RuleVersion"
  suppression_enabled        = false
  suppression_duration       = "PT5H"
  tactics                    = ["CredentialAccess", "LateralMovement", "DefenseEvasion"]
  techniques                 = ["T1528", "T1539", "T1078"]

  entity_mapping {
    entity_type = "Account"
    field_mapping {
      identifier  = "FullName"
      column_name = "UserPrincipalName"
    }
  }

  entity_mapping {
    entity_type = "IP"
    field_mapping {
      identifier  = "Address"
      column_name = "NIIPAddress"
    }
  }

  custom_details = {
    TokenPivotAlertId     = "AlertId"
    TokenPivotIncident    = "IncidentId"
    InteractiveIP         = "InteractiveIP"
    InteractiveCountry    = "InteractiveCountry"
    NonInteractiveCountry = "NICountry"
    AppDisplayName        = "AppDisplayName"
    RuleVersion           = "RuleVersion"
  }

  alert_details_override {
    display_name_format  = "{{AlertName}}"
    description_format   = "{{Description}}"
    severity_column_name = "Severity"
  }

  event_grouping {
    aggregation_method = "AlertPerResult"
  }

  incident {
    create_incident_enabled = true
    grouping {
      enabled                 = true
      reopen_closed_incidents = false
      lookback_duration       = "PT5H"
      entity_matching_method  = "Selected"
      by_entities             = ["Account"]
      by_alert_details        = []
      by_custom_details       = []
    }
  }

  # Sentinel validates the query against the workspace: the table first.
  depends_on = [azurerm_log_analytics_workspace_table_custom_log.alerts_table]
}
