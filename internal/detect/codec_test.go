package detect

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sampleRows runs the rule over sign-ins of two users (as the alert tests'
// sampleRecords): alice signs in single-factor from the US, then her token
// is refreshed from two foreign IPs (one of them twice, and once exported
// twice); bob's refresh comes exactly 1 minute after his sign-in. One
// refresh comes from alice's own IP (no pair).
func sampleRows(t *testing.T) []Result {
	t.Helper()
	interactive := []signin.Record{
		{TimeGenerated: at(t, "2024-05-01T08:00:00Z"), UserPrincipalName: "alice@contoso.com", IPAddress: "203.0.113.10", Location: "US",
			ResultType: "0", AuthenticationRequirement: "singleFactorAuthentication", AppDisplayName: "Office Home", Id: "i-alice-1"},
		{TimeGenerated: at(t, "2024-05-01T10:00:00Z"), UserPrincipalName: "bob@fabrikam.com", IPAddress: "203.0.113.44", Location: "GB",
			ResultType: "0", ConditionalAccessStatus: "notApplied", AppDisplayName: "Azure Portal", Id: "i-bob-1"},
	}
	ni := func(ts, upn, ip, loc, app, id string) signin.Record {
		return signin.Record{TimeGenerated: at(t, ts), UserPrincipalName: upn, IPAddress: ip, Location: loc, ResultType: "0",
			AppDisplayName: app, CorrelationId: "c-" + id, UniqueTokenIdentifier: "tok-" + id, Id: id}
	}
	noninteractive := []signin.Record{
		ni("2024-05-01T08:10:00.1234567Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Office", "n1"),
		ni("2024-05-01T08:40:00Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Teams", "n2"),
		ni("2024-05-01T09:00:00Z", "alice@contoso.com", "192.0.2.77", "NG", "Microsoft Office", "n3"),
		ni("2024-05-01T08:10:00.1234567Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Office", "n1"),
		ni("2024-05-01T08:20:00Z", "alice@contoso.com", "203.0.113.10", "US", "Microsoft Office", "n4"),
		ni("2024-05-01T10:01:00Z", "bob@fabrikam.com", "198.51.100.99", "FR", "Azure CLI", "n5"),
	}
	rows := Run(interactive, noninteractive, Filter{})
	if len(rows) != 4 {
		t.Fatalf("Run gave %d rows, want 4: %+v", len(rows), rows)
	}
	return rows
}

func TestMarshalResultColumns(t *testing.T) {
	rows := sampleRows(t)
	b, err := MarshalResult(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	// Keys exactly the 11 columns, in the query's order.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
		if _, ok := v.(string); !ok {
			t.Errorf("column %s is %T, want a string", k, v)
		}
	}
	if !reflect.DeepEqual(keys, Columns) {
		t.Errorf("keys = %q, want %q", keys, Columns)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	want := map[string]string{
		"NISignInTime": "2024-05-01T08:10:00.1234567Z", "InteractiveTime": "2024-05-01T08:00:00Z",
		"UserPrincipalName": r.UserPrincipalName, "AppDisplayName": "Microsoft Office", "NIIPAddress": "198.51.100.20",
		"NICountry": "RU", "InteractiveIP": "203.0.113.10", "InteractiveCountry": "US",
		"CorrelationId": "c-n1", "UniqueTokenIdentifier": "tok-n1", "TimeSinceInteractive": "00:10:00.1234567",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("row = %v\nwant %v", m, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	rows := sampleRows(t)
	rows[1].AppDisplayName = "Teams <preview> & Office"
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Teams <preview> & Office"`) {
		t.Errorf("JSONL escapes text: %s", buf.String())
	}
	if n := strings.Count(buf.String(), "\n"); n != len(rows) {
		t.Fatalf("%d lines for %d rows", n, len(rows))
	}
	back, err := ReadJSONL("rows.jsonl", &buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		want := rows[i]
		want.InteractiveId, want.NonInteractiveId = "", "" // not columns
		if !reflect.DeepEqual(back[i], want) {
			t.Errorf("row %d = %+v\nwant %+v", i, back[i], want)
		}
	}
	_, err = ReadJSONL("bad.jsonl", strings.NewReader(`{"NISignInTime":"2024-05-01T08:10:00Z","InteractiveTime":"2024-05-01T08:00:00Z","TimeSinceInteractive":"10 minutes"}`))
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") || !strings.Contains(err.Error(), "TimeSinceInteractive") {
		t.Errorf("bad timespan: err = %v, want file, line and column", err)
	}
	_, err = ReadJSONL("bad.jsonl", strings.NewReader("\n{\"Extra\":1}\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") || !strings.Contains(err.Error(), "Extra") {
		t.Errorf("unknown key: err = %v, want file, line and key", err)
	}
}

// Two objects on one line are an error, not one row with the other lost.
func TestReadJSONLRejectsTwoObjectsOnALine(t *testing.T) {
	var b strings.Builder
	row := Result{NISignInTime: time.Date(2026, 11, 20, 10, 45, 0, 0, time.UTC), InteractiveTime: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		UserPrincipalName: "pivot@contoso.com", NIIPAddress: "91.200.1.1", NICountry: "RU", InteractiveIP: "20.1.1.1", InteractiveCountry: "US",
		TimeSinceInteractive: 45 * time.Minute}
	if err := WriteJSONL(&b, []Result{row, row}); err != nil {
		t.Fatal(err)
	}
	joined := strings.Replace(b.String(), "\n", "", 1)
	if _, err := ReadJSONL("expected.jsonl", strings.NewReader(joined)); err == nil || !strings.Contains(err.Error(), "expected.jsonl:1") {
		t.Fatalf("ReadJSONL of two objects on one line: %v, want an error naming line 1", err)
	}
	if rows, err := ReadJSONL("expected.jsonl", strings.NewReader(b.String())); err != nil || len(rows) != 2 {
		t.Fatalf("two lines: %d rows, %v", len(rows), err)
	}
}
