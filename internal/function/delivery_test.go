package function

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
)

// fakeDelivery records what the handler asks of the outbox.
type fakeDelivery struct {
	mu    sync.Mutex
	refs  [][]outbox.Ref
	sweep int
	fail  bool
}

func (f *fakeDelivery) report(n int) outbox.Report {
	sr := outbox.SinkReport{Sink: "fake", Due: n, Delivered: n}
	if f.fail {
		sr = outbox.SinkReport{Sink: "fake", Due: n, Retrying: n, Err: errors.New("sink down")}
	}
	return outbox.Report{Sinks: []outbox.SinkReport{sr}}
}

func (f *fakeDelivery) DeliverRefs(_ context.Context, refs []outbox.Ref) (outbox.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs = append(f.refs, refs)
	return f.report(len(refs)), nil
}

func (f *fakeDelivery) Deliver(context.Context) (outbox.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep++
	return f.report(3), nil
}

// TestDeliveryAfterProcessAndInSweep: ProcessExport delivers the revisions
// its blob stored, the Sweep everything pending; a failing sink fails
// neither invocation.
func TestDeliveryAfterProcessAndInSweep(t *testing.T) {
	work := pipeline.Work{Container: "am-signinlogs", Name: "timestamp=2026-11-20T10/a.gz.parquet"}
	for _, fail := range []bool{false, true} {
		d := &fakeDelivery{fail: fail}
		fake := &fakeProcessor{outcome: pipeline.Outcome{Status: pipeline.Processed,
			Stored: []alert.Stored{{SystemAlertId: "a1", Revision: 2}, {SystemAlertId: "a2", Revision: 1}}}}
		h, err := New(Config{Pipeline: fake, Delivery: d})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		r, err := postTo(srv.URL, ProcessExport, queuePayload(workJSON(work), 1))
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("ProcessExport: %v %d %s", err, r.status, r.raw)
		}
		if len(d.refs) != 1 || len(d.refs[0]) != 2 || d.refs[0][0] != (outbox.Ref{AlertId: "a1", Revision: 2}) {
			t.Errorf("delivered %v, want the two stored revisions", d.refs)
		}
		if want := `"delivered":2`; !fail && !strings.Contains(r.raw, want) {
			t.Errorf("reply lacks %s: %s", want, r.raw)
		}
		if fail && !strings.Contains(r.raw, "sink down") {
			t.Errorf("the sink failure is not in the invocation log: %s", r.raw)
		}
		r, err = postTo(srv.URL, Sweep, timerPayload())
		if err != nil || r.status != http.StatusOK || d.sweep != 1 {
			t.Errorf("Sweep: %v %d, %d deliveries: %s", err, r.status, d.sweep, r.raw)
		}
		srv.Close()
	}
}
