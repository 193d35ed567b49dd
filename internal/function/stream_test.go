package function

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tokenpivot/tokenpivot/internal/pipeline"
)

// batchOf returns n BlobCreated events for distinct blobs of the
// interactive container, and the queue message each must become.
func (e *env) batchOf(n int) (events []any, want []string) {
	for k := range n {
		name := fmt.Sprintf("timestamp=2026-11-20T10/part-%06d.gz.parquet", k)
		events = append(events, eventGridEvent(BlobCreated, blobURL(azureServiceURL, e.c.interactive, name), e.c.interactive, name))
		want = append(want, workJSON(pipeline.Work{Container: e.c.interactive, Name: name}))
	}
	return events, want
}

// TestOnExportCreatedLargeBatch: a batch far above the 1 MiB kept for other
// Data values is read element by element and every event is queued.
func TestOnExportCreatedLargeBatch(t *testing.T) {
	e := newLocalEnv(t, nil)
	one, _ := json.Marshal(eventGridEvent(BlobCreated, blobURL(azureServiceURL, e.c.interactive, "x"), e.c.interactive, "x"))
	events, want := e.batchOf(5<<20/len(one) + 1)
	for _, tc := range []struct {
		name  string
		event any
	}{
		{"array", events},
		{"array in a JSON string", jsonString(events)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(eventPayload(tc.event))
			if err != nil {
				t.Fatal(err)
			}
			if len(body) < 5<<20 {
				t.Fatalf("payload is %d bytes, want at least 5 MiB", len(body))
			}
			r, err := postBody(e.srv.URL, OnExportCreated, body)
			if err != nil {
				t.Fatal(err)
			}
			checkReply(t, r, http.StatusOK)
			msgs, err := r.messages()
			if err != nil || !slices.Equal(msgs, want) {
				t.Fatalf("queued %d messages (%v), want all %d events of the %d-byte batch", len(msgs), err, len(want), len(body))
			}
			if strings.Contains(string(r.ReturnValue), "error") {
				t.Errorf("ReturnValue %s", r.ReturnValue)
			}
		})
	}
}

// TestOnExportCreatedBadElements: the valid events of a batch are queued
// whatever else it holds, and each bad element is logged with its index and
// what is wrong with it.
func TestOnExportCreatedBadElements(t *testing.T) {
	e := newLocalEnv(t, nil)
	events, want := e.batchOf(3)
	valid := make([]string, len(events))
	for k, ev := range events {
		valid[k] = jsonString(ev)
	}
	batch := func(els ...string) []byte {
		return []byte(`{"Data":{"event":[` + strings.Join(els, ",") + `]},"Metadata":{}}`)
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		queued  []string
		wantLog string
	}{
		{"a string among events", batch(valid[0], valid[1], `"hello"`, valid[2]), want, "element 2 is a JSON string, not an object"},
		{"a number first", batch(`42`, valid[0], valid[1], valid[2]), want, "element 0 is a JSON number, not an object"},
		{"an array", batch(valid[0], `[1,2]`, valid[1], valid[2]), want, "element 1 is a JSON array, not an object"},
		{"null last", batch(valid[0], valid[1], valid[2], `null`), want, "element 3 is JSON null, not an object"},
		{"a double-encoded element is an event", batch(valid[0], jsonString(valid[1]), valid[2]), want, ""},
		{"an object that is not an event", batch(valid[0], `{"id":7}`, valid[1], valid[2]), want, "element 1 is not an event"},
		{"a truncated batch: what was read is queued", []byte(`{"Data":{"event":[` + valid[0] + `,` + valid[1] + `,{"id":`), want[:2], "not valid JSON"},
		{"a single event that is a string", []byte(`{"Data":{"event":"hello"},"Metadata":{}}`), nil, "the event binding is a JSON string, not an event object or an array of events"},
		{"a single event that is a number", []byte(`{"Data":{"event":3},"Metadata":{}}`), nil, "the event binding is a JSON number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := postBody(e.srv.URL, OnExportCreated, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			checkReply(t, r, http.StatusOK)
			msgs, err := r.messages()
			if err != nil || !slices.Equal(msgs, tc.queued) {
				t.Fatalf("queued %v (%v), want %v", msgs, err, tc.queued)
			}
			logs := strings.Join(r.Logs, "\n")
			if tc.wantLog != "" && !strings.Contains(logs, tc.wantLog) {
				t.Errorf("Logs lack %q:\n%s", tc.wantLog, logs)
			}
			if tc.wantLog == "" && strings.Contains(logs, "refused") {
				t.Errorf("Logs refuse something:\n%s", logs)
			}
			if strings.Contains(logs, "event is not a JSON object") {
				t.Errorf("the old misleading line:\n%s", logs)
			}
		})
	}

	// Past MaxBody the events read so far are queued and the log says why
	// the rest is missing.
	if !testing.Short() {
		t.Run("body over the limit", func(t *testing.T) {
			pad := `"` + strings.Repeat("x", MaxBody) + `"`
			r, err := postBody(e.srv.URL, OnExportCreated, batch(valid[0], valid[1], pad, valid[2]))
			if err != nil {
				t.Fatal(err)
			}
			checkReply(t, r, http.StatusOK)
			if msgs, _ := r.messages(); !slices.Equal(msgs, want[:2]) {
				t.Fatalf("queued %v, want the two events before the limit", msgs)
			}
			if logs := strings.Join(r.Logs, "\n"); !strings.Contains(logs, fmt.Sprintf("body exceeds %d bytes", MaxBody)) {
				t.Errorf("Logs do not give the limit:\n%s", logs)
			}
		})
	}
}

// TestStringCutter: strings up to the limit pass as they are; longer ones
// are cut before a character, never inside an escape, so the JSON stays
// valid, whatever the read sizes.
func TestStringCutter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"four","b":[1,"xy"]}`, `{"a":"four","b":[1,"xy"]}`},
		{`{"a":"abcdefgh"}`, `{"a":"abcd"}`},
		{`{"a":"abc\nefgh","b":"c"}`, `{"a":"abc\n","b":"c"}`},
		{`{"a":"ab\u00e9xyz"}`, `{"a":"ab\u00e9"}`},
		{`{"a":"abc\"\\\"z"}`, `{"a":"abc\""}`},
		{`["\\\\\\\\","ok"]`, `["\\\\","ok"]`},
		{`{"abcdefgh":1}`, `{"abcd":1}`},
	} {
		for _, chunk := range []int{1, 2, 3, 7, 1 << 10} {
			c := &stringCutter{r: iotest.OneByteReader(strings.NewReader(tc.in)), limit: 4}
			if chunk > 1 {
				c.r = &chunks{s: tc.in, n: chunk}
			}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != tc.want || !json.Valid(got) {
				t.Errorf("cut %s (reads of %d): %s, %v; want %s", tc.in, chunk, got, err, tc.want)
			}
		}
	}
}

// chunks reads s n bytes at a time.
type chunks struct {
	s string
	n int
}

func (c *chunks) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}
