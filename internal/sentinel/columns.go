package sentinel

// Column is one column of the stream and the table: its name and its
// Logs Ingestion type (string, int, long, real, boolean, datetime, dynamic).
type Column struct {
	Name string
	Type string
}

// Columns are the stream's and the table's columns, in order: one record
// per alert revision. infra/bicep and infra/terraform declare exactly these
// (internal/infra checks it), and every record sent has exactly these keys.
var Columns = []Column{
	{"TimeGenerated", "datetime"}, // the time of sending: the service replaces one older than 2 days
	{"AlertId", "string"},
	{"Revision", "int"},
	{"IncidentId", "string"},
	{"AlertName", "string"},
	{"Description", "string"},
	{"Severity", "string"},
	{"Tactics", "string"},     // comma-joined, as in SecurityAlert
	{"Techniques", "dynamic"}, // array of technique ids
	{"UserPrincipalName", "string"},
	{"NIIPAddress", "string"},
	{"NICountry", "string"},
	{"InteractiveIP", "string"},
	{"InteractiveCountry", "string"},
	{"AppDisplayName", "string"},
	{"StartTime", "datetime"},
	{"EndTime", "datetime"},
	{"ResultCount", "int"},
	{"Results", "dynamic"}, // the evidence rows, the 11 result columns each
	{"ResultsTruncated", "boolean"},
	{"RuleId", "string"},
	{"RuleVersion", "string"},
}
