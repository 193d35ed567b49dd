package exportjob

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/precision"
)

// The app settings of the export scheduler. The feature is off while
// EnvWorkspace is empty.
const (
	EnvWorkspace      = "TOKENPIVOT_EXPORT_WORKSPACE_ID"
	EnvStorageAccount = "TOKENPIVOT_EXPORT_STORAGE_ACCOUNT_ID"
	EnvSchedule       = "TOKENPIVOT_EXPORT_SCHEDULE"
	EnvFirstHour      = "TOKENPIVOT_EXPORT_FIRST_HOUR"
	EnvLookback       = "TOKENPIVOT_EXPORT_LOOKBACK"
	EnvSettle         = "TOKENPIVOT_EXPORT_SETTLE"
	EnvLease          = "TOKENPIVOT_EXPORT_LEASE"
	EnvStuckAfter     = "TOKENPIVOT_EXPORT_STUCK_AFTER"
	EnvMaxAttempts    = "TOKENPIVOT_EXPORT_MAX_ATTEMPTS"
	EnvMaxActive      = "TOKENPIVOT_EXPORT_MAX_ACTIVE"
	EnvEndpoint       = "TOKENPIVOT_EXPORT_ENDPOINT"

	// The pipeline's own settings for the containers it reads each table
	// from: each job writes where the trigger already looks. They are read
	// here with the pipeline's defaults, so the two cannot disagree.
	EnvInteractiveContainer    = "TOKENPIVOT_INTERACTIVE_CONTAINER"
	EnvNonInteractiveContainer = "TOKENPIVOT_NONINTERACTIVE_CONTAINER"
	// EnvPrecision is the pipeline's precision mode (settings.Precision),
	// read here so the jobs project the columns it reads.
	EnvPrecision = "TOKENPIVOT_PRECISION"
)

// Defaults.
const (
	DefaultSchedule    = "0 5 * * * *"
	DefaultLookback    = 48 * time.Hour
	DefaultSettle      = 30 * time.Minute
	DefaultLease       = 15 * time.Minute
	DefaultStuckAfter  = 6 * time.Hour
	DefaultMaxAttempts = 3
	DefaultMaxActive   = 4
	DefaultEndpoint    = "https://api.loganalytics.azure.com"
	// Scope is the token scope of the Log Analytics data plane.
	Scope = "https://api.loganalytics.io/.default"

	// MaxLookback is the export job's retry window (7 days): older hours can
	// no longer be retried, and the state container's lifecycle policy may
	// have deleted their state, which would make them look never requested.
	MaxLookback = 7 * 24 * time.Hour
	// MaxRetriesPerJob is the API's limit of manual retries per jobId.
	MaxRetriesPerJob = 5
	// MaxActivePerWorkspace is the API's limit of active jobs per workspace.
	MaxActivePerWorkspace = 5
)

// Setting documents one app setting: the project's settings table can list
// these rows.
type Setting struct {
	Name, Default, Meaning string
}

// Settings are the scheduler's app settings, in the order of Config.
var Settings = []Setting{
	{EnvWorkspace, "", "Resource id of the Log Analytics (Sentinel) workspace to export from, /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}. Empty turns the export scheduler off."},
	{EnvStorageAccount, "", "Resource id of the export storage account the jobs write to (destinationStorageAccounts); required when the workspace is set."},
	{EnvSchedule, DefaultSchedule, "NCRONTAB schedule of the ScheduleExports timer (second minute hour day month weekday); the default runs at minute 5 of every hour."},
	{EnvFirstHour, "", "First hour to request (RFC 3339, e.g. 2026-12-01T00:00:00Z); empty means only the lookback window bounds it."},
	{EnvLookback, DefaultLookback.String(), "How far back each timer run looks for hours not yet requested (Go duration, at most 168h: the job retry window and below the state retention)."},
	{EnvSettle, DefaultSettle.String(), "How long after an hour ends before it is requested, for ingestion latency: rows that arrive later than this are not in the export."},
	{EnvLease, DefaultLease.String(), "How long a claimed hour stays reserved for the run that claimed it; a claim older than this (its run crashed) is requested again."},
	{EnvStuckAfter, DefaultStuckAfter.String(), "A job still not finished this long after it was requested (or retried) is reported stuck, in the log and in its state blob."},
	{EnvMaxAttempts, strconv.Itoa(DefaultMaxAttempts), "Attempts to create a job for an hour, and /retry calls per failed job (1 to 5, the API's retry limit)."},
	{EnvMaxActive, strconv.Itoa(DefaultMaxActive), "Jobs this scheduler keeps running at once (1 to 5: the API allows 5 per workspace, retries included)."},
	{EnvEndpoint, DefaultEndpoint, "Log Analytics data-plane endpoint (another cloud's, or a test server)."},
}

