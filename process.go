package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/memlimit"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runProcess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("process", stderr, "--storage DIR|URL|CONNECTION-STRING [flags]")
	sf := settings.Register(fs, join(storageSettings, exportSettings, stateSettings, outputSettings, ruleSettings, deliverySettings, settings.PrecisionSettings)...)
	skipOlder := fs.Duration("skip-older-than", 0, "skip export blobs last modified longer ago than this `duration` (counted and reported); 0, the default, takes every blob, as a backfill needs")
	workers := fs.Int("workers", runtime.NumCPU(), "blobs processed at once")
	heapPerWorker := fs.Int("heap-per-worker", pipeline.HeapPerWorker>>20, "soft limit of the Go heap per worker, in `MiB` (lowers GOMEMLIMIT's, never raises it); 0: none of its own")
	verbose := fs.Bool("v", false, "log every blob (JSON lines on stderr)")
	wide := fs.Bool("wide", false, "print the alerts with every column and full ids (wider than 120 columns)")
	format := fs.String("format", "table", "output `format`: table, or json (the run's summary and its alerts, one object)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := sf.Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	if *workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if *heapPerWorker < 0 {
		return usagef("--heap-per-worker must not be negative")
	}
	limit, undoLimit := memlimit.Cap(int64(*workers)*int64(*heapPerWorker)<<20, "--heap-per-worker")
	defer undoLimit()
	if *skipOlder < 0 {
		return usagef("--skip-older-than must not be negative")
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	logger.Info("memory limit", "bytes", limit.Bytes, "source", limit.Source)
	a, err := newPipeline(ctx, s, logger)
	if err != nil {
		return err
	}
	p, w, ob := a.pipeline, a.alerts, a.outbox
	if err := checkAccounts(ctx, a.exports, a.state, s); err != nil {
		return err
	}
	if err := p.EnsureContainers(ctx); err != nil {
		return err
	}
	b, err := p.Backlog(ctx, pipeline.BacklogOptions{Lateness: *skipOlder})
	if err != nil {
		return err
	}
	if b.NotExports > 0 {
		fmt.Fprintf(stderr, "skipped %d blobs that are not exports (e.g. %s)\n", b.NotExports, b.NotExportsExample)
	}
	if b.Late > 0 {
		fmt.Fprintf(stderr, "skipped %d export blobs last modified more than %s ago (--skip-older-than); --skip-older-than 0 takes them\n", b.Late, *skipOlder)
	}
	for _, name := range b.SetAside {
		fmt.Fprintf(stderr, "set aside: %s could not be read; moved to the quarantine, its blob is processed again\n", name)
	}
	start := time.Now()
	var r runResult
	// A blob whose extract could not be read is pending again: redo those
	// here, so that one run gives the complete result.
	for round, work := 0, b.Work; len(work) > 0 && round < 3 && ctx.Err() == nil; round++ {
		work = r.process(ctx, p, work, *workers, stderr)
	}

	// Show what this run found: its first alerts and their incidents
	// (`tokenpivot alerts` lists everything stored). A pair can be found
	// from both of its blobs; the alerts hold it once.
	found := slices.SortedFunc(maps.Values(r.touched), func(a, b alert.Stored) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	rows := 0
	var names []string
	for i, a := range found {
		rows += a.ResultCount
		if i < maxShown || *format == "json" {
			names = append(names, a.Blob)
		}
	}
	docs, incs, err := w.Get(ctx, names)
	if err = warnUnreadable(stderr, err); err != nil {
		return err
	}
	summary := fmt.Sprintf("processed %d blobs in %s: %d rows read, %d candidates, %d result rows in %d alerts (%d alert blobs written); %d rejected, %d failed",
		r.done, time.Since(start).Round(time.Millisecond), r.tot.RowsRead, r.tot.Candidates, rows, len(found), r.tot.Alerts, len(r.rejected), len(r.failed))
	switch {
	case *format == "json":
		if err := writeRunJSON(stdout, &r, rows, found, docs); err != nil {
			return err
		}
	case len(found) == 0:
		// Empty tables say nothing: say what there is.
		stored, err := w.Count(ctx)
		if err != nil {
			return err
		}
		what := "nothing new"
		if r.done > 0 {
			what = fmt.Sprintf("no new alerts from %d %s", r.done, plural(r.done, "blob", "blobs"))
		}
		fmt.Fprintf(stdout, "%s; %d %s stored (`tokenpivot alerts` lists them)\n", what, stored, plural(stored, "alert", "alerts"))
	default:
		if err := alert.WriteTable(stdout, docs, incs, *wide); err != nil {
			return err
		}
		if len(found) > len(docs) {
			fmt.Fprintf(stdout, "\n... %d alerts in all: `tokenpivot alerts` lists every one\n", len(found))
		}
	}
	fmt.Fprintln(stderr, summary)
	if ob != nil && ctx.Err() == nil {
		deliverAll(ctx, ob, stderr, logger)
	}
	for _, o := range r.partial {
		fmt.Fprintf(stderr, "skipped rows: %s: %d rows could not be read (first: %s); the rest of the blob counts\n", o.Work, o.SkippedRows, o.FirstSkipped)
	}
	for _, o := range r.timeFallbacks {
		fmt.Fprintf(stderr, "time fallback: %s: %d records have an unreadable time; their properties.createdDateTime was used (first: %s)\n", o.Work, o.TimeFallbacks, o.FirstTimeFallback)
	}
	for _, name := range r.setAside {
		fmt.Fprintf(stderr, "set aside: %s could not be read; moved to the quarantine and rebuilt\n", name)
	}
	for _, e := range r.rejected {
		fmt.Fprintf(stderr, "rejected: %v\n", e)
	}
	for _, e := range r.failed {
		fmt.Fprintf(stderr, "failed: %v\n", e)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case len(r.failed) > 0:
		return fmt.Errorf("%d blobs failed and stay pending: run process again", len(r.failed))
	case len(r.rejected) > 0:
		return badInputError{fmt.Errorf("%d blobs could not be read (recorded in the ledger; fix or replace them)", len(r.rejected))}
	}
	return nil
}

// checkAccounts refuses, before anything is created, a run that cannot be
// what was meant: an export storage holding neither export container (a
// wrong folder, or exports under other container names), and state about to
// be created in an Azure export account that was named alone (state
// defaults to the export storage, and an export account is no place for
// containers of ours unless --state says so).
func checkAccounts(ctx context.Context, exports, state store.Store, s settings.Settings) error {
	want := []string{s.InteractiveContainer, s.NonInteractiveContainer}
	var have []string
	for _, c := range want {
		ok, err := containerExists(ctx, exports, c)
		if err != nil {
			return err
		}
		if ok {
			have = append(have, c)
		}
	}
	where := cmp.Or(exports.ServiceURL(), s.Storage()) // a URL without its SAS, or a folder
	if len(have) == 0 {
		msg := fmt.Sprintf("--storage %s holds neither export container: looked for %s and %s (--interactive-container, --noninteractive-container)",
			where, want[0], want[1])
		if l, ok := exports.(store.ContainerLister); ok {
			found, err := l.Containers(ctx)
			switch {
			case err != nil:
				msg += fmt.Sprintf("; could not list what it holds: %v", err)
			case len(found) == 0:
				msg += "; it holds no containers"
			default:
				msg += "; found " + strings.Join(found, ", ")
				if i, n := archiveContainers(found); i != "" && n != "" {
					msg += fmt.Sprintf(". A diagnostic-setting archive: use --interactive-container %s --noninteractive-container %s", i, n)
				}
			}
		}
		return usagef("%s", msg)
	}
	if s.StateStorageAccountURL != "" || s.StorageConnectionString != "" || !strings.HasPrefix(s.StorageAccountURL, "https://") {
		return nil
	}
	var missing []string
	for _, c := range []string{s.StateContainer, s.AlertsContainer, s.IncidentsContainer} {
		ok, err := containerExists(ctx, state, c)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return usagef("--storage %s is an export account, and state, alerts and incidents default to it: process would create %s there. "+
			"Give --state https://ACCOUNT.blob.core.windows.net for them (the function's own account keeps them when deployed), "+
			"or --state %s to create them in the export account", where, strings.Join(missing, ", "), where)
	}
	return nil
}

// containerExists reports whether container exists, by listing at most one
// blob (which the export containers' Reader role allows).
func containerExists(ctx context.Context, st store.Store, container string) (bool, error) {
	errFound := errors.New("found")
	err := st.List(ctx, container, "", func(store.Properties) error { return errFound })
	switch {
	case err == nil, errors.Is(err, errFound):
		return true, nil
	case errors.Is(err, store.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("container %s: %w", container, err)
}

// archiveContainers picks the two tables' containers of an Entra ID
// diagnostic setting's archive from a list of containers.
func archiveContainers(found []string) (interactive, noninteractive string) {
	for _, c := range found {
		switch c {
		case "insights-logs-signinlogs":
			interactive = c
		case "insights-logs-noninteractiveusersigninlogs":
			noninteractive = c
		}
	}
	return interactive, noninteractive
}

// runJSON is `process --format json`: the run's totals and the alert
// documents it found evidence for, for CI and scripts.
type runJSON struct {
	Blobs             int               `json:"blobs"`
	RowsRead          int64             `json:"rowsRead"`
	Candidates        int64             `json:"candidates"`
	ResultRows        int               `json:"resultRows"`
	AlertCount        int               `json:"alertCount"`
	AlertBlobsWritten int               `json:"alertBlobsWritten"`
	Rejected          []string          `json:"rejected"`
	Failed            []string          `json:"failed"`
	SkippedRows       []skippedRowsJSON `json:"skippedRows"`
	Alerts            []json.RawMessage `json:"alerts"`
}

type skippedRowsJSON struct {
	Blob  string `json:"blob"`
	Rows  int64  `json:"rows"`
	First string `json:"first"`
}

func writeRunJSON(w io.Writer, r *runResult, rows int, found []alert.Stored, docs []alert.Document) error {
	out := runJSON{Blobs: r.done, RowsRead: r.tot.RowsRead, Candidates: r.tot.Candidates, ResultRows: rows,
		AlertCount: len(found), AlertBlobsWritten: r.tot.Alerts,
		Rejected: []string{}, Failed: []string{}, SkippedRows: []skippedRowsJSON{}, Alerts: []json.RawMessage{}}
	for _, e := range r.rejected {
		out.Rejected = append(out.Rejected, e.Error())
	}
	for _, e := range r.failed {
		out.Failed = append(out.Failed, e.Error())
	}
	for _, o := range r.partial {
		out.SkippedRows = append(out.SkippedRows, skippedRowsJSON{o.Work.String(), o.SkippedRows, o.FirstSkipped})
	}
	for _, d := range docs {
		b, err := d.MarshalJSON()
		if err != nil {
			return err
		}
		out.Alerts = append(out.Alerts, b)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// maxShown bounds the alerts process prints: a storm's thousands are for
// `tokenpivot alerts`, not a terminal.
const maxShown = 50

// runResult adds up the outcomes of a process run.
type runResult struct {
	mu      sync.Mutex
	tot     pipeline.Outcome
	touched map[string]alert.Stored // alerts this run found evidence for, as last stored
	done    int
	partial []pipeline.Outcome // blobs with rows that could not be read
	// blobs with archive records read at createdDateTime (an off-spec time)
	timeFallbacks []pipeline.Outcome
	setAside      []string
	rejected      []error
	failed        []error
}

// process runs work on workers goroutines and returns the blobs to redo
// (their extract was unreadable and has been moved aside).
func (r *runResult) process(ctx context.Context, p *pipeline.Pipeline, work []pipeline.Work, workers int, stderr io.Writer) []pipeline.Work {
	if r.touched == nil {
		r.touched = map[string]alert.Stored{}
	}
	var redo []pipeline.Work
	bar := newCountProgress(stderr, "processing blobs", int64(len(work)))
	ch := make(chan pipeline.Work)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for wk := range ch {
				o, err := p.Process(ctx, wk)
				r.mu.Lock()
				r.done++
				r.tot.RowsRead += o.RowsRead
				r.tot.Candidates += o.Candidates
				r.tot.Results += o.Results
				r.tot.Alerts += o.Alerts
				for _, a := range o.Stored {
					// Evidence only grows: the largest count is the last.
					if have, ok := r.touched[a.SystemAlertId]; !ok || a.ResultCount > have.ResultCount {
						r.touched[a.SystemAlertId] = a
					}
				}
				r.setAside = append(r.setAside, o.SetAside...)
				redo = append(redo, o.Redo...)
				switch {
				case err != nil:
					r.failed = append(r.failed, fmt.Errorf("%s: %w", wk, err))
				case o.Status == pipeline.Rejected:
					r.rejected = append(r.rejected, o.Reason)
				case o.SkippedRows > 0:
					r.partial = append(r.partial, o)
				}
				if err == nil && o.TimeFallbacks > 0 {
					r.timeFallbacks = append(r.timeFallbacks, o)
				}
				r.mu.Unlock()
				bar.Add(1)
			}
		})
	}
feed:
	for _, wk := range work {
		select {
		case ch <- wk:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	bar.Finish()
	slices.SortFunc(redo, func(a, b pipeline.Work) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(redo)
}

// badInputError marks unreadable input (exit 2) that is not a usage error.
type badInputError struct{ err error }

func (e badInputError) Error() string { return e.err.Error() }
func (e badInputError) Unwrap() error { return e.err }

// warnUnreadable prints a warning per alert or incident blob that List could
// not parse (the readable ones are still shown) and returns any other error.
func warnUnreadable(stderr io.Writer, err error) error {
	var problems alert.ListProblems
	if !errors.As(err, &problems) {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "warning: unreadable, skipped: %v\n", p)
	}
	return nil
}

// processDeliveryTime bounds the delivery that follows a process run; what
// is left stays pending for the next run or the Sweep.
const processDeliveryTime = 2 * time.Minute

// deliverAll delivers what the outbox holds due, in rounds of at most
// outbox.MaxPerCall per sink, for at most processDeliveryTime, and says
// what it did per sink on stderr. Each sink goes through its own rounds, as
// serve delivers them: a sink that hangs or fails never holds another back
// (a round of Deliver waits for every sink). Delivery failures are
// reported, never an error: the revisions stay in the outbox.
func deliverAll(ctx context.Context, ob *outbox.Outbox, stderr io.Writer, logger *slog.Logger) {
	dctx, cancel := context.WithTimeout(ctx, processDeliveryTime)
	defer cancel()
	type total struct{ delivered, retrying, failed, skipped int }
	tot := make([]total, len(ob.Sinks))
	errs := make([][]error, len(ob.Sinks))
	var wg sync.WaitGroup
	for i, sk := range ob.Sinks {
		wg.Go(func() {
			t := &tot[i]
			for dctx.Err() == nil {
				rep, _ := ob.DeliverSink(dctx, sk.Name())
				rep.Log(logger)
				more := false
				for _, sr := range rep.Sinks {
					t.delivered, t.retrying, t.failed, t.skipped = t.delivered+sr.Delivered, t.retrying+sr.Retrying, t.failed+sr.Failed, t.skipped+sr.Skipped
					if sr.Err != nil {
						errs[i] = append(errs[i], sr.Err)
					}
					more = more || (sr.Delivered > 0 && sr.Due >= cmp.Or(ob.MaxPerCall, outbox.DefaultMaxPerCall)) || sr.Resumed > 0
				}
				if !more {
					return
				}
			}
		})
	}
	wg.Wait()
	for i, sk := range ob.Sinks {
		for _, err := range errs[i] {
			fmt.Fprintf(stderr, "delivery to %s: %v\n", sk.Name(), err)
		}
		t := tot[i]
		fmt.Fprintf(stderr, "delivered %d alert revisions to %s; %d to retry, %d failed, %d held (`tokenpivot alerts` shows each)\n",
			t.delivered, sk.Name(), t.retrying, t.failed, t.skipped)
	}
}
