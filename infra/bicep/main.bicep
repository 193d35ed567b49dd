// tokenpivot on Azure Functions Flex Consumption (FC1, Linux, custom handler).
// Kept in step with infra/terraform: same resources, role assignments and app
// settings (internal/infra tests compare the two).
//
// Step 1: az deployment group create -g <rg> -f main.bicep -p main.bicepparam
// (or azd provision), then deploy the code (infra/scripts/deploy-package.sh).
// Step 2: deploy again with subscribeEvents=true and eventGridExtensionKey, the
// host's eventgrid_extension system key, which exists only once the host has
// started with the code (infra/scripts/eventgrid-key.sh prints it).
targetScope = 'resourceGroup'

// ---------------------------------------------------------------- parameters

@description('Region of the function app and its storage. Defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Short unique suffix for global names (storage account, function app).')
@minLength(3)
@maxLength(10)
param nameSuffix string = take(toLower(uniqueString(subscription().id, resourceGroup().id)), 10)

@description('Name of the function app.')
param functionAppName string = 'func-tokenpivot-${nameSuffix}'

@description('Name of the function\'s own storage account: host storage, deployment package, state, alerts, incidents, work queue.')
@maxLength(24)
param storageAccountName string = 'sttokenpivot${nameSuffix}'

@description('Storage account the Log Analytics export writes to.')
param exportStorageAccountName string

@description('Resource group of the export storage account; empty = this resource group.')
param exportResourceGroupName string = ''

@description('Create the export storage account (true) or use an existing one (false).')
param createExportStorageAccount bool = false

@description('Export container of SigninLogs (interactive).')
param interactiveContainerName string = 'am-signinlogs'

@description('Export container of AADNonInteractiveUserSignInLogs.')
param nonInteractiveContainerName string = 'am-aadnoninteractiveusersigninlogs'

@description('Container for extracts and the ledger; old blobs are deleted by the lifecycle policy.')
param stateContainerName string = 'tokenpivot-state'

@description('Container for alert documents.')
param alertsContainerName string = 'tokenpivot-alerts'

@description('Container for incident documents.')
param incidentsContainerName string = 'tokenpivot-incidents'

@description('TOKENPIVOT_RULE: rule YAML text or a path in the package; empty = the bundled rule.')
param rule string = ''

@description('TOKENPIVOT_SAFE_IPS: comma-separated known-safe IP addresses.')
param safeIps string = ''

@description('TOKENPIVOT_SAFE_NETWORKS: comma-separated known-safe CIDRs.')
param safeNetworks string = ''

@description('TOKENPIVOT_IPV6_SAFE_NETWORKS: also match IPv6 addresses against IPv6 safe networks (KQL\'s ipv4_lookup never does).')
@allowed(['true', 'false'])
param ipv6SafeNetworks string = 'false'

@description('TOKENPIVOT_MAX_EXPANSION: reject a gzip export that decompresses to more than this many times its size.')
@minValue(1)
param maxExpansion int = 64

@description('How late (by blob Last-Modified) an export may arrive and still be joined, in hours; sets TOKENPIVOT_ALLOWED_LATENESS.')
@minValue(1)
param allowedLatenessHours int = 168

@description('Days state is kept beyond the allowed lateness before the lifecycle policy deletes it.')
@minValue(1)
param stateRetentionMarginDays int = 2

@description('Days after which alert documents move to the cool tier.')
@minValue(1)
param alertsCoolAfterDays int = 30

@description('Flex Consumption instance memory in MB; GOMEMLIMIT is set to 11/16 of it.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count (40 is the lowest maximum the Flex Consumption stacks offer).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Log Analytics retention in days for the function\'s own logs.')
param logRetentionDays int = 30

@description('Event Grid system topic on the export account; an account has at most one, so name the existing one if there is (and set systemTopicExists).')
param systemTopicName string = 'evgt-tokenpivot-${nameSuffix}'

@description('The export account already has the system topic systemTopicName: use it as it is, without changing its tags or identity. It must have a system-assigned identity.')
param systemTopicExists bool = false

@description('Step 2: create the Event Grid subscriptions (needs the code deployed first, and eventGridExtensionKey).')
param subscribeEvents bool = false

@description('Step 2: the host\'s eventgrid_extension system key, as infra/scripts/eventgrid-key.sh prints it. Passed in rather than read with listKeys in the deployment that also updates the site, which Microsoft\'s Event Grid quickstart warns often fails.')
@secure()
param eventGridExtensionKey string = ''


