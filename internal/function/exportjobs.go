package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/settings"
)

// ScheduleExports is the timer function (functions/ScheduleExports, schedule
// %TOKENPIVOT_EXPORT_SCHEDULE%) that requests the hourly export jobs and
// tracks them: see package exportjob.
const ScheduleExports = "ScheduleExports"

// ExportScheduler returns the export scheduler for one invocation, logging
// to log; nil and no error when export scheduling is off. The composition
// root (serve) builds it from the settings; an error (a misconfiguration)
// fails the invocation, and the next timer run tries again.
type ExportScheduler func(ctx context.Context, log *slog.Logger) (*exportjob.Scheduler, error)

// onScheduleExports runs one pass of the export scheduler over its window.
// A failure answers 500, so that the invocation shows as failed; the timer
// is not redelivered, and the next run picks up whatever this one left.
func (h *Handler) onScheduleExports(ctx context.Context, inv *invocation) int {
	start := time.Now()
	var s *exportjob.Scheduler
	var err error
	if h.cfg.ExportJobs != nil {
		s, err = h.cfg.ExportJobs(ctx, inv.log)
	}
	if err != nil {
		inv.log.Error("export scheduling misconfigured", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"error": err.Error()}
		return http.StatusInternalServerError
	}
	if s == nil {
		inv.log.Info("export scheduling is off: " + settings.ExportWorkspaceID + " is empty")
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
