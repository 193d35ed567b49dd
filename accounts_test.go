package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// process on a folder without either export container refuses (exit 2),
// naming what it looked for and what it found, and creates nothing: a wrong
// folder used to print "processed 0 blobs" and gain three tokenpivot-* folders.
func TestProcessRefusesStorageWithoutExports(t *testing.T) {
	for _, tc := range []struct {
		name    string
		folders []string
		want    []string
	}{
		{"empty", nil, []string{"looked for am-signinlogs and am-aadnoninteractiveusersigninlogs", "holds no containers"}},
		{"diagnostic archive", []string{"insights-logs-signinlogs", "insights-logs-noninteractiveusersigninlogs"},
			[]string{"found insights-logs-noninteractiveusersigninlogs, insights-logs-signinlogs",
				"use --interactive-container insights-logs-signinlogs --noninteractive-container insights-logs-noninteractiveusersigninlogs"}},
		{"something else", []string{"backups", "logs"}, []string{"am-signinlogs", "found backups, logs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.folders {
				if err := os.Mkdir(filepath.Join(dir, f), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errs := runCLI(t, "process", "--storage", dir)
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(tc.folders) {
				t.Errorf("process created %d folders in %s, want none", len(entries)-len(tc.folders), dir)
			}
		})
	}
	// The same on an account: nothing created there either.
	cs := azurite.Start(t)
	state := azurite.ContainerName("refuse-state")
	code, _, errs := runCLI(t, "process", "--storage", cs, "--interactive-container", azurite.ContainerName("refuse-i"),
		"--noninteractive-container", azurite.ContainerName("refuse-n"), "--state-container", state)
	if code != 2 || !strings.Contains(errs, "holds neither export container") {
		t.Fatalf("on Azurite: exit %d: %s", code, errs)
	}
	st, err := store.Open(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := containerExists(context.Background(), st, state); ok || err != nil {
		t.Errorf("on Azurite: state container %s created (%v)", state, err)
	}
}

// An Azure export account named alone (--storage https://...) is not where
// process creates its containers: it refuses unless --state is given, and
// goes on when they are there already.
func TestProcessStateInExportAccount(t *testing.T) {
	ctx := context.Background()
	cs := azurite.Start(t)
	acct, err := store.Open(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	s := settings.Defaults()
	s.StorageAccountURL = "https://exports.blob.core.windows.net" // what the user typed; acct stands for it
	s.InteractiveContainer, s.NonInteractiveContainer = azurite.ContainerName("exp-i"), azurite.ContainerName("exp-n")
	s.StateContainer, s.AlertsContainer, s.IncidentsContainer = azurite.ContainerName("exp-state"), azurite.ContainerName("exp-alerts"), azurite.ContainerName("exp-inc")
	if err := acct.EnsureContainer(ctx, s.InteractiveContainer); err != nil {
		t.Fatal(err)
	}
	err = checkAccounts(ctx, acct, acct, s)
	if err == nil || !strings.Contains(err.Error(), "--state") || !strings.Contains(err.Error(), s.StateContainer) {
		t.Fatalf("export account named alone: %v, want a refusal naming --state and %s", err, s.StateContainer)
	}
	withState := s
	withState.StateStorageAccountURL = s.StorageAccountURL
	if err := checkAccounts(ctx, acct, acct, withState); err != nil {
		t.Errorf("with --state: %v", err)
	}
	for _, c := range []string{s.StateContainer, s.AlertsContainer, s.IncidentsContainer} {
		if err := acct.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkAccounts(ctx, acct, acct, s); err != nil {
		t.Errorf("state containers already there: %v", err)
	}
	// A local folder or a development connection string is not an export
	// account: the quick start creates its containers there.
	local := s
	local.StorageAccountURL = t.TempDir()
	if err := os.Mkdir(filepath.Join(local.StorageAccountURL, s.InteractiveContainer), 0o755); err != nil {
		t.Fatal(err)
	}
	lst, err := store.Open(ctx, local.StorageAccountURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAccounts(ctx, lst, lst, local); err != nil {
		t.Errorf("local folder: %v", err)
	}
}
