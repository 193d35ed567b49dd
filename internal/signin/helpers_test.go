package signin

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// sampleRecords are realistic sign-ins: a single-factor success, a failed
// attempt from IPv6, and a row with null Location/AppDisplayName/Id.
var sampleRecords = []Record{
	{
		TimeGenerated:             time.Date(2026, 11, 20, 10, 15, 30, 123456789, time.UTC),
		UserPrincipalName:         "alice@contoso.com",
		IPAddress:                 "203.0.113.7",
		Location:                  "US",
		ResultType:                "0",
		AuthenticationRequirement: "singleFactorAuthentication",
		ConditionalAccessStatus:   "notApplied",
		AppDisplayName:            "Microsoft Teams",
		CorrelationId:             "7c1e5a2b-3f4d-4b6e-9a8c-1d2e3f4a5b6c",
		UniqueTokenIdentifier:     "k3Jx9QbZ2EaYt1uVwXy0AA",
		Id:                        "f0e1d2c3-b4a5-4968-8776-655443322110",
	},
	{
		TimeGenerated:             time.Date(2026, 11, 20, 10, 47, 2, 500000000, time.UTC),
		UserPrincipalName:         "bob@contoso.com",
		IPAddress:                 "2001:db8:85a3::8a2e:370:7334",
		Location:                  "DE",
		ResultType:                "50126",
		AuthenticationRequirement: "multiFactorAuthentication",
		ConditionalAccessStatus:   "success",
		AppDisplayName:            "Office 365 Exchange Online",
		CorrelationId:             "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
		UniqueTokenIdentifier:     "Zm9vYmFyYmF6cXV4cXV1eA",
		Id:                        "1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9",
	},
	{
		TimeGenerated:             time.Date(2026, 11, 20, 11, 2, 59, 999999000, time.UTC),
		UserPrincipalName:         "alice@contoso.com",
		IPAddress:                 "198.51.100.23",
		ResultType:                "0",
		AuthenticationRequirement: "singleFactorAuthentication",
		ConditionalAccessStatus:   "notApplied",
		CorrelationId:             "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
		UniqueTokenIdentifier:     "cXV1eGZvb2JhcmJhenF1eA",
	},
}

// pqCol describes one column of a test Parquet file: its type and how to
// take its value from a Record (nil writes a null).
type pqCol struct {
	name string
	typ  pqType
	get  func(i int, r Record) any
}

// pqType is a test column's Parquet type. Values are given as Go values: a
// string for text and UUIDs (their text), int64 for integers, timestamps
// (in their unit) and DECIMALs (unscaled), float64 for floats, bool, and
// []string for a struct of text fields.
type pqType struct {
	kind      pqTypeKind
	unit      pq.TimeUnit
	utc       bool     // timestamps: isAdjustedToUTC
	precision int      // DECIMAL
	scale     int      // DECIMAL
	fields    []string // struct
}

type pqTypeKind int

const (
	tkString pqTypeKind = iota
	tkInt64
	tkInt32
	tkInt16
	tkUint32
	tkFloat64
	tkFloat32
	tkBool
	tkTimestamp
	tkDecimal
	tkUUID
	tkStruct
	tkOddList // a LIST group of two repeated text fields: only nulls
)

var (
	tString  = pqType{kind: tkString}
	tInt64   = pqType{kind: tkInt64}
	tInt32   = pqType{kind: tkInt32}
	tUint32  = pqType{kind: tkUint32}
	tFloat64 = pqType{kind: tkFloat64}
	tFloat32 = pqType{kind: tkFloat32}
	tBool    = pqType{kind: tkBool}
	tUUID    = pqType{kind: tkUUID}
	tOddList = pqType{kind: tkOddList}
)

func tDecimal(precision, scale int) pqType {
	return pqType{kind: tkDecimal, precision: precision, scale: scale}
}

func tStruct(fields ...string) pqType { return pqType{kind: tkStruct, fields: fields} }

// pqWrite are the writer settings of a test file.
type pqWrite struct {
	codec        compress.Codec
	rowGroupRows int
	plain        bool  // no dictionary encoding
	pageBuffer   int   // page buffer size: small pages
	dictMax      int64 // dictionary bytes before falling back to PLAIN (at a page's end)
	pageV2       bool
	decimalInt   bool // DECIMALs of up to 18 digits as INT32/INT64, not FIXED_LEN_BYTE_ARRAY
	int96        bool // timestamps as legacy INT96
}

