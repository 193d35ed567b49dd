terraform {
  # 1.9: a variable's validation may refer to other variables (contradictory
  # inputs fail at plan, see variables.tf); import blocks with for_each (the
  # existing export containers) need 1.7.
  required_version = ">= 1.9.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # storage_account_id on azurerm_storage_queue (Resource Manager, not the
      # data plane) exists from 4.46.0; azurerm_log_analytics_workspace_table_custom_log
      # (the SOC tables to come) from 4.55.0.
      version = ">= 4.55.0, < 5.0.0"
    }
    azapi = {
      source = "Azure/azapi"
      # 2.x: body as an HCL object, ignore_missing_property by default, and
      # identity_ids compared regardless of order (2.5.0).
      version = ">= 2.5.0, < 3.0.0"
    }
  }
}

provider "azurerm" {
  features {
    storage {
      # The function's own account has shared keys off. Without this, the 4.x
      # storage account resource reads its blob/queue/file service properties
      # from the data plane on create and on every refresh, with the
      # deployer's token, and fails with 403 unless the deployer holds data
      # roles (hashicorp/terraform-provider-azurerm#26785, #29984). Containers
      # and queues are created through Resource Manager (storage_account_id),
      # so nothing here needs the data plane.
      data_plane_available = false
    }
  }
  # Should anything still reach the data plane, it uses Entra ID, not keys.
  storage_use_azuread = true
  # azurerm 4.x does not fall back to the Azure CLI's default subscription:
  # without a subscription id (this, or ARM_SUBSCRIPTION_ID) plan stops.
  # Named explicitly so that both providers work in the same one.
  subscription_id = var.subscription_id
}

provider "azapi" {
  subscription_id = var.subscription_id
}
