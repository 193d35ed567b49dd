package gen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// The labeled tenant (gen --labeled, tools/precisionbench): users with a
// laptop and often a phone, each device with its own session; the benign
// behaviours B0-B10 and the attack variants of the precision research
// (docs/detection-quality.md), every row labeled. Unlike Run's tenant,
// background rows can and do match the rule: the labels, not an exactness
// contract, say which results are attacks.
//
// Each user is generated from a random stream of its own (seed, user), so
// a user's rows do not depend on the others' and a caller can stream users
// one at a time: the rule joins by user, so each user's result is the
// tenant's result for that user.

// Profile is one point of the benign-rate sweep: the rates the research
// could not source ([U]) are swept between a low and a high plausible value.
type Profile struct {
	Name string
	// WeakShare is the share of interactive sign-ins that are candidates
	// (single-factor, or Conditional Access not applied): 10% in a tenant
	// with CA for all, 90% without CA (F11).
	WeakShare float64
	// PhoneShare of users have a phone with its own session.
	PhoneShare float64
	// PhoneForeignGeo is the chance per phone-day that the cellular pool's
	// addresses geolocate to a neighbouring country (B1).
	PhoneForeignGeo float64
	// OutlookMobile is the share of phone users whose mail goes through
	// Outlook mobile's service in Azure (B2).
	OutlookMobile float64
	// TravelRate is the chance per user-day that a trip starts (B3).
	TravelRate float64
	// SASEShare of users egress through a SASE/GSA POP with split tunnel
	// (B4); POPForeign is the chance per day the POP is abroad.
	SASEShare, POPForeign float64
	// EmptyGeo is the chance a non-interactive row's address cannot be
	// placed (Location ""), 3x on IPv6 (B5).
	EmptyGeo float64
	// V6GeoSkew is the chance per day a user's IPv6 /64 geolocates to a
	// neighbour (B6).
	V6GeoSkew float64
	// RelayShare of users sign in through iCloud Private Relay in Safari;
	// RelayForeign is the chance a relay address is placed abroad (B7).
	RelayShare, RelayForeign float64
	// CloudPCShare of users have a Cloud PC in an Azure region (B8).
	CloudPCShare float64
	// CommuterShare of users cross a border to the office (B9).
	CommuterShare float64
	// StaleIPRate is the chance per user-day a confidential client's
	// non-interactive rows carry an old issuance IP from abroad (B10).
	StaleIPRate float64
}

// Profiles are the sweep's points: each benign rate at its low and high
// plausible value (research §5.3), crossed with the weak-interactive share
// (10%, 45%, 90%); "sase" adds 30% SASE users to the high rates.
func Profiles() []Profile {
	low := Profile{PhoneShare: 0.7, PhoneForeignGeo: 0.005, OutlookMobile: 0.2, TravelRate: 0.003, POPForeign: 0.05,
		EmptyGeo: 0.002, V6GeoSkew: 0.005, RelayShare: 0.05, RelayForeign: 0.01, CloudPCShare: 0.02, CommuterShare: 0.01, StaleIPRate: 0.001}
	high := Profile{PhoneShare: 0.7, PhoneForeignGeo: 0.02, OutlookMobile: 0.6, TravelRate: 0.01, POPForeign: 0.2,
		EmptyGeo: 0.02, V6GeoSkew: 0.02, RelayShare: 0.15, RelayForeign: 0.05, CloudPCShare: 0.02, CommuterShare: 0.01, StaleIPRate: 0.003}
	var out []Profile
	for _, w := range []float64{0.10, 0.45, 0.90} {
		for _, p := range []struct {
			name string
			p    Profile
			sase float64
		}{{"low", low, 0}, {"high", high, 0}, {"high+sase", high, 0.3}} {
			q := p.p
			q.WeakShare, q.SASEShare = w, p.sase
			q.Name = fmt.Sprintf("weak%.0f%%/%s", w*100, p.name)
			out = append(out, q)
		}
	}
	return out
}

// Variant is an attack variant of the research (§5.4).
type Variant struct {
	ID string
	// Seen tells whether the exact rule can see it by construction; the
	// others are generated and reported, never counted for recall.
	Seen bool
	// LostBy names the modes that give it up by design (disclosed losses).
	LostBy []string
	About  string
}

