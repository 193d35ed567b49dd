// Package aggregate is the rule operator "keyed windowed aggregation with a
// threshold": KQL's
//
//	summarize count(), countif(p), dcount(x), make_set(x, n), min(TimeGenerated),
//	          max(TimeGenerated), arg_max(TimeGenerated, *) by key..., bin(TimeGenerated, w)
//	| where <threshold>
//
// run event-driven over export blobs, with its state in blob storage under
// the join's guarantees (DESIGN.md 4, 7): any arrival order, duplicate blobs
// and rows (by Id), concurrent workers, and a crash between any two storage
// requests give the same results, each once by id. The protocol is
// internal/opstate's: Apply publishes a blob's projected rows per pane hour;
// Finalise merges an hour once no later blob can change it and emits the
// windows that end there.
//
// Two modes. Event time (Schedule nil): one result per key and bin, over
// every row of the bin, whatever run would have seen it. Schedule emulation
// (Schedule set): one result per key (and bin) per Sentinel run at
// T = Anchor + k*Frequency over the rows with T-Period < TimeGenerated <= T,
// as the rule's scheduled runs give it, including the partial first bin of
// a run.
//
// Semantics where KQL leaves a choice (docs/rule-family.md):
//   - dcount is exact (a count of distinct non-null values), not Kusto's
//     HyperLogLog estimate; they agree wherever Kusto's estimate is exact.
//   - make_set keeps distinct non-null values in order of first occurrence
//     (TimeGenerated, then row Id), at most Cap of them (KQL's default and
//     maximum, 1,048,576, when Cap is 0): the earliest Cap, deterministic.
//   - arg_max / arg_min ties on TimeGenerated go to the smallest row Id
//     (KQL returns any one of them).
//   - null values (Row.Nulls) are skipped by dcount and make_set, as KQL
//     skips nulls; the empty string is a value.
package aggregate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/opstate"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Func is an aggregation function.
type Func int

const (
	Count   Func = iota // count()
	CountIf             // countif(p): p is Row.Flags bit Arg
	DCount              // dcount(x): x is Row.Values[Arg]; exact
	MakeSet             // make_set(x, Cap): x is Row.Values[Arg]
	Min                 // min(TimeGenerated)
	Max                 // max(TimeGenerated)
	ArgMax              // arg_max(TimeGenerated, *): the row's Record
	ArgMin              // arg_min(TimeGenerated, *)
)

// MakeSetDefaultCap is KQL's default (and largest) make_set size.
const MakeSetDefaultCap = 1 << 20

// Agg is one aggregation of the summarize.
type Agg struct {
	Name string // the output column, for the compiler and the results' readers
	Func Func
	Arg  int // CountIf: flag bit; DCount, MakeSet: value index
	Cap  int // MakeSet: at most this many values (0: MakeSetDefaultCap)
}

// Schedule is the rule's queryFrequency and queryPeriod, and the time of one
// of its runs (the anchor of every other).
type Schedule struct {
	Anchor    time.Time
	Frequency time.Duration
	Period    time.Duration
}

// Spec is one rule's aggregation.
type Spec struct {
	// Rule is the rule id: its state lives under aggregate/<Rule>/.
	Rule string
	// Keys is the number of key columns of the by clause (besides the bin).
	Keys int
	// Bin is w of bin(TimeGenerated, w); 0 for none (schedule mode only).
	Bin  time.Duration
	Aggs []Agg
	// Having is the threshold filter after the summarize (nil: keep all).
	Having func(Result) bool
	// Schedule switches on schedule emulation (nil: event time).
	Schedule *Schedule
	// Lateness is the finalisation delay: how long after a window ends
	// export blobs may still bring its rows, measured by their
	// Last-Modified. Rows later than this are dropped, counted and named.
	Lateness time.Duration
}

// Row is one source row, projected by the compiler to what the spec reads.
type Row struct {
	// Id identifies the row (its Id column, else blob and position,
	// DESIGN.md 7): rows with equal Id count once.
	Id    string
	Time  time.Time // TimeGenerated
	Key   []string  // the by columns, Spec.Keys of them
	Flags uint64    // bit i: countif predicate i holds
	// Values are the dcount / make_set arguments; bit i of Nulls marks
	// Values[i] null.
	Values []string
	Nulls  uint64
	// Record is the row for arg_max(TimeGenerated, *).
	Record []string
}

// Value is one aggregation's result.
type Value struct {
	N        int64     `json:"n,omitempty"`      // count, countif, dcount
	Set      []string  `json:"set,omitempty"`    // make_set
	Time     time.Time `json:"time,omitzero"`    // min, max, arg_max, arg_min
	RecordId string    `json:"id,omitempty"`     // arg_max, arg_min: the row's Id
	Record   []string  `json:"record,omitempty"` // arg_max, arg_min
}

// Result is one output row of the summarize that passed the threshold.
type Result struct {
	// ID is stable: hash(rule, run, bin, key). A sink stores by it, so a
	// result emitted twice (a redo after a crash) is stored once.
	ID     string    `json:"id"`
	Run    time.Time `json:"run,omitzero"` // schedule mode: the run's time T
	Bin    time.Time `json:"bin,omitzero"` // the bin's start (zero without a bin)
	Key    []string  `json:"key"`
	Values []Value   `json:"values"` // one per Spec.Aggs
}

// Sink takes results. It must be idempotent by Result.ID (the alert writer
// is, by alert id): Finalise hands the same results again after a crash.
type Sink interface {
	Emit(ctx context.Context, results []Result) error
}

// Config wires an Operator.
type Config struct {
	Spec      Spec
	Store     store.Store
	Container string // the state container
}

