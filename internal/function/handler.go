package function

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Function names: the folders under functions/.
const (
	OnExportCreated = "OnExportCreated"
	ProcessExport   = "ProcessExport"
	Sweep           = "Sweep"
)

// Binding names in functions/*/function.json.
const (
	bindingEvent = "event" // OnExportCreated's eventGridTrigger
	bindingWork  = "work"  // the queue: OnExportCreated's and Sweep's output, ProcessExport's trigger
)

// BlobCreated is the only Event Grid event type that names work.
const BlobCreated = "Microsoft.Storage.BlobCreated"

// MaxBody bounds a request body. Event Grid events and queue messages are
// small (at most 1 MB); a blob-trigger invocation also carries the blob's
// content, which is read past and dropped (see maxValue). A larger blob-trigger
// payload is refused with a 200 and left to the Sweep, which finds every
// export blob without a done entry.
const MaxBody = 64 << 20

// DefaultMaxSweep caps the queue messages one Sweep run emits.
const DefaultMaxSweep = 1000

// Processor is what the handler drives: a *pipeline.Pipeline.
type Processor interface {
	// Process runs one export blob; an error means a retry can help.
	Process(ctx context.Context, w pipeline.Work) (pipeline.Outcome, error)
	// Pending lists the export blobs the Sweep should (re)process.
	Pending(ctx context.Context) ([]pipeline.Work, error)
	// Table tells which table an export container holds.
	Table(container string) (signin.Table, bool)
}

// Config wires a Handler.
type Config struct {
	Pipeline Processor
	// ServiceURL is the export account's blob service URL (store.Azure's
	// ServiceURL): events naming any other account are refused. "" refuses
	// every event (exports in a local directory).
	ServiceURL string
	// Logger receives JSON log lines (stderr in serve); each request's lines
	// are also returned to the host in the response's Logs.
	Logger *slog.Logger
	// MaxSweep caps the messages one Sweep emits (DefaultMaxSweep if 0).
	MaxSweep int
	// Exports is the pipeline's export store: ProcessExport Stats a blob
	// through it to weigh the blob against the memory budget before
	// processing it. nil leaves ProcessExport unbounded.
	Exports store.Store
	// MemoryBudget is the memory, in bytes, the blobs in flight may use
	// together, each counted as MemoryPerBlobByte times its size: an
	// invocation whose blob does not fit waits. 0 means InstanceMemory();
	// negative, unbounded.
	MemoryBudget int64
	// ExportJobs builds the ScheduleExports scheduler; nil: export
	// scheduling is off.
	ExportJobs ExportScheduler
	// Delivery, when set, delivers alert revisions to the sinks (an
	// *outbox.Outbox): the revisions a ProcessExport wrote, right after it
	// (within DeliveryTimeout), and everything pending at each Sweep
	// (within SweepDeliveryTimeout). A delivery failure never fails the
	// invocation: the outbox keeps the revision pending.
	Delivery                              Delivery
	DeliveryTimeout, SweepDeliveryTimeout time.Duration
}

// Delivery sends alert revisions recorded in the outbox.
type Delivery interface {
	DeliverRefs(ctx context.Context, refs []outbox.Ref) (outbox.Report, error)
	Deliver(ctx context.Context) (outbox.Report, error)
}

// Default delivery bounds: after one blob, and in a Sweep.
const (
	DefaultDeliveryTimeout      = 20 * time.Second
	DefaultSweepDeliveryTimeout = 2 * time.Minute
)

// Handler is the custom handler's http.Handler.
type Handler struct {
	cfg    Config
	loc    *locator
	budget *budget // nil: unbounded

	// waiting and running count ProcessExport invocations waiting for and
	// holding a share of the budget (for tests and logs).
	waiting, running atomic.Int64
}

// New returns the Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Pipeline == nil {
		return nil, errors.New("function: a Pipeline is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxSweep <= 0 {
		cfg.MaxSweep = DefaultMaxSweep
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.SweepDeliveryTimeout <= 0 {
		cfg.SweepDeliveryTimeout = DefaultSweepDeliveryTimeout
	}
	loc, err := newLocator(cfg.ServiceURL, func(c string) bool {
		_, ok := cfg.Pipeline.Table(c)
		return ok
	})
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, loc: loc}
	switch {
	case cfg.Exports == nil:
		// Blobs cannot be weighed: unbounded.
	case cfg.MemoryBudget == 0:
		h.budget = newBudget(InstanceMemory())
	case cfg.MemoryBudget > 0:
		h.budget = newBudget(cfg.MemoryBudget, "Config.MemoryBudget")
	}
	return h, nil
}

