//go:build !linux

package store

import (
	"os"
	"time"
)

// fileKey identifies one version of a file as well as portable stat allows.
type fileKey struct {
	path  string
	size  int64
	mtime time.Time
}

func fileKeyOf(path string, fi os.FileInfo) (fileKey, bool) {
	return fileKey{path: path, size: fi.Size(), mtime: fi.ModTime()}, true
}
