// The SOC side of the Sentinel integration, deployed into the resource group of
// the SOC's existing Log Analytics workspace (main.bicep: sentinelWorkspaceId):
// the custom table the function's alert revisions are ingested into, and the
// NRT analytics rule over it that raises Sentinel alerts and incidents. The
// data collection rule that writes into the table, and the function's role on
// it, are in main.bicep. Kept in step with infra/terraform/sentinel.tf.
//
// The workspace must be onboarded to Microsoft Sentinel: analytics rules are
// Sentinel resources (Microsoft.SecurityInsights) on the workspace.

@description('Name of the SOC\'s existing Log Analytics workspace (onboarded to Microsoft Sentinel).')
param workspaceName string

resource sentinelWorkspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

// Exactly the columns of internal/sentinel.Columns (the contract with the Go
// sink; internal/infra checks it), with the tables API's type names
// (dateTime where the Logs Ingestion stream says datetime).
resource alertsTable 'Microsoft.OperationalInsights/workspaces/tables@2023-09-01' = {
  parent: sentinelWorkspace
  name: 'TokenPivotAlerts_CL'
  properties: {
    plan: 'Analytics'
    schema: {
      name: 'TokenPivotAlerts_CL'
      columns: [
        { name: 'TimeGenerated', type: 'dateTime' }
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
        { name: 'StartTime', type: 'dateTime' }
        { name: 'EndTime', type: 'dateTime' }
        { name: 'ResultCount', type: 'int' }
        { name: 'Results', type: 'dynamic' }
        { name: 'ResultsTruncated', type: 'boolean' }
        { name: 'RuleId', type: 'string' }
        { name: 'RuleVersion', type: 'string' }
      ]
    }
  }
}

// Near-real-time: Sentinel runs the query about every minute over what was
// ingested since the last run. Every send of an alert is a new revision row;
// arg_max keeps one row per AlertId in a run, the highest Revision (the rows
// of one Logs Ingestion call share one TimeGenerated, so TimeGenerated cannot
// order them), so a re-sent revision never raises two alerts at once. Only
// the columns the rule maps are projected (NRT alerts are size-limited), with
// AlertName cut to Sentinel's 256 characters and Description to 5,000.
// Alerts of one account are grouped into one incident (Selected by Account:
// the only matching method that honours groupByEntities; tokenpivot's own
// incidents group the same way, internal/alert.GroupingKey).
// NRT rules exist only in preview API versions of Microsoft.SecurityInsights
// (internal/infra checks this body against the stable Scheduled definition).
resource alertRule 'Microsoft.SecurityInsights/alertRules@2024-01-01-preview' = {
  scope: sentinelWorkspace
  // Fixed, so Bicep and Terraform manage the same rule; not the bundled
  // Scheduled rule's id, which the SOC may run in the same workspace.
  name: 'f63c977c-868d-4673-9457-d41789f82ad7'
  kind: 'NRT'
  properties: {
    displayName: 'TokenPivot: Interactive to Non-Interactive Token Theft Pivot'
    description: 'Raises the alerts tokenpivot finds in the exported sign-in logs (table TokenPivotAlerts_CL, one row per alert revision), with their own name, description and severity.'
    severity: 'High'
    enabled: true
    query: 'TokenPivotAlerts_CL\n| summarize arg_max(Revision, *) by AlertId\n| project AlertId, IncidentId, AlertName = substring(AlertName, 0, 256), Description = substring(Description, 0, 5000), Severity, UserPrincipalName, NIIPAddress, InteractiveIP, InteractiveCountry, NICountry, AppDisplayName, RuleVersion'
    suppressionEnabled: false
    suppressionDuration: 'PT5H'
    tactics: [
      'CredentialAccess'
      'LateralMovement'
      'DefenseEvasion'
    ]
    techniques: [
      'T1528'
      'T1539'
      'T1078'
    ]
    entityMappings: [
      {
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'FullName'
            columnName: 'UserPrincipalName'
          }
        ]
      }
      {
        entityType: 'IP'
        fieldMappings: [
          {
            identifier: 'Address'
            columnName: 'NIIPAddress'
          }
        ]
      }
    ]
    customDetails: {
      TokenPivotAlertId: 'AlertId'
      TokenPivotIncident: 'IncidentId'
      InteractiveIP: 'InteractiveIP'
      InteractiveCountry: 'InteractiveCountry'
      NonInteractiveCountry: 'NICountry'
      AppDisplayName: 'AppDisplayName'
      RuleVersion: 'RuleVersion'
    }
    alertDetailsOverride: {
      alertDisplayNameFormat: '{{AlertName}}'
      alertDescriptionFormat: '{{Description}}'
      alertSeverityColumnName: 'Severity'
    }
    eventGroupingSettings: {
      aggregationKind: 'AlertPerResult'
    }
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        enabled: true
        reopenClosedIncident: false
        lookbackDuration: 'PT5H'
        matchingMethod: 'Selected'
        groupByEntities: [
          'Account'
        ]
        groupByAlertDetails: []
        groupByCustomDetails: []
      }
    }
  }
  // Sentinel validates the query against the workspace: the table first.
  dependsOn: [
    alertsTable
  ]
}