// invocation is one request being served: its logger writes to the
// Handler's logger and into logs, returned to the host.
type invocation struct {
	log  *slog.Logger
	only *slog.Logger // into logs only (lines the pipeline already wrote to stderr)
	logs bytes.Buffer
	resp response
}

func (inv *invocation) lines() []string {
	var out []string
	for line := range strings.Lines(inv.logs.String()) {
		out = append(out, strings.TrimSuffix(line, "\n"))
	}
	return out
}

// ServeHTTP serves GET / (the host's readiness probe) and POST /<Function>.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET /"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "functions are invoked with POST /<FunctionName>"})
		return
	}
	inv := &invocation{resp: response{Outputs: map[string]any{}}}
	attrs := []any{slog.String("function", name)}
	if id := r.Header.Get("X-Azure-Functions-InvocationId"); id != "" {
		attrs = append(attrs, slog.String("invocation_id", id))
	}
	local := slog.NewJSONHandler(&inv.logs, nil)
	inv.log = slog.New(slog.NewMultiHandler(h.cfg.Logger.Handler(), local)).With(attrs...)
	inv.only = slog.New(local).With(attrs...)

	status := h.invoke(r, name, inv)
	if status == http.StatusNotFound {
		writeJSON(w, status, map[string]string{"error": fmt.Sprintf("no function %q", name)})
		return
	}
	inv.resp.Logs = inv.lines()
	writeJSON(w, status, inv.resp)
}

