package signin

import (
	"errors"
	"fmt"
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
	numFields
)

var fieldNames = [numFields]string{
	ColTimeGenerated, ColUserPrincipalName, ColIPAddress, ColLocation, ColResultType,
	ColAuthenticationRequirement, ColConditionalAccessStatus,
	ColAppDisplayName, ColCorrelationId, ColUniqueTokenIdentifier, ColId,
}

// filter tells the columns Options.Keep may look at (with TimeGenerated,
// always decoded first); the others are
// decoded only for kept rows.
func (f field) filter() bool {
	switch f {
	case fResultType, fAuthenticationRequirement, fConditionalAccessStatus, fIPAddress, fUserPrincipalName:
		return true
	}
	return false
}

// interned tells the low-cardinality columns whose values repeat across rows,
// so one string per distinct value saves an allocation per row.
func (f field) interned() bool {
	switch f {
	case fCorrelationId, fUniqueTokenIdentifier, fId, fTimeGenerated:
		return false
	}
	return true
}

// wanted returns the fields read for table t and whether each is required.
func wanted(t Table) (fields []field, required [numFields]bool) {
	for _, c := range RequiredColumns(t) {
		f := fieldByName(c)
		fields = append(fields, f)
		required[f] = true
	}
	for _, c := range OptionalColumns(t) {
		fields = append(fields, fieldByName(c))
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
	}
}

// parseTime reads an ISO 8601 timestamp as Log Analytics writes it
// ("2026-11-20T10:15:30.1234567Z", up to 9 fractional digits). A time without
// an offset is taken as UTC, as Kusto datetimes are.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid ISO 8601 datetime %q", s)
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
