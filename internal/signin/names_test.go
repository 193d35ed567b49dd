package signin

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"testing"
)

func TestIsExportName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"workspaceId=w/jobId=j/timestamp=2026-11-20T10/0b7c.gz.parquet", true},
		{"am-signinlogs/WorkspaceResourceId=/x/y=2026/m=11/d=20/h=10/m=05/PT05M.json", true},
		{"PT05M_1.json", true},
		{"a.JSONL", true},
		{"x.ndjson", true},
		{"export.json.gz", true},
		{"README.txt", false},
		{"_SUCCESS", false},
		{"dir/_committed_123", false},
		{"dir/.part-0.parquet.crc", false},
		{"dir/.hidden.json", false},
		{"notes.md", false},
		{"data.csv", false},
		{".json", false},
		{"noext", false},
	} {
		if got := IsExportName(tc.name); got != tc.want {
			t.Errorf("IsExportName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Scan says which format it found, from the content alone.
func TestScanReportsFormat(t *testing.T) {
	plain, err := os.ReadFile("../../testdata/readers/signinlogs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	pq, err := os.ReadFile("../../testdata/readers/signinlogs-duckdb-zstd.parquet")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want Format
	}{{"x.parquet", plain, JSONLines}, {"x.json", gz.Bytes(), GzipJSONLines}, {"x.json", pq, Parquet}, {"empty.json", nil, ""}} {
		st, err := Scan(context.Background(), bytes.NewReader(tc.data), int64(len(tc.data)), Options{Name: tc.name, Table: Interactive, Final: true}, func([]Record) error { return nil })
		if err != nil || st.Format != tc.want {
			t.Errorf("%s holding %q: format %q, %v; want %q", tc.name, tc.want, st.Format, err, tc.want)
		}
	}
}
