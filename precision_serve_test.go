package main

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestPrecisionModesThroughTheFunction runs the labeled precision case in
// the Azure Functions custom handler (`serve` over real HTTP, Azurite as the
// storage account, TOKENPIVOT_PRECISION as an app setting holds it): the
// exports' BlobCreated events, then the queued work, as the Functions host
// sends them, give alerts whose evidence rows are the rows `detect
// --precision MODE` prints for the same files under the same settings, in
// either order of arrival (the second blob probes the first one's stored
// extracts), and every alert document records the mode and a precision row
// for each of its evidence rows. -short runs one mode in one order.
func TestPrecisionModesThroughTheFunction(t *testing.T) {
	type order struct {
		name             string
		interactiveFirst bool
	}
	modes := []string{"balanced", "strict"}
	orders := []order{{"non-interactive first", false}, {"interactive first", true}}
	if testing.Short() {
		modes, orders = modes[:1], orders[:1]
	}
	for _, mode := range modes {
		for _, o := range orders {
			t.Run(mode+"/"+o.name, func(t *testing.T) {
				cs, ic, nc, _, alerts, _ := serveEnv(t, "prec")
				// The rule's own safe lists, as detect has them without flags
				// (the case's expected files are detect's rows so).
				t.Setenv(settings.SafeIPs, "")
				t.Setenv(settings.SafeNetworks, "")
				t.Setenv(settings.Precision, mode)

				// detect in the same settings, on the same files.
				code, out, errs := runCLI(t, "detect", "--interactive", labeledCase+"/interactive.jsonl.gz",
					"--noninteractive", labeledCase+"/noninteractive.jsonl.gz", "--precision", mode)
				if code != 0 {
					t.Fatalf("detect: exit %d: %s", code, errs)
				}
				want := sortedLines(out)
				// The case's rows for the mode: detect here is the detect the
				// case was made with, not one the serve settings changed.
				caseRows, err := os.ReadFile(labeledCase + "/expected." + mode + ".jsonl")
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(want, sortedLines(string(caseRows))) {
					t.Fatalf("detect --precision %s under serve's settings: %d rows, the case's %d", mode, len(want), len(sortedLines(string(caseRows))))
				}

				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				base, stderr, done := startServe(t, ctx)
				s, err := store.NewAzureFromConnectionString(cs)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range []string{ic, nc} {
					if err := s.EnsureContainer(ctx, c); err != nil {
						t.Fatal(err)
					}
				}
				const dir = "WorkspaceResourceId=/subscriptions/x/workspaces/ws/y=2026/m=11/d=20/h=08/m=00/"
				blobs := []struct{ container, file string }{
					{nc, "noninteractive.jsonl.gz"},
					{ic, "interactive.jsonl.gz"},
				}
				if o.interactiveFirst {
					slices.Reverse(blobs)
				}
				for _, b := range blobs {
					data, err := os.ReadFile(labeledCase + "/" + b.file)
					if err != nil {
						t.Fatal(err)
					}
					name := dir + "part-0.json.gz"
					if _, err := s.Write(ctx, b.container, name, data, store.Condition{}); err != nil {
						t.Fatal(err)
					}
					event := map[string]any{
						"id": "831e1650-001e-001b-66ab-eeb76e069631", "eventType": "Microsoft.Storage.BlobCreated",
						"subject": "/blobServices/default/containers/" + b.container + "/blobs/" + name, "eventTime": "2026-11-20T12:06:00Z",
						"data":        map[string]any{"api": "PutBlockList", "blobType": "BlockBlob", "contentLength": len(data), "url": s.URL(b.container, name)},
						"dataVersion": "", "metadataVersion": "1",
					}
					var queued struct {
						Outputs map[string]string
						Logs    []string
					}
					post(t, base+"/OnExportCreated", map[string]any{"Data": map[string]any{"event": event}, "Metadata": map[string]any{}}, http.StatusOK, &queued)
					if queued.Outputs["work"] == "" {
						t.Fatalf("OnExportCreated queued nothing: %v", queued.Logs)
					}
					post(t, base+"/ProcessExport", map[string]any{"Data": map[string]any{"work": queued.Outputs["work"]}, "Metadata": map[string]any{"DequeueCount": 1}}, http.StatusOK, nil)
				}

				docs, _, err := alert.Store{Blobs: s, AlertsContainer: alerts}.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var rows []detect.Result
				for _, doc := range docs {
					rows = append(rows, doc.Results...)
					if doc.Precision == nil || doc.Precision.Mode != mode {
						t.Errorf("alert %s: precision record %+v, want mode %s", doc.SystemAlertId, doc.Precision, mode)
						continue
					}
					var evidence, recorded [][2]string
					for _, r := range doc.Results {
						evidence = append(evidence, [2]string{r.InteractiveId, r.NonInteractiveId})
					}
					for _, r := range doc.Precision.Rows {
						recorded = append(recorded, [2]string{r.InteractiveId, r.NonInteractiveId})
					}
					slices.SortFunc(evidence, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
					if !slices.Equal(evidence, recorded) {
						t.Errorf("alert %s: precision rows %v, evidence %v", doc.SystemAlertId, recorded, evidence)
					}
				}
				var b strings.Builder
				if err := detect.WriteJSONL(&b, rows); err != nil {
					t.Fatal(err)
				}
				got := sortedLines(b.String())
				if !slices.Equal(got, want) {
					missing, extra := diffLines(want, got)
					t.Errorf("function: %d rows, detect --precision %s %d; missing %d, extra %d\nmissing: %q\nextra: %q", len(got), mode, len(want), len(missing), len(extra), first(missing), first(extra))
				}
				if !strings.Contains(stderr.String(), `"msg":"blob processed"`) {
					t.Errorf("serve's log lacks the blobs:\n%s", stderr.String())
				}
				t.Logf("%d rows in %d alerts", len(got), len(docs))
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		}
	}
}
