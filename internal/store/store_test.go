package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/azurite"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(counterChild(dir))
	}
	azurite.Main(m)
}

// appender is the test-only Append both backends offer.
type appender interface {
	Append(ctx context.Context, container, name string, data []byte) (store.Properties, error)
}

var (
	azureOnce  sync.Once
	azureStore *store.Azure
	azureErr   error
)

// backends runs fn once per backend, each time with a fresh, empty
// container: a temp dir for Local, a uniquely named container in Azurite.
func backends(t *testing.T, fn func(t *testing.T, s store.Store, container string)) {
	t.Run("Local", func(t *testing.T) {
		t.Parallel()
		s, err := store.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureContainer(context.Background(), "tokenpivot-test"); err != nil {
			t.Fatal(err)
		}
		fn(t, s, "tokenpivot-test")
	})
	t.Run("Azure", func(t *testing.T) {
		t.Parallel()
		s := azureForTest(t)
		c := azurite.ContainerName(t.Name())
		if err := s.EnsureContainer(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		fn(t, s, c)
	})
}

func azureForTest(t *testing.T) *store.Azure {
	cs := azurite.Start(t)
	azureOnce.Do(func() { azureStore, azureErr = store.NewAzureFromConnectionString(cs) })
	if azureErr != nil {
		t.Fatal(azureErr)
	}
	return azureStore
}

func mustWrite(t *testing.T, s store.Store, c, name, data string, cond store.Condition) store.Properties {
	t.Helper()
	p, err := s.Write(context.Background(), c, name, []byte(data), cond)
	if err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return p
}

const exportName = "WorkspaceResourceId=/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-sentinel/providers/microsoft.operationalinsights/workspaces/law-prod/y=2026/m=11/d=20/h=10/m=00/PT05M.json"

func TestMissing(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		mustWrite(t, s, c, "present/blob.json", "{}", store.Condition{})
		for _, name := range []string{exportName, "present", "present/blob.json/child"} {
			if _, err := s.Stat(ctx, c, name); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Stat(%q) = %v, want ErrNotExist", name, err)
			}
			if _, _, err := s.Read(ctx, c, name); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Read(%q) = %v, want ErrNotExist", name, err)
			}
			if _, err := s.ReadAt(ctx, c, name, make([]byte, 4), 0, ""); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("ReadAt(%q) = %v, want ErrNotExist", name, err)
			}
			if err := s.Delete(ctx, c, name, store.Condition{}); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Delete(%q) = %v, want ErrNotExist", name, err)
			}
		}
		// A container that was never created.
		const absent = "no-such-container"
		if _, err := s.Stat(ctx, absent, "a.json"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Stat in missing container = %v, want ErrNotExist", err)
		}
		if _, err := s.Write(ctx, absent, "a.json", []byte("x"), store.Condition{}); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Write in missing container = %v, want ErrNotExist", err)
		}
		if err := s.List(ctx, absent, "", func(store.Properties) error { return nil }); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("List of missing container = %v, want ErrNotExist", err)
		}
	})
}

