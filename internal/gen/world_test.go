package gen

import (
	"math"
	"net/netip"
	"regexp"
	"testing"
)

// Every address range belongs to one country and one kind of network, so an
// IP's Location is consistent across users and office ranges stay safe to
// list as KnownSafeNetworks.
func TestAddressRangesDoNotOverlap(t *testing.T) {
	type owned struct {
		p     netip.Prefix
		owner string
	}
	var all []owned
	for _, c := range countries {
		for _, p := range c.isp {
			all = append(all, owned{p, c.code + " isp"})
		}
		for _, p := range c.hosting {
			all = append(all, owned{p, c.code + " hosting"})
		}
		if c.isp6.IsValid() {
			all = append(all, owned{c.isp6, c.code + " isp6"})
		}
		if c.office.IsValid() {
			all = append(all, owned{c.office, c.code + " office"})
		}
		if p, ok := hosting6[c.code]; ok {
			all = append(all, owned{p, c.code + " hosting6"})
		}
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.p.Overlaps(b.p) {
				t.Errorf("%s %s overlaps %s %s", a.owner, a.p, b.owner, b.p)
			}
		}
	}
}

func TestRandomAddrStaysInPrefix(t *testing.T) {
	r := newRand(1, 1)
	for _, s := range []string{"73.0.0.0/8", "98.192.0.0/10", "2a03:b0c0:2::/48", "2400:6180:0:d0::/64", "185.220.100.0/22"} {
		p := netip.MustParsePrefix(s)
		for range 1000 {
			if a := randomAddr(r, p); !p.Contains(a) {
				t.Fatalf("%s drew %s", p, a)
			}
		}
	}
}

func TestPoissonMean(t *testing.T) {
	r := newRand(3, 3)
	for _, lambda := range []float64{0.05, 2, 20, 45} {
		const n = 20000
		sum := 0
		for range n {
			sum += poisson(r, lambda)
		}
		if mean := float64(sum) / n; math.Abs(mean-lambda) > 4*math.Sqrt(lambda/n) {
			t.Errorf("poisson(%v) mean %v", lambda, mean)
		}
	}
}

func TestGUIDFormat(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	r := newRand(5, 5)
	for range 100 {
		if g := newGUID(r).String(); !re.MatchString(g) {
			t.Fatalf("GUID %q", g)
		}
	}
}
