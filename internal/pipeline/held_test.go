package pipeline

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// TestHeldResultsFreeReaderBuffers: the result rows a non-interactive blob
// holds until its alerts are written must not keep the reader's buffers
// alive. A scanned record's strings point into a buffer of the reader's
// (here one of 1 MiB standing for a row group's page or dictionary); a
// result row made by x.Probe points into it too, so a 4M-row blob's 85k
// result rows held most of the blob's pages. Through heldText.probe the
// buffer is collected while the results live, their text intact, and a
// row that does not pair leaves nothing held.
func TestHeldResultsFreeReaderBuffers(t *testing.T) {
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	x := detect.NewIndexFor(nil)
	x.Add(signin.Record{TimeGenerated: base, UserPrincipalName: "alice@contoso.com", IPAddress: "198.51.100.7",
		Location: "US", ResultType: "0", Id: "i-1"})
	x.Add(signin.Record{TimeGenerated: base, UserPrincipalName: "bob@contoso.com", IPAddress: "198.51.100.8",
		Location: "US", ResultType: "0", Id: "i-2"})
	x.Seal()

	page := make([]byte, 1<<20)
	text := page[:0]
	cut := func(s string) string { // s as the reader hands it: inside the page
		start := len(text)
		text = append(text, s...)
		return unsafe.String(&page[start], len(s))
	}
	rows := []signin.Record{
		{TimeGenerated: base.Add(10 * time.Minute), UserPrincipalName: cut("alice@contoso.com"), IPAddress: cut("203.0.113.9"),
			Location: cut("RU"), ResultType: cut("0"), AppDisplayName: cut("Microsoft Teams"),
			CorrelationId: cut("5f0b6a0e-3c1e-4c57-9d2e-7b1f0f6f1a11"), UniqueTokenIdentifier: cut("utiAAAAAAAAAAAAAAAAAAA"), Id: cut("n-1")},
		// Same country as bob's sign-in: no pair, nothing held.
		{TimeGenerated: base.Add(20 * time.Minute), UserPrincipalName: cut("bob@contoso.com"), IPAddress: cut("203.0.113.10"),
			Location: cut("US"), ResultType: cut("0"), Id: cut("n-2")},
	}
	freed := make(chan struct{})
	runtime.AddCleanup(&page[0], func(ch chan struct{}) { close(ch) }, freed)

	var h heldText
	var results []detect.Result
	results = h.probe(x, results, &rows[0])
	used := len(h.buf)
	results = h.probe(x, results, &rows[1])
	if len(results) != 1 {
		t.Fatalf("%d result rows, want 1", len(results))
	}
	if len(h.buf) != used {
		t.Errorf("a row that did not pair left %d bytes held", len(h.buf)-used)
	}
	page, text, rows = nil, nil, nil
	for k := 0; k < 20; k++ {
		runtime.GC()
		select {
		case <-freed:
			k = 20
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-freed:
	default:
		t.Fatal("the reader's buffer is still reachable from the held result rows")
	}
	r := results[0]
	if r.UserPrincipalName != "alice@contoso.com" || r.NIIPAddress != "203.0.113.9" || r.NICountry != "RU" ||
		r.AppDisplayName != "Microsoft Teams" || !strings.HasPrefix(r.CorrelationId, "5f0b6a0e-") ||
		r.NonInteractiveId != "n-1" || r.InteractiveId != "i-1" {
		t.Errorf("held result row changed: %+v", r)
	}
}
