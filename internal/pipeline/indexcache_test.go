package pipeline

import (
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"slices"
	"testing"
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
