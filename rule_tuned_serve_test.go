package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
	"github.com/tokenpivot/tokenpivot/internal/syncbuf"
)

// TestTunedRuleThroughTheFunction runs tuned rules in the Azure Functions
// custom handler (`serve`, over real HTTP, Azurite as the storage account)
// with the rule as TOKENPIVOT_RULE's YAML text, as an app setting holds it:
// the exports' BlobCreated events, then the queued work, give alerts whose
// evidence rows are DuckDB's rows of the same rule written by hand. The
// non-interactive Parquet blob comes first, so the interactive JSON Lines
// blob probes its stored extracts; a rule the pipeline cannot run exactly
// stops serve at start, naming the column.
func TestTunedRuleThroughTheFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve and Azurite for each rule")
	}
	duck := duckDB(t)
	d := newTunedData(t, duck)
	byName := map[string]tunedVariant{}
	for _, v := range tunedVariants() {
		byName[v.name] = v
	}
	for _, name := range []string{
		"window between (1m .. 10m)",
		"a pair predicate on both apps, a positive test on the non-interactive app",
		"ClientAppUsed and ResourceDisplayName in wheres before the join",
		"parse_json and member paths on DeviceDetail",
		"leftanti and leftsemi against datatables of users",
		"a positive test on the interactive app before the join",
		"UserAgent in an added column (detect only)",
		"union of the two sign-in tables as the non-interactive side",
		"summarize count(), make_set(NIIPAddress) by UserPrincipalName",
	} {
		v, ok := byName[name]
		if !ok {
			t.Fatalf("no tuned variant %q", name)
		}
		t.Run(name, func(t *testing.T) {
			cs, ic, nc, _, alerts, _ := serveEnv(t, "tuned")
			y := tunedYAML(t, v) + "eventGroupingSettings:\n  aggregationKind: AlertPerResult\n"
			// The rule's own safe lists, nothing added by app settings.
			t.Setenv(settings.Rule, y)
			t.Setenv(settings.SafeIPs, "")
			t.Setenv(settings.SafeNetworks, "")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if v.processRefuses != "" {
				stderr := &syncbuf.Buffer{}
				err := runServe(ctx, nil, io.Discard, stderr)
				if err == nil || !strings.Contains(err.Error(), v.processRefuses) {
					t.Fatalf("serve: %v, want a refusal naming %s", err, v.processRefuses)
				}
				return
			}
			exp := elevenColumns(t, sortedLines(string(runDuckDB(t, duck, tunedSQL(v, d.ifile, d.nfile)))))
			base, _, done := startServe(t, ctx)
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
			for _, b := range []struct{ container, file, name string }{
				{nc, d.nparquet, dir + "part-0.parquet"},
				{ic, d.ifile, dir + "PT05M.json"},
			} {
				data, err := os.ReadFile(b.file)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Write(ctx, b.container, b.name, data, store.Condition{}); err != nil {
					t.Fatal(err)
				}
				event := map[string]any{
					"id": "831e1650-001e-001b-66ab-eeb76e069631", "eventType": "Microsoft.Storage.BlobCreated",
					"subject": "/blobServices/default/containers/" + b.container + "/blobs/" + b.name, "eventTime": "2026-11-20T12:06:00Z",
					"data":        map[string]any{"api": "PutBlockList", "blobType": "BlockBlob", "contentLength": len(data), "url": s.URL(b.container, b.name)},
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
			var rows []detect.Result
			for _, doc := range docs {
				rows = append(rows, doc.Results...)
			}
			var b strings.Builder
			if err := detect.WriteJSONL(&b, rows); err != nil {
				t.Fatal(err)
			}
			got := sortedLines(b.String())
			if len(exp) == 0 {
				t.Fatal("DuckDB found no rows")
			}
			if !slices.Equal(got, exp) {
				missing, extra := diffLines(exp, got)
				t.Errorf("function: %d rows, DuckDB %d; missing %d, extra %d\nmissing: %q\nextra: %q", len(got), len(exp), len(missing), len(extra), first(missing), first(extra))
			}
			t.Logf("%d rows", len(got))
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}
