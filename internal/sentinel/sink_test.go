package sentinel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

const (
	testRule     = "dcr-00000000000000000000000000000001"
	testToken    = "test-access-token"
	testClientID = "11111111-2222-3333-4444-555555555555"
)

// ingestion is a local Logs Ingestion endpoint that enforces the API's
// contract and answers 204, or the statuses queued in fail.
type ingestion struct {
	t       *testing.T
	mu      sync.Mutex
	fail    []int // statuses to answer next, in order
	calls   []call
	refused int
}

type call struct {
	records        []map[string]json.RawMessage
	bytes, gzipped int
}

func (g *ingestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, why string) {
		g.mu.Lock()
		g.refused++
		g.mu.Unlock()
		g.t.Errorf("ingestion refused the request: %s", why)
		http.Error(w, why, status)
	}
	switch {
	case r.Method != http.MethodPost:
		refuse(405, "method "+r.Method)
		return
	case r.URL.Path != "/dataCollectionRules/"+testRule+"/streams/"+DefaultStream:
		refuse(404, "path "+r.URL.Path)
		return
	case r.URL.Query().Get("api-version") != "2023-01-01":
		refuse(400, "api-version "+r.URL.Query().Get("api-version"))
		return
	case r.Header.Get("Authorization") != "Bearer "+testToken:
		refuse(401, "authorization "+r.Header.Get("Authorization"))
		return
	case r.Header.Get("Content-Encoding") != "gzip":
		refuse(400, "not gzip")
		return
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		refuse(400, "content type "+r.Header.Get("Content-Type"))
		return
	}
	gz, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil || len(gz) > 1_000_000 {
		refuse(413, fmt.Sprintf("compressed body %d bytes", len(gz)))
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		refuse(400, "gzip: "+err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(zr, 2<<20))
	if err != nil || len(body) > 1_000_000 {
		refuse(413, fmt.Sprintf("uncompressed body %d bytes", len(body)))
		return
	}
	var recs []map[string]json.RawMessage
	if err := json.Unmarshal(body, &recs); err != nil || len(recs) == 0 {
		refuse(400, "not a JSON array of objects")
		return
	}
	for _, rec := range recs {
		for _, c := range Columns {
			if _, ok := rec[c.Name]; !ok {
				refuse(400, "record lacks "+c.Name)
				return
			}
		}
		if len(rec) != len(Columns) {
			refuse(400, fmt.Sprintf("record has %d keys, want %d", len(rec), len(Columns)))
			return
		}
		if v := rec["Results"]; len(v) > 65536 {
			refuse(400, fmt.Sprintf("Results is %d bytes, over 64 KB", len(v)))
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.fail) > 0 {
		status := g.fail[0]
		g.fail = g.fail[1:]
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.Header().Set("x-ms-error-code", "TestFailure")
		http.Error(w, `{"error":{"code":"TestFailure","message":"injected"}}`, status)
		return
	}
	g.calls = append(g.calls, call{recs, len(body), len(gz)})
	w.WriteHeader(http.StatusNoContent)
}

// identityEndpoint is the App Service / Flex managed identity endpoint
// (IDENTITY_ENDPOINT, IDENTITY_HEADER) serving testToken.
func identityEndpoint(t *testing.T) (requests func() []string) {
	const header = "test-identity-header"
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RawQuery)
		mu.Unlock()
		if r.Header.Get("X-IDENTITY-HEADER") != header {
			http.Error(w, "no identity header", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		if q.Get("client_id") != testClientID || !strings.HasPrefix(q.Get("resource"), "https://monitor.azure.com") {
			http.Error(w, "wrong identity or resource: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": testToken, "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource": q.Get("resource"), "token_type": "Bearer", "client_id": testClientID,
		})
	}))
	t.Cleanup(srv.Close)
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_TOKEN_CREDENTIALS", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", header)
	t.Setenv("AZURE_CLIENT_ID", testClientID)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// newTestSink serves an ingestion endpoint over TLS and returns the sink,
// built as production builds it (NewCredential, New) but for the
// transport, which trusts the test certificate.
func newTestSink(t *testing.T) (*Sink, *ingestion, func() []string) {
	t.Helper()
	tokens := identityEndpoint(t)
	g := &ingestion{t: t}
	srv := httptest.NewTLSServer(g)
	t.Cleanup(srv.Close)
	transport := srv.Client()
	cred, err := NewCredential(transport)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Endpoint: srv.URL, RuleID: testRule, Credential: cred, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	return s, g, tokens
}

