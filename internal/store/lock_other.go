//go:build !unix

package store

// lockFile is a no-op without flock: only the in-process lock applies.
func lockFile(path string) (func(), error) { return func() {}, nil }
