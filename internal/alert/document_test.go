package alert

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

func TestDocumentJSON(t *testing.T) {
	docs := Group(rule.Default(), sampleRows(t), false)
	b, err := json.Marshal(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var results []map[string]string
	if err := json.Unmarshal(raw["Results"], &results); err != nil {
		t.Fatalf("Results is not an array of objects: %s", raw["Results"])
	}
	if len(results) != 2 || len(results[0]) != 11 || results[1]["AppDisplayName"] != "Microsoft Teams" || results[0]["TimeSinceInteractive"] != "00:10:00.1234567" {
		t.Errorf("Results = %v", results)
	}
	for _, k := range []string{"TimeGenerated", "DisplayName", "AlertName", "AlertSeverity", "Description", "ProviderName", "SystemAlertId", "Tactics", "Techniques", "Entities", "ExtendedProperties", "StartTime", "EndTime", "RuleId", "RuleVersion"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %s in %s", k, b)
		}
	}
	if !strings.Contains(string(raw["ExtendedProperties"]), `"Custom Details":{"InteractiveIP":["203.0.113.10"],"InteractiveCountry":["US"],"NonInteractiveCountry":["RU"],"AppDisplayName":["Microsoft Office","Microsoft Teams"]}`) {
		t.Errorf("Custom Details not in rule order: %s", raw["ExtendedProperties"])
	}
	var back Document
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, docs[0]) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back, docs[0])
	}
}

func TestMerge(t *testing.T) {
	r := rule.Default()
	rows := sampleRows(t)
	all := Group(r, rows, false)[0]
	first := Group(r, rows[1:2], false)[0] // alice's second refresh only
	second := Group(r, rows[0:1], false)[0]
	if first.SystemAlertId != all.SystemAlertId || second.SystemAlertId != all.SystemAlertId {
		t.Fatal("the same (user, sign-in, IP) must give the same alert id")
	}
	if !first.Merge(second) {
		t.Fatal("Merge of new evidence reported no change")
	}
	if !reflect.DeepEqual(first, all) {
		t.Errorf("merged = %+v\nwant %+v", first, all)
	}
	if first.Merge(second) || first.Merge(all) {
		t.Error("merging evidence already held reported a change")
	}
}

// A replayed token gives one alert tens of thousands of rows: the document
// keeps the first and last rows in query order and counts the rest exactly,
// however the rows arrive and however often.
func TestMergeLargeAlert(t *testing.T) {
	r := rule.Default()
	sizes := []int{999, 1000, 1001, 20000, 40000}
	if testing.Short() {
		sizes = sizes[:4] // 20000 already omits rows
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := stormRows(0, 1, n)
			want := Group(r, rows, false)
			if len(want) != 1 {
				t.Fatalf("%d alerts, want 1", len(want))
			}
			a := want[0]
			sorted := slices.Clone(rows)
			detect.Sort(sorted)
			kept := sorted
			if n > MaxEvidenceRows {
				kept = append(slices.Clone(sorted[:MaxEvidenceRows/2]), sorted[n-MaxEvidenceRows/2:]...)
			}
			if a.ExtendedProperties.ResultCount != n || a.ResultsTruncated != (n > MaxEvidenceRows) ||
				a.ResultsOmitted != n-len(kept) || !reflect.DeepEqual(a.Results, kept) {
				t.Fatalf("ResultCount %d, truncated %v, omitted %d, %d rows; want %d, %v, %d, %d",
					a.ExtendedProperties.ResultCount, a.ResultsTruncated, a.ResultsOmitted, len(a.Results), n, n > MaxEvidenceRows, n-len(kept), len(kept))
			}
			if !a.StartTime.Equal(sorted[0].InteractiveTime) || !a.EndTime.Equal(slices.MaxFunc(rows, func(x, y detect.Result) int { return x.NISignInTime.Compare(y.NISignInTime) }).NISignInTime) {
				t.Errorf("times %v..%v do not span the omitted rows", a.StartTime, a.EndTime)
			}
			// Rows arrive in 7 shuffled parts, each stored and read back (the
			// round trip keeps the keys), then every row is redelivered.
			rng := rand.New(rand.NewPCG(uint64(n), 3))
			shuffled := slices.Clone(rows)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			var got Document
			for p := range 7 {
				part := Group(r, shuffled[p*n/7:(p+1)*n/7], false)[0]
				if p == 0 {
					got = part
				} else if !got.Merge(part) {
					t.Fatalf("part %d: Merge of new rows reported no change", p)
				}
				b, err := json.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				got = Document{}
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
			}
			if got.Merge(Group(r, rows, false)[0]) {
				t.Error("redelivering every row changed the alert")
			}
			for _, row := range rows[:20] {
				if got.Merge(Group(r, []detect.Result{row}, false)[0]) {
					t.Fatal("redelivering one row changed the alert")
				}
			}
			if !reflect.DeepEqual(got, a) {
				t.Errorf("merged in parts: count %d, %d rows; want the alert of all rows (%d, %d)",
					got.ExtendedProperties.ResultCount, len(got.Results), n, len(kept))
			}
		})
	}
}

func TestTruncatedDocumentMustAgree(t *testing.T) {
	a := Group(rule.Default(), stormRows(0, 1, 1500), false)[0]
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["ResultsTruncated"]) != "true" || string(raw["ResultsOmitted"]) != "500" || len(raw["ResultKeys"]) != 1500*16/3*4+2 { // base64 of 16 bytes a row, quoted
		t.Fatalf("ResultsTruncated %s, ResultsOmitted %s, %d bytes of ResultKeys", raw["ResultsTruncated"], raw["ResultsOmitted"], len(raw["ResultKeys"]))
	}
	for name, edit := range map[string][2]string{
		"omitted":  {`"ResultsOmitted":500`, `"ResultsOmitted":499`},
		"count":    {`"Search Query Results Overall Count":1500`, `"Search Query Results Overall Count":1000`},
		"keys":     {`"ResultKeys":"`, `"ResultKeys":"!`},
		"untagged": {`"ResultsTruncated":true`, `"ResultsTruncated":false`},
	} {
		bad := strings.Replace(string(b), edit[0], edit[1], 1)
		if bad == string(b) {
			t.Fatalf("%s: %s not in the document", name, edit[0])
		}
		var d Document
		if err := json.Unmarshal([]byte(bad), &d); err == nil || !strings.Contains(err.Error(), a.SystemAlertId) {
			t.Errorf("%s: Unmarshal = %v, want an error naming the alert", name, err)
		}
	}
}
