// Optional: the Microsoft Entra ID diagnostic setting that archives the two
// sign-in log categories tokenpivot reads to the export storage account, for
// tenants that do not send AADNonInteractiveUserSignInLogs to a Log Analytics
// workspace (its volume and cost). Azure Monitor then writes, per category,
// an append blob per hour:
//
//   insights-logs-signinlogs/tenantId=<tid>/y=<yyyy>/m=<MM>/d=<dd>/h=<HH>/m=00/PT1H.json
//   insights-logs-noninteractiveusersigninlogs/tenantId=<tid>/...
//
// and tokenpivot reads them when main.bicep is deployed with
// interactiveContainerName = 'insights-logs-signinlogs' and
// nonInteractiveContainerName = 'insights-logs-noninteractiveusersigninlogs'
// (Event Grid subscriptions, read access and the Sweep follow those names;
// see infra/README.md, "Where do my logs come from").
//
// microsoft.aadiam/diagnosticSettings is an extension resource of the
// tenant, not of a resource group: main.bicep (resource-group scope) cannot
// hold it. Deploy this file on its own, at tenant scope:
//
//   az deployment tenant create --location <region> \
//     --template-file infra/bicep/tenant-diagnostics.bicep \
//     --parameters storageAccountId=<export account resource id>
//
// Permissions: the Microsoft Entra role Security Administrator (or Global
// Administrator) to write the tenant's diagnostic settings, and on the
// storage account the right to have logs sent to it (Owner or Contributor,
// or a role with Microsoft.Storage/storageAccounts/write). A tenant-scope ARM
// deployment also needs Microsoft.Resources/deployments/write at scope "/",
// which nobody has by default (a Global Administrator can elevate access and
// assign it); without it, use the Entra admin center (Identity > Monitoring &
// health > Diagnostic settings) or the REST call in infra/README.md, which
// need only the Entra role.
//
// The type definitions of microsoft.aadiam@2017-04-01 (Azure/bicep-types-az)
// list only 'AuditLogs' and 'SignInLogs' as categories; the service accepts
// NonInteractiveUserSignInLogs (the portal and azurerm_monitor_aad_diagnostic_setting
// offer it), so Bicep warns about that value (BCP036) and deploys it. This
// file is not part of the schema-checked main.bicep: the aadiam types are
// not in testdata/azure-schemas.
targetScope = 'tenant'

@description('Name of the diagnostic setting.')
param name string = 'tokenpivot-signin-archive'

@description('Resource id of the storage account the sign-in logs are archived to: the export account main.bicep reads (exportStorageAccountName).')
param storageAccountId string

@description('Also archive NonInteractiveUserSignInLogs (the rule needs both categories; turn off only when another source provides them).')
param includeNonInteractive bool = true

@description('Deploy the setting at all: false leaves the tenant untouched (a what-if or a pipeline that deploys every file).')
param enabled bool = true

resource signInArchive 'microsoft.aadiam/diagnosticSettings@2017-04-01' = if (enabled) {
  name: name
  properties: {
    storageAccountId: storageAccountId
    // No retentionPolicy: Azure Monitor's retention for storage destinations
    // is retired; age the archive out with a lifecycle rule on the account.
    logs: [
      {
        category: 'SignInLogs'
        enabled: true
      }
      {
        category: 'NonInteractiveUserSignInLogs'
        enabled: includeNonInteractive
      }
    ]
  }
}

output diagnosticSettingName string = enabled ? signInArchive.name : ''
output interactiveContainerName string = 'insights-logs-signinlogs'
output nonInteractiveContainerName string = 'insights-logs-noninteractiveusersigninlogs'
