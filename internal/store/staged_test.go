package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// stageAll writes data to a new stage of the blob in pieces of step bytes.
func stageAll(t *testing.T, s store.Store, c, name string, data []byte, step int) store.Staged {
	t.Helper()
	st, err := store.Stage(context.Background(), s, c, name)
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		k := min(step, len(rest))
		if n, err := st.Write(rest[:k]); n != k || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		rest = rest[k:]
	}
	return st
}

// TestStage: a staged blob, small (one Put Blob on Azure) or larger than a
// block (Put Block, Put Block List), is invisible until committed, then
// reads back whole with the properties Write would give; conditions hold
// as on Write; an aborted stage leaves nothing.
func TestStage(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		if _, ok := s.(store.Stager); !ok {
			t.Fatalf("%T is not a Stager", s)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), (9<<20)/16+7) // over two 4 MiB blocks
		for _, tc := range []struct {
			name string
			data []byte
			step int
		}{
			{"small", []byte("PAR1 small extract PAR1"), 5},
			{"empty", nil, 1},
			{"blocks", big, 1 << 20},
			{"one write", big, len(big)},
		} {
			name := "candidates/noninteractive/2026/11/20/10/" + tc.name + ".parquet"
			st := stageAll(t, s, c, name, tc.data, tc.step)
			if _, err := s.Stat(ctx, c, name); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("%s: visible before Commit: %v", tc.name, err)
			}
			pr, err := st.Commit(ctx, store.Condition{IfNoneMatch: "*"})
			if err != nil {
				t.Fatalf("%s: commit: %v", tc.name, err)
			}
			st.Abort() // after Commit: a no-op
			data, rp, err := s.Read(ctx, c, name)
			if err != nil || !bytes.Equal(data, tc.data) {
				t.Fatalf("%s: read back %d bytes, %v; want %d bytes", tc.name, len(data), err, len(tc.data))
			}
			if pr.Size != int64(len(tc.data)) || pr.ETag != rp.ETag || pr.Size != rp.Size || pr.Name != name || pr.Container != c {
				t.Errorf("%s: commit gave %+v, the blob is %+v", tc.name, pr, rp)
			}
			// Create-if-absent fails once it is there, leaving it as it was.
			again := stageAll(t, s, c, name, []byte("other"), 2)
			if _, err := again.Commit(ctx, store.Condition{IfNoneMatch: "*"}); !errors.Is(err, store.ErrConditionNotMet) {
				t.Errorf("%s: second create-if-absent = %v, want ErrConditionNotMet", tc.name, err)
			}
			// If-Match: the current ETag replaces, a stale one fails.
			repl := stageAll(t, s, c, name, []byte("replaced"), 3)
			p2, err := repl.Commit(ctx, store.Condition{IfMatch: pr.ETag})
			if err != nil || p2.ETag == pr.ETag {
				t.Fatalf("%s: If-Match replace = %+v, %v", tc.name, p2, err)
			}
			stale := stageAll(t, s, c, name, []byte("stale"), 3)
			if _, err := stale.Commit(ctx, store.Condition{IfMatch: pr.ETag}); !errors.Is(err, store.ErrConditionNotMet) {
				t.Errorf("%s: stale If-Match = %v, want ErrConditionNotMet", tc.name, err)
			}
			if data, _, _ := s.Read(ctx, c, name); string(data) != "replaced" {
				t.Errorf("%s: blob holds %q after the failed commits", tc.name, data)
			}
		}
		aborted := stageAll(t, s, c, "aborted.parquet", big, 3<<20)
		aborted.Abort()
		if _, err := s.Stat(ctx, c, "aborted.parquet"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("aborted stage is visible: %v", err)
		}
		if _, err := aborted.Commit(ctx, store.Condition{}); err == nil {
			t.Error("Commit after Abort succeeded")
		}
		if l, ok := s.(*store.Local); ok {
			// Nothing of the stages stays on disk but the blobs.
			left, _ := filepath.Glob(filepath.Join(l.Root(), ".tokenpivot-staging", "*"))
			if len(left) > 0 {
				t.Errorf("staging folder keeps %v", left)
			}
		}
	})
}

// wrapped is a Store that is not a Stager, as test wrappers are.
type wrapped struct{ store.Store }

// TestStageFallback: a Store that cannot stage gets the content through
// one Write on Commit, so its wrappers see every write.
func TestStageFallback(t *testing.T) {
	l, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.EnsureContainer(ctx, "cont"); err != nil {
		t.Fatal(err)
	}
	s := wrapped{l}
	st := stageAll(t, s, "cont", "x/y.parquet", []byte("content"), 2)
	if _, err := os.Stat(filepath.Join(l.Root(), "cont", "x", "y.parquet")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("visible before Commit: %v", err)
	}
	if _, err := st.Commit(ctx, store.Condition{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
	if data, _, err := l.Read(ctx, "cont", "x/y.parquet"); string(data) != "content" || err != nil {
		t.Errorf("read %q, %v", data, err)
	}
	if _, err := stageAll(t, s, "cont", "x/y.parquet", []byte("again"), 2).Commit(ctx, store.Condition{IfNoneMatch: "*"}); !errors.Is(err, store.ErrConditionNotMet) {
		t.Error(fmt.Errorf("second create = %v, want ErrConditionNotMet", err))
	}
}
