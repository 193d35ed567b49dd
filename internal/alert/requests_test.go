package alert

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingLog counts how often each revision is recorded.
type countingLog struct {
	mu    sync.Mutex
	calls int
	n     map[string]int // "<id>/<rev>"
}

func (l *countingLog) Record(_ context.Context, revs []Revision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.n == nil {
		l.n = map[string]int{}
	}
	for _, r := range revs {
		l.n[fmt.Sprintf("%s/%d", r.AlertId, r.Revision)]++
	}
	return nil
}

// TestWriteRequestsPerRevision guards the request pattern of the alert
// writer (DESIGN.md 8): an hour's alerts arriving in blobs, each alert's
// evidence spread over several of them, cost one request per alert
// revision plus, for incidents, a few per blob (one grouping key: the
// index and the incidents the blob's alerts join) or, grouped by account
// (the bundled rule), an index and an incident write for each account's
// first alert and an incident write when new evidence changes it; and no
// request answers 404 or 409: a new alert, index or incident is created
// without a read, new evidence merges into the document the Writer wrote,
// each revision is recorded once. A second Writer (another instance, a
// restart) reads what it did not write, but still never asks for an alert
// that is not there.
func TestWriteRequestsPerRevision(t *testing.T) {
	for _, tt := range []struct {
		name string
		rule *rule.Rule
	}{{"one grouping key", anyAlertRule()}, {"by account", rule.Default()}} {
		t.Run(tt.name, func(t *testing.T) { testWriteRequestsPerRevision(t, tt.rule) })
	}
}

func testWriteRequestsPerRevision(t *testing.T, r *rule.Rule) {
	ctx := context.Background()
	w := newWriter(t, r)
	counted := store.NewCounting(w.Blobs)
	w.Blobs = counted
	log := &countingLog{}
	w.Revisions = log
	rows := stormRows(600, 0, 0) // 600 accounts, an alert each
	const blobs = 4
	parts := make([][]detect.Result, blobs)
	for i, r := range rows {
		parts[i%blobs] = append(parts[i%blobs], r)
	}
	revisions, created := 0, 0
	seen := map[string]bool{}
	for _, part := range parts {
		stored, _, err := w.WriteStored(ctx, Group(w.Rule, part, false))
		if err != nil {
			t.Fatal(err)
		}
		revisions += len(stored) // each alert of a part is new or has new rows
		for _, a := range stored {
			if !seen[a.SystemAlertId] {
				seen[a.SystemAlertId] = true
				created++
			}
		}
	}
	if len(log.n) != revisions {
		t.Errorf("%d revisions recorded, want %d", len(log.n), revisions)
	}
	for k, n := range log.n {
		if n != 1 {
			t.Errorf("revision %s recorded %d times", k, n)
		}
	}
	if log.calls != blobs {
		t.Errorf("%d Record calls for %d Writes, want one each", log.calls, blobs)
	}
	notOK := func(r store.Request) bool { return r.Status != store.StatusOK }
	if n := counted.Total(notOK); n != 0 {
		t.Errorf("%d requests answered 404/409/412:\n%s", n, counted.Report())
	}
	inAlerts := counted.Total(func(r store.Request) bool { return r.Container == alertsC })
	inIncidents := counted.Total(func(r store.Request) bool { return r.Container == incidentsC })
	total := counted.Total(nil)
	// One write per revision and one listing on alerts. Incidents: with one
	// grouping key, per blob the index (read once, then written) and the
	// incidents its alerts join (600 alerts: 4, read once to see whether an
	// analyst closed them, and written); by account, the index folder's
	// listing, an index and an incident created for each account, and at
	// most an incident write for each later revision.
	maxIncidents := int64(1 + blobs*(2+2*5))
	if r.IncidentConfiguration.Grouping.MatchingMethod != rule.AnyAlert || len(r.IncidentConfiguration.Grouping.GroupByEntities) > 0 {
		maxIncidents = int64(1 + 2*created + (revisions - created))
	}
	if inAlerts > int64(revisions)+1 || inIncidents > maxIncidents {
		t.Errorf("%d requests (%d on alerts, %d on incidents, at most %d) for %d revisions in %d blobs:\n%s",
			total, inAlerts, inIncidents, maxIncidents, revisions, blobs, counted.Report())
	}
	t.Logf("%d revisions in %d blobs: %d requests, %.3f per revision:\n%s", revisions, blobs, total, float64(total)/float64(revisions), counted.Report())

	// Another instance adds evidence: it reads the alerts it merges into
	// (it did not write them), and nothing it asks for is absent.
	counted.Reset()
	w2 := &Writer{Store: Store{Blobs: counted, AlertsContainer: alertsC, IncidentsContainer: incidentsC}, Rule: w.Rule, Revisions: log}
	more := shifted(rows[:len(rows)/2], 0, "")
	for i := range more {
		more[i].NonInteractiveId += "-later"
		more[i].UniqueTokenIdentifier += "-later"
	}
	stored, _, err := w2.WriteStored(ctx, Group(w.Rule, more, false))
	if err != nil {
		t.Fatal(err)
	}
	if n := counted.Total(notOK); n != 0 {
		t.Errorf("second instance: %d requests answered 404/409/412:\n%s", n, counted.Report())
	}
	reads := counted.Total(func(r store.Request) bool { return r.Container == alertsC && r.Op == store.OpRead })
	if reads != int64(len(stored)) {
		t.Errorf("second instance read %d alerts to merge into %d", reads, len(stored))
	}
}