// docs makes n real alert documents with rows evidence rows each.
func docs(t *testing.T, n, rows int) []outbox.Item {
	t.Helper()
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var rs []detect.Result
	for i := range n {
		for j := range rows {
			rs = append(rs, detect.Result{
				NISignInTime: base.Add(time.Duration(j+1) * time.Minute), InteractiveTime: base,
				UserPrincipalName: fmt.Sprintf("user%03d@contoso.com", i), AppDisplayName: "Microsoft Office",
				NIIPAddress: "198.51.100.7", NICountry: "RU", InteractiveIP: "203.0.113.10", InteractiveCountry: "US",
				CorrelationId: fmt.Sprintf("corr-%d-%d", i, j), UniqueTokenIdentifier: fmt.Sprintf("tok-%d-%d-%s", i, j, strings.Repeat("x", 40)),
				TimeSinceInteractive: time.Duration(j+1) * time.Minute,
				InteractiveId:        fmt.Sprintf("i-%d", i), NonInteractiveId: fmt.Sprintf("n-%d-%d", i, j),
			})
		}
	}
	detect.Sort(rs)
	var items []outbox.Item
	for k, d := range alert.Group(rule.Default(), rs, false) {
		d.Revision = 1
		data, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, outbox.Item{AlertId: d.SystemAlertId, Revision: 1, Key: outbox.Key(d.SystemAlertId, 1), Doc: data, Attempt: k})
	}
	return items
}

func TestRecordColumns(t *testing.T) {
	items := docs(t, 1, 3)
	r, err := NewRecord(items[0].Doc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(r)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.Token()
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	var want []string
	for _, c := range Columns {
		want = append(want, c.Name)
	}
	if !slices.Equal(keys, want) {
		t.Errorf("record keys %v\nwant the columns %v", keys, want)
	}
	if r.UserPrincipalName != "user000@contoso.com" || r.ResultCount != 3 || len(r.Results) != 3 || r.ResultsTruncated || r.Revision != 1 ||
		r.NIIPAddress != "198.51.100.7" || r.InteractiveCountry != "US" || r.AppDisplayName != "Microsoft Office" || len(r.Techniques) == 0 {
		t.Errorf("record %+v", r)
	}
}

// TestUploadContract: records reach the endpoint gzipped, in calls of at
// most 1 MB, with the managed identity's token; a large alert's Results are
// cut to 64 KB and say so.
func TestUploadContract(t *testing.T) {
	s, g, tokens := newTestSink(t)
	items := append(docs(t, 40, 100), docs(t, 1, 1000)...) // ~40 KB each, one of ~400 KB
	res := s.Send(context.Background(), items)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	if g.refused > 0 {
		t.Fatal("the endpoint refused requests")
	}
	total, cut := 0, 0
	for _, c := range g.calls {
		total += len(c.records)
		for _, rec := range c.records {
			if string(rec["ResultsTruncated"]) == "true" {
				cut++
			}
		}
	}
	st := s.Stats()
	t.Logf("%d records in %d calls: at most %d records, %d bytes (%d gzipped) per call; %d bytes (%d gzipped) in all",
		st.Records, st.Calls, st.MaxRecords, st.MaxBytes, st.MaxGzipped, st.Bytes, st.Gzipped)
	if total != len(items) || len(g.calls) < 2 || cut != 1 {
		t.Errorf("%d records in %d calls, %d truncated; want %d in several calls, 1 truncated", total, len(g.calls), cut, len(items))
	}
	if len(tokens()) == 0 {
		t.Error("no token was asked of the managed identity endpoint")
	}
}

func TestUploadFailures(t *testing.T) {
	s, g, _ := newTestSink(t)
	items := docs(t, 2, 2)
	for _, tt := range []struct {
		status    int
		permanent bool
		retry     time.Duration
		says      []string
	}{
		{http.StatusTooManyRequests, false, 7 * time.Second, []string{"429"}},
		{http.StatusForbidden, false, 0, []string{testRule, MonitoringMetricsPublisher, MonitoringMetricsPublisherID}},
		{http.StatusInternalServerError, false, 0, []string{"500"}},
		{http.StatusBadRequest, true, 0, []string{"400"}},
	} {
		g.mu.Lock()
		g.fail = []int{tt.status}
		g.mu.Unlock()
		res := s.Send(context.Background(), items)
		for _, r := range res {
			if r.Err == nil || r.Permanent != tt.permanent || r.RetryAfter != tt.retry {
				t.Errorf("%d: result %+v", tt.status, r)
				continue
			}
			for _, want := range tt.says {
				if !strings.Contains(r.Err.Error(), want) {
					t.Errorf("%d: error %q does not say %q", tt.status, r.Err, want)
				}
			}
		}
	}
	// And then it works again.
	for _, r := range s.Send(context.Background(), items) {
		if r.Err != nil {
			t.Error(r.Err)
		}
	}
}

func TestBatches(t *testing.T) {
	recs := [][]byte{make([]byte, 40), make([]byte, 40), make([]byte, 200), make([]byte, 10), make([]byte, 30)}
	got, tooBig := batches(recs, 100)
	if fmt.Sprint(got) != "[[0 1 3] [4]]" || fmt.Sprint(tooBig) != "[2]" {
		t.Errorf("batches = %v, too big %v", got, tooBig)
	}
	for _, b := range got {
		if n := len(joinArray(recs, b)); n > 100 {
			t.Errorf("batch %v is %d bytes", b, n)
		}
	}
}
