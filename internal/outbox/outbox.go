// Package outbox delivers alert revisions to sinks (Sentinel's Logs
// Ingestion API, a webhook) at least once, with one stable idempotency key
// per revision, through batches in the state container:
//
//	outbox/revisions/<yyyy/mm/dd/hh>/<batch>.json   the revisions of one Record call: each alert document as stored (immutable)
//	outbox/<sink>/pending/<batch>.json              the batch's delivery state for one sink: one Entry per revision
//	outbox/<sink>/done/<batch>.json                 the same once no entry of it is pending
//	outbox-sinks/<sink>.json                        the sinks ever configured, and since when
//	outbox/<sink>/pending/held                      a target that answered 410 Gone: held, probed
//	outbox-pace/<sink>.json                         a paced sink's recent sends (see Pacer)
//
// Record writes one batch and one state per sink, unconditionally under a
// new name (no read, no create-if-absent), in the step that writes the
// alerts (before the pipeline marks the export blob done): a crash before it
// is repaired by the redelivery of the blob, which records the revisions
// again, or by the next writer of the alert, which records the stored
// revision before replacing it (alert.RevisionLog). Revisions are recorded
// whatever sinks this process has: a state is written for every sink of the
// roster (outbox-sinks/), so an operator's `process` without sink settings
// still records for the function's sinks, and the batch itself is what a
// sink added later is backfilled from (Backfill).
//
// Deliver lists only outbox/<sink>/pending/ (its cost grows with the pending
// work, not with what was delivered before), leases the due entries of each
// state (If-Match: Attempts+1, NextAttempt = now+Lease), sends them, and
// marks each (If-Match the lease's ETag); a state with nothing pending moves
// to done/. A crash while sending leaves the lease to expire and the entry
// is sent again, with the same key.
//
// Nothing is failed for an outage: a revision the sink did not take is
// retried on Schedule (the Standard Webhooks schedule, then daily), forever;
// while revisions wait, the sink is probed with one every ProbeInterval and
// the first success makes every waiting revision due at once. Only a
// revision the sink refuses on its own (Result.Permanent: a record the Logs
// Ingestion API rejects alone, a document that does not parse) is failed,
// with the reason; `tokenpivot alerts` shows it and --redeliver retries it.
// A 410 Gone holds the target: nothing is sent to it but one probe per
// GoneProbe, and a probe it accepts resumes delivery. Sinks are delivered
// independently: one failing never delays another, nor detection.
package outbox

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	Failed    State = "failed" // refused for good (Result.Permanent); see Redeliver
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
	// Config says LastError is a configuration error of the sink (a
	// redirect, a refusal of the credentials): retried, never failed.
	Config bool `json:"Config,omitempty"`

	// Held is set by Entries for a pending entry whose target is held (410).
	Held bool `json:"-"`
}

// Key is the idempotency key of an alert revision.
func Key(alertID string, revision int) string { return alertID + "-" + strconv.Itoa(revision) }

// Item is one revision handed to a Sink.
type Item struct {
	AlertId  string
	Revision int
	Key      string
	Doc      []byte // the alert document (JSON) as stored; it parses
	Attempt  int    // 1 for the first
}

// Result is a Sink's answer for one Item. The zero value is success.
type Result struct {
	Err error
	// RetryAfter is the receiver's Retry-After: no attempt before it.
	RetryAfter time.Duration
	// Permanent fails the entry now: the receiver refuses this revision on
	// its own and no retry can change it (a record the Logs Ingestion API
	// rejects alone). Never for an outage or a configuration error.
	Permanent bool
	// Gone means the target answered 410 Gone: it is held (only probed)
	// until it accepts a probe or the configuration names another.
	Gone bool
	// Config marks Err as a configuration error (a redirect, refused
	// credentials): retried on the schedule and reported as such.
	Config bool
}

// Sink sends revisions somewhere.
type Sink interface {
	// Name names the sink in entry paths: lower case letters and digits.
	Name() string
	// Target fingerprints where the sink sends, without secrets: a Gone
	// target is held until it accepts a probe or the configuration names
	// another.
	Target() string
	// Send sends items (at most MaxPerCall) and returns one Result per item,
	// in order. It must return within ctx.
	Send(ctx context.Context, items []Item) []Result
}

// Pacer is a Sink that takes at most PerMinute distinct AlertIds in any 60
// seconds (Sentinel's NRT rules raise at most 30 alerts a run). 0: unpaced.
type Pacer interface {
	PerMinute() int
}

// Defaults of Outbox's limits.
const (
	DefaultLease         = 2 * time.Minute
	DefaultMaxPerCall    = 500
	DefaultProbeInterval = 30 * time.Minute
	DefaultGoneProbe     = time.Hour
	parallelism          = 8
	markTimeout          = 30 * time.Second
	// recordedCap bounds the keys an Outbox remembers having recorded.
	recordedCap = 1 << 18
	// rosterTTL is how long the sink roster read by Record is trusted.
	rosterTTL = 5 * time.Minute
)

// DefaultSchedule is the wait after the n-th failed attempt (the last value
// repeats): the Standard Webhooks schedule (immediately, 5 s, 5 min, 30
// min, 2 h, 5 h, 10 h, 10 h: ~27.5 h over 8 attempts), then daily. The
// ProbeInterval resumes a recovered sink long before these waits end.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour, 24 * time.Hour}

