package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// countingSink accepts every item and counts them.
type countingSink struct {
	name string
	mu   sync.Mutex
	sent map[string]bool
}

func (s *countingSink) Name() string   { return s.name }
func (s *countingSink) Target() string { return s.name + "-target" }
func (s *countingSink) Send(ctx context.Context, items []outbox.Item) []outbox.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		s.sent[it.Key] = true
	}
	return make([]outbox.Result, len(items))
}

func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// hangingSink is a receiver that accepts the connection and never answers:
// every Send lasts until its context ends.
type hangingSink struct{}

func (hangingSink) Name() string   { return "webhook" }
func (hangingSink) Target() string { return "webhook-target" }
func (hangingSink) Send(ctx context.Context, items []outbox.Item) []outbox.Result {
	<-ctx.Done()
	out := make([]outbox.Result, len(items))
	for i := range out {
		out[i].Err = ctx.Err()
	}
	return out
}

// TestProcessDeliversSinksIndependently: after `process`, a webhook that
// hangs must not hold Sentinel back. The revisions take Sentinel several
// calls (MaxPerCall); each sink goes through its own rounds, as serve's
// delivery does, so Sentinel gets every revision while the webhook hangs.
func TestProcessDeliversSinksIndependently(t *testing.T) {
	sentinelSink := &countingSink{name: "sentinel", sent: map[string]bool{}}
	ob := &outbox.Outbox{Store: mustLocal(t, t.TempDir()), Container: "tokenpivot-state",
		Sinks: []outbox.Sink{sentinelSink, hangingSink{}}, MaxPerCall: 5}
	ctx := context.Background()
	if err := ob.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	var revs []alert.Revision
	for i := range 40 {
		id := fmt.Sprintf("alert-%02d", i)
		revs = append(revs, alert.Revision{AlertId: id, Revision: 1, Doc: []byte(fmt.Sprintf(`{"SystemAlertId":%q,"Revision":1}`, id))})
	}
	if err := ob.Record(ctx, revs); err != nil {
		t.Fatal(err)
	}
	// The run's own bound stands in for processDeliveryTime.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	deliverAll(dctx, ob, io.Discard, slog.New(slog.DiscardHandler))
	if got := sentinelSink.count(); got != len(revs) {
		t.Errorf("Sentinel got %d of %d revisions while the webhook hung (%s)", got, len(revs), time.Since(start).Round(time.Millisecond))
	}
}

// skewedStore stamps Last-Modified from a clock skew ahead of this machine's.
type skewedStore struct {
	store.Store
	skew time.Duration
}

func (s skewedStore) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (store.Properties, error) {
	p, err := s.Store.Write(ctx, c, name, data, cond)
	p.LastModified = time.Now().Add(s.skew).UTC().Truncate(time.Second)
	return p, err
}

// TestOutboxRunsOnTheStoresClock: the outbox serve and process build
// leases and schedules deliveries on the store's clock (3 minutes ahead of
// this machine's here), so deliverers whose clocks disagree never take each
// other's live leases (see outbox's TestLeaseOnTheStoresClock).
func TestOutboxRunsOnTheStoresClock(t *testing.T) {
	const skew = 3 * time.Minute
	state := skewedStore{Store: mustLocal(t, t.TempDir()), skew: skew}
	s := settings.Defaults()
	s.WebhookURL, s.WebhookSecret = "http://127.0.0.1:1/hook", testWebhookSecret
	ob, err := newOutbox(state, s, slog.New(slog.DiscardHandler))
	if err != nil || ob == nil {
		t.Fatalf("outbox: %v, %v", ob, err)
	}
	if err := state.EnsureContainer(context.Background(), s.StateContainer); err != nil {
		t.Fatal(err)
	}
	if ob.Now == nil {
		t.Fatal("the outbox runs on this machine's clock")
	}
	if d := ob.Now().Sub(time.Now().Add(skew)); d < -time.Second || d > time.Second {
		t.Errorf("the outbox's clock is %s off the store's", d)
	}
}
