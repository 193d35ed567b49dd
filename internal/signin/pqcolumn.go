package signin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unsafe"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// pqKind tells how the values of a Parquet column are decoded.
type pqKind int

const (
	kindNull         pqKind = iota // every value null: Null (or unknown) logical type
	kindBytes                      // BYTE_ARRAY text
	kindInt32                      // INT32 integer (ResultType)
	kindInt64                      // INT64 integer (ResultType)
	kindTimestamp                  // INT64 TIMESTAMP (TimeGenerated)
	kindInt96                      // INT96 timestamp (TimeGenerated)
	kindFloat32                    // FLOAT (ResultType holding integers)
	kindFloat64                    // DOUBLE (ResultType holding integers)
	kindUUID                       // FIXED_LEN_BYTE_ARRAY(16) UUID, read as its text
	kindDecimalFixed               // FIXED_LEN_BYTE_ARRAY DECIMAL (ResultType holding integers)
	kindDecimalBytes               // BYTE_ARRAY DECIMAL (ResultType holding integers)
)

// timeUnit is the unit of an INT64 TIMESTAMP.
type timeUnit int

const (
	unitMillis timeUnit = iota
	unitMicros
	unitNanos
)

// pqMeta is one wanted column found in the file and how to read it.
type pqMeta struct {
	f        field
	leaf     int // Parquet leaf column index
	kind     pqKind
	phys     format.Type
	fixed    int // FIXED_LEN_BYTE_ARRAY value size
	unsigned bool
	bits     int8 // integer width of an Int logical type, 0 when none
	unit     timeUnit
	maxDef   byte
	pow      int64    // 10^scale of a DECIMAL ResultType, 0 when none or past int64
	bigPow   *big.Int // 10^scale of a DECIMAL ResultType held as bytes
}

// logical is a column's logical type, from its LogicalType annotation or, in
// files of older writers, its ConvertedType.
type logical struct {
	kind     logicalKind
	scale    int32
	bits     int8
	signed   bool
	unit     timeUnit
	unitOK   bool
	adjusted bool
	name     string // for errors
}

type logicalKind int

const (
	ltNone logicalKind = iota
	ltString
	ltTextual // ENUM, JSON, BSON: still text
	ltDecimal
	ltTimestamp
	ltInt
	ltNull
	ltUUID
	ltList
	ltMap
	ltOther // a type no column accepts (DATE, TIME, FLOAT16, ...)
)

func logicalOf(e *format.SchemaElement) logical {
	switch v := e.LogicalType.Value.(type) {
	case nil:
	case *format.StringType:
		return logical{kind: ltString, name: "String"}
	case *format.EnumType, *format.JsonType, *format.BsonType:
		return logical{kind: ltTextual, name: v.String()}
	case *format.DecimalType:
		return logical{kind: ltDecimal, scale: v.Scale, name: v.String()}
	case *format.TimestampType:
		l := logical{kind: ltTimestamp, adjusted: v.IsAdjustedToUTC, name: v.String(), unitOK: true}
		switch v.Unit.Value.(type) {
		case *format.MilliSeconds:
			l.unit = unitMillis
		case *format.MicroSeconds:
			l.unit = unitMicros
		case *format.NanoSeconds:
			l.unit = unitNanos
		default:
			l.unitOK = false
		}
		return l
	case *format.IntType:
		return logical{kind: ltInt, bits: v.BitWidth, signed: v.IsSigned, name: v.String()}
	case *format.NullType:
		return logical{kind: ltNull, name: "Null"}
	case *format.UUIDType:
		return logical{kind: ltUUID, name: "UUID"}
	case *format.ListType:
		return logical{kind: ltList, name: "List"}
	case *format.MapType:
		return logical{kind: ltMap, name: "Map"}
	default:
		return logical{kind: ltOther, name: v.String()}
	}
	if !e.ConvertedType.Valid {
		return logical{}
	}
	switch ct := e.ConvertedType.V; ct {
	case deprecated.UTF8:
		return logical{kind: ltString, name: "String"}
	case deprecated.Enum, deprecated.Json, deprecated.Bson:
		return logical{kind: ltTextual, name: convertedName(ct)}
	case deprecated.Decimal:
		return logical{kind: ltDecimal, scale: e.Scale.V, name: convertedName(ct)}
	case deprecated.TimestampMillis:
		return logical{kind: ltTimestamp, adjusted: true, unit: unitMillis, unitOK: true, name: convertedName(ct)}
	case deprecated.TimestampMicros:
		return logical{kind: ltTimestamp, adjusted: true, unit: unitMicros, unitOK: true, name: convertedName(ct)}
	case deprecated.Int8, deprecated.Int16, deprecated.Int32, deprecated.Int64:
		return logical{kind: ltInt, signed: true, bits: [...]int8{8, 16, 32, 64}[ct-deprecated.Int8], name: convertedName(ct)}
	case deprecated.Uint8, deprecated.Uint16, deprecated.Uint32, deprecated.Uint64:
		return logical{kind: ltInt, bits: [...]int8{8, 16, 32, 64}[ct-deprecated.Uint8], name: convertedName(ct)}
	case deprecated.List:
		return logical{kind: ltList, name: "List"}
	case deprecated.Map, deprecated.MapKeyValue:
		return logical{kind: ltMap, name: "Map"}
	default:
		return logical{kind: ltOther, name: convertedName(ct)}
	}
}

