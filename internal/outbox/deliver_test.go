package outbox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestDecideMark: what a send's answer makes of a revision's entry. Only a
// refusal of the revision itself fails it; the caller's own time bound and
// a Gone target do not count the attempt; anything else backs off.
func TestDecideMark(t *testing.T) {
	done := time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)
	leasedAt := done.Add(-5 * time.Second)
	refused := errors.New("logs ingestion: 400 Bad Request: record 0: TimeGenerated is not a datetime")
	outage := errors.New("webhook: 503 Service Unavailable")
	cut := fmt.Errorf("webhook: Post \"https://hooks.example.com/tp\": %w", context.DeadlineExceeded)
	const wait = 5 * time.Minute
	for _, tc := range []struct {
		name       string
		r          Result
		callerDone bool
		want       markDecision
		state      State
		attempts   int // after the lease's 3
		next       time.Time
		config     bool
	}{
		{"delivered", Result{}, false, markDelivered, Delivered, 3, time.Time{}, false},
		{"delivered as the caller ends", Result{}, true, markDelivered, Delivered, 3, time.Time{}, false},
		{"cut short by the caller", Result{Err: cut}, true, markCancelled, Pending, 2, done, false},
		{"cancelled by the caller", Result{Err: context.Canceled}, true, markCancelled, Pending, 2, done, false},
		{"the sink's own deadline, caller still waiting", Result{Err: cut}, false, markBackoff, Pending, 3, done.Add(wait), false},
		{"gone", Result{Err: errors.New("webhook: 410 Gone"), Gone: true}, false, markGone, Pending, 2, done, false},
		{"gone wins over permanent", Result{Err: errors.New("webhook: 410 Gone"), Gone: true, Permanent: true}, false, markGone, Pending, 2, done, false},
		{"gone while the caller ends", Result{Err: errors.New("webhook: 410 Gone"), Gone: true}, true, markGone, Pending, 2, done, false},
		{"permanent", Result{Err: refused, Permanent: true}, false, markFailed, Failed, 3, leasedAt.Add(DefaultLease), false},
		{"outage", Result{Err: outage}, false, markBackoff, Pending, 3, done.Add(wait), false},
		{"outage as the caller ends", Result{Err: outage}, true, markBackoff, Pending, 3, done.Add(wait), false},
		{"configuration", Result{Err: errors.New("webhook: redirect refused"), Config: true}, false, markBackoff, Pending, 3, done.Add(wait), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := decideMark(tc.r, tc.callerDone)
			if m != tc.want {
				t.Fatalf("decideMark = %d, want %d", m, tc.want)
			}
			// An entry as the lease left it: a third attempt, a previous
			// configuration error.
			e := &Entry{Key: "a1/2", State: Pending, Attempts: 3, LastAttempt: leasedAt, NextAttempt: leasedAt.Add(DefaultLease),
				LastError: "webhook: redirect refused", Config: true}
			e.mark(m, tc.r, done, wait)
			if e.State != tc.state || e.Attempts != tc.attempts || !e.NextAttempt.Equal(tc.next) || e.Config != tc.config {
				t.Errorf("entry %+v: want state %s, %d attempts, next %v, config %v", *e, tc.state, tc.attempts, tc.next, tc.config)
			}
			switch {
			case tc.r.Err == nil && (e.LastError != "" || !e.Delivered.Equal(done)):
				t.Errorf("delivered: error %q, delivered %v", e.LastError, e.Delivered)
			case tc.r.Err != nil && e.LastError != tc.r.Err.Error():
				t.Errorf("error %q, want %q", e.LastError, tc.r.Err)
			}
		})
	}
}
