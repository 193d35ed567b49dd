// Package detect is the rule itself: the candidate filters and the windowed
// join of interactive and non-interactive sign-ins. It does no I/O beyond
// the result rows' codec (codec.go), which writes to and reads from the
// io.Writer and io.Reader it is given.
package detect

import (
	"cmp"
	"slices"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// The join window: 1m <= N.TimeGenerated - I.TimeGenerated <= 2h, both ends
// inclusive as in KQL's `between (1m .. 2h)`.
const (
	MinGap = time.Minute
	MaxGap = 2 * time.Hour
	// Lookback is the query period the rule runs over (`ago(3h)`).
	Lookback = 3 * time.Hour
)

// Success reports whether a ResultType means success. The column is text in
// the schema; numeric exports hold 0, which readers render as "0".
func Success(resultType string) bool { return resultType == "0" }

// Filter holds what the candidate filters need beyond the row itself.
type Filter struct {
	Safe *rule.SafeList
	// After, when not zero, keeps only rows with TimeGenerated > After,
	// emulating one scheduled run's `TimeGenerated > ago(3h)`.
	After time.Time
	// Until, when not zero, keeps only rows with TimeGenerated <= Until:
	// a run at T cannot see rows after T (DESIGN.md 6, `--now`).
	Until time.Time
	// Plan is the compiled rule when it differs from the bundled one
	// (kql.Plan.Default false); nil runs the bundled rule's fast path.
	// Its built-in tests are applied here, its extra row predicates by
	// Index.Add and Index.Probe on decoded records.
	Plan *kql.Plan
}

// Interactive reports whether a SigninLogs row is a candidate: a success,
// single-factor or with Conditional Access not applied, from an IP that is
// not known-safe. String comparisons are exact and case-sensitive, as in KQL.
func (f Filter) Interactive(r *signin.Record) bool {
	if p := f.Plan; p != nil {
		return (!p.ISuccess || Success(r.ResultType)) &&
			(!p.IAuthOrCA || r.AuthenticationRequirement == "singleFactorAuthentication" || r.ConditionalAccessStatus == "notApplied") &&
			f.inPeriod(r) && (!p.ISafe || !f.Safe.Contains(r.IPAddress))
	}
	return Success(r.ResultType) &&
		(r.AuthenticationRequirement == "singleFactorAuthentication" || r.ConditionalAccessStatus == "notApplied") &&
		f.inPeriod(r) && !f.Safe.Contains(r.IPAddress)
}

// NonInteractive reports whether an AADNonInteractiveUserSignInLogs row is a
// candidate: a success from an IP that is not known-safe.
func (f Filter) NonInteractive(r *signin.Record) bool {
	if p := f.Plan; p != nil {
		return (!p.NSuccess || Success(r.ResultType)) && f.inPeriod(r) && (!p.NSafe || !f.Safe.Contains(r.IPAddress))
	}
	return Success(r.ResultType) && f.inPeriod(r) && !f.Safe.Contains(r.IPAddress)
}

// Columns returns the columns beyond the engine's own that the plan reads
// of table t's rows (signin.Options.Extra): none for the bundled rule.
func (f Filter) Columns(t signin.Table) []string {
	if f.Plan == nil {
		return nil
	}
	if t == signin.Interactive {
		return f.Plan.Columns(kql.SideI)
	}
	return f.Plan.Columns(kql.SideN)
}

func (f Filter) inPeriod(r *signin.Record) bool {
	return (f.After.IsZero() || r.TimeGenerated.After(f.After)) &&
		(f.Until.IsZero() || !r.TimeGenerated.After(f.Until))
}

// Match reports whether a non-interactive candidate n pairs with an
// interactive candidate i of the same user.
func Match(i, n *signin.Record) bool {
	if i.UserPrincipalName != n.UserPrincipalName || n.IPAddress == i.IPAddress || n.Location == i.Location {
		return false
	}
	d := n.TimeGenerated.Sub(i.TimeGenerated)
	return d >= MinGap && d <= MaxGap
}

// match is Match under the index's plan.
func (x *Index) match(i, n *signin.Record) bool {
	p := x.plan
	if p == nil {
		return Match(i, n)
	}
	if i.UserPrincipalName != n.UserPrincipalName || p.IPDiffers && n.IPAddress == i.IPAddress || p.LocationDiffers && n.Location == i.Location {
		return false
	}
	d := n.TimeGenerated.Sub(i.TimeGenerated)
	return d >= p.MinGap && d <= p.MaxGap && (x.loose || pairOK(p, *i, *n))
}

// The plan's predicates are closures, so what they are given escapes to
// the heap: they get copies, made only for a tuned rule, and the bundled
// rule's records stay where they are (Add's and Probe's callers pass
// records on their stack).

//go:noinline
func pairOK(p *kql.Plan, i, n signin.Record) bool { return p.PairOK(&i, &n) }

//go:noinline
func iRow(p *kql.Plan, r signin.Record) bool { return p.IRow(&r) }

//go:noinline
func nRow(p *kql.Plan, n signin.Record) bool { return p.NRow(&n) }

//go:noinline
func extraValues(p *kql.Plan, i, n signin.Record) []string { return p.ExtraValues(&i, &n) }

// pair is Pair under the index's plan: its extra output columns too.
func (x *Index) pair(i, n *signin.Record) Result {
	r := Pair(i, n)
	if x.plan != nil && len(x.plan.Extra) > 0 {
		if x.extraNames == nil {
			names := x.plan.ExtraNames()
			x.extraNames = &names
		}
		r.Extra = NewExtra(x.extraNames, extraValues(x.plan, *i, *n))
	}
	return r
}

// Pair builds the result row of a matching (i, n).
func Pair(i, n *signin.Record) Result {
	return Result{
		NISignInTime:          n.TimeGenerated,
		InteractiveTime:       i.TimeGenerated,
		UserPrincipalName:     n.UserPrincipalName,
		AppDisplayName:        n.AppDisplayName,
		NIIPAddress:           n.IPAddress,
		NICountry:             n.Location,
		InteractiveIP:         i.IPAddress,
		InteractiveCountry:    i.Location,
		CorrelationId:         n.CorrelationId,
		UniqueTokenIdentifier: n.UniqueTokenIdentifier,
		TimeSinceInteractive:  n.TimeGenerated.Sub(i.TimeGenerated),
		InteractiveId:         i.Id,
		NonInteractiveId:      n.Id,
	}
}

// Index holds interactive candidates by user, ordered by time, so each
// non-interactive candidate is probed against only its window.
type Index struct {
	byUser map[string][]signin.Record
	n      int // candidates held
	sorted bool
	fast   *sealed                 // built by Seal for MayMatch; nil when unsealed or not applicable
	seen   map[signin.Key]struct{} // records with an Id already added
	// probed holds the non-empty Ids of non-interactive records that matched:
	// a record exported twice counts once. Only matching records are kept,
	// so memory is bounded by the results, not by the rows read.
	probed map[signin.Key]struct{}
	// shared is set on an index Fork has shared, and on its forks: their
	// candidates are read-only.
	shared bool
	// plan is the compiled rule when it is not the bundled one (nil);
	// minGap and maxGap are its window (MinGap, MaxGap without one).
	plan           *kql.Plan
	minGap, maxGap time.Duration
	extraNames     *[]string // the plan's extra column names, shared by its rows
	// loose skips the plan's non-interactive and pair predicates (Loose).
	loose bool
	// filtered: the records given to Add and Probe already pass the
	// plan's row predicates (RowsFiltered).
	filtered bool
}

// RowsFiltered tells x that the records given to Add and Probe already
// pass the plan's row predicates, so it does not evaluate them again: the
// event pipeline's extracts hold only such rows, and lack the columns
// beyond the engine's own that those predicates may read. It returns x.
func (x *Index) RowsFiltered() *Index {
	x.filtered = true
	return x
}

// Loose returns a view of x (sharing its candidates and dedup) whose Probe
// skips the plan's non-interactive row predicates and pair predicates: a
// superset, for probing with rows that lack the wide columns those may
// read (the pipeline's compact extracts), whose matches are then probed
// again, exactly, with their full records. Without a plan it is x.
func (x *Index) Loose() *Index {
	if x.plan == nil || len(x.plan.NExtra) == 0 && len(x.plan.Residual) == 0 {
		return x
	}
	x.sort()
	y := *x
	y.loose = true
	return &y
}

// NewIndexFor returns an empty index for a compiled rule: nil (the bundled
// rule) gives NewIndex's. Add drops interactive records that fail the
// plan's extra predicates, and Probe non-interactive ones, so that callers
// need not know them.
func NewIndexFor(p *kql.Plan) *Index {
	x := NewIndex()
	if p != nil {
		x.plan, x.minGap, x.maxGap = p, p.MinGap, p.MaxGap
	}
	return x
}

// Fork returns an index that probes x's candidates, shared read-only, with
// a Probe dedup of its own, so one sealed index serves many blobs that
// probe it, each as if it had its own (and from several goroutines, once
// the first Fork, which seals x, has returned). Neither x nor a fork may
// Add afterwards.
func (x *Index) Fork() *Index {
	if !x.shared {
		x.Seal()
		x.shared = true
	}
	return &Index{byUser: x.byUser, n: x.n, sorted: true, fast: x.fast, seen: x.seen, probed: make(map[signin.Key]struct{}), shared: true,
		plan: x.plan, minGap: x.minGap, maxGap: x.maxGap, filtered: x.filtered}
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byUser: make(map[string][]signin.Record), seen: make(map[signin.Key]struct{}), probed: make(map[signin.Key]struct{}),
		minGap: MinGap, maxGap: MaxGap}
}

