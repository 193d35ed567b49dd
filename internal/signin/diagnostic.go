package signin

// The Microsoft Entra ID diagnostic-settings archive: sign-in logs that a
// diagnostic setting on the tenant (microsoft.aadiam/diagnosticSettings)
// writes to a storage account, one container per log category
// (insights-logs-signinlogs, insights-logs-noninteractiveusersigninlogs),
// one append blob per hour:
//
//	tenantId=<tenant id>/y=<yyyy>/m=<MM>/d=<dd>/h=<HH>/m=00/PT1H.json
//
// (Azure Monitor, "Archive Azure resource logs to storage account",
// https://docs.microsoft.com/en-us/azure/azure-monitor/platform/resource-logs-collect-storage:
// containers insights-logs-{category}, y=/m=/d=/h=/m=00/PT1H.json; for a
// tenant-level source the path starts tenantId=<id> instead of
// resourceId=<id>. The reader does not depend on the path: IsExportName
// accepts PT1H.json, and the form is told from the content.)
//
// Each line is one record in the Azure resource-log schema, not in Log
// Analytics' column names (Microsoft Entra, "Interpret the sign-in logs
// schema in Azure Monitor",
// https://docs.microsoft.com/en-us/azure/active-directory/reports-monitoring/reference-azure-monitor-sign-ins-log-schema):
//
//	{"time":"2019-03-12T16:02:15.5522137Z",
//	 "resourceId":"/tenants/<tid>/providers/Microsoft.aadiam",
//	 "operationName":"Sign-in activity","operationVersion":"1.0",
//	 "category":"SignInLogs","tenantId":"<tid>","resultType":"50140",
//	 "resultSignature":"None","resultDescription":"...","durationMs":0,
//	 "callerIpAddress":"<ip>","correlationId":"a75a10bd-...",
//	 "identity":"Timothy Perkins","Level":4,"location":"US",
//	 "properties":{"id":"0231f922-...","createdDateTime":"...",
//	   "userPrincipalName":"...","appDisplayName":"Azure Portal",
//	   "ipAddress":"<ip>","status":{"errorCode":50140,"failureReason":"..."},
//	   "location":{"city":"Bellevue","countryOrRegion":"US",...},
//	   "conditionalAccessStatus":"notApplied",
//	   "authenticationRequirement":"singleFactorAuthentication",
//	   "uniqueTokenIdentifier":"...", ...}}
//
// properties is the Microsoft Graph signIn object in camelCase
// (https://learn.microsoft.com/graph/api/resources/signin).
//
// The rule's columns are derived as the Log Analytics tables derive them.
// Azure Monitor maps the resource-log top-level fields onto the tables'
// standard columns of the same name (time -> TimeGenerated, resultType ->
// ResultType, correlationId -> CorrelationId, location -> Location,
// identity -> Identity, ...) and the properties onto the PascalCase columns
// (properties.userPrincipalName -> UserPrincipalName, properties.ipAddress
// -> IPAddress, ...); SigninLogs and AADNonInteractiveUserSignInLogs have no
// CallerIpAddress column (shared/schemas). Where Microsoft's pages are
// silent we chose, and say so:
//
//	TimeGenerated             time; else properties.createdDateTime (chosen fallback)
//	UserPrincipalName         properties.userPrincipalName
//	IPAddress                 properties.ipAddress; else callerIpAddress (chosen fallback: the sample has both, equal)
//	Location                  location (country code); else properties.location.countryOrRegion
//	                          (the sample has both, equal; the table's Location is the top-level
//	                          field, as in every resource-log table; chosen fallback when absent or null)
//	ResultType                resultType (a string: "0" is success); else properties.status.errorCode
//	                          (a number, read as its integer text: the sample has "50140" and 50140)
//	AuthenticationRequirement properties.authenticationRequirement (a Graph string, stored as is:
//	                          "singleFactorAuthentication", "multiFactorAuthentication")
//	ConditionalAccessStatus   properties.conditionalAccessStatus: Graph's conditionalAccessStatus
//	                          enum, serialized by name ("success", "failure", "notApplied",
//	                          "unknownFutureValue"), the table's strings; a writer that serializes
//	                          the enum by number gets 0..3 read as those names (Graph's member order)
//	AppDisplayName            properties.appDisplayName
//	CorrelationId             correlationId; else properties.correlationId
//	UniqueTokenIdentifier     properties.uniqueTokenIdentifier
//	Id                        properties.id (the Graph signIn id is the table's Id)
//
// Comparisons stay KQL's: case-sensitive and exact, so a value is never
// re-cased. A file is in one form: the first record decides (a JSON object
// with category SignInLogs or NonInteractiveUserSignInLogs and a properties
// object), and a later record in the other form, or with another category
// than the table's, is a *FormatError naming the file, the row and the
// category.

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Form is the shape of the records of a JSON Lines export file.
type Form string

