package rule

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	r := Default()
	want := &Rule{
		File:             "token-theft-pivot.yaml",
		ID:               "d9e5f7a8-b3c4-6d0e-1f2a-3b4c5d6e7f8a",
		Name:             "Interactive to Non-Interactive Token Theft Pivot",
		Version:          "1.0.0",
		Kind:             "Scheduled",
		Severity:         "High",
		Tactics:          []string{"CredentialAccess", "LateralMovement", "DefenseEvasion"},
		Techniques:       []string{"T1528", "T1539", "T1078"},
		QueryFrequency:   time.Hour,
		QueryPeriod:      3 * time.Hour,
		TriggerOperator:  "gt",
		TriggerThreshold: 0,
		EntityMappings: []EntityMapping{
			{EntityType: "Account", FieldMappings: []FieldMapping{{Identifier: "FullName", ColumnName: "UserPrincipalName"}}},
			{EntityType: "IP", FieldMappings: []FieldMapping{{Identifier: "Address", ColumnName: "NIIPAddress"}}},
		},
		CustomDetails: []KV{
			{"InteractiveIP", "InteractiveIP"},
			{"InteractiveCountry", "InteractiveCountry"},
			{"NonInteractiveCountry", "NICountry"},
			{"AppDisplayName", "AppDisplayName"},
		},
		AlertDetailsOverride: AlertDetailsOverride{
			AlertDisplayNameFormat: "Token Pivot - {{UserPrincipalName}} NI token from {{NIIPAddress}} after interactive auth",
			AlertDescriptionFormat: "User {{UserPrincipalName}} used a non-interactive token from {{NIIPAddress}} within 2 hours of interactive auth from {{InteractiveIP}}. Possible token theft.",
		},
		IncidentConfiguration: IncidentConfiguration{CreateIncident: true, Grouping: Grouping{
			Enabled:              true,
			ReopenClosedIncident: false,
			LookbackDuration:     5 * time.Hour,
			MatchingMethod:       AnyAlert,
			GroupByEntities:      []string{"Account"},
			GroupByAlertDetails:  []string{},
			GroupByCustomDetails: []string{},
		}},
		EventGrouping: SingleAlert,
		SafeNetworks:  []string{"0.0.0.0/32"},
	}
	if !strings.HasPrefix(r.Description, "Detects when a user had a successful interactive sign-in") {
		t.Errorf("Description = %q", r.Description)
	}
	if !strings.Contains(r.Query, "| order by UserPrincipalName asc, InteractiveTime asc") {
		t.Errorf("Query lacks its last line: %q", r.Query)
	}
	got := *r
	if r.Plan == nil || !r.Plan.Default() {
		t.Errorf("the bundled rule's plan is not the engine's fast path:\n%v", r.Plan)
	}
	got.Description, got.Query, got.Plan = "", "", nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, *want)
	}
}

// The bundled copy must be the shared rule, byte for byte, when the shared
// folder is beside the checkout (as for developers and CI).
func TestDefaultMatchesSharedRule(t *testing.T) {
	for _, p := range []string{"../../../shared/rule/token-theft-pivot.yaml", "/work/shared/rule/token-theft-pivot.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if !bytes.Equal(b, DefaultYAML()) {
			t.Fatalf("internal/rule/token-theft-pivot.yaml differs from %s: copy it again", p)
		}
		return
	}
	t.Skip("shared/rule/token-theft-pivot.yaml not found beside the checkout")
}

