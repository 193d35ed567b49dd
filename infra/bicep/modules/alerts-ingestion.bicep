// The Logs Ingestion API's data collection rule that writes tokenpivot's alert
// revisions into the SOC workspace's TokenPivotAlerts_CL, and the function's
// role on it. Kept in step with infra/terraform/sentinel.tf.
//
// Kind Direct: the rule has its own logsIngestion endpoint, no data collection
// endpoint is needed. It must be in its destination workspace's region,
// which the caller passes in (location: a module parameter may be known only
// during the deployment; a resource's location must be known at its start,
// BCP120). The stream's columns are exactly internal/sentinel.Columns
// (internal/infra checks it); the data flow writes them unchanged
// (transformKql source) into the table.
targetScope = 'resourceGroup'

@description('Name of the data collection rule.')
param name string

@description('Region of the destination workspace.')
param location string

@description('Resource id of the destination (Sentinel) workspace.')
param workspaceResourceId string

@description('Principal id of the function app\'s user-assigned identity.')
param functionPrincipalId string

@description('Tags for the rule.')
param tags object = {}

var roles = {
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource alertsIngestionRule 'Microsoft.Insights/dataCollectionRules@2024-03-11' = {
  name: name
  location: location
  tags: tags
  kind: 'Direct'
  properties: {
    description: 'tokenpivot alert revisions to TokenPivotAlerts_CL (Microsoft Sentinel).'
    streamDeclarations: {
      'Custom-TokenPivotAlerts': {
        columns: [
          { name: 'TimeGenerated', type: 'datetime' }
          { name: 'AlertId', type: 'string' }
          { name: 'Revision', type: 'int' }
          { name: 'IncidentId', type: 'string' }
          { name: 'AlertName', type: 'string' }
          { name: 'Description', type: 'string' }
          { name: 'Severity', type: 'string' }
          { name: 'Tactics', type: 'string' }
          { name: 'Techniques', type: 'dynamic' }
          { name: 'UserPrincipalName', type: 'string' }
          { name: 'NIIPAddress', type: 'string' }
          { name: 'NICountry', type: 'string' }
          { name: 'InteractiveIP', type: 'string' }
          { name: 'InteractiveCountry', type: 'string' }
          { name: 'AppDisplayName', type: 'string' }
          { name: 'StartTime', type: 'datetime' }
          { name: 'EndTime', type: 'datetime' }
          { name: 'ResultCount', type: 'int' }
          { name: 'Results', type: 'dynamic' }
          { name: 'ResultsTruncated', type: 'boolean' }
          { name: 'RuleId', type: 'string' }
          { name: 'RuleVersion', type: 'string' }
        ]
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'sentinelWorkspace'
          workspaceResourceId: workspaceResourceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Custom-TokenPivotAlerts'
        ]
        destinations: [
          'sentinelWorkspace'
        ]
        transformKql: 'source'
        outputStream: 'Custom-TokenPivotAlerts_CL'
      }
    ]
  }
}

// The function sends with its identity: the Logs Ingestion API needs this
// role on the rule, nothing on the workspace.
resource ingestionPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertsIngestionRule.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  scope: alertsIngestionRule
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The app settings TOKENPIVOT_LOGS_INGESTION_ENDPOINT, _RULE_ID and _STREAM.
output logsIngestionEndpoint string = alertsIngestionRule.properties.endpoints.logsIngestion
output immutableId string = alertsIngestionRule.properties.immutableId
output stream string = alertsIngestionRule.properties.dataFlows[0].streams[0]