@description('Resource id of the Log Analytics (Sentinel) workspace that ScheduleExports requests hourly export jobs from; empty (the default) turns export jobs off. Its system-assigned identity must be on (infra/README.md).')
param exportWorkspaceResourceId string = ''

@description('NCRONTAB schedule of ScheduleExports (second minute hour day month weekday).')
param exportSchedule string = '0 5 * * * *'
@description('Tags for every resource.')
param tags object = {}

// Settings that only the SOC knows. Every provision replaces the whole
// app-settings set, so a setting added by hand after a deployment is deleted
// by the next one: each setting the code reads is a parameter here.

@description('TOKENPIVOT_WEBHOOK_URL: the SOC\'s webhook receiver (https). Teams and Slack URLs carry their credential, hence @secure; a Key Vault reference (@Microsoft.KeyVault(SecretUri=...)) is resolved with the function\'s identity (keyVaultReferenceIdentity). Empty = no webhook sink.')
@secure()
param webhookUrl string = ''

@description('TOKENPIVOT_WEBHOOK_FORMAT: standard (signed alert document), teams or slack.')
@allowed(['standard', 'teams', 'slack'])
param webhookFormat string = 'standard'

@description('TOKENPIVOT_WEBHOOK_SECRET: the Standard Webhooks signing secret (whsec_<base64>), or a Key Vault reference to it. Empty = unsigned.')
@secure()
param webhookSecret string = ''

@description('TOKENPIVOT_STORAGE_CONNECTION_STRING: a connection string for the export storage, only where the identity cannot be used (it wins over the identity); a Key Vault reference is best. Empty (the default and the recommendation) = the identity.')
@secure()
param storageConnectionString string = ''

@description('TOKENPIVOT_EXPORT_ENDPOINT: Log Analytics data-plane endpoint of export jobs in a sovereign cloud (e.g. https://api.loganalytics.us); empty = the public cloud\'s, the code\'s default.')
param exportEndpoint string = ''

@description('TOKENPIVOT_EXPORT_FIRST_HOUR: the first hour export jobs request (RFC 3339, e.g. 2026-12-01T00:00:00Z); empty = only the lookback bounds it.')
param exportFirstHour string = ''

@description('TOKENPIVOT_PRECISION: the precision mode, exact (the Sentinel rule), balanced or strict (README, What the precision modes change). A mode widens the export jobs\' projection by its columns.')
@allowed(['exact', 'balanced', 'strict'])
param precision string = 'exact'

@description('TOKENPIVOT_PRECISION_HOSTING_ASNS: a file replacing the precision modes\' bundled hosting/anonymizer ASN list; empty = the bundled list.')
param precisionHostingAsns string = ''

@description('TOKENPIVOT_PRECISION_M365_RANGES: a file replacing the bundled Microsoft 365 service ranges; empty = the bundled list.')
param precisionM365Ranges string = ''

@description('TOKENPIVOT_PRECISION_FIRST_PARTY_APPS: a file replacing the bundled first-party app ids; empty = the bundled list.')
param precisionFirstPartyApps string = ''

@description('Private networking, as Microsoft\'s Flex Consumption samples have it (vnetEnabled): the app joins appSubnetId (VNet integration; a subnet delegated to Microsoft.App/environments) and the function\'s own storage account denies public networks (trusted Azure services still write the dead letters), so the app reaches it through private endpoints for blob, queue and table in that virtual network, with their privatelink DNS zones. The network and the endpoints are the network team\'s (infra/README.md, Private networking): the offline checks of this repository have no Microsoft.Network definitions to check them against.')
param vnetEnabled bool = false

@description('With vnetEnabled: resource id of the subnet the app integrates with (delegated to Microsoft.App/environments).')
param appSubnetId string = ''

@description('Resource id of an action group (e-mail, Teams, ITSM...) notified by the operability alerts (dead letters, poison messages, failed runs); empty = the alerts only show in Azure Monitor.')
param alertActionGroupId string = ''

@description('Microsoft Sentinel: resource id of the SOC\'s existing Log Analytics workspace, onboarded to Sentinel (/subscriptions/.../resourceGroups/.../providers/Microsoft.OperationalInsights/workspaces/...). Alerts are then sent to its table TokenPivotAlerts_CL and an NRT analytics rule raises Sentinel incidents. Empty = no Sentinel integration.')
param sentinelWorkspaceId string = ''

// ----------------------------------------------------------------- variables

