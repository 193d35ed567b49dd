package signin

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
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

// pqMeta is one wanted column found in the file and how to read it.
type pqMeta struct {
	f        field
	leaf     int // Parquet leaf column index
	kind     pqKind
	unsigned bool
	bits     int8 // integer width of an Int logical type, 0 when none
	unit     schema.TimeUnitType
	maxDef   int16
	pow      int64    // 10^scale of a DECIMAL ResultType, 0 when none or past int64
	bigPow   *big.Int // 10^scale of a DECIMAL ResultType held as bytes
}

// resolveColumns finds the columns of table t among the top-level fields of
// sc, by exact name, and checks their types. Other columns are never looked
// at, whatever their type.
func resolveColumns(sc *schema.Schema, t Table) ([numFields]*pqMeta, *colError) {
	var out [numFields]*pqMeta
	type top struct {
		node schema.Node
		leaf int
	}
	byName := map[string]top{}
	root := sc.Root()
	leaf := 0
	for i := 0; i < root.NumFields(); i++ {
		n := root.Field(i)
		if _, dup := byName[n.Name()]; !dup {
			byName[n.Name()] = top{n, leaf}
		}
		leaf += numLeaves(n)
	}
	fields, required := wanted(t)
	for _, f := range fields {
		tp, ok := byName[fieldNames[f]]
		if !ok {
			if required[f] {
				return out, &colError{f: f, err: errMissingColumn}
			}
			continue
		}
		m, err := columnMeta(f, tp.node, tp.leaf, sc)
		if err != nil {
			return out, &colError{f: f, err: err}
		}
		out[f] = m
	}
	return out, nil
}

func numLeaves(n schema.Node) int {
	g, ok := n.(*schema.GroupNode)
	if !ok {
		return 1
	}
	total := 0
	for i := 0; i < g.NumFields(); i++ {
		total += numLeaves(g.Field(i))
	}
	return total
}

// columnMeta checks that node (a top-level field whose first leaf is leaf)
// can be read as field f: the same types the Arrow conversion accepted, text
// for strings, integers for ResultType, timestamps or ISO text for
// TimeGenerated.
func columnMeta(f field, node schema.Node, leaf int, sc *schema.Schema) (*pqMeta, error) {
	if node.Type() == schema.Group {
		name := "struct"
		switch node.LogicalType().(type) {
		case schema.ListLogicalType:
			name = "list"
		case schema.MapLogicalType:
			name = "map"
		}
		return nil, fmt.Errorf("unsupported type %s", name)
	}
	if leaf < 0 || leaf >= sc.NumColumns() {
		return nil, errors.New("corrupt schema")
	}
	descr := sc.Column(leaf)
	if node.RepetitionType() == parquet.Repetitions.Repeated || descr.MaxRepetitionLevel() > 0 {
		return nil, fmt.Errorf("unsupported type list<%s>", typeName(descr))
	}
	m := &pqMeta{f: f, leaf: leaf, maxDef: descr.MaxDefinitionLevel()}
	if descr.MaxDefinitionLevel() > 1 {
		return nil, errors.New("corrupt schema: definition level above 1 for a top-level column")
	}
	lt := descr.LogicalType()
	if lt == nil || !lt.IsValid() {
		m.kind = kindNull
		return m, nil
	}
	if _, ok := lt.(schema.NullLogicalType); ok {
		m.kind = kindNull
		return m, nil
	}
	if !m.setKind(descr, lt) {
		return nil, fmt.Errorf("unsupported type %s", typeName(descr))
	}
	return m, nil
}

