package gen

import (
	"fmt"
	"math/rand/v2"
)

// The labeled tenant's world: countries with their networks, and the
// prefix table every address is drawn from (prefix -> ASN, kind, country,
// empty-geo probability). Hosting ASNs are global: one provider's ASN
// serves many countries, as OVH's 16276 does, so a same-provider AiTM
// proxy and replay VPS share it.

// netKind is what a network is, for the benign and attack models.
type netKind string

const (
	kindISP     netKind = "isp"
	kindMobile  netKind = "mobile"
	kindBiz     netKind = "business"
	kindHosting netKind = "hosting"
	kindM365    netKind = "m365-service"
	kindSASE    netKind = "sase"
	kindRelay   netKind = "relay"
)

// lnet is one network of the prefix table: an ASN in one country and its
// address space (an IPv4 /16 and an IPv6 /32).
type lnet struct {
	asn     int
	kind    netKind
	country string
	v4      [2]byte // the /16
	v6      uint32  // the first 32 bits of its /32
}

func (n *lnet) addr4(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d", n.v4[0], n.v4[1], r.IntN(256), 1+r.IntN(254))
}

// prefix64 returns a random /64 of the network as its first four hextets.
func (n *lnet) prefix64(r *rand.Rand) string {
	return fmt.Sprintf("%x:%x:%x:%x", n.v6>>16, n.v6&0xffff, r.IntN(1<<16), r.IntN(1<<16))
}

// addr6 returns an address in the /64 p (a temporary address: RFC 8981).
func addr6(r *rand.Rand, p string) string {
	return fmt.Sprintf("%s:%x:%x:%x:%x", p, 1+r.IntN(1<<16-1), r.IntN(1<<16), r.IntN(1<<16), 1+r.IntN(1<<16-1))
}

// lcountry is a country of the labeled tenant.
type lcountry struct {
	code      string
	lat, lon  float64
	tz        int // hours from UTC (standard time is enough for a week)
	weight    int // share of users living there
	v6Home    float64
	v6Mobile  float64
	isp       *lnet
	mobile    *lnet
	biz       *lnet
	near      []string // neighbours (< ~800 km) for geo-IP skew, commuting and nearby proxies
	m365      []string // the Azure regions' countries its Microsoft 365 service egress geolocates to
	cloudPC   []string // Windows 365 regions a user of the country gets
	residents bool
}

var lcountries = map[string]*lcountry{}
var lcountryOrder []string

// hosting providers: one global ASN each, with the countries their VPS
// are rented in. 8075 is Azure (VMs outside the Microsoft 365 ranges).
type provider struct {
	asn       int
	v4First   byte
	v6        uint32
	countries []string
}

var providers = []provider{
	{16276, 51, 0x20010041, []string{"FR", "DE", "GB", "PL", "US"}},      // OVH
	{24940, 49, 0x2a0104f8, []string{"DE", "US"}},                        // Hetzner
	{14061, 159, 0x2a030b00, []string{"NL", "GB", "US", "DE", "IN"}},     // DigitalOcean
	{16509, 3, 0x2a050d00, []string{"US", "DE", "IE", "GB", "FR", "IN"}}, // AWS
	{20473, 45, 0x20014860, []string{"NL", "US", "GB", "DE"}},            // Vultr
}

var azure = provider{8075, 20, 0x2603c020, []string{"NL", "IE", "FR", "DE", "GB", "US", "CH", "IN"}}

// hostingNet returns the network of provider p in country c.
func hostingNet(p provider, c string) *lnet {
	k := 0
	for i, cc := range lcountryOrder {
		if cc == c {
			k = i
		}
	}
	return &lnet{asn: p.asn, kind: kindHosting, country: c, v4: [2]byte{p.v4First, byte(40 + k)}, v6: p.v6 + uint32(k)}
}

// The Microsoft 365 service egress (in the bundled m365 ranges: 52.96.0.0/14)
// per Azure region country; the SASE provider's POPs (Zscaler, AS53813); the
// iCloud Private Relay egress (Cloudflare, AS13335).
func m365Net(c string) *lnet {
	return &lnet{asn: 8075, kind: kindM365, country: c, v4: [2]byte{52, byte(96 + len(c)%4)}, v6: 0x26031026}
}

