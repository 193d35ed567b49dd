package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkLocalCreate is the write an alert costs on a local store: a new
// 3 KB document under a nested name, create-if-absent.
func BenchmarkLocalCreate(b *testing.B) {
	ctx := context.Background()
	l, err := NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := l.EnsureContainer(ctx, "tokenpivot-alerts"); err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 3000)
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("alerts/2026/11/20/%08d.json", i)
		if _, err := l.Write(ctx, "tokenpivot-alerts", name, data, Condition{IfNoneMatch: "*"}); err != nil {
			b.Fatal(err)
		}
	}
}
