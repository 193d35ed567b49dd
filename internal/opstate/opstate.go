// Package opstate is the blob-stored state protocol shared by the stateful
// rule operators (internal/aggregate, internal/firstseen): the same
// publish-first discipline as the join (DESIGN.md 4), cut by hour.
//
//  1. Apply: each export blob part publishes its rows, projected to what the
//     operator needs, as one extract per pane hour, named by the hour and by
//     the source (blob, generation, byte range). The name and the bytes are a
//     function of the source, so a redelivery rewrites the same blob and two
//     workers on different blobs of the same hour never touch one object.
//  2. Finalise: once the watermark says no later blob can add rows to an hour
//     (its end plus the allowed lateness is before the watermark), the hour
//     is merged, exactly once in effect: the merged state is written under a
//     name fixed by the hour (first writer wins), results are handed to an
//     idempotent sink, and only then does the cursor move, with If-Match.
//     A crash anywhere before the cursor write makes the next Finalise redo
//     the hour with the same inputs and so the same outputs.
//
// Lateness is measured as DESIGN.md 6 says: by the export blob's
// Last-Modified, never by the wall clock. A row is late when its time is
// more than the allowed lateness before its blob's Last-Modified; late rows
// are never applied (so the result does not depend on when they came) and
// are counted and named.
package opstate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/store"
)

// Source names one export blob part whose rows are applied: the identity of
// its extracts.
type Source struct {
	// Blob is the export blob, "container/name".
	Blob string
	// Generation counts rewrites of the blob (the pipeline ledger's).
	Generation int
	// From and To are the byte range read (an append blob's new part); 0, 0
	// for a whole blob.
	From, To int64
	// LastModified is the export blob's Last-Modified: lateness is measured
	// from it.
	LastModified time.Time
}

// Key is the source's short, name-safe identity.
func (s Source) Key() string {
	h := sha256.Sum256([]byte(s.Blob + "\x00" + strconv.Itoa(s.Generation) + "\x00" +
		strconv.FormatInt(s.From, 10) + "\x00" + strconv.FormatInt(s.To, 10)))
	return hex.EncodeToString(h[:12])
}

// Late reports whether a row at t in the source is late: more than lateness
// before the blob's Last-Modified. A lateness of 0 makes no row late (a
// backfill, finalised by an explicit watermark).
func (s Source) Late(t time.Time, lateness time.Duration) bool {
	return lateness > 0 && t.Before(s.LastModified.Add(-lateness))
}

// Hour is the UTC hour that starts at or before t.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// HourPath renders an hour as a blob name part.
func HourPath(h time.Time) string { return h.UTC().Format("2006/01/02/15") }

// ParseHourPath reads an hour written by HourPath.
func ParseHourPath(s string) (time.Time, bool) {
	t, err := time.Parse("2006/01/02/15", s)
	return t, err == nil
}

// Final reports whether a pane that ends at end can still change: it is
// final once end plus the lateness is before the watermark (every export
// blob last modified before the watermark has been applied).
func Final(end time.Time, lateness time.Duration, watermark time.Time) bool {
	return end.Add(lateness).Before(watermark)
}

// Extracts lays out the extracts of one operator instance:
// prefix/rows/<hour>/<container>/<blob>/g<generation>-<from>-<to>.gob, as
// the pipeline names its own: an extract that cannot be read tells which
// export blob to redo. A name too long for a blob falls back to a hash
// (prefix/rows/<hour>/hashed/<key>.gob), unique but naming no source.
type Extracts struct {
	Store     store.Store
	Container string
	Prefix    string // "<operator>/<rule id>/"
}

const maxBlobName = 1024

// Name is the extract of src for the pane hour h.
func (x Extracts) Name(h time.Time, src Source) string {
	base := x.Prefix + "rows/" + HourPath(h) + "/"
	name := fmt.Sprintf("%s%s/g%d-%d-%d.gob", base, src.Blob, src.Generation, src.From, src.To)
	if len(name) <= maxBlobName && store.CheckName(name) == nil {
		return name
	}
	return base + "hashed/" + src.Key() + ".gob"
}

