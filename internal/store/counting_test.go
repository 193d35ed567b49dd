package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestCountingClassifies checks that each request is counted once, by kind,
// place and outcome, and a listing by Azure's pages.
func TestCountingClassifies(t *testing.T) {
	ctx := context.Background()
	local, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCounting(local)
	const ct = "state"
	if err := c.EnsureContainer(ctx, ct); err != nil {
		t.Fatal(err)
	}
	p, err := c.Write(ctx, ct, "ledger/a.json", []byte("{}"), store.Condition{IfNoneMatch: "*"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, ct, "ledger/a.json", []byte("{}"), store.Condition{IfNoneMatch: "*"}); !errors.Is(err, store.ErrConditionNotMet) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := c.Write(ctx, ct, "ledger/a.json", []byte("{1}"), store.Condition{IfMatch: p.ETag}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx, ct, "ledger/missing.json"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("read missing: %v", err)
	}
	buf := make([]byte, 10)
	if _, err := c.ReadAt(ctx, ct, "ledger/a.json", buf, 0, ""); err == nil {
		t.Fatal("a 3-byte blob filled 10 bytes")
	}
	// More than a page of blobs, written in parallel: each is a file
	// synced to disk, 10 s one after the other.
	var g errgroup.Group
	g.SetLimit(16)
	for i := range store.ListPageSize + 1 {
		g.Go(func() error {
			_, err := local.Write(ctx, ct, fmt.Sprintf("many/%05d", i), nil, store.Condition{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := c.List(ctx, ct, "many/", func(store.Properties) error { n++; return nil }); err != nil || n != store.ListPageSize+1 {
		t.Fatalf("list: %d, %v", n, err)
	}
	if err := c.List(ctx, ct, "none/", func(store.Properties) error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[store.Request]int64{
		{store.OpEnsureContainer, ct, "", store.StatusOK}:              1,
		{store.OpWriteIfNoneMatch, ct, "ledger", store.StatusOK}:       1,
		{store.OpWriteIfNoneMatch, ct, "ledger", store.StatusConflict}: 1,
		{store.OpWriteIfMatch, ct, "ledger", store.StatusOK}:           1,
		{store.OpRead, ct, "ledger", store.StatusNotFound}:             1,
		{store.OpReadRange, ct, "ledger", store.StatusOK}:              1, // short, io.EOF: answered
		{store.OpList, ct, "many", store.StatusOK}:                     2, // two pages
		{store.OpList, ct, "none", store.StatusOK}:                     1,
	}
	got := c.Counts()
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%s: %d requests, want %d", r, got[r], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counted:\n%s", c.Report())
	}
	if n := c.Total(func(r store.Request) bool { return r.Status != store.StatusOK }); n != 2 {
		t.Errorf("%d requests not ok, want 2", n)
	}
	c.Reset()
	if n := c.Total(nil); n != 0 {
		t.Errorf("after Reset: %d", n)
	}
}
