// Package exportjobtest is a local stand-in for the Log Analytics export job API
// (2025-06-01-preview) and for the App Service / Flex Consumption managed
// identity endpoint, for tests. The API server speaks HTTPS with a
// self-signed certificate (Client trusts it) and enforces the API as
// Microsoft Learn documents it (see package exportjob): the path, the
// api-version, a bearer token the identity endpoint issued for
// https://api.loganalytics.io, the request body's fields, 202 with an
// operationId, status transitions, retry only of a failed job, at most 5
// retries per job and 5 active jobs per workspace. What it answers where the
// documentation is silent (error bodies, the 429 past the job limit, the 409
// for retrying a job that has not failed) is marked as such.
package exportjobtest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Identity endpoint protocol (App Service, api-version 2019-08-01).
const (
	identityAPIVersion = "2019-08-01"
	resource           = "https://api.loganalytics.io"
	apiVersion         = "2025-06-01-preview"
)

// tokens are the access tokens any identity endpoint of this process
// issued: azidentity's managed identity token cache is process-wide, so a
// later test's client may present a token an earlier test's endpoint issued.
var (
	tokensMu sync.Mutex
	tokens   = map[string]bool{}
)

// TokensIssued counts the tokens the identity endpoints of this process issued.
func TokensIssued() int {
	tokensMu.Lock()
	defer tokensMu.Unlock()
	return len(tokens)
}

// Job is one export job the server knows.
type Job struct {
	ID      string
	Request map[string]any
	Table   string
	Start   time.Time
	Status  string
	Retries int
	plan    []string // statuses still to go through, one per status read
}

// Server is the fake API plus identity endpoint.
type Server struct {
	API      *httptest.Server // https
	Identity *httptest.Server // http, as on App Service (localhost)
	// Workspace is the only workspace path accepted: subscription,
	// resource group, name.
	Subscription, ResourceGroup, Workspace string

	// Plan returns the statuses a job goes through, one per status read,
	// after it is created (retry 0) or retried (retry n); the last one
	// stays. Default: Queued, InProgress, Succeeded. ("Queued" is not a
	// documented value: clients must treat unknown values as running.)
	Plan func(table string, start time.Time, retry int) []string
	// CreateFault, if set, is called before each create is carried out (n
	// counts creates from 1): a non-zero status is answered instead; with
	// after true the job is created first and the status answered anyway
	// (a 5xx after the fact: the ambiguous case).
	CreateFault func(n int) (status int, after bool)
	// MaxActive is the active job limit (5, as documented).
	MaxActive int
	// Output, when set, is the destination account: each job writes its
	// output blob there, <containerName>/workspaceId/<WorkspaceGUID>/jobId/
	// <jobId>/timestamp=<yyyy-MM-ddTHH>/<guid>.gz.parquet (the documented
	// layout), as soon as it is created (a real job writes while it runs).
	Output        store.Store
	WorkspaceGUID string

	header string // IDENTITY_HEADER

	mu      sync.Mutex
	jobs    map[string]*Job
	order   []*Job
	creates int
	// Calls counts requests by kind: "token", "create", "status", "retry".
	calls map[string]int
	// Rejected lists why requests were refused (for test failure messages).
	Rejected []string
}

// New starts the servers and points IDENTITY_ENDPOINT and IDENTITY_HEADER at
// the identity endpoint for the rest of the test, as App Service and Flex
// Consumption do; other credential variables are cleared so that
// DefaultAzureCredential picks the managed identity.
func New(t testing.TB) *Server {
	s := &Server{Subscription: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg-sentinel", Workspace: "law-sentinel",
		MaxActive: 5, header: randomHex(16), jobs: map[string]*Job{}, calls: map[string]int{}, WorkspaceGUID: newGUID()}
	s.API = httptest.NewTLSServer(http.HandlerFunc(s.serveAPI))
	s.Identity = httptest.NewServer(http.HandlerFunc(s.serveIdentity))
	t.Cleanup(s.API.Close)
	t.Cleanup(s.Identity.Close)
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_TENANT_ID", "AZURE_USERNAME",
		"AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)  // some are read with LookupEnv: absent, not empty
	}
	t.Setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
	t.Setenv("IDENTITY_ENDPOINT", s.Identity.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", s.header)
	return s
}

// WorkspaceID is the resource id of the accepted workspace.
func (s *Server) WorkspaceID() string {
	return "/subscriptions/" + s.Subscription + "/resourceGroups/" + s.ResourceGroup +
		"/providers/Microsoft.OperationalInsights/workspaces/" + s.Workspace
}

// Client is an HTTP client that trusts the API's certificate.
func (s *Server) Client() *http.Client {
	c := s.API.Client()
	c.Timeout = 10 * time.Second
	return c
}

// Calls returns how many requests of kind were accepted or refused.
func (s *Server) Calls(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[kind]
}

// Jobs returns a copy of the jobs, in creation order.
func (s *Server) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, len(s.order))
	for i, j := range s.order {
		out[i] = *j
	}
	return out
}

