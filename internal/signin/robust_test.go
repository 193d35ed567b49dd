package signin

import (
	"encoding/json"
	"errors"
	pq "github.com/parquet-go/parquet-go"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// withoutIds returns recs with every Id cleared.
func withoutIds(recs []Record) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].Id = ""
	}
	return out
}

// An append blob read after each append, resuming at Consumed with
// PositionBase, yields every record once, with the Id of its absolute line
// offset, whatever the appends cut.
func TestScanJSONLAppendsAreReadOnce(t *testing.T) {
	recs := withoutIds(truncTime(sampleRecords, 100*time.Nanosecond))
	l := func(i int) string { return exportLine(t, recs[i], nil) }
	tests := []struct {
		name    string
		appends []string
		// tailRead: after each append, whether the text after the last
		// newline was read (Consumed is the blob's size) or left.
		tailRead []bool
	}{
		{"complete tail, then more lines", []string{l(0) + "\n" + l(1), "\n" + l(2) + "\n"}, []bool{true, true}},
		{"partial tail completed later", []string{l(0) + "\n" + l(1)[:60], l(1)[60:] + "\n" + l(2)}, []bool{false, true}},
		{"tail missing its closing brace", []string{l(0) + "\n" + l(1)[:len(l(1))-1], "}\n" + l(2) + "\n"}, []bool{false, true}},
		{"CRLF cut between CR and LF", []string{l(0) + "\r\n" + l(1) + "\r", "\n" + l(2) + "\r\n"}, []bool{true, true}},
		{"one byte at a time at the end", []string{l(0) + "\n" + l(1) + "\n" + l(2)[:len(l(2))-2], l(2)[len(l(2))-2 : len(l(2))-1], l(2)[len(l(2))-1:]},
			[]bool{false, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var blob string
			var from int64
			var got []Record
			for k, a := range tc.appends {
				blob += a
				part, st, err := scanAll("PT05M.json", []byte(blob)[from:], Interactive, Options{PositionIds: "PT05M.json@", PositionBase: from})
				if err != nil {
					t.Fatalf("append %d: %v", k, err)
				}
				want := int64(len(blob))
				if !tc.tailRead[k] {
					want = int64(strings.LastIndexByte(blob, '\n') + 1)
				}
				if from+st.Consumed != want {
					t.Errorf("append %d: consumed up to %d, want %d", k, from+st.Consumed, want)
				}
				from += st.Consumed
				got = append(got, part...)
			}
			want := append([]Record(nil), recs...)
			for i := range want {
				want[i].Id = "PT05M.json@" + strconv.Itoa(strings.Index(blob, l(i)))
			}
			diffRecords(t, got, want)
		})
	}
}

func TestScanPositionIdsJSONL(t *testing.T) {
	recs := truncTime(sampleRecords, 100*time.Nanosecond) // 0 and 1 have an Id, 2 has none
	noId := withoutIds(recs)
	l0, l1, l2 := exportLine(t, noId[0], nil), exportLine(t, recs[1], nil), exportLine(t, noId[2], nil)
	blob := "\xef\xbb\xbf" + l0 + "\n\n" + l1 + "\r\n" + l2 + "\n"
	at := func(l string) string { return "b#" + strconv.Itoa(strings.Index(blob, l)) }
	want := []Record{noId[0], recs[1], noId[2]}
	want[0].Id, want[2].Id = "b#0", at(l2) // the first line starts with the BOM

	got, _, err := scanAll("x.json", []byte(blob), Interactive, Options{PositionIds: "b#"})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, want)

	// Positions are offsets in the decompressed stream.
	got, _, err = scanAll("x.json.gz", gzipped(t, blob), Interactive, Options{PositionIds: "b#"})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, want)

	// Resumed at line 2 with its offset as the base: the same Ids.
	off := strings.Index(blob, l1)
	got, _, err = scanAll("x.json", []byte(blob[off:]), Interactive, Options{PositionIds: "b#", PositionBase: int64(off)})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, want[1:])

	// Without PositionIds, a record without an Id keeps "".
	got, _, err = scanAll("x.json", []byte(blob), Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, []Record{noId[0], recs[1], noId[2]})
}

