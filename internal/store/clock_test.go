package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// stamped is a store whose Last-Modified comes from its own clock, as a
// storage service's does, whatever the writer's clock says.
type stamped struct {
	store.Store
	clock func() time.Time
}

func (s stamped) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (store.Properties, error) {
	p, err := s.Store.Write(ctx, c, name, data, cond)
	p.LastModified = s.clock().UTC().Truncate(time.Second) // as Azure: whole seconds
	return p, err
}

// TestClockFollowsTheStore: a machine whose clock is 3 minutes ahead of the
// store's (or behind it) tells the store's time within a second, on both
// backends, and measures again only once per Every.
func TestClockFollowsTheStore(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, container string) {
		for _, skew := range []time.Duration{3 * time.Minute, -3 * time.Minute, 0} {
			var mu sync.Mutex
			writes := 0
			st := stamped{Store: s, clock: func() time.Time { mu.Lock(); writes++; mu.Unlock(); return time.Now() }}
			c := &store.Clock{Store: st, Container: container, Local: func() time.Time { return time.Now().Add(skew) }}
			for range 5 {
				if d := time.Until(c.Now()); d < -time.Second || d > time.Second {
					t.Errorf("skew %s: the clock is %s off the store's", skew, d)
				}
			}
			if writes != 1 {
				t.Errorf("skew %s: %d probes for 5 readings within a minute, want 1", skew, writes)
			}
		}
	})
	// The real stores' own Last-Modified: the local clock is the store's here.
	backends(t, func(t *testing.T, s store.Store, container string) {
		c := &store.Clock{Store: s, Container: container}
		if d := time.Until(c.Now()); d < -time.Second || d > time.Second {
			t.Errorf("the clock is %s off", d)
		}
	})
}
