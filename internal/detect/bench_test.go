package detect

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// benchHour generates an hour shaped like `tokenpivot gen --benchmark`:
// users of a 100k tenant, 1 interactive row per 10 non-interactive, ~90%
// successes, a third of interactive rows single-factor, users mostly at one
// home IP and country.
func benchHour(interactive, noninteractive int) (I, N []signin.Record) {
	rng := rand.New(rand.NewPCG(7, 11))
	const users = 100_000
	countries := []string{"US", "GB", "DE", "FR", "NL", "IN", "JP", "BR", "CA", "AU", "RU", "RO"}
	results := []string{"0", "0", "0", "0", "0", "0", "0", "0", "0", "50126"}
	apps := []string{"Microsoft Teams", "Office 365 Exchange Online", "OfficeHome", "Outlook Mobile", "SharePoint Online"}
	upns := make([]string, users)
	for u := range upns {
		upns[u] = fmt.Sprintf("user%06d@contoso.com", u)
	}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	row := func(table signin.Table) signin.Record {
		u := rng.IntN(users)
		home := u % len(countries)
		ip, loc := fmt.Sprintf("10.%d.%d.%d", u>>16, u>>8&255, u&255), countries[home]
		if rng.IntN(50) == 0 { // roaming: another IP and country
			ip, loc = fmt.Sprintf("203.0.%d.%d", rng.IntN(256), rng.IntN(256)), countries[rng.IntN(len(countries))]
		}
		r := signin.Record{
			TimeGenerated:     start.Add(time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Microsecond),
			UserPrincipalName: upns[u],
			IPAddress:         ip,
			Location:          loc,
			ResultType:        results[rng.IntN(len(results))],
			AppDisplayName:    apps[rng.IntN(len(apps))],
			CorrelationId:     fmt.Sprintf("%032x", rng.Uint64()),
			Id:                fmt.Sprintf("%032x", rng.Uint64()),
		}
		if table == signin.Interactive {
			r.AuthenticationRequirement = []string{"singleFactorAuthentication", "multiFactorAuthentication", "multiFactorAuthentication"}[rng.IntN(3)]
			r.ConditionalAccessStatus = []string{"notApplied", "success", "success", "success"}[rng.IntN(4)]
		} else {
			r.UniqueTokenIdentifier = fmt.Sprintf("%022x", rng.Uint64())
		}
		return r
	}
	I = make([]signin.Record, interactive)
	for k := range I {
		I[k] = row(signin.Interactive)
	}
	N = make([]signin.Record, noninteractive)
	for k := range N {
		N[k] = row(signin.NonInteractive)
	}
	return I, N
}

