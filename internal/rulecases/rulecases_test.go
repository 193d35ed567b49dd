package rulecases

import (
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Any split of the cases gives the rows expected.jsonl lists.
func TestOracleOfAnySplit(t *testing.T) {
	safe, err := SafeList()
	if err != nil {
		t.Fatal(err)
	}
	for _, per := range []int{1, 3, 100} {
		blobs, err := Split(per, func(t signin.Table, k int) string { return t.Short() + "/" + string(rune('a'+k%26)) })
		if err != nil {
			t.Fatal(err)
		}
		rows, err := Oracle(blobs, safe)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != Rows {
			t.Errorf("split by %d: %d rows, the cases define %d", per, len(rows), Rows)
		}
	}
}
