package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/function"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
	"github.com/tokenpivot/tokenpivot/internal/syncbuf"
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
	cs, ic, nc, state, alerts, incidents := serveEnv(t, "serve")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, stderr, done := startServe(t, ctx)

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
	docs, _, err := alert.Store{Blobs: s, AlertsContainer: alerts}.List(ctx)
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

// listeningAt is serve's log line saying where it listens.
var listeningAt = regexp.MustCompile(`"msg":"custom handler listening","addr":"([^"]+)"`)

// startServe runs `tokenpivot serve` as configured by the environment
// (FUNCTIONS_CUSTOMHANDLER_PORT=0: a port of its own choosing, read back
// from its log) until ctx ends; it returns the base URL once GET / answers,
// serve's stderr, and its result.
func startServe(t *testing.T, ctx context.Context) (string, *syncbuf.Buffer, <-chan error) {
	t.Helper()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- runServe(ctx, nil, io.Discard, stderr); close(exited) }()
	m := stderr.Await(listeningAt, 30*time.Second, exited)
	if m == nil {
		t.Fatalf("serve never said where it listens:\n%s", stderr.String())
	}
	base := "http://" + m[1]
	waitReady(t, base, done)
	return base, stderr, done
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

func TestServeDefaultAddr(t *testing.T) {
	for _, tc := range []struct {
		port, want string
	}{
		{"", "127.0.0.1:8080"},
		{"7071", "127.0.0.1:7071"},
	} {
		got := defaultAddr(func(name string) string {
			if name == "FUNCTIONS_CUSTOMHANDLER_PORT" {
				return tc.port
			}
			return ""
		})
		if got != tc.want {
			t.Errorf("port %q: default address %s, want %s", tc.port, got, tc.want)
		}
	}
}

// localSettings points serve at a local directory: no Azurite needed.
func localSettings(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		settings.StorageConnectionString: "", settings.StorageAccountURL: dir, settings.StateStorageAccountURL: "",
		settings.InteractiveContainer: "", settings.NonInteractiveContainer: "", settings.StateContainer: "",
		settings.AlertsContainer: "", settings.IncidentsContainer: "", settings.SafeIPs: "", settings.SafeNetworks: "",
		settings.Rule: "", settings.AllowedLateness: "",
	} {
		t.Setenv(k, v)
	}
	return dir
}

// TestServeListensOnLoopback: without --addr, serve answers on
// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT and on none of the machine's
// other addresses.
func TestServeListensOnLoopback(t *testing.T) {
	localSettings(t)
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", "0") // a port of its own: read from its log
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, _, done := startServe(t, ctx)
	host, portText, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("serve listens on %s, want 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (%v)", base, err)
	}
	port, _ := strconv.Atoi(portText)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		others++
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), strconv.Itoa(port)), 2*time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("serve accepts connections on %s", ipn.IP)
		}
	}
	t.Logf("checked %d non-loopback addresses", others)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// testLimits are defaultLimits shortened so that tests see them act.
func testLimits() serverLimits {
	l := defaultLimits
	l.ReadHeader, l.Read, l.Grace, l.Drain = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 5*time.Second
	return l
}

// serveHandler starts serve with h on a real listener and returns its
// base URL, its stop function and its result.
func serveHandler(t *testing.T, h http.Handler, lim serverLimits) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h, slog.New(slog.DiscardHandler), lim) }()
	return "http://" + ln.Addr().String(), cancel, done
}

// TestServeCutsSlowBodies: clients that send headers and then trickle (or
// stop sending) the body lose their connection after the read timeout,
// instead of holding it, as 200 such clients once did for minutes.
func TestServeCutsSlowBodies(t *testing.T) {
	p, _ := localPipeline(t, nil)
	h, err := function.New(function.Config{Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := serveHandler(t, h, testLimits())
	addr := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct{ name, send string }{
		{"body stops", "POST /Sweep HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"Data\":"},
		{"headers stop", "POST /Sweep HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close()
					if _, err := io.WriteString(conn, tc.send); err != nil {
						t.Error(err)
						return
					}
					// Far above the 300 ms read timeout (and below the old 10 s
					// header timeout): hitting this
					// deadline means the server kept the connection.
					conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, err = io.Copy(io.Discard, conn)
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Error("the server kept a slow client's connection open")
					}
				})
			}
			wg.Wait()
		})
	}
}

// blockingStore blocks the pipeline's first look at an export blob until
// the invocation's context ends, and records that it ended.
type blockingStore struct {
	store.Store
	exports   map[string]bool
	entered   chan struct{}
	cancelled chan error
}

func (b *blockingStore) Stat(ctx context.Context, c, n string) (store.Properties, error) {
	if b.exports[c] {
		b.entered <- struct{}{}
		<-ctx.Done()
		b.cancelled <- ctx.Err()
		return store.Properties{}, ctx.Err()
	}
	return b.Store.Stat(ctx, c, n)
}

