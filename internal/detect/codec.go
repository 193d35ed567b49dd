package detect

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// The result rows' codec: JSON objects (one per line in JSON Lines), CSV and
// the table printer, all driven by the column table (result.go).

// AppendJSON appends r as one compact JSON object whose keys are the 11
// result columns in query order (Columns) and whose values are their texts
// (Column), with <, > and & left unescaped. The source rows' Ids are not
// columns and are left out.
func AppendJSON(dst []byte, r Result) []byte {
	dst = append(dst, '{')
	for i, c := range columns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, c.name...)
		dst = append(dst, '"', ':')
		dst = appendString(dst, c.text(&r))
	}
	if r.Extra.Len() > 0 {
		for k, v := range r.Extra.Values() {
			dst = append(dst, ',')
			dst = appendString(dst, r.Extra.Names()[k])
			dst = append(dst, ':')
			dst = appendString(dst, v)
		}
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string exactly as encoding/json does
// with HTML escaping off: \" and \\, the short escapes \b \f \n \r \t,
// \u00XX for other control characters, \ufffd for each invalid UTF-8 byte,
// and \u2028 and \u2029 (TestAppendStringAsEncodingJSON holds it to that).
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// MarshalResult encodes a result row as AppendJSON does.
func MarshalResult(r Result) ([]byte, error) { return AppendJSON(nil, r), nil }

// UnmarshalResult decodes one row object written by MarshalResult. A key
// that is not a result column is an error naming it, and so is text after
// the object (one row per line); the Ids stay empty.
func UnmarshalResult(data []byte) (Result, error) {
	r, err := decodeObject(data, false, nil)
	if err != nil {
		return Result{}, fmt.Errorf("result row: %v", err)
	}
	return r, nil
}

// UnmarshalResultExtra is UnmarshalResult for a tuned rule whose result has
// the extra columns names after the eleven: those keys are read into Extra.
func UnmarshalResultExtra(data []byte, names []string) (Result, error) {
	r, err := decodeObject(data, false, names)
	if err != nil {
		return Result{}, fmt.Errorf("result row: %v", err)
	}
	return r, nil
}

// UnmarshalResultLenient decodes a row object as UnmarshalResult does, but
// ignores keys that are not result columns: for rows stored inside other
// documents, which a later version may extend.
func UnmarshalResultLenient(data []byte) (Result, error) { return decodeObject(data, true, nil) }

// decodeObject reads one JSON object of string values (or null) and sets
// every column from its key; an absent key reads as "", which only the
// string columns accept. It scans the bytes itself: a row is decoded for
// every evidence row of every stored alert, and a general decoder into a
// map costs three times as much.
func decodeObject(data []byte, ignoreUnknown bool, extra []string) (Result, error) {
	var texts [len(columns)]string
	extras := make([]string, len(extra))
	var unknown []string
	i := skipSpace(data, 0)
	switch {
	case bytes.HasPrefix(data[i:], []byte("null")):
		i += len("null")
	case i < len(data) && data[i] == '{':
		i = skipSpace(data, i+1)
		for first := true; ; first = false {
			if i < len(data) && data[i] == '}' && first {
				i++
				break
			}
			raw, plain, next, err := scanString(data, i)
			if err != nil {
				return Result{}, fmt.Errorf("key: %v", err)
			}
			k, known := -1, false
			if plain {
				k, known = columnIndex[string(raw[1:len(raw)-1])] // no allocation
			}
			key := ""
			if !known {
				if key, err = stringOf(raw, plain); err != nil {
					return Result{}, fmt.Errorf("key: %v", err)
				}
				k, known = columnIndex[key]
			} else {
				key = columns[k].name
			}
			i = skipSpace(data, next)
			if i >= len(data) || data[i] != ':' {
				return Result{}, fmt.Errorf("want ':' after key %q at offset %d", key, i)
			}
			i = skipSpace(data, i+1)
			var v string
			if bytes.HasPrefix(data[i:], []byte("null")) {
				i += len("null")
			} else {
				if raw, plain, i, err = scanString(data, i); err == nil {
					v, err = stringOf(raw, plain)
				}
				if err != nil {
					return Result{}, fmt.Errorf("%s: want a string: %v", key, err)
				}
			}
			if known {
				texts[k] = v
			} else if j := slices.Index(extra, key); j >= 0 {
				extras[j] = v
			} else if !ignoreUnknown {
				unknown = append(unknown, strconv.Quote(key))
			}
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i < len(data) && data[i] == '}' {
				i++
				break
			}
			return Result{}, fmt.Errorf("want ',' or '}' at offset %d", i)
		}
	default:
		return Result{}, fmt.Errorf("want an object of the result columns at offset %d", i)
	}
	// One row per line: a second object would otherwise be lost silently.
	if skipSpace(data, i) != len(data) {
		return Result{}, fmt.Errorf("text after the row's object (one object per line)")
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		unknown = slices.Compact(unknown)
		return Result{}, fmt.Errorf("unknown %s %s (not a result column)", plural(len(unknown), "key", "keys"), strings.Join(unknown, ", "))
	}
	r := Result{Extra: NewExtra(&extra, extras)}
	for k, c := range columns {
		if err := c.set(&r, texts[k]); err != nil {
			return Result{}, fmt.Errorf("%s: %v", c.name, err)
		}
	}
	return r, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// scanString finds the JSON string at data[i:] and returns it with its
// quotes, whether it is plain (ASCII without escapes: its text is what is
// between the quotes), and the offset after it.
func scanString(data []byte, i int) (raw []byte, plain bool, next int, err error) {
	if i >= len(data) {
		return nil, false, i, fmt.Errorf("unexpected end of the object")
	}
	if data[i] != '"' {
		return nil, false, i, fmt.Errorf("not a string at offset %d", i)
	}
	plain = true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i : j+1], plain, j + 1, nil
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return nil, false, i, fmt.Errorf("control character in a string at offset %d", j)
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return nil, false, i, fmt.Errorf("unterminated string at offset %d", i)
}

// stringOf is the text of a string scanString found. Plain text is sliced;
// escapes and non-ASCII text go through encoding/json (which also replaces
// invalid UTF-8, as it always has for these rows).
func stringOf(raw []byte, plain bool) (string, error) {
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// WriteJSONL writes one AppendJSON object per line: `detect --format jsonl`.
func WriteJSONL(w io.Writer, rs []Result) error {
	bw := bufio.NewWriter(w)
	var line []byte
	for _, r := range rs {
		line = append(AppendJSON(line[:0], r), '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads rows written by WriteJSONL; name is used in errors. Blank
// lines are skipped.
func ReadJSONL(name string, rd io.Reader) ([]Result, error) { return ReadJSONLExtra(name, rd, nil) }

// ReadJSONLExtra is ReadJSONL for a tuned rule's rows with extra columns.
func ReadJSONLExtra(name string, rd io.Reader, extra []string) ([]Result, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var out []Result
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := UnmarshalResultExtra(line, extra)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

// WriteCSV writes a header of the column names, then each row's Fields:
// `detect --format csv`.
func WriteCSV(w io.Writer, rs []Result) error {
	cw := csv.NewWriter(w)
	head := Columns
	if len(rs) > 0 && rs[0].Extra.Len() > 0 {
		head = append(slices.Clone(Columns), rs[0].Extra.Names()...)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, r := range rs {
		if err := cw.Write(Fields(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// tableLayout is the table printer's cells: a heading and the columns shown
// under it, the second (if any) in parentheses. Times are shown to the
// second; the ids are left out.
var tableLayout = []struct {
	head string
	cols []int
}{
	{"USER", columnsNamed("UserPrincipalName")},
	{"INTERACTIVE (UTC)", columnsNamed("InteractiveTime")},
	{"FROM", columnsNamed("InteractiveIP", "InteractiveCountry")},
	{"NON-INTERACTIVE (UTC)", columnsNamed("NISignInTime")},
	{"FROM", columnsNamed("NIIPAddress", "NICountry")},
	{"AFTER", columnsNamed("TimeSinceInteractive")},
	{"APP", columnsNamed("AppDisplayName")},
}

// narrowLayout is tableLayout in about 100 columns: the non-interactive
// time is the interactive one plus AFTER, and the app is for --wide.
var narrowLayout = []struct {
	head string
	cols []int
}{
	tableLayout[0], tableLayout[1], tableLayout[2],
	{"NON-INTERACTIVE FROM", columnsNamed("NIIPAddress", "NICountry")},
	tableLayout[5],
}

func columnsNamed(names ...string) []int {
	out := make([]int, len(names))
	for i, n := range names {
		k, ok := columnIndex[n]
		if !ok {
			panic("detect: no result column " + n)
		}
		out[i] = k
	}
	return out
}

// tableCells are the table printer's cells of r.
func tableCells(r Result) []string { return tableCellsOf(r, tableLayout) }

func tableCellsOf(r Result, layout []struct {
	head string
	cols []int
}) []string {
	out := make([]string, len(layout))
	for i, cell := range layout {
		s := columns[cell.cols[0]].brief(&r)
		if len(cell.cols) > 1 {
			s += " (" + columns[cell.cols[1]].brief(&r) + ")"
		}
		out[i] = s
	}
	return out
}

// WriteTable prints rows for people, aligned, with a count line:
// `detect --format table`.
func WriteTable(w io.Writer, rs []Result) error { return writeTable(w, rs, tableLayout) }

// WriteTableNarrow is WriteTable without the columns a reader can do
// without (the NI time, the app), to fit a terminal of 100 columns.
func WriteTableNarrow(w io.Writer, rs []Result) error { return writeTable(w, rs, narrowLayout) }

func writeTable(w io.Writer, rs []Result, layout []struct {
	head string
	cols []int
}) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	heads := make([]string, len(layout))
	for i, cell := range layout {
		heads[i] = cell.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, r := range rs {
		fmt.Fprintln(tw, strings.Join(tableCellsOf(r, layout), "\t"))
	}
	fmt.Fprintf(tw, "%d result rows\n", len(rs))
	return tw.Flush()
}
