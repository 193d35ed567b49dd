// Package signin holds the sign-in record the rule reads and the readers that
// stream it out of the two tables' exports (Parquet and JSON Lines).
//
// Scan is the entry point: it tells the format from the content and hands the
// file to one of two readers, each a struct whose methods are the steps of one
// scan, sharing Record (record.go), Options, Stats and FormatError (scan.go)
// and the column rules (columns.go):
//
//   - jsonlScan (jsonl.go) reads a line at a time (readLine), leaves the
//     partial last line of a growing append blob for the next read (partial),
//     decodes each line's cells (record, cells) and batches the records.
//     Its first record tells the file's form (Stats.Form): Log Analytics'
//     columns, or the Azure resource-log schema of an Entra ID
//     diagnostic-settings archive, whose fields diagnostic.go maps onto
//     the same columns (parseResourceLog).
//   - pqScan (parquet.go) is a pipeline over slices of the row groups
//     (pqSlicer): the filter columns of a slice are decoded in the background
//     (pqDecoding), Keep selects its rows (selectRows), the other columns are
//     decoded for the kept rows only, and emit batches the records in file
//     order. The slices in flight keep their values in buffer rings (pqRing).
//     The columns wanted are found in the file's schema (pqschema.go:
//     resolveColumns, each a pqMeta saying how to read it). A pqReader
//     (pqpage.go) decodes one column from parquet-go's raw
//     pages (page values, definition levels, dictionary indexes), never
//     rows: a dictionary entry is converted once per column chunk, text is
//     read in place (aliasing the page, held by its ring slot, or the
//     dictionary), and emit copies each record's text into one allocation
//     of its own, so that the few records a caller keeps pin nothing else.
//     A value's Parquet type becomes the record's text or time in
//     pqconvert.go (convert, dictValue).
//
// What the reader costs, and what it bought against the Arrow reader it
// replaced: docs/performance.md, "The raw-page reader".
//
// Unreadable content is a *FormatError naming the file, column and row; one
// bad cell costs its row (a required column) or its value (an optional one),
// not the file (Stats.SkippedRows, Stats.BlankedCells).
package signin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Scan streams the records of one export file of table opts.Table to fn, a
// batch at a time. The format is detected from the content (Parquet "PAR1",
// gzip 1f 8b, else JSON Lines), not the name. opts.Name is used in errors
// only. The batch slice is reused after fn returns.
//
// Errors: a *FormatError when the content can never be read (see FormatError);
// ctx's error when cancelled; fn's error as returned; any other error (an I/O
// failure of r) is worth a retry. Batches passed to fn before an error belong
// to a failed scan and should be discarded by the caller.
//
// A zero-byte file holds no rows and is not an error, whatever its name: an
// export writer may create the blob before committing its content.
//
// Like zip.NewReader, Scan takes the file as r and its size; what it is and
// how to read it (opts.Name, opts.Table and the rest) is the options value.
func Scan(ctx context.Context, r io.ReaderAt, size int64, opts Options, fn func([]Record) error) (Stats, error) {
	name, t := opts.Name, opts.Table
	if t != Interactive && t != NonInteractive {
		return Stats{}, fmt.Errorf("signin.Scan %s: unknown table %v", name, t)
	}
	if size <= 0 {
		return Stats{}, nil
	}
	f, err := DetectFormat(r)
	if err != nil {
		return Stats{}, fmt.Errorf("signin.Scan %s: %w", name, err)
	}
	var st Stats
	switch f {
	case Parquet:
		st, err = scanParquet(ctx, name, r, size, t, opts, fn)
	case GzipJSONLines:
		st, err = scanJSONL(ctx, name, r, size, true, t, opts, fn)
	default:
		if err := notJSONLines(name, r, size); err != nil {
			return Stats{}, err
		}
		st, err = scanJSONL(ctx, name, r, size, false, t, opts, fn)
	}
	st.Format = f
	return st, err
}

// DetectFormat tells the format of a non-empty export from its first bytes,
// as Scan does: Parquet "PAR1", gzip 1f 8b, else JSON Lines. Callers that
// must know before scanning (how far a growing blob will be read: see
// CompleteEnd) ask it; the error is r's.
func DetectFormat(r io.ReaderAt) (Format, error) {
	var magic [4]byte
	n, err := r.ReadAt(magic[:], 0)
	if n < len(magic) && err != nil && err != io.EOF {
		return "", err
	}
	switch {
	case n == 4 && string(magic[:]) == parquetMagic:
		return Parquet, nil
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return GzipJSONLines, nil
	}
	return JSONLines, nil
}

// notJSONLines names the content of a file that is neither Parquet nor gzip
// and is not JSON Lines either, when it is CSV (a header line of names and
// commas): "invalid JSON" would not tell the user what they gave.
func notJSONLines(name string, r io.ReaderAt, size int64) error {
	var head [512]byte
	n, _ := r.ReadAt(head[:min(int64(len(head)), size)], 0)
	first := bytes.TrimPrefix(head[:n], []byte("\xef\xbb\xbf")) // a BOM
	if i := bytes.IndexAny(first, "\r\n"); i >= 0 {
		first = first[:i]
	}
	first = bytes.TrimSpace(first)
	if len(first) == 0 || first[0] == '{' || first[0] == '[' || !bytes.ContainsRune(first, ',') || !utf8.Valid(first) {
		return nil
	}
	for _, c := range first {
		if c < 0x20 && c != '\t' {
			return nil
		}
	}
	want := "JSON Lines (one JSON object per line) or Parquet"
	if strings.HasSuffix(strings.ToLower(name), ".parquet") {
		want = "Parquet, as its name says (no PAR1 magic at its start), or JSON Lines"
	}
	shown := string(first)
	if len(shown) > 60 {
		shown = shown[:60] + "..."
	}
	return &FormatError{File: name, Row: 1, Err: fmt.Errorf("invalid JSON: the file is CSV text (first line %q), not %s: export the tables as Parquet or JSON Lines", shown, want)}
}

// Format is an export file's format, as Scan detected it from the content.
type Format string

const (
	Parquet       Format = "parquet"
	GzipJSONLines Format = "jsonl.gz"
	// JSONLines is plain JSON Lines: the one format that grows by appends.
	JSONLines Format = "jsonl"
)
