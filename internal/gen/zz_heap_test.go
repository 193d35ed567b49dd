package gen_test

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

func TestZZHeap(t *testing.T) {
	o := gen.BenchmarkOptions(t.TempDir())
	done := false
	_, err := gen.Run(context.Background(), o, func(p gen.Progress) {
		if !done && p.Rows > 1_500_000 {
			done = true
			runtime.GC()
			f, _ := os.Create("/tmp/heap.prof")
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}
