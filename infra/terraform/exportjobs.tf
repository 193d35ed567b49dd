# Export jobs (ScheduleExports), optional behind var.export_workspace_id
# (Bicep: modules/export-workspace.bicep and modules/export-jobs.bicep), as
# the export job documentation requires:
#   - the function's identity runs export jobs on the workspace and queries
#     its tables: Log Analytics Reader on the workspace;
#   - the workspace's system-assigned identity writes the Parquet blobs and
#     resolves the account's endpoint: Storage Blob Data Contributor and Log
#     Analytics Reader on the export account.
# The workspace is only read (its identity must be on already): azurerm's
# workspace data source has no identity, so azapi reads it.

locals {
  export_jobs = var.export_workspace_id != ""
}

data "azapi_resource" "export_workspace" {
  count = local.export_jobs ? 1 : 0

  type                   = "Microsoft.OperationalInsights/workspaces@2025-07-01"
  resource_id            = var.export_workspace_id
  response_export_values = ["identity.principalId"]

  lifecycle {
    postcondition {
      condition     = try(self.output.identity.principalId, null) != null
      error_message = "The workspace ${var.export_workspace_id} has no system-assigned identity: turn it on first (infra/README.md, export jobs)."
    }
  }
}

resource "azurerm_role_assignment" "function_workspace_reader" {
  count = local.export_jobs ? 1 : 0

  scope                = one(data.azapi_resource.export_workspace[*].id)
  role_definition_name = "Log Analytics Reader"
  principal_id         = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "workspace_export_writer" {
  count = local.export_jobs ? 1 : 0

  scope                = local.export_account_id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = one(data.azapi_resource.export_workspace[*].output.identity.principalId)
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "workspace_export_reader" {
  count = local.export_jobs ? 1 : 0

  scope                = local.export_account_id
  role_definition_name = "Log Analytics Reader"
  principal_id         = one(data.azapi_resource.export_workspace[*].output.identity.principalId)
  principal_type       = "ServicePrincipal"
}
