package precision

import (
	"encoding/json"
	"math"
	"net/netip"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// pair is what the tests read of one result row, parsed once.
type pair struct {
	r        *detect.Result
	i, n     *signin.Extra
	iASN     string
	nASN     string
	iHosting bool
	nHosting bool
	iIP, nIP netip.Addr
	lists    *Lists
}

func pairOf(r *detect.Result, i, n *signin.Extra, l *Lists) *pair {
	p := &pair{r: r, i: i, n: n, lists: l, iASN: asn(i.AutonomousSystemNumber), nASN: asn(n.AutonomousSystemNumber)}
	p.iHosting = p.iASN != "" && l.Hosting(p.iASN)
	p.nHosting = p.nASN != "" && l.Hosting(p.nASN)
	p.iIP, _ = netip.ParseAddr(r.InteractiveIP)
	p.nIP, _ = netip.ParseAddr(r.NIIPAddress)
	return p
}

func (p *pair) features() Features {
	f := Features{InteractiveASN: p.iASN, NIASN: p.nASN, NIHosting: p.nHosting}
	if p.i.SessionId != "" && p.n.SessionId != "" {
		f.SameSession = "no"
		if p.i.SessionId == p.n.SessionId {
			f.SameSession = "yes"
		}
	}
	return f
}

// asn normalises an ASN cell: "AS8075", " 8075 " and "8075" are one
// network; "", "0" and "-" are unknown.
func asn(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
	if s == "" || s == "0" || s == "-" {
		return ""
	}
	return s
}

// test is one precision test: fn reports whether it fires (suppress) and
// whether it could be evaluated at all (known; false fails open).
type test struct {
	reason     Reason
	strictOnly bool
	fn         func(p *pair, m Mode) (fire, known bool)
}

var tests = []test{
	{ReasonTrustedNetwork, false, trustedNetwork},
	{ReasonMicrosoftService, false, microsoftService},
	{ReasonEmptyCountry, false, emptyCountry},
	{ReasonSameNetwork, false, sameNetwork},
	{ReasonSameIPv6Network, false, sameIPv6Network},
	{ReasonBoundToken, true, boundToken},
	{ReasonOtherSession, false, otherSession},
	{ReasonPlausibleVelocity, true, plausibleVelocity},
}

// trustedNetwork (M6): the non-interactive row came through a trusted
// named location or Global Secure Access. Only the non-interactive side:
// a victim signing in at the trusted office whose cookie is replayed from
// abroad must still alert. namedNetwork is never honoured (block lists are
// named locations too).
func trustedNetwork(p *pair, _ Mode) (bool, bool) {
	gsa := strings.EqualFold(strings.TrimSpace(p.n.IsThroughGlobalSecureAccess), "true")
	if gsa {
		return true, true
	}
	nld := strings.TrimSpace(p.n.NetworkLocationDetails)
	if nld == "" {
		// Without the column nothing is known; GSA "false" alone is a
		// known "not through GSA".
		return false, p.n.IsThroughGlobalSecureAccess != ""
	}
	var details []struct {
		NetworkType string `json:"networkType"`
	}
	if err := json.Unmarshal([]byte(nld), &details); err != nil {
		return false, false
	}
	for _, d := range details {
		switch d.NetworkType {
		case "trustedNamedLocation", "trusted":
			return true, true
		}
	}
	return false, true
}

// microsoftService (M5): a first-party service app's non-interactive row
// from Microsoft 365 service ranges. Both are needed: Azure's ASN and
// Azure VMs host AiTM kits, and FOCI lets a replay use a first-party id.
func microsoftService(p *pair, _ Mode) (bool, bool) {
	if !p.nIP.IsValid() || len(p.lists.M365Ranges) == 0 {
		return false, false
	}
	if !p.lists.M365(p.nIP) {
		return false, true
	}
	if p.n.AppId == "" || len(p.lists.FirstPartyApps) == 0 {
		return false, false
	}
	return p.lists.FirstParty(p.n.AppId), true
}

// emptyCountry (M1): one side's country is empty (an address geo-IP cannot
// place), and both rows are on one non-hosting network.
func emptyCountry(p *pair, _ Mode) (bool, bool) {
	if p.r.NICountry != "" && p.r.InteractiveCountry != "" {
		return false, true
	}
	if p.iASN == "" || p.nASN == "" {
		return false, false
	}
	return p.iASN == p.nASN && !p.nHosting, true
}

// sameNetwork (M3): both rows on one ASN that is not hosting/anonymizer
// (an AiTM proxy and its replay VPS share their provider's global ASN).
func sameNetwork(p *pair, _ Mode) (bool, bool) {
	if p.iASN == "" || p.nASN == "" {
		return false, false
	}
	return p.iASN == p.nASN && !p.nHosting, true
}

// sameIPv6Network (M4): both addresses in one IPv6 /64 (a host's rotating
// temporary addresses).
func sameIPv6Network(p *pair, _ Mode) (bool, bool) {
	if !p.iIP.IsValid() || !p.nIP.IsValid() {
		return false, false
	}
	if !p.iIP.Is6() || !p.nIP.Is6() || p.iIP.Is4In6() || p.nIP.Is4In6() {
		return false, true
	}
	a, _ := p.iIP.Prefix(64)
	return a.Contains(p.nIP), true
}

// boundToken (M8, Strict): the non-interactive sign-in's session is bound
// (token protection) to a device, the interactive row's own. deviceId
// alone is never enough: a stolen PRT keeps it. Strict only: its columns
// (DeviceDetail is wide) cost balanced more CPU than the pairs it removes
// on the labeled tenant (docs/detection-quality.md).
func boundToken(p *pair, _ Mode) (bool, bool) {
	if p.n.TokenProtectionStatusDetails == "" {
		return false, false
	}
	var tp struct {
		SignInSessionStatus string `json:"signInSessionStatus"`
	}
	if json.Unmarshal([]byte(p.n.TokenProtectionStatusDetails), &tp) != nil {
		return false, false
	}
	if tp.SignInSessionStatus != "bound" {
		return false, true
	}
	iDev, nDev := deviceID(p.i.DeviceDetail), deviceID(p.n.DeviceDetail)
	if iDev == "" || nDev == "" {
		return false, false
	}
	return iDev == nDev, true
}

func deviceID(detail string) string {
	if detail == "" {
		return ""
	}
	var d struct {
		DeviceID string `json:"deviceId"`
	}
	if json.Unmarshal([]byte(detail), &d) != nil {
		return ""
	}
	return strings.TrimSpace(d.DeviceID)
}

// otherSession (M2): two different sessions: the non-interactive row is
// another device's or app's, not the interactive sign-in's token. Balanced
// keeps it when the non-interactive row is on a hosting/anonymizer network
// (an attacker replaying an older session's token from a VPS) or when that
// cannot be known; Strict drops it whatever the network.
func otherSession(p *pair, m Mode) (bool, bool) {
	if p.i.SessionId == "" || p.n.SessionId == "" {
		return false, false
	}
	if p.i.SessionId == p.n.SessionId {
		return false, true
	}
	if m == Strict {
		return true, true
	}
	if p.nASN == "" {
		return false, false
	}
	return !p.nHosting, true
}

// plausibleVelocity (M7, Strict): one session, both rows on non-hosting
// networks, and the move is under 500 km or slower than 800 km/h
// (Elastic's and Panther's impossible-travel thresholds): a commuter or a
// neighbouring country's geo-IP, not a replay abroad. Its cost: a replay
// through a residential proxy within plausible travel is dropped.
func plausibleVelocity(p *pair, _ Mode) (bool, bool) {
	if p.i.SessionId == "" || p.n.SessionId == "" || p.nASN == "" || p.iASN == "" {
		return false, false
	}
	if p.i.SessionId != p.n.SessionId || p.nHosting || p.iHosting {
		return false, true
	}
	ia, io, iok := coordinates(p.i.LocationDetails)
	na, no, nok := coordinates(p.n.LocationDetails)
	if !iok || !nok {
		return false, false
	}
	km := haversineKm(ia, io, na, no)
	hours := p.r.TimeSinceInteractive.Hours()
	return km < 500 || (hours > 0 && km/hours < 800), true
}

// coordinates reads LocationDetails.geoCoordinates; ok is false when absent
// (0,0 is taken as absent: Entra writes it for unplaced addresses).
func coordinates(details string) (lat, lon float64, ok bool) {
	if details == "" {
		return 0, 0, false
	}
	var d struct {
		Geo *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
		} `json:"geoCoordinates"`
	}
	if json.Unmarshal([]byte(details), &d) != nil || d.Geo == nil || d.Geo.Latitude == nil || d.Geo.Longitude == nil {
		return 0, 0, false
	}
	if *d.Geo.Latitude == 0 && *d.Geo.Longitude == 0 {
		return 0, 0, false
	}
	return *d.Geo.Latitude, *d.Geo.Longitude, true
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}
