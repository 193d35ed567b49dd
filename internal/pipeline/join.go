package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// reach returns the other table's event hours a candidate of hour h can
// pair with: N.TimeGenerated - I.TimeGenerated is within [1m, 2h], or the
// window of a tuned rule's plan (maxGap).
func reach(t signin.Table, h time.Time, maxGap ...time.Duration) []time.Time {
	gap := detect.MaxGap
	if len(maxGap) > 0 {
		gap = maxGap[0]
	}
	// A candidate late in hour h reaches ceil(gap / 1h) hours on: with a
	// 10m window, 08:58 pairs with 09:08, an hour int(gap/1h) misses.
	hours := int((gap + time.Hour - 1) / time.Hour)
	var hs []time.Time
	for k := 0; k <= hours; k++ {
		if t == signin.Interactive {
			hs = append(hs, h.Add(time.Duration(k)*time.Hour))
		} else {
			hs = append(hs, h.Add(-time.Duration(k)*time.Hour))
		}
	}
	return hs
}

// join pairs this interactive blob's candidates with the published
// non-interactive ones: its candidates are indexed, the extracts probe them.
// (A non-interactive blob probes the interactive index as it is read:
// stream.go.)
func (p *Pipeline) join(ctx context.Context, t signin.Table, ext *extracted, out *Outcome) ([]detect.Result, error) {
	if len(ext.byHour) == 0 {
		return nil, nil
	}
	hourSet := map[time.Time]bool{}
	for h := range ext.byHour {
		for _, oh := range reach(t, h, p.maxGap()) {
			hourSet[oh] = true
		}
	}
	hours := make([]time.Time, 0, len(hourSet))
	for h := range hourSet {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)

	// This blob's own candidates are in memory (extractWriter.recs): its
	// extract, published, is not read back.
	x := detect.NewIndexFor(p.cfg.Filter.Plan).RowsFiltered() // extracts hold rows that pass them
	for _, h := range ext.hours() {
		for _, recs := range ext.byHour[h].recs {
			for k := range recs {
				x.Add(recs[k])
			}
		}
	}
	if x.Len() == 0 {
		return nil, nil
	}
	return p.probeStored(ctx, x, hours, out)
}

// maxGap is the window's upper end: the bundled rule's, or the plan's.
func (p *Pipeline) maxGap() time.Duration {
	if p.cfg.Filter.Plan != nil {
		return p.cfg.Filter.Plan.MaxGap
	}
	return detect.MaxGap
}

// matchKey is what pass 2 of probeStored finds a matched row again by: the
// filter columns the join reads (signin.Options.Keep sees them before the
// wide columns are decoded).
type matchKey struct {
	upn, ip string
	t       int64
}

func keyOf(r *signin.Record) matchKey {
	return matchKey{r.UserPrincipalName, r.IPAddress, r.TimeGenerated.UnixNano()}
}

// matchedSource is one export blob version whose compact extracts hold rows
// that pair with the index.
type matchedSource struct {
	props store.Properties
	keys  map[matchKey]struct{}
	// recs are the matched compact rows, their Ids positions in their
	// extract: the result rows if the export cannot be read again. rows
	// holds them as written, to keep a row exported twice once.
	recs []signin.Record
	rows map[compactRow]struct{}
}

// probeStored probes index x (this interactive blob's candidates) with the
// non-interactive extracts of hours.
//
// Full extracts probe directly. Compact extracts (extract.go) hold only the
// join columns, so it takes two passes. Pass 1 probes with the compact rows
// and notes, per source export blob version, the keys of the rows that
// matched. Pass 2 reads each such export once, conditional on the ETag the
// extract was made from (exports are immutable; a version is what was
// extracted), through the candidate path of extraction (same filter, same
// position ids for rows without an Id), keeping only rows with a matched
// key, so the wide columns are decoded for those rows alone; their full
// records probe x as the extract's rows used to: the same result rows.
//
// An export that is gone or changed since (deleted, rewritten inside the
// lateness window) can no longer give its wide columns: its pairs come from
// the compact rows, wide NI columns blank and the NI row identified by its
// position in the extract (stable on redo), and the blob is named in
// Outcome.FromExtract. A pair is never dropped because its export went.
func (p *Pipeline) probeStored(ctx context.Context, x *detect.Index, hours []time.Time, out *Outcome) ([]detect.Result, error) {
	listed, err := p.listExtracts(ctx, signin.NonInteractive, hours)
	if err != nil {
		return nil, err
	}
	return p.probeExtracts(ctx, x, listed, out)
}

