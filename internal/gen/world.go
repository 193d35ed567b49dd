package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
)

// The static world the generator draws from: countries with cities, ISP and
// hosting address ranges, apps, client platforms and result codes. The values
// are shaped like Entra ID sign-in logs; address ranges are plausible public
// ranges of the named kind of network, nothing more.

type city struct {
	name, state string
	lat, lon    float64
	details     string // LocationDetails JSON, filled by init
}

type country struct {
	code     string
	utc      int // typical UTC offset in hours, for the daily curve
	weight   int // share of the tenant's users living there
	cities   []city
	isp      []netip.Prefix // residential and mobile IPv4
	isp6     netip.Prefix   // residential IPv6
	office   netip.Prefix   // the company's office egress range there
	attacker bool           // appears as an attacker's country (hosting ranges)
	hosting  []netip.Prefix
	asn      string
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var countries = []*country{
	{code: "US", utc: -6, weight: 36, asn: "7922",
		cities: []city{{name: "Seattle", state: "Washington", lat: 47.6062, lon: -122.3321}, {name: "New York", state: "New York", lat: 40.7128, lon: -74.006}, {name: "Chicago", state: "Illinois", lat: 41.8781, lon: -87.6298}, {name: "Austin", state: "Texas", lat: 30.2672, lon: -97.7431}},
		isp:    []netip.Prefix{pfx("73.0.0.0/8"), pfx("98.192.0.0/10"), pfx("172.56.0.0/14")}, isp6: pfx("2601::/20"), office: pfx("131.107.0.0/16"),
		attacker: true, hosting: []netip.Prefix{pfx("45.61.128.0/18"), pfx("104.234.0.0/16")}},
	{code: "GB", utc: 0, weight: 12, asn: "2856",
		cities: []city{{name: "London", state: "London", lat: 51.5074, lon: -0.1278}, {name: "Manchester", state: "Manchester", lat: 53.4808, lon: -2.2426}},
		isp:    []netip.Prefix{pfx("86.128.0.0/10"), pfx("81.128.0.0/11")}, isp6: pfx("2a00:23c0::/28"), office: pfx("194.176.96.0/20")},
	{code: "DE", utc: 1, weight: 10, asn: "3320",
		cities: []city{{name: "Berlin", state: "Berlin", lat: 52.52, lon: 13.405}, {name: "Munich", state: "Bayern", lat: 48.1351, lon: 11.582}, {name: "Frankfurt am Main", state: "Hessen", lat: 50.1109, lon: 8.6821}},
		isp:    []netip.Prefix{pfx("91.0.0.0/10"), pfx("87.128.0.0/10")}, isp6: pfx("2003::/19"), office: pfx("193.28.64.0/20")},
	{code: "FR", utc: 1, weight: 6, asn: "3215",
		cities: []city{{name: "Paris", state: "Paris", lat: 48.8566, lon: 2.3522}, {name: "Lyon", state: "Auvergne-Rhone-Alpes", lat: 45.764, lon: 4.8357}},
		isp:    []netip.Prefix{pfx("90.0.0.0/9"), pfx("86.192.0.0/11")}, isp6: pfx("2a01:cb00::/24"), office: pfx("193.56.128.0/20")},
	{code: "IN", utc: 5, weight: 8, asn: "55836",
		cities: []city{{name: "Bengaluru", state: "Karnataka", lat: 12.9716, lon: 77.5946}, {name: "Mumbai", state: "Maharashtra", lat: 19.076, lon: 72.8777}},
		isp:    []netip.Prefix{pfx("49.36.0.0/14"), pfx("106.192.0.0/11")}, isp6: pfx("2409:4000::/22"), office: pfx("203.199.0.0/16")},
	{code: "CA", utc: -5, weight: 5, asn: "812",
		cities: []city{{name: "Toronto", state: "Ontario", lat: 43.6532, lon: -79.3832}, {name: "Vancouver", state: "British Columbia", lat: 49.2827, lon: -123.1207}},
		isp:    []netip.Prefix{pfx("174.112.0.0/12"), pfx("99.224.0.0/11")}, isp6: pfx("2607:fea8::/32"), office: pfx("192.197.0.0/16")},
	{code: "JP", utc: 9, weight: 4, asn: "17676",
		cities: []city{{name: "Tokyo", state: "Tokyo", lat: 35.6762, lon: 139.6503}, {name: "Osaka", state: "Osaka", lat: 34.6937, lon: 135.5023}},
		isp:    []netip.Prefix{pfx("126.0.0.0/8")}, isp6: pfx("240b:10::/28"), office: pfx("210.130.0.0/16")},
	{code: "BR", utc: -3, weight: 4, asn: "28573",
		cities: []city{{name: "Sao Paulo", state: "Sao Paulo", lat: -23.5505, lon: -46.6333}, {name: "Rio De Janeiro", state: "Rio De Janeiro", lat: -22.9068, lon: -43.1729}},
		isp:    []netip.Prefix{pfx("177.32.0.0/11"), pfx("189.0.0.0/11")}, isp6: pfx("2804:14c::/32"), office: pfx("200.160.0.0/16")},
	{code: "AU", utc: 10, weight: 4, asn: "1221",
		cities: []city{{name: "Sydney", state: "New South Wales", lat: -33.8688, lon: 151.2093}, {name: "Melbourne", state: "Victoria", lat: -37.8136, lon: 144.9631}},
		isp:    []netip.Prefix{pfx("101.160.0.0/11"), pfx("120.144.0.0/12")}, isp6: pfx("2001:8003::/32"), office: pfx("203.2.0.0/16")},
	{code: "NL", utc: 1, weight: 3, asn: "1136",
		cities: []city{{name: "Amsterdam", state: "Noord-Holland", lat: 52.3676, lon: 4.9041}},
		isp:    []netip.Prefix{pfx("84.80.0.0/12")}, isp6: pfx("2a02:a440::/29"), office: pfx("145.0.0.0/16"),
		attacker: true, hosting: []netip.Prefix{pfx("185.220.100.0/22"), pfx("89.39.104.0/21")}},
	{code: "ES", utc: 1, weight: 3, asn: "3352",
		cities: []city{{name: "Madrid", state: "Madrid", lat: 40.4168, lon: -3.7038}, {name: "Barcelona", state: "Catalunya", lat: 41.3874, lon: 2.1686}},
		isp:    []netip.Prefix{pfx("83.32.0.0/11")}, isp6: pfx("2a0c:5a80::/29"), office: pfx("195.53.0.0/16")},
	{code: "PL", utc: 1, weight: 3, asn: "5617",
		cities: []city{{name: "Warsaw", state: "Mazowieckie", lat: 52.2297, lon: 21.0122}},
		isp:    []netip.Prefix{pfx("83.0.0.0/11")}, isp6: pfx("2a01:110::/32"), office: pfx("194.181.0.0/16")},
	{code: "SG", utc: 8, weight: 2, asn: "9506",
		cities: []city{{name: "Singapore", state: "Singapore", lat: 1.3521, lon: 103.8198}},
		isp:    []netip.Prefix{pfx("116.86.0.0/15")}, isp6: pfx("2406:3003::/32"), office: pfx("203.116.0.0/16"),
		attacker: true, hosting: []netip.Prefix{pfx("139.59.192.0/18"), pfx("159.89.192.0/18")}},
	// Attacker-only countries: no users live there.
	{code: "RU", utc: 3, asn: "8402",
		cities:   []city{{name: "Moscow", state: "Moscow", lat: 55.7558, lon: 37.6173}},
		attacker: true, hosting: []netip.Prefix{pfx("95.165.0.0/16"), pfx("5.188.0.0/16")}},
	{code: "NG", utc: 1, asn: "29465",
		cities:   []city{{name: "Lagos", state: "Lagos", lat: 6.5244, lon: 3.3792}},
		attacker: true, hosting: []netip.Prefix{pfx("102.89.0.0/16"), pfx("105.112.0.0/12")}},
	{code: "RO", utc: 2, asn: "8708",
		cities:   []city{{name: "Bucharest", state: "Bucuresti", lat: 44.4268, lon: 26.1025}},
		attacker: true, hosting: []netip.Prefix{pfx("89.34.0.0/16"), pfx("185.181.60.0/22")}},
	{code: "VN", utc: 7, asn: "45899",
		cities:   []city{{name: "Hanoi", state: "Ha Noi", lat: 21.0278, lon: 105.8342}},
		attacker: true, hosting: []netip.Prefix{pfx("113.160.0.0/11")}},
}

// homeCountries and attackerCountries index into countries.
var homeCountries, attackerCountries, homeWeights []int

func init() {
	for i, c := range countries {
		for j := range c.cities {
			ct := &c.cities[j]
			ct.details = fmt.Sprintf(`{"city":%q,"state":%q,"countryOrRegion":%q,"geoCoordinates":{"latitude":%s,"longitude":%s}}`,
				ct.name, ct.state, c.code, strconv.FormatFloat(ct.lat, 'f', -1, 64), strconv.FormatFloat(ct.lon, 'f', -1, 64))
		}
		if c.weight > 0 {
			homeCountries = append(homeCountries, i)
			homeWeights = append(homeWeights, c.weight)
		}
		if c.attacker {
			attackerCountries = append(attackerCountries, i)
		}
	}
}

// emptyLocationDetails is what Entra writes when it could not place an IP.
const emptyLocationDetails = `{"city":"","state":"","countryOrRegion":"","geoCoordinates":{}}`

// pickWeighted returns an index into w, drawn with probability w[i]/sum(w).
func pickWeighted(r *rand.Rand, w []int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := r.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

// randomAddr draws an address inside p, avoiding the all-zero and all-ones
// host parts so IPv4 results look like host addresses.
func randomAddr(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for {
		out := make([]byte, len(b))
		copy(out, b)
		for i := range out {
			lo := i * 8
			if lo+8 <= bits {
				continue
			}
			rnd := byte(r.Uint32())
			if lo < bits { // partial byte: keep the network bits
				keep := byte(0xff << (8 - (bits - lo)))
				out[i] = out[i]&keep | rnd&^keep
			} else {
				out[i] = rnd
			}
		}
		last := out[len(out)-1]
		if len(out) == 4 && (last == 0 || last == 255) {
			continue
		}
		a, _ := netip.AddrFromSlice(out)
		return a
	}
}

// app is a client application with the resource it usually asks a token for.
type app struct {
	name, id         string
	resource, resID  string
	interactive      bool // users sign in to it interactively
	nonInteractive   bool // it refreshes tokens silently
	clientAppBrowser bool // ClientAppUsed "Browser" rather than the desktop/mobile client
}

const (
	graphID    = "00000003-0000-0000-c000-000000000000"
	exchangeID = "00000002-0000-0ff1-ce00-000000000000"
	spoID      = "00000003-0000-0ff1-ce00-000000000000"
)

var apps = []app{
	{name: "OfficeHome", id: "4765445b-32c6-49b0-83e6-1d93765276ca", resource: "OfficeHome", resID: "4765445b-32c6-49b0-83e6-1d93765276ca", interactive: true, clientAppBrowser: true},
	{name: "One Outlook Web", id: "9199bf20-a13f-4107-85dc-02114787ef48", resource: "Office 365 Exchange Online", resID: exchangeID, interactive: true, nonInteractive: true, clientAppBrowser: true},
	{name: "Microsoft Teams", id: "1fec8e78-bce4-4aaf-ab1b-5451cc387264", resource: "Microsoft Teams Services", resID: "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", interactive: true, nonInteractive: true},
	{name: "Microsoft Office", id: "d3590ed6-52b3-4102-aeff-aad2292ab01c", resource: "Microsoft Graph", resID: graphID, interactive: true, nonInteractive: true},
	{name: "Office365 Shell WCSS-Client", id: "89bee1f7-5e6e-4d8a-9f3d-ecd601259da7", resource: "Office365 Shell WCSS-Server", resID: "5f09333a-842c-47da-a157-57da27fcbca5", nonInteractive: true, clientAppBrowser: true},
	{name: "Microsoft Authentication Broker", id: "29d9ed98-a469-4536-ade2-f981bc1d605e", resource: "Microsoft Graph", resID: graphID, interactive: true, nonInteractive: true},
	{name: "OneDrive SyncEngine", id: "ab9b8c07-8f02-4f72-87fa-80105867a763", resource: "Office 365 SharePoint Online", resID: spoID, nonInteractive: true},
	{name: "Azure Portal", id: "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", resource: "Windows Azure Service Management API", resID: "797f4846-ba00-4fd7-ba43-dac1f8f63013", interactive: true, nonInteractive: true, clientAppBrowser: true},
	{name: "Outlook Mobile", id: "27922004-5251-4030-b22d-91ecd9a37ea4", resource: "Office 365 Exchange Online", resID: exchangeID, nonInteractive: true},
	{name: "SharePoint Online Web Client Extensibility", id: "08e18876-6177-487e-b8b5-cf950c1e598c", resource: "Microsoft Graph", resID: graphID, nonInteractive: true, clientAppBrowser: true},
}

var interactiveApps, interactiveAppWeights, niApps, niAppWeights []int

func init() {
	iw := map[string]int{"OfficeHome": 30, "One Outlook Web": 20, "Microsoft Teams": 15, "Microsoft Office": 15, "Microsoft Authentication Broker": 12, "Azure Portal": 8}
	nw := map[string]int{"Microsoft Teams": 25, "Microsoft Office": 15, "One Outlook Web": 12, "Office365 Shell WCSS-Client": 12, "Microsoft Authentication Broker": 10, "OneDrive SyncEngine": 12, "Azure Portal": 3, "Outlook Mobile": 6, "SharePoint Online Web Client Extensibility": 5}
	for i, a := range apps {
		if a.interactive {
			interactiveApps = append(interactiveApps, i)
			interactiveAppWeights = append(interactiveAppWeights, iw[a.name])
		}
		if a.nonInteractive {
			niApps = append(niApps, i)
			niAppWeights = append(niAppWeights, nw[a.name])
		}
	}
}

// platform is a user's device and client software.
type platform struct {
	os, browser string
	browserUA   string // the UserAgent a browser sign-in sends
	nativeUA    string // the UserAgent the native/MSAL client sends
	trust       string
	mobile      bool
}

var platforms = []platform{
	{os: "Windows10", browser: "Edge 131.0.0", trust: "Azure AD joined",
		browserUA: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		nativeUA:  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0 Teams/24295.605.3225.8804/49"},
	{os: "Windows10", browser: "Chrome 131.0.0", trust: "Hybrid Azure AD joined",
		browserUA: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		nativeUA:  "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)"},
	{os: "Windows11", browser: "Edge 130.0.0", trust: "Azure AD joined",
		browserUA: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80",
		nativeUA:  "Microsoft SkyDriveSync 24.201.1006.0005 ship; Windows NT 10.0 (22631)"},
	{os: "MacOs", browser: "Safari 18.1", trust: "",
		browserUA: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		nativeUA:  "Microsoft Office/16.0 (Macintosh; Mac OS X 14.7.1; Microsoft Outlook 16.91.24111020)"},
	{os: "MacOs", browser: "Chrome 131.0.0", trust: "",
		browserUA: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		nativeUA:  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Teams/24295.606.3238.6194"},
	{os: "Ios", browser: "Mobile Safari 18.1", trust: "", mobile: true,
		browserUA: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Mobile/15E148 Safari/604.1",
		nativeUA:  "Outlook-iOS/723.4027091.prod.iphone (4.2446.0)"},
	{os: "Android", browser: "Chrome Mobile 131.0.6778", trust: "", mobile: true,
		browserUA: "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
		nativeUA:  "Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007) PKeyAuth/1.0 Teams/1416/1.0.0.2024223703"},
}

var platformWeights = []int{30, 20, 15, 10, 5, 12, 8}

// attackerUAs are what token replay tools and attacker browsers send.
var attackerUAs = []string{
	"python-requests/2.32.3",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"axios/1.7.7",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
}

// outcome is a sign-in result: ResultType and what the row says about it.
type outcome struct {
	code       string // ResultType
	errorCode  int
	reason     string // Status.failureReason and ResultDescription
	stepDetail string // AuthenticationDetails authenticationStepResultDetail
	weight     int    // per 10,000 rows
	caFailure  bool   // a Conditional Access block
	statusJSON string // filled by init
}

var successOutcome = &outcome{code: "0", stepDetail: "Correct password"}

var interactiveFailures = []*outcome{
	{code: "50126", errorCode: 50126, weight: 300, reason: "Error validating credentials due to invalid username or password.", stepDetail: "Invalid username or password or Invalid on-premise username or password."},
	{code: "50074", errorCode: 50074, weight: 280, reason: "Strong Authentication is required.", stepDetail: "User needs to perform multi-factor authentication"},
	{code: "50140", errorCode: 50140, weight: 260, reason: "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.", stepDetail: "Correct password"},
	{code: "500121", errorCode: 500121, weight: 90, reason: "Authentication failed during strong authentication request.", stepDetail: "MFA denied; user declined the authentication"},
	{code: "53003", errorCode: 53003, weight: 80, reason: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", stepDetail: "Correct password", caFailure: true},
	{code: "50055", errorCode: 50055, weight: 20, reason: "The password is expired.", stepDetail: "Password expired"},
	{code: "50053", errorCode: 50053, weight: 15, reason: "Account is locked because user tried to sign in too many times with an incorrect user ID or password.", stepDetail: "Account locked"},
}

var niFailures = []*outcome{
	{code: "50173", errorCode: 50173, weight: 120, reason: "The provided grant has expired due to it being revoked, a fresh auth token is needed.", stepDetail: "Token was revoked"},
	{code: "70044", errorCode: 70044, weight: 110, reason: "The session has expired or is invalid due to sign-in frequency checks by conditional access.", stepDetail: "Session expired"},
	{code: "700082", errorCode: 700082, weight: 90, reason: "The refresh token has expired due to inactivity.", stepDetail: "Refresh token expired"},
	{code: "50078", errorCode: 50078, weight: 70, reason: "Presented multi-factor authentication has expired due to policies configured by your administrator, you must refresh your multi-factor authentication to access this resource.", stepDetail: "MFA expired"},
	{code: "50133", errorCode: 50133, weight: 40, reason: "Session is invalid due to expiration or recent password change.", stepDetail: "Session invalidated"},
	{code: "65001", errorCode: 65001, weight: 20, reason: "The user or administrator has not consented to use the application.", stepDetail: "Consent required"},
	{code: "50097", errorCode: 50097, weight: 30, reason: "Device authentication is required.", stepDetail: "Device authentication required"},
}

var niSuccessDetails = []string{
	"MFA requirement satisfied by claim in the token",
	"First factor requirement satisfied by claim in the token",
	"MFA requirement satisfied by claim provided by external provider",
}

func init() {
	successOutcome.statusJSON = `{"errorCode":0}`
	for _, list := range [][]*outcome{interactiveFailures, niFailures} {
		for _, o := range list {
			o.statusJSON = fmt.Sprintf(`{"errorCode":%d,"failureReason":%q}`, o.errorCode, o.reason)
		}
	}
}

// pickOutcome returns success or one of the failures with their weights per 10,000.
func pickOutcome(r *rand.Rand, failures []*outcome) *outcome {
	n := r.IntN(10000)
	for _, o := range failures {
		if n < o.weight {
			return o
		}
		n -= o.weight
	}
	return successOutcome
}

var firstNames = []string{"Adele", "Alex", "Amira", "Ana", "Ben", "Carlos", "Chen", "Chloe", "Daniel", "Diego", "Elena", "Emma", "Fatima", "Grace", "Hannah", "Hiro", "Isabel", "Ivan", "James", "Jana", "Joni", "Kenji", "Lars", "Laura", "Lee", "Lidia", "Lynne", "Maria", "Megan", "Miriam", "Nestor", "Noah", "Olga", "Omar", "Patti", "Pradeep", "Priya", "Raul", "Sakura", "Sara", "Sofia", "Tom", "Yuki", "Zoe"}
var lastNames = []string{"Adams", "Allan", "Brown", "Chen", "Cruz", "Dubois", "Fischer", "Garcia", "Gonzalez", "Ito", "Jensen", "Kapoor", "Kowalski", "Lopez", "Martin", "Meyer", "Miller", "Muller", "Nakamura", "Novak", "Patel", "Rossi", "Santos", "Schmidt", "Sharma", "Silva", "Smith", "Suzuki", "Tanaka", "Taylor", "Varga", "Wilber", "Wilson", "Wright", "Young"}

// dailyCurve weights sign-in activity by local hour; mean 1 over the day.
var dailyCurve = func() [24]float64 {
	raw := [24]float64{0.08, 0.05, 0.04, 0.04, 0.05, 0.1, 0.3, 0.9, 1.9, 2.4, 2.4, 2.2, 1.8, 2.1, 2.3, 2.2, 1.9, 1.4, 0.9, 0.6, 0.5, 0.4, 0.25, 0.12}
	sum := 0.0
	for _, v := range raw {
		sum += v
	}
	for i := range raw {
		raw[i] *= 24 / sum
	}
	return raw
}()

// poisson draws a Poisson(lambda) count: Knuth's method for small lambda,
// a rounded normal approximation above 30 where Knuth gets slow.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		n := int(math.Round(lambda + math.Sqrt(lambda)*r.NormFloat64()))
		return max(n, 0)
	}
	l := math.Exp(-lambda)
	k, p := 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
