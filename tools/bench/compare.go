package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// comparison is tokenpivot detect and DuckDB measured on the same files.
type comparison struct {
	tp, duck series
	rows     int
}

// compare runs both tools on the exports under dir: one warm-up each (which
// also fills the page cache), then runs alternating A B A B. Every run's rows
// are checked against the other tool's.
func compare(ctx context.Context, c config, bin, dir, label string, runs int) (comparison, error) {
	var cmp comparison
	idir := filepath.Join(dir, interactiveContainer)
	ndir := filepath.Join(dir, noninteractiveContainer)
	outDir := filepath.Join(c.data, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return cmp, err
	}
	tpOut := filepath.Join(outDir, label+"-tokenpivot.jsonl")
	duckOut := filepath.Join(outDir, label+"-duckdb.jsonl")
	tp := func() (sample, error) {
		return measure(ctx, "", tpOut, bin, "detect", "--interactive", idir, "--noninteractive", ndir, "--format", "jsonl")
	}
	duck := func() (sample, error) {
		return measure(ctx, filepath.Join(c.repo, "tools", "bench", "duckdb"), "", "node", "rule.mjs", idir, ndir, duckOut, fmt.Sprint(c.threads))
	}
	for k := -1; k < runs; k++ {
		a, err := tp()
		if err != nil {
			return cmp, err
		}
		b, err := duck()
		if err != nil {
			return cmp, err
		}
		n, err := sameRows(tpOut, duckOut)
		if err != nil {
			return cmp, fmt.Errorf("%s: %w", label, err)
		}
		cmp.rows = n
		if k < 0 {
			logf("%s warm-up: tokenpivot %v, DuckDB %v, %d rows, equal", label, a.wall.Round(1e7), b.wall.Round(1e7), n)
			continue
		}
		logf("%s run %d: tokenpivot %v %d MiB, DuckDB %v %d MiB", label, k+1, a.wall.Round(1e7), a.peakRSS>>20, b.wall.Round(1e7), b.peakRSS>>20)
		cmp.tp, cmp.duck = append(cmp.tp, a), append(cmp.duck, b)
	}
	return cmp, nil
}

func (c comparison) writeTable(w io.Writer) {
	wall := func(x sample) float64 { return x.wall.Seconds() }
	cpu := func(x sample) float64 { return x.cpu.Seconds() }
	rss := func(x sample) float64 { return float64(x.peakRSS) }
	fmt.Fprintln(w, "| tool | wall time | CPU time (user+sys) | peak RSS |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	fmt.Fprintf(w, "| tokenpivot detect | %s | %s | %s |\n", fmtSecs(c.tp.wall()), fmtSecs(c.tp.cpu()), fmtMiB(c.tp.rss()))
	fmt.Fprintf(w, "| DuckDB | %s | %s | %s |\n", fmtSecs(c.duck.wall()), fmtSecs(c.duck.cpu()), fmtMiB(c.duck.rss()))
	fmt.Fprintf(w, "| **ratio tokenpivot/DuckDB** (pair by pair) | **%s** (target <= 0.5x) | %s | **%s** (target <= 0.33x) |\n",
		fmtRatio(ratios(c.tp, c.duck, wall)), fmtRatio(ratios(c.tp, c.duck, cpu)), fmtRatio(ratios(c.tp, c.duck, rss)))
}

// sameRows checks that two JSON Lines result files hold the same rows (as
// multisets), comparing the rows' canonical encoding: times are parsed, so
// "…:28.75767Z" equals DuckDB's "…:28.757670Z". It returns the row count.
func sameRows(aPath, bPath string) (int, error) {
	a, err := canonicalRows(aPath)
	if err != nil {
		return 0, err
	}
	b, err := canonicalRows(bPath)
	if err != nil {
		return 0, err
	}
	if slices.Equal(a, b) {
		return len(a), nil
	}
	onlyA, onlyB := difference(a, b), difference(b, a)
	var msg strings.Builder
	fmt.Fprintf(&msg, "result rows differ: tokenpivot %d rows, DuckDB %d rows; %d only in tokenpivot, %d only in DuckDB",
		len(a), len(b), len(onlyA), len(onlyB))
	show := func(who string, rows []string) {
		for i, r := range rows {
			if i == 5 {
				fmt.Fprintf(&msg, "\n  ... %d more only in %s", len(rows)-5, who)
				break
			}
			fmt.Fprintf(&msg, "\n  only in %s: %s", who, r)
		}
	}
	show("tokenpivot ("+aPath+")", onlyA)
	show("DuckDB ("+bPath+")", onlyB)
	return 0, fmt.Errorf("%s", msg.String())
}

func canonicalRows(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := detect.ReadJSONL(path, f)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := detect.MarshalResult(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out, nil
}

// difference returns the rows of a (sorted) not matched one for one in b (sorted).
func difference(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}
