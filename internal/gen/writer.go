package gen

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// msg is what the generator sends a table writer: a batch of rows of one
// hour (retry: in a file of its own), or the end of that hour.
type msg struct {
	hour  time.Time
	rec   *colRows
	retry bool
	end   bool
}

// tableWriter writes one table's rows into hourly Parquet files, starting a
// new file every RowsPerFile rows. It runs in its own goroutine so encoding
// and compression overlap with generation.
type tableWriter struct {
	table       signin.Table
	container   string
	out, dir    string
	cols        []column
	schema      *parquet.Schema
	opts        []parquet.WriterOption
	rowsPerFile int64
	rgRows      int
	rng         *rand.Rand // file names
	in          chan msg
	free        chan *colRows // written batches, for the generator to reuse
	done        atomic.Int64  // files completed, read by the generator
	cur         *openFile
	rows, dups  int64
	bytes       int64
	files       []File
}

type openFile struct {
	hour       time.Time
	f          *os.File
	bw         *bufio.Writer
	pw         *parquet.GenericWriter[any]
	tmp, final string
	rows       int64
	rgRows     int // rows in the row group being written
	retry      bool
}

func newTableWriter(o Options, t signin.Table, container string, codec compress.Codec, rng *rand.Rand) *tableWriter {
	cols := tableColumns(t, o.Narrow)
	schema := exportSchema(cols)
	opts := []parquet.WriterOption{
		schema,
		parquet.Compression(codec),
		&parquet.WriterConfig{CreatedBy: "tokenpivot gen"}, // CreatedBy would add " version (build )"
		// Version 1 pages and a 1 MiB dictionary limit (then plain), the
		// defaults of the Arrow writer gen used before.
		parquet.DataPageVersion(1),
		parquet.DictionaryMaxBytes(1 << 20),
	}
	return &tableWriter{
		table: t, container: container, out: o.Out, dir: filepath.Join(o.Out, container),
		cols: cols, schema: schema, opts: opts, rgRows: o.RowGroupRows,
		rowsPerFile: int64(o.RowsPerFile), rng: rng, in: make(chan msg, 1), free: make(chan *colRows, 2),
	}
}

func (tw *tableWriter) run(ctx context.Context, cancel context.CancelFunc) (err error) {
	defer func() {
		if err != nil {
			cancel()
			if tw.cur != nil {
				tw.cur.abort()
			}
		}
		for range tw.in { // let the generator finish sending
		}
	}()
	for m := range tw.in {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tw.handle(m); err != nil {
			return fmt.Errorf("gen: %s: %w", tw.table, err)
		}
		if m.rec != nil {
			select {
			case tw.free <- m.rec:
			default:
			}
		}
	}
	// The input ends with a file open only when the generator stopped early.
	if tw.cur != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return tw.closeFile()
	}
	return nil
}

func (tw *tableWriter) handle(m msg) error {
	if m.end {
		return tw.closeFile()
	}
	if m.retry {
		// An export retry: the repeated records land in a file of their own.
		if err := tw.closeFile(); err != nil {
			return err
		}
		if err := tw.openFile(m.hour, true); err != nil {
			return err
		}
		if err := tw.write(m.rec, 0, m.rec.n); err != nil {
			return err
		}
		return tw.closeFile()
	}
	if tw.cur != nil && !tw.cur.hour.Equal(m.hour) {
		if err := tw.closeFile(); err != nil {
			return err
		}
	}
	rec := m.rec
	for off := 0; off < rec.n; {
		if tw.cur != nil && tw.cur.rows >= tw.rowsPerFile {
			if err := tw.closeFile(); err != nil {
				return err
			}
		}
		if tw.cur == nil {
			if err := tw.openFile(m.hour, false); err != nil {
				return err
			}
		}
		n := min(rec.n-off, int(tw.rowsPerFile-tw.cur.rows))
		if err := tw.write(rec, off, off+n); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// pageRows bounds the rows given a column writer at once: it flushes a page
// only after a write, so this keeps pages near the page buffer size.
const pageRows = 512

// write writes rows [lo, hi) of rec, column by column, ending a row group
// every RowGroupRows rows.
func (tw *tableWriter) write(rec *colRows, lo, hi int) error {
	of := tw.cur
	for lo < hi {
		n := min(hi-lo, tw.rgRows-of.rgRows, pageRows)
		for i, cw := range of.pw.ColumnWriters() {
			if _, err := cw.WriteRowValues(rec.vals[i][lo : lo+n]); err != nil {
				return fmt.Errorf("write %s: %w", of.tmp, err)
			}
		}
		lo += n
		of.rows += int64(n)
		if of.rgRows += n; of.rgRows == tw.rgRows {
			if err := of.pw.Flush(); err != nil {
				return fmt.Errorf("write %s: %w", of.tmp, err)
			}
			of.rgRows = 0
		}
	}
	return nil
}

// openFile starts <dir>/timestamp=<hour>/<guid>.gz.parquet, written under a
// hidden temporary name until complete, so a watcher never sees half a file.
func (tw *tableWriter) openFile(hour time.Time, retry bool) error {
	dir := filepath.Join(tw.dir, "timestamp="+hour.UTC().Format("2006-01-02T15"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := newGUID(tw.rng).String() + ".gz.parquet"
	of := &openFile{hour: hour, final: filepath.Join(dir, name), tmp: filepath.Join(dir, "."+name+".tmp"), retry: retry}
	f, err := os.Create(of.tmp)
	if err != nil {
		return err
	}
	of.f, of.bw = f, bufio.NewWriterSize(f, 1<<20)
	of.pw = parquet.NewGenericWriter[any](of.bw, tw.opts...)
	tw.cur = of
	return nil
}

// closeFile finishes the current file, if any, and gives it its final name.
func (tw *tableWriter) closeFile() error {
	of := tw.cur
	if of == nil {
		return nil
	}
	tw.cur = nil
	err := of.pw.Close()
	if err == nil {
		err = of.bw.Flush()
	}
	if cerr := of.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(of.tmp, of.final)
	}
	if err != nil {
		os.Remove(of.tmp)
		return fmt.Errorf("write %s: %w", of.final, err)
	}
	st, err := os.Stat(of.final)
	if err != nil {
		return err
	}
	tw.rows += of.rows
	if of.retry {
		tw.dups += of.rows
	}
	tw.bytes += st.Size()
	tw.files = append(tw.files, File{Path: relPath(tw.out, of.final), Table: tw.table, Rows: of.rows, Retry: of.retry})
	tw.done.Add(1)
	return nil
}

func (of *openFile) abort() {
	of.f.Close()
	os.Remove(of.tmp)
}
