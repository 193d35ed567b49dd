package detect

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The column table is the query's final project (DESIGN.md section 1), in
// order, and everything derived from it agrees.
func TestColumnTable(t *testing.T) {
	want := []string{"NISignInTime", "InteractiveTime", "UserPrincipalName", "AppDisplayName",
		"NIIPAddress", "NICountry", "InteractiveIP", "InteractiveCountry",
		"CorrelationId", "UniqueTokenIdentifier", "TimeSinceInteractive"}
	if !reflect.DeepEqual(Columns, want) || len(columns) != 11 {
		t.Fatalf("Columns = %q, want %q", Columns, want)
	}
	for i, name := range want {
		if columns[i].name != name || columnIndex[name] != i {
			t.Errorf("column %d is %q (index %d), want %q", i, columns[i].name, columnIndex[name], name)
		}
	}
	if len(columnIndex) != len(want) {
		t.Errorf("%d names in the index, want %d", len(columnIndex), len(want))
	}
	// Every exported field but the Ids and the added columns (Extra) is a column, in field order.
	rt := reflect.TypeFor[Result]()
	var fields []string
	for i := range rt.NumField() {
		if f := rt.Field(i); f.Name != "InteractiveId" && f.Name != "NonInteractiveId" && f.Name != "Extra" {
			fields = append(fields, f.Name)
		}
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("Result's fields %q are not the columns", fields)
	}
}

// fullRows have every column set, with text that JSON, CSV and the table
// each must take care with.
func fullRows() []struct {
	name string
	row  Result
} {
	cet := time.FixedZone("CET", 3600)
	base := Result{
		NISignInTime:          time.Date(2026, 11, 20, 10, 45, 0, 123456700, time.UTC),
		InteractiveTime:       time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		UserPrincipalName:     "pivot@contoso.com",
		AppDisplayName:        "Microsoft Teams",
		NIIPAddress:           "91.200.1.1",
		NICountry:             "RU",
		InteractiveIP:         "20.1.1.1",
		InteractiveCountry:    "US",
		CorrelationId:         "c-1",
		UniqueTokenIdentifier: "tok-1",
		TimeSinceInteractive:  45*time.Minute + 123456700*time.Nanosecond,
		InteractiveId:         "i-1",
		NonInteractiveId:      "n-1",
	}
	edit := func(f func(*Result)) Result {
		r := base
		f(&r)
		return r
	}
	return []struct {
		name string
		row  Result
	}{
		{"plain", base},
		{"HTML and CSV specials", edit(func(r *Result) {
			r.AppDisplayName = `Teams <preview> & "Office", beta`
			r.CorrelationId = "line\nbreak\ttab"
		})},
		{"unicode", edit(func(r *Result) {
			r.UserPrincipalName = "zoë@例え.jp"
			r.AppDisplayName = "sep \u2028 \u2029 del \x7f"
			r.UniqueTokenIdentifier = "\\back\\slash"
		})},
		{"IPv6, zones and days", edit(func(r *Result) {
			r.NIIPAddress, r.InteractiveIP = "2001:db8::1", "::ffff:10.0.0.1"
			r.NISignInTime = time.Date(2026, 11, 21, 12, 0, 0, 1, cet)
			r.InteractiveTime = time.Date(2026, 11, 20, 9, 59, 59, 999999999, cet)
			r.TimeSinceInteractive = 26*time.Hour + time.Nanosecond*100
		})},
		{"negative timespan", edit(func(r *Result) { r.TimeSinceInteractive = -90 * time.Second })},
	}
}

// decoded is what a row reads back as from its text: UTC times, the
// timespan at tick precision, no Ids.
func decoded(r Result) Result {
	r.NISignInTime, r.InteractiveTime = r.NISignInTime.UTC(), r.InteractiveTime.UTC()
	r.TimeSinceInteractive = r.TimeSinceInteractive.Truncate(tick)
	r.InteractiveId, r.NonInteractiveId = "", ""
	return r
}

