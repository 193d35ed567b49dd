package outbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// counting counts a store's requests by kind and optionally adds latency
// to each (a cloud region's 25 ms).
type counting struct {
	store.Store
	latency                   time.Duration
	reads, writes, lists, del atomic.Int64
	conflicts                 atomic.Int64 // answered 404 or 409/412
}

func (c *counting) wait() {
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
}

func (c *counting) note(err error) {
	if errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrConditionNotMet) {
		c.conflicts.Add(1)
	}
}

func (c *counting) Read(ctx context.Context, ct, name string) ([]byte, store.Properties, error) {
	c.wait()
	c.reads.Add(1)
	d, p, err := c.Store.Read(ctx, ct, name)
	c.note(err)
	return d, p, err
}

func (c *counting) Write(ctx context.Context, ct, name string, data []byte, cond store.Condition) (store.Properties, error) {
	c.wait()
	c.writes.Add(1)
	p, err := c.Store.Write(ctx, ct, name, data, cond)
	c.note(err)
	return p, err
}

func (c *counting) Delete(ctx context.Context, ct, name string, cond store.Condition) error {
	c.wait()
	c.del.Add(1)
	err := c.Store.Delete(ctx, ct, name, cond)
	c.note(err)
	return err
}

func (c *counting) List(ctx context.Context, ct, prefix string, fn func(store.Properties) error) error {
	c.wait()
	c.lists.Add(1)
	return c.Store.List(ctx, ct, prefix, fn)
}

func (c *counting) total() int64 {
	return c.reads.Load() + c.writes.Load() + c.lists.Load() + c.del.Load()
}
func (c *counting) reset() {
	c.reads.Store(0)
	c.writes.Store(0)
	c.lists.Store(0)
	c.del.Store(0)
	c.conflicts.Store(0)
}

// revsOf makes n revisions of distinct alerts named with prefix.
func revsOf(prefix string, n, rev int) []alert.Revision {
	var out []alert.Revision
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out = append(out, alert.Revision{AlertId: id, Revision: rev, Doc: fmt.Appendf(nil, `{"SystemAlertId":%q,"Revision":%d}`, id, rev)})
	}
	return out
}

