package signin

import (
	"bytes"
	"errors"
	"fmt"
	pq "github.com/parquet-go/parquet-go"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestScanParquet(t *testing.T) {
	micros := tsCol(pq.Microsecond, true)
	extra := []pqCol{
		{"LocationDetails", tString, func(int, Record) any {
			return `{"city":"Seattle","state":"Washington","countryOrRegion":"US","geoCoordinates":{"latitude":47.6,"longitude":-122.3}}`
		}},
		{"DurationMs", tInt64, func(i int, _ Record) any { return int64(100 * i) }},
		{"IsInteractive", tBool, func(int, Record) any { return true }},
		{"DeviceDetail", tStruct("browser", "operatingSystem"), func(int, Record) any { return []string{"Edge 120.0.0", "Windows10"} }},
	}
	// The wide file puts the extra columns (one of them nested, which shifts
	// leaf indices) between and before the wanted ones.
	wide := append([]pqCol{extra[3], extra[0]}, stdCols(micros, strResultType)...)
	wide = append(wide[:6], append([]pqCol{extra[1], extra[2]}, wide[6:]...)...)
	reversed := stdCols(micros, strResultType)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	noOptional := stdCols(micros, strResultType)[:7]

	tests := []struct {
		name   string
		cols   []pqCol
		props  []pqOpt
		arrow  []pqOpt
		table  Table
		opts   Options
		want   []Record
		wantSt Stats
	}{
		{name: "micros UTC snappy", cols: stdCols(micros, strResultType),
			props: []pqOpt{withCodec(&pq.Snappy)},
			want:  truncTime(sampleRecords, time.Microsecond)},
		{name: "millis local", cols: stdCols(tsCol(pq.Millisecond, false), strResultType),
			want: truncTime(sampleRecords, time.Millisecond)},
		{name: "nanos zstd", cols: stdCols(tsCol(pq.Nanosecond, true), strResultType),
			props: []pqOpt{withCodec(&pq.Zstd)},
			want:  sampleRecords},
		{name: "int96 gzip", cols: stdCols(tsCol(pq.Nanosecond, true), strResultType),
			props: []pqOpt{withCodec(&pq.Gzip)},
			arrow: []pqOpt{withInt96()},
			want:  sampleRecords},
		{name: "ISO string time, 7 digits", cols: stdCols(strTimeCol("2006-01-02T15:04:05.0000000Z"), strResultType),
			want: truncTime(sampleRecords, 100*time.Nanosecond)},
		{name: "int64 ResultType plain encoding", cols: stdCols(micros, intResultType(tInt64)),
			props: []pqOpt{withPlain()},
			want:  truncTime(sampleRecords, time.Microsecond)},
		{name: "int32 ResultType uncompressed", cols: stdCols(micros, intResultType(tInt32)),
			props: []pqOpt{withCodec(&pq.Uncompressed)},
			want:  truncTime(sampleRecords, time.Microsecond)},
		{name: "uint32 ResultType", cols: stdCols(micros, intResultType(tUint32)),
			want: truncTime(sampleRecords, time.Microsecond)},
		{name: "reversed column order", cols: reversed,
			want: truncTime(sampleRecords, time.Microsecond)},
		{name: "wide with extra and nested columns", cols: wide,
			want: truncTime(sampleRecords, time.Microsecond)},
		{name: "optional columns absent", cols: noOptional,
			want: func() []Record {
				out := truncTime(sampleRecords, time.Microsecond)
				for i := range out {
					out[i].AppDisplayName, out[i].CorrelationId, out[i].UniqueTokenIdentifier, out[i].Id = "", "", "", ""
				}
				return out
			}()},
		{name: "noninteractive ignores CA columns", cols: stdCols(micros, strResultType), table: NonInteractive,
			want: forTable(truncTime(sampleRecords, time.Microsecond), NonInteractive)},
		{name: "noninteractive needs no CA columns", table: NonInteractive,
			cols: append(stdCols(micros, strResultType)[:5], stdCols(micros, strResultType)[7:]...),
			want: forTable(truncTime(sampleRecords, time.Microsecond), NonInteractive)},
		{name: "row groups of 2, batches of 1", cols: stdCols(micros, strResultType),
			props: []pqOpt{withRowGroup(2)},
			opts:  Options{BatchSize: 1},
			want:  truncTime(sampleRecords, time.Microsecond)},
		{name: "keep successes", cols: stdCols(micros, intResultType(tInt64)),
			opts: Options{Keep: func(r *Record) bool {
				// Only the filter columns are promised here; the optional
				// columns are decoded for kept rows only.
				// Location is one of them (the third row's is null).
				wantLoc := map[string]string{"203.0.113.7": "US", "198.51.100.23": ""}[r.IPAddress]
				return r.ResultType == "0" && r.UserPrincipalName != "" && r.IPAddress != "" &&
					r.Location == wantLoc && !r.TimeGenerated.IsZero() && r.Id == ""
			}},
			want:   []Record{truncTime(sampleRecords, time.Microsecond)[0], truncTime(sampleRecords, time.Microsecond)[2]},
			wantSt: Stats{Rows: 2, Read: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := writeParquet(t, tc.cols, sampleRecords, tc.props, tc.arrow...)
			got, st, err := scanAll("exports/x.gz.parquet", data, tc.table, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			diffRecords(t, got, tc.want)
			want := tc.wantSt
			if want == (Stats{}) {
				want = Stats{Rows: int64(len(tc.want)), Read: int64(len(tc.want))}
			}
			want.Consumed = int64(len(data))
			if noFormat(st) != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

func TestScanParquetErrors(t *testing.T) {
	micros := tsCol(pq.Microsecond, true)
	good := writeParquet(t, stdCols(micros, strResultType), sampleRecords, nil)
	replace := func(name string, c pqCol) []pqCol {
		cols := stdCols(micros, strResultType)
		for i := range cols {
			if cols[i].name == name {
				cols[i] = c
			}
		}
		return cols
	}
	without := func(name string) []pqCol {
		var cols []pqCol
		for _, c := range stdCols(micros, strResultType) {
			if c.name != name {
				cols = append(cols, c)
			}
		}
		return cols
	}
	tests := []struct {
		name    string
		data    []byte
		column  string
		row     int64
		message string
	}{
		{name: "truncated footer", data: good[:len(good)-10], message: "not a readable parquet file"},
		{name: "cut in half", data: good[:len(good)/2], message: "not a readable parquet file"},
		{name: "magic only", data: []byte("PAR1"), message: "not a readable parquet file"},
		// A footer length past the file is not allocated (it was 2 GiB here).
		{name: "footer length past the file", data: func() []byte {
			d := bytes.Clone(good)
			d[len(d)-5] = 0x80
			return d
		}(), message: "footer of 2147"},
		{name: "garbage between magics", data: []byte("PAR1 this is not a parquet file PAR1"), message: "parquet"},
		{name: "UPN as INT64", column: ColUserPrincipalName, message: "unsupported type int64",
			data: writeParquet(t, replace(ColUserPrincipalName, pqCol{ColUserPrincipalName, tInt64,
				func(i int, _ Record) any { return int64(i) }}), sampleRecords, nil)},
		{name: "ResultType as bool", column: ColResultType, message: "unsupported type bool",
			data: writeParquet(t, replace(ColResultType, pqCol{ColResultType, tBool,
				func(int, Record) any { return false }}), sampleRecords, nil)},
		{name: "ResultType double fractions in every row", column: ColResultType, row: 1, message: "want an integer, got 0.5",
			data: writeParquet(t, replace(ColResultType, pqCol{ColResultType, tFloat64,
				func(int, Record) any { return 0.5 }}), sampleRecords, nil)},
		{name: "UPN as bool", column: ColUserPrincipalName, message: "unsupported type bool",
			data: writeParquet(t, replace(ColUserPrincipalName, pqCol{ColUserPrincipalName, tBool,
				func(int, Record) any { return true }}), sampleRecords, nil)},
		{name: "TimeGenerated as INT64", column: ColTimeGenerated, message: "unsupported type int64",
			data: writeParquet(t, replace(ColTimeGenerated, pqCol{ColTimeGenerated, tInt64,
				func(int, Record) any { return int64(1) }}), sampleRecords, nil)},
		{name: "Location as struct", column: ColLocation, message: "unsupported type struct",
			data: writeParquet(t, replace(ColLocation, pqCol{ColLocation, tStruct("city", "state"),
				func(int, Record) any { return []string{"Seattle", "Washington"} }}), sampleRecords, nil)},
		{name: "bad ISO time in every row, row 1 named", column: ColTimeGenerated, row: 1, message: "invalid ISO 8601",
			data: writeParquet(t, replace(ColTimeGenerated, pqCol{ColTimeGenerated, tString,
				func(i int, r Record) any { return r.TimeGenerated.Format("02/01/2006 15:04") }}), sampleRecords, nil)},
		{name: "missing Location", column: ColLocation, message: "required column is missing",
			data: writeParquet(t, without(ColLocation), sampleRecords, nil)},
		{name: "missing ConditionalAccessStatus", column: ColConditionalAccessStatus, message: "required column is missing",
			data: writeParquet(t, without(ColConditionalAccessStatus), sampleRecords, nil)},
		{name: "upn under another case", column: ColUserPrincipalName, message: "required column is missing",
			data: writeParquet(t, replace(ColUserPrincipalName, str("userPrincipalName", func(r Record) string { return r.UserPrincipalName })), sampleRecords, nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const name = "insights-logs/SigninLogs/timestamp=2026-11-20T10/0f8e.gz.parquet"
			_, _, err := scanAll(name, tc.data, Interactive, Options{})
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *FormatError", err, err)
			}
			if fe.File != name || fe.Column != tc.column || fe.Row != tc.row {
				t.Errorf("FormatError{File: %q, Column: %q, Row: %d}, want {%q, %q, %d}", fe.File, fe.Column, fe.Row, name, tc.column, tc.row)
			}
			if !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the file and say %q", err, tc.message)
			}
			if tc.column != "" && !strings.Contains(err.Error(), "column "+tc.column) {
				t.Errorf("error %q does not name column %s", err, tc.column)
			}
		})
	}
}

// Every prefix of a valid file is either rejected as a FormatError or,
// when empty, read as zero rows: never a panic or another kind of error.
func TestScanParquetTruncations(t *testing.T) {
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), sampleRecords,
		[]pqOpt{withRowGroup(1)})
	for n := 1; n < len(data); n++ {
		_, _, err := scanAll("cut.parquet", data[:n], Interactive, Options{})
		if !IsFormatError(err) && !(err == nil && n < 4) {
			t.Fatalf("cut at %d of %d: %v", n, len(data), err)
		}
	}
}

// The cases above rely on the writer producing the physical layouts they are
// named for; check the ones a writer could silently change.
func TestParquetFixtureLayouts(t *testing.T) {
	int96 := writeParquet(t, stdCols(tsCol(pq.Nanosecond, true), strResultType), sampleRecords, nil,
		withInt96())
	if got := physical(t, int96, ColTimeGenerated); got != "INT96" {
		t.Errorf("int96 file: TimeGenerated is %s", got)
	}
	millis := writeParquet(t, stdCols(tsCol(pq.Millisecond, false), strResultType), sampleRecords, nil)
	if got := physical(t, millis, ColTimeGenerated); got != "INT64 TIMESTAMP(isAdjustedToUTC=false,unit=MILLIS)" {
		t.Errorf("millis file: TimeGenerated is %s", got)
	}
}

// The fixture writer's settings give the page layouts the tests rely on:
// dictionary pages, PLAIN pages, a dictionary falling back to PLAIN (as
// DuckDB's does for a column of many users), data pages v2, many pages.
func TestParquetFixtureEncodings(t *testing.T) {
	recs := truncTime(benchRecords(8_000), time.Microsecond)
	for _, tc := range []struct {
		name  string
		opts  []pqOpt
		pages string
		many  bool
	}{
		{"default", nil, "DICTIONARY_PAGE PLAIN,DATA_PAGE RLE_DICTIONARY", false},
		{"plain", []pqOpt{withPlain()}, "DATA_PAGE PLAIN", false},
		{"fallback", []pqOpt{withPageBuffer(8 << 10), withDictMax(2 << 10)}, "DICTIONARY_PAGE PLAIN,DATA_PAGE RLE_DICTIONARY,DATA_PAGE PLAIN", true},
		{"v2", []pqOpt{withPageV2()}, "DICTIONARY_PAGE PLAIN,DATA_PAGE_V2 RLE_DICTIONARY", false},
		{"small pages", []pqOpt{withPlain(), withPageBuffer(4 << 10)}, "DATA_PAGE PLAIN", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), recs, tc.opts)
			pf, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range pf.Metadata().RowGroups[0].Columns {
				if c.MetaData.PathInSchema[0] != ColUserPrincipalName {
					continue
				}
				var kinds []string
				pages := 0
				for _, st := range c.MetaData.EncodingStats {
					kinds = append(kinds, st.PageType.String()+" "+st.Encoding.String())
					pages += int(st.Count)
				}
				slices.Sort(kinds)
				want := strings.Split(tc.pages, ",")
				slices.Sort(want)
				if !slices.Equal(kinds, want) || tc.many != (pages > 3) {
					t.Errorf("UserPrincipalName pages %v (%d), want %v (many: %v)", kinds, pages, want, tc.many)
				}
			}
		})
	}
}