// setKind sets how the values of m's column (of type descr, logical type lt)
// are decoded; false when they cannot be read as m.f.
func (m *pqMeta) setKind(descr *schema.Column, lt schema.LogicalType) bool {
	f := m.f
	if dec, ok := lt.(schema.DecimalLogicalType); ok && f == fResultType && dec.Scale() >= 0 &&
		(descr.PhysicalType() == parquet.Types.ByteArray || descr.PhysicalType() == parquet.Types.FixedLenByteArray) {
		// A DECIMAL holding integers, as arrow-go and Spark write them.
		m.kind = kindDecimalFixed
		if descr.PhysicalType() == parquet.Types.ByteArray {
			m.kind = kindDecimalBytes
		}
		m.bigPow = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(dec.Scale())), nil)
		if m.bigPow.IsInt64() {
			m.pow = m.bigPow.Int64()
		}
		return true
	}
	switch descr.PhysicalType() {
	case parquet.Types.ByteArray:
		switch lt.(type) {
		case schema.NoLogicalType, schema.StringLogicalType, schema.EnumLogicalType, schema.JSONLogicalType, schema.BSONLogicalType:
		default:
			return false
		}
		if f == fTimeGenerated || f.text() || f == fResultType {
			m.kind = kindBytes
			return true
		}
	case parquet.Types.Int32, parquet.Types.Int64:
		return m.setIntKind(descr, lt)
	case parquet.Types.Int96:
		if f == fTimeGenerated {
			m.kind = kindInt96
			return true
		}
	case parquet.Types.Float, parquet.Types.Double:
		// A float writer's ResultType: integral values have one meaning
		// (0.0 is success); a row holding a fraction is skipped.
		if _, ok := lt.(schema.NoLogicalType); ok && f == fResultType {
			m.kind = kindFloat64
			if descr.PhysicalType() == parquet.Types.Float {
				m.kind = kindFloat32
			}
			return true
		}
	case parquet.Types.FixedLenByteArray:
		if _, ok := lt.(schema.UUIDLogicalType); ok && descr.TypeLength() == 16 && f.text() {
			m.kind = kindUUID
			return true
		}
	}
	return false
}

// setIntKind is setKind for an INT32 or INT64 column: a TIMESTAMP
// TimeGenerated, or a ResultType integer (plain, Int or DECIMAL).
func (m *pqMeta) setIntKind(descr *schema.Column, lt schema.LogicalType) bool {
	f := m.f
	if ts, ok := lt.(schema.TimestampLogicalType); ok && descr.PhysicalType() == parquet.Types.Int64 {
		if f != fTimeGenerated {
			return false
		}
		switch ts.TimeUnit() {
		case schema.TimeUnitMillis, schema.TimeUnitMicros, schema.TimeUnitNanos:
		default:
			return false
		}
		m.kind, m.unit = kindTimestamp, ts.TimeUnit()
		return true
	}
	if f != fResultType {
		return false
	}
	switch it := lt.(type) {
	case schema.NoLogicalType:
	case schema.IntLogicalType:
		m.bits, m.unsigned = it.BitWidth(), !it.IsSigned()
	case schema.DecimalLogicalType:
		// A DECIMAL(p, s) holding integers (DuckDB writes them as INT32/INT64).
		if it.Scale() < 0 || it.Scale() > 18 {
			return false
		}
		m.pow = 1
		for range it.Scale() {
			m.pow *= 10
		}
	default:
		return false
	}
	m.kind = kindInt64
	if descr.PhysicalType() == parquet.Types.Int32 {
		m.kind = kindInt32
	}
	return true
}

// text tells the fields read only as text.
func (f field) text() bool { return f != fTimeGenerated && f != fResultType }

