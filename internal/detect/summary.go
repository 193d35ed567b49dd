package detect

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tokenpivot/tokenpivot/internal/kql"
)

// Summarized is the result of a rule with a summarize after the join
// (kql.Plan.Summary): its own columns and rows. Its rows carry no pair:
// a summarized row stands for a group of pairs, and which pairs is not
// kept (the rule's text does not keep them either, unless it asks with
// make_set/make_list of an Id column).
type Summarized struct {
	Names []string
	Rows  [][]kql.Value
	// Inexact counts the dcount values above kql.KustoExactDcount, where
	// Kusto's estimate may differ from this exact count.
	Inexact int
}

// Summarize runs a plan's summarize over a run's result rows (the pairs,
// sorted as Sort leaves them: make_list and make_set list values in that
// order, and arg_min/arg_max keep the first row of a tie).
func Summarize(p *kql.Plan, rows []Result) Summarized {
	s := p.Summary
	extraKinds := make([]kql.Kind, len(p.Extra))
	for k, c := range p.Extra {
		extraKinds[k] = c.Node.Type
	}
	pre := make([][]kql.Value, len(rows))
	for k := range rows {
		r := &rows[k]
		v := make([]kql.Value, 0, len(columns)+len(p.Extra))
		v = append(v,
			kql.Datetime(r.NISignInTime), kql.Datetime(r.InteractiveTime),
			kql.Str(r.UserPrincipalName), kql.Str(r.AppDisplayName), kql.Str(r.NIIPAddress), kql.Str(r.NICountry),
			kql.Str(r.InteractiveIP), kql.Str(r.InteractiveCountry), kql.Str(r.CorrelationId), kql.Str(r.UniqueTokenIdentifier),
			kql.Timespan(r.TimeSinceInteractive))
		for j, t := range r.Extra.Values() {
			v = append(v, kql.ParseText(extraKinds[j], t))
		}
		pre[k] = v
	}
	out, inexact := s.Run(pre)
	return Summarized{Names: s.Names(), Rows: out, Inexact: inexact}
}

// jsonValue is v as a JSON value: numbers and bools as such, a list as an
// array, everything else as its text.
func jsonValue(v kql.Value) any {
	switch v.Kind {
	case kql.KNull:
		return nil
	case kql.KBool:
		return v.B
	case kql.KLong:
		return v.I
	case kql.KReal:
		return v.F
	case kql.KDynamic:
		if v.List != nil || v.S == "" {
			out := make([]any, len(v.List))
			for k, e := range v.List {
				out[k] = jsonValue(e)
			}
			return out
		}
		if json.Valid([]byte(v.S)) {
			return json.RawMessage(v.S)
		}
	}
	return v.Text()
}

// WriteSummarized writes a summarized result in a --format: jsonl (one
// object a row, its columns in order), csv (a header, then each value's
// text) or table.
func WriteSummarized(w io.Writer, format string, s Summarized) error {
	switch format {
	case "jsonl":
		for _, row := range s.Rows {
			b := []byte{'{'}
			for k, v := range row {
				if k > 0 {
					b = append(b, ',')
				}
				name, err := json.Marshal(s.Names[k])
				if err != nil {
					return err
				}
				b = append(append(b, name...), ':')
				j, err := json.Marshal(jsonValue(v))
				if err != nil {
					return err
				}
				b = append(b, j...)
			}
			b = append(b, '}', '\n')
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(s.Names); err != nil {
			return err
		}
		for _, row := range s.Rows {
			if err := cw.Write(texts(row)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "table":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		writeRow := func(cells []string) {
			for k, c := range cells {
				if k > 0 {
					fmt.Fprint(tw, "\t")
				}
				fmt.Fprint(tw, c)
			}
			fmt.Fprint(tw, "\n")
		}
		writeRow(s.Names)
		for _, row := range s.Rows {
			writeRow(texts(row))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%d %s\n", len(s.Rows), plural(len(s.Rows), "row", "rows"))
		return err
	}
	return fmt.Errorf("format %q: want jsonl, csv or table", format)
}

func texts(row []kql.Value) []string {
	out := make([]string, len(row))
	for k, v := range row {
		out[k] = v.Text()
	}
	return out
}
