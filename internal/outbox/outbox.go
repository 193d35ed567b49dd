// Package outbox delivers alert revisions to sinks (Sentinel's Logs
// Ingestion API, a webhook) at least once, with one stable idempotency key
// per revision, through entries in the state container:
//
//	outbox/revisions/<alertId>/<revision>.json   the alert document as stored (immutable)
//	outbox/<sink>/<alertId>/<revision>.json      one Entry per sink: its delivery state
//	outbox-targets/<sink>.json                   a target that answered 410 Gone
//
// Record writes both, create-if-absent, in the step that writes the alert
// (before the pipeline marks the export blob done): a crash before it is
// repaired by the redelivery of the blob, which records the same revision
// again, or by the next writer of the alert, which records the stored
// revision before replacing it (alert.RevisionLog). Deliver leases due
// entries (If-Match: Attempts+1, NextAttempt = now+Lease), sends them, and
// marks each delivered or failed (If-Match the lease's ETag): a crash while
// sending leaves the lease to expire and the entry is sent again, with the
// same key. An entry that keeps failing backs off (honouring Retry-After)
// and becomes failed after MaxAttempts attempts with its last error; a 4xx
// that no retry can fix fails it at once. Sinks are delivered independently:
// one failing never delays another, nor detection.
package outbox

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Entry states.
type State string

const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Failed    State = "failed" // after MaxAttempts, or refused for good; see Redeliver
)

// Entry is the delivery state of one alert revision for one sink.
type Entry struct {
	Sink     string `json:"Sink"`
	AlertId  string `json:"AlertId"`
	Revision int    `json:"Revision"`
	// Key is the idempotency key the receiver dedups on: the same for every
	// attempt of this revision, to every sink.
	Key         string    `json:"Key"`
	State       State     `json:"State"`
	Attempts    int       `json:"Attempts"`
	Created     time.Time `json:"Created"`
	NextAttempt time.Time `json:"NextAttempt"`
	LastAttempt time.Time `json:"LastAttempt,omitzero"`
	Delivered   time.Time `json:"Delivered,omitzero"`
	LastError   string    `json:"LastError,omitempty"`

	etag string
}

// Key is the idempotency key of an alert revision.
func Key(alertID string, revision int) string { return alertID + "-" + strconv.Itoa(revision) }

// Item is one revision handed to a Sink.
type Item struct {
	AlertId  string
	Revision int
	Key      string
	Doc      []byte // the alert document (JSON) as stored
	Attempt  int    // 1 for the first
}

// Result is a Sink's answer for one Item. The zero value is success.
type Result struct {
	Err error
	// RetryAfter is the receiver's Retry-After: no attempt before it.
	RetryAfter time.Duration
	// Permanent fails the entry now: a retry cannot help (a 4xx other than
	// 408 or 429, a redirect).
	Permanent bool
	// Gone means the target answered 410 Gone: nothing more is sent to it
	// until it changes (Sink.Target); the entry stays pending.
	Gone bool
}

// Sink sends revisions somewhere.
type Sink interface {
	// Name names the sink in entry paths: lower case letters and digits.
	Name() string
	// Target fingerprints where the sink sends, without secrets: a Gone
	// target is skipped until the configuration names another.
	Target() string
	// Send sends items (at most MaxPerCall) and returns one Result per item,
	// in order. It must return within ctx.
	Send(ctx context.Context, items []Item) []Result
}

// Defaults of Outbox's limits.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 30 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultLease       = 2 * time.Minute
	DefaultMaxPerCall  = 500
	parallelism        = 8
	markTimeout        = 30 * time.Second
)

