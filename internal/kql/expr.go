package kql

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Row is what a compiled expression reads: the interactive (SigninLogs)
// and the non-interactive record of a pair; a one-table predicate reads
// only its own. P is a row of a table computed after the join: the input
// of a summarize (its pre-summarize columns) or one of its output rows.
type Row struct {
	I, N *signin.Record
	P    []Value
}

// Side is one of the two tables, as a bit set of the sides an expression
// reads.
type Side uint8

// The two sides.
const (
	SideI Side = 1 << iota // SigninLogs
	SideN                  // AADNonInteractiveUserSignInLogs
)

func (s Side) String() string {
	switch s {
	case SideI:
		return "SigninLogs"
	case SideN:
		return "AADNonInteractiveUserSignInLogs"
	}
	return "both tables"
}

func (s Side) short() string {
	if s == SideI {
		return "I"
	}
	return "N"
}

// Node is a compiled scalar expression over the base columns of the two
// tables. Key is a canonical text of it: two nodes with the same Key
// compute the same value.
type Node struct {
	Key   string
	Sides Side
	Type  Kind // KString, KBool, KDatetime, ... (KNull when unknown)
	Eval  func(*Row) Value
	// shape, for the compiler's recognition of the rule's parts.
	op   string  // "col", "lit", "==", "-", "between", "in", "lookup", "not", "and", "or", "call:name", ...
	args []*Node // operands
	col  string  // op "col": the column; op "lookup": unused
	lit  Value   // op "lit": the value; op "in"/"lookup": the list
	side Side    // op "col": the table
	// between: lo and hi in args[1], args[2]; lookup: return_unmatched in lit.B? (see lookupNode)
	nets []netip.Prefix // op "lookup": the networks
}

// columns the engine reads, with their types; AuthenticationRequirement
// and ConditionalAccessStatus only from SigninLogs.
var baseColumns = []string{
	signin.ColTimeGenerated, signin.ColUserPrincipalName, signin.ColIPAddress, signin.ColLocation, signin.ColResultType,
	signin.ColAppDisplayName, signin.ColCorrelationId, signin.ColUniqueTokenIdentifier, signin.ColId,
	signin.ColAuthenticationRequirement, signin.ColConditionalAccessStatus,
}

func getter(col string) func(*signin.Record) string {
	switch col {
	case signin.ColUserPrincipalName:
		return func(r *signin.Record) string { return r.UserPrincipalName }
	case signin.ColIPAddress:
		return func(r *signin.Record) string { return r.IPAddress }
	case signin.ColLocation:
		return func(r *signin.Record) string { return r.Location }
	case signin.ColResultType:
		return func(r *signin.Record) string { return r.ResultType }
	case signin.ColAppDisplayName:
		return func(r *signin.Record) string { return r.AppDisplayName }
	case signin.ColCorrelationId:
		return func(r *signin.Record) string { return r.CorrelationId }
	case signin.ColUniqueTokenIdentifier:
		return func(r *signin.Record) string { return r.UniqueTokenIdentifier }
	case signin.ColId:
		return func(r *signin.Record) string { return r.Id }
	case signin.ColAuthenticationRequirement:
		return func(r *signin.Record) string { return r.AuthenticationRequirement }
	case signin.ColConditionalAccessStatus:
		return func(r *signin.Record) string { return r.ConditionalAccessStatus }
	}
	return nil
}

// extraColumns are the other columns of the sign-in tables a rule may
// read, with their KQL types: signin.Record.Extra, which the readers fill
// only with the columns a plan names (Plan.Columns), so the bundled rule
// decodes nothing more. A dynamic column is its exported JSON text, read
// as JSON (member access, tostring). Not IsThroughGlobalSecureAccess: a
// Parquet export holds it as a boolean, which the readers leave unread
// (the precision modes fail open on it), so a rule testing it would not
// be exact.
var extraColumns = map[string]Kind{
	signin.ColSessionId: KString, signin.ColAutonomousSystemNumber: KLong, signin.ColNetworkLocationDetails: KDynamic,
	signin.ColAppId: KString, signin.ColLocationDetails: KDynamic,
	signin.ColDeviceDetail: KDynamic, signin.ColTokenProtectionStatusDetails: KDynamic,
	signin.ColClientAppUsed: KString, signin.ColResourceDisplayName: KString, signin.ColUserAgent: KString,
}

// extraGetter reads column col of Record.Extra ("" when the record has none).
func extraGetter(col string) func(*signin.Record) string {
	field := func(e *signin.Extra) string {
		switch col {
		case signin.ColSessionId:
			return e.SessionId
		case signin.ColAutonomousSystemNumber:
			return e.AutonomousSystemNumber
		case signin.ColNetworkLocationDetails:
			return e.NetworkLocationDetails
		case signin.ColIsThroughGlobalSecureAccess:
			return e.IsThroughGlobalSecureAccess
		case signin.ColAppId:
			return e.AppId
		case signin.ColLocationDetails:
			return e.LocationDetails
		case signin.ColDeviceDetail:
			return e.DeviceDetail
		case signin.ColTokenProtectionStatusDetails:
			return e.TokenProtectionStatusDetails
		case signin.ColClientAppUsed:
			return e.ClientAppUsed
		case signin.ColResourceDisplayName:
			return e.ResourceDisplayName
		case signin.ColUserAgent:
			return e.UserAgent
		}
		panic("kql: unknown extra column " + col)
	}
	return func(r *signin.Record) string {
		if r.Extra == nil {
			return ""
		}
		return field(r.Extra)
	}
}

