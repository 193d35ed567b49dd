// A new storage account for the Log Analytics export, for deployments that do
// not have one yet. Same hardening as the function's own account, except that
// shared-key access is left at the default: the writer is the Log Analytics
// export, not tokenpivot (which only reads, with its identity). Turn it off if
// your export keeps writing without it.
targetScope = 'resourceGroup'

@description('Name of the export storage account.')
param name string

@description('Region of the account; the workspace exporting to it must be in the same region.')
param location string

@description('Tags for the account.')
param tags object = {}

resource exportAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

output id string = exportAccount.id
output location string = exportAccount.location
output blobEndpoint string = exportAccount.properties.primaryEndpoints.blob
