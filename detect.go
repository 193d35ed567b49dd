package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("detect", stderr, "--interactive PATH --noninteractive PATH [flags]")
	var ipaths, npaths listFlag
	fs.Var(&ipaths, "interactive", "SigninLogs export `PATH`: a file or a folder read recursively (repeatable)")
	fs.Var(&npaths, "noninteractive", "AADNonInteractiveUserSignInLogs export `PATH` (repeatable)")
	sf := settings.Register(fs, join(ruleSettings, []string{settings.MaxExpansion}, settings.PrecisionSettings)...)
	now := fs.String("now", "", "emulate one scheduled run at this RFC 3339 `time`: keep rows with now-3h < TimeGenerated <= now")
	format := fs.String("format", "jsonl", "output `format`: jsonl, csv or table")
	wide := fs.Bool("wide", false, "with --format table: every column (the NI time, the app), wider than 120 columns")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(ipaths) == 0 || len(npaths) == 0 {
		return usagef("--interactive and --noninteractive are both required")
	}
	out, err := resultWriter(*format, *wide)
	if err != nil {
		return err
	}
	s, err := sf.Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	_, f, err := loadFilter(s)
	if err != nil {
		return err
	}
	mode, err := s.PrecisionFilter()
	if err != nil {
		return usageError{err}
	}
	if *now != "" {
		t, err := time.Parse(time.RFC3339Nano, *now)
		if err != nil {
			return usagef("--now %q: not an RFC 3339 time", *now)
		}
		lookback := detect.Lookback
		if f.Plan != nil {
			lookback = f.Plan.Lookback // 0: the query has no ago(): every row up to now
		}
		if lookback > 0 {
			f.After = t.Add(-lookback)
		}
		f.Until = t // a run at T cannot see rows after T
	}
	var skipped skippedNames
	ifiles, err := exportFiles(ipaths, &skipped)
	if err != nil {
		return flagError("--interactive", err)
	}
	nfiles, err := exportFiles(npaths, &skipped)
	if err != nil {
		return flagError("--noninteractive", err)
	}
	if skipped.n > 0 {
		// Backfills never drop blobs silently (DESIGN.md 7).
		fmt.Fprintf(stderr, "detect: skipped %d %s (e.g. %s)\n",
			skipped.n, plural(skipped.n, "file that is not an export", "files that are not exports"), skipped.first)
	}
	prog := newProgress(stderr, "reading exports", totalSize(ifiles)+totalSize(nfiles))
	defer prog.Finish()
	pf := newPairFilter(mode)
	rows, rejected, err := detectFiles(ctx, ifiles, nfiles, f, pf, fileReader{"detect", s.MaxExpansion, stderr}, prog)
	if err != nil {
		return err
	}
	prog.Finish()
	pf.report(stderr, "detect")
	if f.Plan != nil && f.Plan.Summary != nil {
		// A summarize after the join: its rows are the result.
		out = func(w io.Writer, rows []detect.Result) error {
			sm := detect.Summarize(f.Plan, rows)
			if sm.Inexact > 0 {
				fmt.Fprintf(stderr, "detect: warning: %d dcount %s above %d distinct values: counted exactly; Kusto's dcount estimates there and may differ\n", sm.Inexact, plural(sm.Inexact, "value is", "values are"), kql.KustoExactDcount)
			}
			return detect.WriteSummarized(w, *format, sm)
		}
	}
	if err := out(stdout, rows); err != nil {
		return err
	}
	return rejectedFiles(stderr, rejected)
}

// rejectedFiles reports the files a run could not read, after the rows of
// the others: exit 2 when there were any.
func rejectedFiles(stderr io.Writer, rejected []error) error {
	if len(rejected) == 0 {
		return nil
	}
	if len(rejected) == 1 {
		return badInputError{fmt.Errorf("%w (the other files' rows are printed)", rejected[0])}
	}
	for _, e := range rejected {
		fmt.Fprintf(stderr, "detect: rejected: %v\n", e)
	}
	return badInputError{fmt.Errorf("%d files could not be read (listed above); the rows of the others are printed", len(rejected))}
}

// flagError puts the flag a usage error is about in front of its message.
func flagError(flag string, err error) error {
	var u usageError
	if errors.As(err, &u) {
		return usagef("%s %w", flag, u.err)
	}
	return err
}

// fileReader reads local export files: with the gzip bound, and a warning
// for each file with rows or values that could not be read.
type fileReader struct {
	command      string
	maxExpansion int
	stderr       io.Writer
}

func (fr fileReader) read(ctx context.Context, file exportFile, t signin.Table, opts signin.Options, fn func([]signin.Record) error) error {
	opts.MaxExpansion = fr.maxExpansion
	if file.size == 0 {
		// Not an error (an export writer may create a blob before its
		// content), but a local file of 0 bytes is worth saying.
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: empty (0 bytes): no rows; want a Parquet or JSON Lines export\n", fr.command, t, file.path)
		return nil
	}
	st, err := scanFile(ctx, file, t, opts, fn)
	if err == nil && st.SkippedRows > 0 {
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: skipped %d %s that could not be read; first: %v\n",
			fr.command, t, file.path, st.SkippedRows, plural(int(st.SkippedRows), "row", "rows"), st.FirstSkipped)
	}
	if err == nil && st.BlankedCells > 0 {
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: %d optional %s could not be read and read as empty; first: %v\n",
			fr.command, t, file.path, st.BlankedCells, plural(int(st.BlankedCells), "value", "values"), st.FirstBlanked)
	}
	if err == nil && st.TimeFallbacks > 0 {
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: %d %s an unreadable time; their properties.createdDateTime was used; first: %v\n",
			fr.command, t, file.path, st.TimeFallbacks, plural(int(st.TimeFallbacks), "record has", "records have"), st.FirstTimeFallback)
	}
	return err
}