const (
	// LogAnalyticsForm is Log Analytics' column names (data export, export
	// jobs, Azure Data Explorer): "TimeGenerated", "UserPrincipalName", ...
	LogAnalyticsForm Form = "log-analytics"
	// ResourceLogForm is the Azure resource-log schema of a diagnostic
	// setting's storage archive: "time", "category", "properties": {...}.
	ResourceLogForm Form = "resource-log"
)

// Categories of the two tables' records in the resource-log form.
const (
	CategorySignInLogs                   = "SignInLogs"
	CategoryNonInteractiveUserSignInLogs = "NonInteractiveUserSignInLogs"
)

// Category returns t's resource-log category.
func (t Table) Category() string {
	if t == NonInteractive {
		return CategoryNonInteractiveUserSignInLogs
	}
	return CategorySignInLogs
}

// DiagnosticContainer returns the container a tenant diagnostic setting
// writes t's category to (insights-logs-<category, lower case>).
func (t Table) DiagnosticContainer() string {
	if t == NonInteractive {
		return "insights-logs-noninteractiveusersigninlogs"
	}
	return "insights-logs-signinlogs"
}

// diagRow receives the resource-log fields the rule reads. encoding/json
// matches keys case-insensitively; the schema writes each once.
type diagRow struct {
	Time            json.RawMessage
	Category        json.RawMessage
	ResultType      json.RawMessage
	CallerIpAddress json.RawMessage
	CorrelationId   json.RawMessage
	Location        json.RawMessage
	Properties      diagProps
}

// diagProps is the Graph signIn object's fields the rule reads.
type diagProps struct {
	present                   bool // properties was a JSON object
	Id                        json.RawMessage
	CreatedDateTime           json.RawMessage
	UserPrincipalName         json.RawMessage
	AppDisplayName            json.RawMessage
	IpAddress                 json.RawMessage
	AuthenticationRequirement json.RawMessage
	ConditionalAccessStatus   json.RawMessage
	UniqueTokenIdentifier     json.RawMessage
	CorrelationId             json.RawMessage
	Status                    struct{ ErrorCode json.RawMessage }
	Location                  struct{ CountryOrRegion json.RawMessage }
}

// UnmarshalJSON reads properties when it is an object; any other value
// (null, a string) leaves present false, which tells a record that is not
// in the resource-log form.
func (p *diagProps) UnmarshalJSON(b []byte) error {
	p.present = false
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	type plain diagProps // without this method
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	p.present = true
	return nil
}

// reset empties d for the next line, keeping the buffers (encoding/json
// appends a RawMessage into its old capacity), so a line costs no
// allocation for the raw values.
func (d *diagRow) reset() {
	for _, m := range []*json.RawMessage{
		&d.Time, &d.Category, &d.ResultType, &d.CallerIpAddress, &d.CorrelationId, &d.Location,
		&d.Properties.Id, &d.Properties.CreatedDateTime, &d.Properties.UserPrincipalName,
		&d.Properties.AppDisplayName, &d.Properties.IpAddress, &d.Properties.AuthenticationRequirement,
		&d.Properties.ConditionalAccessStatus, &d.Properties.UniqueTokenIdentifier,
		&d.Properties.CorrelationId, &d.Properties.Status.ErrorCode, &d.Properties.Location.CountryOrRegion,
	} {
		*m = (*m)[:0]
	}
	d.Properties.present = false
}

