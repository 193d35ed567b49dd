package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// TestPendingReadsOnlyNewLedgerEntries: finding pending export blobs costs
// listings and the ledger index, not a read of every ledger entry
// (DESIGN.md 8: a Sweep's cost grows with the pending work, not the
// history). Entries written since the last look are read, and a blob
// rewritten or not yet done is found whatever the index says.
func TestPendingReadsOnlyNewLedgerEntries(t *testing.T) {
	ctx := context.Background()
	local := newLocal(t)
	safe := caseSafeList(t)
	s := store.NewCounting(local)
	p := newTestPipeline(t, s, safe)
	blobs := casesBlobs(t, 4)
	writeBlobs(t, local, blobs)
	runAll(t, p)
	// History: many more export blobs, done long ago.
	// (Written in parallel: each write is a file synced to disk.)
	const history = 300
	var g errgroup.Group
	g.SetLimit(16)
	for i := range history {
		g.Go(func() error {
			name := fmt.Sprintf("y=2026/m=11/d=%02d/h=%02d/m=00/PT05M.json", 1+i/24, i%24)
			props, err := local.Write(ctx, nc, name, []byte("{}\n"), store.Condition{})
			if err != nil {
				return err
			}
			e, _ := json.Marshal(ledgerEntry{Status: statusDone, ETag: props.ETag, Size: props.Size, Offset: props.Size, Appendable: true})
			_, err = local.Write(ctx, "tokenpivot-state", ledgerName(Work{nc, name}), e, store.Condition{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	ledgerReads := func(r store.Request) bool { return r.Op == store.OpRead && r.Area == "ledger" }
	pending := func() []Work {
		t.Helper()
		s.Reset()
		w, err := p.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := pending(); len(w) != 0 {
		t.Fatalf("pending: %v", w)
	}
	if n := s.Total(ledgerReads); n != history {
		t.Errorf("first look read %d ledger entries, want the %d new ones", n, history)
	}
	// Nothing new: no ledger entry is read; per export container the index,
	// the ledger's listing and the container's.
	if w := pending(); len(w) != 0 {
		t.Fatalf("pending: %v", w)
	}
	if n := s.Total(nil); n > 6 || s.Total(ledgerReads) != 0 {
		t.Errorf("nothing new: %d requests:\n%s", n, s.Report())
	}
	// One export blob rewritten, one new, one ledger entry changed behind
	// the index (set aside by hand): each is found.
	var some Work
	for some = range blobs {
		break
	}
	if _, err := local.Write(ctx, some.Container, some.Name, append(blobs[some], '\n'), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	fresh := Work{nc, "y=2026/m=11/d=20/h=11/m=00/PT05M.json"}
	if _, err := local.Write(ctx, fresh.Container, fresh.Name, []byte("{}\n"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	old := Work{nc, "y=2026/m=11/d=01/h=00/m=00/PT05M.json"}
	e, _ := json.Marshal(ledgerEntry{Status: statusDone, ETag: "0xOLD", Size: 1, Offset: 1})
	if _, err := local.Write(ctx, "tokenpivot-state", ledgerName(old), e, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	got := pending()
	want := []Work{some, fresh, old}
	byName := func(a, b Work) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(got, byName)
	slices.SortFunc(want, byName)
	if !slices.Equal(got, want) {
		t.Errorf("pending %v, want %v", got, want)
	}
	if n := s.Total(ledgerReads); n != 1 {
		t.Errorf("read %d ledger entries, want the one changed", n)
	}
	// A lost or damaged index is rebuilt from the entries.
	if _, err := local.Write(ctx, "tokenpivot-state", ledgerIndexName(nc), []byte("{"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 3 {
		t.Errorf("with a damaged index: pending %v", got)
	}
	if n := s.Total(ledgerReads); n < history {
		t.Errorf("with a damaged index: %d entries read", n)
	}
	if got := pending(); len(got) != 3 || s.Total(ledgerReads) != 0 {
		t.Errorf("after the rebuild: pending %v, %d entries read", got, s.Total(ledgerReads))
	}
}

// BenchmarkPendingLedger5400 measures a Sweep's look for pending export
// blobs over 5,400 ledger entries (25 blobs an hour kept 9 days) on real
// storage: TOKENPIVOT_BENCH_SETUP_STORAGE is written directly (no latency),
// TOKENPIVOT_BENCH_STORAGE is the same account through a latency proxy
// (../shared/blobperf). The first look builds the ledger index; each
// iteration is a look with nothing new.
func BenchmarkPendingLedger5400(b *testing.B) {
	setupSpec, spec := os.Getenv("TOKENPIVOT_BENCH_SETUP_STORAGE"), os.Getenv("TOKENPIVOT_BENCH_STORAGE")
	if setupSpec == "" || spec == "" {
		b.Skip("TOKENPIVOT_BENCH_SETUP_STORAGE and TOKENPIVOT_BENCH_STORAGE name the account (direct, and through the latency proxy)")
	}
	ctx := context.Background()
	setup, err := store.Open(ctx, setupSpec)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []string{ic, nc, "tokenpivot-state"} {
		if err := setup.EnsureContainer(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	const entries = 5400
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range entries {
		g.Go(func() error {
			c := []string{ic, nc}[i%2]
			name := fmt.Sprintf("y=2026/m=11/d=%02d/h=%02d/m=%02d/PT05M.json", 1+i/600, i/25%24, i%25)
			props, err := setup.Write(gctx, c, name, []byte("{}\n"), store.Condition{})
			if err != nil {
				return err
			}
			e, _ := json.Marshal(ledgerEntry{Status: statusDone, ETag: props.ETag, Size: props.Size, Offset: props.Size, Appendable: true})
			_, err = setup.Write(gctx, "tokenpivot-state", ledgerName(Work{c, name}), e, store.Condition{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	s, err := store.Open(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	counted := store.NewCounting(s)
	w := &alert.Writer{Store: alert.Store{Blobs: counted, AlertsContainer: "tokenpivot-alerts"}, Rule: rule.Default()}
	p, err := New(Config{Exports: counted, State: counted, InteractiveContainer: ic, NonInteractiveContainer: nc,
		StateContainer: "tokenpivot-state", Alerts: w, AllowedLateness: 100 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if w, err := p.Pending(ctx); err != nil || len(w) != 0 {
		b.Fatalf("first look: %d pending, %v", len(w), err)
	}
	b.Logf("first look (builds the index): %s, %d requests", time.Since(start).Round(time.Millisecond), counted.Total(nil))
	b.ResetTimer()
	for b.Loop() {
		counted.Reset()
		if w, err := p.Pending(ctx); err != nil || len(w) != 0 {
			b.Fatalf("pending: %d, %v", len(w), err)
		}
	}
	b.ReportMetric(float64(counted.Total(nil)), "requests/look")
}

// TestProcessRequestsPerRevision: processing export blobs writes each alert
// revision with one request and asks for no alert that is not there; per
// blob, beside its alerts, a bounded number of requests (its properties,
// ledger, extract, the join's listings and reads, the incidents), and a
// rerun with nothing new reads no ledger entry and no alert.
func TestProcessRequestsPerRevision(t *testing.T) {
	local := newLocal(t)
	safe := caseSafeList(t)
	s := store.NewCounting(local)
	p := newTestPipeline(t, s, safe)
	blobs := casesBlobs(t, 4)
	writeBlobs(t, local, blobs)
	s.Reset()
	outs := runAll(t, p)
	revisions := 0
	for _, o := range outs {
		revisions += o.Alerts
	}
	if revisions == 0 {
		t.Fatal("no alerts: the test data must make some")
	}
	onAlerts := func(r store.Request) bool { return r.Container == "tokenpivot-alerts" }
	if n := s.Total(func(r store.Request) bool { return onAlerts(r) && r.Status != store.StatusOK }); n != 0 {
		t.Errorf("%d alert requests found nothing or failed a condition:\n%s", n, s.Report())
	}
	writes := s.Total(func(r store.Request) bool { return onAlerts(r) && strings.HasPrefix(r.Op, store.OpWrite) })
	if writes != int64(revisions) {
		t.Errorf("%d alert writes for %d revisions", writes, revisions)
	}
	// Per blob: properties, ledger read and write, extract, the join's
	// listings (3 hours) and reads, the incident index and incidents.
	const perBlob = 16 // 195 requests for 12 revisions in 13 blobs when written
	total := s.Total(nil)
	if total > int64(revisions)+int64(perBlob*len(outs)) {
		t.Errorf("%d requests for %d revisions in %d blobs:\n%s", total, revisions, len(outs), s.Report())
	}
	t.Logf("%d requests for %d revisions in %d blobs:\n%s", total, revisions, len(outs), s.Report())
	s.Reset()
	b, err := p.Backlog(context.Background(), BacklogOptions{})
	if err != nil || len(b.Work) != 0 {
		t.Fatalf("rerun: %v, %v", b.Work, err)
	}
	if n := s.Total(nil); n > 6 {
		t.Errorf("a look with nothing new: %d requests:\n%s", n, s.Report())
	}
}
