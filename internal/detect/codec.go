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
	return append(dst, '}')
}

// appendString appends s as a JSON string exactly as encoding/json does
// with HTML escaping off.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// MarshalResult encodes a result row as AppendJSON does.
func MarshalResult(r Result) ([]byte, error) { return AppendJSON(nil, r), nil }

// UnmarshalResult decodes one row object written by MarshalResult. A key
// that is not a result column is an error naming it, and so is text after
// the object (one row per line); the Ids stay empty.
func UnmarshalResult(data []byte) (Result, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return Result{}, fmt.Errorf("result row: %v", err)
	}
	// One row per line: a second object would otherwise be lost silently.
	if _, err := dec.Token(); err != io.EOF {
		return Result{}, fmt.Errorf("result row: text after the row's object (one object per line)")
	}
	r, err := fromObject(m, false)
	if err != nil {
		return Result{}, fmt.Errorf("result row: %v", err)
	}
	return r, nil
}

// UnmarshalResultLenient decodes a row object as UnmarshalResult does, but
// ignores keys that are not result columns: for rows stored inside other
// documents, which a later version may extend.
func UnmarshalResultLenient(data []byte) (Result, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return Result{}, err
	}
	return fromObject(m, true)
}

// fromObject sets every column from its key in m; an absent key (or null)
// reads as "", which only the string columns accept.
func fromObject(m map[string]json.RawMessage, ignoreUnknown bool) (Result, error) {
	if !ignoreUnknown && len(m) > 0 {
		var unknown []string
		for k := range m {
			if _, ok := columnIndex[k]; !ok {
				unknown = append(unknown, strconv.Quote(k))
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			return Result{}, fmt.Errorf("unknown %s %s (not a result column)", plural(len(unknown), "key", "keys"), strings.Join(unknown, ", "))
		}
	}
	var r Result
	for _, c := range columns {
		s, err := unquote(m[c.name])
		if err != nil {
			return Result{}, fmt.Errorf("%s: want a string: %v", c.name, err)
		}
		if err := c.set(&r, s); err != nil {
			return Result{}, fmt.Errorf("%s: %v", c.name, err)
		}
	}
	return r, nil
}

// unquote reads a JSON string value ("" for none or null).
func unquote(raw json.RawMessage) (string, error) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		simple := true
		for _, c := range raw[1 : n-1] {
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				simple = false
				break
			}
		}
		if simple {
			return string(raw[1 : n-1]), nil
		}
	}
	var s string
	if len(raw) == 0 {
		return "", nil
	}
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
func ReadJSONL(name string, rd io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var out []Result
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := UnmarshalResult(line)
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
	if err := cw.Write(Columns); err != nil {
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
	{"INTERACTIVE", columnsNamed("InteractiveTime")},
	{"FROM", columnsNamed("InteractiveIP", "InteractiveCountry")},
	{"NON-INTERACTIVE", columnsNamed("NISignInTime")},
	{"FROM", columnsNamed("NIIPAddress", "NICountry")},
	{"AFTER", columnsNamed("TimeSinceInteractive")},
	{"APP", columnsNamed("AppDisplayName")},
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
func tableCells(r Result) []string {
	out := make([]string, len(tableLayout))
	for i, cell := range tableLayout {
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
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	heads := make([]string, len(tableLayout))
	for i, cell := range tableLayout {
		heads[i] = cell.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, r := range rs {
		fmt.Fprintln(tw, strings.Join(tableCells(r), "\t"))
	}
	fmt.Fprintf(tw, "%d result rows\n", len(rs))
	return tw.Flush()
}
