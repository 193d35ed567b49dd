# tokenpivot on Azure Functions Flex Consumption (FC1, Linux, custom handler).
# Kept in step with infra/bicep: same resources, role assignments and app
# settings (internal/infra tests compare the two). Resource names here are the
# snake_case of the Bicep symbolic names.

data "azurerm_resource_group" "rg" {
  name = var.resource_group_name
}

locals {
  location             = var.location != "" ? var.location : data.azurerm_resource_group.rg.location
  function_app_name    = var.function_app_name != "" ? var.function_app_name : "func-tokenpivot-${var.name_suffix}"
  storage_account_name = var.storage_account_name != "" ? var.storage_account_name : "sttokenpivot${var.name_suffix}"

  deployment_container_name  = "app-package"
  dead_letter_container_name = "tokenpivot-deadletter"
  work_queue_name            = "tokenpivot-work"
  system_topic_name          = var.system_topic_name != "" ? var.system_topic_name : "evgt-tokenpivot-${var.name_suffix}"

  # Flex Consumption apps get unique default hostnames: always use the one
  # Azure returns, never <name>.azurewebsites.net.
  function_app_hostname = azapi_resource.function_app.output.properties.defaultHostName

  # State must outlive the allowed lateness: a blob may join with anything up
  # to that old. Lifecycle rules count whole days, so round up and add a margin.
  state_retention_days = ceil(var.allowed_lateness_hours / 24) + var.state_retention_margin_days

  # Every setting the code reads. The same names and defaults are in
  # infra/bicep/main.bicep (var appSettings). Every apply replaces the whole
  # set, so each setting the code reads is here, fed by a variable where the
  # operator chooses it (internal/infra: TestEverySettingDeployable).
  # TOKENPIVOT_STORAGE_CONNECTION_STRING stays empty unless given: the
  # identity reads the export account. Settings whose value is empty are left
  # out of the site (see azapi_resource.function_app).
  app_settings = {
    # Host storage by identity. The service URIs are what the host uses (it
    # reads them before the account name, and they hold the cloud's real
    # endpoints: sovereign clouds, custom DNS); the account name stays for
    # tools that only know that form.
    AzureWebJobsStorage__blobServiceUri       = azurerm_storage_account.storage.primary_blob_endpoint
    AzureWebJobsStorage__queueServiceUri      = azurerm_storage_account.storage.primary_queue_endpoint
    AzureWebJobsStorage__tableServiceUri      = azurerm_storage_account.storage.primary_table_endpoint
    AzureWebJobsStorage__accountName          = azurerm_storage_account.storage.name
    AzureWebJobsStorage__credential           = "managedidentity"
    AzureWebJobsStorage__clientId             = azurerm_user_assigned_identity.function_identity.client_id
    APPLICATIONINSIGHTS_CONNECTION_STRING     = azurerm_application_insights.app_insights.connection_string
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.function_identity.client_id};Authorization=AAD"
    AZURE_CLIENT_ID                           = azurerm_user_assigned_identity.function_identity.client_id
    # The export account's blob endpoint as Azure reports it (Bicep reads
    # the same primary blob endpoint).
    TOKENPIVOT_STORAGE_ACCOUNT_URL       = local.export_blob_endpoint
    TOKENPIVOT_STORAGE_CONNECTION_STRING = var.storage_connection_string
    TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL = azurerm_storage_account.storage.primary_blob_endpoint
    TOKENPIVOT_INTERACTIVE_CONTAINER     = var.interactive_container_name
    TOKENPIVOT_NONINTERACTIVE_CONTAINER  = var.non_interactive_container_name
    TOKENPIVOT_STATE_CONTAINER           = var.state_container_name
    TOKENPIVOT_ALERTS_CONTAINER          = var.alerts_container_name
    TOKENPIVOT_INCIDENTS_CONTAINER       = var.incidents_container_name
    TOKENPIVOT_RULE                      = var.rule
    TOKENPIVOT_SAFE_IPS                  = var.safe_ips
    TOKENPIVOT_SAFE_NETWORKS             = var.safe_networks
    TOKENPIVOT_IPV6_SAFE_NETWORKS        = var.ipv6_safe_networks
    TOKENPIVOT_ALLOWED_LATENESS          = "${var.allowed_lateness_hours}h"
    TOKENPIVOT_MAX_EXPANSION             = "${var.max_expansion}"
    # Export jobs (ScheduleExports, internal/exportjob): off while the
    # workspace is empty. The schedule is always set: function.json names it.
    TOKENPIVOT_EXPORT_WORKSPACE_ID       = var.export_workspace_id
    TOKENPIVOT_EXPORT_STORAGE_ACCOUNT_ID = local.export_account_id
    TOKENPIVOT_EXPORT_SCHEDULE           = var.export_schedule
    TOKENPIVOT_EXPORT_LOOKBACK           = "48h"
    TOKENPIVOT_EXPORT_SETTLE             = "30m"
    TOKENPIVOT_EXPORT_LEASE              = "15m"
    TOKENPIVOT_EXPORT_STUCK_AFTER        = "6h"
    TOKENPIVOT_EXPORT_MAX_ATTEMPTS       = "3"
    TOKENPIVOT_EXPORT_MAX_ACTIVE         = "4"
    TOKENPIVOT_EXPORT_ENDPOINT           = var.export_endpoint
    TOKENPIVOT_EXPORT_FIRST_HOUR         = var.export_first_hour
    # The precision mode (exact: the rule as Sentinel runs it) and its lists.
    TOKENPIVOT_PRECISION                  = var.precision
    TOKENPIVOT_PRECISION_HOSTING_ASNS     = var.precision_hosting_asns
    TOKENPIVOT_PRECISION_M365_RANGES      = var.precision_m365_ranges
    TOKENPIVOT_PRECISION_FIRST_PARTY_APPS = var.precision_first_party_apps
    # The webhook sink (the SOC's receiver); empty = off.
    TOKENPIVOT_WEBHOOK_URL    = var.webhook_url
    TOKENPIVOT_WEBHOOK_FORMAT = var.webhook_format
    TOKENPIVOT_WEBHOOK_SECRET = var.webhook_secret
    # Microsoft Sentinel, from the data collection rule (sentinel.tf); empty
    # (left out) without var.sentinel_workspace_id.
    TOKENPIVOT_LOGS_INGESTION_ENDPOINT = local.sentinel_enabled ? azapi_resource.alerts_ingestion_rule[0].output.properties.endpoints.logsIngestion : ""
    TOKENPIVOT_LOGS_INGESTION_RULE_ID  = local.sentinel_enabled ? azapi_resource.alerts_ingestion_rule[0].output.properties.immutableId : ""
    TOKENPIVOT_LOGS_INGESTION_STREAM   = local.sentinel_enabled ? azapi_resource.alerts_ingestion_rule[0].body.properties.dataFlows[0].streams[0] : ""
    # The Go heap's soft limit: 11/16 of the instance, the rest left to the
    # Functions host; serve sizes its budget of blobs in flight from it.
    GOMEMLIMIT = "${floor(var.instance_memory_mb * 11 / 16)}MiB"
  }
}

