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

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// msg is what the generator sends a table writer: a batch of rows of one
// hour (retry: in a file of its own), or the end of that hour.
type msg struct {
	hour  time.Time
	rec   arrow.RecordBatch
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
	schema      *arrow.Schema
	props       *parquet.WriterProperties
	rowsPerFile int64
	rng         *rand.Rand // file names
	in          chan msg
	done        atomic.Int64 // files completed, read by the generator
	cur         *openFile
	rows, dups  int64
	bytes       int64
	files       []File
}

type openFile struct {
	hour       time.Time
	f          *os.File
	bw         *bufio.Writer
	fw         *pqarrow.FileWriter
	tmp, final string
	rows       int64
	retry      bool
}

func newTableWriter(o Options, t signin.Table, container string, codec compress.Compression, rng *rand.Rand) *tableWriter {
	cols := tableColumns(t, o.Narrow)
	popts := []parquet.WriterProperty{
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(int64(o.RowGroupRows)),
		parquet.WithCreatedBy("tokenpivot gen"),
	}
	for _, name := range highCardinality {
		popts = append(popts, parquet.WithDictionaryFor(name, false))
	}
	return &tableWriter{
		table: t, container: container, out: o.Out, dir: filepath.Join(o.Out, container),
		cols: cols, schema: arrowSchema(cols), props: parquet.NewWriterProperties(popts...),
		rowsPerFile: int64(o.RowsPerFile), rng: rng, in: make(chan msg, 1),
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
		for m := range tw.in { // let the generator finish sending
			if m.rec != nil {
				m.rec.Release()
			}
		}
	}()
	for m := range tw.in {
		if err := ctx.Err(); err != nil {
			if m.rec != nil {
				m.rec.Release()
			}
			return err
		}
		err := tw.handle(m)
		if m.rec != nil {
			m.rec.Release()
		}
		if err != nil {
			return fmt.Errorf("gen: %s: %w", tw.table, err)
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
		if err := tw.write(m.rec); err != nil {
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
	for off := int64(0); off < rec.NumRows(); {
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
		n := min(rec.NumRows()-off, tw.rowsPerFile-tw.cur.rows)
		part := rec
		if off > 0 || n < rec.NumRows() {
			part = rec.NewSlice(off, off+n)
		}
		err := tw.write(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (tw *tableWriter) write(rec arrow.RecordBatch) error {
	if err := tw.cur.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s: %w", tw.cur.tmp, err)
	}
	tw.cur.rows += rec.NumRows()
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
	of.fw, err = pqarrow.NewFileWriter(tw.schema, of.bw, tw.props, pqarrow.DefaultWriterProps())
	if err != nil {
		f.Close()
		os.Remove(of.tmp)
		return fmt.Errorf("create %s: %w", of.tmp, err)
	}
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
	err := of.fw.Close()
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
	of.fw.Close()
	of.f.Close()
	os.Remove(of.tmp)
}
