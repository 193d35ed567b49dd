package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

// scaleSizes are the scaling table's non-interactive row counts, as
// multiples of the hour's 200,000 interactive rows.
var scaleSizes = []struct {
	label string
	rows  float64 // millions of non-interactive rows
	ratio string  // --ni-per-interactive
}{
	{"0.5M", 0.5, "2.5"},
	{"1M", 1, "5"},
	{"2M", 2, "10"},
	{"4M", 4, "20"},
}

// scaling measures detect (and DuckDB, for reference) on realistic hours
// that differ only in the number of non-interactive rows: time should grow
// linearly and tokenpivot's peak RSS stay flat.
func scaling(ctx context.Context, c config, bin string, w io.Writer) error {
	type row struct {
		label string
		rows  float64
		cmp   comparison
	}
	var rows []row
	for _, s := range scaleSizes {
		// The same generator settings as `gen --benchmark`, NI rate aside.
		dir := filepath.Join(c.data, "scale-"+s.label)
		args := []string{"gen", "--users", "100000", "--hours", "1",
			"--interactive-per-hour", "200000", "--ni-per-interactive", s.ratio,
			"--rows-per-file", "100000", "--attacks", "2", "--lookalikes", "0",
			"--time-ordered", "--roam-rate", strconv.FormatFloat(gen.DefaultRoamRate, 'g', -1, 64),
			"--seed", strconv.FormatUint(c.seed, 10)}
		if s.ratio == "10" {
			// That is `gen --benchmark`'s hour: reuse it.
			dir, args = filepath.Join(c.data, realistic.dir), realistic.gen(c)
		}
		if err := ensureData(ctx, bin, dir, args); err != nil {
			return err
		}
		cmp, err := compare(ctx, c, bin, dir, "scale-"+s.label, 1)
		if err != nil {
			return err
		}
		rows = append(rows, row{s.label, s.rows, cmp})
	}
	fmt.Fprintln(w, "## Scaling: realistic hours of 200k interactive rows, growing non-interactive rows (1 run each, after a warm-up)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| NI rows | tokenpivot wall | tokenpivot CPU | CPU s per 1M NI rows | tokenpivot peak RSS | DuckDB wall | DuckDB CPU | DuckDB peak RSS | wall ratio | RSS ratio |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		tp, duck := r.cmp.tp[0], r.cmp.duck[0]
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | %.2f s | %.0f MiB | %.2f s | %.2f s | %.0f MiB | %.2fx | %.2fx |\n",
			r.label, tp.wall.Seconds(), tp.cpu.Seconds(), tp.cpu.Seconds()/r.rows, float64(tp.peakRSS)/(1<<20),
			duck.wall.Seconds(), duck.cpu.Seconds(), float64(duck.peakRSS)/(1<<20),
			tp.wall.Seconds()/duck.wall.Seconds(), float64(tp.peakRSS)/float64(duck.peakRSS))
	}
	fmt.Fprintln(w)
	return nil
}
