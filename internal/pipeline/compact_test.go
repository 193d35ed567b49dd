package pipeline

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestMain stops the Azurite that tests started, when they end.
func TestMain(m *testing.M) { azurite.Main(m) }

// TestExtractShapesRoundTrip: every extract shape written with parquet-go
// reads back through signin.Scan as the records it was made from (to the
// nanosecond), with the Parquet types the readers rely on.
func TestExtractShapesRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 20, 10, 59, 59, 999_999_999, time.UTC)
	recs := []signin.Record{
		{TimeGenerated: at, UserPrincipalName: "a@contoso.com", IPAddress: "1.2.3.4", Location: "US", ResultType: "0",
			AuthenticationRequirement: "singleFactorAuthentication", ConditionalAccessStatus: "notApplied",
			AppDisplayName: "Teams", CorrelationId: "c1", UniqueTokenIdentifier: "u1", Id: "id1"},
		{TimeGenerated: at.Add(-time.Hour + 100), UserPrincipalName: "b@contoso.com", IPAddress: "2001:db8::1", ResultType: "0",
			ConditionalAccessStatus: "notApplied", Id: ""},
	}
	for _, tc := range []struct {
		name  string
		shape extractShape
		table signin.Table
		cols  []string
		want  func(signin.Record) signin.Record
	}{
		{"interactive", shapeInteractive, signin.Interactive,
			[]string{"TimeGenerated", "UserPrincipalName", "IPAddress", "Location", "ResultType", "AuthenticationRequirement", "ConditionalAccessStatus", "Id"},
			func(r signin.Record) signin.Record {
				r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier = "", "", ""
				return r
			}},
		{"non-interactive full", shapeFull, signin.NonInteractive,
			[]string{"TimeGenerated", "UserPrincipalName", "IPAddress", "Location", "ResultType", "AppDisplayName", "CorrelationId", "UniqueTokenIdentifier", "Id"},
			func(r signin.Record) signin.Record {
				r.AuthenticationRequirement, r.ConditionalAccessStatus = "", ""
				return r
			}},
		{"non-interactive compact", shapeCompact, signin.NonInteractive,
			[]string{"TimeGenerated", "UserPrincipalName", "IPAddress", "Location", "ResultType"},
			func(r signin.Record) signin.Record {
				return signin.Record{TimeGenerated: r.TimeGenerated, UserPrincipalName: r.UserPrincipalName,
					IPAddress: r.IPAddress, Location: r.Location, ResultType: r.ResultType}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &extractWriter{}
			for k := range recs {
				w.add(&recs[k])
			}
			data, err := w.encode(tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			var got []signin.Record
			_, err = signin.Scan(context.Background(), bytes.NewReader(data), int64(len(data)), signin.Options{Name: tc.name, Table: tc.table, Final: true}, func(rs []signin.Record) error {
				got = append(got, rs...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("read %d records, wrote %d", len(got), len(recs))
			}
			for k := range recs {
				if want := tc.want(recs[k]); got[k] != want || !got[k].TimeGenerated.Equal(recs[k].TimeGenerated) {
					t.Errorf("record %d:\n got %+v\nwant %+v", k, got[k], want)
				}
			}
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, c := range f.Schema().Fields() {
				cols = append(cols, c.Name())
			}
			if !slices.Equal(cols, tc.cols) {
				t.Errorf("columns %v, want %v", cols, tc.cols)
			}
			lt := f.Schema().Fields()[0].Type().LogicalType()
			ts, _ := lt.Value.(*format.TimestampType)
			if ts == nil || !ts.IsAdjustedToUTC {
				t.Errorf("TimeGenerated is %v, want TIMESTAMP(NANOS, UTC)", lt)
			} else if _, nanos := ts.Unit.Value.(*format.NanoSeconds); !nanos {
				t.Errorf("TimeGenerated is %v, want TIMESTAMP(NANOS, UTC)", lt)
			}
			for _, c := range f.Metadata().RowGroups[0].Columns {
				if c.MetaData.Codec != format.Zstd {
					t.Errorf("column %v: codec %v, want zstd", c.MetaData.PathInSchema, c.MetaData.Codec)
				}
			}
		})
	}
}

func gzipped(t *testing.T, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// noIds returns JSON Lines data with every record's Id removed.
func noIds(t *testing.T, data []byte) []byte {
	t.Helper()
	var out []byte
	for l := range bytes.Lines(data) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "Id")
		b, _ := json.Marshal(m)
		out = append(append(out, b...), '\n')
	}
	return out
}

// sealedBlobs is the rule cases with the non-interactive side in formats
// that never grow (gzip JSON Lines, split into several blobs, and the
// DuckDB Parquet export, which repeats their rows with the same Ids), so
// their blobs get compact extracts. ids false removes the Ids (the Parquet
// file is then left out): rows are identified by position.
func sealedBlobs(t *testing.T, ids bool) map[Work][]byte {
	t.Helper()
	blobs := map[Work][]byte{}
	for w, data := range casesBlobs(t, 3) {
		if w.Container != nc {
			blobs[w] = data
			continue
		}
		if !ids {
			data = noIds(t, data)
		}
		blobs[Work{nc, strings.TrimSuffix(w.Name, ".json") + ".json.gz"}] = gzipped(t, data, gzip.DefaultCompression)
	}
	if ids {
		pq, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", "parquet", "noninteractive.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		blobs[Work{nc, "timestamp=2026-11-20T10/duckdb.parquet"}] = pq
	}
	return blobs
}

// nonInteractiveExtracts lists the published NI extracts, failing unless
// each is compact: else these tests would not test the compact path.
func nonInteractiveExtracts(t *testing.T, s store.Store) []string {
	t.Helper()
	var names []string
	err := s.List(context.Background(), "tokenpivot-state", "candidates/noninteractive/", func(p store.Properties) error {
		if _, ok := compactSource(p.Name); !ok {
			t.Errorf("%s is not a compact extract", p.Name)
		}
		names = append(names, p.Name)
		return nil
	})
	if err != nil || len(names) == 0 {
		t.Fatalf("NI extracts %v, %v", names, err)
	}
	return names
}

// runIn processes works in order, with concurrency workers at once.
func runIn(t *testing.T, p *Pipeline, works []Work, concurrency int) []Outcome {
	t.Helper()
	ch := make(chan Work)
	var mu sync.Mutex
	var outs []Outcome
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for w := range ch {
				o, err := p.Process(context.Background(), w)
				mu.Lock()
				if err != nil || o.Status == Rejected {
					t.Errorf("%s: %v %v", w, err, o.Reason)
				}
				outs = append(outs, o)
				mu.Unlock()
			}
		})
	}
	for _, w := range works {
		ch <- w
	}
	close(ch)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return outs
}

