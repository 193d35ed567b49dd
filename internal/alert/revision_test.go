package alert

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

// revisionLog records what a Writer reports, by alert id and revision.
type revisionLog struct {
	mu   sync.Mutex
	revs map[string]map[int][]byte
}

func (l *revisionLog) Record(_ context.Context, revs []Revision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.revs == nil {
		l.revs = map[string]map[int][]byte{}
	}
	for _, r := range revs {
		if l.revs[r.AlertId] == nil {
			l.revs[r.AlertId] = map[int][]byte{}
		}
		if have, ok := l.revs[r.AlertId][r.Revision]; ok && string(have) != string(r.Doc) {
			panic("two documents for one revision")
		}
		l.revs[r.AlertId][r.Revision] = r.Doc
	}
	return nil
}

// TestRevisions: a new alert is revision 1, a redelivery keeps it (and
// records it again), new evidence makes revision 2; every revision is
// recorded with the exact stored bytes.
func TestRevisions(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	log := &revisionLog{}
	w.Revisions = log
	rows := sampleRows(t)
	first := Group(w.Rule, rows[1:], false)
	for range 2 { // the second is a redelivery
		if _, err := w.Write(ctx, first); err != nil {
			t.Fatal(err)
		}
	}
	stored, _, err := w.WriteStored(ctx, Group(w.Rule, rows[:1], false))
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].Revision != 2 {
		t.Fatalf("after new evidence: %+v, want revision 2", stored)
	}
	id := stored[0].SystemAlertId
	if len(log.revs[id]) != 2 {
		t.Fatalf("recorded revisions of %s: %d, want 1 and 2", id, len(log.revs[id]))
	}
	for rev, raw := range log.revs[id] {
		var d Document
		if err := json.Unmarshal(raw, &d); err != nil || d.Revision != rev {
			t.Errorf("revision %d recorded as %d, %v", rev, d.Revision, err)
		}
	}
	data, _, err := w.Blobs.Read(ctx, alertsC, stored[0].Blob)
	if err != nil || string(data) != string(log.revs[id][2]) {
		t.Errorf("recorded revision 2 is not the stored document (%v)", err)
	}
	for aid, revs := range log.revs {
		if aid != id && (len(revs) != 1 || revs[1] == nil) {
			t.Errorf("alert %s: revisions %d, want only 1", aid, len(revs))
		}
	}
}
