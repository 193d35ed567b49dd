package alert

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
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
	// Revision counts the stored versions of the alert: 1 when created, one
	// more each time the stored document changes (Writer sets it).
	Revision int `json:"Revision"`
	// ResultsTruncated is set once the alert has more than MaxEvidenceRows
	// distinct evidence rows: Results then keeps the first and the last
	// MaxEvidenceRows/2 in query order, and ResultsOmitted counts the rest
	// (ExtendedProperties.ResultCount stays the exact total).
	ResultsTruncated bool `json:"ResultsTruncated"`
	ResultsOmitted   int  `json:"ResultsOmitted"`
	// Results are the evidence rows, deduplicated and in query order. In JSON
	// each is an object of the 11 result columns; the two source rows' Ids,
	// which dedup them, travel in ResultIds (same order).
	Results []detect.Result `json:"-"`
	// keys hold, only when truncated, the rowHash of every distinct evidence
	// row ever merged, sorted: a redelivered row that is no longer in Results
	// must still count once. In JSON: ResultKeys, base64 of the concatenation.
	//
	// Trade-off: the count stays exact, so this grows with the evidence, but
	// at 16 bytes a row (about 22 in base64) against ~450 for a kept row: a
	// 40k-row alert stores ~0.9 MB of keys instead of ~18 MB of rows. A
	// 128-bit SHA-256 prefix collides with odds ~2^-64 at 2^32 rows.
	keys []rowHash
}

// MaxEvidenceRows bounds the evidence rows an alert document keeps (see
// Document.ResultsTruncated).
const MaxEvidenceRows = 1000

// rowHash is a 16-byte SHA-256 prefix of a rowKey.
type rowHash [16]byte

func hashRow(r detect.Result) rowHash {
	sum := sha256.Sum256([]byte(rowKey(r)))
	return rowHash(sum[:16])
}

func compareHash(a, b rowHash) int { return bytes.Compare(a[:], b[:]) }

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

