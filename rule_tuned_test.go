package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// tunedVariant is a tuning of the bundled rule, as a SOC writes it, and the
// same rule written by hand as DuckDB SQL: the independent evaluation
// tokenpivot's result must equal.
type tunedVariant struct {
	name string
	// edits are old, new pairs applied to the bundled YAML.
	edits []string
	// SQL parts: conditions on i (SigninLogs) and n (non-interactive) rows,
	// on the pair, and added select columns.
	iWhere, nWhere, pairWhere, extraCols string
	// processRefuses, when set, is in process's refusal (exit 2): a rule
	// whose pair predicates or added columns read a column the pipeline's
	// extracts do not carry runs in detect only.
	processRefuses string
	// nUnionI, when set, makes the non-interactive side the union of both
	// tables: the SigninLogs rows passing it join the non-interactive ones.
	nUnionI string
	// summarize, when set, is the SQL of a summarize after the join over
	// the pair rows (the table r): the rows compared are its output.
	summarize string
}

// The base conditions, the bundled rule in SQL (tools/bench/duckdb/rule.sql),
// with this test's safe lists: KnownSafeIPs 203.0.113.50, KnownSafeNetworks
// 198.51.100.0/24 (an IPv4 network: ipv4_lookup never matches IPv6).
const (
	sqlSafeIPs  = `ip <> '203.0.113.50'`
	sqlSafeNets = `NOT (regexp_full_match(ip, '\d+\.\d+\.\d+\.\d+') AND ip LIKE '198.51.100.%')`
	sqlAuthCA   = `(auth = 'singleFactorAuthentication' OR ca = 'notApplied')`
	sqlWindow   = `n.t - i.t BETWEEN INTERVAL 1 MINUTE AND INTERVAL 2 HOUR`
)

