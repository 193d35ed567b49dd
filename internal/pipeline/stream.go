package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// A non-interactive blob is streamed (DESIGN.md 8: memory is bounded by the
// row group, not the blob): a 2M-row export blob, or an hour of a tenant's
// diagnostic archive (one PT1H.json of GBs), is read once and nothing is
// kept per row beyond the rows in flight.
//
//   - Its extracts are written as the rows are read, one per event hour,
//     through store.Stage (a temporary file locally, staged blocks on
//     Azure), and committed once the blob is read: published as before,
//     before anything is looked at by name (the protocol of DESIGN.md 4).
//   - The interactive index of the hours a row can reach is loaded when the
//     first row of an hour is read (the pre-look) and the row probes it
//     right away, so only the rows that may pair are decoded past the
//     filter columns (signin.Options.Keep) and only result rows are held.
//   - After publishing, the look: the interactive extracts of the hours
//     reached are listed again, and those the pre-look did not see
//     (published since by a concurrent blob) are indexed and probed with
//     this blob's own rows, read back from the extracts just published
//     (probeExtracts: a compact extract's matches take their wide columns
//     from the export, read again for those rows only). Of two blobs
//     processed at once, the one that publishes last sees the other's
//     extract in that listing, as before.
//
// A compact extract is written from the filter columns alone (Keep sees no
// Id yet), so a row exported twice in the blob is written twice; the join
// dedups it as before (Probe by Id; probeStored by content when the export
// is gone: join.go).

// streamed is what streamNonInteractive made of one blob part.
type streamed struct {
	names   []string
	results []detect.Result
}

// streamNonInteractive reads the non-interactive export props from byte
// from, publishes its extracts and joins its rows: steps 1 to 3 of process.
func (p *Pipeline) streamNonInteractive(ctx context.Context, w Work, props store.Properties, gen int, from int64, out *Outcome) (_ streamed, appendable bool, err error) {
	return p.streamAs(ctx, signin.NonInteractive, w, props, gen, from, out)
}

