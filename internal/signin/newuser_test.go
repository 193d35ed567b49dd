package signin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A file of the other table is refused, naming the file and the evidence
// its content gives (Type, Category, IsInteractive), in either format.
func TestWrongTable(t *testing.T) {
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "readers", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	jsonl := string(read("signinlogs.jsonl"))
	noType := strings.ReplaceAll(jsonl, `"Type":"SigninLogs",`, "")
	noCategory := strings.ReplaceAll(noType, `"Category":"SignInLogs",`, "")
	for _, tc := range []struct {
		name   string
		data   []byte
		table  Table
		column string // "" when the file is accepted
		says   string
	}{
		{"parquet SigninLogs as non-interactive", read("signinlogs-duckdb-zstd.parquet"), NonInteractive, "Type", `Type "SigninLogs"`},
		{"parquet non-interactive as SigninLogs", read("aadnoninteractive-duckdb-ms-snappy.parquet"), Interactive, "Type", `Type "AADNonInteractiveUserSignInLogs"`},
		{"parquet SigninLogs as itself", read("signinlogs-arrow-int96.parquet"), Interactive, "", ""},
		{"jsonl non-interactive as SigninLogs", read("aadnoninteractive.jsonl"), Interactive, "Type", `Type "AADNonInteractiveUserSignInLogs"`},
		{"jsonl by Category", []byte(noType), NonInteractive, "Category", `Category "SignInLogs"`},
		{"jsonl by IsInteractive", []byte(noCategory), NonInteractive, "IsInteractive", "IsInteractive true"},
		{"jsonl without evidence", []byte(strings.ReplaceAll(noCategory, `"IsInteractive":true,`, "")), NonInteractive, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := scanAll("x.export", tc.data, tc.table, Options{})
			if tc.column == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Column != tc.column || fe.File != "x.export" || !strings.Contains(err.Error(), tc.says) ||
				!strings.Contains(err.Error(), "not "+tc.table.String()) {
				t.Fatalf("error %v, want a FormatError on column %s saying %s", err, tc.column, tc.says)
			}
		})
	}
}

// An archive record whose time is off-spec (as seen in the field) but whose
// properties.createdDateTime is valid is read at createdDateTime, counted
// and named; a file of such records is no longer rejected.
func TestDiagnosticTimeFallback(t *testing.T) {
	good := `{"time":"2026-11-20T10:00:00Z","category":"SignInLogs","resultType":"0","location":"US","properties":{"id":"a","createdDateTime":"2026-11-20T10:00:00.1234567Z","userPrincipalName":"a@contoso.com","ipAddress":"20.1.1.1","authenticationRequirement":"singleFactorAuthentication","conditionalAccessStatus":"success"}}`
	off := strings.Replace(strings.Replace(good, `"time":"2026-11-20T10:00:00Z"`, `"time":"11/14/2025 1:48:53 AM"`, 1), `"id":"a"`, `"id":"b"`, 1)
	recs, st, err := scanAll("PT1H.json", []byte(good+"\n"+off+"\n"+off+"\n"), Interactive, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 20, 10, 0, 0, 123456700, time.UTC)
	if len(recs) != 3 || !recs[1].TimeGenerated.Equal(want) || !recs[0].TimeGenerated.Equal(want.Truncate(time.Second)) {
		t.Fatalf("records %+v", recs)
	}
	if st.TimeFallbacks != 2 || st.FirstTimeFallback == nil || st.FirstTimeFallback.Row != 2 ||
		!strings.Contains(st.FirstTimeFallback.Error(), "11/14/2025 1:48:53 AM") {
		t.Errorf("TimeFallbacks %d, first %v; want 2, naming row 2 and its time", st.TimeFallbacks, st.FirstTimeFallback)
	}
	// Without a createdDateTime to fall back to, the row is skipped, as before.
	noCreated := strings.Replace(off, `"createdDateTime":"2026-11-20T10:00:00.1234567Z",`, "", 1)
	recs, st, err = scanAll("PT1H.json", []byte(good+"\n"+noCreated+"\n"), Interactive, Options{})
	if err != nil || len(recs) != 1 || st.SkippedRows != 1 || st.TimeFallbacks != 0 {
		t.Errorf("without createdDateTime: %d records, %d skipped, %d fallbacks, %v", len(recs), st.SkippedRows, st.TimeFallbacks, err)
	}
}

// A CSV file is named as CSV, whatever its name, and a .parquet name that
// is not Parquet says so; a JSON file is still read.
func TestCSVIsNamed(t *testing.T) {
	csv := "TimeGenerated,UserPrincipalName,IPAddress,Location,ResultType\n2026-11-20T10:00:00Z,a@contoso.com,1.1.1.1,US,0\n"
	for _, name := range []string{"export.csv", "x.gz.parquet"} {
		_, _, err := scanAll(name, []byte(csv), NonInteractive, Options{})
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != name || !strings.Contains(err.Error(), "CSV") || !strings.Contains(err.Error(), "TimeGenerated,UserPrincipalName") {
			t.Errorf("%s: %v, want a FormatError saying it is CSV", name, err)
		}
		if strings.HasSuffix(name, ".parquet") && !strings.Contains(err.Error(), "no PAR1") {
			t.Errorf("%s: %v, want it to say it is not Parquet", name, err)
		}
	}
}

// BenchmarkRecordKey: the cost of the exact dedup key, per record.
func BenchmarkRecordKey(b *testing.B) {
	r := sampleRecords[0]
	var sink uint64
	for b.Loop() {
		k, _ := r.Key()
		sink += k.Sum
	}
	_ = sink
}
