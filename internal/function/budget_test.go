package function

import (
	"context"
	"errors"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/memlimit"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestInstanceMemory(t *testing.T) {
	cgroup := func(n int64) func() (int64, string, bool) {
		return func() (int64, string, bool) { return n, "/sys/fs/cgroup/memory.max", n > 0 }
	}
	for _, tc := range []struct {
		name       string
		goLimit    memlimit.Limit
		cgroup     func() (int64, string, bool)
		want       int64
		wantSource string
	}{
		{"GOMEMLIMIT wins", memlimit.Limit{Bytes: 350 << 20, Source: "GOMEMLIMIT"}, cgroup(512 << 20), int64(float64(350<<20) * goLimitShare), "GOMEMLIMIT"},
		{"Go limit from the cgroup", memlimit.Limit{Bytes: 360 << 20, Source: "/sys/fs/cgroup/memory.max"}, cgroup(512 << 20), 288 << 20, "/sys/fs/cgroup/memory.max"},
		{"cgroup limit, no Go limit", memlimit.Limit{}, cgroup(512 << 20), 256 << 20, "/sys/fs/cgroup/memory.max"},
		{"no limit anywhere", memlimit.Limit{}, cgroup(0), DefaultInstanceMemory / 2, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, source := instanceMemory(tc.goLimit, tc.cgroup)
			if got != tc.want || source != tc.wantSource {
				t.Errorf("instanceMemory = %d from %s, want %d from %s", got, source, tc.want, tc.wantSource)
			}
		})
	}
}

// gateStore holds the pipeline at its first look at an export blob (its
// Stat) until open is closed or the invocation's context ends.
type gateStore struct {
	store.Store
	exports map[string]bool
	entered chan string
	open    chan struct{}
	active  atomic.Int64
	maxSeen atomic.Int64
}

func (g *gateStore) Stat(ctx context.Context, c, n string) (store.Properties, error) {
	if g.exports[c] {
		a := g.active.Add(1)
		defer g.active.Add(-1)
		for {
			m := g.maxSeen.Load()
			if a <= m || g.maxSeen.CompareAndSwap(m, a) {
				break
			}
		}
		g.entered <- n
		select {
		case <-g.open:
		case <-ctx.Done():
			return store.Properties{}, ctx.Err()
		}
	}
	return g.Store.Stat(ctx, c, n)
}

