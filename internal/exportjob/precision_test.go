package exportjob

import (
	"context"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/settings"
)

// A precision mode widens the jobs' projection by the columns it reads,
// those the table has; exact (the default) projects the rule's columns
// only, as before.
func TestPrecisionProjection(t *testing.T) {
	if EnvPrecision != settings.Precision {
		t.Fatalf("EnvPrecision %s, the pipeline's setting %s", EnvPrecision, settings.Precision)
	}
	rule := map[string]string{
		TableInteractive:    "| project TimeGenerated, UserPrincipalName, IPAddress, Location, ResultType, AuthenticationRequirement, ConditionalAccessStatus, AppDisplayName, CorrelationId, UniqueTokenIdentifier, Id",
		TableNonInteractive: "| project TimeGenerated, UserPrincipalName, IPAddress, Location, ResultType, AppDisplayName, CorrelationId, UniqueTokenIdentifier, Id",
	}
	for _, tc := range []struct {
		mode  string
		added map[string]string // by table: the columns after the rule's
	}{
		{"", map[string]string{TableInteractive: "", TableNonInteractive: ""}},
		{"exact", map[string]string{TableInteractive: "", TableNonInteractive: ""}},
		{"balanced", map[string]string{
			TableInteractive:    ", AutonomousSystemNumber, NetworkLocationDetails, AppId",
			TableNonInteractive: ", SessionId, AutonomousSystemNumber, NetworkLocationDetails, IsThroughGlobalSecureAccess, AppId"}},
		{"strict", map[string]string{
			TableInteractive:    ", AutonomousSystemNumber, NetworkLocationDetails, AppId, LocationDetails, DeviceDetail",
			TableNonInteractive: ", SessionId, AutonomousSystemNumber, NetworkLocationDetails, IsThroughGlobalSecureAccess, AppId, LocationDetails, DeviceDetail, TokenProtectionStatusDetails"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			api := map[string]string{EnvWorkspace: "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/law1",
				EnvStorageAccount: testAccount, EnvPrecision: tc.mode}
			cfg, err := FromEnv(func(k string) string { return api[k] })
			if err != nil {
				t.Fatal(err)
			}
			if (tc.added[TableNonInteractive] == "") != (cfg.Extra == nil) {
				t.Errorf("Config.Extra %v", cfg.Extra)
			}
			for table, added := range tc.added {
				q := HourRequest(table, testKeys(1)[0].Hour, testAccount, "c", cfg.Extra...).Query
				if !strings.HasSuffix(q, rule[table]+added) {
					t.Errorf("%s: query %q, want it to end %q", table, q, rule[table]+added)
				}
			}
		})
	}
	api := map[string]string{EnvWorkspace: "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/law1",
		EnvStorageAccount: testAccount, EnvPrecision: "loose"}
	if _, err := FromEnv(func(k string) string { return api[k] }); err == nil || !strings.Contains(err.Error(), EnvPrecision) {
		t.Errorf("a bad mode: %v", err)
	}
}

// The scheduler creates its jobs with the mode's projection.
func TestSchedulerProjectsPrecisionColumns(t *testing.T) {
	e := newEnv(t)
	e.cfg.Extra = []string{"SessionId", "AutonomousSystemNumber"}
	want := map[string]string{TableInteractive: ", Id, AutonomousSystemNumber", TableNonInteractive: ", Id, SessionId, AutonomousSystemNumber"}
	s := e.scheduler(localStore(t), nil)
	keys := testKeys(1)
	if _, err := s.Pass(context.Background(), keys); err != nil {
		t.Fatal(err)
	}
	jobs := e.api.Jobs()
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	for _, j := range jobs {
		if q, _ := j.Request["query"].(string); want[j.Table] == "" || !strings.HasSuffix(q, want[j.Table]) {
			t.Errorf("%s: query %q", j.Table, q)
		}
	}
}
