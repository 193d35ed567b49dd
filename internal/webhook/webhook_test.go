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
		var env struct {
			Type      string
			Timestamp time.Time
			Data      alert.Document
		}
		if err := json.Unmarshal(rc.bodies[i], &env); err != nil || env.Data.SystemAlertId != its[i].AlertId || env.Data.Revision != 3 ||
			env.Type != EventType || time.Since(env.Timestamp).Abs() > time.Minute {
			t.Errorf("body is not {type, timestamp, data: the alert document}: %v\n%.300s", err, rc.bodies[i])
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
		status                  int
		permanent, gone, config bool
		retry                   time.Duration
	}{
		// Standard Webhooks: every non-2xx but 410 is retried; a 4xx or a
		// redirect is a configuration error, never a failed alert.
		{http.StatusTooManyRequests, false, false, false, 11 * time.Second},
		{http.StatusRequestTimeout, false, false, false, 0},
		{http.StatusInternalServerError, false, false, false, 0},
		{http.StatusNotFound, false, false, true, 0},
		{http.StatusUnauthorized, false, false, true, 0},
		{http.StatusFound, false, false, true, 0},
		{http.StatusGone, false, true, false, 0},
	} {
		rc.mu.Lock()
		rc.status = []int{tt.status}
		rc.mu.Unlock()
		r := s.Send(context.Background(), it)[0]
		if r.Err == nil || r.Permanent != tt.permanent || r.Gone != tt.gone || r.Config != tt.config || r.RetryAfter != tt.retry {
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

// TestSecretSizes: Standard Webhooks secrets are 24 to 64 bytes; a shorter
// or longer one is refused with its size and how to make one.
func TestSecretSizes(t *testing.T) {
	for _, tt := range []struct {
		n  int
		ok bool
	}{{16, false}, {23, false}, {24, true}, {32, true}, {64, true}, {65, false}} {
		secret := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, tt.n))
		_, err := New(Config{URL: "https://example.com/h", Secret: secret})
		if (err == nil) != tt.ok {
			t.Errorf("%d bytes: %v", tt.n, err)
		}
		if err != nil && (!strings.Contains(err.Error(), fmt.Sprintf("%d bytes", tt.n)) || !strings.Contains(err.Error(), "24 to 64")) {
			t.Errorf("%d bytes: unclear error %q", tt.n, err)
		}
	}
}

// TestRotationSignsWithBoth: two secrets (new, old) give two signatures, so
// a receiver on either secret verifies the request.
func TestRotationSignsWithBoth(t *testing.T) {
	const old = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Secret: testSecret + " " + old})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Send(context.Background(), items(t, 1, 1))[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	h := rc.got[0]
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Errorf("%d signatures, want 2: %q", n, h.Get("webhook-signature"))
	}
	for _, sec := range []string{testSecret, old} {
		if err := verify(sec, h, rc.bodies[0], time.Now()); err != nil {
			t.Errorf("a receiver on %.12s...: %v", sec, err)
		}
	}
}

// TestStandardBodyUnder20KB: an alert with many evidence rows is sent
// under 20 KB, its rows cut with the count of those left out; a small one
// whole.
func TestStandardBodyUnder20KB(t *testing.T) {
	now := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	for _, rows := range []int{1, 40, 1000} {
		it := items(t, 1, rows)[0]
		body, err := StandardBody(it.Doc, now)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Type, Timestamp string
			Data            struct {
				SystemAlertId         string
				Results               []map[string]any
				PayloadResultsOmitted int
				ResultIds             any
			}
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		if len(body) > MaxStandardBody || env.Type != EventType || env.Timestamp != "2026-11-20T11:00:00Z" || env.Data.SystemAlertId != it.AlertId {
			t.Errorf("%d rows: %d bytes, type %q, timestamp %q", rows, len(body), env.Type, env.Timestamp)
		}
		if got := len(env.Data.Results) + env.Data.PayloadResultsOmitted; got != rows || len(env.Data.Results) == 0 {
			t.Errorf("%d rows: %d sent + %d counted as omitted", rows, len(env.Data.Results), env.Data.PayloadResultsOmitted)
		}
		if rows == 1 && env.Data.PayloadResultsOmitted != 0 {
			t.Errorf("a small alert was cut")
		}
		if env.Data.ResultIds != nil {
			t.Errorf("bookkeeping sent")
		}
	}
	if _, err := StandardBody([]byte(`{"SystemAlertId":"x",`), now); err == nil {
		t.Error("a document that does not parse made a body")
	}
}
