package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// The newcomer's day: `tokenpivot gen` with its defaults, then `process`.
// With the bundled rule (matchingMethod AnyAlert, groupByEntities [Account])
// the incident titled "Token Pivot - daniel.miller2@contoso.com ..." held the
// alerts of three users (daniel.miller2, lars.wilson, omar.martin2), named
// for the first; Sentinel's deployed NRT rule groups by Account. Each
// incident now holds one user's alerts, and daniel.miller2's holds only his.
func TestGenDayIncidentsAreOneUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and processes a day of exports")
	}
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "gen", "--out", dir); code != 0 {
		t.Fatalf("gen: exit %d\n%s", code, errs)
	}
	if code, out, errs := runCLI(t, "process", "--storage", dir); code != 0 {
		t.Fatalf("process: exit %d\n%s\n%s", code, out, errs)
	}
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	docs, incs, err := alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents"}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	userOf := map[string]string{}
	for _, d := range docs {
		userOf[d.SystemAlertId] = strings.ToLower(d.Results[0].UserPrincipalName)
	}
	if len(docs) < 5 || len(incs) == 0 {
		t.Fatalf("%d alerts, %d incidents: the gen day's planted pivots are missing", len(docs), len(incs))
	}
	daniel := 0
	for _, inc := range incs {
		var users []string
		for _, id := range inc.AlertIds {
			if u := userOf[id]; !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
		if len(users) != 1 {
			t.Errorf("incident %s %q holds the alerts of %d users: %v", inc.IncidentId, inc.Title, len(users), users)
		}
		if strings.HasPrefix(inc.Title, "Token Pivot - daniel.miller2@contoso.com") {
			daniel++
			if !slices.Equal(users, []string{"daniel.miller2@contoso.com"}) {
				t.Errorf("daniel.miller2's incident holds %v", users)
			}
		}
		// The incident is named for the user whose alerts it holds.
		if len(users) == 1 && !strings.Contains(strings.ToLower(inc.Title), users[0]) {
			t.Errorf("incident %s is titled %q but holds %s's alerts", inc.IncidentId, inc.Title, users[0])
		}
	}
	if daniel != 1 {
		t.Errorf("%d incidents for daniel.miller2@contoso.com, want 1", daniel)
	}
}
