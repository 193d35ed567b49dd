// Package rulecases gives tests the rule cases of testdata/cases: one user
// per rule clause or edge, the tuned rule that goes with them, and the
// batch rule over any split of them into export blobs (the oracle the
// pipeline and the function are held to). It is test support: no command
// imports it.
package rulecases

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Rows is how many result rows the cases define (testdata/cases/expected.jsonl).
const Rows = 12

// Dir returns testdata/cases, found from the working directory up to the
// module root, so any package's tests can use it.
func Dir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testdata", "cases"), nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("rulecases: no go.mod above the working directory")
		}
		d = parent
	}
}

// File returns one file of testdata/cases.
func File(name string) ([]byte, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, name))
}

// Rule is the cases' tuned rule (testdata/cases/rule.yaml: the bundled rule
// with the cases' safe IP and networks).
func Rule() (*rule.Rule, error) {
	data, err := File("rule.yaml")
	if err != nil {
		return nil, err
	}
	return rule.Load("testdata/cases/rule.yaml", data)
}

// SafeList is the safe list of the cases' rule.
func SafeList() (*rule.SafeList, error) {
	r, err := Rule()
	if err != nil {
		return nil, err
	}
	return r.SafeList(nil, nil, rule.SafeListOptions{})
}

// Lines returns the JSON Lines records of table t, each ending in a newline.
func Lines(t signin.Table) ([][]byte, error) {
	name := "interactive.jsonl"
	if t == signin.NonInteractive {
		name = "noninteractive.jsonl"
	}
	data, err := File(name)
	if err != nil {
		return nil, err
	}
	lines := bytes.SplitAfter(bytes.TrimSpace(data), []byte("\n"))
	lines[len(lines)-1] = append(lines[len(lines)-1], '\n')
	return lines, nil
}

// Blob is one export blob of a split of the cases.
type Blob struct {
	Table signin.Table
	Name  string
	Data  []byte
}

// Split cuts each table's records into blobs of per lines, named by name
// (given the table and the index of the blob's first line), so that pairs
// cross blobs and repeated records land in different blobs.
func Split(per int, name func(t signin.Table, first int) string) ([]Blob, error) {
	var out []Blob
	for _, t := range []signin.Table{signin.Interactive, signin.NonInteractive} {
		lines, err := Lines(t)
		if err != nil {
			return nil, err
		}
		for k := 0; k < len(lines); k += per {
			out = append(out, Blob{t, name(t, k), bytes.Join(lines[k:min(k+per, len(lines))], nil)})
		}
	}
	return out, nil
}

// Blobs splits the cases into blobs of per lines each (Split), named as an
// export job names its files, with '=' and '/' in the names and a space:
// the split the pipeline's and the function's tests share.
func Blobs(per int) ([]Blob, error) {
	return Split(per, func(_ signin.Table, first int) string {
		return fmt.Sprintf("WorkspaceResourceId=/subscriptions/5f0c7a43/resourcegroups/soc/providers/microsoft.operationalinsights/workspaces/sentinel/timestamp=2026-11-20T10/part %02d.json", first)
	})
}

// Oracle is the batch rule (detect.Run, no --now) over every row of blobs.
func Oracle(blobs []Blob, safe *rule.SafeList) ([]detect.Result, error) {
	var I, N []signin.Record
	for _, b := range blobs {
		dst := &I
		if b.Table == signin.NonInteractive {
			dst = &N
		}
		_, err := signin.Scan(context.Background(), bytes.NewReader(b.Data), int64(len(b.Data)), signin.Options{Name: b.Name, Table: b.Table, Final: true}, func(rs []signin.Record) error {
			*dst = append(*dst, rs...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return detect.Run(I, N, detect.Filter{Safe: safe}), nil
}
