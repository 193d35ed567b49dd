package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func runExports(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: tokenpivot exports schedule --from TIME --to TIME [flags]")
		fmt.Fprintln(stderr, "       tokenpivot exports status [--from TIME] [--to TIME] [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "schedule requests one Log Analytics export job per table and hour of [--from, --to),")
		fmt.Fprintln(stderr, "each hour once (state in the state container, shared with the ScheduleExports timer);")
		fmt.Fprintln(stderr, "status lists that state. Settings: "+settings.ExportWorkspaceID+" and the others")
		fmt.Fprintln(stderr, "'tokenpivot help serve' lists (README: \"Operating export jobs\").")
		if len(args) == 0 {
			return usagef("want a subcommand: schedule or status")
		}
		return nil
	}
	switch args[0] {
	case "schedule":
		return runExportsSchedule(ctx, args[1:], stdout, stderr)
	case "status":
		return runExportsStatus(ctx, args[1:], stdout, stderr)
	}
	return usagef("unknown subcommand %q: want schedule or status", args[0])
}

// exportsFlags are the flags both subcommands share: the state storage
// and container (from the settings table), the settings the command names,
// and the range of hours.
type exportsFlags struct {
	flags     *settings.Flags
	settings  settings.Settings
	container string
	exports   store.Store // where the jobs write: an ambiguous create is looked up there
	from, to  string
}

func (f *exportsFlags) register(fs *flag.FlagSet, more ...string) {
	f.flags = settings.Register(fs, join(storageSettings, []string{settings.StateContainer}, more)...)
	fs.StringVar(&f.from, "from", "", "first hour, RFC 3339 (e.g. 2026-11-01T00:00:00Z)")
	fs.StringVar(&f.to, "to", "", "end of the range, RFC 3339, exclusive: the last hour is the one before")
}

// load reads the settings: the environment, then the flags.
func (f *exportsFlags) load() error {
	s, err := f.flags.Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	f.settings, f.container = s, s.StateContainer
	return nil
}

// open opens the state store the settings name, and the export store.
func (f *exportsFlags) open(ctx context.Context) (store.Store, error) {
	if err := f.load(); err != nil {
		return nil, err
	}
	exports, state, err := openStores(ctx, f.settings)
	f.exports = exports
	return state, err
}

func parseHour(flag, v string, up bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z", flag, v)
	}
	t = t.UTC()
	if h := t.Truncate(time.Hour); up && !h.Equal(t) {
		return h.Add(time.Hour), nil
	}
	return t.Truncate(time.Hour), nil
}

