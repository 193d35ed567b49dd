package gen

import (
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"reflect"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// guid is a random (version 4) GUID drawn from the generator's RNG.
type guid [16]byte

func newGUID(r *rand.Rand) (g guid) {
	binary.LittleEndian.PutUint64(g[:8], r.Uint64())
	binary.LittleEndian.PutUint64(g[8:], r.Uint64())
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

const hexDigits = "0123456789abcdef"

func (g guid) appendTo(dst []byte) []byte {
	for i, b := range g {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	return dst
}

func (g guid) String() string { return string(g.appendTo(nil)) }

// row is one sign-in, either table, before it becomes columns.
type row struct {
	table    signin.Table
	micros   int64 // TimeGenerated, Unix microseconds
	u        *user
	upn      string // usually u.upn
	ip       string
	country  *country // nil: Entra could not place the IP (Location "")
	city     *city
	app      *app
	res      *outcome
	authReq  string
	ca       string
	id, corr guid
	session  guid
	token    [16]byte // UniqueTokenIdentifier, base64url
	ua       string
	plat     *platform // nil: an unknown device (attacker tooling)
	mfa      string    // interactive second factor, "" for none
	duration int64
	incoming string // NI IncomingTokenType
	niDetail string // NI success step detail
	dup      bool   // also write it to the hour's retry file
}

func (r *row) time() time.Time { return time.UnixMicro(r.micros).UTC() }

func (r *row) location() string {
	if r.country == nil {
		return ""
	}
	return r.country.code
}

func (r *row) tokenID() string { return base64.RawURLEncoding.EncodeToString(r.token[:]) }

type kind uint8

const (
	kString kind = iota
	kTime
	kInt64
	kBool
)

// column is one output column: its name, type and how a row fills it.
// A string column whose value is empty is written as null, as Log Analytics
// exports leave unset values.
type column struct {
	name string
	kind kind
	str  func(dst []byte, w *world, r *row) []byte
	num  func(r *row) int64
	flag func(r *row) bool
	only int // 0 both tables, 1 SigninLogs only, 2 AADNonInteractiveUserSignInLogs only
}

func constant(s string) func([]byte, *world, *row) []byte {
	return func(dst []byte, _ *world, _ *row) []byte { return append(dst, s...) }
}

func field(f func(r *row) string) func([]byte, *world, *row) []byte {
	return func(dst []byte, _ *world, r *row) []byte { return append(dst, f(r)...) }
}

// ruleColumns are the 11 columns the rule reads (Narrow mode writes only these).
var ruleColumns = []string{
	signin.ColTimeGenerated, signin.ColUserPrincipalName, signin.ColIPAddress, signin.ColLocation,
	signin.ColResultType, signin.ColAuthenticationRequirement, signin.ColConditionalAccessStatus,
	signin.ColAppDisplayName, signin.ColCorrelationId, signin.ColUniqueTokenIdentifier, signin.ColId,
}

// allColumns in the order SigninLogs exports them; the non-interactive
// table's exports order them alphabetically, as its schema lists them.
var allColumns = []column{
	{name: "TenantId", str: func(dst []byte, w *world, _ *row) []byte { return append(dst, w.workspace...) }},
	{name: "SourceSystem", str: constant("Azure AD")},
	{name: "TimeGenerated", kind: kTime, num: func(r *row) int64 { return r.micros }},
	{name: "ResourceId", str: func(dst []byte, w *world, _ *row) []byte { return append(dst, w.resourceID...) }},
	{name: "OperationName", str: constant("Sign-in activity")},
	{name: "OperationVersion", str: constant("1.0")},
	{name: "Category", str: func(dst []byte, _ *world, r *row) []byte {
		if r.table == signin.Interactive {
			return append(dst, "SignInLogs"...)
		}
		return append(dst, "NonInteractiveUserSignInLogs"...)
	}},
	{name: "ResultType", str: field(func(r *row) string { return r.res.code })},
	{name: "ResultSignature", str: constant("None")},
	{name: "ResultDescription", str: field(func(r *row) string { return r.res.reason })},
	{name: "DurationMs", kind: kInt64, num: func(r *row) int64 { return r.duration }},
	{name: "CorrelationId", str: func(dst []byte, _ *world, r *row) []byte { return r.corr.appendTo(dst) }},
	{name: "Resource", str: constant("Microsoft.aadiam")},
	{name: "ResourceGroup", str: constant("Microsoft.aadiam")},
	{name: "ResourceProvider", str: constant("Microsoft.aadiam")},
	{name: "Identity", str: field(func(r *row) string { return r.u.display })},
	{name: "Level", str: constant("4")},
	{name: "Location", str: field((*row).location)},
	{name: "AppDisplayName", str: field(func(r *row) string { return r.app.name })},
	{name: "AppId", str: field(func(r *row) string { return r.app.id })},
	{name: "AuthenticationDetails", str: appendAuthDetails},
	{name: "AuthenticationProtocol", str: constant("none")},
	{name: "AuthenticationRequirement", str: field(func(r *row) string { return r.authReq })},
	{name: "AutonomousSystemNumber", str: func(dst []byte, _ *world, r *row) []byte {
		if r.country == nil {
			return dst
		}
		return append(dst, r.country.asn...)
	}},
	{name: "ClientAppUsed", str: field(func(r *row) string {
		if r.app.clientAppBrowser {
			return "Browser"
		}
		return "Mobile Apps and Desktop clients"
	})},
	{name: "ConditionalAccessStatus", str: field(func(r *row) string { return r.ca })},
	{name: "CreatedDateTime", kind: kTime, num: func(r *row) int64 { return r.micros }},
	{name: "DeviceDetail", str: appendDeviceDetail},
	{name: "IPAddress", str: field(func(r *row) string { return r.ip })},
	{name: "IsInteractive", kind: kBool, flag: func(r *row) bool { return r.table == signin.Interactive }},
	{name: "Id", str: func(dst []byte, _ *world, r *row) []byte { return r.id.appendTo(dst) }},
	{name: "IncomingTokenType", only: 2, str: field(func(r *row) string { return r.incoming })},
	{name: "LocationDetails", str: func(dst []byte, _ *world, r *row) []byte {
		if r.city == nil {
			return append(dst, emptyLocationDetails...)
		}
		return append(dst, r.city.details...)
	}},
	{name: "MfaDetail", only: 1, str: func(dst []byte, _ *world, r *row) []byte {
		if r.mfa == "" {
			return dst
		}
		dst = append(dst, `{"authMethod":`...)
		return append(strconv.AppendQuote(dst, r.mfa), '}')
	}},
	{name: "OriginalRequestId", str: func(dst []byte, _ *world, r *row) []byte { return r.id.appendTo(dst) }},
	{name: "ResourceDisplayName", str: field(func(r *row) string { return r.app.resource })},
	{name: "ResourceIdentity", str: field(func(r *row) string { return r.app.resID })},
	{name: "RiskState", str: constant("none")},
	{name: "SessionId", str: func(dst []byte, _ *world, r *row) []byte { return r.session.appendTo(dst) }},
	{name: "Status", str: func(dst []byte, _ *world, r *row) []byte {
		if r.res == successOutcome && r.table == signin.NonInteractive {
			dst = append(dst, `{"errorCode":0,"additionalDetails":`...)
			return append(strconv.AppendQuote(dst, r.niDetail), '}')
		}
		return append(dst, r.res.statusJSON...)
	}},
	{name: "TokenIssuerType", str: constant("AzureAD")},
	{name: "UniqueTokenIdentifier", str: func(dst []byte, _ *world, r *row) []byte {
		return base64.RawURLEncoding.AppendEncode(dst, r.token[:])
	}},
	{name: "UserAgent", str: field(func(r *row) string { return r.ua })},
	{name: "UserDisplayName", str: field(func(r *row) string { return r.u.display })},
	{name: "UserId", str: func(dst []byte, _ *world, r *row) []byte { return r.u.id.appendTo(dst) }},
	{name: "UserPrincipalName", str: field(func(r *row) string { return r.upn })},
	{name: "UserType", str: constant("Member")},
	{name: "AADTenantId", str: func(dst []byte, w *world, _ *row) []byte { return append(dst, w.tenant...) }},
	{name: "Type", str: func(dst []byte, _ *world, r *row) []byte { return append(dst, r.table.String()...) }},
}

// highCardinality columns are nearly unique per row: dictionary encoding
// them only costs time before the writer falls back to plain.
var highCardinality = []string{"Id", "OriginalRequestId", "CorrelationId", "UniqueTokenIdentifier", "AuthenticationDetails"}

// tableColumns returns the columns written for t, in export order.
func tableColumns(t signin.Table, narrow bool) []column {
	var cols []column
	for _, c := range allColumns {
		if narrow && !slices.Contains(ruleColumns, c.name) {
			continue
		}
		if (c.only == 1 && t != signin.Interactive) || (c.only == 2 && t != signin.NonInteractive) {
			continue
		}
		cols = append(cols, c)
	}
	if t == signin.NonInteractive {
		slices.SortFunc(cols, func(a, b column) int { return strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name)) })
	}
	return cols
}

// columnNode is a column's Parquet type. Every column is optional, as in
// Log Analytics exports, and dictionary encoded but booleans and the nearly
// unique strings (plain, as gen wrote them before it moved to parquet-go).
func columnNode(c column) parquet.Node {
	var n parquet.Node
	switch c.kind {
	case kString:
		n = parquet.String()
	case kTime:
		n = parquet.Timestamp(parquet.Microsecond)
	case kInt64:
		n = parquet.Int(64)
	case kBool:
		return parquet.Optional(parquet.Leaf(parquet.BooleanType))
	}
	if slices.Contains(highCardinality, c.name) {
		n = parquet.Encoded(n, &parquet.Plain)
	} else {
		n = parquet.Encoded(n, &parquet.RLEDictionary)
	}
	return parquet.Optional(n)
}

func exportSchema(cols []column) *parquet.Schema {
	g := make(orderedGroup, len(cols))
	for i, c := range cols {
		g[i] = &namedField{Node: columnNode(c), name: c.name}
	}
	return parquet.NewSchema("schema", g)
}

// orderedGroup is a group node that keeps its fields in the order given:
// parquet.Group sorts them by name, and exports list columns in table order.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return g.group().String() }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return g.group().GoType() }
func (g orderedGroup) group() parquet.Group {
	m := parquet.Group{}
	for _, f := range g {
		m[f.Name()] = f
	}
	return m
}

type namedField struct {
	parquet.Node
	name string
}

func (f *namedField) Name() string { return f.name }

// Value is only used when writing Go values by reflection, which gen does not.
func (f *namedField) Value(base reflect.Value) reflect.Value {
	return base.FieldByName(f.name)
}

// colRows is a batch of rows as Parquet values, column by column; string
// values point into data, one arena per column.
type colRows struct {
	vals [][]parquet.Value
	data [][]byte
	n    int
}

func newColRows(ncols int) *colRows {
	return &colRows{vals: make([][]parquet.Value, ncols), data: make([][]byte, ncols)}
}

// batch accumulates rows for one table writer.
type batch struct {
	w    *world
	cols []column
	cur  *colRows
	free chan *colRows // batches the writer is done with
	n    int
}

func newBatch(w *world, cols []column, free chan *colRows) *batch {
	return &batch{w: w, cols: cols, cur: newColRows(len(cols)), free: free}
}

func (b *batch) add(r *row) {
	cr := b.cur
	for i, c := range b.cols {
		var v parquet.Value
		switch c.kind {
		case kString:
			start := len(cr.data[i])
			cr.data[i] = c.str(cr.data[i], b.w, r)
			if len(cr.data[i]) == start {
				v = parquet.NullValue().Level(0, 0, i)
			} else {
				v = parquet.ByteArrayValue(cr.data[i][start:]).Level(0, 1, i)
			}
		case kTime, kInt64:
			v = parquet.Int64Value(c.num(r)).Level(0, 1, i)
		case kBool:
			v = parquet.BooleanValue(c.flag(r)).Level(0, 1, i)
		}
		cr.vals[i] = append(cr.vals[i], v)
	}
	cr.n++
	b.n++
}

// take returns the rows added so far and resets the batch, reusing a batch
// the writer has finished with, or reserving room for one like this one so
// the columns do not regrow. A string arena that grew while the batch filled
// left earlier values in its old array, which stays valid.
func (b *batch) take() *colRows {
	rec := b.cur
	b.n = 0
	select {
	case next := <-b.free:
		for i := range next.vals {
			next.vals[i], next.data[i] = next.vals[i][:0], next.data[i][:0]
		}
		next.n = 0
		b.cur = next
	default:
		next := newColRows(len(b.cols))
		if rec.n > 0 {
			for i := range next.vals {
				next.vals[i] = make([]parquet.Value, 0, batchRows)
				next.data[i] = make([]byte, 0, len(rec.data[i])*batchRows/rec.n*9/8)
			}
		}
		b.cur = next
	}
	return rec
}

// authStep is one AuthenticationDetails step, but its time.
type authStep struct {
	method, methodDetail string
	ok                   bool
	detail, requirement  string
	seq                  int
}

// appendAuthDetails writes AuthenticationDetails: the JSON array of steps.
// The steps' JSON after the timestamp is cached per world: there are few
// distinct steps and quoting them for every row is slow.
func appendAuthDetails(dst []byte, w *world, r *row) []byte {
	ts := time.UnixMicro(r.micros).UTC()
	step := func(dst []byte, method, methodDetail string, ok bool, detail, requirement string, seq int) []byte {
		dst = append(dst, `{"authenticationStepDateTime":"`...)
		dst = ts.AppendFormat(dst, "2006-01-02T15:04:05Z")
		k := authStep{method, methodDetail, ok, detail, requirement, seq}
		rest, found := w.steps[k]
		if !found {
			var b []byte
			b = append(b, `","authenticationMethod":`...)
			b = strconv.AppendQuote(b, method)
			if methodDetail != "" {
				b = append(b, `,"authenticationMethodDetail":`...)
				b = strconv.AppendQuote(b, methodDetail)
			}
			b = append(b, `,"succeeded":`...)
			b = strconv.AppendBool(b, ok)
			b = append(b, `,"authenticationStepResultDetail":`...)
			b = strconv.AppendQuote(b, detail)
			b = append(b, `,"authenticationStepRequirement":`...)
			b = strconv.AppendQuote(b, requirement)
			b = append(b, `,"StatusSequence":0,"RequestSequence":`...)
			b = strconv.AppendInt(b, int64(seq), 10)
			rest = string(append(b, '}'))
			w.steps[k] = rest
		}
		return append(dst, rest...)
	}
	ok := r.res == successOutcome
	dst = append(dst, '[')
	if r.table == signin.NonInteractive {
		detail := r.niDetail
		if !ok {
			detail = r.res.stepDetail
		}
		dst = step(dst, "Previously satisfied", "", ok, detail, "Primary authentication", 0)
		return append(dst, ']')
	}
	firstOK := ok || r.res.code == "50074" || r.res.code == "500121" || r.res.caFailure || r.res.code == "50140"
	dst = step(dst, "Password", "Password in the cloud", firstOK, r.res.stepDetail, "Primary authentication", 0)
	if r.mfa != "" && (ok || r.res.code == "500121") {
		detail := "MFA successfully completed"
		if !ok {
			detail = r.res.stepDetail
		}
		dst = append(dst, ',')
		dst = step(dst, r.mfa, "", ok, detail, "Multi-factor authentication", 1)
	}
	return append(dst, ']')
}

// appendDeviceDetail writes DeviceDetail as Entra does: managed devices
// carry an id, name and trust type; unknown ones only OS and browser.
func appendDeviceDetail(dst []byte, _ *world, r *row) []byte {
	if r.plat == nil {
		os, browser := "Windows10", "Chrome 120.0.0"
		if strings.Contains(r.ua, "Linux") {
			os, browser = "Linux", "Chrome 126.0.0"
		} else if !strings.HasPrefix(r.ua, "Mozilla") {
			browser = ""
		}
		dst = append(dst, `{"operatingSystem":"`...)
		dst = append(dst, os...)
		dst = append(dst, `","browser":"`...)
		dst = append(dst, browser...)
		return append(dst, `"}`...)
	}
	p := r.plat
	if p.trust == "" {
		dst = append(dst, `{"operatingSystem":"`...)
		dst = append(dst, p.os...)
		dst = append(dst, `","browser":"`...)
		dst = append(dst, p.browser...)
		return append(dst, `","isCompliant":false,"isManaged":false}`...)
	}
	dst = append(dst, `{"deviceId":"`...)
	dst = r.u.device.appendTo(dst)
	dst = append(dst, `","displayName":"LAPTOP-`...)
	for _, b := range r.u.device[10:13] {
		dst = append(dst, hexDigits[b>>4]-32*boolByte(b>>4 > 9), hexDigits[b&0xf]-32*boolByte(b&0xf > 9))
	}
	dst = append(dst, `","operatingSystem":"`...)
	dst = append(dst, p.os...)
	dst = append(dst, `","browser":"`...)
	dst = append(dst, p.browser...)
	dst = append(dst, `","isCompliant":true,"isManaged":true,"trustType":"`...)
	dst = append(dst, p.trust...)
	return append(dst, `"}`...)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
