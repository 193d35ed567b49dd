package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// `tokenpivot alerts` shows every readable alert and warns, naming the
// blob, about each one that does not parse.
func TestAlertsWarnsAboutUnreadableBlobs(t *testing.T) {
	dir := t.TempDir()
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []string{"tokenpivot-alerts", "tokenpivot-incidents"} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	it := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	var rows []detect.Result
	for u := range 3 {
		nt := it.Add(17 * time.Minute)
		rows = append(rows, detect.Result{NISignInTime: nt, InteractiveTime: it, UserPrincipalName: fmt.Sprintf("user%d@contoso.com", u),
			AppDisplayName: "Microsoft Office", NIIPAddress: "113.186.2.10" + fmt.Sprint(u), NICountry: "VN", InteractiveIP: "86.180.163.81",
			InteractiveCountry: "GB", TimeSinceInteractive: nt.Sub(it), InteractiveId: fmt.Sprint("i", u), NonInteractiveId: fmt.Sprint("n", u)})
	}
	w := &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents"}, Rule: rule.Default()}
	docs := alert.Group(w.Rule, rows, false)
	if _, err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}
	bad := []struct{ container, name string }{{"tokenpivot-alerts", "2026/11/20/broken.json"}, {"tokenpivot-incidents", "incidents/broken.json"}}
	for _, b := range bad {
		if _, err := s.Write(ctx, b.container, b.name, []byte(`{"Status": `), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI(t, "alerts", "--storage", dir)
	// Three users: three incidents (the bundled rule groups by Account).
	if code != 0 || !strings.Contains(out, "ALERTS (3,") || !strings.Contains(out, "INCIDENTS (3)") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, d := range docs {
		// The table shows ids by their first 8 characters (--wide in full).
		if !strings.Contains(out, d.SystemAlertId[:8]) {
			t.Errorf("alerts does not list %s:\n%s", d.SystemAlertId, out)
		}
	}
	for _, b := range bad {
		if url := s.URL(b.container, b.name); !strings.Contains(errs, "warning: unreadable, skipped: "+url) {
			t.Errorf("stderr does not warn about %s:\n%s", url, errs)
		}
	}
}