// Variants are the planted attack variants.
var Variants = []Variant{
	{"A1", true, nil, "AiTM: proxy VPS sign-in, replay from a second VPS of the same provider abroad"},
	{"A1-az", true, nil, "A1 with proxy and replay on Azure VMs (ASN 8075)"},
	{"A1-inv", true, nil, "attacker's cookie-SSO interactive row pairs with the victim's own refresh"},
	{"A3x", true, []string{"strict"}, "same-session replay through a residential proxy in another country (strict: lost within plausible travel)"},
	{"A4b", true, nil, "first replay within 1 minute, then hourly refreshes"},
	{"A5", true, nil, "IPv6 attacker on a hosting /48 abroad, half with an empty country"},
	{"A6", true, []string{"strict"}, "infostealer cookie replay from abroad 10-110 min after the victim's sign-in, half through residential proxies (strict: those within plausible travel lost)"},
	{"A7", true, []string{"strict"}, "stale-session replay from a VPS while the victim has a new session"},
	{"A7r", true, []string{"balanced", "strict"}, "stale-session replay through a residential proxy"},
	{"A8", true, nil, "attacker from an address geo-IP cannot place (Location empty)"},
	{"A9", true, nil, "replay with a FOCI first-party client id (Microsoft Office) and copied UA"},
	{"A10", true, nil, "PRT replay keeping the device id, compliant, token not bound"},
	{"A11", true, []string{"strict"}, "same-session replay through a residential proxy in a neighbouring country"},
	{"A1-mfa", false, nil, "A1 against an MFA+CA victim: the victim's row is no candidate"},
	{"A1-same", false, nil, "replay from the proxy VPS itself (same IP)"},
	{"A2", false, nil, "replay from a VPS in the victim's country"},
	{"A3", false, nil, "replay through a residential proxy in the victim's country"},
	{"A4", false, nil, "every replay within 1 minute"},
}

// LabeledOptions say what labeled tenant to generate.
type LabeledOptions struct {
	Users int
	Days  int
	Seed  uint64
	Start time.Time // midnight UTC of the first day; DefaultStart when zero
	// AttacksPerVariant instances of each variant are planted, each on its
	// own victim and day.
	AttacksPerVariant int
	Profile           Profile
}

// Label values: "benign:B<n>" or "attack:<variant>:<instance>".
func benign(b int) string { return "benign:B" + fmt.Sprint(b) }

// AttackLabel parses an attack label into variant and instance.
func AttackLabel(l string) (variant string, instance int, ok bool) {
	rest, ok := strings.CutPrefix(l, "attack:")
	if !ok {
		return "", 0, false
	}
	v, n, _ := strings.Cut(rest, ":")
	_, err := fmt.Sscan(n, &instance)
	return v, instance, err == nil
}

// LabeledUser is one user's rows and their labels (by row Id).
type LabeledUser struct {
	UPN            string
	Interactive    []signin.Record
	NonInteractive []signin.Record
	Labels         map[string]string
}

// SafeNetworks are the tenant's KnownSafeNetworks in the labeled tenant:
// its SASE POP egress (the research's advice for interactive-side SASE
// egress; the precision modes never honour the interactive side).
func SafeNetworks() []string {
	var out []string
	for _, c := range lcountryOrder {
		n := saseNet(c)
		out = append(out, fmt.Sprintf("%d.%d.0.0/16", n.v4[0], n.v4[1]))
	}
	return out
}