func TestFormatsAgree(t *testing.T) {
	for _, tc := range fullRows() {
		t.Run(tc.name, func(t *testing.T) {
			row, want := tc.row, decoded(tc.row)
			texts := Fields(row)
			for i, name := range Columns {
				if v, ok := Column(row, name); !ok || v != texts[i] {
					t.Errorf("Column(%s) = %q, %v; Fields has %q", name, v, ok, texts[i])
				}
				if texts[i] == "" {
					t.Errorf("column %s is empty: the case must set every column", name)
				}
			}
			if _, ok := Column(row, "IPAddress"); ok {
				t.Error("Column of a name that is not a result column reported ok")
			}
			if got := ContentKey(row); got != strings.Join(texts, "\x00") {
				t.Errorf("ContentKey = %q, want the NUL-joined Fields", got)
			}

			// JSON Lines: the keys in column order, each value the column's text,
			// and the same bytes encoding/json gives for the texts.
			var jl bytes.Buffer
			if err := WriteJSONL(&jl, []Result{row}); err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSuffix(jl.String(), "\n")
			if strings.Contains(line, "\n") {
				t.Fatalf("not one line: %q", jl.String())
			}
			dec := json.NewDecoder(strings.NewReader(line))
			dec.Token()
			for i := 0; dec.More(); i++ {
				k, _ := dec.Token()
				var v string
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if i >= len(Columns) || k != Columns[i] || v != texts[i] {
					t.Errorf("JSON key %d = %v: %q, want %s: %q", i, k, v, Columns[i], texts[i])
				}
			}
			var ref bytes.Buffer
			enc := json.NewEncoder(&ref)
			enc.SetEscapeHTML(false)
			var obj strings.Builder
			obj.WriteByte('{')
			for i, name := range Columns {
				if i > 0 {
					obj.WriteByte(',')
				}
				ref.Reset()
				enc.Encode(texts[i])
				obj.WriteString(`"` + name + `":` + strings.TrimSuffix(ref.String(), "\n"))
			}
			obj.WriteByte('}')
			if line != obj.String() {
				t.Errorf("JSON =\n%s\nwant (encoding/json)\n%s", line, obj.String())
			}
			if m, err := MarshalResult(row); err != nil || string(m) != line {
				t.Errorf("MarshalResult = %s, %v; want the JSON Lines object", m, err)
			}
			back, err := ReadJSONL("row.jsonl", &jl)
			if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], want) {
				t.Fatalf("JSON Lines round trip = %+v, %v\nwant %+v", back, err, want)
			}
			if lenient, err := UnmarshalResultLenient([]byte(line)); err != nil || !reflect.DeepEqual(lenient, want) {
				t.Errorf("UnmarshalResultLenient = %+v, %v", lenient, err)
			}

			// CSV: the header is Columns, the record Fields, and setting each
			// column from its cell gives the row JSON gave.
			var cb bytes.Buffer
			if err := WriteCSV(&cb, []Result{row}); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&cb).ReadAll()
			if err != nil || len(recs) != 2 {
				t.Fatalf("CSV: %d records, %v", len(recs), err)
			}
			if !reflect.DeepEqual(recs[0], Columns) || !reflect.DeepEqual(recs[1], texts) {
				t.Errorf("CSV = %q\nwant %q, %q", recs, Columns, texts)
			}
			var fromCSV Result
			for i, c := range columns {
				if err := c.set(&fromCSV, recs[1][i]); err != nil {
					t.Fatalf("CSV %s: %v", c.name, err)
				}
			}
			if !reflect.DeepEqual(fromCSV, want) {
				t.Errorf("CSV round trip = %+v\nwant %+v", fromCSV, want)
			}

			// The table printer: each cell shows its columns' texts (times to
			// the second, from the same UTC time the JSON text holds).
			shown := map[string]bool{}
			cells := tableCells(row)
			for i, cell := range tableLayout {
				var parts []string
				for _, k := range cell.cols {
					name := columns[k].name
					shown[name] = true
					v := texts[k]
					if ts, err := time.Parse(time.RFC3339Nano, v); err == nil && strings.HasSuffix(name, "Time") {
						v = ts.Format("2006-01-02 15:04:05")
					}
					parts = append(parts, v)
				}
				wantCell := parts[0]
				if len(parts) > 1 {
					wantCell += " (" + parts[1] + ")"
				}
				if cells[i] != wantCell {
					t.Errorf("table %s = %q, want %q", cell.head, cells[i], wantCell)
				}
			}
			for _, name := range Columns {
				if !shown[name] && name != "CorrelationId" && name != "UniqueTokenIdentifier" {
					t.Errorf("the table printer does not show %s", name)
				}
			}
			var tb bytes.Buffer
			if err := WriteTable(&tb, []Result{row}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(tb.String(), "\n")
			if len(lines) < 3 || !strings.HasPrefix(lines[0], "USER") || lines[len(lines)-2] != "1 result rows" {
				t.Fatalf("table =\n%s", tb.String())
			}
			rest := strings.Join(lines[1:len(lines)-2], "\n")
			for _, c := range cells {
				i := strings.Index(rest, c)
				if i < 0 {
					t.Fatalf("table row %q lacks cell %q (in order)", rest, c)
				}
				rest = rest[i+len(c):]
			}
		})
	}
}

