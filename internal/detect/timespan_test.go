package detect

import (
	"math"
	"testing"
	"time"
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
