package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Store is where alerts and their incidents are kept: a blob store and
// its two containers. It reads them (List, Get, Count); a Writer, which
// embeds it, writes them.
type Store struct {
	Blobs           store.Store
	AlertsContainer string
	// IncidentsContainer is "" when incidents are neither kept nor read.
	IncidentsContainer string
}

// EnsureContainers creates the alerts and incidents containers.
func (as Store) EnsureContainers(ctx context.Context) error {
	for _, c := range []string{as.AlertsContainer, as.IncidentsContainer} {
		if c == "" {
			continue
		}
		if err := as.Blobs.EnsureContainer(ctx, c); err != nil {
			return fmt.Errorf("container %s: %w", c, err)
		}
	}
	return nil
}

// List reads every alert in the alerts container and every incident in
// the incidents container (none when it is ""), alerts ordered by StartTime
// and incidents by FirstActivityTime. Blobs set aside (store.QuarantinePrefix)
// are not listed. A blob that does not parse is skipped: every other one is
// still returned, with a ListProblems error naming each bad blob's URL, so a
// caller can show what is readable and warn about the rest.
func (as Store) List(ctx context.Context) ([]Document, []Incident, error) {
	s, alertsContainer, incidentsContainer := as.Blobs, as.AlertsContainer, as.IncidentsContainer
	var docs []Document
	var problems ListProblems
	err := s.List(ctx, alertsContainer, "", func(p store.Properties) error {
		if !strings.HasSuffix(p.Name, ".json") || strings.HasPrefix(p.Name, store.QuarantinePrefix) {
			return nil
		}
		var d Document
		return readJSON(ctx, s, alertsContainer, p.Name, &d, &problems, func() { docs = append(docs, d) })
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
			return readJSON(ctx, s, incidentsContainer, p.Name, &inc, &problems, func() { incs = append(incs, inc) })
		})
		if err != nil {
			return nil, nil, err
		}
		slices.SortFunc(incs, compareIncidents)
	}
	if len(problems) > 0 {
		return docs, incs, problems
	}
	return docs, incs, nil
}

// Get reads the named alerts (BlobName) and the incidents they belong to,
// in List's order and with List's handling of unreadable blobs.
func (as Store) Get(ctx context.Context, names []string) ([]Document, []Incident, error) {
	s, alertsContainer, incidentsContainer := as.Blobs, as.AlertsContainer, as.IncidentsContainer
	var docs []Document
	var problems ListProblems
	for _, name := range names {
		var d Document
		if err := readJSON(ctx, s, alertsContainer, name, &d, &problems, func() { docs = append(docs, d) }); err != nil {
			return nil, nil, err
		}
	}
	slices.SortFunc(docs, func(a, b Document) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	var incs []Incident
	seen := map[string]bool{}
	for _, d := range docs {
		if incidentsContainer == "" || d.IncidentId == "" || seen[d.IncidentId] {
			continue
		}
		seen[d.IncidentId] = true
		var inc Incident
		if err := readJSON(ctx, s, incidentsContainer, IncidentBlobName(d.IncidentId), &inc, &problems, func() { incs = append(incs, inc) }); err != nil {
			return nil, nil, err
		}
	}
	slices.SortFunc(incs, compareIncidents)
	if len(problems) > 0 {
		return docs, incs, problems
	}
	return docs, incs, nil
}

// Count counts the alert documents stored (names only, no reads); 0 when
// the alerts container does not exist.
func (as Store) Count(ctx context.Context) (int, error) {
	n := 0
	err := as.Blobs.List(ctx, as.AlertsContainer, "", func(p store.Properties) error {
		if !strings.HasPrefix(p.Name, store.QuarantinePrefix) && strings.HasSuffix(p.Name, ".json") {
			n++
		}
		return nil
	})
	if errors.Is(err, store.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// ListProblems is List's error when some blobs did not parse: one error per
// blob, each naming its URL. The alerts and incidents List returns with it
// are every readable one.
type ListProblems []error

func (p ListProblems) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = e.Error()
	}
	return fmt.Sprintf("%d unreadable blobs: %s", len(p), strings.Join(msgs, "; "))
}

// readJSON reads one blob into v and calls keep; a blob deleted since the
// listing is skipped, one that does not parse is added to problems.
func readJSON(ctx context.Context, s store.Store, container, name string, v any, problems *ListProblems, keep func()) error {
	data, _, err := s.Read(ctx, container, name)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		*problems = append(*problems, fmt.Errorf("%s: %v", s.URL(container, name), err))
		return nil
	}
	keep()
	return nil
}
