package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// An extract is Parquet with the export's own column names, so signin.Scan
// reads it like any export (and fast). TimeGenerated is INT64
// TIMESTAMP(NANOS, UTC): the window bounds are exact to KQL's 100 ns ticks.
// The table's required columns (signin.RequiredColumns) are always written,
// so the extract is an export signin.Scan accepts: the rows are candidates,
// so ResultType (and the interactive side's two filter columns) hold one or
// two values and cost a few bytes a row group as dictionaries.
//
// Three shapes, all read by the same Scan:
//
//   - interactive: what the join and the result rows read of an interactive
//     row (detect.Pair): time, user, IP, location and Id. Interactive
//     candidates are few (a few MB an hour), and an NI blob that arrives
//     late reads them all, so they stay whole.
//   - non-interactive, full (nonInteractiveRow): also AppDisplayName,
//     CorrelationId, UniqueTokenIdentifier and Id. Written only for an
//     export that may still grow (plain JSON Lines append blobs, whose ETag
//     moves on with every append, so the version an extract was made from
//     cannot be read again), or whose name is too long to name its source.
//     Extracts written before compact ones existed have this shape.
//   - non-interactive, compact (compactRow): only the join columns. The
//     three per-row unique columns were most of the state's bytes (issue
//     12: 154 MB of 640 MB of exports an hour, and a fifth of the NI
//     step's CPU to write), yet a result row needs them only for the few NI
//     rows that pair. The extract's name records the export blob, its
//     ETag and size (compactName); an interactive blob that finds a match
//     reads the wide columns of just the matched rows from that immutable
//     export version (join.go, probeStored).
type interactiveRow struct {
	TimeGenerated             int64  `parquet:"TimeGenerated,timestamp(nanosecond:utc),delta"`
	UserPrincipalName         string `parquet:"UserPrincipalName,dict"`
	IPAddress                 string `parquet:"IPAddress,dict"`
	Location                  string `parquet:"Location,dict"`
	ResultType                string `parquet:"ResultType,dict"`
	AuthenticationRequirement string `parquet:"AuthenticationRequirement,dict"`
	ConditionalAccessStatus   string `parquet:"ConditionalAccessStatus,dict"`
	// Unique per row: a dictionary would only cost. zstd at its default
	// level, not the fastest: GUID text comes out 26% smaller (measured on
	// the realistic hour, 2.2 -> 1.65 MB for a 40k-row extract) for no
	// CPU that shows on these few rows, and every NI blob of the hours
	// reached reads the interactive extracts again.
	Id string `parquet:"Id,zstd"`
}

// interactiveWideRow is interactiveRow with the wide columns a tuned rule's
// pair predicates or added columns read of the interactive row (written only
// for such a rule: the bundled one reads none of them).
type interactiveWideRow struct {
	TimeGenerated             int64  `parquet:"TimeGenerated,timestamp(nanosecond:utc),delta"`
	UserPrincipalName         string `parquet:"UserPrincipalName,dict"`
	IPAddress                 string `parquet:"IPAddress,dict"`
	Location                  string `parquet:"Location,dict"`
	ResultType                string `parquet:"ResultType,dict"`
	AuthenticationRequirement string `parquet:"AuthenticationRequirement,dict"`
	ConditionalAccessStatus   string `parquet:"ConditionalAccessStatus,dict"`
	AppDisplayName            string `parquet:"AppDisplayName,dict"`
	CorrelationId             string `parquet:"CorrelationId,zstd"`
	UniqueTokenIdentifier     string `parquet:"UniqueTokenIdentifier,zstd"`
	Id                        string `parquet:"Id,zstd"`
}

type nonInteractiveRow struct {
	TimeGenerated         int64  `parquet:"TimeGenerated,timestamp(nanosecond:utc),delta"`
	UserPrincipalName     string `parquet:"UserPrincipalName,dict"`
	IPAddress             string `parquet:"IPAddress,dict"`
	Location              string `parquet:"Location,dict"`
	ResultType            string `parquet:"ResultType,dict"`
	AppDisplayName        string `parquet:"AppDisplayName,dict"`
	CorrelationId         string `parquet:"CorrelationId"`
	UniqueTokenIdentifier string `parquet:"UniqueTokenIdentifier"`
	Id                    string `parquet:"Id"`
}

