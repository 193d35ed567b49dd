package alert

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// Fixed values of the documents tokenpivot writes.
const (
	ProviderName         = "tokenpivot"
	ProductName          = "tokenpivot"
	ProductComponentName = "Scheduled Alerts"
	StatusNew            = "New"
)

// Document is one alert, shaped like a row of Sentinel's SecurityAlert
// table (same column names), plus the result rows it covers.
//
// Every field is a function of the rule and the evidence rows, never of the
// wall clock, so writing the same alert twice gives the same document.
type Document struct {
	// TimeGenerated is the latest evidence time (the latest NISignInTime):
	// when a scheduled run could first have raised the alert.
	TimeGenerated        time.Time          `json:"TimeGenerated"`
	DisplayName          string             `json:"DisplayName"`
	AlertName            string             `json:"AlertName"`
	AlertSeverity        string             `json:"AlertSeverity"`
	Description          string             `json:"Description"`
	ProviderName         string             `json:"ProviderName"`
	VendorName           string             `json:"VendorName"`
	ProductName          string             `json:"ProductName"`
	ProductComponentName string             `json:"ProductComponentName"`
	AlertType            string             `json:"AlertType"` // the rule id
	SystemAlertId        string             `json:"SystemAlertId"`
	Status               string             `json:"Status"`
	Tactics              string             `json:"Tactics"` // comma-joined, as in SecurityAlert
	Techniques           []string           `json:"Techniques"`
	Entities             []Entity           `json:"Entities"`
	ExtendedProperties   ExtendedProperties `json:"ExtendedProperties"`
	// StartTime is the earliest InteractiveTime of the evidence, EndTime the
	// latest NISignInTime.
	StartTime   time.Time `json:"StartTime"`
	EndTime     time.Time `json:"EndTime"`
	RuleId      string    `json:"RuleId"`
	RuleVersion string    `json:"RuleVersion"`
	// IncidentId is the incident the alert was attached to ("" before).
	IncidentId string `json:"IncidentId,omitempty"`
	// Results are the evidence rows, deduplicated and in query order. In JSON
	// each is an object of the 11 result columns; the two source rows' Ids,
	// which dedup them, travel in ResultIds (same order).
	Results []detect.Result `json:"-"`
}

// Entity is one entity of an alert, as in SecurityAlert's Entities: "$id",
// "Type" (lower case, e.g. "account", "ip") and the identifiers.
type Entity map[string]string

// key identifies an entity regardless of its $id.
func (e Entity) key() string {
	var parts []string
	for k, v := range e {
		if k != "$id" {
			parts = append(parts, k+"="+v)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "\x00")
}

// ExtendedProperties is SecurityAlert's ExtendedProperties as tokenpivot
// fills it.
type ExtendedProperties struct {
	AnalyticRuleIds  []string `json:"Analytic Rule Ids"`
	AnalyticRuleName string   `json:"Analytic Rule Name"`
	QueryPeriod      string   `json:"Query Period"` // KQL timespan text
	TriggerOperator  string   `json:"Trigger Operator"`
	TriggerThreshold int      `json:"Trigger Threshold"`
	EventGrouping    string   `json:"Event Grouping"`
	// ResultCount is the number of evidence rows.
	ResultCount int `json:"Search Query Results Overall Count"`
	// CustomDetails hold, per customDetails key in rule order, the distinct
	// values of its column in the evidence, sorted.
	CustomDetails CustomDetails `json:"Custom Details"`
}

// CustomDetails is an ordered JSON object of detail name to values.
type CustomDetails []CustomDetail

// CustomDetail is one entry of CustomDetails.
type CustomDetail struct {
	Key    string
	Values []string
}

// MarshalJSON writes the details as an object, in order.
func (c CustomDetails) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, d := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(d.Key)
		vs := d.Values
		if vs == nil {
			vs = []string{}
		}
		v, err := json.Marshal(vs)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of string arrays, keeping its order.
func (c *CustomDetails) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		if string(bytes.TrimSpace(data)) == "null" {
			*c = nil
			return nil
		}
		return fmt.Errorf("Custom Details: want an object")
	}
	var out CustomDetails
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("Custom Details: %v", err)
		}
		var vs []string
		if err := dec.Decode(&vs); err != nil {
			return fmt.Errorf("Custom Details %q: %v", t, err)
		}
		out = append(out, CustomDetail{Key: fmt.Sprint(t), Values: vs})
	}
	*c = out
	return nil
}

// add inserts v into the sorted values unless it is there (sorted, so
// that merging evidence in any order gives the same document).
func (c *CustomDetail) add(v string) bool {
	i, found := slices.BinarySearch(c.Values, v)
	if found {
		return false
	}
	c.Values = slices.Insert(c.Values, i, v)
	return true
}

