// Package webhook sends alert revisions to a webhook: Standard Webhooks
// (the alert document, signed), a Microsoft Teams Workflows "when a Teams
// webhook request is received" flow (an Adaptive Card), or a Slack incoming
// webhook (text and blocks).
//
// The standard format follows Standard Webhooks: the body is
// {"type","timestamp","data"} with the alert document as data, under 20 KB
// (evidence rows cut, with a count); it is signed with every secret given
// (24 to 64 bytes each; two during a rotation: "v1,sig1 v1,sig2").
//
// The client only speaks https, except to loopback addresses (local
// receivers), follows no redirects, and bounds connect and total time. A 410
// Gone holds the URL (outbox.Result.Gone: probed, not sent to); every other
// non-2xx is retried by the outbox on its schedule, after Retry-After when
// the receiver gives one: a redirect or a 4xx other than 408 and 429 is
// reported as a configuration error (a redirect is never followed: it would
// carry the alert and its signature where the configuration never said).
// The URL and the secret are never logged or put in an error: Teams and
// Slack URLs carry their own credentials.
package webhook

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
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/outbox"
)

// Formats.
const (
	Standard = "standard"
	Teams    = "teams"
	Slack    = "slack"
)

// Timeouts of one delivery.
const (
	ConnectTimeout = 10 * time.Second
	TotalTimeout   = 30 * time.Second
)

// Config configures the webhook sink.
type Config struct {
	URL string
	// Secret is the Standard Webhooks signing secret, whsec_<base64> of 24
	// to 64 bytes; during a rotation, the new and the old separated by a
	// space (each request carries both signatures). Required by the standard
	// format, optional otherwise (when set, every format is signed).
	Secret string
	Format string // Standard ("" too), Teams or Slack
	// Transport replaces the HTTP transport (nil: one with ConnectTimeout).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Now       func() time.Time
}

// Sink delivers revisions to one webhook URL.
type Sink struct {
	cfg    Config
	keys   [][]byte
	client *http.Client
	host   string // for logs: the URL's host only
}