// GenerateLabeled calls fn with each user's rows, in user order.
func GenerateLabeled(o LabeledOptions, fn func(*LabeledUser) error) error {
	if o.Users <= 0 || o.Days <= 0 {
		return fmt.Errorf("gen: labeled tenant needs users and days")
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	// Victims: each planted instance takes its own user, spread evenly.
	victims := map[int][]plantAt{}
	vr := newRand(o.Seed, 1<<40)
	var ids []string
	for _, v := range Variants {
		ids = append(ids, v.ID)
	}
	total := len(ids) * o.AttacksPerVariant
	if total > o.Users {
		return fmt.Errorf("gen: %d attack instances need as many users, have %d", total, o.Users)
	}
	perm := vr.Perm(o.Users)
	for k := 0; k < total; k++ {
		victims[perm[k]] = append(victims[perm[k]], plantAt{variant: ids[k%len(ids)], instance: k / len(ids), day: vr.IntN(o.Days)})
	}
	var weights []int
	var homes []*lcountry
	for _, c := range lcountryOrder {
		if lc := lcountries[c]; lc.residents {
			weights = append(weights, lc.weight)
			homes = append(homes, lc)
		}
	}
	for u := 0; u < o.Users; u++ {
		r := newRand(o.Seed, uint64(u)+1)
		lu := &luser{o: &o, r: r, idx: u, home: homes[pickWeighted(r, weights)], labels: map[string]string{}}
		lu.UPN = fmt.Sprintf("user%05d@contoso.com", u)
		lu.setup()
		for d := 0; d < o.Days; d++ {
			lu.day(d)
		}
		for _, p := range victims[u] {
			lu.plant(p)
		}
		out := &LabeledUser{UPN: lu.UPN, Interactive: lu.inter, NonInteractive: lu.non, Labels: lu.labels}
		if err := fn(out); err != nil {
			return err
		}
	}
	return nil
}

type plantAt struct {
	variant  string
	instance int
	day      int
}

// luser is one user being generated.
type luser struct {
	o      *LabeledOptions
	r      *rand.Rand
	idx    int
	UPN    string
	home   *lcountry
	office *lcountry // the office's country (a neighbour for commuters)
	rows   int

	homeIP4  string
	home64   string // the home /64, "" without IPv6 at home
	officeIP string
	laptopID string
	laptopS  int // laptop session generation
	phone    bool
	outlook  bool
	sase     bool
	relay    bool
	cloudPC  *lcountry
	cpcIP    string
	commuter bool
	worker   bool

	inter, non []signin.Record
	labels     map[string]string
}

func (u *luser) setup() {
	r, p := u.r, u.o.Profile
	u.homeIP4 = u.home.isp.addr4(r)
	if r.Float64() < u.home.v6Home {
		u.home64 = u.home.isp.prefix64(r)
	}
	u.office = u.home
	u.commuter = r.Float64() < p.CommuterShare
	if u.commuter {
		u.office = nearKnown(r, u.home)
	}
	u.officeIP = u.office.biz.addr4(r)
	u.laptopID = fmt.Sprintf("dev-%05d-laptop", u.idx)
	u.phone = r.Float64() < p.PhoneShare
	u.outlook = u.phone && r.Float64() < p.OutlookMobile
	u.sase = r.Float64() < p.SASEShare
	u.relay = r.Float64() < p.RelayShare
	if r.Float64() < p.CloudPCShare {
		u.cloudPC = lcountries[u.home.cloudPC[r.IntN(len(u.home.cloudPC))]]
		u.cpcIP = hostingNet(azure, u.cloudPC.code).addr4(r)
	}
	u.worker = r.Float64() < 0.7
}

// place is where a device is at a moment: the address, its network and the
// country geo-IP gives (not always where the device is).
type place struct {
	ip      string
	net     *lnet
	geo     *lcountry // "" country when nil
	trusted bool      // a trusted named location (the office)
	gsa     bool      // through Global Secure Access
	label   int       // the behaviour that put the device there (0: none)
}

func (u *luser) id(t byte) string {
	u.rows++
	return fmt.Sprintf("%c-%05d-%06d", t, u.idx, u.rows)
}

// row builds a record at t from place pl.
func (u *luser) row(t time.Time, pl place, sid, app, appID string, inter bool) signin.Record {
	r := u.r
	loc, details := "", labeledEmptyLocation
	if pl.geo != nil {
		loc, details = pl.geo.code, locationDetails(pl.geo, r)
	}
	nld := "[]"
	if pl.trusted {
		nld = `[{"networkType":"trustedNamedLocation","networkNames":["Office"]}]`
	}
	gsa := "false"
	if pl.gsa {
		gsa = "true"
	}
	rec := signin.Record{
		TimeGenerated: t, UserPrincipalName: u.UPN, IPAddress: pl.ip, Location: loc, ResultType: "0",
		AppDisplayName: app, CorrelationId: fmt.Sprintf("c-%05d-%06d", u.idx, u.rows+1),
		UniqueTokenIdentifier: fmt.Sprintf("t%05d%06d", u.idx, u.rows+1),
		Extra: &signin.Extra{SessionId: sid, AutonomousSystemNumber: fmt.Sprint(pl.net.asn), NetworkLocationDetails: nld,
			IsThroughGlobalSecureAccess: gsa, AppId: appID, LocationDetails: details,
			DeviceDetail: `{"deviceId":"","operatingSystem":"","browser":""}`},
	}
	if inter {
		rec.Id = u.id('i')
		rec.AuthenticationRequirement, rec.ConditionalAccessStatus = "multiFactorAuthentication", "success"
		if r.Float64() < u.o.Profile.WeakShare {
			if r.IntN(2) == 0 {
				rec.AuthenticationRequirement = "singleFactorAuthentication"
			} else {
				rec.ConditionalAccessStatus = "notApplied"
			}
		}
	} else {
		rec.Id = u.id('n')
	}
	return rec
}

func (u *luser) add(rec signin.Record, label string) {
	if rec.AuthenticationRequirement != "" {
		u.inter = append(u.inter, rec)
	} else {
		u.non = append(u.non, rec)
	}
	u.labels[rec.Id] = label
}

// Apps the background refreshes: first-party clients and their ids.
var (
	appTeams   = [2]string{"Microsoft Teams", "1fec8e78-bce4-4aaf-ab1b-5451cc387264"}
	appOutlook = [2]string{"Microsoft Outlook", "5d661950-3475-41cd-a2c3-d671a3162bc1"}
	appOffice  = [2]string{"Microsoft Office", "d3590ed6-52b3-4102-aeff-aad2292ab01c"}
	appOneDr   = [2]string{"OneDrive SyncEngine", "ab9b8c07-8f02-4f72-87fa-80105867a763"}
	appOLM     = [2]string{"Outlook Mobile", "27922004-5251-4030-b22d-91ecd9a37ea4"}
	appExo     = [2]string{"Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000"}
	appWeb     = [2]string{"OfficeHome", "4765445b-32c6-49b0-83e6-1d93765276ca"}
	appConf    = [2]string{"Contoso Expenses", "6b1f0f2e-6a4e-4c36-9d8a-3c0d2b9f7e11"} // a confidential client
)

// day generates one day of the user's background.
func (u *luser) day(d int) {
	ud := u.newDay(d)
	ud.laptopSignIns()
	ud.laptopRefreshes()
	if u.phone {
		ud.phone()
	}
	if u.cloudPC != nil && !ud.weekend {
		ud.cloudPC()
	}
}

// userDay is one day of a user's background: where it happens, drawn once
// for the day, and the sessions it runs in.
type userDay struct {
	*luser
	d                   int
	day                 time.Time
	weekend             bool
	laptopSID, phoneSID string
	// abroad is the country of a trip (B3), nil at home; hotelIP the
	// laptop's address there.
	abroad  *lcountry
	hotelIP string
	// v6skew: the home IPv6 prefix geolocates elsewhere today (B6).
	v6skew bool
	// pop is the SASE point of presence the laptop goes through (B4).
	pop *lcountry
	// phoneGeo is where the phone's cellular address geolocates (B1).
	phoneGeo      *lcountry
	cell4, cell64 string
	// staleIP: a confidential client logs the original issuance IP,
	// staleAddr in staleAt (B10).
	staleIP   bool
	staleAt   *lcountry
	staleAddr string
	tzOff     time.Duration
	active    float64
	office    bool
}

// newDay draws where day d happens.
func (u *luser) newDay(d int) *userDay {
	r, p := u.r, u.o.Profile
	ud := &userDay{luser: u, d: d, day: u.o.Start.AddDate(0, 0, d)}
	ud.weekend = ud.day.Weekday() == time.Saturday || ud.day.Weekday() == time.Sunday
	if d%4 == 0 {
		u.laptopS++ // the laptop's PRT session lasts days
	}
	ud.laptopSID = fmt.Sprintf("s-%05d-laptop-%d", u.idx, u.laptopS)
	ud.phoneSID = fmt.Sprintf("s-%05d-phone", u.idx)
	// Where the day happens: home, office, or a trip (B3).
	if r.Float64() < p.TravelRate*3 { // a trip of ~3 days started in the last 3 days
		ud.abroad = farCountry(r, u.home)
	}
	if ud.abroad != nil {
		ud.hotelIP = ud.abroad.isp.addr4(r)
	}
	ud.v6skew = u.home64 != "" && r.Float64() < p.V6GeoSkew
	popAbroad := u.sase && r.Float64() < p.POPForeign
	ud.pop = u.home
	if popAbroad {
		ud.pop = nearKnown(r, u.home)
	}
	phoneForeign := r.Float64() < p.PhoneForeignGeo
	ud.phoneGeo = u.home
	if phoneForeign {
		ud.phoneGeo = nearKnown(r, u.home)
	}
	ud.cell4 = u.home.mobile.addr4(r)
	ud.cell64 = u.home.mobile.prefix64(r)
	ud.staleIP = r.Float64() < p.StaleIPRate
	ud.staleAt = farCountry(r, u.home)
	ud.staleAddr = ud.staleAt.isp.addr4(r)

	ud.tzOff = time.Duration(-u.home.tz) * time.Hour
	ud.active = 1.0
	if ud.weekend {
		ud.active = 0.3
	}
	ud.office = u.worker && !ud.weekend && ud.abroad == nil
	return ud
}

// laptopAt is where the laptop is at local hour h.
func (ud *userDay) laptopAt(h int) place {
	r, u := ud.r, ud.luser
	switch {
	case ud.abroad != nil:
		return place{ip: ud.hotelIP, net: ud.abroad.isp, geo: ud.abroad, label: 3}
	case ud.office && h >= 9 && h < 17:
		pl := place{ip: u.officeIP, net: u.office.biz, geo: u.office, trusted: true}
		if u.commuter {
			pl.label = 9
		}
		return pl
	}
	pl := place{ip: u.homeIP4, net: u.home.isp, geo: u.home}
	if u.home64 != "" && r.IntN(2) == 0 { // Happy Eyeballs: v4 or v6 per connection
		pl.ip = addr6(r, u.home64)
		if ud.v6skew {
			pl.geo, pl.label = nearKnown(r, u.home), 6
		}
	}
	return pl
}

// viaPOP is a sign-in of the laptop through the SASE POP (GSA): its
// browser sign-ins and some apps go through it; split tunnel sends
// Teams/Outlook direct (B4).
func (ud *userDay) viaPOP() place {
	n := saseNet(ud.pop.code)
	return place{ip: n.addr4(ud.r), net: n, geo: ud.pop, gsa: true, label: 4}
}

// at is the time of local hour h, minute m, a random second.
func (ud *userDay) at(h, m int) time.Time {
	return ud.day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(ud.r.IntN(60))*time.Second).Add(ud.tzOff)
}

