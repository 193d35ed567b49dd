package signin

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
)

// Memory reuse of the Parquet reader: arrow-go's page buffers come from a
// pooling allocator, so that the buffers of a closed column chunk serve the
// next chunk (or the next file) instead of becoming garbage, and unique text
// is copied into shared blocks instead of one allocation per value.

// textBlock copies unique strings into shared blocks, one allocation per
// block instead of one per string. A block is small enough that a retained
// record does not pin much memory.
type textBlock struct {
	buf []byte
}

const textBlockSize = 32 << 10

func (b *textBlock) clone(s string) string {
	if len(s) > cap(b.buf)-len(b.buf) {
		if len(s) > textBlockSize/4 {
			return strings.Clone(s) // large: its own allocation
		}
		b.buf = make([]byte, 0, textBlockSize)
	}
	start := len(b.buf)
	b.buf = append(b.buf, s...)
	return unsafe.String(&b.buf[start], len(s))
}

// readProps makes arrow-go read a column chunk through a small buffer (not
// into one allocation of the whole chunk) and take its page buffers from
// pageAlloc, so that the buffers of a closed chunk serve the next one instead
// of becoming garbage.
var readProps = func() *parquet.ReaderProperties {
	p := parquet.NewReaderProperties(pageAlloc)
	p.BufferedStreamEnabled = true
	p.BufferSize = 64 << 10
	return p
}()

var pageAlloc = &poolAllocator{}

// poolAllocator is a memory.Allocator that keeps freed buffers, by power-of-two
// capacity, for the next allocations. Memory is zeroed, as Go allocates it.
type poolAllocator struct {
	pools [poolClasses]sync.Pool
}

const (
	poolMinShift = 12 // 4 KiB
	poolClasses  = 16 // up to 128 MiB; larger buffers are not kept
)

func poolClass(size int) (int, bool) {
	c := 0
	for size > 1<<(poolMinShift+c) {
		c++
	}
	return c, c < poolClasses
}

func (a *poolAllocator) Allocate(size int) []byte {
	c, ok := poolClass(size)
	if !ok {
		return make([]byte, size)
	}
	if p, _ := a.pools[c].Get().(*[]byte); p != nil {
		b := (*p)[:size]
		clear(b)
		return b
	}
	return make([]byte, size, 1<<(poolMinShift+c))
}

func (a *poolAllocator) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		n := len(b)
		b = b[:size]
		if size > n {
			clear(b[n:])
		}
		return b
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

func (a *poolAllocator) Free(b []byte) {
	c, ok := poolClass(cap(b))
	if !ok || cap(b) != 1<<(poolMinShift+c) {
		return
	}
	b = b[:cap(b)]
	a.pools[c].Put(&b)
}

var _ memory.Allocator = (*poolAllocator)(nil)
