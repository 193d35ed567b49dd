# What tokenpivot needs on the export account (Bicep: modules/export-account.bicep
# and modules/export-access.bicep): the account (new or existing), the two
# export containers, read-only access to exactly those containers, the Event
# Grid system topic and (step 2) the BlobCreated subscriptions.

locals {
  export_resource_group = var.export_resource_group_name != "" ? var.export_resource_group_name : data.azurerm_resource_group.rg.name

  export_account_id       = one(concat(azurerm_storage_account.export_account[*].id, data.azurerm_storage_account.existing_export_account[*].id))
  export_account_location = one(concat(azurerm_storage_account.export_account[*].location, data.azurerm_storage_account.existing_export_account[*].location))
  export_blob_endpoint    = one(concat(azurerm_storage_account.export_account[*].primary_blob_endpoint, data.azurerm_storage_account.existing_export_account[*].primary_blob_endpoint))

  # The system topic: created here, or an existing one left as it is.
  export_topic_name         = one(concat(azurerm_eventgrid_system_topic.export_topic[*].name, data.azurerm_eventgrid_system_topic.existing_export_topic[*].name))
  export_topic_principal_id = one(concat(azurerm_eventgrid_system_topic.export_topic[*].identity[0].principal_id, data.azurerm_eventgrid_system_topic.existing_export_topic[*].identity[0].principal_id))

  # Only known in step 2, once the host has created its eventgrid_extension key.
  webhook_url = var.subscribe_events ? "https://${local.function_app_hostname}/runtime/webhooks/eventgrid?functionName=OnExportCreated&code=${one(data.azurerm_function_app_host_keys.function_keys[*].event_grid_extension_config_key)}" : ""
}

# A new export account has the same hardening as the function's own, except
# that shared-key access is left at the default: the writer is the Log
# Analytics export, not tokenpivot (which only reads, with its identity).
resource "azurerm_storage_account" "export_account" {
  count = var.create_export_storage_account ? 1 : 0

  name                            = var.export_storage_account_name
  resource_group_name             = local.export_resource_group
  location                        = local.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  access_tier                     = "Hot"
  allow_nested_items_to_be_public = false
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  tags                            = var.tags
}

data "azurerm_storage_account" "existing_export_account" {
  count = var.create_export_storage_account ? 0 : 1

  name                = var.export_storage_account_name
  resource_group_name = local.export_resource_group
}

# Containers the export may already have created: import them (Terraform
# >= 1.7) rather than fail with "already exists".
import {
  for_each = var.export_containers_exist ? toset([var.interactive_container_name]) : toset([])
  to       = azurerm_storage_container.interactive_container
  id       = "${local.export_account_id}/blobServices/default/containers/${each.value}"
}

import {
  for_each = var.export_containers_exist ? toset([var.non_interactive_container_name]) : toset([])
  to       = azurerm_storage_container.non_interactive_container
  id       = "${local.export_account_id}/blobServices/default/containers/${each.value}"
}

resource "azurerm_storage_container" "interactive_container" {
  name                  = var.interactive_container_name
  storage_account_id    = local.export_account_id
  container_access_type = "private"

  # The SOC's exported sign-in logs: never deleted by a destroy of this
  # configuration (terraform state rm it first to let go of it).
  lifecycle {
    prevent_destroy = true
  }
}

resource "azurerm_storage_container" "non_interactive_container" {
  name                  = var.non_interactive_container_name
  storage_account_id    = local.export_account_id
  container_access_type = "private"

  # The SOC's exported sign-in logs: never deleted by a destroy of this
  # configuration (terraform state rm it first to let go of it).
  lifecycle {
    prevent_destroy = true
  }
}

# Read on the two export containers only: not the account, not other tables.
resource "azurerm_role_assignment" "interactive_reader" {
  scope                = azurerm_storage_container.interactive_container.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "non_interactive_reader" {
  scope                = azurerm_storage_container.non_interactive_container.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

# Azure allows one system topic per source: if the account already has one
# (Defender for Storage, another subscriber), set system_topic_exists and
# system_topic_name; it is then only read, so its tags and identity stay as
# its owner set them.
resource "azurerm_eventgrid_system_topic" "export_topic" {
  count = var.system_topic_exists ? 0 : 1

  name                = local.system_topic_name
  resource_group_name = local.export_resource_group
  location            = local.export_account_location
  source_resource_id  = local.export_account_id
  topic_type          = "Microsoft.Storage.StorageAccounts"
  tags                = var.tags

  identity {
    type = "SystemAssigned"
  }
}

data "azurerm_eventgrid_system_topic" "existing_export_topic" {
  count = var.system_topic_exists ? 1 : 0

  name                = local.system_topic_name
  resource_group_name = local.export_resource_group

  lifecycle {
    postcondition {
      condition     = lower(self.source_resource_id) == lower(local.export_account_id)
      error_message = "System topic ${local.system_topic_name} is not the export account's (its source is ${self.source_resource_id})."
    }
    postcondition {
      condition     = length(self.identity) > 0 && strcontains(self.identity[0].type, "SystemAssigned")
      error_message = "System topic ${local.system_topic_name} has no system-assigned identity, which dead-lettering uses: turn it on (az eventgrid system-topic update --identity systemassigned); tokenpivot does not change a topic it did not create."
    }
  }
}

# Event Grid writes undeliverable events with its system topic's identity.
resource "azurerm_role_assignment" "dead_letter_writer" {
  scope                = azurerm_storage_container.dead_letter_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = local.export_topic_principal_id
  principal_type       = "ServicePrincipal"
}

data "azurerm_function_app_host_keys" "function_keys" {
  count = var.subscribe_events ? 1 : 0

  name                = azapi_resource.function_app.name
  resource_group_name = data.azurerm_resource_group.rg.name
}

# Identical subscriptions but for the subject filter, one per export container.
resource "azurerm_eventgrid_system_topic_event_subscription" "interactive_subscription" {
  count = var.subscribe_events ? 1 : 0

  name                  = "tokenpivot-interactive"
  system_topic          = local.export_topic_name
  resource_group_name   = local.export_resource_group
  event_delivery_schema = "EventGridSchema"
  included_event_types  = ["Microsoft.Storage.BlobCreated"]

  subject_filter {
    subject_begins_with = "/blobServices/default/containers/${var.interactive_container_name}/"
  }

  webhook_endpoint {
    url                               = local.webhook_url
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.storage.id
    storage_blob_container_name = azurerm_storage_container.dead_letter_container.name
  }

  depends_on = [azurerm_role_assignment.dead_letter_writer]
}

resource "azurerm_eventgrid_system_topic_event_subscription" "non_interactive_subscription" {
  count = var.subscribe_events ? 1 : 0

  name                  = "tokenpivot-noninteractive"
  system_topic          = local.export_topic_name
  resource_group_name   = local.export_resource_group
  event_delivery_schema = "EventGridSchema"
  included_event_types  = ["Microsoft.Storage.BlobCreated"]

  subject_filter {
    subject_begins_with = "/blobServices/default/containers/${var.non_interactive_container_name}/"
  }

  webhook_endpoint {
    url                               = local.webhook_url
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.storage.id
    storage_blob_container_name = azurerm_storage_container.dead_letter_container.name
  }

  depends_on = [azurerm_role_assignment.dead_letter_writer]
}