# ------------------------------------------------------------ observability

resource "azurerm_log_analytics_workspace" "log_analytics" {
  name                = "log-tokenpivot-${var.name_suffix}"
  resource_group_name = data.azurerm_resource_group.rg.name
  location            = local.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  # Ingestion only with Entra ID (App Insights, with local auth off below),
  # never with the workspace's shared keys.
  local_authentication_enabled = false
  tags                         = var.tags
}

resource "azurerm_application_insights" "app_insights" {
  name                = "appi-tokenpivot-${var.name_suffix}"
  resource_group_name = data.azurerm_resource_group.rg.name
  location            = local.location
  application_type    = "web"
  workspace_id        = azurerm_log_analytics_workspace.log_analytics.id
  # Ingestion only with Entra ID: the identity below publishes with
  # Monitoring Metrics Publisher, no instrumentation key is trusted.
  local_authentication_enabled = false
  tags                         = var.tags
}

# ----------------------------------------------------------------- identity

resource "azurerm_user_assigned_identity" "function_identity" {
  name                = "id-tokenpivot-${var.name_suffix}"
  resource_group_name = data.azurerm_resource_group.rg.name
  location            = local.location
  tags                = var.tags
}

# -------------------------------------------------------------- own storage

resource "azurerm_storage_account" "storage" {
  name                            = local.storage_account_name
  resource_group_name             = data.azurerm_resource_group.rg.name
  location                        = local.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  access_tier                     = "Hot"
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false
  default_to_oauth_authentication = true
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  public_network_access_enabled   = true
  tags                            = var.tags

  # With vnet_enabled, only through the private endpoints in the app's
  # virtual network (Microsoft's Flex Consumption samples), and trusted Azure
  # services: Event Grid writes dead letters here with its topic's identity,
  # which a closed account (public access off, as in the samples) would refuse.
  network_rules {
    default_action = var.vnet_enabled ? "Deny" : "Allow"
    bypass         = ["AzureServices"]
  }
}