// localPipeline is a pipeline over a local directory, the pipeline's store
// wrapped by wrap when not nil.
func localPipeline(t *testing.T, wrap func(store.Store) store.Store) (*pipeline.Pipeline, *store.Local) {
	t.Helper()
	data, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := store.Store(data)
	if wrap != nil {
		s = wrap(data)
	}
	d := settings.Defaults()
	p, err := pipeline.New(pipeline.Config{Exports: s, State: s, InteractiveContainer: d.InteractiveContainer,
		NonInteractiveContainer: d.NonInteractiveContainer, StateContainer: d.StateContainer,
		Alerts: &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: d.AlertsContainer, IncidentsContainer: d.IncidentsContainer}, Rule: rule.Default()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureContainers(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{d.InteractiveContainer, d.NonInteractiveContainer} {
		if err := data.EnsureContainer(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return p, data
}

// TestServeShutdownCancelsInFlight: on SIGTERM an invocation still running
// after the grace has its context cancelled and serve returns; the
// redelivered message then processes the blob and writes its ledger entry.
func TestServeShutdownCancelsInFlight(t *testing.T) {
	d := settings.Defaults()
	bs := &blockingStore{exports: map[string]bool{d.InteractiveContainer: true}, entered: make(chan struct{}, 1), cancelled: make(chan error, 1)}
	p, data := localPipeline(t, func(s store.Store) store.Store { bs.Store = s; return bs })
	lines, err := os.ReadFile(filepath.Join("testdata", "cases", "interactive.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	name := "timestamp=2026-11-20T10/part-00.json"
	if _, err := data.Write(context.Background(), d.InteractiveContainer, name, lines, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	work := fmt.Sprintf(`{"container":%q,"name":%q}`, d.InteractiveContainer, name)
	payload := map[string]any{"Data": map[string]any{"work": work}, "Metadata": map[string]any{"DequeueCount": 1}}

	h, err := function.New(function.Config{Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	lim := testLimits()
	base, stop, done := serveHandler(t, h, lim)
	inflight := make(chan error, 1)
	go func() {
		body, _ := json.Marshal(payload)
		resp, err := http.Post(base+"/ProcessExport", "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		inflight <- err
	}()
	<-bs.entered
	stop() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(lim.Grace + lim.Drain + 10*time.Second):
		t.Fatal("serve did not return after the grace")
	}
	select {
	case err := <-bs.cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the invocation's context ended with %v, want cancelled", err)
		}
	default:
		t.Fatal("the in-flight invocation's context was not cancelled")
	}
	<-inflight
	if _, _, err := data.Read(context.Background(), d.StateContainer, "ledger/"+d.InteractiveContainer+"/"+name+".json"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("a ledger entry exists for the cut invocation: %v", err)
	}

	// The queue redelivers the message to the next instance.
	p2, err := pipeline.New(pipeline.Config{Exports: data, State: data, InteractiveContainer: d.InteractiveContainer,
		NonInteractiveContainer: d.NonInteractiveContainer, StateContainer: d.StateContainer,
		Alerts: &alert.Writer{Store: alert.Store{Blobs: data, AlertsContainer: d.AlertsContainer, IncidentsContainer: d.IncidentsContainer}, Rule: rule.Default()}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := function.New(function.Config{Pipeline: p2, Exports: data})
	if err != nil {
		t.Fatal(err)
	}
	base2, _, _ := serveHandler(t, h2, lim)
	var out struct{ ReturnValue map[string]any }
	post(t, base2+"/ProcessExport", payload, http.StatusOK, &out)
	if out.ReturnValue["rows_read"] == float64(0) || out.ReturnValue["error"] != nil {
		t.Fatalf("redelivery: %v", out.ReturnValue)
	}
	if _, _, err := data.Read(context.Background(), d.StateContainer, "ledger/"+d.InteractiveContainer+"/"+name+".json"); err != nil {
		t.Fatalf("no ledger entry after the redelivery: %v", err)
	}
}

// serveEnv is the app settings of `serve` on a fresh Azurite with the rule
// cases' safe lists: containers named after prefix, the handler's port 0 (a
// port of its own choosing: see startServe). It returns the connection
// string and the containers.
func serveEnv(t *testing.T, prefix string) (cs, ic, nc, state, alerts, incidents string) {
	t.Helper()
	cs = azurite.Start(t)
	ic, nc = azurite.ContainerName(prefix+"-i"), azurite.ContainerName(prefix+"-n")
	state, alerts, incidents = azurite.ContainerName(prefix+"-state"), azurite.ContainerName(prefix+"-alerts"), azurite.ContainerName(prefix+"-inc")
	for k, v := range map[string]string{
		settings.StorageConnectionString: cs, settings.StorageAccountURL: "",
		settings.InteractiveContainer: ic, settings.NonInteractiveContainer: nc,
		settings.StateContainer: state, settings.AlertsContainer: alerts, settings.IncidentsContainer: incidents,
		settings.SafeIPs: "203.0.113.50", settings.SafeNetworks: "198.51.100.0/24,2001:db8:ffff::/48",
		settings.Rule: "", settings.AllowedLateness: "",
	} {
		t.Setenv(k, v)
	}
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
	return cs, ic, nc, state, alerts, incidents
}

// gateLog records the "listening" line, but first gives a request up to
// wait to be served: if the server answered before it logged, the request
// comes first in order.
type gateLog struct {
	mu     sync.Mutex
	order  []string
	served chan struct{}
	wait   time.Duration
}

func (g *gateLog) note(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, s)
}
func (g *gateLog) Enabled(context.Context, slog.Level) bool { return true }
func (g *gateLog) WithAttrs([]slog.Attr) slog.Handler       { return g }
func (g *gateLog) WithGroup(string) slog.Handler            { return g }
func (g *gateLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "custom handler listening" {
		select {
		case <-g.served:
		case <-time.After(g.wait):
		}
		g.note("listening")
	}
	return nil
}

// serve logs "listening" before it answers anything: a test (or the host)
// that waits for an answer and then reads the log finds the line, whatever
// the machine's load (scripts/test once failed TestServeListensOnLoopback so).
func TestServeLogsBeforeServing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateLog{served: make(chan struct{}), wait: 500 * time.Millisecond}
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.note("request")
		once.Do(func() { close(g.served) })
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h, slog.New(g), defaultLimits) }()
	for {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.order) < 2 || g.order[0] != "listening" {
		t.Fatalf("order %q: serve answered before it logged that it listens", g.order)
	}
}
