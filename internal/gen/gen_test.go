package gen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// parquetFile is an export file read back with parquet-go's row reader,
// independent of the project's own reader.
type parquetFile struct {
	path      string
	fields    []parquet.Field
	rowGroups []int64
	codec     string           // of the first column chunk, lower case
	cols      map[string][]any // string (nil for null), time.Time, int64, bool
	n         int
}

// Column types as parquet-go prints them, for the columns that are not strings.
const (
	typeTimestamp = "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"
	typeString    = "STRING"
)

func readParquet(t *testing.T, path string) *parquetFile {
	t.Helper()
	osf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer osf.Close()
	st, err := osf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(osf, st.Size())
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	pf := &parquetFile{path: path, fields: f.Schema().Fields(), cols: map[string][]any{}}
	for _, rg := range f.RowGroups() {
		pf.rowGroups = append(pf.rowGroups, rg.NumRows())
	}
	if md := f.Metadata(); len(md.RowGroups) > 0 && len(md.RowGroups[0].Columns) > 0 {
		pf.codec = strings.ToLower(md.RowGroups[0].Columns[0].MetaData.Codec.String())
	}
	r := parquet.NewReader(f)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			if len(row) != len(pf.fields) {
				t.Fatalf("%s: row of %d values, %d columns", path, len(row), len(pf.fields))
			}
			for _, v := range row {
				fld := pf.fields[v.Column()]
				var val any
				switch typ := fld.Type(); {
				case v.IsNull():
				case typ.String() == typeTimestamp:
					val = time.UnixMicro(v.Int64()).UTC()
				case typ.Kind() == parquet.Int64:
					val = v.Int64()
				case typ.Kind() == parquet.Boolean:
					val = v.Boolean()
				case typ.String() == typeString:
					val = string(v.ByteArray())
				default:
					t.Fatalf("%s: column %s: unexpected type %s", path, fld.Name(), typ)
				}
				pf.cols[fld.Name()] = append(pf.cols[fld.Name()], val)
			}
		}
		pf.n += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
	return pf
}

func (pf *parquetFile) str(col string, i int) string {
	v, _ := pf.cols[col][i].(string)
	return v
}

// signInRow is a row with the columns the rule reads.
type signInRow struct {
	table                             signin.Table
	file                              string
	time                              time.Time
	upn, ip, loc, result, authReq, ca string
	app, corr, token, id              string
}

func (pf *parquetFile) rows(tbl signin.Table) []signInRow {
	out := make([]signInRow, pf.n)
	for i := range out {
		out[i] = signInRow{
			table: tbl, file: pf.path, time: pf.cols["TimeGenerated"][i].(time.Time),
			upn: pf.str("UserPrincipalName", i), ip: pf.str("IPAddress", i), loc: pf.str("Location", i),
			result: pf.str("ResultType", i), authReq: pf.str("AuthenticationRequirement", i),
			ca: pf.str("ConditionalAccessStatus", i), app: pf.str("AppDisplayName", i),
			corr: pf.str("CorrelationId", i), token: pf.str("UniqueTokenIdentifier", i), id: pf.str("Id", i),
		}
	}
	return out
}

func run(t *testing.T, o gen.Options) *gen.Summary {
	t.Helper()
	s, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return s
}

func smallOptions(dir string) gen.Options {
	o := gen.NewOptions(dir)
	o.Users, o.Hours, o.Seed, o.Start = 400, 6, 42, gen.DefaultStart.Add(8*time.Hour)
	o.Attacks, o.LookalikeSets = 6, 1
	o.DuplicateRate = 0.002
	o.RowGroupRows, o.RowsPerFile = 250, 600
	return o
}

// readAll reads every file the summary lists, checking it exists.
func readAll(t *testing.T, dir string, s *gen.Summary) (map[string]*parquetFile, []signInRow) {
	t.Helper()
	files := map[string]*parquetFile{}
	var rows []signInRow
	for _, f := range s.Files {
		pf := readParquet(t, filepath.Join(dir, filepath.FromSlash(f.Path)))
		files[f.Path] = pf
		rows = append(rows, pf.rows(f.Table)...)
	}
	return files, rows
}