func tunedVariants() []tunedVariant {
	const joinWhere = "  | where IPAddress != InteractiveIP\n  and Location != InteractiveCountry\n"
	const lookup = "  | evaluate ipv4_lookup(KnownSafeNetworks, IPAddress, network, return_unmatched = true)\n  | where isempty(network)\n  | project-away network\n"
	return []tunedVariant{{
		name: "bundled",
	}, {
		name:      "window between (1m .. 10m)",
		edits:     []string{"between (1m .. 2h)", "between (1m .. 10m)"},
		pairWhere: `n.t - i.t BETWEEN INTERVAL 1 MINUTE AND INTERVAL 10 MINUTE AND n.ip <> i.ip AND n.loc <> i.loc`,
	}, {
		name:      "app exclusion after the join",
		edits:     []string{"  | order by UserPrincipalName asc", "  | where AppDisplayName != \"Microsoft Teams\"\n  | order by UserPrincipalName asc"},
		pairWhere: sqlWindow + ` AND n.ip <> i.ip AND n.loc <> i.loc AND n.app <> 'Microsoft Teams'`,
	}, {
		name:   "user-suffix exclusion on the interactive side",
		edits:  []string{"  | where ResultType == 0\n  | where AuthenticationRequirement", "  | where ResultType == 0\n  | where not(UserPrincipalName endswith \"@CONTRACTOR.example\")\n  | where AuthenticationRequirement"},
		iWhere: `NOT suffix(lower(upn), '@contractor.example')`,
	}, {
		name:      "no country test",
		edits:     []string{joinWhere, "  | where IPAddress != InteractiveIP\n"},
		pairWhere: sqlWindow + ` AND n.ip <> i.ip`,
	}, {
		name:      "an extra output column",
		edits:     []string{"  TimeSinceInteractive = (TimeGenerated - InteractiveTime)\n", "  TimeSinceInteractive = (TimeGenerated - InteractiveTime),\n  InteractiveApp = AppDisplayName1,\n  Verdict = iff(AppDisplayName == AppDisplayName1, \"same app\", strcat(\"app \", AppDisplayName1))\n"},
		extraCols: `, i.app AS InteractiveApp, CASE WHEN n.app = i.app THEN 'same app' ELSE 'app ' || i.app END AS Verdict`,
	}, {
		name: "safe IPs as a datatable, safe networks as dynamic",
		edits: []string{
			"let KnownSafeIPs = dynamic([", "let KnownSafeIPs = datatable(ip: string) [",
			"  // \"20.x.x.x\" // Example Azure VPN Gateway public IP\n  ]);", "  // \"20.x.x.x\" // Example Azure VPN Gateway public IP\n  ];",
			"let KnownSafeNetworks = datatable(network: string) [", "let KnownSafeNetworks = dynamic([",
			"  \"0.0.0.0/32\" // Placeholder – keeps datatable valid when list is empty\n  ];", "  \"198.51.100.0/24\"\n  ]);",
			lookup, "  | where not(ipv4_is_in_any_range(IPAddress, KnownSafeNetworks))\n",
			lookup, "  | where not(ipv4_is_in_any_range(IPAddress, KnownSafeNetworks))\n",
		},
		// not(null) is null: a row whose IP is not IPv4 is dropped.
		iWhere: `regexp_full_match(ip, '\d+\.\d+\.\d+\.\d+') AND ip NOT LIKE '198.51.100.%'`,
		nWhere: `regexp_full_match(ip, '\d+\.\d+\.\d+\.\d+') AND ip NOT LIKE '198.51.100.%'`,
	}, {
		name:   "=~ on the UPN",
		edits:  []string{"  | join kind=inner", "  | where not(UserPrincipalName =~ \"ADMIN@contoso.example\")\n  | join kind=inner"},
		nWhere: `lower(upn) <> 'admin@contoso.example'`,
	}, {
		name:      "has_any on AppDisplayName",
		edits:     []string{"  | order by UserPrincipalName asc", "  | where not(AppDisplayName has_any (\"teams\", \"PORTAL\"))\n  | order by UserPrincipalName asc"},
		pairWhere: sqlWindow + ` AND n.ip <> i.ip AND n.loc <> i.loc AND NOT regexp_matches(lower(n.app), '(^|[^a-z0-9])(teams|portal)([^a-z0-9]|$)')`,
	}, {
		// Reads the interactive row's app (the pipeline's interactive
		// extracts then carry it) and the non-interactive one's, which
		// compact extracts lack (they are read again from the export).
		name:      "a pair predicate on both apps, a positive test on the non-interactive app",
		edits:     []string{"  and (TimeGenerated - InteractiveTime) between (1m .. 2h)\n", "  and (TimeGenerated - InteractiveTime) between (1m .. 2h)\n  | where AppDisplayName != AppDisplayName1 and AppDisplayName startswith \"microsoft\"\n"},
		pairWhere: sqlWindow + ` AND n.ip <> i.ip AND n.loc <> i.loc AND n.app <> i.app AND starts_with(lower(n.app), 'microsoft')`,
	}, {
		// Columns beyond the rule's own, read only for such a rule.
		name: "ClientAppUsed and ResourceDisplayName in wheres before the join",
		edits: []string{
			"  | join kind=inner", "  | where ClientAppUsed !in (\"Exchange ActiveSync\", \"IMAP4\")\n  | join kind=inner",
			"  | project-away network\n  | project\n", "  | project-away network\n  | where ResourceDisplayName != \"Windows Azure Service Management API\"\n  | project\n",
		},
		nWhere: `coalesce(cau, '') NOT IN ('Exchange ActiveSync', 'IMAP4')`,
		iWhere: `coalesce(res, '') <> 'Windows Azure Service Management API'`,
	}, {
		name: "parse_json and member paths on DeviceDetail",
		edits: []string{
			"  | join kind=inner", "  | extend Browser = tostring(parse_json(DeviceDetail).browser)\n  | where Browser !startswith \"python\"\n  | join kind=inner",
			"  | project-away network\n  | project\n", "  | project-away network\n  | where tostring(DeviceDetail.operatingSystem) != \"Linux\" and isnotempty(todynamic(DeviceDetail)[\"browser\"])\n  | project\n",
		},
		nWhere: `NOT starts_with(lower(coalesce(json_extract_string(dd, '$.browser'), '')), 'python')`,
		iWhere: `coalesce(json_extract_string(dd, '$.operatingSystem'), '') <> 'Linux' AND coalesce(json_extract_string(dd, '$.browser'), '') <> ''`,
	}, {
		name: "leftanti and leftsemi against datatables of users",
		edits: []string{
			"  let InteractiveSessions =", "  let Excluded = datatable(UserPrincipalName: string) [\"admin@contoso.example\", \"svc1@contoso.example\"];\n  let InteractiveSessions =",
			"  | join kind=inner", "  | join kind=leftanti Excluded on UserPrincipalName\n  | join kind=inner",
			"  | project-away network\n  | project\n", "  | project-away network\n  | join kind=leftsemi (datatable(U: string) [\"alice@contoso.example\", \"admin@contoso.example\", \"Admin@contoso.example\", \"carol@contractor.example\"]) on $left.UserPrincipalName == $right.U\n  | project\n",
		},
		nWhere: `upn NOT IN ('admin@contoso.example', 'svc1@contoso.example')`,
		iWhere: `upn IN ('alice@contoso.example', 'admin@contoso.example', 'Admin@contoso.example', 'carol@contractor.example')`,
	}, {
		// A positive test on a column interactive extracts do not carry:
		// applied as the export is read, not again on the extracts' rows.
		name:   "a positive test on the interactive app before the join",
		edits:  []string{"  | project-away network\n  | project\n", "  | project-away network\n  | where AppDisplayName startswith \"microsoft\"\n  | project\n"},
		iWhere: `starts_with(lower(app), 'microsoft')`,
	}, {
		name:           "UserAgent in an added column (detect only)",
		edits:          []string{"  TimeSinceInteractive = (TimeGenerated - InteractiveTime)\n", "  TimeSinceInteractive = (TimeGenerated - InteractiveTime),\n  NIUserAgent = UserAgent\n"},
		extraCols:      `, coalesce(n.ua, '') AS NIUserAgent`,
		processRefuses: "UserAgent",
	}, {
		name:    "union of the two sign-in tables as the non-interactive side",
		edits:   []string{"  AADNonInteractiveUserSignInLogs\n  | where TimeGenerated > ago(3h)\n", "  union isfuzzy=true AADNonInteractiveUserSignInLogs, (SigninLogs | where AppDisplayName != \"Azure Portal\")\n  | where TimeGenerated > ago(3h)\n"},
		nUnionI: `app <> 'Azure Portal'`,
	}, {
		name:   "matches regex, in~ and contains on the non-interactive side",
		edits:  []string{"  | join kind=inner", "  | where not(UserPrincipalName matches regex @\"^svc[0-9]+@\") and Location in~ (\"us\", \"fr\", \"DE\", \"gb\", \"cn\") and not(AppDisplayName contains \"OUTLOOK\")\n  | join kind=inner"},
		nWhere: `NOT regexp_matches(upn, '^svc[0-9]+@') AND lower(loc) IN ('us', 'fr', 'de', 'gb', 'cn') AND NOT contains(lower(app), 'outlook')`,
	}, {
		name:           "summarize count(), make_set(NIIPAddress) by UserPrincipalName",
		edits:          []string{orderBy, orderBy + "  | summarize count(), make_set(NIIPAddress) by UserPrincipalName\n"},
		processRefuses: summarizeRefusal,
		summarize:      `SELECT UserPrincipalName, count(*) AS count_, list_distinct(list(NIIPAddress)) AS set_NIIPAddress FROM r GROUP BY UserPrincipalName`,
	}, {
		name:           "summarize dcount with a threshold where",
		edits:          []string{orderBy, orderBy + "  | summarize Ips = dcount(NIIPAddress), Pairs = count() by UserPrincipalName, AppDisplayName\n  | where Ips >= 6\n"},
		processRefuses: summarizeRefusal,
		summarize:      `SELECT UserPrincipalName, AppDisplayName, count(DISTINCT NIIPAddress) AS Ips, count(*) AS Pairs FROM r GROUP BY UserPrincipalName, AppDisplayName HAVING count(DISTINCT NIIPAddress) >= 6`,
	}, {
		name:           "summarize by bin(NISignInTime, 1h)",
		edits:          []string{orderBy, orderBy + "  | summarize Pairs = count(), Users = dcount(UserPrincipalName) by bin(NISignInTime, 1h)\n"},
		processRefuses: summarizeRefusal,
		summarize:      `SELECT strftime(time_bucket(INTERVAL 1 HOUR, CAST(NISignInTime AS TIMESTAMP)), '%Y-%m-%dT%H:%M:%SZ') AS NISignInTime, count(*) AS Pairs, count(DISTINCT UserPrincipalName) AS Users FROM r GROUP BY 1`,
	}, {
		name: "summarize min, max, countif, make_list and sum of an added column, then project and order by",
		edits: []string{orderBy, orderBy + "  | extend W = iff(NICountry == \"FR\", 2, 1)\n" +
			"  | summarize First = min(InteractiveTime), Last = max(NISignInTime), Teams = countif(AppDisplayName has \"Teams\"), Apps = make_list(AppDisplayName), Weight = sum(W) by UserPrincipalName, NICountry\n" +
			"  | where Weight > 1\n  | project UserPrincipalName, NICountry, First, Last, Teams, Apps, Weight\n  | order by Teams desc\n"},
		processRefuses: summarizeRefusal,
		summarize: `SELECT UserPrincipalName, NICountry, min(InteractiveTime) AS First, max(NISignInTime) AS Last,
  count(*) FILTER (WHERE regexp_matches(lower(AppDisplayName), '(^|[^a-z0-9])teams([^a-z0-9]|$)')) AS Teams, list(AppDisplayName) AS Apps,
  sum(CASE WHEN NICountry = 'FR' THEN 2 ELSE 1 END) AS Weight
FROM r GROUP BY UserPrincipalName, NICountry HAVING sum(CASE WHEN NICountry = 'FR' THEN 2 ELSE 1 END) > 1`,
	}}
}

