package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/rulecases"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

const (
	ic = "am-signinlogs"
	nc = "am-aadnoninteractiveusersigninlogs"
)

// casesBlobs is the rule cases split into export blobs of per lines
// (rulecases.Blobs), keyed by the work that names each.
func casesBlobs(t *testing.T, per int) map[Work][]byte {
	t.Helper()
	split, err := rulecases.Blobs(per)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[Work][]byte{}
	for _, b := range split {
		c := ic
		if b.Table == signin.NonInteractive {
			c = nc
		}
		blobs[Work{c, b.Name}] = b.Data
	}
	return blobs
}

// oracle is the batch rule over every row of blobs.
func oracle(t *testing.T, blobs map[Work][]byte, safe *rule.SafeList) []detect.Result {
	t.Helper()
	var split []rulecases.Blob
	for w, data := range blobs {
		tbl := signin.Interactive
		if w.Container == nc {
			tbl = signin.NonInteractive
		}
		split = append(split, rulecases.Blob{Table: tbl, Name: w.String(), Data: data})
	}
	rows, err := rulecases.Oracle(split, safe)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func newTestPipeline(t *testing.T, s store.Store, safe *rule.SafeList) *Pipeline {
	t.Helper()
	return newPipelineOn(t, s, safe, ic, nc)
}

// newPipelineOn is a test pipeline over the export containers i and n.
func newPipelineOn(t *testing.T, s store.Store, safe *rule.SafeList, i, n string) *Pipeline {
	t.Helper()
	w := &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents"}, Rule: rule.Default()}
	p, err := New(Config{Exports: s, State: s, InteractiveContainer: i, NonInteractiveContainer: n,
		StateContainer: "tokenpivot-state", Filter: detect.Filter{Safe: safe}, Alerts: w})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []string{i, n} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

func caseSafeList(t *testing.T) *rule.SafeList {
	safe, err := rulecases.SafeList()
	if err != nil {
		t.Fatal(err)
	}
	return safe
}

func TestAnyOrderConcurrentDuplicatesEqualsBatch(t *testing.T) {
	safe := caseSafeList(t)
	blobs := casesBlobs(t, 3)
	want := oracle(t, blobs, safe)
	if len(want) != rulecases.Rows {
		t.Fatalf("oracle has %d rows, the cases define 12", len(want))
	}
	var works []Work
	for w := range blobs {
		works = append(works, w)
	}
	slices.SortFunc(works, func(a, b Work) int { return strings.Compare(a.String(), b.String()) })
	seeds := uint64(20)
	if testing.Short() {
		seeds = 4 // the full run tries 20 orders
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			s, err := store.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p := newTestPipeline(t, s, safe)
			ctx := context.Background()
			for w, data := range blobs {
				if _, err := s.Write(ctx, w.Container, w.Name, data, store.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			r := rand.New(rand.NewPCG(seed, 1))
			queue := slices.Clone(works)
			for k := 0; k < len(works)/2; k++ { // duplicate deliveries
				queue = append(queue, works[r.IntN(len(works))])
			}
			r.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
			ch := make(chan Work)
			var wg sync.WaitGroup
			errs := make(chan error, len(queue))
			for range 8 {
				wg.Go(func() {
					for w := range ch {
						if o, err := p.Process(ctx, w); err != nil || o.Status == Rejected {
							errs <- fmt.Errorf("%s: %v %v", w, err, o.Reason)
						}
					}
				})
			}
			for _, w := range queue {
				ch <- w
			}
			close(ch)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
				t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
			}
			pending, err := p.Pending(ctx)
			if err != nil || len(pending) != 0 {
				t.Fatalf("after processing everything, Pending = %v, %v", pending, err)
			}
		})
	}
}

// TestGrowingAppendBlobs follows Log Analytics data export: JSON Lines append
// blobs that grow without events, sometimes mid-line. Sweeps find the growth
// and read on from the last complete line; the result is still the batch's.
func TestGrowingAppendBlobs(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, s, safe)
	all := map[Work][]byte{}
	var chunks []struct {
		w    Work
		data []byte
	}
	for _, c := range []struct{ container, file string }{{ic, "interactive.jsonl"}, {nc, "noninteractive.jsonl"}} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", c.file))
		if err != nil {
			t.Fatal(err)
		}
		w := Work{c.container, "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
		all[w] = data
		// Cut into 4 appends at arbitrary bytes, so most cuts fall mid-line.
		for k, n := 0, len(data)/4+7; k < len(data); k += n {
			chunks = append(chunks, struct {
				w    Work
				data []byte
			}{w, data[k:min(k+n, len(data))]})
		}
	}
	want := oracle(t, all, safe)
	r := rand.New(rand.NewPCG(3, 3))
	for len(chunks) > 0 {
		// Append the next chunk of a random blob (keeping each blob's order).
		k := r.IntN(len(chunks))
		for j := 0; j < k; j++ {
			if chunks[j].w == chunks[k].w {
				k = j
				break
			}
		}
		if _, err := s.Append(ctx, chunks[k].w.Container, chunks[k].w.Name, chunks[k].data); err != nil {
			t.Fatal(err)
		}
		chunks = slices.Delete(chunks, k, k+1)
		pending, err := p.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range pending {
			o, err := p.Process(ctx, w)
			if err != nil || o.Status == Rejected {
				t.Fatalf("%s: %v %v", w, err, o.Reason)
			}
		}
	}
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for w, data := range all {
		led, _, _, err := p.readLedger(ctx, w)
		if err != nil || led.Offset != int64(len(data)) || !led.Appendable {
			t.Errorf("%s: ledger %+v (%v), want offset %d", w, led, err, len(data))
		}
	}
}