func TestLayoutAndColumns(t *testing.T) {
	dir := t.TempDir()
	o := smallOptions(dir)
	var last gen.Progress
	s, err := gen.Run(context.Background(), o, func(p gen.Progress) {
		if p.Rows < last.Rows || p.Files < last.Files {
			t.Errorf("progress went backwards: %+v after %+v", p, last)
		}
		last = p
	})
	if err != nil {
		t.Fatal(err)
	}
	if last.Hour != o.Hours || last.Rows != s.Interactive.Rows+s.NonInteractive.Rows || last.Files != int64(len(s.Files)) {
		t.Errorf("last progress %+v does not match the summary %+v %+v, %d files", last, s.Interactive, s.NonInteractive, len(s.Files))
	}

	// Every file on disk is listed, named as export jobs name them, in the
	// folder of its rows' hour; nothing temporary is left.
	name := regexp.MustCompile(`^(am-signinlogs|am-aadnoninteractiveusersigninlogs)/timestamp=(\d{4}-\d\d-\d\dT\d\d)/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz\.parquet$`)
	var onDisk []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			onDisk = append(onDisk, filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator))))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range s.Files {
		listed = append(listed, f.Path)
	}
	slices.Sort(onDisk)
	slices.Sort(listed)
	if !slices.Equal(onDisk, listed) {
		t.Fatalf("files on disk %v\ndiffer from the summary %v", onDisk, listed)
	}

	files, _ := readAll(t, dir, s)
	wantTypes := map[string]string{
		"TimeGenerated": typeTimestamp, "CreatedDateTime": typeTimestamp,
		"DurationMs": "INT(64,true)", "IsInteractive": "BOOLEAN",
	}
	var rowsByTable [2]int64
	hoursSeen := map[string]bool{}
	retryFiles := 0
	for _, f := range s.Files {
		pf := files[f.Path]
		m := name.FindStringSubmatch(f.Path)
		if m == nil {
			t.Errorf("file name %q is not <container>/timestamp=<hour>/<guid>.gz.parquet", f.Path)
			continue
		}
		wantContainer := map[signin.Table]string{signin.Interactive: "am-signinlogs", signin.NonInteractive: "am-aadnoninteractiveusersigninlogs"}[f.Table]
		if m[1] != wantContainer {
			t.Errorf("%s: %s rows in container %s", f.Path, f.Table, m[1])
		}
		hoursSeen[m[2]] = true
		if int64(pf.n) != f.Rows {
			t.Errorf("%s: %d rows, summary says %d", f.Path, pf.n, f.Rows)
		}
		rowsByTable[f.Table] += f.Rows
		if f.Retry {
			retryFiles++
		} else if f.Rows > int64(o.RowsPerFile) {
			t.Errorf("%s: %d rows, more than RowsPerFile %d", f.Path, f.Rows, o.RowsPerFile)
		}
		for _, rg := range pf.rowGroups {
			if rg > int64(o.RowGroupRows) {
				t.Errorf("%s: row group of %d rows, more than %d", f.Path, rg, o.RowGroupRows)
			}
		}
		// Columns keep the export order: SigninLogs' own, alphabetical
		// (case-insensitive) for the non-interactive table.
		var names []string
		for _, fld := range pf.fields {
			names = append(names, fld.Name())
		}
		if f.Table == signin.Interactive && !slices.Equal(names[:3], []string{"TenantId", "SourceSystem", "TimeGenerated"}) {
			t.Errorf("%s: columns start %v, want SigninLogs' order", f.Path, names[:3])
		}
		if f.Table == signin.NonInteractive && !slices.IsSortedFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }) {
			t.Errorf("%s: columns %v, want them alphabetical", f.Path, names)
		}
		if n := len(pf.fields); n < 35 {
			t.Errorf("%s: %d columns, want the wide set (>= 35)", f.Path, n)
		}
		for _, fld := range pf.fields {
			want, ok := wantTypes[fld.Name()]
			if !ok {
				want = typeString
			}
			if got := fld.Type().String(); got != want || !fld.Optional() {
				t.Errorf("%s: column %s is %s (optional %v), want optional %s", f.Path, fld.Name(), got, fld.Optional(), want)
			}
		}
		for i := range pf.n {
			tg := pf.cols["TimeGenerated"][i].(time.Time)
			if got := tg.Format("2006-01-02T15"); got != m[2] {
				t.Fatalf("%s row %d: TimeGenerated %s outside its folder's hour", f.Path, i, tg)
			}
			if tg.Before(s.Start) || !tg.Before(s.End) {
				t.Fatalf("%s row %d: TimeGenerated %s outside [%s, %s)", f.Path, i, tg, s.Start, s.End)
			}
			if got := pf.str("Type", i); got != f.Table.String() {
				t.Fatalf("%s row %d: Type %q", f.Path, i, got)
			}
			if got := pf.cols["IsInteractive"][i].(bool); got != (f.Table == signin.Interactive) {
				t.Fatalf("%s row %d: IsInteractive %v", f.Path, i, got)
			}
			checkDynamic(t, pf, i)
		}
	}
	if rowsByTable[0] != s.Interactive.Rows || rowsByTable[1] != s.NonInteractive.Rows {
		t.Errorf("rows per table %v, summary %d/%d", rowsByTable, s.Interactive.Rows, s.NonInteractive.Rows)
	}
	if len(hoursSeen) != o.Hours {
		t.Errorf("hour folders %v, want %d", hoursSeen, o.Hours)
	}
	if retryFiles == 0 || s.Interactive.Duplicates+s.NonInteractive.Duplicates == 0 {
		t.Errorf("no export-retry files at duplicate rate %v", o.DuplicateRate)
	}
	ratio := float64(s.NonInteractive.Rows) / float64(s.Interactive.Rows)
	if ratio < 8 || ratio > 12 {
		t.Errorf("non-interactive/interactive = %.2f (%d/%d), want about 10", ratio, s.NonInteractive.Rows, s.Interactive.Rows)
	}
	// Files spill over RowsPerFile: at least one table-hour has several files.
	perHour := map[string]int{}
	for _, f := range s.Files {
		perHour[filepath.Dir(f.Path)]++
	}
	if slices.Max(slicesValues(perHour)) < 3 {
		t.Errorf("no table-hour has several files: %v", perHour)
	}
}