func saseNet(c string) *lnet {
	k := 0
	for i, cc := range lcountryOrder {
		if cc == c {
			k = i
		}
	}
	return &lnet{asn: 53813, kind: kindSASE, country: c, v4: [2]byte{165, byte(225 + k%30)}, v6: 0x2a0c7c00 + uint32(k)}
}

func relayNet(c string) *lnet {
	k := 0
	for i, cc := range lcountryOrder {
		if cc == c {
			k = i
		}
	}
	return &lnet{asn: 13335, kind: kindRelay, country: c, v4: [2]byte{172, byte(64 + k)}, v6: 0x2a09bac0 + uint32(k)}
}

func init() {
	type spec struct {
		code                 string
		lat, lon             float64
		tz, weight           int
		v6Home, v6Mobile     float64
		isp, mobile, biz     int
		ispV4, mobV4, bizV4  byte
		near, m365, cloudPCs []string
	}
	// v6 shares per research §6 (APNIC/Akamai per carrier; DE/BE ~50%,
	// US carriers > 70%, ES/IT/PL low, India carriers 60-70%).
	specs := []spec{
		{"US", 40.71, -74.0, -5, 30, 0.70, 0.80, 7922, 21928, 701, 73, 172, 65, []string{"CA"}, []string{"US"}, []string{"US"}},
		{"GB", 51.51, -0.13, 0, 12, 0.45, 0.60, 2856, 12576, 5089, 81, 82, 62, []string{"IE", "FR", "NL", "BE"}, []string{"GB", "IE"}, []string{"GB", "IE"}},
		{"DE", 52.52, 13.40, 1, 12, 0.55, 0.60, 3320, 3209, 6805, 84, 88, 89, []string{"NL", "BE", "FR", "CH", "AT", "PL", "CZ", "DK"}, []string{"DE", "NL", "IE"}, []string{"DE", "NL"}},
		{"FR", 48.86, 2.35, 1, 12, 0.50, 0.55, 3215, 5410, 15557, 90, 176, 77, []string{"BE", "DE", "CH", "ES", "LU", "IT"}, []string{"FR", "NL", "IE"}, []string{"FR", "NL"}},
		{"NL", 52.37, 4.90, 1, 6, 0.40, 0.50, 1136, 33915, 1103, 86, 83, 145, []string{"BE", "DE", "GB"}, []string{"NL", "IE"}, []string{"NL"}},
		{"ES", 40.42, -3.70, 1, 6, 0.05, 0.10, 3352, 12430, 12479, 83, 95, 91, []string{"FR", "PT"}, []string{"ES", "FR", "NL", "IE"}, []string{"ES", "FR"}},
		{"IT", 41.90, 12.50, 1, 6, 0.07, 0.10, 3269, 30722, 12874, 79, 93, 151, []string{"FR", "CH", "AT", "SI"}, []string{"IT", "NL", "IE"}, []string{"IT", "NL"}},
		{"PL", 52.23, 21.01, 1, 5, 0.14, 0.20, 5617, 39603, 12741, 83, 37, 31, []string{"DE", "CZ", "SK", "LT"}, []string{"PL", "NL", "DE"}, []string{"PL", "DE"}},
		{"BE", 50.85, 4.35, 1, 3, 0.55, 0.60, 5432, 47377, 6848, 87, 94, 81, []string{"FR", "NL", "DE", "LU"}, []string{"NL", "IE"}, []string{"NL"}},
		{"CH", 46.20, 6.14, 1, 3, 0.40, 0.50, 3303, 6730, 15796, 85, 178, 195, []string{"FR", "DE", "IT", "AT"}, []string{"CH", "NL", "IE"}, []string{"CH", "NL"}},
		{"IN", 12.97, 77.59, 5, 5, 0.65, 0.70, 55836, 24560, 9498, 49, 106, 14, []string{"LK", "BD"}, []string{"IN"}, []string{"IN"}},
		// Countries without tenant users: neighbours, travel and attackers.
		{"IE", 53.35, -6.26, 0, 0, 0.3, 0.4, 5466, 15502, 2110, 86, 109, 89, []string{"GB"}, []string{"IE"}, []string{"IE"}},
		{"AT", 48.21, 16.37, 1, 0, 0.3, 0.4, 8447, 25255, 1901, 80, 91, 62, []string{"DE", "CH", "IT", "CZ"}, []string{"NL"}, []string{"NL"}},
		{"LU", 49.61, 6.13, 1, 0, 0.3, 0.4, 6661, 56665, 2602, 92, 85, 158, []string{"FR", "BE", "DE"}, []string{"NL"}, []string{"NL"}},
		{"CA", 43.65, -79.38, -5, 0, 0.4, 0.5, 812, 577, 6327, 99, 142, 24, []string{"US"}, []string{"CA"}, []string{"CA"}},
		{"PT", 38.72, -9.14, 0, 0, 0.3, 0.4, 3243, 12353, 8657, 188, 89, 213, []string{"ES"}, []string{"NL"}, []string{"NL"}},
		{"CZ", 50.08, 14.44, 1, 0, 0.2, 0.3, 5610, 16019, 6830, 46, 109, 193, []string{"DE", "PL", "AT", "SK"}, []string{"NL"}, []string{"NL"}},
		{"BR", -23.55, -46.63, -3, 0, 0.4, 0.5, 26599, 28573, 18881, 177, 187, 200, []string{"AR"}, []string{"BR"}, []string{"BR"}},
		{"SG", 1.35, 103.82, 8, 0, 0.4, 0.5, 9506, 4773, 7473, 116, 118, 202, []string{"MY"}, []string{"SG"}, []string{"SG"}},
		{"NG", 6.52, 3.38, 1, 0, 0.1, 0.1, 29465, 36873, 37148, 102, 105, 197, []string{"BJ"}, []string{"NL"}, []string{"NL"}},
		{"BD", 23.81, 90.41, 6, 0, 0.1, 0.2, 24389, 24432, 58717, 103, 114, 203, []string{"IN"}, []string{"IN"}, []string{"IN"}},
		{"LK", 6.93, 79.85, 5, 0, 0.1, 0.2, 9329, 18001, 38229, 112, 124, 220, []string{"IN"}, []string{"IN"}, []string{"IN"}},
		{"RU", 55.76, 37.62, 3, 0, 0.1, 0.1, 12389, 8359, 3216, 95, 176, 212, []string{"BY"}, []string{"NL"}, []string{"NL"}},
	}
	for k, s := range specs {
		c := &lcountry{code: s.code, lat: s.lat, lon: s.lon, tz: s.tz, weight: s.weight, v6Home: s.v6Home, v6Mobile: s.v6Mobile,
			near: s.near, m365: s.m365, cloudPC: s.cloudPCs, residents: s.weight > 0}
		c.isp = &lnet{asn: s.isp, kind: kindISP, country: s.code, v4: [2]byte{s.ispV4, byte(10 + k)}, v6: 0x2a010000 + uint32(k)<<8}
		c.mobile = &lnet{asn: s.mobile, kind: kindMobile, country: s.code, v4: [2]byte{s.mobV4, byte(100 + k)}, v6: 0x2a020000 + uint32(k)<<8}
		c.biz = &lnet{asn: s.biz, kind: kindBiz, country: s.code, v4: [2]byte{s.bizV4, byte(200 + k)}, v6: 0x2a030000 + uint32(k)<<8}
		lcountries[s.code] = c
		lcountryOrder = append(lcountryOrder, s.code)
	}
}

