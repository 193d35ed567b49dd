package signin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// parquetReadRows is the most rows of a row group decoded at once: it bounds
// the memory of a large row group (or of a corrupt footer's row count).
const parquetReadRows = 65536

// ioErrReaderAt remembers the first read error of the underlying ReaderAt
// other than EOF, so that an I/O failure (worth a retry) is not mistaken for
// corrupt content when arrow-go reports it as a decoding error.
type ioErrReaderAt struct {
	r   io.ReaderAt
	mu  sync.Mutex
	err error
}

func (e *ioErrReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *ioErrReaderAt) failed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// scanParquet reads the file with arrow-go's column chunk readers (no Arrow
// arrays), one slice of at most parquetReadRows rows of a row group at a
// time:
//
//  1. the filter columns (all wanted columns without Keep) are decoded, each
//     column on its own goroutine (up to Options.Parallelism at once); text
//     is interned as it is decoded, so a dictionary-encoded value costs an
//     address lookup, not a string;
//  2. Keep selects rows on the calling goroutine;
//  3. the other columns are decoded for the kept rows only: long runs of
//     rejected rows are skipped, and a column chunk is not even read when no
//     row of its row group is kept; unique text (Id, CorrelationId, ...) is
//     copied into shared blocks, not one allocation per value;
//  4. the kept rows go to fn in batches, in file order, from the calling
//     goroutine.
//
// The steps overlap: while fn takes slice s, step 3 runs for s+1 and step 1
// for s+2, so Keep may see rows before fn has seen the earlier ones.
func scanParquet(ctx context.Context, name string, r io.ReaderAt, size int64, t Table, opts Options, fn func([]Record) error) (st Stats, err error) {
	src := &ioErrReaderAt{r: r}
	formatErr := func(col string, row int64, e error) error {
		return &FormatError{File: name, Column: col, Row: row, Err: e}
	}
	// arrow-go may panic on corrupt data; it is still just a bad file. Panics
	// of the caller's fn and Keep are not ours to hide: they are re-raised.
	inCallback := false
	defer func() {
		if p := recover(); p != nil {
			if inCallback {
				panic(p)
			}
			if ioErr := src.failed(); ioErr != nil {
				err = fmt.Errorf("%s: read parquet: %w", name, ioErr)
				return
			}
			err = formatErr("", 0, fmt.Errorf("corrupt parquet: %v", p))
		}
	}()
	// classify turns a reader error into a FormatError unless the source failed.
	classify := func(col string, row int64, e error) error {
		if ioErr := src.failed(); ioErr != nil {
			return fmt.Errorf("%s: read parquet: %w", name, ioErr)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return formatErr(col, row, e)
	}
	colErr := func(e *colError) error {
		return classify(fieldNames[e.f], e.row+1, e.err)
	}

	pf, err := file.NewParquetReader(io.NewSectionReader(src, 0, size), file.WithReadProps(readProps))
	if err != nil {
		return st, classify("", 0, fmt.Errorf("not a readable parquet file: %w", err))
	}
	defer pf.Close()
	metas, cerr := resolveColumns(pf.MetaData().Schema, t)
	if cerr != nil {
		return st, formatErr(fieldNames[cerr.f], 0, cerr.err)
	}

	batchSize := opts.BatchSize
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	par := opts.Parallelism
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	keep := opts.Keep

	// The decoding buffers of a previous scan are reused: growing them again
	// for every file costs more than the decoding itself.
	bufs := pqPool.Get().(*pqBuffers)
	defer pqPool.Put(bufs)

	// first: decoded for every row; rest: for kept rows only.
	var cols [numFields]*pqReader
	var first, rest []*pqReader
	for f, m := range metas {
		if m == nil {
			continue
		}
		c := &bufs.cols[f]
		c.reset(m)
		cols[f] = c
		if keep == nil || field(f).filter() || field(f) == fTimeGenerated {
			first = append(first, c)
		} else {
			rest = append(rest, c)
		}
	}
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.close()
				c.reset(nil)
			}
		}
	}()

	if cap(bufs.batch) < batchSize {
		bufs.batch = make([]Record, 0, batchSize)
	}
	batch := bufs.batch[:0]
	defer func() { clear(batch); bufs.batch = batch[:0] }()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		inCallback = true
		err := fn(batch)
		inCallback = false
		clear(batch) // drop references to this batch's strings
		batch = batch[:0]
		return err
	}

	anyData := false
	for _, c := range cols {
		anyData = anyData || (c != nil && c.meta.kind != kindNull)
	}
	// Slices of at most parquetReadRows rows, evenly cut from each row group.
	var (
		rgIdx   int
		rgRows  int64 = -1
		rgNext  int64
		rgSlice int64
		rowBase int64
		rgr     *file.RowGroupReader
		seq     int
		total   int64 // rows of the slices read, skipped or not
	)
	nextSlice := func() (*pqSlice, error) {
		for rgIdx < pf.NumRowGroups() {
			if rgRows < 0 {
				rgRows = pf.MetaData().RowGroup(rgIdx).NumRows()
				if rgRows < 0 {
					return nil, formatErr("", 0, fmt.Errorf("row group %d: negative row count %d", rgIdx, rgRows))
				}
				rgr, rgNext = nil, 0
				nslices := max(1, rgRows/parquetReadRows)
				if rgRows%parquetReadRows != 0 && rgRows > parquetReadRows {
					nslices++
				}
				rgSlice = rgRows / nslices
				if rgRows%nslices != 0 {
					rgSlice++
				}
				// A column chunk holds one value (or null) per row. A short
				// column is found when read, but Null-typed ones are never
				// read: when no other column is, trust no huge row count.
				for _, c := range cols {
					if c == nil || anyData {
						continue
					}
					if cc, err := pf.MetaData().RowGroup(rgIdx).ColumnChunk(c.meta.leaf); err != nil || cc.NumValues() != rgRows {
						return nil, formatErr(fieldNames[c.meta.f], 0, fmt.Errorf("row group %d has %d rows but the column chunk does not", rgIdx, rgRows))
					}
				}
			}
			if rgNext < rgRows {
				if rgr == nil {
					rgr = pf.RowGroup(rgIdx)
				}
				sl := &pqSlice{rg: rgIdx, rgr: rgr, rowBase: rowBase, start: rgNext, count: min(rgSlice, rgRows-rgNext), seq: seq}
				rgNext += sl.count
				seq++
				return sl, nil
			}
			rowBase += rgRows
			rgIdx++
			rgRows = -1
		}
		return nil, nil
	}
	decode := func(sl *pqSlice, sel []int32, b int) func(*pqReader) *colError {
		return func(c *pqReader) *colError {
			err := c.decode(sl, sel, b)
			if err == nil {
				return nil
			}
			// Bad values are in c.bad; an error is the column's structure.
			return &colError{f: c.meta.f, row: -1, err: fmt.Errorf("row group %d: %w", sl.rg, err)}
		}
	}
	// A pipeline over the slices, so that both cores stay busy: while fn
	// takes the records of slice s, the other columns of s+1 (its kept rows)
	// and the filter columns of s+2 are decoded in the background. Keep and
	// fn stay on this goroutine; the filter columns use buffer seq%3, the
	// others and the kept rows seq%2.
	type pending struct {
		done chan *colError
		err  *colError
		wait bool
	}
	start := func(cols []*pqReader, sl *pqSlice, sel []int32, b int) *pending {
		p := &pending{done: make(chan *colError, 1), wait: true}
		go func() { p.done <- runColumns(cols, par, decode(sl, sel, b)) }()
		return p
	}
	await := func(p *pending) *colError {
		if p != nil && p.wait {
			p.err, p.wait = <-p.done, false
		}
		if p == nil {
			return nil
		}
		return p.err
	}
	if pf.NumRowGroups() > 0 {
		sizes := pf.RowGroup(0)
		bySize := func(a, b *pqReader) int {
			return compareInt64(chunkSize(sizes, b.meta.leaf), chunkSize(sizes, a.meta.leaf))
		}
		// Big columns first, so that the last one to finish is a small one.
		slices.SortStableFunc(first, bySize)
		slices.SortStableFunc(rest, bySize)
	}

	// badRows sorts out the unreadable values the columns cs decoded into
	// buffer b, at output index j of file row rowOf(j): a value of an
	// optional column is counted blanked (it reads as ""); a row with one in
	// a required column is returned, with the first such column (in field
	// order), to be skipped.
	_, required := wanted(t)
	badRows := func(cs []*pqReader, b int, rowOf func(j int) int64) map[int]*FormatError {
		// Only cs are touched: the other columns may be decoding meanwhile.
		var in [numFields]bool
		for _, c := range cs {
			in[c.meta.f] = true
		}
		var skip map[int]*FormatError
		for _, req := range []bool{true, false} {
			for f := range numFields {
				c := cols[f]
				if !in[f] || required[f] != req || len(c.bad[b]) == 0 {
					continue
				}
				for _, bc := range c.bad[b] {
					if _, dup := skip[bc.j]; dup {
						continue
					}
					fe := &FormatError{File: name, Column: fieldNames[f], Row: rowOf(bc.j) + 1, Err: bc.err}
					if !req {
						st.BlankedCells++
						if st.FirstBlanked == nil || fe.Row < st.FirstBlanked.Row {
							st.FirstBlanked = fe
						}
						continue
					}
					if skip == nil {
						skip = map[int]*FormatError{}
					}
					skip[bc.j] = fe
				}
			}
		}
		st.SkippedRows += int64(len(skip))
		st.Read -= int64(len(skip))
		for _, fe := range skip {
			if st.FirstSkipped == nil || fe.Row < st.FirstSkipped.Row {
				st.FirstSkipped = fe
			}
		}
		return skip
	}

	// ready is a slice whose records are next to go to fn.
	type ready struct {
		sl   *pqSlice
		rows []int32  // when sel: the rows to emit (kept, or readable without Keep)
		sel  bool     // false: every row of sl
		c    *pending // with Keep: decoding the other columns of the kept rows
	}
	emit := func(r *ready) error {
		if e := await(r.c); e != nil {
			return colErr(e)
		}
		fb, rb := r.sl.seq%pqBuffersPerColumn, r.sl.seq%2
		base := r.sl.rowBase + r.sl.start
		var skip map[int]*FormatError
		if r.c != nil {
			skip = badRows(rest, rb, func(k int) int64 { return base + int64(r.rows[k]) })
		}
		var times []time.Time
		if c := cols[fTimeGenerated]; c != nil {
			times = c.times[fb]
		}
		n := int(r.sl.count)
		if r.sel {
			n = len(r.rows)
		}
		for k := 0; k < n; k++ {
			if skip[k] != nil {
				continue
			}
			j := k
			if r.sel {
				j = int(r.rows[k])
			}
			batch = append(batch, Record{})
			out := &batch[len(batch)-1]
			if times != nil {
				out.TimeGenerated = times[j]
			}
			for f := range numFields {
				c := cols[f]
				if c == nil || f == fTimeGenerated {
					continue
				}
				var v string
				if keep != nil && !f.filter() {
					v = c.strs[rb][k] // decoded for the kept rows only
				} else {
					v = c.strs[fb][j]
				}
				if v != "" {
					out.setString(f, v)
				}
			}
			if opts.PositionIds != "" && out.Id == "" {
				out.Id = opts.PositionIds + strconv.FormatInt(base+int64(j), 10)
			}
			st.Rows++
			if len(batch) == batchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}

	scratch := new(Record) // Keep may retain its pointer only during the call
	var cur *pending       // decoding the filter columns of the next slice
	var prev *ready
	// Never leave a decoding goroutine behind.
	defer func() {
		await(cur)
		if prev != nil {
			await(prev.c)
		}
	}()
	sl, err := nextSlice()
	if err != nil {
		return st, err
	}
	if sl != nil {
		cur = start(first, sl, nil, sl.seq%pqBuffersPerColumn)
	}
	for sl != nil {
		if e := await(cur); e != nil {
			return st, colErr(e)
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		next, err := nextSlice()
		if err != nil {
			return st, err
		}
		if next != nil {
			cur = start(first, next, nil, next.seq%pqBuffersPerColumn)
		}
		total += sl.count
		st.Read += sl.count
		fb := sl.seq % pqBuffersPerColumn
		base := sl.rowBase + sl.start
		skip := badRows(first, fb, func(j int) int64 { return base + int64(j) })
		r := &ready{sl: sl}
		if keep == nil && len(skip) > 0 {
			rows := bufs.kept[sl.seq%2][:0]
			for j := 0; j < int(sl.count); j++ {
				if skip[j] == nil {
					rows = append(rows, int32(j))
				}
			}
			bufs.kept[sl.seq%2] = rows
			r.rows, r.sel = rows, true
		}
		if keep != nil {
			var times []time.Time
			if c := cols[fTimeGenerated]; c != nil {
				times = c.times[fb]
			}
			kept := bufs.kept[sl.seq%2][:0]
			for j := 0; j < int(sl.count); j++ {
				if skip[j] != nil {
					continue
				}
				*scratch = Record{}
				if times != nil {
					scratch.TimeGenerated = times[j]
				}
				for f := range numFields {
					if c := cols[f]; c != nil && f != fTimeGenerated && f.filter() {
						scratch.setString(f, c.strs[fb][j])
					}
				}
				inCallback = true
				k := keep(scratch)
				inCallback = false
				if k {
					kept = append(kept, int32(j))
				}
			}
			*scratch = Record{}
			bufs.kept[sl.seq%2] = kept
			r.rows, r.sel = kept, true
			// The other columns' readers are busy with the previous slice
			// until it is decoded.
			if prev != nil {
				if e := await(prev.c); e != nil {
					return st, colErr(e)
				}
			}
			if len(kept) > 0 && len(rest) > 0 {
				r.c = start(rest, sl, kept, sl.seq%2)
			}
		}
		older := prev
		prev = r // from here on, the deferred cleanup waits for r.c
		if older != nil {
			if err := emit(older); err != nil {
				return st, err
			}
		}
		sl = next
	}
	if prev != nil {
		if err := emit(prev); err != nil {
			return st, err
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if want := pf.NumRows(); total != want {
		return st, formatErr("", 0, fmt.Errorf("read %d rows, footer says %d", total, want))
	}
	if st.Read == 0 && st.FirstSkipped != nil {
		return st, st.FirstSkipped // no row could be read
	}
	st.Consumed = size
	return st, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chunkSize is the uncompressed size of a column chunk, 0 when unknown.
func chunkSize(rg *file.RowGroupReader, leaf int) int64 {
	cc, err := rg.MetaData().ColumnChunk(leaf)
	if err != nil {
		return 0
	}
	return cc.TotalUncompressedSize()
}

// runColumns runs task for each column, on up to par goroutines. A panic in
// a task (arrow-go on corrupt data) is that column's error. The error of the
// first column in cols order wins, so that errors do not depend on timing.
func runColumns(cols []*pqReader, par int, task func(*pqReader) *colError) *colError {
	safe := func(c *pqReader) (e *colError) {
		defer func() {
			if p := recover(); p != nil {
				e = &colError{f: c.meta.f, row: -1, err: fmt.Errorf("corrupt parquet: %v", p)}
			}
		}()
		return task(c)
	}
	if par <= 1 || len(cols) <= 1 {
		for _, c := range cols {
			if e := safe(c); e != nil {
				return e
			}
		}
		return nil
	}
	errs := make([]*colError, len(cols))
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(par, len(cols)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cols) {
					return
				}
				errs[i] = safe(cols[i])
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// pqBuffers are the buffers of one Parquet scan, pooled across scans.
type pqBuffers struct {
	cols  [numFields]pqReader
	batch []Record
	kept  [2][]int32
}

var pqPool = sync.Pool{New: func() any { return new(pqBuffers) }}
