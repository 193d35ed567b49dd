// Export jobs (ScheduleExports), on the export account's side, deployed in
// that account's resource group: the source workspace's system-assigned
// identity writes the jobs' Parquet blobs (Storage Blob Data Contributor)
// and resolves the account's endpoint (Microsoft.Storage/storageAccounts/read,
// through Log Analytics Reader), both on the account as the export job
// documentation requires. The workspace's system-assigned identity must be
// on already (infra/README.md): this deployment does not change the workspace.
targetScope = 'resourceGroup'

@description('Existing export storage account (in this resource group).')
param exportStorageAccountName string

@description('Resource id of the Log Analytics (Sentinel) workspace the jobs export from.')
param exportWorkspaceResourceId string

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
}

var workspaceParts = split(exportWorkspaceResourceId, '/')

resource exportAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: exportStorageAccountName
}

resource exportWorkspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' existing = {
  scope: resourceGroup(workspaceParts[2], workspaceParts[4])
  name: workspaceParts[8]
}

resource workspaceExportWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportAccount.id, exportWorkspaceResourceId, roles.storageBlobDataContributor)
  scope: exportAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: exportWorkspace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource workspaceExportReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportAccount.id, exportWorkspaceResourceId, roles.logAnalyticsReader)
  scope: exportAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
    principalId: exportWorkspace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}