// byTable returns the works of blobs, interactive ones first, each table's
// in name order.
func byTable(blobs map[Work][]byte) (interactive, nonInteractive []Work) {
	for w := range blobs {
		if w.Container == ic {
			interactive = append(interactive, w)
		} else {
			nonInteractive = append(nonInteractive, w)
		}
	}
	cmpWork := func(a, b Work) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(interactive, cmpWork)
	slices.SortFunc(nonInteractive, cmpWork)
	return interactive, nonInteractive
}

// TestCompactExtractsEqualBatch: with compact NI extracts, every arrival
// order (each table first, random orders with duplicate and concurrent
// deliveries) stores exactly the batch rule's rows, wide NI columns and
// Ids included.
func TestCompactExtractsEqualBatch(t *testing.T) {
	safe := caseSafeList(t)
	blobs := sealedBlobs(t, true)
	want := oracle(t, blobs, safe)
	iw, nw := byTable(blobs)
	orders := map[string][]Work{
		"interactive first":     slices.Concat(iw, nw),
		"non-interactive first": slices.Concat(nw, iw),
	}
	seeds := uint64(6)
	if testing.Short() {
		seeds = 2 // and the two fixed orders
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		q := slices.Concat(iw, nw)
		for range len(q) / 2 {
			q = append(q, q[r.IntN(len(q))])
		}
		r.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
		orders[fmt.Sprint("seed", seed)] = q
	}
	for name, q := range orders {
		t.Run(name, func(t *testing.T) {
			s := newLocal(t)
			p := newTestPipeline(t, s, safe)
			writeBlobs(t, s, blobs)
			concurrency := 1
			if strings.HasPrefix(name, "seed") {
				concurrency = 6
			}
			runIn(t, p, q, concurrency)
			nonInteractiveExtracts(t, s)
			if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
				t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
			}
		})
	}
}

