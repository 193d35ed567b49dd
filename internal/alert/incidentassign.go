package alert

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// assign gives every alert without an incident its incident id (not yet
// committed: see Write). With grouping, the id comes from the grouping
// key's index; without, each alert has an incident of its own.
func (w *Writer) assign(ctx context.Context, b *batch, ps []*pending) error {
	g := w.Rule.IncidentConfiguration.Grouping
	byKey := map[string][]*pending{}
	var keys []string
	for _, p := range ps {
		if p.doc.IncidentId != "" {
			continue
		}
		key := GroupingKey(g, p.doc)
		if !g.Enabled {
			p.doc.IncidentId, p.changed = hashID(w.Rule.ID, "incident", key), true
			continue
		}
		if _, ok := byKey[key]; !ok {
			keys = append(keys, key)
		}
		byKey[key] = append(byKey[key], p)
	}
	slices.Sort(keys)
	return w.each(ctx, len(keys), func(ctx context.Context, i int) error {
		return w.assignKey(ctx, b, keys[i], byKey[keys[i]])
	})
}

// assignKey claims incidents for the alerts of one grouping key in one
// read-modify-write of its index.
func (w *Writer) assignKey(ctx context.Context, b *batch, key string, ps []*pending) error {
	g := w.Rule.IncidentConfiguration.Grouping
	// Time order, so that the result is Sentinel's grouping (see incidentIndex).
	slices.SortFunc(ps, func(a, b *pending) int {
		return cmp.Or(a.doc.StartTime.Compare(b.doc.StartTime), strings.Compare(a.doc.SystemAlertId, b.doc.SystemAlertId))
	})
	idxName := indexName(w.Rule.ID, key)
	cache := w.states().indexes
	fresh := false // after a conflict, read what the other writer left
	for range maxAttempts {
		base := incidentIndex{RuleId: w.Rule.ID, GroupingKey: key}
		cond := store.Condition{IfNoneMatch: "*"}
		var data []byte
		var props store.Properties
		var err error
		if kept, etag, absent, ok := cache.get(ctx, w, w.IncidentsContainer, idxName); ok && !fresh {
			data, props.ETag = kept, etag
			if absent {
				err = store.ErrNotExist
			}
		} else {
			data, props, err = w.read(ctx, w.IncidentsContainer, idxName)
		}
		fresh = true
		switch {
		case errors.Is(err, store.ErrNotExist):
		case err != nil:
			return err
		default:
			if perr := json.Unmarshal(data, &base); perr != nil {
				perr = fmt.Errorf("incident index %s: %v", w.Blobs.URL(w.IncidentsContainer, idxName), perr)
				if err := w.setAside(ctx, w.IncidentsContainer, idxName, props.ETag, perr); err != nil {
					return err
				}
				// Rebuilt from this call's alerts. New incident ids are
				// salted with the bad version's ETag, so they cannot collide
				// with the incidents the lost index had opened.
				base = incidentIndex{RuleId: w.Rule.ID, GroupingKey: key, Salt: props.ETag}
				data = nil
			} else {
				cond = store.Condition{IfMatch: props.ETag}
			}
		}
		var idx incidentIndex
		var ids []string
		for {
			idx, ids = base.claim(ps, g.LookbackDuration, w.cap(), w.Rule.ID)
			if g.ReopenClosedIncident {
				break
			}
			// A closed incident not to be reopened is retired in the index
			// and its alerts go elsewhere. Only incidents that existed
			// before this claim can be closed.
			retired := false
			// The incidents to check, read in parallel: each read waits on
			// storage latency, and a blob's alerts join dozens of them.
			var check []string
			for i, e := range idx.Incidents {
				if i < len(base.Incidents) && !base.Incidents[i].Closed && len(e.Claims) > 0 {
					check = append(check, e.IncidentId)
				}
			}
			if err := w.each(ctx, len(check), func(ctx context.Context, i int) error {
				_, err := w.cachedIncident(ctx, b, check[i])
				return err
			}); err != nil {
				return err
			}
			for i, e := range idx.Incidents {
				if i >= len(base.Incidents) || base.Incidents[i].Closed || len(e.Claims) == 0 {
					continue
				}
				inc, err := w.cachedIncident(ctx, b, e.IncidentId)
				if err != nil {
					return err
				}
				if inc != nil && inc.Status == IncidentClosed {
					base.Incidents[i].Closed, retired = true, true
				}
			}
			if !retired {
				break
			}
		}
		out, err := marshal(idx, "")
		if err != nil {
			return err
		}
		if !bytes.Equal(out, data) {
			written, props, err := w.writeDoc(ctx, w.IncidentsContainer, idxName, idx, cond)
			if errors.Is(err, store.ErrConditionNotMet) {
				cache.drop(idxName)
				continue
			} else if err != nil {
				return fmt.Errorf("incident index %s: %w", w.Blobs.URL(w.IncidentsContainer, idxName), err)
			}
			cache.put(idxName, written, props.ETag)
		} else if data != nil {
			cache.put(idxName, data, props.ETag)
		}
		for i, p := range ps {
			p.doc.IncidentId, p.changed = ids[i], true
		}
		// The incidents this update opened do not exist yet: the update
		// step creates them without reading first.
		b.mu.Lock()
		for _, e := range idx.Incidents[len(base.Incidents):] {
			if _, ok := b.incs[e.IncidentId]; !ok {
				b.incs[e.IncidentId] = readIncident{}
			}
		}
		b.mu.Unlock()
		return nil
	}
	return fmt.Errorf("incident index %s: gave up after %d conflicting updates", idxName, maxAttempts)
}