// Parquet positions are 0-based row indices in the file, across row groups
// and slices, whatever Keep drops.
func TestScanPositionIdsParquet(t *testing.T) {
	recs := truncTime(sampleRecords, time.Microsecond)
	recs[0].Id = "" // rows 0 and 2 have no Id
	var many []Record
	for range 4 {
		many = append(many, recs...)
	}
	data := writeParquet(t, stdCols(tsCol(pq.Microsecond, true), strResultType), many, []pqOpt{withRowGroup(5)})
	want := append([]Record(nil), many...)
	for i := range want {
		if want[i].Id == "" {
			want[i].Id = "x.parquet#" + strconv.Itoa(i)
		}
	}
	for _, opts := range []Options{{}, {BatchSize: 1, Parallelism: 1}} {
		opts.PositionIds = "x.parquet#"
		got, _, err := scanAll("x.parquet", data, Interactive, opts)
		if err != nil {
			t.Fatal(err)
		}
		diffRecords(t, got, want)
	}
	var failed []Record
	for i, r := range want {
		if r.ResultType != "0" {
			failed = append(failed, want[i])
		}
	}
	got, _, err := scanAll("x.parquet", data, Interactive, Options{PositionIds: "x.parquet#", Keep: func(r *Record) bool { return r.ResultType != "0" }})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, got, failed)
}

// raw is a JSON value written as is.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// Cells with one clear meaning are read; a row with an unreadable required
// cell is skipped and named, an unreadable optional cell reads as "".
func TestScanJSONLLenientCells(t *testing.T) {
	recs := truncTime(sampleRecords, 100*time.Nanosecond)
	const name = "am-signinlogs/y=2026/m=11/d=20/h=10/m=00/PT05M.json"
	r0 := recs[0]
	set := func(key string, v any) func(map[string]any) { return func(m map[string]any) { m[key] = v } }
	tests := []struct {
		name   string
		edit   func(map[string]any)
		want   func(*Record) // nil: the row is skipped
		column string        // of the skipped row or blanked cell
	}{
		{"ResultType 0.0", set("ResultType", raw("0.0")), func(r *Record) {}, ""},
		{"ResultType 0e0", set("ResultType", raw("0e0")), func(r *Record) {}, ""},
		{"ResultType -0.0", set("ResultType", raw("-0.0")), func(r *Record) {}, ""},
		{"ResultType text 0.0", set("ResultType", "0.0"), func(r *Record) {}, ""},
		{"ResultType text 0e0", set("ResultType", "0e0"), func(r *Record) {}, ""},
		{"ResultType 50126.0", set("ResultType", raw("50126.0")), func(r *Record) { r.ResultType = "50126" }, ""},
		{"ResultType text 50126.0", set("ResultType", "50126.0"), func(r *Record) { r.ResultType = "50126" }, ""},
		{"ResultType text stays text", set("ResultType", "Success"), func(r *Record) { r.ResultType = "Success" }, ""},
		{"IPAddress as number", set("IPAddress", raw("3405803783")), func(r *Record) { r.IPAddress = "3405803783" }, ""},
		{"time +00 with a space", set("TimeGenerated", "2026-11-20 10:15:30.1234567+00"), func(r *Record) {}, ""},
		{"time +0000", set("TimeGenerated", "2026-11-20T10:15:30.1234567+0000"), func(r *Record) {}, ""},
		{"time +00:00", set("TimeGenerated", "2026-11-20T10:15:30.1234567+00:00"), func(r *Record) {}, ""},
		{"time +02:00 is converted", set("TimeGenerated", "2026-11-20T12:15:30.1234567+02:00"), func(r *Record) {}, ""},
		{"time -0530 is converted", set("TimeGenerated", "2026-11-20 04:45:30.1234567-0530"), func(r *Record) {}, ""},
		{"time without offset is UTC", set("TimeGenerated", "2026-11-20 10:15:30.1234567"), func(r *Record) {}, ""},
		{"ResultType 0.5 skips the row", set("ResultType", raw("0.5")), nil, ColResultType},
		{"ResultType true skips the row", set("ResultType", true), nil, ColResultType},
		{"bad time skips the row", set("TimeGenerated", "20/11/2026 10:15"), nil, ColTimeGenerated},
		{"UPN as object skips the row", set("UserPrincipalName", map[string]any{"upn": "a"}), nil, ColUserPrincipalName},
		{"Location as number skips the row", set("Location", 840), nil, ColLocation},
		{"CA status as array skips the row", set("ConditionalAccessStatus", []string{"notApplied"}), nil, ColConditionalAccessStatus},
		{"Id as object reads as empty", set("Id", map[string]any{"v": 1}), func(r *Record) { r.Id = "" }, ColId},
		{"CorrelationId as number reads as empty", set("CorrelationId", 7), func(r *Record) { r.CorrelationId = "" }, ColCorrelationId},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The edited row between two good ones, as line 2.
			data := exportLine(t, recs[1], nil) + "\n" + exportLine(t, r0, tc.edit) + "\n" + exportLine(t, recs[2], nil) + "\n"
			got, st, err := scanAll(name, []byte(data), Interactive, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := []Record{recs[1]}
			wantSt := Stats{Consumed: int64(len(data))}
			if tc.want != nil {
				r := r0
				tc.want(&r)
				want = append(want, r)
			} else {
				wantSt.SkippedRows = 1
			}
			want = append(want, recs[2])
			diffRecords(t, got, want)
			wantSt.Rows, wantSt.Read = int64(len(want)), int64(len(want))
			var first *FormatError
			if tc.column != "" {
				if tc.want == nil {
					first = st.FirstSkipped
				} else {
					wantSt.BlankedCells = 1
					first = st.FirstBlanked
				}
				if first == nil || first.File != name || first.Column != tc.column || first.Row != 2 {
					t.Errorf("first bad cell %+v, want %s row 2 of %s", first, tc.column, name)
				}
			}
			st.FirstSkipped, st.FirstBlanked = nil, nil
			if noFormat(st) != wantSt {
				t.Errorf("stats %+v, want %+v", st, wantSt)
			}
		})
	}
}