// probeExtracts is probeStored over the listed non-interactive extracts.
func (p *Pipeline) probeExtracts(ctx context.Context, x *detect.Index, listed []store.Properties, out *Outcome) ([]detect.Result, error) {
	var results, scratch []detect.Result
	// The rows that pair are held past their batch: their text is copied
	// (held.go), so they do not keep the reader's buffers alive.
	var held heldText
	// The reader tests MayMatch on the cheap columns (user, IP, country,
	// time) before it builds a record: most extract rows never become one.
	x.Seal()
	keepUser := x.MayMatch
	// Compact rows lack the wide columns a tuned rule's predicates may
	// read: pass 1 probes loosely, pass 2 exactly with the full records.
	loose := x.Loose()
	probe := func(rs []signin.Record) error {
		for k := range rs {
			results = held.probe(x, results, &rs[k])
		}
		return nil
	}
	sources := map[store.Properties]*matchedSource{}
	err := p.readExtracts(ctx, listed, out, func(props store.Properties) error {
		reader := store.NewReaderAt(ctx, p.cfg.State, props)
		src, compact := compactSource(props.Name)
		if !compact {
			_, err := signin.Scan(ctx, reader, props.Size, signin.Options{Name: props.Name, Table: signin.NonInteractive, Final: true, Keep: keepUser}, probe)
			return err
		}
		// Pass 1. Matches are noted only once the extract read whole: a
		// failed read is set aside and its source redone (readExtracts).
		var matched []signin.Record
		opts := signin.Options{Name: props.Name, Table: signin.NonInteractive, Final: true, Keep: keepUser,
			PositionIds: signin.PositionIdPrefix + p.cfg.StateContainer + "/" + props.Name + "#"}
		_, err := signin.Scan(ctx, reader, props.Size, opts, func(rs []signin.Record) error {
			for k := range rs {
				// Without its Id, so this look leaves x's Id dedup alone.
				r := rs[k]
				r.Id = ""
				if scratch = loose.Probe(scratch[:0], &r); len(scratch) > 0 {
					matched = append(matched, held.record(&rs[k]))
				}
			}
			return nil
		})
		if err != nil || len(matched) == 0 {
			return err
		}
		m := sources[src]
		if m == nil {
			m = &matchedSource{props: src, keys: map[matchKey]struct{}{}, rows: map[compactRow]struct{}{}}
			sources[src] = m
		}
		for k := range matched {
			r := &matched[k]
			m.keys[keyOf(r)] = struct{}{}
			// A compact extract is written as the rows stream by, before
			// their Ids are read, so a row exported twice in the blob is
			// there twice: the copies are the same compact row, kept once
			// (DESIGN.md 4.1, dedup by Id; the export read again dedups
			// by its Ids).
			c := compactRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location, r.ResultType}
			if _, dup := m.rows[c]; !dup {
				m.rows[c] = struct{}{}
				m.recs = append(m.recs, *r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Pass 2, in a fixed order.
	srcs := make([]*matchedSource, 0, len(sources))
	for _, m := range sources {
		srcs = append(srcs, m)
	}
	slices.SortFunc(srcs, func(a, b *matchedSource) int {
		return cmp.Or(strings.Compare(a.props.Container, b.props.Container), strings.Compare(a.props.Name, b.props.Name),
			strings.Compare(a.props.ETag, b.props.ETag), cmp.Compare(a.props.Size, b.props.Size))
	})
	for _, m := range srcs {
		rows, why, err := p.reprobe(ctx, x, m)
		if err != nil {
			return nil, err
		}
		if why != nil {
			for k := range m.recs {
				// The wide columns are gone with the export: a pair is
				// kept (never dropped for that), predicates on them unknown.
				results = loose.Probe(results, &m.recs[k])
			}
			out.FromExtract = append(out.FromExtract, fmt.Sprintf("%s: %v", p.cfg.Exports.URL(m.props.Container, m.props.Name), why))
			p.cfg.Logger.Warn("export blob gone or changed since its extract: pairs written from the extract, NI columns AppDisplayName, CorrelationId, UniqueTokenIdentifier blank",
				"blob", p.cfg.Exports.URL(m.props.Container, m.props.Name), "etag", m.props.ETag, "error", why.Error())
			continue
		}
		results = append(results, rows...)
	}
	return results, nil
}

// reprobe reads the export version of m again for the rows with a matched
// key and probes x with them. why is set (and the result rows nil) when
// that version cannot be read any more; err when a retry may help.
func (p *Pipeline) reprobe(ctx context.Context, x *detect.Index, m *matchedSource) (rows []detect.Result, why, err error) {
	name := m.props.Container + "/" + m.props.Name
	opts := signin.Options{
		Name:  name,
		Table: signin.NonInteractive,
		Keep: func(r *signin.Record) bool {
			if _, ok := m.keys[keyOf(r)]; !ok {
				return false
			}
			return p.cfg.Filter.NonInteractive(r)
		},
		MaxExpansion: p.cfg.MaxExpansion,
		// Only a version read whole gets a compact extract.
		Final:       true,
		PositionIds: signin.PositionIdPrefix + name + "#",
	}
	ra := store.NewReaderAt(ctx, p.cfg.Exports, m.props)
	// x's Id dedup must not see rows of a read that fails midway.
	var batch []signin.Record
	var held heldText
	_, err = signin.Scan(ctx, ra, m.props.Size, opts, func(rs []signin.Record) error {
		for k := range rs {
			batch = append(batch, held.record(&rs[k]))
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrConditionNotMet):
		// A read conditional on the ETag of a deleted blob fails as a
		// changed one on Azure: Stat tells them apart (for the report).
		if _, serr := p.cfg.Exports.Stat(ctx, m.props.Container, m.props.Name); errors.Is(serr, store.ErrNotExist) {
			return nil, errors.New("deleted since its extract was published"), nil
		}
		return nil, fmt.Errorf("rewritten since its extract was published (ETag %s then)", m.props.ETag), nil
	case signin.IsFormatError(err):
		return nil, err, nil
	default:
		return nil, nil, fmt.Errorf("read %s: %w", p.cfg.Exports.URL(m.props.Container, m.props.Name), err)
	}
	for k := range batch {
		rows = x.Probe(rows, &batch[k])
	}
	return rows, nil, nil
}

// readExtracts calls fn for each of the listed extracts (listExtracts
// ignores state older than the allowed lateness: lifecycle rules delete it
// at day granularity, so reading it would make results depend on timing).
//
// An extract that cannot be read is moved aside and its export blob's
// ledger entry forgotten, so that blob is processed again and republishes
// it; this blob goes on with the others. When the redone blob looks, it
// finds this blob's extract, so no pair is lost.
func (p *Pipeline) readExtracts(ctx context.Context, listed []store.Properties, out *Outcome, fn func(store.Properties) error) error {
	for _, props := range listed {
		err := fn(props)
		switch {
		case err == nil, errors.Is(err, store.ErrNotExist):
			// or deleted by lifecycle since the listing
		case signin.IsFormatError(err):
			if err := p.repairExtract(ctx, props, err, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("read extract %s: %w", props.Name, err)
		}
	}
	return nil
}

// repairExtract sets an unreadable extract aside and has its source redone.
func (p *Pipeline) repairExtract(ctx context.Context, props store.Properties, why error, out *Outcome) error {
	bad, err := p.moveAside(ctx, props.Name, props.ETag, why)
	if err != nil {
		return err
	}
	out.SetAside = append(out.SetAside, bad)
	src, ok := extractSource(props.Name)
	if !ok {
		return nil
	}
	if err := p.forget(ctx, src); err != nil {
		return err
	}
	out.Redo = append(out.Redo, src)
	return nil
}
