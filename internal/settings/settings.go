// Package settings is tokenpivot's configuration: one table of settings,
// each an app setting (TOKENPIVOT_*) the function reads and, where a CLI
// user wants it, a flag; loaded defaults first, then the environment, then
// the flags, and only the settings a command uses. The infrastructure sets
// the app settings from the same table (internal/infra checks it), and
// `serve --help` prints it.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/sentinel"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/webhook"
)

// The app settings.
const (
	StorageAccountURL       = "TOKENPIVOT_STORAGE_ACCOUNT_URL"
	StorageConnectionString = "TOKENPIVOT_STORAGE_CONNECTION_STRING"
	StateStorageAccountURL  = "TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL"
	InteractiveContainer    = "TOKENPIVOT_INTERACTIVE_CONTAINER"
	NonInteractiveContainer = "TOKENPIVOT_NONINTERACTIVE_CONTAINER"
	StateContainer          = "TOKENPIVOT_STATE_CONTAINER"
	AlertsContainer         = "TOKENPIVOT_ALERTS_CONTAINER"
	IncidentsContainer      = "TOKENPIVOT_INCIDENTS_CONTAINER"
	Rule                    = "TOKENPIVOT_RULE"
	SafeIPs                 = "TOKENPIVOT_SAFE_IPS"
	SafeNetworks            = "TOKENPIVOT_SAFE_NETWORKS"
	IPv6SafeNetworks        = "TOKENPIVOT_IPV6_SAFE_NETWORKS"
	AllowedLateness         = "TOKENPIVOT_ALLOWED_LATENESS"
	MaxExpansion            = "TOKENPIVOT_MAX_EXPANSION"
	LogsIngestionEndpoint   = "TOKENPIVOT_LOGS_INGESTION_ENDPOINT"
	LogsIngestionRuleID     = "TOKENPIVOT_LOGS_INGESTION_RULE_ID"
	LogsIngestionStream     = "TOKENPIVOT_LOGS_INGESTION_STREAM"
	WebhookURL              = "TOKENPIVOT_WEBHOOK_URL"
	WebhookSecret           = "TOKENPIVOT_WEBHOOK_SECRET"
	WebhookFormat           = "TOKENPIVOT_WEBHOOK_FORMAT"
	// The precision modes (internal/precision) and their reference lists.
	Precision               = "TOKENPIVOT_PRECISION"
	PrecisionHostingASNs    = "TOKENPIVOT_PRECISION_HOSTING_ASNS"
	PrecisionM365Ranges     = "TOKENPIVOT_PRECISION_M365_RANGES"
	PrecisionFirstPartyApps = "TOKENPIVOT_PRECISION_FIRST_PARTY_APPS"
	// The export scheduler (the ScheduleExports timer, internal/exportjob):
	// off while ExportWorkspaceID is empty.
	ExportWorkspaceID      = "TOKENPIVOT_EXPORT_WORKSPACE_ID"
	ExportStorageAccountID = "TOKENPIVOT_EXPORT_STORAGE_ACCOUNT_ID"
	ExportSchedule         = "TOKENPIVOT_EXPORT_SCHEDULE"
	ExportFirstHour        = "TOKENPIVOT_EXPORT_FIRST_HOUR"
	ExportLookback         = "TOKENPIVOT_EXPORT_LOOKBACK"
	ExportSettle           = "TOKENPIVOT_EXPORT_SETTLE"
	ExportLease            = "TOKENPIVOT_EXPORT_LEASE"
	ExportStuckAfter       = "TOKENPIVOT_EXPORT_STUCK_AFTER"
	ExportMaxAttempts      = "TOKENPIVOT_EXPORT_MAX_ATTEMPTS"
	ExportMaxActive        = "TOKENPIVOT_EXPORT_MAX_ACTIVE"
	ExportEndpoint         = "TOKENPIVOT_EXPORT_ENDPOINT"
)

// PrecisionSettings are the precision mode and its lists, for the commands
// that filter result pairs.
var PrecisionSettings = []string{Precision, PrecisionHostingASNs, PrecisionM365Ranges, PrecisionFirstPartyApps}