func TestConditionalWrite(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		const name = "ledger/am-signinlogs/PT05M.json"
		start := time.Now()
		p1 := mustWrite(t, s, c, name, `{"state":"published"}`, store.Condition{IfNoneMatch: "*"})
		if p1.ETag == "" || p1.Size != 21 || p1.Name != name || p1.Container != c {
			t.Errorf("first write properties = %+v", p1)
		}
		if d := p1.LastModified.Sub(start); d < -2*time.Second || d > time.Minute {
			t.Errorf("LastModified %v is %v from the time of writing", p1.LastModified, d)
		}
		if _, err := s.Write(ctx, c, name, []byte(`{"state":"other"}`), store.Condition{IfNoneMatch: "*"}); !errors.Is(err, store.ErrConditionNotMet) {
			t.Fatalf("second create-if-absent = %v, want ErrConditionNotMet", err)
		}
		p2 := mustWrite(t, s, c, name, `{"state":"done"}`, store.Condition{IfMatch: p1.ETag})
		if p2.ETag == p1.ETag {
			t.Errorf("ETag %s did not change with the content", p2.ETag)
		}
		if _, err := s.Write(ctx, c, name, []byte(`{"state":"stale"}`), store.Condition{IfMatch: p1.ETag}); !errors.Is(err, store.ErrConditionNotMet) {
			t.Errorf("write with stale If-Match = %v, want ErrConditionNotMet", err)
		}
		if _, err := s.Write(ctx, c, "ledger/absent.json", []byte(`{}`), store.Condition{IfMatch: p1.ETag}); !errors.Is(err, store.ErrConditionNotMet) {
			t.Errorf("If-Match on a missing blob = %v, want ErrConditionNotMet", err)
		}
		data, pr, err := s.Read(ctx, c, name)
		if err != nil || string(data) != `{"state":"done"}` || pr.ETag != p2.ETag || pr.Size != int64(len(data)) {
			t.Errorf("Read = %q, %+v, %v; want the If-Match write with ETag %s", data, pr, err, p2.ETag)
		}
		st, err := s.Stat(ctx, c, name)
		if err != nil || st.ETag != p2.ETag || st.Size != p2.Size || !st.LastModified.Equal(pr.LastModified) {
			t.Errorf("Stat = %+v, %v; want %+v", st, err, pr)
		}
		// Unconditional writes always win; an empty blob is a blob.
		p3 := mustWrite(t, s, c, name, "", store.Condition{})
		if p3.Size != 0 || p3.ETag == p2.ETag {
			t.Errorf("empty overwrite = %+v", p3)
		}
		if n, err := s.ReadAt(ctx, c, name, make([]byte, 8), 0, p3.ETag); n != 0 || err != io.EOF {
			t.Errorf("ReadAt of empty blob = %d, %v; want 0, io.EOF", n, err)
		}
	})
}

func TestReadAt(t *testing.T) {
	content := strings.Repeat("0123456789", 10) // 100 bytes
	tests := []struct {
		name    string
		off     int64
		n       int
		stale   bool
		want    string
		wantErr error
	}{
		{name: "head", off: 0, n: 10, want: content[:10]},
		{name: "middle", off: 37, n: 13, want: content[37:50]},
		{name: "exactly to the end", off: 90, n: 10, want: content[90:]},
		{name: "short at the end", off: 95, n: 10, want: content[95:], wantErr: io.EOF},
		{name: "whole and more", off: 0, n: 150, want: content, wantErr: io.EOF},
		{name: "at the end", off: 100, n: 10, wantErr: io.EOF},
		{name: "past the end", off: 250, n: 10, wantErr: io.EOF},
		{name: "zero length", off: 5, n: 0},
		{name: "stale etag", off: 0, n: 10, stale: true, wantErr: store.ErrConditionNotMet},
		{name: "stale etag at the end", off: 95, n: 10, stale: true, wantErr: store.ErrConditionNotMet},
	}
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		old := mustWrite(t, s, c, "data/blob.bin", "previous version", store.Condition{})
		cur := mustWrite(t, s, c, "data/blob.bin", content, store.Condition{})
		for _, tc := range tests {
			for _, pinned := range []bool{false, true} {
				if tc.stale && !pinned {
					continue
				}
				etag := ""
				if pinned {
					etag = cur.ETag
				}
				if tc.stale {
					etag = old.ETag
				}
				buf := make([]byte, tc.n)
				n, err := s.ReadAt(ctx, c, "data/blob.bin", buf, tc.off, etag)
				if got := string(buf[:n]); got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Errorf("%s (etag %q): ReadAt = %q, %v; want %q, %v", tc.name, etag, got, err, tc.want, tc.wantErr)
				}
			}
		}
		if _, err := s.ReadAt(ctx, c, "data/blob.bin", make([]byte, 4), -1, ""); err == nil || err == io.EOF {
			t.Errorf("negative offset: err = %v, want an error", err)
		}
	})
}

