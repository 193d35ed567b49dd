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