// addAll adds the values not there yet, keeping them sorted (so that
// merging evidence in any order gives the same document): one sort per
// call, not an insert per value.
func (c *CustomDetail) addAll(vs []string) bool {
	n := len(c.Values)
	c.Values = c.Values[:n:n] // appends copy: Values may be shared
	for _, v := range vs {
		if _, found := slices.BinarySearch(c.Values[:n], v); !found {
			c.Values = append(c.Values, v)
		}
	}
	if len(c.Values) == n {
		return false
	}
	slices.Sort(c.Values)
	c.Values = slices.Compact(c.Values)
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
	// ResultKeys is Document.keys, only when ResultsTruncated.
	ResultKeys string `json:"ResultKeys,omitempty"`
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
	if len(d.keys) > 0 {
		raw := make([]byte, 0, len(d.keys)*len(rowHash{}))
		for _, k := range d.keys {
			raw = append(raw, k[:]...)
		}
		j.ResultKeys = base64.StdEncoding.EncodeToString(raw)
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
	// The counts and keys must agree, or merging would count wrongly: such a
	// document does not parse (and the Writer rebuilds it).
	raw, err := base64.StdEncoding.DecodeString(j.ResultKeys)
	if err != nil || len(raw)%len(rowHash{}) != 0 {
		return fmt.Errorf("alert %s: ResultKeys is not base64 of 16-byte keys", j.SystemAlertId)
	}
	d.keys = nil
	for len(raw) > 0 {
		d.keys = append(d.keys, rowHash(raw[:16]))
		raw = raw[16:]
	}
	want := len(d.Results)
	if d.ResultsTruncated {
		want = len(d.keys)
		if d.ResultsOmitted != want-len(d.Results) || !slices.IsSortedFunc(d.keys, compareHash) {
			return fmt.Errorf("alert %s: ResultsOmitted %d, %d Results and %d ResultKeys disagree", j.SystemAlertId, d.ResultsOmitted, len(d.Results), len(d.keys))
		}
	} else if len(d.keys) > 0 || d.ResultsOmitted != 0 {
		return fmt.Errorf("alert %s: ResultKeys or ResultsOmitted without ResultsTruncated", j.SystemAlertId)
	}
	if d.ExtendedProperties.ResultCount != want {
		return fmt.Errorf("alert %s: result count %d, want %d", j.SystemAlertId, d.ExtendedProperties.ResultCount, want)
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
	// A position id (a row without Id) is not part of the alert's identity:
	// the same sign-in exported twice is one alert with both rows as evidence.
	if r.InteractiveId != "" && !signin.IsPositionId(r.InteractiveId) {
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
// A position id names a place in a blob, whose content a rewrite can
// change, so with one the row's content is part of the key too.
func rowKey(r detect.Result) string {
	if r.InteractiveId != "" && r.NonInteractiveId != "" {
		ids := "ids:" + r.InteractiveId + "\x00" + r.NonInteractiveId
		if !signin.IsPositionId(r.InteractiveId) && !signin.IsPositionId(r.NonInteractiveId) {
			return ids
		}
		return ids + "\x00" + rowContent(r)
	}
	return "row:" + rowContent(r)
}

func rowContent(r detect.Result) string {
	j := toJSON(r)
	return strings.Join([]string{j.NISignInTime, j.InteractiveTime, j.UserPrincipalName, j.AppDisplayName,
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
// order of their first row. The cost is linear in the rows (plus one sort):
// rows dedup through a set of row keys, never a scan of the evidence.
func Group(r *rule.Rule, rows []detect.Result, perRow bool) []Document {
	// Rows in query order first, so that each alert renders from its
	// earliest row whatever order the rows came in, and its evidence is
	// appended already sorted.
	rows = slices.Clone(rows)
	detect.Sort(rows)
	type acc struct {
		rows []detect.Result
		keys []rowHash
		seen map[rowHash]struct{}
	}
	byID := map[string]*acc{}
	var order []string
	for _, row := range rows {
		id := AlertID(r.ID, row)
		if perRow {
			id = rowAlertID(r.ID, row)
		}
		a, ok := byID[id]
		if !ok {
			a = &acc{seen: map[rowHash]struct{}{}}
			byID[id] = a
			order = append(order, id)
		}
		k := hashRow(row)
		if _, dup := a.seen[k]; dup {
			continue
		}
		a.seen[k] = struct{}{}
		a.rows = append(a.rows, row)
		a.keys = append(a.keys, k)
	}
	out := make([]Document, 0, len(order))
	for _, id := range order {
		a := byID[id]
		out = append(out, *newDocument(r, id, a.rows, a.keys))
	}
	slices.SortStableFunc(out, func(a, b Document) int {
		return cmp.Or(detect.Compare(a.Results[0], b.Results[0]), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	return out
}

// newDocument builds alert id from its distinct evidence rows (in query
// order, with their keys), rendering the rule's alertDetailsOverride from
// the first row (as Sentinel renders from the first row).
func newDocument(r *rule.Rule, id string, rows []detect.Result, keys []rowHash) *Document {
	row := rows[0]
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
	ents := entitySet{}
	values := make([][]string, len(r.CustomDetails))
	for _, row := range rows {
		d.widen(row.InteractiveTime, row.NISignInTime)
		j := toJSON(row)
		for _, e := range entitiesOf(r, j) {
			d.addEntity(ents, e)
		}
		for i, kv := range r.CustomDetails {
			if v, ok := j.column(kv.Value); ok {
				values[i] = append(values[i], v)
			}
		}
	}
	for i, kv := range r.CustomDetails {
		cd := CustomDetail{Key: kv.Key}
		cd.addAll(values[i])
		d.ExtendedProperties.CustomDetails = append(d.ExtendedProperties.CustomDetails, cd)
	}
	d.setEvidence(rows, keys)
	return d
}

// widen extends the alert's times to cover an evidence row (or another
// alert's StartTime and EndTime).
func (d *Document) widen(start, end time.Time) bool {
	changed := false
	if t := start.UTC(); d.StartTime.IsZero() || t.Before(d.StartTime) {
		d.StartTime, changed = t, true
	}
	if t := end.UTC(); t.After(d.EndTime) {
		d.EndTime, changed = t, true
	}
	if d.EndTime.After(d.TimeGenerated) {
		d.TimeGenerated, changed = d.EndTime, true
	}
	return changed
}

// setEvidence sets the evidence to rows (distinct, in query order) out of
// all distinct rows ever merged (their keys): the first and last
// MaxEvidenceRows/2 rows are kept and the rest counted. Keeping the ends of
// the query order makes the kept set a function of the set of all rows, so
// merging in any order gives the same document: a row outside the ends of a
// subset is outside the ends of every superset.
func (d *Document) setEvidence(rows []detect.Result, all []rowHash) {
	d.ExtendedProperties.ResultCount = len(all)
	if len(all) <= MaxEvidenceRows {
		d.Results, d.keys = rows, nil
		d.ResultsTruncated, d.ResultsOmitted = false, 0
		return
	}
	if len(rows) > MaxEvidenceRows {
		head := MaxEvidenceRows / 2
		tail := MaxEvidenceRows - head
		rows = append(rows[:head:head], rows[len(rows)-tail:]...)
	}
	all = slices.Clone(all)
	slices.SortFunc(all, compareHash)
	d.Results, d.keys = rows, all
	d.ResultsTruncated, d.ResultsOmitted = true, len(all)-len(rows)
}

// rowKeys are the keys of every distinct evidence row the alert has seen.
func (d *Document) rowKeys() []rowHash {
	if d.keys != nil {
		return d.keys
	}
	out := make([]rowHash, len(d.Results))
	for i, r := range d.Results {
		out[i] = hashRow(r)
	}
	return out
}

// entitySet holds the keys of an entity list, for linear-time merges.
type entitySet map[string]struct{}

func newEntitySet(es []Entity) entitySet {
	s := make(entitySet, len(es))
	for _, e := range es {
		s[e.key()] = struct{}{}
	}
	return s
}

// addEntity appends e unless an entity with the same identifiers is there
// (set holds the keys of d.Entities).
func (d *Document) addEntity(set entitySet, e Entity) bool {
	k := e.key()
	if _, ok := set[k]; ok {
		return false
	}
	set[k] = struct{}{}
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
// from the first row (names, severity) stay as d has them. It costs one
// pass over both alerts' row keys (a set built once) and one sort, so a
// 40k-row alert merges in milliseconds; the count stays exact when rows
// were truncated, through the kept row keys.
func (d *Document) Merge(other Document) bool {
	changed := false
	// d may share its slices with a copy (a caller's batch): never write
	// into their backing arrays.
	d.Entities = slices.Clip(d.Entities)
	d.ExtendedProperties.CustomDetails = slices.Clone(d.ExtendedProperties.CustomDetails)
	have := d.rowKeys()
	seen := make(map[rowHash]struct{}, len(have))
	for _, k := range have {
		seen[k] = struct{}{}
	}
	var rows []detect.Result
	var keys []rowHash
	for _, row := range other.Results {
		k := hashRow(row)
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			rows, keys = append(rows, row), append(keys, k)
		}
	}
	for _, k := range other.keys { // rows other counted but no longer holds
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		rows = append(slices.Clone(d.Results), rows...)
		detect.Sort(rows)
		d.setEvidence(rows, append(slices.Clone(have), keys...))
		changed = true
	}
	if len(other.Results) > 0 && d.widen(other.StartTime, other.EndTime) {
		changed = true
	}
	ents := newEntitySet(d.Entities)
	for _, e := range other.Entities {
		changed = d.addEntity(ents, e) || changed
	}
	for _, ocd := range other.ExtendedProperties.CustomDetails {
		i := slices.IndexFunc(d.ExtendedProperties.CustomDetails, func(c CustomDetail) bool { return c.Key == ocd.Key })
		if i < 0 {
			d.ExtendedProperties.CustomDetails = append(d.ExtendedProperties.CustomDetails, CustomDetail{Key: ocd.Key})
			i = len(d.ExtendedProperties.CustomDetails) - 1
			changed = true
		}
		changed = d.ExtendedProperties.CustomDetails[i].addAll(ocd.Values) || changed
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
func entitiesOf(r *rule.Rule, row resultJSON) []Entity {
	var out []Entity
	for _, m := range r.EntityMappings {
		e := Entity{"Type": strings.ToLower(m.EntityType)}
		empty := true
		for _, fm := range m.FieldMappings {
			v, _ := row.column(fm.ColumnName)
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
func Column(r detect.Result, name string) (string, bool) { return toJSON(r).column(name) }

func (j resultJSON) column(name string) (string, bool) {
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
