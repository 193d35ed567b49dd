package function

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingStore counts every call, to prove refused events touch no storage.
type countingStore struct {
	store.Store
	n atomic.Int64
}

func (c *countingStore) Stat(ctx context.Context, ct, n string) (store.Properties, error) {
	c.n.Add(1)
	return c.Store.Stat(ctx, ct, n)
}
func (c *countingStore) ReadAt(ctx context.Context, ct, n string, p []byte, off int64, etag string) (int, error) {
	c.n.Add(1)
	return c.Store.ReadAt(ctx, ct, n, p, off, etag)
}
func (c *countingStore) Read(ctx context.Context, ct, n string) ([]byte, store.Properties, error) {
	c.n.Add(1)
	return c.Store.Read(ctx, ct, n)
}
func (c *countingStore) Write(ctx context.Context, ct, n string, d []byte, cond store.Condition) (store.Properties, error) {
	c.n.Add(1)
	return c.Store.Write(ctx, ct, n, d, cond)
}
func (c *countingStore) List(ctx context.Context, ct, prefix string, fn func(store.Properties) error) error {
	c.n.Add(1)
	return c.Store.List(ctx, ct, prefix, fn)
}

func newLocalEnv(t *testing.T, wrap func(store.Store) store.Store) *env {
	t.Helper()
	data, err := store.NewLocal(memDir(t))
	if err != nil {
		t.Fatal(err)
	}
	s := store.Store(data)
	if wrap != nil {
		s = wrap(data)
	}
	return newEnv(t, data, s, defaultContainers(), azureServiceURL, casesSafeList(t))
}

func (e *env) put(container, name string, data []byte) pipeline.Work {
	e.t.Helper()
	if _, err := e.data.Write(context.Background(), container, name, data, store.Condition{}); err != nil {
		e.t.Fatal(err)
	}
	return pipeline.Work{Container: container, Name: name}
}

func workJSON(w pipeline.Work) string {
	data, _ := json.Marshal(w)
	return string(data)
}

// checkReply asserts the response is the host's JSON shape with log lines,
// each a JSON object.
func checkReply(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type %q, want application/json", r.contentType)
	}
	if r.Outputs == nil {
		t.Errorf("no Outputs object: %s", r.raw)
	}
	if len(r.Logs) == 0 {
		t.Errorf("no Logs: %s", r.raw)
	}
	for _, l := range r.Logs {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil || m["function"] == nil {
			t.Errorf("log line is not a structured JSON line with msg and function: %q", l)
		}
	}
}

func TestOnExportCreatedQueuesWork(t *testing.T) {
	e := newLocalEnv(t, nil)
	c := e.c.interactive
	name := "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=05/PT05M.json"
	u := blobURL(azureServiceURL, c, name)
	want := workJSON(pipeline.Work{Container: c, Name: name})
	ev := eventGridEvent(BlobCreated, u, c, name)
	for _, tc := range []struct {
		name  string
		event any
	}{
		{"event grid schema", ev},
		{"cloudevents schema", cloudEvent(BlobCreated, u, c, name)},
		{"double-encoded", jsonString(ev)},
		{"triple-encoded", jsonString(jsonString(ev))},
		{"data as a string", func() map[string]any {
			e := eventGridEvent(BlobCreated, u, c, name)
			e["data"] = jsonString(e["data"])
			return e
		}()},
		{"'=' escaped", eventGridEvent(BlobCreated, strings.ReplaceAll(u, "=", "%3D"), c, name)},
		{"data lake endpoint", eventGridEvent(BlobCreated, strings.Replace(u, ".blob.", ".dfs.", 1), c, name)},
		{"host in upper case", eventGridEvent(BlobCreated, strings.Replace(u, "tpexports", "TPEXPORTS", 1), c, name)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(OnExportCreated, eventPayload(tc.event))
			checkReply(t, r, http.StatusOK)
			msgs, err := r.messages()
			if err != nil || !slices.Equal(msgs, []string{want}) {
				t.Fatalf("Outputs.work = %v (%v), want [%s]", msgs, err, want)
			}
		})
	}
	t.Run("batch of two", func(t *testing.T) {
		n2 := "timestamp=2026-11-20T11/b.gz.parquet"
		batch := []any{ev, eventGridEvent(BlobCreated, blobURL(azureServiceURL, e.c.noninteractive, n2), e.c.noninteractive, n2)}
		r := e.post(OnExportCreated, eventPayload(batch))
		checkReply(t, r, http.StatusOK)
		msgs, _ := r.messages()
		if !slices.Equal(msgs, []string{want, workJSON(pipeline.Work{Container: e.c.noninteractive, Name: n2})}) {
			t.Fatalf("Outputs.work = %v", msgs)
		}
	})
	t.Run("other event types are ignored", func(t *testing.T) {
		for _, typ := range []string{"Microsoft.Storage.BlobDeleted", "Microsoft.Storage.BlobTierChanged", "Microsoft.EventGrid.SubscriptionValidationEvent"} {
			r := e.post(OnExportCreated, eventPayload(eventGridEvent(typ, u, c, name)))
			checkReply(t, r, http.StatusOK)
			if msgs, _ := r.messages(); len(msgs) != 0 {
				t.Errorf("%s queued %v", typ, msgs)
			}
			if !strings.Contains(strings.Join(r.Logs, "\n"), typ) {
				t.Errorf("%s: no log line names it: %v", typ, r.Logs)
			}
		}
	})
}

