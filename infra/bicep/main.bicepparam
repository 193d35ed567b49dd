// Example parameters. With azd, values come from the azd environment
// (azd env set NAME value); with az deployment, edit them here.
using 'main.bicep'

// The storage account your Log Analytics export writes to.
param exportStorageAccountName = readEnvironmentVariable('TOKENPIVOT_EXPORT_ACCOUNT', 'stlaexport')
// Empty: the export account is in the deployment's resource group.
param exportResourceGroupName = readEnvironmentVariable('TOKENPIVOT_EXPORT_RESOURCE_GROUP', '')
param createExportStorageAccount = bool(readEnvironmentVariable('TOKENPIVOT_CREATE_EXPORT_ACCOUNT', 'false'))
// Export jobs (ScheduleExports): the Sentinel workspace's resource id; empty = off.
param exportWorkspaceResourceId = readEnvironmentVariable('TOKENPIVOT_EXPORT_WORKSPACE_RESOURCE_ID', '')

// Container names of the two exported tables (the Log Analytics defaults).
param interactiveContainerName = 'am-signinlogs'
param nonInteractiveContainerName = 'am-aadnoninteractiveusersigninlogs'

// Rule configuration (TOKENPIVOT_SAFE_IPS / TOKENPIVOT_SAFE_NETWORKS).
param safeIps = ''
param safeNetworks = ''
param allowedLatenessHours = 168

param instanceMemoryMB = 2048
param maximumInstanceCount = 40

// The export account already has an Event Grid system topic (name it in
// systemTopicName): TOKENPIVOT_SYSTEM_TOPIC_EXISTS=true.
param systemTopicExists = bool(readEnvironmentVariable('TOKENPIVOT_SYSTEM_TOPIC_EXISTS', 'false'))

// Step 2 (after the code is deployed): SUBSCRIBE_EVENTS=true and the host's
// eventgrid_extension key in TOKENPIVOT_EVENTGRID_KEY
// (TOKENPIVOT_EVENTGRID_KEY=$(infra/scripts/eventgrid-key.sh <rg> <app>)).
param subscribeEvents = bool(readEnvironmentVariable('SUBSCRIBE_EVENTS', 'false'))
param eventGridExtensionKey = readEnvironmentVariable('TOKENPIVOT_EVENTGRID_KEY', '')

// Microsoft Sentinel: the resource id of the SOC's Log Analytics workspace
// (onboarded to Sentinel) in TOKENPIVOT_SENTINEL_WORKSPACE_ID; empty = off.
param sentinelWorkspaceId = readEnvironmentVariable('TOKENPIVOT_SENTINEL_WORKSPACE_ID', '')

// Settings only the SOC knows, kept across provisions (every provision
// replaces the whole app-settings set). With azd: azd env set NAME value.
// Webhook sink: the URL and the secret are secure parameters; best, Key Vault
// references (@Microsoft.KeyVault(SecretUri=...)), resolved with the
// function's identity (infra/README.md, Webhooks).
param webhookUrl = readEnvironmentVariable('TOKENPIVOT_WEBHOOK_URL', '')
param webhookFormat = readEnvironmentVariable('TOKENPIVOT_WEBHOOK_FORMAT', 'standard')
param webhookSecret = readEnvironmentVariable('TOKENPIVOT_WEBHOOK_SECRET', '')
// Export jobs in a sovereign cloud (e.g. https://api.loganalytics.us), and
// the first hour they request (RFC 3339); empty = the defaults.
param exportEndpoint = readEnvironmentVariable('TOKENPIVOT_EXPORT_ENDPOINT', '')
param exportFirstHour = readEnvironmentVariable('TOKENPIVOT_EXPORT_FIRST_HOUR', '')
// The precision mode (exact, balanced or strict) and files replacing its lists.
param precision = readEnvironmentVariable('TOKENPIVOT_PRECISION', 'exact')
param precisionHostingAsns = readEnvironmentVariable('TOKENPIVOT_PRECISION_HOSTING_ASNS', '')
param precisionM365Ranges = readEnvironmentVariable('TOKENPIVOT_PRECISION_M365_RANGES', '')
param precisionFirstPartyApps = readEnvironmentVariable('TOKENPIVOT_PRECISION_FIRST_PARTY_APPS', '')
