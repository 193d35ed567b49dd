// Package webhook sends alert revisions to a webhook: Standard Webhooks
// (the alert document, signed), a Microsoft Teams Workflows "when a Teams
// webhook request is received" flow (an Adaptive Card), or a Slack incoming
// webhook (text and blocks).
//
// The client only speaks https, except to loopback addresses (local
// receivers), follows no redirects, and bounds connect and total time. A 410
// Gone stops delivery to the URL (outbox.Result.Gone); other 4xx, except 408
// and 429, fail the revision without retries; 408, 429 and 5xx are retried
// by the outbox, after Retry-After when the receiver gives one. The URL
// and the secret are never logged or put in an error: Teams and Slack URLs
// carry their own credentials.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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
	// Secret is the Standard Webhooks signing secret, whsec_<base64>;
	// required by the standard format, optional otherwise (when set, every
	// format is signed).
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
	key    []byte
	client *http.Client
	host   string // for logs: the URL's host only
}

// ParseSecret decodes a whsec_<base64> secret to its key bytes.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("webhook secret: want whsec_ followed by base64")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errors.New("webhook secret: the part after whsec_ must be base64 of at least 16 bytes")
	}
	return key, nil
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
		key, err := ParseSecret(cfg.Secret)
		if err != nil {
			return nil, err
		}
		s.key = key
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
// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Body is the request body of a revision in the sink's format.
func (s *Sink) Body(doc []byte) ([]byte, error) {
	switch s.cfg.Format {
	case Teams:
		return TeamsBody(doc)
	case Slack:
		return SlackBody(doc)
	}
	return outbox.Compact(doc), nil
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
	if s.key != nil {
		req.Header.Set("webhook-signature", Sign(s.key, it.Key, ts, body))
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
		return outbox.Result{Err: fmt.Errorf("%w: a redirect, not followed", err), Permanent: true}
	default:
		return outbox.Result{Err: err, Permanent: true}
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
