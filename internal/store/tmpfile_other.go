//go:build !linux

package store

import "os"

// writeUnnamed is for Linux's O_TMPFILE; elsewhere creates use named
// temporary files.
func writeUnnamed(dir string, data []byte) (*os.File, bool, error) { return nil, false, nil }

func linkUnnamed(f *os.File, p string) error { panic("store: no unnamed files here") }
