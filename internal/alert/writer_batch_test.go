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

	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// forEachStore runs fn on a fresh Writer (bundled rule) over store.Local and
// over Azurite.
func forEachStore(t *testing.T, fn func(t *testing.T, w *Writer)) {
	t.Run("Local", func(t *testing.T) { fn(t, newWriter(t, anyAlertRule())) })
	t.Run("Azurite", func(t *testing.T) {
		s, err := store.NewAzureFromConnectionString(azurite.Start(t))
		if err != nil {
			t.Fatal(err)
		}
		w := &Writer{Store: Store{Blobs: s, AlertsContainer: azurite.ContainerName("alerts"), IncidentsContainer: azurite.ContainerName("incidents")}, Rule: anyAlertRule()}
		for _, c := range []string{w.AlertsContainer, w.IncidentsContainer} {
			if err := s.EnsureContainer(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		fn(t, w)
	})
}

func listOf(t *testing.T, w *Writer) ([]Document, []Incident) {
	t.Helper()
	docs, incs, err := w.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return withoutRevisions(t, docs), incs
}

// checkIncidents checks the incident contract: every alert in exactly the
// one incident its IncidentId names, none over maxAlerts. It returns the
// sizes of the incidents, sorted.
func checkIncidents(t *testing.T, docs []Document, incs []Incident, maxAlerts int) []int {
	t.Helper()
	describeIncidents(t, docs, incs)
	var sizes []int
	for _, inc := range incs {
		if len(inc.AlertIds) > maxAlerts {
			t.Errorf("incident %s has %d alerts, cap %d", inc.IncidentId, len(inc.AlertIds), maxAlerts)
		}
		sizes = append(sizes, len(inc.AlertIds))
	}
	for _, d := range docs {
		if d.IncidentId == "" {
			t.Errorf("alert %s has no incident", d.SystemAlertId)
		}
	}
	slices.Sort(sizes)
	return sizes
}

// withoutIncidents clears IncidentId and orders alerts by id, to compare
// alert documents across incident layouts.
func withoutIncidents(docs []Document) []Document {
	out := slices.Clone(docs)
	for i := range out {
		out[i].IncidentId = ""
	}
	slices.SortFunc(out, func(a, b Document) int { return strings.Compare(a.SystemAlertId, b.SystemAlertId) })
	return out
}

func TestIncidentCap(t *testing.T) {
	// 400 users' pivots within one hour: one AnyAlert group.
	docs := Group(anyAlertRule(), stormRows(400, 0, 0), false)
	if len(docs) != 400 {
		t.Fatalf("%d alerts, want 400", len(docs))
	}
	tests := []struct {
		name    string
		cap     int
		batches int // Write calls, each a shuffled share of the alerts
		want    []int
	}{
		{"default cap, one call", 0, 1, []int{100, 150, 150}},
		{"default cap, 7 calls", 0, 7, []int{100, 150, 150}},
		{"cap 150 set", 150, 40, []int{100, 150, 150}},
		{"cap 2", 2, 3, slices.Repeat([]int{2}, 200)},
		{"cap 7", 7, 5, append([]int{1}, slices.Repeat([]int{7}, 57)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWriter(t, anyAlertRule())
			w.MaxAlertsPerIncident = tt.cap
			shuffled := slices.Clone(docs)
			rand.New(rand.NewPCG(1, uint64(tt.batches))).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			total := 0
			for b := range tt.batches {
				part := shuffled[b*len(shuffled)/tt.batches : (b+1)*len(shuffled)/tt.batches]
				n, err := w.Write(context.Background(), part)
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if total != len(docs) {
				t.Errorf("%d alerts written, want %d", total, len(docs))
			}
			stored, incs := listOf(t, w)
			if got := checkIncidents(t, stored, incs, capOr(tt.cap)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("incident sizes %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(withoutIncidents(stored), withoutIncidents(docs)) {
				t.Error("alert documents depend on the incident cap")
			}
		})
	}
}

func capOr(c int) int {
	if c == 0 {
		return MaxAlertsPerIncident
	}
	return c
}

// callLog counts storage calls per operation and blob, and can cancel a
// context or fail a call once.
type callLog struct {
	store.Store
	mu     sync.Mutex
	calls  map[string]int // "Write tokenpivot-incidents/index/..." -> n
	n      atomic.Int64
	cancel func()
	at     int64 // cancel when the at-th call starts (0: never)
	after  atomic.Int64
	// fail makes call number failAt return an error once: before the call,
	// or (failAfter) after it took effect.
	failAt    int64
	failAfter bool
}

var errInjected = errors.New("injected fault")

func (c *callLog) begin(op, container, name string) error {
	k := c.n.Add(1)
	if c.at > 0 && k > c.at {
		c.after.Add(1)
	}
	if c.at > 0 && k == c.at {
		c.cancel()
	}
	c.mu.Lock()
	if c.calls != nil {
		c.calls[op+" "+container+"/"+name]++
	}
	c.mu.Unlock()
	if k == c.failAt && !c.failAfter {
		return errInjected
	}
	return nil
}

func (c *callLog) end(err error) error {
	if err == nil && c.failAfter && c.n.Load() == c.failAt {
		return errInjected
	}
	return err
}

func (c *callLog) Read(ctx context.Context, container, name string) ([]byte, store.Properties, error) {
	if err := c.begin("Read", container, name); err != nil {
		return nil, store.Properties{}, err
	}
	data, p, err := c.Store.Read(ctx, container, name)
	return data, p, c.end(err)
}

func (c *callLog) Write(ctx context.Context, container, name string, data []byte, cond store.Condition) (store.Properties, error) {
	if err := c.begin("Write", container, name); err != nil {
		return store.Properties{}, err
	}
	p, err := c.Store.Write(ctx, container, name, data, cond)
	return p, c.end(err)
}

func (c *callLog) Delete(ctx context.Context, container, name string, cond store.Condition) error {
	if err := c.begin("Delete", container, name); err != nil {
		return err
	}
	return c.end(c.Store.Delete(ctx, container, name, cond))
}

func (c *callLog) List(ctx context.Context, container, prefix string, fn func(store.Properties) error) error {
	if err := c.begin("List", container, prefix); err != nil {
		return err
	}
	return c.end(c.Store.List(ctx, container, prefix, fn))
}

func TestWriteOneUpdatePerIncident(t *testing.T) {
	w := newWriter(t, anyAlertRule())
	log := &callLog{Store: w.Blobs, calls: map[string]int{}}
	w.Blobs = log
	docs := Group(w.Rule, stormRows(400, 0, 0), false)
	if n, err := w.Write(context.Background(), docs); err != nil || n != 400 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	perKind := map[string]int{}
	for k, n := range log.calls {
		op, blob, _ := strings.Cut(k, " ")
		kind := strings.SplitN(blob, "/", 3)[1]
		if strings.HasPrefix(blob, alertsC) {
			kind = "alert"
		}
		if n != 1 {
			t.Errorf("%s: %d calls, want 1", k, n)
		}
		perKind[op+" "+kind]++
	}
	// New alerts are created without being read (one listing of their date
	// folder says they are absent), and so are the incidents the index
	// update opens and the index (the listing of the index folder).
	want := map[string]int{"List alert": 1, "Write alert": 400, "List index": 1, "Write index": 1, "Write incidents": 3}
	if !reflect.DeepEqual(perKind, want) {
		t.Errorf("storage calls %v, want %v", perKind, want)
	}
	// Redelivery: reads only.
	clear(log.calls)
	if n, err := w.Write(context.Background(), docs); err != nil || n != 0 {
		t.Fatalf("redelivery: Write = %d, %v", n, err)
	}
	for k := range log.calls {
		if strings.HasPrefix(k, "Write") {
			t.Errorf("redelivery wrote %s", k)
		}
	}
}

// Two Writers (two function instances) store the same alerts, or
// overlapping halves of them, at the same time; a small cap makes them
// compete for room in incidents too.
func TestTwoWritersConcurrent(t *testing.T) {
	rows := stormRows(60, 0, 0)
	all := Group(anyAlertRule(), rows, false)
	tests := []struct {
		name string
		a, b []detect.Result
	}{
		{"same alerts", rows, rows},
		{"overlapping", rows[:len(rows)*2/3], rows[len(rows)/3:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, w *Writer) {
				w.MaxAlertsPerIncident = 4
				ctx := context.Background()
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i, part := range [][]detect.Result{tt.a, tt.b} {
					wi := *w // a Writer each, as two instances have
					docs := Group(w.Rule, part, false)
					if i == 1 {
						slices.Reverse(docs)
					}
					wg.Go(func() { _, errs[i] = wi.Write(ctx, docs) })
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				stored, incs := listOf(t, w)
				checkIncidents(t, stored, incs, 4)
				if len(incs) < 15 {
					t.Errorf("%d incidents for 60 alerts at 4 each", len(incs))
				}
				if !reflect.DeepEqual(withoutIncidents(stored), withoutIncidents(all)) {
					t.Error("stored alerts differ from the alerts of all rows")
				}
			})
		})
	}
}

// A fault at any storage call of a Write, before or after the call took
// effect, followed by a redelivery, ends in the same documents as a Write
// that went through.
func TestWriteFaultThenRedelivery(t *testing.T) {
	tests := []struct {
		name   string
		ic     func(ic *rule.IncidentConfiguration)
		cap    int
		alerts int
		incs   int
	}{
		{"AnyAlert cap 2", func(*rule.IncidentConfiguration) {}, 2, 9, 5}, // claims matter
		{"Selected by Account", func(ic *rule.IncidentConfiguration) {
			ic.Grouping.MatchingMethod = rule.Selected
			ic.Grouping.GroupByEntities = []string{"Account"}
		}, 0, 5, 5},
		{"grouping disabled", func(ic *rule.IncidentConfiguration) { ic.Grouping.Enabled = false }, 0, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := withGrouping(tt.ic)
			docs := Group(r, stormRows(tt.alerts, 0, 0), false)
			run := func(t *testing.T, failAt int64, after bool) (alerts, incidents []string, calls int64) {
				w := newWriter(t, r)
				w.MaxAlertsPerIncident = tt.cap
				w.Parallelism = 3
				log := &callLog{Store: w.Blobs, failAt: failAt, failAfter: after}
				w.Blobs = log
				// A fault after a call that failed anyway (a read of an absent
				// blob) is no fault: then the Write may succeed.
				_, err := w.Write(context.Background(), docs)
				if err != nil && (failAt == 0 || !errors.Is(err, errInjected)) {
					t.Fatalf("fault at call %d: Write = %v, want no error or the fault", failAt, err)
				}
				calls = log.n.Load()
				log.failAt = 0
				if _, err := w.Write(context.Background(), docs); err != nil {
					t.Fatalf("redelivery: %v", err)
				}
				stored, incs := listOf(t, w)
				checkIncidents(t, stored, incs, capOr(tt.cap))
				for _, d := range stored {
					b, _ := d.MarshalJSON()
					alerts = append(alerts, string(b))
				}
				for _, inc := range incs {
					incidents = append(incidents, fmt.Sprintf("%+v", inc))
				}
				return alerts, incidents, calls
			}
			wantA, wantI, total := run(t, 0, false)
			if len(wantA) != tt.alerts || len(wantI) != tt.incs {
				t.Fatalf("%d alerts in %d incidents, want %d in %d", len(wantA), len(wantI), tt.alerts, tt.incs)
			}
			for _, after := range []bool{false, true} {
				for k := int64(1); k <= total; k++ {
					gotA, gotI, _ := run(t, k, after)
					if !slices.Equal(gotA, wantA) {
						t.Errorf("fault at call %d (after=%v): alert documents differ", k, after)
					}
					if !slices.Equal(gotI, wantI) {
						t.Errorf("fault at call %d (after=%v): incidents differ:\n%s\nwant\n%s", k, after, strings.Join(gotI, "\n"), strings.Join(wantI, "\n"))
					}
				}
			}
		})
	}
}

func TestWriteCancelled(t *testing.T) {
	docs := Group(anyAlertRule(), stormRows(2000, 0, 0), false)
	// The listings of the alerts' date folder and of the incident indexes,
	// the index (created without a read), 2000 alert writes (created
	// without a read), 14 incidents.
	at := []int64{1, 2, 3, 700, 2003, 2010}
	if testing.Short() {
		at = []int64{1, 3, 4, 2004} // each phase's first call
	}
	for _, at := range at {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			w := newWriter(t, anyAlertRule())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &callLog{Store: w.Blobs, at: at, cancel: cancel}
			w.Blobs = log
			_, err := w.Write(ctx, docs)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Write = %v, want context.Canceled", err)
			}
			// Only calls already past their check when ctx was cancelled.
			if n := log.after.Load(); n > DefaultParallelism {
				t.Errorf("%d storage calls after the cancel, want at most %d", n, DefaultParallelism)
			}
		})
	}
}

