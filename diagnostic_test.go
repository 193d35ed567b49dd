package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// testdata/diagnostic holds the rule cases as a Microsoft Entra ID
// diagnostic setting archives them (internal/signin/diagnostic_test.go
// keeps it equal to testdata/cases).
const (
	diagInteractive    = "testdata/diagnostic/insights-logs-signinlogs"
	diagNonInteractive = "testdata/diagnostic/insights-logs-noninteractiveusersigninlogs"
)

// TestDetectDiagnosticArchive: detect over the folders of a diagnostic-settings
// archive (PT1H.json blobs in the resource-log form) prints byte for byte
// what it prints for the same sign-ins in Log Analytics form, in every
// output format, and the rows are expected.jsonl's.
func TestDetectDiagnosticArchive(t *testing.T) {
	detectCases(t, diagInteractive, diagNonInteractive)
	// One side in each form: the pipeline's extracts and the function
	// meet both forms side by side.
	detectCases(t, diagInteractive, "testdata/cases/noninteractive.jsonl")
	detectCases(t, "testdata/cases/interactive.jsonl", diagNonInteractive)
	for _, format := range []string{"jsonl", "csv", "table"} {
		run := func(i, n string) string {
			code, out, errs := runCLI(t, append([]string{"detect", "--format", format, "--interactive", i, "--noninteractive", n}, caseFlags...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			return out
		}
		la := run("testdata/cases/interactive.jsonl", "testdata/cases/noninteractive.jsonl")
		if diag := run(diagInteractive, diagNonInteractive); diag != la {
			t.Errorf("--format %s: diagnostic archive gives\n%s\nLog Analytics form gives\n%s", format, diag, la)
		}
	}
}

// TestDetectDiagnosticCategoryMismatch: the archive's non-interactive
// container given as the interactive side is an error naming file, row and
// category.
func TestDetectDiagnosticCategoryMismatch(t *testing.T) {
	code, _, errs := runCLI(t, append([]string{"detect", "--interactive", diagNonInteractive, "--noninteractive", diagNonInteractive}, caseFlags...)...)
	if code == 0 || !strings.Contains(errs, "PT1H.json: column category: row 1: category \"NonInteractiveUserSignInLogs\" is not SigninLogs's") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

// TestProcessDiagnosticArchive: `process` over a folder laid out as the
// storage account of a diagnostic setting (its two insights-logs-*
// containers configured as the export containers) writes the same alerts
// as over the same sign-ins exported by Log Analytics data export.
func TestProcessDiagnosticArchive(t *testing.T) {
	diag := t.TempDir()
	copyTree(t, "testdata/diagnostic", diag)
	la := t.TempDir()
	copyFile(t, "testdata/cases/interactive.jsonl", filepath.Join(la, "am-signinlogs", "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"))
	copyFile(t, "testdata/cases/noninteractive.jsonl", filepath.Join(la, "am-aadnoninteractiveusersigninlogs", "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"))

	results := func(dir string, extra ...string) []string {
		code, _, errs := runCLI(t, append(append([]string{"process", "--storage", dir}, caseFlags...), extra...)...)
		if code != 0 {
			t.Fatalf("process %s: exit %d: %s", dir, code, errs)
		}
		docs, _, err := alertsOf(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		return alertKeys(docs)
	}
	want := results(la)
	got := results(diag, "--interactive-container", "insights-logs-signinlogs",
		"--noninteractive-container", "insights-logs-noninteractiveusersigninlogs")
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("diagnostic archive alerts\n%v\nLog Analytics form alerts\n%v", got, want)
	}
}

// alertKeys are the alerts' ids and result rows, which do not depend on the
// blob names the rows came from.
func alertKeys(docs []alert.Document) []string {
	var keys []string
	for _, d := range docs {
		for _, r := range d.Results {
			keys = append(keys, fmt.Sprintf("%s %+v", d.SystemAlertId, r))
		}
	}
	slices.Sort(keys)
	return keys
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		copyFile(t, p, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProcessDiagnosticArchiveAzurite: the same over an Azurite account
// holding the archive as Azure Monitor writes it (append blobs under
// tenantId=/y=/m=/d=/h=/m=00/PT1H.json).
func TestProcessDiagnosticArchiveAzurite(t *testing.T) {
	cs := azurite.Start(t)
	la := t.TempDir()
	copyFile(t, "testdata/cases/interactive.jsonl", filepath.Join(la, "am-signinlogs", "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"))
	copyFile(t, "testdata/cases/noninteractive.jsonl", filepath.Join(la, "am-aadnoninteractiveusersigninlogs", "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"))
	code, _, errs := runCLI(t, append([]string{"process", "--storage", la}, caseFlags...)...)
	if code != 0 {
		t.Fatalf("process %s: exit %d: %s", la, code, errs)
	}
	docs, _, err := alertsOf(t, la)
	if err != nil {
		t.Fatal(err)
	}
	want := alertKeys(docs)

	ctx := context.Background()
	s, err := store.NewAzureFromConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	ic, nc := azurite.ContainerName("diag-i"), azurite.ContainerName("diag-n")
	state, alerts, incidents := azurite.ContainerName("diag-state"), azurite.ContainerName("diag-alerts"), azurite.ContainerName("diag-inc")
	for _, c := range []struct{ dir, container string }{
		{diagInteractive, ic}, {diagNonInteractive, nc},
	} {
		if err := s.EnsureContainer(ctx, c.container); err != nil {
			t.Fatal(err)
		}
		err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(c.dir, p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = s.Append(ctx, c.container, filepath.ToSlash(rel), data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs = runCLI(t, append([]string{"process", "--storage", cs,
		"--interactive-container", ic, "--noninteractive-container", nc,
		"--state-container", state, "--alerts-container", alerts, "--incidents-container", incidents}, caseFlags...)...)
	if code != 0 {
		t.Fatalf("process (Azurite): exit %d: %s", code, errs)
	}
	got, _, err := alert.Store{Blobs: s, AlertsContainer: alerts, IncidentsContainer: incidents}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if keys := alertKeys(got); len(want) == 0 || !slices.Equal(keys, want) {
		t.Fatalf("Azurite diagnostic archive alerts\n%v\nLog Analytics form alerts\n%v", keys, want)
	}
}
