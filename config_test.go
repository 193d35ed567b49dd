package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// A bad value of a setting breaks only the commands that use it, and never
// -h; errors name the setting.
func TestSettingsBreakOnlyTheirCommands(t *testing.T) {
	t.Setenv("TOKENPIVOT_ALLOWED_LATENESS", "a week")
	t.Setenv("TOKENPIVOT_SAFE_IPS", "")
	for _, c := range commands() {
		if code, _, errs := runCLI(t, c.name, "-h"); code != 0 {
			t.Errorf("%s -h: exit %d with a bad TOKENPIVOT_ALLOWED_LATENESS: %s", c.name, code, errs)
		}
	}
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "process", "--storage", dir); code != 2 || !strings.Contains(errs, `TOKENPIVOT_ALLOWED_LATENESS="a week"`) {
		t.Errorf("process: exit %d, want 2 naming the setting: %s", code, errs)
	}
	t.Setenv("TOKENPIVOT_ALLOWED_LATENESS", "")
	t.Setenv("TOKENPIVOT_SAFE_NETWORKS", "not a network")
	// alerts needs no rule and no safe list.
	if code, _, errs := runCLI(t, "alerts", "--storage", dir); code != 0 {
		t.Errorf("alerts with a bad TOKENPIVOT_SAFE_NETWORKS: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "process", "--storage", dir); code != 2 || !strings.Contains(errs, "TOKENPIVOT_SAFE_NETWORKS") {
		t.Errorf("process with a bad TOKENPIVOT_SAFE_NETWORKS: exit %d, want 2 naming it: %s", code, errs)
	}
}

// Storage that cannot be reached is worth a retry (exit 1), unlike bad
// configuration (exit 2).
func TestStorageFailureIsRetryable(t *testing.T) {
	// One try per storage call: the SDK's retries against the closed port
	// (9 s of back-off) would test nothing more.
	ctx := policy.WithRetryOptions(context.Background(), policy.RetryOptions{MaxRetries: -1})
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"process", "--storage", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"}, &stdout, &stderr)
	errs := stderr.String()
	if code != 1 {
		t.Errorf("unreachable storage: exit %d, want 1: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "process", "--storage", filepath.Join(t.TempDir(), "missing")); code != 2 {
		t.Errorf("a folder that does not exist: exit %d, want 2: %s", code, errs)
	}
}

// The rule's eventGroupingSettings.aggregationKind decides the alerts:
// AlertPerResult makes one alert per result row; SingleAlert (the default)
// one per account, interactive sign-in and NI IP, so pivots that refresh
// tokens several times from one IP share an alert.
func TestAggregationKindIsApplied(t *testing.T) {
	o := gen.NewOptions(t.TempDir())
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 300, 6, 6, 0, 7
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	pivots := len(sum.Pivots())
	for _, tc := range []struct {
		kind string
		ok   func(alerts int) bool
	}{
		{"SingleAlert", func(alerts int) bool { return alerts < pivots }},
		{"AlertPerResult", func(alerts int) bool { return alerts == pivots }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ruleFile := filepath.Join(t.TempDir(), "rule.yaml")
			r := string(rule.DefaultYAML()) + "eventGroupingSettings:\n  aggregationKind: " + tc.kind + "\n"
			if err := os.WriteFile(ruleFile, []byte(r), 0o644); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			if code, _, errs := runCLI(t, "process", "--storage", o.Out, "--state", state, "--rule", ruleFile); code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			docs, _, err := alertsOf(t, state)
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			for _, d := range docs {
				rows += d.ExtendedProperties.ResultCount
			}
			if rows != pivots || !tc.ok(len(docs)) {
				t.Errorf("%s: %d alerts of %d rows (%d pivots planted)", tc.kind, len(docs), rows, pivots)
			}
		})
	}
}
