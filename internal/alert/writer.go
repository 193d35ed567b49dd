package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// maxAttempts bounds the read-modify-write loops on one blob. Every
// conflict means another writer succeeded, so this is only reached under
// pathological contention.
const maxAttempts = 100

// MaxAlertsPerIncident is how many alerts an incident holds, as in
// Sentinel; the next alert of the group opens a new incident.
const MaxAlertsPerIncident = 150

// DefaultParallelism is how many alert documents a Writer writes at once.
// Each write is one request waiting on storage latency (10-25 ms in a
// region), so a blob's 1,500 alerts take 1.2 s at 32 and 4.7 s at 8.
const DefaultParallelism = 32

// BlobName is where an alert lives in the alerts container:
// <yyyy>/<mm>/<dd>/<SystemAlertId>.json, dated by its StartTime (the
// interactive sign-in, which is part of the alert's identity).
func BlobName(d Document) string {
	return d.StartTime.UTC().Format("2006/01/02/") + d.SystemAlertId + ".json"
}

// Writer stores alert documents and files them into incidents. The
// containers must exist (see EnsureContainers).
type Writer struct {
	Store
	// Rule is the rule the alerts are of: its event grouping makes the
	// alerts of WriteResults, its incident configuration the incidents.
	Rule *rule.Rule
	// MaxAlertsPerIncident caps the alerts of one incident; 0 means
	// MaxAlertsPerIncident (150).
	MaxAlertsPerIncident int
	// Parallelism bounds the goroutines of one Write; 0 means
	// DefaultParallelism.
	Parallelism int
	// Logger gets a warning naming each stored alert, incident or incident
	// index that did not parse and was moved aside (store.MoveAside) and
	// rebuilt; nil means slog.Default().
	Logger *slog.Logger
	// Revisions, when set, is told of every alert revision (an outbox, see
	// RevisionLog): nil records nothing.
	Revisions RevisionLog
	// MaxKnownBytes bounds the alert documents the Writer keeps after
	// writing them, to merge new evidence into without reading them back;
	// 0 means DefaultMaxKnownBytes, negative keeps none.
	MaxKnownBytes int

	known      *knownAlerts // see known.go; made on first use
	stateCache *stateCaches // incident indexes and incidents, likewise
}

// Revision is one stored version of an alert: its id, its Revision number
// and the document exactly as stored.
type Revision struct {
	AlertId  string
	Revision int
	Doc      []byte
}

// RevisionLog records alert revisions for delivery, idempotently by
// (AlertId, Revision): recording one twice is a no-op. WriteStored records
// the current revision of every alert of a call before it returns (so before
// the pipeline marks the blob done), and, before it replaces a stored
// revision, that revision: a revision whose own Record was lost to a crash
// is recorded by the writer that supersedes it, so none is skipped.
type RevisionLog interface {
	Record(ctx context.Context, revs []Revision) error
}

// pending is one alert of a Write call on its way to storage.
type pending struct {
	in      Document // the evidence of this call
	doc     Document // in merged into the stored alert
	etag    string   // of the stored alert; "" when absent
	changed bool     // doc differs from the stored alert
	// rev and raw are the stored alert's Revision and bytes (0, nil when
	// absent); after store, the revision and bytes left in storage.
	rev int
	raw []byte
	// recorded: revision rev is known to be in the RevisionLog (this
	// Writer recorded it), so it need not be recorded again.
	recorded bool
}

// batch is the state of one Write call shared by its steps.
type batch struct {
	mu sync.Mutex
	// incs caches incidents read while assigning, for the update step.
	incs map[string]readIncident
}

type readIncident struct {
	inc  *Incident // nil when absent
	etag string
}