// compactRow's user and IP are plain, not dictionary-coded: an export
// blob's 100k candidates hold ~60k users and IPs, so a dictionary is mostly
// map inserts (half the extract's CPU) for little: measured on the realistic
// hour, BenchmarkProcessHour 0.87x CPU for 15% more state (32.4 -> 37.3 MB,
// 5.8% of the exports' bytes).
type compactRow struct {
	TimeGenerated     int64  `parquet:"TimeGenerated,timestamp(nanosecond:utc),delta"`
	UserPrincipalName string `parquet:"UserPrincipalName"`
	IPAddress         string `parquet:"IPAddress"`
	Location          string `parquet:"Location,dict"`
	ResultType        string `parquet:"ResultType,dict"`
}

// extractShape says which of the row types above an extract is written as.
type extractShape int

const (
	shapeInteractive extractShape = iota
	shapeFull
	shapeCompact
	shapeInteractiveWide
)

// extractBatchRows is the size of the chunks candidates are kept in (no
// regrowth copies of a large slice) and of the batches handed to the
// Parquet writer.
const extractBatchRows = 8 << 10

// extractRowGroupRows: an export blob's hour (about 100k NI candidates)
// in one row group, so one dictionary per column (measured on the realistic
// hour: 16% smaller than 64k-row groups, with delta-coded TimeGenerated).
// Bounded, because the writer holds a row group until it is flushed;
// signin.Scan decodes at most 64k rows at once whatever the group.
const extractRowGroupRows = 256 << 10

// streamRowGroupRows is the row group of a streamed (non-interactive)
// extract: what its writer holds before a flush, per event hour. Its
// users and IPs are plain, so a smaller group costs only the dictionaries
// of Location and ResultType and a delta block start per group.
const streamRowGroupRows = 64 << 10

// TimeGenerated is DELTA_BINARY_PACKED: exports come about in time order,
// so the deltas are small, where zstd over plain int64 nanoseconds keeps
// 4-8 bytes a row.
//
// extractWriterOptions: zstd at its fastest level (an extract is written
// once per blob and read a few times; a higher level costs more CPU than it
// saves on random identifiers).
func extractWriterOptions(rowGroupRows int64) []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(extractCodec),
		parquet.MaxRowsPerRowGroup(rowGroupRows),
		parquet.CreatedBy("tokenpivot pipeline", "", ""),
	}
}

// extractCodec is zstd at its fastest level with a 1 MiB window, its
// encoders shared by every extract writer. parquet-go's zstd.Codec keeps
// the library's default 8 MiB window, for which an encoder allocates 16 MiB
// of history, one per writer: a tenth of a streamed blob's live heap, for
// pages of a few hundred KiB that a 1 MiB window covers whole.
var extractCodec compress.Codec = &smallZstd{}

type smallZstd struct {
	encoders sync.Pool
	decode   zstd.Codec // reading is parquet-go's
}

