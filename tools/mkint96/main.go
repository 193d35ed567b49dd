// Command mkint96 writes a Parquet file with legacy INT96 timestamps (as
// Spark, Hive and older Azure Data Explorer exports do) from a JSON Lines
// sign-in export, for the reader tests:
//
//	go run ./tools/mkint96 testdata/readers/signinlogs.jsonl testdata/readers/signinlogs-arrow-int96.parquet
//
// TimeGenerated and CreatedDateTime become INT96; every other column is
// written as a string (objects and arrays as JSON text), absent keys as null.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkint96 in.jsonl out.parquet")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "mkint96:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	rows, err := readLines(in)
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, r := range rows {
		for k := range r {
			keys[k] = true
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)

	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		typ := arrow.DataType(arrow.BinaryTypes.String)
		if n == "TimeGenerated" || n == "CreatedDateTime" {
			typ = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
		}
		fields[i] = arrow.Field{Name: n, Type: typ, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for line, r := range rows {
		for i, n := range names {
			raw, ok := r[n]
			if !ok || string(raw) == "null" {
				b.Field(i).AppendNull()
				continue
			}
			switch fb := b.Field(i).(type) {
			case *array.TimestampBuilder:
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("%s:%d: %s: %w", in, line+1, n, err)
				}
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return fmt.Errorf("%s:%d: %s: %w", in, line+1, n, err)
				}
				fb.Append(arrow.Timestamp(t.UnixNano()))
			case *array.StringBuilder:
				var s string
				if json.Unmarshal(raw, &s) != nil {
					s = string(raw) // objects, arrays, numbers, booleans as JSON text
				}
				fb.Append(s)
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w, err := pqarrow.NewFileWriter(schema, f,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithCreatedBy("tokenpivot mkint96")),
		pqarrow.NewArrowWriterProperties(pqarrow.WithDeprecatedInt96Timestamps(true)))
	if err != nil {
		f.Close()
		return err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	return w.Close() // closes f too
}

func readLines(path string) ([]map[string]json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, len(rows)+1, err)
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}