// waitFor polls cond: the handler's counters change on other goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMemoryBudget: ProcessExport invocations whose blobs do not fit in
// the budget together run one after the other; a blob larger than the whole
// budget still runs; a waiting invocation gives up when its request ends.
func TestMemoryBudget(t *testing.T) {
	var gate *gateStore
	e := newLocalEnv(t, func(s store.Store) store.Store {
		c := defaultContainers()
		gate = &gateStore{Store: s, exports: map[string]bool{c.interactive: true, c.noninteractive: true},
			entered: make(chan string, 8), open: make(chan struct{})}
		return gate
	})
	works := e.upload(casesBlobs(t, 100)) // one blob per table
	var largest int64
	for _, w := range works {
		p, err := e.data.Stat(context.Background(), w.Container, w.Name)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, p.Size)
	}
	// Room for the largest blob, not for two: and each blob here is smaller
	// than the whole budget, which a blob larger than it would take.
	h, err := New(Config{Pipeline: e.p, Exports: e.data, ServiceURL: azureServiceURL, MemoryBudget: largest * MemoryPerBlobByte})
	if err != nil {
		t.Fatal(err)
	}
	if got, source := h.MemoryBudget(); got != largest*MemoryPerBlobByte || source != "Config.MemoryBudget" {
		t.Fatalf("MemoryBudget() = %d, %s", got, source)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	type result struct {
		r   reply
		err error
	}
	post := func(ctx context.Context, w pipeline.Work) <-chan result {
		ch := make(chan result, 1)
		go func() {
			body := []byte(`{"Data":{"work":` + jsonString(workJSON(w)) + `},"Metadata":{"DequeueCount":1}}`)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/"+ProcessExport, strings.NewReader(string(body)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ch <- result{err: err}
				return
			}
			resp.Body.Close()
			ch <- result{r: reply{status: resp.StatusCode}}
		}()
		return ch
	}

	first := post(context.Background(), works[0])
	if got := <-gate.entered; got != works[0].Name {
		t.Fatalf("entered %s first", got)
	}
	// The second blob does not fit while the first is in flight: it waits
	// in the handler, before any storage call of the pipeline.
	cctx, cancel := context.WithCancel(context.Background())
	abandoned := post(cctx, works[1])
	waitFor(t, "the second invocation waits for memory", func() bool { return h.waiting.Load() == 1 })
	cancel()
	if r := <-abandoned; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("abandoned request: %+v", r)
	}
	waitFor(t, "the abandoned invocation stops waiting", func() bool { return h.waiting.Load() == 0 })

	second := post(context.Background(), works[1])
	waitFor(t, "the second invocation waits again", func() bool { return h.waiting.Load() == 1 })
	select {
	case n := <-gate.entered:
		t.Fatalf("%s started while the first blob held the budget", n)
	default:
	}
	close(gate.open)
	for _, ch := range []<-chan result{first, second} {
		if r := <-ch; r.err != nil || r.r.status != http.StatusOK {
			t.Fatalf("ProcessExport: %+v", r)
		}
	}
	if <-gate.entered != works[1].Name {
		t.Fatal("the second blob never ran")
	}
	if m := gate.maxSeen.Load(); m != 1 {
		t.Errorf("%d blobs were in the pipeline at once, want 1", m)
	}
	if got := alerttest.Rows(t, e.data, e.c.alerts); len(got) != 12 {
		t.Errorf("alerts hold %d rows, want the 12 rule-case rows", len(got))
	}

	t.Run("a blob larger than the whole budget runs alone", func(t *testing.T) {
		h, err := New(Config{Pipeline: e.p, Exports: e.data, ServiceURL: azureServiceURL, MemoryBudget: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		w := e.put(e.c.interactive, "timestamp=2026-11-20T11/big.json", casesBlobs(t, 100)[0].data)
		done := make(chan reply, 1)
		go func() {
			r, err := postTo(srv.URL, ProcessExport, queuePayload(workJSON(w), 1))
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		<-gate.entered
		if n := h.running.Load(); n != 1 {
			t.Errorf("running = %d, want 1", n)
		}
		r := <-done
		checkReply(t, r, http.StatusOK)
		if !strings.Contains(string(r.ReturnValue), `"rows_read"`) || strings.Contains(string(r.ReturnValue), "error") {
			t.Errorf("ReturnValue %s", r.ReturnValue)
		}
	})
}

// TestBudgetWeight: an interactive blob weighs MemoryPerBlobByte a byte; a
// non-interactive one, streamed, at most MemoryPerStreamedBlob whatever
// its size; neither more than the whole budget.
func TestBudgetWeight(t *testing.T) {
	b := newBudget(1<<30, "test")
	for _, tc := range []struct {
		size     int64
		streamed bool
		want     int64
	}{
		{0, true, 0},
		{10 << 20, false, 100 << 20},
		{10 << 20, true, 100 << 20},
		{563 << 20, false, 1 << 30}, // the 2M-row blob: alone
		{563 << 20, true, MemoryPerStreamedBlob},
		{5 << 30, true, MemoryPerStreamedBlob}, // a diagnostic archive's PT1H.json
	} {
		if got := b.weight(tc.size, tc.streamed); got != tc.want {
			t.Errorf("weight(%d, streamed %v) = %d, want %d", tc.size, tc.streamed, got, tc.want)
		}
	}
	if got := newBudget(100<<20, "small").weight(5<<30, true); got != 100<<20 {
		t.Errorf("a streamed blob on a budget below its cap weighs %d, want the whole budget", got)
	}
}
