package aggregate_test

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/aggregate"
	"github.com/tokenpivot/tokenpivot/internal/opstate"
	"github.com/tokenpivot/tokenpivot/internal/opstate/opstatetest"
)

// reference is the summarize evaluated by brute force over every row of
// every blob, written from the KQL, not from the operator: drop late rows,
// count each Id once, then for every window (a bin; or a run's
// (T-Period, T]) and key compute each aggregation from the rows directly.
// It also returns how many rows are late.
func reference(spec aggregate.Spec, blobs []opstatetest.Blob) ([]aggregate.Result, int64) {
	var rows []aggregate.Row
	seen := map[string]bool{}
	var late int64
	for _, b := range blobs {
		for _, s := range b.Rows {
			if spec.Lateness > 0 && s.Time.Before(b.Source.LastModified.Add(-spec.Lateness)) {
				late++
				continue
			}
			if !seen[s.Id] {
				seen[s.Id] = true
				rows = append(rows, project(s))
			}
		}
	}
	type window struct {
		run time.Time
		lo  time.Time // exclusive in schedule mode
		hi  time.Time
	}
	var windows []window
	if sc := spec.Schedule; sc != nil {
		var first, last time.Time
		for _, r := range rows {
			if first.IsZero() || r.Time.Before(first) {
				first = r.Time
			}
			if r.Time.After(last) {
				last = r.Time
			}
		}
		// Every run whose window holds a row.
		k := first.Sub(sc.Anchor) / sc.Frequency
		for T := sc.Anchor.Add((k - 1) * sc.Frequency); !T.After(last.Add(sc.Period + sc.Frequency)); T = T.Add(sc.Frequency) {
			windows = append(windows, window{run: T, lo: T.Add(-sc.Period), hi: T})
		}
	} else {
		windows = append(windows, window{})
	}
	var out []aggregate.Result
	for _, w := range windows {
		groups := map[string][]aggregate.Row{}
		for _, r := range rows {
			if !w.run.IsZero() && !(r.Time.After(w.lo) && !r.Time.After(w.hi)) {
				continue
			}
			var bin time.Time
			if spec.Bin > 0 {
				bin = opstate.KQLBin(r.Time, spec.Bin)
			}
			k := fmt.Sprintf("%d\x00%q", bin.UnixNano(), r.Key)
			groups[k] = append(groups[k], r)
		}
		for _, g := range groups {
			res := aggregate.Result{Key: g[0].Key, Run: w.run, Values: make([]aggregate.Value, len(spec.Aggs))}
			var binNs, runNs int64
			if spec.Bin > 0 {
				res.Bin = opstate.KQLBin(g[0].Time, spec.Bin)
				binNs = res.Bin.UnixNano()
			}
			if !w.run.IsZero() {
				runNs = w.run.UnixNano()
			}
			res.ID = refID(spec.Rule, runNs, binNs, res.Key)
			for i, a := range spec.Aggs {
				res.Values[i] = refAgg(a, g)
			}
			if spec.Having == nil || spec.Having(res) {
				out = append(out, res)
			}
		}
	}
	sortResults(out)
	return out, late
}

func refAgg(a aggregate.Agg, g []aggregate.Row) aggregate.Value {
	var v aggregate.Value
	byTime := slices.Clone(g)
	slices.SortFunc(byTime, func(x, y aggregate.Row) int { return cmp.Or(x.Time.Compare(y.Time), cmp.Compare(x.Id, y.Id)) })
	switch a.Func {
	case aggregate.Count:
		v.N = int64(len(g))
	case aggregate.CountIf:
		for _, r := range g {
			if r.Flags&(1<<a.Arg) != 0 {
				v.N++
			}
		}
	case aggregate.DCount:
		d := map[string]bool{}
		for _, r := range g {
			if r.Nulls&(1<<a.Arg) == 0 {
				d[r.Values[a.Arg]] = true
			}
		}
		v.N = int64(len(d))
	case aggregate.MakeSet:
		capN := a.Cap
		if capN == 0 {
			capN = 1 << 20
		}
		have := map[string]bool{}
		for _, r := range byTime {
			x := r.Values[a.Arg]
			if r.Nulls&(1<<a.Arg) != 0 || have[x] || len(v.Set) == capN {
				continue
			}
			have[x] = true
			v.Set = append(v.Set, x)
		}
	case aggregate.Min:
		v.Time = byTime[0].Time.UTC()
	case aggregate.Max:
		v.Time = byTime[len(byTime)-1].Time.UTC()
	case aggregate.ArgMin:
		v.Time, v.RecordId, v.Record = byTime[0].Time.UTC(), byTime[0].Id, byTime[0].Record
	case aggregate.ArgMax:
		// The latest time; of rows tied on it, the smallest Id.
		best := byTime[len(byTime)-1]
		for _, r := range byTime {
			if r.Time.Equal(best.Time) {
				best = r
				break
			}
		}
		v.Time, v.RecordId, v.Record = best.Time.UTC(), best.Id, best.Record
	}
	return v
}

func refID(rule string, run, bin int64, key []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d", rule, run, bin)
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
