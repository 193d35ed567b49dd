package kql

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Tables are the two sign-in tables a rule may read.
var tableSides = map[string]Side{
	"SigninLogs":                      SideI,
	"AADNonInteractiveUserSignInLogs": SideN,
}

// constTable is a datatable let, evaluated.
type constTable struct {
	cols []string
	rows [][]Value
}

func (t *constTable) column(name string) ([]Value, bool) {
	for k, c := range t.cols {
		if c == name {
			out := make([]Value, len(t.rows))
			for i, r := range t.rows {
				out[i] = r[k]
			}
			return out, true
		}
	}
	return nil, false
}

type relCol struct {
	name string
	node *Node
}

// rel is a tabular expression compiled so far: its columns as expressions
// over the base columns, and the conjuncts its rows satisfy.
type rel struct {
	side  Side // the table of a one-table rel (its role: see compiler.role); 0 once joined
	table Side // the table a one-table rel reads (side, unless read in another role)
	// union: the non-interactive side is the union of both sign-in tables;
	// onlyI and onlyN are the predicates of its SigninLogs and its
	// AADNonInteractiveUserSignInLogs branch, which apply to that table's
	// rows only.
	union        bool
	onlyI, onlyN []*Node
	cols         []relCol
	preds        []*Node
	joined       bool
	kind         string
	joinAt       Pos
	// order are the last order by's keys and directions.
	order     []*Node
	orderDesc []bool
	orderAt   Pos
	// sum is the summarize after the join (nil: none); sumPre are the
	// columns it read.
	sum    *Summary
	sumPre []relCol
}

func (r *rel) find(name string) int {
	for k, c := range r.cols {
		if c.name == name {
			return k
		}
	}
	return -1
}

type compiler struct {
	// role, when not 0, is the side a table is read as: a union's
	// SigninLogs branch is read as the non-interactive side.
	role    Side
	scalars map[string]Value
	tables  map[string]*constTable
	pipes   map[string]*Pipe
	safe    []safeTest
}

func refuse(at Pos, op, format string, args ...any) error {
	return &Error{Pos: at, Op: op, Msg: fmt.Sprintf(format, args...)}
}

// Compile parses and compiles a rule's query into a Plan, or refuses it
// with an *Error naming the line, column and operator.
func Compile(query string) (*Plan, error) {
	q, err := Parse(query)
	if err != nil {
		return nil, err
	}
	c := &compiler{scalars: map[string]Value{}, tables: map[string]*constTable{}, pipes: map[string]*Pipe{}}
	for _, l := range q.Lets {
		if err := c.let(l); err != nil {
			return nil, err
		}
	}
	r, err := c.pipe(q.Body)
	if err != nil {
		return nil, err
	}
	return c.plan(r, q.Body.P)
}

func (c *compiler) let(l *Let) error {
	op := "let " + l.Name
	if _, ok := tableSides[l.Name]; ok {
		return refuse(l.P, op, "a let may not take a sign-in table's name")
	}
	if t, ok := l.Value.(*TabularExpr); ok {
		if dt, ok := t.Pipe.Source.(*Datatable); ok && len(t.Pipe.Ops) == 0 {
			ct, err := c.datatable(dt)
			if err != nil {
				return err
			}
			c.tables[l.Name] = ct
			return nil
		}
		// Compiled here as well as where it is used, so that a let the
		// query never uses is still one this engine can run (a watchlist
		// let is refused even when unused).
		if _, err := c.pipe(t.Pipe); err != nil {
			return err
		}
		c.pipes[l.Name] = t.Pipe
		return nil
	}
	n, err := c.expr(l.Value, nil, op)
	if err != nil {
		return err
	}
	if !n.isLit() {
		return refuse(l.P, op, "a scalar let must be a constant (a literal, dynamic([...]) or an expression of literals)")
	}
	c.scalars[l.Name] = n.lit
	return nil
}

func (c *compiler) datatable(dt *Datatable) (*constTable, error) {
	ct := &constTable{cols: dt.Cols}
	for k := 0; k < len(dt.Vals); k += len(dt.Cols) {
		var row []Value
		for j := range dt.Cols {
			n, err := c.expr(dt.Vals[k+j], nil, "datatable")
			if err != nil {
				return nil, err
			}
			if !n.isLit() {
				return nil, refuse(dt.Vals[k+j].At(), "datatable", "values must be literals")
			}
			v := n.lit
			switch dt.Types[j] {
			case "string":
				if v.Kind != KString {
					return nil, &Error{Pos: dt.Vals[k+j].At(), Op: "datatable", Msg: fmt.Sprintf("column %s is a string: %s is not", dt.Cols[j], v), Syntax: true}
				}
			case "long", "int", "real", "double", "bool", "boolean", "datetime", "date", "timespan", "time", "dynamic", "guid", "decimal":
			default:
				return nil, &Error{Pos: dt.P, Op: "datatable", Msg: fmt.Sprintf("unknown type %q", dt.Types[j]), Syntax: true}
			}
			row = append(row, v)
		}
		ct.rows = append(ct.rows, row)
	}
	return ct, nil
}

