package gen_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/gen"
)

func TestZZDump(t *testing.T) {
	dir := t.TempDir()
	o := gen.NewOptions(dir)
	o.Users, o.Hours = 300, 24
	s, err := gen.Run(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.WriteText(os.Stdout)
	for _, f := range s.Files[:1] {
		pf := readParquet(t, filepath.Join(dir, f.Path))
		for _, fl := range pf.schema.Fields() {
			fmt.Printf("%-28s %v\n", fl.Name, pf.cols[fl.Name][3])
		}
	}
	for _, f := range s.Files {
		if f.Table == 1 {
			pf := readParquet(t, filepath.Join(dir, f.Path))
			for _, fl := range pf.schema.Fields() {
				fmt.Printf("%-28s %v\n", fl.Name, pf.cols[fl.Name][5])
			}
			break
		}
	}
	fmt.Println(gen.ExpectedRows(o), s.Interactive.Rows+s.NonInteractive.Rows)
}
