package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", stderr, "--out DIR [--users N] [--hours H] [--seed S] [--attacks K]")
	o := gen.NewOptions("")
	fs.StringVar(&o.Out, "out", "", "output `dir`ectory, laid out like the storage account (one folder per container)")
	fs.IntVar(&o.Users, "users", o.Users, "users in the tenant")
	fs.IntVar(&o.Hours, "hours", o.Hours, "hours of exports to write")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed writes the same files")
	fs.IntVar(&o.Attacks, "attacks", o.Attacks, "token-theft pivots to plant")
	fs.IntVar(&o.LookalikeSets, "lookalikes", o.LookalikeSets, "sets of benign look-alikes and boundary cases to plant")
	start := fs.String("start", o.Start.Format(time.RFC3339), "first hour (RFC 3339, UTC)")
	fs.IntVar(&o.InteractivePerHour, "interactive-per-hour", 0, "interactive rows per hour, replacing the daily curve (benchmark mode)")
	fs.Float64Var(&o.NIPerInteractive, "ni-per-interactive", o.NIPerInteractive, "non-interactive rows per interactive row")
	fs.IntVar(&o.RowGroupRows, "row-group-rows", o.RowGroupRows, "rows per Parquet row group")
	fs.IntVar(&o.RowsPerFile, "rows-per-file", o.RowsPerFile, "rows per file before a table-hour spills to the next file")
	fs.StringVar(&o.Compression, "compression", o.Compression, "Parquet compression: snappy, zstd, gzip, brotli, lz4_raw or none")
	fs.BoolVar(&o.Narrow, "narrow", false, "write only the rule's 11 columns instead of the full export schema")
	fs.BoolVar(&o.TimeOrdered, "time-ordered", false, "order each table-hour's rows by time, as exports are (each file holds most active users)")
	fs.Float64Var(&o.RoamRate, "roam-rate", 0, "share of background rows sent from another country (they can match: detect's output is then the oracle)")
	bench := fs.Bool("benchmark", false, "write the performance benchmark's hour: 100k users, ~200k interactive and ~2M non-interactive rows, time-ordered, 2% roaming")
	sparse := fs.Bool("benchmark-sparse", false, "write the benchmark hour's earlier shape: rows grouped by user (about 5k users a file), no roaming")
	labeled := fs.Bool("labeled", false, "write the labeled tenant of the precision benchmark instead: JSON Lines of both tables with every extra column, labels.csv (Id,label) and safe-networks.txt; --attacks is per variant")
	days := fs.Int("days", 7, "with --labeled: days to generate")
	profile := fs.String("profile", "weak45%/high", "with --labeled: the benign-rate profile (docs/detection-quality.md)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Out == "" {
		return usagef("--out is required")
	}
	if *labeled {
		return runGenLabeled(o, *days, *profile, stdout)
	}
	if err := checkGenFlags(o); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		return usagef("--start %q: not an RFC 3339 time", *start)
	}
	o.Start = t.UTC()
	if *bench && *sparse {
		return usagef("--benchmark and --benchmark-sparse exclude each other")
	}
	if *bench || *sparse {
		b := gen.BenchmarkOptions(o.Out)
		if *sparse {
			b = gen.BenchmarkSparseOptions(o.Out)
		}
		b.Seed, b.Start = o.Seed, o.Start
		o = b
	}
	bar := newCountProgress(stderr, "generating rows", gen.ExpectedRows(o))
	var done int64
	sum, err := gen.Run(ctx, o, func(p gen.Progress) {
		bar.Add(p.Rows - done)
		done = p.Rows
	})
	bar.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", o.Out)
	return sum.WriteText(stdout)
}

// runGenLabeled writes the labeled tenant (gen --labeled).
func runGenLabeled(o gen.Options, days int, profile string, stdout io.Writer) error {
	lo := gen.LabeledOptions{Users: o.Users, Days: days, Seed: o.Seed, Start: o.Start, AttacksPerVariant: o.Attacks}
	found := false
	for _, p := range gen.Profiles() {
		if p.Name == profile {
			lo.Profile, found = p, true
		}
	}
	if !found {
		var names []string
		for _, p := range gen.Profiles() {
			names = append(names, p.Name)
		}
		return usagef("--profile %q: want one of %v", profile, names)
	}
	rows, err := gen.WriteLabeled(lo, o.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d rows of %d users over %d days, profile %s, %d instances per attack variant; labels in %s\n",
		o.Out, rows, lo.Users, days, profile, lo.AttacksPerVariant, gen.LabeledLabels)
	return nil
}

// checkGenFlags names the flag of a value gen cannot use, so that bad usage
// exits 2 with the flag in the message (gen's own checks speak of options).
func checkGenFlags(o gen.Options) error {
	for _, c := range []struct {
		bad  bool
		flag string
		want string
	}{
		{o.Users < 1, "--users", "at least 1"},
		{o.Hours < 1, "--hours", "at least 1"},
		{o.Attacks < 0, "--attacks", "0 or more"},
		{o.LookalikeSets < 0, "--lookalikes", "0 or more"},
		{o.InteractivePerHour < 0, "--interactive-per-hour", "0 or more"},
		{o.NIPerInteractive < 0 || math.IsNaN(o.NIPerInteractive), "--ni-per-interactive", "0 or more"},
		{o.RowGroupRows < 0, "--row-group-rows", "0 or more"},
		{o.RowsPerFile < 0, "--rows-per-file", "0 or more"},
		{o.RoamRate < 0 || o.RoamRate > 0.5 || math.IsNaN(o.RoamRate), "--roam-rate", "between 0 and 0.5"},
	} {
		if c.bad {
			return usagef("%s: want %s", c.flag, c.want)
		}
	}
	// Empty takes the default; anything else must be a codec gen writes.
	if o.Compression != "" && !gen.KnownCompression(o.Compression) {
		return usagef("--compression %q: want one of %s", o.Compression, strings.Join(gen.Compressions, ", "))
	}
	if err := o.Check(); err != nil {
		return usageError{err}
	}
	return nil
}
