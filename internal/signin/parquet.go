package signin

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquetReadRows is the most rows of a row group decoded at once: it bounds
// the memory of a large row group (or of a corrupt footer's row count).
const parquetReadRows = 65536

// pqReadBuffer is the read buffer of each column chunk's page reader.
const pqReadBuffer = 256 << 10

// ioErrReaderAt remembers the first read error of the underlying ReaderAt
// other than EOF, so that an I/O failure (worth a retry) is not mistaken for
// corrupt content when parquet-go reports it as a decoding error.
type ioErrReaderAt struct {
	r    io.ReaderAt
	size int64 // when > 0, a read past it is the content's fault (a corrupt offset)
	mu   sync.Mutex
	err  error
}

func (e *ioErrReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || e.size > 0 && off > e.size {
		// A corrupt footer's offset: the content's fault, not the source's.
		return 0, errOutsideFile
	}
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

var errOutsideFile = fmt.Errorf("read outside the file: %w", io.ErrUnexpectedEOF)

func (e *ioErrReaderAt) failed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// scanParquet reads the file from parquet-go's raw pages (pqReader), one
// slice of at most parquetReadRows rows of a row group at a time
// (pqSlicer), through the stages of a pqScan:
//
//  1. the filter columns (all wanted columns without Keep) are decoded, each
//     column on its own goroutine (up to Options.Parallelism at once); a
//     dictionary entry is converted once per column chunk, and text is read
//     in place (pqDecoding, pqReader.decode);
//  2. Keep selects rows on the calling goroutine (pqScan.selectRows);
//  3. the other columns are decoded for the kept rows only: long runs of
//     rejected rows are skipped, and a column chunk is not even read when no
//     row of its row group is kept (pqDecoding);
//  4. the kept rows go to fn in batches, in file order, from the calling
//     goroutine, each record's text copied into one allocation (pqScan.emit).
//
// The steps overlap: while fn takes slice s, step 3 runs for s+1 and step 1
// for s+2, so Keep may see rows before fn has seen the earlier ones. The
// decoded values of the slices in flight live in buffer rings (pqRing).
func scanParquet(ctx context.Context, name string, r io.ReaderAt, size int64, t Table, opts Options, fn func([]Record) error) (st Stats, err error) {
	s := newPQScan(ctx, name, r, t, opts, fn)
	s.src.size = size
	defer s.recoverCorrupt(&st, &err)
	if err := checkFooter(s.src, size); err != nil {
		return s.st, s.classify("", 0, fmt.Errorf("not a readable parquet file: %w", err))
	}
	pf, err := pq.OpenFile(s.src, size, pq.SkipPageIndex(true), pq.SkipBloomFilters(true), pq.ReadBufferSize(pqReadBuffer))
	if err != nil {
		return s.st, s.classify("", 0, fmt.Errorf("not a readable parquet file: %w", err))
	}
	defer s.release()
	if err := checkParquetTable(name, pf, t); err != nil {
		return s.st, err
	}
	if err := s.setup(pf); err != nil {
		return s.st, err
	}
	if err := s.run(); err != nil {
		return s.st, err
	}
	s.st.Consumed = size
	return s.st, nil
}

// checkFooter checks the footer's length against the file before parquet-go
// allocates that much for it: a corrupt length could ask for gigabytes.
func checkFooter(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("%d bytes: too short", size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(tail[4:]) != parquetMagic {
		return errors.New("no PAR1 at the end")
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-12 {
		return fmt.Errorf("footer of %d bytes in a file of %d", n, size)
	}
	return nil
}

// pqScan is one Scan of a Parquet file. It owns the column readers and
// buffers taken from pqPool (returned by release), the decoding steps in
// flight (waited for by release, so that no goroutine outlives the scan), the
// batch handed to fn and the Stats. Its methods are the stages of the
// pipeline; all run on the calling goroutine, except the column decoding
// they start in the background.
type pqScan struct {
	ctx         context.Context
	name        string
	t           Table
	src         *ioErrReaderAt
	keep        func(*Record) bool
	fn          func([]Record) error
	positionIds string
	batchSize   int
	par         int
	required    [numFields]bool
	extra       []string // Options.Extra

	bufs   *pqBuffers           // nil until setup
	cols   [numFields]*pqReader // nil: not in the file
	first  []*pqReader          // decoded for every row: all columns without Keep, else TimeGenerated and the filter columns
	rest   []*pqReader          // with Keep: decoded for the kept rows only
	slices pqSlicer
	batch  []Record

	cur     *pqDecoding // decoding the filter columns of the slice after the one being selected
	prev    *pqReady    // the slice selected before, waiting to be emitted
	scratch Record      // the record Keep sees: valid during the call only
	// inCallback is set while Keep or fn runs: a panic there is the
	// caller's and is not turned into a FormatError.
	inCallback bool
	total      int64 // rows of the slices read, skipped or not
	st         Stats
}

func newPQScan(ctx context.Context, name string, r io.ReaderAt, t Table, opts Options, fn func([]Record) error) *pqScan {
	s := &pqScan{
		ctx: ctx, name: name, t: t, src: &ioErrReaderAt{r: r},
		keep: opts.Keep, fn: fn, positionIds: opts.PositionIds,
		batchSize: opts.BatchSize, par: opts.Parallelism,
	}
	if s.batchSize <= 0 {
		s.batchSize = defaultBatchSize
	}
	if s.par <= 0 {
		s.par = runtime.GOMAXPROCS(0)
	}
	s.extra = opts.Extra
	_, s.required = wanted(t, s.extra)
	return s
}

func (s *pqScan) formatErr(col string, row int64, e error) error {
	return &FormatError{File: s.name, Column: col, Row: row, Err: e}
}

// classify turns a reader error into a FormatError unless the source failed
// (an I/O error, worth a retry) or the scan was cancelled.
func (s *pqScan) classify(col string, row int64, e error) error {
	if ioErr := s.src.failed(); ioErr != nil {
		return fmt.Errorf("%s: read parquet: %w", s.name, ioErr)
	}
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return s.formatErr(col, row, e)
}

func (s *pqScan) colErr(e *colError) error {
	return s.classify(fieldNames[e.f], e.row+1, e.err)
}

// recoverCorrupt, deferred, turns a panic of parquet-go on corrupt data into a
// FormatError (or the read error behind it): it is still just a bad file.
// Panics of the caller's fn and Keep are not ours to hide: they are re-raised.
func (s *pqScan) recoverCorrupt(st *Stats, err *error) {
	p := recover()
	if p == nil {
		return
	}
	if s.inCallback {
		panic(p)
	}
	*st = s.st
	if ioErr := s.src.failed(); ioErr != nil {
		*err = fmt.Errorf("%s: read parquet: %w", s.name, ioErr)
		return
	}
	*err = s.formatErr("", 0, fmt.Errorf("corrupt parquet: %v", p))
}

// setup finds the wanted columns of pf and gives each a pooled reader, in
// the step that decodes it (first or rest).
func (s *pqScan) setup(pf *pq.File) error {
	metas, cerr := resolveColumns(pf.Metadata().Schema, s.t, s.extra)
	if cerr != nil {
		return s.formatErr(fieldNames[cerr.f], 0, cerr.err)
	}
	// The decoding buffers of a previous scan are reused: growing them again
	// for every file costs more than the decoding itself.
	s.bufs = pqPool.Get().(*pqBuffers)
	anyData := false
	for f, m := range metas {
		if m == nil {
			continue
		}
		c := &s.bufs.cols[f]
		c.reset(m)
		s.cols[f] = c
		anyData = anyData || m.kind != kindNull
		if s.keep == nil || field(f).filter() || field(f) == fTimeGenerated {
			s.first = append(s.first, c)
		} else {
			s.rest = append(s.rest, c)
		}
	}
	if cap(s.bufs.batch) < s.batchSize {
		s.bufs.batch = make([]Record, 0, s.batchSize)
	}
	s.batch = s.bufs.batch[:0]
	s.slices = pqSlicer{file: s.name, pf: pf, rgRows: -1}
	if !anyData {
		for _, c := range s.cols {
			if c != nil {
				s.slices.unread = append(s.slices.unread, c.meta)
			}
		}
	}
	if rgs := pf.Metadata().RowGroups; len(rgs) > 0 {
		// Big columns first, so that the last one to finish is a small one.
		sortBySize(s.first, &rgs[0])
		sortBySize(s.rest, &rgs[0])
	}
	return nil
}

// release waits for the decoding steps still running and returns the
// readers and buffers to the pool.
func (s *pqScan) release() {
	s.cur.wait()
	if s.prev != nil {
		s.prev.rest.wait()
	}
	if s.bufs == nil {
		return
	}
	clear(s.batch)
	s.bufs.batch = s.batch[:0]
	for b := range s.bufs.recs {
		clear(s.bufs.recs[b]) // the strings of this scan
	}
	for _, c := range s.cols {
		if c != nil {
			c.close()
			c.reset(nil)
		}
	}
	pqPool.Put(s.bufs)
}

// run drives the pipeline over the slices, so that both cores stay busy:
// while fn takes the records of slice s-1, the other columns of s (its kept
// rows) and the filter columns of s+1 are decoded in the background.
func (s *pqScan) run() error {
	sl, err := s.slices.next()
	if err != nil {
		return err
	}
	if sl != nil {
		s.cur = s.startDecoding(s.first, sl, nil, sl.filterSlot(), nil)
	}
	for sl != nil {
		if e := s.cur.wait(); e != nil {
			return s.colErr(e)
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
		next, err := s.slices.next()
		if err != nil {
			return err
		}
		if next != nil {
			s.cur = s.startDecoding(s.first, next, nil, next.filterSlot(), nil)
		}
		r, err := s.selectRows(sl)
		if err != nil {
			return err
		}
		older := s.prev
		s.prev = r // from here on, release waits for r.rest
		if older != nil {
			if err := s.emit(older); err != nil {
				return err
			}
		}
		sl = next
	}
	if s.prev != nil {
		if err := s.emit(s.prev); err != nil {
			return err
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	if want := s.slices.pf.NumRows(); s.total != want {
		return s.formatErr("", 0, fmt.Errorf("read %d rows, footer says %d", s.total, want))
	}
	if s.st.Read == 0 && s.st.FirstSkipped != nil {
		return s.st.FirstSkipped // no row could be read
	}
	return nil
}

// pqRing is the rotation of the pipeline's per-slice buffers, documented
// here once. A stage that keeps output per slice holds a ring of buffers
// (pqReader.out for the decoded values, pqBuffers.kept and .recs for the rows
// to emit and their records), and slice seq writes slot seq % depth of its
// ring.
//
// Reuse is safe because of what is in flight while slice s is selected: s-1
// (selected, to be emitted), s, and s+1 (its filter columns decoding). The
// filter columns' values of all three are live, so their ring has 3 slots.
// The other columns are decoded for s only once their decoding for s-1 is
// done (their readers are shared), and read for s-1 until it is emitted; the
// rows to emit likewise: their ring has 2. So a slot is written only after
// the slice that used it before, seq-depth, has been emitted.
type pqRing int

const (
	filterRing pqRing = 3 // values of the first step's columns
	restRing   pqRing = 2 // values of the other columns, and the rows to emit
)

func (n pqRing) slot(seq int) int { return seq % int(n) }

// pqSlicer cuts the file's row groups into slices of at most
// parquetReadRows rows, evenly, in file order, and numbers them for the
// buffer rings. It owns the position in the file and checks each row
// group's row count before its first slice.
type pqSlicer struct {
	file string
	pf   *pq.File
	// unread are the wanted columns when every one is Null-typed, so never
	// read: a short column is otherwise found when read, but for these the
	// footer's row count is checked against their chunks', so that a huge
	// row count is not trusted.
	unread  []*pqMeta
	rg      int   // current row group
	rgRows  int64 // its rows; -1 until entered
	rgNext  int64 // its next row to slice
	rgSlice int64 // rows per slice of it
	rowBase int64 // rows of the file before it
	rgr     pq.RowGroup
	seq     int
}

// next returns the next slice, nil after the last.
func (p *pqSlicer) next() (*pqSlice, error) {
	for p.rg < len(p.pf.Metadata().RowGroups) {
		if p.rgRows < 0 {
			if err := p.enter(); err != nil {
				return nil, err
			}
		}
		if p.rgNext < p.rgRows {
			if p.rgr == nil {
				rgs := p.pf.RowGroups()
				if p.rg >= len(rgs) {
					return nil, &FormatError{File: p.file, Err: fmt.Errorf("row group %d is missing", p.rg)}
				}
				p.rgr = rgs[p.rg]
			}
			sl := &pqSlice{rg: p.rg, rgr: p.rgr, rowBase: p.rowBase, start: p.rgNext, count: min(p.rgSlice, p.rgRows-p.rgNext), seq: p.seq}
			p.rgNext += sl.count
			p.seq++
			return sl, nil
		}
		p.rowBase += p.rgRows
		p.rg++
		p.rgRows = -1
	}
	return nil, nil
}

// enter reads the row count of row group p.rg and cuts it into slices.
func (p *pqSlicer) enter() error {
	rgIdx := p.rg
	rgMeta := &p.pf.Metadata().RowGroups[rgIdx]
	p.rgRows = rgMeta.NumRows
	if p.rgRows < 0 {
		return &FormatError{File: p.file, Err: fmt.Errorf("row group %d: negative row count %d", rgIdx, p.rgRows)}
	}
	p.rgr, p.rgNext = nil, 0
	nslices := max(1, p.rgRows/parquetReadRows)
	if p.rgRows%parquetReadRows != 0 && p.rgRows > parquetReadRows {
		nslices++
	}
	p.rgSlice = p.rgRows / nslices
	if p.rgRows%nslices != 0 {
		p.rgSlice++
	}
	// A column chunk holds one value (or null) per row.
	for _, m := range p.unread {
		if m.leaf >= len(rgMeta.Columns) || rgMeta.Columns[m.leaf].MetaData.NumValues != p.rgRows {
			return &FormatError{File: p.file, Column: fieldNames[m.f], Err: fmt.Errorf("row group %d has %d rows but the column chunk does not", rgIdx, p.rgRows)}
		}
	}
	return nil
}

// pqDecoding is one decoding step run in the background (steps 1 and 3):
// columns cs of one slice decoded into one slot of their rings, on up to
// Parallelism goroutines. Until wait returns, the step owns those columns'
// readers and that slot: the scan waits before reading the slot or starting
// another step on the same readers.
type pqDecoding struct {
	done    chan *colError
	err     *colError
	waiting bool
}

// startDecoding decodes the rows of sl (with sel, only those) of columns cs
// into slot b, in the background;
// then, when set, runs on the same goroutine once the columns are decoded.
func (s *pqScan) startDecoding(cs []*pqReader, sl *pqSlice, sel []int32, b int, then func()) *pqDecoding {
	d := &pqDecoding{done: make(chan *colError, 1), waiting: true}
	par := s.par
	go func() {
		e := runColumns(cs, par, func(c *pqReader) *colError { return decodeColumn(c, sl, sel, b) })
		if e == nil && then != nil {
			then()
		}
		d.done <- e
	}()
	return d
}

// wait returns the step's error once it is done; nil for a nil step.
func (d *pqDecoding) wait() *colError {
	if d == nil {
		return nil
	}
	if d.waiting {
		d.err, d.waiting = <-d.done, false
	}
	return d.err
}

// decodeColumn is one column's task of a decoding step. Bad values are in
// the column's slot; an error is the column's structure.
func decodeColumn(c *pqReader, sl *pqSlice, sel []int32, b int) *colError {
	if err := c.decode(sl, sel, b); err != nil {
		return &colError{f: c.meta.f, row: -1, err: fmt.Errorf("row group %d: %w", sl.rg, err)}
	}
	return nil
}

// pqReady is a slice selected and waiting to be emitted: which of its rows
// go to fn, and (with Keep) the decoding of their other columns.
type pqReady struct {
	sl   *pqSlice
	rows []int32     // when sel: the rows to emit (kept, or readable without Keep)
	sel  bool        // false: every row of sl
	rest *pqDecoding // with Keep: decoding the other columns of the kept rows
}

// selectRows is step 2, for a slice whose filter columns are decoded: it
// sorts out their unreadable values, runs Keep over the readable rows and
// starts decoding the other columns of the kept ones.
func (s *pqScan) selectRows(sl *pqSlice) (*pqReady, error) {
	s.total += sl.count
	s.st.Read += sl.count
	skip := s.badRows(s.first, sl.filterSlot(), sl.base(), nil)
	r := &pqReady{sl: sl}
	if s.keep == nil {
		if len(skip) > 0 {
			r.rows, r.sel = s.readableRows(sl, skip), true
		}
		return r, nil
	}
	r.rows, r.sel = s.keepRows(sl, skip), true
	// The other columns' readers are busy with the previous slice until it
	// is decoded.
	if s.prev != nil {
		if e := s.prev.rest.wait(); e != nil {
			return nil, s.colErr(e)
		}
	}
	if len(r.rows) > 0 && len(s.rest) > 0 {
		rows := r.rows
		r.rest = s.startDecoding(s.rest, sl, rows, sl.restSlot(), func() { s.assemble(sl, rows) })
	}
	return r, nil
}

// assemble builds the records of the kept rows of sl, in the background
// once their other columns are decoded (emit's work would otherwise be on
// the calling goroutine, the pipeline's slowest stage), into sl's slot of
// pqBuffers.recs. It only reads the slots of sl.
func (s *pqScan) assemble(sl *pqSlice, rows []int32) {
	fb, rb := sl.filterSlot(), sl.restSlot()
	var times []time.Time
	if c := s.cols[fTimeGenerated]; c != nil {
		times = c.out[fb].times
	}
	recs := s.bufs.recs[rb]
	clear(recs)
	recs = slices.Grow(recs[:0], len(rows))[:len(rows)]
	for k, j := range rows {
		if times != nil {
			recs[k].TimeGenerated = times[j]
		}
		s.fill(&recs[k], fb, rb, int(j), k)
	}
	s.bufs.recs[rb] = recs
}

// readableRows lists the rows of sl not in skip, into its slot of the
// rows-to-emit ring.
func (s *pqScan) readableRows(sl *pqSlice, skip map[int]*FormatError) []int32 {
	b := sl.restSlot()
	rows := s.bufs.kept[b][:0]
	for j := 0; j < int(sl.count); j++ {
		if skip[j] == nil {
			rows = append(rows, int32(j))
		}
	}
	s.bufs.kept[b] = rows
	return rows
}

// keepRows lists the rows of sl not in skip that Keep keeps, into its slot
// of the rows-to-emit ring. Keep sees the filter columns only.
func (s *pqScan) keepRows(sl *pqSlice, skip map[int]*FormatError) []int32 {
	fb, b := sl.filterSlot(), sl.restSlot()
	var times []time.Time
	if c := s.cols[fTimeGenerated]; c != nil {
		times = c.out[fb].times
	}
	scratch := &s.scratch
	kept := s.bufs.kept[b][:0]
	for j := 0; j < int(sl.count); j++ {
		if skip[j] != nil {
			continue
		}
		*scratch = Record{}
		if times != nil {
			scratch.TimeGenerated = times[j]
		}
		for f := range firstExtra { // Record.Extra's columns are never filter columns
			if c := s.cols[f]; c != nil && f != fTimeGenerated && f.filter() {
				scratch.setString(f, c.out[fb].strs[j])
			}
		}
		s.inCallback = true
		k := s.keep(scratch)
		s.inCallback = false
		if k {
			kept = append(kept, int32(j))
		}
	}
	*scratch = Record{}
	s.bufs.kept[b] = kept
	return kept
}

// badRows sorts out the unreadable values the columns cs decoded into slot
// b, at output index j of file row base+j (base+rows[j] when rows is set): a
// value of an optional column is counted blanked (it reads as ""); a row
// with one in a required column is returned, with the first such column (in
// field order), to be skipped. Only cs are touched: the other columns may be
// decoding meanwhile.
func (s *pqScan) badRows(cs []*pqReader, b int, base int64, rows []int32) map[int]*FormatError {
	var in [numFields]bool
	for _, c := range cs {
		in[c.meta.f] = true
	}
	var skip map[int]*FormatError
	for _, req := range []bool{true, false} {
		for f := range numFields {
			c := s.cols[f]
			if !in[f] || s.required[f] != req || len(c.out[b].bad) == 0 {
				continue
			}
			for _, bc := range c.out[b].bad {
				if _, dup := skip[bc.j]; dup {
					continue
				}
				row := base + int64(bc.j)
				if rows != nil {
					row = base + int64(rows[bc.j])
				}
				fe := &FormatError{File: s.name, Column: fieldNames[f], Row: row + 1, Err: bc.err}
				if !req {
					s.st.BlankedCells++
					if s.st.FirstBlanked == nil || fe.Row < s.st.FirstBlanked.Row {
						s.st.FirstBlanked = fe
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
	s.st.SkippedRows += int64(len(skip))
	s.st.Read -= int64(len(skip))
	for _, fe := range skip {
		if s.st.FirstSkipped == nil || fe.Row < s.st.FirstSkipped.Row {
			s.st.FirstSkipped = fe
		}
	}
	return skip
}

// emit is step 4: once the other columns of r's rows are decoded, it sorts
// out their unreadable values and appends r's records to the batch, passing
// each full batch to fn.
func (s *pqScan) emit(r *pqReady) error {
	if e := r.rest.wait(); e != nil {
		return s.colErr(e)
	}
	fb, rb := r.sl.filterSlot(), r.sl.restSlot()
	base := r.sl.base()
	var skip map[int]*FormatError
	if r.rest != nil {
		skip = s.badRows(s.rest, rb, base, r.rows)
	}
	var times []time.Time
	if c := s.cols[fTimeGenerated]; c != nil {
		times = c.out[fb].times
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
		if r.rest != nil {
			s.batch = append(s.batch, s.bufs.recs[rb][k])
		} else {
			s.batch = append(s.batch, Record{})
		}
		out := &s.batch[len(s.batch)-1]
		if r.rest == nil {
			if times != nil {
				out.TimeGenerated = times[j]
			}
			s.fill(out, fb, rb, j, k)
		}
		if s.positionIds != "" && out.Id == "" {
			out.Id = s.positionIds + strconv.FormatInt(base+int64(j), 10)
		}
		s.st.Rows++
		if len(s.batch) == s.batchSize {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill sets the text fields of out: a filter column's value of row j of
// slot fb, another column's of kept row k of slot rb (decoded for the kept
// rows only). Text that aliases pages or dictionaries (pqValues.transient)
// is copied into one allocation for the record.
func (s *pqScan) fill(out *Record, fb, rb, j, k int) {
	var vals [numFields]string
	var copied [numFields]bool
	n := 0
	for f := range numFields {
		c := s.cols[f]
		if c == nil || f == fTimeGenerated {
			continue
		}
		o, i := &c.out[fb], j
		if s.keep != nil && !f.filter() {
			o, i = &c.out[rb], k
		}
		if v := o.strs[i]; v != "" {
			vals[f], copied[f] = v, o.transient
			if o.transient {
				n += len(v)
			}
		}
	}
	var buf []byte
	if n > 0 {
		buf = make([]byte, 0, n)
	}
	for f, v := range vals {
		if v == "" {
			continue
		}
		if copied[f] {
			start := len(buf)
			buf = append(buf, v...)
			v = unsafe.String(&buf[start], len(v))
		}
		out.setString(field(f), v)
	}
}

// flush passes the batch to fn and empties it.
func (s *pqScan) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	s.inCallback = true
	err := s.fn(s.batch)
	s.inCallback = false
	clear(s.batch) // drop references to this batch's strings
	s.batch = s.batch[:0]
	return err
}

// sortBySize orders cs by the uncompressed size of their chunks in rg,
// largest first (stable).
func sortBySize(cs []*pqReader, rg *format.RowGroup) {
	slices.SortStableFunc(cs, func(a, b *pqReader) int {
		return cmp.Compare(chunkSize(rg, b.meta.leaf), chunkSize(rg, a.meta.leaf))
	})
}

// chunkSize is the uncompressed size of a column chunk, 0 when unknown.
func chunkSize(rg *format.RowGroup, leaf int) int64 {
	if leaf >= len(rg.Columns) {
		return 0
	}
	return rg.Columns[leaf].MetaData.TotalUncompressedSize
}

// runColumns runs task for each column, on up to par goroutines. A panic in
// a task (parquet-go on corrupt data) is that column's error. The error of the
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
	kept  [restRing][]int32  // rows to emit, a ring (pqRing)
	recs  [restRing][]Record // with Keep: their records (pqScan.assemble)
}

var pqPool = sync.Pool{New: func() any { return new(pqBuffers) }}