// Outbox records revisions and delivers them to Sinks.
type Outbox struct {
	Store     store.Store
	Container string // the state container
	Sinks     []Sink
	// MaxAttempts before an entry is failed; Backoff doubles from its value
	// up to MaxBackoff between attempts; Lease is how long a delivery may
	// take before another deliverer may retry it; MaxPerCall bounds the
	// entries one Deliver sends per sink. Zero values take the defaults.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	Lease               time.Duration
	MaxPerCall          int
	Logger              *slog.Logger
	Now                 func() time.Time
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Outbox) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// EnsureContainers creates the state container.
func (o *Outbox) EnsureContainers(ctx context.Context) error {
	return o.Store.EnsureContainer(ctx, o.Container)
}

func revisionName(alertID string, rev int) string {
	return fmt.Sprintf("outbox/revisions/%s/%06d.json", alertID, rev)
}

func entryName(sink, alertID string, rev int) string {
	return fmt.Sprintf("outbox/%s/%s/%06d.json", sink, alertID, rev)
}

func targetName(sink string) string { return "outbox-targets/" + sink + ".json" }

// Fingerprint is a Target for a secret-bearing address: a hash prefix.
func Fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// Record writes, for each revision, its document and an entry per sink,
// create-if-absent: recording a revision again is a no-op. It is the
// alert.RevisionLog of the alert Writer.
func (o *Outbox) Record(ctx context.Context, revs []alert.Revision) error {
	if len(o.Sinks) == 0 {
		return nil
	}
	now := o.now().UTC()
	return each(ctx, len(revs), func(ctx context.Context, i int) error {
		r := revs[i]
		if r.AlertId == "" || len(r.Doc) == 0 {
			return fmt.Errorf("outbox: revision %d of %q has no document", r.Revision, r.AlertId)
		}
		if err := o.create(ctx, revisionName(r.AlertId, r.Revision), r.Doc); err != nil {
			return err
		}
		for _, s := range o.Sinks {
			e := Entry{Sink: s.Name(), AlertId: r.AlertId, Revision: r.Revision, Key: Key(r.AlertId, r.Revision),
				State: Pending, Created: now, NextAttempt: now}
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := o.create(ctx, entryName(s.Name(), r.AlertId, r.Revision), data); err != nil {
				return err
			}
		}
		return nil
	})
}

func (o *Outbox) create(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := o.Store.Write(ctx, o.Container, name, data, store.Condition{IfNoneMatch: "*"})
	if err != nil && !errors.Is(err, store.ErrConditionNotMet) {
		return fmt.Errorf("outbox %s: %w", o.Store.URL(o.Container, name), err)
	}
	return nil
}

// Ref names one alert revision.
type Ref struct {
	AlertId  string
	Revision int
}

// Report says what one Deliver did, per sink.
type Report struct {
	Sinks []SinkReport
}

// SinkReport is one sink's part of a Report.
type SinkReport struct {
	Sink      string
	Due       int // pending entries due now (up to MaxPerCall)
	Delivered int
	Retrying  int // failed this time, to be retried
	Failed    int // failed for good this time
	// Skipped are due entries another deliverer holds, or held back by a
	// Gone target.
	Skipped int
	// Latency is, per revision delivered, the time from its Record to its
	// delivery.
	Latency []time.Duration
	Err     error // what kept the sink from delivering at all
}

// Delivered counts the revisions delivered to all sinks.
func (r Report) Delivered() (n int) {
	for _, s := range r.Sinks {
		n += s.Delivered
	}
	return n
}

// Log writes the report as one line per sink that had work.
func (r Report) Log(l *slog.Logger) {
	for _, s := range r.Sinks {
		if s.Due == 0 && s.Err == nil {
			continue
		}
		attrs := []any{slog.String("sink", s.Sink), slog.Int("due", s.Due), slog.Int("delivered", s.Delivered),
			slog.Int("retrying", s.Retrying), slog.Int("failed", s.Failed), slog.Int("skipped", s.Skipped)}
		if len(s.Latency) > 0 {
			attrs = append(attrs, slog.Duration("max_latency", slices.Max(s.Latency)))
		}
		switch {
		case s.Err != nil:
			l.Error("delivery failed", append(attrs, slog.String("error", s.Err.Error()))...)
		case s.Retrying > 0 || s.Failed > 0:
			l.Warn("delivery incomplete", attrs...)
		default:
			l.Info("delivered", attrs...)
		}
	}
}

