package pipeline

import (
	"slices"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// TestReach: the other table's hours a candidate's hour pairs with, for
// windows that end on an hour and ones that do not (a tuned 1m .. 10m:
// an interactive sign-in at 08:58 pairs with one at 09:08).
func TestReach(t *testing.T) {
	h := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	hr := func(k int) time.Time { return h.Add(time.Duration(k) * time.Hour) }
	for _, tt := range []struct {
		gap  time.Duration
		tbl  signin.Table
		want []time.Time
	}{
		{2 * time.Hour, signin.Interactive, []time.Time{hr(0), hr(1), hr(2)}},
		{2 * time.Hour, signin.NonInteractive, []time.Time{hr(0), hr(-1), hr(-2)}},
		{10 * time.Minute, signin.Interactive, []time.Time{hr(0), hr(1)}},
		{10 * time.Minute, signin.NonInteractive, []time.Time{hr(0), hr(-1)}},
		{150 * time.Minute, signin.Interactive, []time.Time{hr(0), hr(1), hr(2), hr(3)}},
		{0, signin.Interactive, []time.Time{hr(0)}},
	} {
		if got := reach(tt.tbl, h, tt.gap); !slices.Equal(got, tt.want) {
			t.Errorf("reach(%v, %s): %v, want %v", tt.tbl, tt.gap, got, tt.want)
		}
	}
}
