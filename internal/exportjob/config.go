package exportjob

import (
	"fmt"
	"regexp"
	"strings"
	"time"
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

// ConfigError is Validate's error: the Config field at fault and why
// (internal/settings names the app setting that fills it).
type ConfigError struct {
	Field, Reason string
}

func (e *ConfigError) Error() string { return "exportjob: " + e.Field + ": " + e.Reason }

// Validate checks an enabled configuration, naming the field at fault.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case !reAccount.MatchString(c.StorageAccount):
		return bad("StorageAccount", "%q is not a storage account resource id (/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name})", c.StorageAccount)
	case len(strings.Fields(c.Schedule)) != 6:
		return bad("Schedule", "%q is not a six-field NCRONTAB expression such as %q", c.Schedule, DefaultSchedule)
	case !c.FirstHour.IsZero() && !c.FirstHour.Equal(c.FirstHour.Truncate(time.Hour)):
		return bad("FirstHour", "%s is not on the hour", c.FirstHour.Format(time.RFC3339))
	case c.Lookback < time.Hour || c.Lookback > MaxLookback:
		return bad("Lookback", "%v is outside 1h to %v (the job retry window)", c.Lookback, MaxLookback)
	case c.Settle < 0 || c.Settle > 24*time.Hour:
		return bad("Settle", "%v is outside 0 to 24h", c.Settle)
	case c.Lease < time.Minute:
		return bad("Lease", "%v is shorter than 1m: a run needs that long to record the job it created", c.Lease)
	case c.StuckAfter < time.Hour:
		return bad("StuckAfter", "%v is shorter than 1h", c.StuckAfter)
	case c.MaxAttempts < 1 || c.MaxAttempts > MaxRetriesPerJob:
		return bad("MaxAttempts", "%d is outside 1 to %d", c.MaxAttempts, MaxRetriesPerJob)
	case c.MaxActive < 1 || c.MaxActive > MaxActivePerWorkspace:
		return bad("MaxActive", "%d is outside 1 to %d (the API's active jobs per workspace)", c.MaxActive, MaxActivePerWorkspace)
	case !strings.HasPrefix(c.Endpoint, "https://"):
		return bad("Endpoint", "%q is not an https:// URL (tokens are sent to it)", c.Endpoint)
	}
	for _, t := range Tables {
		if c.Containers[t] == "" {
			return fmt.Errorf("no export container for %s", t)
		}
	}
	return nil
}