// Workspace names a Log Analytics workspace.
type Workspace struct {
	Subscription, ResourceGroup, Name string
}

// ID returns the workspace's resource id.
func (w Workspace) ID() string {
	return "/subscriptions/" + w.Subscription + "/resourceGroups/" + w.ResourceGroup +
		"/providers/Microsoft.OperationalInsights/workspaces/" + w.Name
}

var (
	reWorkspace = regexp.MustCompile(`(?i)^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/Microsoft\.OperationalInsights/workspaces/([^/]+)$`)
	reAccount   = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[a-z0-9]{3,24}$`)
)

// ParseWorkspace parses a workspace resource id.
func ParseWorkspace(id string) (Workspace, error) {
	m := reWorkspace.FindStringSubmatch(strings.TrimSpace(id))
	if m == nil {
		return Workspace{}, fmt.Errorf("%q is not a workspace resource id (/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name})", id)
	}
	return Workspace{Subscription: m[1], ResourceGroup: m[2], Name: m[3]}, nil
}

// Config is the export scheduler's configuration.
type Config struct {
	// Workspace is the source workspace; the zero value means off.
	Workspace Workspace
	// StorageAccount is the destination account's resource id.
	StorageAccount string
	// Containers maps each table to the container it is exported to.
	Containers map[string]string
	// Schedule is the timer's NCRONTAB expression (functions/ScheduleExports
	// reads it from the app setting; it is checked here).
	Schedule string
	// FirstHour, when not zero, is the earliest hour ever requested.
	FirstHour  time.Time
	Lookback   time.Duration
	Settle     time.Duration
	Lease      time.Duration
	StuckAfter time.Duration
	// MaxAttempts bounds job creations per hour and retries per job.
	MaxAttempts int
	// MaxActive bounds the jobs this scheduler has running at once.
	MaxActive int
	// Endpoint is the data-plane base URL.
	Endpoint string
	// Extra are the precision mode's columns (precision.Mode.Columns) the
	// jobs project too, where the table has them (Query); nil in exact
	// mode, whose projection and bytes billed stay the rule's.
	Extra []string
}

// Enabled reports whether a workspace is configured.
func (c Config) Enabled() bool { return c.Workspace.Name != "" }

// Default returns the configuration with every default and no workspace.
func Default() Config {
	return Config{
		Containers: map[string]string{
			TableInteractive:    "am-signinlogs",
			TableNonInteractive: "am-aadnoninteractiveusersigninlogs",
		},
		Schedule:    DefaultSchedule,
		Lookback:    DefaultLookback,
		Settle:      DefaultSettle,
		Lease:       DefaultLease,
		StuckAfter:  DefaultStuckAfter,
		MaxAttempts: DefaultMaxAttempts,
		MaxActive:   DefaultMaxActive,
		Endpoint:    DefaultEndpoint,
	}
}

// FromEnv reads the configuration from getenv. An empty workspace returns
// the defaults with Enabled() false and no error, whatever else is set.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Default()
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	for name, table := range map[string]string{EnvInteractiveContainer: TableInteractive, EnvNonInteractiveContainer: TableNonInteractive} {
		if v := get(name); v != "" {
			c.Containers[table] = v
		}
	}
	ws := get(EnvWorkspace)
	if ws == "" {
		return c, nil
	}
	var err error
	if c.Workspace, err = ParseWorkspace(ws); err != nil {
		return c, fmt.Errorf("%s: %w", EnvWorkspace, err)
	}
	c.StorageAccount = get(EnvStorageAccount)
	if c.StorageAccount == "" {
		return c, fmt.Errorf("%s is required when %s is set: the resource id of the account the jobs write to", EnvStorageAccount, EnvWorkspace)
	}
	if v := get(EnvSchedule); v != "" {
		c.Schedule = v
	}
	if v := get(EnvFirstHour); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-12-01T00:00:00Z", EnvFirstHour, v)
		}
		c.FirstHour = t.UTC()
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvLookback, &c.Lookback}, {EnvSettle, &c.Settle}, {EnvLease, &c.Lease}, {EnvStuckAfter, &c.StuckAfter}} {
		v := get(d.name)
		if v == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("%s: %q is not a Go duration such as 30m or 48h", d.name, v)
		}
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{EnvMaxAttempts, &c.MaxAttempts}, {EnvMaxActive, &c.MaxActive}} {
		v := get(n.name)
		if v == "" {
			continue
		}
		if *n.dst, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("%s: %q is not a whole number", n.name, v)
		}
	}
	if v := get(EnvEndpoint); v != "" {
		c.Endpoint = v
	}
	mode, err := precision.ParseMode(get(EnvPrecision))
	if err != nil {
		return c, fmt.Errorf("%s: %w", EnvPrecision, err)
	}
	c.Extra = mode.Columns()
	return c, c.Validate()
}

// Validate checks an enabled configuration, naming the setting at fault.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	switch {
	case !reAccount.MatchString(c.StorageAccount):
		return fmt.Errorf("%s: %q is not a storage account resource id (/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name})", EnvStorageAccount, c.StorageAccount)
	case len(strings.Fields(c.Schedule)) != 6:
		return fmt.Errorf("%s: %q is not a six-field NCRONTAB expression such as %q", EnvSchedule, c.Schedule, DefaultSchedule)
	case !c.FirstHour.IsZero() && !c.FirstHour.Equal(c.FirstHour.Truncate(time.Hour)):
		return fmt.Errorf("%s: %s is not on the hour", EnvFirstHour, c.FirstHour.Format(time.RFC3339))
	case c.Lookback < time.Hour || c.Lookback > MaxLookback:
		return fmt.Errorf("%s: %v is outside 1h to %v (the job retry window)", EnvLookback, c.Lookback, MaxLookback)
	case c.Settle < 0 || c.Settle > 24*time.Hour:
		return fmt.Errorf("%s: %v is outside 0 to 24h", EnvSettle, c.Settle)
	case c.Lease < time.Minute:
		return fmt.Errorf("%s: %v is shorter than 1m: a run needs that long to record the job it created", EnvLease, c.Lease)
	case c.StuckAfter < time.Hour:
		return fmt.Errorf("%s: %v is shorter than 1h", EnvStuckAfter, c.StuckAfter)
	case c.MaxAttempts < 1 || c.MaxAttempts > MaxRetriesPerJob:
		return fmt.Errorf("%s: %d is outside 1 to %d", EnvMaxAttempts, c.MaxAttempts, MaxRetriesPerJob)
	case c.MaxActive < 1 || c.MaxActive > MaxActivePerWorkspace:
		return fmt.Errorf("%s: %d is outside 1 to %d (the API's active jobs per workspace)", EnvMaxActive, c.MaxActive, MaxActivePerWorkspace)
	case !strings.HasPrefix(c.Endpoint, "https://"):
		return fmt.Errorf("%s: %q is not an https:// URL (tokens are sent to it)", EnvEndpoint, c.Endpoint)
	}
	for _, t := range Tables {
		if c.Containers[t] == "" {
			return fmt.Errorf("no export container for %s", t)
		}
	}
	return nil
}
