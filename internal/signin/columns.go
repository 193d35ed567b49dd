package signin

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	parquetMagic     = "PAR1"
	defaultBatchSize = 8192
)

// errMissingColumn is wrapped by the FormatError of a required column the
// file does not have.
var errMissingColumn = errors.New("required column is missing")

// field identifies one Record column a reader fills.
type field int

const (
	fTimeGenerated field = iota
	fUserPrincipalName
	fIPAddress
	fLocation
	fResultType
	fAuthenticationRequirement
	fConditionalAccessStatus
	fAppDisplayName
	fCorrelationId
	fUniqueTokenIdentifier
	fId
	// The precision modes' columns (Record.Extra), read with Options.Extra.
	fSessionId
	fAutonomousSystemNumber
	fNetworkLocationDetails
	fIsThroughGlobalSecureAccess
	fAppId
	fLocationDetails
	fDeviceDetail
	fTokenProtectionStatusDetails
	// Columns a tuned rule's query may read (internal/kql), read the same way.
	fClientAppUsed
	fResourceDisplayName
	fUserAgent
	numFields
)

// firstExtra is the first field of Record.Extra.
const firstExtra = fSessionId

// extra tells the fields of Record.Extra.
func (f field) extra() bool { return f >= firstExtra }

var fieldNames = [numFields]string{
	ColTimeGenerated, ColUserPrincipalName, ColIPAddress, ColLocation, ColResultType,
	ColAuthenticationRequirement, ColConditionalAccessStatus,
	ColAppDisplayName, ColCorrelationId, ColUniqueTokenIdentifier, ColId,
	ColSessionId, ColAutonomousSystemNumber, ColNetworkLocationDetails, ColIsThroughGlobalSecureAccess,
	ColAppId, ColLocationDetails, ColDeviceDetail, ColTokenProtectionStatusDetails,
	ColClientAppUsed, ColResourceDisplayName, ColUserAgent,
}

// filter tells the columns Options.Keep may look at (with TimeGenerated,
// always decoded first); the others are decoded only for kept rows.
// Location is one: the join needs a different country as well as a
// different IP, and a country column is a small dictionary, so testing it
// before the wide columns keeps roaming-free rows from being decoded.
func (f field) filter() bool {
	switch f {
	case fResultType, fAuthenticationRequirement, fConditionalAccessStatus, fIPAddress, fUserPrincipalName, fLocation:
		return true
	}
	return false
}

// interned tells the low-cardinality columns whose values repeat across rows,
// so one string per distinct value saves an allocation per row.
func (f field) interned() bool {
	switch f {
	case fCorrelationId, fUniqueTokenIdentifier, fId, fTimeGenerated, fSessionId:
		return false
	}
	return true
}

// wanted returns the fields read for table t and whether each is required;
// with extra, those fields of Record.Extra too (unknown names are ignored).
func wanted(t Table, extra []string) (fields []field, required [numFields]bool) {
	for _, c := range RequiredColumns(t) {
		f := fieldByName(c)
		fields = append(fields, f)
		required[f] = true
	}
	for _, c := range OptionalColumns(t) {
		fields = append(fields, fieldByName(c))
	}
	for _, c := range ExtraColumns() {
		if slices.Contains(extra, c) {
			fields = append(fields, fieldByName(c))
		}
	}
	return fields, required
}

func fieldByName(name string) field {
	for i, n := range fieldNames {
		if n == name {
			return field(i)
		}
	}
	panic("signin: unknown column " + name)
}

// setString stores v into the string field f of rec.
func (rec *Record) setString(f field, v string) {
	switch f {
	case fUserPrincipalName:
		rec.UserPrincipalName = v
	case fIPAddress:
		rec.IPAddress = v
	case fLocation:
		rec.Location = v
	case fResultType:
		rec.ResultType = v
	case fAuthenticationRequirement:
		rec.AuthenticationRequirement = v
	case fConditionalAccessStatus:
		rec.ConditionalAccessStatus = v
	case fAppDisplayName:
		rec.AppDisplayName = v
	case fCorrelationId:
		rec.CorrelationId = v
	case fUniqueTokenIdentifier:
		rec.UniqueTokenIdentifier = v
	case fId:
		rec.Id = v
	default:
		if f.extra() {
			rec.setExtra(f, v)
		}
	}
}

