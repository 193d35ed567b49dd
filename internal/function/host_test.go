package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
	"github.com/tokenpivot/tokenpivot/internal/syncbuf"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// This file plays the Functions host: it builds the payloads the host
// sends (shapes from the custom handler docs and captured requests) and
// drives the real handler over HTTP.

const azureServiceURL = "https://tpexports.blob.core.windows.net"

// containers names one test's containers.
type containers struct {
	interactive, noninteractive, state, alerts, incidents string
}

func defaultContainers() containers {
	return containers{"am-signinlogs", "am-aadnoninteractiveusersigninlogs", "tokenpivot-state", "tokenpivot-alerts", "tokenpivot-incidents"}
}

func azuriteContainers() containers {
	return containers{azurite.ContainerName("int"), azurite.ContainerName("nonint"), azurite.ContainerName("state"),
		azurite.ContainerName("alerts"), azurite.ContainerName("incidents")}
}

// env is one handler under test, over real storage.
type env struct {
	t          *testing.T
	data       store.Store // the storage itself, for setup and checks
	c          containers
	serviceURL string
	p          *pipeline.Pipeline
	srv        *httptest.Server
	stderr     *syncbuf.Buffer
}

// newEnv builds the pipeline and handler over s (used by the pipeline,
// possibly a fault-injecting wrapper of data) and serves it.
func newEnv(t *testing.T, data, s store.Store, c containers, serviceURL string, safe *rule.SafeList) *env {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{c.interactive, c.noninteractive} {
		if err := data.EnsureContainer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	stderr := &syncbuf.Buffer{}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	w := &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: c.alerts, IncidentsContainer: c.incidents}, Rule: rule.Default()}
	p, err := pipeline.New(pipeline.Config{Exports: s, State: s, InteractiveContainer: c.interactive,
		NonInteractiveContainer: c.noninteractive, StateContainer: c.state, Filter: detect.Filter{Safe: safe},
		Alerts: w, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	// Containers are created on the real storage: EnsureContainers is
	// serve's job at start, not an invocation's.
	pd, err := pipeline.New(pipeline.Config{Exports: data, State: data, InteractiveContainer: c.interactive,
		NonInteractiveContainer: c.noninteractive, StateContainer: c.state,
		Alerts: &alert.Writer{Store: alert.Store{Blobs: data, AlertsContainer: c.alerts, IncidentsContainer: c.incidents}, Rule: rule.Default()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pd.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Pipeline: p, ServiceURL: serviceURL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, data: data, c: c, serviceURL: serviceURL, p: p, srv: srv, stderr: stderr}
}

// reply is the handler's answer, decoded.
type reply struct {
	status      int
	contentType string
	Outputs     map[string]json.RawMessage
	Logs        []string
	ReturnValue json.RawMessage
	raw         string
}

// post sends payload to POST /<fn> as the host does.
func (e *env) post(fn string, payload any) reply {
	e.t.Helper()
	r, err := postTo(e.srv.URL, fn, payload)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func postTo(base, fn string, payload any) (reply, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return reply{}, err
	}
	return postBody(base, fn, body)
}

// postBody sends body, as it is, to POST /<fn> as the host does.
func postBody(base, fn string, body []byte) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/"+fn, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1041.200.1")
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1041.200.1")
	req.Header.Set("X-Azure-Functions-InvocationId", newGUID())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), raw: string(data)}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("POST /%s: %s: body is not JSON: %v: %s", fn, resp.Status, err, data)
	}
	return r, nil
}

// messages returns the queue messages of Outputs.work: a string or an
// array of strings, as queue output bindings take them.
func (r reply) messages() ([]string, error) {
	raw, ok := r.Outputs["work"]
	if !ok {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("Outputs.work is neither a string nor an array of strings: %s", raw)
	}
	return many, nil
}

var guidSeq atomic.Int64

func newGUID() string {
	n := guidSeq.Add(1)
	return fmt.Sprintf("%08x-24ad-4e5b-8294-%012x", n, n*7919)
}

