// Package pipeline processes one export blob against the join state in blob
// storage: candidates are published first, then the other table's published
// candidates are read and joined, alerts written, and the blob marked done
// last. Any order of arrival, duplicate or concurrent deliveries, and a crash
// at any step followed by a redelivery give the same alerts (DESIGN.md 4).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
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
	// Alerts writes the alert documents; PerRowAlerts makes one alert per
	// result row instead of one per (account, interactive sign-in, NI IP).
	Alerts       *alert.Writer
	PerRowAlerts bool

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

// Pipeline processes export blobs. It is safe for concurrent use, across
// goroutines and processes sharing the same storage.
type Pipeline struct {
	cfg Config
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
	Skipped    string // why nothing was done: "done", "rejected", "gone", "empty", "not an export"
	Offset     int64  // where reading started (non-zero for a grown append blob)
	Consumed   int64  // bytes read up to the last complete record
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
	// SetAside lists state objects (by URL) that could not be read and were
	// moved to the quarantine; Redo the export blobs whose extract that was,
	// now pending again.
	SetAside []string
	Redo     []Work
	// Rejected is the reason a blob can never be read (a *signin.FormatError):
	// it is recorded in the ledger and not retried until the blob changes.
	Rejected error
	Duration time.Duration
}

// Process runs the pipeline for one export blob. It returns an error only
// when a retry can help (storage failures, cancellation); unreadable content
// is recorded and reported in Outcome.Rejected with a nil error.
func (p *Pipeline) Process(ctx context.Context, w Work) (Outcome, error) {
	start := time.Now()
	out, err := p.process(ctx, w)
	out.Work, out.Duration = w, time.Since(start)
	p.log(out, err)
	return out, err
}

