package kql

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary is a `summarize Aggregates by Keys` that runs after the join over
// its pair rows (the columns of the rule's project before it: Pre), with
// the where, project, extend and order by that follow it. detect and test
// run it over the whole result of a run (Run); process and the function
// refuse it (pipeline.New): a group's value would change as later blobs
// arrive, and an alert already sent cannot be taken back.
type Summary struct {
	At Pos // the summarize operator, in the query
	// FileLine is its line in the rule file (0: unknown), set by rule.Load.
	FileLine int
	Pre      []Column // the columns it reads, in order (the rows of the join's result)
	By       []Column // the by columns, over Row.P = a pre row
	Agg      []Agg
	// Post are the where predicates after it, over its output row (by
	// columns, then aggregates).
	Post []*Node
	// Out are the result's columns, over the summarize's output row.
	Out []Column
	// Order and Desc are the order by after it; without one the rows are
	// sorted by every output column ascending (Kusto's order is unspecified).
	Order []*Node
	Desc  []bool
}

// Agg is one aggregate: Fn over Arg (nil for count()), with Extra the
// other arguments (arg_max's columns; make_set's limit in Max).
type Agg struct {
	Fn    string
	Names []string // its output columns (arg_min/arg_max: several)
	Arg   *Node
	Cols  []*Node // arg_min/arg_max's returned columns
	Max   int     // make_set, make_list: the size limit
	Types []Kind
}

// aggregates this engine computes, with Kusto's default output name prefix.
var aggPrefix = map[string]string{
	"count": "count_", "countif": "countif_", "dcount": "dcount_", "make_set": "set_", "make_list": "list_",
	"min": "min_", "max": "max_", "sum": "sum_", "arg_min": "", "arg_max": "",
}

// defaultMakeLimit is make_set's and make_list's default maximum size.
const defaultMakeLimit = 1048576

// pcol is a column of Row.P.
func pcol(name string, k int, t Kind) *Node {
	// Sides both: a row of the joined table (and never folded as a constant).
	return &Node{Key: name, Sides: SideI | SideN, Type: t, op: "pcol", col: name, Eval: func(row *Row) Value { return row.P[k] }}
}

// summarize compiles a summarize after the join.
func (c *compiler) summarize(r *rel, op *Op) error {
	if !r.joined {
		return refuse(op.P, "summarize", "summarize is supported only after the join, over its pair rows (a summarize of one table before the join changes what is joined: not supported)")
	}
	if r.sum != nil {
		return refuse(op.P, "summarize", "a second summarize is not supported")
	}
	s := &Summary{At: op.P}
	in := &rel{joined: true}
	for k, cl := range r.cols {
		if cl.node.usesAgo() {
			return refuse(op.P, "summarize", "column %s uses ago()", cl.name)
		}
		s.Pre = append(s.Pre, Column{cl.name, cl.node})
		in.cols = append(in.cols, relCol{cl.name, pcol(cl.name, k, cl.node.Type)})
	}
	var out []relCol
	add := func(at Pos, name string, t Kind) error {
		if slices.ContainsFunc(out, func(c relCol) bool { return c.name == name }) {
			return refuse(at, "summarize", "column %s is named twice", name)
		}
		out = append(out, relCol{name, pcol(name, len(out), t)})
		return nil
	}
	for _, b := range op.By {
		name := b.Name
		if name == "" {
			switch x := b.X.(type) {
			case *Ident:
				name = x.Name
			case *Call:
				// bin(Column, span) keeps the column's name, as Kusto does.
				if x.Name == "bin" && len(x.Args) == 2 {
					name = identName(x.Args[0])
				}
			}
			if name == "" {
				return refuse(b.P, "summarize", "name the by expression %s (Name = ...)", describe(b.X))
			}
		}
		n, err := c.byExpr(b.X, in)
		if err != nil {
			return err
		}
		s.By = append(s.By, Column{name, n})
		if err := add(b.P, name, n.Type); err != nil {
			return err
		}
	}
	for _, a := range op.Cols {
		if a.Names != nil {
			return refuse(a.P, "summarize", "(%s) = ...: not supported; name each aggregate", strings.Join(a.Names, ", "))
		}
		call, ok := a.X.(*Call)
		if !ok {
			return refuse(a.X.At(), "summarize", "%s is not an aggregate function", describe(a.X))
		}
		g, err := c.aggregate(call, a.Name, in)
		if err != nil {
			return err
		}
		for k, name := range g.Names {
			if err := add(a.P, name, g.Types[k]); err != nil {
				return err
			}
		}
		s.Agg = append(s.Agg, g)
	}
	if len(op.By) == 0 && len(op.Cols) == 0 {
		return &Error{Pos: op.P, Op: "summarize", Msg: "summarize with no aggregate and no by", Syntax: true}
	}
	r.sum, r.sumPre, r.cols, r.order, r.orderDesc = s, r.cols, out, nil, nil
	return nil
}