// variant returns the default YAML with each old replaced by new, failing
// the test when old is not there (so a case cannot silently test nothing).
func variant(t *testing.T, pairs ...string) []byte {
	t.Helper()
	s := string(DefaultYAML())
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("variant: %q not in token-theft-pivot.yaml", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return []byte(s)
}

const (
	seedIPs = `  let KnownSafeIPs = dynamic([
  // "203.0.113.50", // Example VPN egress IP 1
  // "198.51.100.12", // Example VPN egress IP 2
  // "20.x.x.x" // Example Azure VPN Gateway public IP
  ]);`
	seedNets = `  "0.0.0.0/32" // Placeholder – keeps datatable valid when list is empty`
	// lookupLines are the safe-network test of one table.
	lookupLines = "  | evaluate ipv4_lookup(KnownSafeNetworks, IPAddress, network, return_unmatched = true)\n  | where isempty(network)\n  | project-away network\n"
)

func TestLoadVariants(t *testing.T) {
	tests := []struct {
		name  string
		yaml  func(t *testing.T) []byte
		check func(t *testing.T, r *Rule)
	}{{
		// KQL's own syntax: a comma between entries and none after the last
		// (TestLoadErrors refuses a trailing comma, as Sentinel does).
		name: "safe IPs with comments and both quotes",
		yaml: func(t *testing.T) []byte {
			return variant(t, seedIPs, `  let KnownSafeIPs = dynamic([
  "203.0.113.50", // VPN egress 1
  // "198.51.100.12", // retired
  '198.51.100.13',   // single quotes
  "2001:db8::1"
  ]);`)
		},
		check: func(t *testing.T, r *Rule) {
			assertStrings(t, "SafeIPs", r.SafeIPs, "203.0.113.50", "198.51.100.13", "2001:db8::1")
			assertStrings(t, "SafeNetworks", r.SafeNetworks, "0.0.0.0/32")
		},
	}, {
		name: "safe networks uncommented, trailing comments, single quotes, bare address",
		yaml: func(t *testing.T) []byte {
			return variant(t,
				`  // "10.0.0.0/8", // RFC1918 – private / on-prem`, `  "10.0.0.0/8", // RFC1918 – private / on-prem`,
				`  // "172.16.0.0/12", // RFC1918 – private / on-prem`, `  '172.16.0.0/12', // RFC1918, single quotes`,
				seedNets, `  "198.51.100.7",
  "2001:db8::/32"`)
		},
		check: func(t *testing.T, r *Rule) {
			assertStrings(t, "SafeIPs", r.SafeIPs)
			assertStrings(t, "SafeNetworks", r.SafeNetworks, "10.0.0.0/8", "172.16.0.0/12", "198.51.100.7", "2001:db8::/32")
			s, err := r.SafeList(nil, nil, SafeListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for ip, want := range map[string]bool{"10.200.0.1": true, "172.31.255.255": true, "172.32.0.1": false, "198.51.100.7": true, "2001:db8::5": false} {
				if s.Contains(ip) != want {
					t.Errorf("Contains(%s) = %v, want %v", ip, !want, want)
				}
			}
		},
	}, {
		name: "multi-column datatable takes the network column",
		yaml: func(t *testing.T) []byte {
			return variant(t, "let KnownSafeNetworks = datatable(network: string) [", "let KnownSafeNetworks = datatable(['description']: string, network: string) [",
				seedNets, `  "vpn", "192.0.2.0/24",
  "nat", "198.51.100.0/25"`)
		},
		check: func(t *testing.T, r *Rule) {
			assertStrings(t, "SafeNetworks", r.SafeNetworks, "192.0.2.0/24", "198.51.100.0/25")
		},
	}, {
		name: "query without the lets has empty lists",
		yaml: func(t *testing.T) []byte {
			return variant(t, seedIPs, "", "  let KnownSafeNetworks = datatable(network: string) [\n", "  // gone\n",
				"  // \"YOUR_VPN_CIDR/24\", // Replace with corporate VPN egress subnet\n"+seedNets+"\n  ];\n", "",
				// and their uses, on both tables: a name without its let is not KQL
				"  | where not(IPAddress in (KnownSafeIPs))\n", "", "  | where not(IPAddress in (KnownSafeIPs))\n", "",
				lookupLines, "", lookupLines, "")
		},
		check: func(t *testing.T, r *Rule) {
			if len(r.SafeIPs) != 0 || len(r.SafeNetworks) != 0 {
				t.Errorf("lists = %q %q, want empty", r.SafeIPs, r.SafeNetworks)
			}
			if strings.Contains(r.Query, "KnownSafeNetworks = ") {
				t.Error("variant left the let in place")
			}
		},
	}, {
		name: "// inside a string is not a comment",
		yaml: func(t *testing.T) []byte {
			return variant(t, "  let InteractiveSessions =", "  let Doc = \"https://aka.ms/x\"; let KnownSafeIPs2 = dynamic([\"x\"]);\n  let InteractiveSessions =",
				seedIPs, `  let KnownSafeIPs = dynamic(["192.0.2.1"]); // "192.0.2.2"`)
		},
		check: func(t *testing.T, r *Rule) {
			assertStrings(t, "SafeIPs", r.SafeIPs, "192.0.2.1")
		},
	}, {
		name: "Sentinel short and ISO durations",
		yaml: func(t *testing.T) []byte {
			return variant(t, "queryFrequency: 1h", "queryFrequency: 5m", "queryPeriod: 3h", "queryPeriod: 1d",
				"lookbackDuration: PT5H", "lookbackDuration: P1DT30M")
		},
		check: func(t *testing.T, r *Rule) {
			if r.QueryFrequency != 5*time.Minute || r.QueryPeriod != 24*time.Hour || r.IncidentConfiguration.Grouping.LookbackDuration != 24*time.Hour+30*time.Minute {
				t.Errorf("durations = %v %v %v", r.QueryFrequency, r.QueryPeriod, r.IncidentConfiguration.Grouping.LookbackDuration)
			}
		},
	}, {
		name: "Selected grouping on entities, alert details and custom details",
		yaml: func(t *testing.T) []byte {
			return variant(t, "matchingMethod: AnyAlert", "matchingMethod: Selected",
				"reopenClosedIncident: false", "reopenClosedIncident: true",
				"groupByAlertDetails: []", "groupByAlertDetails: [displayName]",
				"groupByCustomDetails: []", "groupByCustomDetails:\n      - InteractiveIP")
		},
		check: func(t *testing.T, r *Rule) {
			g := r.IncidentConfiguration.Grouping
			if g.MatchingMethod != Selected || !g.ReopenClosedIncident {
				t.Errorf("grouping = %+v", g)
			}
			assertStrings(t, "GroupByAlertDetails", g.GroupByAlertDetails, "DisplayName")
			assertStrings(t, "GroupByCustomDetails", g.GroupByCustomDetails, "InteractiveIP")
		},
	}, {
		name: "absent grouping takes Sentinel's defaults",
		yaml: func(t *testing.T) []byte {
			return variant(t, "    lookbackDuration: PT5H\n    matchingMethod: AnyAlert\n", "", "  createIncident: true", "  createIncident: false")
		},
		check: func(t *testing.T, r *Rule) {
			g := r.IncidentConfiguration.Grouping
			if r.IncidentConfiguration.CreateIncident || g.MatchingMethod != AllEntities || g.LookbackDuration != 5*time.Hour {
				t.Errorf("incident configuration = %+v", r.IncidentConfiguration)
			}
		},
	}, {
		name: "custom details keep YAML order",
		yaml: func(t *testing.T) []byte {
			return variant(t, "  InteractiveIP: InteractiveIP\n", "", "  AppDisplayName: AppDisplayName\n", "  AppDisplayName: AppDisplayName\n  InteractiveIP: InteractiveIP\n  TokenId: UniqueTokenIdentifier\n")
		},
		check: func(t *testing.T, r *Rule) {
			var keys []string
			for _, kv := range r.CustomDetails {
				keys = append(keys, kv.Key+"="+kv.Value)
			}
			assertStrings(t, "CustomDetails", keys, "InteractiveCountry=InteractiveCountry", "NonInteractiveCountry=NICountry",
				"AppDisplayName=AppDisplayName", "InteractiveIP=InteractiveIP", "TokenId=UniqueTokenIdentifier")
		},
	}, {
		name: "one alert per result",
		yaml: func(t *testing.T) []byte {
			return variant(t, "alertDetailsOverride:", "eventGroupingSettings:\n  aggregationKind: AlertPerResult\nalertDetailsOverride:")
		},
		check: func(t *testing.T, r *Rule) {
			if r.EventGrouping != AlertPerResult {
				t.Errorf("EventGrouping = %q", r.EventGrouping)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Load("variant.yaml", tt.yaml(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("testdata", "seed-rule.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml func(t *testing.T) []byte
		// field is the Error's Field; line is the line whose text contains
		// lineText (0 when lineText is ""); msg must appear in the message.
		field, lineText, msg string
	}{
		{"seed rule as written (lost indentation)", func(*testing.T) []byte { return seed }, "", "id: d9e5", "invalid YAML"},
		{"empty file", func(*testing.T) []byte { return []byte("# nothing\n") }, "", "", "empty file"},
		{"a list, not a rule", func(*testing.T) []byte { return []byte("- id: x\n") }, "", "- id: x", "not a mapping"},
		{"invalid safe IP", func(t *testing.T) []byte {
			return variant(t, `  // "198.51.100.12", // Example VPN egress IP 2`, `  "198.51.100.312", // typo`)
		}, "query", `"198.51.100.312"`, `KnownSafeIPs entry "198.51.100.312" is not an IP address`},
		{"invalid safe network", func(t *testing.T) []byte {
			return variant(t, `  // "YOUR_VPN_CIDR/24", // Replace with corporate VPN egress subnet`, `  "YOUR_VPN_CIDR/24", // Replace with corporate VPN egress subnet`)
		}, "query", `"YOUR_VPN_CIDR/24"`, `KnownSafeNetworks entry "YOUR_VPN_CIDR/24"`},
		{"IPv6 prefix length over 128", func(t *testing.T) []byte {
			return variant(t, seedNets, `  "10.0.0.0/33"`)
		}, "query", `"10.0.0.0/33"`, `KnownSafeNetworks entry "10.0.0.0/33"`},
		{"unquoted IP", func(t *testing.T) []byte {
			return variant(t, `  // "203.0.113.50", // Example VPN egress IP 1`, `  203.0.113.50,`)
		}, "query", `  203.0.113.50,`, "expected a quoted IP"},
		{"watchlist instead of a literal", func(t *testing.T) []byte {
			return variant(t, seedIPs, `  let KnownSafeIPs = (_GetWatchlist('VPNExcludedIPs') | project SearchKey);`)
		}, "query", "  let KnownSafeIPs = (_GetWatchlist", "must be a dynamic([...]) list"},
		{"list defined twice", func(t *testing.T) []byte {
			return variant(t, seedIPs, seedIPs+"\n  let KnownSafeIPs = dynamic([]);")
		}, "query", "let KnownSafeIPs = dynamic([]);", "defined twice"},
		{"unterminated string", func(t *testing.T) []byte {
			return variant(t, seedNets, `  "0.0.0.0/32`)
		}, "query", `  "0.0.0.0/32`, "unterminated string"},
		// KQL's syntax, as Microsoft's parser has it (internal/kql's tests):
		// uncommenting one example IP and keeping its comma is not valid KQL.
		{"trailing comma in dynamic([...])", func(t *testing.T) []byte {
			return variant(t, `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50", // Example VPN egress IP 1`)
		}, "query", "  ]);", "trailing comma"},
		// Two adjacent strings are one string in KQL: the list holds
		// "203.0.113.50198.51.100.12", which is no IP.
		{"missing comma joins two strings", func(t *testing.T) []byte {
			return variant(t, `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50" // a comma is missing`,
				`  // "198.51.100.12", // Example VPN egress IP 2`, `  "198.51.100.12" // Example VPN egress IP 2`)
		}, "query", "query: |", `"203.0.113.50198.51.100.12"`},
		{"unknown matchingMethod", func(t *testing.T) []byte {
			return variant(t, "matchingMethod: AnyAlert", "matchingMethod: AllAlerts")
		}, "incidentConfiguration.groupingConfiguration.matchingMethod", "matchingMethod: AllAlerts", `unknown value "AllAlerts"`},
		{"bad lookbackDuration", func(t *testing.T) []byte {
			return variant(t, "lookbackDuration: PT5H", "lookbackDuration: 5 hours")
		}, "incidentConfiguration.groupingConfiguration.lookbackDuration", "lookbackDuration: 5 hours", `invalid duration "5 hours"`},
		{"months are not a fixed duration", func(t *testing.T) []byte {
			return variant(t, "lookbackDuration: PT5H", "lookbackDuration: P1M")
		}, "incidentConfiguration.groupingConfiguration.lookbackDuration", "lookbackDuration: P1M", "years and months"},
		{"bad queryPeriod", func(t *testing.T) []byte {
			return variant(t, "queryPeriod: 3h", "queryPeriod: 3x")
		}, "queryPeriod", "queryPeriod: 3x", `invalid duration "3x"`},
		{"unknown severity", func(t *testing.T) []byte {
			return variant(t, "severity: High", "severity: Critical")
		}, "severity", "severity: Critical", `unknown value "Critical"`},
		{"missing query", func(t *testing.T) []byte {
			return variant(t, "query: |", "query: \"\"\nold_query: |")
		}, "query", `query: ""`, "required"},
		{"missing id", func(t *testing.T) []byte {
			return variant(t, "id: d9e5f7a8-b3c4-6d0e-1f2a-3b4c5d6e7f8a\n", "")
		}, "id", "", "required"},
		{"tactics not a list", func(t *testing.T) []byte {
			return variant(t, "tactics:\n  - CredentialAccess\n  - LateralMovement\n  - DefenseEvasion", "tactics:\n  name: CredentialAccess")
		}, "", "  name: CredentialAccess", "wrong type"},
		{"customDetails not a mapping", func(t *testing.T) []byte {
			return variant(t, "  InteractiveIP: InteractiveIP\n", "  - InteractiveIP\n", "  InteractiveCountry: InteractiveCountry\n  NonInteractiveCountry: NICountry\n  AppDisplayName: AppDisplayName\n", "")
		}, "customDetails", "  - InteractiveIP", "must be a mapping"},
		{"grouping on an unknown custom detail", func(t *testing.T) []byte {
			return variant(t, "groupByCustomDetails: []", "groupByCustomDetails: [NICountry]")
		}, "incidentConfiguration.groupingConfiguration.groupByCustomDetails[0]", "groupByCustomDetails: [NICountry]", `"NICountry" is not a key of customDetails`},
		{"unknown alert detail", func(t *testing.T) []byte {
			return variant(t, "groupByAlertDetails: []", "groupByAlertDetails: [Title]")
		}, "incidentConfiguration.groupingConfiguration.groupByAlertDetails[0]", "groupByAlertDetails: [Title]", `unknown value "Title"`},
		{"entity mapping without columns", func(t *testing.T) []byte {
			return variant(t, "      - identifier: Address\n        columnName: NIIPAddress\n", "", "  - entityType: IP\n    fieldMappings:\n", "  - entityType: IP\n    fieldMappings: []\n")
		}, "entityMappings[1].fieldMappings", "    fieldMappings: []", "required"},
		{"unknown aggregationKind", func(t *testing.T) []byte {
			return variant(t, "alertDetailsOverride:", "eventGroupingSettings:\n  aggregationKind: PerUser\nalertDetailsOverride:")
		}, "eventGroupingSettings.aggregationKind", "aggregationKind: PerUser", `unknown value "PerUser"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.yaml(t)
			r, err := Load("bad.yaml", data)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", r)
			}
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a *rule.Error", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "rule bad.yaml") || !strings.Contains(msg, tt.msg) {
				t.Errorf("error = %q, want the file and %q", msg, tt.msg)
			}
			if re.Field != tt.field {
				t.Errorf("Field = %q, want %q (%s)", re.Field, tt.field, msg)
			}
			wantLine := 0
			if tt.lineText != "" {
				for i, l := range strings.Split(string(data), "\n") {
					if strings.Contains(l, tt.lineText) {
						wantLine = i + 1
						break
					}
				}
				if wantLine == 0 {
					t.Fatalf("test bug: %q not in the YAML", tt.lineText)
				}
			}
			if re.Line != wantLine {
				t.Errorf("Line = %d, want %d (%s)", re.Line, wantLine, msg)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5m", 5 * time.Minute, ""},
		{"1h", time.Hour, ""},
		{"3h", 3 * time.Hour, ""},
		{"1d", 24 * time.Hour, ""},
		{"14d", 14 * 24 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"PT5H", 5 * time.Hour, ""},
		{"PT30M", 30 * time.Minute, ""},
		{"P1D", 24 * time.Hour, ""},
		{"P1DT2H", 26 * time.Hour, ""},
		{"P2W", 14 * 24 * time.Hour, ""},
		{"PT1.5S", 1500 * time.Millisecond, ""},
		{"PT0,5M", 30 * time.Second, ""},
		{"pt5h", 5 * time.Hour, ""},
		{"", 0, "empty"},
		{"P", 0, "no components"},
		{"PT", 0, "no components after T"},
		{"P1Y", 0, "years and months"},
		{"PT5", 0, "no unit"},
		{"PT5X", 0, "unknown unit"},
		{"P5H", 0, "unknown unit"},
		{"PT1HT2M", 0, "T appears twice"},
		{"P1.2.3D", 0, "not a number"},
		{"-5m", 0, "negative"},
		{"5 hours", 0, "not a duration"},
		{"P999999999999D", 0, "too long"},
		{"P106752D", 0, "too long"},
		{"P106751D", 106751 * 24 * time.Hour, ""},
		{"PT2562047H", 2562047 * time.Hour, ""},
		{"PT2562047H48M", 0, "too long"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRuleSafeList(t *testing.T) {
	r, err := Load("r.yaml", variant(t, `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50"`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.SafeList([]string{"192.0.2.9"}, []string{"198.51.100.0/24"}, SafeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"203.0.113.50": true, "192.0.2.9": true, "198.51.100.77": true, "0.0.0.0": true, "0.0.0.1": false, "203.0.113.51": false} {
		if got := s.Contains(ip); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	if len(r.SafeIPs) != 1 || len(r.SafeNetworks) != 1 {
		t.Errorf("SafeList changed the rule's lists: %q %q", r.SafeIPs, r.SafeNetworks)
	}
	if _, err := r.SafeList(nil, []string{"10.0.0.0/99"}, SafeListOptions{}); err == nil || !strings.Contains(err.Error(), `"10.0.0.0/99"`) {
		t.Errorf("bad extra network: err = %v, want it named", err)
	}
}

func assertStrings(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
