package rule

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ParseDuration reads the durations found in Sentinel rule YAML: the short
// forms of queryFrequency and queryPeriod ("5m", "1h", "1d", and anything
// time.ParseDuration accepts, such as "1h30m") and ISO 8601 durations as in
// lookbackDuration ("PT5H", "P1D", "PT30M", "P1DT2H", "P1W", "PT1.5S").
// Years and months are rejected: they have no fixed length. Negative
// durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var d time.Duration
	var err error
	if s[0] == 'P' || s[0] == 'p' {
		d, err = parseISODuration(s)
	} else if strings.HasSuffix(s, "d") && isDecimal(s[:len(s)-1]) {
		d, err = scaled(s[:len(s)-1], "h", 24)
	} else if d, err = time.ParseDuration(s); err != nil {
		err = errors.New("not a duration (use e.g. 5m, 1h, 1d or PT5H)")
	}
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %v", s, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return d, nil
}

// parseISODuration reads PnW, PnDTnHnMnS and their subsets.
func parseISODuration(s string) (time.Duration, error) {
	rest := s[1:]
	if rest == "" {
		return 0, errors.New("no components after P")
	}
	var total time.Duration
	inTime := false
	seen := false
	for rest != "" {
		if rest[0] == 'T' || rest[0] == 't' {
			if inTime {
				return 0, errors.New("the time designator T appears twice")
			}
			inTime = true
			rest = rest[1:]
			if rest == "" {
				return 0, errors.New("no components after T")
			}
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == len(rest) {
			return 0, fmt.Errorf("number %q has no unit", rest)
		}
		num := strings.ReplaceAll(rest[:i], ",", ".")
		if !isDecimal(num) {
			return 0, fmt.Errorf("%q is not a number", rest[:i+1])
		}
		unit := rest[i] | 0x20 // lower case
		rest = rest[i+1:]
		var part time.Duration
		var err error
		switch {
		case !inTime && unit == 'w':
			part, err = scaled(num, "h", 7*24)
		case !inTime && unit == 'd':
			part, err = scaled(num, "h", 24)
		case !inTime && (unit == 'y' || unit == 'm'):
			return 0, errors.New("years and months have no fixed length; use days")
		case inTime && unit == 'h':
			part, err = scaled(num, "h", 1)
		case inTime && unit == 'm':
			part, err = scaled(num, "m", 1)
		case inTime && unit == 's':
			part, err = scaled(num, "s", 1)
		default:
			return 0, fmt.Errorf("unknown unit %q", string(rune(unit)))
		}
		if err != nil {
			return 0, err
		}
		if total > math.MaxInt64-part {
			return 0, errors.New("too long")
		}
		total += part
		seen = true
	}
	if !seen {
		return 0, errors.New("no components")
	}
	return total, nil
}

// scaled returns num units (a Go duration unit) times mult.
func scaled(num, unit string, mult int64) (time.Duration, error) {
	d, err := time.ParseDuration(num + unit)
	if err != nil {
		return 0, errors.New("too long")
	}
	if int64(d) > math.MaxInt64/mult {
		return 0, errors.New("too long")
	}
	return d * time.Duration(mult), nil
}

// isDecimal reports whether s is digits with at most one '.' and a digit.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
