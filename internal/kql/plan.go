package kql

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Plan is a compiled rule in the shape the engine runs: the candidate
// filters of each table (the bundled rule's built-in tests as flags, plus
// extra predicates), the join on UserPrincipalName, the time window, the
// pair predicates and the output columns.
type Plan struct {
	// Built-in candidate tests (the engine's fast path).
	ISuccess, NSuccess bool // ResultType == 0
	IAuthOrCA          bool // AuthenticationRequirement == "singleFactorAuthentication" or ConditionalAccessStatus == "notApplied"
	// ISafe and NSafe: the IP is neither in SafeIPs nor in SafeNetworks.
	ISafe, NSafe bool
	SafeIPs      []string
	SafeNetworks []string
	// Lookback is `TimeGenerated > ago(Lookback)` on both tables (0: none);
	// only a run at a given time (--now) applies it.
	Lookback time.Duration
	// IExtra and NExtra are the other row predicates of each table.
	IExtra, NExtra []*Node
	// NFromI: the non-interactive side is the union of both tables (union
	// SigninLogs, AADNonInteractiveUserSignInLogs): SigninLogs rows probe
	// too. NOnlyI and NOnlyN are the predicates of the union's SigninLogs
	// and AADNonInteractiveUserSignInLogs branches, for that table's rows
	// only (NRowFrom); the N-side tests above apply to both.
	NFromI         bool
	NOnlyI, NOnlyN []*Node

	JoinKind string
	// MinGap <= N.TimeGenerated - I.TimeGenerated <= MaxGap.
	MinGap, MaxGap time.Duration
	// IPDiffers and LocationDiffers are the bundled rule's pair tests.
	IPDiffers, LocationDiffers bool
	// Residual are the other pair predicates.
	Residual []*Node
	// Extra are output columns after the bundled rule's eleven.
	Extra []Column
	// Order is the result's order, as the query gives it.
	Order string
	// Summary is a summarize after the join (nil: none): the result rows
	// are its output, computed from the pairs (with the columns above).
	Summary *Summary
}

// Column is an extra output column.
type Column struct {
	Name string
	Node *Node
}

// Default reports whether p is exactly the bundled rule's plan (safe lists
// aside): the engine's fast path with nothing added.
func (p *Plan) Default() bool {
	return p.Summary == nil && p.ISuccess && p.NSuccess && p.IAuthOrCA && p.ISafe && p.NSafe && len(p.IExtra) == 0 && len(p.NExtra) == 0 &&
		p.Lookback == 3*time.Hour && !p.NFromI &&
		p.MinGap == time.Minute && p.MaxGap == 2*time.Hour && p.IPDiffers && p.LocationDiffers && len(p.Residual) == 0 && len(p.Extra) == 0
}

// IRow reports whether an interactive record passes the extra predicates.
func (p *Plan) IRow(r *signin.Record) bool { return all(p.IExtra, &Row{I: r}) }

// NRow reports whether a non-interactive record passes the extra predicates.
func (p *Plan) NRow(r *signin.Record) bool { return all(p.NExtra, &Row{N: r}) }

// NRowFrom reports whether a record of the given table passes the
// predicates of its union branch (true when the plan has no union): a
// record probing as the non-interactive side must pass this and NRow.
func (p *Plan) NRowFrom(table Side, r *signin.Record) bool {
	if table == SideI {
		return all(p.NOnlyI, &Row{N: r})
	}
	return all(p.NOnlyN, &Row{N: r})
}

// PairOK reports whether a pair passes the residual predicates.
func (p *Plan) PairOK(i, n *signin.Record) bool { return all(p.Residual, &Row{I: i, N: n}) }

// ExtraValues returns the extra output columns' texts for a pair.
func (p *Plan) ExtraValues(i, n *signin.Record) []string {
	out := make([]string, len(p.Extra))
	row := &Row{I: i, N: n}
	for k, c := range p.Extra {
		out[k] = c.Node.Eval(row).Text()
	}
	return out
}

// Reads reports whether the plan's pair predicates or added columns read
// column col of the given side: the pipeline's extracts carry it then.
func (p *Plan) Reads(side Side, col string) bool {
	var walk func(n *Node) bool
	walk = func(n *Node) bool {
		if n.op == "col" && n.side == side && n.col == col {
			return true
		}
		return slices.ContainsFunc(n.args, walk)
	}
	for _, n := range p.Residual {
		if walk(n) {
			return true
		}
	}
	for _, c := range p.Extra {
		if walk(c.Node) {
			return true
		}
	}
	return false
}

