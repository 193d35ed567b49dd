// Package gen writes synthetic, realistic hourly Parquet exports of the two
// Entra ID sign-in tables (SigninLogs and AADNonInteractiveUserSignInLogs),
// with planted token-theft pivots and look-alikes whose expected rule result
// is known exactly.
//
// Layout, as Log Analytics export jobs write it:
//
//	<Out>/<container>/timestamp=<yyyy-MM-ddTHH>/<guid>.gz.parquet
//
// Each table-hour gets one or more files (a new one every RowsPerFile rows),
// row groups of about RowGroupRows rows, plus, when export retries are
// simulated, a small extra file repeating some records of that hour with the
// same Id. Rows inside a file are grouped by user, not sorted by time,
// unless Options.TimeOrdered.
//
// Determinism: the output is a pure function of Options. Every random choice,
// GUIDs and file names included, comes from math/rand/v2 PCG streams seeded
// from Options.Seed, and times from Options.Start; the wall clock is never
// read. The same Options give byte-identical files.
//
// Exactness: the rule's result over the output is exactly the planted pivots
// (Summary.Pivots), deduplicated by the two rows' Ids, with no safe IPs or
// networks configured. The background is built so it can never match:
//   - every background row of a user, in both tables, is from that user's
//     home country (Location) through one of the user's own IPs, so for any
//     background pair N.Location == I.Location and the pair fails the rule;
//   - each planted scenario has a user of its own, whose background
//     interactive successes are all multi-factor with Conditional Access
//     "success" (never candidates), so planted non-interactive rows can pair
//     only with that scenario's planted interactive row.
//
// Look-alikes (Kind "lookalike:<why>") are near misses that must not match;
// the boundary hits at exactly 1m and 2h are pivots that must.
package gen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Defaults used by NewOptions and for zero sizing fields.
const (
	DefaultInteractiveContainer    = "am-signinlogs"
	DefaultNonInteractiveContainer = "am-aadnoninteractiveusersigninlogs"
	DefaultRowGroupRows            = 100_000
	DefaultRowsPerFile             = 500_000
	DefaultCompression             = "snappy"
	DefaultNIPerInteractive        = 10
	DefaultInteractivePerUserDay   = 4
	DefaultDuplicateRate           = 0.0002
)

// DefaultStart is the first hour generated when Options.Start is zero.
var DefaultStart = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// Options say what to generate. Use NewOptions for the defaults. Zero sizing
// fields (containers, RowGroupRows, RowsPerFile, Compression, Start, rates)
// take their defaults; zero counts (Attacks, LookalikeSets, DuplicateRate)
// mean none.
type Options struct {
	Out   string // output directory; containers are created under it
	Users int    // users in the tenant
	Hours int    // hours to generate, from Start
	Seed  uint64
	// Start is the first hour (UTC, on the hour). Default DefaultStart.
	Start time.Time

	// Attacks is the number of token-theft pivots planted (each on its own user).
	Attacks int
	// LookalikeSets is how many sets of near misses to plant; each set is
	// the boundary pivots (exactly 1m and 2h) plus one look-alike of each kind.
	LookalikeSets int
	// DuplicateRate is the share of rows written a second time, with the same
	// Id, in an extra file of the same hour (export retries).
	DuplicateRate float64

	// InteractivePerUserDay is the mean number of interactive sign-ins per
	// user per day, shaped by a daily curve in each user's local time.
	InteractivePerUserDay float64
	// InteractivePerHour, when > 0, replaces the daily curve: the mean number
	// of interactive rows in every hour, spread over the users (benchmark mode).
	InteractivePerHour int
	// NIPerInteractive is the mean number of non-interactive rows per
	// interactive row.
	NIPerInteractive float64

	InteractiveContainer    string
	NonInteractiveContainer string
	RowGroupRows            int    // rows per Parquet row group
	RowsPerFile             int    // a table-hour spills to a new file after this many rows
	Compression             string // snappy, zstd, gzip, brotli, lz4_raw, none
	// Narrow writes only the rule's 11 columns instead of the ~40 of real exports.
	Narrow bool

	// TimeOrdered writes each table-hour's rows sorted by TimeGenerated, as
	// export jobs do, instead of grouped by user: every file and row group
	// then holds most of the hour's active users. It buffers the hour's rows
	// in memory: the benchmark hour (2.2M rows) peaks at about 2.3 GB.
	TimeOrdered bool
	// RoamRate is the share of background rows (both tables, users without
	// a planted scenario) sent from another home country through an address
	// there: travel and VPNs. Roaming rows break the exactness contract of
	// the package doc: a roaming row can pair with the user's home rows, so
	// the rule's result is a superset of the planted pivots and only a run
	// of the rule (`tokenpivot detect`) says what it is.
	RoamRate float64
}

