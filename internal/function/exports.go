package function

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// ScheduleExports is the timer function (functions/ScheduleExports, schedule
// %TOKENPIVOT_EXPORT_SCHEDULE%) that requests the hourly export jobs and
// tracks them: see package exportjob.
const ScheduleExports = "ScheduleExports"

// ExportScheduler returns the export scheduler for one invocation, logging
// to log; nil and no error when export scheduling is off
// (TOKENPIVOT_EXPORT_WORKSPACE_ID empty).
type ExportScheduler func(ctx context.Context, log *slog.Logger) (*exportjob.Scheduler, error)

// defaultExports is Config.Exports when unset: the process's settings.
var defaultExports = ExportsFromEnv(os.Getenv, nil)

// ExportsFromEnv builds the scheduler from the app settings: exportjob's
// TOKENPIVOT_EXPORT_* and the state storage and container of the pipeline's
// settings. The client and store are made once and reused; a configuration
// error is returned (and retried) on every invocation. hc carries the token
// and API requests (nil: a client with a 60 s timeout).
func ExportsFromEnv(getenv func(string) string, hc *http.Client) ExportScheduler {
	var mu sync.Mutex
	var made *exportjob.Scheduler
	return func(ctx context.Context, log *slog.Logger) (*exportjob.Scheduler, error) {
		mu.Lock()
		defer mu.Unlock()
		if made == nil {
			cfg, err := exportjob.FromEnv(getenv)
			if err != nil || !cfg.Enabled() {
				return nil, err
			}
			s, err := settings.FromEnvOnly(settings.StorageAccountURL, settings.StorageConnectionString,
				settings.StateStorageAccountURL, settings.StateContainer).Load(getenv)
			if err != nil {
				return nil, err
			}
			state, err := store.Open(ctx, s.StateStorage())
			if err != nil {
				return nil, fmt.Errorf("state storage: %w", err)
			}
			// The export account, where an ambiguous create's output is
			// looked up.
			output := state
			if s.Storage() != s.StateStorage() {
				if output, err = store.Open(ctx, s.Storage()); err != nil {
					return nil, fmt.Errorf("export storage: %w", err)
				}
			}
			cl, err := exportjob.NewClient(cfg, hc)
			if err != nil {
				return nil, err
			}
			made = &exportjob.Scheduler{Config: cfg, API: cl, Store: state, Container: s.StateContainer, Output: output}
		}
		run := *made
		run.Logger = log
		return &run, nil
	}
}

// onScheduleExports runs one pass of the export scheduler over its window.
// A failure answers 500, so that the invocation shows as failed; the timer
// is not redelivered, and the next run picks up whatever this one left.
func (h *Handler) onScheduleExports(ctx context.Context, inv *invocation) int {
	start := time.Now()
	build := h.cfg.ExportJobs
	if build == nil {
		build = defaultExports
	}
	s, err := build(ctx, inv.log)
	if err != nil {
		inv.log.Error("export scheduling misconfigured", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"error": err.Error()}
		return http.StatusInternalServerError
	}
	if s == nil {
		inv.log.Info("export scheduling is off: " + exportjob.EnvWorkspace + " is empty")
		inv.resp.ReturnValue = map[string]bool{"disabled": true}
		return http.StatusOK
	}
	sum, err := s.Run(ctx)
	ret := struct {
		exportjob.Summary
		Error string `json:"error,omitempty"`
	}{Summary: sum}
	attrs := []any{slog.Int("hours", sum.Hours), slog.Int("requested", sum.Requested), slog.Int("retried", sum.Retried),
		slog.Int("running", sum.Running), slog.Int("stuck", sum.Stuck), slog.Int("deferred", sum.Deferred),
		slog.Int("succeeded", sum.Succeeded), slog.Int("failed", sum.Failed), slog.Int("errors", sum.Errors),
		slog.Duration("duration", time.Since(start))}
	if err != nil {
		ret.Error = err.Error()
		inv.resp.ReturnValue = ret
		inv.log.Error("export scheduling done with errors", append(attrs, slog.String("error", err.Error()))...)
		return http.StatusInternalServerError
	}
	inv.resp.ReturnValue = ret
	inv.log.Info("export scheduling done", attrs...)
	return http.StatusOK
}
