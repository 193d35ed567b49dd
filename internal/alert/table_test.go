package alert

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestWriteTable: the wide table names every alert's user, IP, times,
// incident and name, one line each.
func TestWriteTable(t *testing.T) {
	ctx := context.Background()
	w := newWriter(t, anyAlertRule())
	if _, err := w.Write(ctx, Group(w.Rule, sampleRows(t), false)); err != nil {
		t.Fatal(err)
	}
	docs, incs := list(t, w)
	var b bytes.Buffer
	if err := WriteTable(&b, docs, incs, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"ALERTS (3, severity " + docs[0].AlertSeverity + ")", "INCIDENTS (1)", "alice@contoso.com", "198.51.100.20", "bob@fabrikam.com", "2024-05-01 08:00:00", incs[0].IncidentId, docs[0].DisplayName} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 2+3+1+2+1 {
		t.Errorf("%d lines, want 9:\n%s", lines, out)
	}
}
