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

// scanJSONL reads Log Analytics data export JSON Lines, plain or gzip.
func scanJSONL(ctx context.Context, name string, r io.ReaderAt, size int64, gz bool, t Table, opts Options, fn func([]Record) error) (Stats, error) {
	var st Stats
	formatErr := func(col string, line int64, e error) error {
		return &FormatError{File: name, Column: col, Row: line, Err: e}
	}

	src := &ioErrReaderAt{r: r}
	var in io.Reader = io.NewSectionReader(src, 0, size)
	if gz {
		zr, err := gzip.NewReader(in)
		if err != nil {
			if ioErr := src.failed(); ioErr != nil {
				return st, fmt.Errorf("%s: read: %w", name, ioErr)
			}
			return st, formatErr("", 0, fmt.Errorf("gzip: %w", err))
		}
		defer zr.Close()
		in = newGzipLimit(zr, size, opts.MaxExpansion)
	}
	// Small inputs (extracts, short appends) get small buffers: allocating
	// and zeroing full-size ones dominated scans of tiny blobs.
	bufSize := 256 << 10
	if !gz && size+16 < int64(bufSize) {
		bufSize = int(max(size+16, 4096))
	}
	br := bufio.NewReaderSize(in, bufSize)

	batchSize := opts.BatchSize
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	fields, required := wanted(t)
	var seen [numFields]bool
	var interns [numFields]interner
	var row jsonRow
	// A record line is at least ~100 bytes; gzip compresses ~5-10x.
	batch := make([]Record, 0, min(batchSize, int(min(size, 1<<30)/16)+1))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(batch)
		batch = batch[:0]
		return err
	}

	var (
		line     int64
		offset   int64 // bytes of plain input read so far
		long     []byte
		complete = gz || opts.Final // a last line without '\n' is a record
	)
	for {
		if line%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		buf, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it.
			long = append(long[:0], buf...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxLineBytes {
				buf, err = br.ReadSlice('\n')
				long = append(long, buf...)
			}
			buf = long
			if len(long) > maxLineBytes {
				return st, formatErr("", line+1, fmt.Errorf("line longer than %d bytes", maxLineBytes))
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if ioErr := src.failed(); ioErr != nil {
				return st, fmt.Errorf("%s: read: %w", name, ioErr)
			}
			if ee := (*expansionError)(nil); errors.As(err, &ee) {
				return st, formatErr("", 0, ee)
			}
			// Only the gzip layer fails otherwise: the file is corrupt or truncated.
			return st, formatErr("", line+1, fmt.Errorf("gzip: %w", err))
		}
		atEOF := err != nil
		if len(buf) == 0 && atEOF {
			break
		}
		terminated := buf[len(buf)-1] == '\n'
		if !terminated && !complete {
			tail := buf
			if line == 0 {
				tail = bytes.TrimPrefix(tail, utf8BOM)
			}
			if !completeObject(tail) {
				// The start of a record still being appended: leave it for
				// the next read, which resumes at Stats.Consumed.
				break
			}
		}
		line++
		lineStart := opts.PositionBase + offset
		offset += int64(len(buf))
		if line == 1 {
			buf = bytes.TrimPrefix(buf, utf8BOM)
		}
		if len(bytes.TrimSpace(buf)) == 0 {
			if atEOF {
				break
			}
			continue
		}

		for _, f := range fields {
			*row.raw(f) = (*row.raw(f))[:0]
		}
		if err := json.Unmarshal(buf, &row); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("line is a JSON %s, not an object", te.Value)
			}
			return st, formatErr("", line, fmt.Errorf("invalid JSON: %w", err))
		}
		var rec Record
		var bad *FormatError // the first unreadable required cell
		var blanked *FormatError
		nblanked := 0
		for _, f := range fields {
			raw := *row.raw(f)
			if len(raw) == 0 {
				continue
			}
			seen[f] = true
			var err error
			if f == fTimeGenerated {
				rec.TimeGenerated, err = jsonTime(raw)
			} else {
				var in *interner
				if f.interned() {
					in = &interns[f]
				}
				var s string
				s, err = jsonText(raw, f, in)
				rec.setString(f, s)
			}
			if err == nil {
				continue
			}
			// One bad cell costs its row (a required column) or its value
			// (an optional one), not the file.
			fe := &FormatError{File: name, Column: fieldNames[f], Row: line, Err: err}
			if !required[f] {
				nblanked++
				if blanked == nil {
					blanked = fe
				}
			} else if bad == nil {
				bad = fe
			}
		}
		if bad != nil {
			st.SkippedRows++
			if st.FirstSkipped == nil {
				st.FirstSkipped = bad
			}
			if atEOF {
				break
			}
			continue
		}
		st.BlankedCells += int64(nblanked)
		if st.FirstBlanked == nil {
			st.FirstBlanked = blanked
		}
		if opts.PositionIds != "" && rec.Id == "" {
			rec.Id = opts.PositionIds + strconv.FormatInt(lineStart, 10)
		}
		st.Read++
		if opts.Keep == nil || opts.Keep(&rec) {
			batch = append(batch, rec)
			st.Rows++
			if len(batch) == batchSize {
				if err := flush(); err != nil {
					return st, err
				}
			}
		}
		if atEOF {
			break
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if st.Read == 0 && st.FirstSkipped != nil {
		return st, st.FirstSkipped // no row could be read
	}
	if st.Read > 0 {
		for _, f := range fields {
			if required[f] && !seen[f] {
				return st, formatErr(fieldNames[f], 0, fmt.Errorf("%w (no record has it)", errMissingColumn))
			}
		}
	}
	if gz {
		st.Consumed = size
	} else {
		st.Consumed = offset
	}
	return st, nil
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
