package signin

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
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

// pqCol describes one column of a test Parquet file: its Arrow type and how
// to take its value from a Record (nil writes a null).
type pqCol struct {
	name string
	typ  arrow.DataType
	get  func(i int, r Record) any
}

// str writes the string field; "" is written as null, so the nulls of the
// sample records exercise null reading.
func str(name string, get func(Record) string) pqCol {
	return pqCol{name, arrow.BinaryTypes.String, func(_ int, r Record) any {
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

func tsCol(unit arrow.TimeUnit, tz string) pqCol {
	return pqCol{ColTimeGenerated, &arrow.TimestampType{Unit: unit, TimeZone: tz}, func(_ int, r Record) any {
		ts, err := arrow.TimestampFromTime(r.TimeGenerated, unit)
		if err != nil {
			panic(err)
		}
		return ts
	}}
}

func strTimeCol(layout string) pqCol {
	return pqCol{ColTimeGenerated, arrow.BinaryTypes.String, func(_ int, r Record) any {
		return r.TimeGenerated.Format(layout)
	}}
}

var strResultType = str(ColResultType, func(r Record) string { return r.ResultType })

func intResultType(typ arrow.DataType) pqCol {
	return pqCol{ColResultType, typ, func(_ int, r Record) any {
		n, err := strconv.ParseInt(r.ResultType, 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}}
}

// writeParquet writes records as a Parquet file with the given columns.
func writeParquet(tb testing.TB, cols []pqCol, recs []Record, props []parquet.WriterProperty, arrowProps ...pqarrow.WriterOption) []byte {
	tb.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, r := range recs {
		for j, c := range cols {
			appendValue(tb, b.Field(j), c.get(i, r))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(props...), pqarrow.NewArrowWriterProperties(arrowProps...))
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func appendValue(tb testing.TB, b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BinaryBuilder:
		b.AppendString(v.(string))
	case *array.TimestampBuilder:
		b.Append(v.(arrow.Timestamp))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Int32Builder:
		b.Append(int32(v.(int64)))
	case *array.Int16Builder:
		b.Append(int16(v.(int64)))
	case *array.Uint32Builder:
		b.Append(uint32(v.(int64)))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.Float32Builder:
		b.Append(float32(v.(float64)))
	case *array.Decimal128Builder:
		b.Append(decimal128.FromI64(v.(int64))) // the unscaled value
	case *extensions.UUIDBuilder:
		if err := b.AppendValueFromString(v.(string)); err != nil {
			tb.Fatal(err)
		}
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.StructBuilder:
		b.Append(true)
		for i, s := range v.([]string) {
			b.FieldBuilder(i).(*array.StringBuilder).Append(s)
		}
	default:
		tb.Fatalf("appendValue: no case for %T", b)
	}
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
	st, err := Scan(context.Background(), name, bytes.NewReader(data), int64(len(data)), t, opts, func(b []Record) error {
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