// Add adds an interactive candidate. A record added before (the same
// non-empty Id and content, signin.Record.Key) is ignored: exports may
// repeat records. The same Id with other content is another row.
func (x *Index) Add(r signin.Record) {
	if x.shared {
		panic("detect: Add to an index shared by Fork")
	}
	if x.plan != nil && !x.filtered && !iRow(x.plan, r) {
		return
	}
	if k, ok := r.Key(); ok {
		if _, dup := x.seen[k]; dup {
			return
		}
		x.seen[k] = struct{}{}
	}
	x.byUser[r.UserPrincipalName] = append(x.byUser[r.UserPrincipalName], r)
	x.n++
	x.sorted = false
	x.fast = nil
}

// Len returns the number of candidates held.
func (x *Index) Len() int { return x.n }

// HasUser reports whether upn has any interactive candidate; readers use it
// to skip non-interactive rows early.
func (x *Index) HasUser(upn string) bool {
	_, ok := x.byUser[upn]
	return ok
}

// Seal orders the index for probing and lays out the compact copy MayMatch
// reads (32-40 bytes per candidate, 32-64 per user). Call it once all
// candidates are added and before probing from several goroutines:
// afterwards HasUser and MayMatch only read. Add drops the copy; MayMatch
// then needs Seal again.
func (x *Index) Seal() {
	x.sort()
	x.fast = x.seal()
}

