package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/signin"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Backlog is what a look over the export containers found to do, and what
// it left out, counted so that nothing is skipped silently.
type Backlog struct {
	Work []Work
	// NotExports counts blobs whose names are not exports (README.txt,
	// _SUCCESS: see signin.IsExportName); NotExportsExample names one.
	NotExports        int
	NotExportsExample string
	// Late counts export blobs last modified before the lateness cut.
	Late int
	// SetAside lists unreadable ledger entries (by URL) that were moved
	// aside: their blobs are in Work again.
	SetAside []string
}

// BacklogOptions tune Backlog.
type BacklogOptions struct {
	// Lateness skips export blobs last modified longer ago than this
	// (counted in Backlog.Late); 0 takes every blob, whatever its age, as a
	// backfill of an archive needs.
	Lateness time.Duration
}

// Backlog returns the export blobs to (re)process: with no done entry for
// their current version, or grown since they were read. Rejected blobs are
// retried only once changed.
func (p *Pipeline) Backlog(ctx context.Context, opts BacklogOptions) (Backlog, error) {
	var b Backlog
	var oldest time.Time
	if opts.Lateness > 0 {
		oldest = p.cfg.Now().Add(-opts.Lateness)
	}
	for _, c := range []string{p.cfg.InteractiveContainer, p.cfg.NonInteractiveContainer} {
		ledger, err := p.ledgers(ctx, c, &b)
		if err != nil {
			return b, err
		}
		err = p.cfg.Exports.List(ctx, c, "", func(props store.Properties) error {
			switch {
			case !signin.IsExportName(props.Name):
				if b.NotExports++; b.NotExportsExample == "" {
					b.NotExportsExample = c + "/" + props.Name
				}
			case props.LastModified.Before(oldest):
				b.Late++
			case ledger[props.Name].quickPlan(props).skip == "":
				b.Work = append(b.Work, Work{Container: c, Name: props.Name})
			}
			return nil
		})
		// An export container that does not exist yet holds nothing to do.
		if err != nil && !errors.Is(err, store.ErrNotExist) {
			return b, fmt.Errorf("sweep: list %s: %w", c, err)
		}
	}
	return b, nil
}

