# Same parameters and defaults as infra/bicep/main.bicep (snake_case here).

variable "subscription_id" {
  description = "Subscription of resource_group_name (az account show --query id -o tsv). azurerm 4.x requires one and no longer takes the Azure CLI's default; both providers use this, so plan never runs against another subscription than the one named here."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID (az account show --query id -o tsv)."
  }
}

variable "resource_group_name" {
  description = "Existing resource group for the function app and its storage."
  type        = string
}

variable "location" {
  description = "Region of the function app and its storage; empty = the resource group's."
  type        = string
  default     = ""
}

variable "name_suffix" {
  description = "Short unique suffix for global names (storage account, function app): 3-10 lowercase letters and digits."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,10}$", var.name_suffix))
    error_message = "name_suffix must be 3 to 10 lowercase letters and digits."
  }
}

variable "function_app_name" {
  description = "Name of the function app; empty = func-tokenpivot-<suffix>."
  type        = string
  default     = ""
}

variable "storage_account_name" {
  description = "Name of the function's own storage account; empty = sttokenpivot<suffix>."
  type        = string
  default     = ""
}

variable "export_storage_account_name" {
  description = "Storage account the Log Analytics export writes to."
  type        = string
}

variable "export_resource_group_name" {
  description = "Resource group of the export storage account; empty = resource_group_name."
  type        = string
  default     = ""
}

variable "create_export_storage_account" {
  description = "Create the export storage account (true) or use an existing one (false)."
  type        = bool
  default     = false
}

variable "export_containers_exist" {
  description = "The two export containers already exist (the export has written): import them instead of creating them."
  type        = bool
  default     = false

  validation {
    condition     = !(var.export_containers_exist && var.create_export_storage_account)
    error_message = "export_containers_exist and create_export_storage_account cannot both be true: a storage account created by this configuration has no containers to import. Set create_export_storage_account = false to use the existing account, or export_containers_exist = false."
  }
}

variable "interactive_container_name" {
  description = "Export container of SigninLogs (interactive)."
  type        = string
  default     = "am-signinlogs"
}

variable "non_interactive_container_name" {
  description = "Export container of AADNonInteractiveUserSignInLogs."
  type        = string
  default     = "am-aadnoninteractiveusersigninlogs"
}

variable "state_container_name" {
  description = "Container for extracts and the ledger; old blobs are deleted by the lifecycle policy."
  type        = string
  default     = "tokenpivot-state"
}

variable "alerts_container_name" {
  description = "Container for alert documents."
  type        = string
  default     = "tokenpivot-alerts"
}

variable "incidents_container_name" {
  description = "Container for incident documents."
  type        = string
  default     = "tokenpivot-incidents"
}

variable "rule" {
  description = "TOKENPIVOT_RULE: rule YAML text or a path in the package; empty = the bundled rule."
  type        = string
  default     = ""
}

variable "safe_ips" {
  description = "TOKENPIVOT_SAFE_IPS: comma-separated known-safe IP addresses."
  type        = string
  default     = ""
}

variable "safe_networks" {
  description = "TOKENPIVOT_SAFE_NETWORKS: comma-separated known-safe CIDRs."
  type        = string
  default     = ""
}

variable "ipv6_safe_networks" {
  description = "TOKENPIVOT_IPV6_SAFE_NETWORKS: also match IPv6 addresses against IPv6 safe networks (KQL's ipv4_lookup never does)."
  type        = string
  default     = "false"

  validation {
    condition     = contains(["true", "false"], var.ipv6_safe_networks)
    error_message = "ipv6_safe_networks must be \"true\" or \"false\"."
  }
}

variable "max_expansion" {
  description = "TOKENPIVOT_MAX_EXPANSION: reject a gzip export that decompresses to more than this many times its size."
  type        = number
  default     = 64

  validation {
    condition     = var.max_expansion >= 1 && floor(var.max_expansion) == var.max_expansion
    error_message = "max_expansion must be a whole number, at least 1."
  }
}

