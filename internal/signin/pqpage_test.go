package signin

import (
	"bytes"
	"context"
	"fmt"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"testing"
	"time"
)

// A file bigger than one decoding slice, in several row groups, must read
// the same whatever the parallelism and however selective Keep is: this
// exercises the pipeline across slices and row groups, and the skipping of
// rejected rows in the columns decoded for kept rows only.
func TestScanParquetSlicesAndParallelism(t *testing.T) {
	const n = 100_000 // row groups of 70,000 (two slices) and 30,000
	recs := truncTime(benchRecords(n), time.Microsecond)
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), recs,
		[]pqOpt{withCodec(&pq.Snappy), withRowGroup(70_000)})
	few := map[string]bool{"user0007@contoso.com": true, "user1234@contoso.com": true, "user2999@contoso.com": true}
	for _, kc := range []struct {
		name string
		keep func(*Record) bool
	}{
		{"all rows", nil},
		{"successes", func(r *Record) bool { return r.ResultType == "0" }},
		// A few users: runs of thousands of rejected rows between kept ones.
		{"three users", func(r *Record) bool { return few[r.UserPrincipalName] }},
		{"none", func(*Record) bool { return false }},
	} {
		var want []Record
		for _, r := range recs {
			if kc.keep == nil || kc.keep(&r) {
				want = append(want, r)
			}
		}
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/parallelism %d", kc.name, par), func(t *testing.T) {
				got, st, err := scanAll("big.parquet", data, Interactive, Options{Keep: kc.keep, Parallelism: par, BatchSize: 5000})
				if err != nil {
					t.Fatal(err)
				}
				if st.Read != n || st.Rows != int64(len(want)) {
					t.Errorf("stats %+v, want Read %d Rows %d", st, n, len(want))
				}
				if len(got) != len(want) {
					t.Fatalf("got %d records, want %d", len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
					}
				}
			})
		}
	}
}

// Records outlive the scan: their strings must not alias buffers that the
// next batch or the next scan reuses.
// Both with dictionary pages and with PLAIN ones (whose text the filter
// stage reads in place, in pages released after the slice is emitted).
func TestScanParquetRecordsOutliveScan(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain %v", plain), func(t *testing.T) { testRecordsOutliveScan(t, plain) })
	}
}

func testRecordsOutliveScan(t *testing.T, plain bool) {
	recs := truncTime(benchRecords(20_000), time.Microsecond)
	props := []pqOpt{withRowGroup(3_000)}
	if plain {
		props = append(props, withPlain(), withPageBuffer(4<<10))
	}
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), recs, props)
	var kept []Record
	_, err := Scan(context.Background(), bytes.NewReader(data), int64(len(data)), Options{Name: "a.parquet", Table: Interactive, BatchSize: 700, Keep: func(r *Record) bool { return r.ResultType == "0" }}, func(b []Record) error {
		kept = append(kept, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Another scan of other content reuses the pooled buffers.
	other := truncTime(benchRecords(5_000), time.Second)
	for i := range other {
		other[i].Id, other[i].UserPrincipalName = "x"+other[i].Id, "y"+other[i].UserPrincipalName
	}
	if _, _, err := scanAll("b.parquet", writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), other, nil), Interactive, Options{}); err != nil {
		t.Fatal(err)
	}
	var want []Record
	for _, r := range recs {
		if r.ResultType == "0" {
			want = append(want, r)
		}
	}
	if len(kept) != len(want) {
		t.Fatalf("got %d records, want %d", len(kept), len(want))
	}
	for i := range kept {
		if kept[i] != want[i] {
			t.Fatalf("record %d changed after the scan:\n got %+v\nwant %+v", i, kept[i], want[i])
		}
	}
}

// Columns the reader does not want are never decoded, so a column that no
// row reader takes (a LIST group with two repeated children, not a list's
// one) does not make the file unreadable.
func TestScanParquetIgnoresUnconvertibleColumns(t *testing.T) {
	recs := truncTime(sampleRecords, time.Microsecond)
	cols := append(stdCols(tsCol(pq.Microsecond, true), strResultType), pqCol{"Tags", tOddList, func(int, Record) any { return nil }})
	data := writeParquet(t, cols, recs, []pqOpt{withCodec(&pq.Snappy)})
	pf, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var tags *format.SchemaElement
	for i, e := range pf.Metadata().Schema {
		if e.Name == "Tags" {
			tags = &pf.Metadata().Schema[i]
		}
	}
	if tags == nil || tags.LogicalType.String() != "LIST" || tags.NumChildren.V != 2 {
		t.Fatalf("Tags is %+v: the test no longer covers what it is named for", tags)
	}

	got, st, err := scanAll("tags.parquet", data, Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, recs)
	if st.Read != int64(len(recs)) {
		t.Errorf("stats %+v", st)
	}
}

// A file with the schema and no row group is an export of an empty hour.
func TestScanParquetNoRowGroups(t *testing.T) {
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), nil, nil)
	pf, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pf.RowGroups()); n != 0 {
		t.Fatalf("%d row groups", n)
	}
	got, st, err := scanAll("empty.parquet", data, Interactive, Options{Keep: func(*Record) bool { return true }})
	if err != nil || len(got) != 0 || st.Read != 0 {
		t.Errorf("got %d records, stats %+v, error %v", len(got), st, err)
	}
}
