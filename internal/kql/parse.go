package kql

import (
	"fmt"
	"strings"
	"time"
)

// The syntax tree: expressions (Expr) and tabular pipelines (Pipe).

// Expr is a scalar expression.
type Expr interface{ At() Pos }

type (
	// Ident names a column, a let or a table.
	Ident struct {
		P    Pos
		Name string
	}
	// Lit is a literal: string, long, real, bool, timespan, datetime, or
	// dynamic(...) (a list of values).
	Lit struct {
		P Pos
		V Value
	}
	// Binary is L Op R: and, or, comparisons, string operators, + - * /.
	Binary struct {
		P    Pos
		Op   string
		L, R Expr
	}
	// Unary is -X.
	Unary struct {
		P  Pos
		Op string
		X  Expr
	}
	// Call is Name(Args).
	Call struct {
		P    Pos
		Name string
		Args []Expr
	}
	// NamedArg is name = X inside a call's arguments.
	NamedArg struct {
		P    Pos
		Name string
		X    Expr
	}
	// InExpr is L Op (List): in, !in, in~, !in~, has_any, has_all.
	InExpr struct {
		P    Pos
		Op   string
		L    Expr
		List []Expr
	}
	// Between is L [!]between (Lo .. Hi).
	Between struct {
		P         Pos
		Neg       bool
		L, Lo, Hi Expr
	}
	// Member is X.Name or X["Name"] or X[index].
	Member struct {
		P     Pos
		X     Expr
		Name  string
		Index Expr // X[Index] when not nil
	}
	// TabularExpr is a pipeline used where a value is expected (the right
	// side of in, a let's value).
	TabularExpr struct{ Pipe *Pipe }
)

func (e *Ident) At() Pos       { return e.P }
func (e *Lit) At() Pos         { return e.P }
func (e *Binary) At() Pos      { return e.P }
func (e *Unary) At() Pos       { return e.P }
func (e *Call) At() Pos        { return e.P }
func (e *NamedArg) At() Pos    { return e.P }
func (e *InExpr) At() Pos      { return e.P }
func (e *Between) At() Pos     { return e.P }
func (e *Member) At() Pos      { return e.P }
func (e *TabularExpr) At() Pos { return e.Pipe.P }

// Pipe is a tabular source and the operators applied to it.
type Pipe struct {
	P Pos
	// Source is one of: *Ident (a table or a tabular let), *Datatable,
	// *Union, *Pipe (parenthesised), *Call (a function: materialize(T)).
	Source any
	Ops    []*Op
}

// Datatable is datatable(col: type, ...) [values].
type Datatable struct {
	P     Pos
	Cols  []string
	Types []string
	Vals  []Expr
}

// Union is union [Param = Value ...] T1, T2, ...
type Union struct {
	P Pos
	// Params are union's parameters (kind, isfuzzy, withsource), by name,
	// as written; the compiler decides which it runs.
	Params []Param
	Tables []*Pipe
}

// Param is a name = value parameter of an operator (union's isfuzzy=true).
type Param struct {
	P     Pos
	Name  string
	Value string
}

// Op is one tabular operator after a |.
type Op struct {
	P    Pos
	Name string // where, project, project-away, project-rename, extend, join, order by, summarize, evaluate
	// Pred is where's predicate.
	Pred Expr
	// Cols are project/extend/project-rename/summarize columns: Name = X, or
	// X alone (Name "").
	Cols []Assign
	// By are summarize's by columns and order by's keys.
	By []Assign
	// Desc[i] tells whether order by's key i is descending.
	Desc []bool
	// Join: Kind ("" when not given), Right and On.
	Kind  string
	Right *Pipe
	On    []Expr
	// Call is evaluate's plugin call.
	Call *Call
}

// Assign is Name = X, or X alone, or (Name1, Name2, ...) = X (Names: a
// function returning several columns, as series_decompose_anomalies).
type Assign struct {
	P     Pos
	Name  string
	Names []string
	X     Expr
}

