package signin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// exportLine renders r as Log Analytics data export writes a SigninLogs row:
// 7 fractional digits, dynamic columns as objects, extra columns around the
// ones the rule reads. edit may change or delete keys.
func exportLine(tb testing.TB, r Record, edit func(map[string]any)) string {
	tb.Helper()
	m := map[string]any{
		"TenantId":                  "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"SourceSystem":              "Azure AD",
		"TimeGenerated":             r.TimeGenerated.Format("2006-01-02T15:04:05.0000000Z"),
		"ResourceId":                "/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/providers/Microsoft.aadiam",
		"OperationName":             "Sign-in activity",
		"Category":                  "SignInLogs",
		"ResultType":                r.ResultType,
		"ResultDescription":         "",
		"DurationMs":                0,
		"CorrelationId":             r.CorrelationId,
		"Location":                  r.Location,
		"AppDisplayName":            r.AppDisplayName,
		"AuthenticationRequirement": r.AuthenticationRequirement,
		"ConditionalAccessStatus":   r.ConditionalAccessStatus,
		"DeviceDetail":              map[string]any{"deviceId": "", "operatingSystem": "Windows10", "browser": "Edge 120.0.0"},
		"LocationDetails":           `{"city":"Seattle","state":"Washington","countryOrRegion":"US"}`,
		"Status":                    map[string]any{"errorCode": 0, "additionalDetails": "MFA requirement satisfied"},
		"IPAddress":                 r.IPAddress,
		"IsInteractive":             true,
		"UserPrincipalName":         r.UserPrincipalName,
		"UniqueTokenIdentifier":     r.UniqueTokenIdentifier,
		"Id":                        r.Id,
		"Type":                      "SigninLogs",
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func gzipped(tb testing.TB, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestScanJSONL(t *testing.T) {
	recs := truncTime(sampleRecords, 100*time.Nanosecond)
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = exportLine(t, r, nil)
	}
	all := strings.Join(lines, "\n") + "\n"
	numberRT := exportLine(t, recs[1], func(m map[string]any) { m["ResultType"] = 50126 })
	zeroRT := exportLine(t, recs[0], func(m map[string]any) { m["ResultType"] = 0 })
	nulls := exportLine(t, recs[2], func(m map[string]any) { m["Location"] = nil; m["AppDisplayName"] = nil; m["Id"] = nil })
	absent := exportLine(t, recs[2], func(m map[string]any) { delete(m, "Location"); delete(m, "AppDisplayName"); delete(m, "Id") })
	dynamicAsString := exportLine(t, recs[0], func(m map[string]any) { m["DeviceDetail"] = `{"browser":"Edge"}` })

	tests := []struct {
		name     string
		data     []byte
		table    Table
		opts     Options
		want     []Record
		consumed int // -1: the whole input
		read     int // 0: len(want)
	}{
		{name: "three lines", data: []byte(all), want: recs, consumed: -1},
		{name: "CRLF and blank lines", data: []byte("\r\n" + lines[0] + "\r\n\r\n  \n" + lines[1] + "\r\n" + lines[2] + "\r\n\r\n"), want: recs, consumed: -1},
		{name: "UTF-8 BOM", data: []byte("\xef\xbb\xbf" + all), want: recs, consumed: -1},
		{name: "ResultType as number", data: []byte(zeroRT + "\n" + numberRT + "\n"), want: recs[:2], consumed: -1},
		{name: "nulls read as empty", data: []byte(lines[0] + "\n" + nulls + "\n"), want: []Record{recs[0], recs[2]}, consumed: -1},
		{name: "absent keys read as empty", data: []byte(absent + "\n" + lines[0] + "\n"), want: []Record{recs[2], recs[0]}, consumed: -1},
		{name: "dynamic as string", data: []byte(dynamicAsString + "\n"), want: recs[:1], consumed: -1},
		{name: "partial last line is left for later", data: []byte(all + lines[0][:40]), want: recs, consumed: len(all)},
		{name: "complete last line without newline is read", data: []byte(lines[0] + "\n" + lines[1]), want: recs[:2], consumed: -1},
		{name: "complete last line with trailing spaces", data: []byte(lines[0] + "\n " + lines[1] + " \t"), want: recs[:2], consumed: -1},
		{name: "last line cut inside a nested object", data: []byte(lines[0] + "\n" + lines[1][:strings.Index(lines[1], `"DeviceDetail"`)+30]),
			want: recs[:1], consumed: len(lines[0]) + 1},
		{name: "last line a complete array is not a record", data: []byte(lines[0] + "\n[1,2]"), want: recs[:1], consumed: len(lines[0]) + 1},
		{name: "last line only whitespace", data: []byte(lines[0] + "\n  "), want: recs[:1], consumed: len(lines[0]) + 1},
		{name: "Final reads a last line without newline", data: []byte(lines[0] + "\n" + lines[1]), opts: Options{Final: true}, want: recs[:2], consumed: -1},
		{name: "only a partial line", data: []byte(lines[0][:10]), consumed: 0},
		{name: "empty file", data: nil, consumed: 0},
		{name: "blank lines only", data: []byte("\n\n"), consumed: -1},
		{name: "gzip", data: gzipped(t, all), want: recs, consumed: -1},
		{name: "gzip without final newline", data: gzipped(t, strings.TrimSuffix(all, "\n")), want: recs, consumed: -1},
		// The same rows as the other table's (Type names it: see TestWrongTable).
		{name: "noninteractive", data: []byte(strings.ReplaceAll(all, `"Type":"SigninLogs"`, `"Type":"AADNonInteractiveUserSignInLogs"`)),
			table: NonInteractive, want: forTable(recs, NonInteractive), consumed: -1},
		{name: "batches of 2", data: []byte(all), opts: Options{BatchSize: 2}, want: recs, consumed: -1},
		{name: "keep", data: []byte(all), opts: Options{Keep: func(r *Record) bool { return r.ResultType == "0" }},
			want: []Record{recs[0], recs[2]}, read: 3, consumed: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, st, err := scanAll("am-signinlogs/y=2026/m=11/d=20/h=10/m=00/PT05M.json", tc.data, tc.table, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			diffRecords(t, got, tc.want)
			want := Stats{Rows: int64(len(tc.want)), Read: int64(len(tc.want)), Consumed: int64(tc.consumed)}
			if tc.read != 0 {
				want.Read = int64(tc.read)
			}
			if tc.consumed < 0 {
				want.Consumed = int64(len(tc.data))
			}
			if noFormat(st) != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

// Resuming at Consumed after the blob grew reads exactly the new records.
func TestScanJSONLResume(t *testing.T) {
	recs := truncTime(sampleRecords, 100*time.Nanosecond)
	first := exportLine(t, recs[0], nil) + "\n" + exportLine(t, recs[1], nil)[:25]
	grown := exportLine(t, recs[0], nil) + "\n" + exportLine(t, recs[1], nil) + "\n" + exportLine(t, recs[2], nil) + "\n"
	got, st, err := scanAll("PT05M.json", []byte(first), Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rest, st2, err := scanAll("PT05M.json", []byte(grown)[st.Consumed:], Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, append(got, rest...), recs)
	if st.Consumed+st2.Consumed != int64(len(grown)) {
		t.Errorf("consumed %d+%d of %d bytes", st.Consumed, st2.Consumed, len(grown))
	}
}

func TestScanJSONLErrors(t *testing.T) {
	recs := sampleRecords
	line := func(i int, edit func(map[string]any)) string { return exportLine(t, recs[i], edit) + "\n" }
	good := line(0, nil) + line(1, nil)
	tests := []struct {
		name    string
		data    []byte
		table   Table
		column  string
		row     int64
		message string
	}{
		{name: "invalid JSON on line 3", data: []byte(good + `{"TimeGenerated": "2026-11-20T10:15:30Z", "UserPrincipalName": ` + "\n"),
			row: 3, message: "invalid JSON"},
		{name: "not an object", data: []byte(good + "[1,2]\n"), row: 3, message: "not an object"},
		{name: "UPN as number", data: []byte(line(0, func(m map[string]any) { m["UserPrincipalName"] = 42 })),
			column: ColUserPrincipalName, row: 1, message: "want a string, got a number 42"},
		{name: "IPAddress as object", data: []byte(line(2, func(m map[string]any) { m["IPAddress"] = map[string]any{"v4": "1.2.3.4"} })),
			column: ColIPAddress, row: 1, message: "got an object"},
		{name: "every row skipped, first named", data: []byte(line(0, func(m map[string]any) { m["TimeGenerated"] = "soon" }) +
			line(1, func(m map[string]any) { m["ResultType"] = true })),
			column: ColTimeGenerated, row: 1, message: "invalid ISO 8601"},
		{name: "ResultType fractional", data: []byte(line(0, func(m map[string]any) { m["ResultType"] = 0.5 })),
			column: ColResultType, row: 1, message: "want an integer or string"},
		{name: "bad time", data: []byte(line(0, func(m map[string]any) { m["TimeGenerated"] = "yesterday" })),
			column: ColTimeGenerated, row: 1, message: "invalid ISO 8601"},
		{name: "time as number", data: []byte(line(0, func(m map[string]any) { m["TimeGenerated"] = 1763633730 })),
			column: ColTimeGenerated, row: 1, message: "want an ISO 8601 string"},
		{name: "no record has Location", data: []byte(line(0, func(m map[string]any) { delete(m, "Location") }) + line(1, func(m map[string]any) { delete(m, "Location") })),
			column: ColLocation, message: "required column is missing"},
		{name: "no record has ConditionalAccessStatus", data: []byte(line(0, func(m map[string]any) { delete(m, "ConditionalAccessStatus") })),
			column: ColConditionalAccessStatus, message: "required column is missing"},
		{name: "truncated gzip", data: gzipped(t, good)[:60], row: 1, message: "gzip"},
		{name: "gzip header only", data: []byte{0x1f, 0x8b}, message: "gzip"},
		{name: "binary junk", data: []byte("\x00\x01\x02garbage\n"), row: 1, message: "invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const name = "am-signinlogs/WorkspaceResourceId=/x/y=2026/m=11/d=20/h=10/m=05/PT05M.json"
			_, _, err := scanAll(name, tc.data, tc.table, Options{})
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *FormatError", err, err)
			}
			if fe.File != name || fe.Column != tc.column || fe.Row != tc.row {
				t.Errorf("FormatError{File: %q, Column: %q, Row: %d}, want {%q, %q, %d}", fe.File, fe.Column, fe.Row, name, tc.column, tc.row)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
		})
	}
	// A non-interactive export need not have the conditional access columns.
	noCA := line(0, func(m map[string]any) {
		delete(m, "ConditionalAccessStatus")
		delete(m, "AuthenticationRequirement")
		m["Type"] = "AADNonInteractiveUserSignInLogs"
	})
	if _, _, err := scanAll("ni.json", []byte(noCA), NonInteractive, Options{}); err != nil {
		t.Errorf("noninteractive without CA columns: %v", err)
	}
}

// A file many read buffers long is read to its end: the reads past the
// first are at later offsets of the same source.
func TestScanJSONLinesManyReads(t *testing.T) {
	recs := truncTime(benchRecords(20_000), 100*time.Nanosecond)
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(exportLine(t, r, nil) + "\n")
	}
	if b.Len() < 4*(256<<10) { // the reader's buffer
		t.Fatalf("%d bytes: not several read buffers", b.Len())
	}
	got, st, err := scanAll("big.json", []byte(b.String()), Interactive, Options{Final: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) || st.Read != int64(len(recs)) {
		t.Fatalf("got %d records (stats %+v), want %d", len(got), st, len(recs))
	}
	diffRecords(t, got, recs)
}

// TestCompleteEnd: CompleteEnd says where Scan stops on a growing plain
// JSON Lines blob, from any start, whatever the tail.
func TestCompleteEnd(t *testing.T) {
	rec := `{"TimeGenerated":"2026-11-20T10:00:00Z","UserPrincipalName":"a@contoso.com","IPAddress":"1.2.3.4","Location":"US","ResultType":"0"}`
	long := strings.Repeat(rec+"\n", 3000) // over CompleteEnd's 64 KiB reads
	for _, tc := range []struct{ name, data string }{
		{"newline at end", rec + "\n" + rec + "\n"},
		{"complete tail", rec + "\n" + rec},
		{"partial tail", rec + "\n" + rec[:40]},
		{"whitespace tail", rec + "\n  "},
		{"only a partial line", rec[:50]},
		{"only a complete line", rec},
		{"BOM complete line", "\xef\xbb\xbf" + rec},
		{"long, partial tail", long + rec[:70]},
		{"long, complete tail", long + rec},
		{"partial tail over 64 KiB", rec + "\n" + `{"UserPrincipalName":"` + strings.Repeat("x", 100<<10)},
	} {
		data := []byte(tc.data)
		// A read resumes where the last stopped: at the start of a line.
		for _, from := range []int64{0, int64(len(rec) + 1), int64(len(rec)+1) * 1500} {
			if from > int64(len(data)) {
				continue
			}
			r := io.NewSectionReader(bytes.NewReader(data), from, int64(len(data))-from)
			st, err := Scan(context.Background(), r, int64(len(data))-from, Options{Name: tc.name, Table: NonInteractive}, func([]Record) error { return nil })
			if err != nil && !strings.Contains(tc.name, "partial") && !strings.Contains(tc.name, "whitespace") {
				t.Fatalf("%s from %d: %v", tc.name, from, err)
			}
			got, err := CompleteEnd(bytes.NewReader(data), from, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if want := from + st.Consumed; got != want {
				t.Errorf("%s from %d: CompleteEnd %d, Scan consumed to %d", tc.name, from, got, want)
			}
		}
	}
}