// ResultIds are the source rows' Ids of one evidence row.
type ResultIds struct {
	InteractiveId    string `json:"InteractiveId"`
	NonInteractiveId string `json:"NonInteractiveId"`
}

// documentJSON is Document's stored form: its fields plus Results as row
// objects and their Ids.
type documentJSON struct {
	documentFields
	Results   []resultJSON `json:"Results"`
	ResultIds []ResultIds  `json:"ResultIds"`
}

// documentFields has Document's fields without its methods (no recursion).
type documentFields Document

// MarshalJSON writes the document with its Results as objects.
func (d Document) MarshalJSON() ([]byte, error) {
	j := documentJSON{documentFields: documentFields(d), Results: []resultJSON{}, ResultIds: []ResultIds{}}
	j.TimeGenerated, j.StartTime, j.EndTime = d.TimeGenerated.UTC(), d.StartTime.UTC(), d.EndTime.UTC()
	for _, r := range d.Results {
		j.Results = append(j.Results, toJSON(r))
		j.ResultIds = append(j.ResultIds, ResultIds{r.InteractiveId, r.NonInteractiveId})
	}
	return marshal(j, "")
}

// marshal encodes v without escaping <, > and & (descriptions hold "ATT&CK"),
// indented by indent when it is not "".
func marshal(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads a document written by MarshalJSON.
func (d *Document) UnmarshalJSON(data []byte) error {
	var j documentJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if len(j.ResultIds) != 0 && len(j.ResultIds) != len(j.Results) {
		return fmt.Errorf("alert %s: %d ResultIds for %d Results", j.SystemAlertId, len(j.ResultIds), len(j.Results))
	}
	*d = Document(j.documentFields)
	d.Results = nil
	for i, rj := range j.Results {
		r, err := rj.result()
		if err != nil {
			return fmt.Errorf("alert %s: Results[%d]: %v", j.SystemAlertId, i, err)
		}
		if i < len(j.ResultIds) {
			r.InteractiveId, r.NonInteractiveId = j.ResultIds[i].InteractiveId, j.ResultIds[i].NonInteractiveId
		}
		d.Results = append(d.Results, r)
	}
	return nil
}

// hashID formats the SHA-256 of the NUL-joined parts as a GUID (RFC 9562
// version 8, the version for custom ids).
func hashID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// interactiveKey identifies the interactive sign-in of a row: its Id, else
// its time and IP.
func interactiveKey(r detect.Result) string {
	if r.InteractiveId != "" {
		return "id:" + r.InteractiveId
	}
	return "at:" + FormatTime(r.InteractiveTime) + "|" + r.InteractiveIP
}

// AlertID is the SystemAlertId of the alert covering row r by default:
// hash(rule id, UPN, interactive row, NIIPAddress).
func AlertID(ruleID string, r detect.Result) string {
	return hashID(ruleID, r.UserPrincipalName, interactiveKey(r), r.NIIPAddress)
}

// rowKey dedups evidence: the two source rows' Ids, else the whole row.
func rowKey(r detect.Result) string {
	if r.InteractiveId != "" && r.NonInteractiveId != "" {
		return "ids:" + r.InteractiveId + "\x00" + r.NonInteractiveId
	}
	j := toJSON(r)
	return "row:" + strings.Join([]string{j.NISignInTime, j.InteractiveTime, j.UserPrincipalName, j.AppDisplayName,
		j.NIIPAddress, j.NICountry, j.InteractiveIP, j.InteractiveCountry, j.CorrelationId,
		j.UniqueTokenIdentifier, j.TimeSinceInteractive}, "\x00")
}

// rowAlertID is the SystemAlertId of a one-row alert (AlertPerResult).
func rowAlertID(ruleID string, r detect.Result) string {
	return hashID(ruleID, "row", rowKey(r))
}

// Group builds the alerts of a set of result rows: by default one alert per
// (UserPrincipalName, interactive sign-in, NIIPAddress) holding every
// matching row as evidence; with perRow, one alert per row. Duplicate rows
// (same source Ids, else identical) count once. Alerts come out in query
// order of their first row.
func Group(r *rule.Rule, rows []detect.Result, perRow bool) []Document {
	// Rows in query order first, so that each alert renders from its
	// earliest row whatever order the rows came in.
	rows = slices.Clone(rows)
	detect.Sort(rows)
	byID := map[string]*Document{}
	var order []string
	for _, row := range rows {
		id := AlertID(r.ID, row)
		if perRow {
			id = rowAlertID(r.ID, row)
		}
		if d, ok := byID[id]; ok {
			d.addRow(r, row)
			continue
		}
		d := newDocument(r, id, row)
		byID[id] = d
		order = append(order, id)
	}
	out := make([]Document, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	slices.SortStableFunc(out, func(a, b Document) int {
		return cmp.Or(detect.Compare(a.Results[0], b.Results[0]), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	return out
}

// newDocument starts the alert id with its first row, rendering the
// rule's alertDetailsOverride from it (as Sentinel renders from the first row).
func newDocument(r *rule.Rule, id string, row detect.Result) *Document {
	ao := r.AlertDetailsOverride
	name := cmp.Or(Render(ao.AlertDisplayNameFormat, row), r.Name)
	severity := r.Severity
	if v, ok := Column(row, ao.AlertSeverityColumnName); ok && isSeverity(v) {
		severity = v
	}
	tactics := strings.Join(r.Tactics, ",")
	if v, ok := Column(row, ao.AlertTacticsColumnName); ok && v != "" {
		tactics = v
	}
	d := &Document{
		TimeGenerated:        row.NISignInTime.UTC(),
		DisplayName:          name,
		AlertName:            name,
		AlertSeverity:        severity,
		Description:          cmp.Or(Render(ao.AlertDescriptionFormat, row), strings.TrimSpace(r.Description)),
		ProviderName:         ProviderName,
		VendorName:           ProviderName,
		ProductName:          ProductName,
		ProductComponentName: ProductComponentName,
		AlertType:            r.ID,
		SystemAlertId:        id,
		Status:               StatusNew,
		Tactics:              tactics,
		Techniques:           append([]string{}, r.Techniques...),
		Entities:             []Entity{},
		ExtendedProperties: ExtendedProperties{
			AnalyticRuleIds:  []string{r.ID},
			AnalyticRuleName: r.Name,
			QueryPeriod:      FormatTimespan(r.QueryPeriod),
			TriggerOperator:  r.TriggerOperator,
			TriggerThreshold: r.TriggerThreshold,
			EventGrouping:    r.EventGrouping,
		},
		StartTime:   row.InteractiveTime.UTC(),
		EndTime:     row.NISignInTime.UTC(),
		RuleId:      r.ID,
		RuleVersion: r.Version,
	}
	for _, kv := range r.CustomDetails {
		d.ExtendedProperties.CustomDetails = append(d.ExtendedProperties.CustomDetails, CustomDetail{Key: kv.Key})
	}
	d.addRow(r, row)
	return d
}

// addRow adds one evidence row (if new) with its entities and details.
func (d *Document) addRow(r *rule.Rule, row detect.Result) bool {
	if !d.addResult(row) {
		return false
	}
	for _, e := range entitiesOf(r, row) {
		d.addEntity(e)
	}
	for i, kv := range r.CustomDetails {
		if v, ok := Column(row, kv.Value); ok {
			d.ExtendedProperties.CustomDetails[i].add(v)
		}
	}
	return true
}

// addResult inserts row in query order unless an equal row is there, and
// widens the alert's times.
func (d *Document) addResult(row detect.Result) bool {
	k := rowKey(row)
	for _, have := range d.Results {
		if rowKey(have) == k {
			return false
		}
	}
	i, _ := slices.BinarySearchFunc(d.Results, row, detect.Compare)
	d.Results = slices.Insert(d.Results, i, row)
	d.ExtendedProperties.ResultCount = len(d.Results)
	if t := row.InteractiveTime.UTC(); d.StartTime.IsZero() || t.Before(d.StartTime) {
		d.StartTime = t
	}
	if t := row.NISignInTime.UTC(); t.After(d.EndTime) {
		d.EndTime = t
	}
	if d.EndTime.After(d.TimeGenerated) {
		d.TimeGenerated = d.EndTime
	}
	return true
}

// addEntity appends e unless an entity with the same identifiers is there.
func (d *Document) addEntity(e Entity) bool {
	k := e.key()
	for _, have := range d.Entities {
		if have.key() == k {
			return false
		}
	}
	e = cloneEntity(e)
	e["$id"] = strconv.Itoa(len(d.Entities) + 1)
	d.Entities = append(d.Entities, e)
	return true
}

func cloneEntity(e Entity) Entity {
	out := make(Entity, len(e)+1)
	for k, v := range e {
		out[k] = v
	}
	return out
}

// Merge adds other's new evidence rows, entities and custom detail values to
// d, widening its times, and reports whether d changed. Fields rendered
// from the first row (names, severity) stay as d has them.
func (d *Document) Merge(other Document) bool {
	changed := false
	for _, row := range other.Results {
		changed = d.addResult(row) || changed
	}
	for _, e := range other.Entities {
		changed = d.addEntity(e) || changed
	}
	for _, ocd := range other.ExtendedProperties.CustomDetails {
		i := slices.IndexFunc(d.ExtendedProperties.CustomDetails, func(c CustomDetail) bool { return c.Key == ocd.Key })
		if i < 0 {
			d.ExtendedProperties.CustomDetails = append(d.ExtendedProperties.CustomDetails, CustomDetail{Key: ocd.Key})
			i = len(d.ExtendedProperties.CustomDetails) - 1
			changed = true
		}
		for _, v := range ocd.Values {
			changed = d.ExtendedProperties.CustomDetails[i].add(v) || changed
		}
	}
	if d.IncidentId == "" && other.IncidentId != "" {
		d.IncidentId = other.IncidentId
		changed = true
	}
	return changed
}

// entitiesOf maps a row to entities per the rule's entityMappings. An
// entity whose mapped columns are all empty is left out. An Account's
// FullName (a UPN) is also split into Name and UPNSuffix, as Sentinel does.
func entitiesOf(r *rule.Rule, row detect.Result) []Entity {
	var out []Entity
	for _, m := range r.EntityMappings {
		e := Entity{"Type": strings.ToLower(m.EntityType)}
		empty := true
		for _, fm := range m.FieldMappings {
			v, _ := Column(row, fm.ColumnName)
			if v == "" {
				continue
			}
			e[fm.Identifier] = v
			empty = false
		}
		if empty {
			continue
		}
		if strings.EqualFold(m.EntityType, "Account") {
			if name, suffix, ok := strings.Cut(e["FullName"], "@"); ok && e["Name"] == "" {
				e["Name"], e["UPNSuffix"] = name, suffix
			}
		}
		out = append(out, e)
	}
	return out
}

// Column returns the value of the named result column as text (times in
// RFC 3339, the timespan as KQL prints it); false for an unknown column.
func Column(r detect.Result, name string) (string, bool) {
	j := toJSON(r)
	switch name {
	case "NISignInTime":
		return j.NISignInTime, true
	case "InteractiveTime":
		return j.InteractiveTime, true
	case "UserPrincipalName":
		return j.UserPrincipalName, true
	case "AppDisplayName":
		return j.AppDisplayName, true
	case "NIIPAddress":
		return j.NIIPAddress, true
	case "NICountry":
		return j.NICountry, true
	case "InteractiveIP":
		return j.InteractiveIP, true
	case "InteractiveCountry":
		return j.InteractiveCountry, true
	case "CorrelationId":
		return j.CorrelationId, true
	case "UniqueTokenIdentifier":
		return j.UniqueTokenIdentifier, true
	case "TimeSinceInteractive":
		return j.TimeSinceInteractive, true
	}
	return "", false
}

// Render fills the {{Column}} placeholders of format from row. A
// placeholder naming no result column is left as written.
func Render(format string, row detect.Result) string {
	var b strings.Builder
	for {
		i := strings.Index(format, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(format[i+2:], "}}")
		if j < 0 {
			break
		}
		b.WriteString(format[:i])
		name := strings.TrimSpace(format[i+2 : i+2+j])
		if v, ok := Column(row, name); ok {
			b.WriteString(v)
		} else {
			b.WriteString(format[i : i+2+j+2])
		}
		format = format[i+2+j+2:]
	}
	b.WriteString(format)
	return b.String()
}

// Check reports columns the rule refers to that the query does not return
// (entity mappings, custom details, alert overrides and their placeholders),
// so a rule that would render empty alerts fails at start-up.
func Check(r *rule.Rule) error {
	var bad []string
	check := func(field, col string) {
		if col == "" {
			return
		}
		if _, ok := Column(detect.Result{}, col); !ok {
			bad = append(bad, fmt.Sprintf("%s: %q", field, col))
		}
	}
	for i, m := range r.EntityMappings {
		for j, fm := range m.FieldMappings {
			check(fmt.Sprintf("entityMappings[%d].fieldMappings[%d].columnName", i, j), fm.ColumnName)
		}
	}
	for _, kv := range r.CustomDetails {
		check("customDetails."+kv.Key, kv.Value)
	}
	ao := r.AlertDetailsOverride
	check("alertDetailsOverride.alertSeverityColumnName", ao.AlertSeverityColumnName)
	check("alertDetailsOverride.alertTacticsColumnName", ao.AlertTacticsColumnName)
	for field, f := range map[string]string{"alertDisplayNameFormat": ao.AlertDisplayNameFormat, "alertDescriptionFormat": ao.AlertDescriptionFormat} {
		for rest := f; ; {
			i := strings.Index(rest, "{{")
			j := strings.Index(rest[max(i, 0):], "}}")
			if i < 0 || j < 0 {
				break
			}
			check("alertDetailsOverride."+field, strings.TrimSpace(rest[i+2:i+j]))
			rest = rest[i+j+2:]
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("rule %s: not a result column (want one of %s): %s", r.File, strings.Join(detect.Columns, ", "), strings.Join(bad, "; "))
	}
	return nil
}

func isSeverity(s string) bool {
	return slices.Contains([]string{"Informational", "Low", "Medium", "High"}, s)
}
