package signin

import (
	"fmt"
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

// ExtraColumns returns the columns read into Record.Extra when
// Options.Extra is set, when present; they are optional like
// OptionalColumns, and a value of a type they cannot be read as (a
// Parquet boolean IsThroughGlobalSecureAccess, say) reads as "": the
// precision modes keep a pair whose columns they cannot read.
func ExtraColumns() []string {
	return []string{ColSessionId, ColAutonomousSystemNumber, ColNetworkLocationDetails, ColIsThroughGlobalSecureAccess,
		ColAppId, ColLocationDetails, ColDeviceDetail, ColTokenProtectionStatusDetails}
}
