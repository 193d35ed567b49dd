package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// resultWriter returns the writer for a --format value.
func resultWriter(format string) (func(io.Writer, []detect.Result) error, error) {
	switch format {
	case "jsonl":
		return alert.WriteJSONL, nil
	case "csv":
		return writeCSV, nil
	case "table":
		return writeTable, nil
	}
	return nil, usagef("--format %q: want jsonl, csv or table", format)
}

// resultFields renders a row's 11 columns as text, in column order.
func resultFields(r detect.Result) []string {
	return []string{
		r.NISignInTime.UTC().Format(time.RFC3339Nano), r.InteractiveTime.UTC().Format(time.RFC3339Nano),
		r.UserPrincipalName, r.AppDisplayName, r.NIIPAddress, r.NICountry, r.InteractiveIP,
		r.InteractiveCountry, r.CorrelationId, r.UniqueTokenIdentifier, alert.FormatTimespan(r.TimeSinceInteractive),
	}
}

func writeCSV(w io.Writer, rows []detect.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(detect.Columns); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(resultFields(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeTable(w io.Writer, rows []detect.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tINTERACTIVE\tFROM\tNON-INTERACTIVE\tFROM\tAFTER\tAPP")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s\t%s (%s)\t%s\t%s\n", r.UserPrincipalName,
			r.InteractiveTime.UTC().Format("2006-01-02 15:04:05"), r.InteractiveIP, r.InteractiveCountry,
			r.NISignInTime.UTC().Format("2006-01-02 15:04:05"), r.NIIPAddress, r.NICountry,
			alert.FormatTimespan(r.TimeSinceInteractive), r.AppDisplayName)
	}
	fmt.Fprintf(tw, "%d result rows\n", len(rows))
	return tw.Flush()
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