// Secret key sizes Standard Webhooks allows.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// ParseSecret decodes a whsec_<base64> secret to its key bytes: 24 to 64
// of them, as Standard Webhooks requires.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("webhook secret: want whsec_ followed by base64")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("webhook secret: the part after whsec_ is not base64")
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("webhook secret: the key is %d bytes; Standard Webhooks wants %d to %d (make one with: echo whsec_$(openssl rand -base64 32))",
			len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// ParseSecrets decodes one secret, or several separated by spaces (a
// rotation: the new one and the old one).
func ParseSecrets(s string) ([][]byte, error) {
	var keys [][]byte
	for _, f := range strings.Fields(s) {
		k, err := ParseSecret(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("webhook secret: want whsec_ followed by base64")
	}
	return keys, nil
}

// CheckURL accepts https URLs, and http ones to loopback addresses. Its
// errors never contain the URL.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("webhook URL: not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("webhook URL: http is allowed to loopback addresses only; use https")
	}
	return errors.New("webhook URL: want https")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New checks cfg and returns the sink.
func New(cfg Config) (*Sink, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	switch cfg.Format {
	case "":
		cfg.Format = Standard
	case Standard, Teams, Slack:
	default:
		return nil, fmt.Errorf("webhook format %q: want standard, teams or slack", cfg.Format)
	}
	s := &Sink{cfg: cfg}
	if cfg.Secret != "" || cfg.Format == Standard {
		keys, err := ParseSecrets(cfg.Secret)
		if err != nil {
			return nil, err
		}
		s.keys = keys
	}
	if s.cfg.Logger == nil {
		s.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	u, _ := url.Parse(cfg.URL)
	s.host = u.Host
	t := cfg.Transport
	if t == nil {
		t = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   ConnectTimeout,
			ResponseHeaderTimeout: TotalTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	s.client = &http.Client{
		Transport: t,
		Timeout:   TotalTimeout,
		// A redirect is not followed: it would send the alert (and its
		// signature) where the configuration never said.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// Name is the sink's name in the outbox.
func (s *Sink) Name() string { return "webhook" }

// Target fingerprints the URL and format (never the URL itself).
func (s *Sink) Target() string { return outbox.Fingerprint(s.cfg.URL, s.cfg.Format) }

// Sign returns the webhook-signature header value for a message:
// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>", one per key,
// separated by spaces.
func Sign(key []byte, id string, timestamp int64, body []byte, more ...[]byte) string {
	var sigs []string
	for _, k := range append([][]byte{key}, more...) {
		mac := hmac.New(sha256.New, k)
		fmt.Fprintf(mac, "%s.%d.", id, timestamp)
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Body is the request body of a revision in the sink's format.
func (s *Sink) Body(doc []byte) ([]byte, error) {
	switch s.cfg.Format {
	case Teams:
		return TeamsBody(doc)
	case Slack:
		return SlackBody(doc)
	}
	return StandardBody(doc, s.cfg.Now())
}

// MaxStandardBody bounds a standard payload (Standard Webhooks recommends
// under 20 KB).
const MaxStandardBody = 20 * 1000

// EventType is the standard payload's type.
const EventType = "tokenpivot.alert"

// StandardBody is the Standard Webhooks payload of an alert document:
// {"type":"tokenpivot.alert","timestamp":...,"data":<the alert document>}.
// Over MaxStandardBody, the document's evidence rows are cut (first rows
// kept, in query order) and data.PayloadResultsOmitted counts those left
// out; ResultIds and ResultKeys (bookkeeping) are left out.
func StandardBody(doc []byte, now time.Time) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return nil, fmt.Errorf("the alert document does not parse: %w", err)
	}
	if _, ok := fields["SystemAlertId"]; !ok {
		return nil, errors.New("not an alert document")
	}
	var rows []json.RawMessage
	if r, ok := fields["Results"]; ok {
		if err := json.Unmarshal(r, &rows); err != nil {
			return nil, fmt.Errorf("the alert document's Results: %w", err)
		}
	}
	delete(fields, "ResultIds")
	delete(fields, "ResultKeys")
	env := struct {
		Type      string                     `json:"type"`
		Timestamp string                     `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}{EventType, now.UTC().Format(time.RFC3339), fields}
	keep := len(rows)
	for {
		if keep < len(rows) {
			fields["PayloadResultsOmitted"] = json.RawMessage(strconv.Itoa(len(rows) - keep))
		}
		kept, err := json.Marshal(rows[:keep])
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 || fields["Results"] != nil {
			fields["Results"] = kept
		}
		body, err := json.Marshal(env)
		if err != nil {
			return nil, err
		}
		if len(body) <= MaxStandardBody || keep == 0 {
			if len(body) > MaxStandardBody {
				return nil, fmt.Errorf("the alert's payload is %d bytes without evidence rows, over %d", len(body), MaxStandardBody)
			}
			return body, nil
		}
		// Cut in proportion to the excess, at least one row.
		keep = min(keep-1, keep*MaxStandardBody/len(body))
		keep = max(keep, 0)
	}
}

// Send posts each item; one Result per item.
func (s *Sink) Send(ctx context.Context, items []outbox.Item) []outbox.Result {
	out := make([]outbox.Result, len(items))
	for i, it := range items {
		if ctx.Err() != nil {
			out[i] = outbox.Result{Err: ctx.Err()}
			continue
		}
		out[i] = s.send(ctx, it)
		if out[i].Gone {
			for j := i + 1; j < len(items); j++ {
				out[j] = out[i]
			}
			break
		}
	}
	return out
}

func (s *Sink) send(ctx context.Context, it outbox.Item) outbox.Result {
	body, err := s.Body(it.Doc)
	if err != nil {
		return outbox.Result{Err: fmt.Errorf("webhook body of %s: %w", it.Key, err), Permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return outbox.Result{Err: errors.New("webhook: the URL does not make a request"), Permanent: true}
	}
	ts := s.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenpivot")
	req.Header.Set("webhook-id", it.Key)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if len(s.keys) > 0 {
		req.Header.Set("webhook-signature", Sign(s.keys[0], it.Key, ts, body, s.keys[1:]...))
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	log := s.cfg.Logger.With(slog.String("host", s.host), slog.String("format", s.cfg.Format), slog.String("webhook_id", it.Key),
		slog.Int("bytes", len(body)), slog.Duration("duration", time.Since(start)))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the URL
		}
		log.Warn("webhook call failed", slog.String("error", err.Error()))
		return outbox.Result{Err: fmt.Errorf("webhook %s: %w", s.host, err)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	res := classify(resp, s.cfg.Now())
	if res.Err != nil {
		res.Err = fmt.Errorf("webhook %s: %w", s.host, res.Err)
		log.Warn("webhook refused", slog.Int("status", resp.StatusCode), slog.String("error", res.Err.Error()))
	} else {
		log.Info("webhook delivered", slog.Int("status", resp.StatusCode))
	}
	return res
}

func classify(resp *http.Response, now time.Time) outbox.Result {
	code := resp.StatusCode
	err := fmt.Errorf("HTTP %d", code)
	switch {
	case code >= 200 && code < 300:
		return outbox.Result{}
	case code == http.StatusGone:
		return outbox.Result{Err: fmt.Errorf("%w Gone: the receiver was removed", err), Gone: true}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return outbox.Result{Err: err, RetryAfter: retryAfter(resp.Header, now)}
	case code >= 300 && code < 400:
		where := "elsewhere"
		if u, perr := resp.Location(); perr == nil {
			where = "to host " + u.Host // never the path or query: they may carry credentials
		}
		return outbox.Result{Err: fmt.Errorf("%w: a redirect %s, not followed (configuration error: set the webhook URL to the final address)", err, where),
			Config: true, RetryAfter: retryAfter(resp.Header, now)}
	default:
		// Standard Webhooks: every non-2xx but 410 is retried. A 4xx
		// is most often the receiver's configuration (a URL, a secret).
		return outbox.Result{Err: fmt.Errorf("%w: refused (configuration error? check the URL and secret; retried)", err), Config: true,
			RetryAfter: retryAfter(resp.Header, now)}
	}
}

func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
