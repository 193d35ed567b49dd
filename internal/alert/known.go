package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// DefaultMaxKnownBytes is how many bytes of alert documents a Writer keeps
// by default to merge new evidence into without reading them back: about
// 5,000 alerts of a noisy hour (their documents are about 3.4 KB), the
// alerts of the last three or four blobs, which is where new evidence goes.
const DefaultMaxKnownBytes = 16 << 20

// maxKnownDates bounds the date folders a Writer knows the alerts of: the
// alerts of a blob start within hours of each other (the window is 2h), so
// a few recent days serve the normal path, and a backfill moving through
// old days lists each day as it gets there.
const maxKnownDates = 4

// knownAlerts is what a Writer knows of the alerts container without
// reading it, so that writing an alert revision costs one request in the
// normal path instead of a read (404 for a new alert) and a write:
//
//   - which alerts exist: each date folder (<yyyy>/<mm>/<dd>/, see BlobName)
//     is listed once, on the first alert of that date (5,000 alerts a
//     request), and kept up to date with what the Writer writes. An alert
//     absent from it is created (If-None-Match) without a read. Names are
//     kept as 64-bit hashes (a collision only costs a read), and only for
//     the maxKnownDates most recent folders: about 20 bytes an alert;
//   - the documents it wrote last (up to MaxKnownBytes) with their ETags,
//     so new evidence merges into them and is written with If-Match without
//     a read, and whether it recorded their revision (RevisionLog), so a
//     revision is recorded once, not again by the next writer of the alert.
//
// Nothing here is trusted beyond the conditions of the writes: another
// writer (another instance) that created or changed an alert since makes
// the write fail its condition, and the Writer then reads the alert and
// merges into it as it always did (Writer.store). Knowledge only saves
// requests; the documents are the same.
type knownAlerts struct {
	mu     sync.Mutex
	seed   maphash.Seed
	listed map[string]*sync.Once          // date folders listed (or being listed)
	errs   map[string]error               // a failed listing, retried by the next Write
	exists map[string]map[uint64]struct{} // per date folder listed, the alerts in it
	docs   map[string]knownDoc            // by blob name: the documents kept
	// busy are the alerts (by id) a Write of this Writer is writing;
	// released is closed (and replaced) whenever some are released.
	busy     map[string]bool
	released chan struct{}
	// order lists the documents kept, oldest first, for eviction.
	order    []keptDoc
	seq      uint64
	docBytes int
	maxBytes int
}

type knownDoc struct {
	etag     string
	rev      int
	raw      []byte // the stored document
	seq      uint64 // in order
	recorded bool   // rev is in the RevisionLog
}

type keptDoc struct {
	name string
	seq  uint64
}

// knownMu guards the lazy creation of Writer.known: a Writer is a struct
// literal, and a copy made before its first Write (a second instance in a
// test) gets its own.
var knownMu sync.Mutex

func (w *Writer) directory() *knownAlerts {
	knownMu.Lock()
	defer knownMu.Unlock()
	if w.known == nil {
		w.known = &knownAlerts{seed: maphash.MakeSeed(), listed: map[string]*sync.Once{}, errs: map[string]error{},
			exists: map[string]map[uint64]struct{}{}, docs: map[string]knownDoc{},
			busy: map[string]bool{}, released: make(chan struct{}), maxBytes: cmp.Or(w.MaxKnownBytes, DefaultMaxKnownBytes)}
	}
	return w.known
}

// dateFolder is the listing prefix of an alert's blob name.
func dateFolder(name string) string { return name[:strings.LastIndexByte(name, '/')+1] }

func (k *knownAlerts) hash(name string) uint64 { return maphash.String(k.seed, name) }

