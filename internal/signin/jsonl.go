package signin

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// maxLineBytes bounds one JSON Lines record: a Log Analytics row is a few
// KiB, so a longer "line" is not a sign-in export.
const maxLineBytes = 16 << 20

// jsonRow receives the columns the rule reads; every other key is skipped.
// RawMessage keeps the value's kind so that a wrong type can be reported.
// (encoding/json matches keys case-insensitively; Log Analytics writes each
// column once with its exact name, so this never picks a wrong key.)
type jsonRow struct {
	TimeGenerated             json.RawMessage
	UserPrincipalName         json.RawMessage
	IPAddress                 json.RawMessage
	Location                  json.RawMessage
	ResultType                json.RawMessage
	AuthenticationRequirement json.RawMessage
	ConditionalAccessStatus   json.RawMessage
	AppDisplayName            json.RawMessage
	CorrelationId             json.RawMessage
	UniqueTokenIdentifier     json.RawMessage
	Id                        json.RawMessage
	// Category and Properties tell a record in the resource-log form
	// (diagnostic.go); Log Analytics rows have no Properties column.
	Category   json.RawMessage
	Properties json.RawMessage
}

func (j *jsonRow) raw(f field) *json.RawMessage {
	switch f {
	case fTimeGenerated:
		return &j.TimeGenerated
	case fUserPrincipalName:
		return &j.UserPrincipalName
	case fIPAddress:
		return &j.IPAddress
	case fLocation:
		return &j.Location
	case fResultType:
		return &j.ResultType
	case fAuthenticationRequirement:
		return &j.AuthenticationRequirement
	case fConditionalAccessStatus:
		return &j.ConditionalAccessStatus
	case fAppDisplayName:
		return &j.AppDisplayName
	case fCorrelationId:
		return &j.CorrelationId
	case fUniqueTokenIdentifier:
		return &j.UniqueTokenIdentifier
	case fId:
		return &j.Id
	}
	panic("signin: unknown field")
}

// jsonRowWide is jsonRow with the columns of Record.Extra, decoded only
// when Options.Extra asks for them: exact mode copies none of their bytes.
type jsonRowWide struct {
	jsonRow
	SessionId                    json.RawMessage
	AutonomousSystemNumber       json.RawMessage
	NetworkLocationDetails       json.RawMessage
	IsThroughGlobalSecureAccess  json.RawMessage
	AppId                        json.RawMessage
	LocationDetails              json.RawMessage
	DeviceDetail                 json.RawMessage
	TokenProtectionStatusDetails json.RawMessage
	ClientAppUsed                json.RawMessage
	ResourceDisplayName          json.RawMessage
	UserAgent                    json.RawMessage
}

func (j *jsonRowWide) raw(f field) *json.RawMessage {
	switch f {
	case fSessionId:
		return &j.SessionId
	case fAutonomousSystemNumber:
		return &j.AutonomousSystemNumber
	case fNetworkLocationDetails:
		return &j.NetworkLocationDetails
	case fIsThroughGlobalSecureAccess:
		return &j.IsThroughGlobalSecureAccess
	case fAppId:
		return &j.AppId
	case fLocationDetails:
		return &j.LocationDetails
	case fDeviceDetail:
		return &j.DeviceDetail
	case fTokenProtectionStatusDetails:
		return &j.TokenProtectionStatusDetails
	case fClientAppUsed:
		return &j.ClientAppUsed
	case fResourceDisplayName:
		return &j.ResourceDisplayName
	case fUserAgent:
		return &j.UserAgent
	}
	return j.jsonRow.raw(f)
}

