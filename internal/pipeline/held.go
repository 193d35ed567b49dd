package pipeline

import (
	"strings"
	"unsafe"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// heldText holds the text of the rows a blob keeps across its read: the
// non-interactive records that paired (the index's Id dedup keeps their
// Ids) and so the result rows made from them. A scanned record's strings
// point into the reader's buffers (a per-record buffer of all its columns,
// about 1 KiB, or a row group's dictionary page of MBs); a result row that
// kept them would keep those alive, so a 4M-row blob's 85k result rows
// held most of its pages. Their text is copied here instead, packed into
// chunks of heldChunk bytes: only the columns the pair and its key read.
type heldText struct {
	buf []byte
}

// heldChunk is the size of one chunk of held text: large enough that a
// chunk's header is nothing, small enough that a partly used one wastes
// little.
const heldChunk = 64 << 10

// heldMark is a point heldText can go back to (undo).
type heldMark struct {
	chunk *byte
	n     int
}

func (h *heldText) mark() heldMark {
	if cap(h.buf) == 0 {
		return heldMark{}
	}
	return heldMark{unsafe.SliceData(h.buf), len(h.buf)}
}

// undo drops what was copied since m, when it is still in m's chunk (a
// chunk started since is left partly used: its text is garbage once
// nothing points into it).
func (h *heldText) undo(m heldMark) {
	if cap(h.buf) > 0 && unsafe.SliceData(h.buf) == m.chunk {
		h.buf = h.buf[:m.n]
	}
}

// str returns s copied into the held chunks.
func (h *heldText) str(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > heldChunk/8 {
		return strings.Clone(s)
	}
	if cap(h.buf)-len(h.buf) < len(s) {
		h.buf = make([]byte, 0, heldChunk)
	}
	start := len(h.buf)
	h.buf = append(h.buf, s...)
	return unsafe.String(&h.buf[start], len(s))
}

// record returns a copy of r whose text is held.
func (h *heldText) record(r *signin.Record) signin.Record {
	c := *r
	for _, s := range [...]*string{&c.UserPrincipalName, &c.IPAddress, &c.Location, &c.ResultType,
		&c.AuthenticationRequirement, &c.ConditionalAccessStatus, &c.AppDisplayName, &c.CorrelationId,
		&c.UniqueTokenIdentifier, &c.Id} {
		*s = h.str(*s)
	}
	if r.Extra != nil {
		e := *r.Extra
		for _, s := range [...]*string{&e.SessionId, &e.AutonomousSystemNumber, &e.NetworkLocationDetails,
			&e.IsThroughGlobalSecureAccess, &e.AppId, &e.LocationDetails, &e.DeviceDetail, &e.TokenProtectionStatusDetails} {
			*s = h.str(*s)
		}
		c.Extra = &e
	}
	return c
}

// probe probes x with r and appends the result rows to dst; the record is
// held (its text copied) only when it paired.
func (h *heldText) probe(x *detect.Index, dst []detect.Result, r *signin.Record) []detect.Result {
	m := h.mark()
	c := h.record(r)
	n := len(dst)
	if dst = x.Probe(dst, &c); len(dst) == n {
		h.undo(m)
	}
	return dst
}