variable "allowed_lateness_hours" {
  description = "How late (by blob Last-Modified) an export may arrive and still be joined, in hours; sets TOKENPIVOT_ALLOWED_LATENESS."
  type        = number
  default     = 168

  validation {
    condition     = var.allowed_lateness_hours >= 1 && floor(var.allowed_lateness_hours) == var.allowed_lateness_hours
    error_message = "allowed_lateness_hours must be a whole number of hours, at least 1."
  }
}

variable "state_retention_margin_days" {
  description = "Days state is kept beyond the allowed lateness before the lifecycle policy deletes it."
  type        = number
  default     = 2
}

variable "alerts_cool_after_days" {
  description = "Days after which alert documents move to the cool tier."
  type        = number
  default     = 30
}

variable "instance_memory_mb" {
  description = "Flex Consumption instance memory in MB; GOMEMLIMIT is set to 11/16 of it."
  type        = number
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.instance_memory_mb)
    error_message = "instance_memory_mb must be 512, 2048 or 4096."
  }
}

variable "maximum_instance_count" {
  description = "Flex Consumption maximum instance count (40 is the lowest maximum the Flex Consumption stacks offer)."
  type        = number
  default     = 40

  validation {
    condition     = var.maximum_instance_count >= 40 && var.maximum_instance_count <= 1000 && floor(var.maximum_instance_count) == var.maximum_instance_count
    error_message = "maximum_instance_count must be a whole number from 40 to 1000."
  }
}

variable "log_retention_days" {
  description = "Log Analytics retention in days for the function's own logs."
  type        = number
  default     = 30
}

variable "system_topic_name" {
  description = "Event Grid system topic on the export account; an account has at most one, so name the existing one if there is (and set system_topic_exists). Empty = evgt-tokenpivot-<suffix>."
  type        = string
  default     = ""
}

variable "system_topic_exists" {
  description = "The export account already has the Event Grid system topic system_topic_name (an account has at most one): use it as it is, without changing its tags or identity. It must have a system-assigned identity."
  type        = bool
  default     = false

  validation {
    condition     = !(var.system_topic_exists && var.create_export_storage_account)
    error_message = "system_topic_exists and create_export_storage_account cannot both be true: a storage account created by this configuration has no system topic yet."
  }
}

variable "subscribe_events" {
  description = "Step 2: create the Event Grid subscriptions (needs the code deployed first)."
  type        = bool
  default     = false
}

variable "export_workspace_id" {
  description = "Resource id of the Log Analytics (Sentinel) workspace that ScheduleExports requests hourly export jobs from; empty (the default) turns export jobs off. Its system-assigned identity must be on (infra/README.md)."
  type        = string
  default     = ""

  validation {
    condition     = var.export_workspace_id == "" || can(regex("^/subscriptions/[^/]+/resource[Gg]roups/[^/]+/providers/Microsoft.OperationalInsights/workspaces/[^/]+$", var.export_workspace_id))
    error_message = "export_workspace_id must be empty or /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}."
  }
}

variable "export_schedule" {
  description = "NCRONTAB schedule of ScheduleExports (second minute hour day month weekday)."
  type        = string
  default     = "0 5 * * * *"
}

# Settings that only the SOC knows. Every apply replaces the whole
# app-settings set of the site, so a setting added by hand after a deployment
# is deleted by the next one: each setting the code reads is a variable here.

variable "webhook_url" {
  description = "TOKENPIVOT_WEBHOOK_URL: the SOC's webhook receiver (https). Teams and Slack URLs carry their credential, hence sensitive (it is still in the state: keep the state private), or a Key Vault reference (@Microsoft.KeyVault(SecretUri=...)) resolved with the function's identity. Empty = no webhook sink."
  type        = string
  default     = ""
  sensitive   = true
}

variable "webhook_format" {
  description = "TOKENPIVOT_WEBHOOK_FORMAT: standard (signed alert document), teams or slack."
  type        = string
  default     = "standard"

  validation {
    condition     = contains(["standard", "teams", "slack"], var.webhook_format)
    error_message = "webhook_format must be standard, teams or slack."
  }
}

