// Export jobs (ScheduleExports), on the source workspace's side, deployed in
// the workspace's resource group: the function's identity may run export
// jobs and query the exported tables (Microsoft.OperationalInsights/
// workspaces/jobs/export/action, query/read and query/<table>/read: Log
// Analytics Reader, as the export job documentation requires).
targetScope = 'resourceGroup'

@description('Name of the Log Analytics (Sentinel) workspace in this resource group.')
param workspaceName string

@description('Principal id of the function app\'s user-assigned identity.')
param functionPrincipalId string

var roles = {
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
}

resource exportWorkspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' existing = {
  name: workspaceName
}

resource functionWorkspaceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportWorkspace.id, functionPrincipalId, roles.logAnalyticsReader)
  scope: exportWorkspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}
