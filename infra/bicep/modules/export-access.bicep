// What tokenpivot needs on the export account, deployed in that account's
// resource group: the two export containers (a PUT on an existing container
// leaves it as it is), read-only access to exactly those containers, the Event
// Grid system topic, and (step 2) the BlobCreated subscriptions.
targetScope = 'resourceGroup'

@description('Existing export storage account (in this resource group).')
param exportStorageAccountName string

@description('Region of the export storage account (the system topic must be in it). Passed in: a resource\'s location must be known at the start of the deployment (BCP120), and the existing account\'s is read only during it.')
param location string

@description('Export container of SigninLogs.')
param interactiveContainerName string

@description('Export container of AADNonInteractiveUserSignInLogs.')
param nonInteractiveContainerName string

@description('Principal id of the function app\'s user-assigned identity.')
param functionPrincipalId string

@description('Name of the Event Grid system topic on the export account.')
param systemTopicName string

@description('The system topic already exists: use it as it is (its tags and identity are not changed).')
param systemTopicExists bool

@description('Create the BlobCreated subscriptions (step 2, after the code is deployed).')
param subscribeEvents bool

@description('OnExportCreated webhook URL with the eventgrid_extension system key; empty in step 1.')
@secure()
param webhookUrl string

@description('Storage account receiving undeliverable events.')
param deadLetterStorageAccountId string

@description('Container receiving undeliverable events.')
param deadLetterContainerName string

@description('Tags for the system topic.')
param tags object = {}

var roles = {
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

resource exportAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: exportStorageAccountName
}

resource exportBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: exportAccount
  name: 'default'
}

resource interactiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: exportBlobService
  name: interactiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource nonInteractiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: exportBlobService
  name: nonInteractiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Read on the two export containers only: not the account, not other tables.
resource interactiveReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(interactiveContainer.id, functionPrincipalId, roles.storageBlobDataReader)
  scope: interactiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource nonInteractiveReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(nonInteractiveContainer.id, functionPrincipalId, roles.storageBlobDataReader)
  scope: nonInteractiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Azure allows one system topic per source: if the account already has one
// (Defender for Storage, another subscriber), it is reused with
// systemTopicExists and never PUT, so its tags and identity stay as its owner
// set them.
resource exportTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (!systemTopicExists) {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: exportAccount.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// The topic either way (created above or already there): the subscriptions'
// parent and the dead-letter identity.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

// Identical subscriptions but for the subject filter, one per export container.
var subscriptionProperties = {
  destination: {
    endpointType: 'WebHook'
    properties: {
      endpointUrl: webhookUrl
      maxEventsPerBatch: 1
      preferredBatchSizeInKilobytes: 64
    }
  }
  eventDeliverySchema: 'EventGridSchema'
  retryPolicy: {
    maxDeliveryAttempts: 30
    eventTimeToLiveInMinutes: 1440
  }
  deadLetterWithResourceIdentity: {
    identity: {
      type: 'SystemAssigned'
    }
    deadLetterDestination: {
      endpointType: 'StorageBlob'
      properties: {
        resourceId: deadLetterStorageAccountId
        blobContainerName: deadLetterContainerName
      }
    }
  }
}

resource interactiveSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeEvents) {
  parent: systemTopic
  name: 'tokenpivot-interactive'
  properties: union(subscriptionProperties, {
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${interactiveContainerName}/'
    }
  })
  dependsOn: [
    exportTopic
  ]
}

resource nonInteractiveSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeEvents) {
  parent: systemTopic
  name: 'tokenpivot-noninteractive'
  properties: union(subscriptionProperties, {
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${nonInteractiveContainerName}/'
    }
  })
  dependsOn: [
    exportTopic
  ]
}

// Outputs are evaluated once every resource is deployed, so this reads the
// topic whether it was created here or already there.
output topicPrincipalId string = systemTopic.identity.principalId
output blobEndpoint string = exportAccount.properties.primaryEndpoints.blob