// Write stores each alert: created if absent, else merged into the stored
// one (If-Match, retried on conflict); an alert whose stored form already
// holds everything is not rewritten. When the rule creates incidents, each
// alert is attached to exactly one incident. It returns how many alert
// blobs it created or changed.
//
// The work is done per call, not per alert, in an order that a crash at
// any point followed by a redelivery completes to the same documents:
//  1. merge into the stored alerts, as far as possible from what the
//     Writer knows without a read (known.go: an alert it does not know of
//     is new, one it wrote is merged into the document it kept);
//  2. for alerts without an incident, claim one in each grouping key's
//     index: one read-modify-write per key, If-Match (see incidentIndex);
//  3. write the alerts with their IncidentId (in parallel, create-if-absent
//     or If-Match). This is the commit: a stored alert's IncidentId is
//     never changed, so a writer that loses the race adopts the winner's;
//  4. update each incident once with all its alerts of the call, including
//     alerts that were already stored (a crash may have come between 3 and 4);
//  5. record the revisions (RevisionLog) in one call.
//
// Alerts that another Write of the same Writer is writing at the time are
// done in a later round, once it is finished with them.
//
// A crash between 2 and 3 leaves a claim without its alert: the index
// remembers the claims of its last update, so a redelivery claims the same
// incidents; a claim lost otherwise (a concurrent writer, or a crash followed
// by another writer's update) only makes an incident close with fewer than
// MaxAlertsPerIncident alerts. No incident ever exceeds the cap.
//
// Unreadable stored objects are moved aside and rebuilt (see Logger). Write
// returns ctx.Err() promptly once ctx is done: every storage call and every
// parallel worker checks it first.
func (w *Writer) Write(ctx context.Context, docs []Document) (written int, err error) {
	_, written, err = w.WriteStored(ctx, docs)
	return written, err
}

// WriteResults files result rows as alerts (Group: one per result row
// when the rule's eventGroupingSettings say AlertPerResult, else one per
// account, interactive sign-in and NI IP) and writes them: the pipeline's
// alert sink.
func (w *Writer) WriteResults(ctx context.Context, rows []detect.Result) ([]Stored, int, error) {
	if w.Rule == nil {
		return nil, 0, errors.New("alert: Writer has no Rule")
	}
	return w.WriteStored(ctx, Group(w.Rule, rows, w.Rule.EventGrouping == rule.AlertPerResult))
}

// Stored describes one alert as a Write left it in storage.
type Stored struct {
	SystemAlertId string
	Blob          string // its name in the alerts container (BlobName)
	IncidentId    string
	StartTime     time.Time
	// ResultCount is the stored alert's evidence count, this call's rows
	// merged with what was there.
	ResultCount int
	// Revision is the stored alert's Revision (see Document.Revision).
	Revision int
}