func slicesValues(m map[string]int) []int {
	var v []int
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

var twoLetters = regexp.MustCompile(`^[A-Z]{2}$`)

// checkDynamic checks the JSON-text dynamic columns parse and agree with the
// plain columns.
func checkDynamic(t *testing.T, pf *parquetFile, i int) {
	t.Helper()
	loc := pf.str("Location", i)
	var ld struct {
		City, State, CountryOrRegion string
		GeoCoordinates               struct{ Latitude, Longitude *float64 }
	}
	if err := json.Unmarshal([]byte(pf.str("LocationDetails", i)), &ld); err != nil {
		t.Fatalf("%s row %d: LocationDetails: %v", pf.path, i, err)
	}
	if ld.CountryOrRegion != loc || (loc != "" && (!twoLetters.MatchString(loc) || ld.City == "" || ld.GeoCoordinates.Latitude == nil)) {
		t.Fatalf("%s row %d: Location %q with LocationDetails %+v", pf.path, i, loc, ld)
	}
	var st struct {
		ErrorCode     *int
		FailureReason string
	}
	if err := json.Unmarshal([]byte(pf.str("Status", i)), &st); err != nil || st.ErrorCode == nil {
		t.Fatalf("%s row %d: Status %q: %v", pf.path, i, pf.str("Status", i), err)
	}
	if rt := pf.str("ResultType", i); (rt == "0") != (*st.ErrorCode == 0) || (rt != "0" && st.FailureReason == "") {
		t.Fatalf("%s row %d: ResultType %q with Status %q", pf.path, i, rt, pf.str("Status", i))
	}
	var steps []struct {
		AuthenticationMethod string
		Succeeded            *bool
	}
	if err := json.Unmarshal([]byte(pf.str("AuthenticationDetails", i)), &steps); err != nil || len(steps) == 0 || steps[0].Succeeded == nil {
		t.Fatalf("%s row %d: AuthenticationDetails %q: %v", pf.path, i, pf.str("AuthenticationDetails", i), err)
	}
	var dev map[string]any
	if err := json.Unmarshal([]byte(pf.str("DeviceDetail", i)), &dev); err != nil || dev["operatingSystem"] == nil {
		t.Fatalf("%s row %d: DeviceDetail %q: %v", pf.path, i, pf.str("DeviceDetail", i), err)
	}
	if ua := pf.str("UserAgent", i); len(ua) < 10 {
		t.Fatalf("%s row %d: UserAgent %q", pf.path, i, ua)
	}
}

type pairKey struct{ interactiveID, niID string }

// ruleResult evaluates the rule by brute force over all rows, with no safe
// IPs: every (I, N) pair of candidates, distinct by the two Ids.
func ruleResult(rows []signInRow) map[pairKey][2]signInRow {
	byUser := map[string][]signInRow{}
	for _, r := range rows {
		if r.table == signin.Interactive && r.result == "0" && (r.authReq == "singleFactorAuthentication" || r.ca == "notApplied") {
			byUser[r.upn] = append(byUser[r.upn], r)
		}
	}
	out := map[pairKey][2]signInRow{}
	for _, n := range rows {
		if n.table != signin.NonInteractive || n.result != "0" {
			continue
		}
		for _, i := range byUser[n.upn] {
			d := n.time.Sub(i.time)
			if n.ip != i.ip && n.loc != i.loc && d >= time.Minute && d <= 2*time.Hour {
				out[pairKey{i.id, n.id}] = [2]signInRow{i, n}
			}
		}
	}
	return out
}

func TestRuleFindsExactlyThePlantedPivots(t *testing.T) {
	dir := t.TempDir()
	o := gen.NewOptions(dir)
	// Working hours in Europe, so the background is busy.
	o.Users, o.Hours, o.Seed, o.Start = 1200, 7, 7, gen.DefaultStart.Add(8*time.Hour)
	o.Attacks, o.LookalikeSets = 9, 2
	o.DuplicateRate = 0.001
	s := run(t, o)
	_, rows := readAll(t, dir, s)

	// The background must be able to match if it roamed: many background
	// interactive candidates, many users with several IPs.
	candidates, ips := 0, map[string]map[string]bool{}
	for _, r := range rows {
		if r.table == signin.Interactive && r.result == "0" && (r.authReq == "singleFactorAuthentication" || r.ca == "notApplied") {
			candidates++
		}
		if ips[r.upn] == nil {
			ips[r.upn] = map[string]bool{}
		}
		ips[r.upn][r.ip] = true
	}
	multi := 0
	for _, m := range ips {
		if len(m) > 1 {
			multi++
		}
	}
	if candidates < 400 || multi < 400 {
		t.Fatalf("background too thin to test: %d interactive candidates, %d users with several IPs", candidates, multi)
	}

	got := ruleResult(rows)
	want := s.Pivots()
	if len(want) < o.Attacks+3*o.LookalikeSets {
		t.Fatalf("only %d planted pivots", len(want))
	}
	for _, p := range want {
		pr, ok := got[pairKey{p.InteractiveId, p.NIId}]
		if !ok {
			t.Errorf("planted pivot not found by the rule: %+v", p)
			continue
		}
		i, n := pr[0], pr[1]
		if i.upn != p.UserPrincipalName || !i.time.Equal(p.InteractiveTime) || i.ip != p.InteractiveIP || i.loc != p.InteractiveCountry ||
			!n.time.Equal(p.NITime) || n.ip != p.NIIP || n.loc != p.NICountry || n.app != p.AppDisplayName ||
			n.corr != p.CorrelationId || n.token != p.UniqueTokenIdentifier {
			t.Errorf("pivot %s %s: rows %+v / %+v differ from the plan %+v", p.Kind, p.Detail, i, n, p)
		}
	}
	planned := map[pairKey]bool{}
	for _, p := range want {
		planned[pairKey{p.InteractiveId, p.NIId}] = true
	}
	for k, pr := range got {
		if !planned[k] {
			t.Errorf("the rule matched a pair nobody planted: I %+v N %+v", pr[0], pr[1])
		}
	}

	// Every look-alike's rows are really there, and the rule leaves them out.
	ids := map[string]int{}
	for _, r := range rows {
		ids[r.id]++
	}
	kinds := map[string]bool{}
	for _, p := range s.Planted {
		kinds[p.Kind] = true
		if ids[p.InteractiveId] == 0 || ids[p.NIId] == 0 {
			t.Errorf("%s: planted rows missing from the files (I %d, NI %d)", p.Kind, ids[p.InteractiveId], ids[p.NIId])
		}
		if p.Duplicated && ids[p.NIId] < 2 {
			t.Errorf("%s: NI row %s should be repeated by an export retry, seen %d times", p.Kind, p.NIId, ids[p.NIId])
		}
		if !p.Pivot() && got[pairKey{p.InteractiveId, p.NIId}] != [2]signInRow{} {
			t.Errorf("look-alike %s (%s) matched", p.Kind, p.Detail)
		}
	}
	for _, k := range []string{"pivot", "lookalike:59s", "lookalike:2h0m1s", "lookalike:same-country", "lookalike:same-ip",
		"lookalike:ni-failure", "lookalike:interactive-failure", "lookalike:mfa-ca-success", "lookalike:ni-before-interactive",
		"lookalike:upn-case", "lookalike:requirement-case"} {
		if !kinds[k] {
			t.Errorf("no planted %s", k)
		}
	}
	var boundary []time.Duration
	for _, p := range want {
		if strings.HasPrefix(p.Detail, "boundary") {
			boundary = append(boundary, p.NITime.Sub(p.InteractiveTime))
		}
	}
	if !slices.Contains(boundary, time.Minute) || !slices.Contains(boundary, 2*time.Hour) {
		t.Errorf("boundary pivots at %v, want exactly 1m and 2h", boundary)
	}

	// Background users never roam: outside planted rows, one country per user.
	plantedIDs := map[string]bool{}
	for _, p := range s.Planted {
		plantedIDs[p.InteractiveId], plantedIDs[p.NIId] = true, true
	}
	home := map[string]string{}
	for _, r := range rows {
		if plantedIDs[r.id] {
			continue
		}
		if h, ok := home[r.upn]; ok && h != r.loc {
			t.Fatalf("background user %s seen in %s and %s", r.upn, h, r.loc)
		}
		home[r.upn] = r.loc
	}

	// Office networks as KnownSafeNetworks drop background rows only.
	var offices []netip.Prefix
	for _, n := range s.OfficeNetworks {
		offices = append(offices, netip.MustParsePrefix(n))
	}
	var outside []signInRow
	for _, r := range rows {
		a, err := netip.ParseAddr(r.ip)
		if err != nil || !slices.ContainsFunc(offices, func(p netip.Prefix) bool { return p.Contains(a) }) {
			outside = append(outside, r)
		}
	}
	if len(outside) > len(rows)*95/100 {
		t.Errorf("only %d of %d rows from office networks", len(rows)-len(outside), len(rows))
	}
	if safe := ruleResult(outside); !maps.EqualFunc(safe, got, func(a, b [2]signInRow) bool { return a == b }) {
		t.Errorf("with office networks safe the rule finds %d pairs, without %d", len(safe), len(got))
	}

	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "\n  pivot "); got != len(want) {
		t.Errorf("WriteText lists %d pivots, want %d:\n%s", got, len(want), buf.String())
	}
}