// typeName names a column's type for errors, in Arrow's words where one fits.
func typeName(c *schema.Column) string {
	lt := c.LogicalType()
	if it, ok := lt.(schema.IntLogicalType); ok {
		if it.IsSigned() {
			return fmt.Sprintf("int%d", it.BitWidth())
		}
		return fmt.Sprintf("uint%d", it.BitWidth())
	}
	var base string
	switch c.PhysicalType() {
	case parquet.Types.Boolean:
		base = "bool"
	case parquet.Types.Int32:
		base = "int32"
	case parquet.Types.Int64:
		base = "int64"
	case parquet.Types.Int96:
		base = "int96"
	case parquet.Types.Float:
		base = "float32"
	case parquet.Types.Double:
		base = "float64"
	case parquet.Types.ByteArray:
		base = "binary"
	case parquet.Types.FixedLenByteArray:
		base = fmt.Sprintf("fixed_size_binary[%d]", c.TypeLength())
	default:
		base = c.PhysicalType().String()
	}
	if lt != nil && lt.IsValid() && !lt.IsNone() {
		base += " (" + lt.String() + ")"
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

// pqBatchRows is the most values asked of a column reader at once.
const pqBatchRows = 4096

// pqSkipGap is the shortest run of unwanted rows skipped rather than decoded:
// skipping costs a call into the reader, decoding a few values is cheaper.
const pqSkipGap = 256

// pqReader reads one wanted column of the current row group.
type pqReader struct {
	meta  *pqMeta
	cr    file.ColumnChunkReader // nil until first needed in this row group
	pos   int64                  // next row of the row group the reader is at
	rows  int64                  // rows of the row group
	defs  []int16
	bytes []parquet.ByteArray
	i32   []int32
	i64   []int64
	i96   []parquet.Int96
	f32   []float32
	f64   []float64
	flba  []parquet.FixedLenByteArray

	rg int // row group cr reads
	// out holds the decoded values of the slices in flight, a ring (pqRing).
	out [filterRing]pqValues

	// Text is copied out of the reader's buffers as it is decoded, on the
	// decoding goroutine: repeating values through an interner (a cache by
	// address first: a dictionary-encoded value keeps its address for the
	// whole column chunk), unique ones into shared blocks.
	in    interner
	cache *[internCache]cachedText
	blob  textBlock
	num   []byte
}

// pqValues is one slot of a column's ring: the values decoded for one slice,
// by output index (the row's offset in the slice, or its index in the
// selection).
type pqValues struct {
	strs  []string    // text (ResultType as text), safe to keep
	times []time.Time // TimeGenerated
	// bad lists the values that could not be read: they read as zero, and
	// the scan skips their rows or counts them blanked.
	bad []badCell
}

// reset empties v for n values of a time column (isTime) or a text one.
func (v *pqValues) reset(isTime bool, n int) {
	v.bad = v.bad[:0]
	clear(v.strs)
	v.strs, v.times = v.strs[:0], v.times[:0]
	if isTime {
		v.times = slices.Grow(v.times, n)
	} else {
		v.strs = slices.Grow(v.strs, n)
	}
}

// badAt lists the value at output index j as unreadable.
func (v *pqValues) badAt(j int, err error) { v.bad = append(v.bad, badCell{j, err}) }

const internCache = 8192

type cachedText struct {
	p *byte
	s string
}

// reset forgets the strings of the previous scan.
func (c *pqReader) reset(m *pqMeta) {
	c.meta = m
	c.in = interner{}
	c.blob = textBlock{}
	if c.cache != nil {
		clear(c.cache[:])
	}
	for b := range c.out {
		clear(c.out[b].strs)
		c.out[b].strs = c.out[b].strs[:0]
	}
}

// text returns b (aliasing the reader's buffers) as a string safe to keep.
func (c *pqReader) text(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if !c.meta.f.interned() {
		return c.blob.clone(unsafe.String(unsafe.SliceData(b), len(b)))
	}
	if c.cache == nil {
		c.cache = new([internCache]cachedText)
	}
	p := unsafe.SliceData(b)
	e := &c.cache[(uint64(uintptr(unsafe.Pointer(p)))*0x9E3779B97F4A7C15)>>(64-13)]
	// The address alone is not enough: a page buffer is reused for the next
	// page's values.
	if e.p == p && e.s == unsafe.String(p, len(b)) {
		return e.s
	}
	s := c.in.getBytes(b)
	e.p, e.s = p, s
	return s
}

type batchReader[T any] interface {
	ReadBatchInPage(batchSize int64, values []T, defLvls, repLvls []int16) (int64, int, error)
	Skip(int64) (int64, error)
}

// errShortColumn means a column chunk has fewer values than its row group rows.
var errShortColumn = errors.New("column chunk has fewer values than the row group has rows")

// readRows decodes rows [start, start+count) of the row group, or with sel
// only rows start+sel[k], calling visit with the output index (the row's
// offset from start, or k) and the value (ok false for a null). The value
// may alias the reader's page buffer: it is valid during the call only.
func readRows[T any](c *pqReader, r batchReader[T], buf []T, start, count int64, sel []int32, visit func(j int, v T, ok bool) error) error {
	if c.pos < start {
		if _, err := r.Skip(start - c.pos); err != nil {
			return err
		}
		c.pos = start
	}
	end := start + count
	k := 0
	var defs []int16
	if c.meta.maxDef > 0 {
		defs = c.defs
	}
	for {
		want := end - c.pos
		if sel != nil {
			if k == len(sel) {
				return nil
			}
			next := start + int64(sel[k])
			if gap := next - c.pos; gap >= pqSkipGap {
				if _, err := r.Skip(gap); err != nil {
					return err
				}
				c.pos = next
			}
			// Read on through the selected rows that follow closely.
			m := k
			for m+1 < len(sel) && sel[m+1]-sel[m] < pqSkipGap && start+int64(sel[m+1])-c.pos < int64(len(buf)) {
				m++
			}
			want = start + int64(sel[m]) + 1 - c.pos
		}
		if want <= 0 {
			return nil
		}
		want = min(want, int64(len(buf)))
		var dl []int16
		if defs != nil {
			dl = defs[:want]
		}
		lv, nv, err := r.ReadBatchInPage(want, buf[:want], dl, nil)
		if err != nil {
			return err
		}
		if lv <= 0 || lv > want {
			return errShortColumn
		}
		vi := 0
		var zero T
		for t := int64(0); t < lv; t++ {
			ok := defs == nil || defs[t] == c.meta.maxDef
			v := zero
			if ok {
				if vi >= nv {
					return errors.New("fewer values than definition levels")
				}
				v = buf[vi]
				vi++
			}
			j := -1
			if sel == nil {
				j = int(c.pos + t - start)
			} else if k < len(sel) && c.pos+t == start+int64(sel[k]) {
				j = k
				k++
			}
			if j >= 0 {
				if err := visit(j, v, ok); err != nil {
					return err
				}
			}
		}
		c.pos += lv
	}
}

// open prepares the reader of c in row group rg.
func (c *pqReader) open(rg *file.RowGroupReader) error {
	cr, err := rg.Column(c.meta.leaf)
	if err != nil {
		return err
	}
	c.cr, c.pos, c.rows = cr, 0, rg.NumRows()
	if c.meta.maxDef > 0 && len(c.defs) < pqBatchRows {
		c.defs = make([]int16, pqBatchRows)
	}
	return nil
}

func (c *pqReader) close() {
	if c.cr != nil {
		c.cr.Close()
		c.cr = nil
	}
}

// pqSlice is a run of rows of one row group, decoded at once.
type pqSlice struct {
	rg           int
	rgr          *file.RowGroupReader
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
// a pqDecoding, touches only c and slot b, and returns text safe to keep.
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
	if c.cr == nil || c.rg != sl.rg {
		c.close()
		if err := c.open(sl.rgr); err != nil {
			return err
		}
		c.rg = sl.rg
	}
	switch c.meta.kind {
	case kindBytes:
		return c.decodeBytes(o, sl, sel)
	case kindInt32:
		return c.decodeInt32(o, sl, sel)
	case kindInt64:
		return c.decodeInt64(o, sl, sel)
	case kindTimestamp:
		return c.decodeTimestamp(o, sl, sel)
	case kindInt96:
		return c.decodeInt96(o, sl, sel)
	case kindFloat32:
		return c.decodeFloat32(o, sl, sel)
	case kindFloat64:
		return c.decodeFloat64(o, sl, sel)
	case kindDecimalFixed:
		return c.decodeDecimalFixed(o, sl, sel)
	case kindDecimalBytes:
		return c.decodeDecimalBytes(o, sl, sel)
	case kindUUID:
		return c.decodeUUID(o, sl, sel)
	}
	return fmt.Errorf("unexpected column kind %d", c.meta.kind)
}

// chunkReader is c's column chunk reader as the reader type R of its kind.
func chunkReader[R file.ColumnChunkReader](c *pqReader) (R, error) {
	r, ok := c.cr.(R)
	if !ok {
		return r, fmt.Errorf("unexpected reader %T", c.cr)
	}
	return r, nil
}

// batchBuf returns the value buffer *buf, made on first use.
func batchBuf[T any](buf *[]T) []T {
	if *buf == nil {
		*buf = make([]T, pqBatchRows)
	}
	return *buf
}

// decodeBytes decodes BYTE_ARRAY text: ISO 8601 text for TimeGenerated,
// numeric text read as its integer for ResultType ("0.0" is success too).
func (c *pqReader) decodeBytes(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.ByteArrayColumnChunkReader](c)
	if err != nil {
		return err
	}
	buf := batchBuf(&c.bytes)
	switch c.meta.f {
	case fTimeGenerated:
		return readRows(c, r, buf, sl.start, sl.count, sel, func(j int, v parquet.ByteArray, ok bool) error {
			var tm time.Time
			if ok && len(v) > 0 {
				var err error
				if tm, err = parseTime(unsafe.String(unsafe.SliceData(v), len(v))); err != nil {
					o.badAt(j, err)
				}
			}
			o.times = append(o.times, tm)
			return nil
		})
	case fResultType:
		return readRows(c, r, buf, sl.start, sl.count, sel, func(_ int, v parquet.ByteArray, ok bool) error {
			if len(v) > 0 && !canonicalInt(unsafe.String(unsafe.SliceData(v), len(v))) {
				if n, ok := numericInt(string(v)); ok {
					o.strs = append(o.strs, c.in.get(n))
					return nil
				}
			}
			o.strs = append(o.strs, c.text(v))
			return nil
		})
	}
	return readRows(c, r, buf, sl.start, sl.count, sel, func(_ int, v parquet.ByteArray, ok bool) error {
		o.strs = append(o.strs, c.text(v))
		return nil
	})
}

// decodeInt32 decodes an INT32 ResultType.
func (c *pqReader) decodeInt32(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Int32ColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.i32), sl.start, sl.count, sel, func(j int, v int32, ok bool) error {
		o.strs = append(o.strs, c.resultInt(o, j, int64(v), ok, 32))
		return nil
	})
}