// WriteStored is Write, also returning each alert as stored (one per
// distinct SystemAlertId of docs), so a caller can report exact totals
// without reading the alerts back.
func (w *Writer) WriteStored(ctx context.Context, docs []Document) (stored []Stored, written int, err error) {
	if w.Rule == nil {
		return nil, 0, errors.New("alert: Writer has no Rule")
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	// The same alert twice in one call is one alert.
	var ps []*pending
	byID := map[string]*pending{}
	for _, d := range docs {
		if p, ok := byID[d.SystemAlertId]; ok {
			p.in.Merge(d)
			continue
		}
		p := &pending{in: d}
		byID[d.SystemAlertId] = p
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.in.IncidentId = "" // the stored alert and the index decide
	}
	known := w.directory()
	if err := known.listDates(ctx, w, ps); err != nil {
		return nil, 0, err
	}
	// Alerts another Write of this Writer is writing (another blob in
	// flight) wait for it to finish with them: they are then merged into
	// what it stored and recorded, instead of both writes racing to a failed
	// condition, a read and a second record of the loser's revision.
	rest := ps
	for len(rest) > 0 {
		mine, busy, err := known.claim(ctx, rest)
		if err != nil {
			return nil, written, err
		}
		n, err := w.writeRound(ctx, known, mine)
		known.release(mine)
		written += n
		if err != nil {
			return nil, written, err
		}
		rest = busy
	}
	stored = make([]Stored, len(ps))
	for i, p := range ps {
		d := &p.doc
		stored[i] = Stored{d.SystemAlertId, BlobName(*d), d.IncidentId, d.StartTime, d.ExtendedProperties.ResultCount, p.rev}
	}
	return stored, written, nil
}

// writeRound writes ps, alerts no other Write of this Writer holds, in the
// steps Write describes, and returns how many it created or changed.
func (w *Writer) writeRound(ctx context.Context, known *knownAlerts, ps []*pending) (int, error) {
	b := &batch{incs: map[string]readIncident{}}
	// 1. Stored alerts: what this Writer knows of them (known.go), read only
	// when it knows they exist but not their bytes. An alert it does not
	// know of is new: it is created without being read first.
	if err := w.each(ctx, len(ps), func(ctx context.Context, i int) error {
		return w.wrapAlert(ps[i].in, w.loadKnown(ctx, known, ps[i]))
	}); err != nil {
		return 0, err
	}
	// 1b. Alerts absent from the container number their revisions above
	// every revision the outbox holds of them (see revisionFloors).
	if err := w.revisionFloors(ctx, ps); err != nil {
		return 0, err
	}
	// 2. Incident ids.
	if w.incidents() {
		if err := w.assign(ctx, b, ps); err != nil {
			return 0, err
		}
	}
	// Stored revisions about to be replaced that this Writer did not record
	// itself: their writer may have crashed before recording them. One
	// call for all of them, before any is replaced.
	if w.Revisions != nil {
		var old []Revision
		for _, p := range ps {
			if p.changed && p.etag != "" && !p.recorded {
				old = append(old, Revision{p.doc.SystemAlertId, p.rev, p.raw})
			}
		}
		if len(old) > 0 {
			if err := w.Revisions.Record(ctx, old); err != nil {
				return 0, fmt.Errorf("alert revisions: %w", err)
			}
			for _, p := range ps {
				if p.changed && p.etag != "" {
					p.recorded = true
				}
			}
		}
	}
	// 3. Alerts, committing their incident ids.
	var n atomic.Int64
	if err := w.each(ctx, len(ps), func(ctx context.Context, i int) error {
		wrote, err := w.store(ctx, ps[i])
		if wrote {
			n.Add(1)
		}
		return w.wrapAlert(ps[i].in, err)
	}); err != nil {
		return int(n.Load()), err
	}
	// 4. Incidents, once each.
	if w.incidents() {
		if err := w.updateIncidents(ctx, b, ps); err != nil {
			return int(n.Load()), err
		}
	}
	// 5. The revisions, for delivery: each alert's current one, written now
	// or before (a crash may have come between 3 and here), unless this
	// Writer recorded it already.
	if w.Revisions != nil {
		revs := make([]Revision, 0, len(ps))
		for _, p := range ps {
			if !p.recorded {
				revs = append(revs, Revision{p.doc.SystemAlertId, p.rev, p.raw})
			}
		}
		if len(revs) > 0 {
			if err := w.Revisions.Record(ctx, revs); err != nil {
				return int(n.Load()), fmt.Errorf("alert revisions: %w", err)
			}
		}
		for _, p := range ps {
			p.recorded = true
		}
	}
	for _, p := range ps {
		known.remember(p, w.Revisions == nil)
	}
	return int(n.Load()), nil
}

func (w *Writer) wrapAlert(d Document, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("alert %s: %w", w.Blobs.URL(w.AlertsContainer, BlobName(d)), err)
}

func (w *Writer) incidents() bool {
	return w.Rule.IncidentConfiguration.CreateIncident && w.IncidentsContainer != ""
}

func (w *Writer) cap() int { return cmp.Or(w.MaxAlertsPerIncident, MaxAlertsPerIncident) }

func (w *Writer) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

// each runs fn(0..n-1) on at most Parallelism goroutines. The first error
// stops the others (through their ctx) and is returned; when ctx is done,
// no new call starts and ctx.Err() is returned.
func (w *Writer) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, inner := errgroup.WithContext(ctx)
	g.SetLimit(max(cmp.Or(w.Parallelism, DefaultParallelism), 1))
	for i := range n {
		if inner.Err() != nil {
			break
		}
		g.Go(func() error { return fn(inner, i) })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// read and writeDoc are the Store's, refusing to start once ctx is done.
func (w *Writer) read(ctx context.Context, container, name string) ([]byte, store.Properties, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Properties{}, err
	}
	return w.Blobs.Read(ctx, container, name)
}

// writeDoc writes v as JSON, returning what it wrote and the blob's new
// properties.
func (w *Writer) writeDoc(ctx context.Context, container, name string, v any, cond store.Condition) ([]byte, store.Properties, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Properties{}, err
	}
	// Incidents stay indented: analysts read and edit them by hand.
	data, err := marshal(v, "  ")
	if err != nil {
		return nil, store.Properties{}, err
	}
	props, err := w.Blobs.Write(ctx, container, name, data, cond)
	return data, props, err
}

