package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/sentinel/sentineltest"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a Standard Webhooks receiver: it verifies each request's
// signature (its own verifier, from the spec), and with failFirst answers
// 503 to the first request of each webhook-id.
type hookReceiver struct {
	t         testing.TB
	failFirst bool
	mu        sync.Mutex
	status    int            // answer this to everything when not 0
	goneNext  int            // answer 410 Gone to this many requests first
	seen      map[string]int // webhook-id -> requests
	got       []hookDelivery
	*httptest.Server
}

type hookDelivery struct {
	id  string
	doc alert.Document
	at  time.Time
}

func newHookReceiver(t testing.TB, failFirst bool) *hookReceiver {
	h := &hookReceiver{t: t, failFirst: failFirst, seen: map[string]int{}}
	h.Server = httptest.NewServer(h)
	t.Cleanup(h.Close)
	return h
}

func verifyStandardWebhook(secret string, hd http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := hd.Get("webhook-id"), hd.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("bad webhook-id %q or webhook-timestamp %q", id, ts)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	for _, sig := range strings.Fields(hd.Get("webhook-signature")) {
		if v, b64, ok := strings.Cut(sig, ","); ok && v == "v1" {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, m.Sum(nil)) {
				return nil
			}
		}
	}
	return errors.New("no valid v1 signature")
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := verifyStandardWebhook(testWebhookSecret, r.Header, body); err != nil {
		h.t.Errorf("webhook: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[id]++
	if h.goneNext > 0 {
		h.goneNext--
		http.Error(w, "gone", http.StatusGone)
		return
	}
	if h.status != 0 {
		if h.status >= 300 && h.status < 400 {
			w.Header().Set("Location", "https://elsewhere.example/tokenpivot?code=SECRET")
		}
		http.Error(w, "refused", h.status)
		return
	}
	if h.failFirst && h.seen[id] == 1 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	// Standard Webhooks: {type, timestamp, data: the alert document}.
	var env struct {
		Type      string
		Timestamp time.Time
		Data      alert.Document
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "tokenpivot.alert" || env.Timestamp.IsZero() {
		h.t.Errorf("webhook body is not {type, timestamp, data: an alert document}: %v", err)
	}
	d := env.Data
	h.got = append(h.got, hookDelivery{id, d, time.Now()})
}

func (h *hookReceiver) deliveries() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// socRig is both sinks, local: the Logs Ingestion endpoint (HTTPS, token
// from a local managed identity endpoint) and a webhook receiver.
type socRig struct {
	ing  *sentineltest.Server
	hook *hookReceiver
}

// newSOCRig starts the sinks and sets the delivery settings in the
// environment; the Logs Ingestion client's transport is the only thing
// injected (it trusts the local certificate).
func newSOCRig(t *testing.T, failFirst bool) *socRig {
	sentineltest.Identity(t)
	rig := &socRig{ing: sentineltest.NewServer(t), hook: newHookReceiver(t, failFirst)}
	rig.ing.FailFirstTry = failFirst
	deliveryTransport = rig.ing.Client()
	t.Cleanup(func() { deliveryTransport = nil })
	for k, v := range map[string]string{
		settings.LogsIngestionEndpoint: rig.ing.URL, settings.LogsIngestionRuleID: sentineltest.RuleID, settings.LogsIngestionStream: "",
		settings.WebhookURL: rig.hook.URL + "/tokenpivot", settings.WebhookSecret: testWebhookSecret, settings.WebhookFormat: "",
	} {
		t.Setenv(k, v)
	}
	return rig
}

// records returns the Logs Ingestion records received, by key.
func (rig *socRig) records(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, c := range rig.ing.Calls() {
		for _, rec := range c.Records {
			var id string
			var rev int
			json.Unmarshal(rec["AlertId"], &id)
			json.Unmarshal(rec["Revision"], &rev)
			out[outbox.Key(id, rev)]++
		}
	}
	return out
}

// checkEveryRevision: every revision of every stored alert (1..its
// Revision) reached both sinks, each under its one key, with its content.
func (rig *socRig) checkEveryRevision(t *testing.T, docs []alert.Document) (revisions int) {
	t.Helper()
	recs := rig.records(t)
	hooks := map[string][]alert.Document{}
	for _, d := range rig.hook.deliveries() {
		hooks[d.id] = append(hooks[d.id], d.doc)
	}
	for _, d := range docs {
		if d.Revision < 1 {
			t.Errorf("alert %s has no revision", d.SystemAlertId)
		}
		for rev := 1; rev <= d.Revision; rev++ {
			revisions++
			key := outbox.Key(d.SystemAlertId, rev)
			if recs[key] == 0 {
				t.Errorf("revision %s never reached Sentinel", key)
			}
			if len(hooks[key]) == 0 {
				t.Errorf("revision %s never reached the webhook", key)
			}
			for _, h := range hooks[key] {
				if h.SystemAlertId != d.SystemAlertId || h.Revision != rev {
					t.Errorf("webhook-id %s carried alert %s revision %d", key, h.SystemAlertId, h.Revision)
				}
			}
			delete(recs, key)
			delete(hooks, key)
		}
	}
	// Nothing else was sent: no revision under a second key.
	for k := range recs {
		t.Errorf("Sentinel got a record for %s, which is no stored revision", k)
	}
	for k := range hooks {
		t.Errorf("the webhook got %s, which is no stored revision", k)
	}
	return revisions
}

// crashStore fails the first write of an outbox revision: a crash between
// the alert write and the outbox (and so before the ledger's done).
type crashStore struct {
	store.Store
	mu      sync.Mutex
	crashed int
	armed   bool
}

func (c *crashStore) Write(ctx context.Context, ct, name string, data []byte, cond store.Condition) (store.Properties, error) {
	c.mu.Lock()
	if c.armed && strings.HasPrefix(name, "outbox/revisions/") {
		c.armed = false
		c.crashed++
		c.mu.Unlock()
		return store.Properties{}, errors.New("injected crash before the outbox")
	}
	c.mu.Unlock()
	return c.Store.Write(ctx, ct, name, data, cond)
}

// caseBlobs are the rule cases as three export blobs: the interactive
// rows, the non-interactive rows, and these again under new Ids, which add
// evidence to the alerts of the first: new revisions.
func caseBlobs(t *testing.T) (interactive []byte, ni [2][]byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "cases", "interactive.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := os.ReadFile(filepath.Join("testdata", "cases", "noninteractive.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ni[0] = n
	// The same sign-ins again under new Ids: new evidence rows for the
	// same alerts.
	for _, line := range bytes.Split(bytes.TrimSpace(n), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		rec["Id"] = fmt.Sprint(rec["Id"], "-again")
		again, _ := json.Marshal(rec)
		ni[1] = append(append(ni[1], again...), '\n')
	}
	return data, ni
}

const exportName = "WorkspaceResourceId=/subscriptions/x/workspaces/ws/y=2026/m=11/d=20/h=10/m=%02d/PT05M.json"

// TestDeliveryFaults: each sink's first call for every revision fails, and
// the first outbox write crashes (after the alert write, before the
// ledger's done): after the redelivery and delivery rounds (the Sweep's),
// every revision reached both sinks, none under two keys, none lost.
func TestDeliveryFaults(t *testing.T) {
	rig := newSOCRig(t, true)
	ctx := context.Background()
	root := t.TempDir()
	local, err := store.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	cs := &crashStore{Store: local, armed: true}
	s, err := settings.FromEnvOnly(settings.All()...).Load(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	s.SafeIPs, s.SafeNetworks = []string{"203.0.113.50"}, []string{"198.51.100.0/24", "2001:db8:ffff::/48"}
	r, f, err := loadFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	w := newAlertWriter(cs, s, r, logger)
	ob, err := newOutbox(cs, s, logger)
	if err != nil || ob == nil || len(ob.Sinks) != 2 {
		t.Fatalf("outbox: %v, %v", ob, err)
	}
	now := time.Now()
	ob.Now = func() time.Time { return now }
	w.Revisions = ob
	p, err := pipeline.New(pipeline.Config{Exports: cs, State: cs, InteractiveContainer: s.InteractiveContainer,
		NonInteractiveContainer: s.NonInteractiveContainer, StateContainer: s.StateContainer, Filter: f, Alerts: w, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	ib, nb := caseBlobs(t)
	put := func(c string, minute int, data []byte) pipeline.Work {
		local.EnsureContainer(ctx, c)
		name := fmt.Sprintf(exportName, minute)
		if _, err := local.Write(ctx, c, name, data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		return pipeline.Work{Container: c, Name: name}
	}
	wi, wn1, wn2 := put(s.InteractiveContainer, 0, ib), put(s.NonInteractiveContainer, 0, nb[0]), put(s.NonInteractiveContainer, 5, nb[1])
	if _, err := p.Process(ctx, wi); err != nil {
		t.Fatal(err)
	}
	// The first non-interactive blob writes its alerts, then crashes.
	if _, err := p.Process(ctx, wn1); err == nil || cs.crashed != 1 {
		t.Fatalf("want the injected crash, got %v", err)
	}
	// The second adds evidence (revision 2), recording revision 1 first.
	if _, err := p.Process(ctx, wn2); err != nil {
		t.Fatal(err)
	}
	// The redelivery of the first finds its alerts stored and records them.
	if _, err := p.Process(ctx, wn1); err != nil {
		t.Fatal(err)
	}
	if pending, err := p.Pending(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the redelivery: %v, %v", pending, err)
	}
	// Delivery rounds, as Sweeps would run them, the clock past each backoff.
	for round := 0; round < 4; round++ {
		if _, err := ob.Deliver(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Hour)
	}
	docs, _, err := alert.Store{Blobs: local, AlertsContainer: s.AlertsContainer}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	multi := 0
	for _, d := range docs {
		if d.Revision > 1 {
			multi++
		}
	}
	n := rig.checkEveryRevision(t, docs)
	t.Logf("%d alerts, %d with more than one revision, %d revisions delivered to both sinks; Logs Ingestion tries %d, accepted calls %d",
		len(docs), multi, n, rig.ing.Tries(), len(rig.ing.Calls()))
	if len(docs) == 0 || multi == 0 {
		t.Errorf("want alerts with several revisions; %d alerts, %d with more than one", len(docs), multi)
	}
	for id, n := range rig.hook.seen {
		if n < 2 {
			t.Errorf("webhook-id %s was tried %d times: the first should have failed", id, n)
		}
	}
	es, err := ob.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.State != outbox.Delivered || e.Attempts != 2 {
			t.Errorf("entry %s/%s: %s after %d attempts, want delivered after 2", e.Sink, e.Key, e.State, e.Attempts)
		}
	}
	// And the status a person sees.
	code, out, errs := runCLI(t, "alerts", "--storage", root)
	if code != 0 || !strings.Contains(out, "DELIVERY") || !strings.Contains(out, "sentinel") || !strings.Contains(out, "webhook") {
		t.Errorf("alerts: %d\n%s%s", code, out, errs)
	}
}

// TestServeDelivers runs `tokenpivot serve` on Azurite with both sinks on,
// drives it through the real HTTP handler as the Functions host does
// (OnExportCreated, ProcessExport, Sweep), and checks that every alert
// revision reached Sentinel's endpoint and the webhook. It logs the numbers:
// records and bytes per Logs Ingestion call, delivery latency per revision.
func TestServeDelivers(t *testing.T) {
	rig := newSOCRig(t, false)
	cs, ic, nc, state, alerts, _ := serveEnv(t, "soc")
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
	ib, nb := caseBlobs(t)
	delivered := 0
	for i, b := range []struct {
		container string
		data      []byte
	}{{ic, ib}, {nc, nb[0]}, {nc, nb[1]}} {
		name := fmt.Sprintf(exportName, 5*i)
		if _, err := s.Write(ctx, b.container, name, b.data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		event := map[string]any{
			"id": fmt.Sprintf("831e1650-001e-001b-66ab-eeb76e06963%d", i), "eventType": "Microsoft.Storage.BlobCreated",
			"subject": "/blobServices/default/containers/" + b.container + "/blobs/" + name, "eventTime": "2026-11-20T10:06:00Z",
			"data":        map[string]any{"api": "PutBlockList", "blobType": "BlockBlob", "contentLength": len(b.data), "url": s.URL(b.container, name)},
			"dataVersion": "", "metadataVersion": "1",
		}
		var queued struct{ Outputs map[string]string }
		post(t, base+"/OnExportCreated", map[string]any{"Data": map[string]any{"event": event}, "Metadata": map[string]any{}}, http.StatusOK, &queued)
		var out struct {
			ReturnValue struct {
				Status    string `json:"status"`
				Delivered int    `json:"delivered"`
			}
		}
		post(t, base+"/ProcessExport", map[string]any{"Data": map[string]any{"work": queued.Outputs["work"]}, "Metadata": map[string]any{"DequeueCount": 1}}, http.StatusOK, &out)
		delivered += out.ReturnValue.Delivered
	}
	var sweep struct{ ReturnValue map[string]int }
	post(t, base+"/Sweep", timerPayloadMain(), http.StatusOK, &sweep)
	if sweep.ReturnValue["queued"] != 0 || sweep.ReturnValue["delivered"] != 0 {
		t.Errorf("Sweep after delivery: %v, want nothing queued or left to deliver", sweep.ReturnValue)
	}
	docs, _, err := alert.Store{Blobs: s, AlertsContainer: alerts}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := rig.checkEveryRevision(t, docs)
	if n == 0 || delivered != 2*n {
		t.Errorf("%d revisions; ProcessExport delivered %d, want %d (two sinks)", n, delivered, 2*n)
	}
	// The numbers.
	ob := &outbox.Outbox{Store: s, Container: state}
	es, err := ob.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lat := map[string][]time.Duration{}
	for _, e := range es {
		if e.State != outbox.Delivered {
			t.Errorf("entry %s/%s is %s", e.Sink, e.Key, e.State)
		}
		lat[e.Sink] = append(lat[e.Sink], e.Delivered.Sub(e.Created))
	}
	for sink, ds := range lat {
		slices.Sort(ds)
		t.Logf("%s: %d revisions, delivery latency (outbox record to delivered) min %s, median %s, max %s", sink, len(ds),
			ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	for i, c := range rig.ing.Calls() {
		t.Logf("logs ingestion call %d: %d records, %d bytes, %d gzipped", i+1, len(c.Records), c.Bytes, c.Gzipped)
	}
	t.Logf("webhook: %d deliveries", len(rig.hook.deliveries()))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancellation: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
	logs := stderr.String()
	for _, want := range []string{`"msg":"alert delivery on","sink":"sentinel"`, `"msg":"alert delivery on","sink":"webhook"`, `"msg":"logs ingestion call"`, `"msg":"webhook delivered"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("stderr lacks %s", want)
		}
	}
	if strings.Contains(logs, strings.TrimPrefix(testWebhookSecret, "whsec_")) {
		t.Error("serve logged the webhook secret")
	}
}

func timerPayloadMain() map[string]any {
	return map[string]any{"Data": map[string]any{"timer": map[string]any{"Schedule": map[string]any{"AdjustForDST": true},
		"ScheduleStatus": nil, "IsPastDue": false}}, "Metadata": map[string]any{}}
}

// TestProcessDeliversAndRedeliver: `process` delivers after processing; a
// receiver that refuses (404) keeps the webhook entries waiting (a
// configuration error, retried: Standard Webhooks retries every non-2xx but
// 410) without holding Sentinel's; `alerts` shows it, and `alerts
// --redeliver` delivers them at once once the receiver is fixed.
func TestProcessDeliversAndRedeliver(t *testing.T) {
	rig := newSOCRig(t, false)
	rig.hook.status = http.StatusNotFound
	dir := t.TempDir()
	ib, nb := caseBlobs(t)
	for c, data := range map[string][]byte{"am-signinlogs": ib, "am-aadnoninteractiveusersigninlogs": nb[0]} {
		path := filepath.Join(dir, c, filepath.FromSlash(fmt.Sprintf(exportName, 0)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs := runCLI(t, append([]string{"process", "--storage", dir}, caseFlags...)...)
	if code != 0 || !strings.Contains(errs, "delivered 12 alert revisions to sentinel") || !strings.Contains(errs, "delivered 0 alert revisions to webhook; 12 to retry, 0 failed") {
		t.Fatalf("process: %d\n%s", code, errs)
	}
	code, out, errs := runCLI(t, "alerts", "--storage", dir)
	if code != 0 || !regexpMatch(`webhook\s+0\s+12\s+0`, out) || !regexpMatch(`sentinel\s+12\s+0\s+0`, out) || !strings.Contains(out, "HTTP 404") ||
		!strings.Contains(out, "configuration error: webhook") {
		t.Fatalf("alerts: %d\n%s%s", code, out, errs)
	}
	rig.hook.mu.Lock()
	rig.hook.status = 0
	rig.hook.mu.Unlock()
	code, out, errs = runCLI(t, "alerts", "--storage", dir, "--redeliver")
	if code != 0 || !strings.Contains(errs, "12 failed or waiting deliveries made due now") || !regexpMatch(`webhook\s+12\s+0\s+0`, out) {
		t.Fatalf("alerts --redeliver: %d\n%s%s", code, out, errs)
	}
	docs, _, err := alert.Store{Blobs: mustLocal(t, dir), AlertsContainer: settings.Defaults().AlertsContainer}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := rig.checkEveryRevision(t, docs); n != 12 {
		t.Errorf("%d revisions, want 12", n)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func mustLocal(t *testing.T, dir string) store.Store {
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
