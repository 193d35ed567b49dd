package signin

import "testing"

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
