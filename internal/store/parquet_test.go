package store_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingReaderAt counts the reads arrow-go asks for.
type countingReaderAt struct {
	r     io.ReaderAt
	calls atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls.Add(1)
	return c.r.ReadAt(p, off)
}

// value is row r of column c: distinct and hard to compress, so that each
// column chunk is a few hundred KiB.
func value(c string, r int) string {
	h := uint64(r+1) * 0x9E3779B97F4A7C15
	return c + "-" + strconv.Itoa(r) + "-" + strconv.FormatUint(h, 36) + strconv.FormatUint(h*h, 36) + strconv.FormatUint(h^h>>7, 36)
}

// TestReaderAtParquet reads two columns of a multi-row-group Parquet export
// through NewReaderAt, as the export reader does, and checks that only part
// of the blob is fetched, in fewer requests than arrow-go's reads.
func TestReaderAtParquet(t *testing.T) {
	cols := []string{"TimeGenerated", "UserPrincipalName", "IPAddress", "UserAgent", "ResultType", "AppDisplayName", "Location", "CorrelationId"}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	const rows = 24000
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, c := range cols {
		sb := b.Field(i).(*array.StringBuilder)
		for r := range rows {
			sb.Append(value(c, r))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(rows/4), parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false))
	if err := pqarrow.WriteTable(tbl, &buf, rows/4, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		p, err := s.Write(ctx, c, "exports/signinlogs.parquet", buf.Bytes(), store.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		ra := store.NewReaderAt(ctx, s, p)
		counted := &countingReaderAt{r: ra}
		pf, err := file.NewParquetReader(io.NewSectionReader(counted, 0, ra.Size()))
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		groups := make([]int, pf.NumRowGroups())
		for i := range groups {
			groups[i] = i
		}
		got, err := fr.ReadRowGroups(ctx, []int{1, 2}, groups) // UserPrincipalName, IPAddress
		if err != nil {
			t.Fatal(err)
		}
		defer got.Release()
		if got.NumRows() != rows || got.NumCols() != 2 {
			t.Fatalf("read %d rows x %d columns, want %d x 2", got.NumRows(), got.NumCols(), rows)
		}
		for ci, name := range []string{"UserPrincipalName", "IPAddress"} {
			r := 0
			for _, chunk := range got.Column(ci).Data().Chunks() {
				for i := 0; i < chunk.Len(); i++ {
					if v, want := chunk.(*array.String).Value(i), value(name, r); v != want {
						t.Fatalf("%s row %d = %q, want %q", name, r, v, want)
					}
					r++
				}
			}
		}
		t.Logf("blob %d bytes, %d row groups: arrow-go made %d reads, the store got %d requests for %d bytes",
			p.Size, pf.NumRowGroups(), counted.calls.Load(), ra.Requests(), ra.BytesFetched())
		if ra.BytesFetched() > p.Size/2 {
			t.Errorf("fetched %d of %d bytes for 2 of 8 columns", ra.BytesFetched(), p.Size)
		}
		if ra.Requests() > counted.calls.Load() {
			t.Errorf("%d requests for %d reads", ra.Requests(), counted.calls.Load())
		}
	})
}