// extraText reads a column of Record.Extra: a string as itself, a dynamic
// value (object, array) as its JSON text, a number or boolean as written,
// null as "".
func extraText(raw json.RawMessage) (string, error) {
	switch raw[0] {
	case 'n':
		return "", nil
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	return string(raw), nil
}

// scanJSONL reads Log Analytics data export JSON Lines, plain or gzip.
func scanJSONL(ctx context.Context, name string, r io.ReaderAt, size int64, gz bool, t Table, opts Options, fn func([]Record) error) (Stats, error) {
	s := newJSONLScan(ctx, name, r, size, gz, t, opts, fn)
	if err := s.open(); err != nil {
		return s.st, err
	}
	defer s.close()
	err := s.run()
	return s.st, err
}

// jsonlScan is one Scan of a JSON Lines file. It owns the line reader and
// the position in the (decompressed) stream, the row the lines are decoded
// into, the per-column interners, the batch handed to fn and the Stats. Its
// methods are the steps of reading one line: readLine, partial, record.
type jsonlScan struct {
	ctx       context.Context
	name      string
	size      int64
	gz        bool
	complete  bool // a last line without '\n' is a record (gzip or Final)
	opts      Options
	fn        func([]Record) error
	batchSize int
	fields    []field
	required  [numFields]bool
	table     Table
	form      Form    // the form of the file's records, from the first (diagnostic.go)
	diag      diagRow // a resource-log line's fields

	src *ioErrReaderAt
	zr  *gzip.Reader // nil for plain JSON Lines
	br  *bufio.Reader

	line    int64           // lines read
	offset  int64           // bytes of plain input read so far
	long    []byte          // a line longer than br's buffer
	row     jsonRowWide     // the base columns always, Record.Extra's with Options.Extra
	seen    [numFields]bool // columns some line has
	interns [numFields]interner
	batch   []Record
	st      Stats
}

func newJSONLScan(ctx context.Context, name string, r io.ReaderAt, size int64, gz bool, t Table, opts Options, fn func([]Record) error) *jsonlScan {
	s := &jsonlScan{
		ctx: ctx, name: name, size: size, gz: gz, complete: gz || opts.Final,
		opts: opts, fn: fn, batchSize: opts.BatchSize, src: &ioErrReaderAt{r: r}, table: t,
	}
	if s.batchSize <= 0 {
		s.batchSize = defaultBatchSize
	}
	s.fields, s.required = wanted(t, opts.Extra)
	return s
}

func (s *jsonlScan) formatErr(col string, line int64, e error) error {
	return &FormatError{File: s.name, Column: col, Row: line, Err: e}
}

// open sets up the line reader: through gzip, bounded by MaxExpansion, when
// the file is compressed.
func (s *jsonlScan) open() error {
	var in io.Reader = io.NewSectionReader(s.src, 0, s.size)
	if s.gz {
		zr, err := gzip.NewReader(in)
		if err != nil {
			if ioErr := s.src.failed(); ioErr != nil {
				return fmt.Errorf("%s: read: %w", s.name, ioErr)
			}
			return s.formatErr("", 0, fmt.Errorf("gzip: %w", err))
		}
		s.zr = zr
		in = newGzipLimit(zr, s.size, s.opts.MaxExpansion)
	}
	// Small inputs (extracts, short appends) get small buffers: allocating
	// and zeroing full-size ones dominated scans of tiny blobs.
	bufSize := 256 << 10
	if !s.gz && s.size+16 < int64(bufSize) {
		bufSize = int(max(s.size+16, 4096))
	}
	s.br = bufio.NewReaderSize(in, bufSize)
	// A record line is at least ~100 bytes; gzip compresses ~5-10x.
	s.batch = make([]Record, 0, min(s.batchSize, int(min(s.size, 1<<30)/16)+1))
	return nil
}

func (s *jsonlScan) close() {
	if s.zr != nil {
		s.zr.Close()
	}
}

// run reads the lines up to the end of the input, or up to a partial last
// line, and checks the file once read.
func (s *jsonlScan) run() error {
	for {
		if s.line%1024 == 0 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
		buf, atEOF, err := s.readLine()
		if err != nil {
			return err
		}
		if len(buf) == 0 && atEOF || s.partial(buf) {
			break
		}
		s.line++
		lineStart := s.opts.PositionBase + s.offset
		s.offset += int64(len(buf))
		if s.line == 1 {
			buf = bytes.TrimPrefix(buf, utf8BOM)
		}
		if len(bytes.TrimSpace(buf)) > 0 {
			if err := s.record(buf, lineStart); err != nil {
				return err
			}
		}
		if atEOF {
			break
		}
	}
	return s.finish()
}

// readLine returns the next line, with its '\n' unless it is the last, and
// whether it is the last. A line longer than the reader's buffer is gathered
// into s.long, up to maxLineBytes.
func (s *jsonlScan) readLine() (buf []byte, atEOF bool, err error) {
	buf, err = s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], buf...)
		for errors.Is(err, bufio.ErrBufferFull) && len(s.long) <= maxLineBytes {
			buf, err = s.br.ReadSlice('\n')
			s.long = append(s.long, buf...)
		}
		buf = s.long
		if len(s.long) > maxLineBytes {
			return nil, false, s.formatErr("", s.line+1, fmt.Errorf("line longer than %d bytes", maxLineBytes))
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if ioErr := s.src.failed(); ioErr != nil {
			return nil, false, fmt.Errorf("%s: read: %w", s.name, ioErr)
		}
		if ee := (*expansionError)(nil); errors.As(err, &ee) {
			return nil, false, s.formatErr("", 0, ee)
		}
		// Only the gzip layer fails otherwise: the file is corrupt or truncated.
		return nil, false, s.formatErr("", s.line+1, fmt.Errorf("gzip: %w", err))
	}
	return buf, err != nil, nil
}

