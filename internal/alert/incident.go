package alert

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// Incident statuses, as in Sentinel's SecurityIncident.
const (
	IncidentNew    = "New"
	IncidentActive = "Active"
	IncidentClosed = "Closed"
)

// Incident is a group of alerts, shaped like a row of Sentinel's
// SecurityIncident table. A person (or a tool) closes it by setting Status
// to "Closed"; tokenpivot then reopens it or starts a new one, as the
// rule's reopenClosedIncident says.
type Incident struct {
	IncidentId     string   `json:"IncidentId"`
	IncidentName   string   `json:"IncidentName"` // the same GUID, as Sentinel names incidents
	Title          string   `json:"Title"`
	Description    string   `json:"Description"`
	Severity       string   `json:"Severity"` // the highest of its alerts
	Status         string   `json:"Status"`
	Classification string   `json:"Classification"`
	Owner          Owner    `json:"Owner"`
	Labels         []string `json:"Labels"`
	ProviderName   string   `json:"ProviderName"`
	// FirstActivityTime and LastActivityTime span its alerts' StartTime and EndTime.
	FirstActivityTime time.Time `json:"FirstActivityTime"`
	LastActivityTime  time.Time `json:"LastActivityTime"`
	AlertIds          []string  `json:"AlertIds"`
	Entities          []Entity  `json:"Entities"`
	Tactics           []string  `json:"Tactics"`
	RuleId            string    `json:"RuleId"`
	RuleVersion       string    `json:"RuleVersion"`
	// GroupingKey is what its alerts share (per matchingMethod).
	GroupingKey string `json:"GroupingKey"`
}

// Owner is who works on an incident; empty until someone takes it.
type Owner struct {
	AssignedTo        string `json:"assignedTo"`
	Email             string `json:"email"`
	ObjectId          string `json:"objectId"`
	UserPrincipalName string `json:"userPrincipalName"`
}

// newIncident starts an incident for its first alert a.
func newIncident(r *rule.Rule, id, key string, a Document) *Incident {
	return &Incident{
		IncidentId:        id,
		IncidentName:      id,
		Title:             a.DisplayName,
		Description:       strings.TrimSpace(r.Description),
		Severity:          a.AlertSeverity,
		Status:            IncidentNew,
		Labels:            []string{},
		ProviderName:      ProviderName,
		FirstActivityTime: a.StartTime,
		LastActivityTime:  a.EndTime,
		AlertIds:          []string{},
		Entities:          []Entity{},
		Tactics:           []string{},
		RuleId:            r.ID,
		RuleVersion:       r.Version,
		GroupingKey:       key,
	}
}

// addAll attaches alerts (or refreshes them, when already attached) and
// reports whether the incident changed. Sets of alert ids and entity keys
// are built once, so the cost is linear in alerts and entities.
func (inc *Incident) addAll(alerts []*Document) bool {
	changed := false
	ids := make(map[string]struct{}, len(inc.AlertIds))
	for _, id := range inc.AlertIds {
		ids[id] = struct{}{}
	}
	ents := newEntitySet(inc.Entities)
	for _, a := range alerts {
		if _, ok := ids[a.SystemAlertId]; !ok {
			ids[a.SystemAlertId] = struct{}{}
			inc.AlertIds = append(inc.AlertIds, a.SystemAlertId)
			changed = true
		}
		changed = inc.refresh(ents, a) || changed
	}
	return changed
}

// refresh widens the incident by alert a (times, severity, entities, tactics).
func (inc *Incident) refresh(ents entitySet, a *Document) bool {
	changed := false
	if inc.FirstActivityTime.IsZero() || a.StartTime.Before(inc.FirstActivityTime) {
		inc.FirstActivityTime, changed = a.StartTime, true
	}
	if a.EndTime.After(inc.LastActivityTime) {
		inc.LastActivityTime, changed = a.EndTime, true
	}
	if severityRank(a.AlertSeverity) > severityRank(inc.Severity) {
		inc.Severity, changed = a.AlertSeverity, true
	}
	for _, e := range a.Entities {
		k := e.key()
		if _, ok := ents[k]; !ok {
			ents[k] = struct{}{}
			e = cloneEntity(e)
			e["$id"] = strconv.Itoa(len(inc.Entities) + 1)
			inc.Entities = append(inc.Entities, e)
			changed = true
		}
	}
	for _, t := range strings.Split(a.Tactics, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(inc.Tactics, t) {
			inc.Tactics = append(inc.Tactics, t)
			changed = true
		}
	}
	return changed
}

