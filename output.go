package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// resultWriter returns the writer for a --format value; wide chooses the
// table with every column over the one that fits a terminal.
func resultWriter(format string, wide bool) (func(io.Writer, []detect.Result) error, error) {
	switch format {
	case "jsonl":
		return detect.WriteJSONL, nil
	case "csv":
		return detect.WriteCSV, nil
	case "table":
		if wide {
			return detect.WriteTable, nil
		}
		return detect.WriteTableNarrow, nil
	}
	return nil, usagef("--format %q: want jsonl, csv or table", format)
}

// progress shows a progress bar on stderr when it is a terminal, and nothing
// otherwise (pipes, logs and CI stay clean).
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, what string, total int64) *progress {
	return newBar(stderr, what, total, progressbar.OptionShowBytes(true))
}

// newCountProgress is newProgress for a count of items (rows, blobs).
func newCountProgress(stderr io.Writer, what string, total int64) *progress {
	return newBar(stderr, what, total, progressbar.OptionShowIts())
}

// newBar is progressbar's Default(Bytes) drawn on stderr (through its
// redaction, like everything else there) rather than on os.Stderr.
func newBar(stderr io.Writer, what string, total int64, opts ...progressbar.Option) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	opts = append(opts,
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetWidth(10),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionThrottle(65*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprint(stderr, "\n") }),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	)
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

// isTerminal reports whether w is a terminal, looking through writers that
// wrap another (the redaction every command's stderr goes through).
func isTerminal(w io.Writer) bool {
	for {
		switch v := w.(type) {
		case *os.File:
			return term.IsTerminal(int(v.Fd()))
		case interface{ Unwrap() io.Writer }:
			w = v.Unwrap()
		default:
			return false
		}
	}
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
