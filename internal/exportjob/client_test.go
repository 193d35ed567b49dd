package exportjob

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob/exportjobtest"
)

// TestClientLifecycle drives the client through the documented API: a
// managed-identity token, 202 with an operationId, status transitions,
// retry of a failed job only, with the test server's TLS certificate
// trusted through the injected HTTP client.
func TestClientLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	failOnce := true
	e.api.Plan = func(table string, start time.Time, retry int) []string {
		if failOnce && retry == 0 {
			return []string{"InProgress", "Failed"}
		}
		return []string{"InProgress", "Succeeded"}
	}
	hour := testKeys(1)[0].Hour
	req := HourRequest(TableInteractive, hour, testAccount, "am-signinlogs")
	id, err := e.cl.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v (server refused: %v)", err, e.api.Rejected)
	}
	// Retrying a running job is refused, definitely.
	if _, err := e.cl.Retry(ctx, id); err == nil || !Rejected(err) {
		t.Errorf("retry of a running job: %v, want a rejection", err)
	}
	var seen []string
	for range 3 {
		st, err := e.cl.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, st.JobStatus+"/"+st.Class())
	}
	if got := strings.Join(seen, " "); got != "InProgress/Running Failed/Failed Failed/Failed" {
		t.Errorf("statuses %s", got)
	}
	op, err := e.cl.Retry(ctx, id)
	if err != nil || op != id {
		t.Fatalf("retry: %q, %v", op, err)
	}
	seen = nil
	for range 2 {
		st, _ := e.cl.Status(ctx, id)
		seen = append(seen, st.Class())
	}
	if got := strings.Join(seen, " "); got != "Running Succeeded" {
		t.Errorf("after retry: %s", got)
	}
	// The token came from the identity endpoint (at most once: azidentity
	// caches it process-wide, so an earlier test may have fetched it).
	if n := exportjobtest.TokensIssued(); n < 1 {
		t.Errorf("no token was requested from the identity endpoint")
	}
	jobs := e.api.Jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	b := jobs[0].Request
	for k, want := range map[string]string{
		"startTime": hour.Format(time.RFC3339), "endTime": hour.Add(time.Hour).Format(time.RFC3339),
		"outputDataFormat": "Parquet", "dateTimeFormat": "yyyy-MM-ddTHH", "containerName": "am-signinlogs",
	} {
		if b[k] != want {
			t.Errorf("%s = %v, want %s", k, b[k], want)
		}
	}
	q, _ := b["query"].(string)
	for _, w := range []string{"SigninLogs | where TimeGenerated >= datetime(", "| project TimeGenerated, UserPrincipalName, IPAddress, Location, ResultType, AuthenticationRequirement, ConditionalAccessStatus, AppDisplayName, CorrelationId, UniqueTokenIdentifier, Id"} {
		if !strings.Contains(q, w) {
			t.Errorf("query %q lacks %q", q, w)
		}
	}
	if _, err := e.cl.Status(ctx, "no-such-job"); err == nil || !Rejected(err) {
		t.Errorf("status of an unknown job: %v", err)
	}
}

// TestClientRefusals: the server enforces the documented body, and the
// client classes its answers.
func TestClientRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hour := testKeys(1)[0].Hour
	good := HourRequest(TableNonInteractive, hour, testAccount, "am-aadnoninteractiveusersigninlogs")
	for name, mut := range map[string]func(*Request){
		"json format":    func(r *Request) { r.OutputDataFormat = "JSON" },
		"future end":     func(r *Request) { r.EndTime = time.Now().Add(time.Hour).UTC().Format(time.RFC3339) },
		"no account":     func(r *Request) { r.DestinationStorageAccounts = nil },
		"bad container":  func(r *Request) { r.ContainerName = "Bad_Name" },
		"unknown table":  func(r *Request) { r.Query = "SecurityEvent" },
		"bad dateformat": func(r *Request) { r.DateTimeFormat = "yyyyMMdd" },
	} {
		r := good
		mut(&r)
		_, err := e.cl.Create(ctx, r)
		var ae *Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !Rejected(err) {
			t.Errorf("%s: %v, want a 400 rejection", name, err)
		}
	}
	// Wrong workspace: 404 from the server.
	other := *e.cl
	other.Workspace.Name = "other"
	if _, err := other.Create(ctx, good); !Rejected(err) {
		t.Errorf("other workspace: %v", err)
	}
	// A 500 is ambiguous, a 429 a rejection.
	e.api.CreateFault = func(n int) (int, bool) {
		if n == 1 {
			return http.StatusInternalServerError, true
		}
		return http.StatusTooManyRequests, false
	}
	if _, err := e.cl.Create(ctx, good); err == nil || Rejected(err) {
		t.Errorf("500: %v, want an ambiguous error", err)
	}
	if _, err := e.cl.Create(ctx, good); err == nil || !Rejected(err) {
		t.Errorf("429: %v, want a rejection", err)
	}
	// No token: nothing is sent, and that is a definite rejection.
	noCred := *e.cl
	noCred.Credential = nil
	before := e.api.Calls("create")
	if _, err := noCred.Create(ctx, good); err == nil || !Rejected(err) {
		t.Errorf("no token: %v, want a rejection (nothing sent)", err)
	}
	if e.api.Calls("create") != before {
		t.Error("a create was sent without a token")
	}
}
