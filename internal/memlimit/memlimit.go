// Package memlimit sets the Go runtime's soft memory limit from the memory
// the process may use, so the garbage collector works harder before the
// kernel (or the Functions host) kills it: GOMEMLIMIT when set, else a share
// of the memory limit of the process's cgroup (v2 memory.max, v1
// memory.limit_in_bytes).
package memlimit

import (
	"bufio"
	"bytes"
	"cmp"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// Limit is the soft memory limit in force and where it came from.
type Limit struct {
	Bytes  int64  // 0: none
	Source string // "GOMEMLIMIT", the cgroup file it was read from, or ""
}

var (
	mu      sync.Mutex
	current Limit
)

// Apply sets the runtime's memory limit to share of the cgroup's limit,
// unless gomemlimit, the GOMEMLIMIT environment variable the main package
// passes, is set (the runtime has applied it) or there is no cgroup limit. It returns the limit in force. share is below 1 because
// the limit is soft and the process's stacks, binary and page cache count
// against the cgroup too.
func Apply(share float64, gomemlimit string) Limit {
	return apply(share, gomemlimit, os.DirFS("/"))
}

func apply(share float64, env string, root fs.FS) Limit {
	mu.Lock()
	defer mu.Unlock()
	if env != "" {
		if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
			current = Limit{l, "GOMEMLIMIT"}
		}
		return current
	}
	n, file, ok := Cgroup(root)
	if !ok {
		return current
	}
	l := int64(float64(n) * share)
	debug.SetMemoryLimit(l)
	current = Limit{l, file}
	return current
}

// Current returns the limit set by Apply, or GOMEMLIMIT's when Apply was not
// called; Bytes is 0 when there is none.
func Current() Limit {
	mu.Lock()
	defer mu.Unlock()
	if current.Bytes == 0 {
		if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
			return Limit{l, "GOMEMLIMIT"}
		}
	}
	return current
}

// Cap lowers the soft memory limit to n bytes when the limit in force
// (GOMEMLIMIT, Apply's share of the cgroup, or none) is higher, naming
// source as its origin, and returns the limit in force. A budget per
// worker (tokenpivot process) is such a cap: the limit only ever asks the
// collector to work harder, never lets the heap grow past what the
// environment allowed. n <= 0 changes nothing. undo puts back the limit
// that was in force (a command run in-process, as in tests, leaves the
// process as it found it).
func Cap(n int64, source string) (l Limit, undo func()) {
	mu.Lock()
	defer mu.Unlock()
	prev, prevLimit := current, debug.SetMemoryLimit(-1)
	undo = func() {
		mu.Lock()
		defer mu.Unlock()
		current = prev
		debug.SetMemoryLimit(prevLimit)
	}
	if n <= 0 {
		return current, undo
	}
	if prevLimit > 0 && prevLimit <= n {
		if current.Bytes == 0 && prevLimit < math.MaxInt64 {
			current = Limit{prevLimit, "GOMEMLIMIT"}
		}
		return current, undo
	}
	debug.SetMemoryLimit(n)
	current = Limit{n, source}
	return current, undo
}

// noLimitV1 is the smallest value cgroup v1 reports for "no limit" (the
// largest int64 rounded down to a page).
const noLimitV1 = math.MaxInt64 &^ (1<<16 - 1)

// Cgroup returns the memory limit of this process's cgroup, read under root
// (the file system root in production), and the file it came from. ok is
// false when there is no cgroup, no limit ("max") or nothing readable.
func Cgroup(root fs.FS) (limit int64, file string, ok bool) {
	self, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, "", false
	}
	v2, v1 := cgroupPaths(self)
	// A container sees its own cgroup at the mount's root; a host process
	// sees it under its path. Try the path first, then the root.
	var candidates []string
	if v2 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup", v2, "memory.max"), "sys/fs/cgroup/memory.max")
	}
	if v1 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes")
	}
	for _, c := range candidates {
		data, err := fs.ReadFile(root, c)
		if err != nil {
			continue
		}
		s := string(bytes.TrimSpace(data))
		if s == "max" {
			return 0, "", false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if n >= noLimitV1 {
			return 0, "", false
		}
		return n, "/" + c, true
	}
	return 0, "", false
}

// cgroupPaths reads /proc/self/cgroup: the v2 path ("0::/path") and the v1
// memory controller's ("N:memory:/path" or a list holding memory).
func cgroupPaths(self []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		p := strings.TrimPrefix(parts[2], "/")
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = cmp.Or(p, ".")
		case hasController(parts[1], "memory"):
			v1 = cmp.Or(p, ".")
		}
	}
	return v2, v1
}

func hasController(list, c string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}