// setExtra stores v into the Record.Extra field f, allocating Extra on the
// first value of a record (a record without any keeps a nil Extra).
func (rec *Record) setExtra(f field, v string) {
	if v == "" {
		return
	}
	if rec.Extra == nil {
		rec.Extra = new(Extra)
	}
	e := rec.Extra
	switch f {
	case fSessionId:
		e.SessionId = v
	case fAutonomousSystemNumber:
		e.AutonomousSystemNumber = v
	case fNetworkLocationDetails:
		e.NetworkLocationDetails = v
	case fIsThroughGlobalSecureAccess:
		e.IsThroughGlobalSecureAccess = v
	case fAppId:
		e.AppId = v
	case fLocationDetails:
		e.LocationDetails = v
	case fDeviceDetail:
		e.DeviceDetail = v
	case fTokenProtectionStatusDetails:
		e.TokenProtectionStatusDetails = v
	case fClientAppUsed:
		e.ClientAppUsed = v
	case fResourceDisplayName:
		e.ResourceDisplayName = v
	case fUserAgent:
		e.UserAgent = v
	}
}

// parseTime reads an ISO 8601 timestamp as Log Analytics writes it
// ("2026-11-20T10:15:30.1234567Z", up to 9 fractional digits), and as other
// writers do: a space for the T, offsets as +00, +0000 or +00:00 (converted
// to UTC). A time without an offset is taken as UTC, as Kusto datetimes are.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	v := s
	if len(v) > 10 && v[10] == ' ' {
		v = v[:10] + "T" + v[11:]
	}
	// Parsing accepts a fraction after the seconds the layout does not show.
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid ISO 8601 datetime %q", s)
}

var timeLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02T15:04:05",
}

// canonicalInt tells text that is already an integer as strconv writes it.
func canonicalInt(b string) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
		if b == "0" {
			return false
		}
	}
	if b == "" || b[0] == '0' && len(b) > 1 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return true
}

// numericInt reads decimal numeric text ("0.0", "0e0", "50126.0", "+7") with
// an integral value as its integer text; ok is false for anything else
// (fractions, hex, Inf, NaN, words), which has no clear integer meaning.
func numericInt(s string) (string, bool) {
	if canonicalInt(s) {
		return s, true
	}
	digits := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
		default:
			return "", false
		}
	}
	if !digits {
		return "", false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", false
	}
	return floatInt(f)
}

// floatInt is the integer text of an integral float; ok is false for a
// fraction, an infinity, NaN or a value past exact integers.
func floatInt(f float64) (string, bool) {
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

// resultTypeText reads a ResultType cell held as text: numeric text of an
// integral value reads as that integer ("0.0" is "0", success), anything
// else as written.
func resultTypeText(s string) string {
	if canonicalInt(s) {
		return s
	}
	if v, ok := numericInt(s); ok {
		return v
	}
	return s
}

// interner hands out one string per distinct value of a column. Lookups with
// a string that aliases a decoder's buffer do not allocate; the stored copy is
// safe to keep after the buffer is released.
type interner struct {
	m map[string]string
}

// maxInterned bounds the memory an unexpectedly high-cardinality column can
// take; past it the table starts over.
const maxInterned = 1 << 16

func (in *interner) get(b string) string {
	if s, ok := in.m[b]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 256)
	}
	s := strings.Clone(b)
	in.m[s] = s
	return s
}

// getBytes is get for a byte slice; the lookup does not allocate.
func (in *interner) getBytes(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	return in.get(string(b))
}
