package signin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unsafe"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// badCell is a value of no clear meaning at output index j of a decode.
type badCell struct {
	j   int
	err error
}

// colError is a problem with one column, at a 0-based row of the file when
// row >= 0 is known (-1 otherwise).
type colError struct {
	f   field
	row int64
	err error
}

// errShortColumn means a column chunk has fewer values than its row group rows.
var errShortColumn = errors.New("column chunk has fewer values than the row group has rows")

// pqReader reads one wanted column of the current row group from parquet-go's
// raw pages: the values of a page as decoded (no row reading), its
// definition levels for nulls, and for a dictionary-encoded page the indexes
// into its chunk's dictionary.
type pqReader struct {
	meta  *pqMeta
	pages pq.Pages // nil until first needed in this row group
	rg    int      // row group pages reads

	page      pq.Page // the current page, nil before the first
	pageStart int64   // row of the row group the page starts at
	pageRows  int64
	defs      []byte // definition levels, nil for a required column
	vals      rawValues
	idx       []int32 // dictionary indexes of a dictionary-encoded page
	at        int64   // row offset in the page of the cursor
	vi        int     // value (or index) number at the cursor: nulls have none

	// The current chunk's dictionary, each entry converted once on first
	// use: dictionary entries repeat across rows, so a converted entry costs
	// rows nothing but an index. Entry k is converted when dictGen[k] is
	// gen, so a new dictionary need not clear the tables.
	dict     pq.Dictionary
	dictVals rawValues
	dictLen  int
	gen      uint32
	dictGen  []uint32
	dictStr  []string
	dictTime []time.Time
	dictBad  map[int32]error

	// out holds the decoded values of the slices in flight, a ring (pqRing).
	out [filterRing]pqValues

	// blob holds text made by conversion (normalised numbers, UUIDs),
	// which aliases no page: one allocation per block, not per value.
	blob textBlock
	num  []byte
}

// rawValues are a page's (or dictionary's) plain values, by physical type.
type rawValues struct {
	kind encoding.Kind
	data []byte
	offs []uint32 // BYTE_ARRAY: value i is data[offs[i]:offs[i+1]]
	size int      // FIXED_LEN_BYTE_ARRAY value size
	n    int      // number of values
}

func newRawValues(v encoding.Values, fixedSize int) (rawValues, error) {
	r := rawValues{kind: v.Kind()}
	r.data, r.offs = v.Data()
	switch r.kind {
	case encoding.ByteArray:
		r.n = max(len(r.offs)-1, 0)
		for i := 1; i < len(r.offs); i++ {
			if r.offs[i] < r.offs[i-1] || int(r.offs[i]) > len(r.data) {
				return r, errors.New("corrupt byte array offsets")
			}
		}
	case encoding.FixedLenByteArray:
		r.size = fixedSize
		if fixedSize <= 0 {
			return r, errors.New("fixed-length values of no length")
		}
		r.n = len(r.data) / fixedSize
	case encoding.Int32, encoding.Float:
		r.n = len(r.data) / 4
	case encoding.Int64, encoding.Double:
		r.n = len(r.data) / 8
	case encoding.Int96:
		r.n = len(r.data) / 12
	default:
		return r, fmt.Errorf("unexpected %s values", r.kind)
	}
	return r, nil
}

// bytes is value i of a BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY column.
func (r *rawValues) bytes(i int) []byte {
	if r.kind == encoding.ByteArray {
		return r.data[r.offs[i]:r.offs[i+1]]
	}
	return r.data[i*r.size : (i+1)*r.size]
}

func (r *rawValues) int32(i int) int32 {
	return int32(binary.LittleEndian.Uint32(r.data[4*i:]))
}

func (r *rawValues) int64(i int) int64 {
	return int64(binary.LittleEndian.Uint64(r.data[8*i:]))
}

