package pipeline

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/gen"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// publishHook is a Store (not a Stager, so extracts go through Write) that
// calls hook once, before the first non-interactive extract is written.
type publishHook struct {
	store.Store
	once sync.Once
	hook func()
}

func (h *publishHook) Write(ctx context.Context, container, name string, data []byte, cond store.Condition) (store.Properties, error) {
	if strings.HasPrefix(name, "candidates/noninteractive/") {
		h.once.Do(h.hook)
	}
	return h.Store.Write(ctx, container, name, data, cond)
}

// TestLookAfterPublishSeesConcurrentBlob: an interactive blob processed
// while a non-interactive blob streams (after the non-interactive blob's
// pre-look, before its extracts are committed) finds no non-interactive
// extract yet; the non-interactive blob's look after publishing finds the
// interactive extract its pre-look missed and pairs its own rows with it,
// read back from its extracts (compact: the wide columns from the export;
// full: from the extract). Rows exported twice (the rule cases' "dup")
// count once, as in the batch rule.
func TestLookAfterPublishSeesConcurrentBlob(t *testing.T) {
	safe := caseSafeList(t)
	iData := bytes.Join(caseLines(t, "interactive.jsonl"), nil)
	nData := bytes.Join(caseLines(t, "noninteractive.jsonl"), nil)
	if !bytes.Contains(nData, []byte("dup")) {
		t.Fatal("the rule cases lost their duplicated rows")
	}
	for _, tc := range []struct {
		name, blob string
		data       []byte
	}{
		{"compact (gzip)", "h/n.json.gz", gzipped(t, nData, gzip.DefaultCompression)},
		{"full (plain, appendable)", "h/n.json", nData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iw, nw := Work{ic, "h/i.json"}, Work{nc, tc.blob}
			want := oracle(t, map[Work][]byte{iw: iData, nw: nData}, safe)
			if len(want) == 0 {
				t.Fatal("the rule cases pair nothing")
			}
			s := newLocal(t)
			hooked := &publishHook{Store: s}
			p := newTestPipeline(t, hooked, safe)
			pi := newTestPipeline(t, s, safe)
			writeBlobs(t, s, map[Work][]byte{nw: tc.data})
			var iOut Outcome
			hooked.hook = func() {
				writeBlobs(t, s, map[Work][]byte{iw: iData})
				var err error
				if iOut, err = pi.Process(context.Background(), iw); err != nil {
					t.Error(err)
				}
			}
			nOut, err := p.Process(context.Background(), nw)
			if err != nil || nOut.Status != Processed {
				t.Fatalf("%v %s", err, nOut.Status)
			}
			if iOut.Results != 0 {
				t.Errorf("the interactive blob found %d pairs before any NI extract was published", iOut.Results)
			}
			if nOut.Results != len(want) {
				t.Errorf("the NI blob found %d result rows after publishing, the batch rule %d", nOut.Results, len(want))
			}
			got := alerttest.Rows(t, s, "tokenpivot-alerts")
			detect.Sort(want)
			if !slices.EqualFunc(got, want, func(a, b detect.Result) bool { return detect.Compare(a, b) == 0 }) {
				t.Errorf("alerts hold %d rows, the batch rule %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
}

// TestDuplicateAcrossRegrownIndexCountsOnce: a non-interactive row
// exported twice, with a row of an earlier event hour between the copies
// (which makes the stream load a larger interactive index) and thousands
// of rows (so the copies are probed in two batches), counts once,
// as in the batch rule: each index dedups by Id on its own.
func TestDuplicateAcrossRegrownIndexCountsOnce(t *testing.T) {
	line := func(tm, upn, ip, loc, id string, interactive bool) string {
		extra := ""
		if interactive {
			extra = `,"AuthenticationRequirement":"singleFactorAuthentication","ConditionalAccessStatus":"notApplied"`
		}
		return `{"TimeGenerated":"` + tm + `","UserPrincipalName":"` + upn + `","IPAddress":"` + ip + `","Location":"` + loc +
			`","ResultType":"0","Id":"` + id + `","AppDisplayName":"Teams","CorrelationId":"c-` + id + `"` + extra + "}\n"
	}
	iData := line("2026-11-20T10:00:00Z", "u@contoso.com", "81.2.69.142", "US", "i1", true) +
		line("2026-11-20T09:10:00Z", "v@contoso.com", "81.2.69.143", "US", "i0", true)
	// Candidates of a user without interactive sign-ins between, more than
	// a reader's batch (8192), so the copies reach the join in two batches
	// with the larger index loaded between them.
	var filler strings.Builder
	for k := range 9000 {
		filler.WriteString(line("2026-11-20T10:40:00Z", "w@contoso.com", "5.6.7.10", "FR", fmt.Sprintf("f%d", k), false))
	}
	nData := line("2026-11-20T10:30:00Z", "u@contoso.com", "5.6.7.8", "FR", "n1", false) + filler.String() +
		line("2026-11-20T09:59:00Z", "v@contoso.com", "5.6.7.9", "DE", "n0", false) + filler.String() +
		line("2026-11-20T10:30:00Z", "u@contoso.com", "5.6.7.8", "FR", "n1", false)
	safe := caseSafeList(t)
	for _, blob := range []string{"h/n.json", "h/n.json.gz"} {
		t.Run(blob, func(t *testing.T) {
			iw, nw := Work{ic, "h/i.json"}, Work{nc, blob}
			want := oracle(t, map[Work][]byte{iw: []byte(iData), nw: []byte(nData)}, safe)
			if len(want) != 2 {
				t.Fatalf("the batch rule gives %d rows, want 2 (one per user)", len(want))
			}
			data := []byte(nData)
			if strings.HasSuffix(blob, ".gz") {
				data = gzipped(t, data, gzip.DefaultCompression)
			}
			s := newLocal(t)
			p := newTestPipeline(t, s, safe)
			writeBlobs(t, s, map[Work][]byte{iw: []byte(iData), nw: data})
			if _, err := p.Process(context.Background(), iw); err != nil {
				t.Fatal(err)
			}
			out, err := p.Process(context.Background(), nw)
			if err != nil || out.Status != Processed {
				t.Fatalf("%v %s", err, out.Status)
			}
			if out.Results != len(want) {
				t.Errorf("%d result rows, the batch rule %d", out.Results, len(want))
			}
			if got := alerttest.Rows(t, s, "tokenpivot-alerts"); len(got) != len(want) {
				t.Errorf("alerts hold %d rows, the batch rule %d", len(got), len(want))
			}
		})
	}
}

// TestCompactRowsCopyKeepText: compactRows is fed records whose text is
// valid during the call only (signin.Options.Keep's): a record reused and
// overwritten for every row, over several batches and row groups, reads
// back as the rows written.
func TestCompactRowsCopyKeepText(t *testing.T) {
	var buf bytes.Buffer
	w := newCompactRows(&buf)
	const n = 3*extractBatchRows + 123
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	scratch := make([]byte, 64)
	want := make([]signin.Record, n)
	for k := range n {
		// The text lives in scratch, rewritten for the next row.
		text := fmt.Appendf(scratch[:0], "user%06d@contoso.com|10.%d.%d.%d|C%d", k, k%251, k%241, k%239, k%7)
		parts := strings.Split(string(text), "|")
		alias := func(i int) string {
			off := 0
			for j := range i {
				off += len(parts[j]) + 1
			}
			return unsafe.String(&scratch[off], len(parts[i]))
		}
		r := signin.Record{TimeGenerated: at.Add(time.Duration(k) * time.Millisecond), UserPrincipalName: alias(0),
			IPAddress: alias(1), Location: alias(2), ResultType: "0"}
		want[k] = signin.Record{TimeGenerated: r.TimeGenerated, UserPrincipalName: parts[0], IPAddress: parts[1], Location: parts[2], ResultType: "0"}
		if err := w.add(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var got []signin.Record
	_, err := signin.Scan(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len()), signin.Options{Name: "compact", Table: signin.NonInteractive, Final: true}, func(rs []signin.Record) error {
		got = append(got, rs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("read %d rows, wrote %d", len(got), n)
	}
	for k := range want {
		if g := got[k]; g.UserPrincipalName != want[k].UserPrincipalName || g.IPAddress != want[k].IPAddress ||
			g.Location != want[k].Location || !g.TimeGenerated.Equal(want[k].TimeGenerated) {
			t.Fatalf("row %d: got %+v, want %+v", k, g, want[k])
		}
	}
}

// slowReads is a Store whose ReadAt of the non-interactive exports takes
// latency and records how many were in flight at once.
type slowReads struct {
	store.Store
	latency   time.Duration
	mu        sync.Mutex
	now, most int
}

func (s *slowReads) ReadAt(ctx context.Context, container, name string, b []byte, off int64, etag string) (int, error) {
	if container == nc {
		s.mu.Lock()
		s.now++
		s.most = max(s.most, s.now)
		s.mu.Unlock()
		time.Sleep(s.latency)
		defer func() {
			s.mu.Lock()
			s.now--
			s.mu.Unlock()
		}()
	}
	return s.Store.ReadAt(ctx, container, name, b, off, etag)
}

// TestStreamReadsColumnsAtOnce: a streamed non-interactive Parquet blob's
// columns are read several at once, not one per core: at cloud latency a
// blob's reads were its round trips end to end (two cores, two reads in
// flight). The rows it finds are the same.
func TestStreamReadsColumnsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and reads 80k rows at 20 ms a read")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	dir := t.TempDir()
	o := gen.NewOptions(dir)
	o.Users, o.Hours, o.InteractivePerHour, o.NIPerInteractive = 2_000, 1, 2_000, 40
	o.RowsPerFile, o.RowGroupRows = 80_000, 80_000
	o.TimeOrdered, o.RoamRate, o.Attacks, o.LookalikeSets = true, gen.DefaultRoamRate, 2, 0
	if _, err := gen.Run(context.Background(), o, nil); err != nil {
		t.Fatal(err)
	}
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowReads{Store: s, latency: 20 * time.Millisecond}
	p := benchPipeline(t, s, &countingSink{})
	for _, w := range exportsIn(t, dir, ic) {
		if out, err := p.Process(context.Background(), w); err != nil || out.Status != Processed {
			t.Fatalf("%s: %v %s", w, err, out.Status)
		}
	}
	p.cfg.Exports = slow
	results := 0
	for _, w := range exportsIn(t, dir, nc) {
		out, err := p.Process(context.Background(), w)
		if err != nil || out.Status != Processed {
			t.Fatalf("%s: %v %s", w, err, out.Status)
		}
		results += out.Results
	}
	if results == 0 {
		t.Fatal("no result rows: not the blob meant")
	}
	if slow.most <= 2 {
		t.Errorf("at most %d reads of the export in flight at once on 2 cores; want the columns read several at once", slow.most)
	}
	t.Logf("%d result rows; at most %d reads in flight", results, slow.most)
}