// streamAs is streamNonInteractive of an export of table src: an
// interactive export is streamed as the non-interactive side too when the
// rule's non-interactive side is the union of both tables (kql.Plan.NFromI),
// its rows passing the union's SigninLogs branch. Its extracts are full
// ones (a compact extract's rows are read again as the other table).
func (p *Pipeline) streamAs(ctx context.Context, src signin.Table, w Work, props store.Properties, gen int, from int64, out *Outcome) (_ streamed, appendable bool, err error) {
	ra := store.NewReaderAt(ctx, p.cfg.Exports, props)
	var r io.ReaderAt = ra
	if from > 0 {
		r = io.NewSectionReader(ra, from, props.Size-from)
	}
	format, err := signin.DetectFormat(r)
	if err != nil {
		return streamed{}, false, fmt.Errorf("read %s: %w", p.cfg.Exports.URL(w.Container, w.Name), err)
	}
	// A growing blob is read up to its last complete record: known before
	// reading, so its extracts are named by that range as they are written.
	appendable = (from > 0 || format == signin.JSONLines) && !props.Sealed
	to := props.Size
	if format == signin.JSONLines && !props.Sealed {
		end, err := signin.CompleteEnd(r, 0, props.Size-from)
		if err != nil {
			return streamed{}, false, fmt.Errorf("read %s: %w", p.cfg.Exports.URL(w.Container, w.Name), err)
		}
		to = from + end
		r = io.NewSectionReader(r, 0, end)
	}
	// A tuned rule's non-interactive row predicates read decoded records,
	// and every extract holds only rows that pass them: such a rule's
	// extracts are written from whole rows (full), not from Keep.
	plan := p.cfg.Filter.Plan
	compact := !appendable && from == 0 && to == props.Size && (plan == nil || len(plan.NExtra) == 0 && !plan.NFromI)
	s := &stream{p: p, ctx: ctx, w: w, src: src, props: props, gen: gen, from: from, to: to, compact: compact, out: out,
		hours: map[time.Time]*hourExtract{}, first: map[time.Time]map[string]bool{},
		listedHours: map[time.Time][]store.Properties{}}
	defer s.abort()

	name := props.Container + "/" + props.Name
	opts := signin.Options{
		Name:         name,
		Table:        src,
		Keep:         s.keep,
		Parallelism:  exportReadParallelism(),
		Extra:        p.cfg.Filter.Columns(signin.NonInteractive), // what a tuned rule's row predicates read
		MaxExpansion: p.cfg.MaxExpansion,
		// A block blob is complete: its last line is a record, newline or not.
		Final:        props.Sealed,
		PositionIds:  signin.PositionIdPrefix + name + "#",
		PositionBase: from,
	}
	st, err := signin.Scan(ctx, r, to-from, opts, s.rows)
	if err == nil {
		err = s.err
	}
	if err != nil {
		return streamed{}, false, err
	}
	if from+st.Consumed != to {
		return streamed{}, false, fmt.Errorf("pipeline: %s: read to byte %d, expected %d", name, from+st.Consumed, to)
	}
	out.RowsRead, out.Consumed = st.Read, from+st.Consumed
	if out.SkippedRows = st.SkippedRows; st.FirstSkipped != nil {
		out.FirstSkipped = st.FirstSkipped.Error()
	}
	// 2. Publish first, so a concurrent blob of the other table sees ours.
	own, err := s.publish()
	if err != nil {
		return streamed{}, false, err
	}
	res := streamed{results: s.results}
	if s.regrown {
		// A row exported twice probed two indexes, each with its own Id
		// dedup: its pairs count once.
		res.results = mergeResults(nil, res.results)
	}
	for _, pr := range own {
		res.names = append(res.names, pr.Name)
	}
	// 3. Then look: the interactive extracts the pre-look did not see.
	more, err := s.look(own)
	if err != nil {
		return streamed{}, false, err
	}
	res.results = mergeResults(res.results, more)
	return res, appendable, nil
}

// exportReadParallelism is how many columns of an export's Parquet slice
// are decoded at once (signin.Options.Parallelism). Each column's pages are
// read as it is decoded, one ranged read after another: at cloud latency
// (25 ms a request) with one goroutine per core (2) a blob's 50 reads were
// about 25 round trips end to end. Decoding waits on storage, not on the
// cores, so more columns go at once; on a local disk the extra goroutines
// only take turns.
func exportReadParallelism() int { return max(runtime.GOMAXPROCS(0), 8) }

// stream is the state of one streamed blob part.
type stream struct {
	p        *Pipeline
	ctx      context.Context
	w        Work
	src      signin.Table // the export's table: NonInteractive, or Interactive read as the union's
	props    store.Properties
	gen      int
	from, to int64
	compact  bool
	out      *Outcome

	hours map[time.Time]*hourExtract
	last  *hourExtract // the hour of the row before: most rows share it

	// The pre-look: x is the interactive index of the hours reached by the
	// hours read so far; first holds, per event hour of this blob, the
	// interactive extracts its first row was probed against.
	x       *detect.Index
	regrown bool // x was replaced by a larger index while reading
	first   map[time.Time]map[string]bool
	// listedHours holds the listing of each interactive hour, made once.
	listedHours map[time.Time][]store.Properties
	results     []detect.Result
	held        heldText // the text of the rows that paired (held.go)
	err         error    // an error of keep (Scan's Keep cannot return one)
}

// hourExtract is one event hour's extract being written.
type hourExtract struct {
	hour   time.Time
	name   string
	staged store.Staged
	rows   rowWriter
	n      int
}