// TestCompactExtractsKeepEvidenceIdentity: NI rows without an Id are
// identified by their position in the export whichever table comes first:
// the late interactive blob finds the same identity in the export as the
// NI blob gave its own rows, so a redelivery never doubles the evidence.
func TestCompactExtractsKeepEvidenceIdentity(t *testing.T) {
	safe := caseSafeList(t)
	blobs := sealedBlobs(t, false)
	iw, nw := byTable(blobs)
	var runs [][]detect.Result
	for _, q := range [][]Work{slices.Concat(iw, nw), slices.Concat(nw, iw)} {
		s := newLocal(t)
		p := newTestPipeline(t, s, safe)
		writeBlobs(t, s, blobs)
		runIn(t, p, q, 1)
		nonInteractiveExtracts(t, s)
		rows := alerttest.Rows(t, s, "tokenpivot-alerts")
		for _, r := range rows {
			if !strings.HasPrefix(r.NonInteractiveId, signin.PositionIdPrefix+nc+"/") {
				t.Fatalf("NI row id %q is not a position in its export", r.NonInteractiveId)
			}
		}
		runs = append(runs, rows)
	}
	if len(runs[0]) == 0 || !slices.Equal(runs[0], runs[1]) {
		t.Fatalf("interactive first: %d rows, non-interactive first: %d rows, not the same\n%+v\n%+v", len(runs[0]), len(runs[1]), runs[0], runs[1])
	}
}

// TestExportGoneOrChangedAfterExtract: an NI export blob deleted or
// rewritten after its compact extract was published still gives its pairs
// to an interactive blob that comes later (from the extract, wide NI
// columns blank), reports the blob, and keeps those rows' identity on a
// redo.
func TestExportGoneOrChangedAfterExtract(t *testing.T) {
	safe := caseSafeList(t)
	blobs := sealedBlobs(t, true)
	// Without the Parquet copy, which repeats every pair.
	delete(blobs, Work{nc, "timestamp=2026-11-20T10/duckdb.parquet"})
	iw, nw := byTable(blobs)
	// A victim whose pairs no other NI blob also gives (a duplicate in
	// another blob would be told apart by its Id, which the extract lacks).
	only := func(ws ...Work) map[Work][]byte {
		m := map[Work][]byte{}
		for _, w := range slices.Concat(iw, ws) {
			m[w] = blobs[w]
		}
		return m
	}
	var victim Work
	var victimRows, otherRows []detect.Result
	for _, w := range nw {
		mine := oracle(t, only(w), safe)
		others := oracle(t, only(slices.DeleteFunc(slices.Clone(nw), func(o Work) bool { return o == w })...), safe)
		if len(mine) > 0 && len(union(mine, others)) == len(mine)+len(others) {
			victim, victimRows, otherRows = w, mine, others
			break
		}
	}
	if victim == (Work{}) {
		t.Fatal("no NI blob pairs alone")
	}
	type change struct {
		name   string
		change func(s store.Store) error
		why    string
	}
	changes := []change{
		{"deleted", func(s store.Store) error {
			return s.Delete(context.Background(), victim.Container, victim.Name, store.Condition{})
		}, "deleted"},
		{"rewritten", func(s store.Store) error {
			// Other bytes (one row fewer): another ETag.
			data := casesBlobs(t, 3)[Work{nc, strings.TrimSuffix(victim.Name, ".gz")}]
			data = data[bytes.IndexByte(data, '\n')+1:]
			_, err := s.Write(context.Background(), victim.Container, victim.Name, gzipped(t, data, gzip.BestCompression), store.Condition{})
			return err
		}, "rewritten"},
	}
	// Both stores: Azure's ETags and conditional reads (Azurite) as well as
	// the local directory's.
	stores := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"local", func(t *testing.T) store.Store { return newLocal(t) }},
		{"azurite", freshAzurite},
	}
	for _, st := range stores {
		for _, tc := range changes {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				testExportChanged(t, st.open(t), tc.change, tc.why, blobs, victim, victimRows, otherRows)
			})
		}
	}
}