// byExpr compiles a by expression: a column, bin(column, span) or another
// scalar expression of the pre row.
func (c *compiler) byExpr(e Expr, in *rel) (*Node, error) {
	call, ok := e.(*Call)
	if !ok || call.Name != "bin" {
		return c.expr(e, in, "summarize")
	}
	if len(call.Args) != 2 {
		return nil, &Error{Pos: call.P, Op: "summarize", Msg: "bin() takes 2 arguments", Syntax: true}
	}
	x, err := c.expr(call.Args[0], in, "summarize")
	if err != nil {
		return nil, err
	}
	size, err := c.expr(call.Args[1], nil, "summarize")
	if err != nil {
		return nil, err
	}
	if !size.isLit() {
		return nil, refuse(call.P, "summarize", "bin()'s size must be a constant")
	}
	key := "bin(" + x.Key + ", " + size.Key + ")"
	switch {
	case x.Type == KDatetime && size.lit.Kind == KTimespan && size.lit.D > 0:
		// Kusto bins a datetime down to a multiple of the size counted
		// from 0001-01-01, as time.Truncate does.
		d := size.lit.D
		return &Node{Key: key, Type: KDatetime, op: "bin", args: []*Node{x}, Eval: func(row *Row) Value {
			v := x.Eval(row)
			if v.Kind != KDatetime {
				return null
			}
			return Value{Kind: KDatetime, T: v.T.Truncate(d)}
		}}, nil
	case x.Type == KTimespan && size.lit.Kind == KTimespan && size.lit.D > 0:
		d := size.lit.D
		return &Node{Key: key, Type: KTimespan, op: "bin", args: []*Node{x}, Eval: func(row *Row) Value {
			v := x.Eval(row)
			if v.Kind != KTimespan {
				return null
			}
			q := v.D / d
			if v.D%d < 0 {
				q--
			}
			return Value{Kind: KTimespan, D: q * d}
		}}, nil
	case x.Type == KLong && size.lit.Kind == KLong && size.lit.I > 0:
		m := size.lit.I
		return &Node{Key: key, Type: KLong, op: "bin", args: []*Node{x}, Eval: func(row *Row) Value {
			v := x.Eval(row)
			if v.Kind != KLong {
				return null
			}
			q := v.I / m
			if v.I%m < 0 {
				q--
			}
			return Value{Kind: KLong, I: q * m}
		}}, nil
	}
	return nil, refuse(call.P, "summarize", "bin(%s, %s): supported on a datetime or timespan with a positive timespan, or a long with a positive long", x.Key, size.Key)
}

