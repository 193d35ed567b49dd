// Export jobs (ScheduleExports), on the source workspace's side, deployed in
// the workspace's resource group: the function's identity may run export
// jobs of the two sign-in tables and nothing else. Least privilege: a custom
// role with the export action and query read on those two tables only, not
// Log Analytics Reader (which reads every table of the workspace).
targetScope = 'resourceGroup'

@description('Name of the Log Analytics (Sentinel) workspace in this resource group.')
param workspaceName string

@description('Principal id of the function app\'s user-assigned identity.')
param functionPrincipalId string

@description('The two exported tables (query read is granted on these only).')
param tables array = [
  'SigninLogs'
  'AADNonInteractiveUserSignInLogs'
]

// The custom role's id is fixed: a role definition is one object per tenant,
// and its assignments name it by id. Deployments for the same workspace
// resource group PUT the same definition; infra/README.md says what to do for
// workspaces in other resource groups of the tenant.
var roles = {
  tokenpivotExportJobRunner: 'e874627b-4284-4eea-baba-9b27eacaab15'
}

resource exportWorkspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' existing = {
  name: workspaceName
}

resource exportJobRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roles.tokenpivotExportJobRunner
  properties: {
    roleName: 'tokenpivot Export Job Runner'
    description: 'Run Log Analytics export jobs of the sign-in tables tokenpivot reads (SigninLogs, AADNonInteractiveUserSignInLogs), and query those tables only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: concat([
          'Microsoft.OperationalInsights/workspaces/read'
          'Microsoft.OperationalInsights/workspaces/jobs/export/action'
          'Microsoft.OperationalInsights/workspaces/query/read'
        ], map(tables, t => 'Microsoft.OperationalInsights/workspaces/query/${t}/read'))
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource functionExportJobRunner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportWorkspace.id, functionPrincipalId, roles.tokenpivotExportJobRunner)
  scope: exportWorkspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tokenpivotExportJobRunner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    exportJobRole
  ]
}
