// Package sentinel sends alert revisions to Microsoft Sentinel through the
// Azure Monitor Logs Ingestion API, into the custom table TokenPivotAlerts_CL
// that infra/ declares (a data collection rule's stream and the table), over
// which a shipped NRT analytics rule raises Sentinel's own alerts and
// incidents.
package sentinel

// Table is the custom table in the SOC's Log Analytics workspace.
const Table = "TokenPivotAlerts_CL"

// DefaultStream is the data collection rule's input stream.
const DefaultStream = "Custom-TokenPivotAlerts"