// NewOptions returns Options with every default filled in: 1,000 users over
// 24 hours, 5 attacks and one look-alike set.
func NewOptions(out string) Options {
	return Options{
		Out: out, Users: 1000, Hours: 24, Start: DefaultStart,
		Attacks: 5, LookalikeSets: 1, DuplicateRate: DefaultDuplicateRate,
		InteractivePerUserDay: DefaultInteractivePerUserDay, NIPerInteractive: DefaultNIPerInteractive,
		InteractiveContainer: DefaultInteractiveContainer, NonInteractiveContainer: DefaultNonInteractiveContainer,
		RowGroupRows: DefaultRowGroupRows, RowsPerFile: DefaultRowsPerFile, Compression: DefaultCompression,
	}
}

// BenchmarkOptions returns the performance benchmark: one heavy hour of a
// 100k-user tenant, about 200,000 interactive and 2,000,000 non-interactive
// rows, wide, snappy, row groups of 100k rows, files of 100k rows (so several
// files per table), shaped like real exports: rows ordered by time, so each
// file and row group holds most of the active users, and DefaultRoamRate of
// the background rows roaming, so thousands of pairs match (the planted
// pivots are among them; detect's output is the oracle, see RoamRate).
func BenchmarkOptions(out string) Options {
	o := BenchmarkSparseOptions(out)
	o.TimeOrdered, o.RoamRate = true, DefaultRoamRate
	return o
}

// DefaultRoamRate is the benchmark's share of roaming background rows.
const DefaultRoamRate = 0.02

// BenchmarkSparseOptions is the benchmark hour's earlier shape: the same
// sizes, rows grouped by user (each 100k-row file holds about 5k users), no
// roaming, so the result is exactly the planted pivots.
func BenchmarkSparseOptions(out string) Options {
	o := NewOptions(out)
	o.Users, o.Hours = 100_000, 1
	o.InteractivePerHour = 200_000
	o.RowsPerFile = 100_000
	o.Attacks, o.LookalikeSets = 2, 0
	return o
}

// Progress is reported while generating; Rows and Files only grow.
type Progress struct {
	Rows           int64 // rows generated so far, both tables, duplicates included
	ExpectedRows   int64 // approximate total, for a progress bar
	Files          int64 // files completed
	Hour, Hours    int   // hours finished so far, of Hours
	Interactive    int64
	NonInteractive int64
}

// TableSummary counts what was written for one table.
type TableSummary struct {
	Table      signin.Table
	Container  string
	Rows       int64 // rows written, duplicates included
	Duplicates int64 // rows written a second time in retry files
	Files      int64
	Bytes      int64
}

// File is one written export file.
type File struct {
	Path  string // relative to Options.Out, slash-separated
	Table signin.Table
	Rows  int64
	Retry bool // a retry file repeating records of other files
}

// Planted is one (interactive, non-interactive) pair of rows the generator
// planted. Kind is "pivot" (the rule must report it) or "lookalike:<why>"
// (it must not). The NI fields are the non-interactive row's.
type Planted struct {
	Kind   string
	Detail string

	UserPrincipalName  string // the interactive row's
	InteractiveTime    time.Time
	InteractiveIP      string
	InteractiveCountry string
	InteractiveId      string

	NIUserPrincipalName   string
	NITime                time.Time
	NIIP                  string
	NICountry             string
	NIId                  string
	AppDisplayName        string // the non-interactive row's
	CorrelationId         string // the non-interactive row's
	UniqueTokenIdentifier string // the non-interactive row's

	// Duplicated: the non-interactive row is also in a retry file (same Id).
	Duplicated bool
}

// Pivot reports whether the rule must report this pair.
func (p Planted) Pivot() bool { return p.Kind == KindPivot }

// KindPivot is Planted.Kind of the pairs the rule must report.
const KindPivot = "pivot"

// Summary is what Run wrote and planted.
type Summary struct {
	Start, End     time.Time // rows have Start <= TimeGenerated < End
	Users          int
	Interactive    TableSummary
	NonInteractive TableSummary
	Files          []File
	Planted        []Planted
	// Skipped names planted scenarios that did not fit in the generated hours.
	Skipped []string
	// OfficeNetworks are the company's office egress ranges (CIDR). Only
	// background rows use them, so listing them as KnownSafeNetworks filters
	// rows without changing the expected result.
	OfficeNetworks []string
}