// Outbox records revisions and delivers them to Sinks.
type Outbox struct {
	Store     store.Store
	Container string // the state container
	// AlertsContainer is where the alert documents are (to rebuild a lost
	// or garbled batch from); "" disables that rebuild.
	AlertsContainer string
	Sinks           []Sink
	// Schedule is the back-off per failed attempt (DefaultSchedule when
	// nil); ProbeInterval, how often a sink with waiting revisions is tried
	// with one; GoneProbe, how often a held (410) target is; Lease, how
	// long a delivery may take before another deliverer may retry it;
	// MaxPerCall bounds the entries one Deliver sends per sink.
	Schedule                 []time.Duration
	ProbeInterval, GoneProbe time.Duration
	// NewSinkWindow is how far back a sink configured for the first time
	// gets the revisions recorded before it (DefaultNewSinkWindow when 0).
	NewSinkWindow time.Duration
	Lease         time.Duration
	MaxPerCall    int
	Logger        *slog.Logger
	Now           func() time.Time
	// Sleep waits d or until ctx ends (a paced sink's wait); nil sleeps.
	Sleep func(ctx context.Context, d time.Duration) error

	mu         sync.Mutex
	recorded   map[string]struct{} // keys known to be in a batch
	top        map[string]int      // per AlertId, the highest revision known to be in a batch
	batches    map[string]bool     // batch ids read or written
	recording  map[string]bool     // keys a Record of this Outbox is writing
	learned    time.Time           // when learn last listed the batches
	roster     []string
	rosterAt   time.Time
	registered bool // the configured sinks are in the roster
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Outbox) sleep(ctx context.Context, d time.Duration) error {
	if o.Sleep != nil {
		return o.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// batch is what Record writes: the revisions of one call.
type batch struct {
	Id        string     `json:"Id"`
	Created   time.Time  `json:"Created"`
	Revisions []batchRev `json:"Revisions"`
}

type batchRev struct {
	AlertId  string          `json:"AlertId"`
	Revision int             `json:"Revision"`
	Doc      json.RawMessage `json:"Doc"`
}

// sinkState is one batch's delivery state for one sink.
type sinkState struct {
	Sink    string    `json:"Sink"`
	Batch   string    `json:"Batch"` // the batch id
	Created time.Time `json:"Created"`
	Entries []*Entry  `json:"Entries"`

	name string // where it was read
	etag string
}

func (st *sinkState) pending() bool {
	return slices.ContainsFunc(st.Entries, func(e *Entry) bool { return e.State == Pending })
}

func (st *sinkState) clone() *sinkState {
	c := *st
	c.Entries = make([]*Entry, len(st.Entries))
	for i, e := range st.Entries {
		ec := *e
		c.Entries[i] = &ec
	}
	return &c
}

const batchTime = "20060102T150405.000000000Z"

// newBatchID is time-ordered (names sort by creation) and unique.
func newBatchID(now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return now.UTC().Format(batchTime) + "-" + hex.EncodeToString(b[:])
}

func batchCreated(id string) (time.Time, bool) {
	stamp, _, _ := strings.Cut(id, "-")
	t, err := time.Parse(batchTime, stamp)
	return t, err == nil
}

func batchName(id string) string {
	t, ok := batchCreated(id)
	if !ok {
		return "outbox/revisions/unknown/" + id + ".json"
	}
	return "outbox/revisions/" + t.Format("2006/01/02/15/") + id + ".json"
}

func pendingName(sink, id string) string { return "outbox/" + sink + "/pending/" + id + ".json" }
func doneName(sink, id string) string    { return "outbox/" + sink + "/done/" + id + ".json" }

// targetName is listed with the pending states: a Deliver learns of a hold
// without a request of its own (nor a 404 when there is none).
func targetName(sink string) string { return "outbox/" + sink + "/pending/held" }
func rosterName(sink string) string { return "outbox-sinks/" + sink + ".json" }
func paceName(sink string) string   { return "outbox-pace/" + sink + ".json" }

// idOf is the batch id of a state's name.
func idOf(name string) string { return strings.TrimSuffix(path.Base(name), ".json") }

// Fingerprint is a Target for a secret-bearing address: a hash prefix.
func Fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// Record writes the revisions as one batch, and its state for every sink
// of the roster (the configured ones and any other ever configured): one
// write each, no read. A revision already in a batch is left out: those
// this Outbox recorded, and those of the batches other processes wrote in
// the last KnownWindow, which it learns by one listing (at most every
// learnEvery) and one read per batch new to it. So the writer's recording
// of a revision again (before replacing it, or of an unchanged alert) sends
// nothing twice, while a revision whose own recording was lost to a crash
// (in no batch) is recorded. It is the alert.RevisionLog of the alert
// Writer: one call per Write.
func (o *Outbox) Record(ctx context.Context, revs []alert.Revision) error {
	fresh := o.unrecorded(revs)
	if len(fresh) == 0 {
		return nil
	}
	if err := o.learn(ctx); err != nil {
		return err
	}
	if fresh = o.unrecorded(fresh); len(fresh) == 0 {
		return nil
	}
	// A concurrent Record of the same revisions waits for nothing: it
	// leaves them to this one, which returns its error to its own writer
	// (whose blob is then not done, and redone). Two racing between
	// unrecorded and reserve both record it: sent once (twins).
	o.reserve(fresh)
	defer o.release(fresh)
	now := o.now().UTC()
	b := batch{Id: newBatchID(now), Created: now}
	for _, r := range fresh {
		if r.AlertId == "" || len(r.Doc) == 0 {
			return fmt.Errorf("outbox: revision %d of %q has no document", r.Revision, r.AlertId)
		}
		if !json.Valid(r.Doc) {
			return fmt.Errorf("outbox: revision %d of %q: the document does not parse", r.Revision, r.AlertId)
		}
		b.Revisions = append(b.Revisions, batchRev{r.AlertId, r.Revision, Compact(r.Doc)})
	}
	sinks, err := o.rosterSinks(ctx)
	if err != nil {
		return err
	}
	// The states first, then the batch: a batch (what other processes
	// learn as recorded) always has its states.
	if err := each(ctx, len(sinks), func(ctx context.Context, i int) error {
		data, err := json.Marshal(newState(sinks[i], b))
		if err != nil {
			return err
		}
		return o.write(ctx, pendingName(sinks[i], b.Id), data, store.Condition{})
	}); err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := o.write(ctx, batchName(b.Id), data, store.Condition{}); err != nil {
		return err
	}
	o.mu.Lock()
	o.remember(b)
	o.mu.Unlock()
	return nil
}

// KnownWindow is how far back Record learns the batches of other
// processes; learnEvery, how often it lists them at most.
const (
	KnownWindow = 24 * time.Hour
	learnEvery  = 30 * time.Second
)

// unrecorded is revs without those known to be in a batch, or being
// recorded by a concurrent Record of this Outbox, once each.
func (o *Outbox) unrecorded(revs []alert.Revision) []alert.Revision {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []alert.Revision
	seen := map[string]bool{}
	for _, r := range revs {
		k := Key(r.AlertId, r.Revision)
		if _, ok := o.recorded[k]; ok || seen[k] || o.recording[k] {
			continue
		}
		seen[k] = true
		out = append(out, r)
	}
	return out
}

// reserve marks revs as being recorded (until release), so a concurrent
// Record of the same revision (two blobs finding one pair at once) leaves
// it to this one.
func (o *Outbox) reserve(revs []alert.Revision) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.recording == nil {
		o.recording = map[string]bool{}
	}
	for _, r := range revs {
		o.recording[Key(r.AlertId, r.Revision)] = true
	}
}

func (o *Outbox) release(revs []alert.Revision) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range revs {
		delete(o.recording, Key(r.AlertId, r.Revision))
	}
}

