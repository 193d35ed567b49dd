package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// An extract is Parquet with the export's own column names, so signin.Scan
// reads it like any export (and fast). TimeGenerated keeps nanoseconds:
// the window bounds are exact to KQL's 100 ns ticks.
//
// It holds only what the join and the result rows read of that table
// (detect.Pair): the interactive side's time, user, IP, location and Id;
// the non-interactive side's also AppDisplayName, CorrelationId and
// UniqueTokenIdentifier. The table's required columns (signin.RequiredColumns)
// are written too, so the extract is an export signin.Scan accepts: the
// rows are candidates, so these hold one or two values each and cost a few
// bytes a row group as dictionaries. Extracts written before, with all 11
// columns, read the same.
var extractSchemas = [...]*arrow.Schema{
	signin.Interactive: arrow.NewSchema([]arrow.Field{
		{Name: signin.ColTimeGenerated, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: signin.ColUserPrincipalName, Type: arrow.BinaryTypes.String},
		{Name: signin.ColIPAddress, Type: arrow.BinaryTypes.String},
		{Name: signin.ColLocation, Type: arrow.BinaryTypes.String},
		{Name: signin.ColResultType, Type: arrow.BinaryTypes.String},
		{Name: signin.ColAuthenticationRequirement, Type: arrow.BinaryTypes.String},
		{Name: signin.ColConditionalAccessStatus, Type: arrow.BinaryTypes.String},
		{Name: signin.ColId, Type: arrow.BinaryTypes.String},
	}, nil),
	signin.NonInteractive: arrow.NewSchema([]arrow.Field{
		{Name: signin.ColTimeGenerated, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: signin.ColUserPrincipalName, Type: arrow.BinaryTypes.String},
		{Name: signin.ColIPAddress, Type: arrow.BinaryTypes.String},
		{Name: signin.ColLocation, Type: arrow.BinaryTypes.String},
		{Name: signin.ColResultType, Type: arrow.BinaryTypes.String},
		{Name: signin.ColAppDisplayName, Type: arrow.BinaryTypes.String},
		{Name: signin.ColCorrelationId, Type: arrow.BinaryTypes.String},
		{Name: signin.ColUniqueTokenIdentifier, Type: arrow.BinaryTypes.String},
		{Name: signin.ColId, Type: arrow.BinaryTypes.String},
	}, nil),
}

// extractValues returns r's values of the string columns of t's extract
// schema, in order, appended to dst.
func extractValues(dst []string, t signin.Table, r *signin.Record) []string {
	if t == signin.Interactive {
		return append(dst, r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType,
			r.AuthenticationRequirement, r.ConditionalAccessStatus, r.Id)
	}
	return append(dst, r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType,
		r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier, r.Id)
}

// extractBatchRows bounds the rows buffered before they are encoded.
const extractBatchRows = 8 << 10

// extractProps: zstd at its fastest level (the extract is written once per
// blob and read a few times; a higher level costs more CPU than it saves
// in bytes of random identifiers).
var extractProps = parquet.NewWriterProperties(
	parquet.WithCompression(compress.Codecs.Zstd),
	parquet.WithCompressionLevel(1),
	parquet.WithMaxRowGroupLength(extractBatchRows),
	parquet.WithCreatedBy("tokenpivot pipeline"),
	// Unique per row: dictionaries would only cost.
	parquet.WithDictionaryFor(signin.ColCorrelationId, false),
	parquet.WithDictionaryFor(signin.ColUniqueTokenIdentifier, false),
	parquet.WithDictionaryFor(signin.ColId, false),
)

// extractWriter encodes one hour's candidates of one blob, and keeps them
// (recs) for this blob's own join, so the extract is never read back here.
type extractWriter struct {
	t    signin.Table
	buf  bytes.Buffer
	rb   *array.RecordBuilder
	fw   *pqarrow.FileWriter
	rows int
	n    int // rows in rb
	vals []string
	// recs are the candidates in chunks of extractBatchRows: no regrowth
	// copies of a large slice.
	recs [][]signin.Record
}

func newExtractWriter(t signin.Table) (*extractWriter, error) {
	schema := extractSchemas[t]
	w := &extractWriter{t: t, rb: array.NewRecordBuilder(memory.DefaultAllocator, schema)}
	fw, err := pqarrow.NewFileWriter(schema, &w.buf, extractProps, pqarrow.DefaultWriterProps())
	if err != nil {
		w.rb.Release()
		return nil, fmt.Errorf("extract writer: %w", err)
	}
	w.fw = fw
	return w, nil
}

func (w *extractWriter) add(r *signin.Record) error {
	w.rb.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.TimeGenerated.UnixNano()))
	w.vals = extractValues(w.vals[:0], w.t, r)
	for i, v := range w.vals {
		w.rb.Field(i + 1).(*array.StringBuilder).Append(v)
	}
	if len(w.recs) == 0 || len(w.recs[len(w.recs)-1]) == extractBatchRows {
		w.recs = append(w.recs, make([]signin.Record, 0, extractBatchRows))
	}
	last := &w.recs[len(w.recs)-1]
	*last = append(*last, *r)
	w.rows++
	if w.n++; w.n >= extractBatchRows {
		return w.flush()
	}
	return nil
}

func (w *extractWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.n = 0
	return w.fw.Write(rec)
}

// close finishes the file; bytes() is then the extract.
func (w *extractWriter) close() error {
	defer w.rb.Release()
	if err := w.flush(); err != nil {
		return err
	}
	return w.fw.Close()
}

func (w *extractWriter) bytes() []byte { return w.buf.Bytes() }

// published drops the encoded bytes once they are in the state container:
// the join reads recs.
func (w *extractWriter) published() { w.buf = bytes.Buffer{} }

// Extracts live in the state container at
// candidates/<table>/<yyyy>/<MM>/<dd>/<HH>/<container>/<blob>/g<gen>-<from>-<to>.parquet:
// partitioned by event hour, and named after the export blob, its
// generation (rewrites seen) and the byte range read, so a redelivery
// rewrites the same extract, a grown blob adds one, and an extract that
// cannot be read tells which blob to redo. A name too long for a blob falls
// back to a hash, which is still unique but names no source.
func extractPrefix(t signin.Table, hour time.Time) string {
	return "candidates/" + t.Short() + "/" + hour.UTC().Format("2006/01/02/15") + "/"
}

const extractSuffix = ".parquet"

func extractName(t signin.Table, hour time.Time, w Work, gen int, from, to int64) string {
	name := fmt.Sprintf("%s%s/%s/g%d-%d-%d%s", extractPrefix(t, hour), w.Container, w.Name, gen, from, to, extractSuffix)
	if len(name) <= maxBlobName {
		return name
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d\x00%d", w.Container, w.Name, gen, from, to))
	return extractPrefix(t, hour) + "hashed/" + hex.EncodeToString(sum[:16]) + extractSuffix
}

const maxBlobName = 1024

// extractSource returns the export blob an extract was read from, if its
// name says.
func extractSource(name string) (Work, bool) {
	parts := strings.Split(name, "/")
	// candidates, table, yyyy, MM, dd, HH, container, blob..., range
	if len(parts) < 9 || parts[0] != "candidates" || parts[6] == "hashed" {
		return Work{}, false
	}
	last := parts[len(parts)-1]
	if !strings.HasPrefix(last, "g") || !strings.HasSuffix(last, extractSuffix) {
		return Work{}, false
	}
	return Work{Container: parts[6], Name: strings.Join(parts[7:len(parts)-1], "/")}, true
}