// TestRefusedEvents: an event naming a blob outside the export account and
// containers is refused with a 200 (a retry cannot help), queues nothing,
// makes no storage call, and no request reaches the URL it names.
func TestRefusedEvents(t *testing.T) {
	var foreignHits atomic.Int64
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreignHits.Add(1) }))
	defer foreign.Close()
	const azuriteURL = "http://127.0.0.1:10000/devstoreaccount1"
	c := defaultContainers()
	for _, tc := range []struct {
		name, service, url string
	}{
		{"foreign host", azureServiceURL, "https://evil.blob.core.windows.net/" + c.interactive + "/x.json"},
		{"foreign server", azureServiceURL, foreign.URL + "/" + c.interactive + "/x.json"},
		{"lookalike host", azureServiceURL, "https://tpexports.blob.core.windows.net.evil.com/" + c.interactive + "/x.json"},
		{"http for https", azureServiceURL, "http://tpexports.blob.core.windows.net/" + c.interactive + "/x.json"},
		{"userinfo", azureServiceURL, "https://me@tpexports.blob.core.windows.net/" + c.interactive + "/x.json"},
		{"query (SAS)", azureServiceURL, azureServiceURL + "/" + c.interactive + "/x.json?sv=2024&sig=abc"},
		{"other container", azureServiceURL, azureServiceURL + "/tokenpivot-state/ledger/x.json"},
		{"alerts container", azureServiceURL, azureServiceURL + "/" + c.alerts + "/2026/11/20/a.json"},
		{"container in other case", azureServiceURL, azureServiceURL + "/AM-SIGNINLOGS/x.json"},
		{"dot-dot", azureServiceURL, azureServiceURL + "/" + c.interactive + "/a/../x.json"},
		{"escaped dot-dot", azureServiceURL, azureServiceURL + "/" + c.interactive + "/a/%2e%2e/x.json"},
		{"escaped dot-dot to another container", azureServiceURL, azureServiceURL + "/" + c.interactive + "/%2e%2e/tokenpivot-state/x.json"},
		{"escaped slash and dot-dot", azureServiceURL, azureServiceURL + "/" + c.interactive + "/a%2f..%2fx.json"},
		{"empty name", azureServiceURL, azureServiceURL + "/" + c.interactive + "/"},
		{"no name", azureServiceURL, azureServiceURL + "/" + c.interactive},
		{"empty segment", azureServiceURL, azureServiceURL + "/" + c.interactive + "/a//x.json"},
		{"bad escape", azureServiceURL, azureServiceURL + "/" + c.interactive + "/a%zz.json"},
		{"not a URL", azureServiceURL, "am-signinlogs/x.json"},
		{"azurite: other account", azuriteURL, "http://127.0.0.1:10000/devstoreaccount2/" + c.interactive + "/x.json"},
		{"azurite: account prefix", azuriteURL, "http://127.0.0.1:10000/devstoreaccount1x/" + c.interactive + "/x.json"},
		{"azurite: no account", azuriteURL, "http://127.0.0.1:10000/" + c.interactive + "/x.json"},
		{"azurite: other port", azuriteURL, "http://127.0.0.1:10001/devstoreaccount1/" + c.interactive + "/x.json"},
		{"azurite: escaped dot-dot out of the account", azuriteURL, "http://127.0.0.1:10000/devstoreaccount1/%2e%2e/devstoreaccount2/" + c.interactive + "/x.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := store.NewLocal(memDir(t))
			if err != nil {
				t.Fatal(err)
			}
			cs := &countingStore{Store: data}
			e := newEnv(t, data, cs, c, tc.service, casesSafeList(t))
			for _, p := range []map[string]any{
				eventPayload(eventGridEvent(BlobCreated, tc.url, c.interactive, "x.json")),
				blobTriggerPayload("OnExportBlob", tc.url, "", []byte("{}\n")),
			} {
				r := e.post(OnExportCreated, p)
				checkReply(t, r, http.StatusOK)
				if msgs, _ := r.messages(); len(msgs) != 0 {
					t.Fatalf("queued %v", msgs)
				}
				if !strings.Contains(string(r.ReturnValue), "refused") || !strings.Contains(strings.Join(r.Logs, "\n"), "refused") {
					t.Errorf("neither ReturnValue nor Logs say refused: %s", r.raw)
				}
			}
			if n := cs.n.Load(); n != 0 {
				t.Errorf("%d storage calls for a refused event", n)
			}
		})
	}
	if n := foreignHits.Load(); n != 0 {
		t.Errorf("the foreign server got %d requests", n)
	}

	t.Run("a literal %2e%2e stays a name", func(t *testing.T) {
		e := newLocalEnv(t, nil)
		u := azureServiceURL + "/" + c.interactive + "/a/%252e%252e/x.json"
		r := e.post(OnExportCreated, eventPayload(eventGridEvent(BlobCreated, u, c.interactive, "a/%2e%2e/x.json")))
		msgs, _ := r.messages()
		if want := workJSON(pipeline.Work{Container: c.interactive, Name: "a/%2e%2e/x.json"}); !slices.Equal(msgs, []string{want}) {
			t.Fatalf("Outputs.work = %v, want [%s]", msgs, want)
		}
	})
}