func TestList(t *testing.T) {
	const ws = "WorkspaceResourceId=/subscriptions/s1/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/law/"
	names := []string{
		ws + "y=2026/m=11/d=20/h=10/m=00/PT05M.json",
		ws + "y=2026/m=11/d=20/h=10/m=05/PT05M.json",
		ws + "y=2026/m=11/d=20/h=09/m=55/PT05M.json",
		ws + "y=2026/m=10/d=31/h=23/m=55/PT05M.json",
		ws + "y=2026/m=1/d=01/h=00/m=00/PT05M.json",
		"a-b",
		"a/b",
		"a b/c d.json",
		"naïve/日本語/ü.json",
		"z=1",
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", names},
		{ws + "y=2026/m=11/", names[:3]},
		{ws + "y=2026/m=1", names[:5]},
		{ws + "y=2026/m=11/d=20/h=10/m=0", names[:2]},
		{"a", []string{"a-b", "a/b", "a b/c d.json"}},
		{"a/", []string{"a/b"}},
		{"naïve/", []string{"naïve/日本語/ü.json"}},
		{"nothing/here/", nil},
		{"z=", []string{"z=1"}},
	}
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		written := map[string]store.Properties{}
		for _, i := range rand.Perm(len(names)) {
			written[names[i]] = mustWrite(t, s, c, names[i], "content of "+names[i], store.Condition{})
		}
		for _, tc := range tests {
			want := slices.Clone(tc.want)
			slices.Sort(want)
			var got []string
			err := s.List(ctx, c, tc.prefix, func(p store.Properties) error {
				got = append(got, p.Name)
				if w := written[p.Name]; p.ETag != w.ETag || p.Size != w.Size || p.Container != c || !p.LastModified.Equal(w.LastModified) {
					t.Errorf("List(%q) gave %+v, written as %+v", tc.prefix, p, w)
				}
				return nil
			})
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("List(%q) = %q, %v\nwant %q", tc.prefix, got, err, want)
			}
		}
		stop := errors.New("enough")
		calls := 0
		err := s.List(ctx, c, "", func(store.Properties) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("List with a failing fn = %v after %d calls, want its error after 1", err, calls)
		}
	})
}

func TestConcurrentCreate(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		const n = 8
		const name = "alerts/3f2c9e1a.json"
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = s.Write(context.Background(), c, name, []byte("writer "+strconv.Itoa(i)), store.Condition{IfNoneMatch: "*"})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("writers %d and %d both created the blob", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConditionNotMet):
				t.Errorf("writer %d: %v, want ErrConditionNotMet", i, err)
			}
		}
		data, _, err := s.Read(context.Background(), c, name)
		if winner < 0 || err != nil || string(data) != "writer "+strconv.Itoa(winner) {
			t.Errorf("winner %d, blob %q, %v", winner, data, err)
		}
	})
}

// increment adds one to the decimal counter in the blob with an If-Match
// read-modify-write, retrying when another writer got there first.
func increment(ctx context.Context, s store.Store, c, name string) (retries int, err error) {
	for {
		data, p, err := s.Read(ctx, c, name)
		if err != nil {
			return retries, err
		}
		v, err := strconv.Atoi(string(data))
		if err != nil {
			return retries, fmt.Errorf("counter %q: %w", data, err)
		}
		_, err = s.Write(ctx, c, name, []byte(strconv.Itoa(v+1)), store.Condition{IfMatch: p.ETag})
		if !errors.Is(err, store.ErrConditionNotMet) {
			return retries, err
		}
		retries++
	}
}

