package pipeline

import (
	"context"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// A precision mode (Config.Precision) is applied where the pipeline pairs
// rows, as detect applies it: every result row a probe makes is decided by
// precision.Filter.Decide from the extra columns (signin.Extra) of its two
// rows, and dropped when the mode suppresses it. A pair's decision reads
// only its own two rows, so it is the same whichever blob makes the pair
// and in whatever order the blobs arrive: process gives detect's rows.
//
// The extra columns travel as follows (none of it in exact mode, whose
// extracts and reads are unchanged):
//   - an interactive extract carries them (interactivePrecisionRow): the
//     index built from extracts keeps them by row Id (indexExtras);
//   - a non-interactive row probes with the columns read from its export
//     (the stream, and pass 2 of a compact extract, which reads the export
//     again for the matched rows); a full extract carries them
//     (nonInteractivePrecisionRow). A compact extract does not: its rows
//     probe only in pass 1, which decides nothing.
//   - a pair written from a compact extract because its export went (join.go)
//     has no NI columns: the mode fails open and keeps it, as it keeps any
//     pair a column is missing for.

// extraOptions asks a scan for the mode's columns too when one is on
// (besides those a tuned rule's row predicates read).
func (p *Pipeline) extraOptions(o signin.Options) signin.Options {
	if p.cfg.Precision != nil {
		cols := slices.Clone(o.Extra)
		for _, c := range p.cfg.Precision.Mode.Columns() {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		o.Extra = cols
	}
	return o
}

// indexExtras are the extra columns of an index's interactive rows, by Id
// (every pipeline row has one: its own, or its position in its export);
// the first row of a repeated Id wins, as in detect.Index.
type indexExtras map[string]*signin.Extra

func (m indexExtras) add(r *signin.Record) {
	if r.Extra == nil || r.Id == "" {
		return
	}
	if _, ok := m[r.Id]; !ok {
		m[r.Id] = r.Extra
	}
}

// pairKey names a result row by its two rows.
type pairKey struct{ i, n string }

// precisionJoin is one blob's application of the mode: the interactive
// extra columns of the indexes it probed, and each pair's verdict, kept
// once per pair (a row may probe two indexes that hold the same
// interactive row: stream.go's look).
type precisionJoin struct {
	f        *precision.Filter
	mu       sync.Mutex
	extras   []indexExtras
	verdicts map[pairKey]precision.Verdict
}

// precisionOf returns out's precision join, made on first use; nil in
// exact mode.
func (p *Pipeline) precisionOf(out *Outcome) *precisionJoin {
	if p.cfg.Precision == nil {
		return nil
	}
	if out.prec == nil {
		out.prec = &precisionJoin{f: p.cfg.Precision, verdicts: map[pairKey]precision.Verdict{}}
	}
	return out.prec
}

// use adds the extra columns of an index that is about to be probed.
func (pj *precisionJoin) use(m indexExtras) {
	if pj == nil || len(m) == 0 {
		return
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	// The cached index comes back for every hour of a stream: once.
	for _, have := range pj.extras {
		if reflect.ValueOf(have).UnsafePointer() == reflect.ValueOf(m).UnsafePointer() {
			return
		}
	}
	pj.extras = append(pj.extras, m)
}

func (pj *precisionJoin) interactive(id string) *signin.Extra {
	for _, m := range pj.extras {
		if e, ok := m[id]; ok {
			return e
		}
	}
	return nil
}

// probe is x.Probe(dst, n) with the mode's suppressed rows left out.
func (pj *precisionJoin) probe(x *detect.Index, dst []detect.Result, n *signin.Record) []detect.Result {
	return pj.probeWith(dst, n, func(dst []detect.Result) []detect.Result { return x.Probe(dst, n) })
}

// probeWith appends to dst the result rows probe makes of n (x.Probe, or
// heldText's) but those the mode suppresses.
func (pj *precisionJoin) probeWith(dst []detect.Result, n *signin.Record, probe func([]detect.Result) []detect.Result) []detect.Result {
	from := len(dst)
	dst = probe(dst)
	if pj == nil || len(dst) == from {
		return dst
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	out := dst[:from]
	for k := from; k < len(dst); k++ {
		r := dst[k]
		v := pj.f.Decide(&r, pj.interactive(r.InteractiveId), n.Extra)
		key := pairKey{r.InteractiveId, r.NonInteractiveId}
		if _, seen := pj.verdicts[key]; !seen {
			// Its own copies: the ASNs point into the scanned record's
			// text, which a verdict must not keep alive (held.go).
			v.Features.InteractiveASN = strings.Clone(v.Features.InteractiveASN)
			v.Features.NIASN = strings.Clone(v.Features.NIASN)
			pj.verdicts[key] = v
		}
		if v.Keep {
			out = append(out, r)
		}
	}
	clear(dst[len(out):]) // no stale rows past the end
	return out
}

// stats counts the blob's verdicts, each pair once.
func (pj *precisionJoin) stats() precision.Stats {
	s := precision.Stats{Mode: pj.f.Mode}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	for _, v := range pj.verdicts {
		s.Add(v)
	}
	return s
}

// Features returns what the mode saw of a kept result row of this blob
// (the alert documents' evidence), and whether the mode decided it.
func (o *Outcome) Features(r *detect.Result) (precision.Features, bool) {
	if o.prec == nil {
		return precision.Features{}, false
	}
	o.prec.mu.Lock()
	defer o.prec.mu.Unlock()
	v, ok := o.prec.verdicts[pairKey{r.InteractiveId, r.NonInteractiveId}]
	return v.Features, ok && v.Keep
}

// interactivePrecisionRow is interactiveRow with the modes' columns
// (written only when a mode is on): interactive candidates are few, so all
// eight are carried, whichever the mode reads.
type interactivePrecisionRow struct {
	interactiveRow
	precisionColumns
}

// interactiveWidePrecisionRow is interactiveWideRow with the modes' columns
// (a tuned rule reading the wide interactive columns, and a mode).
type interactiveWidePrecisionRow struct {
	interactiveWideRow
	precisionColumns
}

// nonInteractivePrecisionRow is nonInteractiveRow (a full extract) with the
// modes' columns.
type nonInteractivePrecisionRow struct {
	nonInteractiveRow
	precisionColumns
}

// precisionColumns are signin.Extra's columns in an extract, as text (the
// Parquet reader takes any of them as a string: signin.Extra). A session
// or ASN repeats over a user's rows: dictionary-coded; the JSON columns
// repeat little and are compressed.
type precisionColumns struct {
	SessionId                    string `parquet:"SessionId,dict"`
	AutonomousSystemNumber       string `parquet:"AutonomousSystemNumber,dict"`
	NetworkLocationDetails       string `parquet:"NetworkLocationDetails,dict"`
	IsThroughGlobalSecureAccess  string `parquet:"IsThroughGlobalSecureAccess,dict"`
	AppId                        string `parquet:"AppId,dict"`
	LocationDetails              string `parquet:"LocationDetails,zstd"`
	DeviceDetail                 string `parquet:"DeviceDetail,zstd"`
	TokenProtectionStatusDetails string `parquet:"TokenProtectionStatusDetails,dict"`
}

func precisionColumnsOf(r *signin.Record) precisionColumns {
	if r.Extra == nil {
		return precisionColumns{}
	}
	e := r.Extra
	return precisionColumns{e.SessionId, e.AutonomousSystemNumber, e.NetworkLocationDetails, e.IsThroughGlobalSecureAccess,
		e.AppId, e.LocationDetails, e.DeviceDetail, e.TokenProtectionStatusDetails}
}

func interactiveRowOf(r *signin.Record) interactiveRow {
	return interactiveRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
		r.ResultType, r.AuthenticationRequirement, r.ConditionalAccessStatus, r.Id}
}

func interactiveWideRowOf(r *signin.Record) interactiveWideRow {
	return interactiveWideRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
		r.ResultType, r.AuthenticationRequirement, r.ConditionalAccessStatus, r.AppDisplayName, r.CorrelationId,
		r.UniqueTokenIdentifier, r.Id}
}

func nonInteractiveRowOf(r *signin.Record) nonInteractiveRow {
	return nonInteractiveRow{r.TimeGenerated.UnixNano(), r.UserPrincipalName, r.IPAddress, r.Location,
		r.ResultType, r.AppDisplayName, r.CorrelationId, r.UniqueTokenIdentifier, r.Id}
}

// fullRows returns the writer of a streamed full non-interactive extract:
// with the modes' columns when one is on.
func (p *Pipeline) fullRows(w io.Writer) rowWriter {
	if p.cfg.Precision != nil {
		return newParquetRows(w, func(r *signin.Record) nonInteractivePrecisionRow {
			return nonInteractivePrecisionRow{nonInteractiveRowOf(r), precisionColumnsOf(r)}
		})
	}
	return newParquetRows(w, nonInteractiveRowOf)
}

// PrecisionSink is an AlertSink that records, on each alert, the mode and
// what it saw of each evidence row (an *alert.Writer).
type PrecisionSink interface {
	WriteResultsPrecision(ctx context.Context, rows []detect.Result, mode precision.Mode,
		features func(*detect.Result) (precision.Features, bool)) ([]alert.Stored, int, error)
}

// writeResults hands rows to the sink, with the mode's features when a
// mode is on and the sink records them.
func (p *Pipeline) writeResults(ctx context.Context, rows []detect.Result, out *Outcome) ([]alert.Stored, int, error) {
	if ps, ok := p.cfg.Alerts.(PrecisionSink); ok && out.prec != nil {
		return ps.WriteResultsPrecision(ctx, rows, out.prec.f.Mode, out.Features)
	}
	return p.cfg.Alerts.WriteResults(ctx, rows)
}
