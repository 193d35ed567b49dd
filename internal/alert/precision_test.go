package alert

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// An alert a mode filtered records the mode and what it saw of each
// evidence row; a second write with more rows of the same alert adds
// theirs, and a rewrite of the same rows changes nothing. Exact records
// nothing.
func TestPrecisionRecord(t *testing.T) {
	ctx := context.Background()
	it := time.Date(2026, 11, 20, 9, 25, 14, 0, time.UTC)
	row := func(k int) detect.Result {
		return detect.Result{NISignInTime: it.Add(time.Duration(10+k) * time.Minute), InteractiveTime: it,
			UserPrincipalName: "user00002@contoso.com", AppDisplayName: "Microsoft Teams", NIIPAddress: "84.12.72.109",
			NICountry: "DE", InteractiveIP: "49.40.202.234", InteractiveCountry: "US", CorrelationId: fmt.Sprint("c-", k),
			UniqueTokenIdentifier: fmt.Sprint("t-", k), TimeSinceInteractive: time.Duration(10+k) * time.Minute,
			InteractiveId: "i-1", NonInteractiveId: fmt.Sprint("n-", k)}
	}
	feats := func(r *detect.Result) (precision.Features, bool) {
		if r.NonInteractiveId == "n-2" {
			return precision.Features{}, false
		}
		return precision.Features{SameSession: "yes", InteractiveASN: "3320", NIASN: "16509", NIHosting: true}, true
	}
	w := newWriter(t, rule.Default())
	if _, n, err := w.WriteResultsPrecision(ctx, []detect.Result{row(0), row(1)}, precision.Balanced, feats); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if _, n, err := w.WriteResultsPrecision(ctx, []detect.Result{row(1), row(2), row(3)}, precision.Balanced, feats); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	before := snapshot(t, w)
	if _, n, err := w.WriteResultsPrecision(ctx, []detect.Result{row(3), row(0)}, precision.Balanced, feats); err != nil || n != 0 {
		t.Fatalf("rewrite: %d written, %v", n, err)
	}
	if after := snapshot(t, w); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a rewrite of the same rows changed the stored alert")
	}
	docs, _, err := w.Store.List(ctx)
	if err != nil || len(docs) != 1 {
		t.Fatal(len(docs), err)
	}
	p := docs[0].Precision
	if p == nil || p.Mode != "balanced" || len(docs[0].Results) != 4 || len(p.Rows) != 3 {
		t.Fatalf("stored %+v with %d rows", p, len(docs[0].Results))
	}
	for k, id := range []string{"n-0", "n-1", "n-3"} {
		if r := p.Rows[k]; r.NonInteractiveId != id || r.InteractiveId != "i-1" || r.NIASN != "16509" || !r.NIHosting || r.SameSession != "yes" {
			t.Errorf("Rows[%d] = %+v, want %s's", k, r, id)
		}
	}

	w = newWriter(t, rule.Default())
	if _, _, err := w.WriteResultsPrecision(ctx, []detect.Result{row(0)}, precision.Exact, feats); err != nil {
		t.Fatal(err)
	}
	if docs, _, err := w.Store.List(ctx); err != nil || len(docs) != 1 || docs[0].Precision != nil {
		t.Fatalf("exact: %+v, %v", docs, err)
	}
}