func TestConcurrentCounter(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		const workers, each = 8, 20
		const name = "incidents/counter"
		mustWrite(t, s, c, name, "0", store.Condition{IfNoneMatch: "*"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		retries := 0
		for range workers {
			wg.Go(func() {
				for range each {
					r, err := increment(context.Background(), s, c, name)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					retries += r
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		data, _, err := s.Read(context.Background(), c, name)
		if err != nil || string(data) != strconv.Itoa(workers*each) {
			t.Errorf("counter = %q, %v; want %d", data, err, workers*each)
		}
		t.Logf("%d increments, %d retries after a lost race", workers*each, retries)
	})
}

func TestEnsureContainer(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		mustWrite(t, s, c, "keep.json", "kept", store.Condition{})
		for range 2 {
			if err := s.EnsureContainer(ctx, c); err != nil {
				t.Fatalf("EnsureContainer of an existing container: %v", err)
			}
		}
		if data, _, err := s.Read(ctx, c, "keep.json"); err != nil || string(data) != "kept" {
			t.Errorf("after EnsureContainer: %q, %v", data, err)
		}
		if err := s.EnsureContainer(ctx, "Bad_Name"); err == nil || !strings.Contains(err.Error(), "Bad_Name") {
			t.Errorf("EnsureContainer(Bad_Name) = %v, want an error naming it", err)
		}
	})
}

func TestDelete(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		const name = "candidates/SigninLogs/2026/11/20/10/blob-1.json"
		old := mustWrite(t, s, c, name, "v1", store.Condition{})
		cur := mustWrite(t, s, c, name, "v2", store.Condition{})
		mustWrite(t, s, c, "candidates/SigninLogs/2026/11/20/10/blob-2.json", "other", store.Condition{})
		if err := s.Delete(ctx, c, name, store.Condition{IfMatch: old.ETag}); !errors.Is(err, store.ErrConditionNotMet) {
			t.Errorf("Delete with stale If-Match = %v, want ErrConditionNotMet", err)
		}
		if _, err := s.Stat(ctx, c, name); err != nil {
			t.Errorf("blob gone after a failed conditional Delete: %v", err)
		}
		if err := s.Delete(ctx, c, name, store.Condition{IfMatch: cur.ETag}); err != nil {
			t.Errorf("Delete with current If-Match: %v", err)
		}
		if _, err := s.Stat(ctx, c, name); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Stat after Delete = %v, want ErrNotExist", err)
		}
		if err := s.Delete(ctx, c, name, store.Condition{}); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("second Delete = %v, want ErrNotExist", err)
		}
		if _, err := s.Stat(ctx, c, "candidates/SigninLogs/2026/11/20/10/blob-2.json"); err != nil {
			t.Errorf("sibling blob: %v", err)
		}
		// Deleting the last blob of a folder frees its name for a blob.
		mustWrite(t, s, c, "tmp/x/y", "deep", store.Condition{})
		if err := s.Delete(ctx, c, "tmp/x/y", store.Condition{}); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, s, c, "tmp/x", "shallow", store.Condition{IfNoneMatch: "*"})
	})
}

func TestAppend(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		a, ok := s.(appender)
		if !ok {
			t.Fatalf("%T has no Append", s)
		}
		lines := []string{
			`{"TimeGenerated":"2026-11-20T10:01:00Z","UserPrincipalName":"alice@contoso.com","IPAddress":"203.0.113.7"}` + "\n",
			`{"TimeGenerated":"2026-11-20T10:02:00Z","UserPrincipalName":"bob@contoso.com","IPAddress":"198.51.100.4"}` + "\n",
			`{"TimeGenerated":"2026-11-20T10:03:00Z","UserPrincipalName":"alice@contoso.com","IPAddress":"192.0.2.9"}` + "\n",
		}
		var all string
		var prev store.Properties
		for i, line := range lines {
			p, err := a.Append(ctx, c, exportName, []byte(line))
			if err != nil {
				t.Fatal(err)
			}
			all += line
			if p.Size != int64(len(all)) || p.ETag == prev.ETag {
				t.Errorf("append %d: %+v, want size %d and a new ETag", i, p, len(all))
			}
			st, err := s.Stat(ctx, c, exportName)
			if err != nil || st.Size != p.Size || st.ETag != p.ETag {
				t.Errorf("Stat after append %d = %+v, %v; want %+v", i, st, err, p)
			}
			if i > 0 {
				// A reader pinned to the previous length must notice growth.
				if _, err := s.ReadAt(ctx, c, exportName, make([]byte, 10), 0, prev.ETag); !errors.Is(err, store.ErrConditionNotMet) {
					t.Errorf("ReadAt with pre-append ETag = %v, want ErrConditionNotMet", err)
				}
			}
			prev = p
		}
		data, _, err := s.Read(ctx, c, exportName)
		if err != nil || string(data) != all {
			t.Errorf("Read = %q, %v; want %q", data, err, all)
		}
		tail := make([]byte, 200)
		off := int64(len(lines[0]) + len(lines[1]))
		n, err := s.ReadAt(ctx, c, exportName, tail, off, prev.ETag)
		if string(tail[:n]) != lines[2] || err != io.EOF {
			t.Errorf("ReadAt of the last line = %q, %v", tail[:n], err)
		}
		var listed []store.Properties
		s.List(ctx, c, "WorkspaceResourceId=", func(p store.Properties) error { listed = append(listed, p); return nil })
		if len(listed) != 1 || listed[0].Size != int64(len(all)) {
			t.Errorf("List = %+v, want one blob of %d bytes", listed, len(all))
		}
	})
}