// resolveColumns finds the columns of table t among the top-level fields of
// the file's schema (its flattened elements, root first), by exact name, and
// checks their types. Other columns are never looked at, whatever their type.
//
// With extra, the columns of Record.Extra are read too; one of a type it
// cannot be read as is left unread (its values read as ""), not an error:
// the precision modes keep a pair whose columns they cannot read.
func resolveColumns(elems []format.SchemaElement, t Table, extra []string) ([numFields]*pqMeta, *colError) {
	var out [numFields]*pqMeta
	type top struct {
		elem int
		leaf int
	}
	byName := map[string]top{}
	if len(elems) == 0 {
		return out, &colError{f: fTimeGenerated, err: errors.New("corrupt schema: no root")}
	}
	leaf, next := 0, 1
	for range elems[0].NumChildren.V {
		if next >= len(elems) {
			break
		}
		n := elems[next].Name
		if _, dup := byName[n]; !dup {
			byName[n] = top{next, leaf}
		}
		var leaves int
		next, leaves = skipElement(elems, next, 0)
		leaf += leaves
	}
	fields, required := wanted(t, extra)
	for _, f := range fields {
		tp, ok := byName[fieldNames[f]]
		if !ok {
			if required[f] {
				return out, &colError{f: f, err: errMissingColumn}
			}
			continue
		}
		m, err := columnMeta(f, elems, tp.elem, tp.leaf)
		if err != nil && f.extra() {
			continue
		}
		if err != nil {
			return out, &colError{f: f, err: err}
		}
		out[f] = m
	}
	return out, nil
}

// skipElement returns the index after element i and its descendants, and
// their leaves. A corrupt child count cannot run past the list or recurse
// without end.
func skipElement(elems []format.SchemaElement, i, depth int) (next, leaves int) {
	e := &elems[i]
	if !e.NumChildren.Valid || e.NumChildren.V <= 0 || e.Type.Valid || depth > 64 {
		return i + 1, 1
	}
	next = i + 1
	for range e.NumChildren.V {
		if next >= len(elems) {
			break
		}
		var n int
		next, n = skipElement(elems, next, depth+1)
		leaves += n
	}
	return next, leaves
}

// columnMeta checks that element i (a top-level field whose first leaf is
// leaf) can be read as field f: text for strings, integers for ResultType,
// timestamps or ISO text for TimeGenerated.
func columnMeta(f field, elems []format.SchemaElement, i, leaf int) (*pqMeta, error) {
	e := &elems[i]
	lt := logicalOf(e)
	if !e.Type.Valid {
		name := "struct"
		switch lt.kind {
		case ltList:
			name = "list"
		case ltMap:
			name = "map"
		}
		return nil, fmt.Errorf("unsupported type %s", name)
	}
	if e.RepetitionType.Valid && e.RepetitionType.V == format.Repeated {
		return nil, fmt.Errorf("unsupported type list<%s>", typeName(e, lt))
	}
	m := &pqMeta{f: f, leaf: leaf, phys: e.Type.V, fixed: int(e.TypeLength.V)}
	if !e.RepetitionType.Valid || e.RepetitionType.V == format.Optional {
		m.maxDef = 1
	}
	if lt.kind == ltNull {
		m.kind = kindNull
		return m, nil
	}
	if !m.setKind(e, lt) {
		return nil, fmt.Errorf("unsupported type %s", typeName(e, lt))
	}
	return m, nil
}

