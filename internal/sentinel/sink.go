package sentinel

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"

	"github.com/tokenpivot/tokenpivot/internal/outbox"
)

// MonitoringMetricsPublisher is the built-in role the function's identity
// needs on the data collection rule to send through it.
const (
	MonitoringMetricsPublisher   = "Monitoring Metrics Publisher"
	MonitoringMetricsPublisherID = "3913510d-42f4-4e42-8a64-420c390055eb"
)

// callTimeout bounds one upload.
const callTimeout = 60 * time.Second

// Config configures the Logs Ingestion sink.
type Config struct {
	// Endpoint is the data collection endpoint (or the DCR's logs ingestion
	// endpoint), https.
	Endpoint string
	// RuleID is the data collection rule's immutable id (dcr-...).
	RuleID string
	// Stream is the DCR's input stream (DefaultStream when "").
	Stream string
	// Credential authenticates (NewCredential: DefaultAzureCredential, as
	// for storage).
	Credential azcore.TokenCredential
	// Transport sends the requests (nil: azcore's default). Tests inject
	// one that trusts their server's certificate; nothing else differs.
	Transport policy.Transporter
	Logger    *slog.Logger
	// MaxCall bounds each call's body (MaxCall when 0).
	MaxCall int
	// AlertsPerMinute paces the sink: at most this many distinct AlertIds
	// in any 60 s (DefaultAlertsPerMinute when 0; negative: unpaced).
	AlertsPerMinute int
	Now             func() time.Time
}

// NewCredential is the credential of the storage account's client:
// DefaultAzureCredential (on Flex Consumption the user-assigned identity
// that AZURE_CLIENT_ID names, through the managed identity endpoint),
// requests sent through transport (nil: the default).
func NewCredential(transport policy.Transporter) (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: transport},
	})
}

// Sink sends alert revisions as records to the Logs Ingestion API.
type Sink struct {
	cfg    Config
	client *azlogs.Client

	mu    sync.Mutex
	stats Stats
}

// Stats count what a Sink sent.
type Stats struct {
	Calls          int
	Records        int
	Bytes, Gzipped int64 // uncompressed and compressed bodies, summed
	MaxRecords     int   // per call
	MaxBytes       int   // per call, uncompressed
	MaxGzipped     int   // per call, compressed
}

// New checks cfg and returns the sink.
func New(cfg Config) (*Sink, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("logs ingestion endpoint %q: want an https:// URL", cfg.Endpoint)
	}
	if cfg.RuleID == "" {
		return nil, errors.New("logs ingestion: the data collection rule's immutable id is required")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Credential == nil {
		return nil, errors.New("logs ingestion: a credential is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxCall <= 0 || cfg.MaxCall > MaxCall {
		cfg.MaxCall = MaxCall
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client, err := azlogs.NewClient(cfg.Endpoint, cfg.Credential, &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: noRedirects(cfg.Transport),
		// The outbox retries, honouring Retry-After, without holding the
		// invocation: one try per call here.
		Retry: policy.RetryOptions{MaxRetries: -1},
	}})
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, client: client}, nil
}

// DefaultAlertsPerMinute keeps every run of the shipped NRT rule (every
// minute, at most 30 alerts: 29 and a summary of the rest) under its limit,
// so each AlertId makes an alert of its own in Sentinel.
const DefaultAlertsPerMinute = 29

// PerMinute is the sink's pace (outbox.Pacer).
func (s *Sink) PerMinute() int {
	switch n := s.cfg.AlertsPerMinute; {
	case n < 0:
		return 0
	case n == 0:
		return DefaultAlertsPerMinute
	default:
		return n
	}
}

// Name is the sink's name in the outbox.
func (s *Sink) Name() string { return "sentinel" }

// Target fingerprints the endpoint, rule and stream.
func (s *Sink) Target() string { return outbox.Fingerprint(s.cfg.Endpoint, s.cfg.RuleID, s.cfg.Stream) }

// Stats returns what the sink has sent so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Send uploads one record per item, gzipped, in calls of at most MaxCall
// bytes; each call's result is its items'. A call answered 413 is halved
// until it fits; one answered 400 is bisected down to the records the API
// refuses, which alone fail (Permanent, with the API's reason): the rest of
// the call is delivered.
func (s *Sink) Send(ctx context.Context, items []outbox.Item) []outbox.Result {
	results := make([]outbox.Result, len(items))
	now := s.cfg.Now()
	var recs [][]byte
	var idx []int // item of each record
	for i, it := range items {
		r, err := NewRecord(it.Doc, now)
		if err == nil {
			var data []byte
			if data, err = json.Marshal(r); err == nil {
				recs, idx = append(recs, data), append(idx, i)
				continue
			}
		}
		results[i] = outbox.Result{Err: fmt.Errorf("record of %s: %w", it.Key, err), Permanent: true}
	}
	bs, tooBig := batches(recs, s.cfg.MaxCall)
	for _, k := range tooBig {
		results[idx[k]] = outbox.Result{Err: fmt.Errorf("record of %s is %d bytes, over the %d-byte call limit", items[idx[k]].Key, len(recs[k]), s.cfg.MaxCall), Permanent: true}
	}
	for _, b := range bs {
		s.sendSplit(ctx, recs, b, func(k int, r outbox.Result) {
			if r.Permanent && r.Err != nil {
				r.Err = fmt.Errorf("record of %s refused: %w", items[idx[k]].Key, r.Err)
			}
			results[idx[k]] = r
		})
	}
	return results
}

