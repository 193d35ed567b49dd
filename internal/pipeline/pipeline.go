// Package pipeline processes one export blob against the join state in blob
// storage: candidates are published first, then the other table's published
// candidates are read and joined, alerts written, and the blob marked done
// last. Any order of arrival, duplicate or concurrent deliveries, and a crash
// at any step followed by a redelivery give the same alerts (DESIGN.md 4).
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Config wires a Pipeline.
type Config struct {
	// Exports holds the export containers; State holds the state container
	// (and, through Alerts, alerts and incidents). They may be one store.
	Exports store.Store
	State   store.Store

	InteractiveContainer    string
	NonInteractiveContainer string
	StateContainer          string

	Filter detect.Filter
	// Precision is the precision mode applied to the result rows (nil:
	// exact, the rule as written; precision.go).
	Precision *precision.Filter
	// Alerts consumes the result rows (an *alert.Writer).
	Alerts AlertSink

	// AllowedLateness bounds the state that is read (extracts) and the export
	// blobs the Sweep considers, by their Last-Modified time.
	AllowedLateness time.Duration
	// MaxExpansion bounds a gzip export's decompressed size
	// (signin.Options.MaxExpansion; 0: signin's default).
	MaxExpansion int

	Logger *slog.Logger
	// Now is the clock for lateness (time.Now when nil).
	Now func() time.Time
}

// DefaultAllowedLateness is how long export blobs and state count, by their
// Last-Modified time, when Config.AllowedLateness is 0.
const DefaultAllowedLateness = 168 * time.Hour

// AlertSink is what the pipeline hands result rows to: it files them as
// alerts, idempotently by alert id, and says how it stored each.
type AlertSink interface {
	WriteResults(ctx context.Context, rows []detect.Result) (stored []alert.Stored, written int, err error)
	// EnsureContainers creates what the sink stores into.
	EnsureContainers(ctx context.Context) error
}

// HeapPerWorker is the soft limit of the Go heap that `tokenpivot process`
// gives each blob in flight (--heap-per-worker), unless GOMEMLIMIT or the
// cgroup allows less. A streamed non-interactive blob's live heap peaks
// at about 190 MB whatever its size (the row groups in flight, the
// interactive index of its window, its result rows, one chunk of alert
// documents: docs/performance.md, "Blob-size sweep"); left to GOGC=100 the
// collector lets the heap grow to twice that, 380-430 MiB of RSS for a
// 4M-row blob. Held to this limit the collector runs more often near it
// instead (a few percent more CPU where the live heap comes close).
const HeapPerWorker = 224 << 20

// Pipeline processes export blobs. It is safe for concurrent use, across
// goroutines and processes sharing the same storage.
type Pipeline struct {
	cfg     Config
	indexes indexCache
}

