package alert

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
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

// sampleRecords are sign-ins of two users: alice signs in single-factor
// from the US, then her token is refreshed from two foreign IPs (one of them
// twice, and once exported twice); bob's refresh comes exactly 1 minute
// after his sign-in. One refresh comes from alice's own IP (no pair).
func sampleRecords(t *testing.T) (interactive, noninteractive []signin.Record) {
	interactive = []signin.Record{
		{TimeGenerated: at(t, "2024-05-01T08:00:00Z"), UserPrincipalName: "alice@contoso.com", IPAddress: "203.0.113.10", Location: "US",
			ResultType: "0", AuthenticationRequirement: "singleFactorAuthentication", AppDisplayName: "Office Home", Id: "i-alice-1"},
		{TimeGenerated: at(t, "2024-05-01T10:00:00Z"), UserPrincipalName: "bob@fabrikam.com", IPAddress: "203.0.113.44", Location: "GB",
			ResultType: "0", ConditionalAccessStatus: "notApplied", AppDisplayName: "Azure Portal", Id: "i-bob-1"},
	}
	ni := func(ts, upn, ip, loc, app, id string) signin.Record {
		return signin.Record{TimeGenerated: at(t, ts), UserPrincipalName: upn, IPAddress: ip, Location: loc, ResultType: "0",
			AppDisplayName: app, CorrelationId: "c-" + id, UniqueTokenIdentifier: "tok-" + id, Id: id}
	}
	noninteractive = []signin.Record{
		ni("2024-05-01T08:10:00.1234567Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Office", "n1"),
		ni("2024-05-01T08:40:00Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Teams", "n2"),
		ni("2024-05-01T09:00:00Z", "alice@contoso.com", "192.0.2.77", "NG", "Microsoft Office", "n3"),
		ni("2024-05-01T08:10:00.1234567Z", "alice@contoso.com", "198.51.100.20", "RU", "Microsoft Office", "n1"),
		ni("2024-05-01T08:20:00Z", "alice@contoso.com", "203.0.113.10", "US", "Microsoft Office", "n4"),
		ni("2024-05-01T10:01:00Z", "bob@fabrikam.com", "198.51.100.99", "FR", "Azure CLI", "n5"),
	}
	return interactive, noninteractive
}

// sampleRows runs the real rule over sampleRecords.
func sampleRows(t *testing.T) []detect.Result {
	t.Helper()
	i, n := sampleRecords(t)
	rows := detect.Run(i, n, detect.Filter{})
	if len(rows) != 4 {
		t.Fatalf("detect.Run gave %d rows, want 4: %+v", len(rows), rows)
	}
	return rows
}

func TestGroup(t *testing.T) {
	r := rule.Default()
	rows := sampleRows(t)
	docs := Group(r, rows, false)
	if len(docs) != 3 {
		t.Fatalf("%d alerts, want 3 (alice x 2 IPs, bob)", len(docs))
	}
	a := docs[0]
	if want := AlertID(r.ID, rows[0]); a.SystemAlertId != want {
		t.Errorf("SystemAlertId = %s, want %s", a.SystemAlertId, want)
	}
	if len(a.SystemAlertId) != 36 || strings.Count(a.SystemAlertId, "-") != 4 {
		t.Errorf("SystemAlertId %q is not GUID-shaped", a.SystemAlertId)
	}
	if a.DisplayName != "Token Pivot - alice@contoso.com NI token from 198.51.100.20 after interactive auth" || a.AlertName != a.DisplayName {
		t.Errorf("DisplayName = %q", a.DisplayName)
	}
	if a.Description != "User alice@contoso.com used a non-interactive token from 198.51.100.20 within 2 hours of interactive auth from 203.0.113.10. Possible token theft." {
		t.Errorf("Description = %q", a.Description)
	}
	if a.AlertSeverity != "High" || a.Tactics != "CredentialAccess,LateralMovement,DefenseEvasion" ||
		!reflect.DeepEqual(a.Techniques, []string{"T1528", "T1539", "T1078"}) || a.Status != "New" ||
		a.ProviderName != "tokenpivot" || a.RuleId != r.ID || a.RuleVersion != "1.0.0" || a.AlertType != r.ID {
		t.Errorf("metadata = %+v", a)
	}
	if len(a.Results) != 2 || a.Results[0].NonInteractiveId != "n1" || a.Results[1].NonInteractiveId != "n2" {
		t.Errorf("Results = %+v, want n1 then n2", a.Results)
	}
	if !a.StartTime.Equal(at(t, "2024-05-01T08:00:00Z")) || !a.EndTime.Equal(at(t, "2024-05-01T08:40:00Z")) || !a.TimeGenerated.Equal(a.EndTime) {
		t.Errorf("times = %v %v %v", a.StartTime, a.EndTime, a.TimeGenerated)
	}
	wantEntities := []Entity{
		{"$id": "1", "Type": "account", "FullName": "alice@contoso.com", "Name": "alice", "UPNSuffix": "contoso.com"},
		{"$id": "2", "Type": "ip", "Address": "198.51.100.20"},
	}
	if !reflect.DeepEqual(a.Entities, wantEntities) {
		t.Errorf("Entities = %v", a.Entities)
	}
	wantDetails := CustomDetails{
		{"InteractiveIP", []string{"203.0.113.10"}},
		{"InteractiveCountry", []string{"US"}},
		{"NonInteractiveCountry", []string{"RU"}},
		{"AppDisplayName", []string{"Microsoft Office", "Microsoft Teams"}},
	}
	if !reflect.DeepEqual(a.ExtendedProperties.CustomDetails, wantDetails) || a.ExtendedProperties.ResultCount != 2 ||
		a.ExtendedProperties.QueryPeriod != "03:00:00" || !reflect.DeepEqual(a.ExtendedProperties.AnalyticRuleIds, []string{r.ID}) {
		t.Errorf("ExtendedProperties = %+v", a.ExtendedProperties)
	}
	if docs[1].Entities[1]["Address"] != "192.0.2.77" || docs[2].Entities[0]["FullName"] != "bob@fabrikam.com" {
		t.Errorf("alert order: %s, %s", docs[1].DisplayName, docs[2].DisplayName)
	}

	// Duplicated and shuffled input gives the same alerts.
	again := append(append([]detect.Result{}, rows[3], rows[1]), rows...)
	if got := Group(r, again, false); !reflect.DeepEqual(got, docs) {
		t.Errorf("Group over duplicated rows differs")
	}

	perRow := Group(r, rows, true)
	if len(perRow) != 4 {
		t.Fatalf("perRow: %d alerts, want 4", len(perRow))
	}
	ids := map[string]bool{}
	for _, d := range perRow {
		ids[d.SystemAlertId] = true
		if len(d.Results) != 1 {
			t.Errorf("perRow alert has %d rows", len(d.Results))
		}
	}
	if len(ids) != 4 || ids[docs[0].SystemAlertId] {
		t.Errorf("perRow ids not distinct from each other and the grouped ids: %v", ids)
	}
}

