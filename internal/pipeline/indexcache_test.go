package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestIndexCacheNeverStale: non-interactive blobs reuse the interactive
// index while the interactive extracts are the same, and build it again as
// soon as one is added: with the tables' blobs interleaved (each interactive
// blob followed by non-interactive ones whose pairs it may hold), every
// order stores exactly the batch rule's rows, and the cache was both hit
// and missed.
func TestIndexCacheNeverStale(t *testing.T) {
	safe := caseSafeList(t)
	blobs := sealedBlobs(t, true)
	want := oracle(t, blobs, safe)
	iw, nw := byTable(blobs)
	var interleaved []Work
	for k := 0; k < max(len(iw), len(nw)); k++ {
		if k < len(iw) {
			interleaved = append(interleaved, iw[k])
		}
		if k < len(nw) {
			interleaved = append(interleaved, nw[k])
		}
	}
	// Then every non-interactive blob again, new names: all cache hits.
	again := map[Work][]byte{}
	for _, w := range nw {
		again[Work{w.Container, "again/" + w.Name}] = blobs[w]
	}
	_, nw2 := byTable(again)
	for name, q := range map[string][]Work{
		"interleaved":                   interleaved,
		"non-interactive first, twice":  slices.Concat(nw, iw, nw2),
		"interleaved, then all again":   slices.Concat(interleaved, nw2),
		"interactive last of each pair": slices.Concat(nw[:1], iw[:1], nw[1:], iw[1:], nw2),
	} {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && name != "interleaved" && name != "interactive last of each pair" {
				t.Skip("-short: two of the four orders (the full suite runs all)")
			}
			s := newLocal(t)
			p := newTestPipeline(t, s, safe)
			writeBlobs(t, s, blobs)
			writeBlobs(t, s, again)
			runIn(t, p, q, 1)
			all := union(want, oracle(t, again, safe))
			if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, all) {
				t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(all), got, all)
			}
			if name != "interleaved" && p.indexes.hits == 0 {
				t.Errorf("the interactive index was never reused (%d misses)", p.indexes.misses)
			}
			if p.indexes.misses == 0 {
				t.Errorf("the interactive index was never built")
			}
			t.Logf("index cache: %d hits, %d misses", p.indexes.hits, p.indexes.misses)
		})
	}
}

// slowLists is a Store whose List takes latency and records how many were
// in flight at once.
type slowLists struct {
	store.Store
	latency      time.Duration
	mu           sync.Mutex
	now, most, n int
}

func (s *slowLists) List(ctx context.Context, container, prefix string, fn func(store.Properties) error) error {
	s.mu.Lock()
	s.now++
	s.n++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(s.latency)
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	return s.Store.List(ctx, container, prefix, fn)
}

// TestListExtractsHoursAtOnce: a look lists the hours its window reaches at
// once, not one round trip after another (at 25 ms a request, three
// listings a look), and returns them hour by hour as before.
func TestListExtractsHoursAtOnce(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	slow := &slowLists{Store: s, latency: 50 * time.Millisecond}
	p := newTestPipeline(t, s, caseSafeList(t))
	p.cfg.State = slow
	h := time.Date(2026, 11, 20, 5, 0, 0, 0, time.UTC)
	hours := reach(signin.NonInteractive, h)
	var want []string
	for k, ih := range slices.Backward(hours) {
		for _, name := range []string{"a" + extractSuffix, "b" + extractSuffix} {
			n := extractPrefix(signin.Interactive, ih) + name
			if _, err := s.Write(ctx, p.cfg.StateContainer, n, []byte{byte(k)}, store.Condition{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ih := range hours {
		want = append(want, extractPrefix(signin.Interactive, ih)+"a"+extractSuffix, extractPrefix(signin.Interactive, ih)+"b"+extractSuffix)
	}
	listed, err := p.listExtracts(ctx, signin.Interactive, hours)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range listed {
		got = append(got, pr.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want hour by hour %q", got, want)
	}
	if slow.n != len(hours) || slow.most != len(hours) {
		t.Errorf("%d listings, at most %d at once; want the %d hours listed at once", slow.n, slow.most, len(hours))
	}
}