// New checks cfg and returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	switch {
	case cfg.Exports == nil || cfg.State == nil:
		return nil, errors.New("pipeline: Exports and State stores are required")
	case cfg.Alerts == nil:
		return nil, errors.New("pipeline: an alert Writer is required")
	case cfg.InteractiveContainer == "" || cfg.NonInteractiveContainer == "" || cfg.StateContainer == "":
		return nil, errors.New("pipeline: container names are required")
	case cfg.InteractiveContainer == cfg.NonInteractiveContainer:
		return nil, errors.New("pipeline: the two export containers must differ")
	}
	if plan := cfg.Filter.Plan; plan != nil {
		if s := plan.Summary; s != nil {
			// A group's rows, and so the row an alert would carry, change as
			// later blobs arrive: no event-time semantics yet (issue 22).
			return nil, fmt.Errorf("pipeline: the rule's summarize (%s) runs over the join's rows: `detect` and `test` run it over a run's whole result; process and serve refuse it, since its groups change as later blobs arrive and an alert sent cannot be taken back", s.Where())
		}
		// Row predicates run as an export is read; pair predicates and
		// added columns run on extracts, which carry the engine's own
		// columns only.
		if cols := append(plan.PairColumns(kql.SideI), plan.PairColumns(kql.SideN)...); len(cols) > 0 {
			return nil, fmt.Errorf("pipeline: the rule's pair predicates or added columns read %s, which the pipeline's extracts do not carry: `detect` and `test` run it; process and serve run such a column only in a where before the join", strings.Join(cols, ", "))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AllowedLateness <= 0 {
		cfg.AllowedLateness = DefaultAllowedLateness
	}
	return &Pipeline{cfg: cfg}, nil
}

// Work names one export blob to process: the queue message between
// OnExportCreated/Sweep and ProcessExport.
type Work struct {
	Container string `json:"container"`
	Name      string `json:"name"`
}

func (w Work) String() string { return w.Container + "/" + w.Name }

// Table returns the table an export container holds.
func (p *Pipeline) Table(container string) (signin.Table, bool) {
	switch container {
	case p.cfg.InteractiveContainer:
		return signin.Interactive, true
	case p.cfg.NonInteractiveContainer:
		return signin.NonInteractive, true
	}
	return 0, false
}

// Outcome tells what processing one blob did.
type Outcome struct {
	Work       Work
	Table      string
	Status     Status
	Offset     int64 // where reading started (non-zero for a grown append blob)
	Consumed   int64 // bytes read up to the last complete record
	RowsRead   int64
	Candidates int64
	Extracts   int
	Results    int
	Alerts     int // alert blobs created or changed
	// AlertIds are the alerts this blob's result rows belong to, written now
	// or already stored; Stored says how each was left in storage.
	AlertIds []string
	Stored   []alert.Stored
	// SkippedRows counts rows left out because a filter column could not be
	// read; FirstSkipped names the first. The rest of the blob counts.
	SkippedRows  int64
	FirstSkipped string
	// TimeFallbacks counts archive records whose time could not be read
	// and whose properties.createdDateTime was used (signin.Stats); the row
	// is kept. FirstTimeFallback names the first.
	TimeFallbacks     int64
	FirstTimeFallback string
	// SetAside lists state objects (by URL) that could not be read and were
	// moved to the quarantine; Redo the export blobs whose extract that was,
	// now pending again.
	SetAside []string
	Redo     []Work
	// FromExtract names the export blobs (URL: why) whose rows paired but
	// which were deleted or rewritten after their compact extract was
	// published: those pairs were written from the extract, with the
	// non-interactive AppDisplayName, CorrelationId and
	// UniqueTokenIdentifier blank (join.go, probeStored).
	FromExtract []string
	// Reason says why a blob was Rejected (a *signin.FormatError): it is
	// recorded in the ledger and not retried until the blob changes.
	Reason   error
	Duration time.Duration
	// Precision counts the precision mode's decisions on this blob's pairs
	// (kept, suppressed by reason, untestable); nil in exact mode.
	Precision *precision.Stats
	prec      *precisionJoin
}

// Process runs the pipeline for one export blob. It returns an error only
// when a retry can help (storage failures, cancellation); unreadable content
// is recorded and reported as Status Rejected with a nil error.
func (p *Pipeline) Process(ctx context.Context, w Work) (Outcome, error) {
	start := time.Now()
	out, err := p.process(ctx, w)
	if p.recreate(ctx, err) {
		out, err = p.process(ctx, w)
	}
	out.Work, out.Duration = w, time.Since(start)
	p.log(out, err)
	return out, err
}

func (p *Pipeline) log(o Outcome, err error) { o.Log(p.cfg.Logger, err) }

// Status is what processing one blob came to.
type Status string

const (
	Processed Status = "processed" // read (all of it, or its new part) and joined
	Done      Status = "done"      // nothing new since the ledger's done entry
	Rejected  Status = "rejected"  // unreadable now (Outcome.Reason); recorded
	// StillRejected: rejected before and unchanged since.
	StillRejected Status = "still rejected"
	Gone          Status = "gone"  // deleted since the event
	Empty         Status = "empty" // zero bytes (created, not yet written)
	NotExport     Status = "not an export"
)

// Log writes the outcome as one line to l: the pipeline's log and the
// function's invocation log say the same.
func (o Outcome) Log(l *slog.Logger, err error) {
	attrs := []any{
		slog.String("blob", o.Work.String()), slog.String("table", o.Table), slog.String("status", string(o.Status)),
		slog.Int64("rows_read", o.RowsRead), slog.Int64("candidates", o.Candidates),
		slog.Int("results", o.Results), slog.Int("alerts_written", o.Alerts),
		slog.Int64("offset", o.Offset), slog.Int64("consumed", o.Consumed),
		slog.Duration("duration", o.Duration),
	}
	if o.SkippedRows > 0 {
		attrs = append(attrs, slog.Int64("skipped_rows", o.SkippedRows), slog.String("first_skipped", o.FirstSkipped))
	}
	if o.TimeFallbacks > 0 {
		attrs = append(attrs, slog.Int64("time_fallbacks", o.TimeFallbacks), slog.String("first_time_fallback", o.FirstTimeFallback))
	}
	if len(o.SetAside) > 0 {
		attrs = append(attrs, slog.Any("set_aside", o.SetAside))
	}
	if len(o.FromExtract) > 0 {
		attrs = append(attrs, slog.Any("pairs_from_extract", o.FromExtract))
	}
	if o.Precision != nil {
		attrs = append(attrs, slog.String("precision", o.Precision.String()))
	}
	switch {
	case err != nil:
		l.Error("blob failed, will retry", append(attrs, slog.String("error", err.Error()))...)
	case o.Status == Rejected:
		l.Error("blob rejected", append(attrs, slog.String("error", o.Reason.Error()))...)
	case o.SkippedRows > 0:
		l.Warn("blob processed, some rows unreadable", attrs...)
	case len(o.FromExtract) > 0:
		l.Warn("blob processed, some pairs written from extracts of export blobs gone or changed", attrs...)
	case o.Status != Processed:
		l.Info("blob skipped", attrs...)
	default:
		l.Info("blob processed", attrs...)
	}
}

func (p *Pipeline) process(ctx context.Context, w Work) (Outcome, error) {
	var out Outcome
	t, ok := p.Table(w.Container)
	if !ok {
		return out, fmt.Errorf("pipeline: %s is not an export container", w.Container)
	}
	out.Table = t.String()
	if err := store.CheckName(w.Name); err != nil {
		out.Status, out.Reason = Rejected, err
		return out, nil
	}
	if !signin.IsExportName(w.Name) {
		out.Status = NotExport
		return out, nil
	}
	props, err := p.cfg.Exports.Stat(ctx, w.Container, w.Name)
	if errors.Is(err, store.ErrNotExist) {
		out.Status = Gone
		return out, nil
	}
	if err != nil {
		return out, err
	}
	led, ledETag, aside, err := p.readLedger(ctx, w)
	if err != nil {
		return out, err
	}
	if aside != "" {
		out.SetAside = append(out.SetAside, aside)
	}
	pl, err := p.planFor(ctx, led, props)
	if err != nil {
		return out, err
	}
	if pl.skip != "" {
		out.Status = pl.skip
		if pl.refresh {
			// Same content, new ETag: record it, or every Sweep would
			// find the blob pending again.
			led.ETag, led.Size = props.ETag, props.Size
			return out, p.writeLedger(ctx, w, ledETag, led)
		}
		return out, nil
	}
	kept := led.Extracts
	if pl.stale != nil {
		// The blob was rewritten: its old candidates are not in it any more.
		if err := p.deleteExtracts(ctx, pl.stale); err != nil {
			return out, err
		}
		kept = nil
	}
	out.Offset, out.Status = pl.from, Processed

	// 1-3: read the new part of the export keeping candidates, publish
	// them first, then look at the other table's and join.
	var names []string
	var rows []detect.Result
	var appendable bool
	if t == signin.NonInteractive {
		// Streamed: nothing held per row (stream.go).
		var res streamed
		res, appendable, err = p.streamNonInteractive(ctx, w, props, pl.gen, pl.from, &out)
		names, rows = res.names, res.results
	} else {
		names, rows, appendable, err = p.interactive(ctx, w, props, pl, &out)
		if plan := p.cfg.Filter.Plan; err == nil && plan != nil && plan.NFromI {
			// The union of both tables is the non-interactive side: the
			// rows are that side's too, published and joined as such
			// (publish first, then look, as for the other table).
			read := out
			var res streamed // Candidates counts the rows kept as either side
			res, _, err = p.streamAs(ctx, signin.Interactive, w, props, pl.gen, pl.from, &out)
			names, rows = append(names, res.names...), mergeResults(rows, res.results)
			if err == nil && out.Consumed != read.Consumed {
				err = fmt.Errorf("pipeline: %s read to byte %d as the interactive side, %d as the non-interactive one", w, read.Consumed, out.Consumed)
			}
			out.RowsRead = read.RowsRead // the same rows, read as either side
		}
	}
	if err != nil {
		if signin.IsFormatError(err) {
			// Nothing of a rejected read counts (a streamed one counted
			// as it went).
			out.Status, out.Reason, out.Candidates, out.RowsRead, out.Consumed = Rejected, err, 0, 0, 0
			return out, p.writeLedger(ctx, w, ledETag, ledgerEntry{
				Status: statusRejected, ETag: props.ETag, Size: props.Size, Offset: led.Offset,
				Generation: pl.gen, Error: err.Error(), Extracts: kept,
			})
		}
		return out, err
	}
	out.Extracts = len(names)
	out.Results = len(rows)
	if out.prec != nil {
		st := out.prec.stats()
		out.Precision = &st
	}
	// 4. Alerts, idempotent by id.
	if err := p.writeAlerts(ctx, rows, &out); err != nil {
		return out, err
	}
	// 5. Last, the ledger: only a done entry makes a redelivery a no-op.
	e := ledgerEntry{
		Status: statusDone, ETag: props.ETag, Size: props.Size, Offset: out.Consumed,
		Appendable: appendable, Generation: pl.gen,
		SkippedRows: out.SkippedRows, FirstSkipped: out.FirstSkipped,
		Extracts: append(kept, names...),
	}
	if e.Appendable && e.Offset > 0 {
		if e.TailSum, err = p.tailSum(ctx, props, e.Offset); err != nil {
			return out, err
		}
	}
	return out, p.writeLedger(ctx, w, ledETag, e)
}

// alertChunkRows is about how many result rows go to the alert sink at
// once. The sink holds the alert documents of a call in memory (about 5 KB
// an alert): a 2M-row blob of the realistic hour makes 23,597 alerts, 111
// MB of live heap in one call, the largest part of the blob's peak. Each
// call also updates the incidents of its accounts once, so a smaller chunk
// costs requests: 2,048 rows cut the outbox batch's encoding of a 4M-row
// blob in half but split an hour's typical blob (about 1,900 result rows)
// in two, 6,800 more incident requests at the realistic hour (measured at
// 25 ms, docs/performance.md); process's heap limit holds the memory.
const alertChunkRows = 4096

// writeAlerts hands rows to the alert sink, in chunks of about
// alertChunkRows rows that never split an alert: rows are ordered by
// interactive time, user, interactive row and NI IP (the alert id's parts,
// DESIGN.md 6) and cut only where those change. Each call is idempotent by
// alert id, as one call was.
func (p *Pipeline) writeAlerts(ctx context.Context, rows []detect.Result, out *Outcome) error {
	if len(rows) > alertChunkRows {
		slices.SortStableFunc(rows, compareAlertKey)
	}
	for len(rows) > 0 {
		n := min(len(rows), alertChunkRows)
		for n < len(rows) && compareAlertKey(rows[n-1], rows[n]) == 0 {
			n++
		}
		stored, written, err := p.writeResults(ctx, rows[:n], out)
		if err != nil {
			return err
		}
		out.Stored = append(out.Stored, stored...)
		out.Alerts += written
		for _, a := range stored {
			out.AlertIds = append(out.AlertIds, a.SystemAlertId)
		}
		rows = rows[n:]
	}
	return nil
}

// compareAlertKey orders result rows by the parts of their alert's id.
func compareAlertKey(a, b detect.Result) int {
	return cmp.Or(a.InteractiveTime.Compare(b.InteractiveTime), strings.Compare(a.UserPrincipalName, b.UserPrincipalName),
		strings.Compare(a.InteractiveId, b.InteractiveId), strings.Compare(a.InteractiveIP, b.InteractiveIP),
		strings.Compare(a.NIIPAddress, b.NIIPAddress))
}

// interactive reads, publishes and joins an interactive blob part: its
// candidates are held (they are the index the other table's extracts
// probe, bounded by the tenant's interactive sign-ins).
func (p *Pipeline) interactive(ctx context.Context, w Work, props store.Properties, pl plan, out *Outcome) (names []string, rows []detect.Result, appendable bool, err error) {
	// 1. Read the new part of the export, keeping candidates.
	ext, err := p.extract(ctx, signin.Interactive, props, pl.from, out)
	if err != nil {
		return nil, nil, false, err
	}
	// 2. Publish first, so a concurrent blob of the other table sees ours.
	appendable = (pl.from > 0 || ext.plain) && !props.Sealed
	if names, err = p.publish(ctx, publication{table: signin.Interactive, work: w, gen: pl.gen, from: pl.from, to: out.Consumed, appendable: appendable, props: props}, ext); err != nil {
		return nil, nil, false, err
	}
	// 3. Then look at the other table's published candidates and join.
	rows, err = p.join(ctx, signin.Interactive, ext, out)
	return names, rows, appendable, err
}
