package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("alerts", stderr, "--storage DIR|URL|CONNECTION-STRING [--format table|json] [--wide] [--redeliver]")
	sf := settings.Register(fs, join(storageSettings, outputSettings, []string{settings.StateContainer}, deliverySettings)...)
	format := fs.String("format", "table", "output `format`: table, or json (one alert document per line)")
	wide := fs.Bool("wide", false, "print every column and full ids (wider than 120 columns)")
	redeliver := fs.Bool("redeliver", false, "make every failed delivery pending again and, when sinks are configured, deliver now")
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
	// The outbox's entries, whatever sinks this run configures.
	ob := &outbox.Outbox{Store: state, Container: s.StateContainer}
	if *redeliver {
		n, err := ob.Redeliver(ctx)
		if err != nil {
			return fmt.Errorf("redeliver: %w", err)
		}
		fmt.Fprintf(stderr, "%d failed deliveries made pending again\n", n)
		configured, err := newOutbox(state, s, slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		if configured != nil {
			deliverAll(ctx, configured, stderr, slog.New(slog.DiscardHandler))
		} else {
			fmt.Fprintln(stderr, "no sink configured here: the next Sweep delivers them")
		}
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
	if err := writeAlertTable(stdout, docs, incs, *wide); err != nil {
		return err
	}
	entries, err := ob.Entries(ctx)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	return outbox.WriteStatus(stdout, entries)
}
