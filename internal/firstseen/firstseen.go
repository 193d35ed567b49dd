// Package firstseen is the rule operator "a value new for this key": the
// own-history baselines of Sentinel's rules (new country for a user, new
// role for a target, new user agent for an app), written in KQL as
//
//	current | join kind=leftanti (baseline) on key, value
//
// run event-driven over export blobs with its state in blob storage, under
// the join's guarantees (DESIGN.md 4, 7): any arrival order, duplicate blobs
// and rows, concurrent workers, and a crash between any two requests give
// the same results, each once by id. The protocol is internal/opstate's:
// Apply publishes each blob's (key, value) first and last occurrence per
// pane hour; Finalise takes the final hours in order against a per-pair
// "last seen" time kept in sharded, versioned snapshots.
//
// Two modes. Event time (Schedule nil): a row is new when no row with the
// same key and value has a time in [t-Window, t); one result per such
// first occurrence. Schedule emulation: at each run T = Anchor +
// k*Frequency, a (key, value) is new when it occurs in (T-Frequency, T] and
// not in (T-Period, T-Frequency]; one result per run and pair, carrying its
// first row in the run's window.
//
// The state is one time per (key, value) seen within the window (or the
// period), and at most MaxValuesPerKey values per key: past that bound the
// values seen longest ago are forgotten, counted in FinaliseStats.Evicted
// (a forgotten value seen again reads as new).
package firstseen

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/opstate"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Schedule is the rule's queryFrequency and queryPeriod and one run's time.
type Schedule struct {
	Anchor    time.Time
	Frequency time.Duration
	Period    time.Duration
}

// Spec is one rule's first-seen set.
type Spec struct {
	Rule string // state lives under firstseen/<Rule>/
	Keys int    // key columns
	// Window is N of "not seen in the last N" (event time); at least 1h.
	Window   time.Duration
	Schedule *Schedule
	// Lateness is the finalisation delay, measured by the export blobs'
	// Last-Modified; later rows are dropped, counted and named.
	Lateness time.Duration
	// MaxValuesPerKey bounds the state per key (DefaultMaxValuesPerKey if 0).
	MaxValuesPerKey int
	// Shards is how many snapshots the state is cut into by key (16 if 0).
	Shards int
}

// DefaultMaxValuesPerKey bounds the values remembered per key when the spec
// does not: far above a user's countries, apps or roles.
const DefaultMaxValuesPerKey = 4096

// Row is one source row, projected by the compiler.
type Row struct {
	Id     string
	Time   time.Time
	Key    []string
	Value  string
	Record []string // the row's output columns
}

// Result is one new (key, value).
type Result struct {
	// ID is hash(rule, key, value, time) in event time, hash(rule, run,
	// key, value) in schedule mode.
	ID     string    `json:"id"`
	Run    time.Time `json:"run,omitzero"`
	Key    []string  `json:"key"`
	Value  string    `json:"value"`
	Time   time.Time `json:"time"` // the first occurrence
	RowId  string    `json:"rowId"`
	Record []string  `json:"record,omitempty"`
}

// Sink takes results; it must be idempotent by Result.ID.
type Sink interface {
	Emit(ctx context.Context, results []Result) error
}

// Config wires an Operator.
type Config struct {
	Spec      Spec
	Store     store.Store
	Container string
}

// Operator runs one rule's first-seen set; safe for concurrent use across
// goroutines and processes.
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
	if err := opstate.CheckConfig("firstseen", cfg.Store, cfg.Container, s.Rule); err != nil {
		return nil, err
	}
	switch {
	case s.Lateness < 0 || s.MaxValuesPerKey < 0 || s.Shards < 0:
		return nil, errors.New("firstseen: lateness, bound and shards must not be negative")
	case s.Schedule == nil && s.Window < time.Hour:
		return nil, fmt.Errorf("firstseen: window %s: at least 1h (an hour's occurrences are one first sighting)", s.Window)
	}
	if sc := s.Schedule; sc != nil {
		switch {
		case sc.Frequency <= 0 || sc.Frequency%time.Hour != 0 || sc.Period%time.Hour != 0 || sc.Period <= sc.Frequency:
			return nil, fmt.Errorf("firstseen: schedule %s/%s: whole hours, period longer than frequency", sc.Frequency, sc.Period)
		case !sc.Anchor.Equal(opstate.Hour(sc.Anchor)):
			return nil, fmt.Errorf("firstseen: schedule anchor %s is not on the hour", sc.Anchor)
		}
	}
	if s.MaxValuesPerKey == 0 {
		s.MaxValuesPerKey = DefaultMaxValuesPerKey
	}
	if s.Shards == 0 {
		s.Shards = 16
	}
	prefix := "firstseen/" + s.Rule + "/"
	return &Operator{spec: s, store: cfg.Store, cont: cfg.Container, prefix: prefix,
		x: opstate.Extracts{Store: cfg.Store, Container: cfg.Container, Prefix: prefix}}, nil
}