// listDates lists the date folders of ps's alerts not listed yet, one
// request per 5,000 alerts of the folder.
func (k *knownAlerts) listDates(ctx context.Context, w *Writer, ps []*pending) error {
	seen := map[string]bool{}
	for _, p := range ps {
		d := dateFolder(BlobName(p.in))
		if seen[d] {
			continue
		}
		seen[d] = true
		k.mu.Lock()
		once := k.listed[d]
		if once == nil {
			once = new(sync.Once)
			k.listed[d] = once
		}
		k.mu.Unlock()
		once.Do(func() {
			set := map[uint64]struct{}{}
			err := w.Blobs.List(ctx, w.AlertsContainer, d, func(props store.Properties) error {
				set[k.hash(props.Name)] = struct{}{}
				return nil
			})
			k.mu.Lock()
			defer k.mu.Unlock()
			if err != nil {
				// Listed again by the next Write.
				k.errs[d] = err
				delete(k.listed, d)
				return
			}
			// What this Writer wrote since the listing began is in it too.
			maps.Copy(set, k.exists[d])
			k.exists[d] = set
			// Forget the oldest folders beyond the bound (listed again if
			// an alert of theirs comes).
			if len(k.exists) > maxKnownDates {
				dates := slices.Sorted(maps.Keys(k.exists))
				for _, old := range dates[:len(dates)-maxKnownDates] {
					delete(k.exists, old)
					delete(k.listed, old)
				}
			}
		})
		k.mu.Lock()
		err := k.errs[d]
		delete(k.errs, d)
		k.mu.Unlock()
		if err != nil {
			return fmt.Errorf("list alerts %s: %w", w.Blobs.URL(w.AlertsContainer, d), err)
		}
	}
	return nil
}

// loadKnown is load (read and merge p's stored alert) from what the Writer
// knows: an alert it knows nothing of is new, one whose document it kept is
// merged into that; only an alert known by its listing alone is read (and
// one whose date folder it no longer knows, to be safe).
func (w *Writer) loadKnown(ctx context.Context, k *knownAlerts, p *pending) error {
	name := BlobName(p.in)
	k.mu.Lock()
	kd, kept := k.docs[name]
	set, listed := k.exists[dateFolder(name)]
	_, exists := set[k.hash(name)]
	k.mu.Unlock()
	switch {
	case kept:
		var stored Document
		if err := json.Unmarshal(kd.raw, &stored); err != nil {
			break
		}
		changed := stored.Merge(p.in)
		if !changed {
			// Nothing to write (a redelivery): a write's condition would
			// not tell whether the blob is still what this Writer left, so
			// its properties do, for one request and no body. A changed
			// blob (another writer, or one damaged) is read as before.
			props, err := w.Blobs.Stat(ctx, w.AlertsContainer, name)
			if err != nil || props.ETag != kd.etag {
				break
			}
		}
		p.rev, p.raw, p.recorded = kd.rev, kd.raw, kd.recorded
		p.doc, p.etag, p.changed = stored, kd.etag, changed
		return nil
	case listed && !exists:
		p.doc, p.etag, p.changed, p.rev, p.raw, p.recorded = p.in, "", true, 0, nil, false
		return nil
	}
	return w.load(ctx, p)
}

// remember notes p's alert as Write left it. recorded says p's revision
// is recorded whatever p says (the Writer has no RevisionLog).
func (k *knownAlerts) remember(p *pending, recorded bool) {
	if p.etag == "" {
		return
	}
	name := BlobName(p.doc)
	k.mu.Lock()
	defer k.mu.Unlock()
	if set := k.exists[dateFolder(name)]; set != nil {
		set[k.hash(name)] = struct{}{}
	}
	if old, ok := k.docs[name]; ok {
		k.docBytes -= len(old.raw)
		delete(k.docs, name)
	}
	if k.maxBytes <= 0 || p.raw == nil {
		return
	}
	k.seq++
	k.docs[name] = knownDoc{etag: p.etag, rev: p.rev, raw: p.raw, seq: k.seq, recorded: p.recorded || recorded}
	k.docBytes += len(p.raw)
	k.order = append(k.order, keptDoc{name, k.seq})
	// Keep the newest documents: the oldest alerts are the least likely
	// to get new evidence (their window has passed).
	for k.docBytes > k.maxBytes && len(k.order) > 0 {
		oldest := k.order[0]
		k.order = k.order[1:]
		if d, ok := k.docs[oldest.name]; ok && d.seq == oldest.seq {
			k.docBytes -= len(d.raw)
			delete(k.docs, oldest.name)
		}
	}
}