// pqValues is one slot of a column's ring: the values decoded for one slice,
// by output index (the row's offset in the slice, or its index in the
// selection).
type pqValues struct {
	strs  []string    // text (ResultType as text), valid until the slot is reset
	times []time.Time // TimeGenerated
	// bad lists the values that could not be read: they read as zero, and
	// the scan skips their rows or counts them blanked.
	bad []badCell
	// pages are the pages strs alias (inPlace), retained until the slot
	// is reset; transient says strs alias pages, a dictionary or shared
	// blocks, and are copied into each record's own allocation.
	pages     []pq.Page
	transient bool
}

// reset empties v for n values of a time column (isTime) or a text one.
func (v *pqValues) reset(isTime bool, n int) {
	v.releasePages()
	v.bad = v.bad[:0]
	clear(v.strs)
	v.strs, v.times = v.strs[:0], v.times[:0]
	if isTime {
		v.times = slices.Grow(v.times, n)
	} else {
		v.strs = slices.Grow(v.strs, n)
	}
}

func (v *pqValues) releasePages() {
	for _, p := range v.pages {
		pq.Release(p)
	}
	clear(v.pages)
	v.pages, v.transient = v.pages[:0], false
}

// badAt lists the value at output index j as unreadable.
func (v *pqValues) badAt(j int, err error) { v.bad = append(v.bad, badCell{j, err}) }

// reset forgets the strings and pages of the previous scan.
func (c *pqReader) reset(m *pqMeta) {
	c.close()
	c.meta = m
	c.blob = textBlock{}
	clear(c.dictStr)
	for b := range c.out {
		c.out[b].releasePages()
		clear(c.out[b].strs)
		c.out[b].strs = c.out[b].strs[:0]
	}
}

// close releases the current page and the chunk's page reader.
func (c *pqReader) close() {
	c.releasePage()
	if c.pages != nil {
		c.pages.Close()
		c.pages = nil
	}
	c.dict, c.dictVals = nil, rawValues{}
}

func (c *pqReader) releasePage() {
	if c.page != nil {
		pq.Release(c.page)
		c.page = nil
	}
	c.defs, c.idx, c.vals = nil, nil, rawValues{}
}

// open starts reading the column chunk of c in row group rg.
func (c *pqReader) open(rg pq.RowGroup) error {
	chunks := rg.ColumnChunks()
	if c.meta.leaf >= len(chunks) {
		return errors.New("row group has no such column chunk")
	}
	c.pages = chunks[c.meta.leaf].Pages()
	c.pageStart, c.pageRows = 0, 0
	return nil
}

// nextPage moves to the page after the current one.
func (c *pqReader) nextPage() error {
	c.pageStart += c.pageRows
	c.releasePage()
	for {
		p, err := c.pages.ReadPage()
		if err == io.EOF {
			return errShortColumn
		}
		if err != nil {
			return err
		}
		if err := c.setPage(p); err != nil {
			pq.Release(p)
			return err
		}
		c.page = p
		if c.pageRows > 0 {
			return nil
		}
		c.releasePage()
	}
}

// setPage checks page p and points the cursor at its first row.
func (c *pqReader) setPage(p pq.Page) error {
	c.pageRows, c.at, c.vi = p.NumRows(), 0, 0
	nonNull := int(c.pageRows)
	if c.meta.maxDef > 0 {
		c.defs = p.DefinitionLevels()
		if int64(len(c.defs)) != c.pageRows {
			return errors.New("page has fewer definition levels than rows")
		}
		nonNull = 0
		for _, d := range c.defs {
			if d == c.meta.maxDef {
				nonNull++
			}
		}
	}
	n := 0
	if d := p.Dictionary(); d != nil {
		v := p.Data()
		if v.Kind() != encoding.Int32 {
			return errors.New("dictionary page without indexes")
		}
		c.idx = v.Int32()
		n = len(c.idx)
		if d != c.dict {
			if err := c.setDict(d); err != nil {
				return err
			}
		}
	} else {
		var err error
		if c.vals, err = newRawValues(p.Data(), c.fixedSize()); err != nil {
			return err
		}
		n = c.vals.n
	}
	if n < nonNull {
		return errors.New("fewer values than definition levels")
	}
	return nil
}