// remember notes b's revisions as recorded (o.mu held).
func (o *Outbox) remember(b batch) {
	if o.recorded == nil || len(o.recorded)+len(b.Revisions) > recordedCap {
		o.recorded = map[string]struct{}{}
	}
	if o.batches == nil {
		o.batches = map[string]bool{}
	}
	if o.top == nil || len(o.top)+len(b.Revisions) > recordedCap {
		o.top = map[string]int{}
	}
	o.batches[b.Id] = true
	for _, r := range b.Revisions {
		o.recorded[Key(r.AlertId, r.Revision)] = struct{}{}
		o.top[r.AlertId] = max(o.top[r.AlertId], r.Revision)
	}
}

// LastRevisions is, for each of ids that the outbox knows, the highest
// revision of it in a batch: those this Outbox recorded and those it
// learned of (the batches of the last KnownWindow), at the cost of Record's
// learning (one listing every learnEvery at most, one read per batch new to
// it), which Record would do anyway. The alert Writer creates an absent
// alert above it (alert.RevisionHistory): an alert document deleted by hand
// is recreated under a new revision number, which Record does not take for
// one already recorded. A revision older than that is not known: the alert
// recreated then starts from the container's base (alert.RevisionFloor).
func (o *Outbox) LastRevisions(ctx context.Context, ids []string) (map[string]int, error) {
	if err := o.learn(ctx); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		if top, ok := o.top[id]; ok {
			out[id] = top
		}
	}
	return out, nil
}