func (o *Operator) paneOf(t time.Time) time.Time {
	if o.spec.Schedule != nil {
		return opstate.Hour(t.Add(-1)) // runs take T-Period < t <= T
	}
	return opstate.Hour(t)
}

// occ is a (key, value)'s occurrences in one pane hour: the first row (by
// time, then Id) and the last time. Duplicates change neither.
type occ struct {
	Key    []string `json:"k"`
	Value  string   `json:"v"`
	T      int64    `json:"t"`
	Id     string   `json:"i"`
	Record []string `json:"r,omitempty"`
	Last   int64    `json:"l"`
}

func (a *occ) fold(b occ) {
	if b.T < a.T || b.T == a.T && b.Id < a.Id {
		a.T, a.Id, a.Record = b.T, b.Id, b.Record
	}
	a.Last = max(a.Last, b.Last)
}

type pairKey struct{ key, value string }

func joinKey(k []string) string { return strings.Join(k, "\x00") }

// ApplyStats tells what Apply did.
type ApplyStats struct {
	Rows      int64
	Late      int64
	FirstLate string
	Extracts  int
}

// Apply publishes one export blob part's occurrences, one extract per pane
// hour named by the source.
func (o *Operator) Apply(ctx context.Context, src opstate.Source, rows []Row) (ApplyStats, error) {
	var st ApplyStats
	byHour := map[time.Time]map[pairKey]*occ{}
	for i := range rows {
		r := &rows[i]
		if r.Id == "" {
			return st, fmt.Errorf("firstseen: %s: row %d has no Id", src.Blob, i)
		}
		if len(r.Key) != o.spec.Keys {
			return st, fmt.Errorf("firstseen: %s: row %s has %d key values, the rule %d", src.Blob, r.Id, len(r.Key), o.spec.Keys)
		}
		if src.Late(r.Time, o.spec.Lateness) {
			if st.Late == 0 {
				st.FirstLate = r.Id + " at " + r.Time.UTC().Format(time.RFC3339Nano)
			}
			st.Late++
			continue
		}
		st.Rows++
		h := o.paneOf(r.Time)
		m := byHour[h]
		if m == nil {
			m = map[pairKey]*occ{}
			byHour[h] = m
		}
		t := r.Time.UnixNano()
		x := occ{Key: r.Key, Value: r.Value, T: t, Id: r.Id, Record: r.Record, Last: t}
		pk := pairKey{joinKey(r.Key), r.Value}
		if a, ok := m[pk]; ok {
			a.fold(x)
		} else {
			m[pk] = &x
		}
	}
	hours := make([]time.Time, 0, len(byHour))
	for h := range byHour {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)
	for _, h := range hours {
		data, err := opstate.Encode(extract{Source: src.Blob, Occs: sortedOccs(byHour[h])})
		if err != nil {
			return st, err
		}
		if err := o.x.Write(ctx, h, src, data); err != nil {
			return st, fmt.Errorf("firstseen: publish %s: %w", src.Blob, err)
		}
		st.Extracts++
	}
	return st, nil
}

type extract struct {
	Source string `json:"source"`
	Occs   []occ  `json:"occs"`
}

func sortedOccs(m map[pairKey]*occ) []occ {
	out := make([]occ, 0, len(m))
	for _, x := range m {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b occ) int { return cmp.Or(slices.Compare(a.Key, b.Key), strings.Compare(a.Value, b.Value)) })
	return out
}

// snapshot is one shard's state after a pane hour: each remembered pair's
// last occurrence.
type snapshot struct {
	Entries []entry `json:"entries"`
}

