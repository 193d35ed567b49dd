//go:build linux

package store

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noTmpfile is set once O_TMPFILE or /proc linking failed for a reason other
// than the target: the store then stays on named temporary files.
var noTmpfile atomic.Bool

func init() {
	// Linking an unnamed file goes through /proc/self/fd.
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		noTmpfile.Store(true)
	}
}

// writeUnnamed writes data to a new unnamed file in dir (O_TMPFILE), synced,
// for linkUnnamed to give it a name: a create then makes one directory entry
// instead of making, linking and removing a temporary name (a third less
// CPU per alert on ext4). ok is false when the file system cannot.
func writeUnnamed(dir string, data []byte) (f *os.File, ok bool, err error) {
	if noTmpfile.Load() {
		return nil, false, nil
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			noTmpfile.Store(true)
			return nil, false, nil
		}
		return nil, true, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f = os.NewFile(uintptr(fd), dir+"/(unnamed)")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, true, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, true, err
	}
	return f, true, nil
}

// linkUnnamed names f (from writeUnnamed) p; it fails with fs.ErrExist if p
// exists, as link(2) does, and with fs.ErrNotExist if p's folder is gone.
func linkUnnamed(f *os.File, p string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: p, Err: err}
	}
	return nil
}