// keep is the scan's Keep: every candidate is written to its hour's
// extract here (a compact extract needs only the filter columns Keep
// sees), and only a candidate that may pair goes on to be decoded whole.
func (s *stream) keep(r *signin.Record) bool {
	if s.err != nil || !s.p.cfg.Filter.NonInteractive(r) {
		return false
	}
	if !s.compact {
		// A full extract holds the wide columns: written from the whole
		// rows (rows).
		return true
	}
	e, err := s.hour(r.TimeGenerated)
	if err != nil {
		s.err = err
		return false
	}
	if !s.compact {
		return true // the name was too long for a compact extract (hour)
	}
	e.n++
	s.out.Candidates++
	if err := e.rows.add(r); err != nil {
		s.err = fmt.Errorf("extract %s: %w", e.name, err)
		return false
	}
	return s.x.Len() > 0 && s.x.MayMatch(r)
}

// rows receives the candidates keep let through, whole.
func (s *stream) rows(rs []signin.Record) error {
	for k := range rs {
		r := &rs[k]
		if !s.compact {
			if plan := s.p.cfg.Filter.Plan; plan != nil && (!plan.NRow(r) || !plan.NRowFrom(sideOf(s.src), r)) {
				continue
			}
			e, err := s.hour(r.TimeGenerated)
			if err != nil {
				return err
			}
			e.n++
			s.out.Candidates++
			if err := e.rows.add(r); err != nil {
				return fmt.Errorf("extract %s: %w", e.name, err)
			}
			// A full extract holds whole rows: the look reads them back.
			continue
		}
		s.results = s.held.probe(s.x, s.results, r)
	}
	return nil
}

// hour returns the extract of t's event hour, starting it (and loading the
// interactive index its rows reach) on the hour's first row.
func (s *stream) hour(t time.Time) (*hourExtract, error) {
	h := t.UTC().Truncate(time.Hour)
	if s.last != nil && s.last.hour.Equal(h) {
		return s.last, nil
	}
	if e := s.hours[h]; e != nil {
		s.last = e
		return e, nil
	}
	name := extractName(signin.NonInteractive, h, s.w, s.gen, s.from, s.to)
	if s.compact {
		if cn, ok := compactName(h, s.w, s.gen, s.props); ok {
			name = cn
		} else {
			// A name too long for a compact extract: full ones, from
			// whole rows (rows); nothing was written yet, Keep decides.
			if len(s.hours) > 0 {
				return nil, fmt.Errorf("pipeline: %s: compact extract name too long for hour %s only", s.w, h)
			}
			s.compact = false
		}
	}
	staged, err := store.Stage(s.ctx, s.p.cfg.State, s.p.cfg.StateContainer, name)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", name, err)
	}
	e := &hourExtract{hour: h, name: name, staged: staged}
	if s.compact {
		e.rows = newCompactRows(staged)
	} else {
		e.rows = newParquetRows(staged, func(r *signin.Record) nonInteractiveRow {
			return nonInteractiveRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
				r.ResultType, r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier, r.Id}
		})
	}
	s.hours[h] = e
	s.last = e
	// A full extract (a growing plain JSON Lines blob, a tuned rule's row
	// predicates) is joined after publishing, read back whole by the look:
	// no pre-look, so no listing twice.
	if s.compact {
		if err := s.prelook(h); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// prelook makes s.x the index of the interactive extracts every hour read
// so far reaches, and notes which extracts h's rows are probed against.
// Rows of earlier hours probed a smaller index; look makes up for what a
// later listing added.
func (s *stream) prelook(h time.Time) error {
	set := map[time.Time]bool{}
	for hh := range s.hours {
		for _, ih := range reach(signin.NonInteractive, hh, s.p.maxGap()) {
			set[ih] = true
		}
	}
	hours := make([]time.Time, 0, len(set))
	for ih := range set {
		hours = append(hours, ih)
	}
	slices.SortFunc(hours, time.Time.Compare)
	// Each interactive hour is listed once per blob: an extract published
	// since an hour was listed is found by the look after publishing.
	var listed []store.Properties
	for _, ih := range hours {
		l, ok := s.listedHours[ih]
		if !ok {
			var err error
			if l, err = s.p.listExtracts(s.ctx, signin.Interactive, []time.Time{ih}); err != nil {
				return err
			}
			s.listedHours[ih] = l
		}
		listed = append(listed, l...)
	}
	x, err := s.p.indexOfListed(s.ctx, listed, s.out)
	if err != nil {
		return err
	}
	s.regrown = s.regrown || s.x != nil
	s.x = x
	s.first[h] = reachedBy(h, s.p.maxGap(), listed)
	return nil
}

// reachedBy returns the names of the listed interactive extracts that rows
// of event hour h can pair with.
func reachedBy(h time.Time, maxGap time.Duration, listed []store.Properties) map[string]bool {
	names := map[string]bool{}
	for _, ih := range reach(signin.NonInteractive, h, maxGap) {
		prefix := extractPrefix(signin.Interactive, ih)
		for _, pr := range listed {
			if len(pr.Name) > len(prefix) && pr.Name[:len(prefix)] == prefix {
				names[pr.Name] = true
			}
		}
	}
	return names
}

// publish closes and commits the hours' extracts, in hour order, and
// returns their properties.
func (s *stream) publish() ([]store.Properties, error) {
	hs := make([]time.Time, 0, len(s.hours))
	for h := range s.hours {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, time.Time.Compare)
	var own []store.Properties
	for _, h := range hs {
		e := s.hours[h]
		if err := e.rows.close(); err != nil {
			return nil, fmt.Errorf("extract writer %s: %w", e.name, err)
		}
		pr, err := e.staged.Commit(s.ctx, store.Condition{IfNoneMatch: "*"})
		if errors.Is(err, store.ErrConditionNotMet) {
			// Already there: an earlier attempt published the same range.
			pr, err = s.p.cfg.State.Stat(s.ctx, s.p.cfg.StateContainer, e.name)
		}
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", e.name, err)
		}
		own = append(own, pr)
	}
	return own, nil
}

