package signin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pq "github.com/parquet-go/parquet-go"
)

// The precision modes' columns are read only when asked for, from every
// form an export takes, and a column of a type they cannot be read as
// reads as "" instead of failing the file.
func TestExtraColumns(t *testing.T) {
	readFile := func(t *testing.T, path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	diag, err := filepath.Glob("../../testdata/diagnostic/insights-logs-signinlogs/*/*/*/*/*/*/PT1H.json")
	if err != nil || len(diag) == 0 {
		t.Fatalf("diagnostic fixture: %v %v", diag, err)
	}
	// A Parquet file whose ASN is an INT64 and whose GSA flag a BOOLEAN,
	// as other writers may type them.
	typed := func() []byte {
		cols := append(stdCols(tsCol(pq.Microsecond, true), strResultType),
			pqCol{ColAutonomousSystemNumber, tInt64, func(i int, _ Record) any { return int64(8075 + i) }},
			pqCol{ColIsThroughGlobalSecureAccess, tBool, func(int, Record) any { return true }},
			str(ColSessionId, func(r Record) string { return "sid-" + r.Id }),
		)
		return writeParquet(t, cols, fixtureSignins, nil)
	}
	tests := []struct {
		name  string
		data  func() []byte
		table Table
		// check looks at the first record read with Extra.
		check func(t *testing.T, e *Extra)
	}{
		{"data export JSON Lines", func() []byte { return readFile(t, "../../testdata/readers/aadnoninteractive.jsonl") }, NonInteractive,
			func(t *testing.T, e *Extra) {
				if e.AutonomousSystemNumber != "8075" || e.IsThroughGlobalSecureAccess != "false" || !strings.Contains(e.LocationDetails, `"countryOrRegion":"RU"`) {
					t.Errorf("extra = %+v", e)
				}
			}},
		{"DuckDB Parquet", func() []byte { return readFile(t, "../../testdata/readers/aadnoninteractive-duckdb-ms-snappy.parquet") }, NonInteractive,
			func(t *testing.T, e *Extra) {
				if e.AutonomousSystemNumber != "8075" || !strings.Contains(e.LocationDetails, "countryOrRegion") {
					t.Errorf("extra = %+v", e)
				}
			}},
		{"diagnostic archive properties", func() []byte { return readFile(t, diag[0]) }, Interactive,
			func(t *testing.T, e *Extra) {
				if e.AppId != "00000002-0000-0ff1-ce00-000000000000" || !strings.Contains(e.LocationDetails, `"countryOrRegion":"US"`) || !strings.Contains(e.DeviceDetail, `"browser":"Edge 131.0.0"`) {
					t.Errorf("extra = %+v", e)
				}
			}},
		{"typed Parquet: int ASN read, boolean GSA left unread", typed, Interactive,
			func(t *testing.T, e *Extra) {
				if e.AutonomousSystemNumber != "8075" || e.IsThroughGlobalSecureAccess != "" || !strings.HasPrefix(e.SessionId, "sid-") {
					t.Errorf("extra = %+v", e)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data()
			plain, _, err := scanAll(tc.name, data, tc.table, Options{Final: true})
			if err != nil {
				t.Fatal(err)
			}
			wide, _, err := scanAll(tc.name, data, tc.table, Options{Final: true, Extra: ExtraColumns()})
			if err != nil {
				t.Fatal(err)
			}
			if len(plain) == 0 || len(plain) != len(wide) {
				t.Fatalf("%d records without Extra, %d with", len(plain), len(wide))
			}
			for k := range plain {
				if plain[k].Extra != nil {
					t.Fatalf("record %d: Extra read without Options.Extra: %+v", k, plain[k].Extra)
				}
				w := wide[k]
				w.Extra = nil
				if w != plain[k] {
					t.Fatalf("record %d: the rule's columns differ with Extra:\n%+v\n%+v", k, w, plain[k])
				}
			}
			if wide[0].Extra == nil {
				t.Fatal("no Extra read")
			}
			tc.check(t, wide[0].Extra)
		})
	}
}
