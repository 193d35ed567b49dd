# Optional: the Microsoft Entra ID diagnostic setting that archives the two
# sign-in log categories tokenpivot reads to the export storage account, for
# tenants that do not send AADNonInteractiveUserSignInLogs to a Log Analytics
# workspace. The same setting as infra/bicep/tenant-diagnostics.bicep; a root
# module of its own because it is a tenant resource, applied by someone with
# the Microsoft Entra role Security Administrator (or Global Administrator),
# usually not the person who deploys the function:
#
#   cd infra/terraform/tenant-diagnostics
#   terraform init && terraform apply -var storage_account_id=<export account id>
#
# Azure Monitor then writes insights-logs-signinlogs/ and
# insights-logs-noninteractiveusersigninlogs/tenantId=<tid>/y=/m=/d=/h=/m=00/PT1H.json;
# apply ../ with interactive_container_name = "insights-logs-signinlogs" and
# non_interactive_container_name = "insights-logs-noninteractiveusersigninlogs"
# (see infra/README.md, "Where do my logs come from").
#
# The azurerm provider documents that this resource's API does not accept a
# service principal: authenticate with the Azure CLI (az login as the
# administrator). The storage account also needs the caller to be allowed to
# send logs to it (Owner or Contributor on the account).
#
# Not checked by internal/infra's schema tests (they read ../*.tf and the
# trimmed testdata/azure-schemas, which lacks this resource type).

terraform {
  required_version = ">= 1.9.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.55.0, < 5.0.0"
    }
  }
}

provider "azurerm" {
  features {}
  # The subscription is only the provider's context: the setting lives on
  # the tenant.
  subscription_id = var.subscription_id
}

variable "subscription_id" {
  description = "Subscription for the provider's context (any the administrator can read; the setting itself is tenant-wide)."
  type        = string
}

variable "name" {
  description = "Name of the diagnostic setting."
  type        = string
  default     = "tokenpivot-signin-archive"
}

variable "storage_account_id" {
  description = "Resource id of the storage account the sign-in logs are archived to: the export account ../ reads (export_storage_account_name)."
  type        = string
}

variable "include_non_interactive" {
  description = "Also archive NonInteractiveUserSignInLogs (the rule needs both categories; turn off only when another source provides them)."
  type        = bool
  default     = true
}

variable "enabled" {
  description = "Create the setting at all: false leaves the tenant untouched."
  type        = bool
  default     = true
}

resource "azurerm_monitor_aad_diagnostic_setting" "signin_archive" {
  count              = var.enabled ? 1 : 0
  name               = var.name
  storage_account_id = var.storage_account_id

  # No retention_policy: retention for storage destinations is retired; age
  # the archive out with a lifecycle rule on the account.
  enabled_log {
    category = "SignInLogs"
  }

  dynamic "enabled_log" {
    for_each = var.include_non_interactive ? ["NonInteractiveUserSignInLogs"] : []
    content {
      category = enabled_log.value
    }
  }
}

output "interactive_container_name" {
  value = "insights-logs-signinlogs"
}

output "non_interactive_container_name" {
  value = "insights-logs-noninteractiveusersigninlogs"
}