// abort drops the extracts not committed (a failed read).
func (s *stream) abort() {
	for _, e := range s.hours {
		e.staged.Abort()
	}
}

// look lists the interactive extracts this blob's hours reach, now that its
// own are published, and probes its own rows (read back from them) with
// those its pre-look did not see.
func (s *stream) look(own []store.Properties) ([]detect.Result, error) {
	var extra []store.Properties
	seen := map[string]bool{}
	var mine []store.Properties
	// One listing of every interactive hour the blob's hours reach.
	set := map[time.Time]bool{}
	for _, pr := range own {
		for _, ih := range reach(signin.NonInteractive, s.hourOf(pr.Name), s.p.maxGap()) {
			set[ih] = true
		}
	}
	hours := make([]time.Time, 0, len(set))
	for ih := range set {
		hours = append(hours, ih)
	}
	slices.SortFunc(hours, time.Time.Compare)
	all, err := s.p.listExtracts(s.ctx, signin.Interactive, hours)
	if err != nil {
		return nil, err
	}
	if !s.compact {
		// No pre-look: the index of everything listed probes the rows.
		x, err := s.p.indexOfListed(s.ctx, all, s.out)
		if err != nil || x.Len() == 0 {
			return nil, err
		}
		return s.p.probeExtracts(s.ctx, x, own, s.out)
	}
	for _, pr := range own {
		h := s.hourOf(pr.Name)
		reached := reachedBy(h, s.p.maxGap(), all)
		added := false
		for _, ipr := range all {
			if !reached[ipr.Name] || s.first[h][ipr.Name] {
				continue
			}
			added = true
			if !seen[ipr.Name] {
				seen[ipr.Name] = true
				extra = append(extra, ipr)
			}
		}
		if added {
			mine = append(mine, pr)
		}
	}
	if len(extra) == 0 {
		return nil, nil
	}
	x, _, err := s.p.indexOf(s.ctx, extra, s.out)
	if err != nil || x.Len() == 0 {
		return nil, err
	}
	return s.p.probeExtracts(s.ctx, x, mine, s.out)
}

