package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rulecases"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// caseLines returns the lines (newline included) of a rule-case file.
func caseLines(t *testing.T, file string) [][]byte {
	t.Helper()
	tbl := signin.Interactive
	if file == "noninteractive.jsonl" {
		tbl = signin.NonInteractive
	}
	lines, err := rulecases.Lines(tbl)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// runAll processes the backlog until nothing is left (a blob whose
// extract was repaired comes back once), failing on any error.
func runAll(t *testing.T, p *Pipeline) []Outcome {
	t.Helper()
	ctx := context.Background()
	var outs []Outcome
	for round := 0; round < 4; round++ {
		b, err := p.Backlog(ctx, BacklogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Work) == 0 {
			return outs
		}
		for _, w := range b.Work {
			o, err := p.Process(ctx, w)
			if err != nil || o.Status == Rejected {
				t.Fatalf("%s: %v %v", w, err, o.Reason)
			}
			outs = append(outs, o)
		}
	}
	t.Fatal("backlog never empties")
	return nil
}

func writeBlobs(t *testing.T, s store.Store, blobs map[Work][]byte) {
	t.Helper()
	for w, data := range blobs {
		if _, err := s.Write(context.Background(), w.Container, w.Name, data, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
}

func newLocal(t *testing.T) *store.Local {
	t.Helper()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func alertDocs(t *testing.T, s store.Store) []alert.Document {
	t.Helper()
	docs, _, err := alert.Store{Blobs: s, AlertsContainer: "tokenpivot-alerts"}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// union merges result sets, each pair once.
func union(sets ...[]detect.Result) []detect.Result {
	var all []detect.Result
	for _, s := range sets {
		all = append(all, s...)
	}
	detect.Sort(all)
	return slices.Compact(all)
}

// A plain JSON Lines blob whose last record has no trailing newline: the
// record counts (it is a complete JSON object), on the first run.
func TestTailWithoutNewlineIsRead(t *testing.T) {
	safe := caseSafeList(t)
	blobs := casesBlobs(t, 4)
	for w, data := range blobs {
		blobs[w] = bytes.TrimSuffix(data, []byte("\n"))
	}
	want := oracle(t, blobs, safe)
	s := newLocal(t)
	p := newTestPipeline(t, s, safe)
	writeBlobs(t, s, blobs)
	runAll(t, p)
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule %d", len(got), len(want))
	}
	for w, data := range blobs {
		led, _, _, err := p.readLedger(context.Background(), w)
		if err != nil || led.Offset != int64(len(data)) {
			t.Errorf("%s: ledger offset %d (%v), want the whole blob, %d", w, led.Offset, err, len(data))
		}
	}
}

// A tail cut mid-record waits for the rest of it; then it counts once.
func TestPartialTailWaitsForTheRest(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	s := newLocal(t)
	p := newTestPipeline(t, s, safe)
	all := map[Work][]byte{}
	for _, c := range []struct{ container, file string }{{ic, "interactive.jsonl"}, {nc, "noninteractive.jsonl"}} {
		data := bytes.Join(caseLines(t, c.file), nil)
		w := Work{c.container, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
		all[w] = data
		cut := len(data) - 20 // inside the last record
		if _, err := s.Append(ctx, w.Container, w.Name, data[:cut]); err != nil {
			t.Fatal(err)
		}
		runAll(t, p)
		led, _, _, _ := p.readLedger(ctx, w)
		if led.Offset >= int64(cut) {
			t.Fatalf("%s: a cut record was consumed (offset %d of %d)", w, led.Offset, cut)
		}
		if _, err := s.Append(ctx, w.Container, w.Name, data[cut:]); err != nil {
			t.Fatal(err)
		}
		runAll(t, p)
	}
	if got, want := alerttest.Rows(t, s, "tokenpivot-alerts"), oracle(t, all, safe); !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule %d", len(got), len(want))
	}
}

// A processed plain blob overwritten with other content, of the same size,
// smaller, or larger but not an extension of what was read, is read whole
// again; its old candidates are deleted; nothing is lost.
func TestRewrittenPlainBlobIsReadAgain(t *testing.T) {
	safe := caseSafeList(t)
	iLines, nLines := caseLines(t, "interactive.jsonl"), caseLines(t, "noninteractive.jsonl")
	half := len(nLines) / 2
	first, second := bytes.Join(nLines[:half], nil), bytes.Join(nLines[half:], nil)
	for _, tc := range []struct {
		name    string
		rewrite func() []byte
	}{
		{"same size", func() []byte {
			var b []byte
			for _, l := range nLines[half:] {
				if len(b)+len(l) > len(first) {
					break
				}
				b = append(b, l...)
			}
			return append(b, bytes.Repeat([]byte("\n"), len(first)-len(b))...)
		}},
		{"smaller", func() []byte { return nLines[len(nLines)-1] }},
		{"larger, not an extension", func() []byte { return append(slices.Clone(second), first...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newLocal(t)
			p := newTestPipeline(t, s, safe)
			iw := Work{ic, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
			nw := Work{nc, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}
			iData := bytes.Join(iLines, nil)
			writeBlobs(t, s, map[Work][]byte{iw: iData, nw: first})
			runAll(t, p)
			before, _, _, _ := p.readLedger(ctx, nw)
			rewritten := tc.rewrite()
			if tc.name == "same size" && len(rewritten) != len(first) {
				t.Fatalf("rewrite is %d bytes, want %d", len(rewritten), len(first))
			}
			writeBlobs(t, s, map[Work][]byte{nw: rewritten})
			if pending, err := p.Pending(ctx); err != nil || !slices.Contains(pending, nw) {
				t.Fatalf("a rewritten blob must be pending: %v, %v", pending, err)
			}
			outs := runAll(t, p)
			if len(outs) != 1 || outs[0].Offset != 0 {
				t.Fatalf("want one full reread, got %+v", outs)
			}
			want := union(oracle(t, map[Work][]byte{iw: iData, nw: first}, safe), oracle(t, map[Work][]byte{iw: iData, nw: rewritten}, safe))
			if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
				t.Fatalf("alerts hold %d rows, want %d (both versions' pairs)", len(got), len(want))
			}
			after, _, _, _ := p.readLedger(ctx, nw)
			if after.Generation != before.Generation+1 {
				t.Errorf("generation %d -> %d, want +1", before.Generation, after.Generation)
			}
			for _, old := range before.Extracts {
				if _, err := s.Stat(ctx, "tokenpivot-state", old); !errors.Is(err, store.ErrNotExist) {
					t.Errorf("stale extract %s still there (%v)", old, err)
				}
			}
		})
	}
}

// A new ETag over the same bytes (a metadata change) only refreshes the
// ledger: no reread, and the Sweep stops finding the blob.
func TestSameContentNewETagRefreshesLedger(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	p := newTestPipeline(t, s, caseSafeList(t))
	blobs := casesBlobs(t, 4)
	writeBlobs(t, s, blobs)
	runAll(t, p)
	var w Work
	for w = range blobs {
		if bytes.HasSuffix(blobs[w], []byte("\n")) {
			break
		}
	}
	led, etag, _, err := p.readLedger(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	led.ETag = `"an-older-etag"`
	if err := p.writeLedger(ctx, w, etag, led); err != nil {
		t.Fatal(err)
	}
	outs := runAll(t, p)
	if len(outs) != 1 || outs[0].Status != Done || outs[0].RowsRead != 0 {
		t.Fatalf("want one refresh without reading, got %+v", outs)
	}
	if pending, _ := p.Pending(ctx); len(pending) != 0 {
		t.Fatalf("still pending after the refresh: %v", pending)
	}
}

// Rows without an Id: the same row in two blobs counts twice, as the rule's
// inner join (and detect) counts it; a redelivery of one blob counts once.
func TestRowsWithoutIdCountAsDetectDoes(t *testing.T) {
	safe := caseSafeList(t)
	strip := func(lines [][]byte) []byte {
		var out []byte
		for _, l := range lines {
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
	iData := strip(caseLines(t, "interactive.jsonl"))
	nData := strip(caseLines(t, "noninteractive.jsonl"))
	blobs := map[Work][]byte{
		{ic, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}:   iData,
		{nc, "y=2026/m=11/d=20/h=10/m=00/PT05M.json"}:   nData,
		{nc, "y=2026/m=11/d=20/h=10/m=00/PT05M_1.json"}: nData, // the same rows again
	}
	want := oracle(t, blobs, safe)
	once := oracle(t, map[Work][]byte{{ic, "i.json"}: iData, {nc, "n.json"}: nData}, safe)
	if len(once) < 12 || len(want) != 2*len(once) {
		t.Fatalf("detect finds %d rows, want each of the %d pairs twice", len(want), len(once))
	}
	ctx := context.Background()
	s := newLocal(t)
	p := newTestPipeline(t, s, safe)
	writeBlobs(t, s, blobs)
	runAll(t, p)
	// A redelivery of a processed blob (its ledger lost) adds nothing.
	if err := p.forget(ctx, Work{nc, "y=2026/m=11/d=20/h=10/m=00/PT05M_1.json"}); err != nil {
		t.Fatal(err)
	}
	runAll(t, p)
	docs := alertDocs(t, s)
	n := 0
	for _, d := range docs {
		n += d.ExtendedProperties.ResultCount
	}
	if n != len(want) {
		t.Fatalf("alerts count %d evidence rows, detect %d", n, len(want))
	}
}

// Unreadable state is set aside and rebuilt; every other blob proceeds.
func TestUnreadableStateIsSetAside(t *testing.T) {
	safe := caseSafeList(t)
	ctx := context.Background()
	t.Run("ledger entry", func(t *testing.T) {
		s := newLocal(t)
		p := newTestPipeline(t, s, safe)
		blobs := casesBlobs(t, 4)
		writeBlobs(t, s, blobs)
		runAll(t, p)
		var bad Work
		for bad = range blobs {
			break
		}
		if _, err := s.Write(ctx, "tokenpivot-state", ledgerName(bad), []byte(`{"status":"do`), store.Condition{}); err != nil {
			t.Fatal(err)
		}
		b, err := p.Backlog(ctx, BacklogOptions{})
		if err != nil {
			t.Fatalf("one bad ledger entry stopped the backlog: %v", err)
		}
		if !slices.Equal(b.Work, []Work{bad}) || len(b.SetAside) != 1 || !strings.Contains(b.SetAside[0], ledgerName(bad)) {
			t.Fatalf("backlog %+v: want just %s, its entry set aside", b, bad)
		}
		if _, err := s.Stat(ctx, "tokenpivot-state", store.QuarantinePrefix+ledgerName(bad)); err != nil {
			t.Errorf("quarantined copy: %v", err)
		}
		runAll(t, p)
		if got, want := alerttest.Rows(t, s, "tokenpivot-alerts"), oracle(t, blobs, safe); !slices.Equal(got, want) {
			t.Fatalf("alerts hold %d rows, batch rule %d", len(got), len(want))
		}
		// Also when the blob itself is delivered (not found by the Sweep).
		if _, err := s.Write(ctx, "tokenpivot-state", ledgerName(bad), []byte("\x00garbage"), store.Condition{}); err != nil {
			t.Fatal(err)
		}
		o, err := p.Process(ctx, bad)
		if err != nil || len(o.SetAside) != 1 || o.Status != Processed {
			t.Fatalf("Process over a bad ledger entry: %+v, %v", o, err)
		}
	})
	t.Run("truncated extract", func(t *testing.T) {
		s := newLocal(t)
		p := newTestPipeline(t, s, safe)
		blobs := casesBlobs(t, 4)
		writeBlobs(t, s, blobs)
		// The interactive side first, then break one of its extracts.
		var iWork, nWork []Work
		for w := range blobs {
			if w.Container == ic {
				iWork = append(iWork, w)
			} else {
				nWork = append(nWork, w)
			}
		}
		var extracts []string
		for _, w := range iWork {
			o, err := p.Process(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			led, _, _, _ := p.readLedger(ctx, w)
			extracts = append(extracts, led.Extracts...)
			_ = o
		}
		slices.Sort(extracts)
		victim := extracts[0]
		data, _, err := s.Read(ctx, "tokenpivot-state", victim)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(ctx, "tokenpivot-state", victim, data[:len(data)/2], store.Condition{}); err != nil {
			t.Fatal(err)
		}
		src, ok := extractSource(victim)
		if !ok {
			t.Fatalf("extract %s names no source", victim)
		}
		var setAside []string
		for _, w := range nWork {
			o, err := p.Process(ctx, w)
			if err != nil || o.Status == Rejected {
				t.Fatalf("%s failed over a truncated extract: %v %v", w, err, o.Reason)
			}
			setAside = append(setAside, o.SetAside...)
		}
		if len(setAside) != 1 || !strings.Contains(setAside[0], victim) {
			t.Fatalf("set aside %v, want %s once", setAside, victim)
		}
		if pending, _ := p.Pending(ctx); !slices.Equal(pending, []Work{src}) {
			t.Fatalf("pending %v, want the extract's source %s", pending, src)
		}
		runAll(t, p)
		if got, want := alerttest.Rows(t, s, "tokenpivot-alerts"), oracle(t, blobs, safe); !slices.Equal(got, want) {
			t.Fatalf("alerts hold %d rows, batch rule %d", len(got), len(want))
		}
	})
}

// Blobs that are not exports are skipped and counted, not rejected; old
// exports are taken by a backfill (lateness 0) and counted when cut.
func TestBacklogCountsWhatItSkips(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	p := newTestPipeline(t, s, caseSafeList(t))
	blobs := casesBlobs(t, 50)
	blobs[Work{ic, "README.txt"}] = []byte("exports of the tenant\n")
	blobs[Work{nc, "y=2026/_SUCCESS"}] = nil
	writeBlobs(t, s, blobs)
	old := time.Now().Add(-30 * 24 * time.Hour)
	var w0 Work
	for w := range blobs {
		if signin.IsExportName(w.Name) {
			w0 = w
			if err := os.Chtimes(s.URL(w.Container, w.Name), old, old); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	b, err := p.Backlog(ctx, BacklogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Work) != len(blobs)-2 || b.NotExports != 2 || b.Late != 0 {
		t.Fatalf("backfill backlog: %d work, %d not exports, %d late; want %d, 2, 0", len(b.Work), b.NotExports, b.Late, len(blobs)-2)
	}
	b, err = p.Backlog(ctx, BacklogOptions{Lateness: 168 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Work) != len(blobs)-3 || b.Late != 1 || slices.Contains(b.Work, w0) {
		t.Fatalf("with lateness: %d work, %d late; want %d, 1", len(b.Work), b.Late, len(blobs)-3)
	}
	o, err := p.Process(ctx, Work{ic, "README.txt"})
	if err != nil || o.Status != NotExport {
		t.Fatalf("README.txt: %+v, %v", o, err)
	}
}
