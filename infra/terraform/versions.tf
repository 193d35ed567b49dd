terraform {
  # 1.7 for import blocks with for_each (existing export containers).
  required_version = ">= 1.7.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # azurerm_function_app_flex_consumption with runtime_name = "custom" and
      # storage_account_id on containers and queues (Azure Resource Manager,
      # not shared keys) need a recent 4.x.
      version = ">= 4.40.0, < 5.0.0"
    }
  }
}

provider "azurerm" {
  features {}
  # The function's own account has shared-key access off: talk to storage
  # with Entra ID.
  storage_use_azuread = true
}
