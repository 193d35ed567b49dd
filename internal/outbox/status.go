package outbox

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// StatusWidth is the width the default status fits: the alerts tables'
// (alerts, process) fit it too; --wide prints everything, however wide.
const StatusWidth = 120

// WriteStatus prints delivery status for a person: per sink, the count of
// revisions in each state (a pending revision of a held target counts as
// held), the held targets, then one line per sink and alert for its latest
// revision (and for any older revision not delivered). By default it fits
// StatusWidth columns: alert ids shortened to their first 8 characters (what
// the alerts table shows), each last error cut to what the line has left, the
// explanations wrapped; wide prints full ids and full errors.
func WriteStatus(out io.Writer, entries []*Entry, wide bool, holds ...Hold) error {
	slices.SortFunc(entries, func(a, b *Entry) int {
		return cmp.Or(strings.Compare(a.Sink, b.Sink), strings.Compare(a.AlertId, b.AlertId), a.Revision-b.Revision)
	})
	var b strings.Builder
	sinks, config, err := writeSinkCounts(&b, entries)
	if err != nil {
		return err
	}
	// Explanations are prose: wrapped in either mode, so --wide changes only
	// what is cut (the configuration error's message), never the layout.
	for _, h := range holds {
		wrap(&b, fmt.Sprintf("held: %s answered 410 Gone (since %s UTC; next probe %s UTC): one revision is sent as a probe every hour and delivery resumes when it is accepted; `tokenpivot alerts --redeliver` resumes now, a new target resumes at once",
			h.Sink, stamp(h.Since), stamp(h.NextProbe)))
	}
	for _, s := range sinks {
		if msg, ok := config[s]; ok {
			if !wide {
				msg = cut(msg, 200)
			}
			wrap(&b, fmt.Sprintf("configuration error: %s: %s (retried on the schedule; fix the setting)", s, msg))
		}
	}
	rows, cutIDs := statusRows(entries, wide)
	cutErrors := writeRows(&b, rows, wide)
	switch {
	case cutIDs && cutErrors:
		b.WriteString("(ids shortened, errors cut: --wide shows them)\n")
	case cutIDs:
		b.WriteString("(ids shortened: --wide shows them)\n")
	case cutErrors:
		b.WriteString("(errors cut: --wide shows them)\n")
	}
	_, err = io.WriteString(out, b.String())
	return err
}

// writeSinkCounts writes the table of each sink's revisions by state, and
// returns the sinks in order and the configuration error each is retrying
// on, if any.
func writeSinkCounts(b *strings.Builder, entries []*Entry) (sinks []string, config map[string]string, err error) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	counts := map[string]map[State]int{}
	config = map[string]string{}
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
	return sinks, config, tw.Flush()
}

// statusRows are the lines of the revision table, a header first: per sink
// and alert its latest revision, and any older one not delivered. Unless
// wide, ids are shortened (cutIDs says whether any was).
func statusRows(entries []*Entry, wide bool) (rows [][]string, cutIDs bool) {
	rows = [][]string{{"SINK", "ALERT", "REV", "STATE", "TRIES", "WHEN (UTC)", "LAST ERROR"}}
	if wide {
		rows[0][1], rows[0][4] = "ALERT ID", "ATTEMPTS"
	}
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
		id := e.AlertId
		if !wide && len(id) > 8 {
			id, cutIDs = id[:8], true
		}
		rows = append(rows, []string{e.Sink, id, fmt.Sprint(e.Revision), state, fmt.Sprint(e.Attempts), when, cmp.Or(e.LastError, "-")})
	}
	return rows, cutIDs
}

// writeRows writes the revision table: the columns before LAST ERROR are
// padded as tabwriter would; the error gets what is left of StatusWidth
// (never less than 24 characters), cut in the middle unless wide
// (cutErrors says whether any was).
func writeRows(b *strings.Builder, rows [][]string, wide bool) (cutErrors bool) {
	widths := make([]int, len(rows[0])-1)
	for _, r := range rows {
		for c := range widths {
			widths[c] = max(widths[c], utf8.RuneCountInString(r[c]))
		}
	}
	room := StatusWidth
	for _, w := range widths {
		room -= w + 2
	}
	room = max(room, 24)
	b.WriteString("\n")
	for _, r := range rows {
		for c, w := range widths {
			fmt.Fprintf(b, "%-*s  ", w, r[c])
		}
		last := r[len(r)-1]
		if r := []rune(last); !wide && len(r) > room {
			// Cut from the middle: a wrapped Go error names the operation
			// first and the cause (refused, 403, timeout) last.
			head := room / 3
			last, cutErrors = string(r[:head])+"…"+string(r[len(r)-(room-head-1):]), true
		}
		b.WriteString(last + "\n")
	}
	return cutErrors
}

// wrap writes text to b in lines of at most StatusWidth columns, broken at
// spaces (a word longer than a line stays whole), later lines indented.
func wrap(b *strings.Builder, text string) {
	const indent = "  "
	line := 0
	for i, w := range strings.Fields(text) {
		n := utf8.RuneCountInString(w)
		switch {
		case i == 0:
		case line+1+n > StatusWidth:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += n
	}
	b.WriteString("\n")
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
