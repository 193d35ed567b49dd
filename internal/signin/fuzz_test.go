package signin

import (
	"bytes"
	"context"
	"errors"
	pq "github.com/parquet-go/parquet-go"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkScan asserts what must hold for any input: no panic (the fuzzer
// reports one), every error a *FormatError, and consistent stats.
func checkScan(t *testing.T, data []byte, table Table) {
	var rows int64
	st, err := Scan(context.Background(), bytes.NewReader(data), int64(len(data)), Options{Name: "fuzz", Table: table, BatchSize: 3},
		func(b []Record) error {
			rows += int64(len(b))
			return nil
		})
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("error is %T, not a *FormatError: %v", err, err)
		}
		if fe.File != "fuzz" || fe.Err == nil {
			t.Fatalf("FormatError without file or cause: %#v", fe)
		}
		return
	}
	if rows != st.Rows || st.Rows > st.Read || st.Consumed < 0 || st.Consumed > int64(len(data)) {
		t.Fatalf("stats %+v with %d rows delivered, %d bytes", st, rows, len(data))
	}
}

func readerFixtures(f *testing.F, ext string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "readers", "*"+ext))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

func FuzzScanParquet(f *testing.F) {
	for _, data := range readerFixtures(f, ".parquet") {
		f.Add(data, false)
	}
	micros := tsCol(pq.Microsecond, true)
	f.Add(writeParquet(f, stdCols(micros, strResultType), sampleRecords, nil), false)
	f.Add(writeParquet(f, stdCols(micros, intResultType(tInt64)), sampleRecords,
		[]pqOpt{withCodec(&pq.Zstd), withRowGroup(1)}), true)
	f.Add(writeParquet(f, stdCols(tsCol(pq.Nanosecond, true), strResultType), sampleRecords,
		[]pqOpt{withPlain(), withCodec(&pq.Gzip)},
		withInt96()), false)
	f.Add(writeParquet(f, stdCols(strTimeCol("2006-01-02T15:04:05.0000000Z"), strResultType), sampleRecords,
		[]pqOpt{withCodec(&pq.Uncompressed), withPageV2()}), true)
	f.Fuzz(func(t *testing.T, data []byte, nonInteractive bool) {
		table := Interactive
		if nonInteractive {
			table = NonInteractive
		}
		checkScan(t, data, table)
	})
}

func FuzzScanJSONL(f *testing.F) {
	for _, data := range readerFixtures(f, ".jsonl") {
		f.Add(data, false)
		f.Add(gzipped(f, string(data)), true)
	}
	recs := sampleRecords
	f.Add([]byte(strings.Join([]string{
		exportLine(f, recs[0], func(m map[string]any) { m["ResultType"] = 0 }),
		"",
		exportLine(f, recs[1], func(m map[string]any) { delete(m, "Location"); m["AppDisplayName"] = nil }),
		`{"TimeGenerated":"2026-11-20T10:15:30.1234567Z","UserPrincipalName":"a\u00e9@x","IPAddress":"1.2.3.4","Location":"US","ResultType":"0","AuthenticationRequirement":"","ConditionalAccessStatus":""}`,
	}, "\r\n")), false)
	f.Add([]byte(`{"TimeGenerated":1}`+"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, nonInteractive bool) {
		table := Interactive
		if nonInteractive {
			table = NonInteractive
		}
		checkScan(t, data, table)
	})
}