func TestDuplicatesRepeatRecordsOfTheSameHour(t *testing.T) {
	dir := t.TempDir()
	s := run(t, smallOptions(dir))
	files, _ := readAll(t, dir, s)
	first := map[string]string{} // Id -> hour folder of a regular file
	for _, f := range s.Files {
		if !f.Retry {
			for i := range files[f.Path].n {
				first[files[f.Path].str("Id", i)] = filepath.Dir(f.Path)
			}
		}
	}
	repeated := 0
	for _, f := range s.Files {
		if !f.Retry {
			continue
		}
		for i := range files[f.Path].n {
			id := files[f.Path].str("Id", i)
			if first[id] != filepath.Dir(f.Path) {
				t.Errorf("%s: Id %s is not a repeat of a record of the same table-hour (%q)", f.Path, id, first[id])
			}
			repeated++
		}
	}
	if int64(repeated) != s.Interactive.Duplicates+s.NonInteractive.Duplicates || repeated == 0 {
		t.Errorf("%d repeated rows, summary says %d+%d", repeated, s.Interactive.Duplicates, s.NonInteractive.Duplicates)
	}
}

func hashDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, dir)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	oa, ob, oc := smallOptions(a), smallOptions(b), smallOptions(c)
	oc.Seed++
	sa, sb := run(t, oa), run(t, ob)
	run(t, oc)
	ha, hb, hc := hashDir(t, a), hashDir(t, b), hashDir(t, c)
	if len(ha) != len(hb) {
		t.Fatalf("same seed: %d files vs %d", len(ha), len(hb))
	}
	for name, content := range ha {
		if !bytes.Equal(content, hb[name]) {
			t.Errorf("same seed, file %s differs", name)
		}
	}
	if !slices.EqualFunc(sa.Planted, sb.Planted, func(x, y gen.Planted) bool { return x == y }) {
		t.Error("same seed, different plans")
	}
	for name := range ha {
		if _, ok := hc[name]; ok {
			t.Errorf("another seed wrote the same file name %s", name)
		}
	}
}

