// Export jobs (ScheduleExports), on the export account's side, deployed in
// that account's resource group: the source workspace's system-assigned
// identity writes the jobs' Parquet blobs into the two export containers
// only (Storage Blob Data Contributor on each, not on the account) and
// resolves the account's endpoint (Microsoft.Storage/storageAccounts/read:
// Reader on the account, control plane only), as the export job
// documentation requires. The workspace's system-assigned identity must be on
// already (infra/README.md): this deployment does not change the workspace.
targetScope = 'resourceGroup'

@description('Existing export storage account (in this resource group).')
param exportStorageAccountName string

@description('Export container of SigninLogs (exists: modules/export-access.bicep).')
param interactiveContainerName string

@description('Export container of AADNonInteractiveUserSignInLogs (exists: modules/export-access.bicep).')
param nonInteractiveContainerName string

@description('Resource id of the Log Analytics (Sentinel) workspace the jobs export from.')
param exportWorkspaceResourceId string

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
}

var workspaceParts = split(exportWorkspaceResourceId, '/')

resource exportAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: exportStorageAccountName
}

resource exportBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: exportAccount
  name: 'default'
}

resource interactiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: exportBlobService
  name: interactiveContainerName
}

resource nonInteractiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: exportBlobService
  name: nonInteractiveContainerName
}

resource exportWorkspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' existing = {
  scope: resourceGroup(workspaceParts[2], workspaceParts[4])
  name: workspaceParts[8]
}

resource workspaceInteractiveWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(interactiveContainer.id, exportWorkspaceResourceId, roles.storageBlobDataContributor)
  scope: interactiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: exportWorkspace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource workspaceNonInteractiveWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(nonInteractiveContainer.id, exportWorkspaceResourceId, roles.storageBlobDataContributor)
  scope: nonInteractiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: exportWorkspace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource workspaceExportReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportAccount.id, exportWorkspaceResourceId, roles.reader)
  scope: exportAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: exportWorkspace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}