// decodeInt64 decodes an INT64 ResultType.
func (c *pqReader) decodeInt64(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Int64ColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.i64), sl.start, sl.count, sel, func(j int, v int64, ok bool) error {
		o.strs = append(o.strs, c.resultInt(o, j, v, ok, 64))
		return nil
	})
}

// resultInt is the text of an integer ResultType value v at output index j
// (ok false for a null), stored physical bits wide.
func (c *pqReader) resultInt(o *pqValues, j int, v int64, ok bool, physical int8) string {
	switch {
	case !ok:
		return ""
	case c.meta.pow > 0:
		return c.decimalText(o, j, v)
	case c.meta.unsigned:
		return c.uintText(truncUint(v, c.meta.bits, physical))
	}
	return c.intText(truncInt(v, c.meta.bits))
}

// decodeTimestamp decodes an INT64 TIMESTAMP TimeGenerated. Local (not
// UTC-adjusted) wall-clock times are taken as UTC, as Kusto does.
func (c *pqReader) decodeTimestamp(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Int64ColumnChunkReader](c)
	if err != nil {
		return err
	}
	unit := c.meta.unit
	return readRows(c, r, batchBuf(&c.i64), sl.start, sl.count, sel, func(_ int, v int64, ok bool) error {
		var tm time.Time
		if ok {
			switch unit {
			case schema.TimeUnitMillis:
				tm = time.UnixMilli(v).UTC()
			case schema.TimeUnitMicros:
				tm = time.UnixMicro(v).UTC()
			default:
				tm = time.Unix(0, v).UTC()
			}
		}
		o.times = append(o.times, tm)
		return nil
	})
}