// Garbage planted in stored state is moved aside and rebuilt, and named in
// the log; the other alerts go through.
func TestUnreadableStateRebuilt(t *testing.T) {
	rows := sampleRows(t)
	tests := []struct {
		name string
		blob func(w *Writer, docs []Document, incs []Incident) (container, name string)
	}{
		{"alert", func(w *Writer, docs []Document, _ []Incident) (string, string) {
			return alertsC, BlobName(docs[1])
		}},
		{"incident", func(w *Writer, _ []Document, incs []Incident) (string, string) {
			return incidentsC, IncidentBlobName(incs[0].IncidentId)
		}},
		{"index", func(w *Writer, _ []Document, _ []Incident) (string, string) {
			return incidentsC, indexName(w.Rule.ID, "any")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWriter(t, anyAlertRule())
			var logs bytes.Buffer
			w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if _, err := w.Write(ctx, Group(w.Rule, rows[1:], false)); err != nil {
				t.Fatal(err)
			}
			docs, incs := list(t, w)
			c, name := tt.blob(w, docs, incs)
			garbage := []byte(`{"IncidentId": [`)
			if _, err := w.Blobs.Write(ctx, c, name, garbage, store.Condition{}); err != nil {
				t.Fatal(err)
			}
			// New evidence for every alert, and a later alert (a new incident
			// only for the index, whose history is lost).
			more := append(slices.Clone(rows), shifted(rows, time.Hour, "-more")...)
			want := Group(w.Rule, more, false)
			// 3 new alerts, alice's first with a new row, and the rebuilt alert.
			wantN := map[string]int{"alert": 5}[tt.name]
			if n, err := w.Write(ctx, want); err != nil || n != max(wantN, 4) {
				t.Fatalf("Write = %d, %v; want %d", n, err, max(wantN, 4))
			}
			if url := w.Blobs.URL(c, name); !strings.Contains(logs.String(), url) {
				t.Errorf("log does not name %s:\n%s", url, logs.String())
			}
			aside, _, err := w.Blobs.Read(ctx, c, store.QuarantinePrefix+name)
			if err != nil || !bytes.Equal(aside, garbage) {
				t.Errorf("quarantined copy = %q, %v", aside, err)
			}
			stored, incs := list(t, w)
			checkIncidents(t, stored, incs, MaxAlertsPerIncident)
			if !reflect.DeepEqual(withoutIncidents(stored), withoutIncidents(want)) {
				t.Error("stored alerts differ from the alerts of all rows")
			}
			if wantIncs := map[string]int{"index": 2}[tt.name]; len(incs) != max(wantIncs, 1) {
				t.Errorf("%d incidents, want %d", len(incs), max(wantIncs, 1))
			}
		})
	}
}

