package function

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// fakeProcessor answers as told: the handler's protocol is tested apart
// from storage and the pipeline.
type fakeProcessor struct {
	pending []pipeline.Work
	outcome pipeline.Outcome
	err     error
}

func (f *fakeProcessor) Process(ctx context.Context, w pipeline.Work) (pipeline.Outcome, error) {
	o := f.outcome
	o.Work = w
	return o, f.err
}

func (f *fakeProcessor) Pending(ctx context.Context) ([]pipeline.Work, error) {
	return f.pending, f.err
}

func (f *fakeProcessor) Table(c string) (signin.Table, bool) {
	switch c {
	case "am-signinlogs":
		return signin.Interactive, true
	case "am-aadnoninteractiveusersigninlogs":
		return signin.NonInteractive, true
	}
	return 0, false
}

func TestHandlerDrivesAnyProcessor(t *testing.T) {
	work := pipeline.Work{Container: "am-signinlogs", Name: "timestamp=2026-11-20T10/a.gz.parquet"}
	for _, tc := range []struct {
		name     string
		fake     *fakeProcessor
		fn       string
		payload  any
		status   int
		contains string
	}{
		{"a retryable failure is a 500", &fakeProcessor{err: errors.New("503 Server Busy")},
			ProcessExport, queuePayload(workJSON(work), 1), http.StatusInternalServerError, "will retry"},
		{"a rejection is a 200 with its reason", &fakeProcessor{outcome: pipeline.Outcome{Status: pipeline.Rejected, Reason: errors.New("column Location: missing")}},
			ProcessExport, queuePayload(workJSON(work), 1), http.StatusOK, "column Location: missing"},
		{"the Sweep enqueues what is pending", &fakeProcessor{pending: []pipeline.Work{work, {Container: "am-aadnoninteractiveusersigninlogs", Name: "b.json"}}},
			Sweep, timerPayload(), http.StatusOK, "b.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Config{Pipeline: tc.fake})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			r, err := postTo(srv.URL, tc.fn, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			all, _ := json.Marshal(r)
			if !strings.Contains(r.raw+string(all), tc.contains) {
				t.Errorf("reply lacks %q: %s", tc.contains, r.raw)
			}
		})
	}
}