// sys is the "sys" metadata the host adds to every invocation.
func sys(fn string) map[string]any {
	return map[string]any{"MethodName": fn, "UtcNow": time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"), "RandGuid": newGUID()}
}

// blobURL returns the URL Event Grid reports for a blob of the account at
// serviceURL: each name segment escaped, slashes kept.
func blobURL(serviceURL, container, name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return serviceURL + "/" + container + "/" + strings.Join(segs, "/")
}

// eventGridEvent is a Microsoft.Storage.BlobCreated event in the Event Grid
// schema, as in the Event Grid docs.
func eventGridEvent(eventType, blobURL, container, name string) map[string]any {
	return map[string]any{
		"topic":     "/subscriptions/5f0c7a43-0000-4000-8000-00000000c0de/resourceGroups/tokenpivot/providers/Microsoft.Storage/storageAccounts/tpexports",
		"subject":   "/blobServices/default/containers/" + container + "/blobs/" + name,
		"eventType": eventType,
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"id":        newGUID(),
		"data": map[string]any{
			"api":             "PutBlockList",
			"clientRequestId": newGUID(),
			"requestId":       newGUID(),
			"eTag":            "\"0x8DD1C2E4835CD0\"",
			"contentType":     "application/octet-stream",
			"contentLength":   524288,
			"blobType":        "BlockBlob",
			"url":             blobURL,
			"sequencer":       "00000000000004420000000000028963",
			"storageDiagnostics": map[string]any{
				"batchId": newGUID(),
			},
		},
		"dataVersion":     "",
		"metadataVersion": "1",
	}
}

// cloudEvent is the same event in the CloudEvents 1.0 schema.
func cloudEvent(eventType, blobURL, container, name string) map[string]any {
	e := eventGridEvent(eventType, blobURL, container, name)
	return map[string]any{
		"source":      e["topic"],
		"subject":     e["subject"],
		"type":        eventType,
		"time":        e["eventTime"],
		"id":          e["id"],
		"data":        e["data"],
		"specversion": "1.0",
	}
}

// eventPayload is the host's request for OnExportCreated (eventGridTrigger
// "event").
func eventPayload(event any) map[string]any {
	return map[string]any{
		"Data":     map[string]any{"event": event},
		"Metadata": map[string]any{"sys": sys(OnExportCreated)},
	}
}

// queuePayload is the host's request for ProcessExport (queueTrigger
// "work"): the message text as a string, with the queue metadata.
func queuePayload(message any, dequeueCount int) map[string]any {
	now := time.Now().UTC()
	return map[string]any{
		"Data": map[string]any{"work": message},
		"Metadata": map[string]any{
			"DequeueCount":    dequeueCount,
			"ExpirationTime":  now.Add(7 * 24 * time.Hour).Format("2006-01-02T15:04:05+00:00"),
			"Id":              newGUID(),
			"InsertionTime":   now.Format("2006-01-02T15:04:05+00:00"),
			"NextVisibleTime": now.Add(30 * time.Second).Format("2006-01-02T15:04:05+00:00"),
			"PopReceipt":      "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
			"sys":             sys(ProcessExport),
		},
	}
}

// timerPayload is the host's request for Sweep (timerTrigger "timer"), as
// captured from a running host.
func timerPayload() map[string]any {
	return map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule": map[string]any{"AdjustForDST": true}, "ScheduleStatus": nil, "IsPastDue": false,
		}},
		"Metadata": map[string]any{"sys": sys(Sweep)},
	}
}

// blobTriggerPayload is a blob trigger invocation ("source": "EventGrid" on
// Flex Consumption): the content in Data, the blob in Metadata, whose
// values the host passes JSON-encoded as strings.
func blobTriggerPayload(fn, uri, path string, content []byte) map[string]any {
	props, _ := json.Marshal(map[string]any{"ContentType": "application/octet-stream", "Length": len(content), "ETag": "\"0x8D7CCEC5515D04D\"", "BlobType": 2})
	md := map[string]any{"Metadata": "{}", "Properties": string(props), "sys": sys(fn)}
	if uri != "" {
		q, _ := json.Marshal(uri)
		md["Uri"] = string(q) // double-encoded, as the host sends it
	}
	if path != "" {
		md["BlobTrigger"] = path
		md["name"] = path[strings.IndexByte(path, '/')+1:]
	}
	return map[string]any{"Data": map[string]any{"blob": string(content)}, "Metadata": md}
}