// ledgers returns the ledger entries of container c by blob name. An entry
// that does not parse is moved aside and left out (its blob is redone).
//
// It does not read every entry: the ledger index (ledgerIndex) keeps, for
// each entry, what the backlog needs of it and the entry's ETag when that
// was read. The ledger is listed (5,000 entries a request) and only the
// entries whose ETag differs from the index's, those written since the
// last look, are read; the index is then written back if it changed. A
// Sweep's cost grows with what was processed since the last one, not with
// the ledger's history. The index is only a cache: an entry is trusted
// only while its ETag is the one read, and an index that is missing or
// does not parse is rebuilt from the entries.
func (p *Pipeline) ledgers(ctx context.Context, c string, b *Backlog) (map[string]ledgerEntry, error) {
	prefix := "ledger/" + c + "/"
	idx, idxETag := p.readLedgerIndex(ctx, c)
	next := ledgerIndex{Entries: make(map[string]indexedEntry, len(idx.Entries))}
	ledger := map[string]ledgerEntry{}
	changed := false
	err := p.cfg.State.List(ctx, p.cfg.StateContainer, prefix, func(props store.Properties) error {
		key := strings.TrimSuffix(strings.TrimPrefix(props.Name, prefix), ".json")
		if ie, ok := idx.Entries[key]; ok && ie.LedgerETag == props.ETag {
			next.Entries[key] = ie
			ledger[key] = ie.Entry
			return nil
		}
		changed = true
		data, rp, err := p.cfg.State.Read(ctx, p.cfg.StateContainer, props.Name)
		if errors.Is(err, store.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err := parseLedger(data)
		if err != nil {
			aside, err := p.moveAside(ctx, props.Name, rp.ETag, err)
			if err != nil {
				return err
			}
			b.SetAside = append(b.SetAside, aside)
			return nil
		}
		ledger[key] = e
		next.Entries[key] = indexedEntry{LedgerETag: rp.ETag, Entry: e.summary()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep: ledger of %s: %w", c, err)
	}
	if changed || len(next.Entries) != len(idx.Entries) {
		p.writeLedgerIndex(ctx, c, idxETag, next)
	}
	return ledger, nil
}

// ledgerIndex is the Sweep's cache of one export container's ledger, at
// ledger-index/<container>.json in the state container: per export blob
// name, its ledger entry's ETag and the part of the entry quickPlan reads.
type ledgerIndex struct {
	Entries map[string]indexedEntry `json:"entries"`
}

type indexedEntry struct {
	LedgerETag string      `json:"ledgerETag"`
	Entry      ledgerEntry `json:"entry"`
}

func ledgerIndexName(c string) string { return "ledger-index/" + c + ".json" }

// summary is the part of e that quickPlan needs.
func (e ledgerEntry) summary() ledgerEntry {
	return ledgerEntry{Status: e.Status, ETag: e.ETag, Size: e.Size, Offset: e.Offset,
		Appendable: e.Appendable, Generation: e.Generation, Updated: e.Updated}
}

// readLedgerIndex returns c's ledger index and its ETag; empty (and "")
// when there is none yet or it cannot be used, so every entry is read.
func (p *Pipeline) readLedgerIndex(ctx context.Context, c string) (ledgerIndex, string) {
	var idx ledgerIndex
	name := ledgerIndexName(c)
	data, props, err := p.cfg.State.Read(ctx, p.cfg.StateContainer, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotExist) {
			p.cfg.Logger.Warn("ledger index unreadable: reading every ledger entry",
				"blob", p.cfg.State.URL(p.cfg.StateContainer, name), "error", err.Error())
		}
		return ledgerIndex{}, ""
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		// Rebuilt from the entries and written over (If-Match).
		p.cfg.Logger.Warn("ledger index does not parse: rebuilt from the ledger",
			"blob", p.cfg.State.URL(p.cfg.StateContainer, name), "error", err.Error())
		return ledgerIndex{}, props.ETag
	}
	return idx, props.ETag
}

// writeLedgerIndex stores idx if the index is still as read (etag; ""
// creates it). Losing that race or failing is harmless: the index is a
// cache, and the next Sweep reads the entries it lacks.
func (p *Pipeline) writeLedgerIndex(ctx context.Context, c, etag string, idx ledgerIndex) {
	data, err := json.Marshal(idx)
	if err != nil {
		return
	}
	cond := store.Condition{IfMatch: etag}
	if etag == "" {
		cond = store.Condition{IfNoneMatch: "*"}
	}
	name := ledgerIndexName(c)
	if _, err := p.cfg.State.Write(ctx, p.cfg.StateContainer, name, data, cond); err != nil && !errors.Is(err, store.ErrConditionNotMet) {
		p.cfg.Logger.Warn("ledger index not written", "blob", p.cfg.State.URL(p.cfg.StateContainer, name), "error", err.Error())
	}
}

// Pending is the Sweep's backlog: export blobs within the allowed lateness
// (older ones are past their state's retention) that need processing. What
// it skips is logged with counts.
func (p *Pipeline) Pending(ctx context.Context) ([]Work, error) {
	b, err := p.Backlog(ctx, BacklogOptions{Lateness: p.cfg.AllowedLateness})
	if p.recreate(ctx, err) {
		b, err = p.Backlog(ctx, BacklogOptions{Lateness: p.cfg.AllowedLateness})
	}
	if err != nil {
		return nil, err
	}
	if b.NotExports > 0 || b.Late > 0 {
		p.cfg.Logger.Info("sweep skipped blobs",
			slog.Int("not_exports", b.NotExports), slog.String("not_export_example", b.NotExportsExample),
			slog.Int("older_than_lateness", b.Late), slog.Duration("lateness", p.cfg.AllowedLateness))
	}
	return b.Work, nil
}

// EnsureContainers creates the state container and what the alert sink
// stores into.
func (p *Pipeline) EnsureContainers(ctx context.Context) error {
	if err := p.cfg.State.EnsureContainer(ctx, p.cfg.StateContainer); err != nil {
		return fmt.Errorf("container %s: %w", p.cfg.StateContainer, err)
	}
	return p.cfg.Alerts.EnsureContainers(ctx)
}

// recreate answers a failure that says a blob or container is absent (the
// pipeline handles an absent blob itself, so this one is a container: an
// operator deleted the state or alert containers while serve ran) by
// creating the containers again. It reports whether it did, so that the
// caller tries once more; otherwise every invocation would fail until a
// restart, since serve creates its containers only when it starts. The lost
// state is rebuilt by redoing the blobs, which is safe (section 4 of the
// design: every step is idempotent).
func (p *Pipeline) recreate(ctx context.Context, err error) bool {
	if !errors.Is(err, store.ErrNotExist) || ctx.Err() != nil {
		return false
	}
	if cerr := p.EnsureContainers(ctx); cerr != nil {
		p.cfg.Logger.Error("a container is missing and could not be created", slog.String("error", cerr.Error()))
		return false
	}
	p.cfg.Logger.Warn("a container was missing: created again", slog.String("state_container", p.cfg.StateContainer),
		slog.String("after", err.Error()))
	return true
}
