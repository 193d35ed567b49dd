// Package azurite gives tests a running Azurite blob emulator.
//
// Start returns a connection string. It uses the instance named by
// TOKENPIVOT_AZURITE_CONNECTION_STRING when set; otherwise it starts
// tools/azurite/node_modules/.bin/azurite-blob (installed by
// `npm ci --prefix tools/azurite`, which scripts/test does) once per test
// binary, in memory on a loopback port of its own choosing (port 0: the
// address is read from its output). Without the binary the test is
// skipped, unless TOKENPIVOT_REQUIRE_AZURITE=1, when it fails: the README's
// test command sets it so that a missing emulator can never pass silently.
//
// Packages using it should call Main from TestMain so the emulator stops
// when the tests end; on Linux it also dies with the test process.
package azurite

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/syncbuf"
)

const (
	// EnvConnectionString names a running Azurite (or storage account) to use.
	EnvConnectionString = "TOKENPIVOT_AZURITE_CONNECTION_STRING"
	// EnvRequire turns "Azurite not installed" from a skip into a failure.
	EnvRequire = "TOKENPIVOT_REQUIRE_AZURITE"

	// Account and Key are Azurite's well-known development credentials.
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

	binRel = "tools/azurite/node_modules/.bin/azurite-blob"
)

// ConnectionString returns the connection string for an Azurite blob
// endpoint at host:port.
func ConnectionString(hostPort string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key +
		";BlobEndpoint=http://" + hostPort + "/" + Account + ";"
}

var (
	once     sync.Once
	cs       string
	startErr error
	missing  string // why no emulator could be found, for the skip message

	mu      sync.Mutex
	proc    *os.Process   // the emulator this process started
	exited  chan struct{} // closed when proc has been waited for
	workDir string
)

// Start returns the connection string of a running Azurite, starting one
// for this test binary if needed; see the package comment.
func Start(t testing.TB) string {
	t.Helper()
	once.Do(start)
	switch {
	case startErr != nil:
		t.Fatalf("azurite: %v", startErr)
	case missing != "" && os.Getenv(EnvRequire) == "1":
		t.Fatalf("azurite: %s, and %s=1", missing, EnvRequire)
	case missing != "":
		t.Skipf("azurite: %s (run scripts/test, or set %s)", missing, EnvConnectionString)
	}
	return cs
}

// Main runs the tests and then stops the emulator Start started. Call it
// from TestMain: func TestMain(m *testing.M) { azurite.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the emulator this process started, if any.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if proc != nil {
		proc.Kill()
		<-exited
		proc = nil
	}
	if workDir != "" {
		os.RemoveAll(workDir)
		workDir = ""
	}
}

var seq atomic.Int64

// ContainerName returns a container name no other test (in this or another
// test binary sharing the emulator) uses: prefix, a counter and random hex,
// within Azure's 3-63 lowercase characters.
func ContainerName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	// Keep [a-z0-9], turn runs of anything else (test names have '/' and
	// '_') into one hyphen.
	var clean strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			clean.WriteRune(r)
		case clean.Len() > 0 && !strings.HasSuffix(clean.String(), "-"):
			clean.WriteByte('-')
		}
	}
	p := strings.Trim(clean.String(), "-")
	if len(p) > 40 {
		p = strings.TrimRight(p[:40], "-")
	}
	if p == "" {
		p = "test"
	}
	return fmt.Sprintf("%s-%d-%s", p, seq.Add(1), hex.EncodeToString(b[:]))
}

func start() {
	if v := os.Getenv(EnvConnectionString); v != "" {
		cs = v
		return
	}
	root, err := repoRoot()
	if err != nil {
		missing = err.Error()
		return
	}
	bin := filepath.Join(root, binRel)
	if _, err := os.Stat(bin); err != nil {
		missing = bin + " is not installed (npm ci --prefix tools/azurite)"
		return
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not on PATH"
		return
	}
	// Azurite picks its port itself (port 0), so no other process can take
	// it first; a failed start (a slow machine) is tried again.
	for attempt := 0; attempt < 3; attempt++ {
		var addr string
		if addr, err = launch(bin); err == nil {
			cs = ConnectionString(addr)
			return
		}
	}
	startErr = err
}

// listening is Azurite's line saying where it listens.
var listening = regexp.MustCompile(`successfully listens on http://(127\.0\.0\.1:[0-9]+)`)

// launch starts azurite-blob on port 0, reads the port it took from its
// output, and waits until it answers there.
func launch(bin string) (string, error) {
	dir, err := os.MkdirTemp("", "tokenpivot-azurite-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin,
		"--skipApiVersionCheck", "--inMemoryPersistence", "--disableTelemetry", "--silent",
		"--blobHost", "127.0.0.1", "--blobPort", "0")
	out := &syncbuf.Buffer{Max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir // Azurite may write debug or lock files into its working directory
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	mu.Lock()
	proc, exited, workDir = cmd.Process, done, dir
	mu.Unlock()

	m := out.Await(listening, 60*time.Second, done)
	if m == nil {
		Stop()
		select {
		case <-done:
			return "", fmt.Errorf("%s exited before listening (%v): %s", bin, waitErr, out.String())
		default:
		}
		return "", fmt.Errorf("%s did not say where it listens within 60s: %s", bin, out.String())
	}
	addr := m[1]
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			Stop()
			return "", fmt.Errorf("%s exited before answering (%v): %s", bin, waitErr, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		// Any answer from Azurite (an auth error included) means it is
		// serving; another server's answers do not count.
		if answers(client, addr) {
			return addr, nil
		}
	}
	Stop()
	return "", fmt.Errorf("%s did not answer on %s within 60s: %s", bin, addr, out.String())
}

// answers reports whether Azurite answers at addr: any answer (an auth
// error included) with its Server header.
func answers(client *http.Client, addr string) bool {
	resp, err := client.Get("http://" + addr + "/" + Account + "?comp=list")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return strings.HasPrefix(resp.Header.Get("Server"), "Azurite")
}

// repoRoot walks up from the working directory (a package directory under
// go test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
