package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// verify checks a Standard Webhooks request as the spec says a receiver
// must, written apart from Sign: the key is the base64 after "whsec_",
// the signed content "id.timestamp.body", the header a space-separated list
// of "v1,<base64>"; the timestamp within 5 minutes.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q out of tolerance", ts)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	want := m.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		v, b64, ok := strings.Cut(sig, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", h.Get("webhook-signature"))
}

type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	status []int // answers before 200
	got    []http.Header
	bodies [][]byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.status) > 0 {
		s := rc.status[0]
		rc.status = rc.status[1:]
		if s == http.StatusFound {
			w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
		}
		if s == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "11")
		}
		w.WriteHeader(s)
		return
	}
	rc.got = append(rc.got, r.Header.Clone())
	rc.bodies = append(rc.bodies, body)
}

func items(t *testing.T, n, rows int) []outbox.Item {
	t.Helper()
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var rs []detect.Result
	for i := range n {
		for j := range rows {
			rs = append(rs, detect.Result{NISignInTime: base.Add(time.Duration(j+1) * time.Minute), InteractiveTime: base,
				UserPrincipalName: fmt.Sprintf("user%d@contoso.com", i), AppDisplayName: "Microsoft Teams", NIIPAddress: "198.51.100.7",
				NICountry: "RU", InteractiveIP: "203.0.113.10", InteractiveCountry: "US", CorrelationId: fmt.Sprint("c", j),
				UniqueTokenIdentifier: fmt.Sprint("t", j), TimeSinceInteractive: time.Duration(j+1) * time.Minute,
				InteractiveId: fmt.Sprint("i", i), NonInteractiveId: fmt.Sprint("n", i, "-", j)})
		}
	}
	detect.Sort(rs)
	var out []outbox.Item
	for _, d := range alert.Group(rule.Default(), rs, false) {
		d.Revision, d.IncidentId = 3, "inc-1"
		data, _ := json.MarshalIndent(d, "", "  ")
		out = append(out, outbox.Item{AlertId: d.SystemAlertId, Revision: 3, Key: outbox.Key(d.SystemAlertId, 3), Doc: data, Attempt: 1})
	}
	return out
}

func TestStandardSigned(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/hook", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	its := items(t, 2, 3)
	for i, r := range s.Send(context.Background(), its) {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	if len(rc.got) != 2 {
		t.Fatalf("%d requests", len(rc.got))
	}
	for i, h := range rc.got {
		if err := verify(testSecret, h, rc.bodies[i], time.Now()); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		if h.Get("webhook-id") != its[i].Key {
			t.Errorf("webhook-id %q, want %q", h.Get("webhook-id"), its[i].Key)
		}
		var d alert.Document
		if err := json.Unmarshal(rc.bodies[i], &d); err != nil || d.SystemAlertId != its[i].AlertId || d.Revision != 3 {
			t.Errorf("body is not the alert document: %v", err)
		}
	}
	// A tampered body fails the independent verifier.
	if verify(testSecret, rc.got[0], append(rc.bodies[0], ' '), time.Now()) == nil {
		t.Error("the verifier accepted a tampered body")
	}
}

func TestStatuses(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var logs bytes.Buffer
	// The URL carries a credential, as Teams and Slack URLs do.
	s, err := New(Config{URL: srv.URL + "/hook?sig=URLSECRET", Secret: testSecret, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	it := items(t, 1, 1)
	for _, tt := range []struct {
		status          int
		permanent, gone bool
		retry           time.Duration
	}{
		{http.StatusTooManyRequests, false, false, 11 * time.Second},
		{http.StatusRequestTimeout, false, false, 0},
		{http.StatusInternalServerError, false, false, 0},
		{http.StatusNotFound, true, false, 0},
		{http.StatusFound, true, false, 0},
		{http.StatusGone, false, true, 0},
	} {
		rc.mu.Lock()
		rc.status = []int{tt.status}
		rc.mu.Unlock()
		r := s.Send(context.Background(), it)[0]
		if r.Err == nil || r.Permanent != tt.permanent || r.Gone != tt.gone || r.RetryAfter != tt.retry {
			t.Errorf("%d: %+v", tt.status, r)
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), "URLSECRET") {
			t.Errorf("%d: the error shows the URL: %v", tt.status, r.Err)
		}
	}
	if len(rc.got) != 0 {
		t.Errorf("a redirect was followed")
	}
	// Unreachable: the error must not carry the URL either.
	s2, _ := New(Config{URL: "http://127.0.0.1:1/hook?sig=URLSECRET", Secret: testSecret, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if r := s2.Send(context.Background(), it)[0]; r.Err == nil || r.Permanent || strings.Contains(r.Err.Error(), "URLSECRET") {
		t.Errorf("unreachable: %+v", r)
	}
	if strings.Contains(logs.String(), "URLSECRET") || strings.Contains(logs.String(), testSecret) {
		t.Errorf("logs show a secret:\n%s", logs.String())
	}
}

func TestConfigRules(t *testing.T) {
	for _, tt := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{URL: "https://example.com/h", Secret: testSecret}, true},
		{Config{URL: "http://127.0.0.1:9/h", Secret: testSecret}, true},
		{Config{URL: "http://[::1]:9/h", Secret: testSecret}, true},
		{Config{URL: "http://localhost:9/h", Secret: testSecret}, true},
		{Config{URL: "http://example.com/h", Secret: testSecret}, false},
		{Config{URL: "ftp://example.com/h", Secret: testSecret}, false},
		{Config{URL: "https://example.com/h"}, false},                                             // standard needs a secret
		{Config{URL: "https://example.com/h", Secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, false}, // no whsec_
		{Config{URL: "https://example.com/h", Format: Teams}, true},
		{Config{URL: "https://example.com/h", Format: "xml", Secret: testSecret}, false},
	} {
		_, err := New(tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.cfg, err)
		}
		if err != nil && strings.Contains(err.Error(), "MfKQ9r8") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestCards(t *testing.T) {
	big := items(t, 1, 1000)[0]
	for _, f := range []string{Teams, Slack} {
		s, err := New(Config{URL: "https://example.com/h", Format: f})
		if err != nil {
			t.Fatal(err)
		}
		body, err := s.Body(big.Doc)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		text := string(body)
		for _, want := range []string{"user0@contoso.com", "198.51.100.7", "inc-1", "2026-11-20 10:00:00"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s body lacks %q", f, want)
			}
		}
		switch f {
		case Teams:
			if len(body) > MaxTeamsBody || m["type"] != "message" || !strings.Contains(text, `"application/vnd.microsoft.card.adaptive"`) {
				t.Errorf("teams body: %d bytes: %.300s", len(body), text)
			}
		case Slack:
			if m["text"] == nil || m["blocks"] == nil {
				t.Errorf("slack body: %.300s", text)
			}
		}
		t.Logf("%s body: %d bytes", f, len(body))
	}
}