// TestRecordIsOneWritePerSink: recording a blob's revisions is one batch
// write and one state write per sink, none answered 404/409, whatever the
// number of revisions; recording them again in the same process is free.
func TestRecordIsOneWritePerSink(t *testing.T) {
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	cs := &counting{Store: local}
	c := newClock()
	o := newOutbox(t, cs, c, &fakeSink{name: "a", target: "a"}, &fakeSink{name: "b", target: "b"})
	o.Deliver(ctx) // registers the sinks
	if err := o.Record(ctx, revsOf("warm", 1, 1)); err != nil {
		t.Fatal(err)
	}
	c.add(time.Minute)
	cs.reset()
	r := revsOf("x", 1000, 1)
	if err := o.Record(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := cs.total(); got != 4 || cs.lists.Load() != 1 || cs.conflicts.Load() != 0 {
		t.Errorf("Record of 1000 revisions: %d requests (%d answered 404/409), want 4 (a listing of new batches, a batch, a state per sink)", got, cs.conflicts.Load())
	}
	cs.reset()
	if err := o.Record(ctx, revsOf("y", 1000, 1)); err != nil || cs.total() != 3 {
		t.Errorf("Record within 30 s of the last listing: %v, %d requests, want 3", err, cs.total())
	}
	cs.reset()
	if err := o.Record(ctx, r[:10]); err != nil || cs.total() != 0 {
		t.Errorf("recording again: %v, %d requests", err, cs.total())
	}
}

// TestSweepCostIsThePendingWork: with 50,000 revisions delivered before, a
// Deliver with 10 due revisions costs a few requests, not the history, and
// finishes in well under 5 s at 25 ms a request.
func TestSweepCostIsThePendingWork(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 50,000 delivered revisions")
	}
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	cs := &counting{Store: local}
	c := newClock()
	s := &fakeSink{name: "a", target: "a"}
	o := newOutbox(t, cs, c, s)
	o.Deliver(ctx) // registers the sink (a new sink's backfill is not a Sweep's cost)
	for b := range 50 {
		if err := o.Record(ctx, revsOf(fmt.Sprint("old", b), 1000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Delivered, as Deliver leaves them: every state retired to done/.
	sts, _, err := o.pendingStates(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := each(ctx, len(sts), func(ctx context.Context, i int) error {
		for _, e := range sts[i].Entries {
			e.State, e.Delivered, e.Attempts = Delivered, c.now(), 1
		}
		return o.retire(ctx, sts[i])
	}); err != nil {
		t.Fatal(err)
	}
	if st := states(t, o); st["a"][Delivered] != 50_000 {
		t.Fatalf("history: %v", st)
	}
	c.add(time.Hour)
	if err := o.Record(ctx, revsOf("new", 10, 1)); err != nil {
		t.Fatal(err)
	}
	cs.reset()
	cs.latency = 25 * time.Millisecond
	start := time.Now()
	rep, err := o.Deliver(ctx)
	took := time.Since(start)
	if err != nil || rep.Sinks[0].Delivered != 10 {
		t.Fatalf("Deliver: %+v, %v", rep, err)
	}
	t.Logf("Deliver of 10 due revisions beside 50,000 delivered: %d requests (%d reads, %d writes, %d lists, %d deletes) in %s at 25 ms each",
		cs.total(), cs.reads.Load(), cs.writes.Load(), cs.lists.Load(), cs.del.Load(), took.Round(time.Millisecond))
	if cs.total() > 10 || took > 5*time.Second {
		t.Errorf("%d requests in %s: the Sweep reads its history", cs.total(), took)
	}
	if cs.conflicts.Load() != 0 {
		t.Errorf("%d requests answered 404/409 in the normal path", cs.conflicts.Load())
	}
}

// pacedSink is a fakeSink with a pace, remembering when each AlertId was
// sent (by the outbox's clock).
type pacedSink struct {
	fakeSink
	per int
	c   *clock
	at  []time.Time // one per distinct AlertId sent, in order
}

func (p *pacedSink) PerMinute() int { return p.per }
func (p *pacedSink) Send(ctx context.Context, items []Item) []Result {
	ids := map[string]bool{}
	for _, it := range items {
		if !ids[it.AlertId] {
			ids[it.AlertId] = true
			p.at = append(p.at, p.c.now())
		}
	}
	return p.fakeSink.Send(ctx, items)
}

// TestPacedSink: a paced sink (Sentinel's NRT limit) never gets more than
// 29 distinct AlertIds in any 60 s, and a backlog of 100 drains by itself.
func TestPacedSink(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	p := &pacedSink{fakeSink: fakeSink{name: "sentinel", target: "s"}, per: 29, c: c}
	o := newOutbox(t, nil, c, p)
	var mu sync.Mutex
	o.Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		c.add(d)
		return nil
	}
	if err := o.Record(ctx, revsOf("storm", 100, 1)); err != nil {
		t.Fatal(err)
	}
	// One Deliver (a Sweep with time to wait for the pace) drains it.
	if rep, _ := o.Deliver(ctx); rep.Sinks[0].Delivered != 100 {
		t.Errorf("one Deliver: %+v", rep.Sinks[0])
	}
	if len(p.sent) != 100 {
		t.Fatalf("%d of 100 delivered", len(p.sent))
	}
	for i := range p.at {
		n := 0
		for j := i; j < len(p.at) && p.at[j].Sub(p.at[i]) < time.Minute; j++ {
			n++
		}
		if n > 29 {
			t.Fatalf("%d AlertIds within a minute from %s", n, p.at[i])
		}
	}
}

// TestNoSinkThenASink: revisions recorded while no sink is configured are
// kept; a sink configured later gets those of the 24 hours before and
// everything after with no operator action, and older ones by a backfill
// --since; an operator's process without sink settings records for the
// sinks the function has.
func TestNoSinkThenASink(t *testing.T) {
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	c := newClock()
	bare := newOutbox(t, local, c)
	if err := bare.Record(ctx, revsOf("old", 5, 1)); err != nil {
		t.Fatal(err)
	}
	c.add(47 * time.Hour)
	if err := bare.Record(ctx, revsOf("early", 3, 1)); err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour)
	s := &fakeSink{name: "w", target: "w"}
	o := newOutbox(t, local, c, s)
	if rep, _ := o.Deliver(ctx); rep.Sinks[0].Delivered != 3 {
		t.Errorf("a new sink gets the last 24 hours' revisions: %+v", rep)
	}
	if err := o.Record(ctx, revsOf("later", 2, 1)); err != nil {
		t.Fatal(err)
	}
	c.add(time.Minute)
	// An operator's shell, no sink settings: still recorded for "w".
	shell := newOutbox(t, local, c)
	if err := shell.Record(ctx, revsOf("shell", 4, 1)); err != nil {
		t.Fatal(err)
	}
	o.Deliver(ctx)
	if len(s.sent) != 9 {
		t.Errorf("%d delivered, want the 3 of the last day, the 2 recorded with the sink and the 4 from the shell", len(s.sent))
	}
	n, err := o.Backfill(ctx, c.now().Add(-72*time.Hour))
	if err != nil || n["w"] != 5 {
		t.Fatalf("backfill: %v, %v", n, err)
	}
	o.Deliver(ctx)
	if len(s.sent) != 14 {
		t.Errorf("%d delivered after the backfill, want 14", len(s.sent))
	}
	for k, d := range s.sent {
		if len(d) != 1 {
			t.Errorf("%s sent %d times", k, len(d))
		}
	}
}

// TestGarbled: a pending state that does not parse is set aside and rebuilt
// from its batch; a batch that does not parse is set aside and its
// documents rebuilt from the alerts; a document that does not parse (or is
// another revision's) is never sent: failed with the reason.
func TestGarbled(t *testing.T) {
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	c := newClock()
	s := &fakeSink{name: "a", target: "a"}
	o := newOutbox(t, local, c, s)
	o.AlertsContainer = "alerts"
	local.EnsureContainer(ctx, "alerts")
	// Batch 1: its state garbled.
	if err := o.Record(ctx, revsOf("st", 2, 1)); err != nil {
		t.Fatal(err)
	}
	// Batch 2: its batch garbled; alert bt-0 is still at revision 1 (its
	// document rebuilt), bt-1 has moved on to 2 (revision 1 lost: failed).
	c.add(time.Second)
	if err := o.Record(ctx, revsOf("bt", 2, 1)); err != nil {
		t.Fatal(err)
	}
	local.Write(ctx, "alerts", "2026/11/20/bt-0.json", []byte(`{"SystemAlertId":"bt-0","Revision":1,"Results":[]}`), store.Condition{})
	local.Write(ctx, "alerts", "2026/11/20/bt-1.json", []byte(`{"SystemAlertId":"bt-1","Revision":2}`), store.Condition{})
	var names []string
	local.List(ctx, "state", "outbox/", func(p store.Properties) error {
		names = append(names, p.Name)
		return nil
	})
	var states, batches []string
	for _, n := range names {
		if strings.HasPrefix(n, "outbox/a/pending/") {
			states = append(states, n)
		}
		if strings.HasPrefix(n, "outbox/revisions/") {
			batches = append(batches, n)
		}
	}
	if len(states) != 2 || len(batches) != 2 {
		t.Fatalf("names %v", names)
	}
	local.Write(ctx, "state", states[0], []byte(`{"Sink":"a","Entr`), store.Condition{})
	local.Write(ctx, "state", batches[1], []byte(`{"Revisions":[{"AlertId":`), store.Condition{})
	// Batch 3: a document that parses but is another revision's.
	c.add(time.Second)
	if err := o.Record(ctx, []alert.Revision{{AlertId: "dc-0", Revision: 1, Doc: []byte(`{"SystemAlertId":"dc-0","Revision":7}`)}}); err != nil {
		t.Fatal(err)
	}
	// And one that does not parse is refused at Record.
	if err := o.Record(ctx, []alert.Revision{{AlertId: "dc-1", Revision: 1, Doc: []byte(`{"SystemAlertId":`)}}); err == nil {
		t.Error("Record took a document that does not parse")
	}
	o.Deliver(ctx)
	want := map[string]bool{"st-0-1": true, "st-1-1": true, "bt-0-1": true}
	for k := range s.sent {
		if !want[k] {
			t.Errorf("sent %s", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("%s not delivered", k)
	}
	es, err := o.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	for _, e := range es {
		if e.State == Failed {
			failed[e.Key] = e.LastError
		}
	}
	if !strings.Contains(failed["bt-1-1"], "moved on to revision 2") || !strings.Contains(failed["dc-0-1"], "not sent") || len(failed) != 2 {
		t.Errorf("failed: %v", failed)
	}
	aside := 0
	local.List(ctx, "state", "", func(p store.Properties) error {
		if strings.Contains(p.Name, "quarantine") || strings.Contains(p.Name, "aside") {
			aside++
		}
		return nil
	})
	if aside != 2 {
		t.Errorf("%d objects set aside, want the state and the batch", aside)
	}
}

// TestResumeAfterOutage: a sink down for 10 minutes, 3 hours or 2 days
// takes everything within ProbeInterval of answering again, with no
// operator action, each revision once.
func TestResumeAfterOutage(t *testing.T) {
	for _, outage := range []time.Duration{10 * time.Minute, 3 * time.Hour, 48 * time.Hour} {
		t.Run(outage.String(), func(t *testing.T) {
			if testing.Short() && outage > 24*time.Hour {
				t.Skip("-short: the two-day outage (192 recording rounds) runs in the full suite")
			}
			ctx := context.Background()
			c := newClock()
			up := c.now().Add(outage)
			s := &fakeSink{name: "a", target: "a"}
			s.script = func(Item, int) Result {
				if c.now().Before(up) {
					return Result{Err: errors.New("HTTP 503")}
				}
				return Result{}
			}
			o := newOutbox(t, nil, c, s)
			// Revisions keep coming during the outage.
			for c.now().Before(up) {
				o.Record(ctx, revsOf(c.now().Format("150405"), 3, 1))
				o.Deliver(ctx)
				c.add(15 * time.Minute)
			}
			for range 3 { // Sweeps after the recovery, none recording
				o.Deliver(ctx)
				c.add(15 * time.Minute)
			}
			st := states(t, o)
			if st["a"][Pending] != 0 || st["a"][Failed] != 0 || st["a"][Delivered] != len(s.sent) {
				t.Errorf("after a %s outage: %v, %d keys sent", outage, st, len(s.sent))
			}
			for k, d := range s.sent {
				if len(d) != 1 {
					t.Errorf("%s sent %d times", k, len(d))
				}
			}
		})
	}
}

// TestRecordLearnsOtherProcesses: a revision another process recorded (a
// writer superseding it records it again, in case its recording was lost)
// is not recorded twice; one in no batch (its recording lost to a crash) is.
func TestRecordLearnsOtherProcesses(t *testing.T) {
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	c := newClock()
	s := &fakeSink{name: "a", target: "a"}
	one := newOutbox(t, local, c, s)
	if err := one.Record(ctx, revsOf("x", 3, 1)); err != nil {
		t.Fatal(err)
	}
	c.add(5 * time.Minute)
	two := newOutbox(t, local, c, s) // another instance
	lost := alert.Revision{AlertId: "lost", Revision: 1, Doc: []byte(`{"SystemAlertId":"lost","Revision":1}`)}
	if err := two.Record(ctx, append(revsOf("x", 3, 1), lost)); err != nil {
		t.Fatal(err)
	}
	if err := two.Record(ctx, revsOf("x", 3, 2)); err != nil {
		t.Fatal(err)
	}
	one.Deliver(ctx)
	if len(s.sent) != 7 {
		t.Errorf("%d keys delivered, want 7", len(s.sent))
	}
	for k, d := range s.sent {
		if len(d) != 1 {
			t.Errorf("%s delivered %d times", k, len(d))
		}
	}
}

// TestLastRevisionsIsWhatRecordLearns: another process's highest revision
// of an alert (its document deleted by hand since) is known from the
// batches Record learns anyway: the lookup costs Record's listing and
// batch reads once, and the Record that follows costs no request more.
func TestLastRevisionsIsWhatRecordLearns(t *testing.T) {
	ctx := context.Background()
	local, _ := store.NewLocal(t.TempDir())
	c := newClock()
	a := newOutbox(t, local, c, &fakeSink{name: "a", target: "a"})
	for rev := 1; rev <= 3; rev++ {
		if err := a.Record(ctx, revsOf("x", 100, rev)); err != nil {
			t.Fatal(err)
		}
		c.add(time.Minute)
	}
	cs := &counting{Store: local}
	b := newOutbox(t, cs, c, &fakeSink{name: "a", target: "a"})
	b.Deliver(ctx) // reads the roster
	cs.reset()
	got, err := b.LastRevisions(ctx, []string{"x-7", "x-99", "new-1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"x-7": 3, "x-99": 3}; !maps.Equal(got, want) {
		t.Errorf("LastRevisions = %v, want %v", got, want)
	}
	// The window's two day folders (24 h back from 10:03) and the 3 batches.
	if cs.total() != 5 || cs.lists.Load() != 2 || cs.reads.Load() != 3 {
		t.Errorf("LastRevisions: %d requests (%d listings, %d reads), want 5 (2 listings, the 3 batches)", cs.total(), cs.lists.Load(), cs.reads.Load())
	}
	cs.reset()
	if err := b.Record(ctx, revsOf("x", 1, 4)); err != nil || cs.total() != 2 || cs.writes.Load() != 2 {
		t.Errorf("Record after LastRevisions: %v, %d requests, want 2 writes (a batch, a state)", err, cs.total())
	}
	// What it recorded itself counts too.
	if got, _ := b.LastRevisions(ctx, []string{"x-0"}); got["x-0"] != 4 {
		t.Errorf("LastRevisions after recording revision 4: %v", got)
	}
}
