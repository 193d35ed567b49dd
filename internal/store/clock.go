package store

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time on a store's clock: the Last-Modified the store
// stamps on a write. Every writer of the store shares that clock, unlike
// the clocks of the machines writing, which may disagree by minutes; a
// lease that one machine writes and another judges must be on it.
//
// Now is the local time corrected by the offset a probe measured: a write
// of a small blob, at most once per Every. A failed probe keeps the last
// offset (none at first), so the clock is never worse than the local one.
type Clock struct {
	Store     Store
	Container string
	// Name is the probe blob (ClockProbe if "").
	Name string
	// Local is the machine's clock (time.Now if nil).
	Local func() time.Time
	// Every is how often the offset is measured again (a minute if 0).
	Every time.Duration

	mu     sync.Mutex
	offset time.Duration
	probed time.Time // local time of the last probe; zero before the first
}

// ClockProbe is the blob a Clock writes when Name is "".
const ClockProbe = "clock-probe.json"

// Now returns the store's time as best known.
func (c *Clock) Now() time.Time {
	now := c.local()
	c.mu.Lock()
	defer c.mu.Unlock()
	every := c.Every
	if every <= 0 {
		every = time.Minute
	}
	if c.probed.IsZero() || now.Sub(c.probed) >= every || now.Before(c.probed) {
		c.probe()
		now = c.local()
	}
	return now.Add(c.offset)
}

// Offset returns the store's clock minus the local one, as last measured.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

func (c *Clock) local() time.Time {
	if c.Local != nil {
		return c.Local()
	}
	return time.Now()
}

// probe writes the probe blob and sets the offset from its Last-Modified,
// taken as the middle of the request. Azure's Last-Modified has whole
// seconds: the store's time at the write is in [LM, LM+1s), so its middle
// is used there.
func (c *Clock) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := c.Name
	if name == "" {
		name = ClockProbe
	}
	before := c.local()
	p, err := c.Store.Write(ctx, c.Container, name, []byte(`{"probe":"the store's clock, read from this blob's Last-Modified"}`), Condition{})
	after := c.local()
	c.probed = after
	if err != nil || p.LastModified.IsZero() {
		return
	}
	stamped := p.LastModified
	if stamped.Nanosecond() == 0 {
		stamped = stamped.Add(500 * time.Millisecond)
	}
	c.offset = stamped.Sub(before.Add(after.Sub(before) / 2))
}