// setKind sets how the values of m's column (element e, logical type lt)
// are decoded; false when they cannot be read as m.f.
func (m *pqMeta) setKind(e *format.SchemaElement, lt logical) bool {
	f := m.f
	phys := e.Type.V
	if lt.kind == ltDecimal && f == fResultType && lt.scale >= 0 &&
		(phys == format.ByteArray || phys == format.FixedLenByteArray) {
		// A DECIMAL holding integers, as Arrow and Spark writers store them.
		m.kind = kindDecimalFixed
		if phys == format.ByteArray {
			m.kind = kindDecimalBytes
		}
		m.bigPow = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(lt.scale)), nil)
		if m.bigPow.IsInt64() {
			m.pow = m.bigPow.Int64()
		}
		return true
	}
	switch phys {
	case format.ByteArray:
		switch lt.kind {
		case ltNone, ltString, ltTextual:
		default:
			return false
		}
		if f == fTimeGenerated || f.text() || f == fResultType {
			m.kind = kindBytes
			return true
		}
	case format.Int32, format.Int64:
		return m.setIntKind(phys, lt)
	case format.Int96:
		if f == fTimeGenerated && lt.kind == ltNone {
			m.kind = kindInt96
			return true
		}
	case format.Float, format.Double:
		// A float writer's ResultType: integral values have one meaning
		// (0.0 is success); a row holding a fraction is skipped.
		if lt.kind == ltNone && f == fResultType {
			m.kind = kindFloat64
			if phys == format.Float {
				m.kind = kindFloat32
			}
			return true
		}
	case format.FixedLenByteArray:
		if lt.kind == ltUUID && e.TypeLength.V == 16 && f.text() {
			m.kind = kindUUID
			return true
		}
	}
	return false
}

// setIntKind is setKind for an INT32 or INT64 column: a TIMESTAMP
// TimeGenerated, or a ResultType integer (plain, Int or DECIMAL).
func (m *pqMeta) setIntKind(phys format.Type, lt logical) bool {
	f := m.f
	if lt.kind == ltTimestamp {
		if f != fTimeGenerated || phys != format.Int64 || !lt.unitOK {
			return false
		}
		m.kind, m.unit = kindTimestamp, lt.unit
		return true
	}
	if f == fAutonomousSystemNumber && (lt.kind == ltNone || lt.kind == ltInt) {
		// Kusto's ASN is a string, but some writers store it as a number.
		m.bits, m.unsigned = lt.bits, lt.kind == ltInt && !lt.signed
		m.kind = kindInt64
		if phys == format.Int32 {
			m.kind = kindInt32
		}
		return true
	}
	if f != fResultType {
		return false
	}
	switch lt.kind {
	case ltNone:
	case ltInt:
		m.bits, m.unsigned = lt.bits, !lt.signed
	case ltDecimal:
		// A DECIMAL(p, s) holding integers (DuckDB writes them as INT32/INT64).
		if lt.scale < 0 || lt.scale > 18 {
			return false
		}
		m.pow = 1
		for range lt.scale {
			m.pow *= 10
		}
	default:
		return false
	}
	m.kind = kindInt64
	if phys == format.Int32 {
		m.kind = kindInt32
	}
	return true
}

// text tells the fields read only as text.
func (f field) text() bool { return f != fTimeGenerated && f != fResultType }

// typeName names a column's type for errors, in Arrow's words where one fits.
func typeName(e *format.SchemaElement, lt logical) string {
	if lt.kind == ltInt {
		if lt.signed {
			return fmt.Sprintf("int%d", lt.bits)
		}
		return fmt.Sprintf("uint%d", lt.bits)
	}
	var base string
	switch e.Type.V {
	case format.Boolean:
		base = "bool"
	case format.Int32:
		base = "int32"
	case format.Int64:
		base = "int64"
	case format.Int96:
		base = "int96"
	case format.Float:
		base = "float32"
	case format.Double:
		base = "float64"
	case format.ByteArray:
		base = "binary"
	case format.FixedLenByteArray:
		base = fmt.Sprintf("fixed_size_binary[%d]", e.TypeLength.V)
	default:
		base = e.Type.V.String()
	}
	if lt.kind != ltNone && lt.name != "" {
		base += " (" + lt.name + ")"
	}
	return base
}

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

// dictValue is dictionary entry x, converted on first use.
func (c *pqReader) dictValue(x int32) (string, time.Time, error) {
	if x < 0 || int(x) >= c.dictLen {
		return "", time.Time{}, fmt.Errorf("dictionary index %d out of range", x)
	}
	if c.dictGen[x] != c.gen {
		var s string
		var tm time.Time
		var err error
		if c.inPlace() {
			// The dictionary is garbage collected, not pooled: text
			// aliasing it stays valid.
			s = c.inPlaceText(c.dictVals.bytes(int(x)))
		} else {
			s, tm, err = c.convert(&c.dictVals, int(x))
		}
		if err != nil {
			if c.dictBad == nil {
				c.dictBad = map[int32]error{}
			}
			c.dictBad[x] = err
		}
		if c.meta.f == fTimeGenerated {
			c.dictTime[x] = tm
		} else {
			c.dictStr[x] = s
		}
		c.dictGen[x] = c.gen
	}
	if err := c.dictBad[x]; err != nil {
		return "", time.Time{}, err
	}
	if c.meta.f == fTimeGenerated {
		return "", c.dictTime[x], nil
	}
	return c.dictStr[x], time.Time{}, nil
}