type pqOpt func(*pqWrite)

func withCodec(c compress.Codec) pqOpt { return func(w *pqWrite) { w.codec = c } }
func withRowGroup(n int) pqOpt         { return func(w *pqWrite) { w.rowGroupRows = n } }
func withPlain() pqOpt                 { return func(w *pqWrite) { w.plain = true } }
func withPageBuffer(n int) pqOpt       { return func(w *pqWrite) { w.pageBuffer = n } }
func withDictMax(n int64) pqOpt        { return func(w *pqWrite) { w.dictMax = n } }
func withPageV2() pqOpt                { return func(w *pqWrite) { w.pageV2 = true } }
func withDecimalInt() pqOpt            { return func(w *pqWrite) { w.decimalInt = true } }
func withInt96() pqOpt                 { return func(w *pqWrite) { w.int96 = true } }

// str writes the string field; "" is written as null, so the nulls of the
// sample records exercise null reading.
func str(name string, get func(Record) string) pqCol {
	return pqCol{name, tString, func(_ int, r Record) any {
		if v := get(r); v != "" {
			return v
		}
		return nil
	}}
}

func stdCols(timeCol pqCol, resultType pqCol) []pqCol {
	return []pqCol{
		timeCol,
		str(ColUserPrincipalName, func(r Record) string { return r.UserPrincipalName }),
		str(ColIPAddress, func(r Record) string { return r.IPAddress }),
		str(ColLocation, func(r Record) string { return r.Location }),
		resultType,
		str(ColAuthenticationRequirement, func(r Record) string { return r.AuthenticationRequirement }),
		str(ColConditionalAccessStatus, func(r Record) string { return r.ConditionalAccessStatus }),
		str(ColAppDisplayName, func(r Record) string { return r.AppDisplayName }),
		str(ColCorrelationId, func(r Record) string { return r.CorrelationId }),
		str(ColUniqueTokenIdentifier, func(r Record) string { return r.UniqueTokenIdentifier }),
		str(ColId, func(r Record) string { return r.Id }),
	}
}

// tsCol is TimeGenerated as a TIMESTAMP of unit (UTC-adjusted or local);
// with withInt96, as INT96.
func tsCol(unit pq.TimeUnit, utc bool) pqCol {
	return pqCol{ColTimeGenerated, pqType{kind: tkTimestamp, unit: unit, utc: utc}, func(_ int, r Record) any {
		return r.TimeGenerated
	}}
}

func strTimeCol(layout string) pqCol {
	return pqCol{ColTimeGenerated, tString, func(_ int, r Record) any {
		return r.TimeGenerated.Format(layout)
	}}
}

var strResultType = str(ColResultType, func(r Record) string { return r.ResultType })