func TestScanParquetLenientCells(t *testing.T) {
	const name = "insights-logs/SigninLogs/timestamp=2026-11-20T10/0f8e.gz.parquet"
	recs := truncTime(sampleRecords, time.Microsecond) // ResultType "0", "50126", "0"
	micros := tsCol(pq.Microsecond, true)
	replace := func(c pqCol) []pqCol {
		cols := stdCols(micros, strResultType)
		for i := range cols {
			if cols[i].name == c.name {
				cols[i] = c
			}
		}
		return cols
	}
	// values gives row i the value vs[i] (nil: null).
	values := func(vs ...any) func(int, Record) any { return func(i int, _ Record) any { return vs[i] } }
	uuidCol := func(col string, get func(Record) string) pqCol {
		return pqCol{col, tUUID, func(_ int, r Record) any {
			if v := get(r); v != "" {
				return strings.ToUpper(v) // parsed to bytes: the case is lost
			}
			return nil
		}}
	}
	offsets := pqCol{ColTimeGenerated, tString, values(
		"2026-11-20 10:15:30.123456+00", "2026-11-20T12:47:02.5+0200", "2026-11-20T11:02:59.999999+00:00")}
	tests := []struct {
		name  string
		cols  []pqCol
		props []pqOpt
		keep  bool
		skip  int    // 1-based row skipped, 0 for none
		col   string // its column
		msg   string
		want  []string // the ResultTypes read, when not recs'
	}{
		{name: "double ResultType", cols: replace(pqCol{ColResultType, tFloat64, values(0.0, 50126.0, 0.0)})},
		// A literal -0.0 is +0 in Go: the negative zero is made by Copysign.
		{name: "float ResultType, -0", cols: replace(pqCol{ColResultType, tFloat32, values(math.Copysign(0, -1), 50126.0, 0.0)})},
		{name: "double ResultType, -0", cols: replace(pqCol{ColResultType, tFloat64, values(math.Copysign(0, -1), 50126.0, math.Copysign(0, -1))})},
		{name: "decimal(10,2) ResultType as INT64", cols: replace(pqCol{ColResultType, tDecimal(10, 2), values(int64(0), int64(5012600), int64(0))}),
			props: []pqOpt{withDecimalInt()}},
		{name: "decimal(10,2) ResultType as FIXED_LEN_BYTE_ARRAY", cols: replace(pqCol{ColResultType, tDecimal(10, 2), values(int64(0), int64(5012600), int64(-0))})},
		{name: "decimal(38,20) ResultType, fraction in row 3", cols: replace(pqCol{ColResultType, tDecimal(38, 20), values(int64(0), int64(0), int64(5))}),
			want: []string{"0", "0"}, skip: 3, col: ColResultType, msg: "want an integer, got 0.00000000000000000005"},
		{name: "negative decimal(38,0) ResultType", cols: replace(pqCol{ColResultType, tDecimal(38, 0), values(int64(-1), int64(50126), int64(0))}),
			want: []string{"-1", "50126", "0"}},
		{name: "numeric text ResultType", cols: replace(pqCol{ColResultType, tString, values("0.0", "50126.0", "0e0")})},
		{name: "UUID CorrelationId and Id", cols: func() []pqCol {
			cols := replace(uuidCol(ColCorrelationId, func(r Record) string { return r.CorrelationId }))
			for i := range cols {
				if cols[i].name == ColId {
					cols[i] = uuidCol(ColId, func(r Record) string { return r.Id })
				}
			}
			return cols
		}()},
		{name: "text times with offsets", cols: replace(offsets)},
		{name: "double ResultType fraction in row 2", cols: replace(pqCol{ColResultType, tFloat64, values(0.0, 0.25, 0.0)}),
			skip: 2, col: ColResultType, msg: "want an integer, got 0.25"},
		{name: "fraction in row 2, Keep, row groups of 1", cols: replace(pqCol{ColResultType, tFloat64, values(0.0, 0.25, 0.0)}),
			props: []pqOpt{withRowGroup(1)}, keep: true, skip: 2, col: ColResultType, msg: "got 0.25"},
		{name: "decimal fraction in row 3", cols: replace(pqCol{ColResultType, tDecimal(10, 2), values(int64(0), int64(5012600), int64(50))}),
			props: []pqOpt{withDecimalInt()}, skip: 3, col: ColResultType, msg: "got 0.5"},
		{name: "bad ISO time in row 2", cols: replace(pqCol{ColTimeGenerated, tString, values("2026-11-20T10:15:30.123456Z", "20/11/2026 10:47", "2026-11-20T11:02:59.999999Z")}),
			skip: 2, col: ColTimeGenerated, msg: "invalid ISO 8601"},
		{name: "bad ISO time in row 1, Keep", cols: replace(pqCol{ColTimeGenerated, tString, values("yesterday", "2026-11-20T10:47:02.5Z", "2026-11-20T11:02:59.999999Z")}),
			keep: true, skip: 1, col: ColTimeGenerated, msg: "invalid ISO 8601"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := writeParquet(t, tc.cols, recs, tc.props)
			var opts Options
			if tc.keep {
				opts.Keep = func(*Record) bool { return true }
			}
			got, st, err := scanAll(name, data, Interactive, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := recs
			if tc.skip > 0 {
				want = append(append([]Record(nil), recs[:tc.skip-1]...), recs[tc.skip:]...)
			}
			if tc.want != nil {
				want = append([]Record(nil), want...)
				for i := range want {
					want[i].ResultType = tc.want[i]
				}
			}
			diffRecords(t, got, want)
			wantSt := Stats{Rows: int64(len(want)), Read: int64(len(want)), Consumed: int64(len(data))}
			if tc.skip > 0 {
				wantSt.SkippedRows = 1
				fe := st.FirstSkipped
				if fe == nil || fe.File != name || fe.Column != tc.col || fe.Row != int64(tc.skip) || !strings.Contains(fe.Error(), tc.msg) {
					t.Errorf("FirstSkipped %v, want %s row %d: %s", fe, tc.col, tc.skip, tc.msg)
				}
				st.FirstSkipped = nil
			}
			if noFormat(st) != wantSt {
				t.Errorf("stats %+v, want %+v", st, wantSt)
			}
		})
	}
}

