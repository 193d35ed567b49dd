package main

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/syncbuf"
)

// repoRoot is the module root, where host.json and functions/ live.
const repoRoot = "../.."

// wantEntries is the layout the Flex Consumption host expects: host.json and
// the function folders at the root, the executable beside them.
var wantEntries = []string{
	"host.json",
	"OnExportCreated/function.json",
	"ProcessExport/function.json",
	"ScheduleExports/function.json",
	"Sweep/function.json",
	Executable,
}

// TestPackageFixture packages the repository's host.json and functions with a
// stand-in handler, so the packager is checked even before the real main exists.
func TestPackageFixture(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist", "tokenpivot.zip")
	if _, err := Build(Options{Root: repoRoot, Main: "./tools/package/testdata/servefixture", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkPackage(t, out)
}

// TestPackageRoot packages the real tokenpivot main (module root, main.go)
// and runs its `serve` from the extracted zip.
func TestPackageRoot(t *testing.T) {
	if testing.Short() {
		// A cross-build of the whole command (tens of seconds on a cold
		// cache); TestPackageFixture checks the packager itself.
		t.Skip("-short: the full run packages the real main")
	}
	out := filepath.Join(t.TempDir(), "tokenpivot.zip")
	if _, err := Build(Options{Root: repoRoot, Main: ".", Out: out}); err != nil {
		t.Fatal(err)
	}
	checkLayout(t, out)
	// A local directory is a valid store, so serve can start without Azure.
	if err := serve(t, out, "TOKENPIVOT_STORAGE_ACCOUNT_URL="+t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestPackageDeterministic: the same sources give the same zip bytes, so a
// deployment can be compared with a local build.
func TestPackageDeterministic(t *testing.T) {
	dir := t.TempDir()
	var zips [2][]byte
	for i := range zips {
		out := filepath.Join(dir, fmt.Sprintf("%d.zip", i))
		if _, err := Build(Options{Root: repoRoot, Main: "./tools/package/testdata/servefixture", Out: out}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		zips[i] = data
	}
	if !bytes.Equal(zips[0], zips[1]) {
		t.Error("two builds of the same sources differ")
	}
}

func TestPackageRejects(t *testing.T) {
	goodHost := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"tokenpivot","arguments":["serve"]}}}`
	goodFn := `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 */15 * * * *"}]}`
	tests := []struct {
		name    string
		host    string
		fn      string // functions/Sweep/function.json; "" = no functions
		wantErr string
	}{
		{"host not json", `{"version":`, goodFn, "host.json: unexpected end of JSON input"},
		{"host version", `{"version":"1.0","customHandler":{"description":{"defaultExecutablePath":"tokenpivot"}}}`, goodFn, `version is "1.0"`},
		{"no custom handler", `{"version":"2.0"}`, goodFn, "host.json: no customHandler section"},
		{"other executable", `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`, goodFn, `defaultExecutablePath is "handler", want "tokenpivot"`},
		{"no functions", goodHost, "", "no functions/*/function.json"},
		{"function not json", goodHost, `{"bindings":[`, "Sweep/function.json: unexpected EOF"},
		{"no bindings", goodHost, `{"bindings":[]}`, "Sweep/function.json: no bindings"},
		{"binding without name", goodHost, `{"bindings":[{"type":"timerTrigger","direction":"in"}]}`, "bindings[0] needs type, name and direction"},
		{"two triggers", goodHost, `{"bindings":[{"type":"timerTrigger","direction":"in","name":"a"},{"type":"queueTrigger","direction":"in","name":"b"}]}`, "has 2 triggers, want exactly 1"},
		{"output only", goodHost, `{"bindings":[{"type":"queue","direction":"out","name":"work"}]}`, "has 0 triggers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "host.json"), tt.host)
			if tt.fn != "" {
				writeFile(t, filepath.Join(root, "functions", "Sweep", "function.json"), tt.fn)
			}
			out := filepath.Join(root, "out.zip")
			_, err := Build(Options{Root: root, Main: ".", Out: out})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build error = %v, want one containing %q", err, tt.wantErr)
			}
			if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
				t.Errorf("a failed build left %s behind", out)
			}
		})
	}
}

