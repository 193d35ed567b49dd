// Package sentineltest serves, for tests, a local Logs Ingestion endpoint
// (HTTPS) that enforces the API's contract, and a local managed identity
// endpoint (IDENTITY_ENDPOINT/IDENTITY_HEADER, as on App Service and Flex
// Consumption) that issues its token.
package sentineltest

import (
	"bytes"
	"compress/gzip"
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

	"github.com/tokenpivot/tokenpivot/internal/sentinel"
)

// Values the endpoints expect.
const (
	RuleID   = "dcr-00000000000000000000000000000001"
	Token    = "test-access-token"
	ClientID = "11111111-2222-3333-4444-555555555555"
	header   = "test-identity-header"
)

// Call is one accepted upload.
type Call struct {
	Records        []map[string]json.RawMessage
	Bytes, Gzipped int
	At             time.Time
}

// Server is the Logs Ingestion endpoint: POST
// /dataCollectionRules/{RuleID}/streams/{Stream}?api-version=2023-01-01 with
// "Authorization: Bearer Token", a gzip body of at most 1 MB compressed and
// uncompressed holding a JSON array of records with exactly the columns;
// 204, or the statuses queued by FailNext (429 with Retry-After: 7).
type Server struct {
	*httptest.Server
	t      testing.TB
	Stream string

	// FailFirstTry answers 500 to a call holding any record (by AlertId and
	// Revision) not refused before: every record's first call fails once.
	FailFirstTry bool

	// Faults switched at run time (under Lock): Status answers every call
	// (503: an outage; 302: a redirect) when not 0; MaxRecords answers 413
	// to a call of more records; Reject answers 400 to a call holding a
	// record it returns true for.
	Status     int
	MaxRecords int
	Reject     func(rec map[string]json.RawMessage) bool

	mu      sync.Mutex
	failed  map[string]bool
	fail    []int
	calls   []Call
	refused []string
	tries   int
}

// NewServer starts a Server for the default stream.
func NewServer(t testing.TB) *Server {
	s := &Server{t: t, Stream: sentinel.DefaultStream}
	s.Server = httptest.NewTLSServer(s)
	t.Cleanup(s.Close)
	return s
}

// Lock and Unlock guard the fault fields.
func (s *Server) Lock()   { s.mu.Lock() }
func (s *Server) Unlock() { s.mu.Unlock() }

// FailNext makes the next calls answer these statuses, in order.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, statuses...)
}

// Calls returns the accepted uploads.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Tries counts every well-formed call, refused by FailNext or not.
func (s *Server) Tries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries
}

// Refused returns why malformed calls were refused (each also fails t).
func (s *Server) Refused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refused)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, why string) {
		s.mu.Lock()
		s.refused = append(s.refused, why)
		s.mu.Unlock()
		s.t.Errorf("logs ingestion endpoint refused a call: %s", why)
		http.Error(w, why, status)
	}
	switch {
	case r.Method != http.MethodPost:
		refuse(405, "method "+r.Method)
		return
	case r.URL.Path != "/dataCollectionRules/"+RuleID+"/streams/"+s.Stream:
		refuse(404, "path "+r.URL.Path)
		return
	case r.URL.Query().Get("api-version") != "2023-01-01":
		refuse(400, "api-version "+r.URL.Query().Get("api-version"))
		return
	case r.Header.Get("Authorization") != "Bearer "+Token:
		refuse(401, "authorization")
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
		for _, c := range sentinel.Columns {
			if _, ok := rec[c.Name]; !ok {
				refuse(400, "record lacks "+c.Name)
				return
			}
		}
		if len(rec) != len(sentinel.Columns) {
			refuse(400, fmt.Sprintf("record has %d keys, want %d", len(rec), len(sentinel.Columns)))
			return
		}
		for k, v := range rec {
			if len(v) > 65536 {
				refuse(400, fmt.Sprintf("%s is %d bytes, over 64 KB", k, len(v)))
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	switch {
	case s.Status >= 300 && s.Status < 400:
		w.Header().Set("Location", "https://elsewhere.example/dataCollectionRules")
		w.WriteHeader(s.Status)
		return
	case s.Status != 0:
		http.Error(w, `{"error":{"code":"ServiceUnavailable","message":"down"}}`, s.Status)
		return
	case s.MaxRecords > 0 && len(recs) > s.MaxRecords:
		http.Error(w, `{"error":{"code":"ContentLengthLimitExceeded","message":"too large"}}`, http.StatusRequestEntityTooLarge)
		return
	}
	if s.Reject != nil {
		for _, rec := range recs {
			if s.Reject(rec) {
				http.Error(w, `{"error":{"code":"InvalidContent","message":"record `+string(rec["AlertId"])[1:9]+`...: a value does not fit its column"}}`, http.StatusBadRequest)
				return
			}
		}
	}
	if s.FailFirstTry {
		fresh := false
		for _, rec := range recs {
			k := string(rec["AlertId"]) + "/" + string(rec["Revision"])
			if !s.failed[k] {
				if s.failed == nil {
					s.failed = map[string]bool{}
				}
				s.failed[k], fresh = true, true
			}
		}
		if fresh {
			http.Error(w, `{"error":{"code":"TestFailure","message":"first try fails"}}`, http.StatusInternalServerError)
			return
		}
	}
	if len(s.fail) > 0 {
		status := s.fail[0]
		s.fail = s.fail[1:]
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.Header().Set("x-ms-error-code", "TestFailure")
		http.Error(w, `{"error":{"code":"TestFailure","message":"injected"}}`, status)
		return
	}
	s.calls = append(s.calls, Call{recs, len(body), len(gz), time.Now()})
	w.WriteHeader(http.StatusNoContent)
}

// Identity serves the managed identity endpoint and points the process's
// environment at it (IDENTITY_ENDPOINT, IDENTITY_HEADER, AZURE_CLIENT_ID as
// the user-assigned identity), clearing other credential settings. It
// returns the query strings of the token requests so far.
func Identity(t testing.TB) (requests func() []string) {
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
		if q.Get("client_id") != ClientID || !strings.HasPrefix(q.Get("resource"), "https://monitor.azure.com") {
			http.Error(w, "wrong identity or resource: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": Token, "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource": q.Get("resource"), "token_type": "Bearer", "client_id": ClientID,
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
	t.Setenv("AZURE_CLIENT_ID", ClientID)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}
