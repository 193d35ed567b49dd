package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tokenpivot/tokenpivot/internal/function"
	"github.com/tokenpivot/tokenpivot/internal/settings"
)

// TestServeAnswersCarryNoSAS: with a SAS connection string and storage
// unreachable, ProcessExport and Sweep fail, and their answers (Logs and
// ReturnValue, which the Functions host writes to its own logs) name the
// failing requests without the SAS signature. Over real HTTP, through the
// wiring serve uses.
func TestServeAnswersCarryNoSAS(t *testing.T) {
	const sig = "U2lnRm9yU2VydmVUZXN0cw%3D%3D"
	// Nothing listens on port 1: every storage call fails at once.
	cs := "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;SharedAccessSignature=sv=2024-08-04&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=" + sig
	localSettings(t)
	t.Setenv(settings.StorageConnectionString, cs)
	t.Setenv(settings.StorageAccountURL, "")
	s, err := settings.FromEnvOnly(settings.All()...).Load(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	// One try per storage call: the SDK's retries would only add seconds.
	ctx := policy.WithRetryOptions(t.Context(), policy.RetryOptions{MaxRetries: -1})
	a, err := newPipeline(ctx, s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h, err := function.New(function.Config{Pipeline: a.pipeline, Exports: a.exports, ServiceURL: "http://127.0.0.1:1/devstoreaccount1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(sctx, ln, h, slog.New(slog.DiscardHandler), testLimits()) }()
	t.Cleanup(func() { stop(); <-done })
	base := "http://" + ln.Addr().String()

	work := `{"container":"` + s.InteractiveContainer + `","name":"timestamp=2026-11-20T10/part-00.json"}`
	for _, c := range []struct{ function, payload string }{
		{"ProcessExport", `{"Data":{"work":` + jsonString(work) + `},"Metadata":{"DequeueCount":1}}`},
		{"Sweep", `{"Data":{"timer":{}},"Metadata":{}}`},
	} {
		resp, err := http.Post(base+"/"+c.function, "application/json", strings.NewReader(c.payload))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s: %s, want 500 (storage is unreachable): %s", c.function, resp.Status, body)
		}
		var out struct {
			Logs        []string
			ReturnValue map[string]any
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: the answer is not JSON: %v: %s", c.function, err, body)
		}
		if out.ReturnValue["error"] == nil || len(out.Logs) == 0 {
			t.Errorf("%s: no error or logs in the answer: %s", c.function, body)
		}
		if strings.Contains(string(body), sig) || strings.Contains(string(body), "U2lnRm9yU2VydmVUZXN0cw") {
			t.Errorf("%s: the answer carries the SAS signature:\n%s", c.function, body)
		}
		// What the host writes to its log is each line as decoded JSON.
		for _, line := range out.Logs {
			if !json.Valid([]byte(line)) {
				t.Errorf("%s: log line is not JSON after redaction: %s", c.function, line)
			}
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestServeSlowBodyIs408: a body that stops mid-way is cut at the read
// timeout and answered 408 (the request was too slow: the host may send it
// again), not 503 as if the function had failed.
func TestServeSlowBodyIs408(t *testing.T) {
	p, _ := localPipeline(t, nil)
	h, err := function.New(function.Config{Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := serveHandler(t, h, testLimits())
	for _, fn := range []string{"Sweep", "ProcessExport"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /"+fn+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Data\":{\"work\":"); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer to a body that stopped: %v", fn, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s: a body that stopped mid-way: %s, want 408: %s", fn, resp.Status, body)
		}
	}
}
