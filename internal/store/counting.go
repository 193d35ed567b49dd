package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
)

// ListPageSize is how many blobs one List Blobs request returns at most on
// Azure (its maxresults ceiling): a listing of n blobs costs
// max(1, ceil(n/ListPageSize)) requests.
const ListPageSize = 5000

// Request kinds, as a storage account bills and a proxy counts them.
const (
	OpStat             = "stat"
	OpRead             = "read"
	OpReadRange        = "read-range"
	OpWrite            = "write"
	OpWriteIfNoneMatch = "write if-none-match"
	OpWriteIfMatch     = "write if-match"
	OpDelete           = "delete"
	OpList             = "list" // one per page of ListPageSize blobs
	OpEnsureContainer  = "ensure-container"
)

// Request outcomes.
const (
	StatusOK       = "ok"
	StatusNotFound = "not-found" // ErrNotExist: 404
	StatusConflict = "conflict"  // ErrConditionNotMet: 409/412
	StatusError    = "error"     // anything else (cancellation included)
)

// Request classifies one storage request.
type Request struct {
	Op        string
	Container string
	// Area is the first path element of the blob name ("ledger",
	// "candidates", "outbox", "incidents", a year for alerts), or the
	// listing's prefix up to its first '/'.
	Area   string
	Status string
}

func (r Request) String() string {
	return r.Op + " " + r.Container + "/" + r.Area + " " + r.Status
}

// Counting is a Store that counts the requests it passes on by kind, place
// and outcome, as a storage account's metrics (and its bill) would see
// them: the guard of request bounds in tests and the measure of a run. It
// is safe for concurrent use.
type Counting struct {
	Store
	mu     sync.Mutex
	counts map[Request]int64
}

// NewCounting wraps s.
func NewCounting(s Store) *Counting { return &Counting{Store: s, counts: map[Request]int64{}} }

// Counts returns a copy of the counts so far.
func (c *Counting) Counts() map[Request]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Reset zeroes the counts.
func (c *Counting) Reset() {
	c.mu.Lock()
	clear(c.counts)
	c.mu.Unlock()
}

// Total counts the requests for which keep is true (nil: all of them).
func (c *Counting) Total(keep func(Request) bool) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for r, k := range c.counts {
		if keep == nil || keep(r) {
			n += k
		}
	}
	return n
}

// Report lists the counts, one line per kind, largest first: for a test's
// failure message or a log.
func (c *Counting) Report() string {
	counts := c.Counts()
	rs := slices.Collect(maps.Keys(counts))
	slices.SortFunc(rs, func(a, b Request) int {
		if d := counts[b] - counts[a]; d != 0 {
			return int(d)
		}
		return strings.Compare(a.String(), b.String())
	})
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%8d %s\n", counts[r], r)
	}
	return b.String()
}

func (c *Counting) add(op, container, name string, n int64, err error) {
	area := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		area = name[:i]
	}
	status := StatusOK
	switch {
	case err == nil:
	case errors.Is(err, ErrNotExist):
		status = StatusNotFound
	case errors.Is(err, ErrConditionNotMet):
		status = StatusConflict
	default:
		status = StatusError
	}
	c.mu.Lock()
	c.counts[Request{op, container, area, status}] += n
	c.mu.Unlock()
}

func (c *Counting) Stat(ctx context.Context, container, name string) (Properties, error) {
	p, err := c.Store.Stat(ctx, container, name)
	c.add(OpStat, container, name, 1, err)
	return p, err
}

func (c *Counting) ReadAt(ctx context.Context, container, name string, p []byte, off int64, etag string) (int, error) {
	n, err := c.Store.ReadAt(ctx, container, name, p, off, etag)
	rerr := err
	if errors.Is(err, io.EOF) {
		rerr = nil // a short read, or one at the end: the request was answered
	}
	c.add(OpReadRange, container, name, 1, rerr)
	return n, err
}

func (c *Counting) Read(ctx context.Context, container, name string) ([]byte, Properties, error) {
	data, p, err := c.Store.Read(ctx, container, name)
	c.add(OpRead, container, name, 1, err)
	return data, p, err
}

func (c *Counting) Write(ctx context.Context, container, name string, data []byte, cond Condition) (Properties, error) {
	p, err := c.Store.Write(ctx, container, name, data, cond)
	op := OpWrite
	switch {
	case cond.IfNoneMatch != "":
		op = OpWriteIfNoneMatch
	case cond.IfMatch != "":
		op = OpWriteIfMatch
	}
	c.add(op, container, name, 1, err)
	return p, err
}

func (c *Counting) Delete(ctx context.Context, container, name string, cond Condition) error {
	err := c.Store.Delete(ctx, container, name, cond)
	c.add(OpDelete, container, name, 1, err)
	return err
}

// List counts one request per page of ListPageSize blobs listed.
func (c *Counting) List(ctx context.Context, container, prefix string, fn func(Properties) error) error {
	var n int64
	err := c.Store.List(ctx, container, prefix, func(p Properties) error {
		n++
		return fn(p)
	})
	c.add(OpList, container, prefix, max(1, (n+ListPageSize-1)/ListPageSize), err)
	return err
}

func (c *Counting) EnsureContainer(ctx context.Context, container string) error {
	err := c.Store.EnsureContainer(ctx, container)
	c.add(OpEnsureContainer, container, "", 1, err)
	return err
}