func (c *compiler) aggregate(call *Call, name string, in *rel) (Agg, error) {
	g := Agg{Fn: call.Name}
	prefix, ok := aggPrefix[call.Name]
	if !ok {
		return g, refuse(call.P, "summarize", "the aggregate %s() is not supported (count, countif, dcount, make_set, make_list, min, max, sum, arg_min, arg_max)", call.Name)
	}
	nargs := func(lo, hi int) error {
		if len(call.Args) < lo || len(call.Args) > hi {
			return &Error{Pos: call.P, Op: "summarize", Msg: fmt.Sprintf("%s() takes %d to %d arguments, not %d", call.Name, lo, hi, len(call.Args)), Syntax: true}
		}
		return nil
	}
	argName := func() (string, error) {
		if name != "" {
			return name, nil
		}
		if id := identName(call.Args[0]); id != "" {
			return prefix + id, nil
		}
		return "", refuse(call.P, "summarize", "name the aggregate %s (Name = ...)", describe(call))
	}
	var err error
	switch call.Name {
	case "count":
		if err := nargs(0, 0); err != nil {
			return g, err
		}
		g.Names, g.Types = []string{cmp.Or(name, "count_")}, []Kind{KLong}
		return g, nil
	case "countif":
		if err := nargs(1, 1); err != nil {
			return g, err
		}
		if g.Arg, err = c.expr(call.Args[0], in, "summarize"); err != nil {
			return g, err
		}
		if g.Arg.Type != KBool && g.Arg.Type != KNull {
			return g, refuse(call.P, "summarize", "countif()'s predicate %s is not a bool", g.Arg.Key)
		}
		g.Names, g.Types = []string{cmp.Or(name, "countif_")}, []Kind{KLong}
		return g, nil
	case "dcount":
		// dcount(x, accuracy) is refused: the accuracy only tunes the estimate.
		if err := nargs(1, 1); err != nil {
			return g, err
		}
	case "make_set", "make_list":
		if err := nargs(1, 2); err != nil {
			return g, err
		}
		g.Max = defaultMakeLimit
		if len(call.Args) == 2 {
			m, err := c.expr(call.Args[1], nil, "summarize")
			if err != nil {
				return g, err
			}
			if !m.isLit() || m.lit.Kind != KLong || m.lit.I <= 0 {
				return g, refuse(call.P, "summarize", "%s()'s size limit must be a positive long constant", call.Name)
			}
			g.Max = int(min(m.lit.I, defaultMakeLimit))
		}
	case "min", "max", "sum":
		if err := nargs(1, 1); err != nil {
			return g, err
		}
	case "arg_min", "arg_max":
		if len(call.Args) < 2 {
			return g, refuse(call.P, "summarize", "%s(Expr, Column, ...): name the columns to return (%s(Expr, *) is not supported)", call.Name, call.Name)
		}
		if name != "" {
			return g, refuse(call.P, "summarize", "Name = %s(...): not supported; %s's columns keep their names", call.Name, call.Name)
		}
		if g.Arg, err = c.expr(call.Args[0], in, "summarize"); err != nil {
			return g, err
		}
		first := identName(call.Args[0])
		if first == "" {
			return g, refuse(call.P, "summarize", "%s()'s first argument must be a column here", call.Name)
		}
		g.Names, g.Types = []string{first}, []Kind{g.Arg.Type}
		for _, a := range call.Args[1:] {
			id := identName(a)
			if id == "" || id == "*" {
				return g, refuse(a.At(), "summarize", "%s() returns columns: %s is not one (and * is not supported)", call.Name, describe(a))
			}
			n, err := c.expr(a, in, "summarize")
			if err != nil {
				return g, err
			}
			g.Cols = append(g.Cols, n)
			g.Names, g.Types = append(g.Names, id), append(g.Types, n.Type)
		}
		return g, nil
	}
	if g.Arg, err = c.expr(call.Args[0], in, "summarize"); err != nil {
		return g, err
	}
	n, err := argName()
	if err != nil {
		return g, err
	}
	t := g.Arg.Type
	switch call.Name {
	case "dcount":
		t = KLong
	case "make_set", "make_list":
		t = KDynamic
	case "sum":
		if t != KLong && t != KReal {
			return g, refuse(call.P, "summarize", "sum(%s): not a number", g.Arg.Key)
		}
	}
	g.Names, g.Types = []string{n}, []Kind{t}
	return g, nil
}

// Where says where the summarize is: the rule file's line when known.
func (s *Summary) Where() string {
	if s.FileLine > 0 {
		return fmt.Sprintf("line %d", s.FileLine)
	}
	return fmt.Sprintf("line %d of the query", s.At.Line)
}

// Names are the summarized result's column names.
func (s *Summary) Names() []string {
	out := make([]string, len(s.Out))
	for k, c := range s.Out {
		out[k] = c.Name
	}
	return out
}

// PreRow evaluates the summarize's input columns over a pair.
func (s *Summary) PreRow(row *Row) []Value {
	out := make([]Value, len(s.Pre))
	for k, c := range s.Pre {
		out[k] = c.Node.Eval(row)
	}
	return out
}

// group is one summarize group's state.
type group struct {
	by   []Value
	aggs []aggState
}

type aggState struct {
	n    int64
	seen map[string]bool
	list []Value
	best Value   // min, max, sum; arg_min/arg_max's value
	cols []Value // arg_min/arg_max's columns
	set  bool
}

// valueKey is a value's identity for grouping and dcount: its kind and text.
func valueKey(v Value) string { return strconv.Itoa(int(v.Kind)) + ":" + v.Text() }