// Deliver sends the due pending entries of every sink, at most MaxPerCall
// per sink, the sinks in parallel. Storage errors of one sink are in its
// SinkReport; the error is ctx's.
func (o *Outbox) Deliver(ctx context.Context) (Report, error) {
	return o.deliver(ctx, nil)
}

// DeliverRefs is Deliver for the named revisions only (those a blob just
// produced): no listing.
func (o *Outbox) DeliverRefs(ctx context.Context, refs []Ref) (Report, error) {
	if refs == nil {
		refs = []Ref{}
	}
	return o.deliver(ctx, refs)
}

func (o *Outbox) deliver(ctx context.Context, refs []Ref) (Report, error) {
	rep := Report{Sinks: make([]SinkReport, len(o.Sinks))}
	var wg sync.WaitGroup
	for i, s := range o.Sinks {
		wg.Go(func() {
			sr := SinkReport{Sink: s.Name()}
			sr.Err = o.deliverSink(ctx, s, refs, &sr)
			rep.Sinks[i] = sr
		})
	}
	wg.Wait()
	return rep, ctx.Err()
}

func (o *Outbox) deliverSink(ctx context.Context, s Sink, refs []Ref, sr *SinkReport) error {
	now := o.now().UTC()
	due, err := o.due(ctx, s.Name(), refs, now)
	if err != nil {
		return err
	}
	sr.Due = len(due)
	if len(due) == 0 {
		return nil
	}
	gone, err := o.gone(ctx, s)
	if err != nil {
		return err
	}
	if gone {
		sr.Skipped = len(due)
		o.logger().Warn("delivery held: the sink's target answered 410 Gone; configure another to resume", slog.String("sink", s.Name()), slog.Int("pending", len(due)))
		return nil
	}
	// Lease: count the attempt before making it, so a crash counts too.
	leased := make([]*Entry, len(due))
	if err := each(ctx, len(due), func(ctx context.Context, i int) error {
		e := *due[i]
		e.Attempts++
		e.LastAttempt, e.NextAttempt = now, now.Add(cmp.Or(o.Lease, DefaultLease))
		ok, err := o.update(ctx, &e)
		if ok {
			leased[i] = &e
		}
		return err
	}); err != nil {
		return err
	}
	var items []Item
	var held []*Entry
	for _, e := range leased {
		if e == nil {
			sr.Skipped++
			continue
		}
		held = append(held, e)
	}
	docs := make([][]byte, len(held))
	if err := each(ctx, len(held), func(ctx context.Context, i int) error {
		data, _, err := o.Store.Read(ctx, o.Container, revisionName(held[i].AlertId, held[i].Revision))
		if errors.Is(err, store.ErrNotExist) {
			return nil // failed below
		}
		docs[i] = data
		return err
	}); err != nil {
		return err
	}
	var sent []*Entry
	for i, e := range held {
		if docs[i] == nil {
			e.State, e.LastError = Failed, "the revision's document "+revisionName(e.AlertId, e.Revision)+" is missing"
			if _, err := o.update(ctx, e); err != nil {
				return err
			}
			sr.Failed++
			continue
		}
		items = append(items, Item{AlertId: e.AlertId, Revision: e.Revision, Key: e.Key, Doc: docs[i], Attempt: e.Attempts})
		sent = append(sent, e)
	}
	if len(items) == 0 {
		return nil
	}
	results := s.Send(ctx, items)
	if len(results) != len(items) {
		return fmt.Errorf("outbox: sink %s answered %d results for %d items", s.Name(), len(results), len(items))
	}
	done := o.now().UTC()
	var goneOnce sync.Once
	var delivered, retrying, failed, markErrs atomic.Int64
	var mu sync.Mutex
	// Mark what was sent even if ctx ends now: an unmarked delivery is sent
	// again once its lease expires.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	callerDone := ctx.Err
	err = each(mctx, len(sent), func(ctx context.Context, i int) error {
		e, r := sent[i], results[i]
		switch {
		case r.Err == nil:
			e.State, e.Delivered, e.LastError, e.NextAttempt = Delivered, done, "", time.Time{}
		case callerDone() != nil && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)):
			// Cut short by the caller's time bound, not the sink's fault:
			// due again at once, the attempt not counted.
			e.Attempts--
			e.LastError, e.NextAttempt = r.Err.Error(), done
		case r.Gone:
			goneOnce.Do(func() {
				o.logger().Error("sink target answered 410 Gone: delivery to it stops until another is configured",
					slog.String("sink", s.Name()), slog.String("target", s.Target()), slog.String("error", r.Err.Error()))
				o.setGone(ctx, s)
			})
			e.Attempts-- // not the entry's fault
			e.LastError, e.NextAttempt = r.Err.Error(), done.Add(o.backoff(1, 0))
		case r.Permanent || e.Attempts >= cmp.Or(o.MaxAttempts, DefaultMaxAttempts):
			e.State, e.LastError = Failed, r.Err.Error()
		default:
			e.LastError, e.NextAttempt = r.Err.Error(), done.Add(o.backoff(e.Attempts, r.RetryAfter))
		}
		ok, err := o.update(ctx, e)
		if err != nil {
			// Unmarked: sent again after the lease, under the same key.
			// The other marks go on.
			markErrs.Add(1)
			o.logger().Warn("delivery not marked; it is sent again after its lease", slog.String("sink", s.Name()),
				slog.String("key", e.Key), slog.String("error", err.Error()))
			return nil
		}
		if !ok {
			return nil // lost the lease: whoever holds it now decides
		}
		switch {
		case e.State == Delivered:
			delivered.Add(1)
			mu.Lock()
			sr.Latency = append(sr.Latency, done.Sub(e.Created))
			mu.Unlock()
		case e.State == Failed:
			failed.Add(1)
			o.logger().Error("delivery failed for good", slog.String("sink", s.Name()), slog.String("key", e.Key),
				slog.Int("attempts", e.Attempts), slog.String("error", e.LastError))
		default:
			retrying.Add(1)
		}
		return nil
	})
	sr.Delivered, sr.Retrying, sr.Failed = int(delivered.Load()), int(retrying.Load()), sr.Failed+int(failed.Load())
	if err == nil && markErrs.Load() > 0 {
		err = fmt.Errorf("outbox: %d deliveries to %s not marked (sent again after their lease)", markErrs.Load(), s.Name())
	}
	return err
}

