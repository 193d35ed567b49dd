package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingReaderAt counts the reads the Parquet reader asks for.
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
// of the blob is fetched, in fewer requests than parquet-go's reads.
func TestReaderAtParquet(t *testing.T) {
	cols := []string{"TimeGenerated", "UserPrincipalName", "IPAddress", "UserAgent", "ResultType", "AppDisplayName", "Location", "CorrelationId"}
	g := parquet.Group{}
	for _, c := range cols {
		g[c] = parquet.Optional(parquet.Encoded(parquet.String(), &parquet.Plain))
	}
	schema := parquet.NewSchema("schema", g)
	const rows = 24000
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, schema, parquet.MaxRowsPerRowGroup(rows/4), parquet.Compression(&parquet.Snappy))
	leaves := schema.Columns() // the group's columns, in schema order
	batch := make([]parquet.Row, 0, 1000)
	for r := range rows {
		row := make(parquet.Row, len(leaves))
		for i, path := range leaves {
			row[i] = parquet.ByteArrayValue([]byte(value(path[0], r))).Level(0, 1, i)
		}
		if batch = append(batch, row); len(batch) == cap(batch) || r == rows-1 {
			if _, err := w.WriteRows(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.Close(); err != nil {
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
		// The export reader's options: with its 256 KiB page-reader buffer a
		// column chunk is a direct read and its short rest; parquet-go's
		// default 4 KiB would make each chunk's first read fetch a block.
		pf, err := parquet.OpenFile(counted, ra.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(256<<10))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(pf.RowGroups()); n != 4 {
			t.Fatalf("%d row groups, want 4", n)
		}
		for _, name := range []string{"UserPrincipalName", "IPAddress"} {
			leaf, ok := pf.Schema().Lookup(name)
			if !ok {
				t.Fatalf("no column %s", name)
			}
			r := 0
			for _, rg := range pf.RowGroups() {
				pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
				for {
					page, err := pages.ReadPage()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					vals := make([]parquet.Value, page.NumValues())
					n, err := page.Values().ReadValues(vals)
					if err != nil && !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					for _, v := range vals[:n] {
						if got, want := string(v.ByteArray()), value(name, r); got != want {
							t.Fatalf("%s row %d = %q, want %q", name, r, got, want)
						}
						r++
					}
					parquet.Release(page)
				}
				pages.Close()
			}
			if r != rows {
				t.Fatalf("%s: read %d rows, want %d", name, r, rows)
			}
		}
		t.Logf("blob %d bytes, %d row groups: parquet-go made %d reads, the store got %d requests for %d bytes",
			p.Size, len(pf.RowGroups()), counted.calls.Load(), ra.Requests(), ra.BytesFetched())
		if ra.BytesFetched() > p.Size/2 {
			t.Errorf("fetched %d of %d bytes for 2 of 8 columns", ra.BytesFetched(), p.Size)
		}
		if ra.Requests() > counted.calls.Load() {
			t.Errorf("%d requests for %d reads", ra.Requests(), counted.calls.Load())
		}
	})
}
