package pipeline

import (
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
// pair with: N.TimeGenerated - I.TimeGenerated is within [1m, 2h].
func reach(t signin.Table, h time.Time) []time.Time {
	var hs []time.Time
	for k := 0; k <= int(detect.MaxGap/time.Hour); k++ {
		if t == signin.Interactive {
			hs = append(hs, h.Add(time.Duration(k)*time.Hour))
		} else {
			hs = append(hs, h.Add(-time.Duration(k)*time.Hour))
		}
	}
	return hs
}

// rows is a source of candidate records: this blob's extract, or the other
// table's published ones.
type rows func(opts signin.Options, fn func([]signin.Record) error) error

// join pairs this blob's candidates with the other table's published ones:
// the interactive side is indexed, the non-interactive side probes it.
func (p *Pipeline) join(ctx context.Context, t signin.Table, ext *extracted, out *Outcome) ([]detect.Result, error) {
	if len(ext.byHour) == 0 {
		return nil, nil
	}
	other := signin.Interactive
	if t == signin.Interactive {
		other = signin.NonInteractive
	}
	hourSet := map[time.Time]bool{}
	for h := range ext.byHour {
		for _, oh := range reach(t, h) {
			hourSet[oh] = true
		}
	}
	hours := make([]time.Time, 0, len(hourSet))
	for h := range hourSet {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)

	// This blob's own candidates are in memory (extractWriter.recs): its
	// extract, published, is not read back. The batches keep the order of
	// the bytes an extract would give, hour by hour.
	for _, w := range ext.byHour {
		w.published()
	}
	own := func(opts signin.Options, fn func([]signin.Record) error) error {
		var batch []signin.Record
		for _, h := range ext.hours() {
			for _, recs := range ext.byHour[h].recs {
				if opts.Keep != nil {
					batch = batch[:0]
					for k := range recs {
						if opts.Keep(&recs[k]) {
							batch = append(batch, recs[k])
						}
					}
					recs = batch
				}
				if err := fn(recs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	stored := func(opts signin.Options, fn func([]signin.Record) error) error {
		return p.eachExtract(ctx, other, hours, out, func(props store.Properties) error {
			opts.Final = true
			_, err := signin.Scan(ctx, props.Name, store.NewReaderAt(ctx, p.cfg.State, props), props.Size, other, opts, fn)
			return err
		})
	}
	interactive, nonInteractive := rows(own), rows(stored)
	if t == signin.NonInteractive {
		interactive, nonInteractive = stored, own
	}

	x := detect.NewIndex()
	err := interactive(signin.Options{}, func(rs []signin.Record) error {
		for _, r := range rs {
			x.Add(r)
		}
		return nil
	})
	if err != nil || x.Len() == 0 {
		return nil, err
	}
	var results []detect.Result
	keepUser := func(r *signin.Record) bool { return x.HasUser(r.UserPrincipalName) }
	err = nonInteractive(signin.Options{Keep: keepUser}, func(rs []signin.Record) error {
		for k := range rs {
			results = x.Probe(results, &rs[k])
		}
		return nil
	})
	return results, err
}

// eachExtract calls fn for every published extract of table t in hours,
// ignoring state older than the allowed lateness: lifecycle rules delete it
// at day granularity, so reading it would make results depend on timing.
//
// An extract that cannot be read is moved aside and its export blob's
// ledger entry forgotten, so that blob is processed again and republishes
// it; this blob goes on with the others. When the redone blob looks, it
// finds this blob's extract, so no pair is lost.
func (p *Pipeline) eachExtract(ctx context.Context, t signin.Table, hours []time.Time, out *Outcome, fn func(store.Properties) error) error {
	oldest := p.cfg.Now().Add(-p.cfg.AllowedLateness)
	for _, h := range hours {
		err := p.cfg.State.List(ctx, p.cfg.StateContainer, extractPrefix(t, h), func(props store.Properties) error {
			if props.LastModified.Before(oldest) || !strings.HasSuffix(props.Name, extractSuffix) {
				return nil
			}
			err := fn(props)
			switch {
			case err == nil, errors.Is(err, store.ErrNotExist):
				return nil // or deleted by lifecycle since the listing
			case signin.IsFormatError(err):
				return p.repairExtract(ctx, props, err, out)
			}
			return fmt.Errorf("read extract %s: %w", props.Name, err)
		})
		if err != nil {
			return err
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