// Run summarizes the rows (each a PreRow, in the order given: make_list
// and make_set keep it, arg_min/arg_max keep the first row of a tie) and
// returns the result rows: grouped, filtered by the where after it,
// projected and ordered.
//
// inexact counts the dcount values above KustoExactDcount: Kusto's
// estimate may differ from this exact count there.
func (s *Summary) Run(rows [][]Value) (out [][]Value, inexact int) {
	var groups []*group
	index := map[string]*group{}
	for _, pre := range rows {
		row := &Row{P: pre}
		by := make([]Value, len(s.By))
		var kb strings.Builder
		for k, b := range s.By {
			by[k] = b.Node.Eval(row)
			kb.WriteString(valueKey(by[k]))
			kb.WriteByte(0)
		}
		g := index[kb.String()]
		if g == nil {
			g = &group{by: by, aggs: make([]aggState, len(s.Agg))}
			index[kb.String()] = g
			groups = append(groups, g)
		}
		for k := range s.Agg {
			s.Agg[k].add(&g.aggs[k], row)
		}
	}
	// summarize with no by over no rows gives one row (count() 0), as Kusto.
	if len(s.By) == 0 && len(groups) == 0 {
		groups = append(groups, &group{aggs: make([]aggState, len(s.Agg))})
	}
	for _, g := range groups {
		sr := slices.Clone(g.by)
		for k := range s.Agg {
			sr = append(sr, s.Agg[k].result(&g.aggs[k])...)
			if s.Agg[k].Fn == "dcount" && len(g.aggs[k].seen) > KustoExactDcount {
				inexact++
			}
		}
		row := &Row{P: sr}
		if !all(s.Post, row) {
			continue
		}
		o := make([]Value, len(s.Out))
		for k, c := range s.Out {
			o[k] = c.Node.Eval(row)
		}
		if len(s.Order) > 0 {
			// The order keys are over the summarize's row, before the project.
			for _, n := range s.Order {
				o = append(o, n.Eval(row))
			}
		}
		out = append(out, o)
	}
	w := len(s.Out)
	slices.SortStableFunc(out, func(a, b []Value) int {
		if len(s.Order) > 0 {
			for k := range s.Order {
				if c := orderCmp(a[w+k], b[w+k], s.Desc[k]); c != 0 {
					return c
				}
			}
			return 0
		}
		for k := range w {
			if c := orderCmp(a[k], b[k], false); c != 0 {
				return c
			}
		}
		return 0
	})
	for k := range out {
		out[k] = out[k][:w]
	}
	return out, inexact
}

// KustoExactDcount is the number of distinct values up to which Kusto's
// dcount (a HyperLogLog estimate) counts exactly at its default accuracy
// (1): the dcount docs, "Estimation accuracy". This engine counts exactly
// at any size.
const KustoExactDcount = 1000

// orderCmp is order by's comparison: nulls first ascending, last
// descending (Kusto's defaults); values of kinds that do not compare (a
// dynamic) by their text.
func orderCmp(a, b Value, desc bool) int {
	an, bn := a.Kind == KNull, b.Kind == KNull
	switch {
	case an && bn:
		return 0
	case an:
		return cond(desc, 1, -1)
	case bn:
		return cond(desc, -1, 1)
	}
	c, ok := cmpValues(a, b)
	if !ok {
		c = strings.Compare(a.Text(), b.Text())
	}
	if desc {
		return -c
	}
	return c
}

func cond(b bool, x, y int) int {
	if b {
		return x
	}
	return y
}

func (g *Agg) add(st *aggState, row *Row) {
	switch g.Fn {
	case "count":
		st.n++
		return
	case "countif":
		if g.Arg.Eval(row).True() {
			st.n++
		}
		return
	}
	v := g.Arg.Eval(row)
	if v.Kind == KNull {
		return // every aggregate ignores nulls
	}
	switch g.Fn {
	case "dcount":
		if st.seen == nil {
			st.seen = map[string]bool{}
		}
		st.seen[valueKey(v)] = true
	case "make_set":
		if st.seen == nil {
			st.seen = map[string]bool{}
		}
		if k := valueKey(v); !st.seen[k] && len(st.list) < g.Max {
			st.seen[k] = true
			st.list = append(st.list, v)
		}
	case "make_list":
		if len(st.list) < g.Max {
			st.list = append(st.list, v)
		}
	case "min", "max", "arg_min", "arg_max":
		if st.set {
			c, ok := cmpValues(v, st.best)
			if !ok {
				return
			}
			if g.Fn == "min" || g.Fn == "arg_min" {
				c = -c
			}
			if c <= 0 {
				return // not better: a tie keeps the first row
			}
		}
		st.best, st.set = v, true
		if len(g.Cols) > 0 {
			st.cols = st.cols[:0]
			for _, n := range g.Cols {
				st.cols = append(st.cols, n.Eval(row))
			}
		}
	case "sum":
		if !st.set {
			st.best, st.set = v, true
			return
		}
		switch v.Kind {
		case KLong:
			st.best.I += v.I
		case KReal:
			st.best.F += v.F
		case KTimespan:
			st.best.D += v.D
		}
	}
}