variable "webhook_secret" {
  description = "TOKENPIVOT_WEBHOOK_SECRET: the Standard Webhooks signing secret (whsec_<base64>), or a Key Vault reference to it. Empty = unsigned."
  type        = string
  default     = ""
  sensitive   = true
}

variable "storage_connection_string" {
  description = "TOKENPIVOT_STORAGE_CONNECTION_STRING: a connection string for the export storage, only where the identity cannot be used (it wins over the identity); a Key Vault reference is best. Empty (the default and the recommendation) = the identity."
  type        = string
  default     = ""
  sensitive   = true
}

variable "export_endpoint" {
  description = "TOKENPIVOT_EXPORT_ENDPOINT: Log Analytics data-plane endpoint of export jobs in a sovereign cloud (e.g. https://api.loganalytics.us); empty = the public cloud's, the code's default."
  type        = string
  default     = ""
}

variable "export_first_hour" {
  description = "TOKENPIVOT_EXPORT_FIRST_HOUR: the first hour export jobs request (RFC 3339, e.g. 2026-12-01T00:00:00Z); empty = only the lookback bounds it."
  type        = string
  default     = ""
}

variable "precision" {
  description = "TOKENPIVOT_PRECISION: the precision mode, exact (the Sentinel rule), balanced or strict (README, What the precision modes change). A mode widens the export jobs' projection by its columns."
  type        = string
  default     = "exact"
  validation {
    condition     = contains(["exact", "balanced", "strict"], var.precision)
    error_message = "precision must be exact, balanced or strict."
  }
}

variable "precision_hosting_asns" {
  description = "TOKENPIVOT_PRECISION_HOSTING_ASNS: a file replacing the precision modes' bundled hosting/anonymizer ASN list; empty = the bundled list."
  type        = string
  default     = ""
}

variable "precision_m365_ranges" {
  description = "TOKENPIVOT_PRECISION_M365_RANGES: a file replacing the bundled Microsoft 365 service ranges; empty = the bundled list."
  type        = string
  default     = ""
}

variable "precision_first_party_apps" {
  description = "TOKENPIVOT_PRECISION_FIRST_PARTY_APPS: a file replacing the bundled first-party app ids; empty = the bundled list."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "vnet_enabled" {
  description = "Private networking, as Microsoft's Flex Consumption samples have it: the app joins app_subnet_id (VNet integration; a subnet delegated to Microsoft.App/environments) and the function's own storage account denies public networks (trusted Azure services still write the dead letters), so the app reaches it through private endpoints for blob, queue and table in that virtual network (the network team's, infra/README.md)."
  type        = bool
  default     = false
}

variable "app_subnet_id" {
  description = "With vnet_enabled: resource id of the subnet the app integrates with (delegated to Microsoft.App/environments)."
  type        = string
  default     = ""

  validation {
    condition     = !var.vnet_enabled || var.app_subnet_id != ""
    error_message = "vnet_enabled needs app_subnet_id: the subnet the app integrates with (infra/README.md, Private networking)."
  }
}

variable "alert_action_group_id" {
  description = "Resource id of an action group (e-mail, Teams, ITSM...) notified by the operability alerts (dead letters, poison messages, failed runs); empty = the alerts only show in Azure Monitor."
  type        = string
  default     = ""
}

variable "sentinel_workspace_id" {
  description = "Microsoft Sentinel: resource id of the SOC's existing Log Analytics workspace, onboarded to Sentinel (/subscriptions/.../resourceGroups/.../providers/Microsoft.OperationalInsights/workspaces/...). Alerts are then sent to its table TokenPivotAlerts_CL and an NRT analytics rule raises Sentinel incidents. Empty = no Sentinel integration."
  type        = string
  default     = ""

  validation {
    condition     = var.sentinel_workspace_id == "" || can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.OperationalInsights/workspaces/[^/]+$", var.sentinel_workspace_id))
    error_message = "sentinel_workspace_id must be a Log Analytics workspace resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>."
  }
}
