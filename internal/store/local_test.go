package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

const helperEnv = "TOKENPIVOT_STORE_COUNTER_DIR"

// counterChild is the child side of TestLocalCrossProcess (see TestMain):
// run in another process, it increments the shared counter.
func counterChild(dir string) int {
	s, err := store.NewLocal(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range 4 * 20 {
		if _, err := increment(context.Background(), s, "state", "counter"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func incrementMany(t *testing.T, s store.Store, workers, each int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := increment(context.Background(), s, "state", "counter"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLocalCrossProcess checks that conditional writes hold between
// processes (flock), not only between goroutines.
func TestLocalCrossProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.EnsureContainer(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, "state", "counter", []byte("0"), store.Condition{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
	const children = 2
	var wg sync.WaitGroup
	for range children {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("child: %v\n%s", err, out)
			}
		})
	}
	incrementMany(t, s, 4, 20)
	wg.Wait()
	data, _, err := s.Read(ctx, "state", "counter")
	if want := strconv.Itoa((children + 1) * 4 * 20); err != nil || string(data) != want {
		t.Errorf("counter = %q, %v; want %s", data, err, want)
	}
}

func TestLocalLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// An export folder as a user copies it from the storage account.
	const rel = "am-signinlogs/WorkspaceResourceId=/subscriptions/s1/y=2026/m=11/d=20/h=10/m=00/PT05M.json"
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"Id":"1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crashed writer must stay invisible.
	os.WriteFile(filepath.Join(filepath.Dir(path), ".tokenpivot-tmp-123"), []byte("partial"), 0o600)
	name := strings.TrimPrefix(rel, "am-signinlogs/")
	var got []string
	if err := s.List(ctx, "am-signinlogs", "", func(p store.Properties) error { got = append(got, p.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != name {
		t.Errorf("List = %q, want [%q]", got, name)
	}
	if u := s.URL("am-signinlogs", name); u != path {
		t.Errorf("URL = %s, want %s", u, path)
	}
	p1, err := s.Stat(ctx, "am-signinlogs", name)
	if err != nil {
		t.Fatal(err)
	}
	// Another program appending in place changes the ETag too.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"Id":"2"}` + "\n")
	f.Close()
	p2, err := s.Stat(ctx, "am-signinlogs", name)
	if err != nil || p2.ETag == p1.ETag || p2.Size != 22 {
		t.Errorf("after an in-place append: %+v, %v (before %+v)", p2, err, p1)
	}

	if _, err := s.Write(ctx, "am-signinlogs", "a/.tokenpivot-tmp-1", []byte("x"), store.Condition{}); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Write of a reserved name = %v, want an error saying so", err)
	}
	// A blob where a folder of blobs is cannot exist locally.
	_, err = s.Write(ctx, "am-signinlogs", "WorkspaceResourceId=", []byte("x"), store.Condition{})
	if err == nil || !strings.Contains(err.Error(), "folder") {
		t.Errorf("Write over a folder = %v, want an error about the folder", err)
	}
}

func TestNewLocalErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, root := range []string{filepath.Join(dir, "absent"), file} {
		if _, err := store.NewLocal(root); err == nil || !strings.Contains(err.Error(), root) {
			t.Errorf("NewLocal(%s) = %v, want an error naming it", root, err)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		spec    string
		want    string // type of the store, or "" for an error
		wantErr string
	}{
		{spec: dir, want: "*store.Local"},
		{spec: "file://" + dir, want: "*store.Local"},
		{spec: "UseDevelopmentStorage=true", want: "*store.Azure"},
		{spec: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;", want: "*store.Azure"},
		{spec: "", wantErr: "no storage given"},
		{spec: "http://127.0.0.1:10000/devstoreaccount1", wantErr: "connection string"},
		{spec: "https://acct.blob.core.windows.net/container", wantErr: "without a container"},
		{spec: "file://host/dir", wantErr: "file:///"},
		{spec: filepath.Join(dir, "absent"), wantErr: "absent"},
	}
	for _, tc := range tests {
		s, err := store.Open(context.Background(), tc.spec)
		got := ""
		if s != nil {
			got = typeName(s)
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open(%q) = %s, %v; want an error about %q", tc.spec, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Open(%q) = %s, %v; want %s", tc.spec, got, err, tc.want)
		}
	}
	s, err := store.Open(context.Background(), "UseDevelopmentStorage=true")
	if err != nil {
		t.Fatal(err)
	}
	a := s.(*store.Azure)
	if got := a.ServiceURL(); got != "http://127.0.0.1:10000/devstoreaccount1" {
		t.Errorf("ServiceURL = %s", got)
	}
	if got, want := a.URL("am-signinlogs", "WorkspaceResourceId=/subscriptions/s1/a b/ü.json"),
		"http://127.0.0.1:10000/devstoreaccount1/am-signinlogs/WorkspaceResourceId=/subscriptions/s1/a%20b/%C3%BC.json"; got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
	// A SAS must never leak into URLs, which end up in logs and alerts.
	sas, err := store.NewAzureFromConnectionString("BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=SECRET")
	if err != nil {
		t.Fatal(err)
	}
	if u := sas.URL("c1c", "b"); strings.Contains(u, "SECRET") || u != "https://acct.blob.core.windows.net/c1c/b" {
		t.Errorf("URL with a SAS connection string = %s", u)
	}
}

func typeName(s store.Store) string {
	switch s.(type) {
	case *store.Local:
		return "*store.Local"
	case *store.Azure:
		return "*store.Azure"
	}
	return "other"
}

// A cancelled context stops every operation before it touches the disk, so
// SIGTERM during a run ends it promptly.
func TestLocalHonoursCancellation(t *testing.T) {
	s, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := s.EnsureContainer(bg, "tokenpivot-test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(bg, "tokenpivot-test", "a.json", []byte("{}"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	ops := map[string]func() error{
		"Stat": func() error { _, err := s.Stat(ctx, "tokenpivot-test", "a.json"); return err },
		"Read": func() error { _, _, err := s.Read(ctx, "tokenpivot-test", "a.json"); return err },
		"ReadAt": func() error {
			_, err := s.ReadAt(ctx, "tokenpivot-test", "a.json", make([]byte, 1), 0, "")
			return err
		},
		"Write": func() error {
			_, err := s.Write(ctx, "tokenpivot-test", "b.json", []byte("{}"), store.Condition{})
			return err
		},
		"Append": func() error { _, err := s.Append(ctx, "tokenpivot-test", "c.json", []byte("x")); return err },
		"Delete": func() error { return s.Delete(ctx, "tokenpivot-test", "a.json", store.Condition{}) },
		"List": func() error {
			return s.List(ctx, "tokenpivot-test", "", func(store.Properties) error { return nil })
		},
		"EnsureContainer": func() error { return s.EnsureContainer(ctx, "tokenpivot-other") },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	if _, err := s.Stat(bg, "tokenpivot-test", "b.json"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("a cancelled Write still wrote: %v", err)
	}
	if _, err := s.Stat(bg, "tokenpivot-test", "a.json"); err != nil {
		t.Errorf("a cancelled Delete still deleted: %v", err)
	}
}
