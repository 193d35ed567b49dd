package precision

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Realistic sides: a victim at home in Lyon on Orange (AS3215), a phone on
// SFR mobile (AS15557), a VPS on OVH (AS16276, hosting), an Azure VM
// (AS8075), Exchange Online's service range, a residential proxy in
// Geneva on Swisscom (AS3303) and one in Sao Paulo on Vivo (AS26599).
const (
	lyon     = `{"city":"Lyon","countryOrRegion":"FR","geoCoordinates":{"latitude":45.76,"longitude":4.84}}`
	geneva   = `{"city":"Geneva","countryOrRegion":"CH","geoCoordinates":{"latitude":46.20,"longitude":6.14}}`
	saoPaulo = `{"city":"Sao Paulo","countryOrRegion":"BR","geoCoordinates":{"latitude":-23.55,"longitude":-46.63}}`
	trusted  = `[{"networkType":"trustedNamedLocation","networkNames":["HQ"]}]`
	exchange = "00000002-0000-0ff1-ce00-000000000000"
	office   = "d3590ed6-52b3-4102-aeff-aad2292ab01c" // FOCI
)

type side struct {
	ip, country string
	x           signin.Extra
}

func home() side {
	return side{"90.12.34.56", "FR", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "3215", LocationDetails: lyon,
		DeviceDetail: `{"deviceId":"dev-laptop"}`, AppId: office, NetworkLocationDetails: "[]", IsThroughGlobalSecureAccess: "false"}}
}

func with(s side, f func(*side)) side { f(&s); return s }

func result(i, n side, gap time.Duration) detect.Result {
	t := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	return detect.Result{InteractiveTime: t, NISignInTime: t.Add(gap), TimeSinceInteractive: gap, UserPrincipalName: "alice@contoso.com",
		InteractiveIP: i.ip, InteractiveCountry: i.country, NIIPAddress: n.ip, NICountry: n.country}
}

// keep is the verdict "kept"; any other value is the suppression reason.
const keep Reason = ""

type modeCase struct {
	name string
	i, n side
	gap  time.Duration
	want [3]Reason // exact, balanced, strict
}

