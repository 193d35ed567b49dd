package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// The README's "Run the function locally", as a test: gen's exports
// uploaded to Azurite, an Event Grid event naming one of them through
// OnExportCreated, every ProcessExport request upload wrote, and the alerts
// are gen's planted pivots.
func TestUploadAndRunTheFunctionLocally(t *testing.T) {
	cs, ic, nc, _, alerts, _ := serveEnv(t, "local")
	dir := t.TempDir()
	o := gen.NewOptions(filepath.Join(dir, "tenant"))
	o.Users, o.Hours, o.Attacks, o.LookalikeSets, o.Seed = 150, 4, 2, 1, 5
	o.InteractiveContainer, o.NonInteractiveContainer = ic, nc
	sum, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A state folder from an earlier `process` on the same folder is not uploaded.
	if err := os.MkdirAll(filepath.Join(o.Out, "tokenpivot-state", "ledger"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work.jsonl")
	code, out, errs := runCLI(t, "upload", "--storage", cs, "--work", work, o.Out)
	if code != 0 || !strings.Contains(out, "uploaded ") || !strings.Contains(errs, "skipped 1 tokenpivot-* state folders") {
		t.Fatalf("upload: exit %d\n%s%s", code, out, errs)
	}
	s, err := store.NewAzureFromConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, work)
	blobs := 0
	for _, c := range []string{ic, nc} {
		err := s.List(context.Background(), c, "", func(p store.Properties) error { blobs++; return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if blobs == 0 || len(lines) != blobs {
		t.Fatalf("%d blobs uploaded, %d ProcessExport requests written", blobs, len(lines))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, _, done := startServe(t, ctx)

	// The event for the first blob: its queue message is upload's request's.
	var first struct {
		Data struct{ Work string }
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	var wk struct{ Container, Name string }
	if err := json.Unmarshal([]byte(first.Data.Work), &wk); err != nil {
		t.Fatal(err)
	}
	event := map[string]any{"id": "1", "eventType": "Microsoft.Storage.BlobCreated",
		"subject":   "/blobServices/default/containers/" + wk.Container + "/blobs/" + wk.Name,
		"eventTime": "2026-11-20T03:00:00Z", "data": map[string]any{"api": "PutBlob", "url": s.URL(wk.Container, wk.Name)},
		"dataVersion": "", "metadataVersion": "1"}
	var queued struct{ Outputs map[string]string }
	post(t, base+"/OnExportCreated", map[string]any{"Data": map[string]any{"event": event}, "Metadata": map[string]any{}}, http.StatusOK, &queued)
	if queued.Outputs["work"] != first.Data.Work {
		t.Fatalf("OnExportCreated queued %q, upload wrote %q", queued.Outputs["work"], first.Data.Work)
	}
	for _, l := range lines {
		resp, err := http.Post(base+"/ProcessExport", "application/json", strings.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ProcessExport %s: %s", l, resp.Status)
		}
	}
	docs, _, err := alert.Store{Blobs: s, AlertsContainer: alerts}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, d := range docs {
		rows += d.ExtendedProperties.ResultCount
	}
	if want := len(sum.Pivots()); rows != want || want == 0 {
		t.Errorf("alerts in Azurite hold %d rows, gen planted %d pivots", rows, want)
	}
	cancel()
	<-done
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
