package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// resultWriter returns the writer for a --format value.
func resultWriter(format string) (func(io.Writer, []detect.Result) error, error) {
	switch format {
	case "jsonl":
		return detect.WriteJSONL, nil
	case "csv":
		return detect.WriteCSV, nil
	case "table":
		return detect.WriteTable, nil
	}
	return nil, usagef("--format %q: want jsonl, csv or table", format)
}

// progress shows a byte progress bar on stderr when it is a terminal, and
// nothing otherwise (logs and CI stay clean).
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, what string, total int64) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{bar: progressbar.DefaultBytes(total, what)}
}

// newCountProgress is newProgress for a count of items (rows, blobs).
func newCountProgress(stderr io.Writer, what string, total int64) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{bar: progressbar.Default(total, what)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) Add(n int64) {
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