func TestProcessExport(t *testing.T) {
	e := newLocalEnv(t, nil)
	blobs := casesBlobs(t, 100) // one blob per table
	works := e.upload(blobs)
	msg := workJSON(works[0])
	for _, tc := range []struct {
		name    string
		message any
		skipped string
	}{
		{"message as a string", msg, "processed"},
		{"redelivery is a no-op", msg, "done"},
		{"message as an object", map[string]string{"container": works[1].Container, "name": works[1].Name}, "processed"},
		{"double-encoded", jsonString(msg), "done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(ProcessExport, queuePayload(tc.message, 1))
			checkReply(t, r, http.StatusOK)
			var s summary
			if err := json.Unmarshal(r.ReturnValue, &s); err != nil {
				t.Fatalf("ReturnValue: %v: %s", err, r.ReturnValue)
			}
			if s.Status != tc.skipped || (tc.skipped == "processed" && s.RowsRead == 0) {
				t.Errorf("ReturnValue %+v, want status %q and rows read", s, tc.skipped)
			}
			if tc.skipped == "processed" && !strings.Contains(strings.Join(r.Logs, "\n"), `"rows_read"`) {
				t.Errorf("Logs do not carry the blob's counts: %v", r.Logs)
			}
		})
	}
	if got := alerttest.Rows(t, e.data, e.c.alerts); len(got) != 12 {
		t.Errorf("after both tables, alerts hold %d rows, want the 12 rule-case rows", len(got))
	}
	for _, tc := range []struct{ name, message string }{
		{"not JSON", "hello"},
		{"not work", `{"id":"x","type":"Microsoft.Storage.BlobCreated"}`},
		{"not an export container", `{"container":"tokenpivot-state","name":"ledger/x.json"}`},
		{"dot-dot", `{"container":"am-signinlogs","name":"../x.json"}`},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			r := e.post(ProcessExport, queuePayload(tc.message, 1))
			checkReply(t, r, http.StatusOK)
			if !strings.Contains(string(r.ReturnValue), "refused") {
				t.Errorf("ReturnValue %s does not say refused", r.ReturnValue)
			}
		})
	}
}