func (c *pqReader) fixedSize() int {
	if c.meta.kind == kindUUID {
		return 16
	}
	return c.meta.fixed
}

// setDict makes d the dictionary of the pages that follow.
func (c *pqReader) setDict(d pq.Dictionary) error {
	v, err := newRawValues(d.Page().Data(), c.fixedSize())
	if err != nil {
		return err
	}
	c.dict, c.dictVals, c.dictLen = d, v, min(d.Len(), v.n)
	c.gen++
	if c.gen == 0 { // wrapped: entries of an old dictionary could match
		clear(c.dictGen)
		c.gen = 1
	}
	c.dictBad = nil
	if len(c.dictGen) < c.dictLen {
		c.dictGen = slices.Grow(c.dictGen[:0], c.dictLen)[:c.dictLen]
		clear(c.dictGen)
		if c.meta.f == fTimeGenerated {
			c.dictTime = make([]time.Time, c.dictLen)
		} else {
			c.dictStr = make([]string, c.dictLen)
		}
	}
	return nil
}

// pqSlice is a run of rows of one row group, decoded at once.
type pqSlice struct {
	rg           int
	rgr          pq.RowGroup
	rowBase      int64 // rows of the file before the row group
	start, count int64 // rows of the row group
	seq          int   // slices of the file before this one
}

// base is the 0-based file row of the slice's first row.
func (sl *pqSlice) base() int64 { return sl.rowBase + sl.start }

// filterSlot is the slice's slot of the first decoding step's ring.
func (sl *pqSlice) filterSlot() int { return filterRing.slot(sl.seq) }

// restSlot is the slice's slot of the other columns' and kept rows' ring.
func (sl *pqSlice) restSlot() int { return restRing.slot(sl.seq) }

// decode reads the rows of sl (with sel, only rows sl.start+sel[k]) into
// slot b of the column's ring, c.out[b]. A value of no clear meaning reads
// as zero and is listed in c.out[b].bad with its output index; an error
// means the column chunk itself cannot be read. This is the contract the
// pipeline relies on, whatever does the decoding: it runs on a goroutine of
// a pqDecoding, touches only c and slot b, and returns text valid until slot
// b is reset (the pages it aliases are retained by the slot).
func (c *pqReader) decode(sl *pqSlice, sel []int32, b int) error {
	n := int(sl.count)
	if sel != nil {
		n = len(sel)
	}
	isTime := c.meta.f == fTimeGenerated
	o := &c.out[b]
	o.reset(isTime, n)
	if c.meta.kind == kindNull {
		if isTime {
			o.times = append(o.times, make([]time.Time, n)...)
		} else {
			o.strs = append(o.strs, make([]string, n)...)
		}
		return nil
	}
	if c.pages == nil || c.rg != sl.rg {
		c.close()
		if err := c.open(sl.rgr); err != nil {
			return err
		}
		c.rg = sl.rg
	}
	// Converted text (blob) is copied per record too: a block pinned by a
	// kept record would hold the text of thousands of dropped ones.
	o.transient = c.meta.f != fTimeGenerated
	if sel == nil {
		return c.decodeRun(o, sl.start, n)
	}
	for j := range n {
		if err := c.seek(sl.start + int64(sel[j])); err != nil {
			return err
		}
		c.cell(o, j)
	}
	return nil
}

// decodeRun decodes the n rows from row (of the row group) on into o.
func (c *pqReader) decodeRun(o *pqValues, row int64, n int) error {
	for j := 0; j < n; {
		if err := c.seek(row + int64(j)); err != nil {
			return err
		}
		m := min(n-j, int(c.pageRows-c.at))
		switch {
		case c.idx != nil && c.meta.f == fTimeGenerated:
			c.dictTimes(o, j, m)
		case c.idx != nil:
			c.dictTexts(o, j, m)
		default:
			for k := range m {
				c.cell(o, j+k)
			}
		}
		j += m
	}
	return nil
}