func intResultType(typ pqType) pqCol {
	return pqCol{ColResultType, typ, func(_ int, r Record) any {
		n, err := strconv.ParseInt(r.ResultType, 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}}
}

// node is the Parquet node of a column of type typ.
func (w *pqWrite) node(typ pqType) pq.Node {
	var n pq.Node
	switch typ.kind {
	case tkString:
		n = pq.String()
	case tkInt64:
		n = pq.Leaf(pq.Int64Type)
	case tkInt32:
		n = pq.Leaf(pq.Int32Type)
	case tkInt16:
		n = pq.Int(16)
	case tkUint32:
		n = pq.Uint(32)
	case tkFloat64:
		n = pq.Leaf(pq.DoubleType)
	case tkFloat32:
		n = pq.Leaf(pq.FloatType)
	case tkBool:
		n = pq.Leaf(pq.BooleanType)
	case tkTimestamp:
		if w.int96 {
			n = pq.Leaf(pq.Int96Type)
		} else {
			n = pq.TimestampAdjusted(typ.unit, typ.utc)
		}
	case tkDecimal:
		n = pq.Decimal(typ.scale, typ.precision, w.decimalPhysical(typ))
	case tkUUID:
		n = pq.UUID()
	case tkOddList:
		return pq.Optional(oddList{pq.Group{"a": pq.Repeated(pq.String()), "b": pq.Repeated(pq.String())}})
	case tkStruct:
		g := pq.Group{}
		for _, f := range typ.fields {
			g[f] = pq.Optional(w.node(tString))
		}
		return pq.Optional(g)
	}
	// Dictionary encoding, as most writers use by default; else PLAIN
	// (parquet-go's own default for text is DELTA_LENGTH_BYTE_ARRAY).
	switch {
	case typ.kind == tkBool:
	case w.plain:
		n = pq.Encoded(n, &pq.Plain)
	default:
		n = pq.Encoded(n, &pq.RLEDictionary)
	}
	return pq.Optional(n)
}

// oddList is a group annotated as a LIST, which a list's group is not.
type oddList struct{ pq.Group }

func (oddList) Type() pq.Type { return pq.List(pq.String()).Type() }

// decimalPhysical stores a DECIMAL as Arrow and Spark writers do: in the fewest
// bytes its precision needs, or (decimalInt) as an INT32/INT64.
func (w *pqWrite) decimalPhysical(typ pqType) pq.Type {
	if w.decimalInt && typ.precision <= 9 {
		return pq.Int32Type
	}
	if w.decimalInt && typ.precision <= 18 {
		return pq.Int64Type
	}
	return pq.FixedLenByteArrayType(decimalBytes(typ.precision))
}

// decimalBytes is the size of a two's complement integer holding any
// number of precision digits.
func decimalBytes(precision int) int {
	bits := math.Ceil(float64(precision)*math.Log2(10)) + 1
	return int(math.Ceil(bits / 8))
}

// value is v (of a column of type typ) as a Parquet value.
func (w *pqWrite) value(tb testing.TB, typ pqType, v any) pq.Value {
	switch typ.kind {
	case tkString:
		return pq.ByteArrayValue([]byte(v.(string)))
	case tkInt64:
		return pq.Int64Value(v.(int64))
	case tkInt32, tkInt16, tkUint32:
		return pq.Int32Value(int32(v.(int64)))
	case tkFloat64:
		return pq.DoubleValue(v.(float64))
	case tkFloat32:
		return pq.FloatValue(float32(v.(float64)))
	case tkBool:
		return pq.BooleanValue(v.(bool))
	case tkTimestamp:
		tm := v.(time.Time)
		if w.int96 {
			return pq.Int96Value(int96Of(tm))
		}
		switch typ.unit.Duration() {
		case time.Millisecond:
			return pq.Int64Value(tm.UnixMilli())
		case time.Microsecond:
			return pq.Int64Value(tm.UnixMicro())
		}
		return pq.Int64Value(tm.UnixNano())
	case tkDecimal:
		x := v.(int64)
		switch w.decimalPhysical(typ).Kind() {
		case pq.Int32:
			return pq.Int32Value(int32(x))
		case pq.Int64:
			return pq.Int64Value(x)
		}
		b := make([]byte, decimalBytes(typ.precision))
		for i := len(b) - 1; i >= 0; i-- {
			b[i] = byte(x)
			x >>= 8 // arithmetic: a negative value is padded with 0xff
		}
		return pq.FixedLenByteArrayValue(b)
	case tkUUID:
		u, err := hex.DecodeString(strings.ReplaceAll(v.(string), "-", ""))
		if err != nil || len(u) != 16 {
			tb.Fatalf("bad UUID %q", v)
		}
		return pq.FixedLenByteArrayValue(u)
	}
	tb.Fatalf("no value of type %v", typ.kind)
	return pq.Value{}
}

// int96Of is t as a legacy INT96: nanoseconds of the day, then the Julian day.
func int96Of(t time.Time) deprecated.Int96 {
	ns := t.UnixNano()
	days, nanos := ns/(86400*1e9), ns%(86400*1e9)
	if nanos < 0 {
		days, nanos = days-1, nanos+86400*1e9
	}
	return deprecated.Int96{uint32(nanos), uint32(nanos >> 32), uint32(days + 2440588)}
}

// writeParquet writes records as a Parquet file with the given columns
// (in name order: parquet-go's groups order their fields by name).
func writeParquet(tb testing.TB, cols []pqCol, recs []Record, opts []pqOpt, more ...pqOpt) []byte {
	tb.Helper()
	w := &pqWrite{}
	for _, o := range append(opts, more...) {
		o(w)
	}
	root := pq.Group{}
	byName := map[string]pqCol{}
	for _, c := range cols {
		root[c.name] = w.node(c.typ)
		byName[c.name] = c
	}
	sch := pq.NewSchema("schema", root)
	wopts := []pq.WriterOption{sch}
	if w.codec != nil {
		wopts = append(wopts, pq.Compression(w.codec))
	}
	if w.pageBuffer > 0 {
		wopts = append(wopts, pq.PageBufferSize(w.pageBuffer))
	}
	if w.dictMax > 0 {
		wopts = append(wopts, pq.DictionaryMaxBytes(w.dictMax))
	}
	if w.pageV2 {
		wopts = append(wopts, pq.DataPageVersion(2))
	} else {
		wopts = append(wopts, pq.DataPageVersion(1))
	}
	var buf bytes.Buffer
	pw := pq.NewWriter(&buf, wopts...)
	leaves := sch.Columns()
	var rows []pq.Row
	for i, r := range recs {
		row := make(pq.Row, 0, len(leaves))
		for leaf, path := range leaves {
			c := byName[path[0]]
			v := c.get(i, r)
			def, typ := 1, c.typ
			if c.typ.kind == tkOddList && v != nil {
				tb.Fatal("an odd list holds only nulls")
			}
			if c.typ.kind == tkStruct {
				// A struct's field: the struct and the field are optional.
				def, typ = 2, tString
				if v != nil {
					v = v.([]string)[slices.Index(c.typ.fields, path[1])]
				}
			}
			if v == nil {
				row = append(row, pq.Value{}.Level(0, 0, leaf))
				continue
			}
			row = append(row, w.value(tb, typ, v).Level(0, def, leaf))
		}
		rows = append(rows, row)
		if w.rowGroupRows > 0 && (i+1)%w.rowGroupRows == 0 && i+1 < len(recs) || len(rows) == 4096 {
			if _, err := pw.WriteRows(rows); err != nil {
				tb.Fatal(err)
			}
			rows = rows[:0]
		}
		if w.rowGroupRows > 0 && (i+1)%w.rowGroupRows == 0 && i+1 < len(recs) {
			if err := pw.Flush(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if _, err := pw.WriteRows(rows); err != nil {
		tb.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// physical is the top-level column col of a Parquet file as its physical
// type, then its logical type when it has one ("INT64 DECIMAL(10,2)"), and
// its length when it has one ("FIXED_LEN_BYTE_ARRAY[16]").
func physical(tb testing.TB, data []byte, col string) string {
	tb.Helper()
	pf, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range pf.Metadata().Schema[1:] {
		if e.Name != col {
			continue
		}
		got := e.Type.V.String()
		if e.TypeLength.Valid && e.Type.V == format.FixedLenByteArray {
			got += fmt.Sprintf("[%d]", e.TypeLength.V)
		}
		if lt := e.LogicalType.String(); lt != "" {
			got += " " + lt
		}
		return got
	}
	tb.Fatalf("no column %s", col)
	return ""
}

// scanAll scans data and returns every record (copied out of the batches).
// noFormat drops Stats.Format, for comparisons of the counts:
// TestScanReportsFormat checks the format.
func noFormat(st Stats) Stats {
	st.Format = ""
	return st
}

func scanAll(name string, data []byte, t Table, opts Options) ([]Record, Stats, error) {
	var out []Record
	opts.Name, opts.Table = name, t
	st, err := Scan(context.Background(), bytes.NewReader(data), int64(len(data)), opts, func(b []Record) error {
		if opts.BatchSize > 0 && len(b) > opts.BatchSize {
			return fmt.Errorf("batch of %d records, BatchSize %d", len(b), opts.BatchSize)
		}
		out = append(out, b...)
		return nil
	})
	// The tests through scanAll compare what was read, not what the content
	// was: Format and Form have their own tests (diagnostic_test.go).
	st.Format, st.Form = "", ""
	return out, st, err
}

// truncTime returns recs with TimeGenerated truncated to d, as a writer of
// that precision stores it.
func truncTime(recs []Record, d time.Duration) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].TimeGenerated = out[i].TimeGenerated.Truncate(d)
	}
	return out
}

// forTable clears the columns a scan of table t does not read.
func forTable(recs []Record, t Table) []Record {
	out := append([]Record(nil), recs...)
	if t == NonInteractive {
		for i := range out {
			out[i].AuthenticationRequirement = ""
			out[i].ConditionalAccessStatus = ""
		}
	}
	return out
}

func diffRecords(tb testing.TB, got, want []Record) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Errorf("got %d records, want %d", len(got), len(want))
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			tb.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}
