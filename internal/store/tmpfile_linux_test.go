//go:build linux

package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Creates through unnamed files and through named temporary ones give the
// same blob: its content, mode 0644, ErrConditionNotMet the second time,
// and nothing left in the staging folder.
func TestCreatePaths(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		name := map[bool]string{true: "O_TMPFILE", false: "named temporary file"}[unnamed]
		t.Run(name, func(t *testing.T) {
			was := noTmpfile.Load()
			noTmpfile.Store(!unnamed)
			t.Cleanup(func() { noTmpfile.Store(was) })
			ctx := context.Background()
			root := t.TempDir()
			l, err := NewLocal(root)
			if err != nil {
				t.Fatal(err)
			}
			const c = "tokenpivot-alerts"
			if err := l.EnsureContainer(ctx, c); err != nil {
				t.Fatal(err)
			}
			blob := "2026/11/20/alert.json"
			if _, err := l.Write(ctx, c, blob, []byte(`{"a":1}`), Condition{IfNoneMatch: "*"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Write(ctx, c, blob, []byte(`{"a":2}`), Condition{IfNoneMatch: "*"}); !errors.Is(err, ErrConditionNotMet) {
				t.Fatalf("second create: %v, want ErrConditionNotMet", err)
			}
			p := filepath.Join(root, c, filepath.FromSlash(blob))
			data, err := os.ReadFile(p)
			if err != nil || string(data) != `{"a":1}` {
				t.Fatalf("blob = %q, %v", data, err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v, %v; want 0644", fi.Mode(), err)
			}
			left, _ := os.ReadDir(filepath.Join(root, stageDir))
			if len(left) != 0 {
				t.Errorf("%d files left in the staging folder", len(left))
			}
			if unnamed && noTmpfile.Load() {
				t.Errorf("this file system has O_TMPFILE but the store fell back")
			}
		})
	}
}
