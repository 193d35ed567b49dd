// Package kql compiles a Sentinel rule's KQL query into a plan the detection
// engine runs: a lexer and parser for the part of the Kusto Query Language a
// two-table join rule uses, and a compiler (compile.go) that recognises the
// rule's shape — two filtered sign-in tables, one equi-join key, a time
// window, residual predicates, an output projection — and refuses anything
// else with the line, column and operator it cannot run.
//
// Why not a library: the Go module proxy has no maintained Kusto parser (the
// Go "kql" packages parse Kibana's query language, or are early work in
// progress), and what matters here is not a complete syntax tree but exact
// semantics for a small subset and a refusal for everything outside it.
// Microsoft's own parser (npm @kusto/language-service-next) is the reference
// the tests hold this one to (kqlcheck_test.go and rulelint_test.go at the
// module root).
package kql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pos is a place in the query text, 1-based.
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Col) }

// Error is a query KQL cannot parse (Syntax) or this engine cannot run as
// written (not Syntax): where, in which operator, and why.
type Error struct {
	Pos    Pos
	Op     string // the operator or clause: "where", "join", "let KnownSafeIPs", ...
	Msg    string
	Syntax bool
}

func (e *Error) Error() string {
	kind := "not supported"
	if e.Syntax {
		kind = "syntax error"
	}
	if e.Op != "" {
		return fmt.Sprintf("%s: %s: %s: %s", e.Pos, e.Op, kind, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, kind, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tLong
	tReal
	tTimespan
	tDatetime
	tOp
)

type token struct {
	kind tokKind
	text string // identifier, operator, or the raw literal
	str  string // a string literal's value
	i    int64
	f    float64
	d    time.Duration
	t    time.Time
	pos  Pos
	// glued: no space between this token and the previous one.
	glued bool
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return strconv.Quote(t.str)
	}
	return fmt.Sprintf("%q", t.text)
}

// hyphenated are the words KQL joins with a hyphen into one operator name.
var hyphenated = map[string]bool{"project": true, "make": true, "mv": true, "parse": true, "top": true, "graph": true}

// lex splits q into tokens. Comments (// to the end of the line) and
// whitespace are dropped.
func lex(q string) ([]token, error) {
	var toks []token
	line, lineStart := 1, 0
	pos := func(i int) Pos { return Pos{line, i - lineStart + 1} }
	lastEnd := -1
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\n':
			line++
			i++
			lineStart = i
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '/':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		}
		start := i
		t := token{pos: pos(i), glued: lastEnd == i}
		switch {
		case strings.HasPrefix(q[i:], "```"):
			end := strings.Index(q[i+3:], "```")
			if end < 0 {
				return nil, &Error{Pos: t.pos, Msg: "unterminated ``` string", Syntax: true}
			}
			t.kind, t.str = tString, q[i+3:i+3+end]
			for k := i; k < i+3+end+3; k++ {
				if q[k] == '\n' {
					line++
					lineStart = k + 1
				}
			}
			i += 3 + end + 3
		case c == '"' || c == '\'':
			s, n, err := lexString(q[i:], false)
			if err != nil {
				return nil, &Error{Pos: t.pos, Msg: err.Error(), Syntax: true}
			}
			t.kind, t.str = tString, s
			i += n
		case (c == '@' || c == 'h' || c == 'H') && i+1 < len(q) && (q[i+1] == '"' || q[i+1] == '\''):
			s, n, err := lexString(q[i+1:], c == '@')
			if err != nil {
				return nil, &Error{Pos: t.pos, Msg: err.Error(), Syntax: true}
			}
			t.kind, t.str = tString, s
			i += 1 + n
		case (c == 'h' || c == 'H') && i+2 < len(q) && q[i+1] == '@' && (q[i+2] == '"' || q[i+2] == '\''):
			s, n, err := lexString(q[i+2:], true)
			if err != nil {
				return nil, &Error{Pos: t.pos, Msg: err.Error(), Syntax: true}
			}
			t.kind, t.str = tString, s
			i += 2 + n
		case isDigit(c):
			var err error
			if i, err = lexNumber(q, i, &t); err != nil {
				return nil, err
			}
		case isIdentStart(c) || c == '$' && i+1 < len(q) && isIdentStart(q[i+1]):
			j := i + 1
			for j < len(q) && isIdentByte(q[j]) {
				j++
			}
			word := q[i:j]
			if hyphenated[word] && j+1 < len(q) && q[j] == '-' && isIdentStart(q[j+1]) {
				j++
				for j < len(q) && isIdentByte(q[j]) {
					j++
				}
				word = q[i:j]
			}
			if word == "in" && j < len(q) && q[j] == '~' {
				j++
				word = "in~"
			}
			t.kind, t.text = tIdent, word
			i = j
			if word == "datetime" || word == "timespan" || word == "time" {
				// datetime(2024-01-01T00:00:00Z) holds text that is not tokens.
				k := j
				for k < len(q) && (q[k] == ' ' || q[k] == '\t') {
					k++
				}
				if k < len(q) && q[k] == '(' {
					end := strings.IndexByte(q[k:], ')')
					if end < 0 || strings.Contains(q[k:k+end], "\n") {
						return nil, &Error{Pos: t.pos, Op: word, Msg: "expected ')'", Syntax: true}
					}
					raw := strings.TrimSpace(q[k+1 : k+end])
					if err := literalCall(word, raw, &t); err != nil {
						return nil, err
					}
					i = k + end + 1
				}
			}
		case c == '!' && i+1 < len(q) && isIdentStart(q[i+1]):
			j := i + 1
			for j < len(q) && isIdentByte(q[j]) {
				j++
			}
			word := q[i:j]
			if word == "!in" && j < len(q) && q[j] == '~' {
				j++
				word = "!in~"
			}
			t.kind, t.text = tOp, word
			i = j
		default:
			op := string(c)
			if i+1 < len(q) {
				switch two := q[i : i+2]; two {
				case "==", "!=", "=~", "!~", "<=", ">=", "..", "<>", "=>":
					op = two
				}
			}
			if !strings.Contains("|()[]{},;=<>+-*/%.:!~$", op[:1]) {
				return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("unexpected character %q", op[:1]), Syntax: true}
			}
			t.kind, t.text = tOp, op
			i += len(op)
		}
		if t.text == "" {
			t.text = q[start:i]
		}
		toks = append(toks, t)
		lastEnd = i
	}
	toks = append(toks, token{kind: tEOF, pos: pos(len(q))})
	return toks, nil
}