// decodeInt96 decodes an INT96 TimeGenerated.
func (c *pqReader) decodeInt96(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Int96ColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.i96), sl.start, sl.count, sel, func(j int, v parquet.Int96, ok bool) error {
		var tm time.Time
		if ok {
			if ts, err := v.ToTimestamp(); err != nil {
				o.badAt(j, err)
			} else {
				tm = time.Unix(0, int64(ts)).UTC()
			}
		}
		o.times = append(o.times, tm)
		return nil
	})
}

// decodeFloat32 decodes a FLOAT ResultType holding integers.
func (c *pqReader) decodeFloat32(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Float32ColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.f32), sl.start, sl.count, sel, func(j int, v float32, ok bool) error {
		o.strs = append(o.strs, c.floatText(o, j, float64(v), ok))
		return nil
	})
}

// decodeFloat64 decodes a DOUBLE ResultType holding integers.
func (c *pqReader) decodeFloat64(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.Float64ColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.f64), sl.start, sl.count, sel, func(j int, v float64, ok bool) error {
		o.strs = append(o.strs, c.floatText(o, j, v, ok))
		return nil
	})
}

// decodeDecimalFixed decodes a FIXED_LEN_BYTE_ARRAY DECIMAL ResultType.
func (c *pqReader) decodeDecimalFixed(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.FixedLenByteArrayColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.flba), sl.start, sl.count, sel, func(j int, v parquet.FixedLenByteArray, ok bool) error {
		o.strs = append(o.strs, c.decimalBytesText(o, j, v, ok))
		return nil
	})
}