type entry struct {
	Key   []string `json:"k"`
	Value string   `json:"v"`
	Last  int64    `json:"l"`
}

// cursor: hours before Through are final; Shards names each shard's current
// snapshot by the hour that wrote it.
type cursor struct {
	Through int64            `json:"through"`
	Shards  map[string]int64 `json:"shards,omitempty"`
	// Waiting: export blobs whose extract of an hour was unreadable and set
	// aside; the hour waits until they are applied again.
	Waiting []waiting `json:"waiting,omitempty"`
}

type waiting struct {
	Hour   int64  `json:"hour"`
	Source string `json:"source"`
}

// badExtract is an extract that cannot be read: its blob must be redone.
type badExtract struct{ name, source string }

func (b badExtract) Error() string { return "unreadable extract " + b.name + " of " + b.source }

func (o *Operator) cursorName() string { return o.prefix + "cursor.json" }
func (o *Operator) snapshotName(shard int, h int64) string {
	return o.prefix + "seen/" + strconv.Itoa(shard) + "/" + opstate.HourPath(time.Unix(0, h)) + ".gob"
}

func (o *Operator) shardOf(key []string) int {
	f := fnv.New32a()
	f.Write([]byte(joinKey(key)))
	return int(f.Sum32() % uint32(o.spec.Shards))
}

// FinaliseStats tells what Finalise did.
type FinaliseStats struct {
	Hours   int
	Results int
	Evicted int // values forgotten over MaxValuesPerKey
	Through time.Time
	Raced   int
	// SetAside names (by URL) the unreadable state objects moved to the
	// quarantine; Redo the export blobs to apply again (an extract of
	// theirs was set aside; its hour waits for them).
	SetAside []string
	Redo     []string
}

// Finalise takes every pane hour watermark makes final, in order (see
// aggregate.Operator.Finalise for the watermark's meaning).
func (o *Operator) Finalise(ctx context.Context, watermark time.Time, sink Sink) (FinaliseStats, error) {
	var st FinaliseStats
	raced, err := opstate.Restarting("firstseen", func() error { return o.finalise(ctx, watermark, sink, &st) })
	st.Raced += raced
	return st, err
}

