package sentinel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxField is the most bytes a record's field may hold: the service
// truncates fields over 64 KB, so Results is cut to fit (ResultsTruncated)
// and long strings are shortened, never truncated mid-JSON by the service.
const MaxField = 64000

// Record is one row of the table: one alert revision. Its JSON keys are
// exactly Columns, in order.
type Record struct {
	TimeGenerated      time.Time         `json:"TimeGenerated"`
	AlertId            string            `json:"AlertId"`
	Revision           int               `json:"Revision"`
	IncidentId         string            `json:"IncidentId"`
	AlertName          string            `json:"AlertName"`
	Description        string            `json:"Description"`
	Severity           string            `json:"Severity"`
	Tactics            string            `json:"Tactics"`
	Techniques         []string          `json:"Techniques"`
	UserPrincipalName  string            `json:"UserPrincipalName"`
	NIIPAddress        string            `json:"NIIPAddress"`
	NICountry          string            `json:"NICountry"`
	InteractiveIP      string            `json:"InteractiveIP"`
	InteractiveCountry string            `json:"InteractiveCountry"`
	AppDisplayName     string            `json:"AppDisplayName"`
	StartTime          time.Time         `json:"StartTime"`
	EndTime            time.Time         `json:"EndTime"`
	ResultCount        int               `json:"ResultCount"`
	Results            []json.RawMessage `json:"Results"`
	ResultsTruncated   bool              `json:"ResultsTruncated"`
	RuleId             string            `json:"RuleId"`
	RuleVersion        string            `json:"RuleVersion"`
}

// document is the part of an alert document (internal/alert, as stored)
// a record is made of.
type document struct {
	SystemAlertId      string
	Revision           int
	IncidentId         string
	AlertName          string
	DisplayName        string
	Description        string
	AlertSeverity      string
	Tactics            string
	Techniques         []string
	StartTime, EndTime time.Time
	RuleId             string
	RuleVersion        string
	ResultsTruncated   bool
	ExtendedProperties struct {
		ResultCount int `json:"Search Query Results Overall Count"`
	}
	Results []json.RawMessage
}

// row is the part of a result row a record summarises.
type row struct {
	UserPrincipalName, NIIPAddress, NICountry, InteractiveIP, InteractiveCountry, AppDisplayName string
}

// NewRecord makes the record of an alert document (its stored JSON), sent
// at now. Account, IPs and interactive country are the first evidence row's
// (an alert is one account, interactive sign-in and NI IP); NICountry and
// AppDisplayName list the distinct values of the rows kept, comma-joined.
func NewRecord(doc []byte, now time.Time) (Record, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return Record{}, fmt.Errorf("alert document: %w", err)
	}
	if d.SystemAlertId == "" {
		return Record{}, errors.New("alert document has no SystemAlertId")
	}
	r := Record{
		TimeGenerated: now.UTC(), AlertId: d.SystemAlertId, Revision: d.Revision, IncidentId: d.IncidentId,
		AlertName: cutString(cmpOr(d.AlertName, d.DisplayName)), Description: cutString(d.Description),
		Severity: d.AlertSeverity, Tactics: d.Tactics, Techniques: d.Techniques,
		StartTime: d.StartTime.UTC(), EndTime: d.EndTime.UTC(), ResultCount: d.ExtendedProperties.ResultCount,
		ResultsTruncated: d.ResultsTruncated, RuleId: d.RuleId, RuleVersion: d.RuleVersion,
	}
	if r.Techniques == nil {
		r.Techniques = []string{}
	}
	var countries, apps []string
	for i, raw := range d.Results {
		var x row
		if err := json.Unmarshal(raw, &x); err != nil {
			return Record{}, fmt.Errorf("alert %s: Results[%d]: %w", d.SystemAlertId, i, err)
		}
		if i == 0 {
			r.UserPrincipalName, r.NIIPAddress, r.InteractiveIP, r.InteractiveCountry = x.UserPrincipalName, x.NIIPAddress, x.InteractiveIP, x.InteractiveCountry
		}
		if !slices.Contains(countries, x.NICountry) {
			countries = append(countries, x.NICountry)
		}
		if !slices.Contains(apps, x.AppDisplayName) {
			apps = append(apps, x.AppDisplayName)
		}
	}
	r.NICountry, r.AppDisplayName = cutString(strings.Join(countries, ",")), cutString(strings.Join(apps, ","))
	// Results: as many rows as fit in MaxField (the array's JSON).
	size := 2
	r.Results = []json.RawMessage{}
	for _, raw := range d.Results {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return Record{}, err
		}
		if size+b.Len()+1 > MaxField {
			r.ResultsTruncated = true
			break
		}
		size += b.Len() + 1
		r.Results = append(r.Results, b.Bytes())
	}
	return r, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// cutString shortens s to at most MaxField/2 bytes of JSON-safe UTF-8 (its
// escaped form stays under MaxField for ordinary text).
func cutString(s string) string {
	const limit = MaxField / 2
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// MaxCall is the most bytes one Logs Ingestion call may carry, compressed
// and uncompressed (the documented limit is 1 MB).
const MaxCall = 1_000_000

// batches splits encoded records into JSON arrays of at most maxBytes each,
// in order; it returns, for each batch, the indexes of its records. A record
// over maxBytes alone is reported in tooBig.
func batches(recs [][]byte, maxBytes int) (out [][]int, tooBig []int) {
	var cur []int
	size := 2 // []
	for i, r := range recs {
		if len(r)+2 > maxBytes {
			tooBig = append(tooBig, i)
			continue
		}
		add := len(r)
		if len(cur) > 0 {
			add++ // comma
		}
		if size+add > maxBytes {
			out = append(out, cur)
			cur, size, add = nil, 2, len(r)
		}
		cur = append(cur, i)
		size += add
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, tooBig
}

// joinArray is the JSON array of the records named by idx.
func joinArray(recs [][]byte, idx []int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for k, i := range idx {
		if k > 0 {
			b.WriteByte(',')
		}
		b.Write(recs[i])
	}
	b.WriteByte(']')
	return b.Bytes()
}
