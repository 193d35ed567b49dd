package pipeline

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// indexCache keeps the last interactive index a non-interactive blob built
// from the published extracts, keyed by exactly the extracts it was built
// from (name, ETag, size). An extract's name says which blob version and
// byte range it holds, so the same key is the same rows: the next blob
// whose window reaches the same extracts probes a fork of the index instead
// of reading and indexing them again (an hour's 21 non-interactive blobs
// share its few interactive extracts; measured in BenchmarkProcessHour).
// One entry: a new extract (or one aged out) makes a new key. The entry
// keeps one index alive between blobs (about 40 MB of live heap for the
// realistic hour's 81k interactive candidates), shared by the blobs in
// flight instead of one index each.
type indexCache struct {
	mu           sync.Mutex
	key          string
	x            *detect.Index
	hits, misses int // for tests
}

func (c *indexCache) get(key string) *detect.Index {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.x == nil || c.key != key {
		// Dropped now, not when the new one is put: two indexes never
		// live at once on its account.
		c.key, c.x = "", nil
		c.misses++
		return nil
	}
	c.hits++
	return c.x.Fork()
}

// put stores x (sealed by Fork before anyone else sees it) and returns a
// fork for the caller.
func (c *indexCache) put(key string, x *detect.Index) *detect.Index {
	f := x.Fork()
	c.mu.Lock()
	c.key, c.x = key, x
	c.mu.Unlock()
	return f
}

// extractsKey names a set of extracts by their properties, in listing order.
func extractsKey(props []store.Properties) string {
	var b strings.Builder
	for _, p := range props {
		b.WriteString(p.Name)
		b.WriteByte(0)
		b.WriteString(p.ETag)
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(p.Size, 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// indexOfListed returns the index of the listed interactive extracts, from
// the cache when the listing matches the extracts it was built from. An
// index is cached only when every extract listed was read whole: one set
// aside or gone since the listing leaves it out.
func (p *Pipeline) indexOfListed(ctx context.Context, listed []store.Properties, out *Outcome) (*detect.Index, error) {
	if x := p.indexes.get(extractsKey(listed)); x != nil {
		return x, nil
	}
	x, complete, err := p.indexOf(ctx, listed, out)
	if err != nil {
		return nil, err
	}
	if !complete {
		x.Seal()
		return x, nil
	}
	return p.indexes.put(extractsKey(listed), x), nil
}

// indexOf reads the listed interactive extracts into a new index; complete
// says every one was read whole (none set aside or gone since the listing).
func (p *Pipeline) indexOf(ctx context.Context, listed []store.Properties, out *Outcome) (x *detect.Index, complete bool, err error) {
	x = detect.NewIndexFor(p.cfg.Filter.Plan).RowsFiltered() // extracts hold rows that pass them
	complete = true
	setAside := len(out.SetAside)
	err = p.readExtracts(ctx, listed, out, func(props store.Properties) error {
		_, err := signin.Scan(ctx, store.NewReaderAt(ctx, p.cfg.State, props), props.Size, signin.Options{Name: props.Name, Table: signin.Interactive, Final: true}, func(rs []signin.Record) error {
			for _, r := range rs {
				x.Add(r)
			}
			return nil
		})
		if err != nil {
			complete = false
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return x, complete && len(out.SetAside) == setAside, nil
}

// listExtracts returns the extracts of table t in hours that are not older
// than the allowed lateness, hour by hour in listing order. The hours are
// listed at once: a blob's look reaches three of them, and at cloud
// latency (25 ms a request) one after another was three round trips.
func (p *Pipeline) listExtracts(ctx context.Context, t signin.Table, hours []time.Time) ([]store.Properties, error) {
	oldest := p.cfg.Now().Add(-p.cfg.AllowedLateness)
	byHour := make([][]store.Properties, len(hours))
	g, gctx := errgroup.WithContext(ctx)
	for k, h := range hours {
		g.Go(func() error {
			return p.cfg.State.List(gctx, p.cfg.StateContainer, extractPrefix(t, h), func(props store.Properties) error {
				if !props.LastModified.Before(oldest) && strings.HasSuffix(props.Name, extractSuffix) {
					byHour[k] = append(byHour[k], props)
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(byHour...), nil
}
