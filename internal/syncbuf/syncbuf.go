// Package syncbuf holds Buffer, a bytes.Buffer that a process's or a
// logger's output goroutines and a test can share: the one home of what
// were four copies of a locked buffer in the tests.
package syncbuf

import (
	"bytes"
	"regexp"
	"sync"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	// Max, when positive, bounds what is kept: writes past it are dropped
	// (a chatty process's output kept for an error message).
	Max int

	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Max > 0 && b.b.Len() >= b.Max {
		return len(p), nil
	}
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Await waits until what was written matches re and returns the match's
// submatches (the whole match first); nil if it does not within timeout,
// or once stop is closed (a process that exited: nil stop never is). A
// server that listens on port 0 and logs its address is awaited this way:
// reading the address back avoids the race of picking a free port, closing
// it and having the server bind it, which another process may take
// meanwhile.
func (b *Buffer) Await(re *regexp.Regexp, timeout time.Duration, stop <-chan struct{}) []string {
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-stop:
			// What it wrote before it stopped still counts.
			return re.FindStringSubmatch(b.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
