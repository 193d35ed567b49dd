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

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
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

	// parquet.Group orders its columns by name, as names already are.
	g := parquet.Group{}
	for _, n := range names {
		node := parquet.String()
		if isTime(n) {
			node = parquet.Leaf(parquet.Int96Type)
		}
		g[n] = parquet.Optional(node)
	}
	schema := parquet.NewSchema("schema", g)
	out2 := make([]parquet.Row, 0, len(rows))
	for line, r := range rows {
		row := make(parquet.Row, len(names))
		for i, n := range names {
			raw, ok := r[n]
			if !ok || string(raw) == "null" {
				row[i] = parquet.NullValue().Level(0, 0, i)
				continue
			}
			if isTime(n) {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("%s:%d: %s: %w", in, line+1, n, err)
				}
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return fmt.Errorf("%s:%d: %s: %w", in, line+1, n, err)
				}
				row[i] = parquet.Int96Value(int96(t)).Level(0, 1, i)
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw) // objects, arrays, numbers, booleans as JSON text
			}
			row[i] = parquet.ByteArrayValue([]byte(s)).Level(0, 1, i)
		}
		out2 = append(out2, row)
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := parquet.NewWriter(f, schema, parquet.Compression(&parquet.Snappy),
		&parquet.WriterConfig{CreatedBy: "tokenpivot mkint96"})
	if _, err := w.WriteRows(out2); err != nil {
		f.Close()
		return err
	}
	if err := w.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func isTime(name string) bool { return name == "TimeGenerated" || name == "CreatedDateTime" }

// julianUnixEpoch is the Julian day number of 1970-01-01.
const julianUnixEpoch = 2440588

// int96 encodes t as Impala/Spark do: nanoseconds of the day in the first
// 8 bytes (little endian), then the Julian day.
func int96(t time.Time) deprecated.Int96 {
	ns := t.UnixNano()
	day := ns / int64(24*time.Hour)
	if ns%int64(24*time.Hour) < 0 {
		day--
	}
	nod := uint64(ns - day*int64(24*time.Hour))
	return deprecated.Int96{uint32(nod), uint32(nod >> 32), uint32(day + julianUnixEpoch)}
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
