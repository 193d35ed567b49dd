package main

import (
	"cmp"
	"time"
)

// The column helpers of the export-job table (exports.go); the alert
// tables are alert.WriteTable.

func utcStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// shortID is an id's first 8 characters: unique enough to tell the rows of
// one listing apart, and what the wide table's full id starts with.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dash(s string) string { return cmp.Or(s, "-") }