// emptyGeo leaves some sign-ins without a location (B5), IPv6 ones more.
func (ud *userDay) emptyGeo(pl place) place {
	pe := ud.o.Profile.EmptyGeo
	if strings.Contains(pl.ip, ":") {
		pe *= 3
	}
	if pl.geo != nil && ud.r.Float64() < pe {
		pl.geo, pl.label = nil, 5
	}
	return pl
}

// laptopSignIns are the interactive sign-ins on the laptop (B0), 4 a
// working day; through iCloud Private Relay for some users (B7).
func (ud *userDay) laptopSignIns() {
	r, u := ud.r, ud.luser
	for range poisson(r, 4*ud.active) {
		h := 8 + r.IntN(10)
		pl := ud.laptopAt(h)
		app := appWeb
		if u.sase {
			pl = ud.viaPOP()
		}
		if u.relay && r.IntN(3) == 0 {
			ud.relaySignIn(h, app)
			continue
		}
		rec := u.row(ud.at(h, r.IntN(60)), pl, ud.laptopSID, app[0], app[1], true)
		u.add(rec, benign(pl.label))
	}
}

// relaySignIn is Safari through iCloud Private Relay: the browser's own
// session (B7), its web app refreshing through the relay.
func (ud *userDay) relaySignIn(h int, app [2]string) {
	r, u := ud.r, ud.luser
	g := u.home
	if r.Float64() < ud.o.Profile.RelayForeign {
		g = nearKnown(r, u.home)
	}
	n := relayNet(g.code)
	rp := place{ip: n.addr4(r), net: n, geo: g, label: 7}
	rec := u.row(ud.at(h, r.IntN(60)), rp, fmt.Sprintf("s-%05d-safari-%d", u.idx, ud.d), app[0], app[1], true)
	u.add(rec, benign(7))
	// Its web app refreshes through the relay, same session.
	for k := 1; k <= 2; k++ {
		rec := u.row(rec.TimeGenerated.Add(time.Duration(20*k)*time.Minute), rp, rec.Extra.SessionId, app[0], app[1], false)
		u.add(rec, benign(7))
	}
}