// TestRetryOnlyWhenItCanHelp: a storage failure answers 500 (the queue
// redelivers); bad content answers 200 with the rejection, naming blob and
// column, recorded so that neither a redelivery nor the Sweep retries it.
func TestRetryOnlyWhenItCanHelp(t *testing.T) {
	var failing atomic.Bool
	e := newLocalEnv(t, func(s store.Store) store.Store { return &switchStore{Store: s, failing: &failing} })
	w := e.put(e.c.interactive, "timestamp=2026-11-20T10/ok.json", casesBlobs(t, 100)[0].data)

	failing.Store(true)
	r := e.post(ProcessExport, queuePayload(workJSON(w), 1))
	checkReply(t, r, http.StatusInternalServerError)
	if logs := strings.Join(r.Logs, "\n"); !strings.Contains(logs, "will retry") || !strings.Contains(logs, w.Name) {
		t.Errorf("Logs do not name the blob and the retry: %v", r.Logs)
	}
	r = e.post(Sweep, timerPayload())
	checkReply(t, r, http.StatusInternalServerError)
	failing.Store(false)
	r = e.post(ProcessExport, queuePayload(workJSON(w), 2))
	checkReply(t, r, http.StatusOK)

	bad := e.put(e.c.noninteractive, "timestamp=2026-11-20T10/bad.json",
		// No row can be read (one bad row alone is skipped and counted).
		[]byte(`{"TimeGenerated":"last week","UserPrincipalName":"a@contoso.com","ResultType":"0","IPAddress":"20.1.1.1","Location":"US"}`+"\n"+
			`{"TimeGenerated":"yesterday","UserPrincipalName":"a@contoso.com","ResultType":"0","IPAddress":"20.1.1.1","Location":"US"}`+"\n"))
	for _, deliveryCount := range []int{1, 2} {
		r = e.post(ProcessExport, queuePayload(workJSON(bad), deliveryCount))
		checkReply(t, r, http.StatusOK)
		var s summary
		if err := json.Unmarshal(r.ReturnValue, &s); err != nil {
			t.Fatal(err)
		}
		if deliveryCount == 1 && (!strings.Contains(s.Rejected, bad.Name) || !strings.Contains(s.Rejected, "TimeGenerated")) {
			t.Errorf("rejection %q does not name the blob and the column", s.Rejected)
		}
		if deliveryCount == 2 && s.Status != "still rejected" {
			t.Errorf("redelivery of a rejected blob: %+v, want skipped as rejected", s)
		}
	}
	if !strings.Contains(e.stderr.String(), "blob rejected") {
		t.Errorf("stderr has no rejection line:\n%s", e.stderr.String())
	}
	r = e.post(Sweep, timerPayload())
	checkReply(t, r, http.StatusOK)
	if msgs, _ := r.messages(); len(msgs) != 0 {
		t.Errorf("Sweep queued %v: a rejected blob must wait for a change", msgs)
	}
}

// switchStore fails every call while failing is set.
type switchStore struct {
	store.Store
	failing *atomic.Bool
}

func (s *switchStore) Stat(ctx context.Context, c, n string) (store.Properties, error) {
	if s.failing.Load() {
		return store.Properties{}, errInjected
	}
	return s.Store.Stat(ctx, c, n)
}
func (s *switchStore) Read(ctx context.Context, c, n string) ([]byte, store.Properties, error) {
	if s.failing.Load() {
		return nil, store.Properties{}, errInjected
	}
	return s.Store.Read(ctx, c, n)
}
func (s *switchStore) List(ctx context.Context, c, prefix string, fn func(store.Properties) error) error {
	if s.failing.Load() {
		return errInjected
	}
	return s.Store.List(ctx, c, prefix, fn)
}

