package signin

import (
	"errors"
	"fmt"
	"strings"
)

// FormatError reports export content that can never be read as the table:
// not Parquet/JSON Lines, truncated, a missing required column, a column of a
// type that can never be read, or no row readable. Retrying does not help;
// callers record it and move on. Stats.FirstSkipped uses it to name one
// unreadable row of a file that was otherwise read.
type FormatError struct {
	File   string // file path or blob name
	Column string // "" when the problem is not about one column
	Row    int64  // 1-based row or line number, 0 when unknown
	Err    error
}

func (e *FormatError) Error() string {
	msg := e.File
	if e.Column != "" {
		msg += ": column " + e.Column
	}
	if e.Row > 0 {
		msg += fmt.Sprintf(": row %d", e.Row)
	}
	return msg + ": " + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// IsFormatError reports whether err is (or wraps) a *FormatError.
func IsFormatError(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

// Stats tells what a Scan read.
type Stats struct {
	Rows int64 // records passed to the callback (after Options.Keep)
	Read int64 // records read from the file, before Keep
	// Consumed is the number of bytes of r that were read up to and including
	// the last complete record, where a later Scan resumes. For JSON Lines
	// with Final false it stops at the last newline, unless the text after
	// it is one complete JSON object (whitespace around it allowed): that
	// tail is read as a record and Consumed is size. (A complete object can
	// only be followed by whitespace, so the tail cannot be a partial
	// append.) For Parquet, gzip and Final it is size.
	Consumed int64
	// SkippedRows counts rows that could not be read (a required column
	// with a value of no clear meaning) and were left out, before Keep and
	// not counted in Read; FirstSkipped names the first (file, column, row).
	// A file whose every row is skipped is rejected with FirstSkipped.
	SkippedRows  int64
	FirstSkipped *FormatError
	// Format is what the content was ("" for an empty file).
	Format Format
	// Form is the shape of a JSON Lines file's records, told from the
	// first: LogAnalyticsForm, or ResourceLogForm for a diagnostic-settings
	// archive (diagnostic.go); "" for Parquet and files without records.
	Form Form
	// BlankedCells counts values of optional columns that could not be read
	// and read as "" (the row is kept); FirstBlanked names the first.
	BlankedCells int64
	FirstBlanked *FormatError
	// TimeFallbacks counts resource-log records whose time could not be
	// read and whose properties.createdDateTime was used instead (the row is
	// kept); FirstTimeFallback names the first.
	TimeFallbacks     int64
	FirstTimeFallback *FormatError
}

// Options tune a Scan. The zero value reads every row.
type Options struct {
	// Name names the file in errors (a path, or container/blob).
	Name string
	// Table is the table the file exports. It is the zero value
	// Interactive unless set: a caller reading non-interactive sign-ins
	// says NonInteractive.
	Table Table
	// Keep, when set, is called for each row; rows for which it returns false
	// are dropped before reaching the callback. Readers may call it with only
	// the filter columns filled (TimeGenerated, UserPrincipalName, ResultType,
	// AuthenticationRequirement, ConditionalAccessStatus, IPAddress,
	// Location) and
	// decode the rest only for kept rows. The record is valid during the
	// call only. Keep is called from one goroutine at a time, never at the
	// same time as fn, but it may run ahead: rows can be offered to Keep
	// before fn has received the earlier kept rows. Rows skipped as
	// unreadable (Stats.SkippedRows) never reach Keep.
	Keep func(*Record) bool
	// BatchSize caps the records per callback (0: 8192). Parquet is decoded
	// one row group at a time, at most 65536 rows at once.
	BatchSize int
	// Parallelism is the most goroutines decoding Parquet columns at once in
	// each decoding step (0: GOMAXPROCS); the steps overlap. Keep and the
	// callback still run on the calling goroutine, and batches arrive in
	// file order.
	Parallelism int
	// Final says the file is complete: for plain JSON Lines, a last line
	// without a newline is a record (an error if it is not valid JSON), not
	// the start of an append still being written. Leave it false for append
	// blobs that may still grow: a last line without a newline is then read
	// only when it is one complete JSON object (see Stats.Consumed).
	Final bool
	// MaxExpansion bounds the decompressed size of a gzip stream to this
	// many times its compressed size, or times 1 MiB for a smaller file (so
	// a small file with a normal ratio passes: 64 MiB at the default); past
	// it the file is rejected with a FormatError. 0: DefaultMaxExpansion.
	MaxExpansion int
	// PositionIds, when not "", gives a record without an Id the Id
	// PositionIds+<position>: the byte offset of its line in the
	// (decompressed) stream plus PositionBase for JSON Lines, the 0-based
	// row index for Parquet. Positions are the same on every read of the
	// same bytes, so a row without an Id keeps one identity (DESIGN.md 7,
	// evidence identity).
	PositionIds string
	// Extra names the precision modes' columns (of ExtraColumns) to read
	// into Record.Extra of the records passed to the callback (not of the
	// record Keep sees), each only when the file has it. Empty (exact
	// mode), nothing more is decoded and Record.Extra is nil.
	Extra []string
	// PositionBase is added to JSON Lines positions: a caller that reads a
	// grown append blob from byte from (through a SectionReader) passes
	// from, so that positions are offsets in the whole blob.
	PositionBase int64
}

// PositionIdPrefix starts every id made from Options.PositionIds (callers
// put it first), so consumers can tell a position from an exported Id.
const PositionIdPrefix = "@"

// IsPositionId reports whether id was made from a position, not exported.
func IsPositionId(id string) bool { return strings.HasPrefix(id, PositionIdPrefix) }

// DefaultMaxExpansion is Options.MaxExpansion's default: gzip JSON Lines
// exports compress about 10-20x; a bomb compresses 1000x.
const DefaultMaxExpansion = 64
