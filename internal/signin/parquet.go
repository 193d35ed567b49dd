package signin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetReadRows is the most rows decoded into Arrow at once: it bounds the
// memory of a large row group while keeping per-batch overhead small.
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

// pqColumn is one wanted column found in the file.
type pqColumn struct {
	f    field
	leaf int // Parquet leaf column index
}

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
	classify := func(col string, e error) error {
		if ioErr := src.failed(); ioErr != nil {
			return fmt.Errorf("%s: read parquet: %w", name, ioErr)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return formatErr(col, 0, e)
	}

	pf, err := file.NewParquetReader(io.NewSectionReader(src, 0, size))
	if err != nil {
		return st, classify("", fmt.Errorf("not a readable parquet file: %w", err))
	}
	defer pf.Close()

	batchSize := opts.BatchSize
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	fields, required := wanted(t)
	props := pqarrow.ArrowReadProperties{BatchSize: int64(max(batchSize, parquetReadRows))}

	fr, err := pqarrow.NewFileReader(pf, props, memory.DefaultAllocator)
	if err != nil {
		return st, classify("", fmt.Errorf("parquet schema: %w", err))
	}
	var cols []pqColumn
	for _, f := range fields {
		col := fieldNames[f]
		sf := topLevelField(fr.Manifest, col)
		if sf == nil {
			if required[f] {
				return st, formatErr(col, 0, errMissingColumn)
			}
			continue
		}
		if !sf.IsLeaf() || !acceptType(f, sf.Field.Type) {
			return st, formatErr(col, 0, fmt.Errorf("unsupported type %s", sf.Field.Type))
		}
		cols = append(cols, pqColumn{f: f, leaf: sf.ColIndex})
		// Low-cardinality text is read as Arrow dictionaries: each distinct
		// value is then converted once per batch instead of once per row.
		if f.interned() && pf.MetaData().Schema.Column(sf.ColIndex).PhysicalType() == parquet.Types.ByteArray {
			props.SetReadDict(sf.ColIndex, true)
		}
	}
	// The dictionary choice shapes the schema manifest, so read it again.
	if fr, err = pqarrow.NewFileReader(pf, props, memory.DefaultAllocator); err != nil {
		return st, classify("", fmt.Errorf("parquet schema: %w", err))
	}
	leaves := make([]int, len(cols))
	for i, c := range cols {
		leaves[i] = c.leaf
	}

	dec := pqDecoder{fields: cols}
	batch := make([]Record, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		inCallback = true
		err := fn(batch)
		inCallback = false
		batch = batch[:0]
		return err
	}

	keep := opts.Keep
	if keep != nil {
		keep = func(r *Record) bool {
			inCallback = true
			k := opts.Keep(r)
			inCallback = false
			return k
		}
	}
	out := new(Record) // one scratch record: Keep may retain its pointer only during the call
	var rowBase int64  // rows of the file before the current Arrow batch
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if pf.MetaData().RowGroup(rg).NumRows() == 0 {
			continue
		}
		rr, err := fr.GetRecordReader(ctx, leaves, []int{rg})
		if err != nil {
			return st, classify("", fmt.Errorf("row group %d: %w", rg, err))
		}
		for rr.Next() {
			if err := ctx.Err(); err != nil {
				rr.Release()
				return st, err
			}
			rec := rr.RecordBatch()
			if err := dec.bind(rec); err != nil {
				rr.Release()
				return st, formatErr(fieldNames[dec.errField], 0, err)
			}
			n := int(rec.NumRows())
			for i := 0; i < n; i++ {
				*out = Record{}
				kept, err := dec.row(out, i, keep)
				if err != nil {
					rr.Release()
					return st, formatErr(fieldNames[dec.errField], rowBase+int64(i)+1, err)
				}
				st.Read++
				if !kept {
					continue
				}
				batch = append(batch, *out)
				st.Rows++
				if len(batch) == batchSize {
					if err := flush(); err != nil {
						rr.Release()
						return st, err
					}
				}
			}
			rowBase += int64(n)
		}
		rerr := rr.Err()
		rr.Release()
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return st, classify("", fmt.Errorf("row group %d: %w", rg, rerr))
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if want := pf.NumRows(); st.Read != want {
		return st, formatErr("", 0, fmt.Errorf("read %d rows, footer says %d", st.Read, want))
	}
	st.Consumed = size
	return st, nil
}

// topLevelField finds a column by exact name among the top-level fields.
func topLevelField(m *pqarrow.SchemaManifest, name string) *pqarrow.SchemaField {
	for i := range m.Fields {
		if m.Fields[i].Field != nil && m.Fields[i].Field.Name == name {
			return &m.Fields[i]
		}
	}
	return nil
}

// acceptType tells whether the Arrow type a Parquet column maps to can be
// read as field f.
func acceptType(f field, dt arrow.DataType) bool {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.ValueType
	}
	switch dt.ID() {
	case arrow.NULL:
		return true
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW, arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW:
		return true
	case arrow.TIMESTAMP:
		return f == fTimeGenerated
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return f == fResultType
	}
	return false
}

// pqDecoder turns rows of an Arrow record batch into Records.
type pqDecoder struct {
	fields   []pqColumn
	strs     [numFields]func(int) string
	times    func(int) (time.Time, error)
	intern   [numFields]interner
	errField field
	buf      strings.Builder
}

