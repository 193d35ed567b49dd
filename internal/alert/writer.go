package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// maxAttempts bounds the read-modify-write loops on one blob. Every
// conflict means another writer succeeded, so this is only reached under
// pathological contention.
const maxAttempts = 100

// BlobName is where an alert lives in the alerts container:
// <yyyy>/<mm>/<dd>/<SystemAlertId>.json, dated by its StartTime (the
// interactive sign-in, which is part of the alert's identity).
func BlobName(d Document) string {
	return d.StartTime.UTC().Format("2006/01/02/") + d.SystemAlertId + ".json"
}

// Writer stores alert documents and files them into incidents. The
// containers must exist (see store.Store.EnsureContainer).
type Writer struct {
	Store              store.Store
	AlertsContainer    string
	IncidentsContainer string
	Rule               *rule.Rule
}

// Write stores each alert: created if absent, else merged into the stored
// one (If-Match, retried on conflict); an alert whose stored form already
// holds everything is not rewritten. When the rule creates incidents, each
// new alert is attached to exactly one incident first. It returns how many
// alert blobs it created or changed.
func (w *Writer) Write(ctx context.Context, docs []Document) (written int, err error) {
	if w.Rule == nil {
		return 0, errors.New("alert: Writer has no Rule")
	}
	for _, d := range docs {
		changed, err := w.writeOne(ctx, d)
		if err != nil {
			return written, fmt.Errorf("alert %s: %w", w.Store.URL(w.AlertsContainer, BlobName(d)), err)
		}
		if changed {
			written++
		}
	}
	return written, nil
}

func (w *Writer) incidents() bool {
	return w.Rule.IncidentConfiguration.CreateIncident && w.IncidentsContainer != ""
}

