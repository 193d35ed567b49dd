package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/exportjob/exportjobtest"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestExportsBackfill: `exports schedule --from --to` requests every table
// and hour of the range exactly once, against the local HTTPS export job
// API with a managed-identity token, shows progress on stderr and a summary
// on stdout; a second run requests nothing; `exports status` lists it all.
func TestExportsBackfill(t *testing.T) {
	api := exportjobtest.New(t)
	exportsHTTPClient = api.Client()
	t.Cleanup(func() { exportsHTTPClient = nil })
	t.Setenv(settings.ExportWorkspaceID, api.WorkspaceID())
	t.Setenv(settings.ExportStorageAccountID, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stexport")
	t.Setenv(settings.ExportEndpoint, api.API.URL)
	dir := t.TempDir()
	local, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.EnsureContainer(context.Background(), "tokenpivot-state"); err != nil {
		t.Fatal(err)
	}
	from := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Hour)
	to := from.Add(6 * time.Hour)
	args := []string{"exports", "schedule", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--storage", dir, "--poll", "5ms", "--wait"}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	per := api.CreatesPerHour()
	if len(per) != 12 {
		t.Errorf("jobs for %d table-hours, want 12: %v", len(per), per)
	}
	for k, n := range per {
		if n != 1 {
			t.Errorf("%s requested %d times", k, n)
		}
	}
	if !strings.Contains(stdout.String(), "12 table-hours: 12 jobs requested now, 0 retried; 12 succeeded") {
		t.Errorf("summary: %s", stdout.String())
	}
	// Progress: more than one pass (4 jobs at once by default), each shown.
	if n := strings.Count(stderr.String(), "table-hours requested"); n < 3 || !strings.Contains(stderr.String(), "12/12 table-hours requested") {
		t.Errorf("progress lines (%d): %s", n, stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), args, &stdout, &stderr); code != exitOK {
		t.Fatalf("second run: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "12 table-hours: 0 jobs requested now") || len(api.Jobs()) != 12 {
		t.Errorf("second run: %s (%d jobs)", stdout.String(), len(api.Jobs()))
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"exports", "status", "--storage", dir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "12 states") || strings.Count(out, " succeeded ") != 12 || !strings.Contains(out, "AADNonInteractiveUserSignInLogs") {
		t.Errorf("status:\n%s", out)
	}
	if w, l := maxWidth(out); w > 120 || !strings.Contains(out, "HOUR (UTC)") {
		t.Errorf("status: a line of %d columns, or no UTC in the header: %s", w, l)
	}
}

func TestExportsUsage(t *testing.T) {
	t.Setenv(settings.ExportWorkspaceID, "")
	now := time.Now().UTC()
	for name, args := range map[string][]string{
		"no subcommand": {"exports"},
		"unknown":       {"exports", "frobnicate"},
		"no range":      {"exports", "schedule", "--storage", t.TempDir()},
		"future":        {"exports", "schedule", "--storage", t.TempDir(), "--from", now.Add(-2 * time.Hour).Format(time.RFC3339), "--to", now.Add(time.Hour).Format(time.RFC3339)},
		"no workspace":  {"exports", "schedule", "--storage", t.TempDir(), "--from", now.Add(-5 * time.Hour).Format(time.RFC3339), "--to", now.Add(-2 * time.Hour).Format(time.RFC3339)},
		"bad time":      {"exports", "status", "--storage", t.TempDir(), "--from", "yesterday"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitBad {
			t.Errorf("%s: exit %d, want %d: %s", name, code, exitBad, stderr.String())
		}
	}
}

// TestExportsStatusShowsPastGarbledState: one state blob that does not parse
// (a partial write by hand, a tool's mistake) is named on stderr, and every
// other hour is still listed.
func TestExportsStatusShowsPastGarbledState(t *testing.T) {
	dir := t.TempDir()
	local, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := local.EnsureContainer(ctx, "tokenpivot-state"); err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for i, table := range []string{exportjob.TableInteractive, exportjob.TableNonInteractive, exportjob.TableInteractive} {
		k := exportjob.Key{Table: table, Hour: hour.Add(time.Duration(i/2) * time.Hour)}
		data, err := json.Marshal(exportjob.State{Table: k.Table, Hour: k.Hour, Phase: exportjob.PhaseSucceeded, JobID: fmt.Sprintf("job-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			data = data[:len(data)/2] // garbled
		}
		if _, err := local.Write(ctx, "tokenpivot-state", exportjob.StateName(k), data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"exports", "status", "--storage", dir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "2 states") || !strings.Contains(out, "job-0") || !strings.Contains(out, "job-2") {
		t.Errorf("status lists not the two readable hours:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "2026/11/20/10.json") || !strings.Contains(stderr.String(), "unreadable") {
		t.Errorf("stderr does not name the garbled state blob: %s", stderr.String())
	}
}

// TestNewExportJobs: serve's ScheduleExports scheduler is built from the
// settings table over the pipeline's stores: none when off, the setting
// named at every invocation when misconfigured (serve itself starts), and
// otherwise a scheduler that records its hours in the state container and
// looks ambiguous creates up in the export store.
func TestNewExportJobs(t *testing.T) {
	api := exportjobtest.New(t)
	exportsHTTPClient = api.Client()
	t.Cleanup(func() { exportsHTTPClient = nil })
	exports, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := state.EnsureContainer(ctx, "my-state"); err != nil {
		t.Fatal(err)
	}
	load := func(vars map[string]string) settings.Settings {
		s, err := settings.FromEnvOnly(settings.All()...).Load(func(k string) string { return vars[k] })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if newExportJobs(load(nil), state, exports) != nil {
		t.Error("off: a scheduler without a workspace")
	}
	bad := newExportJobs(load(map[string]string{settings.ExportWorkspaceID: api.WorkspaceID()}), state, exports)
	for range 2 {
		if _, err := bad(ctx, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), settings.ExportStorageAccountID) {
			t.Errorf("misconfigured: error %v does not name %s", err, settings.ExportStorageAccountID)
		}
	}
	on := newExportJobs(load(map[string]string{settings.ExportWorkspaceID: api.WorkspaceID(), settings.StateContainer: "my-state",
		settings.ExportStorageAccountID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stexport",
		settings.ExportEndpoint:         api.API.URL, settings.ExportMaxActive: "2", settings.InteractiveContainer: "my-signins"}), state, exports)
	s, err := on(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if s.Store != store.Store(state) || s.Output != store.Store(exports) || s.Container != "my-state" || s.Config.MaxActive != 2 ||
		s.Config.Containers[exportjob.TableInteractive] != "my-signins" {
		t.Errorf("scheduler %+v", s)
	}
	sum, err := s.Run(ctx)
	if err != nil || sum.Requested != 2 || len(api.Jobs()) != 2 {
		t.Errorf("run: %+v, %v (%d jobs)", sum, err, len(api.Jobs()))
	}
}
