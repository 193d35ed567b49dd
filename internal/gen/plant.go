package gen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// spec describes one planted scenario: an interactive sign-in of a user of
// its own, then non-interactive rows at fixed offsets (or, when offsets is
// nil, 1-3 at random offsets inside the rule's window).
type spec struct {
	kind, detail string
	authReq, ca  string
	iResult      *outcome // nil: success
	niResult     *outcome // nil: success
	offsets      []time.Duration
	sameIP       bool // NI from the interactive IP (geolocated elsewhere)
	sameCountry  bool // NI from another IP in the user's own country
	noLocation   bool // NI row's IP could not be placed: Location ""
	ipv6         bool // attacker on IPv6
	upnCase      bool // NI row's UPN differs in case only
	dupNI        bool // the first NI row is repeated in a retry file
}

const (
	single     = "singleFactorAuthentication"
	multi      = "multiFactorAuthentication"
	notApplied = "notApplied"
)

// attackVariants cycle over the Options.Attacks pivots.
var attackVariants = []spec{
	{kind: KindPivot, detail: "single-factor, CA notApplied", authReq: single, ca: notApplied},
	{kind: KindPivot, detail: "MFA, CA notApplied", authReq: multi, ca: notApplied},
	{kind: KindPivot, detail: "single-factor, CA success, IPv6 attacker", authReq: single, ca: "success", ipv6: true},
	{kind: KindPivot, detail: "single-factor, CA notApplied, NI row repeated by export retry", authReq: single, ca: notApplied, dupNI: true},
}

// edgeSet is one look-alike set: boundary hits that match and near misses
// that must not.
var edgeSet = []spec{
	{kind: KindPivot, detail: "boundary: exactly 1m", authReq: single, ca: notApplied, offsets: []time.Duration{time.Minute}},
	{kind: KindPivot, detail: "boundary: exactly 2h", authReq: single, ca: notApplied, offsets: []time.Duration{2 * time.Hour}},
	{kind: KindPivot, detail: `NI Location empty ("" != country)`, authReq: single, ca: notApplied, offsets: []time.Duration{17 * time.Minute}, noLocation: true},
	{kind: "lookalike:59s", detail: "NI 59s after, below the 1m bound", authReq: single, ca: notApplied, offsets: []time.Duration{59 * time.Second}},
	{kind: "lookalike:2h0m1s", detail: "NI 2h0m1s after, above the 2h bound", authReq: single, ca: notApplied, offsets: []time.Duration{2*time.Hour + time.Second}},
	{kind: "lookalike:same-country", detail: "different IP, same country", authReq: single, ca: notApplied, offsets: []time.Duration{20 * time.Minute}, sameCountry: true},
	{kind: "lookalike:same-ip", detail: "different country, same IP", authReq: single, ca: notApplied, offsets: []time.Duration{25 * time.Minute}, sameIP: true},
	{kind: "lookalike:ni-failure", detail: "NI ResultType 50173", authReq: single, ca: notApplied, niResult: niFailures[0], offsets: []time.Duration{15 * time.Minute}},
	{kind: "lookalike:interactive-failure", detail: "interactive ResultType 50126", authReq: single, ca: notApplied, iResult: interactiveFailures[0], offsets: []time.Duration{20 * time.Minute}},
	{kind: "lookalike:mfa-ca-success", detail: "MFA and CA success: not a candidate", authReq: multi, ca: "success", offsets: []time.Duration{30 * time.Minute}},
	{kind: "lookalike:ni-before-interactive", detail: "NI 5m before the interactive sign-in", authReq: single, ca: notApplied, offsets: []time.Duration{-5 * time.Minute}},
	{kind: "lookalike:upn-case", detail: "NI UPN differs in case only", authReq: single, ca: notApplied, offsets: []time.Duration{10 * time.Minute}, upnCase: true},
	{kind: "lookalike:requirement-case", detail: `AuthenticationRequirement "SingleFactorAuthentication", CA success`, authReq: "SingleFactorAuthentication", ca: "success", offsets: []time.Duration{10 * time.Minute}},
}