// claim marks the alerts of ps that no other Write holds as held by the
// caller (mine) and returns the others (busy). When every one is held it
// waits until some are released. Waiting only while holding nothing, two
// Writes can never wait for each other.
func (k *knownAlerts) claim(ctx context.Context, ps []*pending) (mine, busy []*pending, err error) {
	for {
		k.mu.Lock()
		mine, busy = nil, nil
		for _, p := range ps {
			if k.busy[p.in.SystemAlertId] {
				busy = append(busy, p)
			} else {
				mine = append(mine, p)
			}
		}
		for _, p := range mine {
			k.busy[p.in.SystemAlertId] = true
		}
		released := k.released
		k.mu.Unlock()
		if len(mine) > 0 {
			return mine, busy, nil
		}
		select {
		case <-released:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// release ends the caller's hold on ps.
func (k *knownAlerts) release(ps []*pending) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range ps {
		delete(k.busy, p.in.SystemAlertId)
	}
	close(k.released)
	k.released = make(chan struct{})
}

// DefaultMaxStateBytes bounds, per kind, the incident and incident index
// documents a Writer keeps with their ETags, so that updating them costs a
// write (If-Match) and no read in the normal path. A document changed by
// someone else since (an analyst closing an incident, another instance)
// fails the write's condition and is read again, as without the cache.
// (Whether an incident was closed is always read fresh before alerts are
// added to it: see assignKey.)
const DefaultMaxStateBytes = 8 << 20

// stateDocs keeps documents of one kind by blob name, newest first, up to
// max bytes; for incident indexes also which exist (the folder is listed
// once), so a new grouping key's index is created without a read.
type stateDocs struct {
	mu       sync.Mutex
	seed     maphash.Seed
	prefix   string // listed once for existence ("" : never)
	listOnce sync.Once
	listed   bool
	exists   map[uint64]struct{}
	docs     map[string]stateDoc
	order    []keptDoc
	seq      uint64
	bytes    int
	max      int
}

type stateDoc struct {
	etag string
	data []byte
	seq  uint64
}

// stateCaches are a Writer's caches of incident indexes and incidents.
type stateCaches struct {
	indexes, incidents *stateDocs
}

func newStateDocs(prefix string, max int) *stateDocs {
	return &stateDocs{seed: maphash.MakeSeed(), prefix: prefix, exists: map[uint64]struct{}{}, docs: map[string]stateDoc{}, max: max}
}

func (w *Writer) states() *stateCaches {
	knownMu.Lock()
	defer knownMu.Unlock()
	if w.stateCache == nil {
		w.stateCache = &stateCaches{indexes: newStateDocs("index/", DefaultMaxStateBytes), incidents: newStateDocs("", DefaultMaxStateBytes)}
	}
	return w.stateCache
}

// get returns name's kept document and ETag; absent reports that the
// blob is known not to exist (its folder was listed and it is not in it).
func (c *stateDocs) get(ctx context.Context, w *Writer, container, name string) (data []byte, etag string, absent, ok bool) {
	if c.prefix != "" {
		c.listOnce.Do(func() {
			set := map[uint64]struct{}{}
			err := w.Blobs.List(ctx, container, c.prefix, func(p store.Properties) error {
				set[maphash.String(c.seed, p.Name)] = struct{}{}
				return nil
			})
			c.mu.Lock()
			defer c.mu.Unlock()
			if err == nil {
				maps.Copy(set, c.exists)
				c.exists, c.listed = set, true
			}
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.docs[name]; ok {
		return d.data, d.etag, false, true
	}
	if c.listed {
		if _, ok := c.exists[maphash.String(c.seed, name)]; !ok {
			return nil, "", true, true
		}
	}
	return nil, "", false, false
}

// put keeps data as name's stored document with its ETag.
func (c *stateDocs) put(name string, data []byte, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exists[maphash.String(c.seed, name)] = struct{}{}
	if old, ok := c.docs[name]; ok {
		c.bytes -= len(old.data)
		delete(c.docs, name)
	}
	if len(data) > c.max {
		return
	}
	c.seq++
	c.docs[name] = stateDoc{etag, data, c.seq}
	c.bytes += len(data)
	c.order = append(c.order, keptDoc{name, c.seq})
	for c.bytes > c.max && len(c.order) > 0 {
		oldest := c.order[0]
		c.order = c.order[1:]
		if d, ok := c.docs[oldest.name]; ok && d.seq == oldest.seq {
			c.bytes -= len(d.data)
			delete(c.docs, oldest.name)
		}
	}
}

// drop forgets name's document (it changed behind the Writer's back).
func (c *stateDocs) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.docs[name]; ok {
		c.bytes -= len(d.data)
		delete(c.docs, name)
	}
}
