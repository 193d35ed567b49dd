package pipeline

import (
	"context"
	"github.com/tokenpivot/tokenpivot/internal/alert/alerttest"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// The containers a tenant diagnostic setting writes sign-in logs to; the
// pipeline reads them when they are configured as the export containers
// (TOKENPIVOT_INTERACTIVE_CONTAINER / TOKENPIVOT_NONINTERACTIVE_CONTAINER).
var (
	dic = signin.Interactive.DiagnosticContainer()
	dnc = signin.NonInteractive.DiagnosticContainer()
)

func newDiagnosticPipeline(t *testing.T, s store.Store, safe *rule.SafeList) *Pipeline {
	t.Helper()
	return newPipelineOn(t, s, safe, dic, dnc)
}

// diagnosticBlobs reads testdata/diagnostic: the rule cases as the archive
// of a diagnostic setting (PT1H.json per hour, resource-log form).
func diagnosticBlobs(t *testing.T) map[Work][]byte {
	t.Helper()
	root := filepath.Join("..", "..", "testdata", "diagnostic")
	blobs := map[Work][]byte{}
	for _, c := range []string{dic, dnc} {
		err := filepath.WalkDir(filepath.Join(root, c), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(filepath.Join(root, c), p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			blobs[Work{c, filepath.ToSlash(rel)}] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(blobs) < 2 {
		t.Fatalf("testdata/diagnostic holds %d blobs", len(blobs))
	}
	return blobs
}

func processPending(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx := context.Background()
	pending, err := p.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range pending {
		o, err := p.Process(ctx, w)
		if err != nil || o.Status == Rejected {
			t.Fatalf("%s: %v %v", w, err, o.Reason)
		}
	}
}

// TestDiagnosticArchiveEqualsBatch: the pipeline over a storage account
// laid out as a diagnostic-settings archive (insights-logs-* containers,
// tenantId=/y=/m=/d=/h=/m=00/PT1H.json) writes the alerts the batch rule
// gives for the same sign-ins in Log Analytics form.
func TestDiagnosticArchiveEqualsBatch(t *testing.T) {
	safe := caseSafeList(t)
	want := oracle(t, casesBlobs(t, 1000), safe)
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := newDiagnosticPipeline(t, s, safe)
	for w, data := range diagnosticBlobs(t) {
		if _, err := s.Append(context.Background(), w.Container, w.Name, data); err != nil {
			t.Fatal(err)
		}
	}
	processPending(t, p)
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule over the Log Analytics form %d\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
}

// TestGrowingPT1HBlobs: the diagnostic setting appends to each hour's
// PT1H.json through the hour, without events, sometimes mid-line. Sweeps
// find the growth and read on from the last complete line, as for data
// export; the result is the batch rule's.
func TestGrowingPT1HBlobs(t *testing.T) {
	safe := caseSafeList(t)
	want := oracle(t, casesBlobs(t, 1000), safe)
	ctx := context.Background()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := newDiagnosticPipeline(t, s, safe)
	blobs := diagnosticBlobs(t)
	type chunk struct {
		w    Work
		data []byte
	}
	var chunks []chunk
	works := make([]Work, 0, len(blobs))
	for w := range blobs {
		works = append(works, w)
	}
	slices.SortFunc(works, func(a, b Work) int { return strings.Compare(a.String(), b.String()) })
	for _, w := range works {
		data := blobs[w]
		for k, n := 0, len(data)/3+11; k < len(data); k += n {
			chunks = append(chunks, chunk{w, data[k:min(k+n, len(data))]})
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	for len(chunks) > 0 {
		k := r.IntN(len(chunks))
		for j := 0; j < k; j++ { // keep each blob's appends in order
			if chunks[j].w == chunks[k].w {
				k = j
				break
			}
		}
		if _, err := s.Append(ctx, chunks[k].w.Container, chunks[k].w.Name, chunks[k].data); err != nil {
			t.Fatal(err)
		}
		chunks = slices.Delete(chunks, k, k+1)
		processPending(t, p)
	}
	if got := alerttest.Rows(t, s, "tokenpivot-alerts"); !slices.Equal(got, want) {
		t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for w, data := range blobs {
		led, _, _, err := p.readLedger(ctx, w)
		if err != nil || led.Offset != int64(len(data)) || !led.Appendable {
			t.Errorf("%s: ledger %+v (%v), want offset %d", w, led, err, len(data))
		}
	}
}