// ExportJobSettings are the export scheduler's settings, for the commands
// that request export jobs (with the containers the jobs write to).
var ExportJobSettings = []string{ExportWorkspaceID, ExportStorageAccountID, ExportSchedule, ExportFirstHour, ExportLookback,
	ExportSettle, ExportLease, ExportStuckAfter, ExportMaxAttempts, ExportMaxActive, ExportEndpoint}

// DefaultLogsIngestionStream is the data collection rule's input stream.
const DefaultLogsIngestionStream = sentinel.DefaultStream

// DefaultAllowedLateness is the pipeline's.
const DefaultAllowedLateness = pipeline.DefaultAllowedLateness

// DefaultMaxExpansion bounds a gzip export's decompressed size, as a
// multiple of its compressed size (signin.DefaultMaxExpansion).
const DefaultMaxExpansion = signin.DefaultMaxExpansion

// Settings are the values of the settings, defaults filled in.
type Settings struct {
	// StorageAccountURL is the export account's blob service URL (production,
	// DefaultAzureCredential); StorageConnectionString is for Azurite/dev and
	// wins when set. A local directory path is accepted by the CLI only.
	StorageAccountURL       string
	StorageConnectionString string
	// StateStorageAccountURL holds state, alerts and incidents when they live
	// in another account than the exports; "" means the export account.
	StateStorageAccountURL string

	InteractiveContainer    string
	NonInteractiveContainer string
	StateContainer          string
	AlertsContainer         string
	IncidentsContainer      string

	// Rule is rule YAML text or a path to it; "" means the bundled rule.
	Rule         string
	SafeIPs      []string
	SafeNetworks []string
	// IPv6SafeNetworks matches IPv6 addresses against IPv6 safe networks,
	// which KQL's ipv4_lookup never does (off: the rule as Sentinel runs it).
	IPv6SafeNetworks bool
	AllowedLateness  time.Duration
	MaxExpansion     int

	// LogsIngestionEndpoint turns the Sentinel sink on: alert revisions go
	// to the data collection rule LogsIngestionRuleID (its immutable id),
	// stream LogsIngestionStream, through the Logs Ingestion API.
	LogsIngestionEndpoint string
	LogsIngestionRuleID   string
	LogsIngestionStream   string
	// WebhookURL turns the webhook sink on; WebhookSecret (whsec_<base64>)
	// signs; WebhookFormat is standard, teams or slack.
	WebhookURL    string
	WebhookSecret string
	WebhookFormat string

	// Precision is the precision mode; exact (the default) is the rule as
	// Sentinel runs it. The list paths replace the bundled lists when set.
	Precision               precision.Mode
	PrecisionHostingASNs    string
	PrecisionM365Ranges     string
	PrecisionFirstPartyApps string

	// ExportJobs are the export scheduler's settings as written; see
	// ExportJobConfig.
	ExportJobs ExportJobs
}

// ExportJobs are the export scheduler's settings, kept as written:
// ExportJobConfig parses them only when WorkspaceID is set, so that a
// feature that is off never fails on its other settings.
type ExportJobs struct {
	WorkspaceID, StorageAccountID, Schedule, FirstHour string
	Lookback, Settle, Lease, StuckAfter                string
	MaxAttempts, MaxActive                             string
	Endpoint                                           string
}

// PrecisionFilter returns the precision filter the settings name, its lists
// loaded; nil in exact mode.
func (s Settings) PrecisionFilter() (*precision.Filter, error) {
	if !s.Precision.On() {
		return nil, nil
	}
	l, err := precision.Load(s.PrecisionHostingASNs, s.PrecisionM365Ranges, s.PrecisionFirstPartyApps)
	if err != nil {
		return nil, err
	}
	return precision.New(s.Precision, l), nil
}

