package store

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
)

// ReaderAt reads one version of a blob by ranges: every read carries the
// ETag of the Properties it was made from, so a blob replaced mid-read fails
// with ErrConditionNotMet instead of mixing two versions. Wrap it in
// io.NewSectionReader(r, 0, r.Size()) where an io.ReadSeeker is needed
// (parquet's ReaderAtSeeker).
//
// Small reads (a Parquet reader reads 8 bytes at the end, then the footer,
// then each column chunk; chunks of small columns are a few KiB) are served
// from a small LRU of blocks fetched whole, so neighbouring small reads cost
// one request. Blocks are aligned to the end of the blob so that the footer
// reads share one. Reads over a quarter block go straight to the store:
// fetching a whole block for them would multiply the bytes read. So does a
// small read that starts where a direct one ended: a buffered page reader
// (parquet-go's) reads a column chunk larger than its buffer as a full
// buffer and then the short rest, and a block for that rest would fetch up
// to 512 KiB for a few. It is safe for concurrent use.
type ReaderAt struct {
	ctx      context.Context
	s        Store
	p        Properties
	requests atomic.Int64
	bytes    atomic.Int64

	mu     sync.Mutex
	blocks []cachedBlock     // most recently used last
	ends   [readBlocks]int64 // where recent direct reads ended, a ring
	nends  int
}

type cachedBlock struct {
	index int64
	data  []byte
}

const (
	readBlockSize = 512 << 10
	readDirect    = readBlockSize / 4 // reads at least this long skip the cache
	readBlocks    = 8
)

// NewReaderAt returns a ranged reader for the blob version p describes.
func NewReaderAt(ctx context.Context, s Store, p Properties) *ReaderAt {
	return &ReaderAt{ctx: ctx, s: s, p: p}
}

// Size returns the blob's size as of p.
func (r *ReaderAt) Size() int64 { return r.p.Size }

// Requests returns how many reads went to the store.
func (r *ReaderAt) Requests() int64 { return r.requests.Load() }

// BytesFetched returns how many bytes the reads fetched from the store.
func (r *ReaderAt) BytesFetched() int64 { return r.bytes.Load() }

// ReadAt implements io.ReaderAt over the pinned version.
func (r *ReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: read %s/%s: negative offset %d", r.p.Container, r.p.Name, off)
	}
	if off >= r.p.Size {
		if len(b) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := int64(len(b))
	if rest := r.p.Size - off; rest < want {
		want = rest
	}
	var n int
	if want >= readDirect || r.continues(off) {
		var err error
		n, err = r.fetch(b[:want], off)
		if err != nil {
			return n, err
		}
		if want >= readDirect {
			r.mu.Lock()
			r.ends[r.nends%len(r.ends)] = off + want
			r.nends++
			r.mu.Unlock()
		}
	} else {
		for int64(n) < want {
			pos := off + int64(n)
			start, blk, err := r.block((r.p.Size - 1 - pos) / readBlockSize)
			if err != nil {
				return n, err
			}
			n += copy(b[n:want], blk[pos-start:])
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// continues reports whether a read at off follows a recent direct read.
func (r *ReaderAt) continues(off int64) bool {
	if off == 0 {
		return false // the zero ring entries are no direct read
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ends[:], off)
}

// fetch reads exactly len(b) bytes, which lie within the pinned size.
func (r *ReaderAt) fetch(b []byte, off int64) (int, error) {
	r.requests.Add(1)
	n, err := r.s.ReadAt(r.ctx, r.p.Container, r.p.Name, b, off, r.p.ETag)
	r.bytes.Add(int64(n))
	if err == io.EOF && n < len(b) {
		err = fmt.Errorf("store: read %s/%s: blob is shorter than its %d bytes: %w", r.p.Container, r.p.Name, r.p.Size, io.ErrUnexpectedEOF)
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// block returns block i, counted from the end of the blob, and its offset,
// from the cache or the store.
func (r *ReaderAt) block(i int64) (int64, []byte, error) {
	end := r.p.Size - i*readBlockSize
	start := max(0, end-readBlockSize)
	r.mu.Lock()
	for k, c := range r.blocks {
		if c.index == i {
			r.blocks = append(append(r.blocks[:k:k], r.blocks[k+1:]...), c)
			r.mu.Unlock()
			return start, c.data, nil
		}
	}
	r.mu.Unlock()
	// Fetched without the lock so concurrent readers of other blocks do not
	// wait; two readers of the same missing block may both fetch it.
	data := make([]byte, end-start)
	if _, err := r.fetch(data, start); err != nil {
		return 0, nil, err
	}
	r.mu.Lock()
	if len(r.blocks) == readBlocks {
		r.blocks = append(r.blocks[:0], r.blocks[1:]...)
	}
	r.blocks = append(r.blocks, cachedBlock{index: i, data: data})
	r.mu.Unlock()
	return start, data, nil
}