func defaultFilter(b *testing.B) Filter {
	safe, err := rule.Default().SafeList(nil, nil, rule.SafeListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return Filter{Safe: safe}
}

// BenchmarkFilter is the candidate filters alone, per row, with the seed
// rule's safe lists (the 0.0.0.0/32 placeholder network).
func BenchmarkFilter(b *testing.B) {
	I, N := benchHour(100_000, 100_000)
	f := defaultFilter(b)
	for _, bc := range []struct {
		name string
		rows []signin.Record
		keep func(*signin.Record) bool
	}{
		{"interactive", I, f.Interactive},
		{"noninteractive", N, f.NonInteractive},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			kept := 0
			for b.Loop() {
				kept = 0
				for k := range bc.rows {
					if bc.keep(&bc.rows[k]) {
						kept++
					}
				}
			}
			if kept == 0 {
				b.Fatal("no candidates")
			}
			b.ReportMetric(float64(len(bc.rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkJoin is the join as the CLI runs it: index the interactive
// candidates of an hour, then stream non-interactive rows past them (the
// HasUser pushdown, the filter, Id dedup and the windowed probe).
func BenchmarkJoin(b *testing.B) {
	I, N := benchHour(200_000, 1_000_000)
	f := defaultFilter(b)
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x := NewIndex()
			for k := range I {
				if f.Interactive(&I[k]) {
					x.Add(I[k])
				}
			}
		}
		b.ReportMetric(float64(len(I))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	x := NewIndex()
	for k := range I {
		if f.Interactive(&I[k]) {
			x.Add(I[k])
		}
	}
	b.Run("probe", func(b *testing.B) {
		b.ReportAllocs()
		var rows []Result
		for b.Loop() {
			rows = rows[:0]
			for k := range N {
				n := &N[k]
				if x.HasUser(n.UserPrincipalName) && f.NonInteractive(n) {
					rows = x.Probe(rows, n)
				}
			}
		}
		if len(rows) == 0 {
			b.Fatal("the join found no pairs: the generated hour should roam")
		}
		b.ReportMetric(float64(len(N))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkHour runs the whole rule the way `tokenpivot detect` does over a
// generated hour of Parquet exports (reader, filters, join), so it can be
// profiled:
//
//	TOKENPIVOT_BENCH_DATA=/tmp/tokenpivot-bench/hour go test -run '^$' \
//	    -bench Hour -benchtime 1x -cpuprofile cpu.prof ./internal/detect
//
// TOKENPIVOT_BENCH_DATA is a folder holding the two export containers, as
// `tokenpivot gen --benchmark --out DIR` or `make bench` writes it.
func BenchmarkHour(b *testing.B) {
	dir := os.Getenv("TOKENPIVOT_BENCH_DATA")
	if dir == "" {
		b.Skip("set TOKENPIVOT_BENCH_DATA to a generated hour (tokenpivot gen --benchmark --out DIR)")
	}
	ifiles := parquetFiles(b, filepath.Join(dir, "am-signinlogs"))
	nfiles := parquetFiles(b, filepath.Join(dir, "am-aadnoninteractiveusersigninlogs"))
	f := defaultFilter(b)
	ctx := context.Background()

	index := func() *Index {
		x := NewIndex()
		for _, p := range ifiles {
			scanFile(b, ctx, p, signin.Interactive, signin.Options{Keep: f.Interactive}, func(rs []signin.Record) error {
				for _, r := range rs {
					x.Add(r)
				}
				return nil
			})
		}
		return x
	}
	b.Run("interactive-index", func(b *testing.B) {
		for b.Loop() {
			index()
		}
	})
	x := index()
	for _, bc := range []struct {
		name string
		keep func(*signin.Record) bool
	}{
		// The reader alone: every row decoded, nothing kept.
		{"noninteractive-scan-all", func(*signin.Record) bool { return false }},
		// What detect does: the HasUser pushdown, then the filter.
		{"noninteractive-detect", func(r *signin.Record) bool { return x.HasUser(r.UserPrincipalName) && f.NonInteractive(r) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var read int64
			var rows []Result
			for b.Loop() {
				read, rows = 0, rows[:0]
				for _, p := range nfiles {
					read += scanFile(b, ctx, p, signin.NonInteractive, signin.Options{Keep: bc.keep}, func(rs []signin.Record) error {
						for k := range rs {
							rows = x.Probe(rows, &rs[k])
						}
						return nil
					})
				}
			}
			b.ReportMetric(float64(read)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(len(rows)), "results")
		})
	}
}

func parquetFiles(b *testing.B, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(out) == 0 {
		b.Fatalf("%s: no Parquet files", dir)
	}
	return out
}

// scanFile scans one export file and returns the rows read.
func scanFile(b *testing.B, ctx context.Context, path string, t signin.Table, opts signin.Options, fn func([]signin.Record) error) int64 {
	fh, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		b.Fatal(err)
	}
	st, err := signin.Scan(ctx, path, fh, info.Size(), t, opts, fn)
	if err != nil {
		b.Fatal(err)
	}
	return st.Read
}

// BenchmarkHourTwoPhase is a prototype, measured to guide the reader's
// design (it is not how tokenpivot reads today): it runs the same rule over
// the same hour with arrow-go's low-level column chunk readers instead of
// pqarrow, on all cores, one row group per task, in two phases per row group:
//
//  1. decode only the cheap columns (ResultType, UserPrincipalName,
//     TimeGenerated, IPAddress, Location; Parquet dictionaries make them a
//     few hundred KB per 100k rows) as byte views into the pages, with no
//     per-row allocation, and probe each non-interactive row against the
//     interactive index right there;
//  2. only for row groups with a matching row, decode the wide columns
//     (CorrelationId, UniqueTokenIdentifier, Id, AppDisplayName) and copy
//     the matched rows' values out. Id dedup then applies to result pairs.
//
// The results must equal the reader-based path's (checked, unless
// TOKENPIVOT_BENCH_CHECK=0, which leaves the process's peak RSS to the
// prototype alone: measure it with /usr/bin/time on the test binary).
func BenchmarkHourTwoPhase(b *testing.B) {
	dir := os.Getenv("TOKENPIVOT_BENCH_DATA")
	if dir == "" {
		b.Skip("set TOKENPIVOT_BENCH_DATA to a generated hour (tokenpivot gen --benchmark --out DIR)")
	}
	ifiles := parquetFiles(b, filepath.Join(dir, "am-signinlogs"))
	nfiles := parquetFiles(b, filepath.Join(dir, "am-aadnoninteractiveusersigninlogs"))
	f := defaultFilter(b)
	ctx := context.Background()

	check := os.Getenv("TOKENPIVOT_BENCH_CHECK") != "0"
	var want []Result
	if check {
		want = readerPath(b, ctx, ifiles, nfiles, f)
	}
	workers := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	var got []Result
	for b.Loop() {
		x := twoPhaseIndex(b, ifiles, f, workers)
		got = twoPhaseProbe(b, nfiles, f, x, workers)
	}
	b.ReportMetric(float64(len(got)), "results")
	if !check {
		return
	}
	if len(got) != len(want) {
		b.Fatalf("prototype found %d rows, the reader path %d", len(got), len(want))
	}
	for k := range got {
		g, w := got[k], want[k]
		if Compare(g, w) != 0 || !g.NISignInTime.Equal(w.NISignInTime) {
			b.Fatalf("row %d: prototype %+v, reader path %+v", k, g, w)
		}
	}
}

// readerPath is the rule as the CLI runs it today, through signin.Scan.
func readerPath(b *testing.B, ctx context.Context, ifiles, nfiles []string, f Filter) []Result {
	ref := NewIndex()
	for _, p := range ifiles {
		scanFile(b, ctx, p, signin.Interactive, signin.Options{Keep: f.Interactive}, func(rs []signin.Record) error {
			for _, r := range rs {
				ref.Add(r)
			}
			return nil
		})
	}
	var want []Result
	for _, p := range nfiles {
		scanFile(b, ctx, p, signin.NonInteractive, signin.Options{Keep: func(r *signin.Record) bool { return ref.HasUser(r.UserPrincipalName) && f.NonInteractive(r) }}, func(rs []signin.Record) error {
			for k := range rs {
				want = ref.Probe(want, &rs[k])
			}
			return nil
		})
	}
	Sort(want)
	return want
}

// rgTask is one row group of one file.
type rgTask struct {
	pf *file.Reader
	rg int
}

func openTasks(b *testing.B, paths []string) ([]rgTask, func()) {
	var tasks []rgTask
	var files []*file.Reader
	for _, p := range paths {
		pf, err := file.OpenParquetFile(p, false)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, pf)
		for rg := range pf.NumRowGroups() {
			tasks = append(tasks, rgTask{pf, rg})
		}
	}
	return tasks, func() {
		for _, pf := range files {
			pf.Close()
		}
	}
}

// parallel runs fn on every task with n workers; fn gets its worker number.
func parallel(b *testing.B, tasks []rgTask, n int, fn func(w int, t rgTask) error) {
	ch := make(chan rgTask)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for t := range ch {
				if err := fn(w, t); err != nil {
					errs <- err
					for range ch {
					}
					return
				}
			}
		})
	}
	for _, t := range tasks {
		ch <- t
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// bytesCol walks one BYTE_ARRAY column of a row group a value at a time.
// Values alias the current page (or its dictionary) and are valid until the
// column moves to the next page, which happens only when they are consumed.
type bytesCol struct {
	r      *file.ByteArrayColumnChunkReader
	vals   []parquet.ByteArray
	defs   []int16
	maxDef int16
	n, pos int
	vpos   int
}

func openBytes(t rgTask, name string) (*bytesCol, error) {
	i := t.pf.MetaData().Schema.ColumnIndexByName(name)
	if i < 0 {
		return nil, fmt.Errorf("no column %s", name)
	}
	cr, err := t.pf.RowGroup(t.rg).Column(i)
	if err != nil {
		return nil, err
	}
	r, ok := cr.(*file.ByteArrayColumnChunkReader)
	if !ok {
		return nil, fmt.Errorf("column %s is not BYTE_ARRAY", name)
	}
	return &bytesCol{r: r, vals: make([]parquet.ByteArray, 4096), defs: make([]int16, 4096), maxDef: t.pf.MetaData().Schema.Column(i).MaxDefinitionLevel()}, nil
}

// next returns the next row's value as a string aliasing the page ("" for null).
func (c *bytesCol) next() (string, error) {
	if c.pos == c.n {
		total, _, err := c.r.ReadBatchInPage(int64(len(c.defs)), c.vals, c.defs, nil)
		if err != nil {
			return "", err
		}
		if total == 0 {
			return "", io.ErrUnexpectedEOF
		}
		c.n, c.pos, c.vpos = int(total), 0, 0
	}
	d := c.defs[c.pos]
	c.pos++
	if c.maxDef > 0 && d < c.maxDef {
		return "", nil
	}
	v := c.vals[c.vpos]
	c.vpos++
	return unsafe.String(unsafe.SliceData(v), len(v)), nil
}

// timeCol walks an INT64 TIMESTAMP column of a row group.
type timeCol struct {
	r      *file.Int64ColumnChunkReader
	vals   []int64
	defs   []int16
	maxDef int16
	unit   time.Duration
	n, pos int
	vpos   int
}

func openTime(t rgTask, name string) (*timeCol, error) {
	i := t.pf.MetaData().Schema.ColumnIndexByName(name)
	if i < 0 {
		return nil, fmt.Errorf("no column %s", name)
	}
	cr, err := t.pf.RowGroup(t.rg).Column(i)
	if err != nil {
		return nil, err
	}
	r, ok := cr.(*file.Int64ColumnChunkReader)
	if !ok {
		return nil, fmt.Errorf("column %s is not INT64", name)
	}
	unit := time.Microsecond
	if ts, ok := t.pf.MetaData().Schema.Column(i).LogicalType().(schema.TimestampLogicalType); ok {
		switch ts.TimeUnit() {
		case schema.TimeUnitMillis:
			unit = time.Millisecond
		case schema.TimeUnitNanos:
			unit = time.Nanosecond
		}
	}
	return &timeCol{r: r, vals: make([]int64, 4096), defs: make([]int16, 4096), unit: unit, maxDef: t.pf.MetaData().Schema.Column(i).MaxDefinitionLevel()}, nil
}

func (c *timeCol) next() (time.Time, error) {
	if c.pos == c.n {
		total, _, err := c.r.ReadBatchInPage(int64(len(c.defs)), c.vals, c.defs, nil)
		if err != nil {
			return time.Time{}, err
		}
		if total == 0 {
			return time.Time{}, io.ErrUnexpectedEOF
		}
		c.n, c.pos, c.vpos = int(total), 0, 0
	}
	d := c.defs[c.pos]
	c.pos++
	if c.maxDef > 0 && d < c.maxDef {
		return time.Time{}, nil
	}
	v := c.vals[c.vpos]
	c.vpos++
	return time.Unix(0, v*int64(c.unit)).UTC(), nil
}

// openAll opens columns of a row group; it runs on worker goroutines, so it
// returns errors instead of failing the benchmark.
func openAll(t rgTask, names ...string) ([]*bytesCol, error) {
	cols := make([]*bytesCol, len(names))
	for k, n := range names {
		c, err := openBytes(t, n)
		if err != nil {
			return nil, err
		}
		cols[k] = c
	}
	return cols, nil
}

// twoPhaseIndex builds the interactive index: the filter columns of every
// row, then the join columns copied out for candidates only.
func twoPhaseIndex(b *testing.B, paths []string, f Filter, workers int) *Index {
	tasks, done := openTasks(b, paths)
	defer done()
	// One slice per row group: appending all to one would copy them again and again.
	per := make([][][]signin.Record, workers)
	parallel(b, tasks, workers, func(w int, t rgTask) error {
		cols, err := openAll(t, "ResultType", "AuthenticationRequirement", "ConditionalAccessStatus", "IPAddress", "UserPrincipalName", "Location", "Id")
		if err != nil {
			return err
		}
		nrows := t.pf.MetaData().RowGroup(t.rg).NumRows()
		local := make([]signin.Record, 0, nrows/2)
		tc, err := openTime(t, "TimeGenerated")
		if err != nil {
			return err
		}
		var vals [7]string
		for range nrows {
			for k, c := range cols {
				if vals[k], err = c.next(); err != nil {
					return err
				}
			}
			tm, err := tc.next()
			if err != nil {
				return err
			}
			r := signin.Record{TimeGenerated: tm, ResultType: vals[0], AuthenticationRequirement: vals[1], ConditionalAccessStatus: vals[2], IPAddress: vals[3]}
			if !f.Interactive(&r) {
				continue
			}
			local = append(local, signin.Record{TimeGenerated: tm, ResultType: "0",
				IPAddress: strings.Clone(vals[3]), UserPrincipalName: strings.Clone(vals[4]), Location: strings.Clone(vals[5]), Id: strings.Clone(vals[6])})
		}
		per[w] = append(per[w], local)
		return nil
	})
	x := NewIndex()
	for _, groups := range per {
		for _, rs := range groups {
			for _, r := range rs {
				x.Add(r)
			}
		}
	}
	x.sort() // before concurrent probes: Probe sorts lazily
	return x
}

// twoPhaseProbe streams the non-interactive row groups past the index.
func twoPhaseProbe(b *testing.B, paths []string, f Filter, x *Index, workers int) []Result {
	tasks, done := openTasks(b, paths)
	defer done()
	per := make([][]Result, workers)
	parallel(b, tasks, workers, func(w int, t rgTask) error {
		cols, err := openAll(t, "ResultType", "UserPrincipalName", "IPAddress", "Location")
		if err != nil {
			return err
		}
		tc, err := openTime(t, "TimeGenerated")
		if err != nil {
			return err
		}
		var scratch []Result
		type hit struct {
			row int
			res []Result
		}
		var hits []hit
		var vals [4]string
		for row := range int(t.pf.MetaData().RowGroup(t.rg).NumRows()) {
			for k, c := range cols {
				if vals[k], err = c.next(); err != nil {
					return err
				}
			}
			tm, err := tc.next()
			if err != nil {
				return err
			}
			if !Success(vals[0]) || !x.HasUser(vals[1]) {
				continue
			}
			n := signin.Record{TimeGenerated: tm, ResultType: vals[0], UserPrincipalName: vals[1], IPAddress: vals[2], Location: vals[3]}
			if !f.NonInteractive(&n) {
				continue
			}
			if scratch = x.Probe(scratch[:0], &n); len(scratch) > 0 {
				res := slices.Clone(scratch)
				for k := range res { // the NI values alias the page: copy them
					res[k].UserPrincipalName = strings.Clone(res[k].UserPrincipalName)
					res[k].NIIPAddress = strings.Clone(res[k].NIIPAddress)
					res[k].NICountry = strings.Clone(res[k].NICountry)
				}
				hits = append(hits, hit{row, res})
			}
		}
		if len(hits) == 0 {
			return nil // the wide columns of this row group are never read
		}
		wide, err := openAll(t, "AppDisplayName", "CorrelationId", "UniqueTokenIdentifier", "Id")
		if err != nil {
			return err
		}
		var wv [4]string
		row := 0
		for _, h := range hits {
			for ; row <= h.row; row++ {
				for k, c := range wide {
					if wv[k], err = c.next(); err != nil {
						return err
					}
				}
			}
			for _, r := range h.res {
				r.AppDisplayName, r.CorrelationId = strings.Clone(wv[0]), strings.Clone(wv[1])
				r.UniqueTokenIdentifier, r.NonInteractiveId = strings.Clone(wv[2]), strings.Clone(wv[3])
				per[w] = append(per[w], r)
			}
		}
		return nil
	})
	// Exports repeat records: a pair of source rows counts once.
	type pairKey struct{ i, n string }
	seen := map[pairKey]bool{}
	var out []Result
	for _, rs := range per {
		for _, r := range rs {
			k := pairKey{r.InteractiveId, r.NonInteractiveId}
			if r.InteractiveId != "" && r.NonInteractiveId != "" && seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, r)
		}
	}
	Sort(out)
	return out
}