func modeCases() []modeCase {
	h := home()
	phone := side{"2a01:cb00:1:2::9", "ES", signin.Extra{SessionId: "sid-phone", AutonomousSystemNumber: "15557", AppId: office, NetworkLocationDetails: "[]"}}
	ovh := func(ip, c string) side {
		return side{ip, c, signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "16276", AppId: office, NetworkLocationDetails: "[]"}}
	}
	return []modeCase{
		{"B1 phone on cellular, its own session, geo-IP abroad", h, phone, 20 * time.Minute, [3]Reason{keep, ReasonOtherSession, ReasonOtherSession}},
		{"A1 AiTM: proxy and replay VPS on one hosting ASN, same session", ovh("51.38.1.1", "FR"), ovh("54.36.9.9", "DE"), 30 * time.Minute, [3]Reason{keep, keep, keep}},
		{"A1-az AiTM on Azure VMs, Office client id", with(ovh("20.50.1.1", "NL"), func(s *side) { s.x.AutonomousSystemNumber = "8075" }),
			with(ovh("20.60.2.2", "IE"), func(s *side) { s.x.AutonomousSystemNumber = "8075" }), 30 * time.Minute, [3]Reason{keep, keep, keep}},
		{"A6 cookie replay from a VPS abroad, same session", h, ovh("51.38.7.7", "GB"), 40 * time.Minute, [3]Reason{keep, keep, keep}},
		{"A7 stale session replayed from a VPS", h, with(ovh("51.38.7.7", "GB"), func(s *side) { s.x.SessionId = "sid-old" }), 40 * time.Minute,
			[3]Reason{keep, keep, ReasonOtherSession}},
		{"A7 stale session replayed through a residential proxy (balanced loss)", h,
			side{"177.1.2.3", "BR", signin.Extra{SessionId: "sid-old", AutonomousSystemNumber: "26599", LocationDetails: saoPaulo}}, 40 * time.Minute,
			[3]Reason{keep, ReasonOtherSession, ReasonOtherSession}},
		{"A3x residential proxy abroad, same session", h,
			side{"177.1.2.3", "BR", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "26599", LocationDetails: saoPaulo}}, 40 * time.Minute,
			[3]Reason{keep, keep, keep}},
		{"A11 residential proxy next door, same session (strict loss)", h,
			side{"85.1.2.3", "CH", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "3303", LocationDetails: geneva}}, 40 * time.Minute,
			[3]Reason{keep, keep, ReasonPlausibleVelocity}},
		{"A9 FOCI replay from an Azure VM (not a Microsoft 365 range)", h,
			side{"20.60.2.2", "IE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "8075", AppId: exchange}}, 30 * time.Minute,
			[3]Reason{keep, keep, keep}},
		{"A10 PRT replay keeping the device id, unbound", h,
			side{"51.38.7.7", "GB", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "16276", DeviceDetail: `{"deviceId":"dev-laptop","isCompliant":true}`,
				TokenProtectionStatusDetails: `{"signInSessionStatus":"unbound"}`}}, 30 * time.Minute, [3]Reason{keep, keep, keep}},
		{"A8 un-geolocatable attacker on another network", h, with(ovh("51.38.7.7", ""), func(s *side) {}), 30 * time.Minute, [3]Reason{keep, keep, keep}},
		{"B2 Exchange Online acting for the user from its service range", h,
			side{"52.97.1.1", "IE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "8075", AppId: exchange}}, 30 * time.Minute,
			[3]Reason{keep, ReasonMicrosoftService, ReasonMicrosoftService}},
		{"F4 same ISP, another address whose geo-IP disagrees", h, with(h, func(s *side) { s.ip, s.country = "90.99.1.1", "BE" }), 30 * time.Minute,
			[3]Reason{keep, ReasonSameNetwork, ReasonSameNetwork}},
		{"B5 empty country on the same ISP", h, with(h, func(s *side) { s.ip, s.country = "90.99.1.1", "" }), 30 * time.Minute,
			[3]Reason{keep, ReasonEmptyCountry, ReasonEmptyCountry}},
		{"B6 same IPv6 /64, no ASN exported", with(h, func(s *side) { s.ip, s.x.AutonomousSystemNumber = "2a01:cb00:aa:bb::1", "" }),
			with(h, func(s *side) { s.ip, s.country, s.x.AutonomousSystemNumber = "2a01:cb00:aa:bb:9::2", "DE", "" }), 30 * time.Minute,
			[3]Reason{keep, ReasonSameIPv6Network, ReasonSameIPv6Network}},
		{"B4 non-interactive through a trusted named location", h,
			side{"193.1.1.1", "DE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "3320", NetworkLocationDetails: trusted}}, 30 * time.Minute,
			[3]Reason{keep, ReasonTrustedNetwork, ReasonTrustedNetwork}},
		{"B4 non-interactive through Global Secure Access", h,
			side{"193.1.1.1", "DE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "3320", IsThroughGlobalSecureAccess: "true"}}, 30 * time.Minute,
			[3]Reason{keep, ReasonTrustedNetwork, ReasonTrustedNetwork}},
		{"A6 victim signed in at the trusted office: never honoured on the interactive side",
			with(h, func(s *side) { s.x.NetworkLocationDetails = trusted }), ovh("51.38.7.7", "GB"), 30 * time.Minute, [3]Reason{keep, keep, keep}},
		{"bound token on the interactive row's device", h,
			side{"193.1.1.1", "DE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "3320", DeviceDetail: `{"deviceId":"dev-laptop"}`,
				TokenProtectionStatusDetails: `{"signInSessionStatus":"bound"}`}}, 30 * time.Minute,
			[3]Reason{keep, keep, ReasonBoundToken}},
		{"B9 commuter: office in Geneva, home in Lyon, same session", with(h, func(s *side) {
			s.ip, s.country, s.x.AutonomousSystemNumber, s.x.LocationDetails = "85.1.2.3", "CH", "3303", geneva
		}), h, 50 * time.Minute, [3]Reason{keep, keep, ReasonPlausibleVelocity}},
	}
}