// diagColumns names, for errors, where each column comes from in the
// resource-log form (the first source of the mapping above).
var diagColumns = [numFields]string{
	fTimeGenerated:             "time",
	fUserPrincipalName:         "properties.userPrincipalName",
	fIPAddress:                 "properties.ipAddress",
	fLocation:                  "location",
	fResultType:                "resultType",
	fAuthenticationRequirement: "properties.authenticationRequirement",
	fConditionalAccessStatus:   "properties.conditionalAccessStatus",
	fAppDisplayName:            "properties.appDisplayName",
	fCorrelationId:             "correlationId",
	fUniqueTokenIdentifier:     "properties.uniqueTokenIdentifier",
	fId:                        "properties.id",

	fSessionId:                    "properties.sessionId",
	fAutonomousSystemNumber:       "properties.autonomousSystemNumber",
	fNetworkLocationDetails:       "properties.networkLocationDetails",
	fIsThroughGlobalSecureAccess:  "properties.isThroughGlobalSecureAccess",
	fAppId:                        "properties.appId",
	fLocationDetails:              "properties.location",
	fDeviceDetail:                 "properties.deviceDetail",
	fTokenProtectionStatusDetails: "properties.tokenProtectionStatusDetails",
	fClientAppUsed:                "properties.clientAppUsed",
	fResourceDisplayName:          "properties.resourceDisplayName",
	fUserAgent:                    "properties.userAgent",
}

// diagExtra is where a resource-log line holds the columns of
// Record.Extra (Graph's signIn names; properties.location is the object
// Log Analytics calls LocationDetails). It is decoded in a second pass,
// only with Options.Extra, so exact mode reads what it always did.
type diagExtra struct {
	Properties struct {
		SessionId                    json.RawMessage `json:"sessionId"`
		AutonomousSystemNumber       json.RawMessage `json:"autonomousSystemNumber"`
		NetworkLocationDetails       json.RawMessage `json:"networkLocationDetails"`
		IsThroughGlobalSecureAccess  json.RawMessage `json:"isThroughGlobalSecureAccess"`
		AppId                        json.RawMessage `json:"appId"`
		Location                     json.RawMessage `json:"location"`
		DeviceDetail                 json.RawMessage `json:"deviceDetail"`
		TokenProtectionStatusDetails json.RawMessage `json:"tokenProtectionStatusDetails"`
		ClientAppUsed                json.RawMessage `json:"clientAppUsed"`
		ResourceDisplayName          json.RawMessage `json:"resourceDisplayName"`
		UserAgent                    json.RawMessage `json:"userAgent"`
	} `json:"properties"`
}

// parseResourceLogExtra fills the Record.Extra columns of s.row from a
// resource-log line.
func (s *jsonlScan) parseResourceLogExtra(buf []byte) error {
	var x diagExtra
	if err := json.Unmarshal(buf, &x); err != nil {
		return s.formatErr("", s.line, fmt.Errorf("invalid JSON: %w", err))
	}
	p, r := &x.Properties, &s.row
	r.SessionId, r.AutonomousSystemNumber, r.NetworkLocationDetails = p.SessionId, p.AutonomousSystemNumber, p.NetworkLocationDetails
	r.IsThroughGlobalSecureAccess, r.AppId, r.LocationDetails = p.IsThroughGlobalSecureAccess, p.AppId, p.Location
	r.DeviceDetail, r.TokenProtectionStatusDetails = p.DeviceDetail, p.TokenProtectionStatusDetails
	r.ClientAppUsed, r.ResourceDisplayName, r.UserAgent = p.ClientAppUsed, p.ResourceDisplayName, p.UserAgent
	return nil
}

// resourceLogCategory returns the category of a line parsed as Log
// Analytics' columns when the line is in the resource-log form (a
// properties object and a sign-in category), else "".
func resourceLogCategory(category, properties json.RawMessage) string {
	if len(properties) == 0 || properties[0] != '{' || len(category) == 0 || category[0] != '"' {
		return ""
	}
	var c string
	if json.Unmarshal(category, &c) != nil {
		return ""
	}
	if c == CategorySignInLogs || c == CategoryNonInteractiveUserSignInLogs {
		return c
	}
	return ""
}