// pipe compiles a tabular expression.
func (c *compiler) pipe(p *Pipe) (*rel, error) {
	var r *rel
	switch s := p.Source.(type) {
	case *Ident:
		if side, ok := tableSides[s.Name]; ok {
			role := side
			if c.role != 0 {
				role = c.role
			}
			r = &rel{side: role, table: side}
			for _, col := range baseColumns {
				if side == SideN && (col == signin.ColAuthenticationRequirement || col == signin.ColConditionalAccessStatus) {
					continue // read from SigninLogs only
				}
				r.cols = append(r.cols, relCol{col, colNode(role, col)})
			}
			for _, col := range signin.ExtraColumns() {
				if _, ok := extraColumns[col]; ok {
					r.cols = append(r.cols, relCol{col, colNode(role, col)})
				}
			}
		} else if sub, ok := c.pipes[s.Name]; ok {
			var err error
			if r, err = c.pipe(sub); err != nil {
				return nil, err
			}
		} else if _, ok := c.tables[s.Name]; ok {
			return nil, refuse(s.P, s.Name, "a datatable is not a sign-in table: the rule's rows must come from SigninLogs and AADNonInteractiveUserSignInLogs")
		} else {
			return nil, refuse(s.P, s.Name, "table %s: this engine reads only SigninLogs and AADNonInteractiveUserSignInLogs", s.Name)
		}
	case *Pipe:
		var err error
		if r, err = c.pipe(s); err != nil {
			return nil, err
		}
	case *Call:
		if s.Name != "materialize" || len(s.Args) != 1 {
			return nil, refuse(s.P, s.Name, "%s(...) as a tabular source is not supported (a watchlist or function is not read by this engine)", s.Name)
		}
		tx, ok := s.Args[0].(*TabularExpr)
		if !ok {
			return nil, refuse(s.P, s.Name, "materialize() of a value that is not a table")
		}
		// materialize(T) caches T for the query's run: the same rows.
		var err error
		if r, err = c.pipe(tx.Pipe); err != nil {
			return nil, err
		}
	case *Union:
		var err error
		if r, err = c.union(s); err != nil {
			return nil, err
		}
	case *Datatable:
		return nil, refuse(s.P, "datatable", "a datatable is not a sign-in table: the rule's rows must come from SigninLogs and AADNonInteractiveUserSignInLogs")
	default:
		return nil, refuse(p.P, "", "unsupported source")
	}
	for _, op := range p.Ops {
		if err := c.op(r, op); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (c *compiler) op(r *rel, op *Op) error {
	if r.sum != nil {
		switch op.Name {
		case "where", "project", "extend", "project-away", "project-rename", "order by":
		default:
			return refuse(op.P, op.Name, "%s after the summarize is not supported (only where, project, extend, project-away, project-rename and order by)", op.Name)
		}
	}
	switch op.Name {
	case "where":
		n, err := c.expr(op.Pred, r, "where")
		if err == nil && r.sum != nil {
			// After the summarize: a test of its output rows.
			if n.usesAgo() {
				return refuse(op.Pred.At(), "where", "ago() after the summarize is not supported")
			}
			if n.Type != KBool && n.Type != KNull {
				return refuse(op.Pred.At(), "where", "the predicate %s is not a bool", describe(op.Pred))
			}
			r.sum.Post = append(r.sum.Post, n)
			return nil
		}
		if err != nil {
			return err
		}
		if n.Type != KBool && n.Type != KNull {
			return refuse(op.Pred.At(), "where", "the predicate %s is not a bool", describe(op.Pred))
		}
		r.preds = append(r.preds, conjuncts(n)...)
	case "project", "extend":
		var cols []relCol
		if op.Name == "extend" {
			cols = slices.Clone(r.cols)
		}
		for _, a := range op.Cols {
			if a.Names != nil {
				return refuse(a.P, op.Name, "(%s) = ...: a function returning several columns is not supported", strings.Join(a.Names, ", "))
			}
			name := a.Name
			if name == "" {
				id, ok := a.X.(*Ident)
				if !ok {
					return refuse(a.P, op.Name, "name the computed column %s (Name = ...)", describe(a.X))
				}
				name = id.Name
			}
			n, err := c.expr(a.X, r, op.Name)
			if err != nil {
				return err
			}
			if k := slices.IndexFunc(cols, func(c relCol) bool { return c.name == name }); k >= 0 {
				if op.Name == "project" {
					return &Error{Pos: a.P, Op: op.Name, Msg: fmt.Sprintf("column %s is projected twice", name), Syntax: true}
				}
				cols[k].node = n
				continue
			}
			cols = append(cols, relCol{name, n})
		}
		r.cols = cols
	case "project-away":
		for _, a := range op.Cols {
			id, ok := a.X.(*Ident)
			if !ok || a.Name != "" {
				return refuse(a.P, op.Name, "expected a column name")
			}
			k := r.find(id.Name)
			if k < 0 {
				return refuse(a.P, op.Name, "no column %s here", id.Name)
			}
			r.cols = slices.Delete(r.cols, k, k+1)
		}
	case "project-rename":
		for _, a := range op.Cols {
			id, ok := a.X.(*Ident)
			if !ok {
				return refuse(a.P, op.Name, "expected NewName = Column")
			}
			k := r.find(id.Name)
			if k < 0 {
				return refuse(a.X.At(), op.Name, "no column %s here", id.Name)
			}
			if j := r.find(a.Name); j >= 0 && j != k {
				return refuse(a.P, op.Name, "column %s exists already", a.Name)
			}
			r.cols[k].name = a.Name
		}
	case "evaluate":
		return c.evaluate(r, op)
	case "join":
		return c.join(r, op)
	case "order by":
		r.order, r.orderDesc, r.orderAt = nil, op.Desc, op.P
		for _, k := range op.By {
			n, err := c.expr(k.X, r, op.Name)
			if err != nil {
				return err
			}
			r.order = append(r.order, n)
		}
	case "summarize":
		return c.summarize(r, op)
	default:
		return refuse(op.P, op.Name, "the %s operator is not supported by this engine", op.Name)
	}
	return nil
}

func conjuncts(n *Node) []*Node {
	if n.op == "and" {
		return append(conjuncts(n.args[0]), conjuncts(n.args[1])...)
	}
	return []*Node{n}
}

// evaluate compiles `evaluate ipv4_lookup(Table, IPColumn, NetworkColumn
// [, return_unmatched = bool])`.
func (c *compiler) evaluate(r *rel, op *Op) error {
	call := op.Call
	if call.Name != "ipv4_lookup" {
		return refuse(call.P, "evaluate", "the %s plugin is not supported (only ipv4_lookup)", call.Name)
	}
	if r.joined {
		return refuse(call.P, "evaluate", "ipv4_lookup after the join is not supported: apply it to one table")
	}
	var pos []Expr
	unmatched := false
	for _, a := range call.Args {
		if na, ok := a.(*NamedArg); ok {
			if na.Name != "return_unmatched" {
				return refuse(na.P, "evaluate ipv4_lookup", "argument %s is not supported", na.Name)
			}
			v, err := c.expr(na.X, nil, "evaluate ipv4_lookup")
			if err != nil {
				return err
			}
			if !v.isLit() || v.lit.Kind != KBool {
				return refuse(na.P, "evaluate ipv4_lookup", "return_unmatched must be true or false")
			}
			unmatched = v.lit.B
			continue
		}
		pos = append(pos, a)
	}
	if len(pos) != 3 {
		return &Error{Pos: call.P, Op: "evaluate ipv4_lookup", Msg: "expected ipv4_lookup(LookupTable, SourceIPColumn, IPRangeColumn, ...)", Syntax: true}
	}
	tname, ok := pos[0].(*Ident)
	ct := c.tables[identName(pos[0])]
	if !ok || ct == nil {
		return refuse(pos[0].At(), "evaluate ipv4_lookup", "the lookup table must be a datatable let")
	}
	ip, err := c.expr(pos[1], r, "evaluate ipv4_lookup")
	if err != nil {
		return err
	}
	netName := identName(pos[2])
	vals, ok := ct.column(netName)
	if !ok {
		return refuse(pos[2].At(), "evaluate ipv4_lookup", "%s has no column %q", tname.Name, netName)
	}
	var nets []netip.Prefix
	var idx []int // the row of each network
	for k, v := range vals {
		if p, ok := parseIPv4Range(v.Text()); ok {
			nets = append(nets, p)
			idx = append(idx, k)
		}
	}
	// match is the matched row of ct, -1 when none.
	match := func(row *Row) int {
		v := ip.Eval(row)
		a, ok := parseIPv4(v.Text())
		if !ok {
			return -1
		}
		best, bits := -1, -1
		for k, p := range nets {
			if p.Contains(a) && p.Bits() > bits {
				best, bits = idx[k], p.Bits()
			}
		}
		return best
	}
	lkKey := fmt.Sprintf("ipv4_lookup(%s, %s)", tname.Name, ip.Key)
	for j, col := range ct.cols {
		if r.find(col) >= 0 {
			return refuse(pos[2].At(), "evaluate ipv4_lookup", "the lookup table's column %s clashes with a column of the table", col)
		}
		j := j
		n := &Node{Key: lkKey + "." + col, Sides: ip.Sides, Type: KString, op: "lookup", args: []*Node{ip}, col: col, nets: nets,
			lit: Value{Kind: KDynamic, List: vals},
			Eval: func(row *Row) Value {
				k := match(row)
				if k < 0 {
					return Str("")
				}
				return Str(ct.rows[k][j].Text())
			}}
		if col != netName {
			n.op = "lookup-other"
		}
		r.cols = append(r.cols, relCol{col, n})
	}
	if !unmatched {
		r.preds = append(r.preds, &Node{Key: "matched(" + lkKey + ")", Sides: ip.Sides, Type: KBool, op: "lookup-matched", args: []*Node{ip},
			Eval: func(row *Row) Value { return Bool(match(row) >= 0) }})
	}
	return nil
}

func identName(e Expr) string {
	if id, ok := e.(*Ident); ok {
		return id.Name
	}
	return ""
}

// union compiles `union [isfuzzy=B] [kind=outer] T1, T2` of the two
// sign-in tables (each a table, or a query over one) as the join's
// non-interactive side: SigninLogs rows are read as that side too, each
// branch's predicates applying to its own table's rows. Its columns are
// those both branches have alike (a column one table lacks, as
// AuthenticationRequirement is not read from the non-interactive table,
// is refused when named after the union).
func (c *compiler) union(u *Union) (*rel, error) {
	for _, prm := range u.Params {
		switch {
		case prm.Name == "isfuzzy": // both tables exist: the same rows either way
		case prm.Name == "kind" && prm.Value == "outer":
		default:
			return nil, refuse(prm.P, "union", "union parameter %s is not supported", prm.Name)
		}
	}
	if c.role != 0 {
		return nil, refuse(u.P, "union", "union inside a union is not supported")
	}
	if len(u.Tables) != 2 {
		return nil, refuse(u.P, "union", "union of %d tables: this engine runs the union of SigninLogs and AADNonInteractiveUserSignInLogs", len(u.Tables))
	}
	var bi, bn *rel
	for _, t := range u.Tables {
		c.role = SideN
		br, err := c.pipe(t)
		c.role = 0
		if err != nil {
			return nil, err
		}
		if br.joined || br.union || br.order != nil {
			return nil, refuse(t.P, "union", "a union branch must be one sign-in table with row operators (no join, union or order)")
		}
		switch {
		case br.table == SideI && bi == nil:
			bi = br
		case br.table == SideN && bn == nil:
			bn = br
		default:
			return nil, refuse(t.P, "union", "this engine runs the union of SigninLogs and AADNonInteractiveUserSignInLogs, one branch each")
		}
	}
	r := &rel{side: SideN, union: true, onlyI: bi.preds, onlyN: bn.preds}
	for _, cl := range bn.cols {
		if k := bi.find(cl.name); k >= 0 && bi.cols[k].node.Key == cl.node.Key {
			r.cols = append(r.cols, cl)
		}
	}
	return r, nil
}

// join compiles `join kind=K Right on Key`.
func (c *compiler) join(r *rel, op *Op) error {
	switch op.Kind {
	case "leftanti", "anti", "leftantisemi", "leftsemi":
		return c.joinFilter(r, op)
	}
	if r.joined {
		return refuse(op.P, "join", "a second join is not supported")
	}
	switch op.Kind {
	case "inner", "leftouter":
	case "", "innerunique":
		return refuse(op.P, "join", "kind=innerunique (KQL's default) first dedups the left side by key, keeping one arbitrary row per key, so which pairs it gives is not determined by the query: write kind=inner (every pair)")
	default:
		return refuse(op.P, "join", "kind=%s is not supported (inner, or leftouter with the time window in the where after the join)", op.Kind)
	}
	right, err := c.pipe(op.Right)
	if err != nil {
		return err
	}
	if right.joined {
		return refuse(op.Right.P, "join", "the right side holds a join: not supported")
	}
	if right.side == r.side {
		return refuse(op.P, "join", "both sides read %s: the rule joins SigninLogs with AADNonInteractiveUserSignInLogs", r.side)
	}
	if len(op.On) != 1 {
		return refuse(op.P, "join", "join on %d keys: this engine joins on one key, UserPrincipalName", len(op.On))
	}
	var lk, rk *Node
	switch on := op.On[0].(type) {
	case *Ident:
		li, ri := r.find(on.Name), right.find(on.Name)
		if li < 0 || ri < 0 {
			return refuse(on.P, "join", "key %s is not a column of both sides", on.Name)
		}
		lk, rk = r.cols[li].node, right.cols[ri].node
	case *Binary:
		l, lok := on.L.(*Member)
		rr, rok := on.R.(*Member)
		if on.Op != "==" || !lok || !rok || identName(l.X) != "$left" || identName(rr.X) != "$right" {
			return refuse(on.P, "join", "expected on Key or on $left.Key == $right.Key")
		}
		li, ri := r.find(l.Name), right.find(rr.Name)
		if li < 0 || ri < 0 {
			return refuse(on.P, "join", "$left.%s or $right.%s is not a column", l.Name, rr.Name)
		}
		lk, rk = r.cols[li].node, right.cols[ri].node
	default:
		return refuse(op.On[0].At(), "join", "expected on Key or on $left.Key == $right.Key")
	}
	if lk.op != "col" || rk.op != "col" || lk.col != signin.ColUserPrincipalName || rk.col != signin.ColUserPrincipalName {
		return refuse(op.On[0].At(), "join", "the key is %s == %s: this engine joins on UserPrincipalName as it is in both tables", lk.Key, rk.Key)
	}
	// Both keys are equal in every pair: read the user from the
	// non-interactive row whichever side names it.
	user := colNode(SideN, signin.ColUserPrincipalName)
	canon := func(n *Node) *Node {
		if n.op == "col" && n.col == signin.ColUserPrincipalName {
			return user
		}
		return n
	}
	cols := make([]relCol, 0, len(r.cols)+len(right.cols))
	for _, cl := range r.cols {
		cols = append(cols, relCol{cl.name, canon(cl.node)})
	}
	for _, cl := range right.cols {
		name := cl.name
		for k := 1; slices.ContainsFunc(cols, func(c relCol) bool { return c.name == name }); k++ {
			name = fmt.Sprintf("%s%d", cl.name, k)
		}
		cols = append(cols, relCol{name, canon(cl.node)})
	}
	r.cols = cols
	r.preds = append(r.preds, right.preds...)
	if right.union {
		r.union, r.onlyI, r.onlyN = true, right.onlyI, right.onlyN
	}
	r.side = 0
	r.joined, r.kind, r.joinAt = true, op.Kind, op.P
	r.order = nil
	return nil
}

// joinFilter compiles `join kind=leftanti|leftsemi T on Key` with a
// constant table T (a datatable, or a let of one): the left rows whose key
// is (leftsemi) or is not (leftanti) among T's keys, with the left's
// columns only. That is exactly Key in / !in (T's key column), as a join
// compares string keys: exactly, case-sensitive, "" equal to "". A right
// side read from a sign-in table is refused: the plan filters rows by
// their own columns and constants.
func (c *compiler) joinFilter(r *rel, op *Op) error {
	kind := op.Kind
	anti := kind != "leftsemi"
	var ct *constTable
	if len(op.Right.Ops) == 0 {
		switch s := op.Right.Source.(type) {
		case *Ident:
			ct = c.tables[s.Name]
		case *Datatable:
			var err error
			if ct, err = c.datatable(s); err != nil {
				return err
			}
		}
	}
	if ct == nil {
		return refuse(op.P, "join", "kind=%s is supported only against a constant table (a datatable, or a let of one): its right side here is a query over a table, whose rows this engine does not hold", kind)
	}
	if len(op.On) != 1 {
		return refuse(op.P, "join", "join on %d keys: kind=%s is supported on one key", len(op.On), kind)
	}
	var lname, rname string
	switch on := op.On[0].(type) {
	case *Ident:
		lname, rname = on.Name, on.Name
	case *Binary:
		l, lok := on.L.(*Member)
		rr, rok := on.R.(*Member)
		if on.Op != "==" || !lok || !rok || identName(l.X) != "$left" || identName(rr.X) != "$right" {
			return refuse(on.P, "join", "expected on Key or on $left.Key == $right.Key")
		}
		lname, rname = l.Name, rr.Name
	default:
		return refuse(op.On[0].At(), "join", "expected on Key or on $left.Key == $right.Key")
	}
	k := r.find(lname)
	if k < 0 {
		return refuse(op.On[0].At(), "join", "key %s is not a column of the left side", lname)
	}
	x := r.cols[k].node
	if x.Type != KString {
		return refuse(op.On[0].At(), "join", "key %s is not a string: kind=%s is supported on a string key", lname, kind)
	}
	vals, ok := ct.column(rname)
	if !ok {
		return refuse(op.On[0].At(), "join", "the right side has no column %s", rname)
	}
	set := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		if v.Kind != KString {
			return refuse(op.On[0].At(), "join", "the right side's key %s holds %s, not a string", rname, v)
		}
		set[v.S] = struct{}{}
	}
	name := "in"
	if anti {
		name = "!in"
	}
	lst := Value{Kind: KDynamic, List: vals}
	n := &Node{Key: fmt.Sprintf("(%s %s %s)", x.Key, name, lst), Sides: x.Sides, Type: KBool, op: name, args: []*Node{x}, lit: lst}
	n.Eval = func(row *Row) Value {
		_, ok := set[x.Eval(row).Text()]
		return Bool(ok != anti)
	}
	r.preds = append(r.preds, n)
	return nil
}

// expr compiles a scalar expression against r's columns (r nil: constants
// only).
func (c *compiler) expr(e Expr, r *rel, op string) (*Node, error) {
	switch e := e.(type) {
	case *Lit:
		return litNode(e.V), nil
	case *Ident:
		if r != nil {
			if k := r.find(e.Name); k >= 0 {
				return r.cols[k].node, nil
			}
		}
		if v, ok := c.scalars[e.Name]; ok {
			return litNode(v), nil
		}
		if _, ok := c.tables[e.Name]; ok {
			return nil, refuse(e.P, op, "%s is a table, not a value", e.Name)
		}
		if r != nil && r.side != 0 || r != nil && r.joined {
			return nil, refuse(e.P, op, "column %s: no such column here, or a column this engine does not read (it reads %s)", e.Name, strings.Join(readColumns(), ", "))
		}
		return nil, refuse(e.P, op, "unknown name %s", e.Name)
	case *Unary:
		x, err := c.expr(e.X, r, op)
		if err != nil {
			return nil, err
		}
		return arith("-", litNode(Value{Kind: x.Type}), x, e.P, op, true)
	case *Binary:
		return c.binary(e, r, op)
	case *Between:
		x, err := c.expr(e.L, r, op)
		if err != nil {
			return nil, err
		}
		lo, err := c.expr(e.Lo, r, op)
		if err != nil {
			return nil, err
		}
		hi, err := c.expr(e.Hi, r, op)
		if err != nil {
			return nil, err
		}
		name := "between"
		if e.Neg {
			name = "!between"
		}
		n := &Node{Key: fmt.Sprintf("%s %s (%s .. %s)", x.Key, name, lo.Key, hi.Key), Sides: sidesOf(x, lo, hi), Type: KBool, op: name, args: []*Node{x, lo, hi}}
		n.Eval = func(row *Row) Value {
			v := x.Eval(row)
			a, ok1 := cmpValues(v, lo.Eval(row))
			b, ok2 := cmpValues(v, hi.Eval(row))
			return boolOrNull((a >= 0 && b <= 0) != e.Neg, ok1 && ok2)
		}
		return fold(n), nil
	case *InExpr:
		return c.in(e, r, op)
	case *Call:
		return c.call(e, r, op)
	case *Member:
		return c.member(e, r, op)
	case *TabularExpr:
		return nil, refuse(e.At(), op, "a table where a value is expected")
	case *NamedArg:
		return nil, refuse(e.P, op, "unexpected named argument %s", e.Name)
	}
	return nil, refuse(e.At(), op, "unsupported expression %s", describe(e))
}

// readColumns are the columns of the sign-in tables a rule may name.
func readColumns() []string {
	out := slices.Clone(baseColumns)
	for _, c := range signin.ExtraColumns() {
		if _, ok := extraColumns[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// member compiles X.name, X["name"] and X[i] on a dynamic value (a
// dynamic column, parse_json(...), a dynamic literal, or another member):
// null when X is not an object (an array) or has no such key (index).
func (c *compiler) member(e *Member, r *rel, op string) (*Node, error) {
	x, err := c.expr(e.X, r, op)
	if err != nil {
		return nil, err
	}
	if x.Type != KDynamic && x.Type != KNull {
		return nil, refuse(e.P, op, "member access %s on %s, which is not dynamic (use parse_json() on a string)", describe(e), x.Key)
	}
	n := &Node{Sides: x.Sides, Type: KNull, op: "member", args: []*Node{x}}
	if e.Index == nil {
		name := e.Name
		n.Key = x.Key + "[" + strconv.Quote(name) + "]"
		n.Eval = func(row *Row) Value { return member(x.Eval(row), name) }
		return fold(n), nil
	}
	i, err := c.expr(e.Index, nil, op)
	if err != nil {
		return nil, err
	}
	if !i.isLit() || i.lit.Kind != KLong {
		return nil, refuse(e.P, op, "%s: the index must be a constant integer", describe(e))
	}
	k := i.lit.I
	n.Key = x.Key + "[" + strconv.FormatInt(k, 10) + "]"
	n.Eval = func(row *Row) Value { return index(x.Eval(row), k) }
	return fold(n), nil
}

// knownFunctions are the scalar functions call compiles (and refuses by
// name, todynamic and parse_json, with its reason); any other is refused
// before its arguments are looked at.
var knownFunctions = map[string]bool{
	"not": true, "isempty": true, "isnotempty": true, "isnull": true, "isnotnull": true, "tostring": true,
	"tolower": true, "toupper": true, "strcat": true, "strlen": true, "iff": true, "iif": true, "case": true,
	"ipv4_is_in_range": true, "ipv4_is_in_any_range": true, "ipv4_is_private": true, "todynamic": true, "parse_json": true,
}

// fold evaluates a node of constants once.
func fold(n *Node) *Node {
	if n.Sides != 0 || n.usesAgo() {
		return n
	}
	return litNode(n.Eval(&Row{}))
}

func (n *Node) usesAgo() bool {
	if n.op == "ago" {
		return true
	}
	for _, a := range n.args {
		if a.usesAgo() {
			return true
		}
	}
	return false
}

func (c *compiler) binary(e *Binary, r *rel, op string) (*Node, error) {
	l, err := c.expr(e.L, r, op)
	if err != nil {
		return nil, err
	}
	rr, err := c.expr(e.R, r, op)
	if err != nil {
		return nil, err
	}
	// A string column compared with a number compares the number's text
	// (ResultType == 0): one canonical form for both spellings.
	if l.Type == KString && rr.isLit() && (rr.lit.Kind == KLong || rr.lit.Kind == KReal) {
		rr = litNode(Str(rr.lit.Text()))
	}
	if rr.Type == KString && l.isLit() && (l.lit.Kind == KLong || l.lit.Kind == KReal) {
		l = litNode(Str(l.lit.Text()))
	}
	key := "(" + l.Key + " " + e.Op + " " + rr.Key + ")"
	n := &Node{Key: key, Sides: sidesOf(l, rr), Type: KBool, op: e.Op, args: []*Node{l, rr}}
	switch e.Op {
	case "and":
		n.Eval = func(row *Row) Value {
			a := l.Eval(row)
			if a.Kind == KBool && !a.B {
				return a
			}
			b := rr.Eval(row)
			if b.Kind == KBool && !b.B {
				return b
			}
			if a.Kind == KBool && b.Kind == KBool {
				return Bool(true)
			}
			return null
		}
	case "or":
		n.Eval = func(row *Row) Value {
			a := l.Eval(row)
			if a.True() {
				return a
			}
			b := rr.Eval(row)
			if b.True() {
				return b
			}
			if a.Kind == KBool && b.Kind == KBool {
				return Bool(false)
			}
			return null
		}
	case "==", "!=", "<", "<=", ">", ">=":
		if rr.op == "ago" || l.op == "ago" {
			// TimeGenerated > ago(d): recognised by the plan, never evaluated.
			n.Eval = func(*Row) Value { panic("kql: ago() evaluated") }
			return n, nil
		}
		cmpOp := e.Op
		n.Eval = func(row *Row) Value {
			k, ok := cmpValues(l.Eval(row), rr.Eval(row))
			var b bool
			switch cmpOp {
			case "==":
				b = k == 0
			case "!=":
				b = k != 0
			case "<":
				b = k < 0
			case "<=":
				b = k <= 0
			case ">":
				b = k > 0
			case ">=":
				b = k >= 0
			}
			return boolOrNull(b, ok)
		}
	case "=~", "!~", "has", "!has", "has_cs", "!has_cs", "contains", "!contains", "contains_cs", "!contains_cs",
		"startswith", "!startswith", "startswith_cs", "!startswith_cs", "endswith", "!endswith", "endswith_cs", "!endswith_cs":
		base, neg := strings.CutPrefix(e.Op, "!")
		if base == "~" { // !~
			base, neg = "=~", true
		}
		n.Eval = func(row *Row) Value {
			return Bool(stringOp(base, l.Eval(row).Text(), rr.Eval(row).Text()) != neg)
		}
	case "matches regex":
		if !rr.isLit() || rr.lit.Kind != KString {
			return nil, refuse(e.P, op, "matches regex needs a constant pattern")
		}
		re, err := regexp.Compile(rr.lit.S)
		if err != nil {
			return nil, &Error{Pos: e.R.At(), Op: op, Msg: fmt.Sprintf("bad regex: %v", err), Syntax: true}
		}
		n.Eval = func(row *Row) Value { return Bool(re.MatchString(l.Eval(row).Text())) }
	case "+", "-", "*", "/", "%":
		return arith(e.Op, l, rr, e.P, op, false)
	default:
		return nil, refuse(e.P, op, "operator %s is not supported", e.Op)
	}
	return fold(n), nil
}

// arith compiles + - * / % (and unary minus, as 0 - x).
func arith(o string, l, r *Node, at Pos, op string, unary bool) (*Node, error) {
	typ := KNull
	switch {
	case l.Type == KDatetime && r.Type == KDatetime && o == "-":
		typ = KTimespan
	case l.Type == KDatetime && r.Type == KTimespan && (o == "+" || o == "-"), l.Type == KTimespan && r.Type == KDatetime && o == "+":
		typ = KDatetime
	case l.Type == KTimespan && r.Type == KTimespan && (o == "+" || o == "-"):
		typ = KTimespan
	case (l.Type == KLong || l.Type == KReal) && (r.Type == KLong || r.Type == KReal):
		typ = KLong
		if l.Type == KReal || r.Type == KReal {
			typ = KReal
		}
	default:
		if !unary || r.Type != KTimespan && r.Type != KLong && r.Type != KReal {
			return nil, refuse(at, op, "%s %s %s: the types do not combine", l.Key, o, r.Key)
		}
		typ = r.Type
	}
	key := "(" + l.Key + " " + o + " " + r.Key + ")"
	if unary {
		key = "-" + r.Key
	}
	n := &Node{Key: key, Sides: sidesOf(l, r), Type: typ, op: o, args: []*Node{l, r}}
	n.Eval = func(row *Row) Value {
		a, b := l.Eval(row), r.Eval(row)
		if unary {
			a = Value{Kind: b.Kind}
		}
		switch {
		case b.Kind == KNull || a.Kind == KNull && !unary:
			return null
		case a.Kind == KDatetime && b.Kind == KDatetime:
			return Value{Kind: KTimespan, D: a.T.Sub(b.T)}
		case a.Kind == KDatetime && b.Kind == KTimespan:
			if o == "-" {
				return Value{Kind: KDatetime, T: a.T.Add(-b.D)}
			}
			return Value{Kind: KDatetime, T: a.T.Add(b.D)}
		case a.Kind == KTimespan && b.Kind == KDatetime:
			return Value{Kind: KDatetime, T: b.T.Add(a.D)}
		case a.Kind == KTimespan && b.Kind == KTimespan:
			if o == "-" {
				return Value{Kind: KTimespan, D: a.D - b.D}
			}
			return Value{Kind: KTimespan, D: a.D + b.D}
		case a.Kind == KLong && b.Kind == KLong:
			switch o {
			case "+":
				return Value{Kind: KLong, I: a.I + b.I}
			case "-":
				return Value{Kind: KLong, I: a.I - b.I}
			case "*":
				return Value{Kind: KLong, I: a.I * b.I}
			case "/", "%":
				if b.I == 0 {
					return null
				}
				if o == "/" {
					return Value{Kind: KLong, I: a.I / b.I}
				}
				return Value{Kind: KLong, I: a.I % b.I}
			}
		}
		x, y := a.F, b.F
		if a.Kind == KLong {
			x = float64(a.I)
		}
		if b.Kind == KLong {
			y = float64(b.I)
		}
		switch o {
		case "+":
			return Value{Kind: KReal, F: x + y}
		case "-":
			return Value{Kind: KReal, F: x - y}
		case "*":
			return Value{Kind: KReal, F: x * y}
		case "/":
			return Value{Kind: KReal, F: x / y}
		}
		return null
	}
	return fold(n), nil
}

// listValues flattens the constants of an in/has_any list.
func (c *compiler) listValues(list []Expr, op string) ([]Value, error) {
	var out []Value
	for _, e := range list {
		if id, ok := e.(*Ident); ok {
			if t, ok := c.tables[id.Name]; ok {
				if len(t.cols) != 1 {
					return nil, refuse(id.P, op, "%s has %d columns: in (...) takes a one-column table", id.Name, len(t.cols))
				}
				col, _ := t.column(t.cols[0])
				out = append(out, col...)
				continue
			}
			if _, ok := c.pipes[id.Name]; ok {
				return nil, refuse(id.P, op, "%s is a query over a table: only literal lists are supported", id.Name)
			}
		}
		if tx, ok := e.(*TabularExpr); ok {
			return nil, refuse(tx.At(), op, "a subquery in (...) is not supported: only literal lists")
		}
		n, err := c.expr(e, nil, op)
		if err != nil {
			return nil, err
		}
		if n.lit.Kind == KDynamic {
			out = append(out, n.lit.List...)
			continue
		}
		out = append(out, n.lit)
	}
	return out, nil
}

func (c *compiler) in(e *InExpr, r *rel, op string) (*Node, error) {
	x, err := c.expr(e.L, r, op)
	if err != nil {
		return nil, err
	}
	vals, err := c.listValues(e.List, op)
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(vals))
	for k, v := range vals {
		texts[k] = v.Text()
	}
	lst := Value{Kind: KDynamic, List: vals}
	n := &Node{Key: fmt.Sprintf("(%s %s %s)", x.Key, e.Op, lst), Sides: x.Sides, Type: KBool, op: e.Op, args: []*Node{x}, lit: lst}
	switch e.Op {
	case "in", "!in":
		set := make(map[string]struct{}, len(texts))
		for _, t := range texts {
			set[t] = struct{}{}
		}
		neg := e.Op == "!in"
		n.Eval = func(row *Row) Value {
			_, ok := set[x.Eval(row).Text()]
			return Bool(ok != neg)
		}
	case "in~", "!in~":
		set := make(map[string]struct{}, len(texts))
		for _, t := range texts {
			set[strings.ToLower(t)] = struct{}{}
		}
		neg := e.Op == "!in~"
		n.Eval = func(row *Row) Value {
			_, ok := set[strings.ToLower(x.Eval(row).Text())]
			return Bool(ok != neg)
		}
	case "has_any":
		n.Eval = func(row *Row) Value {
			s := x.Eval(row).Text()
			for _, t := range texts {
				if hasTerm(s, t, false) {
					return Bool(true)
				}
			}
			return Bool(false)
		}
	case "has_all":
		n.Eval = func(row *Row) Value {
			s := x.Eval(row).Text()
			for _, t := range texts {
				if !hasTerm(s, t, false) {
					return Bool(false)
				}
			}
			return Bool(true)
		}
	}
	return fold(n), nil
}

func (c *compiler) call(e *Call, r *rel, op string) (*Node, error) {
	if e.Name == "ago" {
		if len(e.Args) != 1 {
			return nil, &Error{Pos: e.P, Op: op, Msg: "ago() takes one timespan", Syntax: true}
		}
		d, err := c.expr(e.Args[0], nil, op)
		if err != nil {
			return nil, err
		}
		if !d.isLit() || d.lit.Kind != KTimespan {
			return nil, refuse(e.P, op, "ago() needs a constant timespan")
		}
		return &Node{Key: "ago(" + d.Key + ")", Type: KDatetime, op: "ago", lit: d.lit,
			Eval: func(*Row) Value { panic("kql: ago() evaluated") }}, nil
	}
	if !knownFunctions[e.Name] {
		return nil, refuse(e.P, op, "the function %s() is not supported by this engine", e.Name)
	}
	var args []*Node
	for _, a := range e.Args {
		n, err := c.expr(a, r, op)
		if err != nil {
			return nil, err
		}
		args = append(args, n)
	}
	want := func(k int) error {
		if len(args) != k {
			return &Error{Pos: e.P, Op: op, Msg: fmt.Sprintf("%s() takes %d arguments, not %d", e.Name, k, len(args)), Syntax: true}
		}
		return nil
	}
	var keys []string
	for _, a := range args {
		keys = append(keys, a.Key)
	}
	n := &Node{Key: e.Name + "(" + strings.Join(keys, ", ") + ")", Sides: sidesOf(args...), op: e.Name, args: args}
	switch e.Name {
	case "not":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KBool
		n.Eval = func(row *Row) Value {
			v := args[0].Eval(row)
			if v.Kind != KBool {
				return null
			}
			return Bool(!v.B)
		}
	case "isempty", "isnotempty":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KBool
		neg := e.Name == "isnotempty"
		n.Eval = func(row *Row) Value {
			v := args[0].Eval(row)
			return Bool((v.Kind == KNull || v.Kind == KString && v.S == "") != neg)
		}
	case "isnull", "isnotnull":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KBool
		neg := e.Name == "isnotnull"
		n.Eval = func(row *Row) Value { return Bool((args[0].Eval(row).Kind == KNull) != neg) }
	case "tostring":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KString
		n.Eval = func(row *Row) Value { return Str(args[0].Eval(row).Text()) }
	case "tolower", "toupper":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KString
		f := strings.ToLower
		if e.Name == "toupper" {
			f = strings.ToUpper
		}
		n.Eval = func(row *Row) Value { return Str(f(args[0].Eval(row).Text())) }
	case "strcat":
		if len(args) == 0 {
			return nil, want(1)
		}
		n.Type = KString
		n.Eval = func(row *Row) Value {
			var b strings.Builder
			for _, a := range args {
				b.WriteString(a.Eval(row).Text())
			}
			return Str(b.String())
		}
	case "strlen":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KLong
		n.Eval = func(row *Row) Value { return Value{Kind: KLong, I: int64(len([]rune(args[0].Eval(row).Text())))} }
	case "iff", "iif":
		if err := want(3); err != nil {
			return nil, err
		}
		n.Type = args[1].Type
		n.Eval = func(row *Row) Value {
			if args[0].Eval(row).True() {
				return args[1].Eval(row)
			}
			return args[2].Eval(row)
		}
	case "case":
		if len(args) < 3 || len(args)%2 == 0 {
			return nil, &Error{Pos: e.P, Op: op, Msg: "case() takes pairs of predicate, value and an else value", Syntax: true}
		}
		n.Type = args[1].Type
		n.Eval = func(row *Row) Value {
			for k := 0; k+1 < len(args); k += 2 {
				if args[k].Eval(row).True() {
					return args[k+1].Eval(row)
				}
			}
			return args[len(args)-1].Eval(row)
		}
	case "ipv4_is_in_range":
		if err := want(2); err != nil {
			return nil, err
		}
		n.Type = KBool
		n.Eval = func(row *Row) Value {
			a, ok1 := parseIPv4(args[0].Eval(row).Text())
			p, ok2 := parseIPv4Range(args[1].Eval(row).Text())
			if !ok1 || !ok2 {
				return null
			}
			return Bool(p.Contains(a))
		}
	case "ipv4_is_in_any_range":
		if len(args) < 2 {
			return nil, want(2)
		}
		n.Type = KBool
		n.Eval = func(row *Row) Value {
			a, ok := parseIPv4(args[0].Eval(row).Text())
			if !ok {
				return null
			}
			for _, r := range args[1:] {
				v := r.Eval(row)
				list := []Value{v}
				if v.Kind == KDynamic {
					list = v.List
				}
				for _, x := range list {
					if p, ok := parseIPv4Range(x.Text()); ok && p.Contains(a) {
						return Bool(true)
					}
				}
			}
			return Bool(false)
		}
	case "ipv4_is_private":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KBool
		n.Eval = func(row *Row) Value {
			a, ok := parseIPv4(args[0].Eval(row).Text())
			if !ok {
				return null
			}
			return Bool(a.IsPrivate())
		}
	case "todynamic", "parse_json":
		if err := want(1); err != nil {
			return nil, err
		}
		n.Type = KDynamic
		n.Eval = func(row *Row) Value { return parseJSON(args[0].Eval(row)) }
	default:
		return nil, refuse(e.P, op, "the function %s() is not supported by this engine", e.Name)
	}
	return fold(n), nil
}

var _ = time.Second
