package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("alerts", stderr, "--storage DIR|URL|CONNSTR [--format table|json] [--wide]\n       [--redeliver] [--backfill --since TIME]")
	sf := settings.Register(fs, join(storageSettings, outputSettings, []string{settings.StateContainer}, deliverySettings)...)
	format := fs.String("format", "table", "output `format`: table, or json (one alert document per line)")
	wide := fs.Bool("wide", false, "print every column, full ids and full delivery errors (wider than 120 columns)")
	redeliver := fs.Bool("redeliver", false, "make every failed or waiting delivery due now, release held (410) targets and, when sinks are configured, deliver now")
	backfill := fs.Bool("backfill", false, "give the configured sinks every revision recorded since --since that they have not had (a sink added later starts from when it was configured)")
	since := fs.String("since", "", "with --backfill: the RFC 3339 `time` to backfill from")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := sf.Load(os.Getenv)
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
	var from time.Time
	switch {
	case *backfill && *since == "":
		return usagef("--backfill needs --since TIME (RFC 3339)")
	case !*backfill && *since != "":
		return usagef("--since is for --backfill")
	case *backfill:
		if from, err = time.Parse(time.RFC3339, *since); err != nil {
			return usagef("--since %q: want an RFC 3339 time such as 2026-11-20T00:00:00Z", *since)
		}
	}
	// The outbox's entries, whatever sinks this run configures.
	ob := &outbox.Outbox{Store: state, Container: s.StateContainer}
	if *redeliver || *backfill {
		configured, err := newOutbox(state, s, slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		if *backfill {
			if len(configured.Sinks) == 0 {
				return usagef("--backfill: no sink is configured here (set %s or %s)", settings.WebhookURL, settings.LogsIngestionEndpoint)
			}
			n, err := configured.Backfill(ctx, from)
			if err != nil {
				return fmt.Errorf("backfill: %w", err)
			}
			for _, sk := range configured.Sinks {
				fmt.Fprintf(stderr, "%d revisions recorded since %s queued for %s\n", n[sk.Name()], from.UTC().Format(time.RFC3339), sk.Name())
			}
		}
		if *redeliver {
			n, err := ob.Redeliver(ctx)
			if err != nil {
				return fmt.Errorf("redeliver: %w", err)
			}
			fmt.Fprintf(stderr, "%d failed or waiting deliveries made due now\n", n)
		}
		if len(configured.Sinks) > 0 {
			deliverAll(ctx, configured, stderr, slog.New(slog.DiscardHandler))
		} else {
			fmt.Fprintln(stderr, "no sink configured here: the next Sweep delivers them")
		}
	}
	docs, incs, err := alert.Store{Blobs: state, AlertsContainer: s.AlertsContainer, IncidentsContainer: s.IncidentsContainer}.List(ctx)
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
	if err := alert.WriteTable(stdout, docs, incs, *wide); err != nil {
		return err
	}
	entries, err := ob.Entries(ctx)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	holds, err := ob.Holds(ctx)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	return outbox.WriteStatus(stdout, entries, *wide, holds...)
}
