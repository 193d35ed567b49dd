package outbox

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteStatus prints delivery status for a person: per sink, the count of
// revisions in each state, then one line per sink and alert for its latest
// revision (and for any older revision not delivered).
func WriteStatus(out io.Writer, entries []*Entry) error {
	slices.SortFunc(entries, func(a, b *Entry) int {
		return cmp.Or(strings.Compare(a.Sink, b.Sink), strings.Compare(a.AlertId, b.AlertId), a.Revision-b.Revision)
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	counts := map[string]map[State]int{}
	var sinks []string
	for _, e := range entries {
		if counts[e.Sink] == nil {
			counts[e.Sink] = map[State]int{}
			sinks = append(sinks, e.Sink)
		}
		counts[e.Sink][e.State]++
	}
	fmt.Fprintf(tw, "DELIVERY (%d revisions)\n", len(entries))
	fmt.Fprintln(tw, "SINK\tDELIVERED\tPENDING\tFAILED")
	for _, s := range sinks {
		c := counts[s]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", s, c[Delivered], c[Pending], c[Failed])
	}
	fmt.Fprintln(tw, "\nSINK\tALERT ID\tREV\tSTATE\tATTEMPTS\tWHEN\tLAST ERROR")
	for i, e := range entries {
		latest := i+1 == len(entries) || entries[i+1].Sink != e.Sink || entries[i+1].AlertId != e.AlertId
		if !latest && e.State == Delivered {
			continue
		}
		when := "next " + stamp(e.NextAttempt)
		switch e.State {
		case Delivered:
			when = "at " + stamp(e.Delivered)
		case Failed:
			when = "last " + stamp(e.LastAttempt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", e.Sink, e.AlertId, e.Revision, e.State, e.Attempts, when, cmp.Or(cut(e.LastError, 160), "-"))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