func severityRank(s string) int {
	return slices.Index([]string{"Informational", "Low", "Medium", "High"}, s)
}

// GroupingKey is what alerts must share to join one incident under the
// rule's grouping: nothing (AnyAlert), all their entities (AllEntities), or
// the selected entity types, alert details and custom details (Selected).
// With grouping disabled each alert is its own group.
//
// AnyAlert with groupByEntities groups as Selected does. Sentinel ignores
// the entity list under AnyAlert (the REST spec: only Selected honours it),
// so the bundled rule (AnyAlert, groupByEntities [Account]) would put every
// user's alerts into one incident named for the first user. The deployed NRT
// rule (infra/) says Selected by Account; tokenpivot's own incidents follow
// it, so that an incident, its title and its IncidentId (the rule's
// TokenPivotIncident custom detail) are one user's, in both places.
func GroupingKey(g rule.Grouping, a Document) string {
	if !g.Enabled {
		return "alert:" + a.SystemAlertId
	}
	switch g.MatchingMethod {
	case rule.AnyAlert:
		if len(g.GroupByEntities) == 0 {
			return "any"
		}
		fallthrough
	case rule.Selected:
		var parts []string
		for _, typ := range g.GroupByEntities {
			parts = append(parts, "entity:"+strings.ToLower(typ)+"="+entityKeys(a.Entities, typ))
		}
		for _, d := range g.GroupByAlertDetails {
			v := a.DisplayName
			if d == "Severity" {
				v = a.AlertSeverity
			}
			parts = append(parts, "detail:"+d+"="+v)
		}
		for _, name := range g.GroupByCustomDetails {
			var vs []string
			for _, cd := range a.ExtendedProperties.CustomDetails {
				if cd.Key == name {
					vs = append(vs, cd.Values...)
				}
			}
			slices.Sort(vs)
			parts = append(parts, "custom:"+name+"="+strings.Join(vs, ","))
		}
		return "selected:" + strings.Join(parts, "|")
	}
	return "entities:" + entityKeys(a.Entities, "")
}

// entityKeys lists the entities of a type ("" for all), sorted.
func entityKeys(es []Entity, typ string) string {
	var ks []string
	for _, e := range es {
		if typ == "" || strings.EqualFold(e["Type"], typ) {
			ks = append(ks, e.key())
		}
	}
	slices.Sort(ks)
	ks = slices.Compact(ks)
	return strings.Join(ks, "\x01")
}

// incidentIndex lists the incidents of one grouping key of one rule with
// the span of their alerts' StartTimes.
//
// Sentinel opens an incident with its first alert and adds the alerts of
// the next lookbackDuration. Alerts here may arrive in any order, so the
// rule is kept as an invariant instead: an alert joins the earliest open
// incident with room (fewer than the cap's alerts) whose alerts'
// StartTimes, with its own, span at most the lookback. In time order this
// is exactly Sentinel's grouping, and alerts closer together than the
// lookback share one incident in any order, up to the cap.
//
// An entry counts the alerts claimed for it. The index is updated (If-Match)
// before the alerts are written with their IncidentId, so the count is an
// upper bound of the incident's alerts and no incident exceeds the cap.
type incidentIndex struct {
	RuleId      string       `json:"RuleId"`
	GroupingKey string       `json:"GroupingKey"`
	Incidents   []indexEntry `json:"Incidents"`
	// Salt is set when the index was rebuilt after it did not parse (the bad
	// version's ETag): new incident ids include it.
	Salt string `json:"Salt,omitempty"`
}

