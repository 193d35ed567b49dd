package function

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

func TestTmpCount(t *testing.T) {
	safe := casesSafeList(t)
	blobs := casesBlobs(t, 4)
	for seed := int64(1000); seed < 1006; seed++ {
		data, _ := store.NewLocal(memDir(t))
		fs := &faultStore{Store: data, failAt: -1}
		e := newEnv(t, data, fs, defaultContainers(), azureServiceURL, safe)
		works := e.upload(blobs)
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		r.Shuffle(len(works), func(i, j int) { works[i], works[j] = works[j], works[i] })
		fs.calls.Store(0)
		var per []int64
		for _, w := range works {
			before := fs.calls.Load()
			deliver(e.srv.URL, eventGridEvent(BlobCreated, blobURL(e.serviceURL, w.Container, w.Name), w.Container, w.Name))
			per = append(per, fs.calls.Load()-before)
		}
		fmt.Println(seed, fs.calls.Load(), per)
	}
}