func (w *Writer) writeOne(ctx context.Context, d Document) (bool, error) {
	name := BlobName(d)
	for range maxAttempts {
		doc, cond := d, store.Condition{IfNoneMatch: "*"}
		changed := true
		data, props, err := w.Store.Read(ctx, w.AlertsContainer, name)
		switch {
		case errors.Is(err, store.ErrNotExist):
		case err != nil:
			return false, err
		default:
			var stored Document
			if err := json.Unmarshal(data, &stored); err != nil {
				return false, fmt.Errorf("stored alert is not valid: %v", err)
			}
			changed = stored.Merge(d)
			doc, cond = stored, store.Condition{IfMatch: props.ETag}
		}
		if w.incidents() {
			switch {
			case doc.IncidentId == "":
				if doc.IncidentId, err = w.attach(ctx, doc); err != nil {
					return false, err
				}
				changed = true
			case changed:
				// New evidence: refresh the incident's times and entities.
				if _, err := w.addToIncident(ctx, doc.IncidentId, GroupingKey(w.Rule.IncidentConfiguration.Grouping, doc), doc, true); err != nil {
					return false, err
				}
			}
		}
		if !changed {
			return false, nil
		}
		out, err := marshal(doc, "  ")
		if err != nil {
			return false, err
		}
		if _, err := w.Store.Write(ctx, w.AlertsContainer, name, out, cond); errors.Is(err, store.ErrConditionNotMet) {
			continue // another writer got there first: merge into theirs
		} else if err != nil {
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("gave up after %d conflicting updates", maxAttempts)
}

// attach files alert a into its incident and returns the incident's id.
// With grouping, the incident comes from the grouping key's index blob (see
// incidentIndex), updated with ETag concurrency; without, each alert has an
// incident of its own.
func (w *Writer) attach(ctx context.Context, a Document) (string, error) {
	g := w.Rule.IncidentConfiguration.Grouping
	key := GroupingKey(g, a)
	if !g.Enabled {
		id := hashID(w.Rule.ID, "incident", key)
		_, err := w.addToIncident(ctx, id, key, a, true)
		return id, err
	}
	idxName := indexName(w.Rule.ID, key)
	t := a.StartTime.UTC()
	for range maxAttempts {
		idx := incidentIndex{RuleId: w.Rule.ID, GroupingKey: key}
		cond := store.Condition{IfNoneMatch: "*"}
		data, props, err := w.Store.Read(ctx, w.IncidentsContainer, idxName)
		switch {
		case errors.Is(err, store.ErrNotExist):
		case err != nil:
			return "", err
		default:
			if err := json.Unmarshal(data, &idx); err != nil {
				return "", fmt.Errorf("incident index %s is not valid: %v", w.Store.URL(w.IncidentsContainer, idxName), err)
			}
			cond = store.Condition{IfMatch: props.ETag}
		}
		i := idx.join(t, g.LookbackDuration)
		write := true
		switch {
		case i < 0:
			// A new incident. Its id also counts the earlier ones, so an
			// incident started after a closed one at the same time differs.
			idx.Incidents = append(idx.Incidents, indexEntry{
				IncidentId: hashID(w.Rule.ID, "incident", key, FormatTime(t), strconv.Itoa(len(idx.Incidents))),
				First:      t,
				Last:       t,
			})
			i = len(idx.Incidents) - 1
		case t.Before(idx.Incidents[i].First):
			idx.Incidents[i].First = t
		case t.After(idx.Incidents[i].Last):
			idx.Incidents[i].Last = t
		default:
			write = false
		}
		if write {
			if err := w.writeJSON(ctx, idxName, idx, cond); errors.Is(err, store.ErrConditionNotMet) {
				continue
			} else if err != nil {
				return "", err
			}
		}
		id := idx.Incidents[i].IncidentId
		closed, err := w.addToIncident(ctx, id, key, a, g.ReopenClosedIncident)
		if err != nil {
			return "", err
		}
		if !closed {
			return id, nil
		}
		// Closed and not to be reopened: retire it, then look again.
		if err := w.closeWindow(ctx, idxName, id); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("incident index %s: gave up after %d conflicting updates", idxName, maxAttempts)
}

// closeWindow marks an index entry closed (If-Match, retried).
func (w *Writer) closeWindow(ctx context.Context, idxName, id string) error {
	for range maxAttempts {
		data, props, err := w.Store.Read(ctx, w.IncidentsContainer, idxName)
		if err != nil {
			return err
		}
		var idx incidentIndex
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("incident index %s is not valid: %v", w.Store.URL(w.IncidentsContainer, idxName), err)
		}
		i := slices.IndexFunc(idx.Incidents, func(e indexEntry) bool { return e.IncidentId == id })
		if i < 0 || idx.Incidents[i].Closed {
			return nil
		}
		idx.Incidents[i].Closed = true
		if err := w.writeJSON(ctx, idxName, idx, store.Condition{IfMatch: props.ETag}); !errors.Is(err, store.ErrConditionNotMet) {
			return err
		}
	}
	return fmt.Errorf("incident index %s: gave up after %d conflicting updates", idxName, maxAttempts)
}

// addToIncident attaches alert a to incident id, creating it if absent
// (If-None-Match) or updating it (If-Match), retried on conflict. A closed
// incident that does not hold a yet is reopened (status Active) when reopen
// is set; otherwise it is left alone and closed is true.
func (w *Writer) addToIncident(ctx context.Context, id, key string, a Document, reopen bool) (closed bool, err error) {
	name := IncidentBlobName(id)
	for range maxAttempts {
		var inc *Incident
		cond := store.Condition{IfNoneMatch: "*"}
		data, props, err := w.Store.Read(ctx, w.IncidentsContainer, name)
		switch {
		case errors.Is(err, store.ErrNotExist):
			inc = newIncident(w.Rule, id, key, a)
		case err != nil:
			return false, err
		default:
			inc = new(Incident)
			if err := json.Unmarshal(data, inc); err != nil {
				return false, fmt.Errorf("incident %s is not valid: %v", w.Store.URL(w.IncidentsContainer, name), err)
			}
			cond = store.Condition{IfMatch: props.ETag}
		}
		if inc.Status == IncidentClosed && !slices.Contains(inc.AlertIds, a.SystemAlertId) {
			if !reopen {
				return true, nil
			}
			inc.Status = IncidentActive
		}
		if !inc.add(a) && cond.IfMatch != "" {
			return false, nil
		}
		if err := w.writeJSON(ctx, name, inc, cond); errors.Is(err, store.ErrConditionNotMet) {
			continue
		} else if err != nil {
			return false, err
		}
		return false, nil
	}
	return false, fmt.Errorf("incident %s: gave up after %d conflicting updates", id, maxAttempts)
}

func (w *Writer) writeJSON(ctx context.Context, name string, v any, cond store.Condition) error {
	data, err := marshal(v, "  ")
	if err != nil {
		return err
	}
	_, err = w.Store.Write(ctx, w.IncidentsContainer, name, data, cond)
	return err
}

// List reads every alert in alertsContainer and every incident in
// incidentsContainer ("" to skip incidents), alerts ordered by StartTime
// and incidents by FirstActivityTime. A blob that does not parse is an
// error naming it.
func List(ctx context.Context, s store.Store, alertsContainer, incidentsContainer string) ([]Document, []Incident, error) {
	var docs []Document
	err := s.List(ctx, alertsContainer, "", func(p store.Properties) error {
		if !strings.HasSuffix(p.Name, ".json") {
			return nil
		}
		var d Document
		return readJSON(ctx, s, alertsContainer, p.Name, &d, func() { docs = append(docs, d) })
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(docs, func(a, b Document) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.SystemAlertId, b.SystemAlertId)
	})
	var incs []Incident
	if incidentsContainer != "" {
		err = s.List(ctx, incidentsContainer, "incidents/", func(p store.Properties) error {
			var inc Incident
			return readJSON(ctx, s, incidentsContainer, p.Name, &inc, func() { incs = append(incs, inc) })
		})
		if err != nil {
			return nil, nil, err
		}
		slices.SortFunc(incs, compareIncidents)
	}
	return docs, incs, nil
}

// readJSON reads one blob into v and calls keep; a blob deleted since the
// listing is skipped.
func readJSON(ctx context.Context, s store.Store, container, name string, v any, keep func()) error {
	data, _, err := s.Read(ctx, container, name)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", s.URL(container, name), err)
	}
	keep()
	return nil
}

// WriteTable prints alerts and incidents for a person: one line each.
func WriteTable(out io.Writer, docs []Document, incidents []Incident) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ALERTS (%d)\n", len(docs))
	fmt.Fprintln(tw, "START\tEND\tSEVERITY\tUSER\tIPS\tROWS\tINCIDENT\tALERT ID\tNAME")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			tableTime(d.StartTime), tableTime(d.EndTime), d.AlertSeverity, dash(strings.Join(users, ",")),
			dash(strings.Join(ips, ",")), len(d.Results), dash(short(d.IncidentId)), d.SystemAlertId, d.DisplayName)
	}
	fmt.Fprintf(tw, "\nINCIDENTS (%d)\n", len(incidents))
	fmt.Fprintln(tw, "FIRST\tLAST\tSEVERITY\tSTATUS\tALERTS\tINCIDENT ID\tTITLE")
	for _, inc := range incidents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", tableTime(inc.FirstActivityTime), tableTime(inc.LastActivityTime),
			inc.Severity, inc.Status, len(inc.AlertIds), inc.IncidentId, inc.Title)
	}
	return tw.Flush()
}

func tableTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func dash(s string) string { return cmp.Or(s, "-") }