// TestConcurrentWritesDoNotRace: two blobs in flight in one process (two
// workers, one Writer) with evidence for the same alerts do not race each
// other to failed conditions on the alerts: the second waits for the first
// with the alerts they share, then merges into what it stored. Every
// revision is recorded once.
func TestConcurrentWritesDoNotRace(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, rule.Default())
	counted := store.NewCounting(w.Blobs)
	w.Blobs = counted
	log := &countingLog{}
	w.Revisions = log
	rows := stormRows(400, 0, 0)
	var parts [2][]detect.Result
	for i, r := range rows {
		parts[i%2] = append(parts[i%2], r)
	}
	var wg sync.WaitGroup
	var revisions [2]int
	var errs [2]error
	for i := range parts {
		wg.Go(func() {
			var stored []Stored
			stored, _, errs[i] = w.WriteStored(ctx, Group(w.Rule, parts[i], false))
			revisions[i] = len(stored)
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if n := counted.Total(func(r store.Request) bool { return r.Container == alertsC && r.Status != store.StatusOK }); n != 0 {
		t.Errorf("%d alert requests failed a condition:\n%s", n, counted.Report())
	}
	if n := counted.Total(func(r store.Request) bool { return r.Container == alertsC && r.Op == store.OpRead }); n != 0 {
		t.Errorf("%d alerts read back", n)
	}
	if len(log.n) != revisions[0]+revisions[1] {
		t.Errorf("%d revisions recorded, want %d", len(log.n), revisions[0]+revisions[1])
	}
	for k, n := range log.n {
		if n != 1 {
			t.Errorf("revision %s recorded %d times", k, n)
		}
	}
	docs, incs, err := Store{Blobs: w.Blobs, AlertsContainer: alertsC, IncidentsContainer: incidentsC}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkIncidents(t, docs, incs, MaxAlertsPerIncident)
	if !reflect.DeepEqual(withoutIncidents(withoutRevisions(t, docs)), withoutIncidents(Group(w.Rule, rows, false))) {
		t.Error("stored alerts differ from the alerts of all rows")
	}
}

// TestKnownIsBounded: what a Writer keeps to save requests is bounded (the
// documents by MaxKnownBytes, the alerts known to exist by a few date
// folders) and losing it only costs reads: alerts over six days, merged
// into after most of it was forgotten, are the alerts of all rows, and no
// alert request finds nothing or fails a condition.
func TestKnownIsBounded(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, rule.Default())
	counted := store.NewCounting(w.Blobs)
	w.Blobs = counted
	w.MaxKnownBytes = 16 << 10
	base := stormRows(60, 0, 0)
	var all []detect.Result
	for day := range 6 {
		rows := shifted(base, time.Duration(day)*24*time.Hour, fmt.Sprintf("-d%d", day))
		all = append(all, rows...)
		if _, err := w.Write(ctx, Group(w.Rule, rows, false)); err != nil {
			t.Fatal(err)
		}
	}
	k := w.directory()
	if len(k.exists) > maxKnownDates || k.docBytes > w.MaxKnownBytes {
		t.Errorf("knows %d date folders and %d bytes of documents", len(k.exists), k.docBytes)
	}
	// New evidence for every alert of every day.
	more := slices.Clone(all)
	for i := range more {
		more[i].NonInteractiveId += "-more"
		more[i].UniqueTokenIdentifier += "-more"
	}
	if _, err := w.Write(ctx, Group(w.Rule, more, false)); err != nil {
		t.Fatal(err)
	}
	if n := counted.Total(func(r store.Request) bool { return r.Container == alertsC && r.Status != store.StatusOK }); n != 0 {
		t.Errorf("%d alert requests found nothing or failed a condition:\n%s", n, counted.Report())
	}
	docs, _, err := Store{Blobs: w.Blobs, AlertsContainer: alertsC}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Group(w.Rule, append(slices.Clone(all), more...), false)
	if !reflect.DeepEqual(withoutIncidents(withoutRevisions(t, docs)), withoutIncidents(want)) {
		t.Error("stored alerts differ from the alerts of all rows")
	}
}
