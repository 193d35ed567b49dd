package exportjob

import (
	"context"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/precision"
)

// A precision mode widens the jobs' projection by the columns it reads,
// those the table's reference lists; exact (no extra columns) projects the
// rule's columns only, as before.
func TestPrecisionProjection(t *testing.T) {
	rule := map[string]string{
		TableInteractive:    "| project TimeGenerated, UserPrincipalName, IPAddress, Location, ResultType, AuthenticationRequirement, ConditionalAccessStatus, AppDisplayName, CorrelationId, UniqueTokenIdentifier, Id",
		TableNonInteractive: "| project TimeGenerated, UserPrincipalName, IPAddress, Location, ResultType, AppDisplayName, CorrelationId, UniqueTokenIdentifier, Id",
	}
	for _, tc := range []struct {
		mode  precision.Mode
		added map[string]string // by table: the columns after the rule's
	}{
		{precision.Exact, map[string]string{TableInteractive: "", TableNonInteractive: ""}},
		{precision.Balanced, map[string]string{
			TableInteractive:    ", AutonomousSystemNumber, NetworkLocationDetails, AppId",
			TableNonInteractive: ", SessionId, AutonomousSystemNumber, NetworkLocationDetails, IsThroughGlobalSecureAccess, AppId"}},
		{precision.Strict, map[string]string{
			TableInteractive:    ", AutonomousSystemNumber, NetworkLocationDetails, AppId, LocationDetails, DeviceDetail",
			TableNonInteractive: ", SessionId, AutonomousSystemNumber, NetworkLocationDetails, IsThroughGlobalSecureAccess, AppId, LocationDetails, DeviceDetail, TokenProtectionStatusDetails"}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			for table, added := range tc.added {
				q := HourRequest(table, testKeys(1)[0].Hour, testAccount, "c", tc.mode.Columns()...).Query
				if !strings.HasSuffix(q, rule[table]+added) {
					t.Errorf("%s: query %q, want it to end %q", table, q, rule[table]+added)
				}
			}
		})
	}
}

// The scheduler creates its jobs with Config.Extra's projection.
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