// convert reads value i of v as the column's text (or, for TimeGenerated,
// time); err is a value of no clear meaning. Text may alias v.
func (c *pqReader) convert(v *rawValues, i int) (string, time.Time, error) {
	m := c.meta
	switch m.kind {
	case kindBytes:
		b := v.bytes(i)
		if m.f != fTimeGenerated {
			return c.inPlaceText(b), time.Time{}, nil
		}
		if len(b) == 0 {
			return "", time.Time{}, nil
		}
		tm, err := parseTime(unsafe.String(unsafe.SliceData(b), len(b)))
		return "", tm, err
	case kindInt32:
		s, err := c.resultInt(int64(v.int32(i)), 32)
		return s, time.Time{}, err
	case kindInt64:
		s, err := c.resultInt(v.int64(i), 64)
		return s, time.Time{}, err
	case kindTimestamp:
		// Local (not UTC-adjusted) wall-clock times are taken as UTC, as
		// Kusto does.
		x := v.int64(i)
		switch m.unit {
		case unitMillis:
			return "", time.UnixMilli(x).UTC(), nil
		case unitMicros:
			return "", time.UnixMicro(x).UTC(), nil
		}
		return "", time.Unix(0, x).UTC(), nil
	case kindInt96:
		ns, err := int96Nanos(v.data[12*i : 12*i+12])
		if err != nil {
			return "", time.Time{}, err
		}
		return "", time.Unix(0, ns).UTC(), nil
	case kindFloat32:
		s, err := c.floatText(float64(math.Float32frombits(binary.LittleEndian.Uint32(v.data[4*i:]))))
		return s, time.Time{}, err
	case kindFloat64:
		s, err := c.floatText(math.Float64frombits(binary.LittleEndian.Uint64(v.data[8*i:])))
		return s, time.Time{}, err
	case kindDecimalFixed, kindDecimalBytes:
		s, err := c.decimalBytesText(v.bytes(i))
		return s, time.Time{}, err
	case kindUUID:
		b := v.bytes(i)
		if len(b) != 16 {
			return "", time.Time{}, fmt.Errorf("UUID of %d bytes", len(b))
		}
		c.num = uuidText(c.num[:0], b)
		return c.textBytes(c.num), time.Time{}, nil
	}
	return "", time.Time{}, fmt.Errorf("unexpected column kind %d", m.kind)
}

// text copies s (which may alias a page buffer) into the shared blocks.
func (c *pqReader) text(s string) string {
	if s == "" {
		return ""
	}
	return c.blob.clone(s)
}

func (c *pqReader) textBytes(b []byte) string {
	return c.text(unsafe.String(unsafe.SliceData(b), len(b)))
}

const nanosPerDay = 86400 * 1_000_000_000

// julianUnixEpoch is the Julian day of 1970-01-01.
const julianUnixEpoch = 2440588

// int96Nanos reads a legacy INT96 timestamp (nanoseconds of the day, then
// the Julian day, little-endian) as nanoseconds since the Unix epoch; an
// error past the range of int64 nanoseconds.
func int96Nanos(b []byte) (int64, error) {
	nanosOfDay := binary.LittleEndian.Uint64(b[:8])
	if nanosOfDay >= nanosPerDay {
		return 0, fmt.Errorf("invalid INT96 nanoseconds of day: %d", nanosOfDay)
	}
	days := int64(binary.LittleEndian.Uint32(b[8:])) - julianUnixEpoch
	ns := int64(nanosOfDay)
	const maxDays = math.MaxInt64 / nanosPerDay
	if days > maxDays || days == maxDays && ns > math.MaxInt64%nanosPerDay {
		return 0, errors.New("INT96 timestamp is outside the nanosecond range")
	}
	const minDays = math.MinInt64 / nanosPerDay
	if days < minDays {
		// Division truncates toward zero: the earliest time falls on the
		// day before minDays.
		minNanos := int64(nanosPerDay + math.MinInt64%nanosPerDay)
		if days != minDays-1 || ns < minNanos {
			return 0, errors.New("INT96 timestamp is outside the nanosecond range")
		}
		return math.MinInt64 + ns - minNanos, nil
	}
	return days*nanosPerDay + ns, nil
}