// decodeDecimalBytes decodes a BYTE_ARRAY DECIMAL ResultType.
func (c *pqReader) decodeDecimalBytes(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.ByteArrayColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.bytes), sl.start, sl.count, sel, func(j int, v parquet.ByteArray, ok bool) error {
		o.strs = append(o.strs, c.decimalBytesText(o, j, v, ok))
		return nil
	})
}

// decodeUUID decodes a FIXED_LEN_BYTE_ARRAY(16) UUID as its text.
func (c *pqReader) decodeUUID(o *pqValues, sl *pqSlice, sel []int32) error {
	r, err := chunkReader[*file.FixedLenByteArrayColumnChunkReader](c)
	if err != nil {
		return err
	}
	return readRows(c, r, batchBuf(&c.flba), sl.start, sl.count, sel, func(j int, v parquet.FixedLenByteArray, ok bool) error {
		switch {
		case !ok:
			o.strs = append(o.strs, "")
		case len(v) != 16:
			o.badAt(j, fmt.Errorf("UUID of %d bytes", len(v)))
			o.strs = append(o.strs, "")
		default:
			c.num = uuidText(c.num[:0], v)
			o.strs = append(o.strs, c.text(c.num))
		}
		return nil
	})
}

// floatText reads an integral float as its integer text; a fraction (or NaN,
// or an infinity) has no clear ResultType meaning.
func (c *pqReader) floatText(o *pqValues, j int, v float64, ok bool) string {
	if !ok {
		return ""
	}
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		o.badAt(j, fmt.Errorf("want an integer, got %v", v))
		return ""
	}
	return c.intText(int64(v))
}

// decimalText reads the unscaled DECIMAL value v as its integer text.
func (c *pqReader) decimalText(o *pqValues, j int, v int64) string {
	if v%c.meta.pow != 0 {
		o.badAt(j, fmt.Errorf("want an integer, got %s", strconv.FormatFloat(float64(v)/float64(c.meta.pow), 'f', -1, 64)))
		return ""
	}
	return c.intText(v / c.meta.pow)
}

// decimalBytesText reads a DECIMAL's unscaled big-endian two's complement
// bytes as its integer text.
func (c *pqReader) decimalBytesText(o *pqValues, j int, v []byte, ok bool) string {
	switch {
	case !ok:
		return ""
	case len(v) == 0:
		o.badAt(j, errors.New("empty DECIMAL value"))
		return ""
	case len(v) <= 8 && c.meta.pow > 0:
		x := int64(int8(v[0]))
		for _, b := range v[1:] {
			x = x<<8 | int64(b)
		}
		return c.decimalText(o, j, x)
	}
	n := new(big.Int).SetBytes(v)
	if v[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v))))
	}
	q, r := new(big.Int).QuoRem(n, c.meta.bigPow, new(big.Int))
	if r.Sign() != 0 {
		o.badAt(j, fmt.Errorf("want an integer, got %s", new(big.Rat).SetFrac(n, c.meta.bigPow).FloatString(len(c.meta.bigPow.String())-1)))
		return ""
	}
	return c.in.get(q.String())
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

func (c *pqReader) intText(v int64) string {
	c.num = strconv.AppendInt(c.num[:0], v, 10)
	return c.in.getBytes(c.num)
}

func (c *pqReader) uintText(v uint64) string {
	c.num = strconv.AppendUint(c.num[:0], v, 10)
	return c.in.getBytes(c.num)
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