// writeJSON answers v as JSON with every secret redacted: the host writes
// the answer's Logs and ReturnValue to its own logs, and an error from the
// storage SDK quotes the request URL, SAS signature included. Redacting the
// encoded answer covers every path into it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"response not encodable"}`)
	}
	data = []byte(settings.Redact(string(data)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// invoke runs function name and returns the HTTP status.
func (h *Handler) invoke(r *http.Request, name string, inv *invocation) int {
	body := http.MaxBytesReader(nil, r.Body, MaxBody)
	// OnExportCreated's events are handled as they are read (see
	// readRequest); Queue output bindings take an array of messages, so the
	// valid events of a batch are queued even when another element is bad.
	var events *eventStream
	if strings.EqualFold(name, OnExportCreated) {
		events = &eventStream{h: h, inv: inv}
	}
	var src io.Reader = body
	if events == nil {
		// A blob trigger's content is read past, not held (see
		// stringCutter); a batch of events may be a long JSON string.
		src = &stringCutter{r: body, limit: maxValue}
	}
	req, err := readRequest(src, events)
	if err != nil {
		// The events read before the body stopped are queued, however it
		// stopped. A read timeout also cancels the request's context (the
		// server does so on any read error of the connection), so it is
		// told apart first: the answer is 408, not the 503 of an aborted
		// invocation.
		if events != nil && events.elements > 0 {
			return events.finish(err)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			inv.log.Error("invocation refused: the request body did not arrive within the server's read timeout", slog.String("error", err.Error()))
			inv.resp.ReturnValue = map[string]string{"refused": "request body too slow"}
			return http.StatusRequestTimeout
		}
		if ctxErr := r.Context().Err(); ctxErr != nil {
			inv.log.Error("invocation aborted", slog.String("error", ctxErr.Error()))
			return http.StatusServiceUnavailable
		}
		if errors.As(err, new(*http.MaxBytesError)) {
			inv.log.Error("invocation refused: payload too large, the Sweep will process the blob", slog.Int("limit_bytes", MaxBody))
			inv.resp.ReturnValue = map[string]string{"refused": "payload too large"}
			return http.StatusOK
		}
		inv.log.Error("invocation refused: payload is not the host's JSON envelope", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"refused": "payload is not JSON"}
		return http.StatusOK
	}
	io.Copy(io.Discard, body)

	switch {
	case events != nil && events.seen:
		return events.finish(nil)
	case strings.EqualFold(name, ProcessExport) && req.data(bindingWork) != nil:
		return h.onWork(r.Context(), inv, req.data(bindingWork))
	case strings.EqualFold(name, Sweep):
		return h.onSweep(r.Context(), inv)
	case strings.EqualFold(name, ScheduleExports):
		return h.onScheduleExports(r.Context(), inv)
	}
	// A blob trigger (on Flex Consumption, "source": "EventGrid") on any
	// function: the blob is named by the Uri or BlobTrigger metadata.
	if uri, path := str(req.metadata("Uri")), str(req.metadata("BlobTrigger")); uri != "" || path != "" {
		return h.onBlobTrigger(r.Context(), inv, uri, path)
	}
	want := ""
	switch {
	case strings.EqualFold(name, OnExportCreated):
		want = bindingEvent
	case strings.EqualFold(name, ProcessExport):
		want = bindingWork
	default:
		return http.StatusNotFound
	}
	inv.log.Error("invocation refused: no trigger data", slog.String("want_binding", want))
	inv.resp.ReturnValue = map[string]string{"refused": "no trigger data in Data." + want}
	return http.StatusOK
}

// eventJSON is an Event Grid event in either schema: Event Grid
// (eventType, topic, eventTime, dataVersion) or CloudEvents 1.0 (type,
// source, time, specversion).
type eventJSON struct {
	ID          string          `json:"id"`
	EventType   string          `json:"eventType"`
	Type        string          `json:"type"`
	SpecVersion string          `json:"specversion"`
	Subject     string          `json:"subject"`
	Data        json.RawMessage `json:"data"`
}

// blobCreatedData is the data of Microsoft.Storage.BlobCreated.
type blobCreatedData struct {
	API           string `json:"api"`
	URL           string `json:"url"`
	ETag          string `json:"eTag"`
	ContentLength int64  `json:"contentLength"`
	BlobType      string `json:"blobType"`
}

// event turns one BlobCreated event into a queue message for ProcessExport;
// other event types are ignored (neither queued nor refused).
func (h *Handler) event(inv *invocation, e eventJSON) (msg string, queued, refused bool) {
	typ := cmp.Or(e.EventType, e.Type)
	if typ != BlobCreated {
		inv.log.Info("event ignored: not "+BlobCreated, slog.String("event_id", e.ID), slog.String("event_type", typ), slog.String("subject", e.Subject))
		return "", false, false
	}
	var d blobCreatedData
	if err := json.Unmarshal(unwrap(e.Data), &d); err != nil || d.URL == "" {
		inv.log.Error("event refused: data has no blob url", slog.String("event_id", e.ID), slog.String("subject", e.Subject))
		return "", false, true
	}
	w, err := h.loc.fromURL(d.URL)
	if err != nil {
		inv.log.Warn("event refused", slog.String("event_id", e.ID), slog.String("error", err.Error()))
		return "", false, true
	}
	data, err := json.Marshal(w)
	if err != nil {
		inv.log.Error("event refused: queue message", slog.String("event_id", e.ID), slog.String("error", err.Error()))
		return "", false, true
	}
	inv.log.Info("blob queued", slog.String("event_id", e.ID), slog.String("blob", w.String()),
		slog.Int64("content_length", d.ContentLength), slog.String("blob_type", d.BlobType))
	return string(data), true, false
}

// onWork processes the blob a queue message names.
func (h *Handler) onWork(ctx context.Context, inv *invocation, v *value) int {
	var w pipeline.Work
	raw := unwrap(v.raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		inv.log.Error("queue message refused: not a {\"container\",\"name\"} object", slog.String("error", err.Error()), slog.Int("size", v.size))
		inv.resp.ReturnValue = map[string]string{"refused": "queue message is not work"}
		return http.StatusOK
	}
	w, err := h.loc.check(w, w.String())
	if err != nil {
		inv.log.Error("queue message refused", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"refused": err.Error()}
		return http.StatusOK
	}
	return h.process(ctx, inv, w)
}

// onBlobTrigger processes the blob a blob trigger names, inline.
func (h *Handler) onBlobTrigger(ctx context.Context, inv *invocation, uri, path string) int {
	var w pipeline.Work
	var err error
	if uri != "" {
		w, err = h.loc.fromURL(uri)
	} else {
		w, err = h.loc.fromPath(path)
	}
	if err != nil {
		inv.log.Warn("blob trigger refused", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"refused": err.Error()}
		return http.StatusOK
	}
	return h.process(ctx, inv, w)
}

// summary is ProcessExport's ReturnValue.
type summary struct {
	Blob       string `json:"blob"`
	Table      string `json:"table"`
	Status     string `json:"status"`
	RowsRead   int64  `json:"rows_read"`
	Candidates int64  `json:"candidates"`
	Results    int    `json:"results"`
	Alerts     int    `json:"alerts_written"`
	Rejected   string `json:"rejected,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// Delivered counts the revisions delivered to sinks after processing
	// (one per revision and sink).
	Delivered int `json:"delivered,omitempty"`
}

func (h *Handler) process(ctx context.Context, inv *invocation, w pipeline.Work) int {
	release, status, ok := h.admit(ctx, inv, w)
	if !ok {
		return status
	}
	defer release()
	o, err := h.cfg.Pipeline.Process(ctx, w)
	s := summary{Blob: w.String(), Table: o.Table, Status: string(o.Status), RowsRead: o.RowsRead, Candidates: o.Candidates,
		Results: o.Results, Alerts: o.Alerts, DurationMS: o.Duration.Milliseconds()}
	if o.Reason != nil {
		s.Rejected = o.Reason.Error()
	}
	if err != nil {
		s.Error = err.Error()
	}
	// The pipeline has logged the blob to stderr already: this line is for
	// the host's invocation log.
	o.Log(inv.only, err)
	if err != nil {
		inv.resp.ReturnValue = s
		return http.StatusInternalServerError
	}
	if h.cfg.Delivery != nil && len(o.Stored) > 0 {
		refs := make([]outbox.Ref, len(o.Stored))
		for i, a := range o.Stored {
			refs[i] = outbox.Ref{AlertId: a.SystemAlertId, Revision: a.Revision}
		}
		s.Delivered = h.deliver(ctx, inv, h.cfg.DeliveryTimeout, refs)
	}
	inv.resp.ReturnValue = s
	return http.StatusOK
}

// deliver runs the outbox within timeout (the named revisions, or all
// when refs is nil) and logs what it did; it returns the deliveries made.
func (h *Handler) deliver(ctx context.Context, inv *invocation, timeout time.Duration, refs []outbox.Ref) int {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep outbox.Report
	if refs != nil {
		rep, _ = h.cfg.Delivery.DeliverRefs(dctx, refs)
	} else {
		rep, _ = h.cfg.Delivery.Deliver(dctx)
	}
	rep.Log(inv.log)
	return rep.Delivered()
}

// onSweep enqueues every pending export blob, at most MaxSweep per run.
func (h *Handler) onSweep(ctx context.Context, inv *invocation) int {
	start := time.Now()
	pending, err := h.cfg.Pipeline.Pending(ctx)
	delivered := -1
	if h.cfg.Delivery != nil {
		// What is pending in the outbox: revisions whose delivery failed or
		// was cut short, and those a crash left undelivered.
		delivered = h.deliver(ctx, inv, h.cfg.SweepDeliveryTimeout, nil)
	}
	if err != nil {
		inv.log.Error("sweep failed", slog.String("error", err.Error()))
		inv.resp.ReturnValue = map[string]string{"error": err.Error()}
		return http.StatusInternalServerError
	}
	if len(pending) > h.cfg.MaxSweep {
		// A random subset, so that blobs still queued from the last run
		// cannot starve the rest.
		rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		inv.log.Warn("sweep capped: the rest waits for the next run", slog.Int("pending", len(pending)), slog.Int("max", h.cfg.MaxSweep))
		pending = pending[:h.cfg.MaxSweep]
	}
	msgs := make([]string, 0, len(pending))
	for _, w := range pending {
		msg, err := json.Marshal(w)
		if err != nil {
			inv.log.Error("sweep: queue message", slog.String("error", err.Error()))
			return http.StatusInternalServerError
		}
		msgs = append(msgs, string(msg))
	}
	if len(msgs) > 0 {
		inv.resp.Outputs[bindingWork] = msgs
	}
	inv.log.Info("sweep done", slog.Int("queued", len(msgs)), slog.Duration("duration", time.Since(start)))
	inv.resp.ReturnValue = map[string]int{"queued": len(msgs)}
	if delivered >= 0 {
		inv.resp.ReturnValue = map[string]int{"queued": len(msgs), "delivered": delivered}
	}
	return http.StatusOK
}
