package opstate

import (
	"testing"
	"time"
)

func TestLateFinalWatermark(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	src := Source{Blob: "c/b", LastModified: t0.Add(3 * time.Hour)}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"a row 2h before its blob is on time with 2h lateness", src.Late(t0.Add(time.Hour), 2*time.Hour), false},
		{"a row 2h1s before its blob is late", src.Late(t0.Add(time.Hour-time.Second), 2*time.Hour), true},
		{"lateness 0 makes nothing late (a backfill)", src.Late(t0.Add(-100*time.Hour), 0), false},
		{"a pane ending 10:00 with 30m lateness is open at watermark 10:30", Final(t0, 30*time.Minute, t0.Add(30*time.Minute)), false},
		{"... and final just after", Final(t0, 30*time.Minute, t0.Add(30*time.Minute+time.Nanosecond)), true},
		{"the oldest pending blob holds the watermark back", Watermark(t0.Add(5*time.Hour), []time.Time{t0.Add(4 * time.Hour), t0.Add(2 * time.Hour)}).Equal(t0.Add(2 * time.Hour)), true},
		{"nothing pending: the store's clock", Watermark(t0, nil).Equal(t0), true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v", tt.name, tt.got)
		}
	}
	if a, b := (Source{Blob: "x", Generation: 1}).Key(), (Source{Blob: "x", Generation: 2}).Key(); a == b {
		t.Error("a rewritten blob's extracts must not share a name with the old ones")
	}
	if h, ok := ParseHourPath(HourPath(t0)); !ok || !h.Equal(t0) {
		t.Errorf("hour path round trip: %s %v", h, ok)
	}
}