func TestNarrowHasTheRuleColumns(t *testing.T) {
	dir := t.TempDir()
	o := smallOptions(dir)
	o.Narrow = true
	s := run(t, o)
	want := []string{"AppDisplayName", "AuthenticationRequirement", "ConditionalAccessStatus", "CorrelationId", "IPAddress", "Id", "Location", "ResultType", "TimeGenerated", "UniqueTokenIdentifier", "UserPrincipalName"}
	for _, f := range s.Files[:2] {
		pf := readParquet(t, filepath.Join(dir, f.Path))
		var got []string
		for _, fld := range pf.fields {
			got = append(got, fld.Name())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: columns %v, want %v", f.Path, got, want)
		}
	}
}

func TestCompressionAndBenchmarkShape(t *testing.T) {
	for _, codec := range []string{"snappy", "gzip", "none"} {
		dir := t.TempDir()
		o := smallOptions(dir)
		o.Users, o.Hours, o.Compression = 100, 1, codec
		o.Attacks, o.LookalikeSets = 1, 0
		s := run(t, o)
		got := readParquet(t, filepath.Join(dir, s.Files[0].Path)).codec
		if want := map[string]string{"none": "uncompressed"}[codec]; (want == "" && got != codec) || (want != "" && got != want) {
			t.Errorf("compression %s wrote %s", codec, got)
		}
	}

	// The benchmark's shape, scaled down 200x: one hour, a fixed number of
	// interactive rows per hour.
	dir := t.TempDir()
	o := gen.BenchmarkOptions(dir)
	o.Users, o.InteractivePerHour, o.RowsPerFile, o.RowGroupRows = 500, 1000, 500, 500
	s := run(t, o)
	if d := math.Abs(float64(s.Interactive.Rows) - 1000); d > 100 {
		t.Errorf("%d interactive rows, want about 1000", s.Interactive.Rows)
	}
	if d := math.Abs(float64(s.NonInteractive.Rows) - 10000); d > 500 {
		t.Errorf("%d non-interactive rows, want about 10000", s.NonInteractive.Rows)
	}
	if s.Interactive.Files < 2 || s.NonInteractive.Files < 10 {
		t.Errorf("files: %d interactive, %d non-interactive, want several each", s.Interactive.Files, s.NonInteractive.Files)
	}
	if exp := gen.ExpectedRows(o); math.Abs(float64(exp-s.Interactive.Rows-s.NonInteractive.Rows)) > 0.05*float64(exp) {
		t.Errorf("ExpectedRows %d, wrote %d", exp, s.Interactive.Rows+s.NonInteractive.Rows)
	}
	if len(s.Pivots()) == 0 || len(s.Skipped) != 0 {
		t.Errorf("benchmark plants %d pivots, skipped %v", len(s.Pivots()), s.Skipped)
	}
}