// IPv6 hosting ranges of attacker countries.
var hosting6 = map[string]netip.Prefix{
	"NL": pfx("2a03:b0c0:2::/48"),
	"SG": pfx("2400:6180:0:d0::/64"),
	"US": pfx("2604:a880:800::/48"),
}

func scenarioUsers(o Options) int { return o.Attacks + o.LookalikeSets*len(edgeSet) }

// plant builds the planted rows (into w.planted) and the pairs they form.
func (w *world) plant(o Options) ([]Planted, []string) {
	r := newRand(o.Seed, streamScenarios)
	var specs []spec
	for i := range o.Attacks {
		specs = append(specs, attackVariants[i%len(attackVariants)])
	}
	for range o.LookalikeSets {
		specs = append(specs, edgeSet...)
	}
	taken := map[int]bool{}
	var planted []Planted
	var skipped []string
	span := time.Duration(o.Hours) * time.Hour
	for _, sp := range specs {
		ui := r.IntN(len(w.users))
		for taken[ui] {
			ui = r.IntN(len(w.users))
		}
		taken[ui] = true
		offsets := sp.offsets
		if offsets == nil {
			hi := min(2*time.Hour, span-time.Second) - time.Minute
			for range 1 + r.IntN(3) {
				offsets = append(offsets, time.Minute+time.Duration(r.Int64N(int64(hi/time.Microsecond)+1))*time.Microsecond)
			}
			slices.Sort(offsets)
		}
		lead := max(0, -slices.Min(offsets))
		tail := max(0, slices.Max(offsets))
		room := span - lead - tail
		if room <= 0 {
			skipped = append(skipped, fmt.Sprintf("%s (%s) needs more than the %s generated", sp.kind, sp.detail, span))
			continue
		}
		start := o.Start.Add(lead).UnixMicro() + r.Int64N(int64(room/time.Microsecond))
		u := &w.users[ui]
		u.scenario = true
		planted = append(planted, w.scenario(r, sp, u, start, offsets, ui)...)
	}
	return planted, skipped
}

// scenario makes the rows of one planted scenario for u, interactive
// sign-in at micros, and returns its (interactive, non-interactive) pairs.
func (w *world) scenario(r *rand.Rand, sp spec, u *user, micros int64, offsets []time.Duration, ui int) []Planted {
	ir := victimRow(r, sp, u, micros)
	rows := []*row{ir}
	at := newAttacker(r, sp, u, ir.ua)
	var pairs []Planted
	for i, off := range offsets {
		nr := at.replayRow(r, sp, u, ir, micros+int64(off/time.Microsecond))
		nr.dup = sp.dupNI && i == 0
		rows = append(rows, nr)
		pairs = append(pairs, plantedPair(sp, ir, nr))
	}
	slices.SortStableFunc(rows, func(a, b *row) int { return int(min(max(a.micros-b.micros, -1), 1)) })
	w.planted[ui] = rows
	return pairs
}

// victimRow is the victim's interactive sign-in at home, at micros.
func victimRow(r *rand.Rand, sp spec, u *user, micros int64) *row {
	home := &u.ips[0]
	a := &apps[interactiveApps[pickWeighted(r, interactiveAppWeights)]]
	ir := &row{
		table: signin.Interactive, micros: micros, u: u, upn: u.upn,
		ip: home.addr, country: u.country, city: home.city, app: a, res: successOutcome,
		authReq: sp.authReq, ca: sp.ca, id: newGUID(r), corr: newGUID(r), session: newGUID(r),
		token: randomToken(r), ua: home.plat.browserUA, plat: home.plat, duration: int64(r.IntN(1200)),
	}
	if a.clientAppBrowser {
		ir.ua = home.plat.browserUA
	} else {
		ir.ua = home.plat.nativeUA
	}
	if sp.iResult != nil {
		ir.res = sp.iResult
	}
	if sp.authReq == multi {
		ir.mfa = u.mfa
	}
	return ir
}

