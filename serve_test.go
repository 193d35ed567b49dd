package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestMain(m *testing.M) {
	// Re-executed by a test as the tokenpivot command itself.
	if args := os.Getenv(runMainEnv); args != "" {
		os.Args = append([]string{"tokenpivot"}, strings.Split(args, "\x1f")...)
		main()
	}
	azurite.Main(m)
}

// runMainEnv holds the \x1f-separated arguments when the test binary runs
// as the command (see TestMain).
const runMainEnv = "TOKENPIVOT_TEST_RUN_MAIN"

// TestServe runs `tokenpivot serve` as the Functions host would: settings in
// the environment, FUNCTIONS_CUSTOMHANDLER_PORT, Azurite as the storage
// account. It must create its containers, answer GET /, turn an event into a
// queue message, process it, and stop cleanly on cancellation (SIGTERM).
func TestServe(t *testing.T) {
	cs := azurite.Start(t)
	ic, nc := azurite.ContainerName("serve-i"), azurite.ContainerName("serve-n")
	state, alerts, incidents := azurite.ContainerName("serve-state"), azurite.ContainerName("serve-alerts"), azurite.ContainerName("serve-inc")
	for k, v := range map[string]string{
		settings.StorageConnectionString: cs, settings.StorageAccountURL: "",
		settings.InteractiveContainer: ic, settings.NonInteractiveContainer: nc,
		settings.StateContainer: state, settings.AlertsContainer: alerts, settings.IncidentsContainer: incidents,
		settings.SafeIPs: "203.0.113.50", settings.SafeNetworks: "198.51.100.0/24,2001:db8:ffff::/48",
		settings.Rule: "", settings.AllowedLateness: "",
	} {
		t.Setenv(k, v)
	}
	port := freePort(t)
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", strconv.Itoa(port))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil, io.Discard, &stderr) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base, done)

	s, err := store.NewAzureFromConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{state, alerts, incidents} {
		if err := s.List(ctx, c, "", func(store.Properties) error { return nil }); err != nil {
			t.Errorf("serve did not create container %s: %v", c, err)
		}
	}
	// The export containers belong to the export job; create them here.
	for _, c := range []string{ic, nc} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct{ container, file string }{{ic, "interactive.jsonl"}, {nc, "noninteractive.jsonl"}} {
		data, err := os.ReadFile(filepath.Join("testdata", "cases", b.file))
		if err != nil {
			t.Fatal(err)
		}
		name := "WorkspaceResourceId=/subscriptions/x/workspaces/ws/y=2026/m=11/d=20/h=10/m=00/PT05M.json"
		if _, err := s.Write(ctx, b.container, name, data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		event := map[string]any{
			"id": "831e1650-001e-001b-66ab-eeb76e069631", "eventType": "Microsoft.Storage.BlobCreated",
			"subject": "/blobServices/default/containers/" + b.container + "/blobs/" + name, "eventTime": "2026-11-20T10:06:00Z",
			"data":        map[string]any{"api": "PutBlockList", "blobType": "BlockBlob", "contentLength": len(data), "url": s.URL(b.container, name)},
			"dataVersion": "", "metadataVersion": "1",
		}
		var out struct {
			Outputs map[string]string
			Logs    []string
		}
		post(t, base+"/OnExportCreated", map[string]any{"Data": map[string]any{"event": event}, "Metadata": map[string]any{}}, http.StatusOK, &out)
		if out.Outputs["work"] == "" {
			t.Fatalf("OnExportCreated queued nothing: %v", out.Logs)
		}
		post(t, base+"/ProcessExport", map[string]any{"Data": map[string]any{"work": out.Outputs["work"]}, "Metadata": map[string]any{"DequeueCount": 1}}, http.StatusOK, nil)
	}
	docs, _, err := alert.List(ctx, s, alerts, "")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, d := range docs {
		rows += len(d.Results)
	}
	if rows != 12 {
		t.Errorf("alerts hold %d rows, want the 12 rule-case rows", rows)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancellation: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
	for _, want := range []string{`"msg":"custom handler listening"`, `"msg":"blob processed"`, `"msg":"shutting down"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("serve never answered GET /")
}

func post(t *testing.T, url string, payload any, status int, out any) {
	t.Helper()
	body, _ := json.Marshal(payload)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, data)
		}
	}
}

func TestServeBadSettings(t *testing.T) {
	t.Setenv(settings.StorageConnectionString, "")
	t.Setenv(settings.StorageAccountURL, "")
	err := runServe(context.Background(), []string{"--addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), settings.StorageAccountURL) {
		t.Errorf("serve without storage: %v, want an error naming %s", err, settings.StorageAccountURL)
	}
	if err := runServe(context.Background(), []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Error("serve with an argument: no error")
	}
}

func TestLoadRule(t *testing.T) {
	text := string(rule.DefaultYAML())
	path := filepath.Join(t.TempDir(), "rule.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, value, wantErr string
	}{
		{"empty is the bundled rule", "", ""},
		{"YAML text", text, ""},
		{"a path", path, ""},
		{"a missing path", filepath.Join(t.TempDir(), "nope.yaml"), "nope.yaml"},
		{"bad YAML text", "id: x\n  name: [", settings.Rule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loadRule(tc.value)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
			case tc.wantErr == "" && r.ID != rule.Default().ID:
				t.Errorf("rule id %q, want %q", r.ID, rule.Default().ID)
			}
		})
	}
}
