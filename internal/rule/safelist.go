package rule

import (
	"fmt"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// SafeList is the rule's KnownSafeIPs and KnownSafeNetworks.
// The zero value (and nil) contains nothing.
type SafeList struct {
	ips map[string]struct{}
	v4  *netipx.IPSet
	v6  *netipx.IPSet // only consulted with HonorIPv6Networks
}

// SafeListOptions change how a SafeList matches.
type SafeListOptions struct {
	// HonorIPv6Networks matches IPv6 addresses against IPv6 CIDRs in the
	// networks list. KQL's ipv4_lookup never does, so the default is off.
	HonorIPv6Networks bool
}

// NewSafeList builds a SafeList. ips match by exact string, as KQL `in`;
// networks are CIDRs (a bare address counts as /32 or /128). An invalid entry
// is an error naming it.
func NewSafeList(ips, networks []string, opts SafeListOptions) (*SafeList, error) {
	s := &SafeList{ips: make(map[string]struct{}, len(ips))}
	for _, ip := range ips {
		ip = strings.TrimSpace(ip)
		if ip == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("safe IP %q: not an IP address", ip)
		}
		s.ips[ip] = struct{}{}
	}
	var b4, b6 netipx.IPSetBuilder
	for _, n := range networks {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		p, err := parsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("safe network %q: %v", n, err)
		}
		if p.Addr().Is4() {
			b4.AddPrefix(p)
		} else if opts.HonorIPv6Networks {
			b6.AddPrefix(p)
		}
	}
	var err error
	if s.v4, err = b4.IPSet(); err != nil {
		return nil, fmt.Errorf("safe networks: %v", err)
	}
	if s.v6, err = b6.IPSet(); err != nil {
		return nil, fmt.Errorf("safe networks: %v", err)
	}
	return s, nil
}

func parsePrefix(n string) (netip.Prefix, error) {
	if !strings.Contains(n, "/") {
		a, err := netip.ParseAddr(n)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR or IP address")
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(n)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR such as 198.51.100.0/24")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 prefixes are not supported")
	}
	// ipv4_lookup masks the network: "10.1.2.3/8" means 10.0.0.0/8.
	return p.Masked(), nil
}

// Contains reports whether ip is a known-safe IP or inside a known-safe
// network. An unparseable ip matches no network; an IPv6 ip matches no
// network unless HonorIPv6Networks was set.
func (s *SafeList) Contains(ip string) bool {
	if s == nil {
		return false
	}
	if _, ok := s.ips[ip]; ok {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	if a.Is4() {
		return s.v4.Contains(a)
	}
	return s.v6.Contains(a)
}

// Empty reports whether the list contains nothing, so callers can skip it.
func (s *SafeList) Empty() bool {
	return s == nil || (len(s.ips) == 0 && len(s.v4.Prefixes()) == 0 && len(s.v6.Prefixes()) == 0)
}