func TestSkipsScenariosThatDoNotFit(t *testing.T) {
	dir := t.TempDir()
	o := smallOptions(dir)
	o.Hours = 2 // 2h0m1s and the exact 2h boundary with -5m... cannot fit
	s := run(t, o)
	if len(s.Skipped) == 0 || !strings.Contains(strings.Join(s.Skipped, "\n"), "lookalike:2h0m1s") {
		t.Errorf("skipped %v, want the 2h0m1s look-alike", s.Skipped)
	}
	for _, p := range s.Planted {
		if p.NITime.Before(s.Start) || !p.NITime.Before(s.End) || p.InteractiveTime.Before(s.Start) {
			t.Errorf("planted %s outside the generated hours: %+v", p.Kind, p)
		}
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		change func(*gen.Options)
		want   string
	}{
		{"no output", func(o *gen.Options) { o.Out = "" }, "no output directory"},
		{"no users", func(o *gen.Options) { o.Users = 0 }, "users"},
		{"no hours", func(o *gen.Options) { o.Hours = -1 }, "hours"},
		{"start off the hour", func(o *gen.Options) { o.Start = gen.DefaultStart.Add(time.Minute) }, "not on the hour"},
		{"unknown codec", func(o *gen.Options) { o.Compression = "lzo" }, `unknown compression "lzo"`},
		{"container path", func(o *gen.Options) { o.InteractiveContainer = "a/b" }, "single name"},
		{"same container", func(o *gen.Options) { o.NonInteractiveContainer = o.InteractiveContainer }, "both tables"},
		{"too few users", func(o *gen.Options) { o.Users, o.Attacks = 10, 20 }, "need 33 users"},
		{"duplicate rate", func(o *gen.Options) { o.DuplicateRate = 2 }, "duplicate rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := gen.NewOptions(dir)
			tc.change(&o)
			_, err := gen.Run(context.Background(), o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad options wrote %d entries", len(entries))
	}
}

func TestCancelLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	o := smallOptions(dir)
	o.Hours = 12
	ctx, cancel := context.WithCancel(context.Background())
	_, err := gen.Run(ctx, o, func(p gen.Progress) {
		if p.Rows > 5000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (!strings.HasSuffix(p, ".gz.parquet") || strings.HasPrefix(d.Name(), ".")) {
			t.Errorf("left behind %s", p)
		}
		return nil
	})
}

// BenchmarkGen writes the benchmark hour: ~200k interactive and ~2M
// non-interactive wide rows, snappy, 100k-row row groups.
func BenchmarkGen(b *testing.B) {
	for b.Loop() {
		o := gen.BenchmarkOptions(b.TempDir())
		start := time.Now()
		s, err := gen.Run(context.Background(), o, nil)
		if err != nil {
			b.Fatal(err)
		}
		rows := s.Interactive.Rows + s.NonInteractive.Rows
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		b.ReportMetric(float64(s.Interactive.Bytes+s.NonInteractive.Bytes)/(1<<20), "MiB")
		b.ReportMetric(float64(rows), "rows")
	}
}

// TestTimeOrderedRoaming: the benchmark's shape, scaled down: each file's
// rows are in time order and a file holds most of the hour's active users,
// as in real exports; roaming rows come from another country than the
// user's home; the sparse shape keeps rows grouped by user.
func TestTimeOrderedRoaming(t *testing.T) {
	dir := t.TempDir()
	o := gen.BenchmarkOptions(dir)
	o.Users, o.InteractivePerHour, o.RowsPerFile, o.RowGroupRows, o.DuplicateRate = 500, 1000, 2500, 2500, 0
	s := run(t, o)
	_, rows := readAll(t, dir, s)
	home := map[string]map[string]int{} // user -> location -> rows
	byFile := map[string][]signInRow{}
	for _, r := range rows {
		byFile[r.file] = append(byFile[r.file], r)
		if home[r.upn] == nil {
			home[r.upn] = map[string]int{}
		}
		home[r.upn][r.loc]++
	}
	users := map[string]bool{}
	for _, r := range rows {
		if r.table == signin.NonInteractive {
			users[r.upn] = true
		}
	}
	for f, rs := range byFile {
		if !slices.IsSortedFunc(rs, func(a, b signInRow) int { return a.time.Compare(b.time) }) {
			t.Errorf("%s: rows not in time order", f)
		}
		if rs[0].table != signin.NonInteractive || len(rs) < o.RowsPerFile {
			continue
		}
		in := map[string]bool{}
		for _, r := range rs {
			in[r.upn] = true
		}
		// 2,500 of ~10,000 rows, ~20 rows a user: most users are in.
		if len(in) < len(users)/2 {
			t.Errorf("%s: %d of %d users, want most", f, len(in), len(users))
		}
	}
	roaming, total := 0, 0
	for _, locs := range home {
		best := 0
		for _, n := range locs {
			best = max(best, n)
			total += n
		}
		for _, n := range locs {
			roaming += n
		}
		roaming -= best
	}
	if share := float64(roaming) / float64(total); share < gen.DefaultRoamRate/2 || share > gen.DefaultRoamRate*2 {
		t.Errorf("%.3f of rows away from home, want about %v", share, gen.DefaultRoamRate)
	}

	sparse := gen.BenchmarkSparseOptions(t.TempDir())
	if sparse.TimeOrdered || sparse.RoamRate != 0 {
		t.Errorf("sparse benchmark: time-ordered %v, roam rate %v", sparse.TimeOrdered, sparse.RoamRate)
	}
}
