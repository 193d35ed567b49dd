package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// Progress bars are drawn when stderr is a terminal, through the redaction
// every command's stderr goes through, and never in a pipe or a log.
func TestProgressOnTerminalOnly(t *testing.T) {
	dir := t.TempDir()
	tenant := filepath.Join(dir, "tenant")
	steps := []struct {
		args []string
		bar  string
	}{
		{[]string{"gen", "--out", tenant, "--users", "100", "--hours", "3", "--attacks", "1"}, "generating rows"},
		{[]string{"process", "--storage", tenant, "--workers", "2"}, "processing blobs"},
		{[]string{"detect", "--interactive", filepath.Join(tenant, "am-signinlogs"),
			"--noninteractive", filepath.Join(tenant, "am-aadnoninteractiveusersigninlogs")}, "reading exports"},
	}
	for _, st := range steps {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("pseudo-terminal: %v", err)
		}
		var seen bytes.Buffer
		copied := make(chan struct{})
		go func() { io.Copy(&seen, ptmx); close(copied) }()
		var out bytes.Buffer
		code := run(context.Background(), st.args, &out, tty)
		tty.Close() // the master then reads EOF (EIO) once drained
		<-copied
		ptmx.Close()
		if code != 0 {
			t.Fatalf("%s on a terminal: exit %d: %s", st.args[0], code, seen.String())
		}
		if !strings.Contains(seen.String(), st.bar) || !strings.Contains(seen.String(), "100%") {
			t.Errorf("%s on a terminal: no progress bar %q at 100%%; the terminal got %q", st.args[0], st.bar, seen.String())
		}
	}
	// The same commands with stderr a pipe: no bar, no carriage returns.
	for _, st := range steps {
		if st.args[0] == "gen" {
			st.args[2] = filepath.Join(dir, "again")
		}
		code, _, errs := runCLI(t, st.args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", st.args[0], code, errs)
		}
		if strings.Contains(errs, st.bar) || strings.Contains(errs, "\r") {
			t.Errorf("%s into a pipe drew a progress bar: %q", st.args[0], errs)
		}
	}
}
