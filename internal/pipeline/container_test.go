package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	azcontainer "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestDeletedStateContainerIsRecreated: an operator (or a cleanup script)
// deletes the state container while serve runs. The next ProcessExport and
// the next Sweep recreate it and go on, instead of failing every call until
// the process restarts (serve creates its containers only at start).
func TestDeletedStateContainerIsRecreated(t *testing.T) {
	for _, backend := range []string{"local", "azurite"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			var s store.Store
			var drop func(container string)
			state := "tokenpivot-state"
			if backend == "local" {
				dir := t.TempDir()
				l, err := store.NewLocal(dir)
				if err != nil {
					t.Fatal(err)
				}
				s = l
				drop = func(c string) {
					if err := os.RemoveAll(filepath.Join(dir, c)); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				cs := azurite.Start(t)
				az, err := store.NewAzureFromConnectionString(cs)
				if err != nil {
					t.Fatal(err)
				}
				s, state = az, azurite.ContainerName("state")
				drop = func(c string) {
					cl, err := azcontainer.NewClientFromConnectionString(cs, c, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := cl.Delete(ctx, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			i, n := ic, nc
			if backend == "azurite" {
				i, n = azurite.ContainerName("i"), azurite.ContainerName("n")
			}
			alerts, incidents := azurite.ContainerName("alerts"), azurite.ContainerName("incidents")
			w := &alert.Writer{Store: alert.Store{Blobs: s, AlertsContainer: alerts, IncidentsContainer: incidents}, Rule: rule.Default()}
			p, err := New(Config{Exports: s, State: s, InteractiveContainer: i, NonInteractiveContainer: n,
				StateContainer: state, Filter: detect.Filter{Safe: caseSafeList(t)}, Alerts: w})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{i, n} {
				if err := s.EnsureContainer(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.EnsureContainers(ctx); err != nil {
				t.Fatal(err)
			}
			blobs := casesBlobs(t, 40)
			var works []Work
			for wk, data := range blobs {
				c := i
				if wk.Container == nc {
					c = n
				}
				wk.Container = c
				if _, err := s.Write(ctx, c, wk.Name, data, store.Condition{}); err != nil {
					t.Fatal(err)
				}
				works = append(works, wk)
			}
			slices.SortFunc(works, func(a, b Work) int { return compareWork(a, b) })
			// The first blob is processed, then the container goes.
			if _, err := p.Process(ctx, works[0]); err != nil {
				t.Fatal(err)
			}
			drop(state)
			if _, err := p.Pending(ctx); err != nil {
				t.Errorf("Sweep after the state container was deleted: %v", err)
			}
			drop(state)
			for _, wk := range works[1:] {
				if o, err := p.Process(ctx, wk); err != nil || o.Status != Processed {
					t.Fatalf("ProcessExport %s after the state container was deleted: %s, %v", wk, o.Status, err)
				}
			}
			if _, _, err := s.Read(ctx, state, ledgerName(works[len(works)-1])); err != nil {
				t.Errorf("no ledger entry in the recreated container: %v", err)
			}
		})
	}
}

func compareWork(a, b Work) int {
	switch {
	case a.String() < b.String():
		return -1
	case a.String() > b.String():
		return 1
	}
	return 0
}