// sendSplit uploads the records b; on 413 or 400 it sends each half apart
// (a 413: the call was too big for the API however we counted; a 400: a
// record in it is refused, and bisecting finds which), so that only a
// record refused alone fails.
func (s *Sink) sendSplit(ctx context.Context, recs [][]byte, b []int, set func(k int, r outbox.Result)) {
	res, code := s.upload(ctx, joinArray(recs, b), len(b))
	if (code == http.StatusRequestEntityTooLarge || code == http.StatusBadRequest) && len(b) > 1 && ctx.Err() == nil {
		s.cfg.Logger.Warn("logs ingestion refused a call: sending its halves apart", slog.Int("status", code), slog.Int("records", len(b)))
		h := len(b) / 2
		s.sendSplit(ctx, recs, b[:h], set)
		s.sendSplit(ctx, recs, b[h:], set)
		return
	}
	for _, k := range b {
		set(k, res)
	}
}

func (s *Sink) upload(ctx context.Context, body []byte, n int) (outbox.Result, int) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	if gz.Len() > s.cfg.MaxCall {
		return outbox.Result{Err: fmt.Errorf("gzipped call of %d bytes over the limit", gz.Len()), Permanent: true}, http.StatusRequestEntityTooLarge
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	start := time.Now()
	_, err := s.client.Upload(ctx, s.cfg.RuleID, s.cfg.Stream, gz.Bytes(), &azlogs.UploadOptions{ContentEncoding: new("gzip")})
	log := s.cfg.Logger.With(slog.Int("records", n), slog.Int("bytes", len(body)), slog.Int("gzipped_bytes", gz.Len()),
		slog.Duration("duration", time.Since(start)), slog.String("stream", s.cfg.Stream))
	if err != nil {
		res, code := s.classify(err)
		log.Warn("logs ingestion call failed", slog.String("error", res.Err.Error()))
		return res, code
	}
	s.mu.Lock()
	st := &s.stats
	st.Calls++
	st.Records += n
	st.Bytes += int64(len(body))
	st.Gzipped += int64(gz.Len())
	st.MaxRecords, st.MaxBytes, st.MaxGzipped = max(st.MaxRecords, n), max(st.MaxBytes, len(body)), max(st.MaxGzipped, gz.Len())
	s.mu.Unlock()
	log.Info("logs ingestion call")
	return outbox.Result{}, http.StatusNoContent
}

// classify turns an upload error into the outbox's terms, and its status
// (0 without an answer). Only 400 and 413 are Permanent, and Send splits a
// call so that they fail one record alone; an outage (5xx, 408, 429, no
// answer) and a configuration error (401, 403, 404, a redirect) are retried.
func (s *Sink) classify(err error) (outbox.Result, int) {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return outbox.Result{Err: fmt.Errorf("logs ingestion: %w", err)}, 0
	}
	res := outbox.Result{Err: fmt.Errorf("logs ingestion: HTTP %d %s", re.StatusCode, re.ErrorCode)}
	if re.RawResponse != nil {
		res.RetryAfter = RetryAfter(re.RawResponse.Header, s.cfg.Now())
	}
	switch code := re.StatusCode; {
	case code == http.StatusForbidden:
		res.Err = fmt.Errorf("logs ingestion refused (403 %s): the function's identity needs the %s role (%s) on the data collection rule %s (stream %s); retried later",
			re.ErrorCode, MonitoringMetricsPublisher, MonitoringMetricsPublisherID, s.cfg.RuleID, s.cfg.Stream)
		res.Config = true
	case code == http.StatusUnauthorized || code == http.StatusNotFound || (code >= 300 && code < 400):
		res.Err = fmt.Errorf("%w: configuration error (check the endpoint, rule id %s and stream %s); retried", res.Err, s.cfg.RuleID, s.cfg.Stream)
		res.Config = true
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
		res.Err = fmt.Errorf("%w: %s", res.Err, apiMessage(re))
		res.Permanent = true
	}
	return res, re.StatusCode
}

// apiMessage is the error message of a Logs Ingestion answer's body, cut.
func apiMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil || re.RawResponse.Body == nil {
		return ""
	}
	body, _ := io.ReadAll(io.LimitReader(re.RawResponse.Body, 4096))
	var e struct {
		Error struct{ Message string }
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		body = []byte(e.Error.Message)
	}
	if len(body) > 300 {
		body = append(body[:300], "..."...)
	}
	return strings.TrimSpace(string(body))
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date); 0 when
// absent or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// noRedirects is the transport with redirects not followed: a redirect
// would carry the records (and, to the same host, the token) where the
// configuration never said; its 3xx is reported as a configuration error.
func noRedirects(t policy.Transporter) policy.Transporter {
	stop := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	switch c := t.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		return &http.Client{Transport: tr, CheckRedirect: stop}
	case *http.Client:
		cc := *c
		cc.CheckRedirect = stop
		return &cc
	}
	return t
}