// laptopRefreshes: the laptop's apps refresh about hourly while it is on.
func (ud *userDay) laptopRefreshes() {
	r, u := ud.r, ud.luser
	first, last := 8, 18
	if ud.weekend {
		first, last = 10, 10+r.IntN(4)
	}
	for h := first; h < last; h++ {
		for _, app := range [][2]string{appTeams, appOutlook, appOneDr} {
			if r.Float64() > 0.9 {
				continue
			}
			pl := ud.emptyGeo(ud.laptopAt(h))
			if u.sase && app == appOneDr {
				pl = ud.viaPOP() // the tunnel carries all but Teams/Outlook
			}
			rec := u.row(ud.at(h, r.IntN(60)), pl, ud.laptopSID, app[0], app[1], false)
			u.add(rec, benign(pl.label))
		}
		if ud.staleIP && h == 12 {
			// A confidential client's refresh logs the original issuance IP (B10).
			pl := place{ip: ud.staleAddr, net: ud.staleAt.isp, geo: ud.staleAt, label: 10}
			rec := u.row(ud.at(h, r.IntN(60)), pl, ud.laptopSID, appConf[0], appConf[1], false)
			u.add(rec, benign(10))
		}
	}
}

// phone: its own session, on cellular or home Wi-Fi (B1), and Outlook
// mobile's service refreshing from Microsoft 365 ranges (B2).
func (ud *userDay) phone() {
	r, u := ud.r, ud.luser
	for h := 7; h < 23; h++ {
		if r.Float64() > 0.8*ud.active+0.1 {
			continue
		}
		pl, app := ud.phonePlace(h)
		rec := u.row(ud.at(h, r.IntN(60)), pl, ud.phoneSID, app[0], app[1], false)
		u.add(rec, benign(pl.label))
	}
	if r.Float64() < 0.15 {
		// A rare interactive sign-in on the phone, cellular.
		pl := place{ip: ud.cell4, net: u.home.mobile, geo: ud.phoneGeo, label: 1}
		rec := u.row(ud.at(8+r.IntN(12), r.IntN(60)), pl, ud.phoneSID, appOLM[0], appOLM[1], true)
		u.add(rec, benign(1))
	}
}

