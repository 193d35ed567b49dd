package signin

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// A file bigger than one decoding slice, in several row groups, must read
// the same whatever the parallelism and however selective Keep is: this
// exercises the pipeline across slices and row groups, and the skipping of
// rejected rows in the columns decoded for kept rows only.
func TestScanParquetSlicesAndParallelism(t *testing.T) {
	const n = 100_000 // row groups of 70,000 (two slices) and 30,000
	recs := truncTime(benchRecords(n), time.Microsecond)
	data := writeParquet(t, stdCols(tsCol(arrow.Microsecond, "UTC"), strResultType), recs,
		[]parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(70_000)})
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
	props := []parquet.WriterProperty{parquet.WithMaxRowGroupLength(3_000)}
	if plain {
		props = append(props, parquet.WithDictionaryDefault(false), parquet.WithDataPageSize(4<<10))
	}
	data := writeParquet(t, stdCols(tsCol(arrow.Microsecond, "UTC"), strResultType), recs, props)
	var kept []Record
	_, err := Scan(context.Background(), "a.parquet", bytes.NewReader(data), int64(len(data)), Interactive,
		Options{BatchSize: 700, Keep: func(r *Record) bool { return r.ResultType == "0" }}, func(b []Record) error {
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
	if _, _, err := scanAll("b.parquet", writeParquet(t, stdCols(tsCol(arrow.Microsecond, "UTC"), strResultType), other, nil), Interactive, Options{}); err != nil {
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

// Columns the reader does not want are never decoded, so a column that
// arrow-go's Arrow conversion rejects (a LIST group with two children) does
// not make the file unreadable.
func TestScanParquetIgnoresUnconvertibleColumns(t *testing.T) {
	tagA := schema.NewByteArrayNode("a", parquet.Repetitions.Repeated, -1)
	tagB := schema.NewByteArrayNode("b", parquet.Repetitions.Repeated, -1)
	tags, err := schema.NewGroupNodeLogical("Tags", parquet.Repetitions.Optional, schema.FieldList{tagA, tagB}, schema.ListLogicalType{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	root := stdSchema(t, tags)
	if _, err := pqarrow.FromParquet(schema.NewSchema(root), nil, nil); err == nil {
		t.Fatal("the Arrow conversion accepts the Tags column: the test no longer covers what it is named for")
	}

	recs := truncTime(sampleRecords, time.Microsecond)
	var buf bytes.Buffer
	w := file.NewParquetWriter(&buf, root, file.WithWriterProps(parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))))
	rg := w.AppendRowGroup()
	nulls := make([]int16, len(recs)) // every Tags is null: def and rep level 0
	for range 2 {
		cw, err := rg.NextColumn()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.(*file.ByteArrayColumnChunkWriter).WriteBatch(nil, nulls, nulls); err != nil {
			t.Fatal(err)
		}
		cw.Close()
	}
	cw, err := rg.NextColumn()
	if err != nil {
		t.Fatal(err)
	}
	var micros []int64
	defs := make([]int16, len(recs))
	for i, r := range recs {
		micros, defs[i] = append(micros, r.TimeGenerated.UnixMicro()), 1
	}
	if _, err := cw.(*file.Int64ColumnChunkWriter).WriteBatch(micros, defs, nil); err != nil {
		t.Fatal(err)
	}
	cw.Close()
	for _, name := range stdTexts {
		var vals []parquet.ByteArray
		defs := make([]int16, len(recs))
		for i, r := range recs {
			if v := fieldValue(r, fieldByName(name)); v != "" {
				vals, defs[i] = append(vals, parquet.ByteArray(v)), 1
			}
		}
		cw, err := rg.NextColumn()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.(*file.ByteArrayColumnChunkWriter).WriteBatch(vals, defs, nil); err != nil {
			t.Fatal(err)
		}
		cw.Close()
	}
	rg.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	got, st, err := scanAll("tags.parquet", buf.Bytes(), Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, recs)
	if st.Read != int64(len(recs)) {
		t.Errorf("stats %+v", st)
	}
}

var stdTexts = []string{ColUserPrincipalName, ColIPAddress, ColLocation, ColResultType, ColAuthenticationRequirement,
	ColConditionalAccessStatus, ColAppDisplayName, ColCorrelationId, ColUniqueTokenIdentifier, ColId}

// stdSchema is a Parquet schema of the columns a scan reads (TimeGenerated
// in microseconds, then stdTexts), after the given extra columns.
func stdSchema(t *testing.T, extra ...schema.Node) *schema.GroupNode {
	fields := schema.FieldList(extra)
	ts, err := schema.NewPrimitiveNodeLogical(ColTimeGenerated, parquet.Repetitions.Optional,
		schema.NewTimestampLogicalType(true, schema.TimeUnitMicros), parquet.Types.Int64, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	fields = append(fields, ts)
	for _, name := range stdTexts {
		node, err := schema.NewPrimitiveNodeLogical(name, parquet.Repetitions.Optional, schema.StringLogicalType{}, parquet.Types.ByteArray, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, node)
	}
	root, err := schema.NewGroupNode("schema", parquet.Repetitions.Required, fields, -1)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// fieldValue is the string field f of r.
func fieldValue(r Record, f field) string {
	switch f {
	case fUserPrincipalName:
		return r.UserPrincipalName
	case fIPAddress:
		return r.IPAddress
	case fLocation:
		return r.Location
	case fResultType:
		return r.ResultType
	case fAuthenticationRequirement:
		return r.AuthenticationRequirement
	case fConditionalAccessStatus:
		return r.ConditionalAccessStatus
	case fAppDisplayName:
		return r.AppDisplayName
	case fCorrelationId:
		return r.CorrelationId
	case fUniqueTokenIdentifier:
		return r.UniqueTokenIdentifier
	case fId:
		return r.Id
	}
	panic("no string field")
}

// A file with the schema and no row group is an export of an empty hour.
func TestScanParquetNoRowGroups(t *testing.T) {
	var buf bytes.Buffer
	w := file.NewParquetWriter(&buf, stdSchema(t))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n := pf.NumRowGroups(); n != 0 {
		t.Fatalf("%d row groups", n)
	}
	got, st, err := scanAll("empty.parquet", data, Interactive, Options{Keep: func(*Record) bool { return true }})
	if err != nil || len(got) != 0 || st.Read != 0 {
		t.Errorf("got %d records, stats %+v, error %v", len(got), st, err)
	}
}