// hourOf returns the event hour of one of this blob's extracts.
func (s *stream) hourOf(name string) time.Time {
	for h, e := range s.hours {
		if e.name == name {
			return h
		}
	}
	panic("pipeline: not an extract of this blob: " + name)
}

// mergeResults appends to rows those of more that are not in it: a row
// probed after the pre-look's index grew may pair again in look. A result
// row is one (interactive, non-interactive) pair of rows, by their Ids.
func mergeResults(rows, more []detect.Result) []detect.Result {
	if len(more) == 0 {
		return rows
	}
	type pair struct{ i, n string }
	have := make(map[pair]bool, len(rows))
	for k := range rows {
		have[pair{rows[k].InteractiveId, rows[k].NonInteractiveId}] = true
	}
	for _, r := range more {
		if k := (pair{r.InteractiveId, r.NonInteractiveId}); !have[k] {
			have[k] = true
			rows = append(rows, r)
		}
	}
	return rows
}

// rowWriter writes an extract's rows as they come.
type rowWriter interface {
	add(*signin.Record) error
	close() error
}

// parquetRows batches rows of type T for a Parquet writer: the writer
// holds at most a row group, the batch extractBatchRows rows.
type parquetRows[T any] struct {
	pw    *parquet.GenericWriter[T]
	batch []T
	row   func(*signin.Record) T
}

func newParquetRows[T any](w io.Writer, row func(*signin.Record) T) *parquetRows[T] {
	return &parquetRows[T]{pw: parquet.NewGenericWriter[T](w, extractWriterOptions(streamRowGroupRows)...), row: row}
}

func (p *parquetRows[T]) add(r *signin.Record) error {
	p.batch = append(p.batch, p.row(r))
	if len(p.batch) == extractBatchRows {
		return p.flush()
	}
	return nil
}

func (p *parquetRows[T]) flush() error {
	if len(p.batch) == 0 {
		return nil
	}
	_, err := p.pw.Write(p.batch)
	clear(p.batch) // drop the references to the records' text
	p.batch = p.batch[:0]
	return err
}

func (p *parquetRows[T]) close() error {
	if err := p.flush(); err != nil {
		return err
	}
	return p.pw.Close()
}

// compactRows writes compact rows from Keep, whose record's text is valid
// during the call only: the text is copied into text, reused once the
// batch is written (the Parquet writer copies values into its own pages).
type compactRows struct {
	parquetRows[compactRow]
	text []byte
}

func newCompactRows(w io.Writer) *compactRows {
	return &compactRows{parquetRows: parquetRows[compactRow]{pw: parquet.NewGenericWriter[compactRow](w, extractWriterOptions(streamRowGroupRows)...)}}
}

func (c *compactRows) add(r *signin.Record) error {
	if len(c.batch) == extractBatchRows {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if len(c.batch) == 0 {
		c.text = c.text[:0]
	}
	need := len(r.UserPrincipalName) + len(r.IPAddress) + len(r.Location) + len(r.ResultType)
	if cap(c.text)-len(c.text) < need {
		// A new buffer: the strings already in the batch point into the old one.
		c.text = make([]byte, 0, max(2*cap(c.text), need, 64<<10))
	}
	c.batch = append(c.batch, compactRow{r.TimeGenerated.UnixNano(), c.copy(r.UserPrincipalName), c.copy(r.IPAddress),
		c.copy(r.Location), c.copy(r.ResultType)})
	return nil
}

func (c *compactRows) copy(s string) string {
	if s == "" {
		return ""
	}
	start := len(c.text)
	c.text = append(c.text, s...)
	return unsafe.String(&c.text[start], len(s))
}

func (c *compactRows) close() error { return c.parquetRows.close() }