func TestListSkipsUnreadable(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	if _, err := w.Write(ctx, Group(w.Rule, sampleRows(t), false)); err != nil {
		t.Fatal(err)
	}
	bad := []struct{ container, name, data string }{
		{alertsC, "2024/05/02/broken.json", `{"Results":"not an array"}`},
		{alertsC, "2024/05/03/truncated.json", `{"SystemAlertId": "x`},
		{incidentsC, "incidents/broken.json", `[]`},
	}
	for _, b := range bad {
		if _, err := w.Blobs.Write(ctx, b.container, b.name, []byte(b.data), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	// A quarantined blob is not listed at all.
	if _, err := w.Blobs.Write(ctx, alertsC, store.QuarantinePrefix+"2024/05/01/old.json", []byte("{"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	docs, incs, err := Store{Blobs: w.Blobs, AlertsContainer: alertsC, IncidentsContainer: incidentsC}.List(ctx)
	var problems ListProblems
	if !errors.As(err, &problems) || len(problems) != len(bad) {
		t.Fatalf("List error = %v, want %d problems", err, len(bad))
	}
	for i, b := range bad {
		if url := w.Blobs.URL(b.container, b.name); !strings.Contains(problems[i].Error(), url) {
			t.Errorf("problem %d = %v, want it to name %s", i, problems[i], url)
		}
	}
	if len(docs) != 3 || len(incs) != 1 {
		t.Errorf("List gave %d alerts and %d incidents, want the 3 and 1 readable", len(docs), len(incs))
	}
}

// A 20k-row alert stored in two parts, then redelivered whole, keeps an
// exact count and the same document as its rows in one batch.
func TestWriteLargeAlertRedelivered(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	rows := stormRows(0, 1, 20000)
	for _, part := range [][]detect.Result{rows[:12000], rows[8000:], rows} {
		if _, err := w.Write(ctx, Group(w.Rule, part, false)); err != nil {
			t.Fatal(err)
		}
	}
	stored, incs := listOf(t, w)
	checkIncidents(t, stored, incs, MaxAlertsPerIncident)
	want := Group(w.Rule, rows, false)
	if len(stored) != 1 || stored[0].ExtendedProperties.ResultCount != 20000 || !stored[0].ResultsTruncated ||
		stored[0].ResultsOmitted != 19000 || len(stored[0].Results) != MaxEvidenceRows {
		t.Fatalf("stored %d alerts: %+v", len(stored), stored[0].ExtendedProperties)
	}
	if !reflect.DeepEqual(withoutIncidents(stored), withoutIncidents(want)) {
		t.Error("stored alert differs from the alert of all rows")
	}
}