// learn reads the batches written since it last looked (the last
// KnownWindow the first time) that this Outbox does not know.
func (o *Outbox) learn(ctx context.Context) error {
	now := o.now().UTC()
	o.mu.Lock()
	from := o.learned
	if !from.IsZero() && now.Sub(from) < learnEvery {
		o.mu.Unlock()
		return nil
	}
	if from.IsZero() || now.Sub(from) > KnownWindow {
		from = now.Add(-KnownWindow)
	}
	o.mu.Unlock()
	var names []string
	for day := from.Truncate(24 * time.Hour); !day.After(now); day = day.Add(24 * time.Hour) {
		err := o.Store.List(ctx, o.Container, "outbox/revisions/"+day.Format("2006/01/02/"), func(p store.Properties) error {
			id := idOf(p.Name)
			o.mu.Lock()
			known := o.batches[id]
			o.mu.Unlock()
			// A little before from: a batch is named when it is begun.
			if t, ok := batchCreated(id); ok && !known && !t.Before(from.Add(-time.Minute)) {
				names = append(names, p.Name)
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("outbox: list batches: %w", err)
		}
	}
	// A garbled batch is skipped: its revisions are recorded again.
	if err := o.readBatches(ctx, names, func(b batch) {
		o.mu.Lock()
		o.remember(b)
		o.mu.Unlock()
	}); err != nil {
		return err
	}
	o.mu.Lock()
	o.learned = now
	o.mu.Unlock()
	return nil
}

// newState is b's state for sink: every revision pending, due now.
func newState(sink string, b batch) sinkState {
	st := sinkState{Sink: sink, Batch: b.Id, Created: b.Created}
	for _, r := range b.Revisions {
		st.Entries = append(st.Entries, &Entry{Sink: sink, AlertId: r.AlertId, Revision: r.Revision, Key: Key(r.AlertId, r.Revision),
			State: Pending, Created: b.Created, NextAttempt: b.Created})
	}
	return st
}

func (o *Outbox) write(ctx context.Context, name string, data []byte, cond store.Condition) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := o.Store.Write(ctx, o.Container, name, data, cond); err != nil {
		return fmt.Errorf("outbox %s: %w", o.Store.URL(o.Container, name), err)
	}
	return nil
}

type rosterEntry struct {
	Sink  string    `json:"Sink"`
	Since time.Time `json:"Since"`
}

// DefaultNewSinkWindow is how far back a sink configured for the first time
// is given the revisions recorded before it (see rosterSinks).
const DefaultNewSinkWindow = 24 * time.Hour

// rosterSinks is the names of the configured sinks and of every sink in the
// roster. With register (a deliverer), it registers the configured ones not
// in the roster: the defined start of a sink added later is the revisions
// recorded in the NewSinkWindow before (24 h: alerts written while no sink
// was configured, or before this one was, are delivered with no operator
// action), and everything after; older ones with Backfill.
func (o *Outbox) rosterSinks(ctx context.Context, register ...bool) ([]string, error) {
	reg := len(register) > 0 && register[0]
	o.mu.Lock()
	if !o.rosterAt.IsZero() && o.now().Sub(o.rosterAt) < rosterTTL && (!reg || o.registered) {
		r := o.roster
		o.mu.Unlock()
		return r, nil
	}
	o.mu.Unlock()
	names, err := o.Roster(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, r := range names {
		known[r.Sink] = true
	}
	out := slices.Collect(func(yield func(string) bool) {
		for _, r := range names {
			if !yield(r.Sink) {
				return
			}
		}
	})
	var added []Sink
	for _, s := range o.Sinks {
		if known[s.Name()] {
			continue
		}
		out = append(out, s.Name())
		if len(register) == 0 || !register[0] {
			continue
		}
		data, _ := json.Marshal(rosterEntry{Sink: s.Name(), Since: o.now().UTC()})
		_, err := o.Store.Write(ctx, o.Container, rosterName(s.Name()), data, store.Condition{IfNoneMatch: "*"})
		switch {
		case err == nil:
			added = append(added, s)
		case !errors.Is(err, store.ErrConditionNotMet):
			return nil, fmt.Errorf("outbox: register sink %s: %w", s.Name(), err)
		}
	}
	if len(added) > 0 {
		since := o.now().Add(-cmp.Or(o.NewSinkWindow, DefaultNewSinkWindow))
		n, err := o.backfill(ctx, added, since)
		if err != nil {
			return nil, fmt.Errorf("outbox: backfill of a new sink: %w", err)
		}
		for _, s := range added {
			o.logger().Info("new sink: it gets the revisions recorded since "+since.UTC().Format(time.RFC3339)+" and everything after (older: tokenpivot alerts --backfill --since)",
				slog.String("sink", s.Name()), slog.Int("backfilled", n[s.Name()]))
		}
	}
	if len(register) > 0 && register[0] && len(added) == 0 && len(o.Sinks) > 0 && slices.ContainsFunc(o.Sinks, func(s Sink) bool { return !known[s.Name()] }) {
		// Registered by another deliverer meanwhile: trusted next time.
		o.mu.Lock()
		o.rosterAt = time.Time{}
		o.mu.Unlock()
	}
	slices.Sort(out)
	o.mu.Lock()
	o.roster, o.rosterAt = out, o.now()
	o.registered = o.registered || reg
	o.mu.Unlock()
	return out, nil
}

// Roster lists the sinks ever configured with this state container, and
// when each was first.
func (o *Outbox) Roster(ctx context.Context) ([]rosterEntry, error) {
	var out []rosterEntry
	var names []string
	err := o.Store.List(ctx, o.Container, "outbox-sinks/", func(p store.Properties) error {
		names = append(names, p.Name)
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("outbox: list sinks: %w", err)
	}
	for _, n := range names {
		data, _, err := o.Store.Read(ctx, o.Container, n)
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return nil, err
		}
		var r rosterEntry
		if json.Unmarshal(data, &r) != nil || r.Sink == "" {
			r = rosterEntry{Sink: strings.TrimSuffix(path.Base(n), ".json")}
		}
		out = append(out, r)
	}
	return out, nil
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
	// held target or the sink's pace.
	Skipped int
	// Held says the target answered 410 Gone and is only probed.
	Held bool
	// Resumed counts waiting entries made due at once because the sink
	// took a delivery again.
	Resumed int
	// ConfigErr is the last configuration error the sink answered (a
	// redirect, refused credentials): its revisions are retried.
	ConfigErr string
	// Latency is, per revision delivered, the time from its Record to its
	// delivery.
	Latency []time.Duration
	Err     error // what kept the sink from delivering at all

	paced int // due revisions left for the pace's next minute
}

// add adds r, a later round of the same sink, to sr.
func (sr *SinkReport) add(r SinkReport) {
	sr.Due += r.Due
	sr.Delivered += r.Delivered
	sr.Retrying += r.Retrying
	sr.Failed += r.Failed
	sr.Resumed += r.Resumed
	sr.Latency = append(sr.Latency, r.Latency...)
	sr.Held = r.Held
	sr.ConfigErr = cmp.Or(r.ConfigErr, sr.ConfigErr)
	sr.Err = r.Err
	// Skipped counts what this Deliver left: the last round's.
	sr.Skipped = r.Skipped
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
		if s.Due == 0 && s.Err == nil && !s.Held {
			continue
		}
		attrs := []any{slog.String("sink", s.Sink), slog.Int("due", s.Due), slog.Int("delivered", s.Delivered),
			slog.Int("retrying", s.Retrying), slog.Int("failed", s.Failed), slog.Int("skipped", s.Skipped)}
		if len(s.Latency) > 0 {
			attrs = append(attrs, slog.Duration("max_latency", slices.Max(s.Latency)))
		}
		if s.Held {
			attrs = append(attrs, slog.Bool("held", true))
		}
		if s.ConfigErr != "" {
			attrs = append(attrs, slog.String("configuration_error", s.ConfigErr))
		}
		switch {
		case s.Err != nil:
			l.Error("delivery failed", append(attrs, slog.String("error", s.Err.Error()))...)
		case s.Retrying > 0 || s.Failed > 0 || s.Held:
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
	return o.deliver(ctx, nil, "")
}

// DeliverSink is Deliver for the configured sink named sink only, so that a
// caller can run each sink's rounds on its own: a sink that hangs never holds
// back another's next round (process does this; serve's calls are bounded).
func (o *Outbox) DeliverSink(ctx context.Context, sink string) (Report, error) {
	return o.deliver(ctx, nil, sink)
}

// DeliverRefs is Deliver for the named revisions only (those a blob just
// produced).
func (o *Outbox) DeliverRefs(ctx context.Context, refs []Ref) (Report, error) {
	if refs == nil {
		refs = []Ref{}
	}
	return o.deliver(ctx, refs, "")
}

// deliver delivers refs (nil: everything due) to every sink, or to the one
// named only when only is not "".
func (o *Outbox) deliver(ctx context.Context, refs []Ref, only string) (Report, error) {
	sinks := o.Sinks
	if only != "" {
		sinks = nil
		for _, s := range o.Sinks {
			if s.Name() == only {
				sinks = append(sinks, s)
			}
		}
	}
	rep := Report{Sinks: make([]SinkReport, len(sinks))}
	if len(sinks) > 0 {
		// Register the sinks, so that every recorder writes their states.
		if _, err := o.rosterSinks(ctx, true); err != nil {
			for i, s := range sinks {
				rep.Sinks[i] = SinkReport{Sink: s.Name(), Err: err}
			}
			return rep, ctx.Err()
		}
	}
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() {
			sr := SinkReport{Sink: s.Name()}
			// A paced sink takes its due revisions a minute's worth at a
			// time: go on while time is left (pace waits for room).
			for {
				r := SinkReport{Sink: s.Name()}
				r.Err = o.deliverSink(ctx, s, refs, &r)
				sr.add(r)
				if r.Err != nil || r.paced == 0 || r.Delivered == 0 || ctx.Err() != nil {
					break
				}
			}
			rep.Sinks[i] = sr
		})
	}
	wg.Wait()
	return rep, ctx.Err()
}

// mark writes the leased states back; one with nothing pending moves to
// done/. A lost lease leaves the state to its new holder.
func (o *Outbox) mark(ctx context.Context, sink string, leased []*sinkState) error {
	var errs []error
	var mu sync.Mutex
	each(ctx, len(leased), func(ctx context.Context, i int) error {
		st := leased[i]
		var err error
		if st.pending() {
			_, err = o.updateState(ctx, st)
		} else {
			err = o.retire(ctx, st)
		}
		if err != nil {
			o.logger().Warn("delivery not marked; it is sent again after its lease", slog.String("sink", sink),
				slog.String("state", st.name), slog.String("error", err.Error()))
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	if len(errs) > 0 {
		return fmt.Errorf("outbox: %d states of %s not marked (sent again after their lease): %w", len(errs), sink, errs[0])
	}
	return nil
}

// retire moves a state with nothing pending to done/: the copy first, then
// the pending one deleted If-Match (a crash between leaves both: the
// pending one is retired again by the next Deliver).
func (o *Outbox) retire(ctx context.Context, st *sinkState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := o.write(ctx, doneName(st.Sink, st.Batch), data, store.Condition{}); err != nil {
		return err
	}
	err = o.Store.Delete(ctx, o.Container, st.name, store.Condition{IfMatch: st.etag})
	if err != nil && !errors.Is(err, store.ErrNotExist) && !errors.Is(err, store.ErrConditionNotMet) {
		return err
	}
	return nil
}

// resume makes every waiting entry of the sink due now: the sink took a
// delivery, so the outage its back-offs wait out is over.
func (o *Outbox) resume(ctx context.Context, states, leased []*sinkState, now time.Time) (int, error) {
	skip := map[string]bool{}
	for _, st := range leased {
		skip[st.name] = true
	}
	var n int
	var mu sync.Mutex
	err := each(ctx, len(states), func(ctx context.Context, i int) error {
		st := states[i]
		if skip[st.name] {
			return nil
		}
		c, k := st.clone(), 0
		for _, e := range c.Entries {
			if e.State == Pending && e.NextAttempt.After(now) && e.LastError != "" {
				e.NextAttempt = now
				k++
			}
		}
		if k == 0 {
			return nil
		}
		ok, err := o.updateState(ctx, c)
		if ok {
			mu.Lock()
			n += k
			mu.Unlock()
		}
		return err
	})
	return n, err
}

func (o *Outbox) probeInterval() time.Duration { return cmp.Or(o.ProbeInterval, DefaultProbeInterval) }
func (o *Outbox) goneProbe() time.Duration     { return cmp.Or(o.GoneProbe, DefaultGoneProbe) }

// backoff is the wait after the n-th failed attempt: Schedule's n-th value
// (its last beyond it), with 10% jitter, and never less than retryAfter.
func (o *Outbox) backoff(n int, retryAfter time.Duration) time.Duration {
	sch := o.Schedule
	if len(sch) == 0 {
		sch = DefaultSchedule
	}
	d := sch[min(max(n, 1), len(sch))-1]
	d += time.Duration(mrand.Int64N(int64(d)/10 + 1))
	return max(d, retryAfter)
}

// docSet is the documents of the leased entries by key, and why the
// missing ones are missing.
type docSet map[string][]byte

func (d docSet) reason(key string) string {
	if r, ok := d["\x00"+key]; ok {
		return string(r)
	}
	return "the revision's document is lost (its batch is missing or does not parse, and the alert has moved on); not sent"
}

// docs reads the batch of each leased state. A batch that is missing or
// does not parse is set aside and its documents rebuilt from the alerts
// (a revision the alert has moved past cannot be, and fails with the
// reason); a document that does not parse is never sent.
func (o *Outbox) docs(ctx context.Context, leased []*sinkState) (docSet, error) {
	ids := map[string]bool{}
	for _, st := range leased {
		ids[st.Batch] = true
	}
	idl := slices.Sorted(func(yield func(string) bool) {
		for id := range ids {
			if !yield(id) {
				return
			}
		}
	})
	out := docSet{}
	var mu sync.Mutex
	var lost []string
	err := each(ctx, len(idl), func(ctx context.Context, i int) error {
		name := batchName(idl[i])
		data, props, err := o.Store.Read(ctx, o.Container, name)
		if errors.Is(err, store.ErrNotExist) {
			mu.Lock()
			lost = append(lost, idl[i])
			mu.Unlock()
			o.logger().Warn("outbox batch missing: rebuilt from the alerts", slog.String("blob", o.Store.URL(o.Container, name)))
			return nil
		}
		if err != nil {
			return err
		}
		var b batch
		if perr := json.Unmarshal(data, &b); perr != nil {
			aside, err := store.MoveAside(ctx, o.Store, o.Container, name, props.ETag)
			if err != nil && !errors.Is(err, store.ErrNotExist) {
				return err
			}
			o.logger().Warn("unreadable outbox batch moved aside: rebuilt from the alerts", slog.String("blob", o.Store.URL(o.Container, name)),
				slog.String("moved_to", o.Store.URL(o.Container, aside)), slog.String("error", perr.Error()))
			mu.Lock()
			lost = append(lost, idl[i])
			mu.Unlock()
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Revisions {
			out[Key(r.AlertId, r.Revision)] = r.Doc
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(lost) > 0 {
		var need []*Entry
		for _, st := range leased {
			if slices.Contains(lost, st.Batch) {
				need = append(need, st.Entries...)
			}
		}
		if err := o.rebuild(ctx, need, out); err != nil {
			return nil, err
		}
	}
	for k, doc := range out {
		if strings.HasPrefix(k, "\x00") {
			continue
		}
		if err := checkDoc(doc, k); err != nil {
			delete(out, k)
			out["\x00"+k] = []byte(err.Error() + "; not sent")
		}
	}
	return out, nil
}

// checkDoc says whether doc is an alert document of the revision key names.
func checkDoc(doc []byte, key string) error {
	var d struct {
		SystemAlertId string
		Revision      int
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return fmt.Errorf("the revision's document does not parse: %v", err)
	}
	if Key(d.SystemAlertId, d.Revision) != key {
		return fmt.Errorf("the revision's document is %s, not %s", Key(d.SystemAlertId, d.Revision), key)
	}
	return nil
}

// rebuild finds, for the entries of a lost batch, the alert documents that
// are still at that revision.
func (o *Outbox) rebuild(ctx context.Context, need []*Entry, out docSet) error {
	if o.AlertsContainer == "" || len(need) == 0 {
		return nil
	}
	want := map[string][]*Entry{}
	for _, e := range need {
		want[e.AlertId] = append(want[e.AlertId], e)
	}
	var names []string
	err := o.Store.List(ctx, o.AlertsContainer, "", func(p store.Properties) error {
		if id := strings.TrimSuffix(path.Base(p.Name), ".json"); want[id] != nil && strings.Count(p.Name, "/") == 3 {
			names = append(names, p.Name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return err
	}
	var mu sync.Mutex
	return each(ctx, len(names), func(ctx context.Context, i int) error {
		data, _, err := o.Store.Read(ctx, o.AlertsContainer, names[i])
		if errors.Is(err, store.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var d struct {
			SystemAlertId string
			Revision      int
		}
		if json.Unmarshal(data, &d) != nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range want[d.SystemAlertId] {
			if e.Revision == d.Revision {
				out[e.Key] = Compact(data)
			} else {
				out["\x00"+e.Key] = fmt.Appendf(nil, "the revision's document is lost (its outbox batch is missing or does not parse) and alert %s has moved on to revision %d, which is delivered in its place; not sent", e.AlertId, d.Revision)
			}
		}
		return nil
	})
}

// pendingStates reads the sink's pending states, and says whether its
// target is held. A state that does not parse is moved aside and rebuilt
// from its batch (every revision pending).
func (o *Outbox) pendingStates(ctx context.Context, sink string) ([]*sinkState, bool, error) {
	var names []string
	held := false
	err := o.Store.List(ctx, o.Container, "outbox/"+sink+"/pending/", func(p store.Properties) error {
		switch {
		case p.Name == targetName(sink):
			held = true
		case strings.HasSuffix(p.Name, ".json"):
			names = append(names, p.Name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return nil, false, fmt.Errorf("outbox: list %s: %w", sink, err)
	}
	states, err := o.readStates(ctx, names, true)
	return states, held, err
}

// readStates reads states by name; absent ones are left out; garbled ones
// are moved aside and rebuilt from their batch when repair is set, else
// left out with a warning.
func (o *Outbox) readStates(ctx context.Context, names []string, repair bool) ([]*sinkState, error) {
	out := make([]*sinkState, len(names))
	err := each(ctx, len(names), func(ctx context.Context, i int) error {
		st, err := o.readState(ctx, names[i], repair)
		out[i] = st
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(st *sinkState) bool { return st == nil }), nil
}

func (o *Outbox) readState(ctx context.Context, name string, repair bool) (*sinkState, error) {
	for range 3 {
		data, props, err := o.Store.Read(ctx, o.Container, name)
		if errors.Is(err, store.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		st := new(sinkState)
		perr := json.Unmarshal(data, st)
		if perr == nil && (st.Sink == "" || st.Batch == "" || slices.Contains(st.Entries, nil)) {
			perr = errors.New("not an outbox state")
		}
		if perr == nil {
			st.name, st.etag = name, props.ETag
			return st, nil
		}
		if !repair {
			o.logger().Warn("unreadable outbox state skipped", slog.String("blob", o.Store.URL(o.Container, name)), slog.String("error", perr.Error()))
			return nil, nil
		}
		aside, err := store.MoveAside(ctx, o.Store, o.Container, name, props.ETag)
		if errors.Is(err, store.ErrConditionNotMet) || errors.Is(err, store.ErrNotExist) {
			continue // changed meanwhile: read again
		}
		if err != nil {
			return nil, err
		}
		if err := o.rebuildState(ctx, name); err != nil {
			return nil, err
		}
		o.logger().Warn("unreadable outbox state moved aside and rebuilt from its batch", slog.String("blob", o.Store.URL(o.Container, name)),
			slog.String("moved_to", o.Store.URL(o.Container, aside)), slog.String("error", perr.Error()))
	}
	return nil, fmt.Errorf("outbox state %s: changed under every read", o.Store.URL(o.Container, name))
}

// rebuildState writes a fresh state for a set-aside one: its batch's
// revisions, all pending and due. Were some delivered already, they are
// sent again under their keys (at least once).
func (o *Outbox) rebuildState(ctx context.Context, name string) error {
	// outbox/<sink>/pending/<id>.json
	parts := strings.Split(name, "/")
	if len(parts) != 4 {
		return fmt.Errorf("outbox state %s: not a state's name", name)
	}
	sink, id := parts[1], idOf(name)
	data, _, err := o.Store.Read(ctx, o.Container, batchName(id))
	var b batch
	if err == nil {
		err = json.Unmarshal(data, &b)
	}
	if err != nil {
		// The batch is lost too: another sink's state of it names its
		// revisions (their documents come from the alerts at delivery).
		if b, err = o.siblingBatch(ctx, sink, id); err != nil {
			o.logger().Error("outbox state and its batch are both unreadable, and no other sink's state names its revisions",
				slog.String("state", o.Store.URL(o.Container, name)), slog.String("error", err.Error()))
			return nil
		}
	}
	b.Id = id
	st := newState(sink, b)
	now := o.now().UTC()
	for _, e := range st.Entries {
		e.NextAttempt = now
	}
	out, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = o.Store.Write(ctx, o.Container, name, out, store.Condition{IfNoneMatch: "*"})
	if errors.Is(err, store.ErrConditionNotMet) {
		return nil
	}
	return err
}

// siblingBatch is batch id as another sink's state of it names it: the
// revisions without their documents.
func (o *Outbox) siblingBatch(ctx context.Context, sink, id string) (batch, error) {
	roster, err := o.Roster(ctx)
	if err != nil {
		return batch{}, err
	}
	for _, s := range o.Sinks {
		roster = append(roster, rosterEntry{Sink: s.Name()})
	}
	for _, r := range roster {
		if r.Sink == sink {
			continue
		}
		for _, name := range []string{pendingName(r.Sink, id), doneName(r.Sink, id)} {
			data, _, err := o.Store.Read(ctx, o.Container, name)
			if err != nil {
				continue
			}
			var st sinkState
			if json.Unmarshal(data, &st) != nil || slices.Contains(st.Entries, nil) {
				continue
			}
			b := batch{Id: id, Created: st.Created}
			for _, e := range st.Entries {
				b.Revisions = append(b.Revisions, batchRev{AlertId: e.AlertId, Revision: e.Revision})
			}
			return b, nil
		}
	}
	return batch{}, errors.New("no other sink's state of the batch")
}

// updateState writes st If-Match its ETag; false when another writer
// changed it.
func (o *Outbox) updateState(ctx context.Context, st *sinkState) (bool, error) {
	data, err := json.Marshal(st)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	props, err := o.Store.Write(ctx, o.Container, st.name, data, store.Condition{IfMatch: st.etag})
	switch {
	case errors.Is(err, store.ErrConditionNotMet), errors.Is(err, store.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("outbox state %s: %w", st.name, err)
	}
	st.etag = props.ETag
	return true, nil
}

// Hold is a target held after a 410 Gone.
type Hold struct {
	Sink      string    `json:"Sink"`
	Target    string    `json:"Target"`
	Since     time.Time `json:"Since"`
	NextProbe time.Time `json:"NextProbe"`
	LastError string    `json:"LastError,omitempty"`
}

// held is s's hold, nil when its target is not held (a hold of another
// target, the configuration having changed, is dropped).
func (o *Outbox) held(ctx context.Context, s Sink) (*Hold, error) {
	data, props, err := o.Store.Read(ctx, o.Container, targetName(s.Name()))
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h Hold
	if json.Unmarshal(data, &h) != nil || h.Target != s.Target() {
		if err := o.Store.Delete(ctx, o.Container, targetName(s.Name()), store.Condition{IfMatch: props.ETag}); err != nil &&
			!errors.Is(err, store.ErrNotExist) && !errors.Is(err, store.ErrConditionNotMet) {
			return nil, err
		}
		return nil, nil
	}
	return &h, nil
}

func (o *Outbox) setHeld(ctx context.Context, s Sink, now time.Time, cause error) {
	h := Hold{Sink: s.Name(), Target: s.Target(), Since: now, NextProbe: now.Add(o.goneProbe())}
	if old, _ := o.held(ctx, s); old != nil {
		h.Since = old.Since
	}
	if cause != nil {
		h.LastError = cause.Error()
	}
	data, _ := json.Marshal(h)
	if _, err := o.Store.Write(ctx, o.Container, targetName(s.Name()), data, store.Condition{}); err != nil {
		o.logger().Warn("could not record the held target", slog.String("sink", s.Name()), slog.String("error", err.Error()))
	}
}

// Holds lists the held targets, whatever the configured sinks.
func (o *Outbox) Holds(ctx context.Context) ([]Hold, error) {
	var names []string
	err := o.Store.List(ctx, o.Container, "outbox/", func(p store.Properties) error {
		if strings.HasSuffix(p.Name, "/pending/held") && strings.Count(p.Name, "/") == 3 {
			names = append(names, p.Name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return nil, err
	}
	var out []Hold
	for _, n := range names {
		data, _, err := o.Store.Read(ctx, o.Container, n)
		if errors.Is(err, store.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var h Hold
		if json.Unmarshal(data, &h) == nil {
			if h.Sink == "" {
				h.Sink = strings.Split(n, "/")[1]
			}
			out = append(out, h)
		}
	}
	return out, nil
}

// paceState is a paced sink's sends of the last minute.
type paceState struct {
	Sends []paceSend `json:"Sends"`
}

type paceSend struct {
	At       time.Time `json:"At"`
	AlertIds int       `json:"AlertIds"`
}

// pace keeps at most perMinute distinct AlertIds sent to the sink in any
// 60 s, across deliverers (the sends are kept in outbox-pace/, If-Match):
// it waits (Sleep, within ctx) for room, takes what fits, and returns the
// keys to send now (a prefix of keys, whole AlertIds).
func (o *Outbox) pace(ctx context.Context, sink string, perMinute int, keys []string, twins map[string][]pick) ([]string, error) {
	name := paceName(sink)
	for attempt := 0; ; attempt++ {
		data, props, err := o.Store.Read(ctx, o.Container, name)
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return nil, err
		}
		var ps paceState
		json.Unmarshal(data, &ps) // garbled: starts afresh
		now := o.now().UTC()
		used := 0
		ps.Sends = slices.DeleteFunc(ps.Sends, func(s paceSend) bool { return !s.At.After(now.Add(-time.Minute)) })
		for _, s := range ps.Sends {
			used += s.AlertIds
		}
		room := perMinute - used
		if room <= 0 {
			// Wait for the oldest send of the window to leave it.
			wait := ps.Sends[0].At.Add(time.Minute).Sub(now) + time.Millisecond
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return nil, nil
			}
			if err := o.sleep(ctx, wait); err != nil {
				return nil, nil
			}
			continue
		}
		var take []string
		ids := map[string]bool{}
		for _, k := range keys {
			id := twins[k][0].st.Entries[twins[k][0].i].AlertId
			if !ids[id] && len(ids) == room {
				break
			}
			ids[id] = true
			take = append(take, k)
		}
		ps.Sends = append(ps.Sends, paceSend{At: now, AlertIds: len(ids)})
		out, _ := json.Marshal(ps)
		cond := store.Condition{IfNoneMatch: "*"}
		if props.ETag != "" {
			cond = store.Condition{IfMatch: props.ETag}
		}
		_, err = o.Store.Write(ctx, o.Container, name, out, cond)
		if errors.Is(err, store.ErrConditionNotMet) && attempt < 20 {
			continue // another deliverer took room: count again
		}
		if err != nil {
			return nil, err
		}
		return take, nil
	}
}

// Entries lists every entry of every sink (whatever the configured sinks),
// ordered by sink, alert and revision; a pending entry of a held target is
// marked Held. A state that does not parse is set aside and rebuilt.
func (o *Outbox) Entries(ctx context.Context) ([]*Entry, error) {
	states, err := o.allStates(ctx)
	if err != nil {
		return nil, err
	}
	holds, err := o.Holds(ctx)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, h := range holds {
		held[h.Sink] = true
	}
	var out []*Entry
	for _, st := range states {
		for _, e := range st.Entries {
			e.Held = e.State == Pending && held[e.Sink]
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *Entry) int {
		return cmp.Or(strings.Compare(a.Sink, b.Sink), strings.Compare(a.AlertId, b.AlertId), a.Revision-b.Revision)
	})
	return out, nil
}

// allStates reads every state, pending and done, of every sink.
func (o *Outbox) allStates(ctx context.Context) ([]*sinkState, error) {
	var names []string
	err := o.Store.List(ctx, o.Container, "outbox/", func(p store.Properties) error {
		parts := strings.Split(p.Name, "/")
		if len(parts) == 4 && parts[1] != "revisions" && (parts[2] == "pending" || parts[2] == "done") && strings.HasSuffix(p.Name, ".json") {
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
	states, err := o.readStates(ctx, names, true)
	if err != nil {
		return nil, err
	}
	// A state retired to done/ whose pending copy a crash left behind
	// shows once.
	done := map[string]bool{}
	for _, st := range states {
		if strings.Contains(st.name, "/done/") {
			done[st.Sink+"/"+st.Batch] = true
		}
	}
	return slices.DeleteFunc(states, func(st *sinkState) bool {
		return strings.Contains(st.name, "/pending/") && done[st.Sink+"/"+st.Batch]
	}), nil
}

// Redeliver makes every failed entry pending again, due now, with its
// attempts reset (its LastError kept until it is delivered), makes every
// entry waiting out a back-off due now, and releases every held target. It
// returns how many entries it made due.
func (o *Outbox) Redeliver(ctx context.Context) (int, error) {
	states, err := o.allStates(ctx)
	if err != nil {
		return 0, err
	}
	now := o.now().UTC()
	var n int
	var mu sync.Mutex
	err = each(ctx, len(states), func(ctx context.Context, i int) error {
		st, k := states[i].clone(), 0
		for _, e := range st.Entries {
			switch {
			case e.State == Failed:
				e.State, e.Attempts, e.NextAttempt = Pending, 0, now
				k++
			case e.State == Pending && e.NextAttempt.After(now):
				e.NextAttempt = now
				k++
			}
		}
		if k == 0 {
			return nil
		}
		if strings.Contains(st.name, "/done/") {
			// Back to pending/, then out of done/.
			data, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := o.write(ctx, pendingName(st.Sink, st.Batch), data, store.Condition{}); err != nil {
				return err
			}
			if err := o.Store.Delete(ctx, o.Container, st.name, store.Condition{IfMatch: st.etag}); err != nil && !errors.Is(err, store.ErrNotExist) {
				return err
			}
		} else if ok, err := o.updateState(ctx, st); !ok || err != nil {
			return err
		}
		mu.Lock()
		n += k
		mu.Unlock()
		return nil
	})
	if err != nil {
		return n, err
	}
	holds, err := o.Holds(ctx)
	if err != nil {
		return n, err
	}
	for _, h := range holds {
		if err := o.Store.Delete(ctx, o.Container, targetName(h.Sink), store.Condition{}); err != nil && !errors.Is(err, store.ErrNotExist) {
			return n, err
		}
	}
	return n, nil
}

// Backfill gives each configured sink the revisions recorded since the
// given time that it has no state for (recorded before it was configured,
// or while no sink was): every batch since then, pending and due now. It
// returns how many revisions it queued per sink.
func (o *Outbox) Backfill(ctx context.Context, since time.Time) (map[string]int, error) {
	if _, err := o.rosterSinks(ctx, true); err != nil {
		return nil, err
	}
	return o.backfill(ctx, o.Sinks, since)
}

func (o *Outbox) backfill(ctx context.Context, sinks []Sink, since time.Time) (map[string]int, error) {
	// The batches since then: one listing per day (batch names are dated).
	var batches []string
	now := o.now().UTC()
	for day := since.UTC().Truncate(24 * time.Hour); !day.After(now); day = day.Add(24 * time.Hour) {
		err := o.Store.List(ctx, o.Container, "outbox/revisions/"+day.Format("2006/01/02/"), func(p store.Properties) error {
			if t, ok := batchCreated(idOf(p.Name)); ok && !t.Before(since) {
				batches = append(batches, p.Name)
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return nil, err
		}
	}
	out := map[string]int{}
	if len(batches) == 0 {
		return out, nil
	}
	for _, s := range sinks {
		have := map[string]bool{}
		err := o.Store.List(ctx, o.Container, "outbox/"+s.Name()+"/", func(p store.Properties) error {
			have[idOf(p.Name)] = true
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return out, err
		}
		var mu sync.Mutex
		err = each(ctx, len(batches), func(ctx context.Context, i int) error {
			id := idOf(batches[i])
			if have[id] {
				return nil
			}
			data, _, err := o.Store.Read(ctx, o.Container, batches[i])
			if errors.Is(err, store.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			var b batch
			if err := json.Unmarshal(data, &b); err != nil {
				o.logger().Warn("unreadable outbox batch not backfilled", slog.String("blob", o.Store.URL(o.Container, batches[i])), slog.String("error", err.Error()))
				return nil
			}
			b.Id = id
			st := newState(s.Name(), b)
			now := o.now().UTC()
			for _, e := range st.Entries {
				e.NextAttempt = now
			}
			data, err = json.Marshal(st)
			if err != nil {
				return err
			}
			_, err = o.Store.Write(ctx, o.Container, pendingName(s.Name(), id), data, store.Condition{IfNoneMatch: "*"})
			if errors.Is(err, store.ErrConditionNotMet) {
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			out[s.Name()] += len(st.Entries)
			mu.Unlock()
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// MaxRevision is the highest revision of any alert the outbox holds a batch
// for (a recreated alerts container starts above it: revisions are never
// reused). It reads every batch: for the rare recreation only.
func (o *Outbox) MaxRevision(ctx context.Context) (int, error) {
	var names []string
	err := o.Store.List(ctx, o.Container, "outbox/revisions/", func(p store.Properties) error {
		names = append(names, p.Name)
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return 0, err
	}
	var mu sync.Mutex
	top := 0
	err = o.readBatches(ctx, names, func(b batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Revisions {
			top = max(top, r.Revision)
		}
	})
	return top, err
}

// readBatches reads the named batches in parallel and calls fn (from several
// goroutines) with each that parses, its Id set from its name; a batch gone
// since the listing or garbled is skipped (its revisions are recorded again,
// and delivery rebuilds what a garbled one held).
func (o *Outbox) readBatches(ctx context.Context, names []string, fn func(batch)) error {
	return each(ctx, len(names), func(ctx context.Context, i int) error {
		data, _, err := o.Store.Read(ctx, o.Container, names[i])
		if errors.Is(err, store.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var b batch
		if json.Unmarshal(data, &b) != nil {
			return nil
		}
		b.Id = idOf(names[i])
		fn(b)
		return nil
	})
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

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func mapsKeys(m map[*sinkState][]int) []*sinkState {
	out := make([]*sinkState, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *sinkState) int { return strings.Compare(a.name, b.name) })
	return out
}

var (
	_ alert.RevisionLog     = (*Outbox)(nil)
	_ alert.RevisionFloor   = (*Outbox)(nil)
	_ alert.RevisionHistory = (*Outbox)(nil)
)

// Compact returns doc as compact JSON (the stored documents are indented);
// doc itself if it does not parse.
func Compact(doc []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, doc) != nil {
		return doc
	}
	return b.Bytes()
}