// Operator runs one rule's aggregation. It is safe for concurrent use, across
// goroutines and processes sharing the store.
type Operator struct {
	spec   Spec
	store  store.Store
	cont   string
	prefix string
	x      opstate.Extracts
}

// New checks the spec.
func New(cfg Config) (*Operator, error) {
	s := cfg.Spec
	if err := opstate.CheckConfig("aggregate", cfg.Store, cfg.Container, s.Rule); err != nil {
		return nil, err
	}
	switch {
	case s.Lateness < 0:
		return nil, errors.New("aggregate: lateness must not be negative")
	case s.Bin < 0 || s.Bin%100 != 0:
		return nil, fmt.Errorf("aggregate: bin %s is not a whole number of 100 ns ticks", s.Bin)
	case s.Schedule == nil && s.Bin == 0:
		return nil, errors.New("aggregate: event-time mode needs bin(TimeGenerated, w): a summarize over all time never ends (use schedule emulation)")
	}
	if sc := s.Schedule; sc != nil {
		switch {
		case sc.Frequency <= 0 || sc.Frequency%time.Hour != 0 || sc.Period%time.Hour != 0 || sc.Period < sc.Frequency:
			return nil, fmt.Errorf("aggregate: schedule %s/%s: frequency and period must be whole hours, period >= frequency", sc.Frequency, sc.Period)
		case !sc.Anchor.Equal(opstate.Hour(sc.Anchor)):
			return nil, fmt.Errorf("aggregate: schedule anchor %s is not on the hour", sc.Anchor)
		}
	}
	for i, a := range s.Aggs {
		switch a.Func {
		case Count, Min, Max, ArgMax, ArgMin:
		case CountIf:
			if a.Arg < 0 || a.Arg > 63 {
				return nil, fmt.Errorf("aggregate: %s (agg %d): countif flag %d out of 0..63", a.Name, i, a.Arg)
			}
		case DCount, MakeSet:
			if a.Arg < 0 || a.Arg > 63 {
				return nil, fmt.Errorf("aggregate: %s (agg %d): value %d out of 0..63", a.Name, i, a.Arg)
			}
			if a.Cap < 0 || a.Cap > MakeSetDefaultCap {
				return nil, fmt.Errorf("aggregate: %s: make_set size %d out of 0..%d", a.Name, a.Cap, MakeSetDefaultCap)
			}
		default:
			return nil, fmt.Errorf("aggregate: %s (agg %d): unknown function %d", a.Name, i, a.Func)
		}
	}
	prefix := "aggregate/" + s.Rule + "/"
	return &Operator{spec: s, store: cfg.Store, cont: cfg.Container, prefix: prefix,
		x: opstate.Extracts{Store: cfg.Store, Container: cfg.Container, Prefix: prefix}}, nil
}

// paneOf is the pane hour a row at t belongs to: [h, h+1h) in event time;
// (h, h+1h] in schedule mode, whose runs take T-Period < t <= T.
func (o *Operator) paneOf(t time.Time) time.Time {
	if o.spec.Schedule != nil {
		return opstate.Hour(t.Add(-1))
	}
	return opstate.Hour(t)
}

// ApplyStats tells what Apply did.
type ApplyStats struct {
	Rows      int64  // rows applied
	Late      int64  // rows dropped as late
	FirstLate string // the first late row's Id and time
	Extracts  int    // extract blobs written (one per pane hour)
}

// Apply publishes the rows of one export blob part: one extract per pane
// hour, named by the source, so applying it again changes nothing.
func (o *Operator) Apply(ctx context.Context, src opstate.Source, rows []Row) (ApplyStats, error) {
	var st ApplyStats
	byHour := map[time.Time][]storedRow{}
	for i := range rows {
		r := &rows[i]
		if r.Id == "" {
			return st, fmt.Errorf("aggregate: %s: row %d has no Id", src.Blob, i)
		}
		if len(r.Key) != o.spec.Keys {
			return st, fmt.Errorf("aggregate: %s: row %s has %d key values, the rule %d", src.Blob, r.Id, len(r.Key), o.spec.Keys)
		}
		if src.Late(r.Time, o.spec.Lateness) {
			if st.Late == 0 {
				st.FirstLate = r.Id + " at " + r.Time.UTC().Format(time.RFC3339Nano)
			}
			st.Late++
			continue
		}
		h := o.paneOf(r.Time)
		byHour[h] = append(byHour[h], storedRow{Id: r.Id, T: r.Time.UnixNano(), Key: r.Key, Flags: r.Flags,
			Values: r.Values, Nulls: r.Nulls, Record: r.Record})
		st.Rows++
	}
	hours := make([]time.Time, 0, len(byHour))
	for h := range byHour {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)
	for _, h := range hours {
		rs := byHour[h]
		slices.SortFunc(rs, compareRows)
		data, err := opstate.Encode(extract{Source: src.Blob, Rows: rs})
		if err != nil {
			return st, err
		}
		if err := o.x.Write(ctx, h, src, data); err != nil {
			return st, fmt.Errorf("aggregate: publish %s: %w", src.Blob, err)
		}
		st.Extracts++
	}
	return st, nil
}

type extract struct {
	Source string      `json:"source"`
	Rows   []storedRow `json:"rows"`
}

type storedRow struct {
	Id     string   `json:"i"`
	T      int64    `json:"t"`
	Key    []string `json:"k"`
	Flags  uint64   `json:"f,omitempty"`
	Values []string `json:"v,omitempty"`
	Nulls  uint64   `json:"n,omitempty"`
	Record []string `json:"r,omitempty"`
}

func compareRows(a, b storedRow) int {
	return cmp.Or(cmp.Compare(a.T, b.T), strings.Compare(a.Id, b.Id))
}

// resultID is hash(rule, run, bin, key).
func resultID(rule string, run, bin int64, key []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d", rule, run, bin)
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