func TestPackageBuildFailureNamesPackage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.zip")
	_, err := Build(Options{Root: repoRoot, Main: "./tools/package/testdata/nosuchpackage", Out: out})
	if err == nil || !strings.Contains(err.Error(), "go build ./tools/package/testdata/nosuchpackage") {
		t.Fatalf("Build error = %v, want it to name the package it failed to build", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkPackage checks the layout, then extracts the zip and runs the
// executable as the Functions host would.
func checkPackage(t *testing.T, zipPath string) {
	t.Helper()
	checkLayout(t, zipPath)
	if err := serve(t, zipPath); err != nil {
		t.Fatal(err)
	}
}

// exitedEarly: the executable stopped before it answered GET /.
type exitedEarly struct {
	err    error
	output string
}

func (e *exitedEarly) Error() string {
	return fmt.Sprintf("%s serve exited before answering GET /: %v\n%s", Executable, e.err, e.output)
}

// serve extracts the zip and runs `tokenpivot serve` with
// FUNCTIONS_CUSTOMHANDLER_PORT (and env) set, as the Functions host does;
// GET / must then answer 2xx.
func serve(t *testing.T, zipPath string, env ...string) error {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("layout checked; cannot run a linux/amd64 executable on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := t.TempDir()
	extract(t, zipPath, dir)
	exe := filepath.Join(dir, Executable)
	if fi, err := os.Stat(exe); err != nil || fi.Mode().Perm()&0o100 == 0 {
		return fmt.Errorf("extracted %s is not executable (stat: %v)", exe, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "serve")
	cmd.Dir = dir
	// Port 0: the handler takes a port of its own and logs it, so no other
	// process can take it between a free-port probe and the bind.
	cmd.Env = append(os.Environ(), "FUNCTIONS_CUSTOMHANDLER_PORT=0")
	cmd.Env = append(cmd.Env, env...)
	var output syncbuf.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	// Bound Wait even if something the handler started keeps its output open.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve: %v", exe, err)
	}
	exited := make(chan error, 1)
	gone := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(gone) }()
	stop := func() {
		cancel()
		<-exited
	}

	m := output.Await(listeningAt, 15*time.Second, gone)
	if m == nil {
		select {
		case err := <-exited:
			return &exitedEarly{err: err, output: output.String()}
		default:
		}
		stop()
		return fmt.Errorf("serve did not log where it listens within 15s:\n%s", output.String())
	}
	url := "http://" + m[1] + "/"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return &exitedEarly{err: err, output: output.String()}
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			stop()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("GET %s = %s, want 2xx", url, resp.Status)
			}
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("GET %s: no answer within 15s: %v\n%s", url, err, output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listeningAt finds where the handler listens in its output: tokenpivot's
// JSON log line, or the fixture's.
var listeningAt = regexp.MustCompile(`(?:"msg":"custom handler listening","addr":"|servefixture listening on )(127\.0\.0\.1:[0-9]+)`)

// checkLayout checks entry names and order, modes, that host.json and the
// function.json files are the repository's own bytes, and that the
// executable is a static linux/amd64 ELF file.
func checkLayout(t *testing.T, zipPath string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if strings.Join(names, "\n") != strings.Join(wantEntries, "\n") {
		t.Fatalf("zip entries = %q, want %q", names, wantEntries)
	}
	for _, f := range zr.File {
		data := readEntry(t, f)
		if f.Name == Executable {
			if got := f.Mode(); got.Perm() != 0o755 || !got.IsRegular() {
				t.Errorf("%s mode = %v, want -rwxr-xr-x", f.Name, got)
			}
			checkELF(t, data)
			continue
		}
		if got := f.Mode().Perm(); got != 0o644 {
			t.Errorf("%s mode = %v, want 0644", f.Name, got)
		}
		src := filepath.Join(repoRoot, f.Name)
		if f.Name != "host.json" {
			src = filepath.Join(repoRoot, "functions", f.Name)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Errorf("%s in the zip differs from %s", f.Name, src)
		}
	}
}

func checkELF(t *testing.T, data []byte) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not an ELF executable: %v", Executable, err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 || ef.Type != elf.ET_EXEC {
		t.Errorf("%s: machine %v type %v, want EM_X86_64 ET_EXEC", Executable, ef.Machine, ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader (PT_INTERP): not built with CGO_ENABLED=0", Executable)
		}
	}
}

func readEntry(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return data
}

// extract unpacks the zip honouring the recorded modes, as the Flex
// Consumption worker does when it mounts the package.
func extract(t *testing.T, zipPath, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, readEntry(t, f), f.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}
