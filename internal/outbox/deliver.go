package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// pick is one due entry of a state.
type pick struct {
	st *sinkState
	i  int
}

// round is one delivery round of a sink, as its steps pass it on: choose
// fills it, lease, load, send and mark use it.
type round struct {
	sink Sink
	// now is when the round chose (the lease counts from it).
	now time.Time
	// states are the sink's pending states as listed; waiting, their
	// pending entries not due yet (backing off).
	states  []*sinkState
	waiting []pick
	// held is the target's hold (it answered 410 Gone); nil: not held.
	held *Hold
	// probe: the round sends one revision to see whether the sink takes
	// deliveries again.
	probe bool
	// keys are the revisions to send, oldest first, and twins each key's
	// entries (a revision recorded twice, by two processes, has two).
	keys  []string
	twins map[string][]pick
}

// leases are the states a round holds the lease of, and, by state name,
// the entries of each it sends.
type leases struct {
	states []*sinkState
	chosen map[string][]int
}

// outgoing are the items a round sends and, by key, the entries each marks.
type outgoing struct {
	items []Item
	to    map[string][]pick
}

// deliverSink delivers one round of the sink's due revisions (only those of
// refs when not nil), in the steps the package doc names: lease the due
// entries (choose picks them), load their documents, send them, and mark
// each by its result.
func (o *Outbox) deliverSink(ctx context.Context, s Sink, refs []Ref, sr *SinkReport) error {
	rd, err := o.choose(ctx, s, refs, sr)
	if err != nil || rd == nil {
		return err
	}
	l, err := o.lease(ctx, rd)
	if err != nil {
		return err
	}
	snt, err := o.load(ctx, rd, l, sr)
	if err != nil {
		return err
	}
	results, err := o.send(ctx, s, snt.items)
	if err != nil {
		return err
	}
	return o.markSent(ctx, rd, l, snt, results, sr)
}

// choose picks the round's revisions: the due entries (of refs when not
// nil), oldest first, one send per key, at most MaxPerCall and the sink's
// pace; a single probe when the target is held or every entry is backing
// off. It returns nil when there is nothing to send.
func (o *Outbox) choose(ctx context.Context, s Sink, refs []Ref, sr *SinkReport) (*round, error) {
	states, isHeld, err := o.pendingStates(ctx, s.Name())
	if err != nil {
		return nil, err
	}
	rd := &round{sink: s, now: o.now().UTC(), states: states}
	due, last := rd.split(refs)
	if isHeld {
		if rd.held, err = o.held(ctx, s); err != nil {
			return nil, err
		}
	}
	switch {
	case rd.held != nil:
		sr.Held = true
		if rd.now.Before(rd.held.NextProbe) || len(due)+len(rd.waiting) == 0 {
			sr.Due, sr.Skipped = len(due), len(due)
			if len(due) > 0 {
				o.logger().Warn("delivery held: the sink's target answered 410 Gone; it is probed, or configure another",
					slog.String("sink", s.Name()), slog.Int("pending", len(due)), slog.Time("next_probe", rd.held.NextProbe))
			}
			return nil, nil
		}
		// One revision as a probe of the held target.
		all := append(due, rd.waiting...)
		slices.SortFunc(all, byCreated)
		due, rd.probe = all[:1], true
	case len(due) == 0 && len(rd.waiting) > 0 && refs == nil && rd.now.Sub(last) >= o.probeInterval():
		// Nothing due but revisions waiting out a back-off: try the
		// oldest, so a sink that answers again resumes now, not when
		// the back-offs end.
		due, rd.probe = rd.waiting[:1], true
	}
	rd.group(due, cmp.Or(o.MaxPerCall, DefaultMaxPerCall))
	sr.Due = len(rd.keys)
	if len(rd.keys) == 0 {
		return nil, nil
	}
	if pc, ok := s.(Pacer); ok && pc.PerMinute() > 0 {
		if rd.keys, err = o.pace(ctx, s.Name(), pc.PerMinute(), rd.keys, rd.twins); err != nil {
			return nil, err
		}
		sr.paced = sr.Due - len(rd.keys)
		sr.Skipped += sr.paced
		if len(rd.keys) == 0 {
			return nil, nil
		}
		rd.now = o.now().UTC()
	}
	return rd, nil
}

// split sorts the pending entries of the round's states into due (of refs
// when not nil) and waiting, each oldest first, and returns the due and the
// latest attempt of any.
func (rd *round) split(refs []Ref) (due []pick, last time.Time) {
	var want map[string]bool
	if refs != nil {
		want = map[string]bool{}
		for _, r := range refs {
			want[Key(r.AlertId, r.Revision)] = true
		}
	}
	for _, st := range rd.states {
		for i, e := range st.Entries {
			if e.State != Pending {
				continue
			}
			last = maxTime(last, e.LastAttempt)
			switch {
			case want != nil && !want[e.Key]:
			case !e.NextAttempt.After(rd.now):
				due = append(due, pick{st, i})
			default:
				rd.waiting = append(rd.waiting, pick{st, i})
			}
		}
	}
	slices.SortFunc(due, byCreated)
	slices.SortFunc(rd.waiting, byCreated)
	return due, last
}