// cachedIncident reads incident id once per Write call (nil if absent or
// unreadable: the update step deals with it).
func (w *Writer) cachedIncident(ctx context.Context, b *batch, id string) (*Incident, error) {
	b.mu.Lock()
	c, ok := b.incs[id]
	b.mu.Unlock()
	if ok {
		return c.inc, nil
	}
	data, props, err := w.read(ctx, w.IncidentsContainer, IncidentBlobName(id))
	switch {
	case errors.Is(err, store.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		inc := new(Incident)
		if json.Unmarshal(data, inc) != nil {
			return nil, nil
		}
		c = readIncident{inc: inc, etag: props.ETag}
	}
	b.mu.Lock()
	b.incs[id] = c
	b.mu.Unlock()
	return c.inc, nil
}

// updateIncidents attaches every alert of the call to the incident its
// stored IncidentId names: one read-modify-write per incident.
func (w *Writer) updateIncidents(ctx context.Context, b *batch, ps []*pending) error {
	byID := map[string][]*Document{}
	var ids []string
	for _, p := range ps {
		id := p.doc.IncidentId
		if id == "" {
			continue
		}
		if _, ok := byID[id]; !ok {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], &p.doc)
	}
	slices.Sort(ids)
	return w.each(ctx, len(ids), func(ctx context.Context, i int) error {
		return w.updateIncident(ctx, b, ids[i], byID[ids[i]])
	})
}

// updateIncident adds alerts to incident id, creating it if absent
// (If-None-Match) or updating it (If-Match), retried on conflict. The
// alerts are committed to it already: a closed incident is reopened
// (Active) when the rule says so; else it takes them as it is (only a
// close racing this call gets here, see assignKey).
func (w *Writer) updateIncident(ctx context.Context, b *batch, id string, alerts []*Document) error {
	g := w.Rule.IncidentConfiguration.Grouping
	name := IncidentBlobName(id)
	slices.SortFunc(alerts, func(a, b *Document) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	b.mu.Lock()
	c, cached := b.incs[id]
	b.mu.Unlock()
	cache := w.states().incidents
	if !cached {
		// An incident this Writer wrote: updated If-Match without a read.
		if data, etag, _, ok := cache.get(ctx, w, w.IncidentsContainer, name); ok && data != nil {
			if inc := new(Incident); json.Unmarshal(data, inc) == nil {
				c, cached = readIncident{inc: inc, etag: etag}, true
			}
		}
	}
	for range maxAttempts {
		if !cached {
			c = readIncident{}
			data, props, err := w.read(ctx, w.IncidentsContainer, name)
			switch {
			case errors.Is(err, store.ErrNotExist):
			case err != nil:
				return fmt.Errorf("incident %s: %w", w.Blobs.URL(w.IncidentsContainer, name), err)
			default:
				inc := new(Incident)
				if perr := json.Unmarshal(data, inc); perr != nil {
					perr = fmt.Errorf("incident %s: %v", w.Blobs.URL(w.IncidentsContainer, name), perr)
					if err := w.setAside(ctx, w.IncidentsContainer, name, props.ETag, perr); err != nil {
						return err
					}
					continue // rebuilt from this call's alerts
				}
				c = readIncident{inc: inc, etag: props.ETag}
			}
		}
		cached = false
		inc := c.inc
		cond := store.Condition{IfMatch: c.etag}
		if inc == nil {
			inc = newIncident(w.Rule, id, GroupingKey(g, *alerts[0]), *alerts[0])
			cond = store.Condition{IfNoneMatch: "*"}
		}
		reopened := false
		if inc.Status == IncidentClosed && (!g.Enabled || g.ReopenClosedIncident) &&
			slices.ContainsFunc(alerts, func(a *Document) bool { return !slices.Contains(inc.AlertIds, a.SystemAlertId) }) {
			inc.Status, reopened = IncidentActive, true
		}
		if !inc.addAll(alerts) && !reopened && cond.IfMatch != "" {
			return nil
		}
		written, props, err := w.writeDoc(ctx, w.IncidentsContainer, name, inc, cond)
		if errors.Is(err, store.ErrConditionNotMet) {
			cache.drop(name)
			continue
		} else if err != nil {
			return fmt.Errorf("incident %s: %w", w.Blobs.URL(w.IncidentsContainer, name), err)
		}
		cache.put(name, written, props.ETag)
		return nil
	}
	return fmt.Errorf("incident %s: gave up after %d conflicting updates", id, maxAttempts)
}
