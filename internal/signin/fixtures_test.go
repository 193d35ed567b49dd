package signin

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The committed files under testdata/readers were written by other writers:
// testdata/duckdb/write.mjs (the JSON Lines, then DuckDB's Parquet) and
// tools/mkint96 (Apache Arrow's Go writer, legacy INT96). These are the rows in them, at
// the 100 ns precision of the JSON Lines export.
var (
	fixtureSignins = []Record{
		{time.Date(2026, 11, 20, 10, 15, 30, 123456700, time.UTC), "alice@contoso.com", "203.0.113.7", "US", "0",
			"singleFactorAuthentication", "notApplied", "Microsoft Teams", "7c1e5a2b-3f4d-4b6e-9a8c-1d2e3f4a5b6c",
			"k3Jx9QbZ2EaYt1uVwXy0AA", "f0e1d2c3-b4a5-4968-8776-655443322110", nil},
		{time.Date(2026, 11, 20, 10, 20, 1, 100, time.UTC), "bob@contoso.com", "2001:db8:85a3::8a2e:370:7334", "DE", "50126",
			"multiFactorAuthentication", "notApplied", "Office 365 Exchange Online", "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
			"Zm9vYmFyYmF6cXV4cXV1eA", "1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9", nil},
		{time.Date(2026, 11, 20, 10, 31, 45, 999999900, time.UTC), "józef.nowak@fabrikam.com", "198.51.100.23", "PL", "0",
			"multiFactorAuthentication", "success", "Azure Portal", "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
			"cXV1eGZvb2JhcmJhenF1eA", "9e8d7c6b-5a4f-4e3d-a2c1-b0a9f8e7d6c5", nil},
		// Location is absent from the line and AppDisplayName is null.
		{time.Date(2026, 11, 20, 10, 40, 0, 0, time.UTC), "dave@contoso.com", "192.0.2.44", "", "0",
			"singleFactorAuthentication", "notApplied", "", "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
			"ZGF2ZWRhdmVkYXZlZGF2ZQ", "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", nil},
		{time.Date(2026, 11, 20, 11, 2, 0, 500000000, time.UTC), "alice@contoso.com", "203.0.113.7", "US", "0",
			"singleFactorAuthentication", "notApplied", "Microsoft Outlook", "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b",
			"YWxpY2VhbGljZWFsaWNlYQ", "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a", nil},
	}
	// Non-interactive rows; the conditional access columns are not read.
	fixtureNonInteractive = []Record{
		{time.Date(2026, 11, 20, 10, 45, 12, 765432100, time.UTC), "alice@contoso.com", "45.155.205.10", "RU", "0",
			"", "", "Microsoft Office", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
			"bm9uaW50ZXJhY3RpdmUwMQ", "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e", nil},
		{time.Date(2026, 11, 20, 10, 16, 0, 0, time.UTC), "alice@contoso.com", "203.0.113.7", "US", "0",
			"", "", "Microsoft Teams", "7c1e5a2b-3f4d-4b6e-9a8c-1d2e3f4a5b6c",
			"bm9uaW50ZXJhY3RpdmUwMg", "c3d4e5f6-a7b8-4c9d-8e1f-2a3b4c5d6e7f", nil},
		{time.Date(2026, 11, 20, 10, 50, 0, 10000000, time.UTC), "bob@contoso.com", "2001:db8::5", "FR", "0",
			"", "", "OfficeHome", "d4e5f6a7-b8c9-4d0e-9f2a-3b4c5d6e7f8a",
			"bm9uaW50ZXJhY3RpdmUwMw", "e5f6a7b8-c9d0-4e1f-8a3b-4c5d6e7f8a9b", nil},
		// AppDisplayName is null and UniqueTokenIdentifier absent.
		{time.Date(2026, 11, 20, 11, 59, 59, 999999900, time.UTC), "erin@contoso.com", "203.0.113.99", "NL", "50140",
			"", "", "", "f6a7b8c9-d0e1-4f2a-9b4c-5d6e7f8a9b0c",
			"", "a7b8c9d0-e1f2-4a3b-8c5d-6e7f8a9b0c1d", nil},
	}
)

func roundTime(recs []Record, d time.Duration) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].TimeGenerated = out[i].TimeGenerated.Round(d)
	}
	return out
}

func repeat(recs []Record, n int) []Record {
	var out []Record
	for range n {
		out = append(out, recs...)
	}
	return out
}

func TestScanFixtures(t *testing.T) {
	tests := []struct {
		file  string
		table Table
		want  []Record
	}{
		{"signinlogs.jsonl", Interactive, fixtureSignins},
		{"aadnoninteractive.jsonl", NonInteractive, fixtureNonInteractive},
		{"signinlogs-duckdb-zstd.parquet", Interactive, truncTime(fixtureSignins, time.Microsecond)},
		{"signinlogs-duckdb-ns-gzip.parquet", Interactive, fixtureSignins},
		{"signinlogs-duckdb-dict-600x.parquet", Interactive, repeat(truncTime(fixtureSignins, time.Microsecond), 600)},
		{"signinlogs-arrow-int96.parquet", Interactive, fixtureSignins},
		// DuckDB rounds text cast to TIMESTAMP_MS (11:59:59.9999999 becomes 12:00:00)
		// where its TIMESTAMPTZ cast truncates.
		{"aadnoninteractive-duckdb-ms-snappy.parquet", NonInteractive, roundTime(fixtureNonInteractive, time.Millisecond)},
		{"aadnoninteractive-duckdb-strtime.parquet", NonInteractive, fixtureNonInteractive},
		// A SigninLogs export read as the non-interactive table has every
		// column that table needs, but its Type says what it is: refused
		// (TestWrongTable).
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.table.Short(), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "readers", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range []Options{{}, {BatchSize: 7}} {
				got, st, err := scanAll(tc.file, data, tc.table, opts)
				if err != nil {
					t.Fatal(err)
				}
				diffRecords(t, got, tc.want)
				n := int64(len(tc.want))
				if want := (Stats{Rows: n, Read: n, Consumed: int64(len(data))}); noFormat(st) != want {
					t.Errorf("stats %+v, want %+v", st, want)
				}
			}
		})
	}
}
