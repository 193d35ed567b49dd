// Package pipeline processes one export blob against the join state in blob
// storage: candidates are published first, then the other table's published
// candidates are read and joined, alerts written, and the blob marked done
// last. Any order of arrival, duplicate or concurrent deliveries, and a crash
// at any step followed by a redelivery give the same alerts (DESIGN.md 4).
package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
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

	Logger *slog.Logger
	// Now is the clock for lateness (time.Now when nil).
	Now func() time.Time
}

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
		cfg.AllowedLateness = 168 * time.Hour
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
	Skipped    string // why nothing was done: "done", "rejected", "gone", "empty"
	Offset     int64  // where reading started (non-zero for a grown append blob)
	Consumed   int64  // bytes read up to the last complete record
	RowsRead   int64
	Candidates int64
	Extracts   int
	Results    int
	Alerts     int // alert blobs created or changed
	// AlertIds are the alerts this blob's result rows belong to, written now
	// or already stored.
	AlertIds []string
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
	switch {
	case err != nil:
		p.cfg.Logger.Error("blob failed, will retry", append(attrs, slog.String("error", err.Error()))...)
	case o.Rejected != nil:
		p.cfg.Logger.Error("blob rejected", append(attrs, slog.String("error", o.Rejected.Error()))...)
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
	props, err := p.cfg.Exports.Stat(ctx, w.Container, w.Name)
	if errors.Is(err, store.ErrNotExist) {
		out.Skipped = "gone"
		return out, nil
	}
	if err != nil {
		return out, err
	}
	led, ledETag, err := p.readLedger(ctx, w)
	if err != nil {
		return out, err
	}
	from, skip := led.resumeAt(props)
	if skip != "" {
		out.Skipped = skip
		return out, nil
	}
	out.Offset = from

	// 1. Read the new part of the export, keeping candidates.
	ext, err := p.extract(ctx, t, props, from, &out)
	if err != nil {
		if signin.IsFormatError(err) {
			out.Skipped, out.Rejected = "rejected", err
			return out, p.writeLedger(ctx, w, ledETag, ledgerEntry{
				Status: statusRejected, ETag: props.ETag, Size: props.Size, Offset: led.Offset,
				Error: err.Error(), Extracts: led.Extracts,
			})
		}
		return out, err
	}
	// 2. Publish first, so a concurrent blob of the other table sees ours.
	names, err := p.publish(ctx, t, w, from, out.Consumed, ext)
	if err != nil {
		return out, err
	}
	out.Extracts = len(names)
	// 3. Then look at the other table's published candidates and join.
	rows, err := p.join(ctx, t, ext)
	if err != nil {
		return out, err
	}
	out.Results = len(rows)
	// 4. Alerts, idempotent by id.
	if len(rows) > 0 {
		docs := alert.Group(p.cfg.Alerts.Rule, rows, p.cfg.PerRowAlerts)
		if out.Alerts, err = p.cfg.Alerts.Write(ctx, docs); err != nil {
			return out, err
		}
		for _, d := range docs {
			out.AlertIds = append(out.AlertIds, d.SystemAlertId)
		}
	}
	// 5. Last, the ledger: only a done entry makes a redelivery a no-op.
	return out, p.writeLedger(ctx, w, ledETag, ledgerEntry{
		Status: statusDone, ETag: props.ETag, Size: props.Size, Offset: out.Consumed,
		Appendable: from > 0 || ext.plain, Extracts: append(led.Extracts, names...),
	})
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
	st, err := signin.Scan(ctx, name, r, props.Size-from, t, signin.Options{Keep: keep}, func(rs []signin.Record) error {
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
	return ext, nil
}

// release frees the builders of an extraction that failed midway.
func (e *extracted) release() {
	for _, w := range e.byHour {
		w.rb.Release()
	}
}

// Extracts live in the state container at
// candidates/<table>/<yyyy>/<MM>/<dd>/<HH>/<key>.parquet, partitioned by
// event hour; key names the export blob and the byte range read, so a
// redelivery rewrites the same extract and a grown blob adds a new one.
func extractPrefix(t signin.Table, hour time.Time) string {
	return "candidates/" + t.Short() + "/" + hour.UTC().Format("2006/01/02/15") + "/"
}

const extractSuffix = ".parquet"

func extractKey(w Work, from, to int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", w.Container, w.Name, from, to))
	return hex.EncodeToString(sum[:16])
}

func (p *Pipeline) publish(ctx context.Context, t signin.Table, w Work, from, to int64, ext *extracted) ([]string, error) {
	key := extractKey(w, from, to)
	var names []string
	for _, h := range ext.hours() {
		name := extractPrefix(t, h) + key + extractSuffix
		_, err := p.cfg.State.Write(ctx, p.cfg.StateContainer, name, ext.byHour[h].bytes(), store.Condition{IfNoneMatch: "*"})
		// Already there: an earlier attempt published the same range.
		if err != nil && !errors.Is(err, store.ErrConditionNotMet) {
			return nil, fmt.Errorf("publish %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// reach returns the other table's event hours a candidate of hour h can
// pair with: N.TimeGenerated - I.TimeGenerated is within [1m, 2h].
func reach(t signin.Table, h time.Time) []time.Time {
	var hs []time.Time
	for k := 0; k <= int(detect.MaxGap/time.Hour); k++ {
		if t == signin.Interactive {
			hs = append(hs, h.Add(time.Duration(k)*time.Hour))
		} else {
			hs = append(hs, h.Add(-time.Duration(k)*time.Hour))
		}
	}
	return hs
}

func (p *Pipeline) join(ctx context.Context, t signin.Table, ext *extracted) ([]detect.Result, error) {
	if len(ext.byHour) == 0 {
		return nil, nil
	}
	other := signin.Interactive
	if t == signin.Interactive {
		other = signin.NonInteractive
	}
	hourSet := map[time.Time]bool{}
	for h := range ext.byHour {
		for _, oh := range reach(t, h) {
			hourSet[oh] = true
		}
	}
	hours := make([]time.Time, 0, len(hourSet))
	for h := range hourSet {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)

	x := detect.NewIndex()
	var rows []detect.Result
	probe := func(rs []signin.Record) error {
		for k := range rs {
			rows = x.Probe(rows, &rs[k])
		}
		return nil
	}
	keepUser := func(r *signin.Record) bool { return x.HasUser(r.UserPrincipalName) }
	if t == signin.Interactive {
		for _, b := range ext.byHour {
			if err := scanBytes(ctx, "extract", b.bytes(), signin.Interactive, signin.Options{}, func(rs []signin.Record) error {
				for _, r := range rs {
					x.Add(r)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
		err := p.eachExtract(ctx, other, hours, func(props store.Properties) error {
			ra := store.NewReaderAt(ctx, p.cfg.State, props)
			_, err := signin.Scan(ctx, props.Name, ra, props.Size, other, signin.Options{Keep: keepUser, Final: true}, probe)
			return err
		})
		return rows, err
	}
	err := p.eachExtract(ctx, other, hours, func(props store.Properties) error {
		ra := store.NewReaderAt(ctx, p.cfg.State, props)
		_, err := signin.Scan(ctx, props.Name, ra, props.Size, other, signin.Options{Final: true}, func(rs []signin.Record) error {
			for _, r := range rs {
				x.Add(r)
			}
			return nil
		})
		return err
	})
	if err != nil || x.Len() == 0 {
		return nil, err
	}
	for _, b := range ext.byHour {
		if err := scanBytes(ctx, "extract", b.bytes(), t, signin.Options{Keep: keepUser}, probe); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func scanBytes(ctx context.Context, name string, data []byte, t signin.Table, opts signin.Options, fn func([]signin.Record) error) error {
	opts.Final = true
	_, err := signin.Scan(ctx, name, bytes.NewReader(data), int64(len(data)), t, opts, fn)
	return err
}

// eachExtract calls fn for every published extract of table t in hours,
// ignoring state older than the allowed lateness: lifecycle rules delete it
// at day granularity, so reading it would make results depend on timing.
func (p *Pipeline) eachExtract(ctx context.Context, t signin.Table, hours []time.Time, fn func(store.Properties) error) error {
	oldest := p.cfg.Now().Add(-p.cfg.AllowedLateness)
	for _, h := range hours {
		err := p.cfg.State.List(ctx, p.cfg.StateContainer, extractPrefix(t, h), func(props store.Properties) error {
			if props.LastModified.Before(oldest) || !strings.HasSuffix(props.Name, extractSuffix) {
				return nil
			}
			if err := fn(props); err != nil {
				if errors.Is(err, store.ErrNotExist) {
					return nil // deleted by lifecycle since the listing
				}
				return fmt.Errorf("read extract %s: %w", props.Name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// The ledger: one small JSON blob per export blob, at
// ledger/<container>/<name>.json in the state container.
const (
	statusDone     = "done"
	statusRejected = "rejected"
)

type ledgerEntry struct {
	Status string `json:"status"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	// Offset is how far the blob has been read (the last complete record).
	Offset int64 `json:"offset"`
	// Appendable is set for plain JSON Lines, which may grow by appends and
	// are then read on from Offset; any other format is read whole again.
	Appendable bool      `json:"appendable,omitempty"`
	Error      string    `json:"error,omitempty"`
	Extracts   []string  `json:"extracts,omitempty"`
	Updated    time.Time `json:"updated"`
}

func ledgerName(w Work) string { return "ledger/" + w.Container + "/" + w.Name + ".json" }

// resumeAt returns the byte to read from, or why nothing needs doing.
func (e ledgerEntry) resumeAt(props store.Properties) (int64, string) {
	switch {
	case props.Size == 0:
		return 0, "empty"
	case e.Status == "":
		return 0, ""
	case e.ETag == props.ETag:
		return 0, cmp.Or(map[string]string{statusDone: "done", statusRejected: "rejected"}[e.Status], "done")
	case e.Status == statusDone && e.Appendable && props.Size > e.Offset && e.Offset > 0:
		// A grown append blob: appends never change earlier bytes.
		return e.Offset, ""
	case e.Status == statusDone && e.Appendable && props.Size <= e.Offset:
		return 0, "done"
	}
	// Rejected before and changed since: read it all again.
	return 0, ""
}

func (p *Pipeline) readLedger(ctx context.Context, w Work) (ledgerEntry, string, error) {
	var e ledgerEntry
	data, props, err := p.cfg.State.Read(ctx, p.cfg.StateContainer, ledgerName(w))
	if errors.Is(err, store.ErrNotExist) {
		return e, "", nil
	}
	if err != nil {
		return e, "", fmt.Errorf("ledger %s: %w", ledgerName(w), err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, "", fmt.Errorf("ledger %s: %w", ledgerName(w), err)
	}
	return e, props.ETag, nil
}

// writeLedger writes e if the ledger is still as read (etag), so the offset
// only moves forward. A lost race means another worker processed the blob;
// that is not an error, whatever it recorded stands.
func (p *Pipeline) writeLedger(ctx context.Context, w Work, etag string, e ledgerEntry) error {
	e.Updated = p.cfg.Now().UTC()
	slices.Sort(e.Extracts)
	e.Extracts = slices.Compact(e.Extracts)
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	cond := store.Condition{IfMatch: etag}
	if etag == "" {
		cond = store.Condition{IfNoneMatch: "*"}
	}
	_, err = p.cfg.State.Write(ctx, p.cfg.StateContainer, ledgerName(w), data, cond)
	if errors.Is(err, store.ErrConditionNotMet) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger %s: %w", ledgerName(w), err)
	}
	return nil
}

// Pending returns the export blobs the Sweep should (re)process: within the
// allowed lateness and with no done entry for their current version, or
// grown since they were read. Rejected blobs are retried only once changed.
func (p *Pipeline) Pending(ctx context.Context) ([]Work, error) {
	oldest := p.cfg.Now().Add(-p.cfg.AllowedLateness)
	var work []Work
	for _, c := range []string{p.cfg.InteractiveContainer, p.cfg.NonInteractiveContainer} {
		ledger := map[string]ledgerEntry{}
		prefix := "ledger/" + c + "/"
		err := p.cfg.State.List(ctx, p.cfg.StateContainer, prefix, func(props store.Properties) error {
			data, _, err := p.cfg.State.Read(ctx, p.cfg.StateContainer, props.Name)
			if errors.Is(err, store.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			var e ledgerEntry
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("ledger %s: %w", props.Name, err)
			}
			ledger[strings.TrimSuffix(strings.TrimPrefix(props.Name, prefix), ".json")] = e
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sweep: ledger of %s: %w", c, err)
		}
		err = p.cfg.Exports.List(ctx, c, "", func(props store.Properties) error {
			if props.LastModified.Before(oldest) {
				return nil
			}
			if _, skip := ledger[props.Name].resumeAt(props); skip == "" {
				work = append(work, Work{Container: c, Name: props.Name})
			}
			return nil
		})
		// An export container that does not exist yet holds nothing to do.
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("sweep: list %s: %w", c, err)
		}
	}
	return work, nil
}

// EnsureContainers creates the state, alerts and incidents containers.
func (p *Pipeline) EnsureContainers(ctx context.Context) error {
	for _, c := range []struct {
		s    store.Store
		name string
	}{{p.cfg.State, p.cfg.StateContainer}, {p.cfg.Alerts.Store, p.cfg.Alerts.AlertsContainer}, {p.cfg.Alerts.Store, p.cfg.Alerts.IncidentsContainer}} {
		if c.name == "" {
			continue
		}
		if err := c.s.EnsureContainer(ctx, c.name); err != nil {
			return fmt.Errorf("container %s: %w", c.name, err)
		}
	}
	return nil
}