// bind prepares accessors for the columns of rec.
func (d *pqDecoder) bind(rec arrow.RecordBatch) error {
	d.times = nil
	d.strs = [numFields]func(int) string{}
	for _, c := range d.fields {
		d.errField = c.f
		idx := rec.Schema().FieldIndices(fieldNames[c.f])
		if len(idx) == 0 {
			return errors.New("column absent from decoded batch")
		}
		arr := rec.Column(idx[0])
		if c.f == fTimeGenerated {
			tf, err := timeAccessor(arr)
			if err != nil {
				return err
			}
			d.times = tf
			continue
		}
		// Interned columns are copied by the interner; the others are
		// returned aliasing Arrow's buffers and copied by row.
		var in *interner
		if c.f.interned() {
			in = &d.intern[c.f]
		}
		sf, err := stringAccessor(arr, in)
		if err != nil {
			return err
		}
		d.strs[c.f] = sf
	}
	return nil
}

// row decodes row i into out. With keep set, the filter columns are decoded
// first and the rest only when keep accepts the row.
func (d *pqDecoder) row(out *Record, i int, keep func(*Record) bool) (bool, error) {
	// TimeGenerated is a filter column too (--now's lower bound).
	if d.times != nil {
		tm, err := d.times(i)
		if err != nil {
			d.errField = fTimeGenerated
			return false, err
		}
		out.TimeGenerated = tm
	}
	if keep != nil {
		for f := field(0); f < numFields; f++ {
			if f.filter() && d.strs[f] != nil {
				out.setString(f, d.strs[f](i))
			}
		}
		if !keep(out) {
			return false, nil
		}
	}
	var unique [numFields]string // non-interned values, still in Arrow's buffers
	size := 0
	for f := field(0); f < numFields; f++ {
		if (keep == nil || !f.filter()) && d.strs[f] != nil {
			if f.interned() {
				out.setString(f, d.strs[f](i))
			} else {
				unique[f] = d.strs[f](i)
				size += len(unique[f])
			}
		}
	}
	if size > 0 {
		// Copy the row's unique values (Id, CorrelationId, ...) out of Arrow's
		// buffers with one allocation, and slice it.
		d.buf.Reset()
		d.buf.Grow(size)
		for _, s := range unique {
			d.buf.WriteString(s)
		}
		all := d.buf.String()
		for f, s := range unique {
			if s != "" {
				out.setString(field(f), all[:len(s)])
				all = all[len(s):]
			}
		}
	}
	return true, nil
}

// stringAccessor returns a function reading row i of arr as text; a null is
// "". With an interner the strings are safe to keep; without one they alias
// Arrow's buffers and are valid only until the batch is released.
func stringAccessor(arr arrow.Array, in *interner) (func(int) string, error) {
	own := func(s string) string {
		if in != nil {
			return in.get(s)
		}
		return s
	}
	text := func(value func(int) string) func(int) string {
		return func(i int) string {
			if arr.IsNull(i) {
				return ""
			}
			return own(value(i))
		}
	}
	switch a := arr.(type) {
	case *array.Null:
		return func(int) string { return "" }, nil
	case *array.String:
		return text(a.Value), nil
	case *array.LargeString:
		return text(a.Value), nil
	case *array.StringView:
		return text(a.Value), nil
	case *array.Binary:
		return text(a.ValueString), nil
	case *array.LargeBinary:
		return text(a.ValueString), nil
	case *array.BinaryView:
		return text(a.ValueString), nil
	case *array.Dictionary:
		// Decode each dictionary entry once; rows then cost an index lookup.
		dict, err := stringAccessor(a.Dictionary(), in)
		if err != nil {
			return nil, err
		}
		vals := make([]string, a.Dictionary().Len())
		for j := range vals {
			vals[j] = dict(j)
		}
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return vals[a.GetValueIndex(i)]
		}, nil
	case *array.Int8:
		return intText(a, a.Value, in), nil
	case *array.Int16:
		return intText(a, a.Value, in), nil
	case *array.Int32:
		return intText(a, a.Value, in), nil
	case *array.Int64:
		return intText(a, a.Value, in), nil
	case *array.Uint8:
		return intText(a, a.Value, in), nil
	case *array.Uint16:
		return intText(a, a.Value, in), nil
	case *array.Uint32:
		return intText(a, a.Value, in), nil
	case *array.Uint64:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			s := strconv.FormatUint(a.Value(i), 10)
			if in != nil {
				return in.get(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("unsupported type %s", arr.DataType())
}

func intText[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32](arr arrow.Array, value func(int) T, in *interner) func(int) string {
	var buf [20]byte
	return func(i int) string {
		if arr.IsNull(i) {
			return ""
		}
		b := strconv.AppendInt(buf[:0], int64(value(i)), 10)
		if in != nil {
			return in.getBytes(b)
		}
		return string(b)
	}
}

// timeAccessor returns a function reading row i of arr as a UTC time. Parquet
// TIMESTAMP (any unit, UTC-adjusted or local) and INT96 arrive as Arrow
// timestamps; local wall-clock timestamps are taken as UTC, as Kusto does.
// A null reads as the zero time.
func timeAccessor(arr arrow.Array) (func(int) (time.Time, error), error) {
	switch a := arr.(type) {
	case *array.Null:
		return func(int) (time.Time, error) { return time.Time{}, nil }, nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return func(i int) (time.Time, error) {
			if a.IsNull(i) {
				return time.Time{}, nil
			}
			return a.Value(i).ToTime(unit), nil
		}, nil
	}
	text, err := stringAccessor(arr, nil)
	if err != nil {
		return nil, err
	}
	return func(i int) (time.Time, error) { return parseTime(text(i)) }, nil
}
