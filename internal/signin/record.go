package signin

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"time"
)

// Table names one of the two Log Analytics sign-in tables.
type Table int

const (
	// Interactive is SigninLogs.
	Interactive Table = iota
	// NonInteractive is AADNonInteractiveUserSignInLogs.
	NonInteractive
)

// String returns the Log Analytics table name.
func (t Table) String() string {
	switch t {
	case Interactive:
		return "SigninLogs"
	case NonInteractive:
		return "AADNonInteractiveUserSignInLogs"
	}
	return fmt.Sprintf("Table(%d)", int(t))
}

// Short returns the short name used in state paths and flags.
func (t Table) Short() string {
	switch t {
	case Interactive:
		return "interactive"
	case NonInteractive:
		return "noninteractive"
	}
	return fmt.Sprintf("table%d", int(t))
}

// Record is one sign-in row, holding only the columns the rule uses.
// A null or absent string column reads as "" (as in KQL).
type Record struct {
	TimeGenerated     time.Time // UTC
	UserPrincipalName string
	IPAddress         string
	Location          string
	// ResultType is the column as text; a numeric column holding 0 reads as "0".
	ResultType string
	// AuthenticationRequirement and ConditionalAccessStatus are read for SigninLogs only.
	AuthenticationRequirement string
	ConditionalAccessStatus   string

	// Optional columns: "" when the export lacks them.
	AppDisplayName        string
	CorrelationId         string
	UniqueTokenIdentifier string
	Id                    string

	// Extra holds the columns the precision modes read (internal/precision);
	// nil unless the scan asked for them (Options.Extra), so exact mode
	// carries one nil pointer per record and decodes nothing more.
	Extra *Extra
}

// Extra is the columns of a sign-in that bind a non-interactive row to an
// interactive one beyond the user (session, network, device), read only
// when a precision mode is on. Each is the column's text as exported: ""
// when absent or null; the dynamic ones (NetworkLocationDetails,
// LocationDetails, DeviceDetail, TokenProtectionStatusDetails) as JSON
// text; AutonomousSystemNumber as its decimal text, however it is typed;
// IsThroughGlobalSecureAccess as "true" or "false".
type Extra struct {
	SessionId                    string
	AutonomousSystemNumber       string
	NetworkLocationDetails       string
	IsThroughGlobalSecureAccess  string
	AppId                        string
	LocationDetails              string
	DeviceDetail                 string
	TokenProtectionStatusDetails string
	// Read for a tuned rule that names them (kql.Plan.Columns).
	ClientAppUsed       string
	ResourceDisplayName string
	UserAgent           string
}

// Column names, as in the Log Analytics tables.
const (
	ColTimeGenerated             = "TimeGenerated"
	ColUserPrincipalName         = "UserPrincipalName"
	ColIPAddress                 = "IPAddress"
	ColLocation                  = "Location"
	ColResultType                = "ResultType"
	ColAuthenticationRequirement = "AuthenticationRequirement"
	ColConditionalAccessStatus   = "ConditionalAccessStatus"
	ColAppDisplayName            = "AppDisplayName"
	ColCorrelationId             = "CorrelationId"
	ColUniqueTokenIdentifier     = "UniqueTokenIdentifier"
	ColId                        = "Id"

	// The precision modes' columns (Extra).
	ColSessionId                    = "SessionId"
	ColAutonomousSystemNumber       = "AutonomousSystemNumber"
	ColNetworkLocationDetails       = "NetworkLocationDetails"
	ColIsThroughGlobalSecureAccess  = "IsThroughGlobalSecureAccess"
	ColAppId                        = "AppId"
	ColLocationDetails              = "LocationDetails"
	ColDeviceDetail                 = "DeviceDetail"
	ColTokenProtectionStatusDetails = "TokenProtectionStatusDetails"

	// Columns a tuned rule may read (Extra, with the above).
	ColClientAppUsed       = "ClientAppUsed"
	ColResourceDisplayName = "ResourceDisplayName"
	ColUserAgent           = "UserAgent"
)

// RequiredColumns returns the columns an export of t must have.
func RequiredColumns(t Table) []string {
	cols := []string{ColTimeGenerated, ColUserPrincipalName, ColIPAddress, ColLocation, ColResultType}
	if t == Interactive {
		cols = append(cols, ColAuthenticationRequirement, ColConditionalAccessStatus)
	}
	return cols
}

// OptionalColumns returns the columns read when present; absent ones read as "".
func OptionalColumns(t Table) []string {
	return []string{ColAppDisplayName, ColCorrelationId, ColUniqueTokenIdentifier, ColId}
}

// Key identifies a record for dedup (DESIGN.md 2: exports may contain the
// same record twice). An export retry writes the record again, identical;
// but real SigninLogs also repeat an Id with different content (Microsoft's
// demo tenant: the same Id with two AuthenticationRequirement values), and
// KQL's join counts both rows. So two records are one only when they have
// the same non-empty Id and the same content in every column read.
type Key struct {
	Id  string
	Sum uint64 // a hash of the other columns
}

// keySeed seeds Key.Sum: keys live in memory only, within one process.
var keySeed = maphash.MakeSeed()

// Key returns r's dedup key; ok is false for a record without an Id, which
// is never a duplicate of another.
func (r *Record) Key() (k Key, ok bool) {
	if r.Id == "" {
		return Key{}, false
	}
	var h maphash.Hash
	h.SetSeed(keySeed)
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(r.TimeGenerated.UnixNano()))
	h.Write(t[:])
	for _, s := range [...]string{r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType, r.AuthenticationRequirement,
		r.ConditionalAccessStatus, r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier} {
		h.WriteString(s)
		h.WriteByte(0) // "ab","c" is not "a","bc"
	}
	return Key{r.Id, h.Sum64()}, true
}

// ExtraColumns returns the columns read into Record.Extra when
// Options.Extra is set, when present; they are optional like
// OptionalColumns, and a value of a type they cannot be read as (a
// Parquet boolean IsThroughGlobalSecureAccess, say) reads as "": the
// precision modes keep a pair whose columns they cannot read.
func ExtraColumns() []string {
	return []string{ColSessionId, ColAutonomousSystemNumber, ColNetworkLocationDetails, ColIsThroughGlobalSecureAccess,
		ColAppId, ColLocationDetails, ColDeviceDetail, ColTokenProtectionStatusDetails,
		ColClientAppUsed, ColResourceDisplayName, ColUserAgent}
}
