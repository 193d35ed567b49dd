package function

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/rulecases"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// exportBlob is one export blob of a fixture, by table (container names
// differ per test).
type exportBlob struct {
	table signin.Table
	name  string
	data  []byte
}

type fixture struct {
	blobs []exportBlob
	safe  *rule.SafeList
	want  []detect.Result // the batch rule over every row of every blob
}

func casesSafeList(t testing.TB) *rule.SafeList {
	safe, err := rulecases.SafeList()
	if err != nil {
		t.Fatal(err)
	}
	return safe
}

// casesBlobs is the rule cases split into export blobs of per lines
// (rulecases.Blobs: '=', '/' and a space in the names), so pairs cross
// blobs and duplicates land apart.
func casesBlobs(t testing.TB, per int) []exportBlob {
	split, err := rulecases.Blobs(per)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]exportBlob, len(split))
	for i, b := range split {
		out[i] = exportBlob{b.Table, b.Name, b.Data}
	}
	return out
}

// genBlobs writes a small synthetic tenant with internal/gen: Parquet
// exports, several files per table-hour, planted pivots and look-alikes.
func genBlobs(t testing.TB) []exportBlob {
	dir := t.TempDir()
	o := gen.NewOptions(dir)
	o.Users, o.Hours, o.Seed = 40, 3, 7
	o.Attacks, o.LookalikeSets = 4, 1
	o.InteractivePerUserDay = 24
	o.RowsPerFile, o.RowGroupRows = 150, 64
	o.DuplicateRate = 0.02
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("gen: %v", err)
	}
	var out []exportBlob
	for _, f := range sum.Files {
		container, name, _ := strings.Cut(f.Path, "/")
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		tbl := signin.Interactive
		if container == o.NonInteractiveContainer {
			tbl = signin.NonInteractive
		}
		out = append(out, exportBlob{tbl, name, data})
	}
	return out
}

var (
	fixtureOnce sync.Once
	theFixture  fixture
	fixtureErr  string
)