func TestSweepQueuesWhatIsPending(t *testing.T) {
	e := newLocalEnv(t, nil)
	works := e.upload(casesBlobs(t, 5))
	r := e.post(Sweep, timerPayload())
	checkReply(t, r, http.StatusOK)
	msgs, err := r.messages()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, w := range works {
		want = append(want, workJSON(w))
	}
	slices.Sort(msgs)
	slices.Sort(want)
	if !slices.Equal(msgs, want) {
		t.Fatalf("Sweep queued %d messages, want one per export blob (%d):\n%v", len(msgs), len(want), msgs)
	}
	// Process half: the Sweep then queues the other half.
	for _, m := range msgs[:len(msgs)/2] {
		if _, err := processMessage(e.srv.URL, m); err != nil {
			t.Fatal(err)
		}
	}
	r = e.post(Sweep, timerPayload())
	rest, _ := r.messages()
	slices.Sort(rest)
	if !slices.Equal(rest, msgs[len(msgs)/2:]) {
		t.Fatalf("second Sweep queued %v, want %v", rest, msgs[len(msgs)/2:])
	}

	t.Run("capped", func(t *testing.T) {
		h, err := New(Config{Pipeline: e.p, ServiceURL: azureServiceURL, MaxSweep: 3})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		r, err := postTo(srv.URL, Sweep, timerPayload())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.messages()
		if len(got) != 3 || !strings.Contains(strings.Join(r.Logs, "\n"), "sweep capped") {
			t.Fatalf("capped Sweep queued %d (want 3), logs %v", len(got), r.Logs)
		}
		for _, m := range got {
			if !slices.Contains(rest, m) {
				t.Errorf("capped Sweep queued %s, which is not pending", m)
			}
		}
	})
}

func TestBlobTrigger(t *testing.T) {
	e := newLocalEnv(t, nil)
	blobs := casesBlobs(t, 100)
	works := e.upload(blobs)
	// By Uri (double-encoded, with the content in Data), then by BlobTrigger
	// path only; the function name is whatever the app calls it.
	r := e.post("OnExportBlob", blobTriggerPayload("OnExportBlob", blobURL(azureServiceURL, works[0].Container, works[0].Name), works[0].String(), blobs[0].data))
	checkReply(t, r, http.StatusOK)
	r2 := e.post("OnExportBlob", blobTriggerPayload("OnExportBlob", "", works[1].String(), blobs[1].data))
	checkReply(t, r2, http.StatusOK)
	for _, r := range []reply{r, r2} {
		var s summary
		if err := json.Unmarshal(r.ReturnValue, &s); err != nil || s.RowsRead == 0 {
			t.Fatalf("blob trigger: ReturnValue %s (%v), want rows read", r.ReturnValue, err)
		}
	}
	if got := alerttest.Rows(t, e.data, e.c.alerts); len(got) != 12 {
		t.Errorf("alerts hold %d rows, want 12", len(got))
	}
}

func TestHostProtocol(t *testing.T) {
	e := newLocalEnv(t, nil)
	resp, err := http.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /: %s", resp.Status)
	}
	r := e.post("NoSuchFunction", timerPayload())
	if r.status != http.StatusNotFound || r.contentType != "application/json" || !strings.Contains(r.raw, "NoSuchFunction") {
		t.Errorf("unknown function: %d %q %s", r.status, r.contentType, r.raw)
	}
	resp, err = http.Post(e.srv.URL+"/"+OnExportCreated, "application/json", strings.NewReader(`{"Data":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("truncated payload: %s, want 200 (a retry cannot help)", resp.Status)
	}
	r = e.post(OnExportCreated, map[string]any{"Data": map[string]any{}, "Metadata": map[string]any{"sys": sys(OnExportCreated)}})
	checkReply(t, r, http.StatusOK)
	if !strings.Contains(string(r.ReturnValue), "refused") {
		t.Errorf("no trigger data: %s", r.raw)
	}
	// A blob-trigger payload over the body limit is refused, not retried:
	// the Sweep finds the blob.
	if !testing.Short() {
		big := blobTriggerPayload("OnExportBlob", blobURL(azureServiceURL, e.c.interactive, "x.json"), "", bytes.Repeat([]byte("x"), MaxBody))
		r = e.post("OnExportBlob", big)
		checkReply(t, r, http.StatusOK)
		if !strings.Contains(strings.Join(r.Logs, "\n"), "too large") {
			t.Errorf("oversized payload: %s", r.raw)
		}
	}
}
