// Package alert turns the rule's result rows into alert documents shaped like
// Sentinel's SecurityAlert, groups alerts into incidents as the rule's
// incidentConfiguration says, and stores both idempotently in blob storage.
//
// document.go is the alert document and its stored JSON form; grouping.go
// builds alerts from rows (ids, row keys); render.go fills a document from
// the rule (alertDetailsOverride, entities, custom details). The result
// row's own codec is detect's.
package alert

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
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
	// Precision is the precision mode's record of the evidence (nil in
	// exact mode: precision.go).
	Precision *Precision `json:"Precision,omitempty"`
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
		return fmt.Errorf(`the "Custom Details" property: want an object`)
	}
	var out CustomDetails
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf(`the "Custom Details" property: %v`, err)
		}
		var vs []string
		if err := dec.Decode(&vs); err != nil {
			return fmt.Errorf(`the "Custom Details" property %q: %v`, t, err)
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
// objects and their Ids. UnmarshalJSON reads it; MarshalJSON writes the same
// bytes in parts.
type documentJSON struct {
	documentFields
	// Results are detect.AppendJSON objects, read by
	// detect.UnmarshalResultLenient.
	Results   []json.RawMessage `json:"Results"`
	ResultIds []ResultIds       `json:"ResultIds"`
	// ResultKeys is Document.keys, only when ResultsTruncated.
	ResultKeys string `json:"ResultKeys,omitempty"`
}

// documentFields has Document's fields without its methods (no recursion).
type documentFields Document

// MarshalJSON writes the document with its Results as objects.
func (d Document) MarshalJSON() ([]byte, error) {
	// The bytes of documentJSON, written in three parts so that the rows'
	// objects (detect.AppendJSON) are copied once, not re-scanned as
	// json.RawMessage: the fields, then Results, then the Ids and keys.
	f := documentFields(d)
	f.TimeGenerated, f.StartTime, f.EndTime = d.TimeGenerated.UTC(), d.StartTime.UTC(), d.EndTime.UTC()
	head, err := marshal(f, "")
	if err != nil {
		return nil, err
	}
	tail := documentTail{ResultIds: make([]ResultIds, 0, len(d.Results))}
	for _, r := range d.Results {
		tail.ResultIds = append(tail.ResultIds, ResultIds{r.InteractiveId, r.NonInteractiveId})
	}
	if len(d.keys) > 0 {
		raw := make([]byte, 0, len(d.keys)*len(rowHash{}))
		for _, k := range d.keys {
			raw = append(raw, k[:]...)
		}
		tail.ResultKeys = base64.StdEncoding.EncodeToString(raw)
	}
	rest, err := marshal(tail, "")
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+len(rest)+len(d.Results)*400+16)
	out = append(out, head[:len(head)-1]...) // without its '}'
	out = append(out, `,"Results":[`...)
	for i, r := range d.Results {
		if i > 0 {
			out = append(out, ',')
		}
		out = detect.AppendJSON(out, r)
	}
	out = append(out, "],"...)
	return append(out, rest[1:]...), nil // without its '{'
}

// documentTail is documentJSON's fields after Results.
type documentTail struct {
	ResultIds  []ResultIds `json:"ResultIds"`
	ResultKeys string      `json:"ResultKeys,omitempty"`
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
		r, err := detect.UnmarshalResultLenient(rj)
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
	return d.mergePrecision(other.Precision) || changed
}