// Let is let Name = value;.
type Let struct {
	P     Pos
	Name  string
	Value Expr // a scalar, or *TabularExpr
}

// Query is a parsed query: its lets and its final tabular statement.
type Query struct {
	Lets []*Let
	Body *Pipe
}

// Parse parses a query. Errors are *Error.
func Parse(q string) (*Query, error) {
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	return p.query()
}

type parser struct {
	toks []token
	pos  int
	op   string // the operator being parsed, for errors
}

func (p *parser) peek() token        { return p.toks[p.pos] }
func (p *parser) peekAt(k int) token { return p.toks[min(p.pos+k, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) isOp(text string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == text
}

func (p *parser) isWord(text string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == text
}

func (p *parser) syntax(t token, format string, args ...any) error {
	return &Error{Pos: t.pos, Op: p.op, Msg: fmt.Sprintf(format, args...), Syntax: true}
}

func (p *parser) unsupported(t token, op, format string, args ...any) error {
	return &Error{Pos: t.pos, Op: op, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) expectOp(text string) (token, error) {
	t := p.next()
	if t.kind != tOp || t.text != text {
		return t, p.syntax(t, "expected '%s', found %s", text, t)
	}
	return t, nil
}

func (p *parser) expectIdent() (token, error) {
	t := p.next()
	if t.kind != tIdent {
		return t, p.syntax(t, "expected a name, found %s", t)
	}
	return t, nil
}

func (p *parser) query() (*Query, error) {
	q := &Query{}
	for {
		for p.isOp(";") {
			p.next()
		}
		t := p.peek()
		if t.kind == tEOF {
			break
		}
		if t.kind == tIdent && t.text == "let" {
			l, err := p.let()
			if err != nil {
				return nil, err
			}
			q.Lets = append(q.Lets, l)
			continue
		}
		if t.kind == tIdent && (t.text == "set" || t.text == "declare" || t.text == "alias" || t.text == "pattern") {
			return nil, p.unsupported(t, t.text, "%s statements are not supported", t.text)
		}
		if q.Body != nil {
			return nil, p.unsupported(t, "query", "a second tabular statement: a rule's query has one result")
		}
		p.op = ""
		pipe, err := p.pipe()
		if err != nil {
			return nil, err
		}
		q.Body = pipe
		if t := p.peek(); t.kind != tEOF && !p.isOp(";") {
			return nil, p.syntax(t, "expected ';' or the end of the query, found %s", t)
		}
	}
	if q.Body == nil {
		return nil, &Error{Pos: p.peek().pos, Msg: "the query has no tabular statement (only lets)"}
	}
	return q, nil
}

func (p *parser) let() (*Let, error) {
	lt := p.next()
	p.op = "let"
	name, err := p.expectIdent()
	if err != nil {
		return nil, err
	}
	p.op = "let " + name.text
	if _, err := p.expectOp("="); err != nil {
		return nil, err
	}
	if p.isOp("(") && p.looksLikeLambda() {
		return nil, p.unsupported(p.peek(), p.op, "user-defined functions are not supported")
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); !p.isOp(";") {
		return nil, p.syntax(t, "expected ';' after the let, found %s", t)
	}
	p.next()
	return &Let{P: lt.pos, Name: name.text, Value: v}, nil
}

// looksLikeLambda tells (a: string) { ... } from a parenthesised value.
func (p *parser) looksLikeLambda() bool {
	t1, t2 := p.peekAt(1), p.peekAt(2)
	return t1.kind == tOp && t1.text == ")" || t1.kind == tIdent && t2.kind == tOp && t2.text == ":"
}

// value parses a let's value or a statement: a pipeline, or a scalar.
func (p *parser) value() (Expr, error) {
	e, err := p.operand()
	if err != nil {
		return nil, err
	}
	if c, ok := e.(*Call); ok && c.Name == "materialize" {
		// materialize(T) is T, cached: a tabular let.
		return &TabularExpr{&Pipe{P: c.P, Source: c}}, nil
	}
	return e, nil
}

// operand parses a value that may be a tabular expression: a let's value,
// a function's argument (materialize(T | ...), toscalar(T | ...)), an
// element of in (...). A table name or a function call followed by '|',
// union, datatable, or a parenthesis holding a '|' is tabular.
func (p *parser) operand() (Expr, error) {
	if p.isWord("union") || p.isWord("datatable") && p.peekAt(1).kind == tOp && p.peekAt(1).text == "(" || p.isOp("(") && p.parenIsTabular() {
		pipe, err := p.pipe()
		if err != nil {
			return nil, err
		}
		return &TabularExpr{pipe}, nil
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if !p.isOp("|") {
		return e, nil
	}
	var pipe *Pipe
	switch s := e.(type) {
	case *Ident:
		pipe = &Pipe{P: s.P, Source: s}
	case *Call:
		pipe = &Pipe{P: s.P, Source: s}
	default:
		return nil, p.syntax(p.peek(), "'|' after a value that is not a table")
	}
	if err := p.ops(pipe); err != nil {
		return nil, err
	}
	return &TabularExpr{pipe}, nil
}

// parenIsTabular tells whether a parenthesis opens a pipeline (it holds a
// '|' at its own depth, or starts with a tabular keyword).
func (p *parser) parenIsTabular() bool {
	depth := 0
	for k := p.pos; k < len(p.toks); k++ {
		t := p.toks[k]
		if t.kind == tIdent && depth == 1 && k == p.pos+1 && (t.text == "datatable" || t.text == "union") {
			return true
		}
		if t.kind != tOp {
			continue
		}
		switch t.text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
			if depth == 0 {
				return false
			}
		case "|":
			if depth == 1 {
				return true
			}
		}
	}
	return false
}

// pipe parses source | op | op ...
func (p *parser) pipe() (*Pipe, error) {
	t := p.peek()
	pipe := &Pipe{P: t.pos}
	switch {
	case t.kind == tIdent && t.text == "datatable":
		dt, err := p.datatable()
		if err != nil {
			return nil, err
		}
		pipe.Source = dt
	case t.kind == tIdent && t.text == "union":
		p.next()
		p.op = "union"
		u := &Union{P: t.pos}
		for p.peek().kind == tIdent && p.peekAt(1).kind == tOp && p.peekAt(1).text == "=" {
			opt := p.next()
			p.next()
			v := p.next()
			if v.kind != tIdent {
				return nil, p.syntax(v, "expected a value for union's %s, found %s", opt.text, v)
			}
			u.Params = append(u.Params, Param{P: opt.pos, Name: opt.text, Value: v.text})
		}
		for {
			var sub *Pipe
			if p.isOp("(") {
				p.next()
				var err error
				if sub, err = p.pipe(); err != nil {
					return nil, err
				}
				if _, err := p.expectOp(")"); err != nil {
					return nil, err
				}
			} else {
				id, err := p.expectIdent()
				if err != nil {
					return nil, err
				}
				sub = &Pipe{P: id.pos, Source: &Ident{P: id.pos, Name: id.text}}
			}
			u.Tables = append(u.Tables, sub)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
		pipe.Source = u
	case t.kind == tOp && t.text == "(":
		p.next()
		sub, err := p.pipe()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		pipe.Source = sub
	case t.kind == tIdent:
		p.next()
		if p.isOp("(") {
			// A function as the source (materialize(...), table("..."),
			// _GetWatchlist('...')): the compiler decides.
			c, err := p.call(t)
			if err != nil {
				return nil, err
			}
			pipe.Source = c
			break
		}
		pipe.Source = &Ident{P: t.pos, Name: t.text}
	default:
		return nil, p.syntax(t, "expected a table, found %s", t)
	}
	return pipe, p.ops(pipe)
}

func (p *parser) datatable() (*Datatable, error) {
	t := p.next()
	p.op = "datatable"
	dt := &Datatable{P: t.pos}
	if _, err := p.expectOp("("); err != nil {
		return nil, err
	}
	for {
		var name string
		if p.isOp("[") {
			p.next()
			s := p.next()
			if s.kind != tString {
				return nil, p.syntax(s, "expected a quoted column name, found %s", s)
			}
			name = s.str
			if _, err := p.expectOp("]"); err != nil {
				return nil, err
			}
		} else {
			id, err := p.expectIdent()
			if err != nil {
				return nil, err
			}
			name = id.text
		}
		if _, err := p.expectOp(":"); err != nil {
			return nil, err
		}
		typ, err := p.expectIdent()
		if err != nil {
			return nil, err
		}
		dt.Cols = append(dt.Cols, name)
		dt.Types = append(dt.Types, typ.text)
		if p.isOp(",") {
			p.next()
			continue
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		break
	}
	if _, err := p.expectOp("["); err != nil {
		return nil, err
	}
	for !p.isOp("]") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		dt.Vals = append(dt.Vals, e)
		if p.isOp(",") {
			p.next() // a trailing comma is allowed in a datatable
			continue
		}
		if !p.isOp("]") {
			return nil, p.syntax(p.peek(), "expected ',' or ']', found %s", p.peek())
		}
	}
	p.next()
	if len(dt.Vals)%len(dt.Cols) != 0 {
		return nil, p.syntax(t, "%d values do not fill rows of %d columns", len(dt.Vals), len(dt.Cols))
	}
	return dt, nil
}

// knownOperators are KQL's tabular operators this engine does not run:
// refused as not supported rather than as syntax errors.
var knownOperators = map[string]bool{
	"as": true, "consume": true, "count": true, "distinct": true, "extend": true, "facet": true, "find": true,
	"fork": true, "getschema": true, "invoke": true, "limit": true, "lookup": true, "make-series": true,
	"mv-apply": true, "mv-expand": true, "parse": true, "parse-where": true, "parse-kv": true, "partition": true,
	"project-keep": true, "project-reorder": true, "reduce": true, "render": true, "sample": true,
	"sample-distinct": true, "scan": true, "search": true, "serialize": true, "sort": true, "take": true,
	"top": true, "top-nested": true, "top-hitters": true, "union": true, "range": true, "print": true,
	"make-graph": true, "graph-match": true, "externaldata": true, "filter": true,
	// The older spellings KQL still accepts.
	"mvexpand": true, "mvapply": true, "makeseries": true, "topnested": true, "parsekv": true, "project-smart": true,
}

func (p *parser) ops(pipe *Pipe) error {
	for p.isOp("|") {
		p.next()
		t := p.next()
		if t.kind != tIdent {
			return p.syntax(t, "expected an operator after '|', found %s", t)
		}
		op := &Op{P: t.pos, Name: t.text}
		p.op = t.text
		var err error
		switch t.text {
		case "where":
			op.Pred, err = p.expr()
		case "project", "extend", "project-rename":
			op.Cols, err = p.assigns(t.text != "project-rename")
		case "project-away":
			op.Cols, err = p.assigns(true)
		case "order", "sort":
			if !p.isWord("by") {
				return p.syntax(p.peek(), "expected 'by', found %s", p.peek())
			}
			p.next()
			op.Name = "order by"
			p.op = "order by"
			err = p.orderKeys(op)
		case "summarize":
			err = p.summarize(op)
		case "join":
			err = p.join(op)
		case "evaluate":
			err = p.evaluate(op)
		default:
			if knownOperators[t.text] {
				return p.unsupported(t, t.text, "the %s operator is not supported by this engine", t.text)
			}
			return p.syntax(t, "unknown operator %q", t.text)
		}
		if err != nil {
			return err
		}
		pipe.Ops = append(pipe.Ops, op)
	}
	return nil
}

// assigns parses a comma-separated list of Name = X or X (bare allowed).
func (p *parser) assigns(bare bool) ([]Assign, error) {
	var out []Assign
	for {
		t := p.peek()
		a := Assign{P: t.pos}
		if t.kind == tIdent && p.peekAt(1).kind == tOp && p.peekAt(1).text == "=" {
			p.next()
			p.next()
			a.Name = t.text
		} else if names, ok := p.tupleNames(); ok && bare {
			a.Names = names
		} else if !bare {
			return nil, p.syntax(t, "expected NewName = Column, found %s", t)
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		a.X = e
		out = append(out, a)
		if !p.isOp(",") {
			return out, nil
		}
		p.next()
	}
}

// tupleNames reads "(a, b, c) =", the names of a tuple assignment, when
// the tokens ahead are one; it reads nothing otherwise.
func (p *parser) tupleNames() ([]string, bool) {
	if !p.isOp("(") {
		return nil, false
	}
	var names []string
	k := 1
	for {
		t := p.peekAt(k)
		if t.kind != tIdent {
			return nil, false
		}
		names = append(names, t.text)
		sep := p.peekAt(k + 1)
		if sep.kind != tOp {
			return nil, false
		}
		k += 2
		if sep.text == ")" {
			break
		}
		if sep.text != "," {
			return nil, false
		}
	}
	if eq := p.peekAt(k); eq.kind != tOp || eq.text != "=" {
		return nil, false
	}
	p.pos += k + 1
	return names, true
}

func (p *parser) orderKeys(op *Op) error {
	for {
		t := p.peek()
		e, err := p.expr()
		if err != nil {
			return err
		}
		desc := true // KQL sorts descending unless told
		if p.isWord("asc") {
			p.next()
			desc = false
		} else if p.isWord("desc") {
			p.next()
		}
		if p.isWord("nulls") {
			return p.unsupported(p.peek(), "order by", "nulls first/last is not supported")
		}
		op.By = append(op.By, Assign{P: t.pos, X: e})
		op.Desc = append(op.Desc, desc)
		if !p.isOp(",") {
			return nil
		}
		p.next()
	}
}

func (p *parser) summarize(op *Op) error {
	if !p.isWord("by") {
		cols, err := p.assigns(true)
		if err != nil {
			return err
		}
		op.Cols = cols
	}
	if p.isWord("by") {
		p.next()
		by, err := p.assigns(true)
		if err != nil {
			return err
		}
		op.By = by
	}
	return nil
}

func (p *parser) join(op *Op) error {
	for p.peek().kind == tIdent && p.peekAt(1).kind == tOp && p.peekAt(1).text == "=" {
		name := p.next()
		p.next()
		v := p.next()
		if name.text != "kind" {
			return p.unsupported(name, "join", "join parameter %s is not supported", name.text)
		}
		if v.kind != tIdent {
			return p.syntax(v, "expected a join kind, found %s", v)
		}
		switch v.text {
		case "inner", "innerunique", "leftouter", "leftanti", "leftsemi", "rightouter", "rightanti", "rightsemi", "fullouter", "anti", "leftantisemi", "rightantisemi", "semi":
		default:
			return p.syntax(v, "unknown join kind %q", v.text)
		}
		op.Kind = v.text
	}
	var right *Pipe
	if p.isOp("(") {
		p.next()
		var err error
		if right, err = p.pipe(); err != nil {
			return err
		}
		if _, err := p.expectOp(")"); err != nil {
			return err
		}
	} else {
		id, err := p.expectIdent()
		if err != nil {
			return err
		}
		right = &Pipe{P: id.pos, Source: &Ident{P: id.pos, Name: id.text}}
	}
	p.op = "join"
	op.Right = right
	if !p.isWord("on") {
		return p.syntax(p.peek(), "expected 'on', found %s", p.peek())
	}
	p.next()
	for {
		e, err := p.expr()
		if err != nil {
			return err
		}
		op.On = append(op.On, e)
		if !p.isOp(",") {
			return nil
		}
		p.next()
	}
}

func (p *parser) evaluate(op *Op) error {
	t := p.peek()
	e, err := p.expr()
	if err != nil {
		return err
	}
	c, ok := e.(*Call)
	if !ok {
		return p.syntax(t, "expected a plugin call, found %s", t)
	}
	op.Call = c
	return nil
}

// Expressions, loosest first: or, and, comparisons, + -, * / %, unary,
// postfix.

func (p *parser) expr() (Expr, error) { return p.or() }

func (p *parser) or() (Expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &Binary{P: t.pos, Op: "or", L: l, R: r}
	}
	return l, nil
}

func (p *parser) and() (Expr, error) {
	l, err := p.compare()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		t := p.next()
		r, err := p.compare()
		if err != nil {
			return nil, err
		}
		l = &Binary{P: t.pos, Op: "and", L: l, R: r}
	}
	return l, nil
}

// stringOps are the binary string operators (words); each also has a !
// form (lexed as one "!word" operator token).
var stringOps = map[string]bool{
	"has": true, "has_cs": true, "hasprefix": true, "hasprefix_cs": true, "hassuffix": true, "hassuffix_cs": true,
	"contains": true, "contains_cs": true, "startswith": true, "startswith_cs": true, "endswith": true, "endswith_cs": true,
	"like": true, "notlike": true,
}

var listOps = map[string]bool{"in": true, "!in": true, "in~": true, "!in~": true, "has_any": true, "has_all": true}

func (p *parser) compare() (Expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	var op string
	switch {
	case t.kind == tOp && (t.text == "==" || t.text == "!=" || t.text == "=~" || t.text == "!~" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=" || t.text == "<>"):
		op = t.text
	case t.kind == tIdent && (stringOps[t.text] || listOps[t.text] || t.text == "between" || t.text == "matches"):
		op = t.text
	case t.kind == tOp && len(t.text) > 1 && t.text[0] == '!' && (stringOps[t.text[1:]] || listOps[t.text] || t.text == "!between"):
		op = t.text
	default:
		return l, nil
	}
	p.next()
	switch {
	case op == "matches":
		if !p.isWord("regex") {
			return nil, p.syntax(p.peek(), "expected 'regex' after 'matches', found %s", p.peek())
		}
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		return &Binary{P: t.pos, Op: "matches regex", L: l, R: r}, nil
	case listOps[op]:
		if _, err := p.expectOp("("); err != nil {
			return nil, err
		}
		in := &InExpr{P: t.pos, Op: op, L: l}
		{
			for !p.isOp(")") {
				e, err := p.operand()
				if err != nil {
					return nil, err
				}
				in.List = append(in.List, e)
				if p.isOp(",") {
					p.next()
					if p.isOp(")") {
						return nil, p.syntax(p.peek(), "expected a value after ',', found ')'")
					}
					continue
				}
				if !p.isOp(")") {
					return nil, p.syntax(p.peek(), "expected ',' or ')', found %s", p.peek())
				}
			}
		}
		p.next()
		if len(in.List) == 0 {
			return nil, p.syntax(t, "%s () lists nothing", op)
		}
		return in, nil
	case op == "between" || op == "!between":
		if _, err := p.expectOp("("); err != nil {
			return nil, err
		}
		lo, err := p.additive()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectOp(".."); err != nil {
			return nil, err
		}
		hi, err := p.additive()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return &Between{P: t.pos, Neg: op == "!between", L: l, Lo: lo, Hi: hi}, nil
	}
	if op == "<>" {
		op = "!="
	}
	r, err := p.additive()
	if err != nil {
		return nil, err
	}
	return &Binary{P: t.pos, Op: op, L: l, R: r}, nil
}

func (p *parser) additive() (Expr, error) {
	l, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		t := p.next()
		r, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		l = &Binary{P: t.pos, Op: t.text, L: l, R: r}
	}
	return l, nil
}

func (p *parser) multiplicative() (Expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") || p.isOp("%") {
		t := p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &Binary{P: t.pos, Op: t.text, L: l, R: r}
	}
	return l, nil
}

func (p *parser) unary() (Expr, error) {
	if p.isOp("-") || p.isOp("+") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &Unary{P: t.pos, Op: "-", X: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (Expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp(".") && p.peekAt(1).kind == tIdent:
			t := p.next()
			name := p.next()
			x = &Member{P: t.pos, X: x, Name: name.text}
		case p.isOp(".") && p.peekAt(1).kind == tOp && p.peekAt(1).text == "[":
			// x.[0] is x[0]: KQL allows the dot before an index.
			p.next()
			t := p.next()
			i, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp("]"); err != nil {
				return nil, err
			}
			if l, ok := i.(*Lit); ok && l.V.Kind == KString {
				x = &Member{P: t.pos, X: x, Name: l.V.S}
			} else {
				x = &Member{P: t.pos, X: x, Index: i}
			}
		case p.isOp("[") && p.peek().glued:
			t := p.next()
			i, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp("]"); err != nil {
				return nil, err
			}
			if l, ok := i.(*Lit); ok && l.V.Kind == KString {
				x = &Member{P: t.pos, X: x, Name: l.V.S}
			} else {
				x = &Member{P: t.pos, X: x, Index: i}
			}
		default:
			return x, nil
		}
	}
}

func (p *parser) primary() (Expr, error) {
	t := p.next()
	switch t.kind {
	case tString:
		// Adjacent string literals are one string, as in KQL.
		s := t.str
		for p.peek().kind == tString {
			s += p.next().str
		}
		return &Lit{P: t.pos, V: Str(s)}, nil
	case tLong:
		return &Lit{P: t.pos, V: Value{Kind: KLong, I: t.i}}, nil
	case tReal:
		return &Lit{P: t.pos, V: Value{Kind: KReal, F: t.f}}, nil
	case tTimespan:
		return &Lit{P: t.pos, V: Value{Kind: KTimespan, D: t.d}}, nil
	case tDatetime:
		return &Lit{P: t.pos, V: Value{Kind: KDatetime, T: t.t}}, nil
	case tIdent:
		switch t.text {
		case "true", "false":
			return &Lit{P: t.pos, V: Bool(t.text == "true")}, nil
		case "dynamic":
			if p.isOp("(") {
				p.next()
				v, err := p.dynamic()
				if err != nil {
					return nil, err
				}
				if _, err := p.expectOp(")"); err != nil {
					return nil, err
				}
				return &Lit{P: t.pos, V: v}, nil
			}
		}
		if p.isOp("(") {
			return p.call(t)
		}
		return &Ident{P: t.pos, Name: t.text}, nil
	case tOp:
		switch t.text {
		case "(":
			p.pos--
			if p.parenIsTabular() {
				pipe, err := p.pipe()
				if err != nil {
					return nil, err
				}
				return &TabularExpr{pipe}, nil
			}
			p.pos++
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			// ['column name']
			s := p.next()
			if s.kind != tString {
				return nil, p.syntax(s, "expected a quoted name after '[', found %s", s)
			}
			if _, err := p.expectOp("]"); err != nil {
				return nil, err
			}
			return &Ident{P: t.pos, Name: s.str}, nil
		}
	}
	return nil, p.syntax(t, "expected a value, found %s", t)
}

func (p *parser) call(name token) (Expr, error) {
	p.next() // (
	c := &Call{P: name.pos, Name: name.text}
	for !p.isOp(")") {
		t := p.peek()
		if t.kind == tIdent && p.peekAt(1).kind == tOp && p.peekAt(1).text == "=" {
			p.next()
			p.next()
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			c.Args = append(c.Args, &NamedArg{P: t.pos, Name: t.text, X: x})
		} else if nx := p.peekAt(1); p.isOp("*") && nx.kind == tOp && (nx.text == ")" || nx.text == ",") {
			// arg_max(TimeGenerated, *): every column.
			p.next()
			c.Args = append(c.Args, &Ident{P: t.pos, Name: "*"})
		} else {
			x, err := p.operand()
			if err != nil {
				return nil, err
			}
			c.Args = append(c.Args, x)
		}
		if p.isOp(",") {
			p.next()
			if p.isOp(")") {
				return nil, p.syntax(p.peek(), "expected an argument after ',', found ')'")
			}
			continue
		}
		if !p.isOp(")") {
			return nil, p.syntax(p.peek(), "expected ',' or ')' in %s(...), found %s", name.text, p.peek())
		}
	}
	p.next()
	return c, nil
}

// dynamic parses the literal inside dynamic(...): a JSON-like value. A
// trailing comma in a list is a syntax error, as in KQL.
func (p *parser) dynamic() (Value, error) {
	t := p.next()
	switch {
	case t.kind == tOp && t.text == "[":
		v := Value{Kind: KDynamic, List: []Value{}}
		for !p.isOp("]") {
			e, err := p.dynamic()
			if err != nil {
				return Value{}, err
			}
			v.List = append(v.List, e)
			if p.isOp(",") {
				p.next()
				if p.isOp("]") {
					return Value{}, p.syntax(p.peek(), "expected a value after ',' in dynamic([...]), found ']' (a trailing comma)")
				}
				continue
			}
			if !p.isOp("]") {
				return Value{}, p.syntax(p.peek(), "expected ',' or ']' in dynamic([...]), found %s", p.peek())
			}
		}
		p.next()
		return v, nil
	case t.kind == tOp && t.text == "{":
		return Value{}, p.unsupported(t, "dynamic", "property bags in dynamic({...}) are not supported")
	case t.kind == tString:
		s := t.str
		for p.peek().kind == tString {
			s += p.next().str
		}
		return Str(s), nil
	case t.kind == tLong:
		return Value{Kind: KLong, I: t.i}, nil
	case t.kind == tReal:
		return Value{Kind: KReal, F: t.f}, nil
	case t.kind == tIdent && (t.text == "true" || t.text == "false"):
		return Bool(t.text == "true"), nil
	case t.kind == tIdent && t.text == "null":
		return Value{Kind: KNull}, nil
	case t.kind == tOp && t.text == "-":
		n := p.next()
		switch n.kind {
		case tLong:
			return Value{Kind: KLong, I: -n.i}, nil
		case tReal:
			return Value{Kind: KReal, F: -n.f}, nil
		}
		return Value{}, p.syntax(n, "expected a number after '-', found %s", n)
	}
	return Value{}, p.syntax(t, "expected a value in dynamic(...), found %s", t)
}

// describe is a short form of an expression for messages and plans.
func describe(e Expr) string {
	switch e := e.(type) {
	case *Ident:
		return e.Name
	case *Lit:
		return e.V.String()
	case *Binary:
		return "(" + describe(e.L) + " " + e.Op + " " + describe(e.R) + ")"
	case *Unary:
		return "-" + describe(e.X)
	case *Call:
		var args []string
		for _, a := range e.Args {
			args = append(args, describe(a))
		}
		return e.Name + "(" + strings.Join(args, ", ") + ")"
	case *NamedArg:
		return e.Name + " = " + describe(e.X)
	case *InExpr:
		var args []string
		for _, a := range e.List {
			args = append(args, describe(a))
		}
		return describe(e.L) + " " + e.Op + " (" + strings.Join(args, ", ") + ")"
	case *Between:
		op := " between "
		if e.Neg {
			op = " !between "
		}
		return describe(e.L) + op + "(" + describe(e.Lo) + " .. " + describe(e.Hi) + ")"
	case *Member:
		if e.Index != nil {
			return describe(e.X) + "[" + describe(e.Index) + "]"
		}
		return describe(e.X) + "." + e.Name
	case *TabularExpr:
		return "(table)"
	}
	return "?"
}

var _ = time.Second
