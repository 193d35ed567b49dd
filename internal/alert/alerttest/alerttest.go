// Package alerttest reads stored alerts back for tests, as httptest and
// sentineltest serve theirs: the result rows the alerts of a store hold, to
// compare with the batch rule's.
package alerttest

import (
	"context"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Rows returns the union of the Results of every alert stored in container
// of s, sorted as the rule orders them (detect.Sort).
func Rows(t testing.TB, s store.Store, container string) []detect.Result {
	t.Helper()
	docs, _, err := alert.Store{Blobs: s, AlertsContainer: container}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rows []detect.Result
	for _, d := range docs {
		rows = append(rows, d.Results...)
	}
	detect.Sort(rows)
	return rows
}