// MayMatch reports whether n could pair with a candidate: same user, an
// interactive time in n's window, a different IP and country. It reads only
// the reader's filter columns (signin.Options.Keep), so readers can call it
// before decoding the wide ones. The index must be sealed; a row whose user
// is not indexed may still be kept (rarely: a hash collision), which costs
// only its decoding, since Probe is exact.
func (x *Index) MayMatch(n *signin.Record) bool {
	if x.fast != nil {
		if nt, ok := unixNano(n.TimeGenerated); ok {
			return x.fast.mayMatch(n, nt)
		}
	}
	// Times the sealed layout cannot hold take the exact path on Records.
	rs := x.byUser[n.UserPrincipalName]
	if len(rs) == 0 {
		return false
	}
	ipDiff, locDiff := x.plan == nil || x.plan.IPDiffers, x.plan == nil || x.plan.LocationDiffers
	lo, _ := slices.BinarySearchFunc(rs, n.TimeGenerated.Add(-x.maxGap), func(r signin.Record, t time.Time) int { return r.TimeGenerated.Compare(t) })
	for k := lo; k < len(rs) && n.TimeGenerated.Sub(rs[k].TimeGenerated) >= x.minGap; k++ {
		if (!ipDiff || rs[k].IPAddress != n.IPAddress) && (!locDiff || rs[k].Location != n.Location) {
			return true
		}
	}
	return false
}