func runExportsSchedule(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("exports schedule", stderr, "--from TIME --to TIME [flags]")
	var f exportsFlags
	// The export scheduler's settings (--workspace and --account among
	// them) and the containers the jobs write to.
	f.register(fs, join(settings.ExportJobSettings, exportSettings)...)
	wait := fs.Bool("wait", false, "wait until every job has finished, not only until every hour is requested")
	poll := fs.Duration("poll", 30*time.Second, "pause between passes while jobs run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	keys, err := scheduleRange(f.from, f.to)
	if err != nil {
		return err
	}
	if *poll <= 0 {
		return usagef("--poll must be positive")
	}
	s, err := f.scheduler(ctx, stderr)
	if err != nil {
		return err
	}
	total, last, err := schedulePasses(ctx, s, keys, *wait, *poll, stderr)
	printExportsSummary(stdout, keys, total, last)
	if err != nil {
		return err
	}
	if last.Failed > 0 || countPhase(last, exportjob.PhaseFailed)+countPhase(last, exportjob.PhaseCanceled) > 0 {
		return fmt.Errorf("exports: %d table-hours failed or were canceled: see tokenpivot exports status",
			countPhase(last, exportjob.PhaseFailed)+countPhase(last, exportjob.PhaseCanceled))
	}
	return nil
}

// scheduleRange is the table-hours of [--from, --to): both given, in order,
// and every hour complete.
func scheduleRange(fromFlag, toFlag string) ([]exportjob.Key, error) {
	from, err := parseHour("from", fromFlag, false)
	if err != nil {
		return nil, err
	}
	to, err := parseHour("to", toFlag, true)
	if err != nil {
		return nil, err
	}
	if from.IsZero() || to.IsZero() {
		return nil, usagef("--from and --to are required")
	}
	if !to.After(from) {
		return nil, usagef("--to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	if latest := time.Now().UTC().Truncate(time.Hour); to.After(latest) {
		return nil, usagef("--to %s: the hour before it is not complete yet (the API wants endTime before now)", to.Format(time.RFC3339))
	}
	var hours []time.Time
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	return exportjob.Keys(hours), nil
}

// scheduler is the export scheduler the settings describe, logging
// warnings to stderr; no workspace is a usage error.
func (f *exportsFlags) scheduler(ctx context.Context, stderr io.Writer) (*exportjob.Scheduler, error) {
	if err := f.load(); err != nil {
		return nil, err
	}
	cfg, err := f.settings.ExportJobConfig()
	if err != nil {
		return nil, usagef("%v", err)
	}
	if !cfg.Enabled() {
		return nil, usagef("no workspace: pass --workspace or set %s", settings.ExportWorkspaceID)
	}
	st, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := exportjob.NewClient(cfg, exportsHTTPClient)
	if err != nil {
		return nil, err
	}
	return &exportjob.Scheduler{Config: cfg, API: cl, Store: st, Container: f.container, Output: f.exports,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, nil
}

// schedulePasses runs passes over keys, poll apart, until every one is
// requested (wait: finished), showing progress on stderr. It returns the
// jobs requested and retried in all, and the last pass's summary; an error
// only when ctx ends.
func schedulePasses(ctx context.Context, s *exportjob.Scheduler, keys []exportjob.Key, wait bool, poll time.Duration, stderr io.Writer) (total, last exportjob.Summary, err error) {
	bar := newCountProgress(stderr, "requesting", int64(len(keys)))
	defer bar.Finish()
	shown := 0
	for pass := 1; ; pass++ {
		sum, err := s.Pass(ctx, append([]exportjob.Key(nil), keys...))
		if err != nil {
			fmt.Fprintf(stderr, "exports: pass %d: %v\n", pass, err)
		}
		total.Requested += sum.Requested
		total.Retried += sum.Retried
		last = sum
		requested := 0
		for _, p := range sum.Phases {
			if p == exportjob.PhaseRequested || exportjob.Final(p) {
				requested++
			}
		}
		bar.Add(int64(requested - shown))
		shown = requested
		if bar.bar == nil {
			fmt.Fprintf(stderr, "exports: %d/%d table-hours requested, %d running, %d finished, %d waiting for a job slot\n",
				requested, len(keys), sum.Running, sum.Done, sum.Deferred)
		}
		if (wait && sum.Done == len(keys)) || (!wait && requested == len(keys)) {
			return total, last, nil
		}
		select {
		case <-ctx.Done():
			return total, last, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func countPhase(sum exportjob.Summary, phase exportjob.Phase) int {
	n := 0
	for _, p := range sum.Phases {
		if p == phase {
			n++
		}
	}
	return n
}

func printExportsSummary(w io.Writer, keys []exportjob.Key, total, last exportjob.Summary) {
	fmt.Fprintf(w, "%d table-hours: %d jobs requested now, %d retried; %d succeeded, %d running (%d stuck), %d failed, %d canceled\n",
		len(keys), total.Requested, total.Retried, countPhase(last, exportjob.PhaseSucceeded), last.Running, last.Stuck,
		countPhase(last, exportjob.PhaseFailed), countPhase(last, exportjob.PhaseCanceled))
}

func runExportsStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("exports status", stderr, "[--from TIME] [--to TIME] [--format table|json] [flags]")
	var f exportsFlags
	f.register(fs)
	format := fs.String("format", "table", "output `format`: table or json (one state per line)")
	wide := fs.Bool("wide", false, "print every column, full job ids and errors (wider than 120 columns)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usagef("--format %q: want table or json", *format)
	}
	from, err := parseHour("from", f.from, false)
	if err != nil {
		return err
	}
	to, err := parseHour("to", f.to, true)
	if err != nil {
		return err
	}
	if !to.IsZero() {
		to = to.Add(-time.Hour) // States' bound is inclusive
	}
	st, err := f.open(ctx)
	if err != nil {
		return err
	}
	s := &exportjob.Scheduler{Store: st, Container: f.container}
	states, err := s.States(ctx, from, to)
	var unreadable exportjob.UnreadableStates
	if errors.As(err, &unreadable) {
		// Show the rest: one garbled blob must not hide every hour.
		for _, e := range unreadable {
			fmt.Fprintf(stderr, "warning: unreadable, skipped: %v (delete it to have the hour requested afresh)\n", e)
		}
	} else if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		for _, st := range states {
			if err := enc.Encode(st); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if *wide {
		fmt.Fprintln(tw, "HOUR (UTC)\tTABLE\tPHASE\tJOB\tSTATUS\tPROGRESS\tRETRIES\tSTUCK SINCE (UTC)\tERROR")
	} else {
		fmt.Fprintln(tw, "HOUR (UTC)\tTABLE\tPHASE\tJOB\tSTATUS\tRETRIES\tSTUCK\tERROR")
	}
	for _, st := range states {
		hour := st.Hour.UTC().Format("2006-01-02T15")
		if *wide {
			stuck := "-"
			if st.Stuck {
				stuck = utcStamp(st.StuckSince)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", hour, st.Table, st.Phase,
				dash(st.JobID), dash(st.JobStatus), strconv.FormatFloat(st.Progress, 'f', 0, 64)+"%", st.Retries, stuck, dash(st.Error))
			continue
		}
		stuck := "-"
		if st.Stuck {
			stuck = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", hour, st.Table, st.Phase,
			dash(shortID(st.JobID)), dash(st.JobStatus), st.Retries, stuck, dash(clip(st.Error, 24)))
	}
	fmt.Fprintf(tw, "%d states\n", len(states))
	return tw.Flush()
}
