package settings

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
)

const testExportAccount = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-export/providers/Microsoft.Storage/storageAccounts/stexport"

// exportJobConfig loads the export scheduler's settings from kv (name,
// value pairs) as serve does, and parses them.
func exportJobConfig(kv ...string) (exportjob.Config, error) {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	s, err := FromEnvOnly(append(ExportJobSettings, InteractiveContainer, NonInteractiveContainer)...).Load(func(k string) string { return m[k] })
	if err != nil {
		return exportjob.Config{}, err
	}
	return s.ExportJobConfig()
}

func TestExportJobConfig(t *testing.T) {
	const ws = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/law1"
	// Off: no workspace, whatever else is set (even nonsense).
	c, err := exportJobConfig(ExportMaxActive, "lots")
	if err != nil || c.Enabled() {
		t.Fatalf("off: %+v, %v", c, err)
	}
	c, err = exportJobConfig(ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, InteractiveContainer, "my-signins",
		ExportFirstHour, "2026-11-01T00:00:00Z", ExportLookback, "72h", ExportMaxActive, "2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Workspace != (exportjob.Workspace{Subscription: "s1", ResourceGroup: "rg1", Name: "law1"}) || c.Workspace.ID() != ws ||
		c.Containers[exportjob.TableInteractive] != "my-signins" ||
		c.Containers[exportjob.TableNonInteractive] != "am-aadnoninteractiveusersigninlogs" || c.Lookback != 72*time.Hour ||
		c.MaxActive != 2 || !c.FirstHour.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || c.Schedule != exportjob.DefaultSchedule ||
		c.Endpoint != exportjob.DefaultEndpoint {
		t.Errorf("config %+v", c)
	}
	for name, kv := range map[string][]string{
		ExportWorkspaceID:      {ExportWorkspaceID, "law1"},
		ExportStorageAccountID: {ExportWorkspaceID, ws},
		ExportSchedule:         {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportSchedule, "0 5 * * *"},
		ExportFirstHour:        {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportFirstHour, "2026-11-01T00:30:00Z"},
		ExportLookback:         {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportLookback, "30d"},
		ExportSettle:           {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportSettle, "-1m"},
		ExportLease:            {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportLease, "10s"},
		ExportStuckAfter:       {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportStuckAfter, "x"},
		ExportMaxAttempts:      {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportMaxAttempts, "6"},
		ExportMaxActive:        {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportMaxActive, "0"},
		ExportEndpoint:         {ExportWorkspaceID, ws, ExportStorageAccountID, testExportAccount, ExportEndpoint, "http://localhost"},
	} {
		_, err := exportJobConfig(kv...)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name it", name, err)
		}
	}
}

// TestExportJobSettingsTable: every TOKENPIVOT_EXPORT_* name has a row of
// the table with a meaning, and the defaults in it are exportjob's.
func TestExportJobSettingsTable(t *testing.T) {
	rows := map[string]Setting{}
	for _, st := range Table() {
		if strings.HasPrefix(st.Env, "TOKENPIVOT_EXPORT_") {
			rows[st.Env] = st
			if st.Usage == "" {
				t.Errorf("%s: no meaning", st.Env)
			}
		}
	}
	if len(rows) != len(ExportJobSettings) {
		t.Errorf("%d rows, want %d", len(rows), len(ExportJobSettings))
	}
	d := exportjob.Default()
	for name, want := range map[string]time.Duration{ExportLookback: d.Lookback, ExportSettle: d.Settle, ExportLease: d.Lease, ExportStuckAfter: d.StuckAfter} {
		if got, err := time.ParseDuration(rows[name].Default); err != nil || got != want {
			t.Errorf("%s: table default %q, code %v", name, rows[name].Default, want)
		}
	}
	if rows[ExportSchedule].Default != d.Schedule {
		t.Errorf("%s: table default %q, code %q", ExportSchedule, rows[ExportSchedule].Default, d.Schedule)
	}
	// The endpoint's default is empty (as the infrastructure writes it),
	// meaning the code's, which its meaning names.
	if rows[ExportEndpoint].Default != "" || !strings.Contains(rows[ExportEndpoint].Usage, d.Endpoint) {
		t.Errorf("%s: default %q, usage %q: want empty, naming %s", ExportEndpoint, rows[ExportEndpoint].Default, rows[ExportEndpoint].Usage, d.Endpoint)
	}
	for name, want := range map[string]int{ExportMaxAttempts: d.MaxAttempts, ExportMaxActive: d.MaxActive} {
		if rows[name].Default != strconv.Itoa(want) {
			t.Errorf("%s: table default %q, code %d", name, rows[name].Default, want)
		}
	}
}
