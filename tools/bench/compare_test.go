package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Rows as tokenpivot and DuckDB print them: DuckDB always writes six
// fractional digits, Go trims trailing zeros.
const (
	tpRow   = `{"NISignInTime":"2026-11-20T00:24:28.75767Z","InteractiveTime":"2026-11-20T00:03:28.872669Z","UserPrincipalName":"miriam.adams50@contoso.com","AppDisplayName":"One Outlook Web","NIIPAddress":"185.181.63.182","NICountry":"RO","InteractiveIP":"73.89.157.180","InteractiveCountry":"US","CorrelationId":"a5eb26d3-5c80-4a5f-a234-f4de9e4c1afb","UniqueTokenIdentifier":"wc-etYeuY1vv5EHbzCX9Tw","TimeSinceInteractive":"00:20:59.8850010"}`
	duckRow = `{"NISignInTime":"2026-11-20T00:24:28.757670Z","InteractiveTime":"2026-11-20T00:03:28.872669Z","UserPrincipalName":"miriam.adams50@contoso.com","AppDisplayName":"One Outlook Web","NIIPAddress":"185.181.63.182","NICountry":"RO","InteractiveIP":"73.89.157.180","InteractiveCountry":"US","CorrelationId":"a5eb26d3-5c80-4a5f-a234-f4de9e4c1afb","UniqueTokenIdentifier":"wc-etYeuY1vv5EHbzCX9Tw","TimeSinceInteractive":"00:20:59.885001"}`
	other   = `{"NISignInTime":"2026-11-20T00:38:11.904696Z","InteractiveTime":"2026-11-20T00:06:22.183796Z","UserPrincipalName":"grace.wilson43@contoso.com","AppDisplayName":"Outlook Mobile","NIIPAddress":"95.165.248.146","NICountry":"RU","InteractiveIP":"86.150.201.14","InteractiveCountry":"GB","CorrelationId":"c4c37817-134a-4c31-8ec9-114cb620426f","UniqueTokenIdentifier":"l-6dYcMDujInLmPnFsakgA","TimeSinceInteractive":"00:31:49.7209000"}`
)

func TestSameRows(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tp, duck []string
		wantErr  string // "" when equal
		wantRows int
	}{
		{"equal after normalizing times, any order", []string{tpRow, other}, []string{other, duckRow}, "", 2},
		{"both empty", nil, nil, "", 0},
		{"row missing in DuckDB", []string{tpRow, other}, []string{duckRow}, "1 only in tokenpivot, 0 only in DuckDB", 0},
		{"duplicate counts", []string{tpRow, tpRow}, []string{duckRow}, "1 only in tokenpivot", 0},
		{"value differs", []string{tpRow}, []string{strings.Replace(duckRow, `"RO"`, `"RU"`, 1)}, "1 only in tokenpivot, 1 only in DuckDB", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "tp.jsonl"), filepath.Join(dir, "duck.jsonl")
			write(t, a, tc.tp)
			write(t, b, tc.duck)
			n, err := sameRows(a, b)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case n != tc.wantRows:
				t.Fatalf("%d rows, want %d", n, tc.wantRows)
			}
		})
	}
}

func TestSameRowsBadFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "tp.jsonl"), filepath.Join(dir, "duck.jsonl")
	write(t, a, []string{tpRow})
	write(t, b, []string{`{"NISignInTime":"yesterday"}`})
	if _, err := sameRows(a, b); err == nil || !strings.Contains(err.Error(), "duck.jsonl:1") {
		t.Fatalf("error %v, want one naming duck.jsonl:1", err)
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want summary
	}{
		{[]float64{3}, summary{3, 3, 3}},
		{[]float64{5, 1, 3}, summary{3, 1, 5}},
		{[]float64{4, 1, 3, 2}, summary{2.5, 1, 4}},
	} {
		if got := summarize(tc.in); got != tc.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func write(t *testing.T, path string, lines []string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