type indexEntry struct {
	IncidentId string    `json:"IncidentId"`
	First      time.Time `json:"First"` // earliest alert StartTime
	Last       time.Time `json:"Last"`  // latest alert StartTime
	// Alerts counts the alerts claimed for the incident; at the cap the
	// entry is full and not joinable.
	Alerts int `json:"Alerts"`
	// Claims are the alert ids claimed by the index's last update only, so
	// that a redelivery after a crash before the alerts were written claims
	// the same incident without counting them twice. Bounded by one Write
	// call's alerts, not by history.
	Claims []string `json:"Claims,omitempty"`
	// Closed is set once the incident is found closed and is not to be
	// reopened: later alerts start a new incident instead.
	Closed bool `json:"Closed,omitempty"`
}

// claim assigns each alert of ps (in time order) an incident and returns
// the updated index (x is left as it is) with the alerts' incident ids. An
// alert claimed by the last update keeps its incident unless that closed.
func (x incidentIndex) claim(ps []*pending, lookback time.Duration, cap int, ruleID string) (incidentIndex, []string) {
	idx := x
	idx.Incidents = slices.Clone(x.Incidents)
	prev := map[string]int{}
	for i := range idx.Incidents {
		for _, a := range idx.Incidents[i].Claims {
			prev[a] = i
		}
		idx.Incidents[i].Claims = nil
	}
	// Only open entries with room are joinable: keeping their list makes a
	// claim cost O(alerts x open entries), not x every incident ever opened.
	var open []int
	for i, e := range idx.Incidents {
		if !e.Closed && e.Alerts < cap {
			open = append(open, i)
		}
	}
	ids := make([]string, len(ps))
	for k, p := range ps {
		t := p.doc.StartTime.UTC()
		i, ok := prev[p.doc.SystemAlertId]
		if !ok || idx.Incidents[i].Closed {
			if i = idx.join(open, t, lookback); i < 0 {
				// A new incident. Its id also counts the earlier ones, so an
				// incident started after a closed or full one at the same time
				// differs.
				parts := []string{ruleID, "incident", x.GroupingKey, detect.FormatTime(t), strconv.Itoa(len(idx.Incidents))}
				if x.Salt != "" {
					parts = append(parts, x.Salt)
				}
				idx.Incidents = append(idx.Incidents, indexEntry{IncidentId: hashID(parts...), First: t, Last: t})
				i = len(idx.Incidents) - 1
				open = append(open, i)
			}
			if idx.Incidents[i].Alerts++; idx.Incidents[i].Alerts >= cap {
				open = slices.DeleteFunc(open, func(j int) bool { return j == i })
			}
		}
		e := &idx.Incidents[i]
		if t.Before(e.First) {
			e.First = t
		}
		if t.After(e.Last) {
			e.Last = t
		}
		e.Claims = append(e.Claims, p.doc.SystemAlertId)
		ids[k] = e.IncidentId
	}
	return idx, ids
}

// join returns the incident of open (the entries neither closed nor full)
// that alert time t joins within lookback, or -1.
func (x *incidentIndex) join(open []int, t time.Time, lookback time.Duration) int {
	best := -1
	for _, i := range open {
		e := x.Incidents[i]
		first, last := e.First, e.Last
		if t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
		if last.Sub(first) > lookback {
			continue
		}
		if best < 0 || e.First.Before(x.Incidents[best].First) {
			best = i
		}
	}
	return best
}

// indexName is the blob holding the index of a rule's grouping key.
func indexName(ruleID, key string) string {
	sum := sha256.Sum256([]byte(ruleID + "\x00" + key))
	return "index/" + hex.EncodeToString(sum[:16]) + ".json"
}

// IncidentBlobName is where an incident lives in the incidents container.
func IncidentBlobName(id string) string { return "incidents/" + id + ".json" }

// compareIncidents orders incidents by first activity, then id.
func compareIncidents(a, b Incident) int {
	return cmp.Or(a.FirstActivityTime.Compare(b.FirstActivityTime), strings.Compare(a.IncidentId, b.IncidentId))
}