// TestRejectedBlobIsRecordedAndIsolated: unreadable content is recorded with
// an error naming blob and column, not retried until it changes, and leaves
// the other blobs' results intact.
func TestRejectedBlobIsRecordedAndIsolated(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, s, safe)
	blobs := casesBlobs(t, 5)
	want := oracle(t, blobs, safe)
	bad := map[string][]byte{
		"timestamp=2026-11-20T10/truncated.gz.parquet": []byte("PAR1\x15\x00\x15\xa0\x01"),
		"timestamp=2026-11-20T10/wrongtype.json":       []byte(`{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":7,"IPAddress":"1.1.1.1","Location":"US","ResultType":"0","AuthenticationRequirement":"x","ConditionalAccessStatus":"y"}` + "\n"),
		"timestamp=2026-11-20T10/nocolumn.json":        []byte(`{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":"a@b","IPAddress":"1.1.1.1","ResultType":"0","AuthenticationRequirement":"x","ConditionalAccessStatus":"y"}` + "\n"),
	}
	for name, data := range bad {
		blobs[Work{ic, name}] = data
	}
	for w, data := range blobs {
		if _, err := s.Write(ctx, w.Container, w.Name, data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := p.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rejected := map[string]string{}
	for _, w := range pending {
		o, err := p.Process(ctx, w)
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if o.Status == Rejected {
			rejected[w.Name] = o.Reason.Error()
		}
	}
	wantCol := map[string]string{"truncated.gz.parquet": "", "wrongtype.json": "UserPrincipalName", "nocolumn.json": "Location"}
	for name := range bad {
		msg, ok := rejected[name]
		base := path.Base(name)
		if !ok || !strings.Contains(msg, name) || !strings.Contains(msg, wantCol[base]) {
			t.Errorf("%s: rejection %q should name the blob and column %q", name, msg, wantCol[base])
		}
	}
	if len(rejected) != len(bad) {
		t.Errorf("rejected %v, want exactly the %d bad blobs", rejected, len(bad))
	}
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
		t.Fatalf("bad blobs changed the results: %d rows, want %d", len(got), len(want))
	}
	// Recorded: a redelivery or sweep does not retry them...
	if pending, _ := p.Pending(ctx); len(pending) != 0 {
		t.Fatalf("pending after rejection: %v", pending)
	}
	// ...until the blob is replaced.
	fixed := bytes.Replace(bad["timestamp=2026-11-20T10/wrongtype.json"], []byte(`:7,`), []byte(`:"a@b",`), 1)
	if _, err := s.Write(ctx, ic, "timestamp=2026-11-20T10/wrongtype.json", fixed, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if pending, _ := p.Pending(ctx); len(pending) != 1 {
		t.Fatalf("a replaced rejected blob must be pending again, got %v", pending)
	}
}
