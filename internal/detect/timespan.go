package detect

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/kql"
)

// FormatTime renders a time as RFC 3339 in UTC, with as many fractional
// digits as it has.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// tick is KQL's timespan resolution.
const tick = 100 * time.Nanosecond

// FormatTimespan renders d as KQL prints a timespan: [-][d.]hh:mm:ss, and
// when there is a sub-second part, exactly 7 fractional digits (100 ns
// ticks; finer precision is truncated): "00:45:00", "01:59:59.9999990",
// "1.02:00:00".
//
// It is kql.FormatTimespan: one rendering for the result column and the
// compiled rule's text.
func FormatTimespan(d time.Duration) string { return kql.FormatTimespan(d) }

// errBadTimespan is ParseTimespan's error for text s.
type errBadTimespan string

func (e errBadTimespan) Error() string {
	return fmt.Sprintf("%q is not a timespan like 00:45:00 or 1.02:00:00.5000000", string(e))
}

// ParseTimespan reads FormatTimespan's text (and KQL's, which may have 1 to
// 7 fractional digits).
func ParseTimespan(s string) (time.Duration, error) {
	bad := errBadTimespan(s)
	rest, neg := strings.CutPrefix(s, "-")
	var days uint64
	if i := strings.IndexByte(rest, '.'); i >= 0 && i < strings.IndexByte(rest, ':') {
		var err error
		if days, err = strconv.ParseUint(rest[:i], 10, 32); err != nil {
			return 0, bad
		}
		rest = rest[i+1:]
	}
	clock, frac, hasFrac := strings.Cut(rest, ".")
	parts := strings.Split(clock, ":")
	if len(parts) != 3 || hasFrac && (len(frac) == 0 || len(frac) > 7) {
		return 0, bad
	}
	var hms [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || len(p) != 2 || i > 0 && v > 59 || i == 0 && v > 23 {
			return 0, bad
		}
		hms[i] = v
	}
	var ticks uint64
	if hasFrac {
		v, err := strconv.ParseUint(frac+strings.Repeat("0", 7-len(frac)), 10, 64)
		if err != nil {
			return 0, bad
		}
		ticks = v
	}
	secs := days*86400 + hms[0]*3600 + hms[1]*60 + hms[2]
	if secs > uint64(1<<63-1)/uint64(time.Second) {
		return 0, bad
	}
	d := time.Duration(secs)*time.Second + time.Duration(ticks)*tick
	if neg {
		d = -d
	}
	return d, nil
}
