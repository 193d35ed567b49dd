package settings

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
)

// exportJobField names the setting behind each exportjob.Config field, so
// that a Validate error names what the operator sets.
var exportJobField = map[string]string{
	"Workspace":      ExportWorkspaceID,
	"StorageAccount": ExportStorageAccountID,
	"Schedule":       ExportSchedule,
	"FirstHour":      ExportFirstHour,
	"Lookback":       ExportLookback,
	"Settle":         ExportSettle,
	"Lease":          ExportLease,
	"StuckAfter":     ExportStuckAfter,
	"MaxAttempts":    ExportMaxAttempts,
	"MaxActive":      ExportMaxActive,
	"Endpoint":       ExportEndpoint,
}

// ExportJobConfig is the export scheduler's configuration: with the export
// containers the pipeline reads (each job writes where the trigger already
// looks). An empty workspace returns the defaults with Enabled() false and
// no error, whatever else is set. Errors name the setting at fault.
func (s Settings) ExportJobConfig() (exportjob.Config, error) {
	c := exportjob.Default()
	e := s.ExportJobs
	if s.InteractiveContainer != "" {
		c.Containers[exportjob.TableInteractive] = s.InteractiveContainer
	}
	if s.NonInteractiveContainer != "" {
		c.Containers[exportjob.TableNonInteractive] = s.NonInteractiveContainer
	}
	if e.WorkspaceID == "" {
		return c, nil
	}
	var err error
	if c.Workspace, err = exportjob.ParseWorkspace(e.WorkspaceID); err != nil {
		return c, fmt.Errorf("%s: %w", ExportWorkspaceID, err)
	}
	c.StorageAccount = e.StorageAccountID
	if c.StorageAccount == "" {
		return c, fmt.Errorf("%s is required when %s is set: the resource id of the account the jobs write to", ExportStorageAccountID, ExportWorkspaceID)
	}
	if e.Schedule != "" {
		c.Schedule = e.Schedule
	}
	if e.FirstHour != "" {
		t, err := time.Parse(time.RFC3339, e.FirstHour)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-12-01T00:00:00Z", ExportFirstHour, e.FirstHour)
		}
		c.FirstHour = t.UTC()
	}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{{ExportLookback, e.Lookback, &c.Lookback}, {ExportSettle, e.Settle, &c.Settle}, {ExportLease, e.Lease, &c.Lease}, {ExportStuckAfter, e.StuckAfter, &c.StuckAfter}} {
		if d.v == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.v); err != nil {
			return c, fmt.Errorf("%s: %q is not a Go duration such as 30m or 48h", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name, v string
		dst     *int
	}{{ExportMaxAttempts, e.MaxAttempts, &c.MaxAttempts}, {ExportMaxActive, e.MaxActive, &c.MaxActive}} {
		if n.v == "" {
			continue
		}
		if *n.dst, err = strconv.Atoi(n.v); err != nil {
			return c, fmt.Errorf("%s: %q is not a whole number", n.name, n.v)
		}
	}
	if e.Endpoint != "" {
		c.Endpoint = e.Endpoint
	}
	return c, namedConfigError(c.Validate())
}

// namedConfigError names the setting of a Validate error's field.
func namedConfigError(err error) error {
	var ce *exportjob.ConfigError
	if errors.As(err, &ce) {
		if env, ok := exportJobField[ce.Field]; ok {
			return fmt.Errorf("%s: %s", env, ce.Reason)
		}
	}
	return err
}
