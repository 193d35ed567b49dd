package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// RevisionBaseName is the blob in the alerts container that says where the
// revisions of alerts new to it start: above every revision the outbox has
// ever recorded when the container was (re)created. It is not a .json
// document, so List and the alert readers pass it by.
const RevisionBaseName = "tokenpivot-revision-base"

// RevisionFloor is a RevisionLog that knows the highest revision it holds of
// any alert. A recreated alerts container (deleted by mistake, or by a
// teardown that kept the state) numbers the revisions of the alerts it
// creates above it: no (AlertId, Revision) is ever reused for other
// content, so no receiver drops new evidence as a duplicate.
type RevisionFloor interface {
	MaxRevision(ctx context.Context) (int, error)
}

// RevisionHistory is a RevisionLog that knows, for some alerts, the
// highest revision it holds of each (those it recorded or learned of
// recently: see the outbox's LastRevisions). An alert whose document is
// absent when the Writer writes it (new, or deleted by hand) is created
// above it, so its new evidence goes out under a revision number never
// used for it, instead of being taken for one already recorded. Alerts it
// does not know are absent from the map (0: no floor).
type RevisionHistory interface {
	LastRevisions(ctx context.Context, alertIDs []string) (map[string]int, error)
}

// revisionFloors raises the revision of every alert of ps absent from the
// container (etag "") above what the RevisionLog holds of it: the
// container's base (RevisionFloor, one read per Write that creates alerts)
// and the alert's own recorded revisions (RevisionHistory, no request of
// the Writer's: see the outbox's LastRevisions).
func (w *Writer) revisionFloors(ctx context.Context, ps []*pending) error {
	var absent []*pending
	for _, p := range ps {
		if p.etag == "" {
			absent = append(absent, p)
		}
	}
	if len(absent) == 0 {
		return nil
	}
	if _, ok := w.Revisions.(RevisionFloor); ok {
		base, err := w.revisionBase(ctx)
		if err != nil {
			return fmt.Errorf("alert %s: %w", w.Blobs.URL(w.AlertsContainer, RevisionBaseName), err)
		}
		for _, p := range absent {
			p.rev = max(p.rev, base)
		}
	}
	if h, ok := w.Revisions.(RevisionHistory); ok {
		ids := make([]string, len(absent))
		for i, p := range absent {
			ids[i] = p.in.SystemAlertId
		}
		last, err := h.LastRevisions(ctx, ids)
		if err != nil {
			return fmt.Errorf("alert revisions: %w", err)
		}
		for _, p := range absent {
			if top := last[p.in.SystemAlertId]; top > p.rev {
				w.logger().Warn("an alert recorded before has no document (deleted?): created again above its recorded revisions",
					"alert", w.Blobs.URL(w.AlertsContainer, BlobName(p.in)), "revision", top+1)
				p.rev = top
			}
		}
	}
	return nil
}

type revisionBase struct {
	Base int `json:"Base"`
}

// revisionBase reads the container's base, creating it (from the
// RevisionFloor of w.Revisions) when the container has none: on its first
// alert, or after it was deleted and recreated. Called only by a Write that
// creates alerts and records revisions to a RevisionFloor: one read, 200 in
// the normal path.
func (w *Writer) revisionBase(ctx context.Context) (int, error) {
	for range maxAttempts {
		data, props, err := w.read(ctx, w.AlertsContainer, RevisionBaseName)
		cond := store.Condition{IfNoneMatch: "*"}
		switch {
		case err == nil:
			var b revisionBase
			if json.Unmarshal(data, &b) == nil {
				return b.Base, nil
			}
			cond = store.Condition{IfMatch: props.ETag} // garbled: made again
		case !errors.Is(err, store.ErrNotExist):
			return 0, err
		}
		base := 0
		if f, ok := w.Revisions.(RevisionFloor); ok {
			if base, err = f.MaxRevision(ctx); err != nil {
				return 0, fmt.Errorf("revision base: %w", err)
			}
		}
		out, _ := json.Marshal(revisionBase{base})
		_, err = w.Blobs.Write(ctx, w.AlertsContainer, RevisionBaseName, out, cond)
		if errors.Is(err, store.ErrConditionNotMet) {
			continue // another writer made it: read theirs
		}
		if err != nil {
			return 0, err
		}
		if base > 0 {
			w.logger().Warn("the alerts container has no revision base (recreated?): new alerts' revisions start above the outbox's highest",
				"container", w.AlertsContainer, "base", base)
		}
		return base, nil
	}
	return 0, fmt.Errorf("revision base: gave up after %d conflicts", maxAttempts)
}