var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'tokenpivot-deadletter'
var workQueueName = 'tokenpivot-work'
var exportResourceGroup = empty(exportResourceGroupName) ? resourceGroup().name : exportResourceGroupName
var exportJobs = !empty(exportWorkspaceResourceId)
// The workspace's subscription, resource group and name ([2], [4], [8]); a
// placeholder when export jobs are off, so that the split never fails.
var exportWorkspaceParts = split(exportJobs ? exportWorkspaceResourceId : '/subscriptions/none/resourceGroups/none/providers/Microsoft.OperationalInsights/workspaces/none', '/')

// State must outlive the allowed lateness: a blob may join with anything up
// to that old. Lifecycle rules count whole days, so round up and add a margin.
var stateRetentionDays = (allowedLatenessHours + 23) / 24 + stateRetentionMarginDays

// Built-in role definition ids.
var roles = {
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

// Microsoft Sentinel (modules/sentinel.bicep and the data collection rule
// below): all of it only with sentinelWorkspaceId. if() (?:) evaluates only
// the branch taken, so the parts of an empty id are never indexed, and the
// index min() keeps within a short id's parts whether or not || short-circuits.
var sentinelEnabled = !empty(sentinelWorkspaceId)
var sentinelWorkspaceIdParts = split(sentinelWorkspaceId, '/')
var checkedSentinelWorkspaceIdParts = !sentinelEnabled ? sentinelWorkspaceIdParts : length(sentinelWorkspaceIdParts) != 9 || toLower(sentinelWorkspaceIdParts[min(6, length(sentinelWorkspaceIdParts) - 1)]) != 'microsoft.operationalinsights' ? fail('sentinelWorkspaceId must be a Log Analytics workspace resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>.') : sentinelWorkspaceIdParts
var sentinelSubscriptionId = sentinelEnabled ? checkedSentinelWorkspaceIdParts[2] : subscription().subscriptionId
var sentinelResourceGroup = sentinelEnabled ? checkedSentinelWorkspaceIdParts[4] : resourceGroup().name
var sentinelWorkspaceName = sentinelEnabled ? checkedSentinelWorkspaceIdParts[8] : 'none'

// Contradictory inputs stop the deployment before anything is changed.
var checkedAppSubnetId = vnetEnabled && empty(appSubnetId) ? fail('vnetEnabled needs appSubnetId: the subnet the app integrates with (infra/README.md, Private networking).') : appSubnetId
var checkedSystemTopicExists = createExportStorageAccount && systemTopicExists ? fail('createExportStorageAccount and systemTopicExists cannot both be true: a storage account created by this deployment has no system topic yet.') : systemTopicExists

// Step 2 needs the key; an empty one would subscribe a webhook that rejects
// every event.
var eventGridWebhookUrl = !subscribeEvents ? '' : empty(eventGridExtensionKey) ? fail('subscribeEvents needs eventGridExtensionKey: run infra/scripts/eventgrid-key.sh <rg> <app> and pass its output (TOKENPIVOT_EVENTGRID_KEY with main.bicepparam).') : 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/eventgrid?functionName=OnExportCreated&code=${eventGridExtensionKey}'

// ------------------------------------------------------------- observability

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-tokenpivot-${nameSuffix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      // Ingestion only with Entra ID (App Insights, with DisableLocalAuth
      // below), never with the workspace's shared keys.
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-tokenpivot-${nameSuffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Ingestion only with Entra ID: the identity below publishes with
    // Monitoring Metrics Publisher, no instrumentation key is trusted.
    DisableLocalAuth: true
  }
}

// ------------------------------------------------------------------ identity

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-tokenpivot-${nameSuffix}'
  location: location
  tags: tags
}

// -------------------------------------------------------------- own storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    // With vnetEnabled, only through the private endpoints in the app's
    // virtual network (Microsoft's Flex Consumption samples), and trusted
    // Azure services: Event Grid writes dead letters here with its topic's
    // identity, which a closed account (publicNetworkAccess Disabled, as in
    // the samples) would refuse.
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource alertsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: alertsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource incidentsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: incidentsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// OnExportCreated answers Event Grid within its 30 s and queues the blob here;
// ProcessExport does the work from the queue.
resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: workQueueName
}

resource storageLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'delete-old-state'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${stateContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: stateRetentionDays
                }
              }
            }
          }
        }
        {
          enabled: true
          name: 'cool-old-alerts'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${alertsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: alertsCoolAfterDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    stateContainer
    alertsContainer
  ]
}