func (o *Operator) finalise(ctx context.Context, watermark time.Time, sink Sink, st *FinaliseStats) error {
	// List first: extracts are deleted only after the cursor moved past
	// their hour, so the hours from the cursor on are listed whole.
	listed, err := o.x.List(ctx)
	if err != nil {
		return fmt.Errorf("firstseen: list extracts: %w", err)
	}
	var c cursor
	etag, err := opstate.ReadJSON(ctx, o.store, o.cont, o.cursorName(), &c)
	if errors.Is(err, opstate.ErrUnreadable) {
		// Rebuilt from the snapshots: each shard's latest; finalisation
		// starts over at the oldest extract left.
		aside, err := opstate.SetAside(ctx, o.store, o.cont, o.cursorName())
		if err != nil {
			return err
		}
		st.SetAside = append(st.SetAside, aside)
		c, etag = cursor{Shards: map[string]int64{}}, ""
		base := o.prefix + "seen/"
		err = o.store.List(ctx, o.cont, base, func(p store.Properties) error {
			shard, rest, ok := strings.Cut(strings.TrimPrefix(p.Name, base), "/")
			h, hok := opstate.ParseHourPath(strings.TrimSuffix(rest, ".gob"))
			if ok && hok && h.UnixNano() > c.Shards[shard] {
				c.Shards[shard] = h.UnixNano()
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("firstseen: cursor: %w", err)
	}
	if c.Shards == nil {
		c.Shards = map[string]int64{}
	}
	byHour := map[time.Time][]string{}
	sources := map[time.Time]map[string]bool{}
	var hours []time.Time
	for _, l := range listed {
		if c.Through != 0 && l.Hour.UnixNano() < c.Through {
			if err := opstate.DeleteQuietly(ctx, o.store, o.cont, l.Name); err != nil {
				return err
			}
			continue
		}
		if byHour[l.Hour] == nil {
			hours = append(hours, l.Hour)
		}
		byHour[l.Hour] = append(byHour[l.Hour], l.Name)
		if sources[l.Hour] == nil {
			sources[l.Hour] = map[string]bool{}
		}
		sources[l.Hour][l.Source] = true
	}
	slices.SortFunc(hours, time.Time.Compare)
	// Only hours with extracts change anything: hours between them are
	// passed over (the state expires lazily, by time, when next read).
	for _, h := range hours {
		if !opstate.Final(h.Add(time.Hour), o.spec.Lateness, watermark) {
			break
		}
		var wait []string
		for _, w := range c.Waiting {
			if w.Hour == h.UnixNano() && !sources[h][w.Source] {
				wait = append(wait, w.Source)
			}
		}
		if len(wait) > 0 {
			st.Redo = append(st.Redo, wait...)
			break // until those blobs are applied again
		}
		prev := cursor{Through: c.Through, Shards: maps.Clone(c.Shards), Waiting: slices.Clone(c.Waiting)}
		results, replaced, evicted, err := o.finaliseHour(ctx, h, byHour[h], &c, st)
		var bad badExtract
		if errors.As(err, &bad) {
			// Record the wait before setting the extract aside, so that
			// no finaliser takes the hour without the blob's rows (the
			// cursor as read: finaliseHour may have moved c's shards on).
			prev.Waiting = append(prev.Waiting, waiting{h.UnixNano(), bad.source})
			if _, err := opstate.WriteCursor(ctx, o.store, o.cont, o.cursorName(), etag, prev); err != nil {
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
		if len(results) > 0 {
			if err := sink.Emit(ctx, results); err != nil {
				return fmt.Errorf("firstseen: emit: %w", err)
			}
		}
		c.Through = h.Add(time.Hour).UnixNano()
		if etag, err = opstate.WriteCursor(ctx, o.store, o.cont, o.cursorName(), etag, c); err != nil {
			return err
		}
		st.Hours++
		st.Results += len(results)
		st.Evicted += evicted
		st.Through = h.Add(time.Hour)
		for _, name := range append(byHour[h], replaced...) {
			if err := opstate.DeleteQuietly(ctx, o.store, o.cont, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// finaliseHour merges hour h's extracts, decides which pairs are new
// against the shards' snapshots, and writes the touched shards' snapshots
// for h (once each: a finaliser redoing h finds them and reads the same).
// It updates c.Shards and returns the results and the snapshots replaced.
func (o *Operator) finaliseHour(ctx context.Context, h time.Time, names []string, c *cursor, st *FinaliseStats) (results []Result, replaced []string, evicted int, err error) {
	merged := map[pairKey]*occ{}
	for _, name := range names {
		var x extract
		if err := opstate.ReadState(ctx, o.store, o.cont, name, &x); err != nil {
			if errors.Is(err, store.ErrNotExist) {
				return nil, nil, 0, opstate.ErrRaced
			}
			if errors.Is(err, opstate.ErrUnreadable) {
				if src, ok := o.x.SourceOf(name); ok {
					return nil, nil, 0, badExtract{name, src}
				}
			}
			return nil, nil, 0, fmt.Errorf("firstseen: extract: %w", err)
		}
		for _, oc := range x.Occs {
			pk := pairKey{joinKey(oc.Key), oc.Value}
			if a, ok := merged[pk]; ok {
				a.fold(oc)
			} else {
				oc := oc
				merged[pk] = &oc
			}
		}
	}
	byShard := map[int][]occ{}
	for _, oc := range sortedOccs(merged) {
		s := o.shardOf(oc.Key)
		byShard[s] = append(byShard[s], oc)
	}
	shards := make([]int, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	slices.Sort(shards)
	var run, winStart, expire int64
	if sc := o.spec.Schedule; sc != nil {
		end := h.Add(time.Hour)
		k := (end.Sub(sc.Anchor) + sc.Frequency - 1) / sc.Frequency
		if end.Before(sc.Anchor) {
			k = end.Sub(sc.Anchor) / sc.Frequency
		}
		T := sc.Anchor.Add(k * sc.Frequency)
		run, winStart, expire = T.UnixNano(), T.Add(-sc.Frequency).UnixNano(), T.Add(-sc.Period).UnixNano()
	} else {
		expire = h.Add(-o.spec.Window).UnixNano() - 1 // Last < h-Window: as if never seen
	}
	for _, s := range shards {
		last := map[pairKey]*entry{}
		var snap snapshot
		if v, ok := c.Shards[strconv.Itoa(s)]; ok {
			name := o.snapshotName(s, v)
			err := opstate.ReadState(ctx, o.store, o.cont, name, &snap)
			if errors.Is(err, opstate.ErrUnreadable) {
				// The shard's history cannot be rebuilt: set aside, the
				// shard starts empty (its pairs may read new again), said so.
				aside, serr := opstate.SetAside(ctx, o.store, o.cont, name)
				if serr != nil {
					return nil, nil, 0, serr
				}
				st.SetAside = append(st.SetAside, aside)
				snap, err = snapshot{}, nil
			}
			if err != nil {
				if errors.Is(err, store.ErrNotExist) {
					return nil, nil, 0, opstate.ErrRaced
				}
				return nil, nil, 0, fmt.Errorf("firstseen: snapshot: %w", err)
			}
			if v != h.UnixNano() {
				replaced = append(replaced, name)
			}
		}
		for i := range snap.Entries {
			e := &snap.Entries[i]
			if e.Last > expire {
				last[pairKey{joinKey(e.Key), e.Value}] = e
			}
		}
		for _, oc := range byShard[s] {
			pk := pairKey{joinKey(oc.Key), oc.Value}
			e := last[pk]
			var isNew bool
			if o.spec.Schedule != nil {
				// Already in this run's window: decided at its first hour.
				isNew = e == nil || e.Last <= expire
				if e != nil && e.Last > winStart {
					isNew = false
				}
			} else {
				isNew = e == nil || e.Last < oc.T-int64(o.spec.Window)
			}
			if isNew {
				r := Result{Key: oc.Key, Value: oc.Value, Time: time.Unix(0, oc.T).UTC(), RowId: oc.Id, Record: oc.Record}
				if run != 0 {
					r.Run = time.Unix(0, run).UTC()
				}
				r.ID = resultID(o.spec.Rule, run, oc.Key, oc.Value, oc.T)
				results = append(results, r)
			}
			if e == nil {
				e = &entry{Key: oc.Key, Value: oc.Value}
				last[pk] = e
			}
			e.Last = max(e.Last, oc.Last)
		}
		entries, ev := o.bound(last)
		evicted += ev
		data, err := opstate.Encode(snapshot{Entries: entries})
		if err != nil {
			return nil, nil, 0, err
		}
		_, err = opstate.WriteOnce(ctx, o.store, o.cont, o.snapshotName(s, h.UnixNano()), data)
		if errors.Is(err, store.ErrNotExist) {
			return nil, nil, 0, opstate.ErrRaced // written, then replaced by a finaliser further on
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("firstseen: snapshot: %w", err)
		}
		c.Shards[strconv.Itoa(s)] = h.UnixNano()
	}
	slices.SortFunc(results, func(a, b Result) int {
		return cmp.Or(slices.Compare(a.Key, b.Key), strings.Compare(a.Value, b.Value))
	})
	return results, replaced, evicted, nil
}

// bound keeps at most MaxValuesPerKey values per key, those seen last
// (ties: the smaller value), sorted for stable bytes.
func (o *Operator) bound(last map[pairKey]*entry) ([]entry, int) {
	out := make([]entry, 0, len(last))
	for _, e := range last {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b entry) int {
		return cmp.Or(slices.Compare(a.Key, b.Key), cmp.Compare(b.Last, a.Last), strings.Compare(a.Value, b.Value))
	})
	evicted := 0
	n, run := 0, 0
	for i := range out {
		if i > 0 && slices.Equal(out[i].Key, out[i-1].Key) {
			run++
		} else {
			run = 1
		}
		if run > o.spec.MaxValuesPerKey {
			evicted++
			continue
		}
		out[n] = out[i]
		n++
	}
	out = out[:n]
	slices.SortFunc(out, func(a, b entry) int {
		return cmp.Or(slices.Compare(a.Key, b.Key), strings.Compare(a.Value, b.Value))
	})
	return out, evicted
}

func resultID(rule string, run int64, key []string, value string, t int64) string {
	h := sha256.New()
	if run != 0 {
		t = 0 // one result per run and pair
	}
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", rule, run, t, value)
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