// literalCall reads datetime(...), timespan(...) or time(...) contents.
func literalCall(word, raw string, t *token) error {
	if word == "datetime" {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
			if v, err := time.Parse(layout, raw); err == nil {
				t.kind, t.t = tDatetime, v.UTC()
				return nil
			}
		}
		return &Error{Pos: t.pos, Op: "datetime", Msg: fmt.Sprintf("%q is not a datetime this engine reads (use ISO 8601, e.g. 2024-01-31T08:00:00Z)", raw), Syntax: false}
	}
	var nt token
	if _, err := lexNumber(raw, 0, &nt); err != nil || nt.text != raw {
		return &Error{Pos: t.pos, Op: word, Msg: fmt.Sprintf("%q is not a timespan this engine reads (use e.g. 2h, 30m)", raw)}
	}
	switch nt.kind {
	case tTimespan:
		t.d = nt.d
	case tLong:
		t.d = time.Duration(nt.i) * 24 * time.Hour // timespan(2) is two days
	default:
		return &Error{Pos: t.pos, Op: word, Msg: fmt.Sprintf("%q is not a timespan this engine reads", raw)}
	}
	t.kind = tTimespan
	return nil
}

var units = map[string]time.Duration{
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"ms": time.Millisecond, "milli": time.Millisecond, "millis": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"tick": 100, "ticks": 100,
}

// lexNumber reads a long, a real or a timespan (a number with a unit: 2h,
// 1.5d) at q[i:], into t, and returns where it ends.
func lexNumber(q string, i int, t *token) (int, error) {
	j := i
	for j < len(q) && isDigit(q[j]) {
		j++
	}
	real := false
	if j+1 < len(q) && q[j] == '.' && isDigit(q[j+1]) { // not "1..2"
		real = true
		j++
		for j < len(q) && isDigit(q[j]) {
			j++
		}
	}
	if j < len(q) && (q[j] == 'e' || q[j] == 'E') && j+1 < len(q) && (isDigit(q[j+1]) || (q[j+1] == '-' || q[j+1] == '+') && j+2 < len(q) && isDigit(q[j+2])) {
		real = true
		j += 2
		for j < len(q) && isDigit(q[j]) {
			j++
		}
	}
	num := q[i:j]
	k := j
	for k < len(q) && isIdentByte(q[k]) {
		k++
	}
	t.text = q[i:k]
	if k > j {
		unit, ok := units[q[j:k]]
		if !ok {
			return 0, &Error{Pos: t.pos, Msg: fmt.Sprintf("%q is not a number or a timespan", q[i:k]), Syntax: true}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, &Error{Pos: t.pos, Msg: fmt.Sprintf("%q is not a number", num), Syntax: true}
		}
		t.kind, t.d = tTimespan, time.Duration(f*float64(unit))
		return k, nil
	}
	if real {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, &Error{Pos: t.pos, Msg: fmt.Sprintf("%q is not a number", num), Syntax: true}
		}
		t.kind, t.f = tReal, f
		return j, nil
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, &Error{Pos: t.pos, Msg: fmt.Sprintf("%q is not a long", num), Syntax: true}
	}
	t.kind, t.i = tLong, n
	return j, nil
}

// lexString reads the string literal at the start of s (s[0] is the quote)
// and returns its value and length. Strings end at their line.
func lexString(s string, verbatim bool) (string, int, error) {
	quote := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			return "", 0, fmt.Errorf("unterminated string %s", s[:i])
		case c == quote && verbatim && i+1 < len(s) && s[i+1] == quote:
			b.WriteByte(quote) // "" inside @"..."
			i++
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\\' && !verbatim && i+1 < len(s) && s[i+1] != '\n':
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '"', '\'', '\\':
				b.WriteByte(s[i])
			case 'u':
				if i+4 < len(s) {
					if r, err := strconv.ParseUint(s[i+1:i+5], 16, 32); err == nil {
						b.WriteRune(rune(r))
						i += 4
						continue
					}
				}
				return "", 0, fmt.Errorf("bad \\u escape in %s", s[:i+1])
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c in string", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string %s", s)
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentByte(c byte) bool  { return isIdentStart(c) || isDigit(c) }