// The table printer's layout, byte for byte as `detect --format table`
// prints it.
func TestWriteTableLayout(t *testing.T) {
	rows := sampleRows(t)
	var b bytes.Buffer
	if err := WriteTable(&b, rows[:1]); err != nil {
		t.Fatal(err)
	}
	want := "USER               INTERACTIVE (UTC)    FROM               NON-INTERACTIVE (UTC)  FROM                AFTER             APP\n" +
		"alice@contoso.com  2024-05-01 08:00:00  203.0.113.10 (US)  2024-05-01 08:10:00    198.51.100.20 (RU)  00:10:00.1234567  Microsoft Office\n" +
		"1 result rows\n"
	if b.String() != want {
		t.Errorf("table =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestUnmarshalResultErrors(t *testing.T) {
	good, _ := MarshalResult(sampleRows(t)[0])
	obj := strings.TrimSuffix(string(good), "}")
	for _, tc := range []struct {
		name, text string
		strict     []string // what the strict error names; nil: no error
		lenient    []string
	}{
		{"two unknown keys", obj + `,"Zeta":"1","Extra":"2"}`, []string{`unknown keys "Extra", "Zeta"`}, nil},
		{"a key in other case", obj + `,"nisignintime":"x"}`, []string{`"nisignintime"`}, nil},
		{"a number", strings.Replace(string(good), `"NICountry":"RU"`, `"NICountry":7`, 1), []string{"NICountry", "want a string"}, []string{"NICountry"}},
		{"no times", `{"UserPrincipalName":"a"}`, []string{"NISignInTime", "RFC 3339"}, []string{"NISignInTime"}},
		{"bad timespan", strings.Replace(string(good), `"00:10:00.1234567"`, `"10m"`, 1), []string{"TimeSinceInteractive", "10m"}, []string{"TimeSinceInteractive"}},
		{"null string", strings.Replace(string(good), `"NICountry":"RU"`, `"NICountry":null`, 1), nil, nil},
		{"not an object", `["x"]`, []string{"result row", "want an object"}, []string{"want an object"}},
	} {
		_, err := UnmarshalResult([]byte(tc.text))
		if (err == nil) != (tc.strict == nil) {
			t.Errorf("%s: UnmarshalResult error %v, want one naming %q", tc.name, err, tc.strict)
		}
		for _, s := range tc.strict {
			if err != nil && !strings.Contains(err.Error(), s) {
				t.Errorf("%s: UnmarshalResult error %v does not name %q", tc.name, err, s)
			}
		}
		_, err = UnmarshalResultLenient([]byte(tc.text))
		if (err == nil) != (tc.lenient == nil) {
			t.Errorf("%s: UnmarshalResultLenient error %v, want one naming %q", tc.name, err, tc.lenient)
		}
		for _, s := range tc.lenient {
			if err != nil && !strings.Contains(err.Error(), s) {
				t.Errorf("%s: UnmarshalResultLenient error %v does not name %q", tc.name, err, s)
			}
		}
	}
}

// jsonString is encoding/json's text for s with HTML escaping off.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func TestAppendStringAsEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `"quoted"`, `back\slash`, "<a&b>", "\u2028\u2029", "é中😀", "\xff", "a\xe2\x80", "\xed\xa0\x80", "\x7f", "\ufffd"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	for _, s := range cases {
		if got, want := string(appendString(nil, s)), jsonString(s); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// FuzzColumnText: any text in a column encodes as encoding/json encodes it
// and decodes to what encoding/json decodes, in both decoders.
func FuzzColumnText(f *testing.F) {
	f.Add("Teams <preview> & Office")
	f.Add("\xff\u2028\"\\\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), jsonString(s); got != want {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
		row := sampleRows(t)[0]
		row.AppDisplayName, row.CorrelationId = s, s
		var want string
		json.Unmarshal([]byte(jsonString(s)), &want)
		line := AppendJSON(nil, row)
		for name, decode := range map[string]func([]byte) (Result, error){"strict": UnmarshalResult, "lenient": UnmarshalResultLenient} {
			back, err := decode(line)
			if err != nil || back.AppDisplayName != want || back.CorrelationId != want {
				t.Fatalf("%s: %q -> %s -> %q, %v; want %q", name, s, line, back.AppDisplayName, err, want)
			}
		}
		// Arbitrary text never panics either decoder.
		UnmarshalResult([]byte(s))
		UnmarshalResultLenient([]byte(s))
	})
}

// The narrow table (the default of `detect --format table`) in its layout.
func TestWriteTableNarrowLayout(t *testing.T) {
	rows := sampleRows(t)
	var b bytes.Buffer
	if err := WriteTableNarrow(&b, rows[:1]); err != nil {
		t.Fatal(err)
	}
	want := "USER               INTERACTIVE (UTC)    FROM               NON-INTERACTIVE FROM  AFTER\n" +
		"alice@contoso.com  2024-05-01 08:00:00  203.0.113.10 (US)  198.51.100.20 (RU)    00:10:00.1234567\n" +
		"1 result rows\n"
	if b.String() != want {
		t.Errorf("table =\n%s\nwant\n%s", b.String(), want)
	}
}
