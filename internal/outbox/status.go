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
// revisions in each state (a pending revision of a held target counts as
// held), the held targets, then one line per sink and alert for its latest
// revision (and for any older revision not delivered).
func WriteStatus(out io.Writer, entries []*Entry, holds ...Hold) error {
	slices.SortFunc(entries, func(a, b *Entry) int {
		return cmp.Or(strings.Compare(a.Sink, b.Sink), strings.Compare(a.AlertId, b.AlertId), a.Revision-b.Revision)
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	counts := map[string]map[State]int{}
	config := map[string]string{}
	var sinks []string
	for _, e := range entries {
		if counts[e.Sink] == nil {
			counts[e.Sink] = map[State]int{}
			sinks = append(sinks, e.Sink)
		}
		st := e.State
		if e.Held {
			st = "held"
		}
		counts[e.Sink][st]++
		if e.State == Pending && e.Config {
			config[e.Sink] = e.LastError
		}
	}
	fmt.Fprintf(tw, "DELIVERY (%d revisions)\n", len(entries))
	fmt.Fprintln(tw, "SINK\tDELIVERED\tPENDING\tFAILED\tHELD")
	for _, s := range sinks {
		c := counts[s]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s, c[Delivered], c[Pending], c[Failed], c["held"])
	}
	for _, h := range holds {
		fmt.Fprintf(tw, "held: %s answered 410 Gone (since %s); one revision is sent as a probe every hour and delivery resumes when it is accepted; `tokenpivot alerts --redeliver` resumes now, a new target resumes at once (next probe %s)\n",
			h.Sink, stamp(h.Since), stamp(h.NextProbe))
	}
	for _, s := range sinks {
		if msg, ok := config[s]; ok {
			fmt.Fprintf(tw, "configuration error: %s: %s (retried on the schedule; fix the setting)\n", s, cut(msg, 200))
		}
	}
	fmt.Fprintln(tw, "\nSINK\tALERT ID\tREV\tSTATE\tATTEMPTS\tWHEN\tLAST ERROR")
	for i, e := range entries {
		latest := i+1 == len(entries) || entries[i+1].Sink != e.Sink || entries[i+1].AlertId != e.AlertId
		if !latest && e.State == Delivered {
			continue
		}
		when := "next " + stamp(e.NextAttempt)
		state := string(e.State)
		switch {
		case e.State == Delivered:
			when = "at " + stamp(e.Delivered)
		case e.State == Failed:
			when = "last " + stamp(e.LastAttempt)
		case e.Held:
			state, when = "held", "probed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", e.Sink, e.AlertId, e.Revision, state, e.Attempts, when, cmp.Or(cut(e.LastError, 160), "-"))
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