// attacker is where the stolen token is replayed from: another country, a
// hosting address there, and a user agent.
type attacker struct {
	country *country
	ip, ua  string
}

// newAttacker picks the attacker of a scenario on u, whose victim's user
// agent is victimUA.
func newAttacker(r *rand.Rand, sp spec, u *user, victimUA string) attacker {
	home := &u.ips[0]
	var ac *country
	for ac == nil || ac == u.country || (sp.ipv6 && !hosting6[ac.code].IsValid()) {
		ac = countries[attackerCountries[r.IntN(len(attackerCountries))]]
	}
	var attackerIP string
	for attackerIP == "" || attackerIP == home.addr {
		if sp.ipv6 {
			attackerIP = randomAddr(r, hosting6[ac.code]).String()
		} else {
			attackerIP = randomAddr(r, ac.hosting[r.IntN(len(ac.hosting))]).String()
		}
	}
	attackerUA := attackerUAs[r.IntN(len(attackerUAs))]
	if r.IntN(3) == 0 {
		attackerUA = victimUA // replay tools often copy the victim's user agent
	}
	return attacker{country: ac, ip: attackerIP, ua: attackerUA}
}

// replayRow is a non-interactive sign-in at micros with the token stolen
// from ir, as the scenario shapes it.
func (at attacker) replayRow(r *rand.Rand, sp spec, u *user, ir *row, micros int64) *row {
	home := &u.ips[0]
	ac := at.country
	nr := &row{
		table: signin.NonInteractive, micros: micros, u: u, upn: u.upn,
		ip: at.ip, country: ac, city: &ac.cities[r.IntN(len(ac.cities))],
		app: &apps[niApps[pickWeighted(r, niAppWeights)]], res: successOutcome,
		authReq: single, ca: notApplied, id: newGUID(r), corr: newGUID(r),
		session: ir.session, // the stolen token carries the victim's session
		token:   randomToken(r), ua: at.ua, incoming: "refreshToken",
		niDetail: niSuccessDetails[0],
	}
	switch {
	case sp.sameIP:
		nr.ip = home.addr
	case sp.sameCountry:
		nr.country = u.country
		nr.city = &u.country.cities[r.IntN(len(u.country.cities))]
		for nr.ip == home.addr || nr.ip == at.ip {
			nr.ip = randomAddr(r, u.country.isp[r.IntN(len(u.country.isp))]).String()
		}
	case sp.noLocation:
		nr.country, nr.city = nil, nil
	}
	if sp.niResult != nil {
		nr.res = sp.niResult
	}
	if sp.upnCase {
		nr.upn = titleLocalPart(u.upn)
	}
	return nr
}

// plantedPair describes the pair (ir, nr) for the summary.
func plantedPair(sp spec, ir, nr *row) Planted {
	return Planted{
		Kind: sp.kind, Detail: sp.detail,
		UserPrincipalName: ir.upn, InteractiveTime: ir.time(), InteractiveIP: ir.ip,
		InteractiveCountry: ir.location(), InteractiveId: ir.id.String(),
		NIUserPrincipalName: nr.upn, NITime: nr.time(), NIIP: nr.ip, NICountry: nr.location(),
		NIId: nr.id.String(), AppDisplayName: nr.app.name, CorrelationId: nr.corr.String(),
		UniqueTokenIdentifier: nr.tokenID(), Duplicated: nr.dup,
	}
}

// titleLocalPart turns "adele.vance@contoso.com" into "Adele.Vance@contoso.com".
func titleLocalPart(upn string) string {
	local, domain, _ := strings.Cut(upn, "@")
	parts := strings.Split(local, ".")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, ".") + "@" + domain
}