func colNode(side Side, col string) *Node {
	pick := func(r *Row) *signin.Record { return r.I }
	if side == SideN {
		pick = func(r *Row) *signin.Record { return r.N }
	}
	n := &Node{Key: side.short() + "." + col, Sides: side, op: "col", col: col, side: side}
	if col == signin.ColTimeGenerated {
		n.Type = KDatetime
		n.Eval = func(r *Row) Value { return Value{Kind: KDatetime, T: pick(r).TimeGenerated} }
		return n
	}
	if typ, ok := extraColumns[col]; ok {
		get := extraGetter(col)
		n.Type = typ
		switch typ {
		case KLong: // "" (absent, null) is null
			n.Eval = func(r *Row) Value {
				i, err := strconv.ParseInt(get(pick(r)), 10, 64)
				if err != nil {
					return null
				}
				return Value{Kind: KLong, I: i}
			}
		case KDynamic:
			n.Eval = func(r *Row) Value {
				v, _ := jsonValue([]byte(get(pick(r))))
				return v
			}
		default:
			n.Eval = func(r *Row) Value { return Str(get(pick(r))) }
		}
		return n
	}
	get := getter(col)
	n.Type = KString
	n.Eval = func(r *Row) Value { return Str(get(pick(r))) }
	return n
}

func litNode(v Value) *Node {
	return &Node{Key: v.String(), Type: v.Kind, op: "lit", lit: v, Eval: func(*Row) Value { return v }}
}

func (n *Node) isLit() bool { return n.op == "lit" }

func sidesOf(args ...*Node) Side {
	var s Side
	for _, a := range args {
		s |= a.Sides
	}
	return s
}

// cmpValues compares two values of comparable kinds: -1, 0, 1, or ok false
// when they cannot be compared (a null, or different kinds).
func cmpValues(a, b Value) (int, bool) {
	if a.Kind == KNull || b.Kind == KNull {
		return 0, false
	}
	// A string column compared with a number compares the text: ResultType
	// is a string column that the rule compares with 0.
	if a.Kind == KString && (b.Kind == KLong || b.Kind == KReal) {
		b = Str(b.Text())
	}
	if b.Kind == KString && (a.Kind == KLong || a.Kind == KReal) {
		a = Str(a.Text())
	}
	if a.Kind == KLong && b.Kind == KReal {
		a = Value{Kind: KReal, F: float64(a.I)}
	}
	if a.Kind == KReal && b.Kind == KLong {
		b = Value{Kind: KReal, F: float64(b.I)}
	}
	if a.Kind != b.Kind {
		return 0, false
	}
	switch a.Kind {
	case KString:
		return strings.Compare(a.S, b.S), true
	case KLong:
		return cmp3(a.I, b.I), true
	case KReal:
		return cmp3(a.F, b.F), true
	case KDatetime:
		return a.T.Compare(b.T), true
	case KTimespan:
		return cmp3(a.D, b.D), true
	case KBool:
		return cmp3(b2i(a.B), b2i(b.B)), true
	}
	return 0, false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmp3[T int | int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func boolOrNull(b, ok bool) Value {
	if !ok {
		return null
	}
	return Bool(b)
}

// isTermByte is an ASCII letter or digit: KQL breaks strings into terms at
// every other character.
func isTermByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// hasTerm reports whether s has needle as a whole term (or run of terms):
// an occurrence not preceded or followed by a letter or digit where the
// needle itself begins or ends with one. Case-insensitive unless cs.
func hasTerm(s, needle string, cs bool) bool {
	if !cs {
		s, needle = strings.ToLower(s), strings.ToLower(needle)
	}
	if needle == "" {
		return true
	}
	for from := 0; from <= len(s)-len(needle); {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(needle)
		okStart := i == 0 || !isTermByte(s[i-1]) || !isTermByte(needle[0])
		okEnd := end == len(s) || !isTermByte(s[end]) || !isTermByte(needle[len(needle)-1])
		if okStart && okEnd {
			return true
		}
		from = i + 1
	}
	return false
}

// stringOp evaluates a binary string operator (without its ! form).
func stringOp(op, s, t string) bool {
	switch op {
	case "==":
		return s == t
	case "=~":
		return strings.EqualFold(s, t)
	case "has":
		return hasTerm(s, t, false)
	case "has_cs":
		return hasTerm(s, t, true)
	case "contains":
		return strings.Contains(strings.ToLower(s), strings.ToLower(t))
	case "contains_cs":
		return strings.Contains(s, t)
	case "startswith":
		return strings.HasPrefix(strings.ToLower(s), strings.ToLower(t))
	case "startswith_cs":
		return strings.HasPrefix(s, t)
	case "endswith":
		return strings.HasSuffix(strings.ToLower(s), strings.ToLower(t))
	case "endswith_cs":
		return strings.HasSuffix(s, t)
	}
	panic("kql: unknown string operator " + op)
}

// parseIPv4 reads a dotted IPv4 address as ipv4_* functions do; false for
// anything else (an IPv6 address, text).
func parseIPv4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4Range reads "a.b.c.d/n" or "a.b.c.d" (a /32).
func parseIPv4Range(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, ok := parseIPv4(s)
		if !ok {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, 32), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		// KQL accepts a host address with a prefix length: 10.1.2.3/8.
		addr, bitsText, _ := strings.Cut(s, "/")
		a, ok := parseIPv4(addr)
		bits, err := strconv.Atoi(bitsText)
		if !ok || err != nil || bits < 0 || bits > 32 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, bits).Masked(), true
	}
	return p.Masked(), true
}