// CreatesPerHour counts the jobs created per "table@startTime".
func (s *Server) CreatesPerHour() map[string]int {
	m := map[string]int{}
	for _, j := range s.Jobs() {
		m[j.Table+"@"+j.Start.UTC().Format("2006-01-02T15")]++
	}
	return m
}

func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls["token"]++
	s.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet:
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	case r.Header.Get("X-IDENTITY-HEADER") != s.header:
		http.Error(w, `{"error":"unauthorized","error_description":"X-IDENTITY-HEADER missing or wrong"}`, http.StatusUnauthorized)
		return
	case q.Get("api-version") != identityAPIVersion:
		http.Error(w, `{"error":"invalid_request","error_description":"api-version"}`, http.StatusBadRequest)
		return
	case strings.TrimSuffix(q.Get("resource"), "/") != resource:
		http.Error(w, `{"error":"invalid_resource","error_description":"resource `+q.Get("resource")+`"}`, http.StatusBadRequest)
		return
	}
	tok := "fake-" + randomHex(12)
	tokensMu.Lock()
	tokens[tok] = true
	tokensMu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok, "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
		"resource": resource, "token_type": "Bearer", "client_id": q.Get("client_id"),
	})
}

var rePath = regexp.MustCompile(`^/v2/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/Microsoft\.OperationalInsights/workspaces/([^/]+)/jobs/export(?:/([^/]+)/(status|retry|cancel))?$`)

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) refuse(w http.ResponseWriter, status int, code, msg string) {
	s.mu.Lock()
	s.Rejected = append(s.Rejected, fmt.Sprintf("%d %s: %s", status, code, msg))
	s.mu.Unlock()
	apiError(w, status, code, msg)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	m := rePath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		s.refuse(w, http.StatusNotFound, "PathNotFound", "no such path: "+r.URL.Path)
		return
	}
	if m[1] != s.Subscription || m[2] != s.ResourceGroup || m[3] != s.Workspace {
		s.refuse(w, http.StatusNotFound, "WorkspaceNotFound", "workspace "+m[1]+"/"+m[2]+"/"+m[3])
		return
	}
	if v := r.URL.Query()["api-version"]; len(v) != 1 || v[0] != apiVersion {
		s.refuse(w, http.StatusBadRequest, "InvalidApiVersion", fmt.Sprintf("api-version %v", v))
		return
	}
	auth := r.Header.Get("Authorization")
	tokensMu.Lock()
	ok := strings.HasPrefix(auth, "Bearer ") && tokens[strings.TrimPrefix(auth, "Bearer ")]
	tokensMu.Unlock()
	if !ok {
		s.refuse(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "no valid bearer token")
		return
	}
	kind := "create"
	if m[5] != "" {
		kind = m[5]
	}
	s.mu.Lock()
	s.calls[kind]++
	s.mu.Unlock()
	switch {
	case kind == "create" && r.Method == http.MethodPost:
		s.create(w, r)
	case kind == "status" && r.Method == http.MethodGet:
		s.status(w, m[4])
	case kind == "retry" && r.Method == http.MethodPost:
		s.retry(w, m[4])
	case kind == "cancel" && r.Method == http.MethodPost:
		s.cancel(w, m[4])
	default:
		s.refuse(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" "+kind)
	}
}

var (
	reAccount = regexp.MustCompile(`^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[a-z0-9]{3,24}$`)
	tables    = map[string]bool{"SigninLogs": true, "AADNonInteractiveUserSignInLogs": true}
)

func parseTime(v any) (time.Time, bool) {
	str, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, str); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.refuse(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", ct)
		return
	}
	var body map[string]any
	var buf bytes.Buffer
	buf.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := json.Unmarshal(buf.Bytes(), &body); err != nil {
		s.refuse(w, http.StatusBadRequest, "BadRequest", "body is not a JSON object")
		return
	}
	table, start, refusal := checkCreate(body)
	if refusal != "" {
		s.refuse(w, http.StatusBadRequest, "BadRequest", refusal)
		return
	}

	s.mu.Lock()
	s.creates++
	n := s.creates
	active := 0
	for _, j := range s.order {
		if j.Status != "Succeeded" && j.Status != "Failed" && j.Status != "Canceled" {
			active++
		}
	}
	s.mu.Unlock()
	status, after := 0, false
	if s.CreateFault != nil {
		status, after = s.CreateFault(n)
	}
	if status != 0 && !after {
		s.refuse(w, status, "InjectedFault", "create "+strconv.Itoa(n))
		return
	}
	if active >= s.MaxActive {
		// Not documented: what the API answers past 5 active jobs.
		s.refuse(w, http.StatusTooManyRequests, "TooManyActiveJobs", "5 active export jobs per workspace")
		return
	}
	j := &Job{ID: newGUID(), Request: body, Table: table, Start: start}
	j.plan = s.plan(j, 0)
	j.Status = "Queued"
	s.mu.Lock()
	s.jobs[j.ID] = j
	s.order = append(s.order, j)
	s.mu.Unlock()
	if s.Output != nil {
		c, _ := body["containerName"].(string)
		name := "workspaceId/" + s.WorkspaceGUID + "/jobId/" + j.ID + "/timestamp=" + start.Format("2006-01-02T15") + "/" + newGUID() + ".gz.parquet"
		if _, err := s.Output.Write(r.Context(), c, name, []byte("PAR1 fake export output PAR1"), store.Condition{}); err != nil {
			s.refuse(w, http.StatusInternalServerError, "OutputFailed", err.Error())
			return
		}
	}
	if status != 0 {
		s.refuse(w, status, "InjectedFault", "create "+strconv.Itoa(n)+" (after the job was created)")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"operationId": j.ID})
}