func (*smallZstd) String() string                            { return "ZSTD" }
func (*smallZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *smallZstd) Encode(dst, src []byte) ([]byte, error) {
	e, _ := c.encoders.Get().(*kzstd.Encoder)
	if e == nil {
		var err error
		e, err = kzstd.NewWriter(nil, kzstd.WithEncoderLevel(kzstd.SpeedFastest), kzstd.WithEncoderConcurrency(1),
			kzstd.WithWindowSize(1<<20), kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false))
		if err != nil {
			return nil, err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	c.encoders.Put(e)
	return out, nil
}

func (c *smallZstd) Decode(dst, src []byte) ([]byte, error) { return c.decode.Decode(dst, src) }

// extractWriter keeps one hour's candidates of one blob (recs), for this
// blob's own join (the extract is never read back here) and to encode the
// extract from when it is published.
type extractWriter struct {
	rows int
	// recs are the candidates in chunks of extractBatchRows.
	recs [][]signin.Record
}

func (w *extractWriter) add(r *signin.Record) {
	if len(w.recs) == 0 || len(w.recs[len(w.recs)-1]) == extractBatchRows {
		w.recs = append(w.recs, make([]signin.Record, 0, extractBatchRows))
	}
	last := &w.recs[len(w.recs)-1]
	*last = append(*last, *r)
	w.rows++
}

// encode returns the extract of the kept candidates in the given shape.
func (w *extractWriter) encode(shape extractShape) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	switch shape {
	case shapeInteractive:
		err = writeRows(&buf, w.recs, nil, func(r *signin.Record) interactiveRow {
			return interactiveRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
				r.ResultType, r.AuthenticationRequirement, r.ConditionalAccessStatus, r.Id}
		})
	case shapeInteractiveWide:
		err = writeRows(&buf, w.recs, nil, func(r *signin.Record) interactiveWideRow {
			return interactiveWideRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
				r.ResultType, r.AuthenticationRequirement, r.ConditionalAccessStatus, r.AppDisplayName, r.CorrelationId,
				r.UniqueTokenIdentifier, r.Id}
		})
	case shapeFull:
		err = writeRows(&buf, w.recs, nil, func(r *signin.Record) nonInteractiveRow {
			return nonInteractiveRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
				r.ResultType, r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier, r.Id}
		})
	case shapeCompact:
		// Without its Id, a row exported twice in this blob could not be
		// told from two rows if the export went and the pairs came from
		// the extract (join.go): it is written once (DESIGN.md 4.1, dedup
		// by Id). The export itself, read again, gives the same rows.
		// Exact, as detect's: the same Id with other content is another row.
		// Content is hashed only for Ids that repeat (rare): a row's first
		// sighting costs one map insert, as a dedup by Id alone did.
		seen := make(map[string]*signin.Record, w.rows)
		var keys map[signin.Key]struct{}
		dup := func(r *signin.Record) bool {
			if r.Id == "" {
				return false
			}
			first, ok := seen[r.Id]
			if !ok {
				seen[r.Id] = r // recs is not changed while it is written
				return false
			}
			if keys == nil {
				keys = make(map[signin.Key]struct{})
			}
			fk, _ := first.Key()
			keys[fk] = struct{}{}
			k, _ := r.Key()
			if _, ok := keys[k]; ok {
				return true
			}
			keys[k] = struct{}{}
			return false
		}
		err = writeRows(&buf, w.recs, dup, func(r *signin.Record) compactRow {
			return compactRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType}
		})
	}
	if err != nil {
		return nil, fmt.Errorf("extract writer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeRows writes recs but those skip returns true for (skip may be nil),
// converted by row, as one Parquet file to buf.
func writeRows[T any](buf *bytes.Buffer, recs [][]signin.Record, skip func(*signin.Record) bool, row func(*signin.Record) T) error {
	pw := parquet.NewGenericWriter[T](buf, extractWriterOptions(extractRowGroupRows)...)
	batch := make([]T, 0, extractBatchRows)
	for _, chunk := range recs {
		batch = batch[:0]
		for k := range chunk {
			if skip == nil || !skip(&chunk[k]) {
				batch = append(batch, row(&chunk[k]))
			}
		}
		if _, err := pw.Write(batch); err != nil {
			return err
		}
	}
	return pw.Close()
}

// release drops the kept candidates.
func (w *extractWriter) release() { w.recs = nil }

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

// A compact extract (non-interactive, join columns only) is named
// .../<container>/<blob>/c<gen>-<size>-<etag>.parquet: the name, which
// signin.Scan does not need to read, carries the export blob version it was
// made from (<etag> in unpadded base64url: ETags hold quotes), so the wide
// columns can be read from exactly that version. A name that does not fit
// is not made (ok false): the blob then gets a full extract.
func compactName(hour time.Time, w Work, gen int, props store.Properties) (string, bool) {
	name := fmt.Sprintf("%s%s/%s/c%d-%d-%s%s", extractPrefix(signin.NonInteractive, hour), w.Container, w.Name,
		gen, props.Size, base64.RawURLEncoding.EncodeToString([]byte(props.ETag)), extractSuffix)
	return name, len(name) <= maxBlobName
}

// compactSource returns the export blob version a compact extract was made
// from (container, name, size and ETag), if name is one.
func compactSource(name string) (store.Properties, bool) {
	src, ok := extractSource(name)
	last := name[strings.LastIndexByte(name, '/')+1:]
	if !ok || !strings.HasPrefix(last, "c") {
		return store.Properties{}, false
	}
	// c<gen>-<size>-<etag>: base64url may hold '-', so it is split off last.
	parts := strings.SplitN(strings.TrimSuffix(last[1:], extractSuffix), "-", 3)
	if len(parts) != 3 {
		return store.Properties{}, false
	}
	size, err1 := strconv.ParseInt(parts[1], 10, 64)
	etag, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if _, err := strconv.Atoi(parts[0]); err != nil || err1 != nil || err2 != nil || size <= 0 {
		return store.Properties{}, false
	}
	return store.Properties{Container: src.Container, Name: src.Name, Size: size, ETag: string(etag)}, true
}

// extractSource returns the export blob an extract was read from, if its
// name says.
func extractSource(name string) (Work, bool) {
	parts := strings.Split(name, "/")
	// candidates, table, yyyy, MM, dd, HH, container, blob..., range
	if len(parts) < 9 || parts[0] != "candidates" || parts[6] == "hashed" {
		return Work{}, false
	}
	last := parts[len(parts)-1]
	if !(strings.HasPrefix(last, "g") || strings.HasPrefix(last, "c")) || !strings.HasSuffix(last, extractSuffix) {
		return Work{}, false
	}
	return Work{Container: parts[6], Name: strings.Join(parts[7:len(parts)-1], "/")}, true
}

// extracted holds one blob part's candidates by event hour.
type extracted struct {
	byHour map[time.Time]*extractWriter
	plain  bool // the export is plain JSON Lines (appendable)
}

func (e *extracted) add(r *signin.Record) {
	h := r.TimeGenerated.UTC().Truncate(time.Hour)
	w := e.byHour[h]
	if w == nil {
		w = &extractWriter{}
		e.byHour[h] = w
	}
	w.add(r)
}

func (e *extracted) hours() []time.Time {
	hs := make([]time.Time, 0, len(e.byHour))
	for h := range e.byHour {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, time.Time.Compare)
	return hs
}

// extract reads props from byte from on and returns its candidates.
func (p *Pipeline) extract(ctx context.Context, t signin.Table, props store.Properties, from int64, out *Outcome) (*extracted, error) {
	keep := p.cfg.Filter.NonInteractive
	if t == signin.Interactive {
		keep = p.cfg.Filter.Interactive
	}
	ra := store.NewReaderAt(ctx, p.cfg.Exports, props)
	var r io.ReaderAt = ra
	if from > 0 {
		r = io.NewSectionReader(ra, from, props.Size-from)
	}
	ext := &extracted{byHour: map[time.Time]*extractWriter{}}
	name := props.Container + "/" + props.Name
	opts := signin.Options{
		Keep:         keep,
		Extra:        p.cfg.Filter.Columns(t), // what a tuned rule's row predicates read
		MaxExpansion: p.cfg.MaxExpansion,
		// A block blob is complete: its last line is a record, newline or not.
		Final:        props.Sealed,
		PositionIds:  signin.PositionIdPrefix + name + "#",
		PositionBase: from,
	}
	// A tuned rule's extra row predicates read decoded records: applied
	// here, so every extract holds only rows that pass them.
	rowOK := func(*signin.Record) bool { return true }
	if plan := p.cfg.Filter.Plan; plan != nil {
		rowOK = plan.NRow
		if t == signin.Interactive {
			rowOK = plan.IRow
		}
	}
	opts.Name, opts.Table = name, t
	st, err := signin.Scan(ctx, r, props.Size-from, opts, func(rs []signin.Record) error {
		for k := range rs {
			if rowOK(&rs[k]) {
				ext.add(&rs[k])
			}
		}
		return nil
	})
	if err != nil {
		ext.release()
		return nil, err
	}
	for _, b := range ext.byHour {
		out.Candidates += int64(b.rows)
	}
	ext.plain = st.Format == signin.JSONLines
	out.RowsRead, out.Consumed = st.Read, from+st.Consumed
	if out.SkippedRows = st.SkippedRows; st.FirstSkipped != nil {
		out.FirstSkipped = st.FirstSkipped.Error()
	}
	if out.TimeFallbacks = st.TimeFallbacks; st.FirstTimeFallback != nil {
		out.FirstTimeFallback = st.FirstTimeFallback.Error()
	}
	return ext, nil
}

// release drops the candidates of an extraction that failed midway.
func (e *extracted) release() {
	for _, w := range e.byHour {
		w.release()
	}
}

// publication names what publish writes: the blob part's table, work item,
// generation, byte range and version, and whether the export can still grow.
type publication struct {
	table      signin.Table
	work       Work
	gen        int
	from, to   int64 // the byte range read: [from, to)
	appendable bool  // the export may grow (plain JSON Lines or a later part)
	props      store.Properties
}

// publish writes the extracts of ext, one per event hour. A non-interactive
// blob version that is read whole and never grows (Parquet, gzip, a sealed
// block blob: its ETag stays while its content does) gets compact extracts,
// naming that version; a growing one gets full extracts.
func (p *Pipeline) publish(ctx context.Context, pub publication, ext *extracted) ([]string, error) {
	t, w, gen, from, to, appendable, props := pub.table, pub.work, pub.gen, pub.from, pub.to, pub.appendable, pub.props
	var names []string
	for _, h := range ext.hours() {
		name, shape := extractName(t, h, w, gen, from, to), shapeInteractive
		if t == signin.Interactive && p.wideInteractive() {
			shape = shapeInteractiveWide
		}
		if t == signin.NonInteractive {
			shape = shapeFull
			if cn, ok := compactName(h, w, gen, props); ok && !appendable && from == 0 && to == props.Size {
				name, shape = cn, shapeCompact
			}
		}
		data, err := ext.byHour[h].encode(shape)
		if err != nil {
			return nil, err
		}
		_, err = p.cfg.State.Write(ctx, p.cfg.StateContainer, name, data, store.Condition{IfNoneMatch: "*"})
		// Already there: an earlier attempt published the same range.
		if err != nil && !errors.Is(err, store.ErrConditionNotMet) {
			return nil, fmt.Errorf("publish %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// sideOf is a table as a kql.Side.
func sideOf(t signin.Table) kql.Side {
	if t == signin.Interactive {
		return kql.SideI
	}
	return kql.SideN
}

// wideInteractive reports whether a tuned rule's pair predicates or added
// columns read the interactive row's AppDisplayName, CorrelationId or
// UniqueTokenIdentifier, which the interactive extract then carries.
func (p *Pipeline) wideInteractive() bool {
	plan := p.cfg.Filter.Plan
	if plan == nil {
		return false
	}
	for _, col := range []string{signin.ColAppDisplayName, signin.ColCorrelationId, signin.ColUniqueTokenIdentifier} {
		if plan.Reads(kql.SideI, col) {
			return true
		}
	}
	return false
}

// deleteExtracts removes the extracts of content that was replaced.
func (p *Pipeline) deleteExtracts(ctx context.Context, names []string) error {
	for _, name := range names {
		err := p.cfg.State.Delete(ctx, p.cfg.StateContainer, name, store.Condition{})
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("delete stale extract %s: %w", name, err)
		}
	}
	return nil
}