// Setting is one row of the table.
type Setting struct {
	Env     string // the app setting
	Flag    string // the CLI flag, "" when none
	Default string // as text, as the infrastructure writes it
	Usage   string
	// Secret values are never printed: help shows no value, and Redact
	// hides them in any text. A secret's flag, if it has one, names a file
	// holding the value (FromFile): a value on the command line is readable
	// by every user of the machine in /proc/PID/cmdline and stays in the
	// shell's history.
	Secret bool
	// FromFile: the flag's argument is a file whose content (spaces
	// trimmed) is the value.
	FromFile bool
	// NotInInfra says why the deployment leaves it unset ("" when it sets it).
	NotInInfra string
	set        func(s *Settings, v string) error
}

var table = []Setting{
	{Env: StorageAccountURL, Flag: "storage", Usage: "export storage: an https://ACCOUNT.blob.core.windows.net URL (the app's identity), a connection string, or for the CLI a `folder` laid out like the account",
		set: func(s *Settings, v string) error { s.StorageAccountURL = v; return nil }},
	{Env: StorageConnectionString, Usage: "Azurite/development connection string; wins over the account URL (deployable, but Azure uses the identity)", Secret: true,
		set: func(s *Settings, v string) error { s.StorageConnectionString = v; return nil }},
	{Env: StateStorageAccountURL, Flag: "state", Usage: "storage for state, alerts and incidents (default: the export storage; process will not create them in an https:// export account unless this is given)",
		set: func(s *Settings, v string) error { s.StateStorageAccountURL = v; return nil }},
	{Env: InteractiveContainer, Flag: "interactive-container", Default: "am-signinlogs", Usage: "SigninLogs export container",
		set: container(func(s *Settings) *string { return &s.InteractiveContainer })},
	{Env: NonInteractiveContainer, Flag: "noninteractive-container", Default: "am-aadnoninteractiveusersigninlogs", Usage: "AADNonInteractiveUserSignInLogs export container",
		set: container(func(s *Settings) *string { return &s.NonInteractiveContainer })},
	{Env: StateContainer, Flag: "state-container", Default: "tokenpivot-state", Usage: "state container (extracts, ledger)",
		set: container(func(s *Settings) *string { return &s.StateContainer })},
	{Env: AlertsContainer, Flag: "alerts-container", Default: "tokenpivot-alerts", Usage: "alerts container",
		set: container(func(s *Settings) *string { return &s.AlertsContainer })},
	{Env: IncidentsContainer, Flag: "incidents-container", Default: "tokenpivot-incidents", Usage: "incidents container",
		set: container(func(s *Settings) *string { return &s.IncidentsContainer })},
	{Env: Rule, Flag: "rule", Usage: "the Sentinel rule: YAML text or a `file` (default: the bundled Token Theft Pivot rule)",
		set: func(s *Settings, v string) error { s.Rule = v; return nil }},
	{Env: SafeIPs, Flag: "safe-ips", Usage: "comma-separated known-safe `IPs`, added to the rule's KnownSafeIPs",
		set: func(s *Settings, v string) error { s.SafeIPs = SplitList(v); return nil }},
	{Env: SafeNetworks, Flag: "safe-networks", Usage: "comma-separated known-safe `CIDRs`, added to the rule's KnownSafeNetworks",
		set: func(s *Settings, v string) error { s.SafeNetworks = SplitList(v); return checkNetworks(s.SafeNetworks) }},
	{Env: IPv6SafeNetworks, Flag: "ipv6-safe-networks", Default: "false", Usage: "also match IPv6 addresses against IPv6 safe networks (KQL's ipv4_lookup never does)",
		set: func(s *Settings, v string) (err error) { s.IPv6SafeNetworks, err = parseBool(v); return err }},
	{Env: AllowedLateness, Flag: "allowed-lateness", Default: "168h", Usage: "state older than this Go `duration` (by Last-Modified) is ignored and deleted; the Sweep looks no further back",
		set: func(s *Settings, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("want a positive Go duration such as 168h")
			}
			s.AllowedLateness = d
			return nil
		}},
	{Env: MaxExpansion, Flag: "max-expansion", Default: strconv.Itoa(DefaultMaxExpansion), Usage: "reject a gzip export that decompresses to more than this `ratio` times its size (at least 1 MiB)",
		set: func(s *Settings, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return errors.New("want a positive whole ratio such as 64")
			}
			s.MaxExpansion = n
			return nil
		}},
	{Env: LogsIngestionEndpoint, Flag: "logs-ingestion-endpoint", Usage: "send alert revisions to Microsoft Sentinel: the data collection rule's logs ingestion `https-URL` (off when empty)",
		set: func(s *Settings, v string) error {
			if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" {
				return errors.New("want an https:// URL")
			}
			s.LogsIngestionEndpoint = v
			return nil
		}},
	{Env: LogsIngestionRuleID, Flag: "logs-ingestion-rule-id", Usage: "the data collection rule's immutable `id` (dcr-...)",
		set: func(s *Settings, v string) error { s.LogsIngestionRuleID = v; return nil }},
	{Env: LogsIngestionStream, Flag: "logs-ingestion-stream", Default: DefaultLogsIngestionStream, Usage: "the data collection rule's input `stream`",
		set: func(s *Settings, v string) error { s.LogsIngestionStream = v; return nil }},
	{Env: WebhookURL, Flag: "webhook-url-file", Usage: "send alert revisions to this webhook URL (https; http only to loopback); off when empty; the flag names a `file` holding the URL, never the URL itself",
		Secret: true, FromFile: true,
		set: func(s *Settings, v string) error {
			if err := webhook.CheckURL(v); err != nil {
				return err
			}
			s.WebhookURL = v
			return nil
		}},
	{Env: WebhookSecret, Usage: "the webhook signing secret, whsec_<base64 of 24-64 bytes> (Standard Webhooks); during a rotation the new and the old, space-separated",
		Secret: true,
		set: func(s *Settings, v string) error {
			if _, err := webhook.ParseSecrets(v); err != nil {
				return err
			}
			s.WebhookSecret = v
			return nil
		}},
	{Env: WebhookFormat, Flag: "webhook-format", Default: webhook.Standard, Usage: "webhook body: standard (type, timestamp and the alert document as data, signed), teams (an Adaptive Card for a Teams Workflows webhook) or slack",
		set: func(s *Settings, v string) error {
			switch v {
			case webhook.Standard, webhook.Teams, webhook.Slack:
				s.WebhookFormat = v
				return nil
			}
			return errors.New("want standard, teams or slack")
		}},
	{Env: Precision, Flag: "precision", Default: "exact", Usage: "precision `mode`: exact (the Sentinel rule, unchanged), balanced or strict (drop pairs shown benign by session, network, Microsoft 365 service egress, trusted network; README \"What the precision modes change\")",
		set: func(s *Settings, v string) (err error) { s.Precision, err = precision.ParseMode(v); return err }},
	{Env: PrecisionHostingASNs, Flag: "precision-hosting-asns", Usage: "`file` of hosting/anonymizer ASNs (asn,name lines) replacing the bundled list",
		set: func(s *Settings, v string) error { s.PrecisionHostingASNs = v; return nil }},
	{Env: PrecisionM365Ranges, Flag: "precision-m365-ranges", Usage: "`file` of Microsoft 365 service CIDRs replacing the bundled list",
		set: func(s *Settings, v string) error { s.PrecisionM365Ranges = v; return nil }},
	{Env: PrecisionFirstPartyApps, Flag: "precision-first-party-apps", Usage: "`file` of first-party app ids (appId,name lines) replacing the bundled list",
		set: func(s *Settings, v string) error { s.PrecisionFirstPartyApps = v; return nil }},
	{Env: ExportWorkspaceID, Flag: "workspace", Usage: "resource `id` of the Log Analytics (Sentinel) workspace to export from, /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}; empty turns the export scheduler off",
		set: exportJob(func(e *ExportJobs) *string { return &e.WorkspaceID })},
	{Env: ExportStorageAccountID, Flag: "account", Usage: "resource `id` of the export storage account the jobs write to (destinationStorageAccounts); required when the workspace is set",
		set: exportJob(func(e *ExportJobs) *string { return &e.StorageAccountID })},
	{Env: ExportSchedule, Default: exportjob.DefaultSchedule, Usage: "NCRONTAB schedule of the ScheduleExports timer (second minute hour day month weekday); the default runs at minute 5 of every hour",
		set: exportJob(func(e *ExportJobs) *string { return &e.Schedule })},
	{Env: ExportFirstHour, Usage: "first hour to request (RFC 3339, e.g. 2026-12-01T00:00:00Z); empty means only the lookback window bounds it",
		set: exportJob(func(e *ExportJobs) *string { return &e.FirstHour })},
	{Env: ExportLookback, Default: "48h", Usage: "how far back each timer run looks for hours not yet requested (Go duration, at most 168h: the job retry window and below the state retention)",
		set: exportJob(func(e *ExportJobs) *string { return &e.Lookback })},
	{Env: ExportSettle, Default: "30m", Usage: "how long after an hour ends before it is requested, for ingestion latency: rows that arrive later than this are not in the export",
		set: exportJob(func(e *ExportJobs) *string { return &e.Settle })},
	{Env: ExportLease, Default: "15m", Usage: "how long a claimed hour stays reserved for the run that claimed it; a claim older than this (its run crashed) is requested again",
		set: exportJob(func(e *ExportJobs) *string { return &e.Lease })},
	{Env: ExportStuckAfter, Default: "6h", Usage: "a job still not finished this long after it was requested (or retried) is reported stuck, in the log and in its state blob",
		set: exportJob(func(e *ExportJobs) *string { return &e.StuckAfter })},
	{Env: ExportMaxAttempts, Default: strconv.Itoa(exportjob.DefaultMaxAttempts), Usage: "attempts to create a job for an hour, and /retry calls per failed job (1 to 5, the API's retry limit)",
		set: exportJob(func(e *ExportJobs) *string { return &e.MaxAttempts })},
	{Env: ExportMaxActive, Default: strconv.Itoa(exportjob.DefaultMaxActive), Usage: "jobs this scheduler keeps running at once (1 to 5: the API allows 5 per workspace, retries included)",
		set: exportJob(func(e *ExportJobs) *string { return &e.MaxActive })},
	// Empty, not the URL, is the default: the infrastructure leaves it
	// empty in the public cloud, and both must mean the same.
	{Env: ExportEndpoint, Usage: "Log Analytics data-plane endpoint (another cloud's, or a test server); empty means the public cloud's, " + exportjob.DefaultEndpoint,
		set: exportJob(func(e *ExportJobs) *string { return &e.Endpoint })},
}