resource "azurerm_storage_container" "deployment_container" {
  name                  = local.deployment_container_name
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "state_container" {
  name                  = var.state_container_name
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "alerts_container" {
  name                  = var.alerts_container_name
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "incidents_container" {
  name                  = var.incidents_container_name
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "dead_letter_container" {
  name                  = local.dead_letter_container_name
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

# OnExportCreated answers Event Grid within its 30 s and queues the blob here;
# ProcessExport does the work from the queue.
resource "azurerm_storage_queue" "work_queue" {
  name               = local.work_queue_name
  storage_account_id = azurerm_storage_account.storage.id
}

resource "azurerm_storage_management_policy" "storage_lifecycle" {
  storage_account_id = azurerm_storage_account.storage.id

  rule {
    name    = "delete-old-state"
    enabled = true
    filters {
      blob_types   = ["blockBlob", "appendBlob"]
      prefix_match = ["${var.state_container_name}/"]
    }
    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = local.state_retention_days
      }
    }
  }

  rule {
    name    = "cool-old-alerts"
    enabled = true
    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${var.alerts_container_name}/"]
    }
    actions {
      base_blob {
        tier_to_cool_after_days_since_modification_greater_than = var.alerts_cool_after_days
      }
    }
  }

  depends_on = [
    azurerm_storage_container.state_container,
    azurerm_storage_container.alerts_container,
  ]
}

# ------------------------------------------------------------- function app

resource "azurerm_service_plan" "plan" {
  name                = "plan-tokenpivot-${var.name_suffix}"
  resource_group_name = data.azurerm_resource_group.rg.name
  location            = local.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = var.tags
}

# The site is managed with azapi, as in Microsoft's azapi Flex Consumption
# sample, not with azurerm_function_app_flex_consumption: that resource always
# writes a key-based AzureWebJobsStorage for Flex apps (hashicorp/
# terraform-provider-azurerm#29693, fix pending in #29099), which would win over
# the identity settings, and an empty override makes every plan show a change
# and every apply re-PUT (restart) the app. Here the body is the same
# Microsoft.Web/sites body as infra/bicep/main.bicep's functionApp: only
# AzureWebJobsStorage__accountName/__credential/__clientId, no key.
#
# A second plan after apply shows no change: Resource Manager does not return
# siteConfig.appSettings on a GET of the site, and azapi compares the body only
# with what the GET returns (ignore_missing_property, true by default), so the
# write-only app settings cannot drift. The other properties set here are ones
# Azure returns as written (as in Microsoft's sample; not checkable offline).
# internal/infra's TestNoPerpetualDiff checks the rest.
resource "azapi_resource" "function_app" {
  type      = "Microsoft.Web/sites@2024-04-01"
  name      = local.function_app_name
  parent_id = data.azurerm_resource_group.rg.id
  location  = local.location
  tags      = var.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.function_identity.id]
  }

  body = {
    kind = "functionapp,linux"
    properties = {
      serverFarmId = azurerm_service_plan.plan.id
      httpsOnly    = true
      # VNet integration (vnet_enabled): outbound calls, host storage
      # included, go through the subnet, where the storage's private
      # endpoints are.
      virtualNetworkSubnetId = var.vnet_enabled ? var.app_subnet_id : null
      # Key Vault references in app settings (@Microsoft.KeyVault(...)) are
      # resolved with the user-assigned identity, the app's only one.
      keyVaultReferenceIdentity = azurerm_user_assigned_identity.function_identity.id
      siteConfig = {
        minTlsVersion = "1.2"
        appSettings   = [for name, value in local.app_settings : { name = name, value = value } if value != ""]
      }
      functionAppConfig = {
        deployment = {
          storage = {
            type  = "blobContainer"
            value = "${azurerm_storage_account.storage.primary_blob_endpoint}${azurerm_storage_container.deployment_container.name}"
            authentication = {
              type                           = "UserAssignedIdentity"
              userAssignedIdentityResourceId = azurerm_user_assigned_identity.function_identity.id
            }
          }
        }
        scaleAndConcurrency = {
          maximumInstanceCount = var.maximum_instance_count
          instanceMemoryMB     = var.instance_memory_mb
        }
        runtime = {
          name    = "custom"
          version = "1.0"
        }
      }
    }
  }

  # Flex apps get a unique default hostname (not always <name>.azurewebsites.net).
  response_export_values = ["properties.defaultHostName"]

  # The host needs its storage roles before its first start.
  depends_on = [
    azurerm_role_assignment.host_blob_owner,
    azurerm_role_assignment.host_queue_contributor,
    azurerm_role_assignment.host_table_contributor,
  ]
}

# ------------------------------------------------ roles of the function app

# The Functions host (AzureWebJobsStorage: leases, keys, timers, the work queue,
# diagnostic events) and the Flex deployment package need data-plane access to
# the own account.
resource "azurerm_role_assignment" "host_blob_owner" {
  scope                = azurerm_storage_account.storage.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "host_queue_contributor" {
  scope                = azurerm_storage_account.storage.id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

# The host writes its diagnostic events to a table in AzureWebJobsStorage, as
# in Microsoft's Flex Consumption samples.
resource "azurerm_role_assignment" "host_table_contributor" {
  scope                = azurerm_storage_account.storage.id
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

# The code's own data, stated per container so the intent survives if host
# storage ever moves to another account.
resource "azurerm_role_assignment" "state_contributor" {
  scope                = azurerm_storage_container.state_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "alerts_contributor" {
  scope                = azurerm_storage_container.alerts_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "incidents_contributor" {
  scope                = azurerm_storage_container.incidents_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

# Application Insights with local auth off accepts telemetry only from
# principals holding this role.
resource "azurerm_role_assignment" "metrics_publisher" {
  scope                = azurerm_application_insights.app_insights.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}