func (x *Index) sort() {
	if x.sorted {
		return
	}
	for _, rs := range x.byUser {
		slices.SortStableFunc(rs, func(a, b signin.Record) int { return a.TimeGenerated.Compare(b.TimeGenerated) })
	}
	x.sorted = true
}

// Probe appends to dst the result rows of non-interactive candidate n with
// every interactive candidate in its window, and returns dst. A record that
// already matched (the same non-empty Id and content) adds nothing. Probe is
// not safe for concurrent use.
func (x *Index) Probe(dst []Result, n *signin.Record) []Result {
	rs := x.byUser[n.UserPrincipalName]
	if len(rs) == 0 {
		return dst
	}
	if x.plan != nil && !x.loose && !x.filtered && !nRow(x.plan, *n) {
		return dst
	}
	x.sort()
	earliest := n.TimeGenerated.Add(-x.maxGap)
	lo, _ := slices.BinarySearchFunc(rs, earliest, func(r signin.Record, t time.Time) int { return r.TimeGenerated.Compare(t) })
	before := len(dst)
	for k := lo; k < len(rs); k++ {
		i := &rs[k]
		if n.TimeGenerated.Sub(i.TimeGenerated) < x.minGap {
			break
		}
		if x.plan == nil {
			if Match(i, n) {
				dst = append(dst, Pair(i, n))
			}
		} else if x.match(i, n) {
			dst = append(dst, x.pair(i, n))
		}
	}
	if len(dst) > before {
		if k, ok := n.Key(); ok {
			if _, dup := x.probed[k]; dup {
				return dst[:before]
			}
			x.probed[k] = struct{}{}
		}
	}
	return dst
}

// Run applies the whole rule to in-memory rows: filters, Id dedup, the join,
// and the query's order.
func Run(interactive, noninteractive []signin.Record, f Filter) []Result {
	x := NewIndexFor(f.Plan)
	for k := range interactive {
		if f.Interactive(&interactive[k]) {
			x.Add(interactive[k])
		}
	}
	var out []Result
	for k := range noninteractive {
		if f.NonInteractive(&noninteractive[k]) {
			out = x.Probe(out, &noninteractive[k])
		}
	}
	Sort(out)
	return out
}

// Sort orders rows as the query does (UserPrincipalName, InteractiveTime),
// then by the remaining columns so the output is deterministic.
func Sort(rs []Result) {
	slices.SortFunc(rs, Compare)
}

// Compare orders two result rows for Sort.
func Compare(a, b Result) int {
	return cmp.Or(
		cmp.Compare(a.UserPrincipalName, b.UserPrincipalName),
		a.InteractiveTime.Compare(b.InteractiveTime),
		a.NISignInTime.Compare(b.NISignInTime),
		cmp.Compare(a.InteractiveIP, b.InteractiveIP),
		cmp.Compare(a.NIIPAddress, b.NIIPAddress),
		cmp.Compare(a.InteractiveCountry, b.InteractiveCountry),
		cmp.Compare(a.NICountry, b.NICountry),
		cmp.Compare(a.AppDisplayName, b.AppDisplayName),
		cmp.Compare(a.CorrelationId, b.CorrelationId),
		cmp.Compare(a.UniqueTokenIdentifier, b.UniqueTokenIdentifier),
		cmp.Compare(a.InteractiveId, b.InteractiveId),
		cmp.Compare(a.NonInteractiveId, b.NonInteractiveId),
		slices.Compare(a.Extra.Values(), b.Extra.Values()),
	)
}
