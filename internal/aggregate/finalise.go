package aggregate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/opstate"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// A pane is one final hour's rows merged, deduplicated by Id, into partial
// aggregates per (key, bin): what every window that covers the hour reads,
// instead of the rows.
type pane struct {
	Hour   int64   `json:"hour"`
	Groups []group `json:"groups"` // ordered by bin, then key
}

type group struct {
	Key   []string `json:"k"`
	Bin   int64    `json:"b"` // bin start, unix ns (0: no bin)
	Parts []part   `json:"p"` // one per Spec.Aggs
}

// part is one aggregation's partial: mergeable exactly.
type part struct {
	N    int64    `json:"n,omitempty"` // count, countif
	Vals []item   `json:"v,omitempty"` // dcount: every distinct value; make_set: the first Cap
	Has  bool     `json:"h,omitempty"` // T (and Id, Rec) hold a row
	T    int64    `json:"t,omitempty"`
	Id   string   `json:"i,omitempty"`
	Rec  []string `json:"r,omitempty"`
}

// item is a value and its first occurrence (time, row Id).
type item struct {
	V  string `json:"v"`
	T  int64  `json:"t,omitempty"`
	Id string `json:"i,omitempty"`
}

func compareItems(a, b item) int {
	return cmp.Or(cmp.Compare(a.T, b.T), strings.Compare(a.Id, b.Id), strings.Compare(a.V, b.V))
}

// cursor is the finalisation state: panes whose hour is before Through are
// final and merged; Panes lists the non-empty ones windows may still read.
type cursor struct {
	Through int64   `json:"through"` // unix ns; 0: nothing finalised yet
	Panes   []int64 `json:"panes"`
	// Waiting lists the export blobs whose extract of an hour could not be
	// read and was set aside: that hour is not finalised until the blob is
	// applied again (its pipeline ledger entry forgotten, so it is redone).
	Waiting []waiting `json:"waiting,omitempty"`
}

type waiting struct {
	Hour   int64  `json:"hour"`
	Source string `json:"source"`
}

func (o *Operator) cursorName() string { return o.prefix + "cursor.json" }
func (o *Operator) paneName(h time.Time) string {
	return o.prefix + "panes/" + opstate.HourPath(h) + ".gob"
}

// span is how far back from a window's end its panes reach.
func (o *Operator) span() time.Duration {
	if sc := o.spec.Schedule; sc != nil {
		return sc.Period
	}
	return (o.spec.Bin + time.Hour - 1).Truncate(time.Hour) + time.Hour
}

// FinaliseStats tells what Finalise did.
type FinaliseStats struct {
	Hours   int       // pane hours finalised
	Results int       // results emitted
	Through time.Time // everything before this is final
	Raced   int       // restarts after another finaliser moved the state on
	// SetAside names (by URL) the state objects that could not be read and
	// were moved to the quarantine (DESIGN.md 7).
	SetAside []string
	// Redo names the export blobs ("container/name") to apply again: an
	// extract of theirs was set aside, and finalisation waits at its hour
	// until they are.
	Redo []string
}

// Finalise merges every pane hour that watermark makes final, in order, and
// emits the results of the windows ending in it. watermark promises that
// every export blob last modified before it has been applied; a pane is
// final when its end plus Spec.Lateness is before it. Concurrent calls are
// safe: the loser of the cursor race starts again from the winner's cursor.
func (o *Operator) Finalise(ctx context.Context, watermark time.Time, sink Sink) (FinaliseStats, error) {
	var st FinaliseStats
	raced, err := opstate.Restarting("aggregate", func() error { return o.finalise(ctx, watermark, sink, &st) })
	st.Raced += raced
	return st, err
}