// partial tells a last line (buf, not empty) without '\n' that is the start
// of a record still being appended: it is left for the next read, which
// resumes at Stats.Consumed. A complete file has none; otherwise the line is
// a record only when it is one complete JSON object.
func (s *jsonlScan) partial(buf []byte) bool {
	if buf[len(buf)-1] == '\n' || s.complete {
		return false
	}
	tail := buf
	if s.line == 0 {
		tail = bytes.TrimPrefix(tail, utf8BOM)
	}
	return !completeObject(tail)
}

// record reads the object on line s.line, which starts at byte lineStart
// of the stream: a row with an unreadable required cell is skipped, an
// unreadable optional cell reads as "", and the record goes to Keep and, if
// kept, to the batch.
func (s *jsonlScan) record(buf []byte, lineStart int64) error {
	if err := s.parse(buf); err != nil {
		return err
	}
	var rec Record
	cells := s.cells(&rec)
	if cells.bad != nil {
		s.st.SkippedRows++
		if s.st.FirstSkipped == nil {
			s.st.FirstSkipped = cells.bad
		}
		return nil
	}
	s.st.BlankedCells += int64(cells.blanked)
	if s.st.FirstBlanked == nil {
		s.st.FirstBlanked = cells.firstBlanked
	}
	if s.opts.PositionIds != "" && rec.Id == "" {
		rec.Id = s.opts.PositionIds + strconv.FormatInt(lineStart, 10)
	}
	s.st.Read++
	if s.opts.Keep == nil || s.opts.Keep(&rec) {
		s.batch = append(s.batch, rec)
		s.st.Rows++
		if len(s.batch) == s.batchSize {
			return s.flush()
		}
	}
	return nil
}

// parse decodes the line into s.row, the wanted columns' raw values. The
// first record tells the file's form: Log Analytics' columns, or the
// resource-log schema of a diagnostic-settings archive (diagnostic.go).
func (s *jsonlScan) parse(buf []byte) error {
	if s.form == ResourceLogForm {
		return s.parseResourceLog(buf)
	}
	for _, f := range s.fields {
		*s.row.raw(f) = (*s.row.raw(f))[:0]
	}
	s.row.Category, s.row.Properties = s.row.Category[:0], s.row.Properties[:0]
	var target any = &s.row.jsonRow
	if len(s.opts.Extra) > 0 {
		target = &s.row
	}
	if err := json.Unmarshal(buf, target); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("line is a JSON %s, not an object", te.Value)
		}
		return s.formatErr("", s.line, fmt.Errorf("invalid JSON: %w", err))
	}
	if cat := resourceLogCategory(s.row.Category, s.row.Properties); cat != "" {
		if s.form == "" {
			s.form = ResourceLogForm
			return s.parseResourceLog(buf)
		}
		return s.formatErr("", s.line, fmt.Errorf("record is in the resource-log form (category %q, a properties object) but the file's first record has Log Analytics' columns: a file holds one form", cat))
	}
	if s.form == "" {
		if err := s.checkJSONTable(buf); err != nil {
			return err
		}
	}
	s.form = LogAnalyticsForm
	return nil
}

