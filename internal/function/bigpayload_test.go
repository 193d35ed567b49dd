package function

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// repeat is an endless reader of one byte.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestBlobTriggerContentIsReadPast: a blob trigger passes the blob's content
// in Data (60 MiB here, under MaxBody). The handler never uses it: it must
// read past it with memory of its own bounded by maxValue, not hold the
// whole value (8 such invocations at once took 794 MB), and still process
// the blob the metadata names.
func TestBlobTriggerContentIsReadPast(t *testing.T) {
	e := newLocalEnv(t, nil)
	blobs := casesBlobs(t, 100)
	works := e.upload(blobs)
	const size = 60 << 20
	payload, err := json.Marshal(blobTriggerPayload("OnExportBlob", blobURL(azureServiceURL, works[0].Container, works[0].Name), works[0].String(), []byte("CONTENT")))
	if err != nil {
		t.Fatal(err)
	}
	// The content streams from a reader, so that only the handler's reading
	// allocates: "CONTENT" becomes 60 MiB of text with escapes in it.
	head, tail, ok := strings.Cut(string(payload), "CONTENT")
	if !ok {
		t.Fatal("no content in the payload")
	}
	body := io.MultiReader(strings.NewReader(head), strings.NewReader(`a\"b\\c\u00e9`), io.LimitReader(repeat('x'), size), strings.NewReader(tail))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := http.Post(e.srv.URL+"/OnExportBlob", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v: %s", resp.Status, err, data)
	}
	var s summary
	if resp.StatusCode != http.StatusOK || json.Unmarshal(r.ReturnValue, &s) != nil || s.RowsRead == 0 {
		t.Fatalf("blob trigger with 60 MiB of content: %s: %s", resp.Status, data)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB for a %d MiB payload", float64(allocated)/(1<<20), size>>20)
	if allocated > 24<<20 {
		t.Errorf("serving a %d MiB blob-trigger payload allocated %.1f MiB: the content was held", size>>20, float64(allocated)/(1<<20))
	}
}
