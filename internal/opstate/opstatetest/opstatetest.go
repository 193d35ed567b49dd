// Package opstatetest supports the stateful operators' tests: generated
// sign-in exports cut into blobs as Log Analytics export writes them (late
// rows, export retries that repeat rows by Id), the watermark the pipeline
// gives, and a store that fails one request.
package opstatetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/opstate"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Signin is one generated sign-in row.
type Signin struct {
	Id           string
	Time         time.Time
	UPN          string
	IP           string
	Location     string
	LocationNull bool // the location is null (an unresolved IP)
	App          string
	ResultType   string
}

// Blob is one export blob: its source identity and rows.
type Blob struct {
	Source opstate.Source
	Rows   []Signin
}

// Options shape the generated data.
type Options struct {
	Seed        uint64
	Start       time.Time // first hour (2026-11-20T00:00Z if zero)
	Hours       int
	Users       int
	RowsPerHour int
	// Lateness is the allowed lateness the operators are given: a few rows
	// are put in blobs modified more than this after them (late rows).
	Lateness time.Duration // 2h if zero
}

// Generate returns blobs of sign-ins over opts.Hours hours: per hour two
// blobs modified 1 to 20 minutes after the hour ends; 3% of rows ride in the
// next hour's blob (not late), 2% are repeated in another blob (an export
// retry, same Id), 1% arrive in a blob modified more than the lateness
// later (late), and 5% sit exactly on an hour boundary.
func Generate(opts Options) []Blob {
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	}
	if opts.Lateness == 0 {
		opts.Lateness = 2 * time.Hour
	}
	r := rand.New(rand.NewPCG(opts.Seed, 42))
	locations := []string{"US", "DE", "FR", "GB", "NL", "JP", ""}
	apps := []string{"Office 365 Exchange Online", "Microsoft Teams", "Azure Portal", "GitHub.com", "Windows Sign In"}
	var blobs []Blob
	newBlob := func(h time.Time, k int, lm time.Time) int {
		blobs = append(blobs, Blob{Source: opstate.Source{
			Blob:         fmt.Sprintf("am-signinlogs/y=%d/m=%02d/d=%02d/h=%02d/m=00/PT05M_%d.json", h.Year(), h.Month(), h.Day(), h.Hour(), k),
			LastModified: lm}})
		return len(blobs) - 1
	}
	var late int = -1
	seq := 0
	for hi := range opts.Hours {
		h := opts.Start.Add(time.Duration(hi) * time.Hour)
		end := h.Add(time.Hour)
		b := [2]int{
			newBlob(h, 0, end.Add(time.Duration(1+r.IntN(20))*time.Minute)),
			newBlob(h, 1, end.Add(time.Duration(1+r.IntN(20))*time.Minute)),
		}
		next := -1
		if hi+1 < opts.Hours {
			// The next hour's first blob, created now so that rows can spill.
			next = newBlob(end, 2, end.Add(time.Hour).Add(time.Duration(1+r.IntN(20))*time.Minute))
		}
		if late < 0 || hi%3 == 0 {
			late = newBlob(h, 9, end.Add(opts.Lateness).Add(time.Duration(5+r.IntN(30))*time.Minute))
		}
		for range opts.RowsPerHour {
			seq++
			u := r.IntN(opts.Users)
			t := h.Add(time.Duration(r.Int64N(int64(time.Hour))))
			if r.IntN(20) == 0 {
				t = h // exactly on the boundary
			}
			loc := locations[(u+r.IntN(3))%len(locations)]
			s := Signin{
				Id:   fmt.Sprintf("%08x-%04x-4000-8000-%012x", seq, u, r.Uint64()&0xffffffffffff),
				Time: t, UPN: fmt.Sprintf("user%02d@contoso.com", u),
				IP:       fmt.Sprintf("203.0.113.%d", (u*7+r.IntN(4))%256),
				Location: loc, LocationNull: loc == "",
				App:        apps[r.IntN(len(apps))],
				ResultType: "0",
			}
			if r.IntN(10) < 3 {
				s.ResultType = "50126"
			}
			dst := b[r.IntN(2)]
			switch x := r.IntN(100); {
			case x < 3 && next >= 0:
				dst = next
			case x < 4:
				dst = late
			}
			blobs[dst].Rows = append(blobs[dst].Rows, s)
			if r.IntN(50) == 0 { // an export retry repeats the row elsewhere
				other := b[0]
				if dst == b[0] {
					other = b[1]
				}
				blobs[other].Rows = append(blobs[other].Rows, s)
			}
		}
	}
	return slices.DeleteFunc(blobs, func(b Blob) bool { return len(b.Rows) == 0 })
}