// setAside moves an unparseable stored object out of the way so it can be
// rebuilt, and reports it by URL.
func (w *Writer) setAside(ctx context.Context, container, name, etag string, perr error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	aside, err := store.MoveAside(ctx, w.Blobs, container, name, etag)
	if err != nil {
		return err
	}
	w.logger().Warn("unreadable stored object moved aside and rebuilt",
		"blob", w.Blobs.URL(container, name), "moved_to", w.Blobs.URL(container, aside), "error", perr.Error())
	return nil
}

// load reads p's stored alert and merges p's evidence into it.
func (w *Writer) load(ctx context.Context, p *pending) error {
	name := BlobName(p.in)
	rebuilt := false
	for range maxAttempts {
		data, props, err := w.read(ctx, w.AlertsContainer, name)
		switch {
		case errors.Is(err, store.ErrNotExist):
			p.doc, p.etag, p.changed, p.rev, p.raw, p.recorded = p.in, "", true, 0, nil, false
			if rebuilt {
				// The set-aside alert had revisions whose number is lost:
				// continue above any it can have had, so no revision
				// number is reused for other content.
				p.rev = int(time.Now().Unix())
			}
			return nil
		case err != nil:
			return err
		}
		var stored Document
		if perr := json.Unmarshal(data, &stored); perr != nil {
			if err := w.setAside(ctx, w.AlertsContainer, name, props.ETag, fmt.Errorf("alert %s: %v", w.Blobs.URL(w.AlertsContainer, name), perr)); err != nil {
				return err
			}
			rebuilt = true
			continue // gone now (or replaced by another writer): read again
		}
		p.rev, p.raw, p.recorded = stored.Revision, data, false
		p.changed = stored.Merge(p.in)
		p.doc, p.etag = stored, props.ETag
		return nil
	}
	return fmt.Errorf("gave up after %d attempts", maxAttempts)
}

// store writes p's alert unless the stored one holds it all; on a conflict
// it merges into the winner's version, adopting its IncidentId.
func (w *Writer) store(ctx context.Context, p *pending) (bool, error) {
	name := BlobName(p.in)
	for range maxAttempts {
		if !p.changed {
			return false, nil
		}
		cond := store.Condition{IfNoneMatch: "*"}
		if p.etag != "" {
			cond = store.Condition{IfMatch: p.etag}
			// The stored revision is about to be replaced: make sure it
			// is recorded (its writer may have crashed before doing so).
			// WriteStored recorded those it read beforehand; this is
			// for a version read after a conflict.
			if w.Revisions != nil && !p.recorded {
				if err := w.Revisions.Record(ctx, []Revision{{p.doc.SystemAlertId, p.rev, p.raw}}); err != nil {
					return false, fmt.Errorf("alert revision %d: %w", p.rev, err)
				}
				p.recorded = true
			}
		}
		p.doc.Revision = p.rev + 1
		if err := ctx.Err(); err != nil {
			return false, err
		}
		// Compact, straight from MarshalJSON: encoding/json would validate,
		// compact and indent the bytes again (a third of a noisy hour's
		// alert-writing CPU).
		data, err := p.doc.MarshalJSON()
		if err != nil {
			return false, err
		}
		props, err := w.Blobs.Write(ctx, w.AlertsContainer, name, data, cond)
		if err == nil {
			p.rev, p.raw, p.changed, p.etag, p.recorded = p.doc.Revision, data, false, props.ETag, false
			return true, nil
		}
		if !errors.Is(err, store.ErrConditionNotMet) {
			return false, err
		}
		// Another writer got there first: merge into theirs.
		mine := p.doc
		if err := w.load(ctx, p); err != nil {
			return false, err
		}
		if p.etag == "" {
			// Gone since it was known (deleted by hand): created again
			// above its recorded revisions, as in Write's step 1b.
			if err := w.revisionFloors(ctx, []*pending{p}); err != nil {
				return false, err
			}
		}
		if p.doc.IncidentId == "" && mine.IncidentId != "" {
			p.doc.IncidentId, p.changed = mine.IncidentId, true
		}
	}
	return false, fmt.Errorf("gave up after %d conflicting updates", maxAttempts)
}