func TestBadNames(t *testing.T) {
	names := []struct{ name, want string }{
		{"", "empty"},
		{"/abs/path.json", "start with '/'"},
		{"a/../../etc/passwd", `".."`},
		{"..", `".."`},
		{"a/./b", `"."`},
		{"a//b", "empty path segment"},
		{"dir/", "empty path segment"},
		{`a\b`, "backslash"},
		{"a\x00b", "NUL"},
	}
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		for _, tc := range names {
			_, err := s.Write(ctx, c, tc.name, []byte("x"), store.Condition{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, store.ErrNotExist) {
				t.Errorf("Write(%q) = %v, want an error about %s", tc.name, err, tc.want)
			}
			if _, err := s.Stat(ctx, c, tc.name); err == nil || errors.Is(err, store.ErrNotExist) {
				t.Errorf("Stat(%q) = %v, want a bad-name error", tc.name, err)
			}
		}
	})
}

func TestReaderAt(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store, c string) {
		ctx := context.Background()
		data := make([]byte, 3<<20+12345)
		rand.NewChaCha8([32]byte{1, 2, 3}).Read(data)
		p, err := s.Write(ctx, c, "exports/big.parquet", data, store.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		r := store.NewReaderAt(ctx, s, p)
		size := int64(len(data))
		const bs = 512 << 10 // blocks are counted from the end
		reads := []struct {
			off     int64
			n       int
			wantErr error
		}{
			{size - 8, 8, nil},                    // parquet footer length + magic: tail block
			{size - 5000, 4992, nil},              // footer: same block, no request
			{0, 4, nil},                           // magic: the short first block
			{100, 2 << 20, nil},                   // a large column chunk: direct
			{size - 4*bs - 10, 20, nil},           // spans two blocks
			{size - 3, 10, io.EOF},                // short at the end, cached
			{size, 1, io.EOF},                     // at the end: no request
			{0, 16, nil},                          // cached
			{size - 1<<20 - 100, 2 << 20, io.EOF}, // large, running past the end: direct
			{size - 10000, 1000, nil},             // tail block, cached
			{size - bs - 100, 200, nil},           // tail block and the one before: one more
		}
		for _, rd := range reads {
			buf := make([]byte, rd.n)
			n, err := r.ReadAt(buf, rd.off)
			end := min(size, rd.off+int64(rd.n))
			if err != rd.wantErr || !bytes.Equal(buf[:n], data[rd.off:end]) {
				t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes, %v", rd.n, rd.off, n, err, end-rd.off, rd.wantErr)
			}
		}
		// Tail, first, two for the span, two direct, one before the tail.
		if got := r.Requests(); got != 7 {
			t.Errorf("Requests = %d, want 7", got)
		}
		// The short rest after a direct read is fetched as it is, not as a block.
		fetched := r.BytesFetched()
		rest := make([]byte, 5000)
		if n, err := r.ReadAt(rest, 100+2<<20); err != nil || !bytes.Equal(rest[:n], data[100+2<<20:100+2<<20+5000]) {
			t.Errorf("ReadAt after a direct read = %d, %v", n, err)
		}
		if got, bytes := r.Requests(), r.BytesFetched()-fetched; got != 8 || bytes != 5000 {
			t.Errorf("the rest after a direct read: %d requests, %d bytes fetched; want 8, 5000", got, bytes)
		}
		// Concurrent readers, as a Parquet reader's parallel column reads.
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				sec := io.NewSectionReader(r, int64(g)*(1<<19), 1<<19)
				got, err := io.ReadAll(sec)
				if err != nil || !bytes.Equal(got, data[g*(1<<19):(g+1)*(1<<19)]) {
					t.Errorf("section %d: %d bytes, %v", g, len(got), err)
				}
			})
		}
		wg.Wait()
		// Replacing the blob makes uncached reads fail rather than mix versions.
		if _, err := s.Write(ctx, c, "exports/big.parquet", []byte("new"), store.Condition{}); err != nil {
			t.Fatal(err)
		}
		fresh := store.NewReaderAt(ctx, s, p)
		if _, err := fresh.ReadAt(make([]byte, 10), 2<<20); !errors.Is(err, store.ErrConditionNotMet) {
			t.Errorf("read of a replaced blob = %v, want ErrConditionNotMet", err)
		}
	})
}