// summarizeRefusal is in process's and serve's refusal of a rule with a
// summarize after the join.
const summarizeRefusal = "summarize (line"

// orderBy is the bundled rule's last line: a summarize follows it.
const orderBy = "  | order by UserPrincipalName asc, InteractiveTime asc\n"

// summarizedLines are JSON rows in one form for comparing detect's
// summarized rows with DuckDB's: numbers as text, each list sorted (KQL
// leaves make_set's and make_list's order undefined; the order of the
// elements is checked in internal/kql's tests), keys sorted.
func summarizedLines(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, l := range sortedLines(s) {
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case json.Number:
				m[k] = v.String()
			case []any:
				var els []string
				for _, e := range v {
					els = append(els, fmt.Sprint(e))
				}
				slices.Sort(els)
				m[k] = els
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

// tunedSQL is a variant's rule in DuckDB SQL over the two JSON Lines files.
func tunedSQL(v tunedVariant, ifile, nfile string) string {
	and := func(conds ...string) string {
		var out []string
		for _, c := range conds {
			if c != "" {
				out = append(out, "("+c+")")
			}
		}
		return strings.Join(out, " AND ")
	}
	pair := v.pairWhere
	if pair == "" {
		pair = sqlWindow + ` AND n.ip <> i.ip AND n.loc <> i.loc`
	}
	iw := and(`rt = '0'`, sqlAuthCA, sqlSafeIPs, sqlSafeNets, v.iWhere)
	nw := and(`rt = '0'`, sqlSafeIPs, sqlSafeNets, v.nWhere)
	if strings.Contains(v.name, "dynamic") { // the network test is the variant's own
		iw = and(`rt = '0'`, sqlAuthCA, sqlSafeIPs, v.iWhere)
		nw = and(`rt = '0'`, sqlSafeIPs, v.nWhere)
	}
	src := func(f string) string {
		return fmt.Sprintf(`SELECT UserPrincipalName AS upn, CAST(TimeGenerated AS TIMESTAMP) AS t, IPAddress AS ip, Location AS loc,
  ResultType AS rt, AuthenticationRequirement AS auth, ConditionalAccessStatus AS ca, AppDisplayName AS app,
  CorrelationId AS corr, UniqueTokenIdentifier AS uti, Id AS id, ClientAppUsed AS cau, ResourceDisplayName AS res,
  UserAgent AS ua, DeviceDetail AS dd
FROM read_json('%s', format = 'newline_delimited', columns = {%s})`, f, tunedColumns)
	}
	nsrc := src(nfile)
	if v.nUnionI != "" {
		nsrc = fmt.Sprintf("(SELECT * FROM (%s)) UNION ALL (SELECT * FROM (%s) WHERE %s)", nsrc, src(ifile), v.nUnionI)
	}
	q := fmt.Sprintf(`WITH i AS (SELECT * FROM (%s) WHERE %s),
n AS (SELECT * FROM (%s) WHERE %s)
SELECT strftime(n.t, '%%Y-%%m-%%dT%%H:%%M:%%SZ') AS NISignInTime, strftime(i.t, '%%Y-%%m-%%dT%%H:%%M:%%SZ') AS InteractiveTime,
  n.upn AS UserPrincipalName, n.app AS AppDisplayName, n.ip AS NIIPAddress, n.loc AS NICountry, i.ip AS InteractiveIP,
  i.loc AS InteractiveCountry, n.corr AS CorrelationId, n.uti AS UniqueTokenIdentifier,
  printf('%%02d:%%02d:%%02d', epoch(n.t - i.t)::BIGINT // 3600, epoch(n.t - i.t)::BIGINT // 60 %% 60, epoch(n.t - i.t)::BIGINT %% 60) AS TimeSinceInteractive
  %s
FROM n JOIN i ON n.upn = i.upn
WHERE %s`, src(ifile), iw, nsrc, nw, v.extraCols, pair)
	if v.summarize != "" {
		return fmt.Sprintf("WITH r AS (%s)\n%s", q, v.summarize)
	}
	return q
}

// tunedColumns are the generated rows' columns, as DuckDB reads them: a
// dynamic column (DeviceDetail) as its JSON text.
const tunedColumns = `TimeGenerated: 'VARCHAR', UserPrincipalName: 'VARCHAR', IPAddress: 'VARCHAR',
  Location: 'VARCHAR', ResultType: 'VARCHAR', AuthenticationRequirement: 'VARCHAR', ConditionalAccessStatus: 'VARCHAR',
  AppDisplayName: 'VARCHAR', CorrelationId: 'VARCHAR', UniqueTokenIdentifier: 'VARCHAR', Id: 'VARCHAR',
  ClientAppUsed: 'VARCHAR', ResourceDisplayName: 'VARCHAR', UserAgent: 'VARCHAR', DeviceDetail: 'VARCHAR'`

// writeTunedData writes generated sign-ins that exercise every variant:
// case variants of users, apps whose names share terms, private, safe and
// IPv6 addresses, times around the window's ends.
func writeTunedData(t *testing.T, dir string) (ifile, nfile string) {
	rng := rand.New(rand.NewPCG(22, 1))
	users := []string{"alice@contoso.example", "bob@contoso.example", "admin@contoso.example", "Admin@contoso.example",
		"carol@contractor.example", "dave@Contractor.Example", "svc1@contoso.example", "erin@contoso.example"}
	ips := []string{"20.1.1.1", "20.1.1.2", "91.200.1.6", "203.0.113.50", "198.51.100.7", "10.0.0.5", "2001:db8::5", "45.9.9.9", ""}
	locs := []string{"US", "FR", "DE", "GB", "cn", ""}
	apps := []string{"Microsoft Teams", "Microsoft Teams Web Client", "Outlook Mobile", "Azure Portal", "Teamsters Portal2", "Office 365 Exchange Online"}
	auths := []string{"singleFactorAuthentication", "multiFactorAuthentication", "SingleFactorAuthentication"}
	cas := []string{"notApplied", "success", "failure"}
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	write := func(name string, n int, interactive bool) string {
		var b strings.Builder
		for k := range n {
			rec := map[string]any{
				"TimeGenerated":         base.Add(time.Duration(rng.IntN(4*3600)) * time.Second).Format(time.RFC3339),
				"UserPrincipalName":     pick(users),
				"IPAddress":             pick(ips),
				"Location":              pick(locs),
				"ResultType":            []string{"0", "0", "0", "50126"}[rng.IntN(4)],
				"AppDisplayName":        pick(apps),
				"CorrelationId":         fmt.Sprintf("corr-%s-%d", name, k),
				"UniqueTokenIdentifier": fmt.Sprintf("tok-%s-%d", name, k),
				"Id":                    fmt.Sprintf("%s-%d", name, k),
				"ClientAppUsed":         pick([]string{"Browser", "Mobile Apps and Desktop clients", "Exchange ActiveSync", "IMAP4", ""}),
				"ResourceDisplayName":   pick([]string{"Microsoft Graph", "Office 365 Exchange Online", "Windows Azure Service Management API"}),
				"UserAgent":             pick([]string{"Mozilla/5.0 (Windows NT 10.0)", "python-requests/2.31", ""}),
			}
			// A dynamic column: an object, sometimes without the key a
			// rule reads, sometimes absent (null).
			switch rng.IntN(4) {
			case 0:
			case 1:
				rec["DeviceDetail"] = map[string]any{"operatingSystem": pick([]string{"Windows10", "Linux"}), "isCompliant": true}
			default:
				rec["DeviceDetail"] = map[string]any{"operatingSystem": pick([]string{"Windows10", "Linux", "iOS"}),
					"browser": pick([]string{"Chrome 120.0", "Python Requests 2.31", "Edge 119"}), "deviceId": ""}
			}
			if interactive {
				rec["AuthenticationRequirement"] = pick(auths)
				rec["ConditionalAccessStatus"] = pick(cas)
			} else {
				rec["AuthenticationRequirement"], rec["ConditionalAccessStatus"] = "", ""
			}
			line, _ := json.Marshal(rec)
			b.Write(line)
			b.WriteByte('\n')
		}
		p := filepath.Join(dir, name+".jsonl")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("interactive", 200, true), write("noninteractive", 900, false)
}

// TestTunedRulesMatchDuckDB runs each tuned rule through `detect` and
// compares its rows with DuckDB's evaluation of the hand-written SQL.
func TestTunedRulesMatchDuckDB(t *testing.T) {
	duck := duckDB(t)
	d := newTunedData(t, duck)
	ifile, nfile := d.ifile, d.nfile
	for _, v := range tunedVariants() {
		t.Run(v.name, func(t *testing.T) {
			yaml := tunedYAML(t, v)
			rf := filepath.Join(t.TempDir(), "rule.yaml")
			if err := os.WriteFile(rf, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCLI(t, "detect", "--rule", rf, "--interactive", ifile, "--noninteractive", nfile)
			if code != 0 {
				t.Fatalf("detect: exit %d: %s", code, errs)
			}
			want := runDuckDB(t, duck, tunedSQL(v, ifile, nfile))
			got, exp := sortedLines(out), sortedLines(string(want))
			if v.summarize != "" {
				got, exp = summarizedLines(t, out), summarizedLines(t, string(want))
			}
			if len(exp) == 0 {
				t.Fatal("DuckDB found no rows: the data does not exercise this variant")
			}
			if !slices.Equal(got, exp) {
				missing, extra := diffLines(exp, got)
				t.Errorf("%d rows, DuckDB %d; missing %d, extra %d\nmissing: %q\nextra: %q", len(got), len(exp), len(missing), len(extra), first(missing), first(extra))
			}
			t.Logf("%d rows", len(got))

			// The same rule through the event pipeline (process): one alert
			// per result row, whose evidence is the row's eleven columns.
			y := yaml + "eventGroupingSettings:\n  aggregationKind: AlertPerResult\n"
			if err := os.WriteFile(rf, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			if testing.Short() {
				return
			}
			if v.processRefuses != "" {
				code, _, errs := runCLI(t, "process", "--storage", d.allExports, "--state", t.TempDir(), "--rule", rf)
				if code != 2 || !strings.Contains(errs, v.processRefuses) {
					t.Errorf("process: exit %d, want 2 naming %s: %s", code, v.processRefuses, errs)
				}
				return
			}
			// Either table first: the later one probes the stored extracts
			// of the other.
			for _, first := range []string{d.nExports, d.iExports} {
				checkProcess(t, rf, []string{first, d.allExports}, exp)
			}
			// Blobs of both tables at once, in one run.
			checkProcess(t, rf, []string{d.splitExports}, exp, "--workers", "4")
		})
	}
}

// duckDB is the folder of the DuckDB evaluation (tools/bench/duckdb); the
// test is skipped without node.
func duckDB(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the DuckDB evaluation needs it")
	}
	duck := filepath.Join("tools", "bench", "duckdb")
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB is not installed: run npm ci in %s", duck)
	}
	return duck
}

// tunedData is the generated sign-ins as detect reads them (ifile, nfile)
// and as exports in their containers, for process: the non-interactive
// ones as Parquet (nparquet; so the pipeline keeps compact extracts of
// them), written by DuckDB, the interactive ones as data-export JSON Lines.
// nExports holds the non-interactive exports only, iExports the
// interactive ones only, allExports both: a second run over allExports
// adds the other table, which then probes the stored extracts.
type tunedData struct {
	ifile, nfile, nparquet         string
	nExports, iExports, allExports string
	// splitExports holds the same rows as 3 interactive JSON Lines blobs
	// and 2 non-interactive Parquet ones, for one process run with
	// blobs of both tables processed at once (--workers 4).
	splitExports string
}

func newTunedData(t *testing.T, duck string) tunedData {
	t.Helper()
	var d tunedData
	d.ifile, d.nfile = writeTunedData(t, t.TempDir())
	d.nExports, d.allExports = t.TempDir(), t.TempDir()
	nDir := filepath.Join(d.nExports, "am-aadnoninteractiveusersigninlogs", "y=2026", "m=11", "d=20")
	if err := os.MkdirAll(nDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.nparquet = filepath.Join(nDir, "part-0.parquet")
	toParquet := fmt.Sprintf(`COPY (SELECT CAST(TimeGenerated AS TIMESTAMPTZ) AS TimeGenerated, * EXCLUDE (TimeGenerated) FROM read_json('%s', format = 'newline_delimited', columns = {%s})) TO '%s' (FORMAT parquet)`,
		d.nfile, tunedColumns, d.nparquet)
	runDuckDB(t, duck, toParquet)
	iDir := filepath.Join(d.allExports, "am-signinlogs", "y=2026", "m=11", "d=20")
	if err := os.MkdirAll(iDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(d.ifile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(iDir, "PT05M.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d.iExports = t.TempDir()
	if err := os.CopyFS(d.iExports, os.DirFS(d.allExports)); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(d.allExports, os.DirFS(d.nExports)); err != nil {
		t.Fatal(err)
	}
	d.splitExports = t.TempDir()
	split := func(file string, parts int) [][]byte {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]byte, parts)
		for k, line := range strings.SplitAfter(string(data), "\n") {
			out[k%parts] = append(out[k%parts], line...)
		}
		return out
	}
	for k, part := range split(d.ifile, 3) {
		dir := filepath.Join(d.splitExports, "am-signinlogs", "y=2026", "m=11", "d=20", fmt.Sprintf("m=%02d", k*5))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "PT05M.json"), part, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k, part := range split(d.nfile, 2) {
		src := filepath.Join(t.TempDir(), "n.jsonl")
		if err := os.WriteFile(src, part, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(d.splitExports, "am-aadnoninteractiveusersigninlogs", "y=2026", "m=11", "d=20")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		runDuckDB(t, duck, fmt.Sprintf(`COPY (SELECT CAST(TimeGenerated AS TIMESTAMPTZ) AS TimeGenerated, * EXCLUDE (TimeGenerated) FROM read_json('%s', format = 'newline_delimited', columns = {%s})) TO '%s' (FORMAT parquet)`,
			src, tunedColumns, filepath.Join(dir, fmt.Sprintf("part-%d.parquet", k))))
	}
	return d
}

// tunedYAML is the bundled rule with this test's safe lists and the
// variant's edits.
func tunedYAML(t *testing.T, v tunedVariant) string {
	t.Helper()
	yaml := string(rule.DefaultYAML())
	yaml = strings.Replace(yaml, `  // "203.0.113.50", // Example VPN egress IP 1`, `  "203.0.113.50" // Example VPN egress IP 1`, 1)
	yaml = strings.Replace(yaml, `  "0.0.0.0/32" // Placeholder`, `  "198.51.100.0/24" // Placeholder`, 1)
	for k := 0; k+1 < len(v.edits); k += 2 {
		old := strings.Replace(v.edits[k], `"0.0.0.0/32" // Placeholder`, `"198.51.100.0/24" // Placeholder`, 1)
		if !strings.Contains(yaml, old) {
			t.Fatalf("edit %q: not in the rule", old)
		}
		yaml = strings.Replace(yaml, old, v.edits[k+1], 1)
	}
	return yaml
}

// checkProcess runs process over each exports folder in turn, on one state,
// and compares the alerts' evidence rows with exp (DuckDB's rows).
func checkProcess(t *testing.T, rf string, runs []string, exp []string, flags ...string) {
	t.Helper()
	state := t.TempDir()
	for _, exports := range runs {
		if code, _, errs := runCLI(t, append([]string{"process", "--storage", exports, "--state", state, "--rule", rf}, flags...)...); code != 0 {
			t.Fatalf("process: exit %d: %s", code, errs)
		}
	}
	docs, _, err := alertsOf(t, state)
	if err != nil {
		t.Fatal(err)
	}
	var rows []detect.Result
	for _, d := range docs {
		rows = append(rows, d.Results...)
	}
	var b strings.Builder
	if err := detect.WriteJSONL(&b, rows); err != nil {
		t.Fatal(err)
	}
	gotP, expP := sortedLines(b.String()), elevenColumns(t, exp)
	if !slices.Equal(gotP, expP) {
		missing, extra := diffLines(expP, gotP)
		t.Errorf("process (%s first): %d rows, DuckDB %d; missing %d, extra %d\nmissing: %q\nextra: %q", filepath.Base(runs[0]), len(gotP), len(expP), len(missing), len(extra), first(missing), first(extra))
	}
}

// runDuckDB runs one SQL statement in DuckDB and returns its rows as JSON
// Lines.
func runDuckDB(t *testing.T, duck, sql string) []byte {
	t.Helper()
	dir := t.TempDir()
	sqlFile, outFile := filepath.Join(dir, "q.sql"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(sqlFile, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join(duck, "sql.mjs"))
	if b, err := exec.Command("node", abs, sqlFile, outFile).CombinedOutput(); err != nil {
		t.Fatalf("duckdb: %v\n%s", err, b)
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

// elevenColumns keeps the bundled rule's columns of JSON rows (the alert
// documents' evidence holds those), sorted.
func elevenColumns(t *testing.T, lines []string) []string {
	var out []string
	for _, l := range lines {
		r, err := detect.UnmarshalResultLenient([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(detect.AppendJSON(nil, r)))
	}
	slices.Sort(out)
	return out
}

func first(l []string) []string { return l[:min(3, len(l))] }

// TestTunedSummarizeThroughTest: `tokenpivot test` runs a case of a rule
// with a summarize after the join against its expected rows (written in
// another key and list order, as a row copied from Sentinel may be), and
// fails a case whose count differs.
func TestTunedSummarizeThroughTest(t *testing.T) {
	ifile, nfile := writeTunedData(t, t.TempDir())
	v := tunedVariant{edits: []string{orderBy, orderBy + "  | summarize Pairs = count(), Ips = make_set(NIIPAddress) by UserPrincipalName\n"}}
	yaml := tunedYAML(t, v)
	rf := filepath.Join(t.TempDir(), "rule.yaml")
	if err := os.WriteFile(rf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "detect", "--rule", rf, "--interactive", ifile, "--noninteractive", nfile)
	if code != 0 {
		t.Fatalf("detect: exit %d: %s", code, errs)
	}
	rows := sortedLines(out)
	if len(rows) < 2 {
		t.Fatalf("detect gave %d summarized rows: the data does not exercise it", len(rows))
	}
	// The same rows, keys and lists reversed.
	var reordered []string
	for _, l := range rows {
		var r struct {
			UserPrincipalName string
			Pairs             int
			Ips               []string
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		slices.Reverse(r.Ips)
		ips, _ := json.Marshal(r.Ips)
		upn, _ := json.Marshal(r.UserPrincipalName)
		reordered = append(reordered, fmt.Sprintf(`{"Ips": %s, "Pairs": %d, "UserPrincipalName": %s}`, ips, r.Pairs, upn))
	}
	for _, tt := range []struct {
		name     string
		expected []string
		code     int
	}{
		{"the rows in another order", reordered, 0},
		{"a count that differs", append([]string{strings.Replace(reordered[0], `"Pairs": `, `"Pairs": 1`, 1)}, reordered[1:]...), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range map[string]string{"interactive.jsonl": ifile, "noninteractive.jsonl": nfile, "rule.yaml": rf} {
				data, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "expected.jsonl"), []byte(strings.Join(tt.expected, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCLI(t, "test", dir)
			if code != tt.code {
				t.Errorf("test: exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
		})
	}
}
