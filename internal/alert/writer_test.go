package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

const (
	alertsC    = "tokenpivot-alerts"
	incidentsC = "tokenpivot-incidents"
)

func newWriter(t *testing.T, r *rule.Rule) *Writer {
	t.Helper()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []string{alertsC, incidentsC} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return &Writer{Store: Store{Blobs: s, AlertsContainer: alertsC, IncidentsContainer: incidentsC}, Rule: r}
}

// anyAlertRule is the bundled rule with plain AnyAlert grouping (no entity
// list): every alert within the lookback joins one incident, whoever its
// user. The writer's own tests (claims, caps, faults, concurrency) use it for
// one grouping key shared by many alerts. The bundled rule itself names
// groupByEntities [Account], and so groups by user (GroupingKey).
func anyAlertRule() *rule.Rule {
	r := *rule.Default()
	r.IncidentConfiguration.Grouping.GroupByEntities = nil
	return &r
}

// withGrouping returns a copy of anyAlertRule with grouping changed by f.
func withGrouping(f func(ic *rule.IncidentConfiguration)) *rule.Rule {
	r := *anyAlertRule()
	f(&r.IncidentConfiguration)
	return &r
}

// snapshot returns every blob of the two containers with its ETag.
func snapshot(t *testing.T, w *Writer) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range []string{alertsC, incidentsC} {
		err := w.Blobs.List(context.Background(), c, "", func(p store.Properties) error {
			data, _, err := w.Blobs.Read(context.Background(), c, p.Name)
			out[c+"/"+p.Name] = p.ETag + " " + string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func list(t *testing.T, w *Writer) ([]Document, []Incident) {
	t.Helper()
	docs, incs, err := Store{Blobs: w.Blobs, AlertsContainer: alertsC, IncidentsContainer: incidentsC}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return withoutRevisions(t, docs), incs
}

// withoutRevisions checks that every stored alert has a Revision and clears
// it: the documents Group makes, which tests compare with, have none.
func withoutRevisions(t *testing.T, docs []Document) []Document {
	t.Helper()
	for i := range docs {
		if docs[i].Revision < 1 {
			t.Errorf("stored alert %s has Revision %d, want at least 1", docs[i].SystemAlertId, docs[i].Revision)
		}
		docs[i].Revision = 0
	}
	return docs
}

func TestWriteIdempotent(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	docs := Group(w.Rule, sampleRows(t), false)
	n, err := w.Write(ctx, docs)
	if err != nil || n != 3 {
		t.Fatalf("Write = %d, %v; want 3", n, err)
	}
	before := snapshot(t, w)
	n, err = w.Write(ctx, docs)
	if err != nil || n != 0 {
		t.Fatalf("second Write = %d, %v; want 0", n, err)
	}
	if after := snapshot(t, w); !reflect.DeepEqual(before, after) {
		t.Error("writing the same alerts again changed the stored blobs")
	}
	if _, ok := before[alertsC+"/2024/05/01/"+docs[0].SystemAlertId+".json"]; !ok {
		t.Errorf("alert not at its dated path; blobs: %v", keys(before))
	}
	for name, blob := range before {
		if strings.HasPrefix(name, incidentsC+"/incidents/") && !strings.Contains(blob, "MITRE ATT&CK: T1528") {
			t.Errorf("incident %s lacks the rule description as written:\n%s", name, blob)
		}
	}

	got, incs := list(t, w)
	if len(got) != 3 || len(incs) != 1 {
		t.Fatalf("List: %d alerts, %d incidents; want 3 and 1 (AnyAlert, all within 5h)", len(got), len(incs))
	}
	inc := incs[0]
	for i := range got {
		if got[i].IncidentId != inc.IncidentId {
			t.Errorf("alert %s in incident %q, want %q", got[i].SystemAlertId, got[i].IncidentId, inc.IncidentId)
		}
		got[i].IncidentId = ""
	}
	byID := func(a, b Document) int { return strings.Compare(a.SystemAlertId, b.SystemAlertId) }
	slices.SortFunc(got, byID)
	want := slices.Clone(docs)
	slices.SortFunc(want, byID)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored alerts differ from the written ones")
	}
	if len(inc.AlertIds) != 3 || inc.Status != IncidentNew || inc.Severity != "High" || inc.Title != docs[0].DisplayName ||
		!inc.FirstActivityTime.Equal(at(t, "2024-05-01T08:00:00Z")) || !inc.LastActivityTime.Equal(at(t, "2024-05-01T10:01:00Z")) ||
		len(inc.Entities) != 5 || inc.Owner != (Owner{}) {
		t.Errorf("incident = %+v", inc)
	}
}

func TestWriteMergesNewEvidence(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	rows := sampleRows(t)
	// Rows arrive in two batches, as two export blobs would give them.
	if n, err := w.Write(ctx, Group(w.Rule, rows[1:], false)); err != nil || n != 3 {
		t.Fatalf("first batch: %d, %v", n, err)
	}
	if n, err := w.Write(ctx, Group(w.Rule, rows[:1], false)); err != nil || n != 1 {
		t.Fatalf("second batch: %d, %v; want 1 alert changed", n, err)
	}
	got, incs := list(t, w)
	want := Group(w.Rule, rows, false)
	for i := range got {
		if got[i].SystemAlertId == want[0].SystemAlertId {
			got[i].IncidentId = ""
			if !reflect.DeepEqual(got[i], want[0]) {
				t.Errorf("merged alert = %+v\nwant %+v", got[i], want[0])
			}
		}
	}
	if len(incs) != 1 || len(incs[0].AlertIds) != 3 {
		t.Errorf("incidents = %+v", incs)
	}
}

// shifted returns rows moved by d, with new Ids, as another day's sign-ins.
func shifted(rows []detect.Result, d time.Duration, tag string) []detect.Result {
	out := slices.Clone(rows)
	for i := range out {
		out[i].InteractiveTime = out[i].InteractiveTime.Add(d)
		out[i].NISignInTime = out[i].NISignInTime.Add(d)
		out[i].InteractiveId += tag
		out[i].NonInteractiveId += tag
	}
	return out
}

func TestIncidentGrouping(t *testing.T) {
	rows := sampleRows(t)
	// 6 hours later: beyond a 5h lookback from 08:00.
	later := shifted(rows, 6*time.Hour, "-later")
	// 2019: a backfill of old exports groups like fresh data.
	old := shifted(rows, -5*365*24*time.Hour, "-old")
	all := append(append(append([]detect.Result{}, rows...), later...), old...)

	tests := []struct {
		name string
		ic   func(ic *rule.IncidentConfiguration)
		// want lists each incident's alerts as "user/NIIP@hh:mm" sorted.
		want []string
	}{
		{"AnyAlert 5h", func(*rule.IncidentConfiguration) {}, []string{
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 bob@fabrikam.com/198.51.100.99@10:00",
			"alice@contoso.com/192.0.2.77@14:00 alice@contoso.com/198.51.100.20@14:00 bob@fabrikam.com/198.51.100.99@16:00",
		}},
		{"AnyAlert 1d", func(ic *rule.IncidentConfiguration) { ic.Grouping.LookbackDuration = 24 * time.Hour }, []string{
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/192.0.2.77@14:00 alice@contoso.com/198.51.100.20@08:00 alice@contoso.com/198.51.100.20@14:00 bob@fabrikam.com/198.51.100.99@10:00 bob@fabrikam.com/198.51.100.99@16:00",
		}},
		{"Selected by Account 1d", func(ic *rule.IncidentConfiguration) {
			ic.Grouping.LookbackDuration = 24 * time.Hour
			ic.Grouping.MatchingMethod = rule.Selected
			ic.Grouping.GroupByEntities = []string{"Account"}
		}, []string{
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/192.0.2.77@14:00 alice@contoso.com/198.51.100.20@08:00 alice@contoso.com/198.51.100.20@14:00",
			"bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"bob@fabrikam.com/198.51.100.99@10:00 bob@fabrikam.com/198.51.100.99@16:00",
		}},
		// The bundled rule as it is: AnyAlert naming groupByEntities
		// [Account] groups by Account, as the deployed NRT rule (Selected)
		// does, not every user's alerts into one incident.
		{"the bundled rule: AnyAlert naming Account 5h", func(ic *rule.IncidentConfiguration) {
			*ic = rule.Default().IncidentConfiguration
		}, []string{
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00",
			"alice@contoso.com/192.0.2.77@14:00 alice@contoso.com/198.51.100.20@14:00",
			"bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"bob@fabrikam.com/198.51.100.99@10:00",
			"bob@fabrikam.com/198.51.100.99@16:00",
		}},
		{"Selected by custom detail 5h", func(ic *rule.IncidentConfiguration) {
			ic.Grouping.MatchingMethod = rule.Selected
			ic.Grouping.GroupByEntities = nil
			ic.Grouping.GroupByCustomDetails = []string{"InteractiveCountry"}
		}, []string{
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/198.51.100.20@08:00",
			"alice@contoso.com/192.0.2.77@14:00 alice@contoso.com/198.51.100.20@14:00",
			"bob@fabrikam.com/198.51.100.99@10:00",
			"bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"bob@fabrikam.com/198.51.100.99@16:00",
		}},
		{"AllEntities 1d", func(ic *rule.IncidentConfiguration) {
			ic.Grouping.LookbackDuration = 24 * time.Hour
			ic.Grouping.MatchingMethod = rule.AllEntities
		}, []string{
			"alice@contoso.com/192.0.2.77@08:00 (2019)",
			"alice@contoso.com/192.0.2.77@08:00 alice@contoso.com/192.0.2.77@14:00",
			"alice@contoso.com/198.51.100.20@08:00 (2019)",
			"alice@contoso.com/198.51.100.20@08:00 alice@contoso.com/198.51.100.20@14:00",
			"bob@fabrikam.com/198.51.100.99@10:00 (2019)",
			"bob@fabrikam.com/198.51.100.99@10:00 bob@fabrikam.com/198.51.100.99@16:00",
		}},
		{"grouping disabled", func(ic *rule.IncidentConfiguration) { ic.Grouping.Enabled = false }, nil},
		{"no incidents", func(ic *rule.IncidentConfiguration) { ic.CreateIncident = false }, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWriter(t, withGrouping(tt.ic))
			docs := Group(w.Rule, all, false)
			if n, err := w.Write(context.Background(), docs); err != nil || n != 9 {
				t.Fatalf("Write = %d, %v; want 9", n, err)
			}
			stored, incs := list(t, w)
			got := describeIncidents(t, stored, incs)
			want := tt.want
			if want == nil { // one incident per alert
				want = []string{}
				for _, d := range stored {
					want = append(want, describe(d))
				}
			}
			want = slices.Clone(want)
			slices.Sort(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("incidents:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func describe(d Document) string {
	s := fmt.Sprintf("%s/%s@%s", d.Results[0].UserPrincipalName, d.Results[0].NIIPAddress, d.StartTime.Format("15:04"))
	if d.StartTime.Year() < 2024 {
		s += " (2019)"
	}
	return s
}

// describeIncidents checks that every alert is in exactly the incident its
// IncidentId names and describes each incident by its alerts.
func describeIncidents(t *testing.T, docs []Document, incs []Incident) []string {
	t.Helper()
	byID := map[string]Document{}
	for _, d := range docs {
		byID[d.SystemAlertId] = d
	}
	seen := map[string]string{}
	out := []string{}
	for _, inc := range incs {
		var ds []string
		year := ""
		for _, id := range inc.AlertIds {
			d, ok := byID[id]
			if !ok {
				t.Errorf("incident %s lists unknown alert %s", inc.IncidentId, id)
				continue
			}
			if prev, dup := seen[id]; dup {
				t.Errorf("alert %s in incidents %s and %s", id, prev, inc.IncidentId)
			}
			seen[id] = inc.IncidentId
			if d.IncidentId != inc.IncidentId {
				t.Errorf("alert %s says incident %q, but is in %s", id, d.IncidentId, inc.IncidentId)
			}
			s := describe(d)
			s, y := strings.CutSuffix(s, " (2019)")
			if y {
				year = " (2019)"
			}
			ds = append(ds, s)
		}
		slices.Sort(ds)
		out = append(out, strings.Join(ds, " ")+year)
	}
	if len(incs) > 0 && len(seen) != len(docs) {
		t.Errorf("%d of %d alerts are in an incident", len(seen), len(docs))
	}
	slices.Sort(out)
	return out
}

func TestClosedIncident(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			ctx := context.Background()
			w := newWriter(t, withGrouping(func(ic *rule.IncidentConfiguration) { ic.Grouping.ReopenClosedIncident = reopen }))
			rows := sampleRows(t)
			docs := Group(w.Rule, rows, false)
			if _, err := w.Write(ctx, docs[:2]); err != nil {
				t.Fatal(err)
			}
			_, incs := list(t, w)
			if len(incs) != 1 {
				t.Fatalf("%d incidents", len(incs))
			}
			// An analyst closes the incident.
			name := IncidentBlobName(incs[0].IncidentId)
			data, props, err := w.Blobs.Read(ctx, incidentsC, name)
			if err != nil {
				t.Fatal(err)
			}
			closed := bytes.Replace(data, []byte(`"Status": "New"`), []byte(`"Status": "Closed"`), 1)
			if _, err := w.Blobs.Write(ctx, incidentsC, name, closed, store.Condition{IfMatch: props.ETag}); err != nil {
				t.Fatal(err)
			}
			// Redelivering its alerts changes nothing; a new alert in the window
			// reopens it or starts another.
			if n, err := w.Write(ctx, docs); err != nil || n != 1 {
				t.Fatalf("Write = %d, %v; want 1", n, err)
			}
			stored, incs := list(t, w)
			describeIncidents(t, stored, incs)
			statuses := map[string]int{}
			for _, inc := range incs {
				statuses[inc.Status] += len(inc.AlertIds)
			}
			want := map[string]int{"Closed": 2, "New": 1}
			if reopen {
				want = map[string]int{"Active": 3}
			}
			if !reflect.DeepEqual(statuses, want) {
				t.Errorf("alerts per incident status = %v, want %v", statuses, want)
			}
			// Later alerts of the window keep going to the new incident.
			more := shifted(rows[3:], time.Hour, "-more")
			if _, err := w.Write(ctx, Group(w.Rule, more, false)); err != nil {
				t.Fatal(err)
			}
			if _, incs2 := list(t, w); len(incs2) != len(incs) {
				t.Errorf("%d incidents after another alert, want %d", len(incs2), len(incs))
			}
		})
	}
}

// Eight writers store overlapping sets of alerts of one account at once, in
// different orders: each alert is stored once with all its evidence, and
// each is attached to exactly one of the two incidents (two 1h clusters 10h
// apart, lookback 5h).
func TestWriteConcurrent(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	cs := &conflictCounter{Store: w.Blobs}
	w.Blobs = cs
	base := at(t, "2024-05-01T08:00:00Z")
	var rows []detect.Result
	for cluster := range 2 {
		for k := range 6 { // 6 sign-ins per cluster, 10 minutes apart
			it := base.Add(time.Duration(cluster)*10*time.Hour + time.Duration(k)*10*time.Minute)
			for m := range 3 { // 3 refreshes each from one of 2 IPs
				nt := it.Add(time.Duration(m+2) * time.Minute)
				rows = append(rows, detect.Result{
					NISignInTime: nt, InteractiveTime: it, UserPrincipalName: "alice@contoso.com",
					AppDisplayName: "Microsoft Office", NIIPAddress: fmt.Sprintf("198.51.100.%d", 20+m%2), NICountry: "RU",
					InteractiveIP: "203.0.113.10", InteractiveCountry: "US", CorrelationId: fmt.Sprintf("c-%d-%d-%d", cluster, k, m),
					UniqueTokenIdentifier: fmt.Sprintf("t-%d-%d-%d", cluster, k, m), TimeSinceInteractive: nt.Sub(it),
					InteractiveId: fmt.Sprintf("i-%d-%d", cluster, k), NonInteractiveId: fmt.Sprintf("n-%d-%d-%d", cluster, k, m),
				})
			}
		}
	}
	want := Group(w.Rule, rows, false) // 2 clusters x 6 sign-ins x 2 IPs
	if len(want) != 24 {
		t.Fatalf("%d alerts, want 24", len(want))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			// Each writer holds a random ~2/3 of the rows, as overlapping
			// export blobs would give them, in its own order.
			var mine []detect.Result
			for _, r := range rows {
				if rng.IntN(3) > 0 {
					mine = append(mine, r)
				}
			}
			docs := Group(w.Rule, mine, false)
			rng.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
			for _, d := range docs {
				if _, err := w.Write(ctx, []Document{d}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Whatever a writer missed, some other writer may have missed too:
	// finish with the full set, as the Sweep would.
	if _, err := w.Write(ctx, want); err != nil {
		t.Fatal(err)
	}
	stored, incs := list(t, w)
	if len(stored) != len(want) {
		t.Fatalf("%d alerts stored, want %d", len(stored), len(want))
	}
	for i := range stored {
		stored[i].IncidentId = ""
	}
	slices.SortFunc(stored, func(a, b Document) int { return detect.Compare(a.Results[0], b.Results[0]) })
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("stored alerts differ from the alerts of all rows")
	}
	stored, _ = list(t, w)
	got := describeIncidents(t, stored, incs)
	t.Logf("%d writes lost a conditional race and were retried", cs.conflicts.Load())
	if len(incs) != 2 || len(incs[0].AlertIds) != 12 || len(incs[1].AlertIds) != 12 {
		t.Errorf("incidents: %q", got)
	}
}

func TestListRejectsCorruptBlob(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	if _, err := w.Write(ctx, Group(w.Rule, sampleRows(t), false)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Blobs.Write(ctx, alertsC, "2024/05/02/broken.json", []byte(`{"Results":"not an array"}`), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := Store{Blobs: w.Blobs, AlertsContainer: alertsC, IncidentsContainer: incidentsC}.List(ctx)
	if err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("List = %v, want an error naming the blob", err)
	}
	// A corrupt stored alert no longer stops its own write (it used to be an
	// error naming it): it is moved aside and rebuilt, see
	// TestUnreadableStateRebuilt.
	d := Group(w.Rule, sampleRows(t), false)[0]
	if _, err := w.Blobs.Write(ctx, alertsC, BlobName(d), []byte(`{`), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	w.Logger = slog.New(slog.DiscardHandler)
	if n, err := w.Write(ctx, []Document{d}); err != nil || n != 1 {
		t.Errorf("Write over a corrupt alert = %d, %v, want it rebuilt", n, err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// conflictCounter counts the conditional writes that lost a race.
type conflictCounter struct {
	store.Store
	conflicts atomic.Int64
}

func (c *conflictCounter) Write(ctx context.Context, container, name string, data []byte, cond store.Condition) (store.Properties, error) {
	p, err := c.Store.Write(ctx, container, name, data, cond)
	if errors.Is(err, store.ErrConditionNotMet) {
		c.conflicts.Add(1)
	}
	return p, err
}

// TestWriteResultsFollowsEventGrouping: the rule's eventGroupingSettings
// decide how WriteResults files rows into alerts; no Writer field repeats
// that setting. The sample's 4 rows are 3 alerts (two rows share an account,
// interactive sign-in and NI IP) by default and 4 with AlertPerResult.
func TestWriteResultsFollowsEventGrouping(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		alerts int
	}{
		{rule.SingleAlert, 3},
		{rule.AlertPerResult, 4},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			r := *anyAlertRule()
			r.EventGrouping = tc.kind
			w := newWriter(t, &r)
			stored, _, err := w.WriteResults(context.Background(), sampleRows(t))
			if err != nil {
				t.Fatal(err)
			}
			docs, _ := list(t, w)
			if len(stored) != tc.alerts || len(docs) != tc.alerts {
				t.Errorf("%d alerts returned, %d stored, want %d", len(stored), len(docs), tc.alerts)
			}
		})
	}
}
