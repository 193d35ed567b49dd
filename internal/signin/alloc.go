package signin

import (
	"strings"
	"unsafe"
)

// textBlock copies strings into shared blocks, one allocation per block
// instead of one per string. A block is small enough that a retained record
// does not pin much memory.
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
