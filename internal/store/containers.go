package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
)

// ContainerLister is a Store that can list its containers: both of ours
// can. Callers use it to say what an account holds when what they looked
// for is not there.
type ContainerLister interface {
	Containers(ctx context.Context) ([]string, error)
}

var (
	_ ContainerLister = (*Azure)(nil)
	_ ContainerLister = (*Local)(nil)
)

// Containers returns the account's container names, sorted.
func (a *Azure) Containers(ctx context.Context) ([]string, error) {
	var names []string
	pager := a.svc.NewListContainersPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, a.fail("list containers", "", "", err)
		}
		for _, c := range page.ContainerItems {
			if c.Name != nil {
				names = append(names, *c.Name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// Containers returns the folders of the root that are valid container
// names, sorted (the store's own reserved folders are not containers).
func (l *Local) Containers(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(l.root)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", l.root, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), reservedPrefix) && CheckContainer(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