// column names column f in errors, as the file's form calls it.
func (s *jsonlScan) column(f field) string {
	if s.form == ResourceLogForm {
		return diagColumns[f]
	}
	return fieldNames[f]
}

// lineCells are the unreadable cells of one line. One bad cell costs its
// row (a required column) or its value (an optional one), not the file.
type lineCells struct {
	bad          *FormatError // the first in a required column: the row is skipped
	firstBlanked *FormatError // the first in an optional column
	blanked      int          // cells of optional columns read as ""
}

// cells reads the raw values of s.row into rec.
func (s *jsonlScan) cells(rec *Record) lineCells {
	var lc lineCells
	for _, f := range s.fields {
		raw := *s.row.raw(f)
		if len(raw) == 0 {
			continue
		}
		s.seen[f] = true
		err := s.cell(rec, f, raw)
		if err == nil {
			continue
		}
		fe := &FormatError{File: s.name, Column: s.column(f), Row: s.line, Err: err}
		if !s.required[f] {
			lc.blanked++
			if lc.firstBlanked == nil {
				lc.firstBlanked = fe
			}
		} else if lc.bad == nil {
			lc.bad = fe
		}
	}
	return lc
}

// cell reads the raw value of column f into rec.
func (s *jsonlScan) cell(rec *Record, f field, raw json.RawMessage) error {
	if f == fTimeGenerated {
		var err error
		rec.TimeGenerated, err = jsonTime(raw)
		return err
	}
	if f.extra() {
		v, err := extraText(raw)
		rec.setString(f, v)
		return err
	}
	var in *interner
	if f.interned() {
		in = &s.interns[f]
	}
	v, err := jsonText(raw, f, in)
	rec.setString(f, v)
	return err
}

// flush passes the batch to fn and empties it.
func (s *jsonlScan) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	err := s.fn(s.batch)
	s.batch = s.batch[:0]
	return err
}

// finish passes the last batch to fn and checks the file as a whole: some
// row readable, every required column in some record.
func (s *jsonlScan) finish() error {
	s.st.Form = s.form
	if err := s.flush(); err != nil {
		return err
	}
	if s.st.Read == 0 && s.st.FirstSkipped != nil {
		return s.st.FirstSkipped // no row could be read
	}
	if s.st.Read > 0 {
		for _, f := range s.fields {
			if s.required[f] && !s.seen[f] {
				return s.formatErr(s.column(f), 0, fmt.Errorf("%w (no record has it)", errMissingColumn))
			}
		}
	}
	if s.gz {
		s.st.Consumed = s.size
	} else {
		s.st.Consumed = s.offset
	}
	return nil
}

