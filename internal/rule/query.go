package rule

import (
	"fmt"
	"net/netip"
	"strings"
)

// The two lets of the query that hold the rule's configuration.
const (
	safeIPsName      = "KnownSafeIPs"
	safeNetworksName = "KnownSafeNetworks"
)

// queryError is a problem in the query text at a line of the query (1-based).
type queryError struct {
	line int
	msg  string
}

func (e *queryError) Error() string { return fmt.Sprintf("query line %d: %s", e.line, e.msg) }

type tokenKind int

const (
	tokWord   tokenKind = iota // identifier, keyword or number
	tokString                  // a string literal; text is its value
	tokPunct                   // any other single character
)

type token struct {
	kind tokenKind
	text string
	line int
}

func (t token) is(kind tokenKind, text string) bool { return t.kind == kind && t.text == text }

func (t token) String() string {
	switch t.kind {
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	case tokWord:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("'%s'", t.text)
}

// lexKQL splits a query into words, string literals and punctuation,
// dropping whitespace and // comments. It knows KQL's string forms ("...",
// '...' with backslash escapes; @"..." verbatim; h"..." obfuscated; ```...```
// multi-line) so that "//" inside a string is not taken for a comment.
func lexKQL(q string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '/' && i+1 < len(q) && q[i+1] == '/':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case strings.HasPrefix(q[i:], "```"):
			end := strings.Index(q[i+3:], "```")
			if end < 0 {
				return nil, &queryError{line, "unterminated ``` string"}
			}
			s := q[i+3 : i+3+end]
			toks = append(toks, token{tokString, s, line})
			line += strings.Count(s, "\n")
			i += 3 + end + 3
		case c == '"' || c == '\'':
			s, n, err := lexString(q[i:], false)
			if err != nil {
				return nil, &queryError{line, err.Error()}
			}
			toks = append(toks, token{tokString, s, line})
			i += n
		case (c == '@' || c == 'h' || c == 'H') && i+1 < len(q) && (q[i+1] == '"' || q[i+1] == '\'') &&
			(i == 0 || !isWordByte(q[i-1])):
			s, n, err := lexString(q[i+1:], c == '@')
			if err != nil {
				return nil, &queryError{line, err.Error()}
			}
			toks = append(toks, token{tokString, s, line})
			i += 1 + n
		case isWordByte(c):
			j := i
			for j < len(q) && (isWordByte(q[j]) || q[j] == '.' && j+1 < len(q) && isDigit(q[j+1])) {
				j++
			}
			toks = append(toks, token{tokWord, q[i:j], line})
			i = j
		default:
			toks = append(toks, token{tokPunct, string(c), line})
			i++
		}
	}
	return toks, nil
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
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string %s", s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return c == '_' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// safeLists returns the entries of `let KnownSafeIPs = dynamic([...]);` and
// of `let KnownSafeNetworks = datatable(network: string) [...];` in the
// query, checked: each IP must parse as an address and each network as a
// CIDR (or a bare address). A query without these lets has empty lists.
func safeLists(query string) (ips, networks []string, err error) {
	toks, err := lexKQL(query)
	if err != nil {
		return nil, nil, err
	}
	p := &tokens{toks: toks}
	seenIPs, seenNets := false, false
	for i := 0; i+2 < len(toks); i++ {
		if !toks[i].is(tokWord, "let") || !toks[i+2].is(tokPunct, "=") || toks[i+1].kind != tokWord {
			continue
		}
		p.pos = i + 3
		// The other literal form of each list is checked by the compiler
		// (internal/kql) only.
		if toks[i+1].text == safeIPsName && p.peek().is(tokWord, "datatable") || toks[i+1].text == safeNetworksName && p.peek().is(tokWord, "dynamic") {
			continue
		}
		switch toks[i+1].text {
		case safeIPsName:
			if seenIPs {
				return nil, nil, &queryError{toks[i].line, safeIPsName + " is defined twice"}
			}
			seenIPs = true
			if ips, err = p.dynamicList(); err != nil {
				return nil, nil, err
			}
		case safeNetworksName:
			if seenNets {
				return nil, nil, &queryError{toks[i].line, safeNetworksName + " is defined twice"}
			}
			seenNets = true
			if networks, err = p.datatableColumn("network"); err != nil {
				return nil, nil, err
			}
		}
	}
	return ips, networks, nil
}

// tokens is a cursor over the lexed query.
type tokens struct {
	toks []token
	pos  int
}

func (p *tokens) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	line := 1
	if len(p.toks) > 0 {
		line = p.toks[len(p.toks)-1].line
	}
	return token{tokPunct, "end of query", line}
}

// expect consumes the next token if it is (kind, text), else fails naming what.
func (p *tokens) expect(kind tokenKind, text, what string) error {
	t := p.peek()
	if !t.is(kind, text) {
		return &queryError{t.line, fmt.Sprintf("%s: expected %s, found %s", what, text, t)}
	}
	p.pos++
	return nil
}