// testExportChanged processes the NI blobs of blobs, applies change to the
// victim export, then processes the interactive blobs and checks what
// TestExportGoneOrChangedAfterExtract says.
func testExportChanged(t *testing.T, s store.Store, change func(store.Store) error, why string,
	blobs map[Work][]byte, victim Work, victimRows, otherRows []detect.Result) {
	safe := caseSafeList(t)
	iw, nw := byTable(blobs)
	blank := func(rs []detect.Result) []detect.Result {
		out := slices.Clone(rs)
		for k := range out {
			out[k].AppDisplayName, out[k].CorrelationId, out[k].UniqueTokenIdentifier, out[k].NonInteractiveId = "", "", "", ""
		}
		return out
	}
	ctx := context.Background()
	p := newTestPipeline(t, s, safe)
	writeBlobs(t, s, blobs)
	runIn(t, p, nw, 1)
	nonInteractiveExtracts(t, s)
	if err := change(s); err != nil {
		t.Fatal(err)
	}
	var reported []string
	for _, o := range runIn(t, p, iw, 1) {
		reported = append(reported, o.FromExtract...)
	}
	if len(reported) == 0 {
		t.Fatal("pairs of a changed export were not reported")
	}
	for _, r := range reported {
		// Named by the store's URL of the blob (escaped in Azure's).
		if !strings.Contains(r, s.URL(victim.Container, victim.Name)) || !strings.Contains(r, why) {
			t.Errorf("report %q should name %s and say %q", r, s.URL(victim.Container, victim.Name), why)
		}
	}
	got := alerttest.Rows(t, s, "tokenpivot-alerts")
	// The other blobs' rows exactly; the victim's with its wide
	// columns blank, identified by position in the extract.
	var mine, theirs []detect.Result
	for _, r := range got {
		if strings.HasPrefix(r.NonInteractiveId, signin.PositionIdPrefix+"tokenpivot-state/candidates/") {
			mine = append(mine, r)
		} else {
			theirs = append(theirs, r)
		}
	}
	if !slices.Equal(theirs, otherRows) {
		t.Errorf("other blobs' rows: %d, want %d\n got %+v\nwant %+v", len(theirs), len(otherRows), theirs, otherRows)
	}
	wantMine := blank(victimRows)
	detect.Sort(wantMine)
	if gotMine := blank(mine); !slices.Equal(gotMine, wantMine) {
		t.Errorf("changed blob's rows from its extract:\n got %+v\nwant %+v", gotMine, wantMine)
	}
	// A redo of the interactive side counts nothing twice.
	count := func() int {
		n := 0
		for _, d := range alertDocs(t, s) {
			n += d.ExtendedProperties.ResultCount
		}
		return n
	}
	before := count()
	for _, w := range iw {
		if err := p.forget(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	runIn(t, p, iw, 1)
	if after := count(); after != before || before != len(otherRows)+len(victimRows) {
		t.Errorf("evidence count %d, after a redo %d; want %d", before, after, len(otherRows)+len(victimRows))
	}
}

// freshAzurite returns a store on the test binary's Azurite with the
// containers the test pipeline uses emptied (their names are fixed).
func freshAzurite(t *testing.T) store.Store {
	t.Helper()
	s, err := store.NewAzureFromConnectionString(azurite.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []string{ic, nc, "tokenpivot-state", "tokenpivot-alerts", "tokenpivot-incidents"} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
		var names []string
		if err := s.List(ctx, c, "", func(p store.Properties) error { names = append(names, p.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := s.Delete(ctx, c, n, store.Condition{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestOldExtractsStillRead: extracts written before compact ones (by the
// previous Parquet library, all nine NI columns, named g<gen>-<from>-<to>)
// still join. The testdata are the three hours' extracts of
// testdata/cases/noninteractive.jsonl as one blob, written by tokenpivot
// at ad89721.
func TestOldExtractsStillRead(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	s := newLocal(t)
	p := newTestPipeline(t, s, safe)
	src := Work{nc, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
	for _, h := range []int{10, 11, 12} {
		data, err := os.ReadFile(filepath.Join("testdata", "old-extracts", fmt.Sprintf("%d.parquet", h)))
		if err != nil {
			t.Fatal(err)
		}
		name := extractName(signin.NonInteractive, time.Date(2026, 11, 20, h, 0, 0, 0, time.UTC), src, 0, 0, 27923)
		if _, err := s.Write(ctx, "tokenpivot-state", name, data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	iData := bytes.Join(caseLines(t, "interactive.jsonl"), nil)
	nData := bytes.Join(caseLines(t, "noninteractive.jsonl"), nil)
	iw := Work{ic, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
	writeBlobs(t, s, map[Work][]byte{iw: iData})
	runIn(t, p, []Work{iw}, 1)
	want := oracle(t, map[Work][]byte{iw: iData, src: nData}, safe)
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
}

// TestCompactNames: a compact extract's name gives back the export blob
// version it was made from; an old or hashed name is not compact.
func TestCompactNames(t *testing.T) {
	h := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		w    Work
		etag string
	}{
		{"azure etag", Work{nc, "WorkspaceResourceId=/subscriptions/x/y=2026/m=11/d=20/h=10/m=00/PT05M.json"}, `"0x8DD1F2A3B4C5D6E"`},
		{"dashes in the encoding", Work{nc, "a/b-c.parquet"}, "\xfb\xff-\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := store.Properties{Container: tc.w.Container, Name: tc.w.Name, Size: 12345, ETag: tc.etag}
			name, ok := compactName(h, tc.w, 2, props)
			if !ok {
				t.Fatalf("%s does not fit", name)
			}
			got, ok := compactSource(name)
			if !ok || got != props {
				t.Fatalf("compactSource(%s) = %+v, %v; want %+v", name, got, ok, props)
			}
			if src, ok := extractSource(name); !ok || src != tc.w {
				t.Fatalf("extractSource(%s) = %v, %v", name, src, ok)
			}
		})
	}
	old := extractName(signin.NonInteractive, h, Work{nc, "a.json"}, 0, 0, 10)
	if _, ok := compactSource(old); ok {
		t.Errorf("%s read as compact", old)
	}
	if _, ok := compactName(h, Work{nc, strings.Repeat("x", maxBlobName)}, 0, store.Properties{Size: 1, ETag: "e"}); ok {
		t.Error("a name past the limit was made")
	}
}

// TestExportGoneCountsDuplicatesOnce: a row exported twice in one blob
// (the rule cases' "dup") counts once even when its pairs come from the
// compact extract, which has no Id to dedup by, after the export went.
func TestExportGoneCountsDuplicatesOnce(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	iData := bytes.Join(caseLines(t, "interactive.jsonl"), nil)
	nData := bytes.Join(caseLines(t, "noninteractive.jsonl"), nil)
	iw, nw := Work{ic, "h/i.json"}, Work{nc, "h/n.json.gz"}
	want := oracle(t, map[Work][]byte{iw: iData, nw: nData}, safe)
	s := newLocal(t)
	p := newTestPipeline(t, s, safe)
	writeBlobs(t, s, map[Work][]byte{nw: gzipped(t, nData, gzip.DefaultCompression)})
	runIn(t, p, []Work{nw}, 1)
	nonInteractiveExtracts(t, s)
	if err := s.Delete(ctx, nw.Container, nw.Name, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	writeBlobs(t, s, map[Work][]byte{iw: iData})
	outs := runIn(t, p, []Work{iw}, 1)
	if len(outs[0].FromExtract) != 1 {
		t.Fatalf("reported %v, want %s once", outs[0].FromExtract, nw)
	}
	n := 0
	for _, d := range alertDocs(t, s) {
		n += d.ExtendedProperties.ResultCount
	}
	if n != len(want) {
		t.Fatalf("alerts count %d evidence rows, the batch rule %d", n, len(want))
	}
}