// -------------------------------------------------------------- function app

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-tokenpivot-${nameSuffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// Every setting the code reads. The same names and defaults are in
// infra/terraform/main.tf (local.app_settings). Every provision replaces the
// whole set, so each setting the code reads is here, fed by a parameter where
// the operator chooses it (internal/infra: TestEverySettingDeployable).
// TOKENPIVOT_STORAGE_CONNECTION_STRING stays empty (left out) unless given:
// the identity reads the export account.
var appSettings = {
  // Host storage by identity. The service URIs are what the host uses (it
  // reads them before the account name, and they hold the cloud's real
  // endpoints: sovereign clouds, custom DNS); the account name stays for
  // tools that only know that form.
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: functionIdentity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${functionIdentity.properties.clientId};Authorization=AAD'
  AZURE_CLIENT_ID: functionIdentity.properties.clientId
  // The export account's blob endpoint as Azure reports it (Terraform reads
  // the same primary blob endpoint).
  TOKENPIVOT_STORAGE_ACCOUNT_URL: exportBlobEndpoint
  TOKENPIVOT_STORAGE_CONNECTION_STRING: storageConnectionString
  TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL: storage.properties.primaryEndpoints.blob
  TOKENPIVOT_INTERACTIVE_CONTAINER: interactiveContainerName
  TOKENPIVOT_NONINTERACTIVE_CONTAINER: nonInteractiveContainerName
  TOKENPIVOT_STATE_CONTAINER: stateContainerName
  TOKENPIVOT_ALERTS_CONTAINER: alertsContainerName
  TOKENPIVOT_INCIDENTS_CONTAINER: incidentsContainerName
  TOKENPIVOT_RULE: rule
  TOKENPIVOT_SAFE_IPS: safeIps
  TOKENPIVOT_SAFE_NETWORKS: safeNetworks
  TOKENPIVOT_IPV6_SAFE_NETWORKS: ipv6SafeNetworks
  TOKENPIVOT_ALLOWED_LATENESS: '${allowedLatenessHours}h'
  TOKENPIVOT_MAX_EXPANSION: '${maxExpansion}'
  // Export jobs (ScheduleExports, internal/exportjob): off while the
  // workspace is empty. The schedule is always set: function.json names it.
  TOKENPIVOT_EXPORT_WORKSPACE_ID: exportWorkspaceResourceId
  TOKENPIVOT_EXPORT_STORAGE_ACCOUNT_ID: resourceId(subscription().subscriptionId, exportResourceGroup, 'Microsoft.Storage/storageAccounts', exportStorageAccountName)
  TOKENPIVOT_EXPORT_SCHEDULE: exportSchedule
  TOKENPIVOT_EXPORT_LOOKBACK: '48h'
  TOKENPIVOT_EXPORT_SETTLE: '30m'
  TOKENPIVOT_EXPORT_LEASE: '15m'
  TOKENPIVOT_EXPORT_STUCK_AFTER: '6h'
  TOKENPIVOT_EXPORT_MAX_ATTEMPTS: '3'
  TOKENPIVOT_EXPORT_MAX_ACTIVE: '4'
  TOKENPIVOT_EXPORT_ENDPOINT: exportEndpoint
  TOKENPIVOT_EXPORT_FIRST_HOUR: exportFirstHour
  // The precision mode (exact: the rule as Sentinel runs it) and its lists.
  TOKENPIVOT_PRECISION: precision
  TOKENPIVOT_PRECISION_HOSTING_ASNS: precisionHostingAsns
  TOKENPIVOT_PRECISION_M365_RANGES: precisionM365Ranges
  TOKENPIVOT_PRECISION_FIRST_PARTY_APPS: precisionFirstPartyApps
  // The webhook sink (the SOC's receiver); empty = off.
  TOKENPIVOT_WEBHOOK_URL: webhookUrl
  TOKENPIVOT_WEBHOOK_FORMAT: webhookFormat
  TOKENPIVOT_WEBHOOK_SECRET: webhookSecret
  // Microsoft Sentinel, from the data collection rule; empty (left out)
  // without sentinelWorkspaceId.
  TOKENPIVOT_LOGS_INGESTION_ENDPOINT: sentinelEnabled ? alertsIngestion.outputs.logsIngestionEndpoint : ''
  TOKENPIVOT_LOGS_INGESTION_RULE_ID: sentinelEnabled ? alertsIngestion.outputs.immutableId : ''
  TOKENPIVOT_LOGS_INGESTION_STREAM: sentinelEnabled ? alertsIngestion.outputs.stream : ''
  // The Go heap's soft limit: 11/16 of the instance, the rest left to the
  // Functions host; serve sizes its budget of blobs in flight from it.
  GOMEMLIMIT: '${instanceMemoryMB * 11 / 16}MiB'
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${functionIdentity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // VNet integration (vnetEnabled): outbound calls, host storage included,
    // go through the subnet, where the storage's private endpoints are.
    // (null leaves the property out; any() as in the Azure Verified Modules.)
    virtualNetworkSubnetId: vnetEnabled ? checkedAppSubnetId : any(null)
    // Key Vault references in app settings (@Microsoft.KeyVault(...)) are
    // resolved with the user-assigned identity, the app's only one.
    keyVaultReferenceIdentity: functionIdentity.id
    siteConfig: {
      minTlsVersion: '1.2'
      // Empty values are left out: an unset setting and its default behave
      // the same, and newer hosts map an empty value into the environment.
      // map()/filter(), not a for-expression: a for-expression must be
      // calculable at the start of the deployment (BCP178), and these values
      // (the identity's client id, endpoints) are known only at its end.
      appSettings: map(filter(items(appSettings), s => !empty(s.value)), s => {
        name: s.key
        value: s.value
      })
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: functionIdentity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [
    // The host needs its storage roles before its first start.
    hostBlobOwner
    hostQueueContributor
    hostTableContributor
    deploymentContainer
  ]
}

// ------------------------------------------------- roles of the function app

// The Functions host (AzureWebJobsStorage: leases, keys, timers, the work queue,
// diagnostic events) and the Flex deployment package need data-plane access to
// the own account.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionIdentity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hostQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionIdentity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The host writes its diagnostic events to a table in AzureWebJobsStorage, as
// in Microsoft's Flex Consumption samples.
resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionIdentity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The code's own data, stated per container so the intent survives if host
// storage ever moves to another account.
resource stateContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateContainer.id, functionIdentity.id, roles.storageBlobDataContributor)
  scope: stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource alertsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertsContainer.id, functionIdentity.id, roles.storageBlobDataContributor)
  scope: alertsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource incidentsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(incidentsContainer.id, functionIdentity.id, roles.storageBlobDataContributor)
  scope: incidentsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights with local auth off accepts telemetry only from
// principals holding this role.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionIdentity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ------------------------------------------------------ export account side

module exportAccount 'modules/export-account.bicep' = if (createExportStorageAccount) {
  name: 'tokenpivot-export-account'
  scope: resourceGroup(exportResourceGroup)
  params: {
    name: exportStorageAccountName
    location: location
    tags: tags
  }
}

// An export account that is already there, only read: its region (the
// system topic's) and blob endpoint. A created one reports them as outputs.
resource existingExportAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!createExportStorageAccount) {
  name: exportStorageAccountName
  scope: resourceGroup(exportResourceGroup)
}

