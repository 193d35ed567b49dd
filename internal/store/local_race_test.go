package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestLocalWriteRacesDeleteOfEmptyFolders: writers of deep names and
// deleters of their siblings at once. A Delete removes the folders it
// leaves empty; a Write that finds a folder gone while making the path
// (MkdirAll failing half way) makes it again instead of failing.
func TestLocalWriteRacesDeleteOfEmptyFolders(t *testing.T) {
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const c = "tokenpivot-state"
	if err := s.EnsureContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	rounds := 120
	if testing.Short() {
		rounds = 40
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*rounds)
	for w := range 8 {
		wg.Go(func() {
			for i := range rounds {
				// Deep names sharing every folder but the last few.
				name := fmt.Sprintf("op/rule/rows/2026/11/20/%02d/am-signinlogs/y=2026/m=11/d=20/h=%02d/m=00/PT05M_%d.json/g0-0-0.gob", i%3, i%3, w)
				if _, err := s.Write(ctx, c, name, []byte("x"), store.Condition{}); err != nil {
					errs <- err
					continue
				}
				if err := s.Delete(ctx, c, name, store.Condition{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