// failingReader fails every read past off, as a ranged blob reader does when
// the network drops.
type failingReader struct {
	data []byte
	off  int64
}

var errNetwork = errors.New("connection reset by peer")

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errNetwork
	}
	return copy(p, f.data[off:]), nil
}

// An I/O failure is worth a retry, so it must not be reported as bad content.
func TestScanIOErrorIsNotFormatError(t *testing.T) {
	pq := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), sampleRecords, nil)
	jsonl := []byte(exportLine(t, sampleRecords[0], nil) + "\n" + exportLine(t, sampleRecords[1], nil) + "\n")
	for _, tc := range []struct {
		name string
		data []byte
		off  int64
	}{
		{"parquet footer", pq, int64(len(pq)) - 8},
		{"parquet column data", pq, 64},
		{"jsonl", jsonl, 10},
		{"gzip jsonl", gzipped(t, string(jsonl)), 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(t.Context(), failingReader{tc.data, tc.off}, int64(len(tc.data)), Options{Name: "x", Table: Interactive},
				func([]Record) error { return nil })
			if !errors.Is(err, errNetwork) || IsFormatError(err) {
				t.Errorf("error %v, want the I/O error and no FormatError", err)
			}
		})
	}
}

// The caller's panics are not mistaken for corrupt data.
func TestScanParquetCallbackPanics(t *testing.T) {
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), sampleRecords, nil)
	for _, opts := range []Options{{}, {Keep: func(*Record) bool { panic("keep") }}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic was swallowed")
				}
			}()
			opts.Name, opts.Table = "x", Interactive
			Scan(t.Context(), bytes.NewReader(data), int64(len(data)), opts, func([]Record) error { panic("fn") })
		}()
	}
}

