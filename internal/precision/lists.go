package precision

import (
	"bufio"
	"embed"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
)

// The bundled reference lists; each file names its sources in its header.
//
//go:embed data/hosting-asns.csv data/m365-service-ranges.txt data/first-party-apps.csv
var data embed.FS

// Lists are the modes' reference data: configuration, not code.
type Lists struct {
	// HostingASNs are hosting, cloud and anonymizer networks (number ->
	// name): never cleared by the session or same-network tests.
	HostingASNs map[string]string
	// M365Ranges are Microsoft 365 service address ranges.
	M365Ranges []netip.Prefix
	// FirstPartyApps are Microsoft first-party app ids (id -> name).
	FirstPartyApps map[string]string
}

// Hosting reports whether ASN a (normalised) is a hosting/anonymizer network.
func (l *Lists) Hosting(a string) bool { _, ok := l.HostingASNs[a]; return ok }

// M365 reports whether ip is in a Microsoft 365 service range.
func (l *Lists) M365(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.M365Ranges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// FirstParty reports whether app id is a listed first-party app.
func (l *Lists) FirstParty(id string) bool {
	_, ok := l.FirstPartyApps[strings.ToLower(strings.TrimSpace(id))]
	return ok
}

var bundled = sync.OnceValue(func() *Lists {
	l, err := load(data.ReadFile, "data/hosting-asns.csv", "data/m365-service-ranges.txt", "data/first-party-apps.csv")
	if err != nil {
		panic("precision: bundled lists: " + err.Error())
	}
	return l
})

// Bundled returns the lists shipped in the binary (shared: do not modify).
func Bundled() *Lists { return bundled() }

// Load returns the bundled lists with each non-empty path's file in place
// of the bundled one: hosting ASNs and first-party apps as "key,name" lines,
// Microsoft 365 ranges as one CIDR a line; '#' starts a comment.
func Load(hostingASNs, m365Ranges, firstPartyApps string) (*Lists, error) {
	b := Bundled()
	if hostingASNs == "" && m365Ranges == "" && firstPartyApps == "" {
		return b, nil
	}
	out := &Lists{HostingASNs: b.HostingASNs, M365Ranges: b.M365Ranges, FirstPartyApps: b.FirstPartyApps}
	var err error
	if hostingASNs != "" {
		if out.HostingASNs, err = readKeyed(os.ReadFile, hostingASNs, asn); err != nil {
			return nil, err
		}
	}
	if m365Ranges != "" {
		if out.M365Ranges, err = readRanges(os.ReadFile, m365Ranges); err != nil {
			return nil, err
		}
	}
	if firstPartyApps != "" {
		if out.FirstPartyApps, err = readKeyed(os.ReadFile, firstPartyApps, strings.ToLower); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func load(read func(string) ([]byte, error), hosting, ranges, apps string) (*Lists, error) {
	var l Lists
	var err error
	if l.HostingASNs, err = readKeyed(read, hosting, asn); err != nil {
		return nil, err
	}
	if l.M365Ranges, err = readRanges(read, ranges); err != nil {
		return nil, err
	}
	if l.FirstPartyApps, err = readKeyed(read, apps, strings.ToLower); err != nil {
		return nil, err
	}
	return &l, nil
}

// lines returns the non-comment, non-blank lines of a list file.
func lines(read func(string) ([]byte, error), path string) ([]string, error) {
	b, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("precision list: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k := strings.IndexByte(line, '#'); k >= 0 {
			line = strings.TrimSpace(line[:k])
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

func readKeyed(read func(string) ([]byte, error), path string, norm func(string) string) (map[string]string, error) {
	ls, err := lines(read, path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ls))
	for k, line := range ls {
		key, name, _ := strings.Cut(line, ",")
		key = norm(strings.TrimSpace(key))
		if key == "" {
			return nil, fmt.Errorf("precision list %s: entry %d (%q) has no key", path, k+1, line)
		}
		m[key] = strings.TrimSpace(name)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("precision list %s: no entries", path)
	}
	return m, nil
}

func readRanges(read func(string) ([]byte, error), path string) ([]netip.Prefix, error) {
	ls, err := lines(read, path)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(ls))
	for _, line := range ls {
		p, err := netip.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("precision list %s: %w", path, err)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("precision list %s: no entries", path)
	}
	return out, nil
}