// phonePlace is where the phone's refresh at local hour h comes from, and
// the app that makes it.
func (ud *userDay) phonePlace(h int) (place, [2]string) {
	r, u := ud.r, ud.luser
	var pl place
	if ud.abroad != nil {
		// Roaming is home-routed: a home mobile address, home geo.
		pl = place{ip: ud.cell4, net: u.home.mobile, geo: u.home, label: 1}
	} else if h >= 8 && h < 19 || r.IntN(2) == 0 {
		pl = place{ip: ud.cell4, net: u.home.mobile, geo: ud.phoneGeo, label: 1}
		if r.Float64() < u.home.v6Mobile {
			pl.ip = addr6(r, ud.cell64)
		}
	} else {
		pl = place{ip: u.homeIP4, net: u.home.isp, geo: u.home, label: 1}
	}
	pl = ud.emptyGeo(pl)
	if pl.label == 0 {
		pl.label = 1
	}
	app := appTeams
	if u.outlook && r.IntN(2) == 0 {
		// Outlook mobile's translator in Azure acts for the user.
		c := lcountries[u.home.m365[r.IntN(len(u.home.m365))]]
		n := m365Net(c.code)
		pl = place{ip: n.addr4(r), net: n, geo: c, label: 2}
		app = appExo
	}
	return pl, app
}

// cloudPC: a Cloud PC in an Azure region, its own session, signed in to in
// the morning, refreshing while used (B8).
func (ud *userDay) cloudPC() {
	r, u := ud.r, ud.luser
	pl := place{ip: u.cpcIP, net: hostingNet(azure, u.cloudPC.code), geo: u.cloudPC, label: 8}
	sid := fmt.Sprintf("s-%05d-cloudpc-%d", u.idx, ud.d)
	u.add(u.row(ud.at(9, r.IntN(60)), pl, sid, appWeb[0], appWeb[1], true), benign(8))
	for h := 10; h < 16; h++ {
		u.add(u.row(ud.at(h, r.IntN(60)), pl, sid, appTeams[0], appTeams[1], false), benign(8))
	}
}