// Listed is one extract found by List.
type Listed struct {
	Hour time.Time
	Name string
	// Source is the export blob ("container/name") it was read from, ""
	// when its name is hashed.
	Source string
}

// List returns every extract, oldest hour first (one request per 5,000).
func (x Extracts) List(ctx context.Context) ([]Listed, error) {
	var out []Listed
	base := x.Prefix + "rows/"
	const hourLen = len("2006/01/02/15")
	err := x.Store.List(ctx, x.Container, base, func(p store.Properties) error {
		rest := strings.TrimPrefix(p.Name, base)
		if len(rest) <= hourLen || rest[hourLen] != '/' {
			return nil
		}
		h, ok := ParseHourPath(rest[:hourLen])
		if !ok {
			return nil // not ours: left alone
		}
		l := Listed{Hour: h, Name: p.Name}
		if src := rest[hourLen+1:]; !strings.HasPrefix(src, "hashed/") {
			if i := strings.LastIndexByte(src, '/'); i > 0 {
				l.Source = src[:i]
			}
		}
		out = append(out, l)
		return nil
	})
	return out, err
}

// SourceOf returns the export blob ("container/name") an extract was read
// from, if its name says.
func (x Extracts) SourceOf(name string) (string, bool) {
	const hourLen = len("2006/01/02/15")
	rest, ok := strings.CutPrefix(name, x.Prefix+"rows/")
	if !ok || len(rest) <= hourLen+1 || strings.HasPrefix(rest[hourLen+1:], "hashed/") {
		return "", false
	}
	src := rest[hourLen+1:]
	i := strings.LastIndexByte(src, '/')
	if i <= 0 {
		return "", false
	}
	return src[:i], true
}

// Write publishes data as the extract of src for hour h. The content is a
// function of the source, so writing it again is harmless.
func (x Extracts) Write(ctx context.Context, h time.Time, src Source, data []byte) error {
	_, err := x.Store.Write(ctx, x.Container, x.Name(h, src), data, store.Condition{})
	return err
}

// ErrRaced means another Finalise moved the state on while this one read
// it: the caller starts again from the cursor.
var ErrRaced = errors.New("opstate: state moved on by another finaliser")

// ErrUnreadable marks a state object whose bytes cannot be decoded
// (truncated, garbled): the caller sets it aside (SetAside) and rebuilds or
// waits, it never stops on it (DESIGN.md 7).
var ErrUnreadable = errors.New("unreadable state object")

// ReadJSON reads a JSON state object into v and returns its ETag;
// store.ErrNotExist when absent, ErrUnreadable when it does not decode.
func ReadJSON(ctx context.Context, s store.Store, container, name string, v any) (string, error) {
	data, p, err := s.Read(ctx, container, name)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return "", fmt.Errorf("%s: %w: %v", s.URL(container, name), ErrUnreadable, err)
	}
	return p.ETag, nil
}

// SetAside moves an unreadable state object to the quarantine
// (store.MoveAside) and returns its URL there, for the report.
func SetAside(ctx context.Context, s store.Store, container, name string) (string, error) {
	aside, err := store.MoveAside(ctx, s, container, name, "")
	if err != nil {
		return "", err
	}
	return s.URL(container, aside), nil
}

// WriteOnce writes data under name unless the blob exists (first writer
// wins) and returns what is stored: data, or the earlier writer's bytes. A
// state object named for an hour is written once and never changes, even
// when a finaliser that read a moved-on state computes it again.
func WriteOnce(ctx context.Context, s store.Store, container, name string, data []byte) ([]byte, error) {
	_, err := s.Write(ctx, container, name, data, store.Condition{IfNoneMatch: "*"})
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, store.ErrConditionNotMet) {
		return nil, err
	}
	stored, _, err := s.Read(ctx, container, name)
	return stored, err
}