// country returns a known country, falling back to a neighbour's network
// for codes only named as neighbours (their rows use that code).
func lcountryOf(code string) *lcountry {
	if c, ok := lcountries[code]; ok {
		return c
	}
	return nil
}

// nearKnown returns a neighbour of c with networks of its own.
func nearKnown(r *rand.Rand, c *lcountry) *lcountry {
	var ok []*lcountry
	for _, n := range c.near {
		if k := lcountryOf(n); k != nil {
			ok = append(ok, k)
		}
	}
	if len(ok) == 0 {
		return c
	}
	return ok[r.IntN(len(ok))]
}

// farCountry returns a country other than c and its neighbours.
func farCountry(r *rand.Rand, c *lcountry) *lcountry {
	for {
		k := lcountries[lcountryOrder[r.IntN(len(lcountryOrder))]]
		if k == c {
			continue
		}
		near := false
		for _, n := range c.near {
			near = near || n == k.code
		}
		if !near {
			return k
		}
	}
}

func locationDetails(c *lcountry, r *rand.Rand) string {
	return fmt.Sprintf(`{"city":"","countryOrRegion":%q,"geoCoordinates":{"latitude":%.2f,"longitude":%.2f}}`,
		c.code, c.lat+r.Float64()*0.2-0.1, c.lon+r.Float64()*0.2-0.1)
}

const labeledEmptyLocation = `{"city":"","state":"","countryOrRegion":""}`
