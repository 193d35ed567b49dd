package alert

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
)

// WriteTable prints alerts and incidents for a person. The default fits
// 120 columns: the name (which repeats the user and IP), the severity
// (the rule's, the same for every alert: in the title line) and full ids
// are for --wide. Times are UTC, said in the headers; a span is a KQL
// timespan, as detect's AFTER column.
func WriteTable(out io.Writer, docs []Document, incidents []Incident, wide bool) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ALERTS (%d%s)\n", len(docs), severities(docs))
	if wide {
		fmt.Fprintln(tw, "START (UTC)\tEND (UTC)\tSEVERITY\tUSER\tIPS\tROWS\tINCIDENT ID\tALERT ID\tNAME")
	} else {
		fmt.Fprintln(tw, "START (UTC)\tSPAN\tUSER\tNON-INTERACTIVE IP\tROWS\tINCIDENT\tALERT")
	}
	for _, d := range docs {
		var users, ips []string
		for _, e := range d.Entities {
			switch e["Type"] {
			case "account":
				users = append(users, cmp.Or(e["FullName"], e["Name"]))
			case "ip":
				ips = append(ips, e["Address"])
			}
		}
		user, ip := dash(strings.Join(users, ",")), dash(strings.Join(ips, ","))
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", utcStamp(d.StartTime), utcStamp(d.EndTime), d.AlertSeverity,
				user, ip, d.ExtendedProperties.ResultCount, dash(d.IncidentId), d.SystemAlertId, d.DisplayName)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", utcMinute(d.StartTime), span(d.StartTime, d.EndTime),
			user, ip, d.ExtendedProperties.ResultCount, dash(shortID(d.IncidentId)), shortID(d.SystemAlertId))
	}
	fmt.Fprintf(tw, "\nINCIDENTS (%d)\n", len(incidents))
	if wide {
		fmt.Fprintln(tw, "FIRST (UTC)\tLAST (UTC)\tSEVERITY\tSTATUS\tALERTS\tINCIDENT ID\tTITLE")
	} else {
		fmt.Fprintln(tw, "FIRST (UTC)\tSPAN\tSTATUS\tALERTS\tINCIDENT\tTITLE")
	}
	for _, inc := range incidents {
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", utcStamp(inc.FirstActivityTime), utcStamp(inc.LastActivityTime),
				inc.Severity, inc.Status, len(inc.AlertIds), inc.IncidentId, inc.Title)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", utcMinute(inc.FirstActivityTime), span(inc.FirstActivityTime, inc.LastActivityTime),
			inc.Status, len(inc.AlertIds), shortID(inc.IncidentId), clip(inc.Title, 60))
	}
	if !wide && len(docs)+len(incidents) > 0 {
		fmt.Fprintln(tw, "\n(ids shortened, names left out: --wide shows them; alerts --format json has every field)")
	}
	return tw.Flush()
}

// severities is ", severity High" when every alert has the same one.
func severities(docs []Document) string {
	if len(docs) == 0 {
		return ""
	}
	for _, d := range docs[1:] {
		if d.AlertSeverity != docs[0].AlertSeverity {
			return ""
		}
	}
	return ", severity " + docs[0].AlertSeverity
}

func utcStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// utcMinute is utcStamp to the minute, for the narrow tables (the span
// and --wide have the seconds).
func utcMinute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

// span is the time from a to b as a KQL timespan (d.hh:mm:ss), whole seconds.
func span(a, b time.Time) string {
	return detect.FormatTimespan(b.Sub(a).Truncate(time.Second))
}

// shortID is an id's first 8 characters: unique enough to tell the rows of
// one listing apart, and what the wide table's full id starts with.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dash(s string) string { return cmp.Or(s, "-") }
