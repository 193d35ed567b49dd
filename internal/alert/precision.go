package alert

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// Precision records, on an alert a precision mode filtered, the mode and,
// for each evidence row (by its source rows' Ids, as ResultIds), what the
// mode saw of the pair when it kept it: same session or not, the two ASNs,
// hosting or not, and the tests it could not run. Nil (omitted) in exact
// mode. Like every field, a function of the evidence rows: merged by pair,
// kept for the rows Results keeps, in Id order.
type Precision struct {
	Mode string         `json:"Mode"`
	Rows []PrecisionRow `json:"Rows"`
}

// PrecisionRow is what the mode saw of one evidence row's pair.
type PrecisionRow struct {
	InteractiveId    string `json:"InteractiveId"`
	NonInteractiveId string `json:"NonInteractiveId"`
	precision.Features
}

func comparePrecisionRow(a, b PrecisionRow) int {
	return cmp.Or(strings.Compare(a.InteractiveId, b.InteractiveId), strings.Compare(a.NonInteractiveId, b.NonInteractiveId))
}

// WriteResultsPrecision is WriteResults for rows a precision mode kept:
// features gives what the mode saw of each row (false: nothing recorded).
func (w *Writer) WriteResultsPrecision(ctx context.Context, rows []detect.Result, mode precision.Mode,
	features func(*detect.Result) (precision.Features, bool)) ([]Stored, int, error) {
	if w.Rule == nil || !mode.On() {
		return w.WriteResults(ctx, rows)
	}
	docs := Group(w.Rule, rows, w.Rule.EventGrouping == rule.AlertPerResult)
	for i := range docs {
		p := &Precision{Mode: mode.String()}
		for k := range docs[i].Results {
			r := &docs[i].Results[k]
			if f, ok := features(r); ok {
				p.Rows = append(p.Rows, PrecisionRow{r.InteractiveId, r.NonInteractiveId, f})
			}
		}
		slices.SortFunc(p.Rows, comparePrecisionRow)
		docs[i].Precision = p
	}
	return w.WriteStored(ctx, docs)
}

// mergePrecision merges other's precision record into d's, keeping the
// rows of d's evidence (after Merge set it), and reports a change.
func (d *Document) mergePrecision(other *Precision) bool {
	if other == nil {
		return false
	}
	if d.Precision == nil {
		d.Precision = &Precision{Mode: other.Mode}
	}
	keep := make(map[[2]string]bool, len(d.Results))
	for _, r := range d.Results {
		keep[[2]string{r.InteractiveId, r.NonInteractiveId}] = true
	}
	rows := slices.Clone(d.Precision.Rows)
	changed := false
	for _, r := range other.Rows {
		if _, found := slices.BinarySearchFunc(rows, r, comparePrecisionRow); !found && keep[[2]string{r.InteractiveId, r.NonInteractiveId}] {
			rows = append(rows, r)
			slices.SortFunc(rows, comparePrecisionRow)
			changed = true
		}
	}
	// Rows whose evidence a truncation dropped go too.
	rows = slices.DeleteFunc(rows, func(r PrecisionRow) bool { return !keep[[2]string{r.InteractiveId, r.NonInteractiveId}] })
	// A new record: d's may be shared with a copy (a caller's batch).
	d.Precision = &Precision{Mode: d.Precision.Mode, Rows: rows}
	return changed
}
