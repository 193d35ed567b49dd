package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

const (
	ic = "am-signinlogs"
	nc = "am-aadnoninteractiveusersigninlogs"
)

// casesBlobs splits the rule cases (testdata/cases) into several export
// blobs per table, a few lines each, so pairs cross blobs.
func casesBlobs(t *testing.T, per int) map[Work][]byte {
	t.Helper()
	blobs := map[Work][]byte{}
	for _, c := range []struct{ container, file string }{{ic, "interactive.jsonl"}, {nc, "noninteractive.jsonl"}} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", c.file))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(bytes.TrimSpace(data), []byte("\n"))
		for k := 0; k < len(lines); k += per {
			name := fmt.Sprintf("WorkspaceResourceId=/subscriptions/x/workspaces/ws/y=2026/m=11/d=20/h=10/m=%02d/PT05M.json", k)
			blobs[Work{c.container, name}] = bytes.Join(lines[k:min(k+per, len(lines))], nil)
		}
	}
	return blobs
}

// oracle is the batch rule over every row of blobs.
func oracle(t *testing.T, blobs map[Work][]byte, safe *rule.SafeList) []detect.Result {
	t.Helper()
	var I, N []signin.Record
	for w, data := range blobs {
		tbl, dst := signin.Interactive, &I
		if w.Container == nc {
			tbl, dst = signin.NonInteractive, &N
		}
		_, err := signin.Scan(context.Background(), w.String(), bytes.NewReader(data), int64(len(data)), tbl, signin.Options{Final: true}, func(rs []signin.Record) error {
			*dst = append(*dst, rs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return detect.Run(I, N, detect.Filter{Safe: safe})
}

func newTestPipeline(t *testing.T, s store.Store, safe *rule.SafeList) *Pipeline {
	t.Helper()
	w := &alert.Writer{Store: s, AlertsContainer: "tokenpivot-alerts", IncidentsContainer: "tokenpivot-incidents", Rule: rule.Default()}
	p, err := New(Config{Exports: s, State: s, InteractiveContainer: ic, NonInteractiveContainer: nc,
		StateContainer: "tokenpivot-state", Filter: detect.Filter{Safe: safe}, Alerts: w})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []string{ic, nc} {
		if err := s.EnsureContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EnsureContainers(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// alertRows returns the union of every stored alert's Results, sorted.
func alertRows(t *testing.T, s store.Store) []detect.Result {
	t.Helper()
	docs, _, err := alert.List(context.Background(), s, "tokenpivot-alerts", "")
	if err != nil {
		t.Fatal(err)
	}
	var rows []detect.Result
	for _, d := range docs {
		rows = append(rows, d.Results...)
	}
	detect.Sort(rows)
	return rows
}

func caseSafeList(t *testing.T) *rule.SafeList {
	safe, err := rule.Default().SafeList([]string{"203.0.113.50"}, []string{"198.51.100.0/24", "2001:db8:ffff::/48"}, rule.SafeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return safe
}

func TestAnyOrderConcurrentDuplicatesEqualsBatch(t *testing.T) {
	safe := caseSafeList(t)
	blobs := casesBlobs(t, 3)
	want := oracle(t, blobs, safe)
	if len(want) != 12 {
		t.Fatalf("oracle has %d rows, the cases define 12", len(want))
	}
	var works []Work
	for w := range blobs {
		works = append(works, w)
	}
	slices.SortFunc(works, func(a, b Work) int { return strings.Compare(a.String(), b.String()) })
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			s, err := store.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p := newTestPipeline(t, s, safe)
			ctx := context.Background()
			for w, data := range blobs {
				if _, err := s.Write(ctx, w.Container, w.Name, data, store.Condition{}); err != nil {
					t.Fatal(err)
				}
			}
			r := rand.New(rand.NewPCG(seed, 1))
			queue := slices.Clone(works)
			for k := 0; k < len(works)/2; k++ { // duplicate deliveries
				queue = append(queue, works[r.IntN(len(works))])
			}
			r.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
			ch := make(chan Work)
			var wg sync.WaitGroup
			errs := make(chan error, len(queue))
			for range 8 {
				wg.Go(func() {
					for w := range ch {
						if o, err := p.Process(ctx, w); err != nil || o.Rejected != nil {
							errs <- fmt.Errorf("%s: %v %v", w, err, o.Rejected)
						}
					}
				})
			}
			for _, w := range queue {
				ch <- w
			}
			close(ch)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := alertRows(t, s); !slices.Equal(got, want) {
				t.Fatalf("alerts hold %d rows, batch rule %d\n got %+v\nwant %+v", len(got), len(want), got, want)
			}
			pending, err := p.Pending(ctx)
			if err != nil || len(pending) != 0 {
				t.Fatalf("after processing everything, Pending = %v, %v", pending, err)
			}
		})
	}
}