func (p *Pipeline) log(o Outcome, err error) {
	attrs := []any{
		slog.String("blob", o.Work.String()), slog.String("table", o.Table),
		slog.Int64("rows_read", o.RowsRead), slog.Int64("candidates", o.Candidates),
		slog.Int("results", o.Results), slog.Int("alerts_written", o.Alerts),
		slog.Int64("offset", o.Offset), slog.Int64("consumed", o.Consumed),
		slog.Duration("duration", o.Duration),
	}
	if o.SkippedRows > 0 {
		attrs = append(attrs, slog.Int64("skipped_rows", o.SkippedRows), slog.String("first_skipped", o.FirstSkipped))
	}
	if len(o.SetAside) > 0 {
		attrs = append(attrs, slog.Any("set_aside", o.SetAside))
	}
	switch {
	case err != nil:
		p.cfg.Logger.Error("blob failed, will retry", append(attrs, slog.String("error", err.Error()))...)
	case o.Rejected != nil:
		p.cfg.Logger.Error("blob rejected", append(attrs, slog.String("error", o.Rejected.Error()))...)
	case o.SkippedRows > 0:
		p.cfg.Logger.Warn("blob processed, some rows unreadable", attrs...)
	case o.Skipped != "":
		p.cfg.Logger.Info("blob skipped", append(attrs, slog.String("reason", o.Skipped))...)
	default:
		p.cfg.Logger.Info("blob processed", attrs...)
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
		out.Skipped, out.Rejected = "rejected", err
		return out, nil
	}
	if !signin.IsExportName(w.Name) {
		out.Skipped = "not an export"
		return out, nil
	}
	props, err := p.cfg.Exports.Stat(ctx, w.Container, w.Name)
	if errors.Is(err, store.ErrNotExist) {
		out.Skipped = "gone"
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
		out.Skipped = pl.skip
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
	out.Offset = pl.from

	// 1. Read the new part of the export, keeping candidates.
	ext, err := p.extract(ctx, t, props, pl.from, &out)
	if err != nil {
		if signin.IsFormatError(err) {
			out.Skipped, out.Rejected = "rejected", err
			return out, p.writeLedger(ctx, w, ledETag, ledgerEntry{
				Status: statusRejected, ETag: props.ETag, Size: props.Size, Offset: led.Offset,
				Generation: pl.gen, Error: err.Error(), Extracts: kept,
			})
		}
		return out, err
	}
	// 2. Publish first, so a concurrent blob of the other table sees ours.
	names, err := p.publish(ctx, t, w, pl.gen, pl.from, out.Consumed, ext)
	if err != nil {
		return out, err
	}
	out.Extracts = len(names)
	// 3. Then look at the other table's published candidates and join.
	rows, err := p.join(ctx, t, ext, &out)
	if err != nil {
		return out, err
	}
	out.Results = len(rows)
	// 4. Alerts, idempotent by id.
	if len(rows) > 0 {
		docs := alert.Group(p.cfg.Alerts.Rule, rows, p.cfg.PerRowAlerts)
		if out.Stored, out.Alerts, err = p.cfg.Alerts.WriteStored(ctx, docs); err != nil {
			return out, err
		}
		for _, d := range docs {
			out.AlertIds = append(out.AlertIds, d.SystemAlertId)
		}
	}
	// 5. Last, the ledger: only a done entry makes a redelivery a no-op.
	e := ledgerEntry{
		Status: statusDone, ETag: props.ETag, Size: props.Size, Offset: out.Consumed,
		Appendable: (pl.from > 0 || ext.plain) && !props.Sealed, Generation: pl.gen,
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

// extracted holds one blob part's candidates by event hour (extract.go).
type extracted struct {
	byHour map[time.Time]*extractWriter
	plain  bool // the export is plain JSON Lines (appendable)
}

func (e *extracted) add(r *signin.Record) error {
	h := r.TimeGenerated.UTC().Truncate(time.Hour)
	w := e.byHour[h]
	if w == nil {
		var err error
		if w, err = newExtractWriter(); err != nil {
			return err
		}
		e.byHour[h] = w
	}
	return w.add(r)
}

func (e *extracted) hours() []time.Time {
	hs := make([]time.Time, 0, len(e.byHour))
	for h := range e.byHour {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, time.Time.Compare)
	return hs
}

// extract reads props from byte from on and returns its candidates.
func (p *Pipeline) extract(ctx context.Context, t signin.Table, props store.Properties, from int64, out *Outcome) (*extracted, error) {
	keep := p.cfg.Filter.NonInteractive
	if t == signin.Interactive {
		keep = p.cfg.Filter.Interactive
	}
	ra := store.NewReaderAt(ctx, p.cfg.Exports, props)
	var r io.ReaderAt = ra
	if from > 0 {
		r = io.NewSectionReader(ra, from, props.Size-from)
	}
	ext := &extracted{byHour: map[time.Time]*extractWriter{}}
	if from == 0 {
		var magic [4]byte
		n, err := ra.ReadAt(magic[:], 0)
		if err != nil && err != io.EOF {
			return nil, err
		}
		ext.plain = !(n == 4 && string(magic[:]) == "PAR1") && !(n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
	}
	name := props.Container + "/" + props.Name
	opts := signin.Options{
		Keep:         keep,
		MaxExpansion: p.cfg.MaxExpansion,
		// A block blob is complete: its last line is a record, newline or not.
		Final:        props.Sealed,
		PositionIds:  signin.PositionIdPrefix + name + "#",
		PositionBase: from,
	}
	st, err := signin.Scan(ctx, name, r, props.Size-from, t, opts, func(rs []signin.Record) error {
		for k := range rs {
			if err := ext.add(&rs[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ext.release()
		return nil, err
	}
	for _, b := range ext.byHour {
		if err := b.close(); err != nil {
			return nil, err
		}
		out.Candidates += int64(b.rows)
	}
	out.RowsRead, out.Consumed = st.Read, from+st.Consumed
	if out.SkippedRows = st.SkippedRows; st.FirstSkipped != nil {
		out.FirstSkipped = st.FirstSkipped.Error()
	}
	return ext, nil
}

// release frees the builders of an extraction that failed midway.
func (e *extracted) release() {
	for _, w := range e.byHour {
		w.rb.Release()
	}
}

func (p *Pipeline) publish(ctx context.Context, t signin.Table, w Work, gen int, from, to int64, ext *extracted) ([]string, error) {
	var names []string
	for _, h := range ext.hours() {
		name := extractName(t, h, w, gen, from, to)
		_, err := p.cfg.State.Write(ctx, p.cfg.StateContainer, name, ext.byHour[h].bytes(), store.Condition{IfNoneMatch: "*"})
		// Already there: an earlier attempt published the same range.
		if err != nil && !errors.Is(err, store.ErrConditionNotMet) {
			return nil, fmt.Errorf("publish %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// deleteExtracts removes the extracts of content that was replaced.
func (p *Pipeline) deleteExtracts(ctx context.Context, names []string) error {
	for _, name := range names {
		err := p.cfg.State.Delete(ctx, p.cfg.StateContainer, name, store.Condition{})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("delete stale extract %s: %w", name, err)
		}
	}
	return nil
}
