package exportjob

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/exportjob/exportjobtest"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestMain(m *testing.M) { azurite.Main(m) }

const (
	testAccount   = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-export/providers/Microsoft.Storage/storageAccounts/stexport"
	testContainer = "tokenpivot-state"
)

// env is a fake API, a client that reaches it through the managed identity
// endpoint, and a config.
type env struct {
	api *exportjobtest.Server
	cfg Config
	cl  *Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	api := exportjobtest.New(t)
	cfg := Default()
	var err error
	if cfg.Workspace, err = ParseWorkspace(api.WorkspaceID()); err != nil {
		t.Fatal(err)
	}
	cfg.StorageAccount, cfg.Endpoint, cfg.MaxActive = testAccount, api.API.URL, 5
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(cfg, api.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &env{api: api, cfg: cfg, cl: cl}
}

func localStore(t *testing.T) store.Store {
	t.Helper()
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureContainer(context.Background(), testContainer); err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable clock.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// testKeys are n past hours (three days back, so the API takes them).
func testKeys(n int) []Key {
	base := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Hour)
	var hours []time.Time
	for i := range n {
		hours = append(hours, base.Add(time.Duration(i)*time.Hour))
	}
	return Keys(hours)
}

func (e *env) scheduler(st store.Store, c *clock) *Scheduler {
	s := &Scheduler{Config: e.cfg, API: e.cl, Store: st, Container: testContainer, WriteRetryWait: time.Millisecond}
	if c != nil {
		s.Now = c.now
	}
	if testing.Verbose() {
		s.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return s
}

// allFinal runs passes until every key is final or max passes ran.
func allFinal(t *testing.T, s *Scheduler, keys []Key, max int) Summary {
	t.Helper()
	var sum Summary
	for range max {
		var err error
		sum, err = s.Pass(context.Background(), append([]Key(nil), keys...))
		if err != nil {
			t.Logf("pass: %v", err)
		}
		if sum.Done == len(keys) {
			return sum
		}
	}
	t.Fatalf("after %d passes: %+v", max, sum)
	return sum
}

var errInjected = errors.New("injected storage failure")

// faultStore fails call number failAt (1-based) of Read, Write, List, Stat
// and Delete; with crash, every call after it too (the process is gone).
type faultStore struct {
	store.Store
	failAt int
	crash  bool

	mu     sync.Mutex
	n      int
	failed []byte // the data of the failed Write, if it was one
	op     string
}

func (f *faultStore) hit(op string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.failAt > 0 && (f.n == f.failAt || f.crash && f.n > f.failAt) {
		if f.n == f.failAt {
			f.op, f.failed = op, data
		}
		return errInjected
	}
	return nil
}

func (f *faultStore) calls() int { f.mu.Lock(); defer f.mu.Unlock(); return f.n }

func (f *faultStore) Read(ctx context.Context, c, name string) ([]byte, store.Properties, error) {
	if err := f.hit("read", nil); err != nil {
		return nil, store.Properties{}, err
	}
	return f.Store.Read(ctx, c, name)
}

func (f *faultStore) Write(ctx context.Context, c, name string, data []byte, cond store.Condition) (store.Properties, error) {
	if err := f.hit("write", data); err != nil {
		return store.Properties{}, err
	}
	return f.Store.Write(ctx, c, name, data, cond)
}

func (f *faultStore) List(ctx context.Context, c, prefix string, fn func(store.Properties) error) error {
	if err := f.hit("list", nil); err != nil {
		return err
	}
	return f.Store.List(ctx, c, prefix, fn)
}

func (f *faultStore) Stat(ctx context.Context, c, name string) (store.Properties, error) {
	if err := f.hit("stat", nil); err != nil {
		return store.Properties{}, err
	}
	return f.Store.Stat(ctx, c, name)
}

func (f *faultStore) Delete(ctx context.Context, c, name string, cond store.Condition) error {
	if err := f.hit("delete", nil); err != nil {
		return err
	}
	return f.Store.Delete(ctx, c, name, cond)
}

// recordsJob reports whether the failed write was the one recording a just
// created job (claimed -> requested, never polled yet).
func (f *faultStore) recordsJob() bool {
	if f.op != "write" {
		return false
	}
	var st State
	return json.Unmarshal(f.failed, &st) == nil && st.Phase == PhaseRequested && st.JobStatus == "" && st.Retries == 0
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
