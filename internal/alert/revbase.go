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
		_, err = w.Store.Write(ctx, w.AlertsContainer, RevisionBaseName, out, cond)
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
