package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
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

// TestRedeliverOnTheStoresClock: `alerts --redeliver` makes the waiting
// deliveries due on the store's clock, the one its delivery judges them by.
// With the store's clock behind this machine's, revisions made due on this
// machine's clock would wait out the difference and the delivery right
// after would send none. A probe of the store's clock slowed by a loaded
// machine errs the same way, by a fraction of a second: that is how
// TestProcessDeliversAndRedeliver failed now and then ("delivered 0").
func TestRedeliverOnTheStoresClock(t *testing.T) {
	for _, skew := range []time.Duration{-3 * time.Minute, -time.Second} {
		t.Run(skew.String(), func(t *testing.T) { testRedeliverOnTheStoresClock(t, skew) })
	}
}

func testRedeliverOnTheStoresClock(t *testing.T, skew time.Duration) {
	hook := newHookReceiver(t, false)
	hook.status = http.StatusNotFound
	state := skewedStore{Store: mustLocal(t, t.TempDir()), skew: skew}
	s := settings.Defaults()
	s.WebhookURL, s.WebhookSecret = hook.URL+"/tokenpivot", testWebhookSecret
	ctx := context.Background()
	if err := state.EnsureContainer(ctx, s.StateContainer); err != nil {
		t.Fatal(err)
	}
	configured, err := newOutbox(state, s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var revs []alert.Revision
	for i := range 3 {
		id := fmt.Sprintf("alert-%02d", i)
		revs = append(revs, alert.Revision{AlertId: id, Revision: 1, Doc: []byte(fmt.Sprintf(`{"SystemAlertId":%q,"Revision":1}`, id))})
	}
	if err := configured.Record(ctx, revs); err != nil {
		t.Fatal(err)
	}
	var errs strings.Builder
	deliverAll(ctx, configured, &errs, slog.New(slog.DiscardHandler))
	if !strings.Contains(errs.String(), "delivered 0 alert revisions to webhook; 3 to retry") {
		t.Fatalf("the first delivery, to a webhook answering 404:\n%s", errs.String())
	}
	hook.mu.Lock()
	hook.status = 0
	hook.mu.Unlock()
	errs.Reset()
	ob := &outbox.Outbox{Store: state, Container: s.StateContainer}
	if err := redeliverNow(ctx, ob, configured, &errs); err != nil {
		t.Fatal(err)
	}
	deliverAll(ctx, configured, &errs, slog.New(slog.DiscardHandler))
	if !strings.Contains(errs.String(), "3 failed or waiting deliveries made due now") ||
		!strings.Contains(errs.String(), "delivered 3 alert revisions to webhook; 0 to retry") || len(hook.deliveries()) != 3 {
		t.Errorf("redeliver with the store's clock %s off this machine's: the webhook got %d of 3\n%s", skew, len(hook.deliveries()), errs.String())
	}
}
