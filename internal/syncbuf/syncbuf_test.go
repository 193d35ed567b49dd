package syncbuf

import (
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWritesAndAwait: writers and a reader share the buffer (run
// with -race), and Await sees a line written after it started waiting.
func TestConcurrentWritesAndAwait(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", i, j)
			}
		})
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(&b, `{"msg":"custom handler listening","addr":"127.0.0.1:43117"}`)
	}()
	m := b.Await(regexp.MustCompile(`"addr":"([^"]+)"`), 5*time.Second, nil)
	wg.Wait()
	if m == nil || m[1] != "127.0.0.1:43117" {
		t.Fatalf("Await: %q", m)
	}
	if got := len(regexp.MustCompile(`(?m)^writer`).FindAllString(b.String(), -1)); got != 800 {
		t.Errorf("%d lines written, want 800", got)
	}
	stop := make(chan struct{})
	close(stop)
	if m := b.Await(regexp.MustCompile(`never written`), time.Minute, stop); m != nil {
		t.Errorf("Await after stop: %q", m)
	}
}