// dictTimes decodes the m rows from the cursor of a dictionary-encoded
// TimeGenerated into o, at output index j on.
func (c *pqReader) dictTimes(o *pqValues, j, m int) {
	for k := range m {
		if c.defs != nil && c.defs[c.at] != c.meta.maxDef {
			o.times = append(o.times, time.Time{})
			c.at++
			continue
		}
		x := c.idx[c.vi]
		if uint(x) < uint(c.dictLen) && c.dictGen[x] == c.gen && c.dictBad == nil {
			o.times = append(o.times, c.dictTime[x])
			c.at++
			c.vi++
			continue
		}
		c.cell(o, j+k)
	}
}

// dictTexts is dictTimes for text.
func (c *pqReader) dictTexts(o *pqValues, j, m int) {
	for k := range m {
		if c.defs != nil && c.defs[c.at] != c.meta.maxDef {
			o.strs = append(o.strs, "")
			c.at++
			continue
		}
		x := c.idx[c.vi]
		if uint(x) < uint(c.dictLen) && c.dictGen[x] == c.gen && c.dictBad == nil {
			o.strs = append(o.strs, c.dictStr[x])
			c.at++
			c.vi++
			continue
		}
		c.cell(o, j+k)
	}
}

// inPlace tells text read without a copy, aliasing the page (retained by
// the slot until the slot is reused) or the dictionary: the slot's values
// are then transient, and emit copies each record's into one allocation of
// its own. A shared block would be pinned by any record a caller keeps, and
// callers keep few of the rows they are given.
func (c *pqReader) inPlace() bool {
	return c.meta.kind == kindBytes && c.meta.f != fTimeGenerated
}

// inPlaceText is the text of b, aliasing it: a ResultType's numeric text
// normalised to its integer is a copy.
func (c *pqReader) inPlaceText(b []byte) string {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if c.meta.f == fResultType && len(s) > 0 && !canonicalInt(s) {
		if n, ok := numericInt(s); ok {
			return c.intTextString(n)
		}
	}
	return s
}

// seek moves the cursor to row (of the row group, at or after the cursor).
func (c *pqReader) seek(row int64) error {
	for c.page == nil || row >= c.pageStart+c.pageRows {
		if err := c.nextPage(); err != nil {
			return err
		}
	}
	at := row - c.pageStart
	if c.defs == nil {
		c.vi += int(at - c.at)
	} else {
		for _, d := range c.defs[c.at:at] {
			if d == c.meta.maxDef {
				c.vi++
			}
		}
	}
	c.at = at
	return nil
}

// cell appends the value at the cursor to o, at output index j, and moves
// the cursor to the next row.
func (c *pqReader) cell(o *pqValues, j int) {
	isTime := c.meta.f == fTimeGenerated
	if c.defs != nil && c.defs[c.at] != c.meta.maxDef {
		if isTime {
			o.times = append(o.times, time.Time{})
		} else {
			o.strs = append(o.strs, "")
		}
		c.at++
		return
	}
	var s string
	var tm time.Time
	var err error
	if c.idx != nil {
		s, tm, err = c.dictValue(c.idx[c.vi])
	} else if c.inPlace() {
		s = c.inPlaceText(c.vals.bytes(c.vi))
		if len(o.pages) == 0 || o.pages[len(o.pages)-1] != c.page {
			pq.Retain(c.page)
			o.pages = append(o.pages, c.page)
		}
	} else {
		s, tm, err = c.convert(&c.vals, c.vi)
	}
	c.at++
	c.vi++
	if err != nil {
		o.badAt(j, err)
		s, tm = "", time.Time{}
	}
	if isTime {
		o.times = append(o.times, tm)
	} else {
		o.strs = append(o.strs, s)
	}
}