// The UUID and DECIMAL cases above rely on the writer's physical layouts.
func TestParquetLenientFixtureLayouts(t *testing.T) {
	recs := sampleRecords
	cols := stdCols(tsCol(pq.Microsecond, true), pqCol{ColResultType, tDecimal(10, 2), func(int, Record) any { return int64(0) }})
	cols[8] = pqCol{ColCorrelationId, tUUID, func(_ int, r Record) any { return r.CorrelationId }}
	data := writeParquet(t, cols, recs, []pqOpt{withDecimalInt()})
	want := map[string]string{ColCorrelationId: "FIXED_LEN_BYTE_ARRAY[16] UUID", ColResultType: "INT64 DECIMAL(10,2)"}
	for col, want := range want {
		if got := physical(t, data, col); got != want {
			t.Errorf("%s is %s, want %s", col, got, want)
		}
	}
	cols[4].typ = tDecimal(38, 20)
	if got := physical(t, writeParquet(t, cols, recs, nil), ColResultType); got != "FIXED_LEN_BYTE_ARRAY[16] DECIMAL(38,20)" {
		t.Errorf("decimal(38,20) is %s, want FIXED_LEN_BYTE_ARRAY[16]", got)
	}
}

func TestScanGzipBomb(t *testing.T) {
	line := exportLine(t, truncTime(sampleRecords, 100*time.Nanosecond)[0], nil) + "\n"
	const name = "am-signinlogs/y=2026/m=11/d=20/h=10/m=00/PT05M.json.gz"
	tests := []struct {
		name string
		data []byte
		opts Options
		err  string // "" reads line's record
	}{
		{"newlines past 2x", gzipped(t, line+strings.Repeat("\n", 3<<20)), Options{MaxExpansion: 2},
			"decompresses to more than 2097152 bytes (2x its compressed size); raise --max-expansion"},
		{"one long line of zeros past 2x", gzipped(t, line+strings.Repeat("0", 3<<20)), Options{MaxExpansion: 2}, "raise --max-expansion"},
		{"the same within the default", gzipped(t, line+strings.Repeat("\n", 3<<20)), Options{}, ""},
		{"exactly at the bound", gzipped(t, line+strings.Repeat("\n", 2<<20-len(line))), Options{MaxExpansion: 2}, ""},
		{"one byte past the bound", gzipped(t, line+strings.Repeat("\n", 2<<20-len(line)+1)), Options{MaxExpansion: 2}, "2097152 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := scanAll(name, tc.data, Interactive, tc.opts)
			if tc.err == "" {
				if err != nil || len(got) != 1 {
					t.Fatalf("%d records, error %v", len(got), err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != name || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want a FormatError of %s saying %q", err, name, tc.err)
			}
		})
	}
	// Past the 1 MiB floor the bound is the ratio times the compressed size.
	for _, c := range []struct {
		size  int64
		exp   int
		limit int64
	}{{10 << 20, 3, 30 << 20}, {1 << 10, 0, 64 << 20}, {1 << 62, 64, 1<<63 - 2}} {
		if got := newGzipLimit(nil, c.size, c.exp).limit; got != c.limit {
			t.Errorf("size %d, MaxExpansion %d: limit %d, want %d", c.size, c.exp, got, c.limit)
		}
	}
}