func TestModes(t *testing.T) {
	for _, tc := range modeCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := result(tc.i, tc.n, tc.gap)
			for k, m := range Modes {
				v := New(m, nil).Decide(&r, &tc.i.x, &tc.n.x)
				got := keep
				if !v.Keep {
					got = v.Reason
				}
				if got != tc.want[k] {
					t.Errorf("%s: got %q, want %q (features %+v)", m, got, tc.want[k], v.Features)
				}
			}
		})
	}
}

// Every test fails open: with the column it reads blanked on either side
// (as an export without it reads), a pair it suppressed is kept, unless an
// independent test still suppresses it for its own reason.
func TestFailOpen(t *testing.T) {
	blank := map[string]func(*signin.Extra){
		signin.ColSessionId:                    func(x *signin.Extra) { x.SessionId = "" },
		signin.ColAutonomousSystemNumber:       func(x *signin.Extra) { x.AutonomousSystemNumber = "" },
		signin.ColNetworkLocationDetails:       func(x *signin.Extra) { x.NetworkLocationDetails = ""; x.IsThroughGlobalSecureAccess = "" },
		signin.ColAppId:                        func(x *signin.Extra) { x.AppId = "" },
		signin.ColLocationDetails:              func(x *signin.Extra) { x.LocationDetails = "" },
		signin.ColDeviceDetail:                 func(x *signin.Extra) { x.DeviceDetail = "" },
		signin.ColTokenProtectionStatusDetails: func(x *signin.Extra) { x.TokenProtectionStatusDetails = "" },
	}
	// The column each reason reads; blanking it must turn that reason off.
	needs := map[Reason][]string{
		ReasonOtherSession:      {signin.ColSessionId, signin.ColAutonomousSystemNumber},
		ReasonSameNetwork:       {signin.ColAutonomousSystemNumber},
		ReasonEmptyCountry:      {signin.ColAutonomousSystemNumber},
		ReasonTrustedNetwork:    {signin.ColNetworkLocationDetails},
		ReasonMicrosoftService:  {signin.ColAppId},
		ReasonPlausibleVelocity: {signin.ColLocationDetails, signin.ColSessionId, signin.ColAutonomousSystemNumber},
		ReasonBoundToken:        {signin.ColDeviceDetail, signin.ColTokenProtectionStatusDetails},
	}
	for _, tc := range modeCases() {
		for k, m := range Modes {
			reason := tc.want[k]
			if reason == keep {
				continue
			}
			for _, col := range needs[reason] {
				for _, sideName := range []string{"interactive", "noninteractive"} {
					if reason == ReasonMicrosoftService || reason == ReasonTrustedNetwork || (reason == ReasonBoundToken && col == signin.ColTokenProtectionStatusDetails) {
						if sideName == "interactive" {
							continue // read on the non-interactive side only
						}
					}
					if reason == ReasonOtherSession && col == signin.ColAutonomousSystemNumber && (sideName == "interactive" || m == Strict) {
						continue // balanced reads the non-interactive ASN only; strict none
					}
					if reason == ReasonPlausibleVelocity && col == signin.ColAutonomousSystemNumber && sideName == "interactive" {
						continue // the non-interactive row's network only
					}
					t.Run(tc.name+"/"+m.String()+"/"+col+"/"+sideName, func(t *testing.T) {
						i, n := tc.i.x, tc.n.x
						if sideName == "interactive" {
							blank[col](&i)
						} else {
							blank[col](&n)
						}
						r := result(tc.i, tc.n, tc.gap)
						v := New(m, nil).Decide(&r, &i, &n)
						if !v.Keep && v.Reason == reason {
							t.Fatalf("still suppressed by %s without %s on the %s side", reason, col, sideName)
						}
						if len(v.Features.Unknown) == 0 {
							t.Errorf("no test reported as untestable: %+v", v.Features)
						}
					})
				}
			}
		}
	}
	// No extra columns at all (an export without them): every mode keeps
	// every pair, as exact does.
	for _, tc := range modeCases() {
		r := result(tc.i, tc.n, tc.gap)
		for _, m := range Modes {
			if v := New(m, nil).Decide(&r, nil, nil); !v.Keep && v.Reason != ReasonSameIPv6Network {
				t.Errorf("%s/%s: suppressed by %s with no extra columns", tc.name, m, v.Reason)
			}
		}
	}
}