// dynamicList reads `dynamic([ "a", "b" ])`: a list of IP strings.
func (p *tokens) dynamicList() ([]string, error) {
	const what = safeIPsName + " = dynamic([...])"
	if t := p.peek(); !t.is(tokWord, "dynamic") {
		return nil, &queryError{t.line, fmt.Sprintf("%s must be a dynamic([...]) list of quoted IPs, found %s (a watchlist is not read from the rule)", safeIPsName, t)}
	}
	p.pos++
	if err := p.expect(tokPunct, "(", what); err != nil {
		return nil, err
	}
	if err := p.expect(tokPunct, "[", what); err != nil {
		return nil, err
	}
	var out []string
	for {
		t := p.peek()
		p.pos++
		switch {
		case t.is(tokPunct, "]"):
			return out, p.expect(tokPunct, ")", what)
		case t.is(tokPunct, ","):
		case t.kind == tokString:
			ip := strings.TrimSpace(t.text)
			if ip == "" {
				continue
			}
			if _, err := netip.ParseAddr(ip); err != nil {
				return nil, &queryError{t.line, fmt.Sprintf("%s entry %q is not an IP address", safeIPsName, t.text)}
			}
			out = append(out, ip)
		default:
			return nil, &queryError{t.line, fmt.Sprintf("%s: expected a quoted IP, found %s", safeIPsName, t)}
		}
	}
}

// datatableColumn reads `datatable(col: type, ...) [ values ]` and returns the
// values of column key (or of the only column).
func (p *tokens) datatableColumn(key string) ([]string, error) {
	const what = safeNetworksName + " = datatable(...) [...]"
	if t := p.peek(); !t.is(tokWord, "datatable") {
		return nil, &queryError{t.line, fmt.Sprintf("%s must be a datatable(network: string) [...] of quoted CIDRs, found %s (a watchlist is not read from the rule)", safeNetworksName, t)}
	}
	p.pos++
	if err := p.expect(tokPunct, "(", what); err != nil {
		return nil, err
	}
	var cols []string
	for {
		// A column name is a word or, quoted, ['name'].
		bracketed := p.peek().is(tokPunct, "[")
		if bracketed {
			p.pos++
		}
		t := p.peek()
		if !bracketed && t.kind != tokWord || bracketed && t.kind != tokString {
			return nil, &queryError{t.line, fmt.Sprintf("%s: expected a column name, found %s", what, t)}
		}
		p.pos++
		if bracketed {
			if err := p.expect(tokPunct, "]", what); err != nil {
				return nil, err
			}
		}
		cols = append(cols, t.text)
		if err := p.expect(tokPunct, ":", what); err != nil {
			return nil, err
		}
		if t := p.peek(); t.kind != tokWord {
			return nil, &queryError{t.line, fmt.Sprintf("%s: expected a column type, found %s", what, t)}
		}
		p.pos++
		if p.peek().is(tokPunct, ",") {
			p.pos++
			continue
		}
		if err := p.expect(tokPunct, ")", what); err != nil {
			return nil, err
		}
		break
	}
	col := 0
	if len(cols) > 1 {
		col = -1
		for i, c := range cols {
			if c == key {
				col = i
			}
		}
		if col < 0 {
			return nil, &queryError{p.peek().line, fmt.Sprintf("%s has columns %v but none named %q", safeNetworksName, cols, key)}
		}
	}
	if err := p.expect(tokPunct, "[", what); err != nil {
		return nil, err
	}
	var out []string
	for n := 0; ; {
		t := p.peek()
		p.pos++
		switch {
		case t.is(tokPunct, "]"):
			if n%len(cols) != 0 {
				return nil, &queryError{t.line, fmt.Sprintf("%s: %d values do not fill rows of %d columns", safeNetworksName, n, len(cols))}
			}
			return out, nil
		case t.is(tokPunct, ","):
		case t.kind == tokString || t.kind == tokWord:
			isKey := n%len(cols) == col
			n++
			if !isKey {
				continue
			}
			if t.kind != tokString {
				return nil, &queryError{t.line, fmt.Sprintf("%s: expected a quoted CIDR, found %s", safeNetworksName, t)}
			}
			cidr := strings.TrimSpace(t.text)
			if cidr == "" {
				continue
			}
			if _, err := parsePrefix(cidr); err != nil {
				return nil, &queryError{t.line, fmt.Sprintf("%s entry %q: %v", safeNetworksName, t.text, err)}
			}
			out = append(out, cidr)
		default:
			return nil, &queryError{t.line, fmt.Sprintf("%s: expected a quoted CIDR, found %s", safeNetworksName, t)}
		}
	}
}