func byCreated(a, b pick) int {
	ea, eb := a.st.Entries[a.i], b.st.Entries[b.i]
	return cmp.Or(ea.Created.Compare(eb.Created), strings.Compare(ea.Key, eb.Key))
}

// group makes one send per key of due: a revision recorded
// twice (by two processes) is delivered once and both entries are marked.
// At most limit keys are kept.
func (rd *round) group(due []pick, limit int) {
	rd.twins = map[string][]pick{}
	for _, p := range due {
		k := p.st.Entries[p.i].Key
		if rd.twins[k] == nil {
			rd.keys = append(rd.keys, k)
		}
		rd.twins[k] = append(rd.twins[k], p)
	}
	rd.keys = rd.keys[:min(len(rd.keys), limit)]
}

// lease counts the attempt of each chosen entry before making it, so a
// crash counts too (If-Match: Attempts+1, NextAttempt = now+Lease). A state
// another deliverer leased first is left to it.
func (o *Outbox) lease(ctx context.Context, rd *round) (*leases, error) {
	chosen := map[*sinkState][]int{}
	l := &leases{chosen: map[string][]int{}} // the same, by state name (the leased are copies)
	for _, k := range rd.keys {
		for _, p := range rd.twins[k] {
			chosen[p.st] = append(chosen[p.st], p.i)
			l.chosen[p.st.name] = append(l.chosen[p.st.name], p.i)
		}
	}
	var mu sync.Mutex
	list := mapsKeys(chosen)
	if err := each(ctx, len(list), func(ctx context.Context, j int) error {
		st := list[j].clone()
		for _, i := range chosen[list[j]] {
			e := st.Entries[i]
			e.Attempts++
			e.LastAttempt, e.NextAttempt = rd.now, rd.now.Add(cmp.Or(o.Lease, DefaultLease))
		}
		ok, err := o.updateState(ctx, st)
		if ok {
			mu.Lock()
			l.states = append(l.states, st)
			mu.Unlock()
		}
		return err
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(l.states, func(a, b *sinkState) int { return strings.Compare(a.name, b.name) })
	return l, nil
}

// load reads the documents of the leased entries, from each leased state's
// batch, into the items to send; an entry whose document is lost fails for
// good, with the reason.
func (o *Outbox) load(ctx context.Context, rd *round, l *leases, sr *SinkReport) (*outgoing, error) {
	docs, err := o.docs(ctx, l.states)
	if err != nil {
		return nil, err
	}
	snt := &outgoing{to: map[string][]pick{}}
	for _, st := range l.states {
		for _, i := range l.chosen[st.name] {
			e := st.Entries[i]
			if snt.to[e.Key] == nil {
				doc, ok := docs[e.Key]
				if !ok {
					e.State, e.LastError = Failed, docs.reason(e.Key)
					sr.Failed++
					o.logger().Error("delivery failed for good", slog.String("sink", rd.sink.Name()), slog.String("key", e.Key), slog.String("error", e.LastError))
					continue
				}
				snt.items = append(snt.items, Item{AlertId: e.AlertId, Revision: e.Revision, Key: e.Key, Doc: doc, Attempt: e.Attempts})
			}
			snt.to[e.Key] = append(snt.to[e.Key], pick{st, i})
		}
	}
	return snt, nil
}

// send sends the items, and checks the sink answered one result each.
func (o *Outbox) send(ctx context.Context, s Sink, items []Item) ([]Result, error) {
	if len(items) == 0 {
		return nil, nil
	}
	results := s.Send(ctx, items)
	if len(results) != len(items) {
		return nil, fmt.Errorf("outbox: sink %s answered %d results for %d items", s.Name(), len(results), len(items))
	}
	return results, nil
}

// markDecision is what a send's Result makes of a revision's entries.
type markDecision int

const (
	// markDelivered: the sink took it.
	markDelivered markDecision = iota
	// markCancelled: cut short by the caller's time bound, not the sink's
	// fault: due again at once, the attempt not counted.
	markCancelled
	// markGone: the target answered 410 Gone and is held; not the entry's
	// fault, so the attempt is not counted either.
	markGone
	// markFailed: the sink refuses this revision on its own; no retry can
	// change it. (Nothing fails for running out of attempts: an outage is
	// retried on the schedule, forever.)
	markFailed
	// markBackoff: retried after the schedule's back-off (and Retry-After).
	markBackoff
)

// decideMark is the mark of a revision the sink answered r for;
// callerDone says the caller's context had ended when the answer came.
func decideMark(r Result, callerDone bool) markDecision {
	switch {
	case r.Err == nil:
		return markDelivered
	case callerDone && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)):
		return markCancelled
	case r.Gone:
		return markGone
	case r.Permanent:
		return markFailed
	}
	return markBackoff
}

