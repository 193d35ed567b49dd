package signin

import (
	"bytes"
	"testing"

	pq "github.com/parquet-go/parquet-go"
)

// The slicer numbers the slices of every row group in file order, with the
// file row of each slice's first row.
func TestPQSlicer(t *testing.T) {
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), sampleRecords,
		[]pqOpt{withRowGroup(2)})
	pf, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	p := pqSlicer{file: "x.parquet", pf: pf, rgRows: -1}
	type slice struct {
		rg                 int
		base, start, count int64
		seq                int
	}
	var got []slice
	for {
		sl, err := p.next()
		if err != nil {
			t.Fatal(err)
		}
		if sl == nil {
			break
		}
		got = append(got, slice{sl.rg, sl.base(), sl.start, sl.count, sl.seq})
	}
	var want []slice
	for i := 0; i < len(sampleRecords); i += 2 {
		want = append(want, slice{i / 2, int64(i), 0, int64(min(2, len(sampleRecords)-i)), i / 2})
	}
	if len(got) != len(want) {
		t.Fatalf("slices %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("slice %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// The slices in flight while slice s is selected (see pqRing) never share a
// slot: s-1, s and s+1 in the filter ring, s-1 and s in the other.
func TestPQRingSlotsInFlight(t *testing.T) {
	for s := 1; s < 20; s++ {
		f := map[int]bool{filterRing.slot(s - 1): true, filterRing.slot(s): true, filterRing.slot(s + 1): true}
		if len(f) != 3 {
			t.Errorf("slice %d: filter slots %v shared", s, f)
		}
		if restRing.slot(s-1) == restRing.slot(s) {
			t.Errorf("slice %d: rest slot %d shared with slice %d", s, restRing.slot(s), s-1)
		}
	}
}