func (g *Agg) result(st *aggState) []Value {
	switch g.Fn {
	case "count", "countif":
		return []Value{{Kind: KLong, I: st.n}}
	case "dcount":
		return []Value{{Kind: KLong, I: int64(len(st.seen))}}
	case "make_set", "make_list":
		return []Value{{Kind: KDynamic, List: slices.Clone(st.list)}}
	case "arg_min", "arg_max":
		if !st.set {
			out := []Value{null}
			for range g.Cols {
				out = append(out, null)
			}
			return out
		}
		return append([]Value{st.best}, st.cols...)
	}
	if !st.set {
		return []Value{null}
	}
	return []Value{st.best}
}

// String describes the summarize for `tokenpivot rule check`.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "summarize (%s), after the join over its pair rows (detect and test only: process and serve refuse it):\n", s.Where())
	b.WriteString("  over the columns: ")
	var pre []string
	for _, c := range s.Pre {
		pre = append(pre, c.Name)
	}
	b.WriteString(strings.Join(pre, ", ") + "\n")
	for _, c := range s.By {
		fmt.Fprintf(&b, "  by %s = %s\n", c.Name, c.Node.Key)
	}
	for _, g := range s.Agg {
		var args []string
		if g.Arg != nil {
			args = append(args, g.Arg.Key)
		}
		for _, c := range g.Cols {
			args = append(args, c.Key)
		}
		if g.Fn == "make_set" || g.Fn == "make_list" {
			args = append(args, strconv.Itoa(g.Max))
		}
		note := ""
		if g.Fn == "dcount" {
			note = "   (exact: Kusto's dcount is an estimate)"
		}
		fmt.Fprintf(&b, "  %s = %s(%s)%s\n", strings.Join(g.Names, ", "), g.Fn, strings.Join(args, ", "), note)
	}
	for _, n := range s.Post {
		fmt.Fprintf(&b, "  then where %s\n", n.Key)
	}
	b.WriteString("  output:")
	for _, c := range s.Out {
		if c.Node.op == "pcol" && c.Node.col == c.Name {
			fmt.Fprintf(&b, " %s", c.Name)
		} else {
			fmt.Fprintf(&b, " %s = %s", c.Name, c.Node.Key)
		}
	}
	b.WriteString("\n")
	if len(s.Order) > 0 {
		var keys []string
		for k, n := range s.Order {
			keys = append(keys, n.Key+" "+cond2(s.Desc[k], "desc", "asc"))
		}
		fmt.Fprintf(&b, "  order: %s\n", strings.Join(keys, ", "))
	} else {
		b.WriteString("  order: every output column ascending (no order by: Kusto's order is unspecified)\n")
	}
	return b.String()
}

func cond2(b bool, x, y string) string {
	if b {
		return x
	}
	return y
}

// ParseText is the value of kind k whose Text is s: a result's added
// column read back (a summarize reads the result's rows). Only the kinds
// plan lets through before a summarize.
func ParseText(k Kind, s string) Value {
	switch k {
	case KString:
		return Str(s)
	case KLong:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return Value{Kind: KLong, I: i}
		}
	case KReal:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return Value{Kind: KReal, F: f}
		}
	case KBool:
		if b, err := strconv.ParseBool(s); err == nil {
			return Bool(b)
		}
	case KDatetime:
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return Value{Kind: KDatetime, T: t}
		}
	}
	return null
}

// Datetime is a datetime value; Timespan a timespan value.
func Datetime(t time.Time) Value     { return Value{Kind: KDatetime, T: t} }
func Timespan(d time.Duration) Value { return Value{Kind: KTimespan, D: d} }