// Pivots returns the planted pairs the rule must report, in the rule's
// output order (UserPrincipalName, InteractiveTime), then by NITime.
func (s *Summary) Pivots() []Planted {
	var out []Planted
	for _, p := range s.Planted {
		if p.Pivot() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Planted) int {
		if c := strings.Compare(a.UserPrincipalName, b.UserPrincipalName); c != 0 {
			return c
		}
		if c := a.InteractiveTime.Compare(b.InteractiveTime); c != 0 {
			return c
		}
		return a.NITime.Compare(b.NITime)
	})
	return out
}

// WriteText prints the summary for people: counts, then the planted pairs.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "generated %s .. %s, %d users\n", s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), s.Users)
	for _, t := range []TableSummary{s.Interactive, s.NonInteractive} {
		fmt.Fprintf(&b, "  %-31s %8d rows (%d repeated) in %d files, %.1f MiB -> %s\n",
			t.Table, t.Rows, t.Duplicates, t.Files, float64(t.Bytes)/(1<<20), t.Container)
	}
	fmt.Fprintf(&b, "planted %d pairs, %d must match (times UTC; NI after the interactive sign-in, as a KQL timespan):\n", len(s.Planted), len(s.Pivots()))
	for _, p := range s.Planted {
		dup := ""
		if p.Duplicated && !strings.Contains(p.Detail, "repeated") {
			dup = " (NI row twice)"
		}
		// Two lines a pair, to fit 120 columns: what and who, then when and where.
		fmt.Fprintf(&b, "  %-26s %s: %s%s\n", p.Kind, p.UserPrincipalName, p.Detail, dup)
		fmt.Fprintf(&b, "      I %s %s %s -> NI %s %s %s\n",
			p.InteractiveTime.Format("2006-01-02 15:04:05.000000"), p.InteractiveIP, cmp.Or(p.InteractiveCountry, `""`),
			detect.FormatTimespan(p.NITime.Sub(p.InteractiveTime)), p.NIIP, cmp.Or(p.NICountry, `""`))
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(&b, "  skipped: %s\n", sk)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Check reports the first option Run would refuse.
func (o Options) Check() error {
	_, _, err := o.resolve()
	return err
}

// resolve validates o and fills the defaults of zero sizing fields.
func (o Options) resolve() (Options, compress.Codec, error) {
	var codec compress.Codec
	if o.Out == "" {
		return o, codec, errors.New("gen: no output directory")
	}
	if o.Users < 1 {
		return o, codec, fmt.Errorf("gen: users must be at least 1, got %d", o.Users)
	}
	if o.Hours < 1 {
		return o, codec, fmt.Errorf("gen: hours must be at least 1, got %d", o.Hours)
	}
	if o.Attacks < 0 || o.LookalikeSets < 0 || o.InteractivePerHour < 0 {
		return o, codec, errors.New("gen: attacks, look-alike sets and interactive rows per hour must not be negative")
	}
	if o.RoamRate < 0 || o.RoamRate > 0.5 || math.IsNaN(o.RoamRate) {
		return o, codec, fmt.Errorf("gen: roam rate %v is outside [0, 0.5]", o.RoamRate)
	}
	if o.DuplicateRate < 0 || o.DuplicateRate > 0.5 || math.IsNaN(o.DuplicateRate) {
		return o, codec, fmt.Errorf("gen: duplicate rate %v is outside [0, 0.5]", o.DuplicateRate)
	}
	if o.InteractivePerUserDay < 0 || o.NIPerInteractive < 0 || math.IsNaN(o.InteractivePerUserDay) || math.IsNaN(o.NIPerInteractive) {
		return o, codec, errors.New("gen: rates must not be negative")
	}
	if o.RowGroupRows < 0 || o.RowsPerFile < 0 {
		return o, codec, errors.New("gen: row group and file sizes must not be negative")
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC()
	if !o.Start.Truncate(time.Hour).Equal(o.Start) {
		return o, codec, fmt.Errorf("gen: start %s is not on the hour", o.Start.Format(time.RFC3339Nano))
	}
	if o.InteractiveContainer == "" {
		o.InteractiveContainer = DefaultInteractiveContainer
	}
	if o.NonInteractiveContainer == "" {
		o.NonInteractiveContainer = DefaultNonInteractiveContainer
	}
	for _, c := range []string{o.InteractiveContainer, o.NonInteractiveContainer} {
		if strings.ContainsAny(c, `/\`) || c == "." || c == ".." {
			return o, codec, fmt.Errorf("gen: container %q must be a single name", c)
		}
	}
	if o.InteractiveContainer == o.NonInteractiveContainer {
		return o, codec, fmt.Errorf("gen: both tables would go to container %q", o.InteractiveContainer)
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = DefaultRowGroupRows
	}
	if o.RowsPerFile == 0 {
		o.RowsPerFile = DefaultRowsPerFile
	}
	if o.InteractivePerUserDay == 0 {
		o.InteractivePerUserDay = DefaultInteractivePerUserDay
	}
	if o.NIPerInteractive == 0 {
		o.NIPerInteractive = DefaultNIPerInteractive
	}
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	codec, ok := codecs[strings.ToLower(o.Compression)]
	if !ok {
		return o, codec, fmt.Errorf("gen: unknown compression %q (%s)", o.Compression, strings.Join(Compressions, ", "))
	}
	if need := scenarioUsers(o); need > o.Users {
		return o, codec, fmt.Errorf("gen: %d attacks and %d look-alike sets need %d users of their own, only %d users", o.Attacks, o.LookalikeSets, need, o.Users)
	}
	return o, codec, nil
}

// Compressions are the names Options.Compression takes (any case; "uncompressed"
// is also accepted for "none"), in the order messages list them.
var Compressions = []string{"snappy", "zstd", "gzip", "brotli", "lz4_raw", "none"}

// KnownCompression reports whether name is a compression gen writes, so that
// a command can name its own flag when it is not.
func KnownCompression(name string) bool {
	_, ok := codecs[strings.ToLower(name)]
	return ok
}

// codecs are the compressions gen writes, by the names Options takes.
var codecs = map[string]compress.Codec{
	"snappy": &parquet.Snappy, "zstd": &parquet.Zstd, "gzip": &parquet.Gzip,
	"brotli": &parquet.Brotli, "lz4_raw": &parquet.Lz4Raw, "none": &parquet.Uncompressed,
	"uncompressed": &parquet.Uncompressed,
}

// Stream ids for the PCG generators: each stream is independent, so adding
// draws to one part never shifts another.
const (
	streamTenant = iota + 1
	streamUsers
	streamScenarios
	streamFiles
	streamHours = 1 << 32 // + hour index
)

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream*0x9e3779b97f4a7c15+1))
}

// Run generates the exports described by o. progress, when not nil, is called
// from Run's goroutine after each batch of rows. On error, files completed so
// far stay; no partial file is left under its final name.
func Run(ctx context.Context, o Options, progress func(Progress)) (*Summary, error) {
	o, codec, err := o.resolve()
	if err != nil {
		return nil, err
	}
	w := newWorld(o)
	sum := &Summary{Start: o.Start, End: o.Start.Add(time.Duration(o.Hours) * time.Hour), Users: o.Users}
	sum.Planted, sum.Skipped = w.plant(o)
	for _, ci := range homeCountries {
		sum.OfficeNetworks = append(sum.OfficeNetworks, countries[ci].office.String())
	}

	tables := [2]*tableWriter{}
	for i, t := range []signin.Table{signin.Interactive, signin.NonInteractive} {
		container := o.InteractiveContainer
		if t == signin.NonInteractive {
			container = o.NonInteractiveContainer
		}
		tables[i] = newTableWriter(o, t, container, codec, newRand(o.Seed, streamFiles+uint64(i)))
	}

	// A writer that fails cancels gctx, which stops the generator.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var werrs [2]error
	for i, tw := range tables {
		wg.Go(func() { werrs[i] = tw.run(gctx, cancel) })
	}
	genErr := w.generate(gctx, o, tables, progress)
	for _, tw := range tables {
		close(tw.in)
	}
	wg.Wait()
	for _, err := range werrs {
		if err != nil && !errors.Is(err, context.Canceled) {
			genErr = err // a writer's failure explains the generator's cancellation
			break
		}
	}
	if genErr == nil {
		genErr = errors.Join(werrs[:]...)
	}
	if genErr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gen: %w", ctx.Err())
		}
		return nil, genErr
	}

	for i, ts := range []*TableSummary{&sum.Interactive, &sum.NonInteractive} {
		tw := tables[i]
		*ts = TableSummary{Table: tw.table, Container: tw.container, Rows: tw.rows, Duplicates: tw.dups, Files: int64(len(tw.files)), Bytes: tw.bytes}
		sum.Files = append(sum.Files, tw.files...)
	}
	if progress != nil {
		progress(w.progress(o, tables))
	}
	return sum, nil
}

// ExpectedRows estimates the rows Run(o) writes, both tables, for a progress bar.
func ExpectedRows(o Options) int64 {
	o, _, err := o.resolve()
	if err != nil {
		return 0
	}
	w := newWorld(o)
	return w.expected
}

// relPath turns a file path under out into the slash-separated relative form.
func relPath(out, path string) string {
	rel, err := filepath.Rel(out, path)
	if err != nil {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}
