package outbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// storeStamped is a store whose Last-Modified comes from the store's own
// clock (now), as a storage service's does.
type storeStamped struct {
	store.Store
	now func() time.Time
}

func (s storeStamped) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (store.Properties, error) {
	p, err := s.Store.Write(ctx, c, name, data, cond)
	p.LastModified = s.now().UTC().Truncate(time.Second)
	return p, err
}

// gateSink counts what it is sent per key; its first Send waits for
// release (a slow receiver), the others answer at once.
type gateSink struct {
	mu      sync.Mutex
	calls   int
	sent    map[string]int
	entered chan struct{}
	release chan struct{}
}

func (g *gateSink) Name() string   { return "sentinel" }
func (g *gateSink) Target() string { return "dcr" }
func (g *gateSink) Send(ctx context.Context, items []Item) []Result {
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	for _, it := range items {
		g.sent[it.Key]++
	}
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
	}
	return make([]Result, len(items))
}

// TestLeaseOnTheStoresClock: two deliverers, the second's clock 3 minutes
// ahead of the first's (past the 2-minute lease). While the first is still
// sending its leased revisions, the second must not take them over: with
// the deliverers' own clocks it did, and sent 32 revisions twice. On the
// store's clock (store.Clock, as serve and process wire it) each revision
// is sent once.
func TestLeaseOnTheStoresClock(t *testing.T) {
	ctx := context.Background()
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	storeNow := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	clockOf := func(skew time.Duration) func() time.Time {
		return func() time.Time { mu.Lock(); defer mu.Unlock(); return storeNow.Add(skew) }
	}
	st := storeStamped{Store: local, now: clockOf(0)}
	sink := &gateSink{sent: map[string]int{}, entered: make(chan struct{}), release: make(chan struct{})}
	deliverer := func(skew time.Duration) *Outbox {
		c := &store.Clock{Store: st, Container: "state", Local: clockOf(skew)}
		return &Outbox{Store: st, Container: "state", Sinks: []Sink{sink}, Now: c.Now}
	}
	a, b := deliverer(0), deliverer(3*time.Minute)
	if err := a.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	var revs []alert.Revision
	for i := range 32 {
		id := fmt.Sprintf("alert-%02d", i)
		revs = append(revs, alert.Revision{AlertId: id, Revision: 1, Doc: fmt.Appendf(nil, `{"SystemAlertId":%q,"Revision":1}`, id)})
	}
	if err := a.Record(ctx, revs); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := a.Deliver(ctx); done <- err }()
	<-sink.entered // a holds the leases and is sending
	mu.Lock()
	storeNow = storeNow.Add(30 * time.Second)
	mu.Unlock()
	rep, err := b.Deliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(sink.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	twice := 0
	for _, n := range sink.sent {
		if n > 1 {
			twice++
		}
	}
	if twice > 0 || len(sink.sent) != len(revs) {
		t.Errorf("%d of %d revisions sent twice (%d sent); the second deliverer found %d due within the first's lease", twice, len(revs), len(sink.sent), rep.Sinks[0].Due)
	}
}
