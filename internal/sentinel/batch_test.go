package sentinel

import (
	"fmt"
	"testing"
)

func TestBatches(t *testing.T) {
	recs := [][]byte{make([]byte, 40), make([]byte, 40), make([]byte, 200), make([]byte, 10), make([]byte, 30)}
	got, tooBig := batches(recs, 100)
	if fmt.Sprint(got) != "[[0 1 3] [4]]" || fmt.Sprint(tooBig) != "[2]" {
		t.Errorf("batches = %v, too big %v", got, tooBig)
	}
	for _, b := range got {
		if n := len(joinArray(recs, b)); n > 100 {
			t.Errorf("batch %v is %d bytes", b, n)
		}
	}
}