// plant adds one attack instance on this user.
func (u *luser) plant(p plantAt) {
	r := u.r
	a := &attack{luser: u, p: p, label: fmt.Sprintf("attack:%s:%d", p.variant, p.instance)}
	day := u.o.Start.AddDate(0, 0, p.day)
	a.t0 = day.Add(time.Duration(9+r.IntN(8))*time.Hour + time.Duration(r.IntN(3600))*time.Second).Add(time.Duration(-u.home.tz) * time.Hour)
	a.sid = fmt.Sprintf("s-%05d-victim-%d", u.idx, p.instance)
	a.home = place{ip: u.homeIP4, net: u.home.isp, geo: u.home}
	switch p.variant {
	case "A1", "A1-az", "A1-mfa", "A1-same":
		a.proxied()
	case "A1-inv":
		a.cookieSSO()
	case "A3x", "A3", "A11", "A6", "A2", "A4", "A4b", "A5", "A8", "A9", "A10":
		a.replayed()
	case "A7", "A7r":
		a.staleSession()
	default:
		panic("gen: unknown variant " + p.variant)
	}
}

// attack is one attack instance being planted on a user: its label, when
// the victim signs in (t0), in which session, from home.
type attack struct {
	*luser
	p     plantAt
	label string
	t0    time.Time
	sid   string
	home  place
}

// hostNet is a VPS abroad (a VPS at home is A2, which the rule cannot see).
func (a *attack) hostNet() *lnet {
	r := a.r
	for {
		pv := providers[r.IntN(len(providers))]
		if c := pv.countries[r.IntN(len(pv.countries))]; c != a.luser.home.code {
			return hostingNet(pv, c)
		}
	}
}

// victimWeak is the victim's candidate sign-in at home (weak).
func (a *attack) victimWeak(s string) signin.Record {
	rec := a.row(a.t0, a.home, s, appWeb[0], appWeb[1], true)
	rec.AuthenticationRequirement, rec.ConditionalAccessStatus = "singleFactorAuthentication", "notApplied"
	return rec
}

// replays adds n non-interactive rows of the session s from pl, step apart.
func (a *attack) replays(start time.Time, pl place, s string, n int, step time.Duration, app [2]string) {
	for k := 0; k < n; k++ {
		rec := a.row(start.Add(time.Duration(k)*step), pl, s, app[0], app[1], false)
		a.add(rec, a.label)
	}
}

// at is an address of n, geolocated in geo.
func (a *attack) at(n *lnet, geo *lcountry) place {
	ip := n.addr4(a.r)
	return place{ip: ip, net: n, geo: geo}
}

// gap is the time from the victim's sign-in to the first replay.
func (a *attack) gap() time.Duration { return time.Duration(10+a.r.IntN(100)) * time.Minute }

// proxied: an adversary-in-the-middle proxy signs in for the victim, and
// the stolen token is replayed from another of the provider's countries
// (A1), Azure's (A1-az), after MFA (A1-mfa), or from the proxy itself
// (A1-same).
func (a *attack) proxied() {
	r, p := a.r, a.p
	pv := providers[r.IntN(len(providers))]
	if p.variant == "A1-az" {
		pv = azure
	}
	c1 := lcountries[pv.countries[r.IntN(len(pv.countries))]]
	c2 := c1
	for c2 == c1 && len(pv.countries) > 1 {
		c2 = lcountries[pv.countries[r.IntN(len(pv.countries))]]
	}
	proxy := a.at(hostingNet(pv, c1.code), c1)
	rec := a.row(a.t0, proxy, a.sid, appWeb[0], appWeb[1], true)
	rec.AuthenticationRequirement, rec.ConditionalAccessStatus = "singleFactorAuthentication", "notApplied"
	if p.variant == "A1-mfa" {
		rec.AuthenticationRequirement, rec.ConditionalAccessStatus = "multiFactorAuthentication", "success"
	}
	a.add(rec, a.label)
	replay := a.at(hostingNet(pv, c2.code), c2)
	if p.variant == "A1-same" {
		replay = proxy
	}
	a.replays(a.t0.Add(a.gap()), replay, a.sid, 3, time.Hour, appOffice)
}

// cookieSSO (A1-inv): the attacker's cookie SSO logs an interactive,
// single-factor row from the VPS in the victim's session; the victim's
// laptop then refreshes from home.
func (a *attack) cookieSSO() {
	n := a.hostNet()
	rec := a.row(a.t0, a.at(n, lcountries[n.country]), a.sid, appWeb[0], appWeb[1], true)
	rec.AuthenticationRequirement, rec.ConditionalAccessStatus = "singleFactorAuthentication", "success"
	a.add(rec, a.label)
	a.replays(a.t0.Add(a.gap()), a.home, a.sid, 1, 0, appTeams)
}