var exportAccountLocation = createExportStorageAccount ? exportAccount.outputs.location : existingExportAccount.location
var exportBlobEndpoint = createExportStorageAccount ? exportAccount.outputs.blobEndpoint : existingExportAccount.properties.primaryEndpoints.blob

module exportAccess 'modules/export-access.bicep' = {
  name: 'tokenpivot-export-access'
  scope: resourceGroup(exportResourceGroup)
  params: {
    exportStorageAccountName: exportStorageAccountName
    // The system topic must be in the account's region. A module parameter
    // may be known only during the deployment; a resource's location must be
    // known at its start (BCP120), so the module cannot read it itself.
    location: exportAccountLocation
    interactiveContainerName: interactiveContainerName
    nonInteractiveContainerName: nonInteractiveContainerName
    functionPrincipalId: functionIdentity.properties.principalId
    systemTopicName: systemTopicName
    systemTopicExists: checkedSystemTopicExists
    subscribeEvents: subscribeEvents
    webhookUrl: eventGridWebhookUrl
    deadLetterStorageAccountId: storage.id
    deadLetterContainerName: deadLetterContainerName
    tags: tags
  }
  dependsOn: [
    exportAccount
  ]
}

// Export jobs (optional): the function's identity runs them on the
// workspace; the workspace's identity writes them to the export account.
module exportWorkspaceAccess 'modules/export-workspace.bicep' = if (exportJobs) {
  name: 'tokenpivot-export-workspace'
  scope: resourceGroup(exportWorkspaceParts[2], exportWorkspaceParts[4])
  params: {
    workspaceName: exportWorkspaceParts[8]
    functionPrincipalId: functionIdentity.properties.principalId
  }
}

