// Package precision holds tokenpivot's opt-in precision modes: pure
// post-filters on the rule's exact result pairs that drop pairs the
// columns beyond the rule's show to be benign (another device's session,
// the same network, Microsoft's own service egress, a trusted network).
//
// Guarantees, for every mode and every input:
//   - rows(mode) ⊆ rows(exact): a mode only removes result rows; Exact
//     removes none and reads no extra column.
//   - fail open: a test whose column is absent or empty on either side (a
//     SessionId, an ASN, a list) never suppresses the pair; the pair is
//     kept as exact keeps it, and Stats counts what could not be tested.
//   - never the interactive side's network: an AiTM victim signs in from
//     anywhere, so trusted networks and Global Secure Access are honoured
//     on the non-interactive row only.
//
// Every suppressed pair has one Reason (the first test that fires, in the
// order of Reasons), counted in Stats so a SOC can audit what a mode hides;
// every kept pair has Features saying what the tests saw.
package precision

import (
	"fmt"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Mode is a precision mode.
type Mode int

const (
	// Exact is the Sentinel rule as written: nothing is removed.
	Exact Mode = iota
	// Balanced drops pairs shown benign by session, network, Microsoft
	// service egress, trusted network and bound tokens, keeping every
	// same-session replay and every replay from a hosting/anonymizer ASN.
	Balanced
	// Strict is Balanced without the hosting exemption of the session test,
	// plus plausible velocity within one session: fewer alerts, and the
	// recall losses README states (stale-session replays, same-session
	// replays through a nearby residential proxy).
	Strict
)

// Modes are the modes by name, in order.
var Modes = []Mode{Exact, Balanced, Strict}

func (m Mode) String() string {
	switch m {
	case Exact:
		return "exact"
	case Balanced:
		return "balanced"
	case Strict:
		return "strict"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// On reports whether the mode filters (reads the extra columns).
func (m Mode) On() bool { return m != Exact }

// Columns returns the extra columns (signin.ExtraColumns) the mode's tests
// read, for signin.Options.Extra: none for Exact; Strict adds the wide
// LocationDetails and DeviceDetail its velocity and bound-token tests need.
func (m Mode) Columns() []string {
	switch m {
	case Balanced:
		return []string{signin.ColSessionId, signin.ColAutonomousSystemNumber, signin.ColNetworkLocationDetails,
			signin.ColIsThroughGlobalSecureAccess, signin.ColAppId}
	case Strict:
		return []string{signin.ColSessionId, signin.ColAutonomousSystemNumber, signin.ColNetworkLocationDetails,
			signin.ColIsThroughGlobalSecureAccess, signin.ColAppId, signin.ColLocationDetails, signin.ColDeviceDetail,
			signin.ColTokenProtectionStatusDetails}
	}
	return nil
}

// ParseMode reads a mode name; "" is Exact.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "exact":
		return Exact, nil
	case "balanced":
		return Balanced, nil
	case "strict":
		return Strict, nil
	}
	return Exact, fmt.Errorf("precision mode %q: want exact, balanced or strict", s)
}

// Reason says why a pair was suppressed.
type Reason string

// The reasons, in the order the tests run (the first that fires names the
// suppression).
const (
	// ReasonTrustedNetwork (M6): the non-interactive row came from a
	// trusted named location or through Global Secure Access.
	ReasonTrustedNetwork Reason = "trusted-network"
	// ReasonMicrosoftService (M5): the non-interactive row is a first-party
	// service app from Microsoft 365 service ranges.
	ReasonMicrosoftService Reason = "microsoft-365-service"
	// ReasonEmptyCountry (M1): one side's country is empty, and both rows
	// are on one non-hosting network: no country change is shown.
	ReasonEmptyCountry Reason = "empty-country-same-network"
	// ReasonSameNetwork (M3): both rows are on one non-hosting ASN (CGNAT,
	// mobile IP rotation, dual stack, geo-IP disagreement).
	ReasonSameNetwork Reason = "same-network"
	// ReasonSameIPv6Network (M4): both addresses in one IPv6 /64.
	ReasonSameIPv6Network Reason = "same-ipv6-64"
	// ReasonBoundToken (M8, Strict): the non-interactive token is bound to
	// the interactive row's device.
	ReasonBoundToken Reason = "bound-token-same-device"
	// ReasonOtherSession (M2): the rows are two different sessions (another
	// device of the user) and the non-interactive row is not from a
	// hosting/anonymizer network (Strict: from any network).
	ReasonOtherSession Reason = "other-session"
	// ReasonPlausibleVelocity (M7, Strict): one session, a non-hosting
	// network, and a move under 500 km or slower than 800 km/h.
	ReasonPlausibleVelocity Reason = "plausible-velocity"
)

// Reasons lists every reason in test order.
var Reasons = []Reason{ReasonTrustedNetwork, ReasonMicrosoftService, ReasonEmptyCountry, ReasonSameNetwork,
	ReasonSameIPv6Network, ReasonBoundToken, ReasonOtherSession, ReasonPlausibleVelocity}

// Features are what the tests saw of a pair, recorded on kept evidence so an
// analyst sees why the mode kept it. "" means unknown (the column was
// absent or empty on a side).
type Features struct {
	SameSession    string `json:"sameSession,omitempty"` // "yes", "no" or ""
	InteractiveASN string `json:"interactiveAsn,omitempty"`
	NIASN          string `json:"niAsn,omitempty"`
	NIHosting      bool   `json:"niHosting,omitempty"`
	// Unknown lists the tests that could not run for want of a column
	// (failing open).
	Unknown []string `json:"unknown,omitempty"`
}

// Verdict is a mode's decision on one pair.
type Verdict struct {
	Keep     bool
	Reason   Reason // when !Keep
	Features Features
}

// Filter applies a mode with its reference lists.
type Filter struct {
	Mode  Mode
	Lists *Lists
}

// New returns the filter of mode m with lists l (nil: the bundled lists).
func New(m Mode, l *Lists) *Filter {
	if l == nil {
		l = Bundled()
	}
	return &Filter{Mode: m, Lists: l}
}

// Decide is the mode's decision on result row r, given the extra columns of
// its interactive (i) and non-interactive (n) rows; nil is a row without
// them (every test it needs fails open).
func (f *Filter) Decide(r *detect.Result, i, n *signin.Extra) Verdict {
	if f == nil || !f.Mode.On() {
		return Verdict{Keep: true}
	}
	var ie, ne signin.Extra
	if i != nil {
		ie = *i
	}
	if n != nil {
		ne = *n
	}
	p := pairOf(r, &ie, &ne, f.Lists)
	v := Verdict{Keep: true, Features: p.features()}
	for _, t := range tests {
		if t.strictOnly && f.Mode != Strict {
			continue
		}
		fire, known := t.fn(p, f.Mode)
		if !known {
			v.Features.Unknown = append(v.Features.Unknown, string(t.reason))
			continue
		}
		if fire {
			return Verdict{Reason: t.reason, Features: v.Features}
		}
	}
	return v
}

// Stats counts a mode's decisions.
type Stats struct {
	Mode       Mode
	Pairs      int            // exact result rows seen
	Kept       int            // rows the mode kept
	Suppressed map[Reason]int // rows dropped, by reason
	// FailOpen counts, per test, the pairs it could not test (a column
	// absent or empty on a side): they were kept as far as it goes.
	FailOpen map[Reason]int
}

// Add counts one verdict.
func (s *Stats) Add(v Verdict) {
	s.Pairs++
	if v.Keep {
		s.Kept++
	} else {
		if s.Suppressed == nil {
			s.Suppressed = map[Reason]int{}
		}
		s.Suppressed[v.Reason]++
	}
	for _, u := range v.Features.Unknown {
		if s.FailOpen == nil {
			s.FailOpen = map[Reason]int{}
		}
		s.FailOpen[Reason(u)]++
	}
}

// Merge adds o's counts to s.
func (s *Stats) Merge(o Stats) {
	s.Pairs += o.Pairs
	s.Kept += o.Kept
	for r, n := range o.Suppressed {
		if s.Suppressed == nil {
			s.Suppressed = map[Reason]int{}
		}
		s.Suppressed[r] += n
	}
	for r, n := range o.FailOpen {
		if s.FailOpen == nil {
			s.FailOpen = map[Reason]int{}
		}
		s.FailOpen[r] += n
	}
}

// String is the one-line summary commands log: the mode, the pairs kept of
// the exact pairs, and the suppressed and untestable pairs by reason.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "precision %s: kept %d of %d exact pairs", s.Mode, s.Kept, s.Pairs)
	sep := "; suppressed"
	for _, r := range Reasons {
		if n := s.Suppressed[r]; n > 0 {
			fmt.Fprintf(&b, "%s %s=%d", sep, r, n)
			sep = ","
		}
	}
	sep = "; could not test (kept)"
	for _, r := range Reasons {
		if n := s.FailOpen[r]; n > 0 {
			fmt.Fprintf(&b, "%s %s=%d", sep, r, n)
			sep = ","
		}
	}
	return b.String()
}
