package sentinel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/sentinel"
	"github.com/tokenpivot/tokenpivot/internal/sentinel/sentineltest"
)

const (
	testRule  = sentineltest.RuleID
	testToken = sentineltest.Token
)

// newTestSink serves an ingestion endpoint over TLS and returns the sink,
// built as production builds it (NewCredential, New) but for the
// transport, which trusts the test certificate.
func newTestSink(t *testing.T) (*sentinel.Sink, *sentineltest.Server, func() []string) {
	t.Helper()
	tokens := sentineltest.Identity(t)
	srv := sentineltest.NewServer(t)
	transport := srv.Client()
	cred, err := sentinel.NewCredential(transport)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sentinel.New(sentinel.Config{Endpoint: srv.URL, RuleID: testRule, Credential: cred, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	return s, srv, tokens
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
	r, err := sentinel.NewRecord(items[0].Doc, time.Now())
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
	for _, c := range sentinel.Columns {
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
	if len(g.Refused()) > 0 {
		t.Fatal("the endpoint refused requests")
	}
	total, cut := 0, 0
	calls := g.Calls()
	for _, c := range calls {
		total += len(c.Records)
		for _, rec := range c.Records {
			if string(rec["ResultsTruncated"]) == "true" {
				cut++
			}
		}
	}
	st := s.Stats()
	t.Logf("%d records in %d calls: at most %d records, %d bytes (%d gzipped) per call; %d bytes (%d gzipped) in all",
		st.Records, st.Calls, st.MaxRecords, st.MaxBytes, st.MaxGzipped, st.Bytes, st.Gzipped)
	if total != len(items) || len(calls) < 2 || cut != 1 {
		t.Errorf("%d records in %d calls, %d truncated; want %d in several calls, 1 truncated", total, len(calls), cut, len(items))
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
		{http.StatusForbidden, false, 0, []string{testRule, sentinel.MonitoringMetricsPublisher, sentinel.MonitoringMetricsPublisherID}},
		{http.StatusInternalServerError, false, 0, []string{"500"}},
		{http.StatusBadRequest, true, 0, []string{"400"}},
	} {
		g.FailNext(tt.status)
		if tt.status == http.StatusBadRequest {
			// The call, then each half alone (one record each): a
			// record fails only when refused alone.
			g.FailNext(tt.status, tt.status)
		}
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

// TestSplitOn413And400: a call answered 413 is halved until it fits, and
// one answered 400 bisected down to the record at fault, which alone fails
// with the API's reason; every other record is delivered once.
func TestSplitOn413And400(t *testing.T) {
	s, g, _ := newTestSink(t)
	items := docs(t, 40, 2)
	bad := items[17].AlertId
	g.Lock()
	g.MaxRecords = 7
	g.Reject = func(rec map[string]json.RawMessage) bool { return string(rec["AlertId"]) == `"`+bad+`"` }
	g.Unlock()
	res := s.Send(context.Background(), items)
	for i, r := range res {
		switch {
		case items[i].AlertId == bad:
			if r.Err == nil || !r.Permanent || !strings.Contains(r.Err.Error(), "400") || !strings.Contains(r.Err.Error(), "does not fit its column") ||
				!strings.Contains(r.Err.Error(), items[i].Key) {
				t.Errorf("the refused record: %+v", r)
			}
		case r.Err != nil:
			t.Errorf("record %d: %v", i, r.Err)
		}
	}
	got := map[string]int{}
	for _, c := range g.Calls() {
		if len(c.Records) > 7 {
			t.Errorf("a call of %d records was accepted", len(c.Records))
		}
		for _, rec := range c.Records {
			got[string(rec["AlertId"])]++
		}
	}
	if len(got) != len(items)-1 {
		t.Errorf("%d records delivered, want %d", len(got), len(items)-1)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// TestRedirectIsAConfigurationError: a 3xx is not followed (the records
// and token would go where the configuration never said) and is retried
// as a configuration error, not failed.
func TestRedirectIsAConfigurationError(t *testing.T) {
	s, g, _ := newTestSink(t)
	g.Lock()
	g.Status = http.StatusFound
	g.Unlock()
	for _, r := range s.Send(context.Background(), docs(t, 2, 1)) {
		if r.Err == nil || r.Permanent || !r.Config || !strings.Contains(r.Err.Error(), "302") {
			t.Errorf("redirect: %+v", r)
		}
	}
	if n := g.Tries(); n != 1 {
		t.Errorf("%d calls reached the endpoint, want the one redirected (not followed)", n)
	}
}