// mark sets e by the decision m on the answer r that came at done; wait is
// the back-off of markBackoff.
func (e *Entry) mark(m markDecision, r Result, done time.Time, wait time.Duration) {
	e.Config = false
	switch m {
	case markDelivered:
		e.State, e.Delivered, e.LastError, e.NextAttempt = Delivered, done, "", time.Time{}
	case markCancelled, markGone:
		e.Attempts--
		e.LastError, e.NextAttempt = r.Err.Error(), done
	case markFailed:
		e.State, e.LastError = Failed, r.Err.Error()
	case markBackoff:
		e.LastError, e.Config, e.NextAttempt = r.Err.Error(), r.Config, done.Add(wait)
	}
}

// markSent marks the entries of each sent revision by its result, makes
// the leased states' waiting entries due when the sink took one, writes
// the leased states back (If-Match the lease's ETag) and updates the
// target's hold.
func (o *Outbox) markSent(ctx context.Context, rd *round, l *leases, snt *outgoing, results []Result, sr *SinkReport) error {
	done := o.now().UTC()
	anyOK, goneErr := o.markResults(ctx, rd.sink, snt, results, done, sr)
	if anyOK {
		// The sink takes deliveries again: the leased states' other
		// waiting entries are due now too (resume does the rest).
		for _, st := range l.states {
			for _, e := range st.Entries {
				if e.State == Pending && e.LastAttempt.Before(rd.now) && e.NextAttempt.After(done) && e.LastError != "" {
					e.NextAttempt = done
					sr.Resumed++
				}
			}
		}
	}
	// Mark what was sent even if ctx ends now: an unmarked delivery is sent
	// again once its lease expires.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if err := o.mark(mctx, rd.sink.Name(), l.states); err != nil {
		return err
	}
	s := rd.sink
	switch {
	case goneErr != nil:
		o.logger().Error("sink target answered 410 Gone: delivery to it is held; it is probed every "+o.goneProbe().String()+", or configure another",
			slog.String("sink", s.Name()), slog.String("target", s.Target()), slog.String("error", goneErr.Error()))
		o.setHeld(mctx, s, done, goneErr)
		sr.Held = true
	case anyOK && rd.held != nil:
		o.logger().Info("held target accepted a probe: delivery resumes", slog.String("sink", s.Name()))
		if err := o.Store.Delete(mctx, o.Container, targetName(s.Name()), store.Condition{}); err != nil && !errors.Is(err, store.ErrNotExist) {
			return err
		}
		sr.Held = false
	}
	if anyOK && (rd.probe || len(rd.waiting) > 0) {
		n, err := o.resume(mctx, rd.states, l.states, done)
		sr.Resumed += n
		if err != nil {
			return err
		}
	}
	return nil
}

// markResults marks the entries of each sent revision by its result and
// counts it once, whatever the entries (twins) it had; a cancellation is
// the caller's when ctx has ended. It reports whether
// the sink took any, and the error of a 410 Gone (nil: none).
func (o *Outbox) markResults(ctx context.Context, s Sink, snt *outgoing, results []Result, done time.Time, sr *SinkReport) (anyOK bool, goneErr error) {
	for n, it := range snt.items {
		r := results[n]
		before := *sr
		for _, t := range snt.to[it.Key] {
			e := t.st.Entries[t.i]
			m := decideMark(r, ctx.Err() != nil)
			var wait time.Duration
			if m == markBackoff {
				wait = o.backoff(e.Attempts, r.RetryAfter)
			}
			e.mark(m, r, done, wait)
			switch m {
			case markDelivered:
				anyOK = true
				sr.Delivered++
				sr.Latency = append(sr.Latency, done.Sub(e.Created))
			case markGone:
				goneErr = r.Err
				sr.Retrying++
			case markCancelled:
				sr.Retrying++
			case markFailed:
				sr.Failed++
				o.logger().Error("delivery failed for good: the sink refuses this revision", slog.String("sink", s.Name()), slog.String("key", e.Key),
					slog.Int("attempts", e.Attempts), slog.String("error", e.LastError))
			case markBackoff:
				sr.Retrying++
				if r.Config {
					sr.ConfigErr = r.Err.Error()
				}
			}
		}
		sr.Delivered = min(sr.Delivered, before.Delivered+1)
		sr.Retrying = min(sr.Retrying, before.Retrying+1)
		sr.Failed = min(sr.Failed, before.Failed+1)
		sr.Latency = sr.Latency[:min(len(sr.Latency), len(before.Latency)+1)]
	}
	return anyOK, goneErr
}