// parseResourceLog decodes a resource-log line into s.row, each column from
// its source (see the mapping above), so that cells reads it as it reads a
// Log Analytics row.
func (s *jsonlScan) parseResourceLog(buf []byte) error {
	d := &s.diag
	d.reset()
	if err := json.Unmarshal(buf, d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("want a %s at %s, got a JSON %s", te.Type, te.Field, te.Value)
		}
		return s.formatErr("", s.line, fmt.Errorf("invalid JSON: %w", err))
	}
	cat, _ := jsonString(d.Category)
	if !d.Properties.present || (cat != CategorySignInLogs && cat != CategoryNonInteractiveUserSignInLogs) {
		return s.formatErr("", s.line, fmt.Errorf("record is not in the resource-log form of the file's first record (category %q, properties %s): a file holds one form", cat, presence(d.Properties.present)))
	}
	if cat != s.table.Category() {
		return s.formatErr("category", s.line, fmt.Errorf("category %q is not %s's (%q)", cat, s.table, s.table.Category()))
	}
	p := &d.Properties
	r := &s.row.jsonRow
	r.TimeGenerated = first(d.Time, p.CreatedDateTime)
	// Archives in the field carry an off-spec time ("11/14/2025 1:48:53 AM",
	// elastic/integrations#15977) beside a valid createdDateTime: the sign-in's
	// own time then stands in, counted and named (Stats.TimeFallbacks).
	if len(d.Time) > 0 && d.Time[0] != 'n' && len(p.CreatedDateTime) > 0 && p.CreatedDateTime[0] != 'n' {
		if _, err := jsonTime(d.Time); err != nil {
			if _, err := jsonTime(p.CreatedDateTime); err == nil {
				r.TimeGenerated = p.CreatedDateTime
				s.st.TimeFallbacks++
				if s.st.FirstTimeFallback == nil {
					s.st.FirstTimeFallback = &FormatError{File: s.name, Column: "time", Row: s.line, Err: fmt.Errorf("%s is not an ISO 8601 time: properties.createdDateTime %s used", d.Time, p.CreatedDateTime)}
				}
			}
		}
	}
	r.UserPrincipalName = p.UserPrincipalName
	r.IPAddress = firstPresent(p.IpAddress, d.CallerIpAddress)
	r.Location = first(d.Location, p.Location.CountryOrRegion)
	r.ResultType = first(d.ResultType, p.Status.ErrorCode)
	r.AuthenticationRequirement = p.AuthenticationRequirement
	r.ConditionalAccessStatus = conditionalAccessStatusText(p.ConditionalAccessStatus)
	r.AppDisplayName = p.AppDisplayName
	r.CorrelationId = first(d.CorrelationId, p.CorrelationId)
	r.UniqueTokenIdentifier = p.UniqueTokenIdentifier
	r.Id = p.Id
	if len(s.opts.Extra) > 0 {
		return s.parseResourceLogExtra(buf)
	}
	return nil
}

// first is a, unless a is absent or null: then b.
func first(a, b json.RawMessage) json.RawMessage {
	if len(a) == 0 || a[0] == 'n' {
		return b
	}
	return a
}

// firstPresent is a, unless a is absent (a null a is kept: the key says the
// signIn object has no value).
func firstPresent(a, b json.RawMessage) json.RawMessage {
	if len(a) == 0 {
		return b
	}
	return a
}

// conditionalAccessNames are Graph's conditionalAccessStatus members in
// order (https://learn.microsoft.com/graph/api/resources/signin:
// success, failure, notApplied, unknownFutureValue).
var conditionalAccessNames = [...]json.RawMessage{
	json.RawMessage(`"success"`), json.RawMessage(`"failure"`),
	json.RawMessage(`"notApplied"`), json.RawMessage(`"unknownFutureValue"`),
}

// conditionalAccessStatusText reads the enum serialized by number as its
// name; a string (the documented form) or anything else is left to cells.
func conditionalAccessStatusText(raw json.RawMessage) json.RawMessage {
	if len(raw) == 1 && raw[0] >= '0' && int(raw[0]-'0') < len(conditionalAccessNames) {
		return conditionalAccessNames[raw[0]-'0']
	}
	return raw
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func presence(ok bool) string {
	if ok {
		return "an object"
	}
	return "absent or not an object"
}
