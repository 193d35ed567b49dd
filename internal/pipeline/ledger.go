package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// The ledger: one small JSON blob per export blob, at
// ledger/<container>/<name>.json in the state container. Its done entry is
// written last (DESIGN.md 4), so a blob without one is always redone.
const (
	statusDone     = "done"
	statusRejected = "rejected"
)

type ledgerEntry struct {
	Status string `json:"status"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	// Offset is how far the blob has been read (the last complete record).
	Offset int64 `json:"offset"`
	// Appendable is set for plain JSON Lines, which may grow by appends and
	// are then read on from Offset; any other format is read whole again.
	Appendable bool `json:"appendable,omitempty"`
	// TailSum is the SHA-256 of the tailSumBytes bytes before Offset. A new
	// ETag whose bytes there differ is a rewrite, not an append.
	TailSum string `json:"tailSum,omitempty"`
	// Generation counts the rewrites seen: it keys the extracts, so those
	// of replaced content are never mistaken for the new content's.
	Generation int `json:"generation,omitempty"`
	// SkippedRows counts rows that could not be read and were left out;
	// FirstSkipped names the first (column and row).
	SkippedRows  int64     `json:"skippedRows,omitempty"`
	FirstSkipped string    `json:"firstSkipped,omitempty"`
	Error        string    `json:"error,omitempty"`
	Extracts     []string  `json:"extracts,omitempty"`
	Updated      time.Time `json:"updated"`
}

// tailSumBytes is how much of the read prefix TailSum covers: an append
// never changes it, and a rewrite that keeps the last 4 KiB read is not
// told from an append (the new bytes are then read as appended).
const tailSumBytes = 4 << 10

func ledgerName(w Work) string { return "ledger/" + w.Container + "/" + w.Name + ".json" }

// plan is what processing one blob version must do.
type plan struct {
	from int64  // the first byte to read
	gen  int    // the generation to publish under
	skip Status // why nothing needs reading ("" to read)
	// refresh: the blob's ETag changed but not its content as read (a
	// metadata change): only the ledger's ETag moves on.
	refresh bool
	// stale are the extracts of replaced content, to delete.
	stale []string
}

// quickPlan decides from the ledger alone; it is what the Sweep uses. A
// changed appendable blob may be grown or rewritten: both are pending, and
// planFor tells them apart.
func (e ledgerEntry) quickPlan(props store.Properties) plan {
	switch {
	case props.Size == 0:
		return plan{skip: Empty}
	case e.Status == "":
		return plan{}
	case e.ETag == props.ETag && e.Status == statusRejected:
		return plan{skip: StillRejected}
	case e.ETag == props.ETag:
		return plan{skip: Done}
	case e.Status == statusDone && e.Appendable && e.Offset > 0 && props.Size >= e.Offset:
		return plan{from: e.Offset, gen: e.Generation}
	}
	// Rejected and changed since, or rewritten: read it all again.
	return plan{gen: e.Generation + 1, stale: e.Extracts}
}

// planFor refines quickPlan for an appendable blob with a new ETag: the
// bytes before the offset must be those read, else it was rewritten.
func (p *Pipeline) planFor(ctx context.Context, e ledgerEntry, props store.Properties) (plan, error) {
	pl := e.quickPlan(props)
	if pl.skip != "" || pl.from == 0 {
		return pl, nil
	}
	sum, err := p.tailSum(ctx, props, e.Offset)
	if err != nil {
		return plan{}, err
	}
	switch {
	case e.TailSum != "" && sum != e.TailSum:
		return plan{gen: e.Generation + 1, stale: e.Extracts}, nil
	case props.Size == e.Offset:
		return plan{skip: Done, refresh: true}, nil
	}
	return pl, nil
}

// tailSum hashes the tailSumBytes before offset of the blob version props.
func (p *Pipeline) tailSum(ctx context.Context, props store.Properties, offset int64) (string, error) {
	n := min(offset, tailSumBytes)
	buf := make([]byte, n)
	got, err := p.cfg.Exports.ReadAt(ctx, props.Container, props.Name, buf, offset-n, props.ETag)
	if err != nil && !(errors.Is(err, io.EOF) && int64(got) == n) {
		return "", fmt.Errorf("read %s: %w", p.cfg.Exports.URL(props.Container, props.Name), err)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// readLedger returns w's entry and its ETag ("" when absent). An entry that
// does not parse is moved aside (reported in setAside) and reads as absent:
// the blob is then processed again, which is always safe.
func (p *Pipeline) readLedger(ctx context.Context, w Work) (e ledgerEntry, etag, setAside string, err error) {
	name := ledgerName(w)
	data, props, err := p.cfg.State.Read(ctx, p.cfg.StateContainer, name)
	if errors.Is(err, store.ErrNotExist) {
		return e, "", "", nil
	}
	if err != nil {
		return e, "", "", fmt.Errorf("ledger %s: %w", name, err)
	}
	if e, err = parseLedger(data); err != nil {
		aside, merr := p.moveAside(ctx, name, props.ETag, err)
		if merr != nil {
			return e, "", "", merr
		}
		return ledgerEntry{}, "", aside, nil
	}
	return e, props.ETag, "", nil
}

func parseLedger(data []byte) (ledgerEntry, error) {
	var e ledgerEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, err
	}
	if e.Status != statusDone && e.Status != statusRejected {
		return e, fmt.Errorf("status %q is neither %q nor %q", e.Status, statusDone, statusRejected)
	}
	return e, nil
}

// moveAside quarantines an unreadable state object and logs it by name.
func (p *Pipeline) moveAside(ctx context.Context, name, etag string, why error) (string, error) {
	aside, err := store.MoveAside(ctx, p.cfg.State, p.cfg.StateContainer, name, etag)
	if err != nil {
		return "", err
	}
	p.cfg.Logger.Error("state object unreadable: moved aside and rebuilt",
		"blob", p.cfg.State.URL(p.cfg.StateContainer, name),
		"moved_to", p.cfg.State.URL(p.cfg.StateContainer, aside), "error", why.Error())
	return p.cfg.State.URL(p.cfg.StateContainer, name), nil
}

// writeLedger writes e if the ledger is still as read (etag), so the offset
// only moves forward. A lost race means another worker processed the blob;
// that is not an error, whatever it recorded stands.
func (p *Pipeline) writeLedger(ctx context.Context, w Work, etag string, e ledgerEntry) error {
	e.Updated = p.cfg.Now().UTC()
	slices.Sort(e.Extracts)
	e.Extracts = slices.Compact(e.Extracts)
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	cond := store.Condition{IfMatch: etag}
	if etag == "" {
		cond = store.Condition{IfNoneMatch: "*"}
	}
	_, err = p.cfg.State.Write(ctx, p.cfg.StateContainer, ledgerName(w), data, cond)
	if errors.Is(err, store.ErrConditionNotMet) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger %s: %w", ledgerName(w), err)
	}
	return nil
}

// forget deletes w's ledger entry so that w is processed again (its extract
// was unreadable and has been moved aside).
func (p *Pipeline) forget(ctx context.Context, w Work) error {
	err := p.cfg.State.Delete(ctx, p.cfg.StateContainer, ledgerName(w), store.Condition{})
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("ledger %s: %w", ledgerName(w), err)
	}
	return nil
}