// WriteCursor writes the cursor document v under name: If-Match etag, or
// If-None-Match * when etag is "" (the first cursor). It returns the new
// ETag; ErrRaced when another finaliser wrote it first.
func WriteCursor(ctx context.Context, s store.Store, container, name, etag string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	cond := store.Condition{IfMatch: etag}
	if etag == "" {
		cond = store.Condition{IfNoneMatch: "*"}
	}
	p, err := s.Write(ctx, container, name, data, cond)
	if errors.Is(err, store.ErrConditionNotMet) {
		return "", ErrRaced
	}
	return p.ETag, err
}

// DeleteQuietly deletes a blob that may already be gone (garbage whose
// removal a later pass, or the storage lifecycle rule, repeats).
func DeleteQuietly(ctx context.Context, s store.Store, container, name string) error {
	err := s.Delete(ctx, container, name, store.Condition{})
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	return err
}

// KQLBin is KQL's bin(t, w) for a datetime: t rounded down to a multiple of
// w counted in ticks from 0001-01-01, as Kusto counts (for a w dividing a
// day this is the Unix-epoch rounding; for 7d it is not).
func KQLBin(t time.Time, w time.Duration) time.Time {
	if w <= 0 {
		return t
	}
	const epochTicks = 621355968000000000 // 0001-01-01 to 1970-01-01 in 100 ns ticks
	ticks := t.UnixNano()/100 + epochTicks
	wt := int64(w / 100)
	ticks -= ticks % wt
	return time.Unix(0, (ticks-epochTicks)*100).UTC()
}

// Watermark is the watermark Finalise takes, from what the pipeline's Sweep
// knows: the store's clock now (store.Clock: every blob written from now on
// is last modified after it), held back to the Last-Modified of the oldest
// export blob not yet applied (pending in its Backlog: no done ledger entry,
// grown, or still in flight). Every export blob last modified before the
// result has been applied.
func Watermark(now time.Time, pending []time.Time) time.Time {
	wm := now
	for _, lm := range pending {
		if lm.Before(wm) {
			wm = lm
		}
	}
	return wm
}

// Encode is the encoding of the large state objects (extracts, panes,
// snapshots): gob, cheaper to read back than JSON (docs/rule-family.md has
// the measure); the small cursors stay JSON for a person to read.
func Encode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode reads what Encode wrote; ErrUnreadable when it cannot.
func Decode(data []byte, v any) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	return nil
}

// ReadState reads a state object written with Encode into v; store.ErrNotExist when absent.
func ReadState(ctx context.Context, s store.Store, container, name string, v any) error {
	data, _, err := s.Read(ctx, container, name)
	if err != nil {
		return err
	}
	if err := Decode(data, v); err != nil {
		return fmt.Errorf("%s: %w", s.URL(container, name), err)
	}
	return nil
}

// CheckConfig is the part of an operator's configuration every operator
// needs: a store, a state container, and a rule id that can name state
// (one path segment). op prefixes the error ("aggregate", "firstseen").
func CheckConfig(op string, s store.Store, container, rule string) error {
	switch {
	case s == nil || container == "":
		return fmt.Errorf("%s: a store and a state container are required", op)
	case rule == "" || strings.ContainsAny(rule, "/\\") || store.CheckName(rule) != nil:
		return fmt.Errorf("%s: rule id %q cannot name state", op, rule)
	}
	return nil
}

// maxRestarts bounds how often a finaliser starts again after losing the
// cursor race: each loss means another finaliser made progress, so this is
// reached only if the state keeps moving under it.
const maxRestarts = 64

// Restarting runs one finalisation pass until it does not lose the cursor
// race (ErrRaced), and returns the number of passes lost with its error.
func Restarting(op string, pass func() error) (raced int, err error) {
	for range maxRestarts {
		err := pass()
		if !errors.Is(err, ErrRaced) {
			return raced, err
		}
		raced++
	}
	return raced, fmt.Errorf("%s: finalise: the state kept moving (%d restarts)", op, maxRestarts)
}
