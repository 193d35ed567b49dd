package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("alerts", stderr, "--storage DIR|URL|CONNECTION-STRING [--format table|json]")
	sf := settings.Register(fs, join(storageSettings, outputSettings)...)
	format := fs.String("format", "table", "output `format`: table, or json (one alert document per line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := sf.Load(nil)
	if err != nil {
		return usageError{err}
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	// Alerts live in the state store: open only that, and read no rule.
	s.StorageAccountURL = cmp.Or(s.StateStorageAccountURL, s.StorageAccountURL)
	_, state, err := openStores(ctx, s)
	if err != nil {
		return err
	}
	docs, incs, err := alert.List(ctx, state, s.AlertsContainer, s.IncidentsContainer)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err = warnUnreadable(stderr, err); err != nil {
		return err
	}
	if *format == "json" {
		for _, d := range docs {
			b, err := d.MarshalJSON()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
		}
		return nil
	}
	return alert.WriteTable(stdout, docs, incs)
}