// deliver plays the host for one event: OnExportCreated, then each queue
// message it emits to ProcessExport, redelivered while the handler answers
// non-2xx, as the queue does up to maxDequeueCount (host.json: 5).
func deliver(base string, event any) (retries int, err error) {
	r, err := postTo(base, OnExportCreated, eventPayload(event))
	if err != nil {
		return 0, err
	}
	if r.status != http.StatusOK {
		return 0, fmt.Errorf("OnExportCreated: status %d: %s", r.status, r.raw)
	}
	msgs, err := r.messages()
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		n, err := processMessage(base, m)
		retries += n
		if err != nil {
			return retries, err
		}
	}
	return retries, nil
}

func processMessage(base, msg string) (retries int, err error) {
	for dequeue := 1; dequeue <= 5; dequeue++ {
		r, err := postTo(base, ProcessExport, queuePayload(msg, dequeue))
		if err != nil {
			return retries, err
		}
		if r.status == http.StatusOK {
			return retries, nil
		}
		if r.status != http.StatusInternalServerError {
			return retries, fmt.Errorf("ProcessExport %s: status %d: %s", msg, r.status, r.raw)
		}
		retries++
	}
	return retries, fmt.Errorf("ProcessExport %s: still failing after 5 deliveries (poison)", msg)
}

// faultStore fails one call: the failAt-th call to the store (1-based),
// either before doing it or after (the request happened but its answer was
// lost, as with a timeout).
type faultStore struct {
	store.Store
	calls  atomic.Int64
	failAt int64
	after  bool
	hit    atomic.Bool
}

var errInjected = errors.New("injected storage failure (503 Server Busy)")

func (f *faultStore) before() (bool, error) {
	if f.calls.Add(1) != f.failAt {
		return false, nil
	}
	f.hit.Store(true)
	if f.after {
		return true, nil
	}
	return false, errInjected
}

func (f *faultStore) Stat(ctx context.Context, c, n string) (store.Properties, error) {
	lose, err := f.before()
	if err != nil {
		return store.Properties{}, err
	}
	p, err := f.Store.Stat(ctx, c, n)
	if lose {
		return store.Properties{}, errInjected
	}
	return p, err
}

func (f *faultStore) ReadAt(ctx context.Context, c, n string, p []byte, off int64, etag string) (int, error) {
	lose, err := f.before()
	if err != nil {
		return 0, err
	}
	k, err := f.Store.ReadAt(ctx, c, n, p, off, etag)
	if lose {
		return 0, errInjected
	}
	return k, err
}

func (f *faultStore) Read(ctx context.Context, c, n string) ([]byte, store.Properties, error) {
	lose, err := f.before()
	if err != nil {
		return nil, store.Properties{}, err
	}
	data, p, err := f.Store.Read(ctx, c, n)
	if lose {
		return nil, store.Properties{}, errInjected
	}
	return data, p, err
}

func (f *faultStore) Write(ctx context.Context, c, n string, data []byte, cond store.Condition) (store.Properties, error) {
	lose, err := f.before()
	if err != nil {
		return store.Properties{}, err
	}
	p, err := f.Store.Write(ctx, c, n, data, cond)
	if lose {
		return store.Properties{}, errInjected
	}
	return p, err
}

func (f *faultStore) Delete(ctx context.Context, c, n string, cond store.Condition) error {
	lose, err := f.before()
	if err != nil {
		return err
	}
	err = f.Store.Delete(ctx, c, n, cond)
	if lose {
		return errInjected
	}
	return err
}

func (f *faultStore) List(ctx context.Context, c, prefix string, fn func(store.Properties) error) error {
	lose, err := f.before()
	if err != nil {
		return err
	}
	err = f.Store.List(ctx, c, prefix, fn)
	if lose {
		return errInjected
	}
	return err
}

func (f *faultStore) EnsureContainer(ctx context.Context, c string) error {
	lose, err := f.before()
	if err != nil {
		return err
	}
	err = f.Store.EnsureContainer(ctx, c)
	if lose {
		return errInjected
	}
	return err
}

// memDir returns a temporary directory on tmpfs when there is one: the
// local store syncs every write to disk, which makes hundreds of runs slow
// on a real disk and costs nothing on tmpfs.
func memDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "tokenpivot-function-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
