package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("detect", stderr, "--interactive PATH --noninteractive PATH [flags]")
	var ipaths, npaths listFlag
	fs.Var(&ipaths, "interactive", "SigninLogs export `PATH`: a file or a folder read recursively (repeatable)")
	fs.Var(&npaths, "noninteractive", "AADNonInteractiveUserSignInLogs export `PATH` (repeatable)")
	sf := settings.Register(fs, join(ruleSettings, []string{settings.MaxExpansion}, settings.PrecisionSettings)...)
	now := fs.String("now", "", "emulate one scheduled run at this RFC 3339 `time`: keep rows with TimeGenerated > now-3h")
	format := fs.String("format", "jsonl", "output `format`: jsonl, csv or table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(ipaths) == 0 || len(npaths) == 0 {
		return usagef("--interactive and --noninteractive are both required")
	}
	out, err := resultWriter(*format)
	if err != nil {
		return err
	}
	s, err := sf.Load(nil)
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
	}
	var skipped skippedNames
	ifiles, err := exportFiles(ipaths, &skipped)
	if err != nil {
		return err
	}
	nfiles, err := exportFiles(npaths, &skipped)
	if err != nil {
		return err
	}
	if skipped.n > 0 {
		// Backfills never drop blobs silently (DESIGN.md 7).
		fmt.Fprintf(stderr, "detect: skipped %d %s (e.g. %s)\n",
			skipped.n, plural(skipped.n, "file that is not an export", "files that are not exports"), skipped.first)
	}
	prog := newProgress(stderr, "reading exports", totalSize(ifiles)+totalSize(nfiles))
	defer prog.Finish()
	pf := newPairFilter(mode)
	rows, err := detectFiles(ctx, ifiles, nfiles, f, pf, fileReader{"detect", s.MaxExpansion, stderr}, prog)
	if err != nil {
		return err
	}
	prog.Finish()
	pf.report(stderr, "detect")
	return out(stdout, rows)
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
	st, err := scanFile(ctx, file, t, opts, fn)
	if err == nil && st.SkippedRows > 0 {
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: skipped %d %s that could not be read; first: %v\n",
			fr.command, t, file.path, st.SkippedRows, plural(int(st.SkippedRows), "row", "rows"), st.FirstSkipped)
	}
	if err == nil && st.BlankedCells > 0 {
		fmt.Fprintf(fr.stderr, "%s: warning: %s: %s: %d optional %s could not be read and read as empty; first: %v\n",
			fr.command, t, file.path, st.BlankedCells, plural(int(st.BlankedCells), "value", "values"), st.FirstBlanked)
	}
	return err
}

// detectFiles runs the rule over export files: the interactive candidates
// (few: single-factor successes) are held, and the much larger
// non-interactive side streams past them. A precision mode (pf, nil for
// exact) removes rows as they are found.
func detectFiles(ctx context.Context, ifiles, nfiles []exportFile, f detect.Filter, pf *pairFilter, fr fileReader, prog *progress) ([]detect.Result, error) {
	x := detect.NewIndexFor(f.Plan)
	for _, file := range ifiles {
		err := fr.read(ctx, file, signin.Interactive, pf.options(signin.Options{Keep: f.Interactive}), func(rs []signin.Record) error {
			for _, r := range rs {
				x.Add(r)
				pf.addInteractive(&r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		prog.Add(file.size)
	}
	var rows []detect.Result
	// Decide on the cheap columns whether a row can pair at all, so the
	// reader decodes the wide ones only for the few that can.
	x.Seal()
	keepN := func(r *signin.Record) bool { return x.MayMatch(r) && f.NonInteractive(r) }
	for _, file := range nfiles {
		err := fr.read(ctx, file, signin.NonInteractive, pf.options(signin.Options{Keep: keepN}), func(rs []signin.Record) error {
			for k := range rs {
				before := len(rows)
				rows = x.Probe(rows, &rs[k])
				rows = pf.filter(rows, before, &rs[k])
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		prog.Add(file.size)
	}
	detect.Sort(rows)
	return rows, nil
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
	st, err := signin.Scan(ctx, f.path, fh, f.size, t, opts, fn)
	if err != nil {
		return st, fmt.Errorf("%s: %w", t, err)
	}
	return st, nil
}
