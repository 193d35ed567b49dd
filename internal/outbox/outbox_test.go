package outbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// fakeSink answers with script(item, call) and remembers what it was sent.
type fakeSink struct {
	name, target string
	script       func(it Item, call int) Result
	mu           sync.Mutex
	calls        int
	sent         map[string][]string // key -> docs sent under it
}

func (f *fakeSink) Name() string   { return f.name }
func (f *fakeSink) Target() string { return f.target }
func (f *fakeSink) Send(_ context.Context, items []Item) []Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.sent == nil {
		f.sent = map[string][]string{}
	}
	out := make([]Result, len(items))
	for i, it := range items {
		if f.script != nil {
			out[i] = f.script(it, f.calls)
		}
		if out[i].Err == nil {
			f.sent[it.Key] = append(f.sent[it.Key], string(it.Doc))
		}
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)} }
func revs(n int, rev int) []alert.Revision {
	var out []alert.Revision
	for i := range n {
		id := fmt.Sprintf("alert-%d", i)
		out = append(out, alert.Revision{AlertId: id, Revision: rev, Doc: fmt.Appendf(nil, `{"SystemAlertId":%q,"Revision":%d}`, id, rev)})
	}
	return out
}

func newOutbox(t *testing.T, s store.Store, c *clock, sinks ...Sink) *Outbox {
	t.Helper()
	if s == nil {
		var err error
		if s, err = store.NewLocal(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	o := &Outbox{Store: s, Container: "state", Sinks: sinks, Now: c.now}
	if err := o.EnsureContainers(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}

func states(t *testing.T, o *Outbox) map[string]map[State]int {
	t.Helper()
	es, err := o.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[State]int{}
	for _, e := range es {
		if out[e.Sink] == nil {
			out[e.Sink] = map[State]int{}
		}
		out[e.Sink][e.State]++
	}
	return out
}

// TestEachSinkFailsOnce: a sink whose first call fails retries after its
// backoff, the other is not held up, and every revision is delivered once
// per sink under one key.
func TestEachSinkFailsOnce(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	flaky := &fakeSink{name: "a", target: "a", script: func(_ Item, call int) Result {
		if call == 1 {
			return Result{Err: errors.New("HTTP 503"), RetryAfter: 45 * time.Second}
		}
		return Result{}
	}}
	good := &fakeSink{name: "b", target: "b"}
	o := newOutbox(t, nil, c, flaky, good)
	for range 2 { // recording twice is a no-op
		if err := o.Record(ctx, append(revs(3, 1), revs(2, 2)...)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := o.Deliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sinks[0].Retrying != 5 || rep.Sinks[1].Delivered != 5 {
		t.Fatalf("first delivery: %+v", rep)
	}
	es, _ := o.Entries(ctx)
	for _, e := range es {
		if e.Sink == "a" && (e.NextAttempt.Sub(c.now()) < 45*time.Second || e.LastError != "HTTP 503" || e.Attempts != 1) {
			t.Errorf("entry %+v: want Retry-After honoured and the error kept", e)
		}
	}
	if rep, _ := o.Deliver(ctx); rep.Sinks[0].Due != 0 || rep.Sinks[1].Due != 0 {
		t.Errorf("nothing should be due before the backoff: %+v", rep)
	}
	c.add(2 * time.Minute)
	if rep, _ := o.Deliver(ctx); rep.Sinks[0].Delivered != 5 {
		t.Errorf("after the backoff: %+v", rep)
	}
	for _, s := range []*fakeSink{flaky, good} {
		if len(s.sent) != 5 {
			t.Errorf("sink %s got %d keys, want 5", s.name, len(s.sent))
		}
		for k, docs := range s.sent {
			if len(docs) != 1 {
				t.Errorf("sink %s got key %s %d times", s.name, k, len(docs))
			}
		}
	}
	if st := states(t, o); st["a"][Delivered] != 5 || st["b"][Delivered] != 5 {
		t.Errorf("states %v", st)
	}
}

// TestOutageNeverFailsPermanentDoes: a sink answering 500 for days keeps
// its revision pending (retried on the schedule, never failed), and takes
// it by itself once it answers again; a revision the sink refuses on its
// own (Permanent) is failed with the reason, shown, and Redeliver retries it.
func TestOutageNeverFailsPermanentDoes(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	down := true
	s := &fakeSink{name: "a", target: "a", script: func(Item, int) Result {
		if down {
			return Result{Err: errors.New("HTTP 500")}
		}
		return Result{}
	}}
	perm := &fakeSink{name: "p", target: "p", script: func(Item, int) Result { return Result{Err: errors.New("HTTP 400 InvalidContent"), Permanent: true} }}
	o := newOutbox(t, nil, c, s, perm)
	if err := o.Record(ctx, revs(1, 1)); err != nil {
		t.Fatal(err)
	}
	for range 5 * 24 * 4 { // five days of Sweeps every 15 minutes
		o.Deliver(ctx)
		c.add(15 * time.Minute)
	}
	if perm.calls != 1 {
		t.Errorf("permanent refusal sent %d times, want 1", perm.calls)
	}
	// The schedule's tries plus a probe per ProbeInterval: bounded, never
	// every Sweep.
	if s.calls < 9 || s.calls > 5*48+10 {
		t.Errorf("%d attempts over five days of outage", s.calls)
	}
	if st := states(t, o); st["a"][Pending] != 1 || st["a"][Failed] != 0 || st["p"][Failed] != 1 {
		t.Fatalf("states %v: want the outage pending, the refused revision failed", st)
	}
	var status strings.Builder
	es, _ := o.Entries(ctx)
	WriteStatus(&status, es, true)
	if !strings.Contains(status.String(), "HTTP 400 InvalidContent") || !strings.Contains(status.String(), "failed") {
		t.Errorf("status does not show the failure:\n%s", status.String())
	}
	down = false
	c.add(DefaultProbeInterval)
	o.Deliver(ctx)
	if st := states(t, o); st["a"][Delivered] != 1 {
		t.Errorf("the sink answers again, but: %v", st)
	}
	perm.script = nil
	if n, err := o.Redeliver(ctx); err != nil || n != 1 {
		t.Fatalf("Redeliver: %d, %v", n, err)
	}
	o.Deliver(ctx)
	if st := states(t, o); st["a"][Delivered] != 1 || st["p"][Delivered] != 1 {
		t.Errorf("after redeliver: %v", st)
	}
}

// TestGoneHoldsTheTarget: a 410 stops delivery to that target (entries stay
// pending, shown held) but one probe an hour, until it accepts the probe or
// another target is configured.
func TestGoneHoldsTheTarget(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &fakeSink{name: "w", target: "old", script: func(Item, int) Result { return Result{Err: errors.New("HTTP 410"), Gone: true} }}
	o := newOutbox(t, nil, c, s)
	o.Record(ctx, revs(2, 1))
	o.Deliver(ctx)
	c.add(30 * time.Minute)
	rep, _ := o.Deliver(ctx)
	if s.calls != 1 || rep.Sinks[0].Skipped != 2 || !rep.Sinks[0].Held {
		t.Errorf("calls %d, report %+v: want the gone target held", s.calls, rep)
	}
	c.add(30 * time.Minute)
	if rep, _ := o.Deliver(ctx); s.calls != 2 || rep.Sinks[0].Due != 1 {
		t.Errorf("calls %d, report %+v: want one probe after an hour", s.calls, rep)
	}
	var status strings.Builder
	es, _ := o.Entries(ctx)
	holds, _ := o.Holds(ctx)
	WriteStatus(&status, es, true, holds...)
	if !regexp.MustCompile(`w\s+0\s+0\s+0\s+2`).MatchString(status.String()) || !strings.Contains(status.String(), "held: w answered 410 Gone") {
		t.Errorf("status does not show the held target:\n%s", status.String())
	}
	// By default the hold's explanation is wrapped to the table's width.
	var narrow strings.Builder
	WriteStatus(&narrow, es, false, holds...)
	for _, l := range strings.Split(narrow.String(), "\n") {
		if n := len([]rune(l)); n > StatusWidth {
			t.Errorf("a status line of %d columns: %s", n, l)
		}
	}
	if !strings.Contains(narrow.String(), "held: w answered 410 Gone") || !strings.Contains(narrow.String(), "--redeliver` resumes now") {
		t.Errorf("narrow status lost the hold:\n%s", narrow.String())
	}
	s.target, s.script = "new", nil
	o.Deliver(ctx)
	if st := states(t, o); st["w"][Delivered] != 2 {
		t.Errorf("after a new target: %v", st)
	}
}

// failMarks fails every state write that marks entries delivered after
// their first attempt (a crash after sending), counting the entries lost.
type failMarks struct {
	store.Store
	on bool
	mu sync.Mutex // states are marked in parallel
	n  int
}

func (f *failMarks) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (store.Properties, error) {
	if f.on && strings.Contains(string(data), `"Attempts":1`) && strings.Contains(string(data), `"delivered"`) {
		f.mu.Lock()
		f.n += strings.Count(string(data), `"delivered"`)
		f.mu.Unlock()
		return store.Properties{}, errors.New("crash")
	}
	return f.Store.Write(ctx, c, name, data, cond)
}

// TestCrashAfterSend: a delivery whose mark is lost is sent again after
// its lease, with the same key.
func TestCrashAfterSend(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	local, _ := store.NewLocal(t.TempDir())
	fs := &failMarks{Store: local, on: true}
	s := &fakeSink{name: "a", target: "a"}
	o := newOutbox(t, fs, c, s)
	o.Record(ctx, revs(2, 1))
	o.Deliver(ctx)
	if fs.n != 2 {
		t.Fatalf("%d marks failed, want 2", fs.n)
	}
	fs.on = false
	if rep, _ := o.Deliver(ctx); rep.Sinks[0].Due != 0 {
		t.Errorf("due within the lease: %+v", rep)
	}
	c.add(DefaultLease + time.Second)
	o.Deliver(ctx)
	if st := states(t, o); st["a"][Delivered] != 2 {
		t.Errorf("states %v", st)
	}
	for k, docs := range s.sent {
		if len(docs) != 2 || docs[0] != docs[1] {
			t.Errorf("key %s: sent %d times", k, len(docs))
		}
	}
}

// TestDeliverRefs delivers only the named revisions.
func TestDeliverRefs(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &fakeSink{name: "a", target: "a"}
	o := newOutbox(t, nil, c, s)
	o.Record(ctx, revs(3, 1))
	rep, _ := o.DeliverRefs(ctx, []Ref{{"alert-1", 1}, {"alert-9", 1}})
	if rep.Sinks[0].Delivered != 1 || len(s.sent) != 1 || s.sent[Key("alert-1", 1)] == nil {
		t.Errorf("report %+v, sent %v", rep, s.sent)
	}
}
