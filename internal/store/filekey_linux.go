//go:build linux

package store

import (
	"os"
	"syscall"
	"time"
)

// fileKey identifies one version of a file: a rename gives a new inode and an
// in-place change moves mtime and ctime (which no program can set back).
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

func fileKeyOf(path string, fi os.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(),
		mtime: fi.ModTime(), ctime: time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)),
	}, true
}
