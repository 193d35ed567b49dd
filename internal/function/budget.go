package function

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"golang.org/x/sync/semaphore"

	"github.com/tokenpivot/tokenpivot/internal/memlimit"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// MemoryPerBlobByte is the peak memory one ProcessExport holds per byte of
// the export blob it processes (Parquet, snappy, the full export schema),
// measured with `tokenpivot serve` on the benchmark hour (infra/README.md,
// "Memory"). JSON Lines blobs are bigger for the same rows, so the factor
// overestimates them, which errs on the safe side.
const MemoryPerBlobByte = 10

// MemoryPerStreamedBlob caps the weight of a non-interactive blob: the
// pipeline streams it (its extracts written and its rows probed as they are
// read), so its peak does not grow with its size, only with the row groups
// in flight, the interactive index of its window and its results. A
// non-interactive blob of 0.1M to 2M rows (28 MB of Parquet to a 5 GB
// PT1H.json) peaks at 155-273 MiB RSS through `process --workers 1`, 353
// MiB at 4M rows (its 85k result rows), 15 MiB of it the idle process and
// about half of the rest garbage the collector has not yet taken: about 130
// MB live (infra/README.md, "Memory"; docs/performance.md, "Blob-size
// sweep").
const MemoryPerStreamedBlob = 192 << 20

// DefaultInstanceMemory is the memory assumed when neither GOMEMLIMIT nor a
// cgroup limit says: the Flex Consumption default instance size.
const DefaultInstanceMemory = 2048 << 20

// Shares of the instance memory given to blobs in flight. Under GOMEMLIMIT
// the Go runtime holds the heap to the limit and the rest of the instance
// is already left to the Functions host, so most of it can go to blobs; a
// cgroup limit is the whole instance, shared with the host process.
const (
	goLimitShare = 0.8
	cgroupShare  = 0.5
)

// InstanceMemory returns the memory budget for blobs in flight and where it
// comes from: a share of the Go memory limit when one is set (GOMEMLIMIT, or
// memlimit.Apply from the cgroup), else of the cgroup limit, else of
// DefaultInstanceMemory.
func InstanceMemory() (int64, string) {
	return instanceMemory(memlimit.Current(), func() (int64, string, bool) { return memlimit.Cgroup(os.DirFS("/")) })
}

func instanceMemory(goLimit memlimit.Limit, cgroup func() (int64, string, bool)) (int64, string) {
	if goLimit.Bytes > 0 {
		return int64(float64(goLimit.Bytes) * goLimitShare), goLimit.Source
	}
	if n, file, ok := cgroup(); ok {
		return int64(float64(n) * cgroupShare), file
	}
	return int64(float64(DefaultInstanceMemory) * cgroupShare), "default"
}

// budget bounds the memory of the blobs processed at once by one instance:
// the host may invoke ProcessExport batchSize+newBatchThreshold times
// concurrently (host.json), whatever the instance's size.
type budget struct {
	sem    *semaphore.Weighted
	total  int64
	source string
}

func newBudget(total int64, source string) *budget {
	if total <= 0 {
		return nil
	}
	return &budget{sem: semaphore.NewWeighted(total), total: total, source: source}
}

// weight is the budget a blob of size bytes takes: MemoryPerBlobByte a
// byte, at most MemoryPerStreamedBlob for a streamed (non-interactive)
// blob; a blob larger than the whole budget takes all of it, so it still
// runs, alone.
func (b *budget) weight(size int64, streamed bool) int64 {
	if size <= 0 {
		return 0
	}
	n := b.total
	if size <= b.total/MemoryPerBlobByte {
		n = size * MemoryPerBlobByte
	}
	if streamed {
		n = min(n, MemoryPerStreamedBlob)
	}
	return min(n, b.total)
}

// admit waits until the blob w fits in the memory budget, and returns the
// function that gives its share back. ok is false when ctx ended first (the
// host cancelled, or serve is stopping): the queue redelivers the message.
func (h *Handler) admit(ctx context.Context, inv *invocation, w pipeline.Work) (release func(), status int, ok bool) {
	b := h.budget
	if b == nil {
		return func() {}, 0, true
	}
	props, err := h.cfg.Exports.Stat(ctx, w.Container, w.Name)
	if err != nil {
		// The pipeline reports the blob gone, or the storage failure.
		return func() {}, 0, true
	}
	t, _ := h.cfg.Pipeline.Table(w.Container)
	n := b.weight(props.Size, t == signin.NonInteractive)
	if n == 0 {
		return func() {}, 0, true
	}
	if !b.sem.TryAcquire(n) {
		inv.log.Info("waiting for memory: other blobs in flight use the instance's budget",
			slog.String("blob", w.String()), slog.Int64("size", props.Size), slog.Int64("weight", n), slog.Int64("budget", b.total))
		h.waiting.Add(1)
		err := b.sem.Acquire(ctx, n)
		h.waiting.Add(-1)
		if err != nil {
			inv.log.Error("invocation aborted while waiting for memory, will retry", slog.String("blob", w.String()), slog.String("error", err.Error()))
			inv.resp.ReturnValue = summary{Blob: w.String(), Error: err.Error()}
			return nil, http.StatusServiceUnavailable, false
		}
	}
	h.running.Add(1)
	return func() { h.running.Add(-1); b.sem.Release(n) }, 0, true
}

// MemoryBudget returns the memory budget for blobs in flight (0: unbounded)
// and where it comes from.
func (h *Handler) MemoryBudget() (int64, string) {
	if h.budget == nil {
		return 0, "unbounded"
	}
	return h.budget.total, h.budget.source
}
