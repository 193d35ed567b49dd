package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestCgroup(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	const v1Self = "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"
	for _, tc := range []struct {
		name     string
		fs       fstest.MapFS
		want     int64
		wantFile string
	}{
		{"v2 container sees its root", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("536870912\n"),
		}, 512 << 20, "/sys/fs/cgroup/memory.max"},
		{"v2 host process, under its path", fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/tp.service\n"),
			"sys/fs/cgroup/system.slice/tp.service/memory.max": file("1073741824\n"),
			"sys/fs/cgroup/memory.max":                         file("max\n"),
		}, 1 << 30, "/sys/fs/cgroup/system.slice/tp.service/memory.max"},
		{"v2 without a limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, ""},
		{"v1 under its path", fstest.MapFS{
			"proc/self/cgroup": file(v1Self),
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": file("2147483648\n"),
		}, 2 << 30, "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"},
		{"v1 at the mount root", fstest.MapFS{
			"proc/self/cgroup":                           file(v1Self),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
		}, 256 << 20, "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v1 unlimited", fstest.MapFS{
			"proc/self/cgroup": file(v1Self),
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, ""},
		{"unreadable value", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0, ""},
		{"no cgroup", fstest.MapFS{}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, file, ok := Cgroup(tc.fs)
			if got != tc.want || file != tc.wantFile || ok != (tc.want > 0) {
				t.Errorf("Cgroup = %d, %q, %v; want %d, %q", got, file, ok, tc.want, tc.wantFile)
			}
		})
	}
}

func TestApply(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetMemoryLimit(before)
		mu.Lock()
		current = Limit{}
		mu.Unlock()
	})
	root := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
	}
	got := apply(0.5, "", root)
	if got.Bytes != 512<<20 || got.Source != "/sys/fs/cgroup/memory.max" {
		t.Fatalf("apply = %+v", got)
	}
	if l := debug.SetMemoryLimit(-1); l != 512<<20 {
		t.Errorf("runtime limit = %d, want %d", l, 512<<20)
	}
	if c := Current(); c != got {
		t.Errorf("Current = %+v, want %+v", c, got)
	}
	// GOMEMLIMIT set: the runtime's value stands, the cgroup is not read.
	debug.SetMemoryLimit(300 << 20)
	if got := apply(0.5, "300MiB", root); got.Bytes != 300<<20 || got.Source != "GOMEMLIMIT" {
		t.Errorf("apply with GOMEMLIMIT = %+v", got)
	}
	// No cgroup limit: nothing changes.
	debug.SetMemoryLimit(math.MaxInt64)
	mu.Lock()
	current = Limit{}
	mu.Unlock()
	if got := apply(0.5, "", fstest.MapFS{}); got.Bytes != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("apply without a cgroup = %+v, limit %d", got, debug.SetMemoryLimit(-1))
	}
}

func TestCap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetMemoryLimit(before)
		mu.Lock()
		current = Limit{}
		mu.Unlock()
	})
	for _, tc := range []struct {
		name    string
		limit   int64 // the runtime's before Cap (math.MaxInt64: none)
		cap     int64
		want    Limit
		runtime int64
	}{
		{"no limit: the cap is the limit", math.MaxInt64, 224 << 20, Limit{224 << 20, "--heap-per-worker"}, 224 << 20},
		{"GOMEMLIMIT higher: lowered", 350 << 20, 224 << 20, Limit{224 << 20, "--heap-per-worker"}, 224 << 20},
		{"GOMEMLIMIT lower: it stands", 150 << 20, 224 << 20, Limit{150 << 20, "GOMEMLIMIT"}, 150 << 20},
		{"no cap", 350 << 20, 0, Limit{}, 350 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.limit)
			mu.Lock()
			current = Limit{}
			mu.Unlock()
			got, undo := Cap(tc.cap, "--heap-per-worker")
			if got != tc.want {
				t.Errorf("Cap = %+v, want %+v", got, tc.want)
			}
			if l := debug.SetMemoryLimit(-1); l != tc.runtime {
				t.Errorf("runtime limit = %d, want %d", l, tc.runtime)
			}
			undo()
			if l := debug.SetMemoryLimit(-1); l != tc.limit || Current().Bytes != 0 && tc.limit == math.MaxInt64 {
				t.Errorf("after undo: runtime limit %d, Current %+v; want %d as before", l, Current(), tc.limit)
			}
		})
	}
}
