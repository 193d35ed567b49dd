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
	"strconv"
	"time"
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
		in = zr
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
			// Only the gzip layer fails otherwise: the file is corrupt or truncated.
			return st, formatErr("", line+1, fmt.Errorf("gzip: %w", err))
		}
		atEOF := err != nil
		if len(buf) == 0 && atEOF {
			break
		}
		terminated := buf[len(buf)-1] == '\n'
		if !terminated && !complete {
			// The start of a record still being appended: leave it for the
			// next read, which resumes at Stats.Consumed.
			break
		}
		line++
		offset += int64(len(buf))
		if line == 1 {
			buf = bytes.TrimPrefix(buf, []byte("\xef\xbb\xbf"))
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
		for _, f := range fields {
			raw := *row.raw(f)
			if len(raw) == 0 {
				continue
			}
			seen[f] = true
			if f == fTimeGenerated {
				tm, err := jsonTime(raw)
				if err != nil {
					return st, formatErr(fieldNames[f], line, err)
				}
				rec.TimeGenerated = tm
				continue
			}
			var in *interner
			if f.interned() {
				in = &interns[f]
			}
			s, err := jsonText(raw, f == fResultType, in)
			if err != nil {
				return st, formatErr(fieldNames[f], line, err)
			}
			rec.setString(f, s)
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

// jsonText reads a string column: a JSON string, or null as "". ResultType may
// also be an integer number (Kusto int), read as its decimal text.
func jsonText(raw json.RawMessage, number bool, in *interner) (string, error) {
	switch raw[0] {
	case 'n':
		return "", nil
	case '"':
		body := raw[1 : len(raw)-1]
		if bytes.IndexByte(body, '\\') < 0 {
			if in != nil {
				return in.getBytes(body), nil
			}
			return string(body), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	if number && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", fmt.Errorf("want an integer or string, got %s", raw)
		}
		return strconv.FormatInt(n, 10), nil
	}
	return "", fmt.Errorf("want a string, got %s", jsonKind(raw))
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