// Table returns the settings, in the order help prints them.
func Table() []Setting { return slices.Clone(table) }

func lookup(env string) (Setting, bool) {
	i := slices.IndexFunc(table, func(s Setting) bool { return s.Env == env })
	if i < 0 {
		return Setting{}, false
	}
	return table[i], true
}

func container(field func(*Settings) *string) func(*Settings, string) error {
	return func(s *Settings, v string) error {
		*field(s) = v
		return nil
	}
}

// exportJob sets an export scheduler setting as written (ExportJobConfig
// parses it).
func exportJob(field func(*ExportJobs) *string) func(*Settings, string) error {
	return func(s *Settings, v string) error {
		*field(&s.ExportJobs) = v
		return nil
	}
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// Defaults returns the settings with every default filled in.
func Defaults() Settings {
	var s Settings
	for _, st := range table {
		if st.Default != "" {
			if err := st.set(&s, st.Default); err != nil {
				panic(fmt.Sprintf("settings: default of %s: %v", st.Env, err))
			}
		}
	}
	return s
}

// Flags are the settings a command uses, registered on its flag set.
type Flags struct {
	fs   *flag.FlagSet
	used []string // Env names
}

// Register adds the flags of the settings named (by Env) to fs, showing
// their defaults, never a value from the environment. Settings without a
// flag are read from the environment only.
func Register(fs *flag.FlagSet, envs ...string) *Flags {
	f := &Flags{fs: fs, used: envs}
	for _, env := range envs {
		st, ok := lookup(env)
		if !ok {
			panic("settings: unknown setting " + env)
		}
		if st.Flag == "" {
			continue
		}
		usage := st.Usage + " (" + st.Env + ")"
		if st.Default == "false" {
			fs.Bool(st.Flag, false, usage)
		} else {
			fs.String(st.Flag, st.Default, usage)
		}
	}
	return f
}

// FromEnvOnly is Register without flags: for serve, which the Functions
// host configures through app settings alone.
func FromEnvOnly(envs ...string) *Flags {
	for _, env := range envs {
		if _, ok := lookup(env); !ok {
			panic("settings: unknown setting " + env)
		}
	}
	return &Flags{used: envs}
}

// All returns every setting's Env name.
func All() []string {
	out := make([]string, len(table))
	for i, st := range table {
		out[i] = st.Env
	}
	return out
}

// Load returns the settings: defaults, then the environment (getenv: the
// main package passes os.Getenv, a library none; nil reads no environment),
// then the flags given on the command line. Only the
// settings registered are read, so a bad value of another does not stop a
// command that never uses it. Errors name the variable or the flag; the
// value of a secret is never in them.
func (f *Flags) Load(getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	s := Defaults()
	var errs []error
	for _, env := range f.used {
		st, _ := lookup(env)
		v := strings.TrimSpace(getenv(env))
		if v == "" {
			continue
		}
		if st.Env == Rule {
			v = getenv(env) // YAML text keeps its layout
		}
		if err := st.set(&s, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", env, shown(st, v), err))
		}
	}
	byFlag := map[string]Setting{}
	for _, env := range f.used {
		if st, _ := lookup(env); st.Flag != "" {
			byFlag[st.Flag] = st
		}
	}
	visit := func(func(*flag.Flag)) {}
	if f.fs != nil {
		visit = f.fs.Visit
	}
	visit(func(fl *flag.Flag) {
		st, ok := byFlag[fl.Name]
		if !ok {
			return
		}
		v := fl.Value.String()
		if st.FromFile {
			data, err := os.ReadFile(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", fl.Name, err))
				return
			}
			v = strings.TrimSpace(string(data))
		}
		if err := st.set(&s, v); err != nil {
			if st.FromFile {
				errs = append(errs, fmt.Errorf("--%s %s: %s: %w", fl.Name, fl.Value.String(), shown(st, v), err))
				return
			}
			errs = append(errs, fmt.Errorf("--%s %s: %w", fl.Name, shown(st, v), err))
		}
		// A storage given on the command line replaces the environment's,
		// connection string included.
		if st.Env == StorageAccountURL {
			s.StorageConnectionString = ""
		}
	})
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	if slices.Contains(f.used, InteractiveContainer) && s.InteractiveContainer == s.NonInteractiveContainer {
		return s, fmt.Errorf("%s and %s name the same container %q", InteractiveContainer, NonInteractiveContainer, s.InteractiveContainer)
	}
	return s, nil
}

func shown(st Setting, v string) string {
	if st.Secret {
		return "(secret, not shown)"
	}
	return strconv.Quote(Redact(v))
}

// Storage returns the export storage spec: the connection string when set,
// else the account URL.
func (s Settings) Storage() string {
	if s.StorageConnectionString != "" {
		return s.StorageConnectionString
	}
	return s.StorageAccountURL
}

// StateStorage returns the state storage spec: StateStorageAccountURL, else
// the export storage.
func (s Settings) StateStorage() string {
	if s.StateStorageAccountURL != "" && s.StorageConnectionString == "" {
		return s.StateStorageAccountURL
	}
	return s.Storage()
}

// checkNetworks refuses an entry that is neither a CIDR nor an IP address,
// so that the error names the flag or variable it came from (the rule's own
// lists are checked when the rule is read).
func checkNetworks(nets []string) error {
	for _, n := range nets {
		if _, err := netip.ParsePrefix(n); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(n); err == nil && !strings.Contains(n, "/") {
			continue
		}
		return fmt.Errorf("%q is not a CIDR such as 198.51.100.0/24 (or an IP address)", n)
	}
	return nil
}

// SplitList splits a comma- or newline-separated list, dropping empty entries.
func SplitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