// Text is copied out of the page buffers into shared blocks: a copy must
// not alias its source (a page buffer reused for the next page) and must
// survive the copies after it, in the same block or a new one.
func TestTextBlock(t *testing.T) {
	var tb textBlock
	src := []byte("user0000@contoso.com")
	var got []string
	var want []string
	for i := range 3 * textBlockSize / len(src) {
		copy(src[4:8], fmt.Sprintf("%04d", i%10000))
		got = append(got, tb.clone(string(src)))
		want = append(want, string(src))
	}
	big := strings.Repeat("x", textBlockSize/2)
	got, want = append(got, tb.clone(big)), append(want, big)
	src[0] = 'X' // the source buffer is reused
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("copy %d is %q, want %q", i, got[i], want[i])
		}
	}
	if len(tb.buf) > textBlockSize || cap(tb.buf) != textBlockSize {
		t.Errorf("block of length %d, capacity %d, want at most %d", len(tb.buf), cap(tb.buf), textBlockSize)
	}
}

// Scans running at once share the pooled page buffers: each must still read
// its own file exactly, through many small pages (buffers freed and reused
// while other scans run) and both dictionary and plain encoding.
func TestScanParquetConcurrentScansShareBuffers(t *testing.T) {
	type file struct {
		data []byte
		want []Record
	}
	var files []file
	for i, props := range [][]pqOpt{
		{withCodec(&pq.Snappy), withPageBuffer(4 << 10), withRowGroup(3_000)},
		{withCodec(&pq.Zstd), withPlain(), withPageBuffer(16 << 10)},
		{withPageBuffer(8 << 10), withDictMax(2 << 10)},
	} {
		recs := truncTime(benchRecords(8_000+1_000*i), time.Microsecond)
		for j := range recs {
			recs[j].UserPrincipalName = fmt.Sprintf("f%d.%s", i, recs[j].UserPrincipalName)
		}
		files = append(files, file{writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), recs, props), recs})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 6 {
		wg.Go(func() {
			for round := range 4 {
				f := files[(g+round)%len(files)]
				got, _, err := scanAll("f.parquet", f.data, Interactive, Options{Parallelism: 2})
				if err == nil && len(got) != len(f.want) {
					err = fmt.Errorf("got %d records, want %d", len(got), len(f.want))
				}
				for i := 0; err == nil && i < len(got); i++ {
					if got[i] != f.want[i] {
						err = fmt.Errorf("file %d record %d:\n got %+v\nwant %+v", (g+round)%len(files), i, got[i], f.want[i])
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