// detectFiles runs the rule over export files: the interactive candidates
// (few: single-factor successes) are held, and the much larger
// non-interactive side streams past them. A file that can never be read
// (a *signin.FormatError) is reported in rejected and its rows left out,
// and the others still count: one bad file must not hide the rest. A
// precision mode (pf, nil for exact) removes rows as they are found.
func detectFiles(ctx context.Context, ifiles, nfiles []exportFile, f detect.Filter, pf *pairFilter, fr fileReader, prog *progress) (rows []detect.Result, rejected []error, err error) {
	x := detect.NewIndexFor(f.Plan)
	var held []signin.Record
	readable := make([]exportFile, 0, len(ifiles)) // the interactive files not rejected
	for _, file := range ifiles {
		held = held[:0]
		err := fr.read(ctx, file, signin.Interactive, pf.options(signin.Options{Keep: f.Interactive, Extra: f.Columns(signin.Interactive)}), func(rs []signin.Record) error {
			held = append(held, rs...)
			return nil
		})
		prog.Add(file.size)
		if signin.IsFormatError(err) {
			rejected = append(rejected, err)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		readable = append(readable, file)
		for k := range held {
			x.Add(held[k])
			pf.addInteractive(&held[k])
		}
	}
	// Decide on the cheap columns whether a row can pair at all, so the
	// reader decodes the wide ones only for the few that can.
	x.Seal()
	keepN := func(r *signin.Record) bool { return x.MayMatch(r) && f.NonInteractive(r) }
	// A rule whose non-interactive side is the union of both tables
	// (kql.Plan.NFromI) probes with the interactive files' rows too, each
	// table's rows passing their own union branch's predicates.
	type source struct {
		t     signin.Table
		files []exportFile
		from  kql.Side
	}
	sources := []source{{signin.NonInteractive, nfiles, kql.SideN}}
	if f.Plan != nil && f.Plan.NFromI {
		sources = append(sources, source{signin.Interactive, readable, kql.SideI})
	}
	for _, src := range sources {
		if err := probeFiles(ctx, src.t, src.files, src.from, x, keepN, f, pf, fr, prog, &rows, &rejected); err != nil {
			return nil, nil, err
		}
	}
	detect.Sort(rows)
	return rows, rejected, nil
}

// probeFiles probes x with the candidates of files of table t, read as the
// non-interactive side (from: their table in a union's terms).
func probeFiles(ctx context.Context, t signin.Table, files []exportFile, from kql.Side, x *detect.Index, keepN func(*signin.Record) bool, f detect.Filter,
	pf *pairFilter, fr fileReader, prog *progress, rows *[]detect.Result, rejected *[]error) error {
	union := f.Plan != nil && f.Plan.NFromI
	for _, file := range files {
		// A rejected file's pairs are dropped. (Probe's dedup keeps having
		// seen its records: the same records in another file then count
		// once, from whichever file came first.)
		before := len(*rows)
		err := fr.read(ctx, file, t, pf.options(signin.Options{Keep: keepN, Extra: f.Columns(signin.NonInteractive)}), func(rs []signin.Record) error {
			for k := range rs {
				if union && !f.Plan.NRowFrom(from, &rs[k]) {
					continue
				}
				n := len(*rows)
				*rows = x.Probe(*rows, &rs[k])
				*rows = pf.filter(*rows, n, &rs[k])
			}
			return nil
		})
		if from == kql.SideN {
			prog.Add(file.size) // the union's second read of the interactive files is not counted again
		}
		if signin.IsFormatError(err) {
			*rows = (*rows)[:before]
			*rejected = append(*rejected, err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type exportFile struct {
	path string
	size int64
}

func totalSize(fs []exportFile) int64 {
	var n int64
	for _, f := range fs {
		n += f.size
	}
	return n
}

// skippedNames counts the files folder walks left out, naming the first.
type skippedNames struct {
	n     int
	first string
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// exportFiles expands files and folders (recursively) into export files,
// in name order. A named file is always read (its content decides the
// format); in folders only names signin.IsExportName accepts are, and the
// others are counted in skipped.
func exportFiles(paths []string, skipped *skippedNames) ([]exportFile, error) {
	var out []exportFile
	for _, p := range paths {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("%s: no such file or folder", p)
		}
		if err != nil {
			return nil, usageError{err}
		}
		if !info.IsDir() {
			out = append(out, exportFile{p, info.Size()})
			continue
		}
		var found []exportFile
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if !signin.IsExportName(d.Name()) {
				if skipped.n == 0 {
					skipped.first = path
				}
				skipped.n++
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			found = append(found, exportFile{path, info.Size()})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, usagef("%s: no export files (*.parquet, *.json, *.jsonl, *.ndjson, *.gz)", p)
		}
		out = append(out, found...)
	}
	slices.SortStableFunc(out, func(a, b exportFile) int { return strings.Compare(a.path, b.path) })
	return slices.CompactFunc(out, func(a, b exportFile) bool { return a.path == b.path }), nil
}

func scanFile(ctx context.Context, f exportFile, t signin.Table, opts signin.Options, fn func([]signin.Record) error) (signin.Stats, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return signin.Stats{}, err
	}
	defer fh.Close()
	opts.Final = true // local files are complete: a last line without a newline is a record
	opts.Name, opts.Table = f.path, t
	st, err := signin.Scan(ctx, fh, f.size, opts, fn)
	if err != nil {
		return st, fmt.Errorf("%s: %w", t, err)
	}
	return st, nil
}