// replayed: the victim signs in weakly at home, and the token is replayed
// from where the variant says.
func (a *attack) replayed() {
	a.add(a.victimWeak(a.sid), a.label)
	r := replay{app: appOffice, n: 3, step: time.Hour, start: a.t0.Add(a.gap())}
	a.replayPlace(&r)
	if a.p.variant == "A2" {
		r.pl.geo = a.luser.home
	}
	for k := 0; k < r.n; k++ {
		rec := a.row(r.start.Add(time.Duration(k)*r.step), r.pl, a.sid, r.app[0], r.app[1], false)
		if a.p.variant == "A10" {
			rec.Extra.DeviceDetail = fmt.Sprintf(`{"deviceId":%q,"isCompliant":true,"trustType":"Azure AD joined"}`, a.laptopID)
			rec.Extra.TokenProtectionStatusDetails = `{"signInSessionStatus":"unbound","signInSessionStatusCode":1003}`
		}
		a.add(rec, a.label)
	}
}

// replay is where, with which app and how often a stolen token is replayed.
type replay struct {
	pl    place
	app   [2]string
	n     int
	step  time.Duration
	start time.Time
}

// replayPlace sets where the variant replays from (and, for the quick
// replays of A4 and A4b, when).
func (a *attack) replayPlace(rp *replay) {
	r, u := a.r, a.luser
	switch a.p.variant {
	case "A3x":
		c := farCountry(r, u.home)
		rp.pl = a.at(c.isp, c)
	case "A3":
		rp.pl = a.at(u.home.biz, u.home)
	case "A11":
		c := nearKnown(r, u.home)
		rp.pl = a.at(c.isp, c)
	case "A6":
		if r.IntN(2) == 0 {
			c := farCountry(r, u.home)
			rp.pl = a.at(c.isp, c)
		} else {
			hn := a.hostNet()
			rp.pl = a.at(hn, lcountries[hn.country])
		}
	case "A2":
		rp.pl = a.at(hostingNet(providers[0], "FR"), u.home)
	case "A4":
		rp.start, rp.step, rp.n = a.t0.Add(20*time.Second), 10*time.Second, 3
		hn := a.hostNet()
		rp.pl = a.at(hn, lcountries[hn.country])
	case "A4b":
		hn := a.hostNet()
		rp.pl = a.at(hn, lcountries[hn.country])
		a.replays(a.t0.Add(30*time.Second), rp.pl, a.sid, 1, 0, rp.app)
		rp.start, rp.n = a.t0.Add(time.Hour), 3
	case "A5":
		hn := a.hostNet()
		rp.pl = place{ip: addr6(r, hn.prefix64(r)), net: hn, geo: lcountries[hn.country]}
		if r.IntN(2) == 0 {
			rp.pl.geo = nil
		}
	case "A8":
		hn := a.hostNet()
		rp.pl = place{ip: hn.addr4(r), net: hn}
	case "A9":
		hn := hostingNet(azure, farCountry(r, u.home).code)
		rp.pl = a.at(hn, lcountries[hn.country])
		rp.app = appExo // a first-party id, from an Azure VM outside the M365 ranges
	case "A10":
		hn := a.hostNet()
		rp.pl = a.at(hn, lcountries[hn.country])
	}
}

// staleSession (A7, A7r): the victim has a new session; the attacker
// replays an older one, from a VPS or a far country.
func (a *attack) staleSession() {
	a.add(a.victimWeak(a.sid), a.label)
	var pl place
	if a.p.variant == "A7" {
		hn := a.hostNet()
		pl = a.at(hn, lcountries[hn.country])
	} else {
		c := farCountry(a.r, a.luser.home)
		pl = a.at(c.isp, c)
	}
	a.replays(a.t0.Add(a.gap()), pl, a.sid+"-stale", 3, time.Hour, appOffice)
}

// Behaviours names the benign behaviours.
var Behaviours = []string{
	"B0 background (laptop at home or office, same session)",
	"B1 phone on cellular, its own session, geo-IP abroad",
	"B2 Microsoft service egress (Outlook mobile in Azure)",
	"B3 travel abroad",
	"B4 SASE/GSA split tunnel",
	"B5 empty Location",
	"B6 IPv6 dual stack, /64 placed in a neighbour",
	"B7 iCloud Private Relay in Safari",
	"B8 Cloud PC in an Azure region",
	"B9 border commuter",
	"B10 confidential client with a stale issuance IP",
}
