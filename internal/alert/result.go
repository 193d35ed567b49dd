// Package alert turns the rule's result rows into alert documents shaped like
// Sentinel's SecurityAlert, groups alerts into incidents as the rule's
// incidentConfiguration says, and stores both idempotently in blob storage.
package alert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// resultJSON is a result row as JSON: exactly the query's 11 columns, in
// order (encoding/json keeps struct field order), times in RFC 3339 UTC and
// the timespan as KQL prints it.
type resultJSON struct {
	NISignInTime          string `json:"NISignInTime"`
	InteractiveTime       string `json:"InteractiveTime"`
	UserPrincipalName     string `json:"UserPrincipalName"`
	AppDisplayName        string `json:"AppDisplayName"`
	NIIPAddress           string `json:"NIIPAddress"`
	NICountry             string `json:"NICountry"`
	InteractiveIP         string `json:"InteractiveIP"`
	InteractiveCountry    string `json:"InteractiveCountry"`
	CorrelationId         string `json:"CorrelationId"`
	UniqueTokenIdentifier string `json:"UniqueTokenIdentifier"`
	TimeSinceInteractive  string `json:"TimeSinceInteractive"`
}

func toJSON(r detect.Result) resultJSON {
	return resultJSON{
		NISignInTime:          FormatTime(r.NISignInTime),
		InteractiveTime:       FormatTime(r.InteractiveTime),
		UserPrincipalName:     r.UserPrincipalName,
		AppDisplayName:        r.AppDisplayName,
		NIIPAddress:           r.NIIPAddress,
		NICountry:             r.NICountry,
		InteractiveIP:         r.InteractiveIP,
		InteractiveCountry:    r.InteractiveCountry,
		CorrelationId:         r.CorrelationId,
		UniqueTokenIdentifier: r.UniqueTokenIdentifier,
		TimeSinceInteractive:  FormatTimespan(r.TimeSinceInteractive),
	}
}

func (j resultJSON) result() (detect.Result, error) {
	r := detect.Result{
		UserPrincipalName:     j.UserPrincipalName,
		AppDisplayName:        j.AppDisplayName,
		NIIPAddress:           j.NIIPAddress,
		NICountry:             j.NICountry,
		InteractiveIP:         j.InteractiveIP,
		InteractiveCountry:    j.InteractiveCountry,
		CorrelationId:         j.CorrelationId,
		UniqueTokenIdentifier: j.UniqueTokenIdentifier,
	}
	var err error
	if r.NISignInTime, err = time.Parse(time.RFC3339Nano, j.NISignInTime); err != nil {
		return r, fmt.Errorf("NISignInTime: %q is not an RFC 3339 time", j.NISignInTime)
	}
	if r.InteractiveTime, err = time.Parse(time.RFC3339Nano, j.InteractiveTime); err != nil {
		return r, fmt.Errorf("InteractiveTime: %q is not an RFC 3339 time", j.InteractiveTime)
	}
	r.NISignInTime, r.InteractiveTime = r.NISignInTime.UTC(), r.InteractiveTime.UTC()
	if r.TimeSinceInteractive, err = ParseTimespan(j.TimeSinceInteractive); err != nil {
		return r, fmt.Errorf("TimeSinceInteractive: %v", err)
	}
	return r, nil
}

// FormatTime renders a time as RFC 3339 in UTC, with as many fractional
// digits as it has.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// MarshalResult encodes a result row as one JSON object whose keys are the
// 11 result columns in query order (detect.Columns). The source rows' Ids
// are not columns and are left out.
func MarshalResult(r detect.Result) ([]byte, error) { return marshal(toJSON(r), "") }

// UnmarshalResult decodes a row written by MarshalResult. Unknown keys are
// an error naming them; the Ids stay empty.
func UnmarshalResult(data []byte) (detect.Result, error) {
	var j resultJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return detect.Result{}, fmt.Errorf("result row: %v", err)
	}
	// One row per line: a second object would otherwise be lost silently.
	if _, err := dec.Token(); err != io.EOF {
		return detect.Result{}, fmt.Errorf("result row: text after the row's object (one object per line)")
	}
	r, err := j.result()
	if err != nil {
		return detect.Result{}, fmt.Errorf("result row: %v", err)
	}
	return r, nil
}

// WriteJSONL writes one MarshalResult object per line: the CLI's
// `detect --format jsonl`.
func WriteJSONL(w io.Writer, rs []detect.Result) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range rs {
		if err := enc.Encode(toJSON(r)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads rows written by WriteJSONL; name is used in errors. Blank
// lines are skipped.
func ReadJSONL(name string, rd io.Reader) ([]detect.Result, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var out []detect.Result
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := UnmarshalResult(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

// tick is KQL's timespan resolution.
const tick = 100 * time.Nanosecond

// FormatTimespan renders d as KQL prints a timespan: [-][d.]hh:mm:ss, and
// when there is a sub-second part, exactly 7 fractional digits (100 ns
// ticks; finer precision is truncated): "00:45:00", "01:59:59.9999990",
// "1.02:00:00".
func FormatTimespan(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d // the most negative Duration stays negative but formats fine below via uint64
	}
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
	fmt.Fprintf(&b, "%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if frac > 0 {
		fmt.Fprintf(&b, ".%07d", frac)
	}
	return b.String()
}

// ParseTimespan reads FormatTimespan's text (and KQL's, which may have 1 to
// 7 fractional digits).
func ParseTimespan(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a timespan like 00:45:00 or 1.02:00:00.5000000", s)
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