// jsonText reads the string column f: a JSON string, or null as "".
// ResultType may also be a number (Kusto int, or a float writer's 0.0) with an
// integral value, read as its integer text, and IPAddress a number (an
// integer-typed export), read as written.
func jsonText(raw json.RawMessage, f field, in *interner) (string, error) {
	switch raw[0] {
	case 'n':
		return "", nil
	case '"':
		body := raw[1 : len(raw)-1]
		if bytes.IndexByte(body, '\\') < 0 {
			if f == fResultType && len(body) > 0 && !canonicalInt(unsafe.String(&body[0], len(body))) {
				return resultTypeText(string(body)), nil
			}
			if in != nil {
				return in.getBytes(body), nil
			}
			return string(body), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if f == fResultType {
			s = resultTypeText(s)
		}
		return s, nil
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		switch f {
		case fResultType:
			n, ok := numericInt(string(raw))
			if !ok {
				return "", fmt.Errorf("want an integer or string, got %s", raw)
			}
			if in != nil {
				return in.get(n), nil
			}
			return n, nil
		case fIPAddress:
			return string(raw), nil
		}
	}
	return "", fmt.Errorf("want a string, got %s", jsonKind(raw))
}

// completeObject tells a line that is one complete JSON object, whitespace
// around it allowed.
func completeObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// expansionFloor is the compressed size below which MaxExpansion applies to
// this size instead, so a small file with a normal ratio is not rejected.
const expansionFloor = 1 << 20

// expansionError is a gzip stream that decompresses past its bound.
type expansionError struct{ limit, exp int64 }

func (e *expansionError) Error() string {
	return fmt.Sprintf("decompresses to more than %d bytes (%dx its compressed size); raise --max-expansion", e.limit, e.exp)
}

// gzipLimit bounds a decompressed stream: a bomb (2 MB of gzip holding 2 GB
// of newlines) otherwise costs a minute of CPU per delivery.
type gzipLimit struct {
	r        io.Reader
	n, limit int64
	err      *expansionError
}

func newGzipLimit(r io.Reader, size int64, maxExpansion int) *gzipLimit {
	exp := int64(maxExpansion)
	if exp <= 0 {
		exp = DefaultMaxExpansion
	}
	base := max(size, expansionFloor)
	limit := int64(math.MaxInt64 - 1)
	if base <= limit/exp {
		limit = base * exp
	}
	return &gzipLimit{r: r, limit: limit, err: &expansionError{limit, exp}}
}

func (l *gzipLimit) Read(p []byte) (int, error) {
	if l.n > l.limit {
		return 0, l.err
	}
	if room := l.limit + 1 - l.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return n, l.err
	}
	return n, err
}

func jsonTime(raw json.RawMessage) (tm time.Time, err error) {
	if raw[0] == 'n' {
		return tm, nil
	}
	if raw[0] != '"' {
		return tm, fmt.Errorf("want an ISO 8601 string, got %s", jsonKind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return tm, err
	}
	return parseTime(s)
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case 'n':
		return "null"
	}
	return "a number " + string(raw)
}

// CompleteEnd returns where a Scan of the plain JSON Lines r[from:size)
// with Options.Final false stops reading (from + Stats.Consumed): after the
// last '\n', or at size when the text after it is one complete JSON object
// (see Stats.Consumed). It reads only the tail, so a caller can name what a
// Scan will read before it reads it (the pipeline names a streamed extract
// by its byte range before the rows are written).
func CompleteEnd(r io.ReaderAt, from, size int64) (int64, error) {
	const chunk = 64 << 10
	var tail []byte // the bytes after the last '\n', read backwards
	buf := make([]byte, chunk)
	for end := size; end > from; {
		start := max(from, end-chunk)
		n, err := r.ReadAt(buf[:end-start], start)
		if n < int(end-start) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		part := buf[:n]
		if k := bytes.LastIndexByte(part, '\n'); k >= 0 {
			tail = append(part[k+1:len(part):len(part)], tail...)
			return endAfter(start+int64(k)+1, size, tail, false), nil
		}
		tail = append(part[:len(part):len(part)], tail...)
		if len(tail) > maxLineBytes {
			// Scan rejects a line this long: let it see the line.
			return size, nil
		}
		end = start
	}
	return endAfter(from, size, tail, true), nil
}

// endAfter is CompleteEnd's answer for a last line tail starting at nl.
func endAfter(nl, size int64, tail []byte, first bool) int64 {
	if len(tail) == 0 {
		return size
	}
	if first {
		tail = bytes.TrimPrefix(tail, utf8BOM)
	}
	if completeObject(tail) {
		return size
	}
	return nl
}
