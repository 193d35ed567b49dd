// Package detect is the rule itself: the candidate filters and the windowed
// join of interactive and non-interactive sign-ins. It does no I/O.
package detect

import "time"

// Result is one row of the rule's final project, in the query's column order,
// plus the two source rows' Ids (not output columns) for alert ids and dedup.
type Result struct {
	NISignInTime          time.Time
	InteractiveTime       time.Time
	UserPrincipalName     string
	AppDisplayName        string // the non-interactive row's
	NIIPAddress           string
	NICountry             string
	InteractiveIP         string
	InteractiveCountry    string
	CorrelationId         string // the non-interactive row's
	UniqueTokenIdentifier string
	TimeSinceInteractive  time.Duration

	InteractiveId    string `json:"-"`
	NonInteractiveId string `json:"-"`
}

// Columns are the result's column names in output order.
var Columns = []string{
	"NISignInTime", "InteractiveTime", "UserPrincipalName", "AppDisplayName",
	"NIIPAddress", "NICountry", "InteractiveIP", "InteractiveCountry",
	"CorrelationId", "UniqueTokenIdentifier", "TimeSinceInteractive",
}