func TestAlertIDWithoutIds(t *testing.T) {
	rows := sampleRows(t)
	r := rows[0]
	noIds := r
	noIds.InteractiveId, noIds.NonInteractiveId = "", ""
	if AlertID("rule", r) == AlertID("rule", noIds) {
		t.Error("an Id-less row must fall back to time+IP, not share the Id-based key")
	}
	later := noIds
	later.NISignInTime = later.NISignInTime.Add(time.Minute)
	if AlertID("rule", noIds) != AlertID("rule", later) {
		t.Error("the alert id must not depend on the non-interactive row")
	}
	otherIP := noIds
	otherIP.InteractiveIP = "203.0.113.11"
	if AlertID("rule", noIds) == AlertID("rule", otherIP) || AlertID("rule", r) == AlertID("other-rule", r) {
		t.Error("interactive IP and rule id must be part of the alert id")
	}
	// Rows without Ids dedup on the full row.
	d := Group(rule.Default(), []detect.Result{noIds, noIds, later}, false)
	if len(d) != 1 || len(d[0].Results) != 2 {
		t.Errorf("got %d alerts / %d rows, want 1 / 2", len(d), len(d[0].Results))
	}
}

// Rows without an Id carry position ids (signin.Options.PositionIds): they
// never change the alert's identity, and a position alone never merges two
// different rows (a rewritten blob can put other content at a position).
func TestPositionIdsInEvidence(t *testing.T) {
	r := rule.Default()
	base := detect.Result{
		NISignInTime: time.Date(2026, 11, 20, 10, 45, 0, 0, time.UTC), InteractiveTime: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		UserPrincipalName: "pivot@contoso.com", AppDisplayName: "Microsoft Teams", NIIPAddress: "91.200.1.1", NICountry: "RU",
		InteractiveIP: "20.1.1.1", InteractiveCountry: "US", TimeSinceInteractive: 45 * time.Minute,
	}
	withIds := func(row detect.Result, i, n string) detect.Result {
		row.InteractiveId, row.NonInteractiveId = i, n
		return row
	}
	blobA := withIds(base, "@am-signinlogs/a.json#0", "@am-aadnoninteractiveusersigninlogs/a.json#0")
	blobB := withIds(base, "@am-signinlogs/b.json#0", "@am-aadnoninteractiveusersigninlogs/b.json#512")
	other := blobA
	other.CorrelationId = "rewritten"
	noIds := withIds(base, "", "")
	if AlertID(r.ID, blobA) != AlertID(r.ID, noIds) || AlertID(r.ID, blobB) != AlertID(r.ID, noIds) {
		t.Errorf("position ids changed the alert id")
	}
	for _, tc := range []struct {
		name string
		rows []detect.Result
		want int
	}{
		{"the same row in two blobs counts twice", []detect.Result{blobA, blobB}, 2},
		{"a replay of one blob counts once", []detect.Result{blobA, blobA}, 1},
		{"other content at the same position counts", []detect.Result{blobA, other}, 2},
	} {
		docs := Group(r, tc.rows, false)
		if len(docs) != 1 || docs[0].ExtendedProperties.ResultCount != tc.want {
			t.Errorf("%s: %d alerts, counts %+v; want 1 alert of %d rows", tc.name, len(docs), docs, tc.want)
		}
	}
}