// resultInt is the text of an integer ResultType value v, stored physical
// bits wide.
func (c *pqReader) resultInt(v int64, physical int8) (string, error) {
	switch {
	case c.meta.pow > 0:
		return c.decimalText(v)
	case c.meta.unsigned:
		return c.uintText(truncUint(v, c.meta.bits, physical)), nil
	}
	return c.intText(truncInt(v, c.meta.bits)), nil
}

// floatText reads an integral float as its integer text; a fraction (or NaN,
// or an infinity) has no clear ResultType meaning.
func (c *pqReader) floatText(v float64) (string, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return "", fmt.Errorf("want an integer, got %v", v)
	}
	return c.intText(int64(v)), nil
}

// decimalText reads the unscaled DECIMAL value v as its integer text.
func (c *pqReader) decimalText(v int64) (string, error) {
	if v%c.meta.pow != 0 {
		return "", fmt.Errorf("want an integer, got %s", strconv.FormatFloat(float64(v)/float64(c.meta.pow), 'f', -1, 64))
	}
	return c.intText(v / c.meta.pow), nil
}

// decimalBytesText reads a DECIMAL's unscaled big-endian two's complement
// bytes as its integer text.
func (c *pqReader) decimalBytesText(v []byte) (string, error) {
	switch {
	case len(v) == 0:
		return "", errors.New("empty DECIMAL value")
	case len(v) <= 8 && c.meta.pow > 0:
		x := int64(int8(v[0]))
		for _, b := range v[1:] {
			x = x<<8 | int64(b)
		}
		return c.decimalText(x)
	}
	n := new(big.Int).SetBytes(v)
	if v[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v))))
	}
	q, r := new(big.Int).QuoRem(n, c.meta.bigPow, new(big.Int))
	if r.Sign() != 0 {
		return "", fmt.Errorf("want an integer, got %s", new(big.Rat).SetFrac(n, c.meta.bigPow).FloatString(len(c.meta.bigPow.String())-1))
	}
	return c.text(q.String()), nil
}

// uuidText appends the canonical 8-4-4-4-12 lowercase text of a 16-byte UUID.
func uuidText(dst []byte, u []byte) []byte {
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// smallInts are the texts of the common small ResultType codes (0 is
// success), so that a plain integer column does not copy them per row.
var smallInts = func() (s [256]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return
}()

// intTextString is the integer text n (as numericInt writes it).
func (c *pqReader) intTextString(n string) string {
	if len(n) <= 3 {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 && v < len(smallInts) {
			return smallInts[v]
		}
	}
	return c.text(n)
}

func (c *pqReader) intText(v int64) string {
	if v >= 0 && v < int64(len(smallInts)) {
		return smallInts[v]
	}
	c.num = strconv.AppendInt(c.num[:0], v, 10)
	return c.textBytes(c.num)
}

func (c *pqReader) uintText(v uint64) string {
	if v < uint64(len(smallInts)) {
		return smallInts[v]
	}
	c.num = strconv.AppendUint(c.num[:0], v, 10)
	return c.textBytes(c.num)
}

// truncInt narrows v to a signed Int logical type of the given width, as
// the Arrow conversion does.
func truncInt(v int64, bits int8) int64 {
	switch bits {
	case 8:
		return int64(int8(v))
	case 16:
		return int64(int16(v))
	case 32:
		return int64(int32(v))
	}
	return v
}

// truncUint reads v as an unsigned integer of an Int logical type of the
// given width (physical is the storage width when bits is unknown).
func truncUint(v int64, bits int8, physical int8) uint64 {
	if bits == 0 {
		bits = physical
	}
	switch bits {
	case 8:
		return uint64(uint8(v))
	case 16:
		return uint64(uint16(v))
	case 32:
		return uint64(uint32(v))
	}
	return uint64(v)
}

var convertedNames = [...]string{"UTF8", "MAP", "MAP_KEY_VALUE", "LIST", "ENUM", "DECIMAL", "DATE", "TIME_MILLIS",
	"TIME_MICROS", "TIMESTAMP_MILLIS", "TIMESTAMP_MICROS", "UINT_8", "UINT_16", "UINT_32", "UINT_64", "INT_8",
	"INT_16", "INT_32", "INT_64", "JSON", "BSON", "INTERVAL"}

func convertedName(ct deprecated.ConvertedType) string {
	if ct >= 0 && int(ct) < len(convertedNames) {
		return convertedNames[ct]
	}
	return fmt.Sprintf("ConvertedType(%d)", int(ct))
}