// contractFixture is the rule cases plus a generated tenant, and the
// oracle: the batch rule (detect.Run) over all their rows.
func contractFixture(t *testing.T) fixture {
	fixtureOnce.Do(func() {
		ft := &onceT{T: t}
		f := fixture{safe: casesSafeList(t)}
		f.blobs = append(casesBlobs(t, 3), genBlobs(ft)...)
		var I, N []signin.Record
		for _, b := range f.blobs {
			dst := &I
			if b.table == signin.NonInteractive {
				dst = &N
			}
			_, err := signin.Scan(context.Background(), bytes.NewReader(b.data), int64(len(b.data)), signin.Options{Name: b.name, Table: b.table, Final: true}, func(rs []signin.Record) error {
				*dst = append(*dst, rs...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		f.want = detect.Run(I, N, detect.Filter{Safe: f.safe})
		theFixture = f
	})
	if fixtureErr != "" {
		t.Fatal(fixtureErr)
	}
	return theFixture
}

// onceT is a testing.TB for the shared fixture.
type onceT struct{ *testing.T }

func (o *onceT) Fatalf(format string, a ...any) {
	fixtureErr = fmt.Sprintf(format, a...)
	o.T.Fatalf(format, a...)
}

// upload writes the fixture's blobs into env's export containers and
// returns the Work of each.
func (e *env) upload(blobs []exportBlob) []pipeline.Work {
	e.t.Helper()
	var works []pipeline.Work
	for _, b := range blobs {
		w := pipeline.Work{Container: e.c.interactive, Name: b.name}
		if b.table == signin.NonInteractive {
			w.Container = e.c.noninteractive
		}
		if _, err := e.data.Write(context.Background(), w.Container, w.Name, b.data, store.Condition{}); err != nil {
			e.t.Fatal(err)
		}
		works = append(works, w)
	}
	return works
}

// events returns one BlobCreated event per Work, in both schemas, some
// double-encoded, shuffled, and with duplicates (at-least-once delivery).
func (e *env) events(r *rand.Rand, works []pipeline.Work) []any {
	var evs []any
	for k, w := range works {
		u := blobURL(e.serviceURL, w.Container, w.Name)
		var ev any
		switch k % 3 {
		case 0:
			ev = eventGridEvent(BlobCreated, u, w.Container, w.Name)
		case 1:
			ev = cloudEvent(BlobCreated, u, w.Container, w.Name)
		default:
			ev = jsonString(eventGridEvent(BlobCreated, u, w.Container, w.Name))
		}
		evs = append(evs, ev)
	}
	for range len(works) / 2 {
		evs = append(evs, evs[r.IntN(len(works))])
	}
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

// deliverAll delivers events with workers concurrent host instances.
func (e *env) deliverAll(events []any, workers int) (retries int) {
	e.t.Helper()
	ch := make(chan any)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range ch {
				n, err := deliver(e.srv.URL, ev)
				mu.Lock()
				retries += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, ev := range events {
		ch <- ev
	}
	close(ch)
	wg.Wait()
	for _, err := range errs {
		e.t.Error(err)
	}
	if len(errs) > 0 {
		e.t.FailNow()
	}
	return retries
}

// checkExact asserts the alerts hold exactly the oracle's rows, each once,
// and that the Sweep finds nothing left to do.
func (e *env) checkExact(want []detect.Result) {
	e.t.Helper()
	got := alerttest.Rows(e.t, e.data, e.c.alerts)
	if !slices.EqualFunc(got, want, func(a, b detect.Result) bool { return detect.Compare(a, b) == 0 && a == b }) {
		e.t.Fatalf("alerts hold %d rows, the batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	r := e.post(Sweep, timerPayload())
	msgs, err := r.messages()
	if r.status != http.StatusOK || err != nil || len(msgs) != 0 {
		e.t.Fatalf("Sweep after delivering everything: status %d, messages %v (%v): %s", r.status, msgs, err, r.raw)
	}
}

// TestContractAnyOrderEqualsBatch is DESIGN.md's exactness contract through
// the real handler: for many seeds, the blob events shuffled and duplicated,
// delivered by 8 concurrent workers (event -> queue message -> ProcessExport),
// give alerts whose Results are exactly the batch rule's rows, each once;
// on a local directory and on Azurite.
func TestContractAnyOrderEqualsBatch(t *testing.T) {
	f := contractFixture(t)
	if len(f.want) < 12+4 {
		t.Fatalf("the oracle has %d rows: want the 12 rule-case rows and the planted pivots", len(f.want))
	}
	backends := []struct {
		name  string
		seeds int
		open  func(t *testing.T) (store.Store, containers, string)
	}{
		{"local", 12, func(t *testing.T) (store.Store, containers, string) {
			s, err := store.NewLocal(memDir(t))
			if err != nil {
				t.Fatal(err)
			}
			return s, defaultContainers(), azureServiceURL
		}},
		{"azurite", 4, func(t *testing.T) (store.Store, containers, string) {
			s, err := store.NewAzureFromConnectionString(azurite.Start(t))
			if err != nil {
				t.Fatal(err)
			}
			return s, azuriteContainers(), s.ServiceURL()
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			seeds := b.seeds
			if testing.Short() || raceEnabled {
				seeds = 2
			}
			if testing.Short() && b.name == "azurite" {
				seeds = 1 // the local backend runs two; the full suite all
			}
			start := time.Now()
			for seed := range uint64(seeds) {
				t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
					s, c, serviceURL := b.open(t)
					e := newEnv(t, s, s, c, serviceURL, f.safe)
					works := e.upload(f.blobs)
					r := rand.New(rand.NewPCG(seed, 42))
					if retries := e.deliverAll(e.events(r, works), 8); retries != 0 {
						t.Errorf("%d deliveries failed and were retried on healthy storage", retries)
					}
					e.checkExact(f.want)
				})
			}
			t.Logf("%s: %d seeds, %d blobs, %d result rows, %v", b.name, seeds, len(f.blobs), len(f.want), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestContractFailureAtEveryCall is "nothing lost, nothing twice": the k-th
// storage call of a run fails, for every k, either before it happens or
// after (its answer lost); the handler answers 500 for that delivery, the
// host redelivers it, and the final alerts are exactly the batch rule's.
func TestContractFailureAtEveryCall(t *testing.T) {
	safe := casesSafeList(t)
	blobs := casesBlobs(t, 4)
	f := fixture{blobs: blobs, safe: safe}
	var I, N []signin.Record
	for _, b := range blobs {
		dst := &I
		if b.table == signin.NonInteractive {
			dst = &N
		}
		if _, err := signin.Scan(context.Background(), bytes.NewReader(b.data), int64(len(b.data)), signin.Options{Name: b.name, Table: b.table, Final: true}, func(rs []signin.Record) error {
			*dst = append(*dst, rs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	f.want = detect.Run(I, N, detect.Filter{Safe: safe})
	if len(f.want) != 12 {
		t.Fatalf("oracle has %d rows, the cases define 12", len(f.want))
	}

	// run delivers every blob once, sequentially (so "the k-th call" is
	// well defined), over a store failing call failAt.
	// The number of calls depends on the delivery order (a later blob reads
	// the earlier ones' extracts), so each failure run uses one of a few
	// orders whose clean count is known.
	const orders = 5
	run := func(t *testing.T, order, failAt int64, after bool) (calls int64, retries int, hit bool) {
		data, err := store.NewLocal(memDir(t))
		if err != nil {
			t.Fatal(err)
		}
		fs := &faultStore{Store: data, failAt: failAt, after: after}
		e := newEnv(t, data, fs, defaultContainers(), azureServiceURL, safe)
		works := e.upload(blobs)
		r := rand.New(rand.NewPCG(uint64(order), 7))
		r.Shuffle(len(works), func(i, j int) { works[i], works[j] = works[j], works[i] })
		fs.calls.Store(0)
		for _, w := range works {
			n, err := deliver(e.srv.URL, eventGridEvent(BlobCreated, blobURL(e.serviceURL, w.Container, w.Name), w.Container, w.Name))
			retries += n
			if err != nil {
				t.Fatal(err)
			}
		}
		calls = fs.calls.Load()
		e.checkExact(f.want)
		return calls, retries, fs.hit.Load()
	}

	var cleans [orders]int64
	clean := int64(0)
	for o := range int64(orders) {
		c, retries, _ := run(t, o, 0, false)
		if retries != 0 {
			t.Fatalf("a clean run retried %d deliveries", retries)
		}
		cleans[o], clean = c, max(clean, c)
	}
	step := int64(1)
	switch {
	case testing.Short():
		step = 17
	case raceEnabled:
		step = 13
	}
	start := time.Now()
	runs := 0
	t.Cleanup(func() {
		t.Logf("%d storage calls in a clean run of %d blobs; %d failure runs in %v", clean, len(blobs), runs, time.Since(start).Round(time.Millisecond))
	})
	for _, after := range []bool{false, true} {
		for k := int64(1); k <= clean; k += step {
			order := k % orders
			if k > cleans[order] {
				continue
			}
			t.Run(fmt.Sprintf("after=%v/call%d", after, k), func(t *testing.T) {
				t.Parallel()
				_, retries, hit := run(t, order, k, after)
				if !hit {
					t.Fatalf("call %d was never made", k)
				}
				if retries != 1 {
					t.Errorf("failing call %d (after=%v): %d deliveries answered 500, want exactly 1", k, after, retries)
				}
			})
			runs++
		}
	}
}

func jsonString(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}
