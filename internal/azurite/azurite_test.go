package azurite_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/azurite"
)

func TestMain(m *testing.M) { azurite.Main(m) }

func TestStart(t *testing.T) {
	cs := azurite.Start(t)
	m := regexp.MustCompile(`BlobEndpoint=(http://[^;]+);`).FindStringSubmatch(cs)
	if m == nil {
		t.Fatalf("connection string %q has no BlobEndpoint", cs)
	}
	// Unauthenticated, the emulator answers 403: it is up and checks keys.
	resp, err := http.Get(m[1] + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous list: %s, want 403", resp.Status)
	}
	if again := azurite.Start(t); again != cs {
		t.Errorf("second Start = %q, want the same instance %q", again, cs)
	}
}

func TestContainerName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]([a-z0-9]|-[a-z0-9])*$`)
	seen := map[string]bool{}
	for _, prefix := range []string{"conf", "TestList/Azure", "Test_Under__score", strings.Repeat("x", 39) + "-y", "-edge-", "", "ü"} {
		for range 3 {
			n := azurite.ContainerName(prefix)
			if len(n) < 3 || len(n) > 63 || !valid.MatchString(n) || seen[n] {
				t.Errorf("ContainerName(%q) = %q: invalid or repeated", prefix, n)
			}
			seen[n] = true
		}
	}
}

// TestMissingEmulator runs this test binary in a module without Azurite:
// the tests skip, unless TOKENPIVOT_REQUIRE_AZURITE=1 makes them fail.
func TestMissingEmulator(t *testing.T) {
	if os.Getenv("AZURITE_TEST_CHILD") == "1" {
		azurite.Start(t)
		t.Fatal("Start returned without an emulator")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/empty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, require := range []bool{false, true} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingEmulator$", "-test.v")
		cmd.Dir = dir
		cmd.Env = []string{"AZURITE_TEST_CHILD=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		if require {
			cmd.Env = append(cmd.Env, azurite.EnvRequire+"=1")
		}
		out, err := cmd.CombinedOutput()
		switch {
		case !require && (err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "is not installed")):
			t.Errorf("without %s: %v\n%s", azurite.EnvRequire, err, out)
		case require && (err == nil || !strings.Contains(string(out), "--- FAIL") || !strings.Contains(string(out), "is not installed")):
			t.Errorf("with %s=1: %v\n%s", azurite.EnvRequire, err, out)
		}
	}
}
