package alert

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

func TestFormatTimespan(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{45 * time.Minute, "00:45:00"},
		{time.Minute, "00:01:00"},
		{2*time.Hour - 1000*time.Nanosecond, "01:59:59.9999990"},
		{2*time.Hour - 1*time.Nanosecond, "01:59:59.9999999"}, // truncated to 100 ns ticks
		{1500 * time.Millisecond, "00:00:01.5000000"},
		{26 * time.Hour, "1.02:00:00"},
		{3*24*time.Hour + 5*time.Second + 100*time.Nanosecond, "3.00:00:05.0000001"},
		{0, "00:00:00"},
		{-90 * time.Second, "-00:01:30"},
	}
	for _, tt := range tests {
		got := FormatTimespan(tt.d)
		if got != tt.want {
			t.Errorf("FormatTimespan(%v) = %q, want %q", tt.d, got, tt.want)
		}
		back, err := ParseTimespan(got)
		if err != nil {
			t.Errorf("ParseTimespan(%q): %v", got, err)
		}
		if want := tt.d.Truncate(tick); back != want {
			t.Errorf("ParseTimespan(%q) = %v, want %v", got, back, want)
		}
	}
}

func TestParseTimespan(t *testing.T) {
	good := map[string]time.Duration{
		"00:45:00":      45 * time.Minute,
		"00:00:01.5":    1500 * time.Millisecond,
		"1.00:00:00":    24 * time.Hour,
		"10.23:59:59":   10*24*time.Hour + 23*time.Hour + 59*time.Minute + 59*time.Second,
		"-1.00:00:00.1": -(24*time.Hour + 100*time.Millisecond),
	}
	for s, want := range good {
		if got, err := ParseTimespan(s); err != nil || got != want {
			t.Errorf("ParseTimespan(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "45m", "00:45", "0:45:00", "00:60:00", "24:00:00", "00:00:00.", "00:00:00.12345678", "x.00:00:00", "00:00:0a", "1h"} {
		if d, err := ParseTimespan(s); err == nil {
			t.Errorf("ParseTimespan(%q) = %v, want an error", s, d)
		}
	}
}

func TestMarshalResultColumns(t *testing.T) {
	rows := sampleRows(t)
	b, err := MarshalResult(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	// Keys exactly the 11 columns, in the query's order.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
		if _, ok := v.(string); !ok {
			t.Errorf("column %s is %T, want a string", k, v)
		}
	}
	if !reflect.DeepEqual(keys, detect.Columns) {
		t.Errorf("keys = %q, want %q", keys, detect.Columns)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	want := map[string]string{
		"NISignInTime": "2024-05-01T08:10:00.1234567Z", "InteractiveTime": "2024-05-01T08:00:00Z",
		"UserPrincipalName": r.UserPrincipalName, "AppDisplayName": "Microsoft Office", "NIIPAddress": "198.51.100.20",
		"NICountry": "RU", "InteractiveIP": "203.0.113.10", "InteractiveCountry": "US",
		"CorrelationId": "c-n1", "UniqueTokenIdentifier": "tok-n1", "TimeSinceInteractive": "00:10:00.1234567",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("row = %v\nwant %v", m, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	rows := sampleRows(t)
	rows[1].AppDisplayName = "Teams <preview> & Office"
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Teams <preview> & Office"`) {
		t.Errorf("JSONL escapes text: %s", buf.String())
	}
	if n := strings.Count(buf.String(), "\n"); n != len(rows) {
		t.Fatalf("%d lines for %d rows", n, len(rows))
	}
	back, err := ReadJSONL("rows.jsonl", &buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		want := rows[i]
		want.InteractiveId, want.NonInteractiveId = "", "" // not columns
		if !reflect.DeepEqual(back[i], want) {
			t.Errorf("row %d = %+v\nwant %+v", i, back[i], want)
		}
	}
	_, err = ReadJSONL("bad.jsonl", strings.NewReader(`{"NISignInTime":"2024-05-01T08:10:00Z","InteractiveTime":"2024-05-01T08:00:00Z","TimeSinceInteractive":"10 minutes"}`))
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") || !strings.Contains(err.Error(), "TimeSinceInteractive") {
		t.Errorf("bad timespan: err = %v, want file, line and column", err)
	}
	_, err = ReadJSONL("bad.jsonl", strings.NewReader("\n{\"Extra\":1}\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") || !strings.Contains(err.Error(), "Extra") {
		t.Errorf("unknown key: err = %v, want file, line and key", err)
	}
}

// FuzzTimespan: every duration formats to text that parses back to it (at
// tick precision), and ParseTimespan never panics on arbitrary text.
func FuzzTimespan(f *testing.F) {
	f.Add(int64(45*time.Minute), "01:59:59.9999990")
	f.Add(int64(-26*time.Hour), "1.02:00:00")
	f.Add(int64(math.MinInt64), "-106751.23:47:16.8547758")
	f.Fuzz(func(t *testing.T, n int64, s string) {
		d := time.Duration(n)
		text := FormatTimespan(d)
		back, err := ParseTimespan(text)
		if err != nil {
			t.Fatalf("ParseTimespan(FormatTimespan(%d) = %q): %v", n, text, err)
		}
		if want := d.Truncate(tick); back != want {
			t.Fatalf("%d -> %q -> %d, want %d", n, text, back, want)
		}
		if v, err := ParseTimespan(s); err == nil {
			// Text that parses must mean the same as its canonical form.
			if again, err := ParseTimespan(FormatTimespan(v)); err != nil || again != v {
				t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, FormatTimespan(v), again, err)
			}
		}
	})
}

// Two objects on one line are an error, not one row with the other lost.
func TestReadJSONLRejectsTwoObjectsOnALine(t *testing.T) {
	var b strings.Builder
	row := detect.Result{NISignInTime: time.Date(2026, 11, 20, 10, 45, 0, 0, time.UTC), InteractiveTime: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		UserPrincipalName: "pivot@contoso.com", NIIPAddress: "91.200.1.1", NICountry: "RU", InteractiveIP: "20.1.1.1", InteractiveCountry: "US",
		TimeSinceInteractive: 45 * time.Minute}
	if err := WriteJSONL(&b, []detect.Result{row, row}); err != nil {
		t.Fatal(err)
	}
	joined := strings.Replace(b.String(), "\n", "", 1)
	if _, err := ReadJSONL("expected.jsonl", strings.NewReader(joined)); err == nil || !strings.Contains(err.Error(), "expected.jsonl:1") {
		t.Fatalf("ReadJSONL of two objects on one line: %v, want an error naming line 1", err)
	}
	if rows, err := ReadJSONL("expected.jsonl", strings.NewReader(b.String())); err != nil || len(rows) != 2 {
		t.Fatalf("two lines: %d rows, %v", len(rows), err)
	}
}
