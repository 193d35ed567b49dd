package kql

import (
	"strconv"
	"strings"
	"time"
)

// Kind is a value's KQL type.
type Kind int

// The kinds of value the subset computes with. A string is never null in
// KQL (a missing one is ""); a bool can be (a comparison with a null).
const (
	KNull Kind = iota
	KBool
	KLong
	KReal
	KString
	KDatetime
	KTimespan
	KDynamic // a list (List), or an object or array read from JSON (S: its text)
)

// Value is one KQL value.
type Value struct {
	Kind Kind
	B    bool
	I    int64
	F    float64
	S    string
	T    time.Time
	D    time.Duration
	List []Value
}

// Str is a string value.
func Str(s string) Value { return Value{Kind: KString, S: s} }

// Bool is a bool value.
func Bool(b bool) Value { return Value{Kind: KBool, B: b} }

var null = Value{Kind: KNull}

// True reports whether v is the bool true (null and false are not).
func (v Value) True() bool { return v.Kind == KBool && v.B }

// Text is v as tostring() gives it: "" for null, times in RFC 3339 UTC,
// timespans as KQL prints them.
func (v Value) Text() string {
	switch v.Kind {
	case KNull:
		return ""
	case KBool:
		return strconv.FormatBool(v.B)
	case KLong:
		return strconv.FormatInt(v.I, 10)
	case KReal:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case KString:
		return v.S
	case KDatetime:
		return v.T.UTC().Format(time.RFC3339Nano)
	case KTimespan:
		return FormatTimespan(v.D)
	case KDynamic:
		if jsonObject(v) {
			return v.S
		}
		var parts []string
		for _, e := range v.List {
			if e.Kind == KString {
				parts = append(parts, strconv.Quote(e.S))
			} else {
				parts = append(parts, e.Text())
			}
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}

// String is v as a KQL literal, for plans and messages.
func (v Value) String() string {
	switch v.Kind {
	case KNull:
		return "null"
	case KString:
		return strconv.Quote(v.S)
	case KDatetime:
		return "datetime(" + v.Text() + ")"
	case KTimespan:
		return formatDuration(v.D)
	case KDynamic:
		if jsonObject(v) {
			return "dynamic(" + v.S + ")"
		}
		var parts []string
		for _, e := range v.List {
			parts = append(parts, e.String())
		}
		return "dynamic([" + strings.Join(parts, ", ") + "])"
	}
	return v.Text()
}

// formatDuration writes a timespan as a KQL literal: 2h, 90s, 1m.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	if d == 0 {
		return "0s"
	}
	return "timespan(" + FormatTimespan(d) + ")"
}

// FormatTimespan renders d as KQL prints a timespan: [-][d.]hh:mm:ss, and
// when there is a sub-second part, exactly 7 fractional digits (the same
// form as the result column's TimeSinceInteractive: detect.FormatTimespan is
// this function).
func FormatTimespan(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	const tick = 100 * time.Nanosecond
	u := uint64(d) / uint64(tick)
	ticksPerSec := uint64(time.Second / tick)
	frac := u % ticksPerSec
	secs := u / ticksPerSec
	days := secs / 86400
	secs %= 86400
	if days > 0 {
		b.WriteString(strconv.FormatUint(days, 10))
		b.WriteByte('.')
	}
	two := func(n uint64) {
		if n < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.FormatUint(n, 10))
	}
	two(secs / 3600)
	b.WriteByte(':')
	two(secs % 3600 / 60)
	b.WriteByte(':')
	two(secs % 60)
	if frac > 0 {
		s := strconv.FormatUint(frac, 10)
		b.WriteByte('.')
		b.WriteString(strings.Repeat("0", 7-len(s)))
		b.WriteString(s)
	}
	return b.String()
}