// checkCreate checks a create request's body as the API documents it, and
// returns its table and first hour, or why it is refused (400).
func checkCreate(body map[string]any) (table string, start time.Time, refusal string) {
	known := map[string]bool{"startTime": true, "endTime": true, "query": true, "destinationStorageAccounts": true,
		"containerName": true, "outputDataFormat": true, "dateTimeFormat": true}
	for k := range body {
		if !known[k] {
			return "", start, "unknown property " + k
		}
	}
	start, ok1 := parseTime(body["startTime"])
	end, ok2 := parseTime(body["endTime"])
	now := time.Now().UTC()
	switch {
	case !ok1 || !ok2:
		return "", start, "startTime and endTime are required datetimes"
	case !start.Before(now) || !end.After(start) || end.After(now):
		// Documented: startTime earlier than now; endTime later than
		// startTime and earlier than now.
		return "", start, "startTime < endTime < now is required"
	case end.Sub(start) > 366*24*time.Hour:
		return "", start, "time range over a year"
	}
	query, _ := body["query"].(string)
	words := strings.Fields(strings.ReplaceAll(query, "|", " |"))
	if len(words) == 0 || !tables[words[0]] {
		return "", start, "query must start with a table name: " + query
	}
	accounts, _ := body["destinationStorageAccounts"].([]any)
	if len(accounts) < 1 || len(accounts) > 10 {
		return "", start, "destinationStorageAccounts: 1 to 10 resource ids"
	}
	for _, a := range accounts {
		if str, _ := a.(string); !reAccount.MatchString(str) {
			return "", start, fmt.Sprintf("destinationStorageAccounts: %v is not a storage account resource id", a)
		}
	}
	if c, _ := body["containerName"].(string); store.CheckContainer(c) != nil {
		return "", start, fmt.Sprintf("containerName %v", body["containerName"])
	}
	if body["outputDataFormat"] != "Parquet" {
		return "", start, fmt.Sprintf("outputDataFormat %v: only Parquet is supported", body["outputDataFormat"])
	}
	if f, ok := body["dateTimeFormat"]; ok && f != "yyyy-MM-ddTHH" && f != "year=yyyy/month=MM/day=dd/hour=HH" {
		return "", start, fmt.Sprintf("dateTimeFormat %v", f)
	}
	return words[0], start, ""
}

func (s *Server) plan(j *Job, retry int) []string {
	if s.Plan != nil {
		return s.Plan(j.Table, j.Start, retry)
	}
	return []string{"Queued", "InProgress", "Succeeded"}
}

func (s *Server) status(w http.ResponseWriter, id string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if ok && len(j.plan) > 0 {
		j.Status = j.plan[0]
		if len(j.plan) > 1 {
			j.plan = j.plan[1:]
		}
	}
	var st string
	if ok {
		st = j.Status
	}
	s.mu.Unlock()
	if !ok {
		s.refuse(w, http.StatusNotFound, "JobNotFound", id)
		return
	}
	progress := map[string]float64{"Queued": 0, "InProgress": 50}[st]
	if st == "Succeeded" {
		progress = 100
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobStatus": st, "resultStatistics": map[string]any{
		"progressPercentage": progress, "resultCount": 1000, "scannedGigabytes": 0.5}})
}

func (s *Server) retry(w http.ResponseWriter, id string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	var code int
	var msg string
	switch {
	case !ok:
		code, msg = http.StatusNotFound, "no job "+id
	case j.Status == "Canceled":
		code, msg = http.StatusBadRequest, "a canceled job cannot be retried" // documented; the code is not
	case j.Status != "Failed":
		code, msg = http.StatusConflict, "only a failed job can be retried, this one is "+j.Status // not documented
	case j.Retries >= 5:
		code, msg = http.StatusBadRequest, "5 retries per jobId" // documented limit; the code is not
	default:
		j.Retries++
		j.Status = "Queued"
		j.plan = s.plan(j, j.Retries)
	}
	s.mu.Unlock()
	if code != 0 {
		s.refuse(w, code, "RetryNotAllowed", msg)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"operationId": id})
}

func (s *Server) cancel(w http.ResponseWriter, id string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	if ok {
		j.Status, j.plan = "Canceled", nil
	}
	s.mu.Unlock()
	if !ok {
		s.refuse(w, http.StatusNotFound, "JobNotFound", id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobStatus": "Canceled"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
