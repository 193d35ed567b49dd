package exportjob

import (
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	const ws = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/law1"
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	// Off: no workspace, whatever else is set (even nonsense).
	c, err := FromEnv(env(EnvMaxActive, "lots"))
	if err != nil || c.Enabled() {
		t.Fatalf("off: %+v, %v", c, err)
	}
	c, err = FromEnv(env(EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvInteractiveContainer, "my-signins",
		EnvFirstHour, "2026-11-01T00:00:00Z", EnvLookback, "72h", EnvMaxActive, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Workspace != (Workspace{"s1", "rg1", "law1"}) || c.Workspace.ID() != ws || c.Containers[TableInteractive] != "my-signins" ||
		c.Containers[TableNonInteractive] != "am-aadnoninteractiveusersigninlogs" || c.Lookback != 72*time.Hour ||
		c.MaxActive != 2 || !c.FirstHour.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || c.Schedule != DefaultSchedule {
		t.Errorf("config %+v", c)
	}
	for name, kv := range map[string][]string{
		EnvWorkspace:      {EnvWorkspace, "law1"},
		EnvStorageAccount: {EnvWorkspace, ws},
		EnvSchedule:       {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvSchedule, "0 5 * * *"},
		EnvFirstHour:      {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvFirstHour, "2026-11-01T00:30:00Z"},
		EnvLookback:       {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvLookback, "30d"},
		EnvSettle:         {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvSettle, "-1m"},
		EnvLease:          {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvLease, "10s"},
		EnvStuckAfter:     {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvStuckAfter, "x"},
		EnvMaxAttempts:    {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvMaxAttempts, "6"},
		EnvMaxActive:      {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvMaxActive, "0"},
		EnvEndpoint:       {EnvWorkspace, ws, EnvStorageAccount, testAccount, EnvEndpoint, "http://localhost"},
	} {
		_, err := FromEnv(env(kv...))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name it", name, err)
		}
	}
}

// TestSettingsTable: every TOKENPIVOT_EXPORT_* name has a row with a meaning,
// and the defaults in it are the code's.
func TestSettingsTable(t *testing.T) {
	names := []string{EnvWorkspace, EnvStorageAccount, EnvSchedule, EnvFirstHour, EnvLookback, EnvSettle, EnvLease,
		EnvStuckAfter, EnvMaxAttempts, EnvMaxActive, EnvEndpoint}
	rows := map[string]Setting{}
	for _, s := range Settings {
		rows[s.Name] = s
		if s.Meaning == "" {
			t.Errorf("%s: no meaning", s.Name)
		}
	}
	if len(rows) != len(names) {
		t.Errorf("%d rows, want %d", len(rows), len(names))
	}
	d := Default()
	for name, want := range map[string]string{EnvSchedule: d.Schedule, EnvLookback: d.Lookback.String(), EnvSettle: d.Settle.String(),
		EnvLease: d.Lease.String(), EnvStuckAfter: d.StuckAfter.String(), EnvEndpoint: d.Endpoint} {
		if rows[name].Default != want {
			t.Errorf("%s: table default %q, code %q", name, rows[name].Default, want)
		}
	}
}