// Columns returns the columns beyond the engine's own (signin.Record.Extra)
// the plan reads of the given side's rows, in signin.ExtraColumns' order:
// the readers decode them (signin.Options.Extra). None for the bundled rule.
func (p *Plan) Columns(side Side) []string {
	var nodes []*Node
	if side == SideI {
		nodes = append(nodes, p.IExtra...)
	} else {
		nodes = append(nodes, p.NExtra...)
		nodes = append(nodes, p.NOnlyI...)
		nodes = append(nodes, p.NOnlyN...)
	}
	nodes = append(nodes, p.Residual...)
	for _, c := range p.Extra {
		nodes = append(nodes, c.Node)
	}
	return extraColumnsOf(side, nodes)
}

// PairColumns returns the columns beyond the engine's own that the plan's
// pair predicates and added output columns read of the given side: the
// event pipeline's extracts would have to carry them.
func (p *Plan) PairColumns(side Side) []string {
	var nodes []*Node
	nodes = append(nodes, p.Residual...)
	for _, c := range p.Extra {
		nodes = append(nodes, c.Node)
	}
	return extraColumnsOf(side, nodes)
}

func extraColumnsOf(side Side, nodes []*Node) []string {
	seen := map[string]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if n.op == "col" && n.side == side {
			if _, ok := extraColumns[n.col]; ok {
				seen[n.col] = true
			}
		}
		for _, a := range n.args {
			walk(a)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	var out []string
	for _, c := range signin.ExtraColumns() {
		if seen[c] {
			out = append(out, c)
		}
	}
	return out
}

// ExtraNames are the extra output columns' names.
func (p *Plan) ExtraNames() []string {
	out := make([]string, len(p.Extra))
	for k, c := range p.Extra {
		out[k] = c.Name
	}
	return out
}

func all(ns []*Node, row *Row) bool {
	for _, n := range ns {
		if !n.Eval(row).True() {
			return false
		}
	}
	return true
}

// defaultOutput is the bundled rule's final project, as expressions.
var defaultOutput = []struct{ name, key string }{
	{"NISignInTime", "N.TimeGenerated"},
	{"InteractiveTime", "I.TimeGenerated"},
	{"UserPrincipalName", "N.UserPrincipalName"},
	{"AppDisplayName", "N.AppDisplayName"},
	{"NIIPAddress", "N.IPAddress"},
	{"NICountry", "N.Location"},
	{"InteractiveIP", "I.IPAddress"},
	{"InteractiveCountry", "I.Location"},
	{"CorrelationId", "N.CorrelationId"},
	{"UniqueTokenIdentifier", "N.UniqueTokenIdentifier"},
	{"TimeSinceInteractive", "(N.TimeGenerated - I.TimeGenerated)"},
}

func isCol(n *Node, side Side, col string) bool {
	return n.op == "col" && n.side == side && n.col == col
}

// plan turns the compiled query into the engine's shape, or refuses it.
func (c *compiler) plan(r *rel, at Pos) (*Plan, error) {
	if !r.joined {
		return nil, refuse(at, "query", "the rule has no join: this engine runs a join of SigninLogs with AADNonInteractiveUserSignInLogs on UserPrincipalName")
	}
	p := &Plan{JoinKind: r.kind, MinGap: -1 << 62, MaxGap: 1<<62 - 1}
	window := false
	lookback := map[Side]time.Duration{}
	for _, n := range r.preds {
		switch n.Sides {
		case SideI, SideN:
			if err := c.rowPred(p, n, lookback, r.joinAt); err != nil {
				return nil, err
			}
		default:
			if n.usesAgo() {
				return nil, refuse(r.joinAt, "where", "ago() is supported only as TimeGenerated > ago(d) on one table: %s", n.Key)
			}
			switch {
			case n.op == "between" && n.args[1].isLit() && n.args[2].isLit() && n.args[1].lit.Kind == KTimespan && n.args[2].lit.Kind == KTimespan &&
				n.args[0].op == "-" && isCol(n.args[0].args[0], SideN, signin.ColTimeGenerated) && isCol(n.args[0].args[1], SideI, signin.ColTimeGenerated):
				window = true
				p.MinGap = max(p.MinGap, n.args[1].lit.D)
				p.MaxGap = min(p.MaxGap, n.args[2].lit.D)
			case n.op == "!=" && (isCol(n.args[0], SideN, signin.ColIPAddress) && isCol(n.args[1], SideI, signin.ColIPAddress) ||
				isCol(n.args[0], SideI, signin.ColIPAddress) && isCol(n.args[1], SideN, signin.ColIPAddress)):
				p.IPDiffers = true
			case n.op == "!=" && (isCol(n.args[0], SideN, signin.ColLocation) && isCol(n.args[1], SideI, signin.ColLocation) ||
				isCol(n.args[0], SideI, signin.ColLocation) && isCol(n.args[1], SideN, signin.ColLocation)):
				p.LocationDiffers = true
			default:
				p.Residual = append(p.Residual, n)
			}
		}
	}
	if r.union {
		var d [2]time.Duration // the branches' ago(), I then N
		for k, br := range []struct {
			preds []*Node
			dst   *[]*Node
		}{{r.onlyI, &p.NOnlyI}, {r.onlyN, &p.NOnlyN}} {
			for _, n := range br.preds {
				if n.usesAgo() {
					if n.op != ">" || !isCol(n.args[0], SideN, signin.ColTimeGenerated) || n.args[1].op != "ago" || d[k] != 0 {
						return nil, refuse(r.joinAt, "union", "ago() in a union branch is supported only as one TimeGenerated > ago(d): %s", n.Key)
					}
					d[k] = n.args[1].lit.D
					continue
				}
				*br.dst = append(*br.dst, n)
			}
		}
		if d[0] != d[1] {
			return nil, refuse(r.joinAt, "union", "the union's branches differ in TimeGenerated > ago(...) (%s, %s): not supported", formatDuration(d[0]), formatDuration(d[1]))
		}
		if d[0] != 0 {
			if old, ok := lookback[SideN]; ok && old != d[0] {
				return nil, refuse(r.joinAt, "where", "two ago() tests on %s", SideN)
			}
			lookback[SideN] = d[0]
		}
		p.NFromI = true
	}
	if !window {
		return nil, refuse(r.joinAt, "join", "no time window: the where after the join must hold (TimeGenerated - InteractiveTime) between (a .. b), the non-interactive time minus the interactive one")
	}
	if p.MinGap < 0 || p.MaxGap < p.MinGap {
		return nil, refuse(r.joinAt, "join", "the window %s .. %s: this engine pairs non-interactive sign-ins at or after the interactive one (0 <= a <= b)", formatDuration(p.MinGap), formatDuration(p.MaxGap))
	}
	li, ln := lookback[SideI], lookback[SideN]
	if li != ln {
		return nil, refuse(r.joinAt, "where", "TimeGenerated > ago(...) differs between the tables (%s, %s): not supported", formatDuration(li), formatDuration(ln))
	}
	p.Lookback = li
	if err := c.safeLists(p); err != nil {
		return nil, err
	}

	if r.sum != nil {
		// The summarize reads the join's result, which starts with the
		// bundled rule's columns as any result does here; its own output
		// columns and order are the rule's result.
		s := r.sum
		s.Order, s.Desc = r.order, r.orderDesc
		for _, cl := range r.cols {
			if cl.node.usesAgo() {
				return nil, refuse(at, "project", "column %s uses ago()", cl.name)
			}
			s.Out = append(s.Out, Column{cl.name, cl.node})
		}
		for _, n := range s.Order {
			if n.usesAgo() {
				return nil, refuse(r.orderAt, "order by", "ago() in an order by key")
			}
		}
		r.cols = r.sumPre
		r.order, r.orderDesc = nil, nil
		p.Summary = s
	}
	// The output: the bundled rule's eleven columns, then any others.
	if len(r.cols) < len(defaultOutput) {
		return nil, refuse(at, "project", "the result has %d columns: this engine's result starts with the bundled rule's %d (%s)", len(r.cols), len(defaultOutput), outputNames())
	}
	for k, want := range defaultOutput {
		got := r.cols[k]
		if got.name != want.name || got.node.Key != want.key {
			return nil, refuse(at, "project", "result column %d is %s = %s; this engine's result starts with the bundled rule's columns %s (%s = %s here), and a tuned rule may add columns after them", k+1, got.name, got.node.Key, outputNames(), want.name, want.key)
		}
	}
	for _, cl := range r.cols[len(defaultOutput):] {
		if cl.node.usesAgo() {
			return nil, refuse(at, "project", "column %s uses ago()", cl.name)
		}
		if p.Summary != nil {
			switch cl.node.Type {
			case KString, KLong, KReal, KBool, KDatetime:
			default:
				return nil, refuse(p.Summary.At, "summarize", "the added column %s (%s) is not a string, long, real, bool or datetime: not supported before a summarize", cl.name, cl.node.Key)
			}
		}
		p.Extra = append(p.Extra, Column{cl.name, cl.node})
	}

	// The order: the engine sorts by UserPrincipalName, then InteractiveTime
	// (then the other columns, for a deterministic output).
	p.Order = "UserPrincipalName asc, InteractiveTime asc"
	sorted := []string{"N.UserPrincipalName", "I.TimeGenerated"}
	if p.Summary != nil {
		p.Order = "the summarize's"
	}
	if len(r.order) > len(sorted) {
		return nil, refuse(r.orderAt, "order by", "this engine orders by UserPrincipalName asc, InteractiveTime asc")
	}
	for k, n := range r.order {
		if n.Key != sorted[k] || r.orderDesc[k] {
			return nil, refuse(r.orderAt, "order by", "this engine orders by UserPrincipalName asc, InteractiveTime asc (KQL sorts descending unless asc is written)")
		}
	}
	return p, nil
}

func outputNames() string {
	var names []string
	for _, c := range defaultOutput {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

const (
	keySuccess = ".ResultType == \"0\")"
	keyAuthCA  = "((I.AuthenticationRequirement == \"singleFactorAuthentication\") or (I.ConditionalAccessStatus == \"notApplied\"))"
)

// pending safe-list tests, matched up in safeLists.
type safeTest struct {
	side Side
	isIP bool     // an IP test, else a network test
	ips  []string // not(IPAddress in (...)), or nil
	nets []string // isempty(ipv4_lookup(...).network), or nil
	node *Node
}

func (c *compiler) rowPred(p *Plan, n *Node, lookback map[Side]time.Duration, at Pos) error {
	side := n.Sides
	if n.usesAgo() {
		if (n.op == ">" || n.op == ">=") && isCol(n.args[0], side, signin.ColTimeGenerated) && n.args[1].op == "ago" && n.op == ">" {
			d := n.args[1].lit.D
			if old, ok := lookback[side]; ok && old != d {
				return refuse(at, "where", "two ago() tests on %s", side)
			}
			lookback[side] = d
			return nil
		}
		return refuse(at, "where", "ago() is supported only as TimeGenerated > ago(d): %s", n.Key)
	}
	switch {
	case n.Key == "(N"+keySuccess:
		p.NSuccess = true
		return nil
	case n.Key == "(I"+keySuccess:
		p.ISuccess = true
		return nil
	case n.Key == keyAuthCA:
		p.IAuthOrCA = true
		return nil
	case n.op == "not" && n.args[0].op == "in" && isCol(n.args[0].args[0], side, signin.ColIPAddress) && stringList(n.args[0].lit.List):
		c.safe = append(c.safe, safeTest{side: side, isIP: true, ips: texts(n.args[0].lit.List), node: n})
		return nil
	case n.op == "!in" && isCol(n.args[0], side, signin.ColIPAddress) && stringList(n.lit.List):
		c.safe = append(c.safe, safeTest{side: side, isIP: true, ips: texts(n.lit.List), node: n})
		return nil
	case n.op == "isempty" && n.args[0].op == "lookup" && isCol(n.args[0].args[0], side, signin.ColIPAddress):
		c.safe = append(c.safe, safeTest{side: side, nets: texts(n.args[0].lit.List), node: n})
		return nil
	}
	if side == SideI {
		p.IExtra = append(p.IExtra, n)
	} else {
		p.NExtra = append(p.NExtra, n)
	}
	return nil
}

func stringList(vs []Value) bool {
	for _, v := range vs {
		if v.Kind != KString {
			return false
		}
	}
	return true
}

func texts(vs []Value) []string {
	var out []string
	for _, v := range vs {
		if s := strings.TrimSpace(v.Text()); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// safeLists matches the safe-IP and safe-network tests into the engine's
// one SafeList: a table uses it when it has one IP test and one network
// test with the same lists as the other table's. Any other such test stays
// an extra predicate.
func (c *compiler) safeLists(p *Plan) error {
	per := map[Side][]safeTest{}
	for _, t := range c.safe {
		per[t.side] = append(per[t.side], t)
	}
	var ips, nets []string
	chosen := false
	for _, side := range []Side{SideN, SideI} {
		var ipT, netT *safeTest
		for k := range per[side] {
			t := &per[side][k]
			if t.isIP && ipT == nil {
				ipT = t
			} else if !t.isIP && netT == nil {
				netT = t
			}
		}
		use := ipT != nil && netT != nil
		if use && chosen && (!slices.Equal(ips, ipT.ips) || !slices.Equal(nets, netT.nets)) {
			use = false
		}
		if use && !chosen {
			ips, nets, chosen = ipT.ips, netT.nets, true
		}
		for k := range per[side] {
			t := &per[side][k]
			if use && (t == ipT || t == netT) {
				continue
			}
			if side == SideI {
				p.IExtra = append(p.IExtra, t.node)
			} else {
				p.NExtra = append(p.NExtra, t.node)
			}
		}
		if side == SideI {
			p.ISafe = use
		} else {
			p.NSafe = use
		}
	}
	p.SafeIPs, p.SafeNetworks = ips, nets
	return nil
}

// String describes the plan for `tokenpivot rule check`.
func (p *Plan) String() string {
	var b strings.Builder
	side := func(name string, success, authCA, safe bool, extra []*Node) {
		fmt.Fprintf(&b, "%s candidates:\n", name)
		if success {
			b.WriteString("  ResultType == 0\n")
		}
		if authCA {
			b.WriteString("  AuthenticationRequirement == \"singleFactorAuthentication\" or ConditionalAccessStatus == \"notApplied\"\n")
		}
		if safe {
			b.WriteString("  IPAddress not in the safe IPs, and in no safe network (ipv4_lookup)\n")
		}
		if p.Lookback > 0 {
			fmt.Fprintf(&b, "  TimeGenerated > ago(%s)   (applied by a run at a given time: --now)\n", formatDuration(p.Lookback))
		}
		for _, n := range extra {
			fmt.Fprintf(&b, "  %s\n", n.Key)
		}
		if !success && !authCA && !safe && len(extra) == 0 {
			b.WriteString("  every row\n")
		}
	}
	side("SigninLogs (I)", p.ISuccess, p.IAuthOrCA, p.ISafe, p.IExtra)
	if p.NFromI {
		side("AADNonInteractiveUserSignInLogs and SigninLogs (N: their union)", p.NSuccess, false, p.NSafe, p.NExtra)
		for _, br := range []struct {
			name  string
			preds []*Node
		}{{"  of which SigninLogs rows:", p.NOnlyI}, {"  of which AADNonInteractiveUserSignInLogs rows:", p.NOnlyN}} {
			b.WriteString(br.name + "\n")
			for _, n := range br.preds {
				fmt.Fprintf(&b, "    %s\n", n.Key)
			}
			if len(br.preds) == 0 {
				b.WriteString("    every row\n")
			}
		}
	} else {
		side("AADNonInteractiveUserSignInLogs (N)", p.NSuccess, false, p.NSafe, p.NExtra)
	}
	fmt.Fprintf(&b, "safe IPs: %s\n", listText(p.SafeIPs))
	fmt.Fprintf(&b, "safe networks: %s\n", listText(p.SafeNetworks))
	fmt.Fprintf(&b, "join: kind=%s on UserPrincipalName\n", p.JoinKind)
	fmt.Fprintf(&b, "window: N.TimeGenerated - I.TimeGenerated between (%s .. %s)\n", formatDuration(p.MinGap), formatDuration(p.MaxGap))
	b.WriteString("pair predicates:\n")
	if p.IPDiffers {
		b.WriteString("  N.IPAddress != I.IPAddress\n")
	}
	if p.LocationDiffers {
		b.WriteString("  N.Location != I.Location\n")
	}
	for _, n := range p.Residual {
		fmt.Fprintf(&b, "  %s\n", n.Key)
	}
	b.WriteString("output:\n")
	for _, c := range defaultOutput {
		fmt.Fprintf(&b, "  %s = %s\n", c.name, c.key)
	}
	for _, c := range p.Extra {
		fmt.Fprintf(&b, "  %s = %s   (added)\n", c.Name, c.Node.Key)
	}
	fmt.Fprintf(&b, "order: %s\n", p.Order)
	if p.Summary != nil {
		b.WriteString(p.Summary.String())
	}
	for _, sd := range []Side{SideI, SideN} {
		if cols := p.Columns(sd); len(cols) > 0 {
			fmt.Fprintf(&b, "%s: also reads %s", sd, strings.Join(cols, ", "))
			if pc := p.PairColumns(sd); len(pc) > 0 {
				fmt.Fprintf(&b, " (%s after the join: detect and test only, process and serve refuse it)", strings.Join(pc, ", "))
			}
			b.WriteString("\n")
		}
	}
	if p.Default() && p.Summary == nil {
		b.WriteString("engine: the bundled rule's fast path, nothing added\n")
	} else {
		b.WriteString("engine: the bundled rule's fast path with the differences above\n")
	}
	return b.String()
}

func listText(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}
