package pipeline

import (
	"bytes"
	"fmt"

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
var extractSchema = arrow.NewSchema([]arrow.Field{
	{Name: signin.ColTimeGenerated, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
	{Name: signin.ColUserPrincipalName, Type: arrow.BinaryTypes.String},
	{Name: signin.ColIPAddress, Type: arrow.BinaryTypes.String},
	{Name: signin.ColLocation, Type: arrow.BinaryTypes.String},
	{Name: signin.ColResultType, Type: arrow.BinaryTypes.String},
	{Name: signin.ColAuthenticationRequirement, Type: arrow.BinaryTypes.String},
	{Name: signin.ColConditionalAccessStatus, Type: arrow.BinaryTypes.String},
	{Name: signin.ColAppDisplayName, Type: arrow.BinaryTypes.String},
	{Name: signin.ColCorrelationId, Type: arrow.BinaryTypes.String},
	{Name: signin.ColUniqueTokenIdentifier, Type: arrow.BinaryTypes.String},
	{Name: signin.ColId, Type: arrow.BinaryTypes.String},
}, nil)

// extractBatchRows bounds the rows buffered before they are encoded.
const extractBatchRows = 8 << 10

var extractProps = parquet.NewWriterProperties(
	parquet.WithCompression(compress.Codecs.Zstd),
	parquet.WithMaxRowGroupLength(extractBatchRows),
	parquet.WithCreatedBy("tokenpivot pipeline"),
	// Unique per row: dictionaries would only cost.
	parquet.WithDictionaryFor(signin.ColCorrelationId, false),
	parquet.WithDictionaryFor(signin.ColUniqueTokenIdentifier, false),
	parquet.WithDictionaryFor(signin.ColId, false),
)

// extractWriter encodes one hour's candidates of one blob.
type extractWriter struct {
	buf  bytes.Buffer
	rb   *array.RecordBuilder
	fw   *pqarrow.FileWriter
	rows int
	n    int // rows in rb
}

func newExtractWriter() (*extractWriter, error) {
	w := &extractWriter{rb: array.NewRecordBuilder(memory.DefaultAllocator, extractSchema)}
	fw, err := pqarrow.NewFileWriter(extractSchema, &w.buf, extractProps, pqarrow.DefaultWriterProps())
	if err != nil {
		w.rb.Release()
		return nil, fmt.Errorf("extract writer: %w", err)
	}
	w.fw = fw
	return w, nil
}

func (w *extractWriter) add(r *signin.Record) error {
	w.rb.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.TimeGenerated.UnixNano()))
	for i, v := range []string{r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType,
		r.AuthenticationRequirement, r.ConditionalAccessStatus, r.AppDisplayName,
		r.CorrelationId, r.UniqueTokenIdentifier, r.Id} {
		w.rb.Field(i + 1).(*array.StringBuilder).Append(v)
	}
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
