package main

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

// TestProcessStopsOnSIGTERM: SIGTERM in the middle of a run ends it within
// seconds (the alert writer and the store honour cancellation), and the
// next run redoes what was left half-done: the ledger's done entry is
// written last, so the alerts are exactly the planted pivots.
func TestProcessStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command on a generated tenant")
	}
	o := gen.NewOptions(t.TempDir())
	// A storm: thousands of alerts in a few blobs, so a blob's alert writes
	// take long enough to be interrupted.
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 3000, 2, 2000, 0, 5
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runMainEnv+"="+strings.Join([]string{"process", "--storage", o.Out, "--workers", "1", "-v"}, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
		}
	}()
	// Signal once alerts are being written: the run is then mid-storm.
	alerts := filepath.Join(o.Out, "tokenpivot-alerts")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if n := countFiles(alerts); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no alert written in 2 minutes")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Fatalf("process finished the whole run (exit 0) after SIGTERM; want it cut short")
		}
		t.Logf("stopped %v after SIGTERM: %v", time.Since(signalled).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("process still running 10 s after SIGTERM")
	}

	code, _, errs := runCLI(t, "process", "--storage", o.Out)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errs)
	}
	docs, _, err := alertsOf(t, o.Out)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, d := range docs {
		rows += d.ExtendedProperties.ResultCount
	}
	if rows != len(sum.Pivots()) {
		t.Fatalf("after an interrupted run and a second one, alerts hold %d rows, gen planted %d", rows, len(sum.Pivots()))
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}