func (o *Operator) finalise(ctx context.Context, watermark time.Time, sink Sink, st *FinaliseStats) error {
	// List before reading the cursor: a finaliser deletes an hour's
	// extracts only after moving the cursor past it, so every hour at or
	// after the cursor read here is listed whole.
	listed, err := o.x.List(ctx)
	if err != nil {
		return fmt.Errorf("aggregate: list extracts: %w", err)
	}
	var c cursor
	etag, err := opstate.ReadJSON(ctx, o.store, o.cont, o.cursorName(), &c)
	if errors.Is(err, opstate.ErrUnreadable) {
		// Rebuilt: the panes kept are listed again; finalisation starts
		// over at the oldest extract left (the hours before it are done).
		aside, err := opstate.SetAside(ctx, o.store, o.cont, o.cursorName())
		if err != nil {
			return err
		}
		st.SetAside = append(st.SetAside, aside)
		c, etag = cursor{}, ""
		err = o.store.List(ctx, o.cont, o.prefix+"panes/", func(p store.Properties) error {
			if h, ok := opstate.ParseHourPath(strings.TrimSuffix(strings.TrimPrefix(p.Name, o.prefix+"panes/"), ".gob")); ok {
				c.Panes = append(c.Panes, h.UnixNano())
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("aggregate: cursor: %w", err)
	}
	through := time.Unix(0, c.Through).UTC()
	sources := map[time.Time]map[string]bool{}
	byHour := map[time.Time][]string{}
	var last time.Time
	for _, l := range listed {
		if c.Through != 0 && l.Hour.Before(through) {
			// Left over by a finaliser that stopped after moving the cursor,
			// or republished by a redelivery of an old blob: already merged.
			if err := opstate.DeleteQuietly(ctx, o.store, o.cont, l.Name); err != nil {
				return err
			}
			continue
		}
		byHour[l.Hour] = append(byHour[l.Hour], l.Name)
		if sources[l.Hour] == nil {
			sources[l.Hour] = map[string]bool{}
		}
		sources[l.Hour][l.Source] = true
		if l.Hour.After(last) {
			last = l.Hour
		}
	}
	h := through
	if c.Through == 0 {
		if len(listed) == 0 {
			return nil
		}
		h = listed[0].Hour // listing is in name order: oldest hour first
		for _, l := range listed {
			if l.Hour.Before(h) {
				h = l.Hour
			}
		}
	}
	// Past the last extract, only windows that still read earlier panes
	// can end; after those, there is nothing to do until more rows come.
	stop := last
	if len(c.Panes) > 0 {
		stop = later(stop, time.Unix(0, c.Panes[len(c.Panes)-1]).UTC())
	}
	stop = stop.Add(o.span())
	cache := map[int64]*pane{}
	idle := false // hours passed whose cursor move is not written yet
	for ; opstate.Final(h.Add(time.Hour), o.spec.Lateness, watermark) && !h.After(stop); h = h.Add(time.Hour) {
		if w := o.waitingAt(c, h, sources[h]); len(w) > 0 {
			st.Redo = append(st.Redo, w...)
			break // until those blobs are applied again
		}
		p, err := o.mergeHour(ctx, h, byHour[h])
		var bad badExtract
		if errors.As(err, &bad) {
			// Record the wait first, so that no finaliser takes the hour
			// without the blob's rows, then set the extract aside.
			c.Waiting = append(c.Waiting, waiting{h.UnixNano(), bad.source})
			if _, err := opstate.WriteCursor(ctx, o.store, o.cont, o.cursorName(), etag, c); err != nil {
				return err
			}
			aside, err := opstate.SetAside(ctx, o.store, o.cont, bad.name)
			if err != nil {
				return err
			}
			st.SetAside = append(st.SetAside, aside)
			st.Redo = append(st.Redo, bad.source)
			return nil
		}
		if err != nil {
			return err
		}
		c.Waiting = slices.DeleteFunc(c.Waiting, func(w waiting) bool { return w.Hour == h.UnixNano() })
		if p != nil {
			cache[p.Hour] = p
			if !slices.Contains(c.Panes, p.Hour) {
				c.Panes = append(c.Panes, p.Hour)
				slices.Sort(c.Panes)
			}
		}
		results, err := o.windowsEndingIn(ctx, h, c.Panes, cache, st)
		if err != nil {
			return err
		}
		if len(results) > 0 {
			if err := sink.Emit(ctx, results); err != nil {
				return fmt.Errorf("aggregate: emit: %w", err)
			}
		}
		// Last, the cursor: only now is the hour done.
		keepFrom := h.Add(2 * time.Hour).Add(-o.span()).UnixNano()
		var drop []int64
		c.Panes = slices.DeleteFunc(c.Panes, func(x int64) bool {
			if x < keepFrom {
				drop = append(drop, x)
				return true
			}
			return false
		})
		c.Through = h.Add(time.Hour).UnixNano()
		st.Hours++
		st.Through = h.Add(time.Hour)
		if p == nil && len(results) == 0 && len(drop) == 0 {
			// An hour that changed nothing: its cursor move can wait for
			// the next one that does (redoing it after a crash is free).
			idle = true
			continue
		}
		if etag, err = opstate.WriteCursor(ctx, o.store, o.cont, o.cursorName(), etag, c); err != nil {
			return err
		}
		idle = false
		st.Results += len(results)
		for _, name := range byHour[h] {
			if err := opstate.DeleteQuietly(ctx, o.store, o.cont, name); err != nil {
				return err
			}
		}
		for _, x := range drop {
			delete(cache, x)
			if err := opstate.DeleteQuietly(ctx, o.store, o.cont, o.paneName(time.Unix(0, x))); err != nil {
				return err
			}
		}
	}
	if idle {
		_, err := opstate.WriteCursor(ctx, o.store, o.cont, o.cursorName(), etag, c)
		return err
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// waitingAt returns the blobs hour h still waits for: set aside, not yet
// applied again (no extract of theirs listed).
func (o *Operator) waitingAt(c cursor, h time.Time, listed map[string]bool) []string {
	var out []string
	for _, w := range c.Waiting {
		if w.Hour == h.UnixNano() && !listed[w.Source] {
			out = append(out, w.Source)
		}
	}
	return out
}

// badExtract is an extract that cannot be read: its blob must be redone.
type badExtract struct{ name, source string }

func (b badExtract) Error() string { return "unreadable extract " + b.name + " of " + b.source }

// mergeHour reads the hour's extracts and writes its pane (once: a pane
// already there, from a finaliser that stopped before its cursor write or
// from one that won a race, is the one used). nil: the hour had no rows.
func (o *Operator) mergeHour(ctx context.Context, h time.Time, names []string) (*pane, error) {
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	seen := map[string]bool{}
	var rows []storedRow
	for _, name := range names {
		var x extract
		if err := opstate.ReadState(ctx, o.store, o.cont, name, &x); err != nil {
			if errors.Is(err, store.ErrNotExist) {
				return nil, opstate.ErrRaced // merged and deleted by another finaliser
			}
			if errors.Is(err, opstate.ErrUnreadable) {
				if src, ok := o.x.SourceOf(name); ok {
					return nil, badExtract{name, src}
				}
				// A hashed name names no blob to redo: its rows are lost,
				// and said so.
				return nil, fmt.Errorf("aggregate: extract naming no source blob: %w", err)
			}
			return nil, fmt.Errorf("aggregate: extract: %w", err)
		}
		for _, r := range x.Rows {
			if !seen[r.Id] { // a row in two blobs (an export retry) counts once
				seen[r.Id] = true
				rows = append(rows, r)
			}
		}
	}
	slices.SortFunc(rows, compareRows)
	p := o.build(h, rows)
	data, err := opstate.Encode(p)
	if err != nil {
		return nil, err
	}
	stored, err := opstate.WriteOnce(ctx, o.store, o.cont, o.paneName(h), data)
	if errors.Is(err, store.ErrNotExist) {
		return nil, opstate.ErrRaced // written, then dropped by a finaliser further on
	}
	if err != nil {
		return nil, fmt.Errorf("aggregate: pane: %w", err)
	}
	var got pane
	if err := opstate.Decode(stored, &got); err != nil {
		// A pane of this hour that does not read: ours replaces it.
		if _, err := opstate.SetAside(ctx, o.store, o.cont, o.paneName(h)); err != nil {
			return nil, err
		}
		return nil, opstate.ErrRaced
	}
	return &got, nil
}

type groupKey struct {
	bin int64
	key string
}

func joinKey(k []string) string { return strings.Join(k, "\x00") }

// build makes the partials of one hour's rows, in (time, Id) order.
func (o *Operator) build(h time.Time, rows []storedRow) *pane {
	idx := map[groupKey]int{}
	sets := map[[2]int]map[string]bool{} // (group, agg) -> values held
	p := &pane{Hour: h.UnixNano()}
	for i := range rows {
		r := &rows[i]
		var bin int64
		if o.spec.Bin > 0 {
			bin = opstate.KQLBin(time.Unix(0, r.T), o.spec.Bin).UnixNano()
		}
		gk := groupKey{bin, joinKey(r.Key)}
		gi, ok := idx[gk]
		if !ok {
			gi = len(p.Groups)
			idx[gk] = gi
			p.Groups = append(p.Groups, group{Key: r.Key, Bin: bin, Parts: make([]part, len(o.spec.Aggs))})
		}
		g := &p.Groups[gi]
		for ai, a := range o.spec.Aggs {
			if a.Func == DCount || a.Func == MakeSet {
				k := [2]int{gi, ai}
				if sets[k] == nil {
					sets[k] = map[string]bool{}
				}
				addValue(&g.Parts[ai], a, r, sets[k])
				continue
			}
			add(&g.Parts[ai], a, r)
		}
	}
	for gi := range p.Groups {
		for ai, a := range o.spec.Aggs {
			if a.Func == DCount {
				// Only the values matter; sorted for stable bytes.
				slices.SortFunc(p.Groups[gi].Parts[ai].Vals, func(x, y item) int { return strings.Compare(x.V, y.V) })
			}
		}
	}
	slices.SortFunc(p.Groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(a.Bin, b.Bin), slices.Compare(a.Key, b.Key))
	})
	return p
}

// addValue folds row r's value into a dcount or make_set partial; rows come
// in (time, Id) order, so the first occurrence of a value is the first seen.
func addValue(pt *part, a Agg, r *storedRow, held map[string]bool) {
	if a.Arg >= len(r.Values) || r.Nulls&(1<<a.Arg) != 0 || held[r.Values[a.Arg]] {
		return
	}
	v := r.Values[a.Arg]
	if a.Func == DCount {
		held[v] = true
		pt.Vals = append(pt.Vals, item{V: v})
	} else if len(pt.Vals) < capOf(a) {
		held[v] = true
		pt.Vals = append(pt.Vals, item{V: v, T: r.T, Id: r.Id})
	}
}

// add folds row r into a count, min/max or arg partial.
func add(pt *part, a Agg, r *storedRow) {
	switch a.Func {
	case Count:
		pt.N++
	case CountIf:
		if r.Flags&(1<<a.Arg) != 0 {
			pt.N++
		}
	case Min, ArgMin:
		if !pt.Has || r.T < pt.T || r.T == pt.T && r.Id < pt.Id {
			*pt = part{Has: true, T: r.T, Id: r.Id}
			if a.Func == ArgMin {
				pt.Rec = r.Record
			}
		}
	case Max, ArgMax:
		if !pt.Has || r.T > pt.T || r.T == pt.T && r.Id < pt.Id {
			*pt = part{Has: true, T: r.T, Id: r.Id}
			if a.Func == ArgMax {
				pt.Rec = r.Record
			}
		}
	}
}

func capOf(a Agg) int {
	if a.Cap == 0 {
		return MakeSetDefaultCap
	}
	return a.Cap
}

// merge folds partial b into a (dcount and make_set are merged as sets by
// windowsEndingIn).
func merge(a *part, b part, ag Agg) {
	switch ag.Func {
	case Count, CountIf:
		a.N += b.N
	case Min, ArgMin:
		if b.Has && (!a.Has || b.T < a.T || b.T == a.T && b.Id < a.Id) {
			*a = b
		}
	case Max, ArgMax:
		if b.Has && (!a.Has || b.T > a.T || b.T == a.T && b.Id < a.Id) {
			*a = b
		}
	}
}

// windowsEndingIn returns the results of the windows that end in pane hour
// h: in event time the bins whose last instant is in h, in schedule mode the
// run at h+1h if there is one.
func (o *Operator) windowsEndingIn(ctx context.Context, h time.Time, panes []int64, cache map[int64]*pane, st *FinaliseStats) ([]Result, error) {
	end := h.Add(time.Hour)
	var from time.Time
	var run time.Time
	if sc := o.spec.Schedule; sc != nil {
		if end.Sub(sc.Anchor)%sc.Frequency != 0 {
			return nil, nil
		}
		run, from = end, end.Add(-sc.Period)
	} else {
		// A bin ending in h starts no earlier than the bin holding h's
		// first instant (for a bin dividing the hour, h itself).
		from = opstate.Hour(opstate.KQLBin(h, o.spec.Bin))
	}
	type acc struct {
		key   []string
		bin   int64
		parts []part
		sets  []map[string]item // dcount, make_set: each value's first occurrence
	}
	groups := map[groupKey]*acc{}
	for _, ph := range panes {
		if ph < from.UnixNano() || ph > h.UnixNano() {
			continue
		}
		p, err := o.readPane(ctx, ph, cache, st)
		if err != nil {
			return nil, err
		}
		for _, g := range p.Groups {
			if o.spec.Schedule == nil {
				last := time.Unix(0, g.Bin).Add(o.spec.Bin - 1)
				if !opstate.Hour(last).Equal(h) {
					continue // a bin that ends in another hour
				}
			}
			gk := groupKey{g.Bin, joinKey(g.Key)}
			a, ok := groups[gk]
			if !ok {
				a = &acc{key: g.Key, bin: g.Bin, parts: make([]part, len(o.spec.Aggs)), sets: make([]map[string]item, len(o.spec.Aggs))}
				groups[gk] = a
			}
			for i, ag := range o.spec.Aggs {
				if ag.Func != DCount && ag.Func != MakeSet {
					merge(&a.parts[i], g.Parts[i], ag)
					continue
				}
				// Union the panes' values, each at its first occurrence:
				// every pane holds its own earliest Cap, so the earliest
				// Cap of the union are among them (exact).
				if a.sets[i] == nil {
					a.sets[i] = make(map[string]item, len(g.Parts[i].Vals))
				}
				for _, it := range g.Parts[i].Vals {
					if old, ok := a.sets[i][it.V]; !ok || compareItems(it, old) < 0 {
						a.sets[i][it.V] = it
					}
				}
			}
		}
	}
	var out []Result
	for _, a := range groups {
		r := Result{Key: a.key, Values: make([]Value, len(o.spec.Aggs))}
		var runNs int64
		if !run.IsZero() {
			r.Run, runNs = run, run.UnixNano()
		}
		if o.spec.Bin > 0 {
			r.Bin = time.Unix(0, a.bin).UTC()
		}
		r.ID = resultID(o.spec.Rule, runNs, a.bin, a.key)
		for i, ag := range o.spec.Aggs {
			pt := a.parts[i]
			v := &r.Values[i]
			switch ag.Func {
			case Count, CountIf:
				v.N = pt.N
			case DCount:
				v.N = int64(len(a.sets[i]))
			case MakeSet:
				items := make([]item, 0, len(a.sets[i]))
				for _, it := range a.sets[i] {
					items = append(items, it)
				}
				slices.SortFunc(items, compareItems)
				items = items[:min(len(items), capOf(ag))]
				v.Set = make([]string, len(items))
				for j, it := range items {
					v.Set[j] = it.V
				}
			default:
				if pt.Has {
					v.Time = time.Unix(0, pt.T).UTC()
					if ag.Func == ArgMax || ag.Func == ArgMin {
						v.RecordId, v.Record = pt.Id, pt.Rec
					}
				}
			}
		}
		if o.spec.Having == nil || o.spec.Having(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Result) int {
		return cmp.Or(a.Bin.Compare(b.Bin), slices.Compare(a.Key, b.Key))
	})
	return out, nil
}

func (o *Operator) readPane(ctx context.Context, ph int64, cache map[int64]*pane, st *FinaliseStats) (*pane, error) {
	if p, ok := cache[ph]; ok {
		return p, nil
	}
	var p pane
	if err := opstate.ReadState(ctx, o.store, o.cont, o.paneName(time.Unix(0, ph)), &p); err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, opstate.ErrRaced // dropped by a finaliser further on
		}
		if errors.Is(err, opstate.ErrUnreadable) {
			// A final hour's pane cannot be rebuilt (its extracts are
			// gone): set aside and counted as empty, and said so.
			aside, err := opstate.SetAside(ctx, o.store, o.cont, o.paneName(time.Unix(0, ph)))
			if err != nil {
				return nil, err
			}
			st.SetAside = append(st.SetAside, aside)
			p = pane{Hour: ph}
			cache[ph] = &p
			return &p, nil
		}
		return nil, fmt.Errorf("aggregate: pane: %w", err)
	}
	cache[ph] = &p
	return &p, nil
}