// Over random combinations of columns, exact keeps everything and strict
// suppresses at least what balanced does (its tests are balanced's, made
// stricter, plus velocity).
func TestStrictSuppressesWhatBalancedDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	for range 20000 {
		mk := func() side {
			return side{pick("90.12.34.56", "90.99.1.1", "51.38.1.1", "52.97.1.1", "2a01:cb00:aa:bb::1", "2a01:cb00:aa:bb::2", "177.1.2.3"), pick("FR", "DE", ""),
				signin.Extra{SessionId: pick("", "s1", "s2"), AutonomousSystemNumber: pick("", "3215", "16276", "8075"), AppId: pick("", exchange, "other"),
					LocationDetails: pick("", lyon, geneva, saoPaulo), NetworkLocationDetails: pick("", "[]", trusted, "not json"),
					DeviceDetail: pick("", `{"deviceId":"d1"}`), TokenProtectionStatusDetails: pick("", `{"signInSessionStatus":"bound"}`)}}
		}
		i, n := mk(), mk()
		r := result(i, n, time.Duration(1+rng.IntN(120))*time.Minute)
		if !New(Exact, nil).Decide(&r, &i.x, &n.x).Keep {
			t.Fatal("exact suppressed a pair")
		}
		b, s := New(Balanced, nil).Decide(&r, &i.x, &n.x), New(Strict, nil).Decide(&r, &i.x, &n.x)
		if !b.Keep && s.Keep {
			t.Fatalf("balanced suppressed (%s) what strict kept: %+v / %+v", b.Reason, i, n)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Exact, "exact": Exact, "Balanced": Balanced, " strict ": Strict} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, m, err)
		}
	}
	if _, err := ParseMode("loose"); err == nil {
		t.Error("ParseMode(loose): no error")
	}
}

func TestLists(t *testing.T) {
	b := Bundled()
	if !b.Hosting("16276") || b.Hosting("3215") || !b.FirstParty(exchange) || !b.FirstParty("D3590ED6-52B3-4102-AEFF-AAD2292AB01C") {
		t.Error("bundled lists miss entries")
	}
	dir := t.TempDir()
	asns := filepath.Join(dir, "asns.csv")
	if err := os.WriteFile(asns, []byte("# mine\nAS3215,Orange # my ISP is hosting now\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Load(asns, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Hosting("3215") || l.Hosting("16276") || len(l.M365Ranges) != len(b.M365Ranges) {
		t.Errorf("replaced list: %+v", l.HostingASNs)
	}
	ranges := filepath.Join(dir, "ranges.txt")
	if err := os.WriteFile(ranges, []byte("not a cidr\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", ranges, ""); err == nil {
		t.Error("a bad range list loaded")
	}
	// With the hosting list replaced, the A1 pair on OVH is same-network.
	vps := side{"51.38.1.1", "DE", signin.Extra{SessionId: "sid-laptop", AutonomousSystemNumber: "16276"}}
	vps2 := with(vps, func(s *side) { s.ip, s.country = "54.36.9.9", "FR" })
	r := result(vps, vps2, time.Hour)
	if v := New(Balanced, l).Decide(&r, &vps.x, &vps2.x); v.Keep {
		t.Errorf("with OVH off the hosting list, the same-provider pair is kept: %+v", v)
	}
}

func TestStatsString(t *testing.T) {
	var s Stats
	s.Mode = Balanced
	s.Add(Verdict{Keep: true, Features: Features{Unknown: []string{string(ReasonOtherSession)}}})
	s.Add(Verdict{Reason: ReasonSameNetwork})
	s.Add(Verdict{Reason: ReasonSameNetwork})
	want := "precision balanced: kept 1 of 3 exact pairs; suppressed same-network=2; could not test (kept) other-session=1"
	if got := s.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