// backoff is the wait after attempt n: Backoff doubled per attempt up to
// MaxBackoff, with 20% jitter, and never less than retryAfter.
func (o *Outbox) backoff(n int, retryAfter time.Duration) time.Duration {
	d := cmp.Or(o.Backoff, DefaultBackoff)
	maxB := cmp.Or(o.MaxBackoff, DefaultMaxBackoff)
	for i := 1; i < n && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return max(d, retryAfter)
}

// due reads the sink's pending entries that are due (the named ones, or
// all), at most MaxPerCall, oldest first.
func (o *Outbox) due(ctx context.Context, sink string, refs []Ref, now time.Time) ([]*Entry, error) {
	var names []string
	if refs != nil {
		for _, r := range refs {
			names = append(names, entryName(sink, r.AlertId, r.Revision))
		}
	} else {
		err := o.Store.List(ctx, o.Container, "outbox/"+sink+"/", func(p store.Properties) error {
			names = append(names, p.Name)
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("outbox: list %s: %w", sink, err)
		}
	}
	entries, err := o.read(ctx, names)
	if err != nil {
		return nil, err
	}
	var due []*Entry
	for _, e := range entries {
		if e.State == Pending && !e.NextAttempt.After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *Entry) int { return a.Created.Compare(b.Created) })
	return due[:min(len(due), cmp.Or(o.MaxPerCall, DefaultMaxPerCall))], nil
}