module exportJobsAccess 'modules/export-jobs.bicep' = if (exportJobs) {
  name: 'tokenpivot-export-jobs'
  scope: resourceGroup(exportResourceGroup)
  params: {
    exportStorageAccountName: exportStorageAccountName
    interactiveContainerName: interactiveContainerName
    nonInteractiveContainerName: nonInteractiveContainerName
    exportWorkspaceResourceId: exportWorkspaceResourceId
  }
  // The containers are created (or adopted) by exportAccess.
  dependsOn: [
    exportAccess
  ]
}

// Event Grid writes undeliverable events with its system topic's identity.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopicName, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: exportAccess.outputs.topicPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --------------------------------------------------------- Microsoft Sentinel

// The SOC's workspace, only read (its region).
resource sentinelWorkspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = if (sentinelEnabled) {
  name: sentinelWorkspaceName
  scope: resourceGroup(sentinelSubscriptionId, sentinelResourceGroup)
}

// The table TokenPivotAlerts_CL and the NRT analytics rule, in the
// workspace's resource group.
module sentinel 'modules/sentinel.bicep' = if (sentinelEnabled) {
  name: 'tokenpivot-sentinel'
  scope: resourceGroup(sentinelSubscriptionId, sentinelResourceGroup)
  params: {
    workspaceName: sentinelWorkspaceName
  }
}

// The Logs Ingestion API's data collection rule (modules/alerts-ingestion.bicep),
// here beside the function, in the SOC workspace's region. The region is
// passed in: a resource's location must be known at the start of the
// deployment (BCP120), and an existing workspace's is read only during it.
module alertsIngestion 'modules/alerts-ingestion.bicep' = if (sentinelEnabled) {
  name: 'tokenpivot-alerts-ingestion'
  params: {
    name: 'dcr-tokenpivot-${nameSuffix}'
    location: sentinelWorkspace.location
    workspaceResourceId: sentinelWorkspaceId
    functionPrincipalId: functionIdentity.properties.principalId
    tags: tags
  }
  // A data flow can only name a table that exists.
  dependsOn: [
    sentinel
  ]
}

// -------------------------------------------------------------- operability
// Three ways work can be lost without a word, each an Azure Monitor alert
// (notifying alertActionGroupId when set):
//   - Event Grid gave up on an event (30 attempts over 24 h) and wrote it to
//     the dead-letter container: that export blob was never processed;
//   - the Functions host moved a work item to the poison queue
//     (tokenpivot-work-poison) after its last dequeue;
//   - function executions failed.
var alertActions = empty(alertActionGroupId) ? [] : [
  {
    actionGroupId: alertActionGroupId
  }
]

var exportTopicId = resourceId(subscription().subscriptionId, exportResourceGroup, 'Microsoft.EventGrid/systemTopics', systemTopicName)

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2026-01-01' = {
  name: 'alert-tokenpivot-deadletter-${nameSuffix}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dead-lettered a BlobCreated event of the export containers into ${deadLetterContainerName}: that export blob was not processed. Requeue it (infra/README.md, Operability).'
    severity: 1
    enabled: true
    scopes: [
      exportTopicId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
  // The topic exists once exportAccess has deployed (created or adopted).
  dependsOn: [
    exportAccess
  ]
}

resource poisonQueueAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-tokenpivot-poison-${nameSuffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'tokenpivot: work item moved to the poison queue'
    description: 'The Functions host moved a ${workQueueName} message to ${workQueueName}-poison after its last attempt: that export blob was not processed. Requeue it (infra/README.md, Operability).'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'traces\n| where message has "${workQueueName}-poison"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: empty(alertActionGroupId) ? [] : [
        alertActionGroupId
      ]
    }
  }
}

resource functionFailuresAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-tokenpivot-failures-${nameSuffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'tokenpivot: function executions failed'
    description: 'Executions of the tokenpivot functions failed in the last hour (Application Insights requests with success false); the work queue retries them, the poison-queue alert says when it gives up.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'requests\n| where success == false'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: empty(alertActionGroupId) ? [] : [
        alertActionGroupId
      ]
    }
  }
}

// ------------------------------------------------------------------- outputs

output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.name
// Flex Consumption apps get unique default hostnames, not <name>.azurewebsites.net.
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.properties.defaultHostName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = functionIdentity.properties.clientId
output EVENT_GRID_SYSTEM_TOPIC_NAME string = systemTopicName
output STATE_RETENTION_DAYS int = stateRetentionDays
