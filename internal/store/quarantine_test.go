package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestMoveAside(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		const name = "ledger/exports/a=1/b.json"
		p, err := s.Write(ctx, c, name, []byte("{not json"), store.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		// A stale ETag leaves a replaced blob alone.
		if _, err := store.MoveAside(ctx, s, c, name, `"stale"`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, c, name); err != nil {
			t.Fatalf("replaced blob was moved: %v", err)
		}
		aside, err := store.MoveAside(ctx, s, c, name, p.ETag)
		if err != nil {
			t.Fatal(err)
		}
		if aside != store.QuarantinePrefix+name {
			t.Errorf("aside = %q", aside)
		}
		if _, err := s.Stat(ctx, c, name); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("original still there: %v", err)
		}
		data, _, err := s.Read(ctx, c, aside)
		if err != nil || string(data) != "{not json" {
			t.Errorf("quarantined copy = %q, %v", data, err)
		}
		// Gone already: not an error.
		if _, err := store.MoveAside(ctx, s, c, name, ""); err != nil {
			t.Errorf("second move: %v", err)
		}
	})
}