// read reads entries by name; absent ones are left out, unreadable ones
// are logged and left out.
func (o *Outbox) read(ctx context.Context, names []string) ([]*Entry, error) {
	out := make([]*Entry, len(names))
	err := each(ctx, len(names), func(ctx context.Context, i int) error {
		data, props, err := o.Store.Read(ctx, o.Container, names[i])
		if errors.Is(err, store.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		e := new(Entry)
		if err := json.Unmarshal(data, e); err != nil {
			o.logger().Warn("unreadable outbox entry skipped", slog.String("blob", o.Store.URL(o.Container, names[i])), slog.String("error", err.Error()))
			return nil
		}
		e.etag = props.ETag
		out[i] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(e *Entry) bool { return e == nil }), nil
}

// update writes e If-Match its ETag; false when another writer changed it.
func (o *Outbox) update(ctx context.Context, e *Entry) (bool, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	props, err := o.Store.Write(ctx, o.Container, entryName(e.Sink, e.AlertId, e.Revision), data, store.Condition{IfMatch: e.etag})
	switch {
	case errors.Is(err, store.ErrConditionNotMet), errors.Is(err, store.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("outbox entry %s: %w", e.Key, err)
	}
	e.etag = props.ETag
	return true, nil
}

type goneMarker struct {
	Target string    `json:"Target"`
	Since  time.Time `json:"Since"`
}

func (o *Outbox) gone(ctx context.Context, s Sink) (bool, error) {
	data, _, err := o.Store.Read(ctx, o.Container, targetName(s.Name()))
	if errors.Is(err, store.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m goneMarker
	return json.Unmarshal(data, &m) == nil && m.Target == s.Target(), nil
}

func (o *Outbox) setGone(ctx context.Context, s Sink) {
	data, _ := json.Marshal(goneMarker{Target: s.Target(), Since: o.now().UTC()})
	if _, err := o.Store.Write(ctx, o.Container, targetName(s.Name()), data, store.Condition{}); err != nil {
		o.logger().Warn("could not record the gone target", slog.String("sink", s.Name()), slog.String("error", err.Error()))
	}
}

// Entries lists every entry of every sink (whatever the configured sinks),
// ordered by sink, alert and revision.
func (o *Outbox) Entries(ctx context.Context) ([]*Entry, error) {
	var names []string
	err := o.Store.List(ctx, o.Container, "outbox/", func(p store.Properties) error {
		if !strings.HasPrefix(p.Name, "outbox/revisions/") && strings.HasSuffix(p.Name, ".json") {
			names = append(names, p.Name)
		}
		return nil
	})
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return o.read(ctx, names)
}

// Redeliver makes every failed entry pending again, due now, with its
// attempts reset (its LastError kept until it is delivered). It returns how
// many it reset.
func (o *Outbox) Redeliver(ctx context.Context) (int, error) {
	entries, err := o.Entries(ctx)
	if err != nil {
		return 0, err
	}
	now := o.now().UTC()
	var n atomic.Int64
	err = each(ctx, len(entries), func(ctx context.Context, i int) error {
		e := entries[i]
		if e.State != Failed {
			return nil
		}
		e.State, e.Attempts, e.NextAttempt = Pending, 0, now
		ok, err := o.update(ctx, e)
		if ok {
			n.Add(1)
		}
		return err
	})
	return int(n.Load()), err
}

// each runs fn(0..n-1) on a few goroutines; the first error stops the rest.
func each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, inner := errgroup.WithContext(ctx)
	g.SetLimit(max(parallelism, 1))
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

var _ alert.RevisionLog = (*Outbox)(nil)

// Compact returns doc as compact JSON (the stored documents are indented);
// doc itself if it does not parse.
func Compact(doc []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, doc) != nil {
		return doc
	}
	return b.Bytes()
}
