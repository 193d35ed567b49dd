package function

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/exportjob/exportjobtest"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// settingsScheduler is the scheduler serve hands the handler for the app
// settings vars (the root's newExportJobs), over the state store st.
func settingsScheduler(t *testing.T, vars map[string]string, api *exportjobtest.Server, st store.Store) ExportScheduler {
	t.Helper()
	s, err := settings.FromEnvOnly(settings.All()...).Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.ExportJobConfig()
	switch {
	case err != nil:
		return func(context.Context, *slog.Logger) (*exportjob.Scheduler, error) { return nil, err }
	case !cfg.Enabled():
		return nil
	}
	cl, err := exportjob.NewClient(cfg, api.Client())
	if err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, log *slog.Logger) (*exportjob.Scheduler, error) {
		return &exportjob.Scheduler{Config: cfg, API: cl, Store: st, Container: s.StateContainer, Output: st, Logger: log}, nil
	}
}

// TestScheduleExports invokes the timer function as the host does: off
// without a workspace, a clear error when misconfigured, and otherwise one
// scheduler pass that requests jobs from the (local, HTTPS) export job API
// with a managed-identity token and records them in the state container.
func TestScheduleExports(t *testing.T) {
	api := exportjobtest.New(t)
	e := newLocalEnv(t, nil)
	dir := t.TempDir()
	local, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureContainer(context.Background(), "tokenpivot-state"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	serve := func(vars map[string]string) string {
		h, err := New(Config{Pipeline: e.p, Logger: slog.New(slog.DiscardHandler),
			ExportJobs: settingsScheduler(t, vars, api, local)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}

	off := serve(vars)
	r, err := postTo(off, ScheduleExports, timerPayload())
	if err != nil {
		t.Fatal(err)
	}
	checkReply(t, r, http.StatusOK)
	if string(r.ReturnValue) != `{"disabled":true}` {
		t.Errorf("off: ReturnValue %s", r.ReturnValue)
	}

	vars = map[string]string{settings.ExportWorkspaceID: api.WorkspaceID()}
	r, _ = postTo(serve(vars), ScheduleExports, timerPayload())
	checkReply(t, r, http.StatusInternalServerError)
	if !strings.Contains(string(r.ReturnValue), settings.ExportStorageAccountID) {
		t.Errorf("misconfigured: ReturnValue %s does not name %s", r.ReturnValue, settings.ExportStorageAccountID)
	}

	vars = map[string]string{
		settings.ExportWorkspaceID:      api.WorkspaceID(),
		settings.ExportStorageAccountID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stexport",
		settings.ExportEndpoint:         api.API.URL,
		settings.ExportMaxActive:        "5",
	}
	on := serve(vars)
	var sums []exportjob.Summary
	for range 2 {
		r, _ = postTo(on, ScheduleExports, timerPayload())
		checkReply(t, r, http.StatusOK)
		var sum exportjob.Summary
		if err := json.Unmarshal(r.ReturnValue, &sum); err != nil {
			t.Fatalf("ReturnValue %s: %v", r.ReturnValue, err)
		}
		sums = append(sums, sum)
	}
	// 48 hours of lookback, two tables; 5 jobs at once.
	if sums[0].Hours != 96 || sums[0].Requested != 5 || sums[0].Deferred != 91 {
		t.Errorf("first run: %+v", sums[0])
	}
	if sums[1].Requested != 0 || sums[1].Running != 5 {
		t.Errorf("second run (jobs still running): %+v", sums[1])
	}
	if n := len(api.Jobs()); n != 5 {
		t.Errorf("%d jobs created, want 5", n)
	}
	n := 0
	local.List(context.Background(), "tokenpivot-state", exportjob.StatePrefix, func(store.Properties) error { n++; return nil })
	if n != 5 {
		t.Errorf("%d state blobs, want 5", n)
	}
}
