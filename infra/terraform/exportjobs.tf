# Export jobs (ScheduleExports), optional behind var.export_workspace_id
# (Bicep: modules/export-workspace.bicep and modules/export-jobs.bicep), as
# the export job documentation requires, with least privilege:
#   - the function's identity runs export jobs of the two sign-in tables and
#     queries those tables only: a custom role (export action, query read on
#     SigninLogs and AADNonInteractiveUserSignInLogs) on the workspace, not
#     Log Analytics Reader (every table);
#   - the workspace's system-assigned identity writes the Parquet blobs into
#     the two export containers only (Storage Blob Data Contributor on each)
#     and resolves the account's endpoint (storageAccounts/read: Reader on the
#     account, control plane only).
# The workspace is only read (its identity must be on already): azurerm's
# workspace data source has no identity, so azapi reads it.

locals {
  export_jobs = var.export_workspace_id != ""
  # The workspace's resource group: the custom role's assignable scope.
  # (Guarded: slice() fails on an empty id, and locals are evaluated even
  # when export jobs are off.)
  export_workspace_resource_group_id = local.export_jobs ? join("/", slice(split("/", var.export_workspace_id), 0, 5)) : ""
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

# The custom role's id is fixed, as in Bicep: a role definition is one object
# per tenant, and its assignments name it by id. Deployments for the same
# workspace resource group write the same definition; infra/README.md says
# what to do for workspaces in other resource groups of the tenant.
resource "azurerm_role_definition" "export_job_role" {
  count = local.export_jobs ? 1 : 0

  role_definition_id = "e874627b-4284-4eea-baba-9b27eacaab15"
  name               = "tokenpivot Export Job Runner"
  description        = "Run Log Analytics export jobs of the sign-in tables tokenpivot reads (SigninLogs, AADNonInteractiveUserSignInLogs), and query those tables only."
  scope              = local.export_workspace_resource_group_id
  assignable_scopes  = [local.export_workspace_resource_group_id]

  permissions {
    actions = [
      "Microsoft.OperationalInsights/workspaces/read",
      "Microsoft.OperationalInsights/workspaces/jobs/export/action",
      "Microsoft.OperationalInsights/workspaces/query/read",
      "Microsoft.OperationalInsights/workspaces/query/SigninLogs/read",
      "Microsoft.OperationalInsights/workspaces/query/AADNonInteractiveUserSignInLogs/read",
    ]
    not_actions = []
  }
}

resource "azurerm_role_assignment" "function_export_job_runner" {
  count = local.export_jobs ? 1 : 0

  scope              = one(data.azapi_resource.export_workspace[*].id)
  role_definition_id = one(azurerm_role_definition.export_job_role[*].role_definition_resource_id)
  principal_id       = azurerm_user_assigned_identity.function_identity.principal_id
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "workspace_interactive_writer" {
  count = local.export_jobs ? 1 : 0

  scope                = azurerm_storage_container.interactive_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = one(data.azapi_resource.export_workspace[*].output.identity.principalId)
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "workspace_non_interactive_writer" {
  count = local.export_jobs ? 1 : 0

  scope                = azurerm_storage_container.non_interactive_container.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = one(data.azapi_resource.export_workspace[*].output.identity.principalId)
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "workspace_export_reader" {
  count = local.export_jobs ? 1 : 0

  scope                = local.export_account_id
  role_definition_name = "Reader"
  principal_id         = one(data.azapi_resource.export_workspace[*].output.identity.principalId)
  principal_type       = "ServicePrincipal"
}