// Queue is every blob index once plus dups repeated ones, shuffled.
func Queue(r *rand.Rand, n, dups int) []int {
	q := make([]int, 0, n+dups)
	for i := range n {
		q = append(q, i)
	}
	for range dups {
		q = append(q, r.IntN(n))
	}
	r.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
	return q
}

// Watermark tracks which blobs are applied and gives the watermark the
// pipeline would: the Last-Modified of the oldest blob not yet applied (all
// before it are), or far ahead once all are.
type Watermark struct {
	mu      sync.Mutex
	blobs   []Blob
	applied []bool
}

// NewWatermark tracks blobs, none applied.
func NewWatermark(blobs []Blob) *Watermark {
	return &Watermark{blobs: blobs, applied: make([]bool, len(blobs))}
}

// Applied records blob i as applied; it reports whether it was the first time.
func (w *Watermark) Applied(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := !w.applied[i]
	w.applied[i] = true
	return first
}

// Now is the watermark.
func (w *Watermark) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var wm, last time.Time
	for i, b := range w.blobs {
		lm := b.Source.LastModified
		if lm.After(last) {
			last = lm
		}
		if !w.applied[i] && (wm.IsZero() || lm.Before(wm)) {
			wm = lm
		}
	}
	if wm.IsZero() {
		return last.Add(1000 * time.Hour)
	}
	return wm
}

// ErrInjected is the failure FaultStore injects.
var ErrInjected = errors.New("opstatetest: injected storage failure")

// FaultStore fails request number FailAt (1-based) once: before it takes
// effect, or, with After, after it did (the caller never hears the answer,
// as when the process dies). It counts every request.
type FaultStore struct {
	store.Store
	FailAt int64
	After  bool

	mu    sync.Mutex
	n     int64
	fired bool
}

// Requests is the number of requests made so far.
func (f *FaultStore) Requests() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Fired reports whether the fault was injected.
func (f *FaultStore) Fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// do runs one request through the fault.
func (f *FaultStore) do(fn func() error) error {
	f.mu.Lock()
	f.n++
	hit := f.n == f.FailAt
	if hit {
		f.fired = true
	}
	f.mu.Unlock()
	if hit && !f.After {
		return ErrInjected
	}
	err := fn()
	if hit {
		return ErrInjected
	}
	return err
}

func (f *FaultStore) Stat(ctx context.Context, c, name string) (p store.Properties, err error) {
	err = f.do(func() error { p, err = f.Store.Stat(ctx, c, name); return err })
	return p, err
}

func (f *FaultStore) ReadAt(ctx context.Context, c, name string, b []byte, off int64, etag string) (n int, err error) {
	err = f.do(func() error { n, err = f.Store.ReadAt(ctx, c, name, b, off, etag); return err })
	return n, err
}

func (f *FaultStore) Read(ctx context.Context, c, name string) (data []byte, p store.Properties, err error) {
	err = f.do(func() error { data, p, err = f.Store.Read(ctx, c, name); return err })
	return data, p, err
}

func (f *FaultStore) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (p store.Properties, err error) {
	err = f.do(func() error { p, err = f.Store.Write(ctx, c, name, data, cond); return err })
	return p, err
}

func (f *FaultStore) Delete(ctx context.Context, c, name string, cond store.Condition) error {
	return f.do(func() error { return f.Store.Delete(ctx, c, name, cond) })
}

func (f *FaultStore) List(ctx context.Context, c, prefix string, fn func(store.Properties) error) error {
	return f.do(func() error { return f.Store.List(ctx, c, prefix, fn) })
}

// CPUTime is the process's user plus system CPU time so far: what a
// benchmark on a shared machine can report, where wall time measures the
// neighbours too.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
